//! The one place the gateway decides whether a request may see an image's content or metadata:
//! it asks the node's [`VisibilityBackend`] what is private and the [`TokenBackend`] whether the
//! request's credential may pull it. Every API (IPFS, shub, library, verification, UI) calls
//! these functions and only turns their answer into its own error format; none decides privacy
//! itself, and none reads the private flag directly.

use crate::SharedState;
use crate::backend::{BackendError, TokenBackend, UsageBackend, VisibilityBackend};
use crate::error::{backend_response, json_error};
use crate::search::{CollectionSummary, SearchPage, SearchQuery};
use crate::tokens::{AuthError, Right};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use std::collections::HashMap;

/// What a request may know of a collection before it proves anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Anyone may list, read and pull it.
    Public,
    /// Only a credential with the pull right on it may.
    Private,
}

/// Where the owner of a refused collection serves it, appended to a refusal's message.
#[derive(Debug, Default)]
pub(crate) struct OwnerHint(pub(crate) Option<String>);

impl std::fmt::Display for OwnerHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(url) => write!(
                f,
                "; the institution that owns it serves it at {url} (or ask it for a federation token)"
            ),
            None => Ok(()),
        }
    }
}

impl OwnerHint {
    /// The hint for `collection`, asked of the backend.
    pub(crate) async fn of<B: VisibilityBackend>(backend: &B, collection: &str) -> Self {
        OwnerHint(backend.owner_gateway(collection).await)
    }
}

/// Why a request may not see a private collection. Each API maps it onto its own status and
/// error body; registries answer 403, never 401, for a private image.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// The request carried no credential.
    #[error("collection {collection} is private; send a token with the pull right{hint}")]
    NoCredential {
        /// The private collection.
        collection: String,
        /// Where its owner serves it.
        hint: OwnerHint,
    },
    /// The credential does not grant pull on the collection.
    #[error("{source}{hint}")]
    Denied {
        /// What the token check said.
        source: AuthError,
        /// Where the collection's owner serves it.
        hint: OwnerHint,
    },
    /// The node could not answer.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Whether `collection` is public or private.
pub(crate) async fn of_collection<B: VisibilityBackend>(
    backend: &B,
    collection: &str,
) -> Result<Visibility, BackendError> {
    Ok(if backend.collection_is_private(collection).await? {
        Visibility::Private
    } else {
        Visibility::Public
    })
}

/// Asks [`of_collection`] once per collection, for listings that filter many images.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    seen: HashMap<String, Visibility>,
}

impl Memo {
    /// True when `collection` is public; private collections are left out of every listing.
    pub(crate) async fn is_public<B: VisibilityBackend>(
        &mut self,
        backend: &B,
        collection: &str,
    ) -> Result<bool, BackendError> {
        if let Some(v) = self.seen.get(collection) {
            return Ok(*v == Visibility::Public);
        }
        let v = of_collection(backend, collection).await?;
        self.seen.insert(collection.to_owned(), v);
        Ok(v == Visibility::Public)
    }
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    crate::admin::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// `Ok(visibility)` if `collection` is public or the request's bearer token may pull it.
pub(crate) async fn may_pull<B: VisibilityBackend + TokenBackend>(
    backend: &B,
    headers: &HeaderMap,
    collection: &str,
) -> Result<Visibility, Refusal> {
    may_pull_with(backend, bearer(headers), collection).await
}

/// [`may_pull`] for a token the caller already took from its API's own credential form (the
/// OCI API's Basic auth).
pub(crate) async fn may_pull_with<B: VisibilityBackend + TokenBackend>(
    backend: &B,
    token: Option<&str>,
    collection: &str,
) -> Result<Visibility, Refusal> {
    let v = of_collection(backend, collection).await?;
    if v == Visibility::Public {
        return Ok(v);
    }
    let Some(token) = token else {
        return Err(Refusal::NoCredential {
            collection: collection.to_owned(),
            hint: OwnerHint::of(backend, collection).await,
        });
    };
    match backend
        .authorize_token(token, collection, Right::Pull)
        .await?
    {
        Ok(_) => Ok(v),
        Err(source) => Err(Refusal::Denied {
            source,
            hint: OwnerHint::of(backend, collection).await,
        }),
    }
}

/// [`may_pull`] with the refusal as the JSON error the IPFS and verification APIs send.
pub(crate) async fn may_read<B: VisibilityBackend + TokenBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    collection: &str,
) -> Result<Visibility, Response> {
    may_pull(&state.backend, headers, collection)
        .await
        .map_err(|r| refusal_response(&r))
}

/// The JSON error for a refusal: 403 for a missing or insufficient credential.
fn refusal_response(r: &Refusal) -> Response {
    match r {
        Refusal::Backend(e) => backend_response(e),
        other => json_error(StatusCode::FORBIDDEN, &other.to_string()),
    }
}

/// `Ok(())` if content `cid` may be served to this request: it belongs to no collection, to a
/// public one, or the request's token may pull one of its private collections.
pub(crate) async fn may_read_content<B: VisibilityBackend + TokenBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    cid: &shubnet_protocol::Cid,
) -> Result<(), Response> {
    let collections = state
        .backend
        .content_collections(cid)
        .await
        .map_err(|e| backend_response(&e))?;
    let mut denied = None;
    for c in &collections {
        match may_pull(&state.backend, headers, c).await {
            Ok(_) => return Ok(()),
            Err(r) => denied = Some(r),
        }
    }
    match denied {
        Some(r) => Err(refusal_response(&r)),
        None => Ok(()),
    }
}

/// A search through the node's index with private collections left out. The index leaves them
/// out already; the gateway does not take that on trust.
pub(crate) async fn search_public<B: VisibilityBackend + UsageBackend>(
    backend: &B,
    q: SearchQuery,
) -> Result<SearchPage, BackendError> {
    let mut page = backend.search(q).await?;
    let mut memo = Memo::default();
    let mut kept = Vec::with_capacity(page.hits.len());
    let mut dropped = 0;
    for hit in std::mem::take(&mut page.hits) {
        if memo.is_public(backend, &hit.collection).await? {
            kept.push(hit);
        } else {
            dropped += 1;
        }
    }
    page.hits = kept;
    page.total = page.total.saturating_sub(dropped);
    Ok(page)
}

/// The collections list with private collections left out, as [`search_public`] does.
pub(crate) async fn public_summaries<B: VisibilityBackend + UsageBackend>(
    backend: &B,
) -> Result<Vec<CollectionSummary>, BackendError> {
    let mut memo = Memo::default();
    let mut out = Vec::new();
    for s in backend.collection_summaries().await? {
        if memo.is_public(backend, &s.name).await? {
            out.push(s);
        }
    }
    Ok(out)
}
