//! Length-prefixed frames on a raw stream, as the sync and access protocols exchange them
//! (`shubnet_protocol::sync::frame`): one reader that refuses a frame above the caller's cap
//! before allocating for it, and one writer.
//!
//! It owns the byte-level framing only and must not decode what a frame holds.

use super::error::SyncFailure;
use futures::{AsyncReadExt, AsyncWriteExt};
use shubnet_protocol::sync::{SyncError, frame, frame_len};

/// The next frame's body, or `None` when the peer closed the stream between frames. A header
/// announcing more than `max` bytes (or than any sync frame may hold) is refused unread.
pub(super) async fn read_frame(
    s: &mut libp2p::Stream,
    what: &'static str,
    max: usize,
) -> Result<Option<Vec<u8>>, SyncFailure> {
    let mut header = [0u8; 4];
    match s.read_exact(&mut header).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len(header)?;
    if len > max {
        return Err(SyncError::TooLarge {
            what,
            len: len as u64,
            max,
        }
        .into());
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)
        .await
        .map_err(SyncFailure::TruncatedFrame)?;
    Ok(Some(body))
}

/// Writes `body` as one frame and flushes it.
pub(super) async fn write_frame(s: &mut libp2p::Stream, body: &[u8]) -> Result<(), SyncFailure> {
    s.write_all(&frame(body)).await?;
    s.flush().await?;
    Ok(())
}
