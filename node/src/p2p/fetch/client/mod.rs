//! The `/shubnet/fetch/1` client.
//!
//! A transfer first asks every candidate holder `Have`, learns the DAG's dag-pb nodes from one
//! of them (each verified against its CID), and opens the image's partial download
//! ([`crate::store::partial`]). Then one worker per holder (several streams each) takes runs of
//! missing leaves that holder has ([`super::schedule`]: rarest first, from scattered points),
//! asks for them with `Leaves`, and hands each leaf to the partial download, which writes it
//! only if it hashes to its CID. A holder that sends a wrong leaf or a malformed frame is
//! dropped for the transfer and counted in the [`PeerBook`]; its runs go back to the pool for
//! the others. A broken stream is retried (reconnecting if the connection is gone) up to
//! [`MAX_FAILURES`] times in a row. Members that are not complete holders, including those that
//! have nothing yet, are watched (`Watch`): each leaf they verify is announced within a tick, so
//! nodes fetching the same image serve each other and a seeder's upload goes to leaves nobody
//! else has. An image of one raw block is fetched whole (no partial record).
//!
//! Verified leaves survive drops and restarts (the partial download persists them), so nothing
//! verified is fetched twice. When every leaf is verified the copy becomes a normal blob.
//!
//! Files: this one holds the handle and the whole-image and on-demand entry points; `ask` opens
//! streams and asks single questions (`Have`, `Nodes`, who holds an image); `transfer` runs the
//! per-holder workers of one transfer; `single` fetches an image of one raw block; `report`
//! holds what a fetch returns. None of them may answer requests from other members (that is
//! `super::server`) or decide which images to copy (that is `crate::replication`); they must not
//! drive the swarm beyond asking the event loop to reconnect a holder.

use super::{BufferPool, Partials};
use crate::p2p::command::Command;
use crate::p2p::peers::PeerBook;
use crate::p2p::ratelimit::RateLimit;
use crate::store::Store;
use crate::store::partial::Partial;
use bytes::Bytes;
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::RAW;
use shubnet_protocol::fetch::Holding;
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a holder may take to answer `Have` or `Nodes`.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leaf stream may stall before it counts as broken.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most leaves per request (64 × 256 KiB = 16 MiB). Requests are pipelined on kept session
/// streams (the next is sent before the current answer is read), so neither a request's round
/// trip nor a stream's flow-control ramp (a yamux window starts at 256 KiB and doubles at most
/// once per round trip) is paid per run; a shorter run only has to outlast a round trip, and
/// keeps a slow holder from holding up many leaves that others could send.
pub const RUN_LEAVES: u64 = 64;
/// Runs each stream of a transfer should get at least (shorter runs for smaller images), so
/// that fast holders can take the leaves slow ones have not been asked for yet.
pub const RUNS_PER_STREAM: u64 = 4;
/// Streams (requests in flight) per transfer, shared among its holders. Bytes in flight are
/// what a long link needs: at 100 ms a 256 KiB window moves 2.6 MB/s, so one holder alone gets
/// all of these. More cost CPU on a short link (concurrent writes into one file contend for
/// its lock).
pub const TRANSFER_STREAMS: usize = 8;
/// Streams per holder however many holders share [`TRANSFER_STREAMS`].
pub const MIN_STREAMS_PER_HOLDER: usize = 2;
/// Streams of a transfer to each of `holders` holders.
fn streams_per_holder(holders: usize) -> usize {
    (TRANSFER_STREAMS / holders.max(1)).max(MIN_STREAMS_PER_HOLDER)
}
/// Broken streams in a row after which a holder is given up for the transfer.
pub const MAX_FAILURES: u32 = 30;
/// Pause before retrying a broken stream.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// How long a fetch waits for a first peer when none is connected (a reconnect in progress).
const RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// How often a partial holder is asked `Have` again when it has nothing we still need.
const REFRESH: Duration = Duration::from_millis(250);
/// Most dag-pb nodes accepted for one DAG.
const MAX_NODES: usize = 1 << 20;

mod ask;
mod report;
mod session;
mod single;
mod transfer;

pub use ask::AskError;
pub use report::{FetchError, FetchReport, HolderReport};
pub use session::Sessions;
use transfer::Transfer;

/// A handle for fetching images from federation members; cheap to clone.
#[derive(Clone)]
pub struct FetchClient {
    pub(in crate::p2p) control: libp2p_stream::Control,
    pub(in crate::p2p) store: Store,
    pub(in crate::p2p) partials: Partials,
    pub(in crate::p2p) peers: PeerBook,
    pub(in crate::p2p) download: RateLimit,
    pub(in crate::p2p) commands: mpsc::Sender<Command>,
    pub(in crate::p2p) buffers: BufferPool,
    pub(in crate::p2p) sessions: Sessions,
}

