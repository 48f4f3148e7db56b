//! The v2 multipart upload (client-protocols.md §2.3), streamed: starting the upload starts one
//! [`Backend::add`] fed by a channel, each part's PUT forwards its body into that channel, and
//! completing closes it. Parts must arrive in order (every library client sends them one after
//! the other), so nothing is ever buffered beyond the channel. The whole file is checked against
//! the image id's sha256 as in the single-part upload; an abort, an out-of-order part or a
//! client that goes away fails the stream, and the store keeps nothing.
//!
//! Sessions are bounded: at most [`MAX_SESSIONS`] in all and [`MAX_SESSIONS_PER_TOKEN`] per
//! token, so one token cannot take every slot; a session with no part in flight for the
//! body-idle timeout is discarded by its watchdog; revoking a token discards its sessions
//! ([`Sessions::drop_token`]). A discarded session fails its store stream, which removes the
//! partial file.
//!
//! It must not hold parts in memory or write to disk itself: the bytes go to the backend's add
//! stream.

use super::ids::ImageId;
use super::upload::{begin, check_url_secret, completed, image_id, upload_error, verified_stream};
use super::{LibraryBackend, LibraryError, require};
use crate::backend::AddOutcome;
use crate::shub::{auth, time};
use crate::tokens::Right;
use crate::{AppState, SharedState};
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
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Part size offered to clients (S3's minimum is 5 MiB; larger parts mean fewer requests).
pub const PART_SIZE: u64 = 64 * 1024 * 1024;
/// Chunks in flight between a part's request and the store.
const CHANNEL_DEPTH: usize = 8;
/// Most multipart uploads in progress at once.
const MAX_SESSIONS: usize = 64;
/// Most multipart uploads in progress for one token: a client uploads one image at a time, a
/// few in parallel at most, and this leaves slots for everyone else.
const MAX_SESSIONS_PER_TOKEN: usize = 4;

struct Session {
    image: ImageId,
    /// The id of the token that started it; its revocation ends the session.
    token: String,
    next_part: u64,
    total_parts: u64,
    /// A part's body is streaming: the body-idle timeout of that request covers it.
    part_in_flight: bool,
    /// When the last part ended, or the session started.
    last_active: Instant,
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

    fn idle_for(&self, idle: Duration) -> bool {
        !self.part_in_flight && self.last_active.elapsed() >= idle
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

    /// Discards every session started with token `id`, with its partial file. Called when the
    /// token is revoked, so a revoked token's uploads neither continue nor hold slots.
    pub async fn drop_token(&self, id: &str) {
        let dropped: Vec<(String, Session)> = {
            let mut map = self.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, s)| s.token == id)
                .map(|(uid, _)| uid.clone())
                .collect();
            ids.into_iter()
                .filter_map(|uid| map.remove(&uid).map(|s| (uid, s)))
                .collect()
        };
        for (uid, s) in dropped {
            tracing::info!(upload = %uid, token = %id, "multipart upload dropped: its token was revoked");
            s.discard("the token was revoked").await;
        }
    }

    /// Removes `uid` if it has been idle for `idle`; `None` once the session is gone.
    fn take_if_idle(&self, uid: &str, idle: Duration) -> Option<Option<Session>> {
        let mut map = self.lock();
        let s = map.get(uid)?;
        Some(if s.idle_for(idle) {
            map.remove(uid)
        } else {
            None
        })
    }
}

/// Marks the end of a part's request however it ends (a client that goes away drops the
/// handler mid-body), so the idle clock of the session starts again.
struct PartInFlight<'a> {
    sessions: &'a Sessions,
    uid: &'a str,
}

impl Drop for PartInFlight<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.sessions.lock().get_mut(self.uid) {
            s.part_in_flight = false;
            s.last_active = Instant::now();
        }
    }
}

/// Ends session `uid` once it has had no part in flight for `idle`; stops when the session
/// ends another way or the gateway is gone.
fn watch<B: Send + Sync + 'static>(state: Weak<AppState<B>>, uid: String, idle: Duration) {
    let tick = (idle / 4).max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            let Some(state) = state.upgrade() else { return };
            match state.multipart.take_if_idle(&uid, idle) {
                None => return,
                Some(None) => {}
                Some(Some(s)) => {
                    tracing::info!(upload = %uid, idle_secs = idle.as_secs_f64(), "multipart upload expired: no part arrived within the body-idle timeout");
                    s.discard("the upload was idle too long").await;
                    return;
                }
            }
        }
    });
}

/// Why one more session for `token` would exceed a cap, if it would.
fn over_cap(map: &HashMap<String, Session>, token: &str) -> Option<LibraryError> {
    if map.values().filter(|s| s.token == token).count() >= MAX_SESSIONS_PER_TOKEN {
        return Some(LibraryError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this token already has {MAX_SESSIONS_PER_TOKEN} uploads in progress; \
                 complete or abort one first"
            ),
        ));
    }
    (map.len() >= MAX_SESSIONS).then(|| {
        LibraryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many uploads in progress; try again later",
        )
    })
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
    let (image, token) = begin(&state, &headers, &id, Some(req.filesize)).await?;
    let limit = state.config.max_upload_bytes;
    if let Some(e) = over_cap(&state.multipart.lock(), &token.id) {
        return Err(e);
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
    let session = Session {
        image,
        token: token.id,
        next_part: 1,
        total_parts,
        part_in_flight: false,
        last_active: Instant::now(),
        tx,
        store,
    };
    // Checked again under the lock of the insert, so concurrent starts respect the caps.
    let refused = {
        let mut map = state.multipart.lock();
        match over_cap(&map, &session.token) {
            Some(e) => Some((e, session)),
            None => {
                map.insert(uid.clone(), session);
                None
            }
        }
    };
    if let Some((e, session)) = refused {
        session.discard("too many uploads in progress").await;
        return Err(e);
    }
    watch(
        std::sync::Arc::downgrade(&state),
        uid.clone(),
        state.config.timeouts.body_idle,
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
        if part != s.next_part || part > s.total_parts || s.part_in_flight {
            None
        } else {
            s.next_part += 1;
            s.part_in_flight = true;
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
    let in_flight = PartInFlight {
        sessions: &state.multipart,
        uid: &uid,
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
                drop(in_flight);
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
    drop(in_flight);
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
