//! How the node's errors become the gateway's [`BackendError`]s, and the one way adapter code
//! runs blocking work (sled, files) off the async threads.
//!
//! It owns the mapping of store and visibility failures onto the statuses clients expect. It
//! must not call any part of the node: it only converts.

use crate::store::StoreError;
use shubnet_gateway::BackendError;

/// A privacy question that cannot be answered: the content stays hidden (500, detail logged).
pub(crate) fn hidden(e: crate::visibility::VisibilityError) -> BackendError {
    BackendError::Internal(e.to_string())
}

/// Maps store failures onto the statuses clients expect.
pub(crate) fn conv(e: StoreError) -> BackendError {
    match e {
        StoreError::NotFound(c) => {
            BackendError::NotFound(format!("{c} is not stored on this node"))
        }
        StoreError::Invalid(m) => BackendError::Invalid(m),
        StoreError::Fetch(m) => BackendError::NotFound(m),
        StoreError::Interrupted(m) => {
            BackendError::Invalid(format!("the upload was interrupted: {m}"))
        }
        StoreError::TooLarge(n) => {
            BackendError::TooLarge(format!("upload exceeds the {n}-byte limit"))
        }
        StoreError::Full(m) => BackendError::StorageFull(format!(
            "no space left on the node's disk ({m}); nothing was stored"
        )),
        StoreError::Object(e) => {
            BackendError::Unavailable(format!("the node's object storage is unavailable: {e}"))
        }
        other => BackendError::Internal(other.to_string()),
    }
}

/// Runs blocking work (sled, files) off the async threads, mapping its error with `conv`.
pub(crate) async fn off_thread<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    conv: fn(E) -> BackendError,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Internal(format!("task failed: {e}")))?
        .map_err(conv)
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, BackendError> {
    off_thread(f, conv).await
}
