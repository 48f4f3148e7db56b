//! OCI distribution errors: the spec's `{"errors":[{"code","message","detail"}]}` body with the
//! status each code comes with, and the one mapping of a [`BackendError`] onto them.
//!
//! Handlers pick a [`Code`]; they must not build error bodies themselves.

use crate::BackendError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The error codes of the distribution spec that this registry answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    RangeInvalid,
    Internal,
    Unavailable,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid | Code::RangeInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Internal => "UNKNOWN",
            Code::Unavailable => "TOOMANYREQUESTS",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::Unsupported => StatusCode::BAD_REQUEST,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One failed request: a code, a message, and the headers some codes need (the auth
/// challenge of a 401, the committed `Range` of a refused chunk).
#[derive(Debug)]
pub(crate) struct OciError {
    pub(crate) code: Code,
    message: String,
    status: Option<StatusCode>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl OciError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: None,
            headers: Vec::new(),
        }
    }

    /// The same error with another status than its code's usual one.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

impl From<BackendError> for OciError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(m) => OciError::new(Code::NameUnknown, m),
            BackendError::Invalid(m) => OciError::new(Code::ManifestInvalid, m),
            e @ (BackendError::Rejected(_)
            | BackendError::Frozen { .. }
            | BackendError::OutsideNamespace { .. }) => OciError::new(Code::Denied, e.to_string()),
            BackendError::TooLarge(m) => {
                OciError::new(Code::SizeInvalid, m).with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            BackendError::StorageFull(m) => {
                OciError::new(Code::Internal, m).with_status(StatusCode::INSUFFICIENT_STORAGE)
            }
            BackendError::Unavailable(m) => OciError::new(Code::Unavailable, m),
            BackendError::Internal(m) => {
                tracing::error!(error = %m, "OCI request failed");
                OciError::new(Code::Internal, "internal error; see the node's log")
            }
        }
    }
}

impl From<crate::visibility::Refusal> for OciError {
    fn from(r: crate::visibility::Refusal) -> Self {
        match r {
            crate::visibility::Refusal::Backend(e) => e.into(),
            other => OciError::new(Code::Denied, other.to_string()),
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or(self.code.status());
        let body = json!({ "errors": [{
            "code": self.code.as_str(),
            "message": self.message,
            "detail": null,
        }] });
        let mut r = (status, Json(body)).into_response();
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}
