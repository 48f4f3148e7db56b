//! The libp2p side of a node: one event loop ([`EventLoop`]) owns the swarm (TCP and QUIC,
//! noise, yamux, identify, ping, and raw streams), and the stream protocols run as tasks beside
//! it.
//!
//! - Bitswap 1.2.0 server ([`bitswap`]) and client ([`bitswap_client`]), open to any IPFS node;
//!   private content only for members.
//! - Gossipsub on `/shubnet/<federation id>/announce` ([`gossip`]): new manifests, roster
//!   versions, holdings; strict validation through the registry.
//! - Kademlia under `/shubnet/<federation id>/kad/1.0.0`, server mode, routing table fed only
//!   with members' addresses (from identify), for finding members' addresses. Its protocol
//!   name needs the federation id, so it runs from the first start after create/join.
//! - `/shubnet/sync/1` anti-entropy ([`anti_entropy`]).
//! - `/shubnet/access/1` ([`access_sync`]): the signed collection policies and capability
//!   revocations every member enforces, pulled in each sync round and pushed when signed.
//! - `/shubnet/fetch/1` bulk transfer ([`fetch`]) with per-node rate limits ([`ratelimit`]), and
//!   `/shubnet/badleaf/1`, a fetcher's report of a damaged leaf to its holder.
//! - Gating to the newest roster ([`gate`], the node's one membership source), and
//!   reconnecting to members with backoff from persisted addresses ([`addrbook`]); names in
//!   addresses resolved at every dial ([`resolve`]).
//!
//! [`new`] takes narrow handles (store, registry, gate, visibility, usage) and returns the
//! [`NetClient`] the rest of the node uses, the [`NetEvents`] the replicator follows, and the
//! unspawned [`EventLoop`]. This module must not import the HTTP adapter or the gateway.

pub mod access_sync;
mod addrbook;
pub mod anti_entropy;
mod bitswap;
mod bitswap_budget;
pub mod bitswap_client;
mod command;
mod error;
mod event_loop;
mod events;
pub mod fetch;
mod frames;
pub mod gate;
pub mod gossip;
mod members_only;
mod muxer;
mod network;
pub mod peers;
pub mod ratelimit;
mod resolve;
mod streams;
mod swarm;
mod tasks;

pub use command::DialFailure;
pub use error::NetError;
pub use error::{
    BitswapFetchError, BitswapServeError, FetchServeError, ImageBlock, Refusal, SyncFailure,
    Unanswered, WantsError,
};
pub use event_loop::EventLoop;
pub use events::{NetEvent, NetEvents};
pub use network::NetClient;

use crate::paths::DataDir;
use bitswap_client::{BitswapClient, Pending};
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The network's settings (`config.toml` `[p2p]` and `serve` flags).
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce; when any are given, peers are told only these, not the listen ones.
    pub announce: Vec<Multiaddr>,
    /// Neither publish nor subscribe to gossip (sync alone carries everything).
    pub no_gossip: bool,
    /// Time between sync rounds with each connected member.
    pub sync_interval: Duration,
    /// Time between announcements of changed download totals (`crate::usage`).
    pub usage_announce: Duration,
    /// Bytes per second this node sends on fetch/1 and Bitswap; 0 = unlimited.
    pub upload_limit: u64,
    /// Bytes per second the fetch client receives; 0 = unlimited.
    pub download_limit: u64,
    /// Bytes per second Bitswap sends to peers outside the roster together (on top of
    /// `upload_limit`); 0 = unlimited.
    pub public_upload_limit: u64,
}

/// The default of [`P2pConfig::public_upload_limit`]: 16 MB/s (128 Mbit/s), so anyone on the
/// internet can fetch public images but cannot take the institution's whole uplink.
pub const DEFAULT_PUBLIC_UPLOAD_LIMIT: u64 = 16_000_000;

/// The default listen addresses: all interfaces, port 4001, TCP and QUIC.
pub fn default_listen() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The parts of the node the protocols read and write. Each is a narrow handle: the network
/// never sees the HTTP adapter.
#[derive(Debug, Clone)]
pub struct NetParts {
    /// Blocks and blobs served over Bitswap and fetch/1, and where fetched images go.
    pub store: crate::store::Store,
    /// Manifests and rosters exchanged by sync and gossip.
    pub registry: crate::registry::Registry,
    /// Who is a member (kept current here on every roster change).
    pub gate: gate::Gate,
    /// What is private: Bitswap gives private blocks to members only.
    pub visibility: crate::visibility::Visibility,
    /// The federation's access records, exchanged over `/shubnet/access/1`.
    pub access: crate::access::AccessStore,
    /// Download totals exchanged by sync and gossip; `None` when they are off.
    pub usage: Option<crate::usage::UsageStore>,
}

