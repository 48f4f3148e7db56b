//! Plain file bytes and single raw blocks, both with `Range` and `If-None-Match`.
//!
//! A plain file is streamed straight from [`ContentBackend::read_file`]: its stream becomes the body
//! as is, so a 20 GB image costs one chunk of memory. Raw blocks (at most 2 MiB) and identity
//! CIDs are already in memory and are sliced.
//!
//! It must not buffer a file: the bytes stream from the backend as they come.

use super::range::{NoneMatch, Selection, if_none_match, select};
use super::{IpfsError, base_headers, disposition, load_block, not_modified};
use crate::ContentBackend;
use crate::caching::Caching;
use crate::ipfs::negotiate::RAW_MEDIA_TYPE;
use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::is_identity;
use shubnet_protocol::unixfs::FileNode;

/// The `Content-Type` of plain file bytes: images are opaque SIF files.
const FILE_MEDIA_TYPE: &str = "application/octet-stream";

/// How the client wants a plain file named, from `?filename=` and `?download=true`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Naming<'a> {
    /// `?filename=`.
    pub filename: Option<&'a str>,
    /// `?download=true`: `attachment` instead of `inline`.
    pub download: bool,
}

/// `GET|HEAD /ipfs/{cid}` for the deserialized file.
pub(crate) async fn file<B: ContentBackend>(
    backend: &B,
    cid: Cid,
    naming: Naming<'_>,
    req: &HeaderMap,
    head: bool,
    caching: Caching,
) -> Result<Response, IpfsError> {
    let etag = format!("\"{cid}\"");
    let none_match = if_none_match(req, &etag);
    // The content behind a CID never changes, so a matching tag needs no lookup.
    if none_match == NoneMatch::Tag {
        return Ok(not_modified(&cid, &etag, caching));
    }
    let mut out = base_headers(&cid, &etag, caching);
    out.insert(CONTENT_TYPE, HeaderValue::from_static(FILE_MEDIA_TYPE));
    if let Some(name) = naming.filename {
        let kind = if naming.download {
            "attachment"
        } else {
            "inline"
        };
        out.insert(CONTENT_DISPOSITION, disposition(kind, name));
    }
    if is_identity(&cid) {
        let data = identity_file(&cid)?;
        if none_match == NoneMatch::Any {
            return Ok(not_modified(&cid, &etag, caching));
        }
        return in_memory(data, out, req, &etag, head);
    }
    let Some(size) = backend.file_size(&cid).await? else {
        return Err(explain_missing(backend, &cid).await);
    };
    if none_match == NoneMatch::Any {
        return Ok(not_modified(&cid, &etag, caching));
    }
    let (status, start, end) = window(req, &etag, size, &mut out)?;
    let body = if head || start == end {
        Body::empty()
    } else {
        let stream = backend.read_file(&cid, start, end).await?;
        if start == 0 {
            backend.count_download(&cid).await;
        }
        Body::from_stream(stream)
    };
    Ok((status, out, body).into_response())
}

/// `GET|HEAD /ipfs/{cid}?format=raw`: exactly one block.
pub(crate) async fn raw<B: ContentBackend>(
    backend: &B,
    cid: Cid,
    filename: Option<&str>,
    req: &HeaderMap,
    head: bool,
    caching: Caching,
) -> Result<Response, IpfsError> {
    let etag = format!("\"{cid}.raw\"");
    let none_match = if_none_match(req, &etag);
    if none_match == NoneMatch::Tag {
        return Ok(not_modified(&cid, &etag, caching));
    }
    let block = load_block(backend, &cid)
        .await?
        .ok_or_else(|| IpfsError::NotFound(format!("block {cid} is not held by this node")))?;
    if none_match == NoneMatch::Any {
        return Ok(not_modified(&cid, &etag, caching));
    }
    let mut out = base_headers(&cid, &etag, caching);
    out.insert(CONTENT_TYPE, HeaderValue::from_static(RAW_MEDIA_TYPE));
    let default_name = format!("{cid}.bin");
    out.insert(
        CONTENT_DISPOSITION,
        disposition("attachment", filename.unwrap_or(&default_name)),
    );
    in_memory(block, out, req, &etag, head)
}

/// Serves bytes already in memory, honouring `Range`.
fn in_memory(
    data: Bytes,
    mut out: HeaderMap,
    req: &HeaderMap,
    etag: &str,
    head: bool,
) -> Result<Response, IpfsError> {
    let (status, start, end) = window(req, etag, data.len() as u64, &mut out)?;
    let body = if head {
        Body::empty()
    } else {
        // Both bounds are within `data.len()`, which fits usize.
        Body::from(data.slice(start as usize..end as usize))
    };
    Ok((status, out, body).into_response())
}

/// Applies `Range` to a representation of `size` bytes: the status, the byte window, and the
/// `Accept-Ranges`, `Content-Length` and (for 206) `Content-Range` headers.
fn window(
    req: &HeaderMap,
    etag: &str,
    size: u64,
    out: &mut HeaderMap,
) -> Result<(StatusCode, u64, u64), IpfsError> {
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, start, end) = match select(req, etag, size) {
        Selection::Full => (StatusCode::OK, 0, size),
        Selection::Partial { start, end } => {
            let range = format!("bytes {start}-{}/{size}", end - 1);
            if let Ok(v) = HeaderValue::from_str(&range) {
                out.insert(CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        Selection::Unsatisfiable => return Err(IpfsError::RangeNotSatisfiable { size }),
    };
    out.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    Ok((status, start, end))
}

/// The file bytes inlined in an identity CID; the backend is never asked.
fn identity_file(cid: &Cid) -> Result<Bytes, IpfsError> {
    let inline = cid.hash().digest();
    match FileNode::decode(cid, inline) {
        Ok(FileNode::Raw) => Ok(Bytes::copy_from_slice(inline)),
        Ok(FileNode::Branch { data, children }) if children.is_empty() => Ok(Bytes::from(data)),
        Ok(FileNode::Branch { .. }) => Err(IpfsError::NotImplemented(format!(
            "{cid} is an identity CID whose node links to other blocks; it is not served as a \
             file, use ?format=car"
        ))),
        Err(e) => Err(not_a_file(cid, &e.to_string())),
    }
}

/// Why the backend has no file for `cid`: not held at all (404), or held but not a UnixFS file
/// (501, only files are served as plain bytes).
async fn explain_missing<B: ContentBackend>(backend: &B, cid: &Cid) -> IpfsError {
    match backend.block(cid).await {
        Ok(Some(block)) => match FileNode::decode(cid, &block) {
            Err(e) => not_a_file(cid, &e.to_string()),
            Ok(_) => IpfsError::NotFound(format!("the file {cid} is not held completely here")),
        },
        Ok(None) => IpfsError::NotFound(format!("{cid} is not held by this node")),
        Err(e) => e.into(),
    }
}

fn not_a_file(cid: &Cid, why: &str) -> IpfsError {
    IpfsError::NotImplemented(format!(
        "{cid} is not a UnixFS file ({why}); this gateway serves only files as plain bytes; \
         use ?format=raw or ?format=car for other blocks"
    ))
}
