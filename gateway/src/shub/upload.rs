//! sregistry push (client-protocols.md §1.3): `POST /api/upload/chunked_upload` checks the HMAC
//! `push` and the namespace before any byte is sent; `POST /upload` streams the multipart
//! `file1` field into the store and publishes a manifest signed by this node that records the
//! user. The file is never buffered: multer hands the field over chunk by chunk, and a body that
//! ends early, grows past the limit or fails verification leaves nothing stored.

use super::ShubBackend;
use super::{ShubError, auth};
use crate::tokens::Right;
use crate::{BackendError, ByteStream, SharedState};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use shubnet_protocol::reference::Reference;

/// Largest non-file multipart field (names, the HMAC string).
const MAX_TEXT_FIELD: u64 = 4096;
/// Room for the multipart framing around the file.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// Step 1's JSON body.
#[derive(Debug, Deserialize)]
pub(super) struct PushIntent {
    collection: String,
    name: String,
    tag: Option<String>,
}

fn reference(collection: &str, name: &str, tag: &str) -> Result<Reference, ShubError> {
    Reference::new(
        &collection.to_ascii_lowercase(),
        &name.to_ascii_lowercase(),
        &tag.to_ascii_lowercase(),
    )
    .map_err(|e| ShubError::bad_request(format!("invalid container name: {e}")))
}

/// Namespace and frozen-tag refusals are permission problems for the client: 403.
fn refusal(e: BackendError) -> ShubError {
    if e.is_refusal() {
        ShubError::new(StatusCode::FORBIDDEN, e.to_string())
    } else {
        e.into()
    }
}

/// `POST /api/upload/chunked_upload`: may this user push here? Answers `{"cid": collection}`;
/// the collection name is its id, so step 2 signs the same name.
pub(super) async fn chunked<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ShubError> {
    let intent: PushIntent = serde_json::from_slice(&body)
        .map_err(|e| ShubError::bad_request(format!("expected {{collection,name,tag}}: {e}")))?;
    let tag = intent.tag.as_deref().unwrap_or("latest");
    let r = reference(&intent.collection, &intent.name, tag)?;
    // The client signs the names as it sent them (already lowercased).
    let (_, spent) = auth::authorize_once(
        &state.backend,
        &state.hmac_seen,
        &headers,
        "push",
        Right::Push,
        (&r.collection, &r.name, &r.tag),
    )
    .await?;
    state
        .backend
        .push_check(&r.tag_path())
        .await
        .map_err(refusal)?;
    spent.keep();
    Ok(Json(json!({ "cid": r.collection })).into_response())
}

/// The text fields that come before `file1`.
#[derive(Debug, Default)]
struct Fields {
    name: Option<String>,
    collection: Option<String>,
    tag: Option<String>,
}

fn multipart_error(e: multer::Error) -> ShubError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ShubError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ShubError::bad_request(format!("malformed multipart upload: {other}")),
    }
}

/// `POST /upload`: the multipart upload (`SREGISTRY_EVENT`, `name`, `collection`, `tag`,
/// `file1`).
pub(super) async fn upload<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ShubError> {
    let limit = state.config.max_upload_bytes;
    if let Some(len) = crate::declared_length(&headers)
        && len > limit.saturating_add(MULTIPART_OVERHEAD)
    {
        return Err(ShubError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload exceeds the {limit}-byte limit"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ShubError::bad_request(format!("expected multipart/form-data: {e}")))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limit.saturating_add(MULTIPART_OVERHEAD))
            .per_field(MAX_TEXT_FIELD)
            .for_field("file1", limit),
    );
    let mut mp =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut fields = Fields::default();
    while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
        let fname = field.name().unwrap_or_default().to_owned();
        match fname.as_str() {
            "name" | "collection" | "tag" => {
                let text = field.text().await.map_err(multipart_error)?;
                let slot = match fname.as_str() {
                    "name" => &mut fields.name,
                    "collection" => &mut fields.collection,
                    _ => &mut fields.tag,
                };
                *slot = Some(text.trim().to_owned());
            }
            "file1" => {
                let (Some(c), Some(n)) = (&fields.collection, &fields.name) else {
                    return Err(ShubError::bad_request(
                        "the name and collection fields must come before file1",
                    ));
                };
                let r = reference(c, n, fields.tag.as_deref().unwrap_or("latest"))?;
                let (info, spent) = auth::authorize_once(
                    &state.backend,
                    &state.hmac_seen,
                    &headers,
                    "upload",
                    Right::Push,
                    (&r.collection, &r.name, &r.tag),
                )
                .await?;
                let stream: ByteStream = Box::pin(field.map_err(std::io::Error::other));
                let out = state
                    .backend
                    .push_as(&r.tag_path(), false, &info.user, stream)
                    .await
                    .map_err(refusal)?;
                spent.keep();
                tracing::info!(reference = %out.reference, user = %info.user, root = ?out.root,
                    "pushed through the sregistry API");
                return Ok(Json(json!({ "message": "Upload Complete" })).into_response());
            }
            _ => {
                // SREGISTRY_EVENT repeats the Authorization header; other fields are ignored.
                field.bytes().await.map_err(multipart_error)?;
            }
        }
    }
    Err(ShubError::bad_request("the upload has no file1 field"))
}
