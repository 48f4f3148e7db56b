//! What this node knows about other nodes: who is connected, when each was last seen, which
//! images each says it holds, and how often each misbehaved.
//!
//! One shared table, so the swarm loop (connections), sync and gossip (holdings), the bulk
//! fetcher (misbehaviour) and replication (liveness, placement) all read the same facts without
//! talking to each other. Kept in memory only: after a restart it refills within one sync round.
//! It records what others report; it must not do I/O or act on the facts (placement, dropping
//! a misbehaving holder) itself.

use libp2p::PeerId;
use shubnet_protocol::Cid;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One peer's entry.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// Open connections right now.
    pub connections: u32,
    /// When a connection was last open (or a message last arrived); `None` if never.
    pub last_seen: Option<Instant>,
    /// Image roots the peer last announced it holds completely.
    pub holdings: BTreeSet<Cid>,
    /// When the holdings were last announced.
    pub holdings_at: Option<Instant>,
    /// Wrong blocks, bad messages and the like, since start.
    pub misbehaviour: u64,
    /// When the peer last announced it is leaving the federation (`shubnet leave`).
    pub leaving_at: Option<Instant>,
}

/// The shared peer table; clones share it.
#[derive(Debug, Clone, Default)]
pub struct PeerBook(Arc<Mutex<HashMap<PeerId, PeerInfo>>>);

impl PeerBook {
    fn lock(&self) -> MutexGuard<'_, HashMap<PeerId, PeerInfo>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new connection to `peer`.
    pub fn connected(&self, peer: PeerId) {
        let mut map = self.lock();
        let e = map.entry(peer).or_default();
        e.connections += 1;
        e.last_seen = Some(Instant::now());
    }

    /// Records that one connection to `peer` closed.
    pub fn disconnected(&self, peer: PeerId) {
        let mut map = self.lock();
        let e = map.entry(peer).or_default();
        e.connections = e.connections.saturating_sub(1);
        e.last_seen = Some(Instant::now());
    }

    /// Records that `peer` proved itself alive (a message, a served request).
    pub fn seen(&self, peer: PeerId) {
        self.lock().entry(peer).or_default().last_seen = Some(Instant::now());
    }

    /// Replaces what `peer` says it holds.
    pub fn set_holdings(&self, peer: PeerId, roots: impl IntoIterator<Item = Cid>) {
        let mut map = self.lock();
        let e = map.entry(peer).or_default();
        e.holdings = roots.into_iter().collect();
        e.holdings_at = Some(Instant::now());
        e.last_seen = Some(Instant::now());
    }

    /// Adds one root to what `peer` holds (it announced a new copy).
    pub fn add_holding(&self, peer: PeerId, root: Cid) {
        let mut map = self.lock();
        let e = map.entry(peer).or_default();
        e.holdings.insert(root);
        e.last_seen = Some(Instant::now());
    }

    /// Records that `peer` announced it is leaving: placement skips it from now on.
    pub fn leaving(&self, peer: PeerId) {
        let mut map = self.lock();
        let e = map.entry(peer).or_default();
        e.leaving_at = Some(Instant::now());
        e.last_seen = Some(Instant::now());
    }

    /// True if `peer` announced within `ttl` that it is leaving. The mark lapses unless the
    /// peer repeats it, so a node that changed its mind (or was restarted without leaving) is
    /// placed again.
    pub fn is_leaving(&self, peer: &PeerId, ttl: Duration) -> bool {
        self.lock()
            .get(peer)
            .and_then(|i| i.leaving_at)
            .is_some_and(|t| t.elapsed() <= ttl)
    }

    /// Counts one misbehaviour of `peer`; returns the new total.
    pub fn misbehaved(&self, peer: PeerId) -> u64 {
        let mut map = self.lock();
        let e = map.entry(peer).or_default();
        e.misbehaviour += 1;
        e.misbehaviour
    }

    /// Peers with at least one open connection.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.lock()
            .iter()
            .filter(|(_, i)| i.connections > 0)
            .map(|(p, _)| *p)
            .collect()
    }

    /// True if `peer` is connected now or was seen within `grace`.
    pub fn is_live(&self, peer: &PeerId, grace: Duration) -> bool {
        self.lock()
            .get(peer)
            .is_some_and(|i| i.connections > 0 || i.last_seen.is_some_and(|t| t.elapsed() <= grace))
    }

    /// Peers that announced holding `root`, connected ones first.
    pub fn holders_of(&self, root: &Cid) -> Vec<PeerId> {
        let map = self.lock();
        let mut v: Vec<(bool, PeerId)> = map
            .iter()
            .filter(|(_, i)| i.holdings.contains(root))
            .map(|(p, i)| (i.connections == 0, *p))
            .collect();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// A copy of one peer's entry.
    pub fn get(&self, peer: &PeerId) -> Option<PeerInfo> {
        self.lock().get(peer).cloned()
    }

    /// A copy of the whole table.
    pub fn snapshot(&self) -> HashMap<PeerId, PeerInfo> {
        self.lock().clone()
    }

    /// Forgets holdings of peers not in `keep` (they left the roster).
    pub fn retain(&self, keep: &HashSet<PeerId>) {
        self.lock().retain(|p, _| keep.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, &[n])
    }

    #[test]
    fn holders_and_liveness() {
        let book = PeerBook::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        book.set_holdings(a, [cid(1), cid(2)]);
        book.connected(b);
        book.add_holding(b, cid(1));
        assert_eq!(book.holders_of(&cid(1)), vec![b, a]);
        assert_eq!(book.holders_of(&cid(2)), vec![a]);
        assert!(book.holders_of(&cid(3)).is_empty());
        assert!(book.is_live(&b, Duration::ZERO));
        assert!(book.is_live(&a, Duration::from_secs(60)));
        assert!(!book.is_live(&PeerId::random(), Duration::from_secs(60)));
        book.disconnected(b);
        assert!(book.connected_peers().is_empty());
        assert!(!book.is_leaving(&a, Duration::from_secs(60)));
        book.leaving(a);
        assert!(book.is_leaving(&a, Duration::from_secs(60)));
        assert!(!book.is_leaving(&b, Duration::from_secs(60)));
        assert_eq!(book.misbehaved(a), 1);
        assert_eq!(book.misbehaved(a), 2);
    }
}
