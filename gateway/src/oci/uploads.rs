//! Blob upload sessions. A session feeds one [`crate::StoreBackend::add`] call through a
//! channel, so the bytes of every `PATCH` (streamed or chunked with `Content-Range`) go to disk
//! as they arrive and nothing is held whole in memory. The session hashes what it forwards;
//! the closing `PUT` compares that hash with the client's digest before the store's stream
//! ends, and a mismatch, a cancel or an expiry fails the stream so the store keeps nothing.
//!
//! The committed offset is what was forwarded: a dropped `PATCH` loses only its unsent tail,
//! and the client resumes from the `Range` the status request reports. A finished blob is
//! recorded through [`crate::UploadBackend`] and so expires like a library upload when no
//! manifest claims it.
//!
//! It must not publish: manifests do ([`super::manifests`]).

use super::blobs::{self, Located, record_key};
use super::error::{Code, OciError};
use super::synth::Digest;
use super::{OciBackend, Repo, set};
use crate::SharedState;
use crate::backend::AddOutcome;
use crate::tokens::Right;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha512};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The smallest chunk a client should send (except the last): the store's leaf size, so chunks
/// map onto whole leaves.
const CHUNK_MIN: u64 = 1024 * 1024;
/// Most sessions open at once; the oldest idle ones are cancelled beyond this.
const MAX_SESSIONS: usize = 1024;

type Shared = Arc<tokio::sync::Mutex<Session>>;

/// Upload sessions in progress, by id.
#[derive(Debug, Default)]
pub struct OciUploads {
    open: Mutex<HashMap<String, (Shared, Instant)>>,
}

impl OciUploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Shared, Instant)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Option<Shared> {
        let mut m = self.lock();
        let e = m.get_mut(id)?;
        e.1 = Instant::now();
        Some(e.0.clone())
    }

    fn remove(&self, id: &str) -> Option<Shared> {
        self.lock().remove(id).map(|e| e.0)
    }

    /// Removes sessions idle longer than `expiry` (and the oldest ones past the cap); their
    /// store calls fail so nothing of them is kept.
    fn sweep(&self, expiry: std::time::Duration) -> Vec<Shared> {
        let mut m = self.lock();
        let mut gone: Vec<String> = m
            .iter()
            .filter(|(_, (_, at))| at.elapsed() >= expiry)
            .map(|(k, _)| k.clone())
            .collect();
        if m.len() >= MAX_SESSIONS {
            let mut by_age: Vec<_> = m.iter().map(|(k, (_, at))| (*at, k.clone())).collect();
            by_age.sort();
            gone.extend(
                by_age
                    .into_iter()
                    .take(m.len() + 1 - MAX_SESSIONS)
                    .map(|e| e.1),
            );
        }
        gone.into_iter()
            .filter_map(|k| m.remove(&k).map(|e| e.0))
            .collect()
    }
}

/// One upload in progress.
#[derive(Debug)]
struct Session {
    repo: Repo,
    offset: u64,
    sha256: Sha256,
    sha512: Sha512,
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    store: Option<JoinHandle<Result<AddOutcome, crate::BackendError>>>,
}

impl Session {
    /// Fails the store's stream: it keeps nothing of this upload.
    async fn abort(&mut self, why: &str) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(io::Error::other(why.to_owned()))).await;
        }
        if let Some(h) = self.store.take() {
            let _ = h.await;
        }
    }

    /// Forwards a request body to the store, hashing it; the offset advances with every chunk
    /// forwarded, so a dropped connection keeps what arrived.
    async fn append(&mut self, body: Body, limit: u64) -> Result<(), OciError> {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                OciError::new(
                    Code::BlobUploadInvalid,
                    format!("the body ended early: {e}"),
                )
            })?;
            if self.offset.saturating_add(chunk.len() as u64) > limit {
                self.abort("upload too large").await;
                return Err(OciError::new(
                    Code::SizeInvalid,
                    format!("the blob exceeds this node's limit of {limit} bytes"),
                )
                .with_status(StatusCode::PAYLOAD_TOO_LARGE));
            }
            self.sha256.update(&chunk);
            self.sha512.update(&chunk);
            let len = chunk.len() as u64;
            let Some(tx) = &self.tx else {
                return Err(OciError::new(Code::BlobUploadUnknown, "the upload ended"));
            };
            if tx.send(Ok(chunk)).await.is_err() {
                return Err(self.store_failure().await);
            }
            self.offset += len;
        }
        Ok(())
    }

    /// The store call ended before the upload did: its error.
    async fn store_failure(&mut self) -> OciError {
        self.tx = None;
        match self.store.take() {
            Some(h) => match h.await {
                Ok(Err(e)) => e.into(),
                _ => OciError::new(Code::Internal, "the store stopped reading the upload"),
            },
            None => OciError::new(Code::BlobUploadUnknown, "the upload ended"),
        }
    }

    fn digest_like(&self, wanted: &Digest) -> Digest {
        match wanted {
            Digest::Sha256(_) => Digest::Sha256(self.sha256.clone().finalize().into()),
            Digest::Sha512(_) => Digest::Sha512(Box::new(self.sha512.clone().finalize().into())),
        }
    }
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Ids only need to be unique here; a clock-derived one still is.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = t.to_le_bytes();
    }
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn location(repo: &Repo, id: &str) -> String {
    format!("/v2/{}/blobs/uploads/{id}", repo.path())
}

