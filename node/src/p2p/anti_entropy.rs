//! `/shubnet/sync/1`, server and client (wire format: `shubnet_protocol::sync`).
//!
//! The server answers members of the newest roster it knows and refuses everyone else before
//! reading anything they send. The client runs right after a member connects (and again at once
//! if a round was asked for while one ran, or with backoff after a failure) and every sync
//! interval against each connected member: it takes roster versions after its own first (each
//! checked by `verify_next`), then compares the 256 manifest buckets, lists only those that
//! differ, and fetches the manifests it lacks in batches, which the registry verifies with one
//! `Verifier` per batch. A manifest whose predecessor has not arrived yet is offered again once
//! the batch round is over. Between rosters and manifests the round pulls the access records
//! (`access_sync`). The peer's holdings come with the summary and go into the
//! [`PeerBook`](super::peers::PeerBook).
//!
//! Failures are [`SyncFailure`]s. This module must not touch the swarm (it asks the event loop
//! through `Command`s) nor store images: it moves manifests, rosters and download totals only.

use super::command::Command;
use super::error::SyncFailure;
use super::events::{EventSender, NetEvent};
use super::frames::write_frame;
use super::gate::Gate;
use super::peers::PeerBook;
use super::streams::protocol;
use super::tasks::Tasks;
use crate::registry::{Registry, RegistryError};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::manifest::{Manifest, ManifestError};
use shubnet_protocol::roster::SignedRoster;
use shubnet_protocol::sync::{
    MAX_BATCH, MAX_CIDS, MAX_FRAME, MAX_ROSTERS, MAX_USAGE_ENTRIES, PROTOCOL, PROTOCOL_V1, Request,
    Response,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

type Result<T, E = SyncFailure> = std::result::Result<T, E>;

/// How long one request may wait for its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything sync needs; cheap to clone.
#[derive(Clone)]
pub struct SyncCtx {
    /// The access records exchange, run after the rosters of each round.
    pub access: super::access_sync::AccessCtx,
    /// Opens streams to peers.
    pub control: libp2p_stream::Control,
    /// Manifests and rosters.
    pub registry: Registry,
    /// What this node holds (its holdings go out with every summary).
    pub store: crate::store::Store,
    /// Download totals; `None` when they are off.
    pub usage: Option<crate::usage::UsageStore>,
    /// Who is a member.
    pub gate: Gate,
    /// Where holdings and misbehaviour go.
    pub peers: PeerBook,
    /// Tells the swarm loop about roster changes.
    pub(crate) cmds: mpsc::Sender<Command>,
    /// Tells the rest of the node (the replicator) what changed.
    pub(crate) events: EventSender,
    /// Per member, the usage digest of the totals last pulled from it.
    pub(crate) usage_pulled: Arc<Mutex<HashMap<PeerId, [u8; 32]>>>,
}

impl SyncCtx {
    fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Re-reads the roster into the gate and tells the loop if it changed.
    pub async fn roster_changed(&self) {
        let (gate, reg) = (self.gate.clone(), self.registry());
        let changed = tokio::task::spawn_blocking(move || gate.refresh(&reg))
            .await
            .unwrap_or(false);
        if changed {
            let _ = self.cmds.send(Command::RosterChanged).await;
            self.events.send(NetEvent::RosterChanged);
            // A node that just created or joined a federation turns the private flags of the
            // collections it now owns into signed policies before it publishes anything there.
            let access = self.access.access.clone();
            match tokio::task::spawn_blocking(move || access.publish_local_flags()).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "private flags not published yet"),
                Err(e) => tracing::warn!(error = %e, "private flags not published yet"),
                Ok(Ok(_)) => {}
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

async fn read_frame(s: &mut libp2p::Stream) -> Result<Option<Vec<u8>>> {
    super::frames::read_frame(s, "frame", MAX_FRAME).await
}

// ---------- server ----------

/// Which dialect a sync stream speaks: the protocol id it was opened with says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `/shubnet/sync/2`.
    Current,
    /// `/shubnet/sync/1`, the previous release's: no usage digest, no usage pages.
    Previous,
}

/// Registers both dialects and answers peers' sync requests.
pub(super) fn serve(tasks: &Tasks, ctx: SyncCtx) -> Result<(), super::error::NetError> {
    for (name, dialect) in [
        (PROTOCOL, Dialect::Current),
        (PROTOCOL_V1, Dialect::Previous),
    ] {
        let mut control = ctx.control.clone();
        let mut incoming = super::streams::accept(&mut control, name)?;
        let ctx = ctx.clone();
        tasks.spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_stream(&ctx, peer, stream, dialect).await {
                        tracing::debug!(%peer, error = %e, "sync stream ended");
                    }
                });
            }
        });
    }
    Ok(())
}

