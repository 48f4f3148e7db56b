//! The IPFS path gateway for `/ipfs/{cid}`: trustless raw blocks and CAR streams, plus the
//! plain file bytes that `apptainer pull ipfs://CID` (with `IPFS_GATEWAY` set to a node) and
//! `curl` fetch.
//!
//! Spec: <https://specs.ipfs.tech/http-gateways/trustless-gateway/> and the path gateway it
//! refines. Goals: everything the gateway-conformance raw and CAR suites check for files,
//! including the `bafkqaaa` probe; content is streamed, never buffered whole. Non-goals:
//! pathing below a CID (`/ipfs/{cid}/a/b` is a 501), directories as plain responses (501),
//! IPNS, HTML listings, `dag-json`/`tar` responses.
//!
//! - `negotiate` picks the format (`?format=` over `Accept`) and the CAR parameters.
//! - `plain` serves plain files and raw blocks with `Range` and `If-None-Match` (`range`).
//! - `car` serves CAR streams; its module doc states the `dag-scope` and `entity-bytes` rules.
//!
//! Every success carries the IPFS headers (`ETag`, `X-Ipfs-Path`, `X-Ipfs-Roots`,
//! `X-Content-Type-Options: nosniff`) and the `Cache-Control`/`Vary` that `caching::decide`
//! chose: public immutable content only when anyone could have fetched it. Errors are JSON
//! `{"error": "..."}`.

mod car;
mod negotiate;
pub(crate) mod plain;
pub(crate) mod range;

use crate::caching::{self, Caching};
use crate::error::{backend_response, json_error};
use crate::{BackendError, ContentBackend, SharedState, TokenBackend, VisibilityBackend};
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_RANGE, ETAG, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use negotiate::{Format, FormatQuery};
use serde::Deserialize;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::is_identity;

const X_IPFS_PATH: HeaderName = HeaderName::from_static("x-ipfs-path");
const X_IPFS_ROOTS: HeaderName = HeaderName::from_static("x-ipfs-roots");

/// What the `/ipfs` gateway needs from a node.
pub trait IpfsBackend: ContentBackend + VisibilityBackend + TokenBackend {}
impl<T: ContentBackend + VisibilityBackend + TokenBackend> IpfsBackend for T {}

/// Routes under `/ipfs`.
pub fn router<B: IpfsBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/ipfs/{cid}", get(serve::<B>))
        .route("/ipfs/{cid}/", get(serve::<B>))
        .route("/ipfs/{cid}/{*path}", get(below_cid))
}

/// Why an `/ipfs` request failed; rendered as JSON `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    /// The request itself is wrong: malformed CID, unknown format or parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// The content is not held here (404).
    #[error("{0}")]
    NotFound(String),
    /// A valid request for something this gateway does not serve, such as a directory as a
    /// plain response (501).
    #[error("{0}")]
    NotImplemented(String),
    /// The `Range` lies wholly past the end of a representation of `size` bytes (416).
    #[error("the requested range is not satisfiable for {size} bytes")]
    RangeNotSatisfiable {
        /// The representation's length, sent back in `Content-Range: bytes */size`.
        size: u64,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl IntoResponse for IpfsError {
    fn into_response(self) -> Response {
        match self {
            IpfsError::BadRequest(m) => json_error(StatusCode::BAD_REQUEST, &m),
            IpfsError::NotFound(m) => json_error(StatusCode::NOT_FOUND, &m),
            IpfsError::NotImplemented(m) => json_error(StatusCode::NOT_IMPLEMENTED, &m),
            IpfsError::RangeNotSatisfiable { size } => {
                let mut r = json_error(StatusCode::RANGE_NOT_SATISFIABLE, &self.to_string());
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(CONTENT_RANGE, v);
                }
                r
            }
            IpfsError::Backend(e) => backend_response(&e),
        }
    }
}

/// The query parameters `/ipfs/{cid}` understands. Unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
struct IpfsQuery {
    format: Option<String>,
    filename: Option<String>,
    download: Option<String>,
    #[serde(rename = "dag-scope")]
    dag_scope: Option<String>,
    #[serde(rename = "entity-bytes")]
    entity_bytes: Option<String>,
    #[serde(rename = "car-version")]
    car_version: Option<String>,
    #[serde(rename = "car-order")]
    car_order: Option<String>,
    #[serde(rename = "car-dups")]
    car_dups: Option<String>,
}

