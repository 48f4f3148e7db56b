//! What the gateway needs from a node, as one small trait per concern, so each API's router is
//! bounded only by what it calls and can be tested against an in-memory backend. The gateway
//! never reaches into the store directly.
//!
//! No method has a default: a backend that cannot do something says so itself, and a missing
//! privacy answer ([`VisibilityBackend`]) is a compile error rather than "public".

use bytes::Bytes;
use futures::Stream;
use shubnet_protocol::Cid;
use std::future::Future;
use std::io;
use std::pin::Pin;

pub use crate::tokens::TokenBackend;
pub use shubnet_protocol::admin::{
    AddOutcome, CarImportOutcome, FederationOutcome, FederationRequest, FetchRequest, GcReport,
    ImageStatus, LeaveImage, LeaveProgress, PinInfo, PushOutcome, RepairReport, RosterChange,
    ScrubReport, Status,
};

/// A stream of body bytes, to or from the backend.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Failures a backend reports. Each API maps them onto its own status codes and error JSON in
/// one place (`error.rs`, `shub::ShubError`, `library::LibraryError`), by variant, never by text.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The thing asked for does not exist here (404).
    #[error("{0}")]
    NotFound(String),
    /// The request's content is invalid: bad CID, corrupt CAR, block hash mismatch (400).
    #[error("{0}")]
    Invalid(String),
    /// A publication broke a registry rule other than the ones named below: not in a
    /// federation, a stale or malformed manifest (400 on the admin API, 403 on client APIs).
    #[error("{0}")]
    Rejected(String),
    /// The tag is frozen and can never move.
    #[error("manifest rejected: {tag} is frozen and can never move")]
    Frozen {
        /// The frozen tag.
        tag: String,
    },
    /// The publishing member may not publish into this collection.
    #[error("manifest rejected: member {member} may not publish to collection {collection}")]
    OutsideNamespace {
        /// The collection.
        collection: String,
        /// The member's institution id.
        member: String,
    },
    /// The upload is larger than this node accepts (413).
    #[error("{0}")]
    TooLarge(String),
    /// The node's disk is full; nothing partial was kept (507).
    #[error("{0}")]
    StorageFull(String),
    /// The node cannot serve this right now (shutting down, busy) (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; logged, and reported to clients without detail (500).
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    /// True for a refusal by the registry's publishing rules ([`BackendError::Rejected`],
    /// [`BackendError::Frozen`], [`BackendError::OutsideNamespace`]) or invalid publishing
    /// input: the client APIs answer these 403.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            BackendError::Invalid(_)
                | BackendError::Rejected(_)
                | BackendError::Frozen { .. }
                | BackendError::OutsideNamespace { .. }
        )
    }
}

/// Why the node cannot serve requests now (`/readyz` answers 503 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The store's index cannot be read.
    #[error("{0}")]
    Store(String),
    /// The node is a member of a federation but connected to none of the other members.
    #[error("{0}")]
    Isolated(String),
}

/// The federation as the verification API serves it: raw signed encodings, so clients verify
/// them themselves rather than trusting this gateway.
#[derive(Debug, Clone, Default)]
pub struct FederationView {
    /// The federation id (CID of roster version 1), if this node is in one.
    pub id: Option<String>,
    /// Every roster version's signed encoding, oldest first.
    pub rosters: Vec<Vec<u8>>,
    /// A version waiting for admin signatures, if any.
    pub pending: Option<Vec<u8>>,
}

/// What `shubnet leave` asks of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveAction {
    /// Announce the departure (placement skips this node) and start handing images over.
    Start,
    /// Report which images still lack their k holders on other nodes.
    Progress,
    /// Stay after all: placement counts this node again.
    Cancel,
}

/// Reads of stored content. Every route that calls these asks [`VisibilityBackend`] first
/// (through `crate::visibility`).
pub trait ContentBackend: Clone + Send + Sync + 'static {
    /// One block's bytes, or `None` if not held. Used for raw-block and CAR responses.
    fn block(&self, cid: &Cid) -> impl Future<Output = Result<Option<Bytes>, BackendError>> + Send;

    /// The file length of the UnixFS file DAG rooted at `cid`, or `None` if not held.
    fn file_size(
        &self,
        cid: &Cid,
    ) -> impl Future<Output = Result<Option<u64>, BackendError>> + Send;

    /// File bytes `start..end` of the UnixFS file rooted at `cid`. `end` is at most the size.
    fn read_file(
        &self,
        cid: &Cid,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<ByteStream, BackendError>> + Send;

    /// Counts one download of the file rooted at `root`: an HTTP client asked for it from byte
    /// 0 (`/ipfs`, shub and library downloads). Internal re-reads (a library tag call) are not
    /// downloads, so the count lives here rather than in [`ContentBackend::read_file`].
    fn count_download(&self, root: &Cid) -> impl Future<Output = ()> + Send;
}

