//! Writing content: streaming `add` and verified CAR import. Both end in [`Store::commit`],
//! which renames a finished, fsynced temp file into `blobs/` and then indexes it.
//!
//! Owns the write path into `blobs/`. Must not accept a blob without its whole-file sha256, and
//! must not touch trees other than the store's.

use super::tables::{self, Location, RootRecord};
use super::{Result, Store, StoreError, sled_err, sync_dir, unix_now};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use shubnet_protocol::Cid;
use shubnet_protocol::car::{CarReader, CarWriter};
use shubnet_protocol::cid::{is_identity, verify};
use shubnet_protocol::unixfs::{Block, FileNode, Importer, Layout};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Suffix of the sidecar that keeps the dag-pb nodes of a blob whose DAG was not built with the
/// default layout (a CAR import), so repair can check and re-index it.
pub const NODES_SIDECAR: &str = ".nodes.car";

/// Chunks gathered per batch handed to the hashing and writing threads.
const BATCH_CHUNKS: usize = 4;

/// Bytes written between hints to the kernel to start writeback, so the final fsync is short.
const WRITEBACK_EVERY: u64 = 64 * 1024 * 1024;

/// Result of a CAR import.
#[derive(Debug, Clone)]
pub struct CarImported {
    /// Each file root stored, with its record.
    pub roots: Vec<(Cid, RootRecord)>,
    /// Blocks read and verified.
    pub blocks: u64,
}

/// A finished temp blob, ready to commit.
pub(super) struct Staged {
    pub(super) temp: PathBuf,
    pub(super) root: Cid,
    pub(super) record: RootRecord,
    pub(super) blocks: Vec<Block>,
    /// dag-pb nodes to keep in a sidecar (non-default layouts only).
    pub(super) sidecar: Option<Vec<(Cid, Vec<u8>)>>,
}

/// The blocks of one file DAG gathered elsewhere (a Bitswap fetch), as [`Store::import_fetched`]
/// stages them: raw leaves in the spool file at the given (offset, length), dag-pb nodes in
/// memory. The staging walk re-hashes every leaf before it is written to the blob.
#[derive(Debug, Default)]
pub struct FetchedDag {
    /// Position and length of each raw leaf in the spool.
    pub index: HashMap<Cid, (u64, u32)>,
    /// dag-pb nodes by CID.
    pub nodes: HashMap<Cid, Vec<u8>>,
}

enum Feed {
    Data(Bytes),
    Abort,
}

impl Store {
    /// Stores a file from a byte stream and pins it. One pass: the bytes are chunked, hashed
    /// (leaves and whole file, on two threads) and written as they arrive; memory stays flat.
    pub async fn add_stream<S>(&self, body: S) -> Result<(Cid, RootRecord)>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
    {
        let (root, rec, _) = self.add_stream_reporting(body).await?;
        Ok((root, rec))
    }

