//! The libp2p side of a node: one event loop owns the swarm (TCP and QUIC, noise, yamux,
//! identify, ping, and raw streams), and the stream protocols run as tasks beside it.
//!
//! Built so far: listening and dialling, and the Bitswap 1.2.0 *server* ([`bitswap`]), so an
//! unmodified IPFS node (Helia) can fetch any public image by CID. Not built yet (issue 4):
//! Kademlia, gossipsub, connection gating to roster members, `/shubnet/sync/1`,
//! `/shubnet/fetch/1`, the bitswap client, placement and repair.

mod bitswap;

use crate::backend::NodeBackend;
use crate::paths::DataDir;
use anyhow::{Context, Result};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, noise, ping, tcp, yamux};
use std::time::Duration;

/// What `serve` passes to the network.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce instead of (in addition to) the observed ones.
    pub announce: Vec<Multiaddr>,
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

/// Starts the swarm and its protocols; runs until the returned task is dropped with the runtime.
pub fn spawn(
    identity: Keypair,
    cfg: P2pConfig,
    dir: DataDir,
    backend: NodeBackend,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .context("setting up TCP")?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                AGENT_PROTOCOL.to_string(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .context("setting up the network behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let control = swarm.behaviour().stream.new_control();
    let peer_id = *swarm.local_peer_id();
    bitswap::serve(control, backend).context("registering bitswap")?;
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
    Ok(tokio::spawn(run(swarm, peer_id, dir)))
}

/// The event loop: it owns the swarm and does no disk or policy work beyond writing the
/// listen addresses for local tools.
async fn run(mut swarm: libp2p::Swarm<Behaviour>, peer_id: PeerId, dir: DataDir) {
    let mut listening: Vec<Multiaddr> = Vec::new();
    while let Some(event) = swarm.next().await {
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
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::warn!(?peer_id, %error, "dial failed");
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