/// Builds the swarm and registers the protocols. The protocol tasks start at once and stop
/// when `stop` is cancelled; the returned [`EventLoop`] must be spawned (its future ends after
/// `stop`, once the tasks have stopped).
pub fn new(
    identity: Keypair,
    cfg: P2pConfig,
    dir: DataDir,
    parts: NetParts,
    stop: CancellationToken,
) -> Result<(NetClient, NetEvents, EventLoop), NetError> {
    let tasks = tasks::Tasks::new(stop);
    let gate = parts.gate.clone();
    let local = identity.public().to_peer_id();
    let federation = gate.federation();
    let mut swarm = swarm::build(
        identity,
        &gate,
        cfg.no_gossip,
        federation.as_deref(),
        &cfg.announce,
    )?;
    let control = swarm.behaviour().stream.new_control();
    let pending = Pending::default();
    let limits = ratelimit::Limits::new(cfg.upload_limit, cfg.download_limit);
    bitswap::serve(
        &tasks,
        control.clone(),
        bitswap::Server {
            store: parts.store.clone(),
            gate: gate.clone(),
            visibility: parts.visibility.clone(),
            upload: limits.upload.clone(),
            public_upload: ratelimit::RateLimit::new(cfg.public_upload_limit),
            budgets: Default::default(),
        },
        pending.clone(),
    )?;
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let bitswap = BitswapClient::new(control.clone(), pending, cmd_tx.clone());
    let peers = peers::PeerBook::default();
    let partials = fetch::Partials::default();
    fetch::server::serve(
        &tasks,
        control.clone(),
        fetch::server::Server {
            gate: gate.clone(),
            store: parts.store.clone(),
            partials: partials.clone(),
            upload: limits.upload.clone(),
            tables: Default::default(),
            buffers: Default::default(),
        },
    )?;
    let fetch = fetch::client::FetchClient {
        control: control.clone(),
        store: parts.store.clone(),
        partials,
        peers: peers.clone(),
        download: limits.download.clone(),
        commands: cmd_tx.clone(),
        buffers: Default::default(),
        sessions: Default::default(),
    };
    fetch::badleaf::serve(
        &tasks,
        control.clone(),
        fetch::badleaf::Server {
            gate: gate.clone(),
            fetch: fetch.clone(),
            budgets: Default::default(),
            replacing: Default::default(),
        },
    )?;
    let (events_tx, events) = events::events();
    let net = NetClient {
        cmds: cmd_tx.clone(),
        peers: peers.clone(),
        gate: gate.clone(),
        local,
        bitswap,
        fetch,
    };
    if let Some(u) = &parts.usage {
        network::spawn_usage_announcer(&tasks, u.clone(), net.clone(), cfg.usage_announce);
    }
    let access = access_sync::AccessCtx {
        control: control.clone(),
        access: parts.access.clone(),
        gate: gate.clone(),
        peers: peers.clone(),
    };
    access_sync::serve(&tasks, access.clone())?;
    access_sync::spawn_pusher(&tasks, access.clone());
    let ctx = anti_entropy::SyncCtx {
        access,
        control,
        registry: parts.registry.clone(),
        store: parts.store.clone(),
        usage: parts.usage.clone(),
        gate: gate.clone(),
        peers: peers.clone(),
        cmds: cmd_tx,
        events: events_tx,
        usage_pulled: Default::default(),
    };
    anti_entropy::serve(&tasks, ctx.clone())?;
    let (sync_tx, sync_rx) = mpsc::channel(256);
    anti_entropy::schedule(&tasks, ctx.clone(), sync_rx, cfg.sync_interval);
    let (inbound_tx, inbound_rx) = mpsc::channel(1024);
    gossip::validate(&tasks, ctx.clone(), inbound_rx, sync_tx.clone());
    network::forward_local_events(&tasks, ctx, net.clone());
    for addr in &cfg.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    for addr in &cfg.announce {
        swarm.add_external_address(addr.clone());
    }
    let mut dialled = HashMap::new();
    for addr in &cfg.bootstrap {
        if let Some(p) = event_loop::peer_of(addr) {
            dialled.insert(p, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    let mut ev = EventLoop {
        swarm,
        local,
        addrbook: addrbook::AddrBook::load(&dir),
        dir,
        gate,
        peers,
        listening: Vec::new(),
        dials: HashMap::new(),
        sync_tx,
        inbound_tx,
        subscribed: None,
        observed: HashMap::new(),
        dialled,
        dial_warned: HashMap::new(),
        connected_as_outsider: HashSet::new(),
        replacing: HashSet::new(),
        commands: cmd_rx,
        tasks,
    };
    ev.roster_changed();
    Ok((net, events, ev))
}
