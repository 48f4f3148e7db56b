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

use super::schedule::{Cursor, Schedule};
use super::{BufferPool, Incoming, Partials, WireError, read_frame, read_frame_into, write_frame};
use crate::p2p::peers::PeerBook;
use crate::p2p::ratelimit::RateLimit;
use crate::p2p::{Command, protocol};
use crate::store::partial::Partial;
use crate::store::{Store, StoreError};
use bytes::Bytes;
use futures::AsyncWriteExt;
use libp2p::PeerId;
use serde::Serialize;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::{DAG_PB, RAW, verify};
use shubnet_protocol::fetch::{FetchError as FrameError, Frame, Holding, PROTOCOL};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// How long a holder may take to answer `Have` or `Nodes`.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leaf stream may stall before it counts as broken.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most leaves per request (16 × 256 KiB = 4 MiB): long enough that a request costs nothing
/// next to its leaves, short enough that a slow holder does not keep many leaves from others.
pub const RUN_LEAVES: u64 = 16;
/// Streams per holder at once.
pub const STREAMS_PER_HOLDER: usize = 2;
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

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No holder named, none announced, and no peer connected.
    #[error("no holder of {0} is known and no peer is connected")]
    NoHolders(Cid),
    /// Every candidate was asked; none holds the image.
    #[error("none of the {asked} peers asked holds {root}{}", detail(.reasons))]
    NotHeld {
        /// The image.
        root: Cid,
        /// How many were asked.
        asked: usize,
        /// What each said, when it was not a plain "no".
        reasons: Vec<String>,
    },
    /// Some leaves could not be fetched from anyone; what was verified is kept for a retry.
    #[error("{root}: {missing} of {total} leaves could not be fetched: {}", .reasons.join("; "))]
    Incomplete {
        /// The image.
        root: Cid,
        /// Leaves still missing.
        missing: u64,
        /// Leaves wanted.
        total: u64,
        /// Why each holder stopped.
        reasons: Vec<String>,
    },
    /// The DAG's nodes could not be obtained or do not describe a supported file.
    #[error("{0}")]
    Dag(String),
    /// The local store failed (disk full, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn detail(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    }
}

/// What one holder contributed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HolderReport {
    /// Its peer id.
    pub peer: String,
    /// Leaves it sent that were verified and kept.
    pub leaves: u64,
    /// Leaf bytes received from it (including any refused).
    pub bytes: u64,
    /// Its misbehaviour count after this transfer (wrong blocks, malformed frames).
    pub misbehaviour: u64,
    /// Why it was dropped from the transfer, if it was.
    pub dropped: Option<String>,
}

/// The outcome of a fetch, logged as JSON (`fetch report: {...}`) and returned to callers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchReport {
    /// The image.
    pub root: String,
    /// File size.
    pub size: u64,
    /// Leaves in the DAG.
    pub leaves: u64,
    /// Leaves already verified on disk before this call (a resumed transfer).
    pub already_verified: u64,
    /// Leaves fetched and verified by this call.
    pub fetched_leaves: u64,
    /// Leaf bytes received by this call.
    pub bytes_received: u64,
    /// Per holder.
    pub holders: Vec<HolderReport>,
    /// Milliseconds from the survey of holders to the last leaf verified.
    pub transfer_ms: u64,
    /// Milliseconds to make the copy a stored blob (fsync, whole-file sha256, index).
    pub store_ms: u64,
}

/// A handle for fetching images from federation members; cheap to clone.
#[derive(Clone)]
pub struct FetchClient {
    control: libp2p_stream::Control,
    store: Store,
    partials: Partials,
    peers: PeerBook,
    download: RateLimit,
    commands: mpsc::Sender<Command>,
    buffers: BufferPool,
}

impl std::fmt::Debug for FetchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchClient").finish_non_exhaustive()
    }
}

/// Shared by the workers of one transfer.
struct Transfer {
    partial: Arc<Partial>,
    sched: Mutex<Schedule>,
    /// Woken when a holding changes or leaves return to the pool.
    changed: Notify,
    progress: watch::Sender<u64>,
    stats: Mutex<HashMap<PeerId, HolderReport>>,
    abort: AtomicBool,
    fatal: Mutex<Option<StoreError>>,
}

/// A leaf being verified and written on a blocking thread: the outcome, its buffer (for
/// reuse), its index.
type LeafWrite = tokio::task::JoinHandle<(Result<bool, StoreError>, Vec<u8>, u64)>;