    /// Like [`add_stream`](Self::add_stream), also saying whether this call created the pin
    /// (false when the same content was already pinned), so a push whose manifest is refused
    /// can undo exactly what it did. The content stays pinned throughout, so GC cannot take it
    /// from under a push in progress.
    pub async fn add_stream_reporting<S>(&self, mut body: S) -> Result<(Cid, RootRecord, bool)>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
    {
        let _guard = self.inner.maintenance.read().await;
        let temp = self.new_temp_path("add");
        let layout = self.inner.layout;
        let (tx, rx) = tokio::sync::mpsc::channel::<Feed>(8);
        let (htx, hrx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let writer = {
            let temp = temp.clone();
            tokio::task::spawn_blocking(move || write_import(&temp, layout, rx))
        };
        let hasher = tokio::task::spawn_blocking(move || hash_stream(hrx));
        // Incoming frames are small and unaligned; gather them into batches of whole chunks so
        // the leaf hasher reads straight from the batch, the file gets large writes, and the
        // whole-file hasher shares the same buffer. One copy per byte on our side.
        let batch_len = layout.chunk_size() * BATCH_CHUNKS;
        let mut batch = BytesMut::with_capacity(batch_len);
        let mut failure = None;
        loop {
            let item = body.next().await;
            let done = match item {
                Some(Ok(chunk)) => {
                    let mut rest = &chunk[..];
                    let mut stopped = false;
                    while !rest.is_empty() {
                        let take = (batch_len - batch.len()).min(rest.len());
                        batch.extend_from_slice(&rest[..take]);
                        rest = &rest[take..];
                        if batch.len() == batch_len {
                            let full =
                                std::mem::replace(&mut batch, BytesMut::with_capacity(batch_len))
                                    .freeze();
                            if htx.send(full.clone()).await.is_err()
                                || tx.send(Feed::Data(full)).await.is_err()
                            {
                                stopped = true; // the writer stopped early; its error is reported below
                                break;
                            }
                        }
                    }
                    stopped
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    let _ = tx.send(Feed::Abort).await;
                    true
                }
                None => {
                    if !batch.is_empty() {
                        let last = std::mem::take(&mut batch).freeze();
                        let _ = htx.send(last.clone()).await;
                        let _ = tx.send(Feed::Data(last)).await;
                    }
                    true
                }
            };
            if done {
                break;
            }
        }
        drop(tx);
        drop(htx);
        let written = writer
            .await
            .map_err(|e| StoreError::Invalid(format!("import task failed: {e}")));
        let sha256 = whole_file_hash(hasher.await);
        let staged = match (failure, written) {
            (Some(e), _) => Err(StoreError::Interrupted(e.to_string())),
            (None, Err(e)) | (None, Ok(Err(e))) => Err(e),
            (None, Ok(Ok((imported, blocks)))) => sha256.map(|sha256| Staged {
                temp: temp.clone(),
                root: imported.root,
                record: RootRecord {
                    size: imported.size,
                    sha256,
                },
                blocks,
                sidecar: None,
            }),
        };
        match staged {
            Ok(s) => self.commit(s).await,
            Err(e) => {
                remove_quietly(&temp);
                Err(e)
            }
        }
    }

    /// Verifies every block of a CAR stream before storing anything, then stores each root's
    /// file DAG as a blob and pins it.
    pub async fn import_car<S>(&self, mut body: S) -> Result<CarImported>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
    {
        let _guard = self.inner.maintenance.read().await;
        let spool = self.new_temp_path("car");
        let mut file = tokio::fs::File::create(&spool)
            .await
            .map_err(|e| StoreError::io("creating the CAR spool", e))?;
        let spooled = async {
            use tokio::io::AsyncWriteExt;
            while let Some(item) = body.next().await {
                let chunk = item.map_err(|e| StoreError::Interrupted(e.to_string()))?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| StoreError::io("writing the CAR spool", e))?;
            }
            file.flush()
                .await
                .map_err(|e| StoreError::io("writing the CAR spool", e))
        }
        .await;
        drop(file);
        if let Err(e) = spooled {
            remove_quietly(&spool);
            return Err(e);
        }
        let store = self.clone();
        let spool2 = spool.clone();
        let staged = tokio::task::spawn_blocking(move || store.stage_car(&spool2))
            .await
            .map_err(|e| StoreError::Invalid(format!("import task failed: {e}")))
            .and_then(|r| r);
        remove_quietly(&spool);
        let (staged, blocks) = staged?;
        let mut roots = Vec::new();
        let mut pending = staged.into_iter();
        while let Some(s) = pending.next() {
            match self.commit(s).await {
                Ok((root, rec, _)) => roots.push((root, rec)),
                Err(e) => {
                    pending.for_each(|s| remove_quietly(&s.temp));
                    return Err(e);
                }
            }
        }
        Ok(CarImported { roots, blocks })
    }

    /// Stores the file DAG rooted at `root` whose blocks `fill` gathers into a spool file (the
    /// path it is given) and a [`FetchedDag`], then pins it. Staging and commit are those of a
    /// CAR import (the same DAG walk and checks). Nothing is kept if `fill` or staging fails.
    /// The maintenance lock is held throughout, so GC and repair wait for the fetch.
    pub async fn import_fetched<F, Fut>(
        &self,
        root: Cid,
        fill: F,
    ) -> Result<(Cid, RootRecord, bool)>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<FetchedDag>>,
    {
        let _guard = self.inner.maintenance.read().await;
        let spool = self.new_temp_path("fetch");
        let dag = match fill(spool.clone()).await {
            Ok(d) => d,
            Err(e) => {
                remove_quietly(&spool);
                return Err(e);
            }
        };
        let store = self.clone();
        let spool2 = spool.clone();
        let staged = tokio::task::spawn_blocking(move || {
            store.stage_car_root(&spool2, &root, &dag.index, &dag.nodes)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("import task failed: {e}")))
        .and_then(|r| r);
        remove_quietly(&spool);
        self.commit(staged?).await
    }

