//! The shub API that `apptainer pull shub://`, Singularity 2.x and the `sregistry` client speak
//! (client-protocols.md §1.2, §1.3, §2.1, §3, §6(a)/(c)).
//!
//! | method | path | does |
//! |---|---|---|
//! | `GET` | `/api/container/<c>/<n>[:<t>][@<digest>]` | the image manifest JSON, with an absolute `image` URL |
//! | `DELETE` | `/api/container/<c>/<n>:<t>` | HMAC `delete`: publishes a tombstone (204) |
//! | `GET`/`HEAD` | `/containers/<cid>/download/<secret>` | the image bytes: exact `Content-Length`, `Range`, `ETag` |
//! | `GET` | `/api/containers/`, `/api/collections/`, `/api/collection/<c>`, search and label routes, `/api/registry/identity` | listings ([`listing`]) |
//! | `POST` | `/api/upload/chunked_upload`, `/upload/chunked_upload`, `/upload` | sregistry push ([`upload`]) |
//!
//! Errors are DRF-style `{"detail": "..."}`. Private collections answer 403 (never 401: the
//! sregistry client only retries with its HMAC after a 403) until the request carries a valid
//! HMAC `pull` signature. The download URL of a private image carries a secret signed with a
//! per-process key that expires after [`auth::URL_LIFETIME_SECS`], because clients fetch it
//! without credentials; public images use the secret `public`.
//!
//! Image bytes always come from [`Backend::read_file`], so a gateway that does not hold an image
//! can still serve it once the node fetches on demand, and memory stays flat in image size.

pub mod auth;
mod listing;
pub mod rendered;
pub mod replay;
pub mod time;
mod upload;

use crate::caching;
use crate::ipfs::plain::{self, Naming};
use crate::tokens::{Right, TokenBackend};
use crate::visibility::{self, Visibility};
use crate::{BackendError, SharedState};
use auth::HmacError;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shubnet_protocol::manifest::Manifest;
use shubnet_protocol::reference::{Digest, Reference};

/// The secret in the download URL of a public image.
const PUBLIC_SECRET: &str = "public";
/// How long a handler that does not stream a request body may take before the client gets a
/// 503 (manifests, listings, the start of a download; uploads are bounded by their body).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Fails a request whose handler has not produced a response within [`REQUEST_TIMEOUT`]. The
/// body of a download streams after the response, so the timeout never cuts a long transfer.
pub(crate) async fn request_timeout(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!("request timed out after {REQUEST_TIMEOUT:?}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "detail": "the request timed out; try again" })),
            )
                .into_response()
        }
    }
}

/// What the shub and sregistry APIs need from a node.
pub trait ShubBackend:
    crate::ContentBackend
    + crate::RegistryBackend
    + crate::PublishBackend
    + crate::UsageBackend
    + crate::VisibilityBackend
    + TokenBackend
{
}
impl<T> ShubBackend for T where
    T: crate::ContentBackend
        + crate::RegistryBackend
        + crate::PublishBackend
        + crate::UsageBackend
        + crate::VisibilityBackend
        + TokenBackend
{
}

/// Routes of the shub and sregistry APIs, mounted at the root.
pub fn router<B: ShubBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route(
            "/api/container/{*rest}",
            get(container_get::<B>).delete(container_delete::<B>),
        )
        .route("/containers/{cid}/download/{secret}", get(download::<B>))
        .route("/api/upload/chunked_upload", post(upload::chunked::<B>))
        .route("/upload/chunked_upload", post(upload::chunked::<B>))
        .route("/upload", post(upload::upload::<B>))
        .merge(listing::router::<B>())
}

/// A shub API failure, rendered as DRF's `{"detail": ...}`.
#[derive(Debug)]
pub struct ShubError {
    status: StatusCode,
    detail: String,
}

impl ShubError {
    /// A failure with this status and message.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found.")
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl From<BackendError> for ShubError {
    fn from(e: BackendError) -> Self {
        if let BackendError::NotFound(_) = e {
            return Self::not_found();
        }
        let (status, detail) = crate::error::client_facing(e);
        Self::new(status, detail)
    }
}

impl From<HmacError> for ShubError {
    fn from(e: HmacError) -> Self {
        match e {
            HmacError::Backend(b) => b.into(),
            HmacError::Busy => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => Self::new(StatusCode::FORBIDDEN, other.to_string()),
        }
    }
}

impl IntoResponse for ShubError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), detail = %self.detail, "shub API error");
        }
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