/// The spec's `Range: 0-<last>` of what an upload holds (`0-0` before any byte, as the
/// reference registry answers).
fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn session_response(status: StatusCode, repo: &Repo, id: &str, offset: u64) -> Response {
    let mut r = status.into_response();
    set(&mut r, "location", &location(repo, id));
    set(&mut r, "range", &range_header(offset));
    set(&mut r, "docker-upload-uuid", id);
    set(&mut r, "oci-chunk-min-length", &CHUNK_MIN.to_string());
    set(&mut r, "content-length", "0");
    r
}

fn blob_created(repo: &Repo, digest: &Digest) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    set(
        &mut r,
        "location",
        &format!("/v2/{}/blobs/{digest}", repo.path()),
    );
    set(&mut r, "docker-content-digest", &digest.to_string());
    set(&mut r, "content-length", "0");
    r
}

/// Refuses an upload into a collection this node may not publish, before any byte is stored.
async fn check_namespace<B: OciBackend>(backend: &B, repo: &Repo) -> Result<(), OciError> {
    match backend.push_check(&format!("{}:latest", repo.path())).await {
        Ok(()) | Err(crate::BackendError::Frozen { .. }) => Ok(()),
        Err(e) if e.is_refusal() => Err(OciError::new(Code::Denied, e.to_string())),
        Err(e) => Err(e.into()),
    }
}

fn parse_digest(s: &str) -> Result<Digest, OciError> {
    Digest::parse(s)
        .ok_or_else(|| OciError::new(Code::DigestInvalid, format!("invalid digest {s:?}")))
}

#[derive(Debug, Deserialize)]
pub(crate) struct StartQuery {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
}

/// Opens a session whose store call is already running.
fn open<B: OciBackend>(state: &SharedState<B>, repo: &Repo) -> (String, Shared) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let backend = state.backend.clone();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let store = tokio::spawn(async move { backend.add(Box::pin(stream)).await });
    let s = Session {
        repo: repo.clone(),
        offset: 0,
        sha256: Sha256::new(),
        sha512: Sha512::new(),
        tx: Some(tx),
        store: Some(store),
    };
    let id = new_id();
    let shared = Arc::new(tokio::sync::Mutex::new(s));
    state
        .oci_uploads
        .lock()
        .insert(id.clone(), (shared.clone(), Instant::now()));
    (id, shared)
}

/// Ends a session: checks the digest, then lets the store finish, and records the blob.
async fn complete<B: OciBackend>(
    state: &SharedState<B>,
    s: &mut Session,
    digest: &Digest,
) -> Result<(), OciError> {
    let got = s.digest_like(digest);
    if got != *digest {
        s.abort("digest mismatch").await;
        return Err(OciError::new(
            Code::DigestInvalid,
            format!("the upload's digest is {got}, not {digest}"),
        ));
    }
    s.tx = None;
    let out = match s.store.take() {
        Some(h) => h
            .await
            .map_err(|_| OciError::new(Code::Internal, "the store task failed"))??,
        None => return Err(OciError::new(Code::BlobUploadUnknown, "the upload ended")),
    };
    let sha256 = Digest::Sha256(s.sha256.clone().finalize().into());
    for d in [digest.clone(), sha256] {
        state
            .backend
            .record_upload(&record_key(&s.repo, &d), &out.cid, out.size)
            .await?;
    }
    tracing::info!(repo = %s.repo.path(), %digest, root = %out.cid, size = out.size, "OCI blob stored");
    Ok(())
}

/// `POST /v2/<c>/<n>/blobs/uploads/`: a monolithic upload (`?digest=`), a mount (`?mount=`),
/// or a new session (202).
pub(crate) async fn start<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n)): Path<(String, String)>,
    Query(q): Query<StartQuery>,
    body: Body,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::require(&state, &headers, &repo, Right::Push).await?;
    check_namespace(&state.backend, &repo).await?;
    for s in state.oci_uploads.sweep(state.config.upload_expiry) {
        s.lock().await.abort("upload expired").await;
    }
    if let Some(m) = &q.mount
        && let Some(d) = Digest::parse(m)
        && let Some(found) = mount_source(&state, &headers, &repo, q.from.as_deref(), &d).await?
    {
        if let Located::Content { root, size } = found {
            state
                .backend
                .record_upload(&record_key(&repo, &d), &root, size)
                .await?;
        }
        return Ok(blob_created(&repo, &d));
    }
    let (id, shared) = open(&state, &repo);
    let mut s = shared.lock().await;
    if let Some(d) = &q.digest {
        let d = parse_digest(d)?;
        let result = async {
            s.append(body, state.config.max_upload_bytes).await?;
            complete(&state, &mut s, &d).await
        }
        .await;
        state.oci_uploads.remove(&id);
        if result.is_err() {
            s.abort("upload failed").await;
        }
        return result.map(|()| blob_created(&repo, &d));
    }
    Ok(session_response(StatusCode::ACCEPTED, &repo, &id, s.offset))
}