    /// Reads the spooled CAR: verifies every block, then writes one temp blob per root.
    fn stage_car(&self, spool: &Path) -> Result<(Vec<Staged>, u64)> {
        let f = File::open(spool).map_err(|e| StoreError::io("opening the CAR spool", e))?;
        let mut reader = CarReader::new(Counting::new(BufReader::with_capacity(1 << 20, f)))
            .map_err(|e| StoreError::Invalid(format!("invalid CAR: {e}")))?;
        let roots = reader.roots().to_vec();
        if roots.is_empty() {
            return Err(StoreError::Invalid("the CAR names no root".into()));
        }
        // Every block's position in the spool; dag-pb nodes are kept in memory (they are small).
        let mut index: HashMap<Cid, (u64, u32)> = HashMap::new();
        let mut nodes: HashMap<Cid, Vec<u8>> = HashMap::new();
        let mut count = 0u64;
        loop {
            let block = reader
                .next_verified_block()
                .map_err(|e| StoreError::Invalid(format!("invalid CAR: {e}")))?;
            let Some((cid, data)) = block else { break };
            count += 1;
            let end = reader_pos(&reader);
            index.insert(cid, (end - data.len() as u64, data.len() as u32));
            if cid.codec() != shubnet_protocol::cid::RAW {
                nodes.insert(cid, data);
            }
        }
        let mut staged = Vec::new();
        for root in roots {
            match self.stage_car_root(spool, &root, &index, &nodes) {
                Ok(s) => staged.push(s),
                Err(e) => {
                    staged.iter().for_each(|s: &Staged| remove_quietly(&s.temp));
                    return Err(e);
                }
            }
        }
        Ok((staged, count))
    }

    fn stage_car_root(
        &self,
        spool: &Path,
        root: &Cid,
        index: &HashMap<Cid, (u64, u32)>,
        nodes: &HashMap<Cid, Vec<u8>>,
    ) -> Result<Staged> {
        let temp = self.new_temp_path("car-blob");
        let result = (|| {
            let mut src =
                File::open(spool).map_err(|e| StoreError::io("opening the CAR spool", e))?;
            let out = File::create(&temp).map_err(|e| StoreError::io("creating a temp blob", e))?;
            let mut out = BufWriter::with_capacity(1 << 20, out);
            let mut sha = Sha256::new();
            let mut default_layout = Importer::new(Layout::default()).without_file_hash();
            let mut blocks = Vec::new();
            let mut sidecar = Vec::new();
            let mut offset = 0u64;
            // Depth-first walk; each entry carries the file size its parent claims for it.
            let mut stack: Vec<(Cid, Option<u64>)> = vec![(*root, None)];
            let mut buf = Vec::new();
            while let Some((cid, claimed)) = stack.pop() {
                if is_identity(&cid) {
                    return Err(StoreError::Invalid(format!(
                        "{root}: identity CIDs inside a file DAG are not supported"
                    )));
                }
                let missing = || {
                    StoreError::Invalid(format!("the CAR is missing block {cid} of root {root}"))
                };
                if cid.codec() == shubnet_protocol::cid::RAW {
                    let &(pos, len) = index.get(&cid).ok_or_else(missing)?;
                    if claimed.is_some_and(|c| c != u64::from(len)) {
                        return Err(StoreError::Invalid(format!(
                            "{root}: leaf {cid} size differs from its parent's blocksizes"
                        )));
                    }
                    buf.resize(len as usize, 0);
                    src.seek(SeekFrom::Start(pos))
                        .and_then(|_| src.read_exact(&mut buf))
                        .map_err(|e| StoreError::io("reading the CAR spool", e))?;
                    // Re-check: the spool is ours, but bytes are only trusted once hashed here.
                    verify(&cid, &buf).map_err(|e| StoreError::Invalid(e.to_string()))?;
                    out.write_all(&buf)
                        .map_err(|e| StoreError::io("writing a temp blob", e))?;
                    sha.update(&buf);
                    default_layout.update(&buf);
                    default_layout.take_blocks().for_each(drop);
                    blocks.push(Block::Leaf {
                        cid,
                        offset,
                        len: u64::from(len),
                    });
                    offset += u64::from(len);
                    continue;
                }
                let bytes = nodes.get(&cid).ok_or_else(missing)?;
                let node = FileNode::decode(&cid, bytes).map_err(|e| {
                    StoreError::Invalid(format!("{root}: {cid} is not a UnixFS file node: {e}"))
                })?;
                let FileNode::Branch { data, children } = node else {
                    continue;
                };
                if !data.is_empty() {
                    return Err(StoreError::Invalid(format!(
                        "{root}: only UnixFS files with raw leaves are supported (CIDv1, as `ipfs add --cid-version=1` makes)"
                    )));
                }
                let total: u64 = children.iter().map(|c| c.1).sum();
                if claimed.is_some_and(|c| c != total) {
                    return Err(StoreError::Invalid(format!(
                        "{root}: node {cid} size differs from its parent's blocksizes"
                    )));
                }
                blocks.push(Block::Node {
                    cid,
                    bytes: bytes.clone(),
                });
                sidecar.push((cid, bytes.clone()));
                stack.extend(children.iter().rev().map(|(c, s)| (*c, Some(*s))));
            }
            let file = out
                .into_inner()
                .map_err(|e| StoreError::io("writing a temp blob", e.into_error()))?;
            file.sync_all()
                .map_err(|e| StoreError::io("syncing a temp blob", e))?;
            let (_, reimported) = default_layout.finish();
            Ok(Staged {
                temp: temp.clone(),
                root: *root,
                record: RootRecord {
                    size: offset,
                    sha256: sha.finalize().into(),
                },
                blocks,
                sidecar: (reimported.root != *root).then_some(sidecar),
            })
        })();
        if result.is_err() {
            remove_quietly(&temp);
        }
        result
    }

