//! The OCI distribution API (spec v1.1) that ORAS, `apptainer push oras://` and other OCI
//! clients speak. There is no second store: repository `<collection>/<name>` with tag `<t>` is
//! the shubnet reference `collection/name:t`, under the same naming rules and namespaces.
//!
//! - [`blobs`]: blob reads by digest, resolved within one repository;
//! - [`uploads`]: upload sessions streamed into the store ([`crate::StoreBackend::add`]);
//! - [`manifests`]: manifests, tags and the catalog; a push of a SIF artifact publishes a
//!   signed shubnet manifest carrying the client's OCI manifest ([`synth`]);
//! - [`auth`]: Basic and Bearer credentials (shubnet user tokens) and the token endpoint;
//! - [`error`]: the spec's error body.
//!
//! Privacy is asked of `crate::visibility`; this module never decides it.

mod auth;
mod blobs;
mod error;
mod manifests;
pub(crate) mod synth;
mod uploads;

use crate::SharedState;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use error::{Code, OciError};
use shubnet_protocol::reference;

pub use uploads::OciUploads;

/// What the OCI API needs from a node.
pub trait OciBackend:
    crate::ContentBackend
    + crate::StoreBackend
    + crate::RegistryBackend
    + crate::PublishBackend
    + crate::UploadBackend
    + crate::VisibilityBackend
    + crate::TokenBackend
{
}
impl<T: crate::Backend> OciBackend for T {}

/// Largest manifest accepted, as the distribution spec recommends.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Routes of the OCI API under `/v2`.
pub fn router<B: OciBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/v2/", get(ping::<B>))
        .route("/v2/token", get(auth::token::<B>))
        .route("/v2/_catalog", get(manifests::catalog::<B>))
        .route("/v2/{c}/{n}/tags/list", get(manifests::tags::<B>))
        .route(
            "/v2/{c}/{n}/manifests/{reference}",
            get(manifests::get::<B>)
                .head(manifests::get::<B>)
                .put(manifests::put::<B>)
                .delete(manifests::delete::<B>),
        )
        .route(
            "/v2/{c}/{n}/blobs/{digest}",
            get(blobs::get::<B>)
                .head(blobs::get::<B>)
                .delete(blobs::delete),
        )
        .route(
            "/v2/{c}/{n}/blobs/uploads/",
            axum::routing::post(uploads::start::<B>),
        )
        .route(
            "/v2/{c}/{n}/blobs/uploads/{id}",
            get(uploads::status::<B>)
                .patch(uploads::patch::<B>)
                .put(uploads::finish::<B>)
                .delete(uploads::cancel::<B>),
        )
}

/// `GET /v2/`: the API is here. Answers 401 with a challenge only to a request whose
/// credentials are bad; anonymous clients may pull public collections.
async fn ping<B: OciBackend>(
    axum::extract::State(state): axum::extract::State<SharedState<B>>,
    headers: HeaderMap,
) -> Result<Response, OciError> {
    auth::check_ping(&state, &headers).await?;
    let mut r = (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response();
    r.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    Ok(r)
}

/// A repository name: `collection/name` under shubnet's naming rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repo {
    pub(crate) collection: String,
    pub(crate) name: String,
}

impl Repo {
    pub(crate) fn parse(collection: &str, name: &str) -> Result<Self, OciError> {
        reference::validate_collection(collection)
            .and_then(|()| reference::validate_name(name))
            .map_err(|e| OciError::new(Code::NameInvalid, format!("{collection}/{name}: {e}")))?;
        Ok(Self {
            collection: collection.to_owned(),
            name: name.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> String {
        format!("{}/{}", self.collection, self.name)
    }
}

/// Reads a header as text.
pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sets a header from text the handler built (digests, paths); skips values that are not
/// valid header text rather than failing the response.
pub(crate) fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}
