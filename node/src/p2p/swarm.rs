//! How the swarm is built: transports (TCP with noise and yamux, QUIC, behind name
//! resolution), and the behaviours (identify, ping, raw streams, gossipsub, Kademlia).
//!
//! It owns the libp2p configuration choices and their reasons. It must not start tasks or
//! decide policy: [`super::new`] wires the result to the protocols and the event loop.

use super::error::NetError;
use super::gate::Gate;
use super::members_only::MembersOnly;
use super::resolve;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade;
use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, kad, noise, ping, tcp};
use std::time::Duration;

/// The identify protocol version string peers see.
const AGENT_PROTOCOL: &str = "/shubnet/0.1.0";

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) stream: libp2p_stream::Behaviour,
    /// Members only: a non-member's gossip stream is refused before a byte of it is read.
    pub(super) gossipsub: Toggle<MembersOnly<gossipsub::Behaviour>>,
    /// Members only, like gossip.
    pub(super) kad: Toggle<MembersOnly<kad::Behaviour<kad::store::MemoryStore>>>,
}

fn gossipsub_behaviour(key: &Keypair) -> Result<gossipsub::Behaviour, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .heartbeat_interval(Duration::from_secs(1))
        .max_transmit_size(shubnet_protocol::roster::MAX_ROSTER_SIZE + 1024)
        .build()
        .map_err(|e| NetError::Gossipsub(e.to_string()))?;
    gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| NetError::Gossipsub(e.to_string()))
}

fn kad_behaviour(
    peer: PeerId,
    federation: Option<&str>,
) -> Result<kad::Behaviour<kad::store::MemoryStore>, NetError> {
    let name = match federation {
        Some(f) => format!("/shubnet/{f}/kad/1.0.0"),
        None => "/shubnet/kad/1.0.0".to_string(),
    };
    let name =
        StreamProtocol::try_from_owned(name).map_err(|e| NetError::ProtocolName(e.to_string()))?;
    let mut cfg = kad::Config::new(name);
    cfg.set_kbucket_inserts(kad::BucketInserts::Manual);
    let mut k = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), cfg);
    k.set_mode(Some(kad::Mode::Server));
    Ok(k)
}

/// TCP (noise; yamux in two configurations, see [`super::muxer`]) and QUIC, behind name
/// resolution ([`resolve`]).
fn transport(
    key: &Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(super::muxer::upgrade())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let quic = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let both = tcp.or_transport(quic).map(|e, _| e.into_inner()).boxed();
    Ok(resolve::SystemDns::new(both).boxed())
}

/// The swarm for `identity`: gossip unless `no_gossip`, Kademlia under the federation's name
/// when known, both open to the members `gate` names only, and identify telling peers only
/// `announce` when any are given.
pub(super) fn build(
    identity: Keypair,
    gate: &Gate,
    no_gossip: bool,
    federation: Option<&str>,
    announce: &[Multiaddr],
) -> Result<libp2p::Swarm<Behaviour>, NetError> {
    let local = identity.public().to_peer_id();
    let gossip = if no_gossip {
        None
    } else {
        Some(MembersOnly::new(
            gossipsub_behaviour(&identity)?,
            gate.clone(),
        ))
    };
    // The protocol name is private to the federation when the node knows it at start. A node
    // started before `federation create/join` uses the generic name until its next restart,
    // so that members who all joined while running still find one another.
    let kad = Some(MembersOnly::new(
        kad_behaviour(local, federation)?,
        gate.clone(),
    ));
    let hide_listen = !announce.is_empty();
    Ok(libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_other_transport(transport)
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|key| Behaviour {
            // No address cache: a lost connection is redialled at the address this node
            // used (`Command::Reconnect`), so a transfer resumes on the same path.
            identify: identify::Behaviour::new(
                identify::Config::new(AGENT_PROTOCOL.to_string(), key.public())
                    .with_cache_size(0)
                    // Announced addresses replace the listen ones: an operator who names the
                    // public or proxied path does not want peers routing around it.
                    .with_hide_listen_addrs(hide_listen),
            ),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
            gossipsub: Toggle::from(gossip),
            kad: Toggle::from(kad),
        })
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build())
}
