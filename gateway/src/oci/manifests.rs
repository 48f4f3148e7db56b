//! Manifests, tags and the catalog. A tag's OCI manifest is derived from its signed shubnet
//! manifest ([`super::synth`]); a manifest `PUT` of a SIF artifact publishes a signed manifest
//! that carries the client's exact bytes, so every member serves them byte-identical.
//!
//! Only SIF artifacts (one layer of Apptainer's SIF media type) can be pushed: a shubnet
//! manifest names one file. It must not decide privacy (`crate::visibility` does, through
//! [`super::auth`]).

use super::blobs::{self, Located, record_key};
use super::error::{Code, OciError};
use super::synth::{self, Digest};
use super::{MAX_MANIFEST_BYTES, OciBackend, Repo, header_str, set};
use crate::SharedState;
use crate::tokens::Right;
use crate::visibility::Memo;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use shubnet_protocol::manifest::oci::{OCI_KEY, OciRecord};
use shubnet_protocol::manifest::{MEDIA_TYPE_SIF, Manifest};
use shubnet_protocol::reference;
use std::collections::{BTreeMap, BTreeSet};

/// Largest OCI manifest plus config a SIF artifact may carry: they travel inside the signed
/// manifest, which has its own size cap.
const MAX_RECORD_BYTES: usize = 32 * 1024;

/// A tag or a digest.
enum Ref {
    Tag(String),
    Digest(Digest),
}

fn parse_ref(r: &str) -> Result<Ref, OciError> {
    if r.contains(':') {
        return Digest::parse(r)
            .map(Ref::Digest)
            .ok_or_else(|| OciError::new(Code::DigestInvalid, format!("invalid digest {r:?}")));
    }
    reference::validate_tag(r)
        .map_err(|e| OciError::new(Code::ManifestInvalid, format!("invalid tag {r:?}: {e}")))?;
    Ok(Ref::Tag(r.to_owned()))
}

/// The live head manifests of a repository.
async fn heads<B: OciBackend>(backend: &B, repo: &Repo) -> Result<Vec<Manifest>, OciError> {
    Ok(
        crate::shub::decode_all(backend.tag_heads(&repo.path()).await?)
            .into_iter()
            .filter(|m| !m.body.tombstone && m.body.name == repo.name)
            .collect(),
    )
}

async fn resolve<B: OciBackend>(
    backend: &B,
    repo: &Repo,
    r: &Ref,
) -> Result<Option<Manifest>, OciError> {
    match r {
        Ref::Tag(t) => {
            let Some(raw) = backend
                .manifest_for_tag(&repo.collection, &repo.name, t)
                .await?
            else {
                return Ok(None);
            };
            let m = Manifest::decode(&raw).map_err(|e| {
                OciError::from(crate::BackendError::Internal(format!(
                    "stored manifest does not decode: {e}"
                )))
            })?;
            Ok((!m.body.tombstone).then_some(m))
        }
        Ref::Digest(d) => Ok(heads(backend, repo)
            .await?
            .into_iter()
            .find(|m| d.of_same_kind(&synth::manifest_bytes(m)) == *d)),
    }
}

/// The media type a manifest's JSON declares, else OCI's.
fn declared_type(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| synth::OCI_MANIFEST.to_owned())
}

