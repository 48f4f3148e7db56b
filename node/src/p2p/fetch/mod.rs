//! `/shubnet/fetch/1`: bulk transfer of image leaves between federation members (wire format in
//! [`shubnet_protocol::fetch`]). [`server`] answers members only, from complete blobs and from
//! partial downloads; [`client`] splits an image across every holder, verifies each leaf before
//! it is written, resumes after drops and restarts, and streams byte ranges for on-demand reads;
//! [`badleaf`] carries a fetcher's report of a damaged leaf back to its holder.
//!
//! This module owns the framing both sides share ([`read_frame`], [`write_frame`],
//! [`WireError`]), the leaf [`BufferPool`] and the open [`Partials`]; it must not decide who may
//! fetch (the server asks the gate) nor what to fetch (the replicator and the HTTP adapter do).

pub mod badleaf;
pub mod client;
pub mod schedule;
pub mod server;

use crate::store::Store;
use crate::store::partial::Partial;
use futures::{AsyncReadExt, AsyncWriteExt};
use shubnet_protocol::Cid;
use shubnet_protocol::fetch::{FetchError, Frame, MAX_FRAME};
use std::collections::HashMap;
use std::sync::Arc;

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream broke.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid frame.
    #[error("{0}")]
    Frame(#[from] FetchError),
}

/// Reads one length-prefixed frame; `Ok(None)` at a clean end of stream.
pub(crate) async fn read_frame<S: futures::AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Option<Frame>, WireError> {
    let mut body = Vec::new();
    match read_body(s, &mut body).await? {
        None => Ok(None),
        Some(len) => Ok(Some(Frame::decode(&body[..len])?)),
    }
}

/// A frame read by [`read_frame_into`].
pub(crate) enum Incoming {
    /// A leaf, left where it was read: `buf[range]`.
    Leaf {
        /// Leaf index.
        index: u64,
        /// Where its bytes are in the caller's buffer.
        range: std::ops::Range<usize>,
    },
    /// Any other frame.
    Other(Frame),
}

/// Reads one frame into `buf` (grown as needed, never shrunk, so one buffer serves a whole
/// stream without being zeroed again); a leaf's bytes stay in `buf` instead of being copied
/// out. `Ok(None)` at a clean end of stream.
pub(crate) async fn read_frame_into<S: futures::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Option<Incoming>, WireError> {
    let Some(len) = read_body(s, buf).await? else {
        return Ok(None);
    };
    let body = &buf[..len];
    match Frame::decode_leaf(body) {
        Some(leaf) => {
            let (index, range) = leaf?;
            Ok(Some(Incoming::Leaf { index, range }))
        }
        None => Ok(Some(Incoming::Other(Frame::decode(body)?))),
    }
}

/// Reads one length prefix and the body it announces into `buf[..len]`; returns `len`, or
/// `None` at a clean end of stream.
async fn read_body<S: futures::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Option<usize>, WireError> {
    let mut len = 0u64;
    for i in 0..4 {
        let mut b = [0u8; 1];
        if s.read(&mut b).await? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(FetchError::Truncated.into());
        }
        len |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            if len > MAX_FRAME as u64 {
                return Err(FetchError::TooLarge(len).into());
            }
            let len = len as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            s.read_exact(&mut buf[..len]).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    WireError::Frame(FetchError::Truncated)
                } else {
                    WireError::Io(e)
                }
            })?;
            shubnet_metrics::global().transferred("fetch", false, len as u64);
            return Ok(Some(len));
        }
    }
    Err(FetchError::TooLarge(u64::MAX).into())
}

/// Writes one frame.
pub(crate) async fn write_frame<S: futures::AsyncWrite + Unpin>(
    s: &mut S,
    f: &Frame,
) -> std::io::Result<()> {
    let framed = f.encode_framed();
    s.write_all(&framed).await?;
    shubnet_metrics::global().transferred("fetch", true, framed.len() as u64);
    Ok(())
}

/// Leaf buffers kept between requests: a leaf buffer is a few hundred KiB, and a fresh one
/// costs page faults and zeroing on every use, which showed up as a tenth of a transfer's CPU.
/// Holds at most [`POOLED_BUFFERS`]; clones share it.
#[derive(Debug, Clone, Default)]
pub struct BufferPool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// Buffers a [`BufferPool`] keeps: enough for the read-ahead of the streams of one transfer
/// (`client::TRANSFER_STREAMS` × (`server::READ_AHEAD` + 2), 20 MiB of 256 KiB leaves).
const POOLED_BUFFERS: usize = 80;

impl BufferPool {
    /// A buffer from the pool, or a new empty one.
    pub fn get(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Returns a buffer for reuse (dropped if the pool is full).
    pub fn put(&self, buf: Vec<u8>) {
        let mut pool = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < POOLED_BUFFERS {
            pool.push(buf);
        }
    }
}

/// Partial downloads open in this process, shared by the client (which fills them) and the
/// server (which serves their verified leaves to other members).
#[derive(Debug, Clone, Default)]
pub struct Partials(Arc<tokio::sync::Mutex<HashMap<Cid, Arc<Partial>>>>);

impl Partials {
    /// Every open partial download.
    pub async fn all(&self) -> Vec<Arc<Partial>> {
        self.0.lock().await.values().cloned().collect()
    }

    /// The open partial download of `root`, if any.
    pub async fn get(&self, root: &Cid) -> Option<Arc<Partial>> {
        self.0.lock().await.get(root).cloned()
    }

    /// The partial download of `root`: the open one, else the one on disk, else a new one made
    /// from `nodes` (which `nodes` produces only when needed). One per root per process.
    pub async fn open<F, Fut>(
        &self,
        store: &Store,
        root: Cid,
        nodes: F,
    ) -> Result<Arc<Partial>, crate::store::StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(Cid, Vec<u8>)>, crate::store::StoreError>>,
    {
        let mut map = self.0.lock().await;
        if let Some(p) = map.get(&root) {
            return Ok(p.clone());
        }
        let nodes = if store.has_partial(&root) {
            None
        } else {
            Some(nodes().await?)
        };
        let s = store.clone();
        let p = tokio::task::spawn_blocking(move || s.open_partial(&root, nodes))
            .await
            .map_err(|e| crate::store::StoreError::Invalid(format!("task failed: {e}")))??;
        let p = Arc::new(p);
        map.insert(root, p.clone());
        Ok(p)
    }

    /// Forgets `root` (finished or given up).
    pub async fn remove(&self, root: &Cid) {
        self.0.lock().await.remove(root);
    }
}
