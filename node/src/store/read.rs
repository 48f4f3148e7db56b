//! Reading content back: single blocks, and file byte ranges walked through the DAG. Every byte
//! served is hashed against its block's CID first, so disk damage is refused, not passed on.
//!
//! Hashing is the costliest part of serving a file (about 1 s per GiB per core), so a leaf of a
//! blob that is marked verified (`verified.rs`: every leaf hashed right at import, on receipt or
//! by the scrub) is served without hashing it again; leaves of unmarked blobs are hashed the
//! first time this process reads them. Damage after the mark is found by the scrub, or by a
//! fetcher, which hashes every leaf it receives and reports a bad one. `shubnet repair`
//! re-hashes everything from disk.
//!
//! Owns reading blobs. Must not write anything but the in-memory record of verified leaves.

use super::blobfile::{BlobFile, RemoteBlob};
use super::tables::Location;
use super::{Result, Store, StoreError};
use bytes::{Bytes, BytesMut};
use shubnet_protocol::Cid;
use shubnet_protocol::cid::verify;
use shubnet_protocol::unixfs::FileNode;
use std::collections::HashMap;
use std::fs::File;

/// How many verified leaves may wait between the disk thread and the HTTP connection.
const READ_AHEAD: usize = 8;

impl Store {
    /// One block's bytes, verified, or `None` if not held.
    pub fn block(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let Some((root, loc)) = self.locate(cid)? else {
            return Ok(None);
        };
        let (bytes, marked) = match loc {
            Location::Inline(b) => (Bytes::from(b), false),
            Location::Blob { offset, len } => {
                let f = self.open_blob(&root)?;
                let bytes = read_at(&f, offset, len as usize, &root)?;
                (bytes, f.is_local() && self.leaf_verified(&root, offset))
            }
        };
        if !marked {
            verify(cid, &bytes).map_err(|_| StoreError::Corrupt(*cid))?;
        }
        Ok(Some(bytes))
    }

    /// A held block's length from the index alone (nothing is read or hashed), or `None` if
    /// not held: enough to answer "do you have it?".
    pub fn block_len(&self, cid: &Cid) -> Result<Option<usize>> {
        Ok(self.locate(cid)?.map(|(_, loc)| match loc {
            Location::Inline(b) => b.len(),
            Location::Blob { len, .. } => len as usize,
        }))
    }