/// `GET`/`HEAD /v2/<c>/<n>/manifests/<tag or digest>`.
pub(crate) async fn get<B: OciBackend>(
    State(state): State<SharedState<B>>,
    method: Method,
    headers: HeaderMap,
    Path((c, n, r)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::may_pull(&state, &headers, &repo).await?;
    let r = parse_ref(&r)?;
    let m = resolve(&state.backend, &repo, &r).await?.ok_or_else(|| {
        OciError::new(
            Code::ManifestUnknown,
            format!("no such manifest in {}", repo.path()),
        )
    })?;
    let bytes = synth::manifest_bytes(&m);
    let digest = match &r {
        Ref::Digest(d) => d.clone(),
        Ref::Tag(_) => Digest::sha256_of(&bytes),
    };
    let len = bytes.len();
    let ctype = declared_type(&bytes);
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = (StatusCode::OK, body).into_response();
    set(&mut resp, "content-type", &ctype);
    set(&mut resp, "content-length", &len.to_string());
    set(&mut resp, "docker-content-digest", &digest.to_string());
    set(&mut resp, "etag", &format!("\"{digest}\""));
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorIn {
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestIn {
    schema_version: u32,
    media_type: Option<String>,
    config: DescriptorIn,
    layers: Vec<DescriptorIn>,
}

fn invalid(why: impl Into<String>) -> OciError {
    OciError::new(Code::ManifestInvalid, why)
}

/// Reads the request body up to the manifest limit.
async fn read_limited(body: Body) -> Result<Vec<u8>, OciError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| invalid(format!("the body ended early: {e}")))?;
        if out.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn too_large() -> OciError {
    OciError::new(
        Code::ManifestInvalid,
        format!("manifests are limited to {MAX_MANIFEST_BYTES} bytes"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// A blob the manifest references, found in the repository with the declared size.
async fn referenced<B: OciBackend>(
    backend: &B,
    repo: &Repo,
    d: &DescriptorIn,
) -> Result<(Digest, Located), OciError> {
    let digest = Digest::parse(&d.digest)
        .ok_or_else(|| invalid(format!("invalid digest {:?}", d.digest)))?;
    let found = blobs::find(backend, repo, &digest).await?.ok_or_else(|| {
        OciError::new(
            Code::ManifestBlobUnknown,
            format!("blob {digest} is not in {}", repo.path()),
        )
    })?;
    if found.size() != d.size {
        return Err(invalid(format!(
            "blob {digest} has {} bytes, the manifest says {}",
            found.size(),
            d.size
        )));
    }
    Ok((digest, found))
}

fn valid_media_type(t: &str) -> bool {
    t.len() <= 255
        && t.split_once('/')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
        && t.bytes().all(|c| c.is_ascii_graphic())
}

/// `PUT /v2/<c>/<n>/manifests/<tag>`: publishes a SIF artifact under the tag.
pub(crate) async fn put<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, r)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    let info = super::auth::require(&state, &headers, &repo, Right::Push).await?;
    if crate::declared_length(&headers).is_some_and(|l| l > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    let tag = match parse_ref(&r)? {
        Ref::Tag(t) => t,
        Ref::Digest(_) => {
            return Err(OciError::new(
                Code::Unsupported,
                "every image here has a tag: push the manifest by tag",
            ));
        }
    };
    let bytes = read_limited(body).await?;
    let ctype = header_str(&headers, header::CONTENT_TYPE)
        .map(|t| t.split(';').next().unwrap_or("").trim().to_owned());
    let doc: ManifestIn = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("not an image manifest: {e}")))?;
    let mtype = doc.media_type.clone().or(ctype.clone()).unwrap_or_default();
    if doc.schema_version != 2
        || !(mtype == synth::OCI_MANIFEST || mtype == synth::DOCKER_MANIFEST)
        || ctype.as_deref().is_some_and(|c| c != mtype)
    {
        if mtype.contains("index") || mtype.contains("list") {
            return Err(OciError::new(
                Code::Unsupported,
                "image indexes are not stored here yet",
            ));
        }
        return Err(invalid(format!(
            "expected schemaVersion 2 and media type {}, got {mtype:?}",
            synth::OCI_MANIFEST
        )));
    }
    for d in std::iter::once(&doc.config).chain(&doc.layers) {
        if !valid_media_type(&d.media_type) {
            return Err(invalid(format!("invalid media type {:?}", d.media_type)));
        }
    }
    let [layer] = doc.layers.as_slice() else {
        return Err(OciError::new(
            Code::Unsupported,
            "only SIF artifacts (one SIF layer) can be pushed here",
        ));
    };
    if layer.media_type != MEDIA_TYPE_SIF && layer.media_type != synth::SIF_LAYER_LEGACY {
        return Err(OciError::new(
            Code::Unsupported,
            format!("only SIF layers ({MEDIA_TYPE_SIF}) can be pushed here"),
        ));
    }
    let (_, config) = referenced(&state.backend, &repo, &doc.config).await?;
    let (layer_digest, layer) = referenced(&state.backend, &repo, layer).await?;
    let Located::Content { root, size } = layer else {
        return Err(invalid("the layer is not a SIF image"));
    };
    let config =
        match config {
            Located::Inline(b) => b,
            Located::Content { root, size } if size as usize <= MAX_RECORD_BYTES => {
                let mut out = Vec::new();
                let mut s = state.backend.read_file(&root, 0, size).await?;
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk.map_err(|e| {
                        OciError::from(crate::BackendError::Internal(e.to_string()))
                    })?);
                }
                out
            }
            Located::Content { .. } => return Err(invalid("the config blob is too large")),
        };
    if bytes.len() + config.len() > MAX_RECORD_BYTES {
        return Err(invalid(format!(
            "a SIF artifact's manifest and config are limited to {MAX_RECORD_BYTES} bytes"
        )));
    }
    let record = OciRecord {
        manifest: bytes.clone(),
        config,
    };
    let extra = BTreeMap::from([(OCI_KEY.to_owned(), record.encode())]);
    let content = state.backend.read_file(&root, 0, size).await?;
    let out = state
        .backend
        .push_with_extra(
            &format!("{}:{tag}", repo.path()),
            &info.user,
            extra,
            content,
        )
        .await?;
    tracing::info!(reference = %out.reference, user = %info.user, "published through the OCI API");
    for d in [layer_digest] {
        if let Err(e) = state.backend.forget_upload(&record_key(&repo, &d)).await {
            tracing::warn!(error = %e, "could not drop an OCI upload record");
        }
    }
    let digest = Digest::sha256_of(&bytes);
    let mut resp = StatusCode::CREATED.into_response();
    set(
        &mut resp,
        "location",
        &format!("/v2/{}/manifests/{digest}", repo.path()),
    );
    set(&mut resp, "docker-content-digest", &digest.to_string());
    set(&mut resp, "content-length", "0");
    Ok(resp)
}

