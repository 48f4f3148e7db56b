//! Partial downloads: an image arriving leaf by leaf, kept across dropped connections and
//! restarts, and served to other members while it arrives.
//!
//! Layout, under `partial/fetch/<root>/` (a directory, so the sweep of stray temp files in
//! `partial/` leaves it alone):
//! - `nodes.car`: the DAG's dag-pb nodes, written once (temp → fsync → rename) before any leaf;
//! - `data`: a sparse file of the image's size, each leaf at its file offset;
//! - `leaves`: the bitmap of leaves verified and durable (temp → fsync → rename), written after
//!   `data` is fsynced, so a set bit always names bytes on disk.
//!
//! A leaf written after the last checkpoint is not lost after a crash: opening re-hashes every
//! leaf whose bit is clear and sets it if the bytes on disk match, so a restarted transfer never
//! fetches again a leaf it already verified. When every bit is set, [`Store::finish_partial`]
//! fsyncs `data` and renames it into `blobs/` as a normal blob.
//!
//! The image's whole-file sha256 is computed as the verified leaves form a prefix of the file
//! (a fetch from complete holders goes in file order), from each leaf's bytes as it is written,
//! so finishing hashes only what the prefix does not cover yet. That state lives in memory only:
//! after a restart the hash starts again from the file's start, reading verified leaves back.
//!
//! Owns `partial/fetch/`. Must not write into `blobs/` except through the store's commit.

use super::import::{Staged, remove_quietly};
use super::read::start_writeback;
use super::tables::RootRecord;
use super::{Result, Store, StoreError, sync_dir};
use crate::durable::Mode;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use shubnet_protocol::Cid;
use shubnet_protocol::car::CarReader;
use shubnet_protocol::cid::verify;
use shubnet_protocol::fetch::{Bitmap, LeafInfo, leaf_table};
use shubnet_protocol::unixfs::Block;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// A DAG's dag-pb nodes with their CIDs.
pub type DagNodes = Vec<(Cid, Vec<u8>)>;

/// Leaves written between checkpoints of the bitmap (1024 × 256 KiB = 256 MiB). A checkpoint
/// fsyncs the data, which on a slow disk stalls the stream that triggers it, so it is rare: a
/// crash loses nothing verified anyway, since opening re-hashes leaves past the checkpoint
/// (256 MiB at most, a fraction of a second).
const CHECKPOINT_EVERY: u32 = 1024;
/// Leaves written between hints to the kernel to start writing back (16 × 256 KiB = 4 MiB), so
/// dirty pages do not pile up for the final fsync.
const WRITEBACK_EVERY: u32 = 16;
/// Most verified leaves one write reads back from `data` to move the whole-file hash on (leaves
/// that arrived out of order), so no writer is held long; finishing hashes whatever is left.
const CATCH_UP: u32 = 64;

/// One partial download; share it behind an `Arc`.
#[derive(Debug)]
pub struct Partial {
    root: Cid,
    dir: PathBuf,
    data: File,
    nodes: Vec<(Cid, Vec<u8>)>,
    leaves: Vec<LeafInfo>,
    state: Mutex<State>,
    /// Serialises checkpoints (they share one temp file).
    checkpointing: Mutex<()>,
    /// The whole-file sha256 of the verified prefix of the file.
    prefix: Mutex<Prefix>,
    /// Held while the download is stored; true once it is. Several fetches of one image (a
    /// gateway read and replication) may all see it complete: the first stores it, the others
    /// find it stored.
    finishing: tokio::sync::Mutex<bool>,
}

/// The sha256 of leaves `0..next` of the file, all verified.
#[derive(Debug, Default)]
struct Prefix {
    next: u64,
    sha: Sha256,
    /// Reused for leaves read back from `data`.
    buf: Vec<u8>,
}

#[derive(Debug)]
struct State {
    verified: Bitmap,
    since_checkpoint: u32,
    since_writeback: u32,
}

impl Partial {
    /// The DAG root.
    pub fn root(&self) -> &Cid {
        &self.root
    }

    /// Every leaf, in file order.
    pub fn leaves(&self) -> &[LeafInfo] {
        &self.leaves
    }

    /// The dag-pb nodes.
    pub fn nodes(&self) -> &[(Cid, Vec<u8>)] {
        &self.nodes
    }

