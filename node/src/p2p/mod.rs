//! The libp2p side of a node: one event loop owns the swarm (TCP and QUIC, noise, yamux,
//! identify, ping, and raw streams), and the stream protocols run as tasks beside it.
//!
//! - Bitswap 1.2.0 server ([`bitswap`]) and client ([`bitswap_client`]), open to any IPFS node.
//! - Gossipsub on `/shubnet/<federation id>/announce` ([`gossip`]): new manifests, roster
//!   versions, holdings; strict validation through the registry.
//! - Kademlia under `/shubnet/<federation id>/kad/1.0.0`, server mode, routing table fed only
//!   with members' addresses (from identify), for finding members' addresses. Its protocol
//!   name needs the federation id, so it runs from the first start after create/join.
//! - `/shubnet/sync/1` anti-entropy ([`sync`]).
//! - Gating to the newest roster ([`gate`]), and reconnecting to members with backoff from
//!   persisted addresses ([`addrbook`]); names in addresses resolved at every dial
//!   ([`resolve`]).
//!
//! - `/shubnet/fetch/1` bulk transfer ([`fetch`]) with per-node rate limits ([`ratelimit`]).
//!
//! The rest of the node uses the [`Network`] handle; placement and repair live in
//! `crate::replication`.

mod addrbook;
pub mod anti_entropy;
mod bitswap;
pub mod bitswap_client;
pub mod fetch;
pub mod gate;
pub mod gossip;
mod network;
pub mod peers;
pub mod ratelimit;
mod resolve;

pub use network::Network;

use crate::http::backend::NodeBackend;
use crate::paths::DataDir;
use anyhow::{Context, Result};
use bitswap_client::{BitswapClient, Pending};
use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade;
use libp2p::gossipsub::{self, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, kad, noise, ping, tcp, yamux};
use shubnet_protocol::sync::Announcement;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Requests to the event loop, which owns the swarm.
#[derive(Debug)]
pub(crate) enum Command {
    /// Connect to the address (ending in `/p2p/PEER_ID`); answered once connected, at once if
    /// already connected, or with the reason the dial failed.
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, String>>),
    /// Gossip this on the federation topic.
    Publish(Announcement),
    /// The verdict on a gossip message.
    Validated {
        /// Gossipsub's id.
        id: MessageId,
        /// Who forwarded it.
        propagation: PeerId,
        /// Forward it, drop it, or drop it and penalise the sender.
        acceptance: MessageAcceptance,
    },
    /// The gate's roster changed: resubscribe, unblacklist new members, dial them.
    RosterChanged,
    /// Connect again to a peer this node dialled before, at the address it used (so a transfer
    /// resumes on the same path); answered like `Dial`.
    Reconnect(PeerId, oneshot::Sender<Result<PeerId, String>>),
}

/// The handles `spawn` returns.
#[derive(Debug)]
pub struct Spawned {
    /// The event loop task.
    pub task: tokio::task::JoinHandle<()>,
    /// Bitswap client (IPFS peers).
    pub bitswap: BitswapClient,
    /// `/shubnet/fetch/1` client (federation members).
    pub fetch: fetch::client::FetchClient,
}

/// What `serve` passes to the network.
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
}

/// The default listen addresses: all interfaces, port 4001, TCP and QUIC.
pub fn default_listen() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The identify protocol version string peers see.
const AGENT_PROTOCOL: &str = "/shubnet/0.1.0";

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
    gossipsub: Toggle<gossipsub::Behaviour>,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
}

/// How often the loop checks for members to (re)dial.
const RECONNECT_TICK: Duration = Duration::from_secs(1);

fn gossipsub_behaviour(key: &Keypair) -> Result<gossipsub::Behaviour> {
    let config = gossipsub::ConfigBuilder::default()
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .heartbeat_interval(Duration::from_secs(1))
        .max_transmit_size(shubnet_protocol::roster::MAX_ROSTER_SIZE + 1024)
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
    gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))
}

