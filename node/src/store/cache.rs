//! The object backend's local read cache: copies of blobs in `blobs/`, bounded in bytes, the
//! least recently used evicted first. A blob imported here stays cached after its upload; a
//! blob read from the bucket is copied in the background, checked against its CIDs on the way,
//! so hot images are served at local-disk speed.
//!
//! Owns which local copies exist when blobs live in a bucket. Must not delete anything in the
//! bucket, and does nothing at all on the local-disk backend (there `blobs/` is the truth).

use super::import::{NODES_SIDECAR, remove_quietly};
use super::{Result, Store, StoreError};
use shubnet_protocol::Cid;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The cache's bound and bookkeeping.
#[derive(Debug)]
pub(super) struct ReadCache {
    limit: u64,
    clock: AtomicU64,
    uses: Mutex<HashMap<Cid, u64>>,
    filling: Mutex<HashSet<Cid>>,
}

impl ReadCache {
    pub(super) fn new(limit: u64) -> Self {
        Self {
            limit,
            clock: AtomicU64::new(1),
            uses: Mutex::default(),
            filling: Mutex::default(),
        }
    }
}

impl Store {
    /// Records a use of `root`'s cached copy.
    pub(super) fn touch_cached(&self, root: &Cid) {
        if let Some(c) = &self.inner.cache {
            let t = c.clock.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut u) = c.uses.lock() {
                u.insert(*root, t);
            }
        }
    }

    /// Removes the least recently used cached copies until the cache fits its bound, never
    /// `keep`. Blocking. A copy open for reading stays readable until closed.
    pub(super) fn evict_cache(&self, keep: Option<&Cid>) {
        let Some(c) = &self.inner.cache else { return };
        let Ok(names) = self.blob_names() else { return };
        let mut held: Vec<(u64, u64, Cid, PathBuf)> = Vec::new();
        let mut total = 0u64;
        let uses = c.uses.lock().map(|u| u.clone()).unwrap_or_default();
        for (root, path) in names {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            total += meta.len();
            held.push((
                uses.get(&root).copied().unwrap_or(0),
                meta.len(),
                root,
                path,
            ));
        }
        if total <= c.limit {
            return;
        }
        held.sort_by_key(|h| h.0);
        for (_, len, root, path) in held {
            if total <= c.limit {
                break;
            }
            if Some(&root) == keep {
                continue;
            }
            remove_quietly(&path);
            if let Ok(mut u) = c.uses.lock() {
                u.remove(&root);
            }
            total = total.saturating_sub(len);
            tracing::debug!(%root, "evicted from the local read cache");
        }
    }

    /// Starts copying `root`'s blob from the bucket into the cache, unless a copy is on its way.
    pub(super) fn fill_cache_later(&self, root: &Cid) {
        let Some(c) = &self.inner.cache else { return };
        if c.limit == 0 {
            return;
        }
        let fresh = c
            .filling
            .lock()
            .map(|mut f| f.insert(*root))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let store = self.clone();
        let root = *root;
        std::thread::spawn(move || {
            if let Err(e) = store.fill_cache(&root) {
                tracing::warn!(%root, error = %e, "could not copy a blob into the read cache");
            }
            if let Some(c) = &store.inner.cache
                && let Ok(mut f) = c.filling.lock()
            {
                f.remove(&root);
            }
        });
    }

    /// Downloads `root`'s blob, hashes it against its DAG, and only then moves it into the
    /// cache. A copy that does not match is dropped (reads from the bucket hash every leaf).
    fn fill_cache(&self, root: &Cid) -> Result<()> {
        let Some(obj) = &self.inner.object else {
            return Ok(());
        };
        let temp = self.new_temp_path("cache");
        let got = futures::executor::block_on(obj.download(&root.to_string(), &temp));
        if let Err(e) = got {
            remove_quietly(&temp);
            return Err(e.into());
        }
        let sidecar = super::import::sidecar_path(&self.inner.dir.blobs(), root);
        let checked = if sidecar.exists() {
            super::maintenance::check_with_sidecar(&temp, &sidecar, root)
        } else {
            super::maintenance::check_default_layout(&temp, root)
        };
        match checked {
            Ok(_) => {
                let dest = self.blob_path(root);
                std::fs::rename(&temp, &dest)
                    .map_err(|e| StoreError::io("moving a copy into the read cache", e))?;
                self.touch_cached(root);
                self.evict_cache(Some(root));
                Ok(())
            }
            Err(why) => {
                remove_quietly(&temp);
                tracing::error!(%root, %why, "the bucket's copy of a blob does not match its CID");
                Ok(())
            }
        }
    }

    /// A local file holding `root`'s blob, for readers that need a file (SIF inspection):
    /// the blob itself on local disk, a cached copy (downloaded if need be) with a bucket.
    pub async fn local_blob_path(&self, root: &Cid) -> Result<PathBuf> {
        self.materialize(root).await
    }

    /// A local copy of `root`'s blob (and its sidecar, if the bucket has one), downloaded into
    /// the cache if there is none, unchecked: callers hash it (repair, re-indexing) or only
    /// parse it (metadata). On the local-disk backend this is the blob itself.
    pub(super) async fn materialize(&self, root: &Cid) -> Result<PathBuf> {
        let dest = self.blob_path(root);
        let Some(obj) = &self.inner.object else {
            return Ok(dest);
        };
        self.touch_cached(root);
        if dest.exists() {
            return Ok(dest);
        }
        let names = [
            (format!("{root}{NODES_SIDECAR}"), true),
            (root.to_string(), false),
        ];
        for (name, optional) in names {
            let local = self.inner.dir.blobs().join(&name);
            if local.exists() {
                continue;
            }
            let temp = self.new_temp_path("cache");
            match obj.download(&name, &temp).await {
                Ok(_) => std::fs::rename(&temp, &local)
                    .map_err(|e| StoreError::io("moving a copy into the read cache", e))?,
                Err(super::object::ObjectError::NotFound(_)) if optional => {
                    remove_quietly(&temp);
                }
                Err(e) => {
                    remove_quietly(&temp);
                    return Err(e.into());
                }
            }
        }
        Ok(dest)
    }
}
