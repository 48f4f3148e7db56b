//! One multi-leaf transfer: the per-holder workers that take runs of missing leaves from the
//! schedule, the watchers that keep each partial holder's holding current, and the hand-off of
//! every leaf to the partial download for verification. Must not decide which holders to ask
//! (that is `ask`) or store the finished image (that is the parent's `conclude`).

use super::ask::{Lease, send};
use super::{AskError, FetchClient, HolderReport, MAX_FAILURES, REFRESH, RETRY_DELAY, RUN_LEAVES};
use super::{RUNS_PER_STREAM, STALL_TIMEOUT};
use crate::p2p::fetch::schedule::{Cursor, Schedule};
use crate::p2p::fetch::{Incoming, WireError, read_frame, read_frame_into};
use crate::store::StoreError;
use crate::store::partial::Partial;
use libp2p::PeerId;
use shubnet_protocol::fetch::{FetchError as FrameError, Frame, Holding};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, watch};

/// Shared by the workers of one transfer.
pub(super) struct Transfer {
    partial: Arc<Partial>,
    sched: Mutex<Schedule>,
    /// Woken when a holding changes or leaves return to the pool.
    changed: Notify,
    progress: watch::Sender<u64>,
    pub(super) stats: Mutex<HashMap<PeerId, HolderReport>>,
    abort: AtomicBool,
    pub(super) fatal: Mutex<Option<StoreError>>,
}

/// A leaf being verified and written on a blocking thread: the outcome, its buffer (for
/// reuse), its index.
type LeafWrite = tokio::task::JoinHandle<(Result<bool, StoreError>, Vec<u8>, u64)>;

