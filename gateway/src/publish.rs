//! The registry's admin routes under `/admin/v1`, behind the [`Admin`] extractor: federation
//! actions, push and delete. Reading the registry is [`crate::verify`]'s.
//!
//! It must not read or judge manifests: the backend's registry does.

use crate::SharedState;
use crate::admin::{Admin, AdminError, check_declared_length, limited};
use crate::backend::{
    AdminAuth, FederationOutcome, FederationRequest, PublishBackend, PushOutcome,
};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::atomic::Ordering;

/// What the publishing routes need from a node.
pub trait PublishRoutes: AdminAuth + PublishBackend {}
impl<T: AdminAuth + PublishBackend> PublishRoutes for T {}

/// Admin routes, nested under `/admin/v1`.
pub fn router<B: PublishRoutes>() -> Router<SharedState<B>> {
    Router::new()
        .route("/federation", post(federation_admin::<B>))
        .route("/push", post(push::<B>))
        .route("/delete", post(delete::<B>))
}

async fn federation_admin<B: PublishRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    Json(req): Json<FederationRequest>,
) -> Result<Json<FederationOutcome>, AdminError> {
    Ok(Json(state.backend.federation_admin(req).await?))
}

#[derive(Debug, Deserialize)]
struct PushQuery {
    reference: String,
    #[serde(default)]
    freeze: bool,
    /// Only run the checks that need no content; the body is ignored.
    #[serde(default)]
    check: bool,
}

async fn push<B: PublishRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    Query(q): Query<PushQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PushOutcome>, AdminError> {
    if q.check {
        state.backend.push_check(&q.reference).await?;
        return Ok(Json(PushOutcome {
            manifest: String::new(),
            reference: q.reference,
            root: None,
            size: 0,
            sha256: String::new(),
            seq: 0,
        }));
    }
    let limit = state.config.max_upload_bytes;
    check_declared_length(&headers, limit)?;
    let (stream, exceeded) = limited(body, limit);
    match state.backend.push(&q.reference, q.freeze, stream).await {
        Ok(out) => Ok(Json(out)),
        Err(_) if exceeded.load(Ordering::Acquire) => Err(AdminError::TooLarge { limit }),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    reference: String,
}

async fn delete<B: PublishRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<PushOutcome>, AdminError> {
    Ok(Json(state.backend.delete_tag(&q.reference).await?))
}
