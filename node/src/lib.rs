//! The shubnet node: the content store, the HTTP server that mounts the gateway, and the CLI.
//!
//! - [`store`]: complete images as plain files under `blobs/`, a sled index of every block.
//! - [`backend`]: the gateway's backend traits implemented over the store.
//! - [`server`]: `shubnet serve`.
//! - [`cli`]: every `shubnet` subcommand; commands that change a node talk to its admin API.
//! - [`paths`]: where a node keeps its files.

pub mod admin_token;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod keys;
pub mod p2p;
pub mod paths;
pub mod registry;
pub mod replication;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tokens;
pub mod usage;
pub mod visibility;
