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

/// `POST /admin/v1/fetch`: what to fetch and from whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Root CID.
    pub cid: String,
    /// Peers to ask, as libp2p multiaddrs ending in `/p2p/PEER_ID`.
    pub peers: Vec<String>,
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

/// What the CLI asks of the federation through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FederationRequest {
    /// Found a federation with this node as first admin and member.
    Create {
        /// Federation display name.
        name: String,
        /// This node's institution id.
        institution: String,
        /// Collection patterns this institution publishes.
        namespaces: Vec<String>,
        /// Bytes of storage this node offers.
        storage: u64,
        /// Replication factor k; the roster default when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replication: Option<u32>,
        /// Fewest distinct institutions among the k holders; the roster default when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_institutions: Option<u32>,
    },
    /// Admit a newcomer from its join request line.
    Admit {
        /// The line `shubnet federation request` printed.
        request: String,
        /// Bytes of storage the newcomer offers.
        storage: u64,
    },
    /// Change the admin set or the signature threshold (a new roster version).
    Admins {
        /// Admin public keys (hex) to add.
        add: Vec<String>,
        /// Admin public keys (hex) to remove.
        remove: Vec<String>,
        /// New threshold, if changing.
        threshold: Option<u32>,
    },
    /// Co-sign a pending roster version.
    Sign {
        /// The roster line `admit` printed.
        roster: String,
    },
    /// Remove one node from the roster (after it ran `shubnet leave`); its institution stays.
    RemoveNode {
        /// The node's libp2p peer id.
        peer_id: String,
    },
    /// Trust federation `id` and take its roster chain (signed encodings, base64url).
    Join {
        /// The federation id.
        id: String,
        /// Signed roster encodings, base64url without padding, oldest first.
        rosters: Vec<String>,
    },
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

/// The result of a push or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// CID of the signed manifest.
    pub manifest: String,
    /// `collection/name:tag`.
    pub reference: String,
    /// Content root CID; absent for a tombstone.
    pub root: Option<String>,
    /// File size.
    pub size: u64,
    /// sha256 hex.
    pub sha256: String,
    /// The manifest's seq.
    pub seq: u64,
}