fn kad_behaviour(
    peer: PeerId,
    federation: Option<&str>,
) -> Result<kad::Behaviour<kad::store::MemoryStore>> {
    let name = match federation {
        Some(f) => format!("/shubnet/{f}/kad/1.0.0"),
        None => "/shubnet/kad/1.0.0".to_string(),
    };
    let name = StreamProtocol::try_from_owned(name)
        .map_err(|e| anyhow::anyhow!("kad protocol name: {e}"))?;
    let mut cfg = kad::Config::new(name);
    cfg.set_kbucket_inserts(kad::BucketInserts::Manual);
    let mut k = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), cfg);
    k.set_mode(Some(kad::Mode::Server));
    Ok(k)
}

/// Streams per yamux connection. Chosen for its side effect: rust-yamux grows a stream's receive
/// window up to what the connection window (1 GiB, not configurable through libp2p-yamux)
/// leaves over `256 KiB × max_num_streams`, and js-yamux (Helia) sends frames as large as that
/// window while rust-yamux refuses frames over 1 MiB (`FrameTooLarge`, which kills the whole
/// connection). With 4094 streams the extra is 512 KiB, so no window passes 768 KiB.
const YAMUX_MAX_STREAMS: usize = 4094;

fn yamux_config() -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_max_num_streams(YAMUX_MAX_STREAMS);
    c
}

/// TCP (noise, yamux) and QUIC, behind name resolution ([`resolve`]).
fn transport(
    key: &Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux_config())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let quic = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let both = tcp.or_transport(quic).map(|e, _| e.into_inner()).boxed();
    Ok(resolve::SystemDns::new(both).boxed())
}

