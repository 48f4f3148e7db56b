//! Placement, pinning and repair: every node decides alone, from the roster and the manifests
//! it knows, which images it must hold, and fetches the ones it lacks.
//!
//! A node holds an image when [`placement`] ranks it among the k live nodes for that root,
//! when its own mirror policy (`config.toml` `[replication] mirror`) asks for the collection,
//! or when its institution published it (the publisher keeps its own copy). A holder that has
//! not been seen for the grace period no longer counts as live, so the next node in rendezvous
//! order takes its place and fetches the image: that is repair. A tag whose head is a tombstone
//! has its content unpinned at once and removed only after the retention period.
//!
//! The replicator never talks to peers itself: it reads the [`PeerBook`] (which sync and
//! gossip keep up to date) and asks a [`Transfers`] implementation to fetch and announce.

mod leave;
pub mod placement;
mod transfers;
pub use shubnet_protocol::admin::{LeaveImage, LeaveProgress};
pub use transfers::NetTransfers;
mod status;

pub use shubnet_protocol::admin::{ImageStatus, Status};

use crate::clock::unix_now;
use crate::config::ReplicationConfig;
use crate::p2p::NetEvent;
use crate::p2p::peers::PeerBook;
use crate::registry::Registry;
use crate::store::Store;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::manifest::Manifest;
use shubnet_protocol::roster::{Member, Roster};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Fetches run at once; more wait for the next round.
const MAX_CONCURRENT_FETCHES: usize = 2;

/// What the replicator needs from the network.
pub trait Transfers: Send + Sync + 'static {
    /// Fetches the complete image `root`, from `holders` if any are known (else from whoever
    /// has it), verifying every block, and stores it (unpinned).
    fn fetch(
        &self,
        root: Cid,
        holders: Vec<PeerId>,
    ) -> BoxFuture<'static, Result<(), TransferFailed>>;
    /// Tells the federation this node now holds `root`.
    fn announce_holding(&self, root: Cid);
    /// Tells the federation this node is leaving (`shubnet leave`).
    fn announce_leaving(&self) {}
}

/// Why a transfer failed, as the [`Transfers`] implementation reports it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransferFailed(pub Box<dyn std::error::Error + Send + Sync>);

/// Why the replicator could not look at the registry or store.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The registry failed.
    #[error("registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The blocking task panicked or was cancelled.
    #[error("replication task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A transfer failed.
    #[error("transfer: {0}")]
    Transfer(#[from] TransferFailed),
}

type Result<T, E = ReplicationError> = std::result::Result<T, E>;

/// The replicator; clones share it.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("me", &self.inner.me)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    registry: Registry,
    book: PeerBook,
    cfg: ReplicationConfig,
    me: PeerId,
    started: Instant,
    transfers: Arc<dyn Transfers>,
    inflight: Mutex<HashSet<Cid>>,
    nudge: Notify,
    /// Cancelled when the node stops: the loop and its fetches end.
    stop: CancellationToken,
    /// The fetches in flight, awaited when the loop stops.
    fetches: TaskTracker,
    /// This node is leaving the federation (`shubnet leave`).
    leaving: std::sync::atomic::AtomicBool,
    /// When the leaving announcement last went out.
    leave_announced: Mutex<Option<Instant>>,
}

/// One image (a root that at least one live tag names) as this node sees it.
#[derive(Debug, Clone)]
struct Image {
    tags: Vec<String>,
    size: u64,
    collections: HashSet<String>,
    publishers: HashSet<[u8; 32]>,
}

/// What one round decided.
#[derive(Debug, Default)]
struct Plan {
    /// Roots to fetch, with the holders known for each.
    fetch: Vec<(Cid, Vec<PeerId>)>,
    /// Held roots that must be pinned.
    pin: Vec<Cid>,
    /// Roots deleted by a tombstone: unpin, keep until the deadline.
    retire: Vec<(Cid, u64)>,
    /// Retention over and unpinned: remove now.
    remove: Vec<Cid>,
    /// Roots live again: forget their deadline.
    release: Vec<Cid>,
}