async fn unsupported<T>() -> Result<T, BackendError> {
    Err(BackendError::Unavailable(
        "this backend has no registry".into(),
    ))
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

    /// Fetches the UnixFS file DAG under `cid` from the given peers (libp2p multiaddrs ending
    /// in `/p2p/PEER_ID`) over Bitswap, verifying every block, then stores and pins it. Nothing
    /// partial survives an error.
    fn fetch(
        &self,
        _cid: &Cid,
        _peers: &[String],
    ) -> impl Future<Output = Result<AddOutcome, BackendError>> + Send {
        async {
            Err(BackendError::Unavailable(
                "this backend cannot fetch from other nodes".into(),
            ))
        }
    }

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

    /// The federation id and roster chain.
    fn federation(&self) -> impl Future<Output = Result<FederationView, BackendError>> + Send {
        unsupported()
    }

    /// The signed head manifest of a tag (image or tombstone), encoded.
    fn manifest_for_tag(
        &self,
        _collection: &str,
        _name: &str,
        _tag: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send {
        unsupported()
    }

    /// A signed manifest by its CID, encoded.
    fn manifest_by_cid(
        &self,
        _cid: &Cid,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send {
        unsupported()
    }

    /// Head manifests of every tag under `prefix` (`""`, `collection` or `collection/name`).
    fn tag_heads(
        &self,
        _prefix: &str,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, BackendError>> + Send {
        unsupported()
    }

    /// The node's cold backup (keys, config, log, token records) as a tar stream.
    fn backup(&self) -> impl Future<Output = Result<ByteStream, BackendError>> + Send {
        async { Err(BackendError::Unavailable("backup is not supported".into())) }
    }

    /// Whether the node can serve requests now (for `/readyz`); the reason when it cannot.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Peers, roster version and each image's holders versus its replication target, for
    /// `shubnet status` (under-replicated images first).
    fn status(&self) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        unsupported()
    }

    /// `shubnet leave`: start handing this node's images over, report progress, or cancel.
    fn leave(
        &self,
        _action: LeaveAction,
    ) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        unsupported()
    }

    /// Stops the node gracefully, as SIGTERM does (the last step of `shubnet leave`).
    fn shutdown(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        unsupported()
    }

    /// Runs a federation admin action; returns a JSON summary for the CLI.
    fn federation_admin(
        &self,
        _req: FederationRequest,
    ) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        unsupported()
    }

    /// Stores a file and publishes it under `reference` with a manifest signed by this node.
    fn push(
        &self,
        _reference: &str,
        _frozen: bool,
        _body: ByteStream,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send {
        unsupported()
    }

    /// The collections whose manifests reference content containing `cid` (as a root or a block
    /// inside one). Content in no collection, or in at least one public collection, is public;
    /// content only in private collections needs a token. The default (no registry) says none.
    fn content_collections(
        &self,
        _cid: &Cid,
    ) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Whether a push to `reference` would be refused whatever its content (namespace, frozen
    /// tag), so a client can ask before uploading gigabytes.
    fn push_check(
        &self,
        _reference: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        unsupported()
    }

    /// Publishes a tombstone for `reference`.
    fn delete_tag(
        &self,
        _reference: &str,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send {
        unsupported()
    }

    /// Like [`Backend::push`], recording `user` as the pusher in the signed manifest (the shub,
    /// sregistry and library APIs push on behalf of a token's user). The default ignores the
    /// user.
    fn push_as(
        &self,
        reference: &str,
        frozen: bool,
        user: &str,
        body: ByteStream,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send {
        let _ = user;
        self.push(reference, frozen, body)
    }

    /// Like [`Backend::delete_tag`], recording `user` in the tombstone. The default ignores the
    /// user.
    fn delete_as(
        &self,
        reference: &str,
        user: &str,
    ) -> impl Future<Output = Result<PushOutcome, BackendError>> + Send {
        let _ = user;
        self.delete_tag(reference)
    }

    /// Searches every public image the node knows (tag heads with content) through its
    /// index; private collections never appear.
    fn search(
        &self,
        _q: crate::search::SearchQuery,
    ) -> impl Future<Output = Result<crate::search::SearchPage, BackendError>> + Send {
        unsupported()
    }

    /// Public collections with their image counts, sorted by name.
    fn collection_summaries(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::search::CollectionSummary>, BackendError>> + Send
    {
        unsupported()
    }

    /// Downloads and stars of the image `collection/name:tag`.
    fn usage(
        &self,
        _reference: &str,
    ) -> impl Future<Output = Result<crate::search::Usage, BackendError>> + Send {
        async { Ok(crate::search::Usage::default()) }
    }

    /// Counts one download of the file rooted at `root`: an HTTP client asked for it from byte
    /// 0 (`/ipfs`, shub and library downloads). Internal re-reads (a library tag call) are not
    /// downloads, so the count lives here rather than in [`Backend::read_file`]. The default
    /// counts nothing.
    fn count_download(&self, _root: &Cid) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Stars (`on`) or unstars the image for `user` (one star per user); returns the new usage.
    fn star(
        &self,
        _reference: &str,
        _user: &str,
        _on: bool,
    ) -> impl Future<Output = Result<crate::search::Usage, BackendError>> + Send {
        unsupported()
    }

    /// Sets the state gauges of `metrics` (peers, store size, images, under-replicated) just
    /// before a scrape. Must be cheap: answer from values kept up to date elsewhere. The
    /// default leaves them alone.
    fn refresh_metrics(
        &self,
        metrics: &'static crate::metrics::Metrics,
    ) -> impl Future<Output = ()> + Send {
        let _ = metrics;
        async {}
    }

    /// Records a library upload that waits for its tag call (`key` is the library image id),
    /// so the tag call still finds it after a restart, and so content no tag ever claims can be
    /// unpinned after the node's expiry. The default keeps nothing (the gateway also remembers
    /// uploads in memory).
    fn record_upload(
        &self,
        key: &str,
        root: &Cid,
        size: u64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = (key, root, size);
        async { Ok(()) }
    }

    /// The upload [`Backend::record_upload`] recorded under `key`: its root and size.
    fn recall_upload(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Cid, u64)>, BackendError>> + Send {
        let _ = key;
        async { Ok(None) }
    }

    /// Drops the record of an upload a tag now references.
    fn forget_upload(&self, key: &str) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = key;
        async { Ok(()) }
    }

    /// True if `token` is this node's admin token. Implementations compare hashes in constant
    /// time and never store the token itself.
    fn check_admin_token(&self, token: &str) -> bool;
}
