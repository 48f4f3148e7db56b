//! Known addresses of federation members, kept in `DATA_DIR/p2p.peers` (one
//! `MULTIADDR/p2p/PEER_ID` per line) so a restarted node reconnects without `--bootstrap`.
//! Also the dial backoff per member.
//!
//! It only remembers and times; it must not dial or decide who is a member: the event loop
//! dials, and prunes the book to the gate's members when the roster changes.

use crate::paths::DataDir;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Addresses kept per peer (newest first).
const MAX_ADDRS: usize = 8;
/// First retry after a failed dial; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// How long after a connection closes the reconnect tick leaves it to the node's own users.
const RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// Longest wait between dials of one member.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest wait between searches (Kademlia) for a member whose address is unknown: a search
/// costs a few messages, and a member that knows no address of another cannot reach it at all.
pub const MAX_SEARCH_BACKOFF: Duration = Duration::from_secs(8);

/// Member addresses and dial timing.
#[derive(Debug)]
pub struct AddrBook {
    path: PathBuf,
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    next_dial: HashMap<PeerId, (Instant, Duration)>,
}

fn split(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut a = addr.clone();
    match a.pop()? {
        Protocol::P2p(p) => Some((p, a)),
        _ => None,
    }
}

impl AddrBook {
    /// Loads `p2p.peers` (missing or unreadable lines are skipped).
    pub fn load(dir: &DataDir) -> Self {
        let path = dir.p2p_peers();
        let mut addrs: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Some((p, a)) = line
                    .trim()
                    .parse::<Multiaddr>()
                    .ok()
                    .as_ref()
                    .and_then(split)
                {
                    addrs.entry(p).or_default().push(a);
                }
            }
        }
        AddrBook {
            path,
            addrs,
            next_dial: HashMap::new(),
        }
    }

    /// Known addresses of `peer`.
    pub fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addrs.get(peer).cloned().unwrap_or_default()
    }

    /// Records addresses of `peer` (usable ones only); returns true if the book changed.
    pub fn add(&mut self, peer: PeerId, new: impl IntoIterator<Item = Multiaddr>) -> bool {
        let list = self.addrs.entry(peer).or_default();
        let mut changed = false;
        for a in new {
            let a = match split(&a) {
                Some((_, bare)) => bare,
                None => a,
            };
            if a.iter().any(|p| matches!(p, Protocol::P2pCircuit))
                || a.iter()
                    .any(|p| matches!(p, Protocol::Tcp(0) | Protocol::Udp(0)))
            {
                continue;
            }
            if let Some(i) = list.iter().position(|x| *x == a) {
                if i == 0 {
                    continue;
                }
                list.remove(i);
            }
            list.insert(0, a);
            list.truncate(MAX_ADDRS);
            changed = true;
        }
        changed
    }

    /// Forgets peers not in `keep` (they left the roster).
    pub fn retain(&mut self, keep: &std::collections::HashSet<PeerId>) -> bool {
        let before = self.addrs.len();
        self.addrs.retain(|p, _| keep.contains(p));
        before != self.addrs.len()
    }

    /// Replaces `p2p.peers` durably.
    pub fn save(&self) {
        let mut text = String::new();
        for (p, list) in &self.addrs {
            for a in list {
                text.push_str(&format!("{}\n", a.clone().with(Protocol::P2p(*p))));
            }
        }
        if let Err(e) =
            crate::durable::replace(&self.path, text.as_bytes(), crate::durable::Mode::Shared)
        {
            tracing::warn!(error = %e, "cannot write p2p.peers");
        }
    }

    /// True if it is time to dial `peer` again; if so, the next attempt is pushed back.
    /// The backoff doubles up to `max` (at most [`MAX_BACKOFF`]).
    pub fn due(&mut self, peer: PeerId, now: Instant, max: Duration) -> bool {
        let (at, wait) = self.next_dial.entry(peer).or_insert((now, MIN_BACKOFF));
        if *at > now {
            return false;
        }
        let max = max.min(MAX_BACKOFF);
        *at = now + (*wait).min(max);
        *wait = wait.saturating_mul(2).min(max);
        true
    }

    /// Forgets `peer`'s backoff, so the next tick may dial it at once: a connection to it
    /// opened (the next loss is retried at once), or new addresses of it are known (whatever
    /// searching for it, or dialling its old addresses, built up).
    pub fn clear_backoff(&mut self, peer: &PeerId) {
        self.next_dial.remove(peer);
    }

    /// The last connection to `peer` closed: the tick waits [`RECONNECT_DELAY`] before dialling
    /// it, so whoever was using the connection (a transfer) redials first, on its own path.
    pub fn disconnected(&mut self, peer: PeerId, now: Instant) {
        self.next_dial
            .insert(peer, (now + RECONNECT_DELAY, MIN_BACKOFF));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_backs_off() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::new(tmp.path());
        let p = PeerId::random();
        let mut b = AddrBook::load(&dir);
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("addr");
        assert!(b.add(
            p,
            [a.clone(), "/ip4/127.0.0.1/tcp/0".parse().expect("addr")]
        ));
        assert!(!b.add(p, [a.clone()]));
        b.save();
        let mut again = AddrBook::load(&dir);
        assert_eq!(again.addrs(&p), vec![a]);
        let t = Instant::now();
        assert!(again.due(p, t, MAX_BACKOFF));
        assert!(!again.due(p, t, MAX_BACKOFF));
        assert!(again.due(p, t + MIN_BACKOFF, MAX_BACKOFF));
        assert!(!again.due(p, t + MIN_BACKOFF + MIN_BACKOFF / 2, MAX_BACKOFF));
        again.clear_backoff(&p);
        assert!(again.due(p, t + MIN_BACKOFF, MAX_BACKOFF));
    }

    #[test]
    fn searches_back_off_less_and_new_addresses_are_dialled_at_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut b = AddrBook::load(&DataDir::new(tmp.path()));
        let p = PeerId::random();
        let mut t = Instant::now();
        // Many failed searches in a row: never more than the search cap apart.
        for _ in 0..20 {
            assert!(b.due(p, t, MAX_SEARCH_BACKOFF));
            t += MAX_SEARCH_BACKOFF;
        }
        // Dials back off up to the dial cap.
        for _ in 0..20 {
            b.due(p, t, MAX_BACKOFF);
            t += MAX_BACKOFF;
        }
        assert!(!b.due(p, t - MAX_BACKOFF + MAX_SEARCH_BACKOFF, MAX_BACKOFF));
        // Addresses learned: due at once.
        b.clear_backoff(&p);
        assert!(b.due(p, t - MAX_BACKOFF + MAX_SEARCH_BACKOFF, MAX_BACKOFF));
    }
}
