//! The JSON error body shared by the `/ipfs` and admin APIs, and the one place a
//! [`BackendError`] becomes an HTTP status and a client-facing message, so every API answers a
//! given failure the same way. It renders no API-specific body shape (library, shub own theirs).
//!
//! Routes must not build error bodies or choose failure statuses themselves; they call this
//! module.

use crate::BackendError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What a client sees for an internal failure; the real error only goes to the log.
const INTERNAL_MESSAGE: &str = "internal error; see the node's log";

/// `{"error": message}` with `status`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The status a backend failure maps to, as DESIGN.md and the STYLE guide fix it.
pub(crate) fn backend_status(err: &BackendError) -> StatusCode {
    match err {
        BackendError::NotFound(_) => StatusCode::NOT_FOUND,
        BackendError::Invalid(_)
        | BackendError::Rejected(_)
        | BackendError::Frozen { .. }
        | BackendError::OutsideNamespace { .. } => StatusCode::BAD_REQUEST,
        BackendError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BackendError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        BackendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status and message the library and shub APIs show for a backend failure: an internal
/// error's detail goes to the log only, so a client never sees the node's internals.
pub(crate) fn client_facing(err: BackendError) -> (StatusCode, String) {
    let status = backend_status(&err);
    match err {
        BackendError::Internal(detail) => {
            tracing::error!(error = %detail, "backend failure");
            (status, INTERNAL_MESSAGE.to_string())
        }
        other => (status, other.to_string()),
    }
}

/// Renders a backend failure. Client errors are not logged; 5xx are, and an internal error's
/// detail is replaced by a generic message.
pub(crate) fn backend_response(err: &BackendError) -> Response {
    let status = backend_status(err);
    match err {
        BackendError::Internal(detail) => {
            tracing::error!(error = %detail, "backend failure");
            json_error(status, INTERNAL_MESSAGE)
        }
        BackendError::StorageFull(msg) | BackendError::Unavailable(msg) => {
            tracing::warn!(status = status.as_u16(), error = %msg, "backend cannot serve");
            json_error(status, msg)
        }
        BackendError::NotFound(_)
        | BackendError::Invalid(_)
        | BackendError::Rejected(_)
        | BackendError::Frozen { .. }
        | BackendError::OutsideNamespace { .. }
        | BackendError::TooLarge(_) => json_error(status, &err.to_string()),
    }
}
