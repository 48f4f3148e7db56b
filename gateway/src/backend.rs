//! What the gateway needs from a node, as a trait, so the HTTP layer can be tested against an
//! in-memory backend and never reaches into the store directly.

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use shubnet_protocol::Cid;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// A stream of body bytes, to or from the backend.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Failures a backend reports; each API maps them onto its own status codes and JSON.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The thing asked for does not exist here (404).
    #[error("{0}")]
    NotFound(String),
    /// The request's content is invalid: bad CID, corrupt CAR, block hash mismatch (400).
    #[error("{0}")]
    Invalid(String),
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

/// The result of adding a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOutcome {
    /// Root CID (CIDv1, base32), as `ipfs add --cid-version=1` prints it.
    pub cid: String,
    /// File length in bytes.
    pub size: u64,
    /// Whole-file sha256, hex.
    pub sha256: String,
    /// Whether the content is now pinned.
    pub pinned: bool,
}

/// The result of importing a CAR file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarImportOutcome {
    /// The file DAG roots that were stored, each pinned.
    pub roots: Vec<AddOutcome>,
    /// Blocks read and verified.
    pub blocks: u64,
}

/// The result of a garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Root CIDs whose content was removed.
    pub removed: Vec<String>,
    /// Bytes of blob files freed.
    pub freed_bytes: u64,
}

/// The result of checking the store and rebuilding its index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// Blob files checked against their CIDs.
    pub checked: u64,
    /// Blobs whose bytes did not hash to their name; moved aside to `quarantine/`.
    pub damaged: Vec<String>,
    /// Blocks written into the rebuilt index.
    pub indexed_blocks: u64,
    /// Leftover temporary files from interrupted writes that were removed.
    pub removed_partials: u64,
}

impl RepairReport {
    /// True when nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// One pinned root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// Root CID.
    pub cid: String,
    /// File length in bytes.
    pub size: u64,
}

/// The node operations the gateway calls. Methods return `Send` futures because axum handlers
/// must be `Send`.
pub trait Backend: Clone + Send + Sync + 'static {
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

    /// True if `token` is this node's admin token. Implementations compare hashes in constant
    /// time and never store the token itself.
    fn check_admin_token(&self, token: &str) -> bool;
}