impl std::fmt::Debug for FetchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchClient").finish_non_exhaustive()
    }
}

impl FetchClient {
    /// The node's peer table.
    pub fn peers(&self) -> &PeerBook {
        &self.peers
    }

    /// Fetches the whole image `root` from `holders` (or, if empty, from the peers that
    /// announced it or every connected peer), splitting it across all that have it, and stores
    /// it as an unpinned blob. Resumes a partial download left by an earlier call or process.
    pub async fn fetch(&self, root: Cid, holders: Vec<PeerId>) -> Result<FetchReport, FetchError> {
        if let Some(rec) = self.store.root_record(&root)? {
            return Ok(FetchReport {
                root: root.to_string(),
                size: rec.size,
                ..Default::default()
            });
        }
        let started = std::time::Instant::now();
        let found = self.survey(root, holders).await?;
        if root.codec() == RAW {
            return self.fetch_single(root, &found).await;
        }
        let partial = self.partial_for(root, &found).await?;
        let n = partial.leaves().len() as u64;
        let wanted: BTreeSet<u64> = (0..n).filter(|&i| !partial.has(i)).collect();
        let mut report = FetchReport {
            root: root.to_string(),
            size: partial.size(),
            leaves: n,
            already_verified: n - wanted.len() as u64,
            ..Default::default()
        };
        // Scattering keeps nodes that fetch the same image at once apart, so they can serve
        // each other; with only complete holders there is nobody to exchange with, and file
        // order lets the partial download hash the whole file as the leaves arrive.
        let spread = found.iter().any(|(_, h)| !matches!(h, Holding::Complete));
        let (tx, _rx) = watch::channel(0);
        let transfer = self.run(partial.clone(), wanted, found, spread, tx).await;
        let holders: Vec<HolderReport> = transfer
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        report.fetched_leaves = holders.iter().map(|h| h.leaves).sum();
        report.bytes_received = holders.iter().map(|h| h.bytes).sum();
        report.holders = holders;
        report.transfer_ms = started.elapsed().as_millis() as u64;
        self.conclude(&partial, &transfer, &mut report).await?;
        Ok(report)
    }

