//! The node admin API the `shubnet` CLI talks to, nested at `/admin/v1`.
//!
//! Every route takes the [`Admin`] extractor first, so nothing is read or run before the caller
//! is known: unless `allow_remote_admin` is set the peer must be a loopback address (403
//! otherwise; a request without `ConnectInfo`, as in in-process tests, counts as local), and it
//! must present `Authorization: Bearer <token>` that [`AdminAuth::check_admin_token`] accepts
//! (401 with `WWW-Authenticate: Bearer` otherwise). The address is checked first so a remote
//! caller learns nothing about the token.
//!
//! Uploads (`/add`, `/car/import`) are streamed into the backend, never buffered. They are cut
//! at `max_upload_bytes`: a declared `Content-Length` above it is a 413 before the backend is
//! called; a body that grows past it ends the backend's stream with an error, and the request
//! is answered 413 whatever the backend made of that error. A body that fails mid-way (the
//! client went away) reaches the backend as an `io::Error` in its [`ByteStream`].
//!
//! Errors are JSON `{"error": "..."}`; only 5xx are logged.

use crate::backend::{
    AddOutcome, CarImportOutcome, FetchRequest, GcReport, LeaveAction, LeaveProgress, PinInfo,
    RepairReport, ScrubReport, Status,
};
use crate::error::{backend_response, json_error};
use crate::{AdminAuth, BackendError, ByteStream, LifecycleBackend, SharedState, StoreBackend};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Serialize;
use shubnet_protocol::Cid;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the store and lifecycle admin routes need from a node.
pub trait AdminBackend: AdminAuth + StoreBackend + LifecycleBackend {}
impl<T: AdminAuth + StoreBackend + LifecycleBackend> AdminBackend for T {}

/// Routes under `/admin/v1`.
pub fn router<B: AdminBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/add", post(add::<B>))
        .route("/car/import", post(import_car::<B>))
        .route("/fetch", post(fetch::<B>))
        .route("/pins", get(pins::<B>))
        .route("/pins/{cid}", put(pin::<B>).delete(unpin::<B>))
        .route("/gc", post(gc::<B>))
        .route("/repair", post(repair::<B>))
        .route("/scrub", post(scrub::<B>))
        .route("/status", get(status::<B>))
        .route("/backup", get(backup::<B>))
        .route(
            "/leave",
            get(leave_progress::<B>)
                .post(leave_start::<B>)
                .delete(leave_cancel::<B>),
        )
        .route("/shutdown", post(shutdown::<B>))
}

/// Why an admin request failed; rendered as JSON `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No bearer token, or not the node's admin token (401).
    #[error("missing or wrong admin token; send Authorization: Bearer <token>")]
    Unauthorized,
    /// The peer is not on this machine and remote admin is off (403).
    #[error("the admin API accepts only local connections on this node")]
    Forbidden,
    /// The request is malformed, such as a bad CID (400).
    #[error("{0}")]
    BadRequest(String),
    /// The upload is larger than `max_upload_bytes` (413).
    #[error("the upload exceeds this node's limit of {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match &self {
            AdminError::Unauthorized => {
                let mut r = json_error(StatusCode::UNAUTHORIZED, &self.to_string());
                r.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            AdminError::Forbidden => json_error(StatusCode::FORBIDDEN, &self.to_string()),
            AdminError::BadRequest(m) => json_error(StatusCode::BAD_REQUEST, m),
            AdminError::TooLarge { .. } => {
                json_error(StatusCode::PAYLOAD_TOO_LARGE, &self.to_string())
            }
            AdminError::Backend(e) => backend_response(e),
        }
    }
}