/// What is private. Required of every backend the content, registry and client APIs run on.
pub trait VisibilityBackend: Clone + Send + Sync + 'static {
    /// The collections whose manifests reference content containing `cid` (as a root or a block
    /// inside one). Content in no collection, or in at least one public collection, is public;
    /// content only in private collections needs a token.
    fn content_collections(
        &self,
        cid: &Cid,
    ) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send;

    /// Whether a collection is private. Collections never set are public.
    fn collection_is_private(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Where a refused client can pull a private collection instead: the gateway of the
    /// institution that owns it, when that is another node and it published one. A backend
    /// outside a federation has no such place.
    fn owner_gateway(&self, _collection: &str) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
}

/// The admin API's check of its caller.
pub trait AdminAuth: Clone + Send + Sync + 'static {
    /// True if `token` is this node's admin token. Implementations compare hashes in constant
    /// time and never store the token itself.
    fn check_admin_token(&self, token: &str) -> bool;
}

/// The store as the admin API manages it: adding, fetching, pinning, collecting, repairing,
/// backing up.
pub trait StoreBackend: Clone + Send + Sync + 'static {
    /// Stores a file streamed in `body` and pins it. Nothing partial survives an error.
    fn add(
        &self,
        body: ByteStream,
    ) -> impl Future<Output = Result<AddOutcome, BackendError>> + Send;

    /// Verifies every block of a CAR stream, then stores the file DAGs it holds and pins them.
    fn import_car(
        &self,
        body: ByteStream,
    ) -> impl Future<Output = Result<CarImportOutcome, BackendError>> + Send;

    /// Fetches the UnixFS file DAG under `cid` from the given peers (libp2p multiaddrs ending
    /// in `/p2p/PEER_ID`) over Bitswap, verifying every block, then stores and pins it. Nothing
    /// partial survives an error.
    fn fetch(
        &self,
        cid: &Cid,
        peers: &[String],
    ) -> impl Future<Output = Result<AddOutcome, BackendError>> + Send;

    /// Pins a root that is held.
    fn pin(&self, cid: &Cid) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Unpins a root (content stays until the next GC).
    fn unpin(&self, cid: &Cid) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Lists pinned roots.
    fn pins(&self) -> impl Future<Output = Result<Vec<PinInfo>, BackendError>> + Send;

    /// Removes every unpinned root's content.
    fn gc(&self) -> impl Future<Output = Result<GcReport, BackendError>> + Send;

    /// Checks every blob against its CID and rebuilds the index from `blobs/` alone.
    fn repair(&self) -> impl Future<Output = Result<RepairReport, BackendError>> + Send;

    /// Re-hashes every stored blob against its CIDs now; damaged ones are quarantined and
    /// fetched again from other members.
    fn scrub(&self) -> impl Future<Output = Result<ScrubReport, BackendError>> + Send;

    /// The node's cold backup (keys, config, log, token records) as a tar stream.
    fn backup(&self) -> impl Future<Output = Result<ByteStream, BackendError>> + Send;
}

/// The node's life: readiness, replication status, leaving, stopping.
pub trait LifecycleBackend: Clone + Send + Sync + 'static {
    /// Whether the node can serve requests now (for `/readyz`); the reason when it cannot.
    fn ready(&self) -> impl Future<Output = Result<(), NotReady>> + Send;

    /// Peers, roster version and each image's holders versus its replication target, for
    /// `shubnet status` (under-replicated images first).
    fn status(&self) -> impl Future<Output = Result<Status, BackendError>> + Send;

    /// `shubnet leave`: start handing this node's images over, report progress, or cancel.
    fn leave(
        &self,
        action: LeaveAction,
    ) -> impl Future<Output = Result<LeaveProgress, BackendError>> + Send;

    /// Stops the node gracefully, as SIGTERM does (the last step of `shubnet leave`).
    fn shutdown(&self) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The signed registry as readers see it: the roster chain and manifests.
