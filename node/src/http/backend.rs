//! The gateway's view of this node: [`shubnet_gateway::Backend`] over the [`Store`].
//!
//! It must not decide policy: privacy comes from `visibility`, membership from the gate and
//! every rule of the registry from the registry; it translates.

use super::convert::{blocking, conv, hidden, off_thread};
use crate::admin_token::AdminToken;
use crate::http::registry as reg;
use crate::p2p::fetch::client::{FetchClient, FetchError};
use crate::registry::Registry;
use crate::store::{Store, StoreError};
use bytes::Bytes;
use shubnet_gateway::backend::{
    AddOutcome, AdminAuth, BackendError, ByteStream, CarImportOutcome, ContentBackend,
    FederationOutcome, FederationRequest, FederationView, GcReport, LeaveProgress,
    LifecycleBackend, MetricsBackend, NotReady, PinInfo, PublishBackend, PushOutcome,
    RegistryBackend, RepairReport, ScrubReport, Status, StoreBackend, UploadBackend, UsageBackend,
    VisibilityBackend,
};
use shubnet_gateway::search::{CollectionSummary, SearchPage, SearchQuery, Usage};
use shubnet_protocol::Cid;

/// The node's parts the HTTP adapter answers from, all started before it.
#[derive(Clone, Debug)]
pub struct Parts {
    /// Blocks and blobs.
    pub store: Store,
    /// Manifests, rosters, search.
    pub registry: Registry,
    /// The admin token's hash.
    pub admin: AdminToken,
    /// User tokens and private collections.
    pub tokens: crate::tokens::TokenStore,
    /// The federation's policies and capabilities.
    pub access: crate::access::AccessStore,
    /// Downloads and stars; `None` if its trees could not be opened (logged at start).
    pub usage: Option<crate::usage::UsageStore>,
    /// What is private.
    pub visibility: crate::visibility::Visibility,
    /// The federation network.
    pub net: crate::p2p::NetClient,
    /// Placement and repair (answers `status` and `leave`).
    pub replicator: crate::replication::Replicator,
    /// Cancelled to stop the node gracefully (SIGTERM, or the admin API's shutdown).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Re-hashes stored blobs (`shubnet scrub`).
    pub scrubber: crate::scrub::Scrubber,
}

/// The node as the HTTP layer sees it.
#[derive(Clone, Debug)]
pub struct NodeBackend {
    store: Store,
    registry: Registry,
    admin: AdminToken,
    /// User tokens and private collections (`crate::http::tokens` implements `TokenBackend`).
    pub(crate) tokens: crate::tokens::TokenStore,
    /// Federation policies and capabilities (`crate::http::tokens` routes tokens to it).
    pub(crate) access: crate::access::AccessStore,
    net: crate::p2p::NetClient,
    replicator: crate::replication::Replicator,
    shutdown: tokio_util::sync::CancellationToken,
    scrubber: crate::scrub::Scrubber,
    usage: Option<crate::usage::UsageStore>,
    /// The slow `/metrics` gauges' refresh state.
    observer: crate::http::observe::Observer,
    /// Library uploads waiting for their tag call.
    uploads: crate::http::uploads::PendingUploads,
    /// What is private (every content route asks it).
    visibility: crate::visibility::Visibility,
}

impl NodeBackend {
    /// The adapter over started parts.
    pub fn new(p: Parts) -> Self {
        Self {
            observer: crate::http::observe::Observer::default(),
            uploads: crate::http::uploads::PendingUploads::new(p.store.dir()),
            store: p.store,
            registry: p.registry,
            admin: p.admin,
            tokens: p.tokens,
            access: p.access,
            net: p.net,
            replicator: p.replicator,
            shutdown: p.shutdown,
            scrubber: p.scrubber,
            usage: p.usage,
            visibility: p.visibility,
        }
    }