/// How a run of leaves ended.
enum RunEnd {
    Done,
    /// The stream broke or the holder declined; retry.
    Broken(String),
    /// The holder sent a wrong leaf or garbage.
    Bad(String),
    /// The local store failed; stop everything.
    Fatal(StoreError),
}

impl Transfer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.sched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stat(&self, peer: PeerId, f: impl FnOnce(&mut HolderReport)) {
        let mut m = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        f(m.entry(peer).or_insert_with(|| HolderReport {
            peer: peer.to_string(),
            ..Default::default()
        }));
    }

    /// Records a holder's new holding and wakes idle workers.
    fn set_holding(&self, peer: PeerId, h: Holding) {
        self.lock().set_holding(peer, h);
        self.changed.notify_waiters();
    }

    /// Returns the leaves of a run that were not verified.
    fn give_back(&self, first: u64, count: u64) {
        self.lock().give_back(first, count, |i| self.partial.has(i));
        self.changed.notify_waiters();
    }

    fn finished(&self) -> bool {
        self.lock().is_done() || self.abort.load(Ordering::Relaxed)
    }
}

impl FetchClient {
    pub(crate) fn new(
        control: libp2p_stream::Control,
        store: Store,
        partials: Partials,
        peers: PeerBook,
        download: RateLimit,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Self {
            control,
            store,
            partials,
            peers,
            download,
            commands,
            buffers: BufferPool::default(),
        }
    }

    /// The node's peer table.
    pub fn peers(&self) -> &PeerBook {
        &self.peers
    }