    /// Opens a blob: the local file, or with blobs in a bucket, the cached copy if there is one
    /// and otherwise the object (whose copy into the cache then starts in the background).
    pub(super) fn open_blob(&self, root: &Cid) -> Result<BlobFile> {
        let p = self.blob_path(root);
        match File::open(&p) {
            Ok(f) => {
                self.touch_cached(root);
                Ok(BlobFile::Local(f))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.inner.object.is_some() => {
                let Some(obj) = &self.inner.object else {
                    return Err(StoreError::io(format!("opening blob {}", p.display()), e));
                };
                let size = self.root_record(root)?.map_or(u64::MAX, |r| r.size);
                self.fill_cache_later(root);
                Ok(BlobFile::Remote(Box::new(RemoteBlob::new(
                    obj.clone(),
                    root.to_string(),
                    size,
                ))))
            }
            Err(e) => Err(StoreError::io(format!("opening blob {}", p.display()), e)),
        }
    }

    /// File length of the UnixFS file whose DAG root is `cid`, or `None` if not held.
    pub fn file_size(&self, cid: &Cid) -> Result<Option<u64>> {
        if let Some(rec) = self.root_record(cid)? {
            return Ok(Some(rec.size));
        }
        let Some((_, loc)) = self.locate(cid)? else {
            return Ok(None);
        };
        match loc {
            Location::Blob { len, .. } => Ok(Some(u64::from(len))),
            Location::Inline(bytes) => match FileNode::decode(cid, &bytes) {
                Ok(FileNode::Raw) => Ok(Some(bytes.len() as u64)),
                Ok(FileNode::Branch { data, children }) => Ok(Some(
                    data.len() as u64 + children.iter().map(|c| c.1).sum::<u64>(),
                )),
                Err(e) => Err(StoreError::Invalid(format!(
                    "{cid} is not a UnixFS file: {e}"
                ))),
            },
        }
    }

    /// Streams file bytes `start..end` of the file rooted at `cid`. Leaves are read on a
    /// blocking thread, verified, and handed over a small bounded channel, so memory stays at a
    /// few leaves whatever the file size.
    pub fn read_file(
        &self,
        cid: Cid,
        start: u64,
        end: u64,
    ) -> tokio::sync::mpsc::Receiver<std::io::Result<Bytes>> {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.stream_range(&cid, start, end, &tx) {
                tracing::error!(%cid, error = %e, "read failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        rx
    }

    fn stream_range(
        &self,
        root: &Cid,
        start: u64,
        end: u64,
        tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Result<()> {
        let mut files: HashMap<Cid, BlobFile> = HashMap::new();
        // (block, file offset where its bytes begin)
        let mut stack = vec![(*root, 0u64)];
        while let Some((cid, at)) = stack.pop() {
            let (blob, loc) = self.locate(&cid)?.ok_or(StoreError::NotFound(cid))?;
            let (bytes, leaf_offset) = match loc {
                Location::Blob { offset, len } => {
                    if at + u64::from(len) <= start || at >= end {
                        continue;
                    }
                    let f = match files.entry(blob) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(self.open_blob(&blob)?)
                        }
                    };
                    let local = f.is_local();
                    (
                        read_at(f, offset, len as usize, &blob)?,
                        Some(offset).filter(|_| local),
                    )
                }
                Location::Inline(b) => (Bytes::from(b), None),
            };
            match leaf_offset {
                Some(off) if self.leaf_verified(&blob, off) => {}
                _ => {
                    verify(&cid, &bytes).map_err(|_| StoreError::Corrupt(cid))?;
                    if let Some(off) = leaf_offset {
                        self.mark_leaf_verified(&blob, off);
                    }
                }
            }
            let (data, children) = match FileNode::decode(&cid, &bytes) {
                Ok(FileNode::Raw) => (bytes, Vec::new()),
                Ok(FileNode::Branch { data, children }) => (Bytes::from(data), children),
                Err(e) => {
                    return Err(StoreError::Invalid(format!(
                        "{cid} is not a UnixFS file: {e}"
                    )));
                }
            };
            let data_end = at + data.len() as u64;
            if data_end > start && at < end && !data.is_empty() {
                let from = start.saturating_sub(at) as usize;
                let to = (end.min(data_end) - at) as usize;
                if tx.blocking_send(Ok(data.slice(from..to))).is_err() {
                    return Ok(()); // the client went away
                }
            }
            let mut child_at = data_end;
            let mut spans = Vec::with_capacity(children.len());
            for (c, size) in children {
                if child_at < end && child_at + size > start {
                    spans.push((c, child_at));
                }
                child_at += size;
            }
            stack.extend(spans.into_iter().rev());
        }
        Ok(())
    }
}

impl Store {
    /// Opens the blob of the complete image `root`, to read its leaves in turn with
    /// [`read_blob_leaf_into`](Self::read_blob_leaf_into) (one open per request, not per leaf).
    pub fn open_blob_of(&self, root: &Cid) -> Result<BlobFile> {
        self.open_blob(root)
    }

    /// The leaf `cid` stored at `offset..offset + len` of `root`'s blob `f`, read into `buf`
    /// (resized to `len`; a buffer reused across leaves is not zeroed again) and hashed against
    /// `cid` unless this process already hashed those bytes (as file range reads remember), so
    /// a popular image is served to many members at page-cache speed. Blocking.
    pub fn read_blob_leaf_into(
        &self,
        root: &Cid,
        f: &BlobFile,
        cid: &Cid,
        offset: u64,
        len: u32,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        buf.resize(len as usize, 0);
        f.read_exact_at(buf, offset)
            .map_err(|e| read_error(e, root))?;
        if !f.is_local() {
            verify(cid, buf).map_err(|_| StoreError::Corrupt(*cid))?;
        } else if !self.leaf_verified(root, offset) {
            verify(cid, buf).map_err(|_| StoreError::Corrupt(*cid))?;
            self.mark_leaf_verified(root, offset);
        }
        Ok(())
    }
}

fn read_at(f: &BlobFile, offset: u64, len: usize, blob: &Cid) -> Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| read_error(e, blob))?;
    Ok(buf.freeze())
}

/// A short read means the blob is shorter than the index says: damaged.
fn read_error(e: std::io::Error, blob: &Cid) -> StoreError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        StoreError::Corrupt(*blob)
    } else {
        StoreError::io(format!("reading blob {blob}"), e)
    }
}

/// Asks the kernel to start writing back what has been written so far, so the final fsync of a
/// large import does not stall on gigabytes of dirty pages.
#[allow(unsafe_code)]
pub(super) fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the descriptor, which `f` keeps open for the call; it
    // touches no memory of ours. Failure is harmless (the final fsync still runs), so it is ignored.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}
