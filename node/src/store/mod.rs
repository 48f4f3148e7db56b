//! The content store: complete images as plain files under `blobs/`, named by root CID, and a
//! sled index of every block in them.
//!
//! Truth is `blobs/`; the index (`index/`) is derived and [`Store::repair`] rebuilds it from the
//! blobs alone. Every write goes temp file in `partial/` → fsync → rename → fsync dir → index, so
//! a crash at any point leaves either no blob or a complete one, and a complete blob without
//! index entries is found again by repair (or automatically at start when the index is new).
//!
//! Concurrency: sled is thread-safe, and file I/O runs on blocking threads. Writers of blobs take
//! the read side of `maintenance`; GC and repair take the write side, so they never see a blob
//! between its rename and its pin, or delete a temp file that is still being written.
//!
//! Blobs live on local disk by default. With `--blobs s3://BUCKET/PREFIX` (`object.rs`) the
//! bucket is the truth instead: a blob is staged and hashed locally as before, uploaded under its
//! final name, and `blobs/` becomes a bounded read cache (`cache.rs`); the index is rebuilt from
//! a listing of the bucket.
//!
//! Owns `blobs/`, `partial/`, `quarantine/` and the store's trees of the index. Must not touch
//! another part's trees (they are handed out by [`crate::db::Index`]) or files outside those
//! directories.

mod blobfile;
mod cache;
mod import;
mod maintenance;
pub mod object;
pub mod partial;
mod read;
mod retention;
mod scrub;
pub mod tables;
mod verified;

pub use blobfile::BlobFile;
pub use import::{CarImported, FetchedDag};
pub use object::{BlobsUrl, ObjectBlobs, ObjectError};
pub use scrub::{LeafCheck, ScrubOutcome};

use crate::clock::unix_now;
use crate::db::Index;
use crate::paths::DataDir;
use shubnet_protocol::Cid;
use shubnet_protocol::unixfs::Layout;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tables::{Location, RootRecord};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full (or over quota). Nothing partial was kept.
    #[error("no space left on the node's disk: {0}")]
    Full(String),
    /// The content is not held here.
    #[error("{0} is not stored on this node")]
    NotFound(Cid),
    /// The input is invalid (bad CAR, hash mismatch, unsupported DAG).
    #[error("{0}")]
    Invalid(String),
    /// The upload is larger than allowed.
    #[error("upload exceeds the {0}-byte limit")]
    TooLarge(u64),
    /// Stored bytes do not match their CID: disk damage. Repair quarantines the blob.
    #[error("stored content of {0} is damaged (hash mismatch); run `shubnet repair`")]
    Corrupt(Cid),
    /// Fetching content from other nodes failed (no peer reachable, the peers lack a block, or
    /// they did not answer in time). Nothing partial was kept.
    #[error("{0}")]
    Fetch(String),
    /// The upload stream broke before its end.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// A filesystem error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The object store holding the blobs failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The index database failed.
    #[error("index: {0}")]
    Index(#[from] sled::Error),
    /// Hashing the whole file failed, so there is no sha256 to record or sign.
    #[error("hashing the upload failed: {0}")]
    Hash(#[source] tokio::task::JoinError),
    /// A file could not be replaced durably.
    #[error("{context}: {source}")]
    Durable {
        /// What was being done.
        context: String,
        /// The step that failed, with the file.
        source: crate::durable::DurableError,
    },
}

impl StoreError {
    /// Wraps an I/O error, recognising a full disk.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let context = context.into();
        if is_disk_full(&source) {
            StoreError::Full(format!("{context}: {source}"))
        } else {
            StoreError::Io { context, source }
        }
    }

    /// Wraps a failed durable write, recognising a full disk.
    pub fn durable(context: impl Into<String>, source: crate::durable::DurableError) -> Self {
        let context = context.into();
        if is_disk_full(&source.source) {
            StoreError::Full(format!("{context}: {source}"))
        } else {
            StoreError::Durable { context, source }
        }
    }
}

/// True for "no space" and "over quota" errors.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
}

fn sled_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if is_disk_full(&io) => StoreError::Full(format!("index: {io}")),
        other => StoreError::Index(other),
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where blobs live.
#[derive(Debug, Clone, Default)]
pub enum BlobBackend {
    /// Plain files under `DATA_DIR/blobs/`.
    #[default]
    Local,
    /// Objects in a bucket; `blobs/` keeps a read cache of at most `cache_bytes`.
    Object {
        /// The bucket and prefix.
        blobs: ObjectBlobs,
        /// Bound of the local read cache.
        cache_bytes: u64,
        /// Who this node is, written into the prefix's writer lock.
        owner: String,
    },
}

