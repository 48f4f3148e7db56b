//! The shubnet node: the parts that hold and move images, the HTTP adapter that serves them
//! through the gateway, and the `shubnet` CLI. `ARCHITECTURE.md` at the repository root maps
//! them; `server` builds them in dependency order.
//!
//! - [`paths`]: every path under `DATA_DIR`. [`keys`], [`admin_token`], [`secrets`]: the node
//!   key, the institution key, the admin token, and how secrets are kept on disk.
//! - [`config`]: `config.toml`, its checks and reference.
//! - [`store`]: complete images as plain files under `blobs/`, a sled index of every block.
//! - [`registry`]: signed manifests and rosters, tag heads, the search index.
//! - [`tokens`]: user tokens and collection privacy flags. [`usage`]: download and star counts.
//! - [`visibility`]: what is private (asked by every route and by Bitswap).
//! - [`p2p`]: the federation network (gate, sync, gossip, fetch/1, Bitswap).
//! - [`replication`]: placement, pinning, repair and leaving.
//! - [`http`]: the gateway's traits implemented over the parts; the HTTP listeners.
//! - [`server`]: `shubnet serve`, the construction order and the ordered shutdown.
//! - [`backup`]: `shubnet backup`/`restore`. [`clock`]: Unix time.
//! - [`cli`]: every `shubnet` subcommand; commands that change a node talk to its admin API.
//! - [`durable`]: how every file is replaced (temp, fsync, rename, fsync dir); [`db`]: the sled
//!   databases and their tree names.
//!
//! The crate root only declares the modules; it must not hold logic or wiring of its own.

pub mod access;
pub mod admin_token;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod durable;
pub mod http;
pub mod keys;
pub mod owner_only;
pub mod p2p;
pub mod paths;
pub mod registry;
pub mod replication;
pub mod scrub;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tokens;
pub mod usage;
pub mod visibility;