    /// Unpins and removes the content of library uploads older than `expiry` that no manifest
    /// references, and drops their records; returns how many were removed.
    pub async fn expire_uploads(&self, expiry: std::time::Duration) -> Result<usize, BackendError> {
        let up = self.uploads.clone();
        let expired = off_thread(move || up.expired(expiry), io_err).await?;
        let mut removed = 0;
        for (key, rec) in expired {
            if let Some(rec) = rec
                && self
                    .visibility
                    .collections_of(&rec.root)
                    .await
                    .map_err(hidden)?
                    .is_empty()
            {
                let (s, root) = (self.store.clone(), rec.root);
                blocking(move || s.unpin(&root)).await?;
                self.store
                    .remove_if_unpinned(&rec.root)
                    .await
                    .map_err(conv)?;
                tracing::info!(image = %key, root = %rec.root, "library upload never tagged; removed");
                removed += 1;
            }
            let up = self.uploads.clone();
            off_thread(move || up.forget(&key), io_err).await?;
        }
        Ok(removed)
    }

    /// Fetches `root` over `/shubnet/fetch/1` from the federation (announced holders, else
    /// connected members), stores and pins it.
    async fn fetch_federated(&self, root: Cid) -> Result<AddOutcome, BackendError> {
        let report = self
            .net
            .fetch()
            .fetch(root, Vec::new())
            .await
            .map_err(|e| match e {
                FetchError::Store(s) => conv(s),
                FetchError::NoHolders(_) | FetchError::NotHeld { .. } => {
                    BackendError::NotFound(e.to_string())
                }
                other => BackendError::Unavailable(other.to_string()),
            })?;
        tracing::debug!(%root, fetched = report.fetched_leaves, "fetched over fetch/1");
        let (s, c) = (self.store.clone(), root);
        blocking(move || s.pin(&c)).await?;
        let (s, c) = (self.store.clone(), root);
        let rec = blocking(move || s.root_record(&c))
            .await?
            .ok_or_else(|| BackendError::Internal(format!("{root} vanished after its fetch")))?;
        Ok(outcome(root, rec, true))
    }

    /// True if a file DAG rooted at `cid` (dag-pb, or a one-block file whose root is a raw
    /// leaf) is not held here but may be fetched on demand.
    async fn remote(&self, cid: &Cid) -> Result<Option<FetchClient>, BackendError> {
        let client = self.net.fetch();
        let (s, c) = (self.store.clone(), *cid);
        let held = blocking(move || s.has_block(&c)).await?;
        let file_root = matches!(
            cid.codec(),
            shubnet_protocol::cid::DAG_PB | shubnet_protocol::cid::RAW
        );
        Ok((!held && file_root).then(|| client.clone()))
    }
}

impl NodeBackend {
    /// Collections that are private here: search and listings leave them out.
    async fn private_collections(&self) -> Result<std::collections::HashSet<String>, BackendError> {
        self.visibility.private_collections().await.map_err(hidden)
    }
}

fn io_err(e: std::io::Error) -> BackendError {
    BackendError::Internal(format!("upload records: {e}"))
}

fn outcome(cid: Cid, rec: crate::store::tables::RootRecord, pinned: bool) -> AddOutcome {
    AddOutcome {
        cid,
        size: rec.size,
        sha256: hex::encode(rec.sha256),
        pinned,
    }
}

/// Every concern the gateway serves; the impls below and in `tokens.rs` provide them.
impl shubnet_gateway::Backend for NodeBackend {}

impl ContentBackend for NodeBackend {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, BackendError> {
        let (s, c) = (self.store.clone(), *cid);
        if let Some(b) = blocking(move || s.block(&c)).await? {
            return Ok(Some(b));
        }
        // A member's gateway serves blocks of images it does not hold, like their bytes.
        match self.remote(cid).await? {
            Some(client) => client
                .remote_block(*cid)
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string())),
            None => Ok(None),
        }
    }

    async fn file_size(&self, cid: &Cid) -> Result<Option<u64>, BackendError> {
        if let Some(client) = self.remote(cid).await? {
            return client
                .remote_size(*cid)
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()));
        }
        let (s, c) = (self.store.clone(), *cid);
        blocking(move || s.file_size(&c)).await
    }

    async fn read_file(&self, cid: &Cid, start: u64, end: u64) -> Result<ByteStream, BackendError> {
        if let Some(client) = self.remote(cid).await? {
            let rx = client
                .read_range(*cid, start, end)
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            return Ok(Box::pin(tokio_stream_from(rx)));
        }
        let rx = self.store.read_file(*cid, start, end);
        Ok(Box::pin(tokio_stream_from(rx)))
    }

    /// Counts locally and in `/metrics`, whether the bytes come from this node's store or, on
    /// demand, from a member's copy (the holder's fetch server counts nothing, so the
    /// federation total has each download once).
    async fn count_download(&self, root: &Cid) {
        shubnet_gateway::metrics::global().downloads.inc();
        if let Some(u) = self.usage.clone() {
            let root = *root;
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = u.count_download(&root) {
                    tracing::warn!(error = %e, "counting a download");
                }
            })
            .await;
        }
    }
}

