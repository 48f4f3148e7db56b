//! The verification API and the registry's admin routes.
//!
//! Public (`/shubnet/v1`): what `shubnet pull` needs to verify an image end to end without
//! trusting this gateway — the roster chain and signed manifests as their raw signed encodings
//! (`application/vnd.shubnet.roster+cbor` inside JSON as base64url, and
//! `application/vnd.shubnet.manifest+cbor` bodies), plus a JSON tag listing for people.
//!
//! Admin (`/admin/v1`, behind the [`Admin`] extractor): federation actions, push and delete.

use crate::admin::{Admin, AdminError, check_declared_length, limited};
use crate::backend::{FederationRequest, PushOutcome};
use crate::error::{backend_response, json_error};
use crate::tokens::{Right, TokenBackend};
use crate::{Backend, SharedState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use shubnet_protocol::manifest::Manifest;
use std::sync::atomic::Ordering;

/// Media type of a signed manifest body.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.shubnet.manifest+cbor";
/// Header carrying the manifest CID.
pub const MANIFEST_CID_HEADER: &str = "x-shubnet-manifest-cid";

/// Public routes under `/shubnet/v1`.
pub fn public_router<B: Backend + TokenBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/federation", get(federation::<B>))
        .route(
            "/manifests/{collection}/{name}/{tag}",
            get(manifest_for_tag::<B>),
        )
        .route("/manifest/{cid}", get(manifest_by_cid::<B>))
        .route("/tags", get(tags::<B>))
}

/// Admin routes, nested under `/admin/v1`.
pub fn admin_router<B: Backend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/federation", post(federation_admin::<B>))
        .route("/push", post(push::<B>))
        .route("/delete", post(delete::<B>))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed rosters (what a verifier needs), plus the newest one decoded for people and
/// scripts: its name, version, replication policy and members.
async fn federation<B: Backend>(State(state): State<SharedState<B>>) -> Response {
    match state.backend.federation().await {
        Ok(v) => {
            let newest = v
                .rosters
                .last()
                .and_then(|r| shubnet_protocol::roster::SignedRoster::decode(r).ok())
                .map(|r| r.body);
            Json(serde_json::json!({
                "id": v.id,
                "name": newest.as_ref().map(|r| r.name.clone()),
                "version": newest.as_ref().map(|r| r.version),
                "replication": newest.as_ref().map(|r| serde_json::json!({
                    "k": r.replication.k,
                    "min_institutions": r.replication.min_institutions,
                })),
                "members": newest.as_ref().map(|r| r.members.iter().map(member_json).collect::<Vec<_>>()).unwrap_or_default(),
                "rosters": v.rosters.iter().map(|r| b64(r)).collect::<Vec<_>>(),
                "pending": v.pending.as_deref().map(b64),
            }))
            .into_response()
        }
        Err(e) => backend_response(&e),
    }
}

fn member_json(m: &shubnet_protocol::roster::Member) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "name": m.name,
        "peer_ids": m.peer_ids,
        "namespaces": m.namespaces,
        "storage_bytes": m.storage_bytes,
        "gateway": m.gateway,
        "publisher_keys": m.publisher_keys.iter().map(|k| b64(k)).collect::<Vec<_>>(),
    })
}

fn manifest_response(bytes: Vec<u8>) -> Response {
    let cid = Manifest::decode(&bytes)
        .map(|m| m.cid().to_string())
        .unwrap_or_default();
    let mut resp = (StatusCode::OK, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&cid) {
        h.insert(MANIFEST_CID_HEADER, v);
    }
    resp
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    crate::admin::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// `Ok(())` if `collection` is public or the request's token may pull it; otherwise the 403 to
/// send (registries answer 403, never 401, for private images).
async fn may_read<B: Backend + TokenBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    collection: &str,
) -> Result<(), Response> {
    match state.backend.collection_is_private(collection).await {
        Ok(false) => Ok(()),
        Ok(true) => {
            let Some(token) = bearer(headers) else {
                return Err(json_error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "collection {collection} is private; send a token with the pull right"
                    ),
                ));
            };
            match state
                .backend
                .authorize_token(token, collection, Right::Pull)
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(denied)) => Err(json_error(StatusCode::FORBIDDEN, &denied.to_string())),
                Err(e) => Err(backend_response(&e)),
            }
        }
        Err(e) => Err(backend_response(&e)),
    }
}