    /// After a transfer: store the image if complete, else checkpoint and explain.
    async fn conclude(
        &self,
        partial: &Arc<Partial>,
        transfer: &Transfer,
        report: &mut FetchReport,
    ) -> Result<(), FetchError> {
        let root = *partial.root();
        let log = |report: &FetchReport| report.log(&root);
        if let Some(e) = transfer
            .fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            log(report);
            return Err(e.into());
        }
        if partial.is_complete() {
            let t = std::time::Instant::now();
            let finished = self.store.finish_partial(partial).await;
            report.store_ms = t.elapsed().as_millis() as u64;
            log(report);
            self.partials.remove(&root).await;
            finished?;
            return Ok(());
        }
        log(report);
        let p = partial.clone();
        let _ = tokio::task::spawn_blocking(move || p.checkpoint()).await;
        let missing = partial.leaves().len() as u64 - partial.verified().count();
        let reasons = report
            .holders
            .iter()
            .filter_map(|h| h.dropped.as_ref().map(|d| format!("{}: {d}", h.peer)))
            .collect();
        Err(FetchError::Incomplete {
            root,
            missing,
            total: partial.leaves().len() as u64,
            reasons,
        })
    }

    /// The size of `root`, found from holders, for an image this node does not hold;
    /// `None` if nobody has it. Opens its partial download (learning its DAG); an image of one
    /// raw block is fetched and stored whole, since its size is that block's.
    pub async fn remote_size(&self, root: Cid) -> Result<Option<u64>, FetchError> {
        match self.survey(root, Vec::new()).await {
            Ok(found) if root.codec() == RAW => {
                Ok(Some(self.fetch_single(root, &found).await?.size))
            }
            Ok(found) => Ok(Some(self.partial_for(root, &found).await?.size())),
            Err(FetchError::NoHolders(_) | FetchError::NotHeld { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One block this node does not hold, for a raw-block or CAR request through the gateway:
    /// a block of an image whose download is open here (a DAG node, or a leaf, fetched first if
    /// it is not verified yet), or an image's root (a raw image's only block, fetched and
    /// stored; a DAG root, learnt with the image's DAG, which opens its download). `None` when
    /// it is neither, or no holder has it.
    pub async fn remote_block(&self, cid: Cid) -> Result<Option<Bytes>, FetchError> {
        for p in self.partials.all().await {
            if let Some(b) = node_bytes(&p, &cid) {
                return Ok(Some(b));
            }
            if let Some(i) = p.leaves().iter().position(|l| l.cid == cid) {
                let i = i as u64;
                if !p.has(i) {
                    let leaf = p.leaves()[i as usize];
                    let end = leaf.offset + u64::from(leaf.len);
                    let mut rx = self.read_range(*p.root(), leaf.offset, end).await?;
                    while let Some(chunk) = rx.recv().await {
                        chunk.map_err(|e| FetchError::Dag(e.to_string()))?;
                    }
                }
                return tokio::task::spawn_blocking(move || p.read_leaf(i))
                    .await
                    .map_err(|e| FetchError::Dag(format!("reading a leaf: {e}")))?
                    .map_err(FetchError::from);
            }
        }
        match self.survey(cid, Vec::new()).await {
            Ok(found) if cid.codec() == RAW => {
                self.fetch_single(cid, &found).await?;
                Ok(self.store.block(&cid)?)
            }
            Ok(found) => {
                let p = self.partial_for(cid, &found).await?;
                Ok(node_bytes(&p, &cid))
            }
            Err(FetchError::NoHolders(_) | FetchError::NotHeld { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Streams file bytes `start..end` of `root`, which this node does not hold, fetching only
    /// the leaves the range covers into the partial download (so they are kept) and yielding
    /// each as soon as it is verified. If that completes the image, it is stored.
    pub async fn read_range(
        &self,
        root: Cid,
        start: u64,
        end: u64,
    ) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, FetchError> {
        if root.codec() == RAW {
            // One block: fetch and store it whole (unless `remote_size` just did), then read it.
            if self.store.root_record(&root)?.is_none() {
                let found = self.survey(root, Vec::new()).await?;
                self.fetch_single(root, &found).await?;
            }
            return Ok(self.store.read_file(root, start, end));
        }
        let found = self.survey(root, Vec::new()).await?;
        let partial = self.partial_for(root, &found).await?;
        let leaves = partial.leaves();
        let covered: Vec<u64> = leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| l.offset < end && l.offset + u64::from(l.len) > start)
            .map(|(i, _)| i as u64)
            .collect();
        let wanted: BTreeSet<u64> = covered
            .iter()
            .copied()
            .filter(|&i| !partial.has(i))
            .collect();
        let (tx, rx) = mpsc::channel(8);
        let (ptx, mut prx) = watch::channel(0u64);
        let me = self.clone();
        let p = partial.clone();
        let fetcher = tokio::spawn(async move {
            let transfer = me.run(p.clone(), wanted, found, false, ptx).await;
            let mut report = FetchReport {
                root: root.to_string(),
                size: p.size(),
                leaves: p.leaves().len() as u64,
                ..Default::default()
            };
            if p.is_complete() {
                if let Err(e) = me.conclude(&p, &transfer, &mut report).await {
                    tracing::warn!(%root, error = %e, "cannot store a copy fetched on demand");
                }
            } else {
                let _ = tokio::task::spawn_blocking(move || p.checkpoint()).await;
            }
        });
        tokio::spawn(async move {
            for i in covered {
                let leaf = partial.leaves()[i as usize];
                loop {
                    if partial.has(i) {
                        break;
                    }
                    if prx.changed().await.is_err() && !partial.has(i) {
                        let _ = tx
                            .send(Err(std::io::Error::other(format!(
                                "leaf {i} of {root} could not be fetched from any holder"
                            ))))
                            .await;
                        return;
                    }
                }
                let p = partial.clone();
                let bytes = match tokio::task::spawn_blocking(move || p.read_leaf(i)).await {
                    Ok(Ok(Some(b))) => b,
                    other => {
                        let _ = tx
                            .send(Err(std::io::Error::other(format!(
                                "cannot read leaf {i} of {root}: {other:?}"
                            ))))
                            .await;
                        return;
                    }
                };
                let from = start.saturating_sub(leaf.offset) as usize;
                let to = (end.min(leaf.offset + u64::from(leaf.len)) - leaf.offset) as usize;
                if tx.send(Ok(bytes.slice(from..to))).await.is_err() {
                    return; // the client went away; the fetcher keeps what it verified
                }
            }
            drop(fetcher);
        });
        Ok(rx)
    }
}

/// The bytes of DAG node `cid` of the image `p` downloads, if it is one of them.
fn node_bytes(p: &Partial, cid: &Cid) -> Option<Bytes> {
    p.nodes()
        .iter()
        .find(|(c, _)| c == cid)
        .map(|(_, b)| Bytes::copy_from_slice(b))
}
