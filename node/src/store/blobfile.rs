//! An open blob to read leaves from: a local file (the local-disk backend, or a copy in the
//! object backend's read cache) or an object read with ranged GETs.
//!
//! A remote blob keeps one window of bytes from its last GET, so the leaves of a sequential read
//! come from a few large requests rather than one per leaf.
//!
//! Owns reading one opened blob. Must not decide where a blob lives (the store does) or hash
//! anything.

use super::object::ObjectBlobs;
use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// Bytes one ranged GET asks for when a read misses the window.
const WINDOW: u64 = 8 * 1024 * 1024;

/// An opened blob.
#[derive(Debug)]
pub enum BlobFile {
    /// A local file.
    Local(File),
    /// An object in the bucket.
    Remote(Box<RemoteBlob>),
}

/// A blob read from the bucket with ranged GETs.
#[derive(Debug)]
pub struct RemoteBlob {
    blobs: ObjectBlobs,
    name: String,
    /// Size the index records; reads past it are short (damage).
    size: u64,
    /// (offset, bytes) of the last GET.
    window: Mutex<(u64, Bytes)>,
}

impl RemoteBlob {
    pub(super) fn new(blobs: ObjectBlobs, name: String, size: u64) -> Self {
        Self {
            blobs,
            name,
            size,
            window: Mutex::new((0, Bytes::new())),
        }
    }
}

impl BlobFile {
    /// True for a local file. Leaves read from the bucket are hashed on every read: the
    /// object may have been changed behind the node's back since it was checked.
    pub fn is_local(&self) -> bool {
        matches!(self, BlobFile::Local(_))
    }

    /// Fills `buf` from `offset`. A blob shorter than that is `UnexpectedEof`, as for a file.
    /// Blocking.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            BlobFile::Local(f) => f.read_exact_at(buf, offset),
            BlobFile::Remote(r) => r.read_exact_at(buf, offset),
        }
    }
}

impl RemoteBlob {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let want = buf.len() as u64;
        let end = offset + want;
        {
            let w = self
                .window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if offset >= w.0 && end <= w.0 + w.1.len() as u64 {
                let from = (offset - w.0) as usize;
                buf.copy_from_slice(&w.1[from..from + buf.len()]);
                return Ok(());
            }
        }
        if end > self.size {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let ask = want.max(WINDOW).min(self.size - offset);
        let got = self
            .blobs
            .read_range(&self.name, offset, ask)
            .map_err(|e| match e {
                super::object::ObjectError::NotFound(_) => {
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
                }
                other => std::io::Error::other(other.to_string()),
            })?;
        if (got.len() as u64) < want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&got[..buf.len()]);
        *self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (offset, got);
        Ok(())
    }
}
