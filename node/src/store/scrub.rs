//! Re-hashing stored blobs against their CIDs after they were marked verified, and setting a
//! damaged one aside: the store's half of the scrub and of bad-leaf reports. The pace, the
//! schedule and fetching a good copy again belong to the caller (`crate::scrub`,
//! `crate::p2p::fetch::badleaf`).
//!
//! Owns reading a blob to check it and moving it to `quarantine/`. Must not fetch, count
//! metrics other than the scrub's, or touch pins (a quarantined image that was pinned is pinned
//! again when its good copy arrives).

use super::blobfile::BlobFile;
use super::import::sidecar_path;
use super::tables::{self, Location};
use super::{Result, Store, StoreError, sled_err};
use shubnet_protocol::Cid;
use shubnet_protocol::cid::verify;
use shubnet_protocol::unixfs::FileNode;

/// What scrubbing one blob found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubOutcome {
    /// Every leaf hashed to its CID; the blob's mark was renewed.
    Intact {
        /// Leaves hashed.
        leaves: u64,
        /// Bytes read.
        bytes: u64,
    },
    /// A leaf did not hash to its CID, or could not be read in full.
    Damaged {
        /// The first bad leaf.
        leaf: Cid,
    },
    /// The image is no longer stored (removed while the scrub ran).
    Gone,
}

/// What re-hashing one leaf found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafCheck {
    /// The stored bytes hash to the leaf's CID.
    Intact,
    /// They do not, or cannot be read in full.
    Damaged,
    /// The image does not hold that leaf.
    NotHeld,
}

impl Store {
    /// Stored roots in the order the scrub should visit them: never verified whole first, then
    /// the longest since their last check; each with the unix seconds of that check.
    pub fn scrub_queue(&self) -> Result<Vec<(Cid, Option<u64>)>> {
        let mut q = Vec::new();
        for (root, _) in self.roots()? {
            q.push((root, self.blob_verified_at(&root)?));
        }
        q.sort_by_key(|(_, at)| at.unwrap_or(0));
        Ok(q)
    }

    /// Hashes every leaf of `root`'s blob against its CID, calling `pace` with each leaf's length
    /// after it is hashed (the caller sleeps there to hold a rate). Renews the blob's mark when
    /// all are intact. Blocking.
    pub fn scrub_blob(&self, root: &Cid, pace: &mut dyn FnMut(u64)) -> Result<ScrubOutcome> {
        if self.root_record(root)?.is_none() {
            return Ok(ScrubOutcome::Gone);
        }
        let f = match self.open_blob(root) {
            Ok(f) => f,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ScrubOutcome::Damaged { leaf: *root });
            }
            Err(e) => return Err(e),
        };
        let metrics = shubnet_metrics::global();
        let (mut leaves, mut bytes) = (0u64, 0u64);
        let mut buf = Vec::new();
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            let Some(loc) = self.location_in(&cid, root)? else {
                if self.root_record(root)?.is_none() {
                    return Ok(ScrubOutcome::Gone);
                }
                return Err(StoreError::Invalid(format!(
                    "the index lacks block {cid} of {root}; run `shubnet repair`"
                )));
            };
            match loc {
                Location::Inline(node) => {
                    if let Ok(FileNode::Branch { children, .. }) = FileNode::decode(&cid, &node) {
                        stack.extend(children.into_iter().rev().map(|(c, _)| c));
                    }
                }
                Location::Blob { offset, len } => {
                    if !leaf_intact(&f, &cid, offset, len, &mut buf, root)? {
                        return Ok(ScrubOutcome::Damaged { leaf: cid });
                    }
                    leaves += 1;
                    bytes += u64::from(len);
                    metrics.scrub_blocks.inc();
                    metrics.scrub_bytes.inc_by(u64::from(len));
                    pace(u64::from(len));
                }
            }
        }
        if self.root_record(root)?.is_none() {
            return Ok(ScrubOutcome::Gone);
        }
        self.mark_blob_verified(root)?;
        Ok(ScrubOutcome::Intact { leaves, bytes })
    }

    /// Re-hashes the leaf `leaf` of `root`'s blob, whatever its mark says. Blocking.
    pub fn check_leaf(&self, root: &Cid, leaf: &Cid) -> Result<LeafCheck> {
        let Some(Location::Blob { offset, len }) = self.location_in(leaf, root)? else {
            return Ok(LeafCheck::NotHeld);
        };
        let f = match self.open_blob(root) {
            Ok(f) => f,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LeafCheck::NotHeld);
            }
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        Ok(if leaf_intact(&f, leaf, offset, len, &mut buf, root)? {
            LeafCheck::Intact
        } else {
            LeafCheck::Damaged
        })
    }

    /// Sets `root`'s damaged blob aside in `quarantine/` and drops it from the index, so it is
    /// neither served nor listed as held any more. Returns false if it was not stored.
    pub async fn quarantine_root(&self, root: &Cid) -> Result<bool> {
        let _guard = self.inner.maintenance.write().await;
        let store = self.clone();
        let root = *root;
        let moved = tokio::task::spawn_blocking(move || -> Result<bool> {
            if store.root_record(&root)?.is_none() {
                return Ok(false);
            }
            store.unindex_root(&root)?;
            let blob = store.blob_path(&root);
            let sidecar = sidecar_path(&store.inner.dir.blobs(), &root);
            if blob.exists() || store.inner.object.is_some() {
                store.quarantine(&root, &blob, &sidecar)?;
            } else {
                store.forget_verified(&root);
            }
            tracing::error!(%root, "blob failed its check; moved to quarantine/");
            Ok(true)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("quarantine task failed: {e}")))??;
        self.flush().await?;
        Ok(moved)
    }

    /// Where `cid` is inside `root`'s blob, if it is part of that image.
    fn location_in(&self, cid: &Cid, root: &Cid) -> Result<Option<Location>> {
        Ok(self
            .inner
            .blocks
            .get(tables::block_key(cid, root))
            .map_err(sled_err)?
            .and_then(|v| Location::decode(&v)))
    }
}

/// Reads `len` bytes at `offset` of `f` and hashes them against `cid`; false if they do not
/// match or the blob is shorter than the index says.
fn leaf_intact(
    f: &BlobFile,
    cid: &Cid,
    offset: u64,
    len: u32,
    buf: &mut Vec<u8>,
    root: &Cid,
) -> Result<bool> {
    buf.resize(len as usize, 0);
    match f.read_exact_at(buf, offset) {
        Ok(()) => Ok(verify(cid, buf).is_ok()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(StoreError::io(format!("reading blob {root}"), e)),
    }
}