/// `GET|HEAD /ipfs/{cid}[/]`.
async fn serve<B: IpfsBackend>(
    State(state): State<SharedState<B>>,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<IpfsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, IpfsError> {
    let Path(text) = path.map_err(|e| IpfsError::BadRequest(e.body_text()))?;
    let cid = parse_cid(&text)?;
    // Content of private collections only goes to a token that may pull it (403 otherwise).
    if let Err(denied) = crate::visibility::may_read_content(&state, &headers, &cid).await {
        return Ok(denied);
    }
    let caching = caching::decide(&state.backend, &headers, caching::Route::Open, &cid).await;
    let Query(q) = query.map_err(|e| IpfsError::BadRequest(e.body_text()))?;
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = negotiate::negotiate(
        FormatQuery {
            format: q.format.as_deref(),
            car_version: q.car_version.as_deref(),
            car_order: q.car_order.as_deref(),
            car_dups: q.car_dups.as_deref(),
        },
        accept,
    )?;
    let head = method == Method::HEAD;
    let backend = &state.backend;
    match format {
        Format::File => {
            let naming = plain::Naming {
                filename: q.filename.as_deref().filter(|f| !f.is_empty()),
                download: q.download.as_deref() == Some("true"),
            };
            plain::file(backend, cid, naming, &headers, head, caching).await
        }
        Format::Raw => {
            let filename = q.filename.as_deref().filter(|f| !f.is_empty());
            plain::raw(backend, cid, filename, &headers, head, caching).await
        }
        Format::Car(params) => {
            let req =
                car::CarRequest::parse(q.dag_scope.as_deref(), q.entity_bytes.as_deref(), params)?;
            let filename = q.filename.as_deref().filter(|f| !f.is_empty());
            car::respond(backend, cid, req, head, filename, &headers, caching).await
        }
    }
}

/// `/ipfs/{cid}/{path}`: pathing below a CID is not supported.
async fn below_cid(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, IpfsError> {
    let Path((text, _)) = path.map_err(|e| IpfsError::BadRequest(e.body_text()))?;
    let cid = parse_cid(&text)?;
    Err(IpfsError::NotImplemented(format!(
        "paths below a CID are not supported; request /ipfs/{cid} itself"
    )))
}

fn parse_cid(text: &str) -> Result<Cid, IpfsError> {
    shubnet_protocol::cid::parse(text).map_err(|e| IpfsError::BadRequest(e.to_string()))
}

/// One block: inline for identity CIDs (never asking the backend), else from the backend.
pub(crate) async fn load_block<B: ContentBackend>(
    backend: &B,
    cid: &Cid,
) -> Result<Option<Bytes>, BackendError> {
    if is_identity(cid) {
        return Ok(Some(Bytes::copy_from_slice(cid.hash().digest())));
    }
    backend.block(cid).await
}

/// The headers every successful `/ipfs/{cid}` response carries.
pub(crate) fn base_headers(cid: &Cid, etag: &str, caching: Caching) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    caching.headers(&mut h);
    if let Ok(v) = HeaderValue::from_str(&format!("/ipfs/{cid}")) {
        h.insert(X_IPFS_PATH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cid.to_string()) {
        h.insert(X_IPFS_ROOTS, v);
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h
}

/// 304 with the validators and caching headers a 200 would carry.
pub(crate) fn not_modified(cid: &Cid, etag: &str, caching: Caching) -> Response {
    (StatusCode::NOT_MODIFIED, base_headers(cid, etag, caching)).into_response()
}

/// `Content-Disposition` for a client-chosen name: a plain quoted ASCII name when possible,
/// else an ASCII fallback plus RFC 8187 `filename*` so no input can break the header.
pub(crate) fn disposition(kind: &str, filename: &str) -> HeaderValue {
    let plain = filename
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    let value = if plain {
        format!("{kind}; filename=\"{filename}\"")
    } else {
        let fallback: String = filename
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::with_capacity(filename.len() * 3);
        for b in filename.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_quotes_safe_names_and_encodes_others() {
        assert_eq!(
            disposition("attachment", "foobar.bin"),
            "attachment; filename=\"foobar.bin\""
        );
        assert_eq!(
            disposition("inline", "a\"b\r\né.sif"),
            "inline; filename=\"a_b___.sif\"; filename*=UTF-8''a%22b%0D%0A%C3%A9.sif"
        );
    }
}