/// Proof that the request may use the admin API. Taken first by every admin handler.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl<B: AdminAuth> FromRequestParts<SharedState<B>> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState<B>,
    ) -> Result<Self, Self::Rejection> {
        if !state.config.allow_remote_admin
            && let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>()
            && !peer.ip().to_canonical().is_loopback()
        {
            return Err(AdminError::Forbidden);
        }
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match token {
            Some(t) if state.backend.check_admin_token(t) => Ok(Admin),
            _ => Err(AdminError::Unauthorized),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `POST /admin/v1/add`: the body is the file.
async fn add<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AddOutcome>, AdminError> {
    let limit = state.config.max_upload_bytes;
    check_declared_length(&headers, limit)?;
    let (stream, exceeded) = limited(body, limit);
    match state.backend.add(stream).await {
        Ok(out) => Ok(Json(out)),
        Err(_) if exceeded.load(Ordering::Acquire) => Err(AdminError::TooLarge { limit }),
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/v1/car/import`: the body is a CAR v1 stream.
async fn import_car<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CarImportOutcome>, AdminError> {
    let limit = state.config.max_upload_bytes;
    check_declared_length(&headers, limit)?;
    let (stream, exceeded) = limited(body, limit);
    match state.backend.import_car(stream).await {
        Ok(out) => Ok(Json(out)),
        Err(_) if exceeded.load(Ordering::Acquire) => Err(AdminError::TooLarge { limit }),
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/v1/fetch`: JSON `{"cid": "...", "peers": ["/ip4/.../p2p/..."]}`; fetches the
/// DAG over Bitswap from the named peers, or with no peers over `/shubnet/fetch/1` from the
/// federation, then stores and pins it.
async fn fetch<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    req: Result<Json<FetchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AddOutcome>, AdminError> {
    let Json(req) = req.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let cid = shubnet_protocol::cid::parse(&req.cid)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    Ok(Json(state.backend.fetch(&cid, &req.peers).await?))
}

/// `GET /admin/v1/pins`: a JSON array of pinned roots.
async fn pins<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<Vec<PinInfo>>, AdminError> {
    Ok(Json(state.backend.pins().await?))
}

/// The reply to pin and unpin, so the CLI always gets JSON back.
#[derive(Debug, Serialize)]
struct PinState {
    cid: String,
    pinned: bool,
}

/// `PUT /admin/v1/pins/{cid}`.
async fn pin<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PinState>, AdminError> {
    let cid = path_cid(path)?;
    state.backend.pin(&cid).await?;
    Ok(Json(PinState {
        cid: cid.to_string(),
        pinned: true,
    }))
}

/// `DELETE /admin/v1/pins/{cid}`.
async fn unpin<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PinState>, AdminError> {
    let cid = path_cid(path)?;
    state.backend.unpin(&cid).await?;
    Ok(Json(PinState {
        cid: cid.to_string(),
        pinned: false,
    }))
}

/// `POST /admin/v1/gc`.
async fn gc<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<GcReport>, AdminError> {
    Ok(Json(state.backend.gc().await?))
}

/// `GET /admin/v1/status`: peers, roster version, replication health.
async fn status<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<Status>, AdminError> {
    Ok(Json(state.backend.status().await?))
}

/// `POST /admin/v1/leave`: announce this node's departure and start handing its images over.
async fn leave_start<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<LeaveProgress>, AdminError> {
    Ok(Json(state.backend.leave(LeaveAction::Start).await?))
}

/// `GET /admin/v1/leave`: which images still lack k holders on other nodes.
async fn leave_progress<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<LeaveProgress>, AdminError> {
    Ok(Json(state.backend.leave(LeaveAction::Progress).await?))
}

/// `DELETE /admin/v1/leave`: stay after all.
async fn leave_cancel<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<LeaveProgress>, AdminError> {
    Ok(Json(state.backend.leave(LeaveAction::Cancel).await?))
}

/// `POST /admin/v1/shutdown`: stop gracefully, as SIGTERM does; answers before the drain.
async fn shutdown<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<(StatusCode, Json<serde_json::Value>), AdminError> {
    state.backend.shutdown().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "stopping": true })),
    ))
}

/// `GET /admin/v1/backup`: a tar of what the federation cannot give back (keys included).
async fn backup<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<axum::response::Response, AdminError> {
    let stream = state.backend.backup().await?;
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/x-tar")
        .header(axum::http::header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::from_stream(stream))
        .map_err(|e| AdminError::from(BackendError::Internal(e.to_string())))
}

/// `POST /admin/v1/repair`.
async fn repair<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<RepairReport>, AdminError> {
    Ok(Json(state.backend.repair().await?))
}

/// `POST /admin/v1/scrub`.
async fn scrub<B: AdminBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<ScrubReport>, AdminError> {
    Ok(Json(state.backend.scrub().await?))
}

fn path_cid(path: Result<Path<String>, PathRejection>) -> Result<Cid, AdminError> {
    let Path(text) = path.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    shubnet_protocol::cid::parse(&text).map_err(|e| AdminError::BadRequest(e.to_string()))
}

/// Refuses a body whose declared length is over the limit, before any of it is read.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), AdminError> {
    match crate::declared_length(headers) {
        Some(n) if n > limit => Err(AdminError::TooLarge { limit }),
        _ => Ok(()),
    }
}

/// The request body as a [`ByteStream`] that ends with an error once more than `limit` bytes
/// arrive (setting the returned flag), and turns transport failures into `io::Error`s.
pub(crate) fn limited(body: Body, limit: u64) -> (ByteStream, Arc<AtomicBool>) {
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&exceeded);
    let stream = futures::stream::unfold(Some((body.into_data_stream(), 0u64)), move |state| {
        let flag = Arc::clone(&flag);
        async move {
            let (mut inner, seen) = state?;
            match inner.next().await? {
                Ok(chunk) => {
                    let seen = seen.saturating_add(chunk.len() as u64);
                    if seen > limit {
                        flag.store(true, Ordering::Release);
                        let e = io::Error::new(
                            io::ErrorKind::FileTooLarge,
                            format!("upload exceeds the limit of {limit} bytes"),
                        );
                        Some((Err(e), None))
                    } else {
                        Some((Ok(chunk), Some((inner, seen))))
                    }
                }
                Err(e) => Some((Err(io::Error::other(e)), None)),
            }
        }
    });
    (Box::pin(stream), exceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