/// `Ok(())` if content `cid` may be served to this request: it belongs to no collection, to a
/// public one, or the request's token may pull one of its private collections.
pub(crate) async fn may_read_content<B: Backend + TokenBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    cid: &shubnet_protocol::Cid,
) -> Result<(), Response> {
    let collections = state
        .backend
        .content_collections(cid)
        .await
        .map_err(|e| backend_response(&e))?;
    if collections.is_empty() {
        return Ok(());
    }
    let mut denied = None;
    for c in &collections {
        match may_read(state, headers, c).await {
            Ok(()) => return Ok(()),
            Err(resp) => denied = Some(resp),
        }
    }
    match denied {
        Some(resp) => Err(resp),
        None => Ok(()),
    }
}

async fn manifest_for_tag<B: Backend + TokenBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((collection, name, tag)): Path<(String, String, String)>,
) -> Response {
    if let Err(resp) = may_read(&state, &headers, &collection).await {
        return resp;
    }
    match state
        .backend
        .manifest_for_tag(&collection, &name, &tag)
        .await
    {
        Ok(Some(bytes)) => manifest_response(bytes),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            &format!("no manifest for {collection}/{name}:{tag}"),
        ),
        Err(e) => backend_response(&e),
    }
}

async fn manifest_by_cid<B: Backend + TokenBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(cid): Path<String>,
) -> Response {
    let cid = match shubnet_protocol::cid::parse(&cid) {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match state.backend.manifest_by_cid(&cid).await {
        Ok(Some(bytes)) => {
            if let Ok(m) = Manifest::decode(&bytes)
                && let Err(resp) = may_read(&state, &headers, &m.body.collection).await
            {
                return resp;
            }
            manifest_response(bytes)
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, &format!("no manifest {cid}")),
        Err(e) => backend_response(&e),
    }
}

#[derive(Debug, Deserialize)]
struct TagsQuery {
    #[serde(default)]
    prefix: String,
}

/// A JSON view of a head manifest, for listings.
pub fn manifest_json(m: &Manifest) -> serde_json::Value {
    let b = &m.body;
    serde_json::json!({
        "reference": format!("{}/{}:{}", b.collection, b.name, b.tag),
        "collection": b.collection,
        "name": b.name,
        "tag": b.tag,
        "manifest": m.cid().to_string(),
        "root": b.root.map(|c| c.to_string()),
        "size": b.size,
        "sha256": hex::encode(b.sha256),
        "seq": b.seq,
        "frozen": b.frozen,
        "deleted": b.tombstone,
        "created": b.created,
        "pushed_by": b.pushed_by,
        "publisher": hex::encode(m.publisher),
    })
}

async fn tags<B: Backend + TokenBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Query(q): Query<TagsQuery>,
) -> Response {
    match state.backend.tag_heads(&q.prefix).await {
        Ok(list) => {
            let mut items = Vec::new();
            for m in list.iter().filter_map(|b| Manifest::decode(b).ok()) {
                // Private collections are listed only to a token that may pull them.
                if may_read(&state, &headers, &m.body.collection).await.is_ok() {
                    items.push(manifest_json(&m));
                }
            }
            Json(items).into_response()
        }
        Err(e) => backend_response(&e),
    }
}

async fn federation_admin<B: Backend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    Json(req): Json<FederationRequest>,
) -> Result<Json<serde_json::Value>, AdminError> {
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

async fn push<B: Backend>(
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

async fn delete<B: Backend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<PushOutcome>, AdminError> {
    Ok(Json(state.backend.delete_tag(&q.reference).await?))
}