    /// Makes a staged blob durable and visible: rename into `blobs/`, then index and pin it.
    async fn commit(&self, s: Staged) -> Result<(Cid, RootRecord, bool)> {
        self.commit_with(s, true).await
    }

    /// [`commit`](Self::commit), pinning only if `pin` (a fetched copy is pinned by its caller).
    pub(super) async fn commit_with(
        &self,
        s: Staged,
        pin: bool,
    ) -> Result<(Cid, RootRecord, bool)> {
        let dest = self.blob_path(&s.root);
        let blobs_dir = self.inner.dir.blobs();
        let temp = s.temp.clone();
        let sidecar = s.sidecar.clone();
        let root = s.root;
        if let Some(obj) = &self.inner.object {
            // The sidecar goes up first, so a blob in the bucket always has the nodes its check
            // needs; the blob's multipart upload shows it under its name only once complete.
            let uploaded = async {
                if let Some(nodes) = &sidecar {
                    let (dir, nodes) = (blobs_dir.clone(), nodes.clone());
                    tokio::task::spawn_blocking(move || write_sidecar(&dir, &root, &nodes))
                        .await
                        .map_err(|e| StoreError::Invalid(format!("commit task failed: {e}")))??;
                    obj.upload_file(
                        &sidecar_path(&blobs_dir, &root),
                        &format!("{root}{NODES_SIDECAR}"),
                    )
                    .await?;
                }
                obj.upload_file(&temp, &root.to_string()).await?;
                Ok::<(), StoreError>(())
            }
            .await;
            if let Err(e) = uploaded {
                remove_quietly(&s.temp);
                return Err(e);
            }
        }
        let cached = self.inner.object.is_some();
        let moved = tokio::task::spawn_blocking(move || -> Result<()> {
            if let Some(nodes) = sidecar.filter(|_| !cached) {
                write_sidecar(&blobs_dir, &root, &nodes)?;
            }
            // Same name means same content; the new copy replaces an existing one, since it
            // is the one just hashed (the old one may have been damaged since its own check).
            std::fs::rename(&temp, &dest).map_err(|e| {
                StoreError::io(format!("moving the blob into {}", dest.display()), e)
            })?;
            sync_dir(&blobs_dir)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("commit task failed: {e}")))
        .and_then(|r| r);
        if let Err(e) = moved {
            remove_quietly(&s.temp);
            return Err(e);
        }
        self.index_blob(&s.root, &s.record, &s.blocks)?;
        if self.inner.cache.is_some() {
            self.touch_cached(&s.root);
            let store = self.clone();
            let root = s.root;
            tokio::task::spawn_blocking(move || store.evict_cache(Some(&root)))
                .await
                .map_err(|e| StoreError::Invalid(format!("commit task failed: {e}")))?;
        }
        if !pin {
            self.flush().await?;
            return Ok((s.root, s.record, false));
        }
        let newly_pinned = self
            .inner
            .pins
            .insert(s.root.to_bytes(), &unix_now().to_be_bytes())
            .map_err(sled_err)?
            .is_none();
        self.flush().await?;
        Ok((s.root, s.record, newly_pinned))
    }

    /// Writes a blob's blocks and root record into the index and marks the blob verified
    /// (`verified.rs`): every caller has just hashed each of its leaves.
    pub(super) fn index_blob(
        &self,
        root: &Cid,
        record: &RootRecord,
        blocks: &[Block],
    ) -> Result<()> {
        let mut batch = sled::Batch::default();
        for b in blocks {
            let (cid, loc) = match b {
                Block::Leaf { cid, offset, len } => (
                    cid,
                    Location::Blob {
                        offset: *offset,
                        len: u32::try_from(*len).unwrap_or(u32::MAX),
                    },
                ),
                Block::Node { cid, bytes } => (cid, Location::Inline(bytes.clone())),
            };
            batch.insert(tables::block_key(cid, root), loc.encode());
        }
        self.inner.blocks.apply_batch(batch).map_err(sled_err)?;
        self.inner
            .roots
            .insert(root.to_bytes(), record.encode())
            .map_err(sled_err)?;
        // Every caller has just hashed each leaf of the blob against its CID.
        self.mark_blob_verified(root)
    }
}

