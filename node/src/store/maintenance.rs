//! Garbage collection and repair. Both hold the maintenance lock exclusively, so no write is in
//! flight while they look at `blobs/` and `partial/`.
//!
//! Owns deciding what in `blobs/` is garbage or damaged. Must not touch files outside the
//! store's directories or trees other than the store's.

use super::import::{NODES_SIDECAR, remove_quietly, sidecar_path};
use super::tables::{self, Location, RootRecord};
use super::{Result, Store, StoreError, sled_err, unix_now};
use sha2::{Digest, Sha256};
use shubnet_protocol::Cid;
use shubnet_protocol::car::CarReader;
use shubnet_protocol::cid::verify;
use shubnet_protocol::unixfs::{Block, FileNode, Importer, Layout};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// What GC removed.
#[derive(Debug, Default, Clone)]
pub struct GcOutcome {
    /// Roots whose blobs and index entries were removed.
    pub removed: Vec<Cid>,
    /// Bytes of blob files freed.
    pub freed_bytes: u64,
}

/// What repair found and did.
#[derive(Debug, Default, Clone)]
pub struct RepairOutcome {
    /// Blobs checked.
    pub checked: u64,
    /// Blobs that failed their hash check and were moved to `quarantine/`.
    pub damaged: Vec<String>,
    /// Blocks written to the rebuilt index.
    pub indexed_blocks: u64,
    /// Temp files of interrupted writes removed.
    pub removed_partials: u64,
}

impl RepairOutcome {
    /// True when no blob was damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

impl Store {
    /// Removes the content of every root that is not pinned. Pinned content is never touched.
    pub async fn gc(&self) -> Result<GcOutcome> {
        let _guard = self.inner.maintenance.write().await;
        if let Some(obj) = &self.inner.object {
            // No write is in flight under the exclusive lock, so any incomplete upload is an
            // orphan of a failed import.
            let aborted = obj.abort_incomplete_uploads().await?;
            if aborted > 0 {
                tracing::warn!(aborted, "gc aborted incomplete multipart uploads");
            }
        }
        let store = self.clone();
        let out = tokio::task::spawn_blocking(move || store.gc_blocking())
            .await
            .map_err(|e| StoreError::Invalid(format!("gc task failed: {e}")))??;
        self.flush().await?;
        Ok(out)
    }

    /// Removes one root's content now if it is not pinned (a refused push). Returns whether
    /// anything was removed.
    pub async fn remove_if_unpinned(&self, root: &Cid) -> Result<bool> {
        let _guard = self.inner.maintenance.write().await;
        let store = self.clone();
        let root = *root;
        let removed = tokio::task::spawn_blocking(move || -> Result<bool> {
            match store.root_record(&root)? {
                Some(_) if !store.is_pinned(&root)? => {
                    store.remove_root(&root)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("gc task failed: {e}")))??;
        self.flush().await?;
        Ok(removed)
    }

    fn remove_root(&self, root: &Cid) -> Result<()> {
        self.unindex_root(root)?;
        self.forget_verified(root);
        if let Some(obj) = &self.inner.object {
            futures::executor::block_on(obj.delete(&format!("{root}{NODES_SIDECAR}")))?;
            futures::executor::block_on(obj.delete(&root.to_string()))?;
        }
        let blob = self.blob_path(root);
        remove_quietly(&sidecar_path(&self.inner.dir.blobs(), root));
        std::fs::remove_file(&blob)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| StoreError::io(format!("removing {}", blob.display()), e))
    }

    fn gc_blocking(&self) -> Result<GcOutcome> {
        let mut out = GcOutcome::default();
        for (root, rec) in self.roots()? {
            if self.is_pinned(&root)? || self.is_retained(&root)? {
                continue;
            }
            self.remove_root(&root)?;
            out.freed_bytes += rec.size;
            out.removed.push(root);
            tracing::info!(%root, "gc removed unpinned content");
        }
        Ok(out)
    }

    /// Removes the index entries of one root's DAG, found by walking it from the root.
    pub(super) fn unindex_root(&self, root: &Cid) -> Result<()> {
        let mut stack = vec![*root];
        let mut batch = sled::Batch::default();
        let mut seen = HashSet::new();
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) {
                continue;
            }
            let key = tables::block_key(&cid, root);
            if let Some(v) = self.inner.blocks.get(&key).map_err(sled_err)?
                && let Some(Location::Inline(bytes)) = Location::decode(&v)
                && let Ok(FileNode::Branch { children, .. }) = FileNode::decode(&cid, &bytes)
            {
                stack.extend(children.into_iter().map(|c| c.0));
            }
            batch.remove(key);
        }
        self.inner.blocks.apply_batch(batch).map_err(sled_err)?;
        self.inner.roots.remove(root.to_bytes()).map_err(sled_err)?;
        Ok(())
    }