impl VisibilityBackend for NodeBackend {
    async fn content_collections(&self, cid: &Cid) -> Result<Vec<String>, BackendError> {
        self.visibility.collections_of(cid).await.map_err(hidden)
    }

    async fn collection_is_private(&self, name: &str) -> Result<bool, BackendError> {
        self.visibility.is_private(name).await.map_err(hidden)
    }

    async fn owner_gateway(&self, collection: &str) -> Option<String> {
        let (access, c) = (self.access.clone(), collection.to_owned());
        tokio::task::spawn_blocking(move || access.owner_gateway(&c))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    }
}

impl AdminAuth for NodeBackend {
    fn check_admin_token(&self, token: &str) -> bool {
        self.admin.matches(token)
    }
}

impl StoreBackend for NodeBackend {
    async fn add(&self, body: ByteStream) -> Result<AddOutcome, BackendError> {
        let (cid, rec) = self.store.add_stream(body).await.map_err(conv)?;
        Ok(outcome(cid, rec, true))
    }

    async fn import_car(&self, body: ByteStream) -> Result<CarImportOutcome, BackendError> {
        let r = self.store.import_car(body).await.map_err(conv)?;
        Ok(CarImportOutcome {
            roots: r
                .roots
                .into_iter()
                .map(|(c, rec)| outcome(c, rec, true))
                .collect(),
            blocks: r.blocks,
        })
    }

