//! The library API that `apptainer pull library://`, `apptainer push` and the Go
//! container-library-client speak (client-protocols.md §1.5, §2.2, §2.3, §4, §6(b)).
//!
//! shubnet has no entities: like sregistry, the entity of a 3-component path is ignored and the
//! middle component is the collection ([`LibraryRef`]). Entities, collections and containers
//! exist implicitly, so the client's find-or-create steps always find. Ids are chosen so that a
//! later call can be resolved from the id alone: a collection's id is its name, a container's is
//! `collection_name`, an image's is `collection_name_sha256hex` (collections never contain `_`
//! and the hex has a fixed length, so both split unambiguously).
//!
//! Uploads (v1 raw `POST /v1/imagefile/<id>`, v2 single part `POST /v2/imagefile/<id>` then
//! `PUT <uploadURL>`) stream into [`Backend::add`] through a hashing wrapper that fails the
//! stream when the bytes do not hash to the image id's sha256 or exceed the limit, so the store
//! keeps nothing of a bad upload. The v2 multipart upload streams its parts in order into one
//! such store call ([`multipart`]). Setting a tag publishes the signed manifest.
//!
//! Errors are `{"error":{"code","message"}}`; tokens come as `Bearer` or `BEARER`.

mod ids;
mod multipart;
mod upload;

use crate::caching;
use crate::ipfs::plain::{self, Naming};
use crate::shub::decode_all;
use crate::tokens::{AuthError, Right, TokenBackend, TokenInfo};
use crate::visibility::{self, Visibility};
use crate::{BackendError, SharedState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ids::ImageId;
use serde_json::{Value, json};
use shubnet_protocol::manifest::Manifest;
use shubnet_protocol::reference::{LibraryRef, LibraryVersion, Reference};

pub use multipart::Sessions;
pub use upload::Uploads;

/// The API version reported by `/version`: ≥ 2.0.0-alpha.1 selects v2 uploads and ≥
/// 2.0.0-alpha.2 v2 (arch) tags in the clients.
pub const API_VERSION: &str = "2.0.0-alpha.2";

/// What the library API needs from a node.
pub trait LibraryBackend:
    crate::ContentBackend
    + crate::StoreBackend
    + crate::RegistryBackend
    + crate::PublishBackend
    + crate::UsageBackend
    + crate::UploadBackend
    + crate::VisibilityBackend
    + TokenBackend
{
}
/// Every whole backend serves the library API; the handlers still see only the traits above.
impl<T: crate::Backend> LibraryBackend for T {}

/// Routes of the library API, mounted at the root.
pub fn router<B: LibraryBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/assets/config/config.prod.json", get(config::<B>))
        .route("/version", get(version))
        .route("/v1/", get(version))
        .route("/v1/token-status", get(token_status::<B>))
        .route("/v1/oci-redirect", get(oci_redirect))
        .route("/v1/entities/{*name}", get(entity))
        .route("/v1/entities", post(entity_create))
        .route("/v1/collections/{*path}", get(collection::<B>))
        .route("/v1/collections", post(collection_create::<B>))
        .route("/v1/containers/{*path}", get(container))
        .route("/v1/containers", post(container_create))
        .route("/v1/images/{*path}", get(image::<B>))
        .route("/v1/images", post(image_create::<B>))
        .route("/v1/imagefile/{*path}", get(imagefile::<B>))
        .route("/v2/imagefile/{id}", post(upload::v2_request::<B>))
        .route(
            "/v2/imagefile/{id}/_complete",
            put(upload::v2_complete::<B>),
        )
        .route_layer(axum::middleware::from_fn(crate::shub::request_timeout))
        // Uploads stream bodies of any size inside the handler, and a tag call re-reads the
        // content: no handler timeout.
        .route("/v1/imagefile/{*path}", post(upload::v1_raw::<B>))
        .route(
            "/v2/imagefile/{id}/_multipart",
            post(multipart::start::<B>).put(multipart::part_url::<B>),
        )
        .route(
            "/v2/imagefile/{id}/_multipart_complete",
            put(multipart::complete::<B>),
        )
        .route(
            "/v2/imagefile/{id}/_multipart_abort",
            put(multipart::abort::<B>),
        )
        .route(
            "/v2/part/{uid}/{part}/{secret}",
            put(multipart::part_put::<B>),
        )
        .route("/v2/upload/{id}/{secret}", put(upload::v2_put::<B>))
        .route(
            "/v1/tags/{id}",
            get(upload::tags_v1::<B>).post(upload::tag::<B>),
        )
        .route(
            "/v2/tags/{id}",
            get(upload::tags_v2::<B>).post(upload::tag::<B>),
        )
}

