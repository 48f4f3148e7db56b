//! The gauges `/metrics` reports, kept cheap at 100 000 images: peers are read live, while the
//! replication health (which decodes every head and asks the peer book about each root) and
//! the store size are recomputed off the scrape path at most every [`REFRESH`], so a scrape
//! never pays for a full recompute.

use crate::replication::Replicator;
use crate::store::Store;
use shubnet_gateway::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest age of the replication and store gauges.
pub const REFRESH: Duration = Duration::from_secs(30);

/// When the slow gauges were last computed, and whether a computation runs.
#[derive(Debug, Default, Clone)]
pub struct Observer {
    last: Arc<Mutex<Option<Instant>>>,
    busy: Arc<AtomicBool>,
}

fn compute(store: &Store, replicator: Option<&Replicator>, m: &Metrics) {
    if let Ok(roots) = store.roots() {
        let bytes: u64 = roots.iter().map(|(_, r)| r.size).sum();
        m.store_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    if let Some(r) = replicator
        && let Ok(s) = r.status()
    {
        let under = s.images.iter().filter(|i| i.under_replicated).count();
        m.images
            .set(i64::try_from(s.images.len()).unwrap_or(i64::MAX));
        m.under_replicated
            .set(i64::try_from(under).unwrap_or(i64::MAX));
    }
}

impl Observer {
    /// Sets the gauges: peers now; the rest if older than [`REFRESH`], waiting only for the
    /// very first computation (so the first scrape is complete).
    pub async fn refresh(
        &self,
        store: &Store,
        replicator: Option<Replicator>,
        peers: Option<usize>,
        m: &'static Metrics,
    ) {
        if let Some(p) = peers {
            m.peers.set(i64::try_from(p).unwrap_or(i64::MAX));
        }
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < REFRESH) || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, this) = (store.clone(), self.clone());
        let job = tokio::task::spawn_blocking(move || {
            compute(&store, replicator.as_ref(), m);
            *this.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            this.busy.store(false, Ordering::Release);
        });
        if last.is_none() {
            let _ = job.await;
        }
    }
}
