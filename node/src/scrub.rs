//! The scrub: re-hashing stored blobs against their CIDs, since reads no longer do (blobs are
//! verified at import and on receipt, then served without hashing). Runs on demand
//! (`shubnet scrub`, all blobs at full speed) and in the background (`[scrub]` in config.toml:
//! each blob once per `interval_secs`, oldest check first, at most `rate_bytes_per_sec`). A
//! damaged blob is quarantined and fetched again from another member
//! ([`crate::p2p::fetch::badleaf::replace_damaged`], shared with bad-leaf reports).
//!
//! Owns the schedule and the pace. Must not decide what is damaged (the store's check does) or
//! talk to peers other than through the fetch client.

use crate::clock::unix_now;
use crate::config::ScrubConfig;
use crate::p2p::fetch::badleaf::replace_damaged;
use crate::p2p::fetch::client::FetchClient;
use crate::store::{ScrubOutcome, Store, StoreError};
use shubnet_protocol::Cid;
use shubnet_protocol::admin::ScrubReport;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the background scrub looks for blobs due for a check.
const TICK: Duration = Duration::from_secs(60);
/// Wait after start before the first background pass, so a starting node serves first.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(30);

/// The scrubber; cheap to clone. One pass runs at a time.
#[derive(Clone, Debug)]
pub struct Scrubber {
    store: Store,
    fetch: FetchClient,
    cfg: ScrubConfig,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Scrubber {
    /// A scrubber over the store, fetching damaged images again through `fetch`.
    pub fn new(store: Store, fetch: FetchClient, cfg: ScrubConfig) -> Self {
        Self {
            store,
            fetch,
            cfg,
            running: Arc::default(),
        }
    }

    /// Checks every stored blob now, at full speed (`shubnet scrub`).
    pub async fn scrub_all(&self) -> Result<ScrubReport, StoreError> {
        self.pass(None, 0).await
    }

    /// Checks the blobs whose last check is older than `older_than` seconds (or all, for
    /// `None`), reading at most `rate` bytes per second (0: unlimited).
    async fn pass(&self, older_than: Option<u64>, rate: u64) -> Result<ScrubReport, StoreError> {
        let _one = self.running.lock().await;
        let mut report = ScrubReport::default();
        let now = unix_now();
        let store = self.store.clone();
        let queue = tokio::task::spawn_blocking(move || store.scrub_queue())
            .await
            .map_err(|e| StoreError::Invalid(format!("scrub task failed: {e}")))??;
        let mut pace = Pace::new(rate);
        for (root, checked_at) in queue {
            if let (Some(age), Some(at)) = (older_than, checked_at)
                && now.saturating_sub(at) < age
            {
                continue;
            }
            let store = self.store.clone();
            let (outcome, paced) = tokio::task::spawn_blocking(move || {
                let outcome = store.scrub_blob(&root, &mut |n| pace.take(n));
                (outcome, pace)
            })
            .await
            .map_err(|e| StoreError::Invalid(format!("scrub task failed: {e}")))?;
            pace = paced;
            let outcome = outcome?;
            match outcome {
                ScrubOutcome::Intact { leaves, bytes } => {
                    report.checked += 1;
                    report.leaves += leaves;
                    report.bytes += bytes;
                }
                ScrubOutcome::Gone => {}
                ScrubOutcome::Damaged { leaf } => {
                    report.checked += 1;
                    shubnet_metrics::global().corrupt("scrub");
                    tracing::error!(%root, %leaf, "the scrub found a damaged leaf");
                    report.damaged.push(root.to_string());
                    match self.replace(root).await {
                        Ok(()) => report.refetched.push(root.to_string()),
                        Err(why) => report.not_refetched.push(format!("{root}: {why}")),
                    }
                }
            }
        }
        Ok(report)
    }

    async fn replace(&self, root: Cid) -> Result<(), String> {
        replace_damaged(&self.fetch, root).await.map_err(|e| {
            tracing::error!(%root, error = %e, "cannot replace a damaged image yet");
            e.to_string()
        })
    }

    /// Runs the background scrub until `stop` (not at all when `interval_secs` is 0).
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if self.cfg.interval_secs == 0 {
                return;
            }
            let mut wait = FIRST_PASS_AFTER;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = TICK;
                let pass = self.pass(Some(self.cfg.interval_secs), self.cfg.rate_bytes_per_sec);
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = pass => match r {
                        Ok(r) if r.checked > 0 => tracing::info!(
                            checked = r.checked,
                            bytes = r.bytes,
                            damaged = r.damaged.len(),
                            "scrub pass done"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "scrub pass failed"),
                    },
                }
            }
        })
    }
}

/// Holds a pass to a byte rate by sleeping (on the scrub's blocking thread) whenever it is
/// ahead of it.
#[derive(Debug)]
struct Pace {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Self {
            rate,
            start: Instant::now(),
            bytes: 0,
        }
    }

    fn take(&mut self, n: u64) {
        if self.rate == 0 {
            return;
        }
        self.bytes += n;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}