/// How a run of leaves ended.
enum RunEnd {
    Done,
    /// A kept session ended before answering: it was closed while idle; retry at once.
    Stale,
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
    /// Runs workers for `holders` until every leaf of `wanted` is verified or nobody can give
    /// the rest. Each verified leaf bumps `progress`. Holders that are not complete are
    /// watched (`Watch`), so leaves they verify meanwhile are asked from them at once;
    /// `spread` schedules rarest-first from scattered starting points, else in file order.
    pub(super) async fn run(
        &self,
        partial: Arc<Partial>,
        wanted: BTreeSet<u64>,
        holders: Vec<(PeerId, Holding)>,
        spread: bool,
        progress: watch::Sender<u64>,
    ) -> Arc<Transfer> {
        let n = partial.leaves().len() as u64;
        let streams = super::streams_per_holder(holders.len());
        // Smaller images get shorter runs, so that every stream has several: a stream asks
        // for its next run before the current one is read, so a run needs to outlast a round
        // trip only, and a slow holder then holds up few leaves that a fast one could take.
        let all = (streams * holders.len().max(1)) as u64;
        let run_leaves = (wanted.len() as u64)
            .div_ceil(all * RUNS_PER_STREAM)
            .clamp(1, RUN_LEAVES);
        let mut sched = Schedule::new(n, wanted, run_leaves, !spread);
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
            for s in 0..streams {
                let (me, t, d) = (self.clone(), transfer.clone(), dropped.clone());
                let cursor = Cursor::new(
                    local
                        ^ seed(&peer)
                        ^ ((n * streams + s) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
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

    /// Takes runs of `peer`'s leaves until the transfer ends. On a session, further runs are
    /// asked for before the current one is read, as many as keep about two of this stream's
    /// bandwidth-delay products requested ([`Pace`]), so the holder never waits a round trip
    /// for the next request; the stream (with its grown window) serves every run of the worker
    /// and is kept for later transfers. A slow holder is asked for little ahead, so fast ones
    /// take the rest.
    async fn worker(
        &self,
        peer: PeerId,
        t: Arc<Transfer>,
        dropped: Arc<AtomicBool>,
        mut cursor: Cursor,
    ) {
        let root = *t.partial.root();
        let mut failures = 0u32;
        let mut idle_since = std::time::Instant::now();
        let mut seen = *t.progress.borrow();
        // The session of the last run, and the runs already asked for on it, in order.
        let mut kept: Option<Lease> = None;
        let mut queued: VecDeque<(u64, u64)> = VecDeque::new();
        let mut pace = Pace::default();
        loop {
            if t.finished() || dropped.load(Ordering::Relaxed) {
                break;
            }
            let (first, count, mut lease) = match (queued.pop_front(), kept.take()) {
                (Some((first, count)), Some(lease)) => (first, count, lease),
                (queued_now, kept_now) => {
                    if let Some((f, c)) = queued_now {
                        // Asked on a session that is gone: the answer will never be read.
                        t.give_back(f, c);
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
                        kept = kept_now;
                        break;
                    }
                    let changed = t.changed.notified();
                    let Some((first, count)) = t.lock().take(&peer, &mut cursor) else {
                        kept = kept_now;
                        let _ = tokio::time::timeout(REFRESH, changed).await;
                        continue;
                    };
                    pace.asked = Some(std::time::Instant::now());
                    match self.ask_run(peer, kept_now, root, first, count).await {
                        Ok(lease) => (first, count, lease),
                        Err(e) => {
                            t.give_back(first, count);
                            let why = e.to_string();
                            if self
                                .after_failure(peer, &t, &dropped, &mut failures, why)
                                .await
                            {
                                continue;
                            }
                            break;
                        }
                    }
                }
            };
            idle_since = std::time::Instant::now();
            if lease.session {
                let mut ahead: u64 = queued.iter().map(|(_, c)| c).sum();
                while ahead < pace.ahead(count) {
                    let Some((f, c)) = t.lock().take(&peer, &mut cursor) else {
                        break;
                    };
                    let next = Frame::Leaves {
                        root,
                        first: f,
                        count: c,
                    };
                    if send(&mut lease.stream, &next).await.is_err() {
                        t.give_back(f, c);
                        break;
                    }
                    queued.push_back((f, c));
                    ahead += c;
                }
            }
            let end = self
                .get_run(&mut lease, peer, &t, first, count, &mut pace)
                .await;
            t.give_back(first, count);
            if !matches!(end, RunEnd::Done) {
                for (f, c) in queued.drain(..) {
                    t.give_back(f, c);
                }
            }
            match end {
                RunEnd::Done => {
                    failures = 0;
                    lease.reused = false;
                    if lease.session {
                        kept = Some(lease);
                    }
                }
                // A kept session closed while idle: nothing wrong with the holder.
                RunEnd::Stale => {}
                RunEnd::Broken(why) => {
                    if !self
                        .after_failure(peer, &t, &dropped, &mut failures, why)
                        .await
                    {
                        break;
                    }
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
                    break;
                }
                RunEnd::Fatal(e) => {
                    t.abort.store(true, Ordering::Relaxed);
                    *t.fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    t.changed.notify_waiters();
                    break;
                }
            }
        }
        if queued.is_empty() {
            if let Some(lease) = kept {
                self.give_back(peer, lease);
            }
        } else {
            for (f, c) in queued {
                t.give_back(f, c);
            }
        }
    }

    /// Asks `peer` for a run: on the worker's own session if it has one, else on a leased one.
    async fn ask_run(
        &self,
        peer: PeerId,
        kept: Option<Lease>,
        root: shubnet_protocol::Cid,
        first: u64,
        count: u64,
    ) -> Result<Lease, AskError> {
        let req = Frame::Leaves { root, first, count };
        if let Some(mut lease) = kept
            && send(&mut lease.stream, &req).await.is_ok()
        {
            return Ok(lease);
        }
        self.lease(peer, &req).await
    }

    /// Counts a broken stream; false (and the holder given up) after [`MAX_FAILURES`] in a
    /// row, else true after a pause.
    async fn after_failure(
        &self,
        peer: PeerId,
        t: &Transfer,
        dropped: &AtomicBool,
        failures: &mut u32,
        why: String,
    ) -> bool {
        *failures += 1;
        tracing::debug!(%peer, failures = *failures, %why, "fetch stream broke; retrying");
        if *failures >= MAX_FAILURES {
            dropped.store(true, Ordering::Relaxed);
            t.stat(peer, |s| s.dropped = Some(why));
            return false;
        }
        tokio::time::sleep(RETRY_DELAY).await;
        true
    }

    /// Reads the answer to `Leaves{first, count}` from `lease` into the partial download. The
    /// next frame is read from the stream while the previous leaf is verified and written on a
    /// blocking thread; the two buffers swap, so a run allocates them once.
    async fn get_run(
        &self,
        lease: &mut Lease,
        peer: PeerId,
        t: &Transfer,
        first: u64,
        count: u64,
        pace: &mut Pace,
    ) -> RunEnd {
        let s = &mut lease.stream;
        let stale = lease.reused;
        let mut started: Option<std::time::Instant> = None;
        let mut next = first;
        let mut buf = self.buffers.get();
        let mut writing: Option<LeafWrite> = None;
        let end = loop {
            let frame =
                match tokio::time::timeout(STALL_TIMEOUT, read_frame_into(s, &mut buf)).await {
                    Err(_) => break RunEnd::Broken(format!("stalled for {STALL_TIMEOUT:?}")),
                    Ok(Ok(Some(f))) => f,
                    Ok(Ok(None) | Err(WireError::Io(_))) if stale && next == first => {
                        break RunEnd::Stale;
                    }
                    Ok(Ok(None)) => break RunEnd::Broken("the stream ended early".into()),
                    Ok(Err(WireError::Io(e))) => break RunEnd::Broken(e.to_string()),
                    Ok(Err(WireError::Frame(FrameError::Truncated))) => {
                        break RunEnd::Broken("the stream ended inside a frame".into());
                    }
                    Ok(Err(WireError::Frame(e))) => {
                        break RunEnd::Bad(format!("sent a bad frame: {e}"));
                    }
                };
            if started.is_none() {
                let now = std::time::Instant::now();
                started = Some(now);
                pace.first_answer(now);
            }
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
                Incoming::Other(Frame::End) if next == first + count => {
                    if let Some(at) = started {
                        pace.ran(count, at.elapsed());
                    }
                    break RunEnd::Done;
                }
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
                if let Some(leaf) = t.partial.leaves().get(index as usize) {
                    let report = crate::p2p::fetch::badleaf::report(
                        self.control.clone(),
                        peer,
                        *t.partial.root(),
                        leaf.cid,
                    );
                    tokio::spawn(report);
                }
                Err(RunEnd::Bad(format!(
                    "sent a block for leaf {index} of {} that does not match its CID",
                    t.partial.root()
                )))
            }
            Err(e) => Err(RunEnd::Fatal(e)),
        }
    }
}

/// How far ahead one worker asks: it keeps about two of its stream's bandwidth-delay products
/// requested, from the time its first request took to answer (about a round trip) and the
/// rate of its last run. A window-limited stream's rate grows with its window, so this grows
/// with it; a slow or distant holder stays at two runs.
#[derive(Debug, Default)]
struct Pace {
    /// When the request that found no run ahead of it was sent.
    asked: Option<std::time::Instant>,
    /// The shortest time such a request took to answer.
    rtt: Option<std::time::Duration>,
    /// Leaves per second of the last complete run.
    rate: f64,
}

/// Most leaves a worker asks for ahead (64 MiB of 256 KiB leaves).
const MAX_AHEAD: u64 = 256;

impl Pace {
    fn first_answer(&mut self, now: std::time::Instant) {
        if let Some(asked) = self.asked.take() {
            let took = now.saturating_duration_since(asked);
            self.rtt = Some(self.rtt.map_or(took, |r| r.min(took)));
        }
    }

    fn ran(&mut self, leaves: u64, took: std::time::Duration) {
        if !took.is_zero() {
            self.rate = leaves as f64 / took.as_secs_f64();
        }
    }

    /// Leaves to keep asked for ahead of a run of `run` leaves.
    fn ahead(&self, run: u64) -> u64 {
        let bdp = self
            .rtt
            .map_or(0.0, |rtt| 2.0 * self.rate * rtt.as_secs_f64());
        (bdp.ceil() as u64).clamp(run.max(1), MAX_AHEAD.max(run))
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