pub trait RegistryBackend: Clone + Send + Sync + 'static {
    /// The federation id and roster chain.
    fn federation(&self) -> impl Future<Output = Result<FederationView, BackendError>> + Send;

    /// The signed head manifest of a tag (image or tombstone), encoded.
    fn manifest_for_tag(
        &self,
        collection: &str,
        name: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send;

    /// A signed manifest by its CID, encoded.
    fn manifest_by_cid(
        &self,
        cid: &Cid,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send;

    /// Head manifests of every tag under `prefix` (`""`, `collection` or `collection/name`).
    fn tag_heads(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, BackendError>> + Send;
}

/// Publishing into the registry and running the federation.
pub trait PublishBackend: Clone + Send + Sync + 'static {
    /// Runs a federation admin action and says what it did.
    fn federation_admin(
        &self,
        req: FederationRequest,
    ) -> impl Future<Output = Result<FederationOutcome, BackendError>> + Send;

    /// Stores a file and publishes it under `reference` with a manifest signed by this node.
    fn push(
        &self,
        reference: &str,
        frozen: bool,
        body: ByteStream,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send;

    /// Whether a push to `reference` would be refused whatever its content (namespace, frozen
    /// tag), so a client can ask before uploading gigabytes.
    fn push_check(&self, reference: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Publishes a tombstone for `reference`.
    fn delete_tag(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send;

    /// Like [`PublishBackend::push`], recording `user` as the pusher in the signed manifest
    /// (the shub, sregistry and library APIs push on behalf of a token's user).
    fn push_as(
        &self,
        reference: &str,
        frozen: bool,
        user: &str,
        body: ByteStream,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send;

    /// Like [`PublishBackend::push_as`] (never frozen), adding `extra` keys to the signed
    /// manifest's metadata (the OCI API's record of the client's own manifest). Content that is
    /// not a SIF is refused with [`BackendError::Invalid`].
    fn push_with_extra(
        &self,
        reference: &str,
        user: &str,
        extra: std::collections::BTreeMap<String, Vec<u8>>,
        body: ByteStream,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send;

    /// Like [`PublishBackend::delete_tag`], recording `user` in the tombstone.
    fn delete_as(
        &self,
        reference: &str,
        user: &str,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send;
}

/// Search, listings, downloads and stars.
pub trait UsageBackend: Clone + Send + Sync + 'static {
    /// Searches every public image the node knows (tag heads with content) through its
    /// index; private collections never appear.
    fn search(
        &self,
        q: crate::search::SearchQuery,
    ) -> impl Future<Output = Result<crate::search::SearchPage, BackendError>> + Send;

    /// Public collections with their image counts, sorted by name.
    fn collection_summaries(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::search::CollectionSummary>, BackendError>> + Send;

    /// Downloads and stars of the image `collection/name:tag`.
    fn usage(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<crate::search::Usage, BackendError>> + Send;

    /// Stars (`on`) or unstars the image for `user` (one star per user); returns the new usage.
    fn star(
        &self,
        reference: &str,
        user: &str,
        on: bool,
    ) -> impl Future<Output = Result<crate::search::Usage, BackendError>> + Send;
}

/// The state gauges of `/metrics`.
pub trait MetricsBackend: Clone + Send + Sync + 'static {
    /// Sets the state gauges of `metrics` (peers, store size, images, under-replicated) just
    /// before a scrape. Must be cheap: answer from values kept up to date elsewhere.
    fn refresh_metrics(
        &self,
        metrics: &'static crate::metrics::Metrics,
    ) -> impl Future<Output = ()> + Send;
}

/// Library uploads that wait for their tag call.
pub trait UploadBackend: Clone + Send + Sync + 'static {
    /// Records a library upload that waits for its tag call (`key` is the library image id),
    /// so the tag call still finds it after a restart, and so content no tag ever claims can be
    /// unpinned after the node's expiry.
    fn record_upload(
        &self,
        key: &str,
        root: &Cid,
        size: u64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The upload [`UploadBackend::record_upload`] recorded under `key`: its root and size.
    fn recall_upload(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Cid, u64)>, BackendError>> + Send;

    /// Drops the record of an upload a tag now references.
    fn forget_upload(&self, key: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Everything [`crate::app`] serves: every concern above. A node declares it with an empty
/// `impl Backend for ... {}` once it implements them all.
pub trait Backend:
    ContentBackend
    + VisibilityBackend
    + AdminAuth
    + StoreBackend
    + LifecycleBackend
    + RegistryBackend
    + PublishBackend
    + UsageBackend
    + MetricsBackend
    + UploadBackend
    + TokenBackend
{
}