/// A library API failure: `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct LibraryError {
    status: StatusCode,
    message: String,
}

impl LibraryError {
    /// A failure with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    fn bad_request(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, what)
    }
}

impl From<BackendError> for LibraryError {
    fn from(e: BackendError) -> Self {
        let (status, message) = crate::error::client_facing(e);
        Self::new(status, message)
    }
}

impl From<crate::visibility::Refusal> for LibraryError {
    fn from(r: crate::visibility::Refusal) -> Self {
        match r {
            crate::visibility::Refusal::Backend(e) => e.into(),
            other => Self::new(StatusCode::FORBIDDEN, other.to_string()),
        }
    }
}

impl From<AuthError> for LibraryError {
    fn from(e: AuthError) -> Self {
        Self::new(StatusCode::FORBIDDEN, e.to_string())
    }
}

impl IntoResponse for LibraryError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), message = %self.message, "library API error");
        }
        let body = json!({ "error": { "code": self.status.as_u16(), "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// The bearer token, whatever the case of the scheme word (lib-client 1.2.2 sends `BEARER`).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The token's info if it allows `right` on `collection`; 401 without a token, 403 otherwise.
async fn require<B: TokenBackend>(
    backend: &B,
    headers: &HeaderMap,
    collection: &str,
    right: Right,
) -> Result<TokenInfo, LibraryError> {
    let token = bearer(headers).ok_or_else(|| {
        LibraryError::new(
            StatusCode::UNAUTHORIZED,
            format!("a token with the {right} right is required"),
        )
    })?;
    Ok(backend.authorize_token(token, collection, right).await??)
}

/// 403 unless `collection` is public or the bearer token may pull it.
async fn may_pull<B: LibraryBackend>(
    backend: &B,
    headers: &HeaderMap,
    collection: &str,
) -> Result<(), LibraryError> {
    crate::visibility::may_pull(backend, headers, collection)
        .await
        .map(|_| ())
        .map_err(LibraryError::from)
}

/// Parses a library path after normalising `//` runs.
fn parse_path(path: &str) -> Result<LibraryRef, LibraryError> {
    if path.split('/').any(|s| s == ".." || s == ".") {
        return Err(LibraryError::bad_request("path traversal is not allowed"));
    }
    let mut norm = String::with_capacity(path.len());
    for part in path.split('/').filter(|s| !s.is_empty()) {
        if !norm.is_empty() {
            norm.push('/');
        }
        norm.push_str(part);
    }
    LibraryRef::parse(&norm)
        .map_err(|e| LibraryError::bad_request(format!("invalid library path {path:?}: {e}")))
}

/// The live manifest a library path names: a tag's head, or the image of that container with
/// the given sha256.
async fn resolve<B: LibraryBackend>(backend: &B, r: &LibraryRef) -> Result<Manifest, LibraryError> {
    let refs = r.references();
    let first = refs
        .first()
        .ok_or_else(|| LibraryError::bad_request("no tag"))?;
    match &r.version {
        LibraryVersion::Tags(_) => backend
            .manifest_for_tag(&first.collection, &first.name, &first.tag)
            .await?
            .and_then(|b| Manifest::decode(&b).ok())
            .filter(|m| !m.body.tombstone && m.body.root.is_some())
            .ok_or_else(|| LibraryError::not_found(format!("image {r} not found"))),
        LibraryVersion::Hash(h) => find_by_hash(backend, &first.collection, &first.name, h)
            .await?
            .ok_or_else(|| LibraryError::not_found(format!("image {r} not found"))),
    }
}

/// The live manifest of `collection/name` whose content has sha256 `h`.
async fn find_by_hash<B: LibraryBackend>(
    backend: &B,
    collection: &str,
    name: &str,
    h: &[u8; 32],
) -> Result<Option<Manifest>, LibraryError> {
    let heads = backend.tag_heads(&format!("{collection}/{name}")).await?;
    Ok(decode_all(heads)
        .into_iter()
        .find(|m| !m.body.tombstone && m.body.root.is_some() && m.body.sha256 == *h))
}

/// The library `Image` object for a manifest, with the image's downloads (across the
/// federation) and stars in the container counters the client shows.
fn image_json(m: &Manifest, tags: Vec<String>, usage: crate::search::Usage) -> Value {
    let b = &m.body;
    let hex = hex::encode(b.sha256);
    let id = ImageId {
        collection: b.collection.clone(),
        name: b.name.clone(),
        sha256: b.sha256,
    };
    json!({
        "id": id.to_string(),
        "hash": format!("sha256.{hex}"),
        // The image's own description label, when its SIF metadata has one.
        "description": b.metadata.labels.iter()
            .find(|(k, _)| k.ends_with(".description") || k.as_str() == "description")
            .map(|(_, v)| v.as_str())
            .unwrap_or(""),
        "container": ids::container_id(&b.collection, &b.name),
        "size": b.size,
        "uploaded": true,
        "arch": b.metadata.arch.clone().unwrap_or_else(|| "amd64".into()),
        "fingerprints": [],
        "customData": "",
        "deleted": false,
        "createdAt": crate::shub::time::rfc3339(b.created),
        "entity": b.collection,
        "entityName": b.collection,
        "collection": b.collection,
        "collectionName": b.collection,
        "containerName": b.name,
        "tags": tags,
        "containerStars": usage.stars,
        "containerDownloads": usage.downloads,
    })
}

async fn config<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
) -> Result<Response, LibraryError> {
    let base = crate::shub::external_base(&headers, state.config.tls)
        .map_err(|_| LibraryError::bad_request("invalid Host header"))?;
    let uri = json!({ "uri": base });
    // Every top-level value must be an object: Apptainer decodes map[string]map[string]any.
    Ok(Json(json!({
        "env": { "name": "prod" },
        "logging": { "console": true },
        "libraryAPI": uri,
        "keystoreAPI": uri,
        "keyserverAPI": uri,
        "tokenAPI": uri,
        "auth": { "issuer": base, "requireHttps": false },
    }))
    .into_response())
}

async fn version() -> Response {
    Json(json!({ "data": { "version": env!("CARGO_PKG_VERSION"), "apiVersion": API_VERSION } }))
        .into_response()
}

async fn oci_redirect() -> LibraryError {
    LibraryError::not_found("not supported")
}

async fn token_status<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
) -> Result<Response, LibraryError> {
    let token = bearer(&headers).ok_or_else(|| LibraryError::not_found("no token"))?;
    match state.backend.identify_token(token).await? {
        Ok(info) => {
            Ok(Json(json!({ "data": { "status": "valid", "user": info.user } })).into_response())
        }
        Err(e) => Err(LibraryError::not_found(e.to_string())),
    }
}

async fn entity(Path(name): Path<String>) -> Result<Response, LibraryError> {
    let name = name.trim_matches('/');
    shubnet_protocol::reference::validate_name(name)
        .map_err(|e| LibraryError::bad_request(format!("invalid entity: {e}")))?;
    Ok(Json(json!({ "data": {
        "id": name, "name": name, "description": "", "collections": [], "size": 0,
        "quota": 0, "defaultPrivate": false, "customData": "",
    } }))
    .into_response())
}

async fn entity_create(body: axum::body::Bytes) -> Result<Response, LibraryError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid JSON: {e}")))?;
    let name = v["name"].as_str().unwrap_or_default().to_owned();
    entity(Path(name)).await
}