/// Parses the path after `/api/container/`. Names are lowercased first: `apptainer pull
/// shub://` keeps the case the user typed, and the sregistry client lowercases anyway.
fn parse_container_path(rest: &str) -> Result<Reference, ShubError> {
    if rest.split('/').any(|s| s == ".." || s == ".") {
        return Err(ShubError::bad_request("path traversal is not allowed"));
    }
    Reference::parse_lenient(rest.trim_end_matches('/'))
        .map_err(|e| ShubError::bad_request(format!("invalid container name {rest:?}: {e}")))
}

/// The base URL clients reached this gateway at: `X-Forwarded-Proto`/`X-Forwarded-Host` from a
/// reverse proxy, else `Host` and whether this gateway serves TLS.
pub(crate) fn external_base(headers: &HeaderMap, tls: bool) -> Result<String, ShubError> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = first("x-forwarded-host")
        .or_else(|| first(header::HOST.as_str()))
        .ok_or_else(|| ShubError::bad_request("the request has no Host header"))?;
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    {
        return Err(ShubError::bad_request("invalid Host header"));
    }
    let scheme = match first("x-forwarded-proto") {
        Some("https") => "https",
        Some("http") => "http",
        _ if tls => "https",
        _ => "http",
    };
    Ok(format!("{scheme}://{host}"))
}

/// Decodes head manifests, skipping (and logging) any that do not decode.
pub(crate) fn decode_all(encoded: Vec<Vec<u8>>) -> Vec<Manifest> {
    encoded
        .into_iter()
        .filter_map(|b| match Manifest::decode(&b) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "a stored head manifest does not decode");
                None
            }
        })
        .collect()
}

fn digest_matches(m: &Manifest, d: &Digest) -> bool {
    match d {
        Digest::Sha256(h) => m.body.sha256 == *h,
        Digest::Cid(c) => m.body.root.as_ref() == Some(c) || m.cid() == *c,
        Digest::Legacy(_) => false,
    }
}

/// The live (not tombstoned) manifest `r` names: the tag's head, or with a digest the tag of
/// that name whose content matches.
async fn resolve<B: ShubBackend>(backend: &B, r: &Reference) -> Result<Manifest, ShubError> {
    let head = backend
        .manifest_for_tag(&r.collection, &r.name, &r.tag)
        .await?
        .and_then(|b| Manifest::decode(&b).ok())
        .filter(|m| !m.body.tombstone && m.body.root.is_some());
    match (&r.digest, head) {
        (None, Some(m)) => Ok(m),
        (None, None) => Err(ShubError::not_found()),
        (Some(d), Some(m)) if digest_matches(&m, d) => Ok(m),
        (Some(d), _) => {
            let prefix = format!("{}/{}", r.collection, r.name);
            decode_all(backend.tag_heads(&prefix).await?)
                .into_iter()
                .find(|m| !m.body.tombstone && m.body.root.is_some() && digest_matches(m, d))
                .ok_or_else(ShubError::not_found)
        }
    }
}

/// 403 unless `collection` is public or the request's HMAC `pull` signature covers it.
async fn check_pull<B: ShubBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    r: &Reference,
) -> Result<bool, ShubError> {
    if visibility::of_collection(&state.backend, &r.collection).await? == Visibility::Public {
        return Ok(false);
    }
    if let Err(e) = auth::authorize(
        &state.backend,
        headers,
        "pull",
        Right::Pull,
        (&r.collection, &r.name, &r.tag),
    )
    .await
    {
        let mut err = ShubError::from(e);
        let hint = visibility::OwnerHint::of(&state.backend, &r.collection).await;
        if err.status == StatusCode::FORBIDDEN {
            err.detail.push_str(&hint.to_string());
        }
        return Err(err);
    }
    Ok(true)
}

/// The image's download URL.
fn image_url(state: &AppStateRef<'_>, base: &str, m: &Manifest, private: bool) -> String {
    let cid = m.body.root.map(|c| c.to_string()).unwrap_or_default();
    let secret = if private {
        auth::download_secret(
            state.url_key,
            &cid,
            time::unix_now() + auth::URL_LIFETIME_SECS,
        )
    } else {
        PUBLIC_SECRET.to_owned()
    };
    format!("{base}/containers/{cid}/download/{secret}")
}

/// What [`image_url`] needs from the state, so listings can share it.
pub(crate) struct AppStateRef<'a> {
    url_key: &'a [u8; 32],
}

/// The manifest metadata a client may show: the SIF summary signed into the manifest at push
/// (architecture, labels, definition file, runscript, environment, help, and which of those
/// were shortened to fit), plus where the content is.
fn metadata_json(m: &Manifest, cid: &str) -> Value {
    use shubnet_protocol::sif as sifmeta;
    let md = &m.body.metadata;
    json!({
        "arch": md.arch,
        "labels": md.labels,
        "deffile": md.deffile,
        "runscript": md.runscript,
        "environment": md.environment,
        "help": sifmeta::help(md),
        "truncated": sifmeta::truncated(md),
        "media_type": m.body.media_type,
        "size": m.body.size,
        "root": m.body.root.map(|c| c.to_string()),
        "manifest": cid,
        "pushed_by": m.body.pushed_by,
    })
}