/// Serves one stream. Membership is asked before every frame is read, so a peer outside the
/// roster gets its refusal without a byte of its request being taken off the stream (a frame
/// may announce up to 20 MiB); closing then dropping the stream resets whatever it still sends.
async fn serve_stream(
    ctx: &SyncCtx,
    peer: PeerId,
    mut stream: libp2p::Stream,
    dialect: Dialect,
) -> Result<()> {
    loop {
        if !ctx.gate.is_member(&peer) {
            tracing::info!(%peer, "sync refused: not a member of the roster");
            let resp = Response::Refused {
                reason: "not a member of this federation's roster".into(),
            };
            write_frame(&mut stream, &resp.encode()).await?;
            let _ = stream.close().await;
            return Ok(());
        }
        let Some(body) = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut stream))
            .await
            .map_err(|_| SyncFailure::Idle { after: IO_TIMEOUT })??
        else {
            return Ok(());
        };
        let req = match Request::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                ctx.peers.misbehaved(peer);
                return Err(SyncFailure::BadRequest(e));
            }
        };
        let mut resp = answer(ctx, req).await?;
        if let (Dialect::Previous, Response::Summary { usage, .. }) = (dialect, &mut resp) {
            *usage = None;
        }
        write_frame(&mut stream, &resp.encode()).await?;
        if matches!(resp, Response::Refused { .. }) {
            let _ = stream.close().await;
            return Ok(());
        }
        ctx.peers.seen(peer);
    }
}

async fn answer(ctx: &SyncCtx, req: Request) -> Result<Response> {
    let reg = ctx.registry();
    Ok(match req {
        Request::Summary { federation } => {
            if ctx.gate.federation().as_deref() != Some(federation.as_str()) {
                return Ok(Response::Refused {
                    reason: "another federation".into(),
                });
            }
            let (roster_version, summary) =
                blocking(move || Ok((reg.roster_version()?, reg.summary()?))).await?;
            let store = ctx.store.clone();
            let mut holdings: Vec<Cid> = tokio::task::spawn_blocking(move || store.pins())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|p| p.into_iter().map(|(c, _)| c).collect())
                .unwrap_or_default();
            holdings.truncate(MAX_CIDS);
            Response::Summary {
                roster_version,
                buckets: summary.buckets,
                holdings,
                usage: ctx.usage.as_ref().map(|u| u.digest()),
            }
        }
        Request::Rosters { after } => Response::Rosters {
            rosters: blocking(move || reg.rosters_after(after, MAX_ROSTERS)).await?,
        },
        Request::Bucket { index } => {
            let mut cids = blocking(move || reg.bucket(index)).await?;
            cids.truncate(MAX_CIDS);
            Response::Bucket { cids }
        }
        Request::Manifests { cids } => Response::Manifests {
            manifests: blocking(move || reg.manifests_encoded(&cids)).await?,
        },
        Request::Usage { after } => {
            let totals = match ctx.usage.clone() {
                Some(u) => {
                    tokio::task::spawn_blocking(move || {
                        u.local_totals_after(after.as_ref(), MAX_USAGE_ENTRIES)
                    })
                    .await??
                }
                None => Vec::new(),
            };
            Response::Usage { totals }
        }
    })
}

// ---------- client ----------

