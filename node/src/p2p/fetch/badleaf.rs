//! `/shubnet/badleaf/1` (wire format in [`shubnet_protocol::badleaf`]): a fetcher that received
//! a leaf which did not hash to its CID tells the holder ([`report`]); the holder re-hashes its
//! own copy of that leaf at once ([`serve`]) and, if it is damaged, sets the blob aside and
//! fetches a good copy from another member ([`replace_damaged`], which the scrub uses too).
//!
//! Holders serve marked blobs without hashing them (`crate::store` `verified.rs`), so this is
//! how damage between two scrubs is caught: the fetcher never accepts the bad leaf (the partial
//! download refuses it) and completes from other holders, and the holder stops serving the
//! damaged copy. A report costs the holder a leaf read and hash, so it is answered for members
//! only, and each peer has a small budget of reports ([`REPORT_BURST`], refilled at
//! [`REPORTS_PER_SEC`]).
//!
//! Owns the protocol's two ends and the replacement of a damaged image. Must not decide what
//! counts as damaged (the store's check does) nor when to scrub (`crate::scrub` does).

use super::client::FetchClient;
use crate::p2p::gate::Gate;
use crate::p2p::streams::protocol;
use crate::p2p::tasks::Tasks;
use crate::store::LeafCheck;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::badleaf::{MAX_REPORT, PROTOCOL, Report, Verdict};
use shubnet_protocol::sync::Announcement;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Reports a peer may send at once.
pub const REPORT_BURST: f64 = 8.0;
/// Reports per second a peer's budget refills by.
pub const REPORTS_PER_SEC: f64 = 0.5;
/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Peers whose budgets are remembered; beyond this the table starts afresh (members only, so
/// it is never reached in practice).
const MAX_TRACKED_PEERS: usize = 4096;

/// The holder's end; cheap to clone.
#[derive(Clone, Debug)]
pub struct Server {
    /// Roster membership.
    pub gate: Gate,
    /// For re-hashing the reported leaf and replacing a damaged image.
    pub fetch: FetchClient,
    /// Each peer's report budget.
    pub budgets: Budgets,
    /// Images being replaced now: further reports about them are answered without a check.
    pub replacing: Replacing,
}

/// Per-peer report budgets (token buckets).
#[derive(Debug, Clone, Default)]
pub struct Budgets(Arc<Mutex<HashMap<PeerId, (f64, Instant)>>>);

impl Budgets {
    /// Takes one report from `peer`'s budget; false when it is spent.
    fn take(&self, peer: PeerId) -> bool {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() >= MAX_TRACKED_PEERS && !m.contains_key(&peer) {
            m.clear();
        }
        let now = Instant::now();
        let (tokens, at) = m.entry(peer).or_insert((REPORT_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * REPORTS_PER_SEC).min(REPORT_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Images whose replacement is under way.
#[derive(Debug, Clone, Default)]
pub struct Replacing(Arc<Mutex<HashSet<Cid>>>);

impl Replacing {
    fn start(&self, root: Cid) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(root)
    }

    fn contains(&self, root: &Cid) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(root)
    }

    fn done(&self, root: &Cid) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(root);
    }
}

/// Registers the protocol and spawns the accept loop.
pub(crate) fn serve(
    tasks: &Tasks,
    mut control: libp2p_stream::Control,
    server: Server,
) -> Result<(), crate::p2p::error::NetError> {
    let mut incoming = crate::p2p::streams::accept(&mut control, PROTOCOL)?;
    tasks.spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let server = server.clone();
            tokio::spawn(async move {
                if let Err(e) = server.inbound(peer, stream).await {
                    tracing::debug!(%peer, error = %e, "bad-leaf stream ended");
                }
            });
        }
    });
    Ok(())
}

impl Server {
    async fn inbound(&self, peer: PeerId, mut stream: libp2p::Stream) -> std::io::Result<()> {
        let verdict = self.judge(peer, &mut stream).await;
        stream.write_all(&[verdict.to_byte()]).await?;
        stream.close().await
    }