fn collection_json(name: &str, entity: &str, private: bool) -> Value {
    json!({ "data": {
        "id": name, "name": name, "description": "", "entity": entity, "entityName": entity,
        "containers": [], "size": 0, "private": private, "customData": "",
    } })
}

async fn collection<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    Path(path): Path<String>,
) -> Result<Response, LibraryError> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (entity, name) = match parts[..] {
        [c] => ("", c),
        [e, c] => (e, c),
        _ => return Err(LibraryError::bad_request("expected entity/collection")),
    };
    shubnet_protocol::reference::validate_collection(name)
        .map_err(|e| LibraryError::bad_request(format!("invalid collection: {e}")))?;
    let private = visibility::of_collection(&state.backend, name).await? == Visibility::Private;
    Ok(Json(collection_json(name, entity, private)).into_response())
}

async fn collection_create<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    body: axum::body::Bytes,
) -> Result<Response, LibraryError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid JSON: {e}")))?;
    let name = v["name"].as_str().unwrap_or_default();
    shubnet_protocol::reference::validate_collection(name)
        .map_err(|e| LibraryError::bad_request(format!("invalid collection: {e}")))?;
    let private = visibility::of_collection(&state.backend, name).await? == Visibility::Private;
    let entity = v["entity"].as_str().unwrap_or_default();
    Ok(Json(collection_json(name, entity, private)).into_response())
}

