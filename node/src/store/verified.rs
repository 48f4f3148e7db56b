//! What this node knows to be intact without hashing it again.
//!
//! A blob's leaves are hashed against their CIDs when it is written: an import computes the
//! CIDs from the bytes, a fetched leaf is checked before it is written, repair and the scrub
//! re-hash what they read. Blobs are never modified after their rename into `blobs/`, so once
//! every leaf of a blob has hashed right the blob is marked (`verified-1`, root → unix seconds of
//! the check) and reads serve its leaves without hashing them again. Disk damage after that is
//! the scrub's job (`scrub.rs`) and that of fetchers, which hash every leaf they receive and
//! report a bad one to its holder. Blobs without a mark (written by an older version) are hashed
//! as they are read, and each leaf's success is remembered in memory for the process's life.
//!
//! Owns the marks. Must not read blob bytes or decide when to re-check (the scrub does).

use super::{Result, Store, sled_err};
use crate::clock::unix_now;
use shubnet_protocol::Cid;
use std::collections::HashSet;

/// Bound on remembered leaf verifications of unmarked blobs (about 16 bytes each): 4 Mi leaves
/// cover 1 TiB.
const MAX_VERIFIED_LEAVES: usize = 4 << 20;

impl Store {
    /// Marks every leaf of `root`'s blob as hashed right just now.
    pub(super) fn mark_blob_verified(&self, root: &Cid) -> Result<()> {
        self.inner
            .verified_blobs
            .insert(root.to_bytes(), &unix_now().to_be_bytes())
            .map_err(sled_err)?;
        Ok(())
    }

    /// When `root`'s blob was last verified whole, if it was.
    pub fn blob_verified_at(&self, root: &Cid) -> Result<Option<u64>> {
        Ok(self
            .inner
            .verified_blobs
            .get(root.to_bytes())
            .map_err(sled_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// True if the leaf at `offset` of `blob` need not be hashed when read: the whole blob is
    /// marked, or this process already hashed that leaf.
    pub(super) fn leaf_verified(&self, blob: &Cid, offset: u64) -> bool {
        if matches!(self.blob_verified_at(blob), Ok(Some(_))) {
            return true;
        }
        self.inner
            .verified
            .lock()
            .map(|m| m.get(blob).is_some_and(|s| s.contains(&offset)))
            .unwrap_or(false)
    }

    /// Remembers that the leaf at `offset` of an unmarked `blob` hashed right.
    pub(super) fn mark_leaf_verified(&self, blob: &Cid, offset: u64) {
        if let Ok(mut m) = self.inner.verified.lock() {
            let total: usize = m.values().map(HashSet::len).sum();
            if total >= MAX_VERIFIED_LEAVES {
                m.clear();
            }
            m.entry(*blob).or_default().insert(offset);
        }
    }

    /// Forgets every verification of a blob that was removed, quarantined or found damaged, so
    /// its next read (if any) hashes again.
    pub(super) fn forget_verified(&self, blob: &Cid) {
        if let Ok(mut m) = self.inner.verified.lock() {
            m.remove(blob);
        }
        if let Err(e) = self.inner.verified_blobs.remove(blob.to_bytes()) {
            tracing::warn!(%blob, error = %e, "cannot forget a blob's verification mark");
        }
    }

    /// Forgets every mark (repair rebuilds them as it re-hashes).
    pub(super) fn forget_all_verified(&self) -> Result<()> {
        if let Ok(mut m) = self.inner.verified.lock() {
            m.clear();
        }
        self.inner.verified_blobs.clear().map_err(sled_err)
    }
}
