//! The swarm's event loop: the one task that owns the libp2p swarm. It dials, listens,
//! publishes gossip, keeps the address book and hands streams' peers to the protocol tasks.
//!
//! It does no policy beyond membership (read from the [`Gate`]) and no disk work beyond two
//! small files (`p2p.addrs` for local tools, `p2p.peers` for reconnecting). It must not reach
//! the registry, the store or anything HTTP: protocol work runs in the protocol tasks.

use super::command::{Command, DialFailure};
use super::swarm::{Behaviour, BehaviourEvent};
use super::tasks::Tasks;
use super::{addrbook, gate::Gate, gossip, peers};
use crate::paths::DataDir;
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::identify;
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often the loop checks for members to (re)dial.
const RECONNECT_TICK: Duration = Duration::from_secs(1);

pub(super) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

type DialWaiters = HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, DialFailure>>>>;

/// Owns the swarm; does no policy beyond membership, and no disk work beyond two small files
/// (`p2p.addrs` for local tools, `p2p.peers` for reconnecting).
pub struct EventLoop {
    pub(super) swarm: libp2p::Swarm<Behaviour>,
    pub(super) local: PeerId,
    pub(super) dir: DataDir,
    pub(super) addrbook: addrbook::AddrBook,
    pub(super) gate: Gate,
    pub(super) peers: peers::PeerBook,
    pub(super) listening: Vec<Multiaddr>,
    pub(super) dials: DialWaiters,
    /// Peers to run a sync round with now.
    pub(super) sync_tx: mpsc::Sender<PeerId>,
    /// Gossip messages waiting for validation.
    pub(super) inbound_tx: mpsc::Sender<gossip::Inbound>,
    /// The gossip topics subscribed to: the federation's topic and its extension topic.
    pub(super) subscribed: Option<(gossipsub::IdentTopic, gossipsub::IdentTopic)>,
    /// Addresses of connected peers (identify, dialled address), members or not yet: a peer
    /// that becomes a member while connected goes into the address book from here.
    pub(super) observed: HashMap<PeerId, Vec<Multiaddr>>,
    /// The address this node last dialled each peer at (bootstrap, `Dial`), for `Reconnect`.
    pub(super) dialled: HashMap<PeerId, Multiaddr>,
    /// The last dial failure logged at WARN per peer, so a peer redialled with backoff warns
    /// once per distinct reason, not once a minute.
    pub(super) dial_warned: HashMap<PeerId, String>,
    /// Peers connected while they were not members: the members-only protocols (gossip,
    /// Kademlia) were refused to them on that connection, and the peer's side may have given
    /// up on them there, so the connection is replaced once the roster admits the peer.
    pub(super) connected_as_outsider: HashSet<PeerId>,
    /// Peers whose connection is being replaced: redialled as soon as it has closed.
    pub(super) replacing: HashSet<PeerId>,
    /// Requests from the rest of the node ([`NetClient`](super::NetClient) and the protocols).
    pub(super) commands: mpsc::Receiver<Command>,
    /// The protocol tasks, stopped with the loop.
    pub(super) tasks: Tasks,
}

impl EventLoop {
    /// Runs until the node's network stop token is cancelled, then stops the protocol tasks
    /// and waits for them (bounded), so nothing of the network outlives this future.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(RECONNECT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.tasks.token();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                event = self.swarm.next() => match event {
                    Some(e) => self.event(e),
                    None => break,
                },
                Some(cmd) = self.commands.recv() => self.command(cmd),
                _ = tick.tick() => self.reconnect(),
            }
        }
        for (_, waiters) in self.dials.drain() {
            for w in waiters {
                let _ = w.send(Err(DialFailure::Stopped));
            }
        }
        self.tasks.stop().await;
        let _ = std::fs::remove_file(self.dir.p2p_addrs());
        tracing::info!("p2p network stopped");
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(addr, reply) => self.dial(addr, reply),
            Command::Publish(a) => {
                let Some((main, extension)) = self.subscribed.clone() else {
                    tracing::debug!("not publishing: gossip off or no federation yet");
                    return;
                };
                let topic = if a.is_extension() { extension } else { main };
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
                                let _ = reply.send(Err(DialFailure::Failed {
                                    target: peer.to_string(),
                                    reason: e.to_string(),
                                }));
                            }
                        }
                    }
                }
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, DialFailure>>) {
        let Some(peer) = peer_of(&addr) else {
            let _ = reply.send(Err(DialFailure::NoPeerId { addr }));
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
                let _ = reply.send(Err(DialFailure::Failed {
                    target: addr.to_string(),
                    reason: e.to_string(),
                }));
            }
        }
    }

    /// The roster changed (or the node joined): subscribe to the federation's topic, let new
    /// members' gossip in and keep non-members' out, and sync with connected members.
    pub(super) fn roster_changed(&mut self) {
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
            let (topic, extension) = (gossip::topic(fed), gossip::extension_topic(fed));
            match g.subscribe(&topic).and_then(|_| g.subscribe(&extension)) {
                Ok(_) => {
                    tracing::info!(topic = %topic, "gossip subscribed");
                    self.subscribed = Some((topic, extension));
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
                let addrs = self.observed.get(&p).cloned().unwrap_or_default();
                self.learn_addrs(p, addrs);
                if self.connected_as_outsider.remove(&p) {
                    // Its sync round runs on the new connection (`ConnectionEstablished`).
                    tracing::debug!(peer = %p, "replacing the connection of a newly admitted member");
                    self.replacing.insert(p);
                    let _ = self.swarm.disconnect_peer_id(p);
                } else {
                    let _ = self.sync_tx.try_send(p);
                }
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
                } else {
                    self.connected_as_outsider.insert(peer_id);
                    if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                        g.blacklist_peer(&peer_id);
                    }
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
                    self.connected_as_outsider.remove(&peer_id);
                    if self.replacing.remove(&peer_id) {
                        self.addrbook.clear_backoff(&peer_id);
                        self.reconnect();
                    } else {
                        self.addrbook.disconnected(peer_id, Instant::now());
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.dial_failed(peer_id, &error);
                if let Some(p) = peer_id {
                    for w in self.dials.remove(&p).unwrap_or_default() {
                        let _ = w.send(Err(DialFailure::Failed {
                            target: p.to_string(),
                            reason: error.to_string(),
                        }));
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

pub(super) fn write_addrs(dir: &DataDir, addrs: &[Multiaddr]) {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    if let Err(e) = crate::durable::replace(
        &dir.p2p_addrs(),
        text.as_bytes(),
        crate::durable::Mode::Shared,
    ) {
        tracing::warn!(error = %e, "cannot write p2p.addrs");
    }
}
