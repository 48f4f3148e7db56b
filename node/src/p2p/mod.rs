//! The libp2p side of a node: one event loop owns the swarm (TCP and QUIC, noise, yamux,
//! identify, ping, and raw streams), and the stream protocols run as tasks beside it.
//!
//! Built so far: listening and dialling, the Bitswap 1.2.0 *server* ([`bitswap`]), so an
//! unmodified IPFS node (Helia) can fetch any public image by CID, and the Bitswap *client*
//! ([`bitswap_client`]), so this node can fetch a CID from one. Not built yet (issue 4):
//! Kademlia, gossipsub, connection gating to roster members, `/shubnet/sync/1`,
//! `/shubnet/fetch/1`, placement and repair.

mod bitswap;
pub mod bitswap_client;
pub mod fetch;
pub mod peers;
pub mod ratelimit;

use crate::backend::NodeBackend;
use crate::paths::DataDir;
use anyhow::{Context, Result};
use bitswap_client::{BitswapClient, Pending};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, noise, ping, tcp, yamux};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Requests to the event loop, which owns the swarm.
#[derive(Debug)]
pub(crate) enum Command {
    /// Connect to the address (ending in `/p2p/PEER_ID`); answered once connected, at once if
    /// already connected, or with the reason the dial failed.
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, String>>),
    /// Connect again to a peer this node dialled before, at the address it used; answered like
    /// `Dial`.
    Reconnect(PeerId, oneshot::Sender<Result<PeerId, String>>),
}

/// What `serve` passes to the network.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce instead of (in addition to) the observed ones.
    pub announce: Vec<Multiaddr>,
    /// Bytes per second this node sends on fetch/1 and Bitswap; 0 = unlimited.
    pub upload_limit: u64,
    /// Bytes per second the fetch client receives; 0 = unlimited.
    pub download_limit: u64,
}

/// The handles `spawn` returns.
#[derive(Debug)]
pub struct Network {
    /// The event loop task.
    pub task: tokio::task::JoinHandle<()>,
    /// Bitswap client (IPFS peers).
    pub bitswap: BitswapClient,
    /// `/shubnet/fetch/1` client (federation members).
    pub fetch: fetch::client::FetchClient,
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

/// Starts the swarm and its protocols; runs until the returned task is dropped with the runtime.
/// Also returns the Bitswap client handle for fetching from other nodes.
pub fn spawn(
    identity: Keypair,
    cfg: P2pConfig,
    dir: DataDir,
    backend: NodeBackend,
    store: crate::store::Store,
) -> Result<Network> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux_config,
        )
        .context("setting up TCP")?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            // No address cache: a lost connection is redialled at the address this node
            // dialled (`Command::Reconnect`), not at addresses the peer claims for itself.
            identify: identify::Behaviour::new(
                identify::Config::new(AGENT_PROTOCOL.to_string(), key.public()).with_cache_size(0),
            ),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .context("setting up the network behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let control = swarm.behaviour().stream.new_control();
    let peer_id = *swarm.local_peer_id();
    let pending = Pending::default();
    bitswap::serve(control.clone(), backend.clone(), pending.clone())
        .context("registering bitswap")?;
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let book = peers::PeerBook::default();
    let limits = ratelimit::Limits::new(cfg.upload_limit, cfg.download_limit);
    let partials = fetch::Partials::default();
    fetch::server::serve(
        control.clone(),
        fetch::server::Server {
            backend: backend.clone(),
            store: store.clone(),
            partials: partials.clone(),
            upload: limits.upload.clone(),
        },
    )
    .context("registering fetch")?;
    let fetch_client = fetch::client::FetchClient::new(
        control.clone(),
        store,
        partials,
        book.clone(),
        limits.download.clone(),
        cmd_tx.clone(),
    );
    let client = BitswapClient::new(control, pending, cmd_tx);
    for addr in &cfg.listen {
        swarm
            .listen_on(addr.clone())
            .with_context(|| format!("cannot listen on {addr}"))?;
    }
    for addr in &cfg.announce {
        swarm.add_external_address(addr.clone());
    }
    for addr in &cfg.bootstrap {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    let mut known = HashMap::new();
    for addr in &cfg.bootstrap {
        if let Some(p) = peer_of(addr) {
            known.insert(p, addr.clone());
        }
    }
    let task = tokio::spawn(run(swarm, peer_id, dir, cmd_rx, book, known));
    Ok(Network {
        task,
        bitswap: client,
        fetch: fetch_client,
    })
}

type DialWaiters = HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, String>>>>;

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn command(
    swarm: &mut libp2p::Swarm<Behaviour>,
    dials: &mut DialWaiters,
    known: &HashMap<PeerId, Multiaddr>,
    cmd: Command,
) {
    match cmd {
        Command::Reconnect(peer, reply) => {
            if swarm.is_connected(&peer) {
                let _ = reply.send(Ok(peer));
                return;
            }
            let Some(addr) = known.get(&peer) else {
                let _ = reply.send(Err(format!("no known address for {peer}")));
                return;
            };
            match swarm.dial(addr.clone()) {
                Ok(()) => dials.entry(peer).or_default().push(reply),
                Err(e) => {
                    let _ = reply.send(Err(format!("cannot dial {addr}: {e}")));
                }
            }
        }
        Command::Dial(addr, reply) => {
            let Some(peer) = addr.iter().find_map(|p| match p {
                Protocol::P2p(id) => Some(id),
                _ => None,
            }) else {
                let _ = reply.send(Err(format!(
                    "{addr} names no peer id; give the full address ending in /p2p/PEER_ID"
                )));
                return;
            };
            if swarm.is_connected(&peer) {
                let _ = reply.send(Ok(peer));
                return;
            }
            match swarm.dial(addr.clone()) {
                Ok(()) => dials.entry(peer).or_default().push(reply),
                Err(e) => {
                    let _ = reply.send(Err(format!("cannot dial {addr}: {e}")));
                }
            }
        }
    }
}

/// The event loop: it owns the swarm and does no disk or policy work beyond writing the
/// listen addresses for local tools.
async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    peer_id: PeerId,
    dir: DataDir,
    mut commands: mpsc::Receiver<Command>,
    book: peers::PeerBook,
    mut known: HashMap<PeerId, Multiaddr>,
) {
    let mut listening: Vec<Multiaddr> = Vec::new();
    let mut dials = DialWaiters::new();
    loop {
        let event = tokio::select! {
            event = swarm.next() => match event {
                Some(e) => e,
                None => break,
            },
            Some(cmd) = commands.recv() => {
                command(&mut swarm, &mut dials, &known, cmd);
                continue;
            }
        };
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with_p2p(peer_id).unwrap_or_else(|a| a);
                println!("shubnet: p2p listening on {full}");
                tracing::info!(%full, "p2p listening");
                listening.push(full);
                write_addrs(&dir, &listening);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                listening.retain(|a| !a.to_string().starts_with(&address.to_string()));
                write_addrs(&dir, &listening);
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
                peer_id, endpoint, ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                book.connected(peer_id);
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address().clone();
                    let addr = addr.clone().with_p2p(peer_id).unwrap_or(addr);
                    known.insert(peer_id, addr);
                }
                for w in dials.remove(&peer_id).unwrap_or_default() {
                    let _ = w.send(Ok(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, .. } => {
                book.disconnected(peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::warn!(?peer_id, %error, "dial failed");
                if let Some(p) = peer_id {
                    for w in dials.remove(&p).unwrap_or_default() {
                        let _ = w.send(Err(format!("cannot connect to {p}: {error}")));
                    }
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