/// What one sync round with a peer brought.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    /// New roster versions.
    pub rosters: usize,
    /// New manifests.
    pub manifests: usize,
    /// Manifests the peer sent that were refused.
    pub refused: usize,
    /// Access records that changed what this node enforces.
    pub access: u32,
}

/// Most usage pages pulled from one peer in one round (the peer's cap on roots it may report).
const MAX_USAGE_PAGES: usize = crate::usage::MAX_ROOTS_PER_PEER / MAX_USAGE_ENTRIES;

struct Session<'a> {
    ctx: &'a SyncCtx,
    peer: PeerId,
    stream: libp2p::Stream,
}

impl Session<'_> {
    async fn ask(&mut self, req: &Request) -> Result<Response> {
        write_frame(&mut self.stream, &req.encode()).await?;
        let body = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut self.stream))
            .await
            .map_err(|source| SyncFailure::NoAnswer {
                after: IO_TIMEOUT,
                source,
            })??
            .ok_or(SyncFailure::Closed)?;
        match Response::decode(&body) {
            Ok(Response::Refused { reason }) => Err(SyncFailure::Refused { reason }),
            Ok(r) => Ok(r),
            Err(e) => {
                self.ctx.peers.misbehaved(self.peer);
                Err(SyncFailure::BadAnswer(e))
            }
        }
    }

    /// Counts the peer's answer as misbehaviour and returns `e` (a protocol violation).
    fn protocol_error(&self, e: SyncFailure) -> SyncFailure {
        self.ctx.peers.misbehaved(self.peer);
        e
    }

    /// [`Self::protocol_error`] for an answer of the wrong kind.
    fn unexpected(&self, what: &'static str) -> SyncFailure {
        self.protocol_error(SyncFailure::Unexpected { what })
    }
}

