//! Blobs by digest, resolved within one repository: a layer is a tag head's content (its
//! sha256 is the signed whole-file sha256), a manifest's config or OCI manifest bytes come from
//! the signed record ([`super::synth`]), and a blob uploaded but not yet referenced is found
//! through the upload record the node keeps ([`crate::UploadBackend`]) until it expires.
//!
//! Reads ask `crate::visibility` (through [`super::auth::may_pull`]) first; this module serves
//! bytes and must not publish anything.

use super::error::{Code, OciError};
use super::synth::{self, Digest};
use super::{OciBackend, Repo, set};
use crate::SharedState;
use crate::ipfs::range::{self, Selection};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use shubnet_protocol::Cid;

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum Located {
    /// A UnixFS file in the content store.
    Content { root: Cid, size: u64 },
    /// Bytes kept in a signed manifest (a config, an OCI manifest).
    Inline(Vec<u8>),
}

impl Located {
    pub(crate) fn size(&self) -> u64 {
        match self {
            Located::Content { size, .. } => *size,
            Located::Inline(b) => b.len() as u64,
        }
    }
}

/// The upload-record key of a blob in a repository: hashed, because record keys are short
/// and plain (`[A-Za-z0-9._-]`), and the same name for the same blob on every call.
pub(crate) fn record_key(repo: &Repo, digest: &Digest) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(format!("{}@{digest}", repo.path()).as_bytes());
    format!("oci-{}", hex::encode(h))
}

/// Finds a blob of `repo` by digest.
pub(crate) async fn find<B: OciBackend>(
    backend: &B,
    repo: &Repo,
    digest: &Digest,
) -> Result<Option<Located>, OciError> {
    if *digest == Digest::sha256_of(synth::EMPTY_CONFIG) {
        return Ok(Some(Located::Inline(synth::EMPTY_CONFIG.to_vec())));
    }
    if let Some((root, size)) = backend.recall_upload(&record_key(repo, digest)).await? {
        return Ok(Some(Located::Content { root, size }));
    }
    for m in crate::shub::decode_all(backend.tag_heads(&repo.path()).await?) {
        if m.body.tombstone || m.body.name != repo.name {
            continue;
        }
        if let (Digest::Sha256(h), Some(root)) = (digest, m.body.root)
            && *h == m.body.sha256
        {
            return Ok(Some(Located::Content {
                root,
                size: m.body.size,
            }));
        }
        for bytes in [synth::config_bytes(&m), synth::manifest_bytes(&m)] {
            if digest.of_same_kind(&bytes) == *digest {
                return Ok(Some(Located::Inline(bytes)));
            }
        }
    }
    Ok(None)
}

/// `GET`/`HEAD /v2/<c>/<n>/blobs/<digest>`, with one `Range`.
pub(crate) async fn get<B: OciBackend>(
    State(state): State<SharedState<B>>,
    method: Method,
    headers: HeaderMap,
    Path((c, n, digest)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    let repo = Repo::parse(&c, &n)?;
    super::auth::may_pull(&state, &headers, &repo).await?;
    let d = Digest::parse(&digest)
        .ok_or_else(|| OciError::new(Code::DigestInvalid, format!("invalid digest {digest:?}")))?;
    let Some(found) = find(&state.backend, &repo, &d).await? else {
        return Err(OciError::new(
            Code::BlobUnknown,
            format!("{d} is not in {}", repo.path()),
        ));
    };
    let size = found.size();
    let etag = format!("\"{d}\"");
    let (status, start, end) = match range::select(&headers, &etag, size) {
        Selection::Full => (StatusCode::OK, 0, size),
        Selection::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Selection::Unsatisfiable => {
            let mut r =
                OciError::new(Code::RangeInvalid, "the range is outside the blob").into_response();
            set(&mut r, "content-range", &format!("bytes */{size}"));
            return Ok(r);
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        match found {
            Located::Inline(b) => Body::from(b[start as usize..end as usize].to_vec()),
            Located::Content { root, .. } => {
                if start == 0 {
                    state.backend.count_download(&root).await;
                }
                Body::from_stream(state.backend.read_file(&root, start, end).await?)
            }
        }
    };
    let mut r = (status, body).into_response();
    set(&mut r, "content-type", "application/octet-stream");
    set(&mut r, "content-length", &(end - start).to_string());
    set(&mut r, "docker-content-digest", &d.to_string());
    set(&mut r, "etag", &etag);
    set(&mut r, "accept-ranges", "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut r,
            "content-range",
            &format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    Ok(r)
}

/// `DELETE /v2/<c>/<n>/blobs/<digest>`: blobs belong to signed manifests and leave with them
/// (tag deletion and garbage collection), never on their own.
pub(crate) async fn delete() -> OciError {
    OciError::new(
        Code::Unsupported,
        "blobs are removed with the tags that reference them",
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}