/// `DELETE /v2/<c>/<n>/manifests/<tag or digest>`: publishes a tombstone for the tag, or for
/// every tag whose manifest has the digest. Frozen tags refuse.
pub(crate) async fn delete<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, r)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    let info = super::auth::require(&state, &headers, &repo, Right::Delete).await?;
    let r = parse_ref(&r)?;
    let tags: Vec<String> = match &r {
        Ref::Tag(t) => match resolve(&state.backend, &repo, &r).await? {
            Some(_) => vec![t.clone()],
            None => vec![],
        },
        Ref::Digest(d) => heads(&state.backend, &repo)
            .await?
            .into_iter()
            .filter(|m| d.of_same_kind(&synth::manifest_bytes(m)) == *d)
            .map(|m| m.body.tag)
            .collect(),
    };
    if tags.is_empty() {
        return Err(OciError::new(
            Code::ManifestUnknown,
            format!("no such manifest in {}", repo.path()),
        ));
    }
    for t in tags {
        state
            .backend
            .delete_as(&format!("{}:{t}", repo.path()), &info.user)
            .await?;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    n: Option<usize>,
    last: Option<String>,
}

/// The page of `all` (sorted) after `last`, at most `n` long, and whether more follow.
fn paginate(all: Vec<String>, p: &Page) -> (Vec<String>, bool) {
    let start = match &p.last {
        Some(l) => all.partition_point(|x| x <= l),
        None => 0,
    };
    let rest = all.len() - start;
    let n = p.n.unwrap_or(rest).min(rest);
    let more = n < rest;
    (all.into_iter().skip(start).take(n).collect(), more)
}

fn link(resp: &mut Response, path: &str, page: &[String], n: Option<usize>) {
    if let (Some(last), Some(n)) = (page.last(), n) {
        set(
            resp,
            "link",
            &format!("<{path}?n={n}&last={last}>; rel=\"next\""),
        );
    }
}

/// `GET /v2/<c>/<n>/tags/list?n=&last=`.
pub(crate) async fn tags<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n)): Path<(String, String)>,
    Query(p): Query<Page>,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::may_pull(&state, &headers, &repo).await?;
    let all: BTreeSet<String> = heads(&state.backend, &repo)
        .await?
        .into_iter()
        .map(|m| m.body.tag)
        .collect();
    if all.is_empty() {
        return Err(OciError::new(
            Code::NameUnknown,
            format!("no repository {}", repo.path()),
        ));
    }
    let (page, more) = paginate(all.into_iter().collect(), &p);
    let mut resp = Json(json!({ "name": repo.path(), "tags": page })).into_response();
    if more {
        link(
            &mut resp,
            &format!("/v2/{}/tags/list", repo.path()),
            &page,
            p.n,
        );
    }
    Ok(resp)
}

/// `GET /v2/_catalog?n=&last=`: repositories with a live tag, private collections left out.
pub(crate) async fn catalog<B: OciBackend>(
    State(state): State<SharedState<B>>,
    Query(p): Query<Page>,
) -> Result<Response, OciError> {
    let mut memo = Memo::default();
    let mut repos = BTreeSet::new();
    for m in crate::shub::decode_all(state.backend.tag_heads("").await?) {
        if m.body.tombstone || !memo.is_public(&state.backend, &m.body.collection).await? {
            continue;
        }
        repos.insert(format!("{}/{}", m.body.collection, m.body.name));
    }
    let (page, more) = paginate(repos.into_iter().collect(), &p);
    let mut resp = Json(json!({ "repositories": page })).into_response();
    if more {
        link(&mut resp, "/v2/_catalog", &page, p.n);
    }
    Ok(resp)
}
