//! Session streams (`/shubnet/fetch/1/session`) kept per holder between requests and between
//! transfers. A yamux stream's receive window starts at 256 KiB and doubles at most once per
//! round trip, so a new stream per request spends most of a long link's round trips ramping
//! again, and pays a protocol negotiation; a kept stream keeps both. Also remembers holders
//! that do not speak sessions (older nodes), which get one stream per request as before.
//!
//! It owns the idle streams only: it must not send requests or read answers (that is `ask` and
//! `transfer`), and a stream it hands out is the borrower's until given back.

use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an idle session is kept for reuse: well under the server's idle limit
/// (`server::SESSION_IDLE`), so a reused session is rarely one the server is closing.
pub const SESSION_KEEP: Duration = Duration::from_secs(20);
/// Idle sessions kept per holder: a transfer's streams and a few spare.
const IDLE_PER_PEER: usize = 32;
/// How long a holder that refused sessions is asked on one-request streams before sessions
/// are tried again (it may have been upgraded).
const RECHECK: Duration = Duration::from_secs(600);

/// The idle sessions of one node; cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    idle: HashMap<PeerId, Vec<(Instant, libp2p::Stream)>>,
    unsupported: HashMap<PeerId, Instant>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle session to `peer`, if one is fresh enough. Stale ones are
    /// dropped (which resets them).
    pub fn take(&self, peer: &PeerId) -> Option<libp2p::Stream> {
        let mut inner = self.lock();
        let list = inner.idle.get_mut(peer)?;
        list.retain(|(at, _)| at.elapsed() < SESSION_KEEP);
        let s = list.pop().map(|(_, s)| s);
        if list.is_empty() {
            inner.idle.remove(peer);
        }
        s
    }

    /// Gives back a session whose every answer was read in full.
    pub fn put(&self, peer: PeerId, stream: libp2p::Stream) {
        let mut inner = self.lock();
        let list = inner.idle.entry(peer).or_default();
        if list.len() < IDLE_PER_PEER {
            list.push((Instant::now(), stream));
        }
    }

    /// Idle sessions to `peer` now.
    #[cfg(test)]
    fn idle(&self, peer: &PeerId) -> usize {
        self.lock().idle.get(peer).map_or(0, Vec::len)
    }

    /// True if `peer` refused sessions within [`RECHECK`].
    pub fn lacks(&self, peer: &PeerId) -> bool {
        self.lock()
            .unsupported
            .get(peer)
            .is_some_and(|at| at.elapsed() < RECHECK)
    }

    /// Records that `peer` does not speak sessions.
    pub fn refused(&self, peer: PeerId) {
        let mut inner = self.lock();
        inner.unsupported.insert(peer, Instant::now());
        inner.idle.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_peer_is_remembered_and_has_no_idle_sessions() {
        let s = Sessions::default();
        let p = PeerId::random();
        assert!(!s.lacks(&p));
        assert!(s.take(&p).is_none());
        s.refused(p);
        assert!(s.lacks(&p));
        assert_eq!(s.idle(&p), 0);
    }
}