/// A cheap-to-clone handle to the store.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: DataDir,
    index: Index,
    blocks: sled::Tree,
    roots: sled::Tree,
    pins: sled::Tree,
    retained: sled::Tree,
    /// Blobs verified whole, and when (see `verified.rs`).
    verified_blobs: sled::Tree,
    layout: Layout,
    maintenance: tokio::sync::RwLock<()>,
    temp_counter: AtomicU64,
    /// The bucket holding the blobs, when they are not on local disk.
    object: Option<ObjectBlobs>,
    /// The local read cache of the object backend.
    cache: Option<cache::ReadCache>,
    /// Leaves hashed since open, per blob (see `read.rs`).
    verified: std::sync::Mutex<std::collections::HashMap<Cid, std::collections::HashSet<u64>>>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. If the index is new but blobs exist — the
    /// index was deleted or lost — it is rebuilt before the store is returned.
    pub async fn open(dir: DataDir) -> Result<Self> {
        Self::open_with(dir, BlobBackend::Local).await
    }

    /// Opens the store with its blobs where `backend` says. With a bucket, incomplete multipart
    /// uploads a killed node left are aborted, and blobs the index does not know are found by
    /// listing the bucket, checked and indexed.
    pub async fn open_with(dir: DataDir, backend: BlobBackend) -> Result<Self> {
        let (object, cache) = match backend {
            BlobBackend::Local => (None, None),
            BlobBackend::Object {
                blobs,
                cache_bytes,
                owner,
            } => {
                blobs.check().await?;
                blobs.acquire_lock(&owner).await?;
                let aborted = blobs.abort_incomplete_uploads().await?;
                if aborted > 0 {
                    tracing::warn!(aborted, "aborted incomplete multipart uploads at start");
                }
                (Some(blobs), Some(cache::ReadCache::new(cache_bytes)))
            }
        };
        for d in [dir.blobs(), dir.partial(), dir.quarantine()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| StoreError::io(format!("creating {}", d.display()), e))?;
        }
        let mut fresh = !dir.index().exists();
        let db = match open_index(&dir) {
            Ok(db) => db,
            Err(sled::Error::Corruption { .. }) | Err(sled::Error::Unsupported(_)) => {
                // The index is derived state: set the damaged one aside and rebuild from blobs/.
                let aside = dir.damaged_index(unix_now());
                tracing::error!(moved_to = %aside.display(), "the index is damaged; rebuilding it");
                std::fs::rename(dir.index(), &aside)
                    .map_err(|e| StoreError::io("moving the damaged index aside", e))?;
                fresh = true;
                open_index(&dir).map_err(sled_err)?
            }
            Err(e) => return Err(sled_err(e)),
        };
        let trees = db.store_trees().map_err(sled_err)?;
        let store = Store {
            inner: Arc::new(Inner {
                blocks: trees.blocks,
                roots: trees.roots,
                pins: trees.pins,
                retained: trees.retained,
                verified_blobs: trees.verified,
                index: db,
                dir,
                layout: Layout::default(),
                maintenance: tokio::sync::RwLock::new(()),
                temp_counter: AtomicU64::new(0),
                verified: std::sync::Mutex::default(),
                object,
                cache,
            }),
        };
        store.clear_partials()?;
        let reindexed = if store.inner.object.is_some() {
            store.index_missing_from_bucket().await?
        } else {
            store.index_missing()?
        };
        if reindexed > 0 {
            tracing::info!(reindexed, fresh, "re-indexed blobs the index did not know");
            store.flush().await?;
        }
        Ok(store)
    }

    /// The bucket holding the blobs, if they are not on local disk.
    pub fn object_blobs(&self) -> Option<&ObjectBlobs> {
        self.inner.object.as_ref()
    }

    /// The index database, which the registry and the usage counts open their own trees in.
    pub fn index(&self) -> &Index {
        &self.inner.index
    }

    /// The data directory.
    pub fn dir(&self) -> &DataDir {
        &self.inner.dir
    }

    fn blob_path(&self, root: &Cid) -> PathBuf {
        self.inner.dir.blobs().join(root.to_string())
    }

    fn new_temp_path(&self, what: &str) -> PathBuf {
        let n = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.inner
            .dir
            .partial()
            .join(format!("{what}-{}-{n}-{nanos}.tmp", std::process::id()))
    }

    /// Removes leftovers of interrupted writes. Only safe when no write is in progress: at open,
    /// and under the maintenance lock.
    fn clear_partials(&self) -> Result<u64> {
        let dir = self.inner.dir.partial();
        let mut n = 0;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_file() {
                std::fs::remove_file(&p)
                    .map_err(|e| StoreError::io(format!("removing {}", p.display()), e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Names of the files in `blobs/` that look like root CIDs.
    fn blob_names(&self) -> Result<impl Iterator<Item = (Cid, PathBuf)> + use<>> {
        let dir = self.inner.dir.blobs();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        Ok(entries.flatten().filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let cid = Cid::try_from(name.as_str()).ok()?;
            Some((cid, e.path()))
        }))
    }

    /// The index record of a stored image.
    pub fn root_record(&self, root: &Cid) -> Result<Option<RootRecord>> {
        Ok(self
            .inner
            .roots
            .get(root.to_bytes())
            .map_err(sled_err)?
            .and_then(|v| RootRecord::decode(&v)))
    }

    /// The first known location of a block, with the root whose blob holds it.
    fn locate(&self, cid: &Cid) -> Result<Option<(Cid, Location)>> {
        for item in self.inner.blocks.scan_prefix(tables::block_prefix(cid)) {
            let (k, v) = item.map_err(sled_err)?;
            if let (Some(root), Some(loc)) = (tables::root_of_block_key(&k), Location::decode(&v)) {
                return Ok(Some((root, loc)));
            }
        }
        Ok(None)
    }

    /// The roots whose blobs contain `cid` (itself, if it is a root).
    pub fn roots_containing(&self, cid: &Cid) -> Result<Vec<Cid>> {
        let mut out = Vec::new();
        for item in self.inner.blocks.scan_prefix(tables::block_prefix(cid)) {
            let (k, _) = item.map_err(sled_err)?;
            if let Some(root) = tables::root_of_block_key(&k) {
                out.push(root);
            }
        }
        Ok(out)
    }

    /// True if the block is held.
    pub fn has_block(&self, cid: &Cid) -> Result<bool> {
        Ok(self.locate(cid)?.is_some())
    }

    /// Pins a held root.
    pub fn pin(&self, root: &Cid) -> Result<()> {
        if self.root_record(root)?.is_none() {
            return Err(StoreError::NotFound(*root));
        }
        self.inner
            .pins
            .insert(root.to_bytes(), &unix_now().to_be_bytes())
            .map_err(sled_err)?;
        self.inner.pins.flush().map_err(sled_err)?;
        Ok(())
    }

    /// Unpins a root. Unpinning something that is not pinned is not an error.
    pub fn unpin(&self, root: &Cid) -> Result<()> {
        self.inner.pins.remove(root.to_bytes()).map_err(sled_err)?;
        self.inner.pins.flush().map_err(sled_err)?;
        Ok(())
    }

    /// True if `root` is pinned.
    pub fn is_pinned(&self, root: &Cid) -> Result<bool> {
        self.inner
            .pins
            .contains_key(root.to_bytes())
            .map_err(sled_err)
    }

    /// Pinned roots with their sizes.
    pub fn pins(&self) -> Result<Vec<(Cid, u64)>> {
        let mut out = Vec::new();
        for item in self.inner.pins.iter() {
            let (k, _) = item.map_err(sled_err)?;
            let Ok(cid) = Cid::try_from(k.as_ref()) else {
                continue;
            };
            let size = self.root_record(&cid)?.map_or(0, |r| r.size);
            out.push((cid, size));
        }
        Ok(out)
    }

    /// Stored roots.
    pub fn roots(&self) -> Result<Vec<(Cid, RootRecord)>> {
        let mut out = Vec::new();
        for item in self.inner.roots.iter() {
            let (k, v) = item.map_err(sled_err)?;
            if let (Ok(cid), Some(rec)) = (Cid::try_from(k.as_ref()), RootRecord::decode(&v)) {
                out.push((cid, rec));
            }
        }
        Ok(out)
    }

    /// Flushes the index to disk.
    pub async fn flush(&self) -> Result<()> {
        self.inner.index.flush_async().await.map_err(sled_err)
    }
}

fn open_index(dir: &DataDir) -> std::result::Result<Index, sled::Error> {
    Index::open(&dir.index())
}

/// fsyncs a directory so a rename into it survives a crash.
fn sync_dir(dir: &Path) -> Result<()> {
    crate::durable::sync_dir(dir)
        .map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))
}

#[cfg(test)]
mod tests;