/// Path of the nodes sidecar of a blob.
pub fn sidecar_path(blobs: &Path, root: &Cid) -> PathBuf {
    blobs.join(format!("{root}{NODES_SIDECAR}"))
}

/// Writes the nodes sidecar of a blob durably; the caller syncs `blobs/` with the blob's rename.
fn write_sidecar(blobs: &Path, root: &Cid, nodes: &[(Cid, Vec<u8>)]) -> Result<()> {
    write_nodes_car(&sidecar_path(blobs, root), root, nodes)
        .map_err(|e| StoreError::durable("writing the DAG sidecar", e))
}

/// Replaces `path` with a CAR of `nodes` under `root` (sidecars and partial downloads).
pub(super) fn write_nodes_car(
    path: &Path,
    root: &Cid,
    nodes: &[(Cid, Vec<u8>)],
) -> std::result::Result<(), crate::durable::DurableError> {
    crate::durable::replace_with(path, crate::durable::Mode::Shared, |f| {
        let mut w = CarWriter::new(BufWriter::new(f), &[*root])?;
        for (cid, bytes) in nodes {
            w.write_block(cid, bytes)?;
        }
        w.finish()?.flush()
    })
}

/// The blocking half of `add`: chunk, hash leaves, write. Returns the import summary and every
/// block for the index.
fn write_import(
    temp: &Path,
    layout: Layout,
    mut rx: tokio::sync::mpsc::Receiver<Feed>,
) -> Result<(shubnet_protocol::unixfs::Imported, Vec<Block>)> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(|e| StoreError::io("creating a temp blob", e))?;
    let mut out = file;
    let mut imp = Importer::new(layout).without_file_hash();
    let mut blocks = Vec::new();
    let mut since_hint = 0u64;
    while let Some(feed) = rx.blocking_recv() {
        let Feed::Data(chunk) = feed else {
            return Err(StoreError::Interrupted("the client stopped sending".into()));
        };
        imp.update(&chunk);
        blocks.extend(imp.take_blocks());
        out.write_all(&chunk)
            .map_err(|e| StoreError::io("writing a temp blob", e))?;
        since_hint += chunk.len() as u64;
        if since_hint >= WRITEBACK_EVERY {
            since_hint = 0;
            crate::store::read::start_writeback(&out);
        }
    }
    let (rest, summary) = imp.finish();
    blocks.extend(rest);
    out.sync_all()
        .map_err(|e| StoreError::io("syncing a temp blob", e))?;
    Ok((summary, blocks))
}

/// The whole-file sha256 from the hasher task. A task that died has no digest: recording a
/// default one would have the node sign a wrong sha256 into the manifest.
fn whole_file_hash(
    joined: std::result::Result<[u8; 32], tokio::task::JoinError>,
) -> Result<[u8; 32]> {
    joined.map_err(StoreError::Hash)
}

fn hash_stream(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> [u8; 32] {
    let mut h = Sha256::new();
    while let Some(b) = rx.blocking_recv() {
        h.update(&b);
    }
    h.finalize().into()
}

/// Removes a file, ignoring "not found"; used on error paths where the first error matters.
pub(super) fn remove_quietly(p: &Path) {
    if let Err(e) = std::fs::remove_file(p)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %p.display(), error = %e, "could not remove a temporary file");
    }
}

/// A reader that counts bytes, so CAR sections can be located in the spool.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R> Counting<R> {
    fn new(inner: R) -> Self {
        Self { inner, pos: 0 }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn reader_pos<R: Read>(r: &CarReader<Counting<R>>) -> u64 {
    r.inner_ref().pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_hasher_is_an_error_not_a_zero_digest() {
        let dead = tokio::task::spawn_blocking(|| -> [u8; 32] { panic!("the hasher died") });
        let err = whole_file_hash(dead.await).expect_err("no digest");
        assert!(matches!(err, StoreError::Hash(_)), "{err}");
        let alive = tokio::task::spawn_blocking(|| [7u8; 32]);
        assert_eq!(whole_file_hash(alive.await).expect("digest"), [7; 32]);
    }
}
