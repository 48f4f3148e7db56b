//! What answering Bitswap may hold at once, so the server's memory stays bounded whatever peers
//! send. Per peer: a cap on streams being answered, a short queue of streams waiting for their
//! turn (beyond it a stream is dropped unread, which resets it), and a byte budget that covers
//! the messages read and the blocks read but not yet sent. The same bytes are also counted
//! against one budget for all peers, so many peer ids cannot add up to unbounded memory.
//!
//! It only counts: it must not read or write streams, nor decide who may have what.

use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Streams of one peer answered at once. Helia sends one message per stream, one stream at a
/// time per peer, so an honest client never waits here.
pub(super) const PEER_STREAMS: usize = 4;
/// Streams of one peer that may wait for a turn. A waiting stream is not read, so it costs at
/// most the muxer's receive window.
pub(super) const PEER_WAITING: usize = 16;
/// Bytes one peer's streams may hold: a read message (≤ 4 MiB) and the blocks of the answer
/// being built (≤ 2 MiB, counted twice for its encoding).
pub(super) const PEER_BYTES: usize = 8 * 1024 * 1024;
/// Bytes all peers' streams may hold together.
pub(super) const ALL_BYTES: usize = 64 * 1024 * 1024;

/// The limits, shared by every stream; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Budgets {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    peers: Mutex<HashMap<PeerId, Arc<PeerBudget>>>,
    all: Arc<Semaphore>,
    peer_streams: usize,
    peer_waiting: usize,
    peer_bytes: usize,
    all_bytes: usize,
}

#[derive(Debug)]
struct PeerBudget {
    streams: Arc<Semaphore>,
    waiting: AtomicUsize,
    bytes: Arc<Semaphore>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self::new(PEER_STREAMS, PEER_WAITING, PEER_BYTES, ALL_BYTES)
    }
}

impl Budgets {
    /// Limits other than the defaults (tests).
    pub(super) fn new(
        peer_streams: usize,
        peer_waiting: usize,
        peer_bytes: usize,
        all_bytes: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                peers: Mutex::default(),
                all: Arc::new(Semaphore::new(all_bytes)),
                peer_streams,
                peer_waiting,
                peer_bytes,
                all_bytes,
            }),
        }
    }

    fn entry(&self, peer: PeerId) -> Arc<PeerBudget> {
        let mut peers = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        peers
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(PeerBudget {
                    streams: Arc::new(Semaphore::new(self.inner.peer_streams)),
                    waiting: AtomicUsize::new(0),
                    bytes: Arc::new(Semaphore::new(self.inner.peer_bytes)),
                })
            })
            .clone()
    }

    /// Drops the peer's entry once nothing but the map holds it.
    fn release(&self, peer: &PeerId, budget: Arc<PeerBudget>) {
        let mut peers = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and `budget` itself.
        if Arc::strong_count(&budget) == 2 {
            peers.remove(peer);
        }
    }

    /// A turn to be answered, waiting for one if the peer's streams are all busy; `None` if
    /// the peer already has as many streams waiting as it may.
    pub(super) async fn turn(&self, peer: PeerId) -> Option<Turn> {
        let budget = self.entry(peer);
        let permit = match budget.streams.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let waiting = Waiting::enter(&budget, self.inner.peer_waiting);
                match waiting {
                    Some(w) => {
                        let p = budget.streams.clone().acquire_owned().await.ok();
                        drop(w);
                        p
                    }
                    None => None,
                }
            }
        };
        match permit {
            Some(permit) => Some(Turn {
                permit: Some(permit),
                budget: Some(budget),
                peer,
                budgets: self.clone(),
            }),
            None => {
                self.release(&peer, budget);
                None
            }
        }
    }

    /// Peers with an entry (tests).
    #[cfg(test)]
    fn peers(&self) -> usize {
        self.inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Counts a stream as waiting while it lives.
struct Waiting<'a>(&'a PeerBudget);

impl<'a> Waiting<'a> {
    fn enter(budget: &'a PeerBudget, max: usize) -> Option<Self> {
        let before = budget.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            budget.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(budget))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One stream's right to be answered.
#[derive(Debug)]
pub(super) struct Turn {
    permit: Option<OwnedSemaphorePermit>,
    budget: Option<Arc<PeerBudget>>,
    peer: PeerId,
    budgets: Budgets,
}

/// Bytes held against the peer's and the node's budgets; released on drop.
#[derive(Debug)]
pub(super) struct Held {
    _peer: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl Turn {
    fn clamp(&self, bytes: usize) -> u32 {
        let max = self
            .budgets
            .inner
            .peer_bytes
            .min(self.budgets.inner.all_bytes);
        u32::try_from(bytes.clamp(1, max.max(1))).unwrap_or(u32::MAX)
    }

    /// `bytes` now, if both budgets have them.
    pub(super) fn try_hold(&self, bytes: usize) -> Option<Held> {
        let n = self.clamp(bytes);
        let budget = self.budget.as_ref()?;
        let peer = budget.bytes.clone().try_acquire_many_owned(n).ok()?;
        let all = self
            .budgets
            .inner
            .all
            .clone()
            .try_acquire_many_owned(n)
            .ok()?;
        Some(Held {
            _peer: peer,
            _all: all,
        })
    }

    /// `bytes`, waiting until both budgets have them. The caller must hold nothing else of the
    /// budgets while it waits, or two streams could each wait for what the other holds.
    pub(super) async fn hold(&self, bytes: usize) -> Option<Held> {
        let n = self.clamp(bytes);
        let budget = self.budget.as_ref()?;
        let peer = budget.bytes.clone().acquire_many_owned(n).await.ok()?;
        let all = self
            .budgets
            .inner
            .all
            .clone()
            .acquire_many_owned(n)
            .await
            .ok()?;
        Some(Held {
            _peer: peer,
            _all: all,
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.permit.take());
        if let Some(budget) = self.budget.take() {
            self.budgets.release(&self.peer, budget);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_capped_per_peer_and_entries_go_away() {
        let b = Budgets::new(2, 1, 100, 150);
        let (p, q) = (PeerId::random(), PeerId::random());
        let t1 = b.turn(p).await.expect("first");
        let _t2 = b.turn(p).await.expect("second");
        // A third waits; a fourth is one waiter too many.
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.turn(p).await.is_some() });
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(b.turn(p).await.is_none());
        drop(t1);
        assert!(waiter.await.expect("join"));
        // Another peer has its own streams, but shares the node's bytes.
        let u = b.turn(q).await.expect("other peer");
        let h = u.try_hold(100).expect("peer budget");
        assert!(u.try_hold(1).is_none(), "the peer's budget is spent");
        let t = b.turn(p).await;
        assert!(t.is_some());
        let t = t.expect("turn");
        assert!(t.try_hold(60).is_none(), "the node's budget is spent");
        drop(h);
        assert!(t.try_hold(60).is_some());
        drop((t, u, _t2));
        assert_eq!(b.peers(), 0);
    }
}