/// Starts the swarm and its protocols; runs until the returned task is dropped with the runtime.
/// Also returns the Bitswap client handle for fetching from other nodes, and gives `backend`
/// the [`Network`] handle (`NodeBackend::network`).
pub fn spawn(
    identity: Keypair,
    cfg: P2pConfig,
    dir: DataDir,
    backend: NodeBackend,
    store: crate::store::Store,
) -> Result<Spawned> {
    let gate = gate::Gate::default();
    gate.refresh(backend.registry());
    let local = identity.public().to_peer_id();
    let gossip = if cfg.no_gossip {
        None
    } else {
        Some(gossipsub_behaviour(&identity)?)
    };
    // The protocol name is private to the federation when the node knows it at start. A node
    // started before `federation create/join` uses the generic name until its next restart,
    // so that members who all joined while running still find one another.
    let kad = Some(kad_behaviour(local, gate.federation().as_deref())?);
    let announce = cfg.announce.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_other_transport(transport)
        .context("setting up TCP and QUIC")?
        .with_behaviour(|key| Behaviour {
            // No address cache: a lost connection is redialled at the address this node
            // used (`Command::Reconnect`), so a transfer resumes on the same path.
            identify: identify::Behaviour::new(
                identify::Config::new(AGENT_PROTOCOL.to_string(), key.public())
                    .with_cache_size(0)
                    // Announced addresses replace the listen ones: an operator who names the
                    // public or proxied path does not want peers routing around it.
                    .with_hide_listen_addrs(!announce.is_empty()),
            ),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
            gossipsub: Toggle::from(gossip),
            kad: Toggle::from(kad),
        })
        .context("setting up the network behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let control = swarm.behaviour().stream.new_control();
    let pending = Pending::default();
    let limits = ratelimit::Limits::new(cfg.upload_limit, cfg.download_limit);
    bitswap::serve(
        control.clone(),
        backend.clone(),
        pending.clone(),
        limits.upload.clone(),
    )
    .context("registering bitswap")?;
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let client = BitswapClient::new(control.clone(), pending, cmd_tx.clone());
    let peers = peers::PeerBook::default();
    let partials = fetch::Partials::default();
    fetch::server::serve(
        control.clone(),
        fetch::server::Server {
            backend: backend.clone(),
            store: store.clone(),
            partials: partials.clone(),
            upload: limits.upload.clone(),
            tables: Default::default(),
            buffers: Default::default(),
        },
    )
    .context("registering fetch")?;
    let fetch_client = fetch::client::FetchClient::new(
        control.clone(),
        store,
        partials,
        peers.clone(),
        limits.download.clone(),
        cmd_tx.clone(),
    );
    let net = Network::new(cmd_tx.clone(), peers.clone(), gate.clone(), local);
    backend.set_network(net.clone());
    if let Some(u) = backend.usage_store() {
        crate::usage::spawn_announcer(u.clone(), net.clone(), cfg.usage_announce);
    }
    let ctx = anti_entropy::SyncCtx {
        control,
        backend,
        gate: gate.clone(),
        peers: peers.clone(),
        cmds: cmd_tx,
        usage_pulled: Default::default(),
    };
    anti_entropy::serve(ctx.clone()).context("registering sync")?;
    let (sync_tx, sync_rx) = mpsc::channel(256);
    anti_entropy::schedule(ctx.clone(), sync_rx, cfg.sync_interval);
    let (inbound_tx, inbound_rx) = mpsc::channel(1024);
    gossip::validate(ctx.clone(), inbound_rx, sync_tx.clone());
    network::forward_local_events(ctx, net);
    for addr in &cfg.listen {
        swarm
            .listen_on(addr.clone())
            .with_context(|| format!("cannot listen on {addr}"))?;
    }
    for addr in &cfg.announce {
        swarm.add_external_address(addr.clone());
    }
    let mut dialled = HashMap::new();
    for addr in &cfg.bootstrap {
        if let Some(p) = peer_of(addr) {
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
        dials: DialWaiters::new(),
        sync_tx,
        inbound_tx,
        subscribed: None,
        observed: HashMap::new(),
        dialled,
        dial_warned: HashMap::new(),
    };
    ev.roster_changed();
    Ok(Spawned {
        task: tokio::spawn(ev.run(cmd_rx)),
        bitswap: client,
        fetch: fetch_client,
    })
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

type DialWaiters = HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, String>>>>;

/// Owns the swarm; does no policy beyond membership, and no disk work beyond two small files
/// (`p2p.addrs` for local tools, `p2p.peers` for reconnecting).
struct EventLoop {
    swarm: libp2p::Swarm<Behaviour>,
    local: PeerId,
    dir: DataDir,
    addrbook: addrbook::AddrBook,
    gate: gate::Gate,
    peers: peers::PeerBook,
    listening: Vec<Multiaddr>,
    dials: DialWaiters,
    /// Peers to run a sync round with now.
    sync_tx: mpsc::Sender<PeerId>,
    /// Gossip messages waiting for validation.
    inbound_tx: mpsc::Sender<gossip::Inbound>,
    /// The gossip topic subscribed to.
    subscribed: Option<gossipsub::IdentTopic>,
    /// Addresses of connected peers (identify, dialled address), members or not yet: a peer
    /// that becomes a member while connected goes into the address book from here.
    observed: HashMap<PeerId, Vec<Multiaddr>>,
    /// The address this node last dialled each peer at (bootstrap, `Dial`), for `Reconnect`.
    dialled: HashMap<PeerId, Multiaddr>,
    /// The last dial failure logged at WARN per peer, so a peer redialled with backoff warns
    /// once per distinct reason, not once a minute.
    dial_warned: HashMap<PeerId, String>,
}

impl EventLoop {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(RECONNECT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.next() => match event {
                    Some(e) => self.event(e),
                    None => break,
                },
                Some(cmd) = commands.recv() => self.command(cmd),
                _ = tick.tick() => self.reconnect(),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(addr, reply) => self.dial(addr, reply),
            Command::Publish(a) => {
                let Some(topic) = self.subscribed.clone() else {
                    tracing::debug!("not publishing: gossip off or no federation yet");
                    return;
                };
                if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                    match g.publish(topic, a.encode()) {
                        Ok(_) => tracing::debug!("announced"),
                        Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                            tracing::debug!("no peer to announce to yet; sync will carry it");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot announce"),
                    }
                }
            }
            Command::Validated {
                id,
                propagation,
                acceptance,
            } => {
                if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                    g.report_message_validation_result(&id, &propagation, acceptance);
                }
            }
            Command::RosterChanged => self.roster_changed(),
            Command::Reconnect(peer, reply) => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                match self.dialled.get(&peer).cloned() {
                    Some(addr) => self.dial(addr, reply),
                    None => {
                        // Not dialled by address before: let the swarm use what it knows
                        // (Kademlia, the address book).
                        match self.swarm.dial(peer) {
                            Ok(()) => self.dials.entry(peer).or_default().push(reply),
                            Err(e) => {
                                let _ = reply.send(Err(format!("cannot dial {peer}: {e}")));
                            }
                        }
                    }
                }
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, String>>) {
        let Some(peer) = peer_of(&addr) else {
            let _ = reply.send(Err(format!(
                "{addr} names no peer id; give the full address ending in /p2p/PEER_ID"
            )));
            return;
        };
        self.dialled.insert(peer, addr.clone());
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(peer));
            return;
        }
        match self.swarm.dial(addr.clone()) {
            Ok(()) => self.dials.entry(peer).or_default().push(reply),
            Err(e) => {
                let _ = reply.send(Err(format!("cannot dial {addr}: {e}")));
            }
        }
    }

    /// The roster changed (or the node joined): subscribe to the federation's topic, let new
    /// members' gossip in and keep non-members' out, and sync with connected members.
    fn roster_changed(&mut self) {
        let state = self.gate.state();
        // Only a member subscribes: a node that copied the roster without being admitted
        // neither receives nor sends gossip.
        let admitted = state.members.contains(&self.local);
        if let (Some(fed), Some(g)) = (
            &state.federation,
            self.swarm.behaviour_mut().gossipsub.as_mut(),
        ) && self.subscribed.is_none()
            && admitted
        {
            let topic = gossip::topic(fed);
            match g.subscribe(&topic) {
                Ok(_) => {
                    tracing::info!(topic = %topic, "gossip subscribed");
                    self.subscribed = Some(topic);
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to gossip"),
            }
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            let member = state.members.contains(&p);
            if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                if member {
                    g.remove_blacklisted_peer(&p);
                } else {
                    g.blacklist_peer(&p);
                }
            }
            if member {
                let _ = self.sync_tx.try_send(p);
                let addrs = self.observed.get(&p).cloned().unwrap_or_default();
                self.learn_addrs(p, addrs);
            }
        }
        if self.addrbook.retain(&state.members) {
            self.addrbook.save();
        }
    }

    /// Dials members that are not connected, with backoff; asks Kademlia for members whose
    /// addresses are unknown.
    fn reconnect(&mut self) {
        let now = Instant::now();
        let members = self.gate.state().members;
        for m in members {
            if m == self.local || self.swarm.is_connected(&m) {
                continue;
            }
            // The address this node chose to dial (bootstrap, `Dial`) comes first: it is the
            // operator's path to that peer (a proxy, a tunnel), not just one it announced.
            let addrs = match self.dialled.get(&m) {
                Some(a) => vec![a.clone()],
                None => self.addrbook.addrs(&m),
            };
            let cap = if addrs.is_empty() {
                addrbook::MAX_SEARCH_BACKOFF
            } else {
                addrbook::MAX_BACKOFF
            };
            if !self.addrbook.due(m, now, cap) {
                continue;
            }
            if addrs.is_empty() {
                if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                    k.get_closest_peers(m);
                }
                continue;
            }
            let opts = DialOpts::peer_id(m)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(peer = %m, error = %e, "cannot dial member");
            }
        }
    }

    fn learn_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        // A peer this node was told to reach at a given address (bootstrap, `Dial`) is reached
        // there only: its own claims (identify, Kademlia) must not route around that path.
        let addrs = match self.dialled.get(&peer) {
            Some(a) => vec![a.clone()],
            None => addrs,
        };
        if self.swarm.is_connected(&peer) {
            let seen = self.observed.entry(peer).or_default();
            for a in &addrs {
                if !seen.contains(a) && seen.len() < 16 {
                    seen.push(a.clone());
                }
            }
        }
        if !self.gate.is_member(&peer) || peer == self.local {
            return;
        }
        if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
            for a in &addrs {
                k.add_address(&peer, a.clone());
            }
        }
        if self.addrbook.add(peer, addrs) {
            self.addrbook.save();
            if !self.swarm.is_connected(&peer) {
                self.addrbook.clear_backoff(&peer);
            }
        }
    }

    /// Logs a failed dial: at WARN, with the reason, when an address could not be dialled
    /// (unresolvable name, unsupported address, refused, wrong peer) and the reason is new for
    /// that peer; at debug otherwise (a dial cancelled because a connection already exists).
    fn dial_failed(&mut self, peer: Option<PeerId>, error: &DialError) {
        let undialable = matches!(
            error,
            DialError::Transport(_) | DialError::WrongPeerId { .. }
        );
        if !undialable {
            tracing::debug!(?peer, %error, "dial failed");
            return;
        }
        let why = error.to_string();
        match peer {
            Some(p) if self.dial_warned.get(&p) == Some(&why) => {
                tracing::debug!(peer = %p, error = %why, "dial failed again");
            }
            Some(p) => {
                tracing::warn!(peer = %p, error = %why, "cannot dial peer");
                self.dial_warned.insert(p, why);
            }
            None => tracing::warn!(error = %why, "cannot dial address"),
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with_p2p(self.local).unwrap_or_else(|a| a);
                println!("shubnet: p2p listening on {full}");
                tracing::info!(%full, "p2p listening");
                self.listening.push(full);
                write_addrs(&self.dir, &self.listening);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listening
                    .retain(|a| !a.to_string().starts_with(&address.to_string()));
                write_addrs(&self.dir, &self.listening);
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::error!(%error, "p2p listener failed");
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::error!(?addresses, ?reason, "p2p listener closed");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                self.peers.connected(peer_id);
                self.addrbook.clear_backoff(&peer_id);
                self.dial_warned.remove(&peer_id);
                for w in self.dials.remove(&peer_id).unwrap_or_default() {
                    let _ = w.send(Ok(peer_id));
                }
                if endpoint.is_dialer() {
                    self.learn_addrs(peer_id, vec![endpoint.get_remote_address().clone()]);
                }
                if self.gate.is_member(&peer_id) {
                    if num_established.get() == 1 {
                        let _ = self.sync_tx.try_send(peer_id);
                    }
                } else if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                    g.blacklist_peer(&peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.peers.disconnected(peer_id);
                if num_established == 0 {
                    self.observed.remove(&peer_id);
                    self.addrbook.disconnected(peer_id, Instant::now());
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.dial_failed(peer_id, &error);
                if let Some(p) = peer_id {
                    for w in self.dials.remove(&p).unwrap_or_default() {
                        let _ = w.send(Err(format!("cannot connect to {p}: {error}")));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.learn_addrs(peer_id, info.listen_addrs),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let inbound = gossip::Inbound {
                    id: message_id.clone(),
                    propagation: propagation_source,
                    source: message.source,
                    data: message.data,
                };
                if self.inbound_tx.try_send(inbound).is_err()
                    && let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut()
                {
                    // Too many waiting: drop it; sync will carry it.
                    g.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Ignore,
                    );
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                ..
            })) => {
                for p in ok.peers {
                    self.learn_addrs(p.peer_id, p.addrs);
                }
            }
            other => tracing::trace!(?other, "swarm event"),
        }
    }
}

fn write_addrs(dir: &DataDir, addrs: &[Multiaddr]) {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    let tmp = dir.root().join("p2p.addrs.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, dir.p2p_addrs()))
    {
        tracing::warn!(error = %e, "cannot write p2p.addrs");
    }
}

/// The protocol id as libp2p wants it.
fn protocol(name: &'static str) -> StreamProtocol {
    StreamProtocol::new(name)
}
