//! The v2 multipart upload (client-protocols.md §2.3), streamed: starting the upload starts one
//! [`Backend::add`] fed by a channel, each part's PUT forwards its body into that channel, and
//! completing closes it. Parts must arrive in order (every library client sends them one after
//! the other), so nothing is ever buffered beyond the channel. The whole file is checked against
//! the image id's sha256 as in the single-part upload; an abort, an out-of-order part or a
//! client that goes away fails the stream, and the store keeps nothing.
//!
//! It must not hold parts in memory or write to disk itself: the bytes go to the backend's add
//! stream.

use super::ids::ImageId;
use super::upload::{begin, check_url_secret, completed, image_id, upload_error, verified_stream};
use super::{LibraryBackend, LibraryError, require};
use crate::SharedState;
use crate::backend::AddOutcome;
use crate::shub::{auth, time};
use crate::tokens::Right;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Part size offered to clients (S3's minimum is 5 MiB; larger parts mean fewer requests).
pub const PART_SIZE: u64 = 64 * 1024 * 1024;
/// Chunks in flight between a part's request and the store.
const CHANNEL_DEPTH: usize = 8;
/// Most multipart uploads in progress at once.
const MAX_SESSIONS: usize = 64;

struct Session {
    image: ImageId,
    next_part: u64,
    total_parts: u64,
    tx: mpsc::Sender<io::Result<Bytes>>,
    store: JoinHandle<Result<AddOutcome, LibraryError>>,
}

impl Session {
    /// Fails the store's stream so it keeps nothing, and waits until the store has let go.
    async fn discard(self, why: &str) {
        let _ = self.tx.send(Err(io::Error::other(why.to_owned()))).await;
        drop(self.tx);
        let _ = self.store.await;
    }
}

/// Multipart uploads in progress, by upload id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn upload_id() -> String {
    let mut b = [0u8; 16];
    // Without randomness the id is still unique per process (it is no secret: part URLs are
    // signed separately).
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

#[derive(Debug, Deserialize)]
pub(super) struct Start {
    filesize: u64,
}

/// `POST /v2/imagefile/<id>/_multipart`.
pub(super) async fn start<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, LibraryError> {
    let req: Start = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("expected {{filesize}}: {e}")))?;
    let image = begin(&state, &headers, &id, Some(req.filesize)).await?;
    let limit = state.config.max_upload_bytes;
    if state.multipart.lock().len() >= MAX_SESSIONS {
        return Err(LibraryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many uploads in progress; try again later",
        ));
    }
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let chunks = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let (stream, check) = verified_stream(chunks, image.sha256, limit);
    let backend = state.backend.clone();
    let store = tokio::spawn(async move {
        backend
            .add(stream)
            .await
            .map_err(|e| upload_error(e, &check))
    });
    let total_parts = req.filesize.div_ceil(PART_SIZE).max(1);
    let uid = upload_id();
    tracing::info!(image = %image, upload = %uid, parts = total_parts, "multipart upload started");
    state.multipart.lock().insert(
        uid.clone(),
        Session {
            image,
            next_part: 1,
            total_parts,
            tx,
            store,
        },
    );
    Ok(Json(json!({ "data": {
        "uploadID": uid, "totalParts": total_parts, "partSize": PART_SIZE,
        "options": { "s3compliant": "false" },
    } }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct PartRequest {
    #[serde(rename = "uploadID")]
    upload_id: String,
    #[serde(rename = "partNumber")]
    part_number: u64,
}

/// The image a multipart call names, once the caller may push to its collection.
async fn push_target<B: LibraryBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    id: &str,
) -> Result<ImageId, LibraryError> {
    let image = image_id(id)?;
    require(&state.backend, headers, &image.collection, Right::Push).await?;
    Ok(image)
}

fn part_secret(key: &[u8; 32], uid: &str, part: u64, expires: u64) -> String {
    auth::download_secret(key, &format!("part:{uid}:{part}"), expires)
}

/// `PUT /v2/imagefile/<id>/_multipart`: the URL for one part.
pub(super) async fn part_url<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, LibraryError> {
    push_target(&state, &headers, &id).await?;
    let req: PartRequest = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid part request: {e}")))?;
    if !state.multipart.lock().contains_key(&req.upload_id) {
        return Err(LibraryError::not_found("no such upload"));
    }
    let base = crate::shub::external_base(&headers, state.config.tls)
        .map_err(|_| LibraryError::bad_request("invalid Host header"))?;
    let secret = part_secret(
        &state.url_key,
        &req.upload_id,
        req.part_number,
        time::unix_now() + 24 * 3600,
    );
    let url = format!(
        "{base}/v2/part/{}/{}/{secret}",
        req.upload_id, req.part_number
    );
    Ok(Json(json!({ "data": { "presignedURL": url } })).into_response())
}

/// Ends a session with an error so the store discards what it received.
async fn fail(state_sessions: &Sessions, uid: &str, why: &str) {
    let s = state_sessions.lock().remove(uid);
    if let Some(s) = s {
        s.discard(why).await;
    }
}

/// `PUT /v2/part/<uploadID>/<n>/<secret>`: one part's bytes, forwarded to the store.
pub(super) async fn part_put<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    Path((uid, part, secret)): Path<(String, u64, String)>,
    body: Body,
) -> Result<Response, LibraryError> {
    check_url_secret(
        &state.url_key,
        &format!("part:{uid}:{part}"),
        &secret,
        "part",
    )?;
    let tx = {
        let mut map = state.multipart.lock();
        let s = map
            .get_mut(&uid)
            .ok_or_else(|| LibraryError::not_found("no such upload"))?;
        if part != s.next_part || part > s.total_parts {
            None
        } else {
            s.next_part += 1;
            Some(s.tx.clone())
        }
    };
    let Some(tx) = tx else {
        fail(&state.multipart, &uid, "parts out of order").await;
        return Err(LibraryError::new(
            StatusCode::CONFLICT,
            "parts must be uploaded in order; the upload was aborted",
        ));
    };
    let mut data = body.into_data_stream();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    while let Some(chunk) = data.next().await {
        match chunk {
            Ok(c) => {
                sha2::Digest::update(&mut hasher, &c);
                if tx.send(Ok(c)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                drop(tx);
                fail(
                    &state.multipart,
                    &uid,
                    &format!("part {part} broke off: {e}"),
                )
                .await;
                return Err(LibraryError::bad_request(format!(
                    "part {part} broke off; the upload was aborted"
                )));
            }
        }
    }
    let etag = hex::encode(sha2::Digest::finalize(hasher));
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `PUT /v2/imagefile/<id>/_multipart_complete`.
pub(super) async fn complete<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, LibraryError> {
    let image = push_target(&state, &headers, &id).await?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| LibraryError::bad_request(format!("invalid JSON: {e}")))?;
    let uid = v["uploadID"].as_str().unwrap_or_default().to_owned();
    let s = state
        .multipart
        .lock()
        .remove(&uid)
        .ok_or_else(|| LibraryError::not_found("no such upload"))?;
    if s.image != image {
        let _ = s.tx.send(Err(io::Error::other("wrong image"))).await;
        return Err(LibraryError::bad_request(
            "the upload belongs to another image",
        ));
    }
    if s.next_part <= s.total_parts {
        let (sent, total) = (s.next_part - 1, s.total_parts);
        s.discard("parts missing").await;
        return Err(LibraryError::bad_request(format!(
            "only {sent} of {total} parts were uploaded; the upload was aborted"
        )));
    }
    drop(s.tx);
    let out = s
        .store
        .await
        .map_err(|e| LibraryError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    super::upload::remember(&state, &image, &out).await?;
    Ok(completed(&image))
}

/// `PUT /v2/imagefile/<id>/_multipart_abort`.
pub(super) async fn abort<B: LibraryBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, LibraryError> {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    push_target(&state, &headers, &id).await?;
    if let Some(uid) = v["uploadID"].as_str() {
        fail(&state.multipart, uid, "aborted by the client").await;
    }
    Ok(StatusCode::OK.into_response())
}