    async fn judge(&self, peer: PeerId, stream: &mut libp2p::Stream) -> Verdict {
        let metrics = shubnet_metrics::global();
        if !self.gate.is_member(&peer) {
            metrics.badleaf("not_member");
            return Verdict::Refused;
        }
        if !self.budgets.take(peer) {
            metrics.badleaf("rate_limited");
            tracing::info!(%peer, "ignored a bad-leaf report: too many from this peer");
            return Verdict::Refused;
        }
        let mut buf = Vec::with_capacity(MAX_REPORT);
        let mut limited = (&mut *stream).take(MAX_REPORT as u64 + 1);
        let report = match tokio::time::timeout(TIMEOUT, limited.read_to_end(&mut buf)).await {
            Ok(Ok(_)) => Report::decode(&buf),
            _ => {
                metrics.badleaf("malformed");
                return Verdict::Refused;
            }
        };
        let Ok(Report { root, leaf }) = report else {
            metrics.badleaf("malformed");
            return Verdict::Refused;
        };
        if self.replacing.contains(&root) {
            metrics.badleaf("already_quarantined");
            return Verdict::Quarantined;
        }
        let store = self.fetch.store.clone();
        let checked = tokio::task::spawn_blocking(move || store.check_leaf(&root, &leaf)).await;
        match checked {
            Ok(Ok(LeafCheck::Intact)) => {
                metrics.badleaf("intact");
                tracing::warn!(%peer, %root, %leaf, "a member reported a bad leaf, but the stored copy hashes right");
                Verdict::Intact
            }
            Ok(Ok(LeafCheck::NotHeld)) => {
                metrics.badleaf("not_held");
                Verdict::NotHeld
            }
            Ok(Ok(LeafCheck::Damaged)) => {
                metrics.badleaf("damaged");
                if self.replacing.start(root) {
                    metrics.corrupt("report");
                    tracing::error!(%peer, %root, %leaf, "a member reported a bad leaf and the stored copy is damaged");
                    let (fetch, replacing) = (self.fetch.clone(), self.replacing.clone());
                    tokio::spawn(async move {
                        if let Err(e) = replace_damaged(&fetch, root).await {
                            tracing::error!(%root, error = %e, "cannot replace a damaged image yet");
                        }
                        replacing.done(&root);
                    });
                }
                Verdict::Quarantined
            }
            Ok(Err(e)) => {
                metrics.badleaf("error");
                tracing::warn!(%root, error = %e, "cannot check a reported leaf");
                Verdict::Refused
            }
            Err(e) => {
                metrics.badleaf("error");
                tracing::warn!(%root, error = %e, "the leaf check failed");
                Verdict::Refused
            }
        }
    }
}

/// Why a damaged image could not be replaced (it stays quarantined; the replicator fetches it
/// again in a later round if this node should hold it).
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Setting the blob aside failed.
    #[error("quarantining {root}: {source}")]
    Quarantine {
        /// The image.
        root: Cid,
        /// The store's error.
        source: crate::store::StoreError,
    },
    /// No other member gave a good copy.
    #[error("fetching {root} again: {source}")]
    Fetch {
        /// The image.
        root: Cid,
        /// The fetch's error.
        source: Box<super::client::FetchError>,
    },
}

/// Sets the damaged image `root` aside (no longer served nor listed as held) and fetches it
/// again from the other members, verifying every leaf, then announces holding it again. A pin
/// survives, so a pinned image is pinned again once its copy is back.
pub async fn replace_damaged(fetch: &FetchClient, root: Cid) -> Result<(), ReplaceError> {
    fetch
        .store
        .quarantine_root(&root)
        .await
        .map_err(|source| ReplaceError::Quarantine { root, source })?;
    let report = fetch
        .fetch(root, Vec::new())
        .await
        .map_err(|source| ReplaceError::Fetch {
            root,
            source: Box::new(source),
        })?;
    tracing::info!(%root, bytes = report.bytes_received, "fetched a good copy of a damaged image");
    if let Err(e) = fetch
        .commands
        .try_send(crate::p2p::command::Command::Publish(
            Announcement::Holding(root),
        ))
    {
        tracing::debug!(error = %e, "holding announcement dropped; sync will carry it");
    }
    Ok(())
}

/// Tells `peer` that leaf `leaf` of `root` it sent did not hash to its CID, and logs its answer.
/// Best effort: a holder that does not know the protocol, or is gone, is simply not told.
pub async fn report(control: libp2p_stream::Control, peer: PeerId, root: Cid, leaf: Cid) {
    let exchange = async {
        let mut s = control
            .clone()
            .open_stream(peer, protocol(PROTOCOL))
            .await
            .map_err(std::io::Error::other)?;
        s.write_all(&Report { root, leaf }.encode()).await?;
        s.close().await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(Verdict::from_byte(b[0]))
    };
    match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(v)) => {
            tracing::info!(%peer, %root, %leaf, verdict = ?v, "reported a bad leaf to its holder")
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cannot report a bad leaf"),
        Err(_) => tracing::debug!(%peer, "no answer to a bad-leaf report"),
    }
}