    /// Checks every blob against its CID and rebuilds the index from `blobs/` alone. Damaged
    /// blobs go to `quarantine/`. Pins survive; blobs the index did not know (it was lost) are
    /// pinned, because deleting data that might have been pinned cannot be undone.
    pub async fn repair(&self) -> Result<RepairOutcome> {
        let _guard = self.inner.maintenance.write().await;
        let store = self.clone();
        let out = tokio::task::spawn_blocking(move || store.repair_blocking())
            .await
            .map_err(|e| StoreError::Invalid(format!("repair task failed: {e}")))??;
        self.flush().await?;
        Ok(out)
    }

    fn repair_blocking(&self) -> Result<RepairOutcome> {
        let mut out = RepairOutcome {
            removed_partials: self.clear_partials()?,
            ..Default::default()
        };
        let known: HashSet<Cid> = self.roots()?.into_iter().map(|(c, _)| c).collect();
        self.inner.blocks.clear().map_err(sled_err)?;
        self.forget_all_verified()?;
        self.inner.roots.clear().map_err(sled_err)?;
        let blobs = self.inner.dir.blobs();
        let mut present = HashSet::new();
        let names: Vec<(Cid, std::path::PathBuf)> = match &self.inner.object {
            Some(obj) => futures::executor::block_on(obj.list_blobs())?
                .into_iter()
                .filter_map(|(name, _)| Cid::try_from(name.as_str()).ok())
                .map(|root| (root, self.blob_path(&root)))
                .collect(),
            None => self.blob_names()?.collect(),
        };
        for (root, path) in names {
            if self.inner.object.is_some() {
                futures::executor::block_on(self.materialize(&root))?;
            }
            if !path.is_file() {
                continue;
            }
            out.checked += 1;
            match self.check_and_index(&root, &path, !known.contains(&root))? {
                Some(n) => {
                    out.indexed_blocks += n;
                    present.insert(root);
                }
                None => out.damaged.push(root.to_string()),
            }
            self.evict_cache(None);
        }
        // Pins whose content is gone (quarantined or deleted by hand) no longer mean anything.
        for (cid, _) in self.pins()? {
            if !present.contains(&cid) {
                self.inner.pins.remove(cid.to_bytes()).map_err(sled_err)?;
            }
        }
        // Stray temp files of sidecar writes.
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    remove_quietly(&e.path());
                    out.removed_partials += 1;
                }
            }
        }
        Ok(out)
    }

    /// Hashes one blob and indexes it. Returns the number of blocks indexed, or `None` if the
    /// blob failed its check and was quarantined. `pin_new` pins it if it is not pinned.
    fn check_and_index(&self, root: &Cid, path: &Path, pin_new: bool) -> Result<Option<u64>> {
        let sidecar = sidecar_path(&self.inner.dir.blobs(), root);
        let checked = if sidecar.exists() {
            check_with_sidecar(path, &sidecar, root)
        } else {
            check_default_layout(path, root)
        };
        match checked {
            Ok((record, blocks)) => {
                self.index_blob(root, &record, &blocks)?;
                if pin_new && !self.is_pinned(root)? {
                    self.inner
                        .pins
                        .insert(root.to_bytes(), &unix_now().to_be_bytes())
                        .map_err(sled_err)?;
                }
                Ok(Some(blocks.len() as u64))
            }
            Err(why) => {
                tracing::error!(%root, %why, "blob failed verification; quarantining it");
                self.quarantine(root, path, &sidecar)?;
                Ok(None)
            }
        }
    }

    /// Indexes blobs the index does not know: after a crash between a blob's rename and its
    /// indexing, or when the index was lost. They are pinned, since nothing says they may go.
    pub(super) fn index_missing(&self) -> Result<u64> {
        let mut n = 0;
        for (root, path) in self.blob_names()? {
            if path.is_file() && self.root_record(&root)?.is_none() {
                tracing::warn!(%root, "blob is not in the index; checking and indexing it");
                self.check_and_index(&root, &path, true)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Indexes blobs in the bucket that the index does not know (it was lost, or the node
    /// died between an upload and its indexing): each is downloaded, checked and pinned.
    pub(super) async fn index_missing_from_bucket(&self) -> Result<u64> {
        let Some(obj) = &self.inner.object else {
            return Ok(0);
        };
        let mut n = 0;
        for (name, _) in obj.list_blobs().await? {
            let Ok(root) = Cid::try_from(name.as_str()) else {
                continue;
            };
            if self.root_record(&root)?.is_some() {
                continue;
            }
            tracing::warn!(%root, "blob in the bucket is not in the index; checking and indexing it");
            let path = self.materialize(&root).await?;
            let store = self.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                store.check_and_index(&root, &path, true)?;
                store.evict_cache(None);
                Ok(())
            })
            .await
            .map_err(|e| StoreError::Invalid(format!("re-index task failed: {e}")))??;
            n += 1;
        }
        Ok(n)
    }

    /// Moves a damaged blob (and its sidecar) to `quarantine/`, kept for inspection; in a
    /// bucket, to the prefix's `quarantine/`.
    pub(super) fn quarantine(&self, root: &Cid, blob: &Path, sidecar: &Path) -> Result<()> {
        shubnet_metrics::global().quarantined.inc();
        self.forget_verified(root);
        if let Some(obj) = &self.inner.object {
            let now = unix_now();
            futures::executor::block_on(obj.quarantine(&format!("{root}{NODES_SIDECAR}"), now))?;
            futures::executor::block_on(obj.quarantine(&root.to_string(), now))?;
            if !blob.exists() {
                return Ok(());
            }
        }
        let q = self.inner.dir.quarantine();
        let dest = q.join(format!("{root}.{}", unix_now()));
        std::fs::rename(blob, &dest)
            .map_err(|e| StoreError::io(format!("moving {} to quarantine", blob.display()), e))?;
        if sidecar.exists() {
            let _ = std::fs::rename(
                sidecar,
                q.join(format!("{root}.{}{NODES_SIDECAR}", unix_now())),
            );
        }
        Ok(())
    }
}

/// Why a blob failed its check (it is quarantined).
#[derive(Debug, thiserror::Error)]
pub(super) enum Damage {
    /// The blob or its sidecar cannot be read.
    #[error("{0}")]
    Read(#[from] std::io::Error),
    /// The bytes hash to another root than the file's name.
    #[error("content hashes to {0}, not its name")]
    WrongRoot(Cid),
    /// Re-importing gave no whole-file digest to record.
    #[error("no whole-file sha256 was computed")]
    NoDigest,
    /// The sidecar is not a valid CAR.
    #[error("{0}")]
    Sidecar(#[from] shubnet_protocol::car::CarError),
    /// A leaf does not match its CID.
    #[error("{0}")]
    Leaf(#[from] shubnet_protocol::cid::CidError),
    /// A node in the sidecar does not decode.
    #[error("{0}")]
    Node(#[from] shubnet_protocol::dagpb::DagPbError),
    /// The sidecar does not hold a node the DAG needs.
    #[error("sidecar lacks node {0}")]
    MissingNode(Cid),
    /// A node the DAG needs is a leaf, not a dag-pb node.
    #[error("{0} in the sidecar is not a dag-pb node")]
    NotNode(Cid),
    /// A leaf size that cannot be held in memory.
    #[error("a leaf of {0} bytes is too large")]
    LeafSize(u64),
    /// The file ends before its DAG does.
    #[error("blob is shorter than its DAG: {0}")]
    Short(std::io::Error),
    /// The file goes on after its DAG ends.
    #[error("blob is longer than its DAG")]
    Long,
}

/// Re-imports a blob with the default layout; its root must equal the file's name.
pub(super) fn check_default_layout(
    path: &Path,
    root: &Cid,
) -> std::result::Result<(RootRecord, Vec<Block>), Damage> {
    let f = File::open(path)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut imp = Importer::new(Layout::default());
    let mut blocks = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        imp.update(&buf[..n]);
        blocks.extend(imp.take_blocks());
    }
    let (rest, summary) = imp.finish();
    blocks.extend(rest);
    if summary.root != *root {
        return Err(Damage::WrongRoot(summary.root));
    }
    Ok((
        RootRecord {
            size: summary.size,
            sha256: summary.sha256.ok_or(Damage::NoDigest)?,
        },
        blocks,
    ))
}

/// Checks a blob whose DAG has a non-default layout against the dag-pb nodes in its sidecar.
pub(super) fn check_with_sidecar(
    path: &Path,
    sidecar: &Path,
    root: &Cid,
) -> std::result::Result<(RootRecord, Vec<Block>), Damage> {
    let s = File::open(sidecar)?;
    let mut car = CarReader::new(BufReader::new(s))?;
    let mut nodes = HashMap::new();
    while let Some((cid, bytes)) = car.next_verified_block()? {
        nodes.insert(cid, bytes);
    }
    let mut f = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut sha = Sha256::new();
    let mut blocks = Vec::new();
    let mut offset = 0u64;
    // Depth-first, children in order, so leaves are met in file order and read sequentially.
    let mut stack = vec![(*root, None::<u64>)];
    let mut buf = Vec::new();
    while let Some((cid, leaf_size)) = stack.pop() {
        if let Some(size) = leaf_size {
            buf.resize(
                usize::try_from(size).map_err(|_| Damage::LeafSize(size))?,
                0,
            );
            f.read_exact(&mut buf).map_err(Damage::Short)?;
            verify(&cid, &buf)?;
            sha.update(&buf);
            blocks.push(Block::Leaf {
                cid,
                offset,
                len: size,
            });
            offset += size;
            continue;
        }
        let bytes = nodes.get(&cid).ok_or(Damage::MissingNode(cid))?;
        let FileNode::Branch { children, .. } = FileNode::decode(&cid, bytes)? else {
            return Err(Damage::NotNode(cid));
        };
        blocks.push(Block::Node {
            cid,
            bytes: bytes.clone(),
        });
        stack.extend(children.into_iter().rev().map(|(child, size)| {
            let is_leaf = child.codec() == shubnet_protocol::cid::RAW;
            (child, is_leaf.then_some(size))
        }));
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest)? != 0 {
        return Err(Damage::Long);
    }
    Ok((
        RootRecord {
            size: offset,
            sha256: sha.finalize().into(),
        },
        blocks,
    ))
}