impl Replicator {
    /// Builds the replicator; [`Replicator::spawn`] starts its loop.
    pub fn new(
        store: Store,
        registry: Registry,
        book: PeerBook,
        cfg: ReplicationConfig,
        transfers: Arc<dyn Transfers>,
        stop: CancellationToken,
    ) -> Self {
        let me = registry.keys().peer_id();
        let leaving = store.dir().leaving_marker().exists();
        Self {
            inner: Arc::new(Inner {
                store,
                registry,
                book,
                cfg,
                me,
                started: Instant::now(),
                transfers,
                inflight: Mutex::default(),
                nudge: Notify::new(),
                stop,
                fetches: TaskTracker::new(),
                leaving: leaving.into(),
                leave_announced: Mutex::default(),
            }),
        }
    }

    /// Runs a round now instead of at the next interval (a manifest or roster arrived).
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Starts the loop: a round every `check_interval_secs`, sooner when nudged or when the
    /// network reports a change that moves images (a member leaving, a new roster). It ends
    /// when the stop token given to [`Replicator::new`] is cancelled, after its fetches.
    pub fn spawn(
        &self,
        mut events: impl Stream<Item = NetEvent> + Send + Unpin + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(this.inner.cfg.check_interval_secs.max(1));
            let stop = this.inner.stop.clone();
            loop {
                this.announce_leaving(false);
                if let Err(e) = this.round().await {
                    tracing::warn!(error = %e, "replication round failed");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                    () = this.inner.nudge.notified() => {}
                    Some(e) = events.next() => tracing::debug!(event = ?e, "replication round on a network event"),
                }
            }
            this.inner.fetches.close();
            this.inner.fetches.wait().await;
            tracing::info!("replication stopped");
        })
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.inner.cfg.grace_period_secs)
    }

    /// True if `peer` counts as a live holder. Until this node has run for the grace period it
    /// cannot tell, so it assumes every node is live rather than fetch everything at start.
    /// A node that is leaving (this one, or one that announced it) never counts.
    fn is_live(&self, peer: &str) -> bool {
        if peer == self.inner.me.to_string() {
            return !self.is_leaving();
        }
        let Ok(p) = peer.parse::<PeerId>() else {
            return false;
        };
        if self.peer_is_leaving(&p) {
            return false;
        }
        self.inner.started.elapsed() < self.grace() || self.inner.book.is_live(&p, self.grace())
    }

    /// One round: decide, then act.
    pub async fn round(&self) -> Result<()> {
        let this = self.clone();
        let plan = tokio::task::spawn_blocking(move || this.plan()).await??;
        let store = &self.inner.store;
        for root in plan.release {
            store.release(&root)?;
        }
        for root in plan.pin {
            store.pin(&root)?;
            store.release(&root)?;
            self.inner.transfers.announce_holding(root);
        }
        for (root, until) in plan.retire {
            store.retain_until(&root, until)?;
            store.unpin(&root)?;
            tracing::info!(%root, until, "image deleted: unpinned, kept until the retention ends");
        }
        for root in plan.remove {
            if store.remove_if_unpinned(&root).await? {
                tracing::info!(%root, "retention over: deleted image removed");
            }
            store.release(&root)?;
        }
        for (root, holders) in plan.fetch {
            self.start_fetch(root, holders);
        }
        Ok(())
    }

    fn start_fetch(&self, root: Cid, holders: Vec<PeerId>) {
        {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if inflight.len() >= MAX_CONCURRENT_FETCHES || !inflight.insert(root) {
                return;
            }
        }
        let this = self.clone();
        let stop = self.inner.stop.clone();
        self.inner.fetches.spawn(async move {
            tracing::info!(%root, holders = holders.len(), "replicating");
            let result = tokio::select! {
                () = stop.cancelled() => return,
                r = this.inner.transfers.fetch(root, holders) => r,
            };
            let done = match result {
                Ok(()) => this.inner.store.pin(&root).map_err(ReplicationError::from),
                Err(e) => Err(e.into()),
            };
            let done_ok = done.is_ok();
            match done {
                Ok(()) => {
                    let _ = this.inner.store.release(&root);
                    tracing::info!(%root, "replica stored and pinned");
                    this.inner.transfers.announce_holding(root);
                }
                Err(e) => tracing::warn!(%root, error = %e, "replication fetch failed; will retry"),
            }
            this.inner
                .inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&root);
            // After a success a slot is free: let queued images start without waiting for the
            // interval. A failure waits for the next round instead of retrying at once.
            if done_ok {
                this.nudge();
            }
        });
    }

    /// Live images by root, and tombstoned roots with their deadlines.
    #[allow(clippy::type_complexity)]
    fn images(&self) -> Result<(BTreeMap<Cid, Image>, Vec<(Cid, u64)>)> {
        let heads = self.inner.registry.tags("")?;
        let mut live: BTreeMap<Cid, Image> = BTreeMap::new();
        let mut deleted = Vec::new();
        for (tag, m) in heads {
            if m.body.tombstone {
                if let Some(root) = self.deleted_root(&m)? {
                    let until = m
                        .body
                        .created
                        .saturating_add(self.inner.cfg.tombstone_retention_secs);
                    deleted.push((root, until));
                }
                continue;
            }
            let Some(root) = m.body.root else { continue };
            let img = live.entry(root).or_insert_with(|| Image {
                tags: Vec::new(),
                size: m.body.size,
                collections: HashSet::new(),
                publishers: HashSet::new(),
            });
            img.tags.push(tag);
            img.collections.insert(m.body.collection.clone());
            img.publishers.insert(m.publisher);
        }
        deleted.retain(|(root, _)| !live.contains_key(root));
        Ok((live, deleted))
    }

    /// The content root a tombstone deleted: the root of the manifest it succeeds.
    fn deleted_root(&self, tomb: &Manifest) -> Result<Option<Cid>> {
        let mut prev = tomb.body.prev;
        // A tag deleted twice in a row points at a tombstone; walk back to content.
        for _ in 0..16 {
            let Some(cid) = prev else { return Ok(None) };
            let Some(m) = self.inner.registry.manifest(&cid)? else {
                return Ok(None);
            };
            if let Some(root) = m.body.root {
                return Ok(Some(root));
            }
            prev = m.body.prev;
        }
        Ok(None)
    }

    fn my_member<'r>(&self, roster: &'r Roster) -> Option<&'r Member> {
        let me = self.inner.me.to_string();
        roster.members.iter().find(|m| m.peer_ids.contains(&me))
    }

    fn wants(&self, roster: &Roster, root: &Cid, img: &Image) -> bool {
        if self.is_leaving() {
            return false; // keeps what it holds, takes nothing new
        }
        let me = self.inner.me.to_string();
        placement::placed(roster, root, |p| self.is_live(p))
            .iter()
            .any(|c| c.peer == me)
            || img.collections.iter().any(|c| self.inner.cfg.mirrors(c))
            || self
                .my_member(roster)
                .is_some_and(|m| img.publishers.iter().any(|k| m.publisher_keys.contains(k)))
    }

    fn plan(&self) -> Result<Plan> {
        let mut plan = Plan::default();
        let Some(roster) = self.inner.registry.roster()? else {
            return Ok(plan);
        };
        let roster = roster.body;
        if self.my_member(&roster).is_none() {
            return Ok(plan);
        }
        let store = &self.inner.store;
        let (live, deleted) = self.images()?;
        for (root, img) in &live {
            if store.retained_until(root)?.is_some() {
                plan.release.push(*root);
            }
            if !self.wants(&roster, root, img) {
                continue;
            }
            if store.root_record(root)?.is_some() {
                if !store.is_pinned(root)? {
                    plan.pin.push(*root);
                }
            } else {
                let grace = self.grace();
                let holders = self
                    .inner
                    .book
                    .holders_of(root)
                    .into_iter()
                    .filter(|p| self.inner.book.is_live(p, grace))
                    .collect();
                plan.fetch.push((*root, holders));
            }
        }
        let now = unix_now();
        for (root, until) in deleted {
            if store.root_record(&root)?.is_none() {
                continue;
            }
            if store.is_pinned(&root)? || store.retained_until(&root)?.is_none() {
                plan.retire.push((root, until));
            } else if until <= now {
                plan.remove.push(root);
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