    async fn fetch(&self, cid: &Cid, peers: &[String]) -> Result<AddOutcome, BackendError> {
        if peers.is_empty() {
            return self.fetch_federated(*cid).await;
        }
        let client = self.net.bitswap().clone();
        let addrs = peers
            .iter()
            .map(|p| {
                p.parse::<libp2p::Multiaddr>()
                    .map_err(|e| BackendError::Invalid(format!("invalid peer address {p:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let root = *cid;
        let (cid, rec, _) = self
            .store
            .import_fetched(root, |spool| async move {
                client
                    .fetch(root, &addrs, &spool)
                    .await
                    .map_err(|e| StoreError::Fetch(format!("{e:#}")))
            })
            .await
            .map_err(conv)?;
        Ok(outcome(cid, rec, true))
    }

    async fn pin(&self, cid: &Cid) -> Result<(), BackendError> {
        let (s, c) = (self.store.clone(), *cid);
        blocking(move || s.pin(&c)).await
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), BackendError> {
        let (s, c) = (self.store.clone(), *cid);
        blocking(move || s.unpin(&c)).await
    }

    async fn pins(&self) -> Result<Vec<PinInfo>, BackendError> {
        let s = self.store.clone();
        let pins = blocking(move || s.pins()).await?;
        Ok(pins
            .into_iter()
            .map(|(cid, size)| PinInfo { cid, size })
            .collect())
    }

    async fn gc(&self) -> Result<GcReport, BackendError> {
        let r = self.store.gc().await.map_err(conv)?;
        Ok(GcReport {
            removed: r.removed,
            freed_bytes: r.freed_bytes,
        })
    }

    async fn repair(&self) -> Result<RepairReport, BackendError> {
        let r = self.store.repair().await.map_err(conv)?;
        Ok(RepairReport {
            checked: r.checked,
            damaged: r.damaged,
            indexed_blocks: r.indexed_blocks,
            removed_partials: r.removed_partials,
        })
    }

    async fn scrub(&self) -> Result<ScrubReport, BackendError> {
        self.scrubber.scrub_all().await.map_err(conv)
    }

    async fn backup(&self) -> Result<ByteStream, BackendError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let (dir, tokens) = (self.store.dir().clone(), self.tokens.clone());
        tokio::task::spawn_blocking(move || {
            let w = std::io::BufWriter::with_capacity(1 << 16, ChannelWriter(tx.clone()));
            if let Err(e) = crate::backup::write(&dir, &tokens, w) {
                tracing::error!(error = %e, "backup failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(Box::pin(tokio_stream_from(rx)))
    }
}

impl LifecycleBackend for NodeBackend {
    async fn ready(&self) -> Result<(), NotReady> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.pins().map(|_| ()))
            .await
            .map_err(|e| NotReady::Store(e.to_string()))?
            .map_err(|e| NotReady::Store(e.to_string()))?;
        match self.net.isolation() {
            Some(why) => Err(NotReady::Isolated(why)),
            None => Ok(()),
        }
    }

    async fn status(&self) -> Result<Status, BackendError> {
        let r = self.replicator.clone();
        let mut status = tokio::task::spawn_blocking(move || r.status())
            .await
            .map_err(|e| BackendError::Internal(format!("status task: {e}")))?
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        // The store just answered for the status itself: only the network's part of readiness
        // is left to ask.
        status.not_ready = self.net.isolation();
        Ok(status)
    }

    async fn leave(
        &self,
        action: shubnet_gateway::backend::LeaveAction,
    ) -> Result<LeaveProgress, BackendError> {
        use shubnet_gateway::backend::LeaveAction;
        let r = self.replicator.clone();
        let progress = tokio::task::spawn_blocking(move || {
            match action {
                LeaveAction::Start => r.start_leaving(),
                LeaveAction::Cancel => r.cancel_leaving(),
                LeaveAction::Progress => Ok(()),
            }
            .map_err(|e| BackendError::Internal(format!("writing the leave marker: {e}")))?;
            r.leave_progress()
                .map_err(|e| BackendError::Internal(e.to_string()))
        })
        .await
        .map_err(|e| BackendError::Internal(format!("leave task: {e}")))??;
        Ok(progress)
    }

    async fn shutdown(&self) -> Result<(), BackendError> {
        tracing::info!("shutdown requested through the admin API");
        self.shutdown.cancel();
        Ok(())
    }
}

impl RegistryBackend for NodeBackend {
    async fn federation(&self) -> Result<FederationView, BackendError> {
        reg::federation(&self.registry).await
    }

    async fn manifest_for_tag(
        &self,
        c: &str,
        n: &str,
        t: &str,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        reg::manifest_for_tag(&self.registry, c, n, t).await
    }

    async fn manifest_by_cid(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BackendError> {
        reg::manifest_by_cid(&self.registry, cid).await
    }

    async fn tag_heads(&self, prefix: &str) -> Result<Vec<Vec<u8>>, BackendError> {
        reg::tag_heads(&self.registry, prefix).await
    }
}

impl PublishBackend for NodeBackend {
    async fn federation_admin(
        &self,
        req: FederationRequest,
    ) -> Result<FederationOutcome, BackendError> {
        reg::federation_admin(&self.registry, req).await
    }

    async fn push(
        &self,
        reference: &str,
        frozen: bool,
        body: ByteStream,
    ) -> Result<PushOutcome, BackendError> {
        reg::push(&self.registry, &self.store, reference, frozen, body).await
    }

    async fn push_check(&self, reference: &str) -> Result<(), BackendError> {
        reg::push_check(&self.registry, reference).await
    }

    async fn delete_tag(&self, reference: &str) -> Result<PushOutcome, BackendError> {
        reg::delete_tag(&self.registry, reference).await
    }

    async fn push_as(
        &self,
        reference: &str,
        frozen: bool,
        user: &str,
        body: ByteStream,
    ) -> Result<PushOutcome, BackendError> {
        reg::push_by(&self.registry, &self.store, reference, frozen, user, body).await
    }

    async fn push_with_extra(
        &self,
        reference: &str,
        user: &str,
        extra: std::collections::BTreeMap<String, Vec<u8>>,
        body: ByteStream,
    ) -> Result<PushOutcome, BackendError> {
        reg::push_with_extra(&self.registry, &self.store, reference, user, extra, body).await
    }

    async fn delete_as(&self, reference: &str, user: &str) -> Result<PushOutcome, BackendError> {
        reg::delete_tag_by(&self.registry, reference, user).await
    }
}

impl UsageBackend for NodeBackend {
    async fn search(&self, q: SearchQuery) -> Result<SearchPage, BackendError> {
        let hidden = self.private_collections().await?;
        let (reg, usage) = (self.registry.clone(), self.usage.clone());
        tokio::task::spawn_blocking(move || {
            let mut page = reg.read_index().search(&q, &hidden);
            if let Some(u) = usage {
                for h in &mut page.hits {
                    let root = Some(h.root);
                    if let Ok(x) = u.usage(&h.reference, root.as_ref()) {
                        (h.downloads, h.stars) = (x.downloads, x.stars);
                    }
                }
            }
            page
        })
        .await
        .map_err(|e| BackendError::Internal(format!("search task: {e}")))
    }

    async fn collection_summaries(&self) -> Result<Vec<CollectionSummary>, BackendError> {
        let hidden = self.private_collections().await?;
        let reg = self.registry.clone();
        tokio::task::spawn_blocking(move || reg.read_index().collections(&hidden))
            .await
            .map_err(|e| BackendError::Internal(format!("listing task: {e}")))
    }

    async fn usage(&self, reference: &str) -> Result<Usage, BackendError> {
        let Some(u) = self.usage.clone() else {
            return Ok(Usage::default());
        };
        let (reg, reference) = (self.registry.clone(), reference.to_owned());
        tokio::task::spawn_blocking(move || {
            let root = reg.read_index().get(&reference).map(|h| h.root);
            u.usage(&reference, root.as_ref())
        })
        .await
        .map_err(|e| BackendError::Internal(format!("usage task: {e}")))?
        .map_err(|e| BackendError::Internal(e.to_string()))
    }

    async fn star(&self, reference: &str, user: &str, on: bool) -> Result<Usage, BackendError> {
        let u = self
            .usage
            .clone()
            .ok_or_else(|| BackendError::Unavailable("stars are off on this node".into()))?;
        if self.registry.read_index().get(reference).is_none() {
            return Err(BackendError::NotFound(format!("no image {reference}")));
        }
        let (r, user2) = (reference.to_owned(), user.to_owned());
        tokio::task::spawn_blocking(move || u.set_star(&r, &user2, on))
            .await
            .map_err(|e| BackendError::Internal(format!("star task: {e}")))?
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        UsageBackend::usage(self, reference).await
    }
}

impl MetricsBackend for NodeBackend {
    async fn refresh_metrics(&self, m: &'static shubnet_gateway::metrics::Metrics) {
        let peers = Some(self.net.connected_peers().len());
        self.observer
            .refresh(&self.store, Some(self.replicator.clone()), peers, m)
            .await;
    }
}

impl UploadBackend for NodeBackend {
    async fn record_upload(&self, key: &str, root: &Cid, size: u64) -> Result<(), BackendError> {
        let (up, key, root) = (self.uploads.clone(), key.to_owned(), *root);
        off_thread(move || up.record(&key, &root, size), io_err).await
    }

    async fn recall_upload(&self, key: &str) -> Result<Option<(Cid, u64)>, BackendError> {
        let (up, key) = (self.uploads.clone(), key.to_owned());
        let rec = off_thread(move || up.recall(&key), io_err).await?;
        Ok(rec.map(|r| (r.root, r.size)))
    }

    async fn forget_upload(&self, key: &str) -> Result<(), BackendError> {
        let (up, key) = (self.uploads.clone(), key.to_owned());
        off_thread(move || up.forget(&key), io_err).await
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A `Write` that hands each buffer to an async receiver (a blocking task producing a stream).
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Expires library uploads every so often (a few times per expiry period, at most once a
/// minute apart) for as long as the node runs.
pub async fn sweep_uploads_forever(backend: NodeBackend, expiry: std::time::Duration) {
    let every = (expiry / 2).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = backend.expire_uploads(expiry).await {
            tracing::warn!(error = %e, "expiring library uploads failed; will retry");
        }
    }
}