fn container_json(collection: &str, name: &str) -> Value {
    json!({ "data": {
        "id": ids::container_id(collection, name), "name": name, "description": "",
        "fullDescription": "", "collection": collection, "collectionName": collection,
        "images": [], "size": 0, "downloadCount": 0, "stars": 0, "private": false,
        "readOnly": false, "customData": "",
    } })
}

async fn container(Path(path): Path<String>) -> Result<Response, LibraryError> {
    let r = parse_path(&path)?;
    let first = r
        .references()
        .into_iter()
        .next()
        .ok_or_else(|| LibraryError::bad_request("no container"))?;
    Ok(Json(container_json(&first.collection, &first.name)).into_response())
}

async fn container_create(body: axum::body::Bytes) -> Result<Response, LibraryError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid JSON: {e}")))?;
    let name = v["name"].as_str().unwrap_or_default();
    let collection = v["collection"].as_str().unwrap_or_default();
    Reference::new(collection, name, "latest")
        .map_err(|e| LibraryError::bad_request(format!("invalid container: {e}")))?;
    Ok(Json(container_json(collection, name)).into_response())
}

async fn image<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Result<Response, LibraryError> {
    let r = parse_path(&path)?;
    let refs = r.references();
    let first = refs
        .first()
        .ok_or_else(|| LibraryError::bad_request("no tag"))?;
    may_pull(&state.backend, &headers, &first.collection).await?;
    let m = resolve(&state.backend, &r).await?;
    let tags = match &r.version {
        LibraryVersion::Tags(t) => t.clone(),
        LibraryVersion::Hash(_) => vec![m.body.tag.clone()],
    };
    let reference = format!("{}/{}:{}", m.body.collection, m.body.name, m.body.tag);
    let usage = state.backend.usage(&reference).await.unwrap_or_else(|e| {
        tracing::warn!(%reference, error = %e, "usage unavailable for the image object");
        crate::search::Usage::default()
    });
    Ok(Json(json!({ "data": image_json(&m, tags, usage) })).into_response())
}

/// `POST /v1/images`: the client creates the image record before it uploads. Nothing is stored
/// until the bytes arrive; the answer carries the id the upload and tag calls use.
async fn image_create<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, LibraryError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid JSON: {e}")))?;
    let hash = v["hash"].as_str().unwrap_or_default();
    let container = v["container"].as_str().unwrap_or_default();
    let (collection, name) = ids::parse_container_id(container)
        .ok_or_else(|| LibraryError::bad_request(format!("unknown container id {container:?}")))?;
    let sha256 = match shubnet_protocol::reference::Digest::parse(hash) {
        Ok(shubnet_protocol::reference::Digest::Sha256(h)) => h,
        _ => return Err(LibraryError::bad_request(format!("invalid hash {hash:?}"))),
    };
    require(&state.backend, &headers, &collection, Right::Push).await?;
    let id = ImageId {
        collection,
        name,
        sha256,
    };
    Ok(Json(json!({ "data": {
        "id": id.to_string(), "hash": hash, "container": container, "description": "",
        "size": 0, "uploaded": false, "customData": "",
    } }))
    .into_response())
}

async fn imagefile<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Result<Response, Response> {
    let r = parse_path(&path).map_err(IntoResponse::into_response)?;
    let refs = r.references();
    let first = refs
        .first()
        .ok_or_else(|| LibraryError::bad_request("no tag").into_response())?;
    may_pull(&state.backend, &headers, &first.collection)
        .await
        .map_err(IntoResponse::into_response)?;
    let m = resolve(&state.backend, &r)
        .await
        .map_err(IntoResponse::into_response)?;
    let root = m
        .body
        .root
        .ok_or_else(|| LibraryError::not_found("no content").into_response())?;
    let caching = caching::decide(&state.backend, &headers, caching::Route::Open, &root).await;
    let filename = format!("{}_{}.sif", m.body.name, m.body.tag);
    let naming = Naming {
        filename: Some(&filename),
        download: true,
    };
    plain::file(
        &state.backend,
        root,
        naming,
        &headers,
        method == Method::HEAD,
        caching,
    )
    .await
    .map_err(IntoResponse::into_response)
}