    /// The file size.
    pub fn size(&self) -> u64 {
        self.leaves
            .last()
            .map_or(0, |l| l.offset + u64::from(l.len))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the bitmap of verified leaves.
    pub fn verified(&self) -> Bitmap {
        self.lock().verified.clone()
    }

    /// True if leaf `i` is verified.
    pub fn has(&self, i: u64) -> bool {
        self.lock().verified.get(i)
    }

    /// True when every leaf is verified.
    pub fn is_complete(&self) -> bool {
        self.lock().verified.is_full()
    }

    /// Checks `bytes` against leaf `i`'s CID and, if they match, writes them at its offset.
    /// Returns false (writing nothing) if they do not match or there is no leaf `i`. Blocking.
    pub fn write_leaf(&self, i: u64, bytes: &[u8]) -> Result<bool> {
        let Some(leaf) = usize::try_from(i).ok().and_then(|i| self.leaves.get(i)) else {
            return Ok(false);
        };
        if bytes.len() != leaf.len as usize || verify(&leaf.cid, bytes).is_err() {
            return Ok(false);
        }
        if self.has(i) {
            return Ok(true);
        }
        self.data
            .write_all_at(bytes, leaf.offset)
            .map_err(|e| StoreError::io("writing a partial download", e))?;
        let (checkpoint, writeback) = {
            let mut s = self.lock();
            s.verified.set(i);
            s.since_checkpoint += 1;
            s.since_writeback += 1;
            let wb = s.since_writeback >= WRITEBACK_EVERY;
            if wb {
                s.since_writeback = 0;
            }
            (s.since_checkpoint >= CHECKPOINT_EVERY, wb)
        };
        self.advance_prefix(i, bytes);
        if checkpoint {
            self.checkpoint()?;
        } else if writeback {
            start_writeback(&self.data);
        }
        Ok(true)
    }

    /// Moves the whole-file hash over the verified leaves that now follow its end: leaf `just`
    /// from `bytes` (verified and written a moment ago), others read back from `data`, at most
    /// [`CATCH_UP`] of those. Does nothing while another writer is at it; a later write, or
    /// finishing, covers what that one left.
    fn advance_prefix(&self, just: u64, bytes: &[u8]) {
        let mut p = match self.prefix.try_lock() {
            Ok(p) => p,
            // A writer panicked mid-update: the state cannot be trusted, so start again (the
            // hash is then read back from the file's start).
            Err(std::sync::TryLockError::Poisoned(p)) => {
                let mut p = p.into_inner();
                *p = Prefix::default();
                self.prefix.clear_poison();
                p
            }
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let p = &mut *p;
        let mut read_back = 0;
        while let Some(leaf) = self.leaves.get(p.next as usize) {
            if p.next == just {
                p.sha.update(bytes);
            } else {
                if read_back >= CATCH_UP || !self.has(p.next) {
                    return;
                }
                p.buf.resize(leaf.len as usize, 0);
                if self.data.read_exact_at(&mut p.buf, leaf.offset).is_err() {
                    return; // finishing reads it again and reports the error
                }
                p.sha.update(&p.buf);
                read_back += 1;
            }
            p.next += 1;
        }
    }

    /// Takes the whole-file hash so far: the hasher and the file offset where it stops.
    fn take_prefix(&self) -> (Sha256, u64) {
        // A poisoned state is dropped like any other: finishing then hashes the whole file.
        let p = match self.prefix.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(e) => {
                *e.into_inner() = Prefix::default();
                self.prefix.clear_poison();
                Prefix::default()
            }
        };
        let end = match p.next {
            0 => 0,
            n => self
                .leaves
                .get(n as usize - 1)
                .map_or(0, |l| l.offset + u64::from(l.len)),
        };
        (p.sha, end)
    }

    /// Leaf `i`'s bytes if verified. Blocking.
    pub fn read_leaf(&self, i: u64) -> Result<Option<Bytes>> {
        let mut buf = Vec::new();
        Ok(self.read_leaf_into(i, &mut buf)?.then(|| Bytes::from(buf)))
    }

    /// Reads leaf `i` into `buf` (resized to its length) if it is verified; false if it is not
    /// verified yet. Not hashed again: its bit is set only after its bytes hashed right, here or
    /// when the download was reopened, and fetchers hash every leaf they receive. Blocking.
    pub fn read_leaf_into(&self, i: u64, buf: &mut Vec<u8>) -> Result<bool> {
        if !self.has(i) {
            return Ok(false);
        }
        let Some(leaf) = self.leaves.get(i as usize) else {
            return Ok(false);
        };
        buf.resize(leaf.len as usize, 0);
        self.data
            .read_exact_at(buf, leaf.offset)
            .map_err(|e| StoreError::io("reading a partial download", e))?;
        Ok(true)
    }

    /// Makes every leaf verified so far durable: fsync `data`, then replace the bitmap.
    pub fn checkpoint(&self) -> Result<()> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.data
            .sync_data()
            .map_err(|e| StoreError::io("syncing a partial download", e))?;
        let bits = {
            let mut s = self.lock();
            s.since_checkpoint = 0;
            s.verified.as_bytes().to_vec()
        };
        crate::durable::replace_with(&self.dir.join("leaves"), Mode::Shared, |f| {
            f.write_all(&(self.leaves.len() as u64).to_be_bytes())?;
            f.write_all(&bits)
        })
        .map_err(|e| StoreError::durable("saving the leaves of a partial download", e))
    }
}

