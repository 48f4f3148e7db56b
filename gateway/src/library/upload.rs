//! Library uploads and tags (client-protocols.md §2.3). The bytes go to [`Backend::add`]
//! through [`verified`], which fails the stream (so the store keeps nothing) when they exceed
//! the limit or do not hash to the sha256 the image id declares. A tag call then publishes the
//! signed manifest on behalf of the token's user.
//!
//! It must not keep bytes that failed the hash check, nor sign anything: the backend publishes.

use super::ids::{self, ImageId};
use super::{LibraryBackend, LibraryError, find_by_hash, require};
use crate::shub::{auth, time};
use crate::tokens::{Right, TokenInfo};
use crate::{ByteStream, SharedState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use shubnet_protocol::Cid;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How long a v2 upload URL stays valid, in seconds.
const UPLOAD_URL_LIFETIME_SECS: u64 = 24 * 3600;
/// Most uploads remembered between the upload and the tag call.
const MAX_PENDING: usize = 10_000;

/// An upload remembered in memory: root, size, and when it was stored.
type Entry = (Cid, u64, std::time::Instant);

/// Uploaded content waiting for its tag call: image id → (root, size). A cache in front of
/// the backend's record ([`Backend::record_upload`]), which survives restarts; entries expire
/// with the same bound as the node's records (`GatewayConfig::upload_expiry`), so the cache
/// never names content the node has already removed.
#[derive(Debug, Default)]
pub struct Uploads {
    done: Mutex<HashMap<String, Entry>>,
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, id: String, root: Cid, size: u64) {
        let mut m = self.lock();
        if m.len() >= MAX_PENDING {
            m.clear();
        }
        m.insert(id, (root, size, std::time::Instant::now()));
    }

    fn get(&self, id: &str, expiry: std::time::Duration) -> Option<(Cid, u64)> {
        let mut m = self.lock();
        match m.get(id) {
            Some(&(root, size, at)) if at.elapsed() < expiry => Some((root, size)),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }
}

/// The stored upload for image `id`: from memory, else from the backend's record.
async fn lookup<B: LibraryBackend>(
    state: &SharedState<B>,
    id: &str,
) -> Result<Option<(Cid, u64)>, LibraryError> {
    let cached = state.uploads.get(id, state.config.upload_expiry);
    match cached {
        Some(v) => Ok(Some(v)),
        None => Ok(state.backend.recall_upload(id).await?),
    }
}

/// Set when a [`verified`] stream failed because the bytes did not hash to the declared sha256,
/// so the store's resulting refusal is reported as the client's mistake (400) from this flag
/// rather than from the error's text.
#[derive(Debug, Clone, Default)]
pub(crate) struct HashCheck(Arc<AtomicBool>);

impl HashCheck {
    fn mismatched(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `body`, failing at the end unless it hashes to `sha256`, and as soon as it passes `limit`.
pub(crate) fn verified(body: Body, sha256: [u8; 32], limit: u64) -> (ByteStream, HashCheck) {
    verified_stream(
        body.into_data_stream().map(|r| r.map_err(io::Error::other)),
        sha256,
        limit,
    )
}

/// [`verified`] for any stream of chunks.
pub(super) fn verified_stream(
    inner: impl futures::Stream<Item = io::Result<bytes::Bytes>> + Send + Unpin + 'static,
    sha256: [u8; 32],
    limit: u64,
) -> (ByteStream, HashCheck) {
    let check = HashCheck::default();
    let flag = check.0.clone();
    struct St<S> {
        inner: S,
        hasher: Option<Sha256>,
        seen: u64,
    }
    let st = St {
        inner,
        hasher: Some(Sha256::new()),
        seen: 0,
    };
    let stream = futures::stream::unfold(st, move |mut st| {
        let flag = flag.clone();
        async move {
            let hasher = st.hasher.as_mut()?;
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    st.seen = st.seen.saturating_add(chunk.len() as u64);
                    if st.seen > limit {
                        st.hasher = None;
                        let e = io::Error::new(
                            io::ErrorKind::FileTooLarge,
                            format!("upload exceeds the limit of {limit} bytes"),
                        );
                        return Some((Err(e), st));
                    }
                    hasher.update(&chunk);
                    Some((Ok(chunk), st))
                }
                Some(Err(e)) => {
                    st.hasher = None;
                    Some((Err(e), st))
                }
                None => {
                    let got: [u8; 32] = st.hasher.take()?.finalize().into();
                    if got == sha256 {
                        None
                    } else {
                        flag.store(true, Ordering::Release);
                        let e = io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "the upload's sha256 is {} but the image declares {}",
                                hex::encode(got),
                                hex::encode(sha256)
                            ),
                        );
                        Some((Err(e), st))
                    }
                }
            }
        }
    });
    (Box::pin(stream), check)
}

pub(super) fn image_id(id: &str) -> Result<ImageId, LibraryError> {
    ImageId::parse(id).ok_or_else(|| LibraryError::not_found(format!("unknown image id {id:?}")))
}