/// The blob a mount asks for, when the request may read it: in this repository, in `from`,
/// or (an anonymous mount without `from`) nowhere else.
async fn mount_source<B: OciBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    repo: &Repo,
    from: Option<&str>,
    d: &Digest,
) -> Result<Option<Located>, OciError> {
    if let Some(found) = blobs::find(&state.backend, repo, d).await? {
        return Ok(Some(found));
    }
    let Some((c, n)) = from.and_then(|f| f.split_once('/')) else {
        return Ok(None);
    };
    let Ok(src) = Repo::parse(c, n) else {
        return Ok(None);
    };
    if super::auth::may_pull(state, headers, &src).await.is_err() {
        return Ok(None);
    }
    blobs::find(&state.backend, &src, d).await
}

async fn session<B: OciBackend>(
    state: &SharedState<B>,
    repo: &Repo,
    id: &str,
) -> Result<Shared, OciError> {
    let s = state
        .oci_uploads
        .get(id)
        .ok_or_else(|| OciError::new(Code::BlobUploadUnknown, format!("no upload {id}")))?;
    if s.lock().await.repo != *repo {
        return Err(OciError::new(
            Code::BlobUploadUnknown,
            format!("no upload {id} in {}", repo.path()),
        ));
    }
    Ok(s)
}

/// `Content-Range: <start>-<end>` (with or without a `bytes ` prefix), checked against the
/// committed offset and the declared length; `Ok(())` when absent.
fn check_range(headers: &HeaderMap, offset: u64) -> Result<(), OciError> {
    let Some(v) = super::header_str(headers, header::CONTENT_RANGE) else {
        return Ok(());
    };
    let text = v.trim().trim_start_matches("bytes").trim();
    let text = text.split('/').next().unwrap_or("");
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)));
    let invalid = |why: String| {
        OciError::new(Code::RangeInvalid, why).with_header(header::RANGE, &range_header(offset))
    };
    let Some((start, end)) = parsed.filter(|(a, b)| a <= b) else {
        return Err(invalid(format!("invalid Content-Range {v:?}")));
    };
    if start != offset {
        return Err(invalid(format!(
            "the chunk starts at {start}, but the upload holds {offset} bytes"
        )));
    }
    if let Some(len) = crate::declared_length(headers)
        && len != end - start + 1
    {
        return Err(invalid(format!(
            "Content-Range {start}-{end} does not match Content-Length {len}"
        )));
    }
    Ok(())
}

/// `PATCH /v2/<c>/<n>/blobs/uploads/<id>`: a chunk (with `Content-Range`) or a stream.
pub(crate) async fn patch<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, id)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::require(&state, &headers, &repo, Right::Push).await?;
    let shared = session(&state, &repo, &id).await?;
    let mut s = shared.lock().await;
    check_range(&headers, s.offset).map_err(|e| with_location(e, &repo, &id))?;
    s.append(body, state.config.max_upload_bytes).await?;
    Ok(session_response(StatusCode::ACCEPTED, &repo, &id, s.offset))
}

fn with_location(e: OciError, repo: &Repo, id: &str) -> OciError {
    e.with_header(header::LOCATION, &location(repo, id))
}

#[derive(Debug, Deserialize)]
pub(crate) struct FinishQuery {
    digest: Option<String>,
}

/// `PUT /v2/<c>/<n>/blobs/uploads/<id>?digest=`: the last chunk, if any, then the blob.
pub(crate) async fn finish<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, id)): Path<(String, String, String)>,
    Query(q): Query<FinishQuery>,
    body: Body,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::require(&state, &headers, &repo, Right::Push).await?;
    let d = parse_digest(q.digest.as_deref().unwrap_or(""))?;
    let shared = session(&state, &repo, &id).await?;
    let mut s = shared.lock().await;
    check_range(&headers, s.offset).map_err(|e| with_location(e, &repo, &id))?;
    s.append(body, state.config.max_upload_bytes).await?;
    state.oci_uploads.remove(&id);
    complete(&state, &mut s, &d).await?;
    Ok(blob_created(&repo, &d))
}

/// `GET /v2/<c>/<n>/blobs/uploads/<id>`: how much is committed, to resume from.
pub(crate) async fn status<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, id)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::require(&state, &headers, &repo, Right::Push).await?;
    let shared = session(&state, &repo, &id).await?;
    let offset = shared.lock().await.offset;
    Ok(session_response(StatusCode::NO_CONTENT, &repo, &id, offset))
}

/// `DELETE /v2/<c>/<n>/blobs/uploads/<id>`: cancels; the store keeps nothing.
pub(crate) async fn cancel<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, id)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::require(&state, &headers, &repo, Right::Push).await?;
    let shared = session(&state, &repo, &id).await?;
    state.oci_uploads.remove(&id);
    shared.lock().await.abort("upload cancelled").await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