/// One sync round with `peer`: rosters, then manifests, then the peer's download totals if
/// their digest changed since the last pull; holdings into the peer book.
pub async fn sync_with(ctx: &SyncCtx, peer: PeerId) -> Result<Round> {
    let federation = ctx.gate.federation().ok_or(SyncFailure::NoFederation)?;
    let (stream, dialect) = match ctx
        .control
        .clone()
        .open_stream(peer, protocol(PROTOCOL))
        .await
    {
        Ok(s) => (s, Dialect::Current),
        Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {
            let s = ctx
                .control
                .clone()
                .open_stream(peer, protocol(PROTOCOL_V1))
                .await
                .map_err(SyncFailure::OpenStream)?;
            (s, Dialect::Previous)
        }
        Err(e) => return Err(SyncFailure::OpenStream(e)),
    };
    let mut s = Session { ctx, peer, stream };
    let mut round = Round::default();
    let Response::Summary {
        roster_version,
        buckets,
        holdings,
        usage,
    } = s.ask(&Request::Summary { federation }).await?
    else {
        return Err(s.unexpected("something else than a summary"));
    };
    ctx.peers.set_holdings(peer, holdings);
    let reg = ctx.registry();

    // Rosters first: manifests are checked against the newest one.
    loop {
        let r = reg.clone();
        let have = blocking(move || r.roster_version()).await?;
        if have >= roster_version {
            break;
        }
        let Response::Rosters { rosters } = s.ask(&Request::Rosters { after: have }).await? else {
            return Err(s.unexpected("something else than rosters"));
        };
        let decoded: Vec<SignedRoster> = rosters
            .iter()
            .map(|b| SignedRoster::decode(b))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                ctx.peers.misbehaved(peer);
                SyncFailure::BadRoster(e)
            })?;
        let r = reg.clone();
        let new = match blocking(move || r.accept_rosters(&decoded)).await {
            Ok(n) => n,
            Err(e) => {
                ctx.peers.misbehaved(peer);
                ctx.roster_changed().await;
                return Err(SyncFailure::RosterRefused(Box::new(e)));
            }
        };
        round.rosters += new;
        ctx.roster_changed().await;
        if new == 0 {
            break;
        }
    }

    // Access records next: a policy should be in force before the manifests it covers arrive.
    match super::access_sync::pull(&ctx.access, peer).await {
        Ok(n) => round.access = n,
        Err(e) => tracing::debug!(%peer, error = %e, "access records not pulled this round"),
    }

    // Manifests: only the buckets that differ.
    let r = reg.clone();
    let mine = blocking(move || r.summary()).await?;
    let mut missing: Vec<Cid> = Vec::new();
    for index in mine.differing(&buckets) {
        let Response::Bucket { cids } = s.ask(&Request::Bucket { index }).await? else {
            return Err(s.unexpected("something else than a bucket"));
        };
        let r = reg.clone();
        let lacking = blocking(move || {
            let mut out = Vec::new();
            for c in cids {
                if !r.has_manifest(&c)? {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .await?;
        missing.extend(lacking);
    }
    let mut deferred: Vec<Manifest> = Vec::new();
    for chunk in missing.chunks(MAX_BATCH) {
        let asked: HashSet<Cid> = chunk.iter().copied().collect();
        let Response::Manifests { manifests } = s
            .ask(&Request::Manifests {
                cids: chunk.to_vec(),
            })
            .await?
        else {
            return Err(s.unexpected("something else than manifests"));
        };
        let mut batch = Vec::with_capacity(manifests.len());
        for b in manifests {
            match Manifest::decode(&b) {
                Ok(m) if asked.contains(&m.cid()) => batch.push(m),
                Ok(_) => return Err(s.unexpected("a manifest that was not asked for")),
                Err(e) => return Err(s.protocol_error(SyncFailure::BadManifest(e))),
            }
        }
        accept(ctx, peer, &reg, batch, &mut round, &mut deferred).await?;
    }
    // Manifests whose predecessor came in a later batch: retry while that helps.
    while !deferred.is_empty() {
        let before = deferred.len();
        let batch = std::mem::take(&mut deferred);
        accept(ctx, peer, &reg, batch, &mut round, &mut deferred).await?;
        if deferred.len() == before {
            round.refused += deferred.len();
            for m in &deferred {
                tracing::info!(%peer, cid = %m.cid(), "synced manifest refused: its predecessor is unknown");
            }
            break;
        }
    }
    let pulled = ctx
        .usage_pulled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&peer)
        .copied();
    // A peer without a digest predates it: its totals are pulled once per connection's first
    // round, as gossip repeats only changes.
    let stale = dialect == Dialect::Current
        && match usage {
            Some(d) => pulled != Some(d),
            None => pulled.is_none(),
        };
    if stale {
        pull_usage(&mut s).await?;
        ctx.usage_pulled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer, usage.unwrap_or_default());
    }
    let _ = s.stream.close().await;
    Ok(round)
}

/// Pulls every download total `s`'s peer served, page by page, into the usage store.
async fn pull_usage(s: &mut Session<'_>) -> Result<()> {
    let Some(store) = s.ctx.usage.clone() else {
        return Ok(());
    };
    let who = s.peer.to_string();
    let mut after: Option<Cid> = None;
    let mut pulled = 0usize;
    for _ in 0..MAX_USAGE_PAGES {
        let Response::Usage { totals } = s.ask(&Request::Usage { after }).await? else {
            return Err(s.unexpected("something else than usage totals"));
        };
        let last = totals.last().map(|(c, _)| *c);
        // Pages ascend: a root at or before `after` would let a peer loop this forever.
        let mut prev = after.map(|c| c.to_bytes());
        for (c, _) in &totals {
            let b = c.to_bytes();
            if prev.as_ref().is_some_and(|p| *p >= b) {
                return Err(s.unexpected("usage totals out of order"));
            }
            prev = Some(b);
        }
        let full = totals.len() >= MAX_USAGE_ENTRIES;
        pulled += totals.len();
        let (u, w) = (store.clone(), who.clone());
        tokio::task::spawn_blocking(move || u.record_announced(&w, &totals)).await??;
        if !full || last.is_none() {
            break;
        }
        after = last;
    }
    tracing::debug!(peer = %s.peer, roots = pulled, "download totals pulled");
    Ok(())
}

async fn accept(
    ctx: &SyncCtx,
    peer: PeerId,
    reg: &Registry,
    batch: Vec<Manifest>,
    round: &mut Round,
    deferred: &mut Vec<Manifest>,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let r = reg.clone();
    let keep = batch.clone();
    let report = blocking(move || r.accept_manifests(batch)).await?;
    round.manifests += report.accepted;
    for (cid, e) in report.refused {
        match e {
            RegistryError::Manifest(ManifestError::WrongPrev { .. }) => {
                if let Some(m) = keep.iter().find(|m| m.cid() == cid) {
                    deferred.push(m.clone());
                }
            }
            e => {
                round.refused += 1;
                tracing::warn!(%cid, error = %e, "synced manifest refused");
                if matches!(
                    e,
                    RegistryError::Manifest(
                        ManifestError::BadSignature | ManifestError::UnknownPublisher
                    )
                ) {
                    ctx.peers.misbehaved(peer);
                }
            }
        }
    }
    Ok(())
}

// ---------- scheduling ----------

/// First delay before a failed round is tried again; it doubles up to the sync interval.
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// Per-peer round state: at most one round runs per peer; a request that comes while one runs
/// is kept and runs right after it, and a failed round is retried with backoff, so nothing that
/// asked for a round (a connection, a roster change, a gossip gap) is lost to a race.
#[derive(Default)]
struct Rounds {
    running: HashSet<PeerId>,
    again: HashSet<PeerId>,
    failures: HashMap<PeerId, u32>,
}

/// Runs sync rounds: with each member right after it connects or asks (`requests`), and with
/// every connected member each `interval`.
pub(super) fn schedule(
    tasks: &Tasks,
    ctx: SyncCtx,
    mut requests: mpsc::Receiver<PeerId>,
    interval: Duration,
) {
    let rounds: Arc<Mutex<Rounds>> = Arc::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<PeerId>();
    let rounds_tasks = tasks.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let peers = tokio::select! {
                p = requests.recv() => match p {
                    Some(p) => vec![p],
                    None => return,
                },
                Some(p) = done_rx.recv() => vec![p],
                _ = tick.tick() => ctx.peers.connected_peers(),
            };
            for peer in peers {
                if !ctx.gate.is_member(&peer) || ctx.gate.federation().is_none() {
                    continue;
                }
                {
                    let mut r = rounds.lock().unwrap_or_else(PoisonError::into_inner);
                    if !r.running.insert(peer) {
                        r.again.insert(peer);
                        continue;
                    }
                }
                let (ctx, rounds, done) = (ctx.clone(), rounds.clone(), done_tx.clone());
                rounds_tasks.spawn(async move {
                    let ok = match sync_with(&ctx, peer).await {
                        Ok(r) => {
                            if r.rosters + r.manifests + r.refused > 0 {
                                tracing::info!(
                                    %peer, rosters = r.rosters, manifests = r.manifests,
                                    refused = r.refused, "synced"
                                );
                            } else {
                                tracing::debug!(%peer, "in sync");
                            }
                            true
                        }
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "sync failed");
                            false
                        }
                    };
                    let retry_in = {
                        let mut r = rounds.lock().unwrap_or_else(PoisonError::into_inner);
                        r.running.remove(&peer);
                        let again = r.again.remove(&peer);
                        if ok {
                            r.failures.remove(&peer);
                            again.then_some(Duration::ZERO)
                        } else {
                            let n = r.failures.entry(peer).or_insert(0);
                            *n = n.saturating_add(1);
                            let backoff = RETRY_FIRST.saturating_mul(1 << (*n - 1).min(16));
                            Some(if again {
                                Duration::ZERO
                            } else {
                                backoff.min(interval)
                            })
                        }
                    };
                    if let Some(delay) = retry_in {
                        tokio::time::sleep(delay).await;
                        if ctx.peers.connected_peers().contains(&peer) {
                            let _ = done.send(peer);
                        }
                    }
                });
            }
        }
    });
}
