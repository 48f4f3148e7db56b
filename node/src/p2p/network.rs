//! [`NetClient`]: the handle the rest of the node uses to talk to the federation (announce,
//! look up peers, fetch over Bitswap and fetch/1); [`NetEvents`]: what the network tells the
//! rest of the node; and the glue that turns this node's own registry events into
//! announcements.
//!
//! It owns no state of its own beyond channels; it must not reach the HTTP adapter.

use super::anti_entropy::SyncCtx;
use super::bitswap_client::BitswapClient;
use super::command::Command;
use super::fetch::client::FetchClient;
use super::gate::Gate;
use super::peers::PeerBook;
use super::tasks::Tasks;
use crate::registry::LocalEvent;
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::sync::Announcement;
use tokio::sync::mpsc;

/// A cheap-to-clone handle to the swarm loop and the transfer clients.
#[derive(Debug, Clone)]
pub struct NetClient {
    pub(super) cmds: mpsc::Sender<Command>,
    pub(super) peers: PeerBook,
    pub(super) gate: Gate,
    pub(super) local: PeerId,
    pub(super) bitswap: BitswapClient,
    pub(super) fetch: FetchClient,
}

impl NetClient {
    /// The Bitswap client (fetches from any IPFS peer, by address).
    pub fn bitswap(&self) -> &BitswapClient {
        &self.bitswap
    }

    /// The `/shubnet/fetch/1` client (fetches from members).
    pub fn fetch(&self) -> &FetchClient {
        &self.fetch
    }

    fn publish(&self, a: Announcement) {
        if let Err(e) = self.cmds.try_send(Command::Publish(a)) {
            tracing::warn!(error = %e, "announcement dropped (the network is busy or stopped); sync will carry it");
        }
    }

    /// Gossips a manifest this node accepted (push or delete).
    pub fn announce_manifest(&self, bytes: Vec<u8>) {
        self.publish(Announcement::Manifest(bytes));
    }

    /// Gossips a roster version this node accepted.
    pub fn announce_roster(&self, bytes: Vec<u8>) {
        self.publish(Announcement::Roster(bytes));
    }

    /// Gossips that this node now holds `root` completely.
    pub fn announce_holding(&self, root: Cid) {
        self.publish(Announcement::Holding(root));
    }

    /// Gossips that this node is leaving the federation (repeated while it drains).
    pub fn announce_leaving(&self) {
        self.publish(Announcement::Leaving);
    }

    /// Gossips this node's download totals (advisory; see `crate::usage`).
    pub fn announce_usage(&self, totals: Vec<(Cid, u64)>) {
        self.publish(Announcement::Usage(totals));
    }

    /// The shared peer table.
    pub fn peer_book(&self) -> &PeerBook {
        &self.peers
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Peers with an open connection.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.peers.connected_peers()
    }

    /// True if `peer` is a node of a member in the newest roster known.
    pub fn is_member(&self, peer: &PeerId) -> bool {
        self.gate.is_member(peer)
    }

    /// Why this node cannot serve the federation now, if it cannot: it is a member of a
    /// federation with other member nodes and is connected to none of them, so it sees no new
    /// manifests and can fetch no image it does not hold.
    pub fn isolation(&self) -> Option<String> {
        let state = self.gate.state();
        state.federation.as_ref()?;
        if !state.members.contains(&self.local) {
            return None;
        }
        let others = state.members.iter().filter(|p| **p != self.local).count();
        if others == 0 {
            return None;
        }
        let connected = self
            .peers
            .connected_peers()
            .iter()
            .filter(|p| state.members.contains(p))
            .count();
        (connected == 0).then(|| {
            format!(
                "isolated: connected to none of the federation's {others} other member node(s); \
                 check --bootstrap, the p2p port and the logs' 'cannot dial' warnings"
            )
        })
    }
}

/// Announces what this node itself publishes and keeps the gate current after local roster
/// changes (create, join, admit, sign).
pub(super) fn forward_local_events(tasks: &Tasks, ctx: SyncCtx, net: NetClient) {
    let mut events = ctx.registry.local_events();
    tasks.spawn(async move {
        loop {
            match events.recv().await {
                Ok(LocalEvent::Manifest(b)) => net.announce_manifest(b),
                Ok(LocalEvent::Roster(b)) => {
                    // Announce before the gate changes: a roster that removes this node would
                    // otherwise unsubscribe it before its own announcement went out.
                    net.announce_roster(b);
                    ctx.roster_changed().await;
                }
                Ok(LocalEvent::Federation) => ctx.roster_changed().await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "local events missed; sync will carry them");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Announces this node's changed download totals over gossip every `every`, in messages of at
/// most `MAX_USAGE_ENTRIES` roots. The first round sends every total.
pub(super) fn spawn_usage_announcer(
    tasks: &Tasks,
    usage: crate::usage::UsageStore,
    net: NetClient,
    every: std::time::Duration,
) {
    tasks.spawn(async move {
        let mut last: std::collections::HashMap<Cid, u64> = Default::default();
        loop {
            tokio::time::sleep(every).await;
            let u = usage.clone();
            let Ok(Ok(totals)) = tokio::task::spawn_blocking(move || u.local_totals()).await else {
                continue;
            };
            // Only what changed since the last round (receivers keep the latest totals).
            let changed: Vec<(Cid, u64)> = totals
                .into_iter()
                .filter(|(c, n)| last.get(c) != Some(n))
                .collect();
            for chunk in changed.chunks(shubnet_protocol::sync::MAX_USAGE_ENTRIES) {
                net.announce_usage(chunk.to_vec());
            }
            last.extend(changed);
        }
    });
}