    /// Opens a stream to `peer`, reconnecting through the event loop if the connection is gone.
    async fn open(&self, peer: PeerId) -> Result<libp2p::Stream, String> {
        match self
            .control
            .clone()
            .open_stream(peer, protocol(PROTOCOL))
            .await
        {
            Ok(s) => return Ok(s),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot open a fetch stream; reconnecting")
            }
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reconnect(peer, tx))
            .await
            .map_err(|_| "the p2p network is not running".to_string())?;
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => return Err(e.to_string()),
            _ => return Err(format!("cannot reconnect to {peer}")),
        }
        self.control
            .clone()
            .open_stream(peer, protocol(PROTOCOL))
            .await
            .map_err(|e| format!("cannot open a fetch stream to {peer}: {e}"))
    }

    /// Opens a stream to `peer` and sends `req`. A connection that closes just as the stream
    /// opens (two members dialling each other at once keep one of the two connections) is
    /// retried twice, after 0.2 s and 0.4 s, reconnecting if no connection is left.
    async fn request(&self, peer: PeerId, req: &Frame) -> Result<libp2p::Stream, String> {
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_DELAY * (1 << (attempt - 1))).await;
            }
            let mut s = self.open(peer).await?;
            let sent = async {
                write_frame(&mut s, req).await?;
                s.flush().await
            };
            match sent.await {
                Ok(()) => return Ok(s),
                Err(e) => last = format!("sending to {peer}: {e}"),
            }
        }
        Err(last)
    }

    /// Asks `peer` what it holds of `root`.
    pub async fn have(&self, peer: PeerId, root: Cid) -> Result<Holding, String> {
        let ask = async {
            let mut s = self.request(peer, &Frame::Have(root)).await?;
            match read_frame(&mut s).await {
                Ok(Some(Frame::Holding(h))) => Ok(h),
                Ok(Some(Frame::Error(why))) => Err(format!("{peer}: {why}")),
                Ok(other) => Err(format!("{peer} answered Have with {other:?}")),
                Err(e) => Err(format!("{peer}: {e}")),
            }
        };
        tokio::time::timeout(ASK_TIMEOUT, ask)
            .await
            .unwrap_or_else(|_| Err(format!("{peer} did not answer within {ASK_TIMEOUT:?}")))
    }

    /// The verified dag-pb nodes of `root` from `peer`.
    async fn nodes_from(&self, peer: PeerId, root: Cid) -> Result<Vec<(Cid, Vec<u8>)>, String> {
        let ask = async {
            let mut s = self.request(peer, &Frame::Nodes(root)).await?;
            let mut out = Vec::new();
            loop {
                match read_frame(&mut s).await {
                    Ok(Some(Frame::Node { cid, bytes })) => {
                        if cid.codec() != DAG_PB || verify(&cid, &bytes).is_err() {
                            self.peers.misbehaved(peer);
                            return Err(format!("{peer} sent a node that does not match {cid}"));
                        }
                        if out.len() >= MAX_NODES {
                            return Err(format!("{peer} sent too many nodes"));
                        }
                        out.push((cid, bytes));
                    }
                    Ok(Some(Frame::End)) => return Ok(out),
                    Ok(Some(Frame::Error(why))) => return Err(format!("{peer}: {why}")),
                    Ok(other) => return Err(format!("{peer} answered Nodes with {other:?}")),
                    Err(e) => return Err(format!("{peer}: {e}")),
                }
            }
        };
        tokio::time::timeout(ASK_TIMEOUT, ask)
            .await
            .unwrap_or_else(|_| Err(format!("{peer} did not send the nodes in time")))
    }

    /// Who holds `root` (and what): the named holders, else those that announced it, else
    /// every connected peer, each asked `Have`.
    async fn survey(
        &self,
        root: Cid,
        holders: Vec<PeerId>,
    ) -> Result<Vec<(PeerId, Holding)>, FetchError> {
        let named = !holders.is_empty();
        let deadline = tokio::time::Instant::now() + RECONNECT_WAIT;
        loop {
            let mut candidates = holders.clone();
            match self
                .survey_once(root, named, &mut candidates, deadline)
                .await
            {
                // A failed ask (a connection being replaced just after a restart, a reset
                // stream) is no answer: ask again while the reconnect window lasts.
                Err(FetchError::NotHeld { reasons, .. })
                    if !reasons.is_empty() && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(%root, ?reasons, "no holder answered; asking again");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                other => return other,
            }
        }
    }

    async fn survey_once(
        &self,
        root: Cid,
        named: bool,
        candidates: &mut Vec<PeerId>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<(PeerId, Holding)>, FetchError> {
        while !named && candidates.is_empty() {
            // Announced holders first, then every connected peer: announcements can lag (a
            // copy finished a moment ago) or be stale (a holder lost its disk).
            *candidates = self.peers.holders_of(&root);
            for p in self.peers.connected_peers() {
                if !candidates.contains(&p) {
                    candidates.push(p);
                }
            }
            // Nobody yet: a node that just started, or whose connection just dropped, is
            // usually reconnecting; give that a moment before giving up.
            // A node that never saw a peer has nobody to wait for.
            if candidates.is_empty()
                && tokio::time::Instant::now() < deadline
                && !self.peers.snapshot().is_empty()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                break;
            }
        }
        if candidates.is_empty() {
            return Err(FetchError::NoHolders(root));
        }
        let asked = candidates.len();
        let answers = futures::future::join_all(
            candidates
                .iter()
                .map(|&p| async move { (p, self.have(p, root).await) }),
        )
        .await;
        let mut found = Vec::new();
        let mut reasons = Vec::new();
        for (peer, a) in answers {
            match a {
                // Kept: a member fetching the same image may soon serve parts of it.
                Ok(h) => found.push((peer, h)),
                Err(e) => reasons.push(e),
            }
        }
        if found.iter().all(|(_, h)| matches!(h, Holding::None)) {
            return Err(FetchError::NotHeld {
                root,
                asked,
                reasons,
            });
        }
        // Complete holders first: they are asked for the nodes.
        found.sort_by_key(|(_, h)| match h {
            Holding::Complete => 0,
            Holding::Partial { .. } => 1,
            Holding::None => 2,
        });
        Ok(found)
    }

    async fn partial_for(
        &self,
        root: Cid,
        holders: &[(PeerId, Holding)],
    ) -> Result<Arc<Partial>, FetchError> {
        let errors = Mutex::new(Vec::new());
        let res = self
            .partials
            .open(&self.store, root, || async {
                for (peer, _) in holders.iter().filter(|(_, h)| *h != Holding::None) {
                    match self.nodes_from(*peer, root).await {
                        Ok(n) => return Ok(n),
                        Err(e) => errors
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(e),
                    }
                }
                Err(StoreError::Fetch(format!(
                    "cannot learn the DAG of {root}: {}",
                    errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .join("; ")
                )))
            })
            .await;
        match res {
            Ok(p) => Ok(p),
            Err(StoreError::Fetch(m)) | Err(StoreError::Invalid(m)) => Err(FetchError::Dag(m)),
            Err(e) => Err(e.into()),
        }
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
        let log = |report: &FetchReport| {
            let json = serde_json::to_string(report).unwrap_or_default();
            tracing::info!(%root, "fetch report: {json}");
        };
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

    /// Runs workers for `holders` until every leaf of `wanted` is verified or nobody can give
    /// the rest. Each verified leaf bumps `progress`. Holders that are not complete are
    /// watched (`Watch`), so leaves they verify meanwhile are asked from them at once;
    /// `spread` schedules rarest-first from scattered starting points, else in file order.
    async fn run(
        &self,
        partial: Arc<Partial>,
        wanted: BTreeSet<u64>,
        holders: Vec<(PeerId, Holding)>,
        spread: bool,
        progress: watch::Sender<u64>,
    ) -> Arc<Transfer> {
        let n = partial.leaves().len() as u64;
        let mut sched = Schedule::new(n, wanted, RUN_LEAVES, !spread);
        for (peer, h) in &holders {
            sched.set_holding(*peer, h.clone());
        }
        let transfer = Arc::new(Transfer {
            partial,
            sched: Mutex::new(sched),
            changed: Notify::new(),
            progress,
            stats: Mutex::default(),
            abort: AtomicBool::new(false),
            fatal: Mutex::new(None),
        });
        let local = random_seed();
        let mut tasks = tokio::task::JoinSet::new();
        let mut watchers = tokio::task::JoinSet::new();
        for (n, (peer, holding)) in holders.into_iter().enumerate() {
            if !matches!(holding, Holding::Complete) {
                let (me, t) = (self.clone(), transfer.clone());
                watchers.spawn(async move { me.watcher(peer, t).await });
            }
            let dropped = Arc::new(AtomicBool::new(false));
            for s in 0..STREAMS_PER_HOLDER {
                let (me, t, d) = (self.clone(), transfer.clone(), dropped.clone());
                let cursor = Cursor::new(
                    local
                        ^ seed(&peer)
                        ^ ((n * STREAMS_PER_HOLDER + s) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                tasks.spawn(async move { me.worker(peer, t, d, cursor).await });
            }
        }
        while tasks.join_next().await.is_some() {}
        watchers.abort_all();
        transfer
    }

    /// Keeps the schedule's view of `peer`'s holding current until the transfer ends: a
    /// `Watch` stream, or polling `Have` if the peer does not answer `Watch`.
    async fn watcher(&self, peer: PeerId, t: Arc<Transfer>) {
        let root = *t.partial.root();
        let mut failures = 0u32;
        while !t.finished() && failures < MAX_FAILURES {
            let mut s = match self.request(peer, &Frame::Watch(root)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot watch a holder");
                    failures += 1;
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            loop {
                match read_frame(&mut s).await {
                    Ok(Some(Frame::Holding(h))) => {
                        failures = 0;
                        let complete = matches!(h, Holding::Complete);
                        t.set_holding(peer, h);
                        if complete {
                            return;
                        }
                    }
                    Ok(Some(Frame::Error(why))) => {
                        tracing::debug!(%peer, %why, "a holder declined Watch; polling Have");
                        return self.poll_have(peer, &t).await;
                    }
                    _ => break,
                }
            }
            failures += 1;
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }

    async fn poll_have(&self, peer: PeerId, t: &Transfer) {
        let root = *t.partial.root();
        while !t.finished() {
            if let Ok(h) = self.have(peer, root).await {
                let complete = matches!(h, Holding::Complete);
                t.set_holding(peer, h);
                if complete {
                    return;
                }
            }
            tokio::time::sleep(REFRESH).await;
        }
    }

    async fn worker(
        &self,
        peer: PeerId,
        t: Arc<Transfer>,
        dropped: Arc<AtomicBool>,
        mut cursor: Cursor,
    ) {
        let mut failures = 0u32;
        let mut idle_since = std::time::Instant::now();
        let mut seen = *t.progress.borrow();
        loop {
            if t.finished() || dropped.load(Ordering::Relaxed) {
                return;
            }
            let now = *t.progress.borrow();
            if now != seen {
                // Somebody made progress: waiting here is not a stall.
                seen = now;
                idle_since = std::time::Instant::now();
            }
            if idle_since.elapsed() > STALL_TIMEOUT {
                t.stat(peer, |s| {
                    s.dropped = Some("has none of the missing leaves".into())
                });
                return;
            }
            let changed = t.changed.notified();
            let Some((first, count)) = t.lock().take(&peer, &mut cursor) else {
                let _ = tokio::time::timeout(REFRESH, changed).await;
                continue;
            };
            idle_since = std::time::Instant::now();
            let end = self.get_run(peer, &t, first, count).await;
            t.give_back(first, count);
            match end {
                RunEnd::Done => failures = 0,
                RunEnd::Broken(why) => {
                    failures += 1;
                    tracing::debug!(%peer, failures, %why, "fetch stream broke; retrying");
                    if failures >= MAX_FAILURES {
                        dropped.store(true, Ordering::Relaxed);
                        t.stat(peer, |s| s.dropped = Some(why));
                        return;
                    }
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                RunEnd::Bad(why) => {
                    let total = self.peers.misbehaved(peer);
                    tracing::warn!(%peer, misbehaviour = total, %why, "dropping a holder that sent bad data");
                    dropped.store(true, Ordering::Relaxed);
                    t.set_holding(peer, Holding::None);
                    t.stat(peer, |s| {
                        s.misbehaviour = total;
                        s.dropped = Some(why);
                    });
                    return;
                }
                RunEnd::Fatal(e) => {
                    t.abort.store(true, Ordering::Relaxed);
                    *t.fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    t.changed.notify_waiters();
                    return;
                }
            }
        }
    }

    /// Fetches leaves `first..first+count` from `peer` into the partial download. The next
    /// frame is read from the stream while the previous leaf is verified and written on a
    /// blocking thread; the two buffers swap, so a run allocates them once.
    async fn get_run(&self, peer: PeerId, t: &Transfer, first: u64, count: u64) -> RunEnd {
        let root = *t.partial.root();
        let req = Frame::Leaves { root, first, count };
        let mut s = match self.request(peer, &req).await {
            Ok(s) => s,
            Err(e) => return RunEnd::Broken(e),
        };
        let mut next = first;
        let mut buf = self.buffers.get();
        let mut writing: Option<LeafWrite> = None;
        let end = loop {
            let frame = match tokio::time::timeout(STALL_TIMEOUT, read_frame_into(&mut s, &mut buf))
                .await
            {
                Err(_) => break RunEnd::Broken(format!("stalled for {STALL_TIMEOUT:?}")),
                Ok(Ok(Some(f))) => f,
                Ok(Ok(None)) => break RunEnd::Broken("the stream ended early".into()),
                Ok(Err(WireError::Io(e))) => break RunEnd::Broken(e.to_string()),
                Ok(Err(WireError::Frame(FrameError::Truncated))) => {
                    break RunEnd::Broken("the stream ended inside a frame".into());
                }
                Ok(Err(WireError::Frame(e))) => {
                    break RunEnd::Bad(format!("sent a bad frame: {e}"));
                }
            };
            match frame {
                Incoming::Leaf { index, range } => {
                    if index != next || index >= first + count {
                        break RunEnd::Bad(format!("sent leaf {index} where {next} was due"));
                    }
                    self.download.acquire(range.len()).await;
                    let len = range.len() as u64;
                    t.stat(peer, |s| s.bytes += len);
                    let spare = match writing.take() {
                        Some(w) => match self.settle(w, peer, t).await {
                            Ok(b) => b,
                            Err(end) => break end,
                        },
                        None => self.buffers.get(),
                    };
                    let filled = std::mem::replace(&mut buf, spare);
                    let p = t.partial.clone();
                    writing = Some(tokio::task::spawn_blocking(move || {
                        let written = p.write_leaf(index, &filled[range]);
                        (written, filled, index)
                    }));
                    next += 1;
                }
                Incoming::Other(Frame::End) if next == first + count => break RunEnd::Done,
                Incoming::Other(Frame::End) => {
                    break RunEnd::Broken(format!("ended at leaf {next}"));
                }
                Incoming::Other(Frame::Error(why)) => {
                    break RunEnd::Broken(format!("declined: {why}"));
                }
                Incoming::Other(other) => {
                    break RunEnd::Bad(format!("sent {other:?} in a leaf stream"));
                }
            }
        };
        // The leaf still being written counts before anything else: a wrong or unwritable
        // leaf outweighs a broken stream, and a verified one must be recorded before the run's
        // unverified leaves go back to the pool.
        let end = match writing.take() {
            Some(w) => match self.settle(w, peer, t).await {
                Ok(spare) => {
                    self.buffers.put(spare);
                    end
                }
                Err(worse) => worse,
            },
            None => end,
        };
        self.buffers.put(buf);
        end
    }

    /// Waits for a leaf write started by [`get_run`](Self::get_run) and records it; gives back
    /// its buffer, or how the run must end.
    async fn settle(&self, w: LeafWrite, peer: PeerId, t: &Transfer) -> Result<Vec<u8>, RunEnd> {
        let (written, buf, index) = w
            .await
            .map_err(|e| RunEnd::Fatal(StoreError::Invalid(format!("task failed: {e}"))))?;
        match written {
            Ok(true) => {
                t.stat(peer, |s| s.leaves += 1);
                t.progress.send_modify(|n| *n += 1);
                Ok(buf)
            }
            Ok(false) => {
                shubnet_metrics::global().reject("block", "hash_mismatch");
                Err(RunEnd::Bad(format!(
                    "sent a block for leaf {index} of {} that does not match its CID",
                    t.partial.root()
                )))
            }
            Err(e) => Err(RunEnd::Fatal(e)),
        }
    }

    /// An image that is one raw block (a file of at most one leaf): asks the holders in turn
    /// for leaf 0, verifies it against `root` itself, and stores it (unpinned). A holder that
    /// sends a wrong block is counted and the next one is asked.
    async fn fetch_single(
        &self,
        root: Cid,
        found: &[(PeerId, Holding)],
    ) -> Result<FetchReport, FetchError> {
        let mut report = FetchReport {
            root: root.to_string(),
            leaves: 1,
            ..Default::default()
        };
        let mut reasons = Vec::new();
        for (peer, _) in found.iter().filter(|(_, h)| *h != Holding::None) {
            let mut h = HolderReport {
                peer: peer.to_string(),
                ..Default::default()
            };
            let got = self.block_from(*peer, root, &mut h).await;
            report.bytes_received += h.bytes;
            match got {
                Ok(bytes) => {
                    let rec = self.store.store_single_block(&root, bytes).await?;
                    h.leaves = 1;
                    report.holders.push(h);
                    report.size = rec.size;
                    report.fetched_leaves = 1;
                    let json = serde_json::to_string(&report).unwrap_or_default();
                    tracing::info!(%root, "fetch report: {json}");
                    return Ok(report);
                }
                Err(why) => {
                    reasons.push(format!("{peer}: {why}"));
                    h.dropped = Some(why);
                    report.holders.push(h);
                }
            }
        }
        let json = serde_json::to_string(&report).unwrap_or_default();
        tracing::info!(%root, "fetch report: {json}");
        Err(FetchError::Incomplete {
            root,
            missing: 1,
            total: 1,
            reasons,
        })
    }

    /// The single block `root` from `peer` (its leaf 0), verified against `root`.
    async fn block_from(
        &self,
        peer: PeerId,
        root: Cid,
        h: &mut HolderReport,
    ) -> Result<Bytes, String> {
        let ask = async {
            let req = Frame::Leaves {
                root,
                first: 0,
                count: 1,
            };
            let mut s = self.request(peer, &req).await?;
            let bytes = match read_frame(&mut s).await {
                Ok(Some(Frame::Leaf { index: 0, bytes })) => bytes,
                Ok(Some(Frame::Error(why))) => return Err(format!("declined: {why}")),
                Ok(Some(Frame::Leaf { index, .. })) => {
                    return Err(format!("sent leaf {index} of a one-block image"));
                }
                Ok(other) => return Err(format!("answered Leaves with {other:?}")),
                Err(e) => return Err(e.to_string()),
            };
            self.download.acquire(bytes.len()).await;
            h.bytes += bytes.len() as u64;
            if verify(&root, &bytes).is_err() {
                h.misbehaviour = self.peers.misbehaved(peer);
                tracing::warn!(
                    %peer,
                    misbehaviour = h.misbehaviour,
                    %root,
                    "a holder sent a block that does not match its CID"
                );
                return Err(format!("sent a block that does not match {root}"));
            }
            Ok(Bytes::from(bytes))
        };
        tokio::time::timeout(STALL_TIMEOUT, ask)
            .await
            .unwrap_or_else(|_| Err(format!("did not send the block within {STALL_TIMEOUT:?}")))
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

/// A number different for each transfer, so nodes fetching the same image at once start at
/// different places of it.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // std seeds each RandomState from the OS's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A per-peer number, so holders start at different places of the image.
fn seed(peer: &PeerId) -> u64 {
    peer.to_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}