/// Refuses an upload into a collection this node may not publish, before any byte is stored
/// (the tag call would refuse it anyway, but the content would stay behind). A frozen `latest`
/// is no reason to refuse the bytes: the tag call decides about tags.
pub(super) async fn check_namespace<B: LibraryBackend>(
    backend: &B,
    id: &ImageId,
) -> Result<(), LibraryError> {
    match backend
        .push_check(&format!("{}/{}:latest", id.collection, id.name))
        .await
    {
        Ok(()) | Err(crate::BackendError::Frozen { .. }) => Ok(()),
        Err(e) if e.is_refusal() => Err(LibraryError::new(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Stores the body of an upload for `id`.
async fn receive<B: LibraryBackend>(
    state: &SharedState<B>,
    id: &ImageId,
    body: Body,
) -> Result<(), LibraryError> {
    check_namespace(&state.backend, id).await?;
    let (stream, check) = verified(body, id.sha256, state.config.max_upload_bytes);
    let out = state
        .backend
        .add(stream)
        .await
        .map_err(|e| upload_error(e, &check))?;
    remember(state, id, &out).await
}

/// A failed upload's error: the store's refusal of bytes that did not hash to the image id is
/// the client's (400).
pub(super) fn upload_error(e: crate::BackendError, check: &HashCheck) -> LibraryError {
    match e {
        crate::BackendError::Invalid(m) if check.mismatched() => LibraryError::bad_request(m),
        other => other.into(),
    }
}

/// Records stored content for the tag call, in memory and in the backend.
pub(super) async fn remember<B: LibraryBackend>(
    state: &SharedState<B>,
    id: &ImageId,
    out: &crate::backend::AddOutcome,
) -> Result<(), LibraryError> {
    let root = out.cid;
    let key = id.to_string();
    state.backend.record_upload(&key, &root, out.size).await?;
    state.uploads.insert(key, root, out.size);
    tracing::info!(image = %id, %root, size = out.size, "library upload stored");
    Ok(())
}

/// The checks before a v2 upload (single or multipart) may start: a valid image id, the push
/// right, a namespace this node publishes, and a declared size within the limit.
pub(super) async fn begin<B: LibraryBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    id: &str,
    filesize: Option<u64>,
) -> Result<(ImageId, TokenInfo), LibraryError> {
    let image = image_id(id)?;
    let token = require(&state.backend, headers, &image.collection, Right::Push).await?;
    check_namespace(&state.backend, &image).await?;
    let limit = state.config.max_upload_bytes;
    if filesize.is_some_and(|s| s > limit) {
        return Err(LibraryError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload exceeds the {limit}-byte limit"),
        ));
    }
    Ok((image, token))
}

/// 403 unless `secret` is this gateway's unexpired signature of `purpose` (the URLs it hands
/// out for credential-less PUTs).
pub(super) fn check_url_secret(
    key: &[u8; 32],
    purpose: &str,
    secret: &str,
    what: &str,
) -> Result<(), LibraryError> {
    if auth::check_download_secret(key, purpose, secret, time::unix_now()) {
        Ok(())
    } else {
        Err(LibraryError::new(
            StatusCode::FORBIDDEN,
            format!("invalid or expired {what} URL"),
        ))
    }
}

/// The answer to a completed upload (`_complete`, `_multipart_complete`).
pub(super) fn completed(image: &ImageId) -> Response {
    Json(json!({ "data": {
        "quota": { "quotaTotal": 0, "quotaUsage": 0 },
        "containerUrl": format!("{}/{}", image.collection, image.name),
    } }))
    .into_response()
}

/// `POST /v1/imagefile/<imageID>`: the raw SIF as the body.
pub(super) async fn v1_raw<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, LibraryError> {
    let id = image_id(&id)?;
    require(&state.backend, &headers, &id.collection, Right::Push).await?;
    let limit = state.config.max_upload_bytes;
    if crate::declared_length(&headers).is_some_and(|len| len > limit) {
        return Err(LibraryError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload exceeds the {limit}-byte limit"),
        ));
    }
    receive(&state, &id, body).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /v2/imagefile/<id>` body.
#[derive(Debug, Deserialize)]
pub(super) struct UploadRequest {
    filesize: Option<u64>,
}

fn upload_secret(key: &[u8; 32], id: &str, expires: u64) -> String {
    auth::download_secret(key, &format!("upload:{id}"), expires)
}

/// `POST /v2/imagefile/<id>`: answers the URL the client PUTs the bytes to. It carries a signed
/// secret because the client sends no credentials with that PUT.
pub(super) async fn v2_request<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, LibraryError> {
    let req: UploadRequest = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid JSON: {e}")))?;
    begin(&state, &headers, &id, req.filesize).await?;
    let base = crate::shub::external_base(&headers, state.config.tls)
        .map_err(|_| LibraryError::bad_request("invalid Host header"))?;
    let secret = upload_secret(
        &state.url_key,
        &id,
        time::unix_now() + UPLOAD_URL_LIFETIME_SECS,
    );
    Ok(
        Json(json!({ "data": { "uploadURL": format!("{base}/v2/upload/{id}/{secret}") } }))
            .into_response(),
    )
}

/// `PUT /v2/upload/<id>/<secret>`: the bytes.
pub(super) async fn v2_put<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    Path((id, secret)): Path<(String, String)>,
    body: Body,
) -> Result<Response, LibraryError> {
    check_url_secret(&state.url_key, &format!("upload:{id}"), &secret, "upload")?;
    let image = image_id(&id)?;
    receive(&state, &image, body).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v2/imagefile/<id>/_complete`.
pub(super) async fn v2_complete<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, LibraryError> {
    let image = image_id(&id)?;
    require(&state.backend, &headers, &image.collection, Right::Push).await?;
    if lookup(&state, &id).await?.is_none() {
        return Err(LibraryError::not_found(format!("no upload for image {id}")));
    }
    Ok(completed(&image))
}

/// tag → image id of a container's live tags.
async fn tag_map<B: LibraryBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    container: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, LibraryError> {
    let (c, n) = ids::parse_container_id(container)
        .ok_or_else(|| LibraryError::not_found(format!("unknown container {container:?}")))?;
    super::may_pull(&state.backend, headers, &c).await?;
    let heads = crate::shub::decode_all(state.backend.tag_heads(&format!("{c}/{n}")).await?);
    Ok(heads
        .into_iter()
        .filter(|m| !m.body.tombstone && m.body.name == n)
        .map(|m| {
            let id = ImageId {
                collection: c.clone(),
                name: n.clone(),
                sha256: m.body.sha256,
            };
            (m.body.tag, json!(id.to_string()))
        })
        .collect())
}

pub(super) async fn tags_v1<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, LibraryError> {
    let map = tag_map(&state, &headers, &id).await?;
    Ok(Json(json!({ "data": map })).into_response())
}

pub(super) async fn tags_v2<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, LibraryError> {
    let map = tag_map(&state, &headers, &id).await?;
    Ok(Json(json!({ "data": { "amd64": map } })).into_response())
}

/// The body of a tag call (`Arch` only in v2).
#[derive(Debug, Deserialize)]
pub(super) struct TagRequest {
    #[serde(rename = "Tag")]
    tag: String,
    #[serde(rename = "ImageID")]
    image_id: String,
}

/// Parses a tag call's body; clients send it without a JSON content type.
fn tag_request(body: &[u8]) -> Result<TagRequest, LibraryError> {
    serde_json::from_slice(body)
        .map_err(|e| LibraryError::bad_request(format!("expected {{Tag, ImageID}}: {e}")))
}

/// Publishes `tag` → the image: signs a manifest for the uploaded (or already published)
/// content on behalf of the token's user.
async fn set_tag<B: LibraryBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    container: &str,
    req: TagRequest,
) -> Result<Response, LibraryError> {
    let image = image_id(&req.image_id)?;
    if ids::container_id(&image.collection, &image.name) != container {
        return Err(LibraryError::bad_request(
            "the image does not belong to this container",
        ));
    }
    let r = shubnet_protocol::reference::Reference::new(&image.collection, &image.name, &req.tag)
        .map_err(|e| LibraryError::bad_request(format!("invalid tag: {e}")))?;
    let info = require(&state.backend, headers, &r.collection, Right::Push).await?;
    let (root, size) = match lookup(state, &req.image_id).await? {
        Some(v) => v,
        None => {
            let m = find_by_hash(
                &state.backend,
                &image.collection,
                &image.name,
                &image.sha256,
            )
            .await?
            .ok_or_else(|| LibraryError::not_found("the image has not been uploaded"))?;
            let root = m
                .body
                .root
                .ok_or_else(|| LibraryError::not_found("the image has no content"))?;
            (root, m.body.size)
        }
    };
    // The content is already stored; publishing re-reads it through the store, which
    // recognises the same root and only signs the manifest.
    let body = state.backend.read_file(&root, 0, size).await?;
    let out = state
        .backend
        .push_as(&r.tag_path(), false, &info.user, body)
        .await
        .map_err(|e| {
            if e.is_refusal() {
                LibraryError::new(StatusCode::FORBIDDEN, e.to_string())
            } else {
                e.into()
            }
        })?;
    tracing::info!(reference = %out.reference, user = %info.user, "tagged through the library API");
    // A tag references the content now: it no longer waits to expire.
    state.uploads.lock().remove(&req.image_id);
    if let Err(e) = state.backend.forget_upload(&req.image_id).await {
        tracing::warn!(image = %req.image_id, error = %e, "could not drop the upload record");
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /v1/tags/<id>` and `POST /v2/tags/<id>`: the two versions take the same body.
pub(super) async fn tag<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, LibraryError> {
    set_tag(&state, &headers, &id, tag_request(&body)?).await
}