impl Store {
    fn partial_dir(&self, root: &Cid) -> PathBuf {
        self.inner
            .dir
            .partial()
            .join("fetch")
            .join(root.to_string())
    }

    /// True if a partial download of `root` exists on disk.
    pub fn has_partial(&self, root: &Cid) -> bool {
        self.partial_dir(root).join("nodes.car").exists()
    }

    /// Starts a partial download of `root` from its verified dag-pb `nodes` (or resumes the one
    /// on disk, whose own nodes win). Blocking: resuming re-hashes leaves not yet checkpointed.
    pub fn open_partial(&self, root: &Cid, nodes: Option<Vec<(Cid, Vec<u8>)>>) -> Result<Partial> {
        let dir = self.partial_dir(root);
        let nodes_path = dir.join("nodes.car");
        let nodes = match (read_nodes(&nodes_path, root)?, nodes) {
            (Some(n), _) => n,
            (None, Some(n)) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StoreError::io("creating a partial download", e))?;
                write_nodes(&dir, root, &n)?;
                n
            }
            (None, None) => return Err(StoreError::NotFound(*root)),
        };
        let map: HashMap<Cid, Vec<u8>> = nodes.iter().cloned().collect();
        let leaves =
            leaf_table(root, &map, None).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let size = leaves.last().map_or(0, |l| l.offset + u64::from(l.len));
        // A new data file is all holes: nothing to recover, and reading holes back costs the
        // kernel a page of zeros each, so it is scanned only when resuming.
        let resuming = dir.join("data").exists();
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("data"))
            .map_err(|e| StoreError::io("opening a partial download", e))?;
        data.set_len(size)
            .map_err(|e| StoreError::io("sizing a partial download", e))?;
        let n = leaves.len() as u64;
        let mut verified = read_bitmap(&dir.join("leaves"), n).unwrap_or_else(|| Bitmap::new(n));
        // Leaves written after the last checkpoint: keep those whose bytes hash right.
        let mut buf = Vec::new();
        let mut recovered = 0u64;
        for (i, leaf) in leaves.iter().enumerate() {
            if !resuming || verified.get(i as u64) {
                continue;
            }
            buf.resize(leaf.len as usize, 0);
            if data.read_exact_at(&mut buf, leaf.offset).is_ok()
                && buf.iter().any(|&b| b != 0)
                && verify(&leaf.cid, &buf).is_ok()
            {
                verified.set(i as u64);
                recovered += 1;
            }
        }
        if verified.count() > 0 {
            tracing::info!(%root, verified = verified.count(), recovered, of = n, "resuming a partial download");
        }
        let p = Partial {
            root: *root,
            dir,
            data,
            nodes,
            leaves,
            state: Mutex::new(State {
                verified,
                since_checkpoint: 0,
                since_writeback: 0,
            }),
            checkpointing: Mutex::new(()),
            prefix: Mutex::default(),
            finishing: tokio::sync::Mutex::new(false),
        };
        if recovered > 0 {
            p.checkpoint()?;
        }
        Ok(p)
    }

    /// Turns a complete partial download into a stored blob (indexed, not pinned) and removes
    /// its record. Completes the image's sha256 by hashing the part of the file the running
    /// hash has not covered yet (nothing, when the leaves came in file order).
    pub async fn finish_partial(&self, p: &Partial) -> Result<(Cid, RootRecord)> {
        if !p.is_complete() {
            return Err(StoreError::Invalid(format!(
                "{} is not complete yet",
                p.root
            )));
        }
        let mut finished = p.finishing.lock().await;
        if *finished && let Some(rec) = self.root_record(&p.root)? {
            return Ok((p.root, rec));
        }
        let _guard = self.inner.maintenance.read().await;
        let temp = self.new_temp_path("fetched");
        let data_path = p.dir.join("data");
        let (record, blocks) = {
            let data_path = data_path.clone();
            let temp = temp.clone();
            let leaves = p.leaves.clone();
            let nodes = p.nodes.clone();
            let size = p.size();
            let (mut sha, hashed) = p.take_prefix();
            tokio::task::spawn_blocking(move || -> Result<(RootRecord, Vec<Block>)> {
                let f = File::open(&data_path)
                    .map_err(|e| StoreError::io("opening a partial download", e))?;
                // The fsync waits on the disk and the hash on the CPU: run them side by side.
                let syncing = {
                    let f = f
                        .try_clone()
                        .map_err(|e| StoreError::io("opening a partial download", e))?;
                    std::thread::spawn(move || f.sync_all())
                };
                let mut r = BufReader::with_capacity(1 << 20, f);
                let hashed = r.seek(SeekFrom::Start(hashed));
                let mut buf = vec![0u8; 1 << 20];
                let hashed = hashed.and_then(|_| {
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) => break Ok(()),
                            Ok(n) => sha.update(&buf[..n]),
                            Err(e) => break Err(e),
                        }
                    }
                });
                let synced = syncing
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the fsync thread panicked")));
                synced.map_err(|e| StoreError::io("syncing a partial download", e))?;
                hashed.map_err(|e| StoreError::io("reading a partial download", e))?;
                std::fs::rename(&data_path, &temp)
                    .map_err(|e| StoreError::io("moving a finished download", e))?;
                let mut blocks: Vec<Block> = nodes
                    .into_iter()
                    .map(|(cid, bytes)| Block::Node { cid, bytes })
                    .collect();
                blocks.extend(leaves.iter().map(|l| Block::Leaf {
                    cid: l.cid,
                    offset: l.offset,
                    len: u64::from(l.len),
                }));
                Ok((
                    RootRecord {
                        size,
                        sha256: sha.finalize().into(),
                    },
                    blocks,
                ))
            })
            .await
            .map_err(|e| StoreError::Invalid(format!("finishing task failed: {e}")))??
        };
        let staged = Staged {
            temp,
            root: p.root,
            record,
            blocks,
            sidecar: Some(p.nodes.clone()),
        };
        let (root, record, _) = self.commit_with(staged, false).await?;
        *finished = true;
        self.remove_partial(&p.root)?;
        Ok((root, record))
    }

    /// Stores an image that is a single raw block (a file of at most one leaf, whose root CID
    /// is the block's own), fetched whole from another member: no partial record is needed,
    /// since one block either arrives and hashes to `root` or does not. The block is verified
    /// here again, then written temp → fsync → rename and indexed, not pinned.
    pub async fn store_single_block(&self, root: &Cid, bytes: Bytes) -> Result<RootRecord> {
        verify(root, &bytes).map_err(|_| {
            StoreError::Invalid(format!("the block fetched for {root} does not match it"))
        })?;
        if root.codec() != shubnet_protocol::cid::RAW {
            return Err(StoreError::Invalid(format!("{root} is not a raw block")));
        }
        let _guard = self.inner.maintenance.read().await;
        let temp = self.new_temp_path("fetched-block");
        let record = {
            let (temp, bytes) = (temp.clone(), bytes.clone());
            tokio::task::spawn_blocking(move || -> Result<RootRecord> {
                let res = (|| {
                    let mut f = File::create(&temp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()
                })();
                if let Err(e) = res {
                    remove_quietly(&temp);
                    return Err(StoreError::io("writing a fetched block", e));
                }
                Ok(RootRecord {
                    size: bytes.len() as u64,
                    sha256: Sha256::digest(&bytes).into(),
                })
            })
            .await
            .map_err(|e| StoreError::Invalid(format!("storing task failed: {e}")))??
        };
        let staged = Staged {
            temp,
            root: *root,
            record,
            blocks: vec![Block::Leaf {
                cid: *root,
                offset: 0,
                len: bytes.len() as u64,
            }],
            sidecar: None,
        };
        let (_, record, _) = self.commit_with(staged, false).await?;
        Ok(record)
    }

    /// Deletes the partial download of `root`, if any.
    pub fn remove_partial(&self, root: &Cid) -> Result<()> {
        let dir = self.partial_dir(root);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.inner.dir.partial().join("fetch")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("removing a partial download", e)),
        }
    }
}

