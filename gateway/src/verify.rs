//! The verification API under `/shubnet/v1`: what `shubnet pull` needs to verify an image end
//! to end without trusting this gateway — the roster chain and signed manifests as their raw
//! signed encodings (`application/vnd.shubnet.roster+cbor` inside JSON as base64url, and
//! `application/vnd.shubnet.manifest+cbor` bodies), plus a JSON tag listing for people.
//!
//! Manifests of private collections go only to a token that may pull them; that decision is
//! [`crate::visibility`]'s, never this module's.

use crate::SharedState;
use crate::backend::{RegistryBackend, TokenBackend, VisibilityBackend};
use crate::error::{backend_response, json_error};
use crate::visibility::{Visibility, may_read};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use shubnet_protocol::manifest::Manifest;

/// Media type of a signed manifest body.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.shubnet.manifest+cbor";
/// Header carrying the manifest CID.
pub const MANIFEST_CID_HEADER: &str = "x-shubnet-manifest-cid";

/// What the verification API needs from a node.
pub trait VerifyBackend: RegistryBackend + VisibilityBackend + TokenBackend {}
impl<T: RegistryBackend + VisibilityBackend + TokenBackend> VerifyBackend for T {}

/// Routes under `/shubnet/v1`.
pub fn router<B: VerifyBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/federation", get(federation::<B>))
        .route(
            "/manifests/{collection}/{name}/{tag}",
            get(manifest_for_tag::<B>),
        )
        .route("/manifest/{cid}", get(manifest_by_cid::<B>))
        .route("/tags", get(tags::<B>))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed rosters (what a verifier needs), plus the newest one decoded for people and
/// scripts: its name, version, replication policy and members.
async fn federation<B: RegistryBackend>(State(state): State<SharedState<B>>) -> Response {
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

/// A private collection's manifest is served to one authorised caller: nothing may store it.
fn uncached_if_private(mut resp: Response, visibility: Visibility) -> Response {
    if visibility == Visibility::Private {
        crate::caching::Caching::Private.headers(resp.headers_mut());
    }
    resp
}

async fn manifest_for_tag<B: VerifyBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((collection, name, tag)): Path<(String, String, String)>,
) -> Response {
    let visibility = match may_read(&state, &headers, &collection).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match state
        .backend
        .manifest_for_tag(&collection, &name, &tag)
        .await
    {
        Ok(Some(bytes)) => uncached_if_private(manifest_response(bytes), visibility),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            &format!("no manifest for {collection}/{name}:{tag}"),
        ),
        Err(e) => backend_response(&e),
    }
}

async fn manifest_by_cid<B: VerifyBackend>(
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
            let mut visibility = Visibility::Public;
            if let Ok(m) = Manifest::decode(&bytes) {
                match may_read(&state, &headers, &m.body.collection).await {
                    Ok(v) => visibility = v,
                    Err(resp) => return resp,
                }
            }
            uncached_if_private(manifest_response(bytes), visibility)
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

async fn tags<B: VerifyBackend>(
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