/// The shub/sregistry container JSON for a live manifest.
pub(crate) fn container_json(m: &Manifest, image: String) -> Value {
    let b = &m.body;
    let sha = hex::encode(b.sha256);
    let cid = m.cid().to_string();
    json!({
        "id": cid,
        "name": b.name,
        "image": image,
        "tag": b.tag,
        "branch": b.tag,
        "add_date": time::rfc3339(b.created),
        "metrics": {},
        "version": format!("sha256.{sha}"),
        "commit": sha,
        "frozen": b.frozen,
        "metadata": metadata_json(m, &cid),
        "collection": b.collection,
        "size": b.size,
        "uri": format!("{}/{}:{}", b.collection, b.name, b.tag),
    })
}

async fn container_get<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> Result<Response, ShubError> {
    if let Some(q) = rest.strip_prefix("search/") {
        return listing::container_search(&state, q).await;
    }
    let r = parse_container_path(&rest)?;
    let private = check_pull(&state, &headers, &r).await?;
    let base = external_base(&headers, state.config.tls)?;
    let refs = AppStateRef {
        url_key: &state.url_key,
    };
    if !private
        && r.digest.is_none()
        && let Some(bytes) = state
            .backend
            .manifest_for_tag(&r.collection, &r.name, &r.tag)
            .await?
    {
        // A public tag's head: served from the rendered cache while the head is unchanged.
        let key = r.tag_path();
        if let Some(body) = state.rendered.get(&key, &base, &bytes) {
            return Ok(json_body(body));
        }
        if let Ok(m) = Manifest::decode(&bytes)
            && !m.body.tombstone
            && m.body.root.is_some()
        {
            let image = image_url(&refs, &base, &m, false);
            let body = serde_json::to_vec(&container_json(&m, image))
                .map(bytes::Bytes::from)
                .map_err(|e| ShubError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            state.rendered.put(key, base, bytes, body.clone());
            return Ok(json_body(body));
        }
    }
    let m = resolve(&state.backend, &r).await?;
    let image = image_url(&refs, &base, &m, private);
    Ok(Json(container_json(&m, image)).into_response())
}

/// A JSON response from an already serialised body.
fn json_body(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn container_delete<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> Result<Response, ShubError> {
    let r = parse_container_path(&rest)?;
    if r.digest.is_some() {
        return Err(ShubError::bad_request(
            "delete a tag (collection/name:tag), not a digest",
        ));
    }
    let (info, spent) = auth::authorize_once(
        &state.backend,
        &state.hmac_seen,
        &headers,
        "delete",
        Right::Delete,
        (&r.collection, &r.name, &r.tag),
    )
    .await?;
    state
        .backend
        .delete_as(&r.tag_path(), &info.user)
        .await
        .map_err(|e| {
            if e.is_refusal() {
                ShubError::new(StatusCode::FORBIDDEN, e.to_string())
            } else {
                e.into()
            }
        })?;
    spent.keep();
    tracing::info!(reference = %r.tag_path(), user = %info.user, "deleted through the shub API");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn download<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    method: Method,
    headers: HeaderMap,
    Path((cid_text, secret)): Path<(String, String)>,
) -> Result<Response, Response> {
    let cid = shubnet_protocol::cid::parse(&cid_text)
        .map_err(|_| ShubError::not_found().into_response())?;
    if secret == PUBLIC_SECRET {
        // Content of a private collection needs a signed secret; public URLs are refused then.
        crate::visibility::may_read_content(&state, &HeaderMap::new(), &cid)
            .await
            .map_err(|_| {
                ShubError::new(StatusCode::FORBIDDEN, "this image is private").into_response()
            })?;
    } else if !auth::check_download_secret(
        &state.url_key,
        &cid.to_string(),
        &secret,
        time::unix_now(),
    ) {
        return Err(ShubError::not_found().into_response());
    }
    let route = if secret == PUBLIC_SECRET {
        caching::Route::Open
    } else {
        caching::Route::Signed
    };
    let caching = caching::decide(&state.backend, &headers, route, &cid).await;
    let naming = Naming {
        filename: Some(&format!("{cid}.sif")),
        download: true,
    };
    plain::file(
        &state.backend,
        cid,
        naming,
        &headers,
        method == Method::HEAD,
        caching,
    )
    .await
    .map_err(IntoResponse::into_response)
}