fn read_bitmap(path: &Path, leaves: u64) -> Option<Bitmap> {
    let bytes = std::fs::read(path).ok()?;
    let (head, bits) = bytes.split_at_checked(8)?;
    let n = u64::from_be_bytes(head.try_into().ok()?);
    if n != leaves {
        return None;
    }
    Bitmap::from_bytes(n, bits.to_vec())
}

/// The nodes of a partial download, each verified again; `None` if there is none.
fn read_nodes(path: &Path, root: &Cid) -> Result<Option<DagNodes>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("opening a partial download", e)),
    };
    let bad = |e: String| StoreError::Invalid(format!("partial download of {root}: {e}"));
    let mut r = CarReader::new(BufReader::new(f)).map_err(|e| bad(e.to_string()))?;
    if r.roots() != [*root] {
        return Err(bad("nodes.car names another root".into()));
    }
    let mut out = Vec::new();
    while let Some(b) = r.next_verified_block().map_err(|e| bad(e.to_string()))? {
        out.push(b);
    }
    Ok(Some(out))
}

fn write_nodes(dir: &Path, root: &Cid, nodes: &[(Cid, Vec<u8>)]) -> Result<()> {
    super::import::write_nodes_car(&dir.join("nodes.car"), root, nodes)
        .map_err(|e| StoreError::durable("writing the nodes of a partial download", e))
}
