//! Push-time image metadata: inspect the stored blob of a pushed image, off the async threads,
//! and hand the result to [`Registry::publish`](super::Registry::publish) so it is signed into
//! the manifest.
//!
//! The blob is read through `protocol::sif::inspect`, which reads only the SIF header,
//! descriptors, small metadata objects and (when `inspect-metadata.json` is absent) a few files
//! of the squashfs partition: memory stays flat in image size. A file that is not a SIF is an
//! opaque image (`Ok(None)`); a file that claims to be a SIF but is truncated or whose
//! descriptors lie is refused with the parser's reason.
//!
//! The squashfs fallback may inflate up to `sif::squashfs::DECOMPRESSION_BUDGET` bytes, so at
//! most [`CONCURRENT`] extractions run at once, whatever the number of uploads being tagged.
//!
//! It must not buffer the image or publish anything: it reads, and returns what it found.

use crate::store::Store;
use shubnet_protocol::Cid;
use shubnet_protocol::manifest::Metadata;
use shubnet_protocol::sif::{self, SifError};
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

/// Extractions at once: what they may hold is this times the decompression budget.
pub const CONCURRENT: usize = 2;

static EXTRACTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT);

/// The metadata of the stored image `root`: `Some` for a SIF, `None` for anything else.
pub async fn extract(store: &Store, root: &Cid) -> Result<Option<Metadata>, ExtractError> {
    let _turn = EXTRACTING
        .acquire()
        .await
        .map_err(|e| ExtractError::Task(e.to_string()))?;
    let path = store
        .local_blob_path(root)
        .await
        .map_err(|e| ExtractError::Read(std::io::Error::other(e.to_string())))?;
    let short = root.to_string();
    let short = short[short.len().saturating_sub(8)..].to_owned();
    tokio::task::spawn_blocking(move || extract_file(path))
        .await
        .map_err(|e| ExtractError::Task(e.to_string()))?
        .inspect(|m| {
            tracing::debug!(cid = %short, sif = m.is_some(), "extracted image metadata");
        })
}

/// Why a stored blob's metadata could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The blob could not be opened (a node problem, not the client's).
    #[error("opening {path}: {source}", path = .0.display(), source = .1)]
    Open(PathBuf, std::io::Error),
    /// The stored blob could not be read (a node problem).
    #[error("reading the stored image: {0}")]
    Read(std::io::Error),
    /// The SIF parser refused the file: the upload starts like a SIF but is not one.
    #[error("the upload starts like a SIF but is not a valid one: {0}")]
    Sif(SifError),
    /// The blocking task failed.
    #[error("metadata task failed: {0}")]
    Task(String),
}

/// Synchronous core of [`extract`], for blocking threads.
fn extract_file(path: PathBuf) -> Result<Option<Metadata>, ExtractError> {
    let file = File::open(&path).map_err(|e| ExtractError::Open(path.clone(), e))?;
    let found = sif::inspect(BufReader::new(file)).map_err(|e| match e {
        SifError::Io(e) => ExtractError::Read(e),
        other => ExtractError::Sif(other),
    })?;
    if let Some(e) = &found.fallback_error {
        tracing::warn!(path = %path.display(), error = %e, "no metadata from the squashfs partition");
    }
    Ok(found.sif.then_some(found.metadata))
}
