//! The one decision of how a response carrying an image's bytes may be cached by clients and
//! shared proxies. Every route that serves content (`/ipfs` plain, raw and CAR, `/v1/imagefile`,
//! the shub download URL) asks [`decide`] and writes the answer with [`Caching::headers`].
//!
//! Content may be stored by a shared cache only when anyone could have fetched it: the request
//! carried no credentials, did not come through a signed URL, and the [`VisibilityBackend`] says
//! the content is public. Anything else is `private, no-store`, so a proxy never hands an
//! authorized response to the next caller. This module decides nothing about access: the
//! visibility checks have already run when it is asked.

use crate::backend::VisibilityBackend;
use crate::visibility::{self, Visibility};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, VARY};
use axum::http::{HeaderMap, HeaderValue};
use shubnet_protocol::Cid;

/// What public immutable content may be cached for: a year, as boxo's gateway says it.
const PUBLIC_IMMUTABLE: &str = "public, max-age=29030400, immutable";
/// Content fetched with credentials, through a signed URL, or of a private collection.
const PRIVATE_NO_STORE: &str = "private, no-store";
/// The representation depends on `Accept` (format negotiation) and on who asks.
const VARY_ON: &str = "Accept, Authorization";

/// How one response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    /// Anyone may have fetched it: shared caches may keep it for a year.
    Public,
    /// Served to this caller only: nothing may store it.
    Private,
}

/// How a request reached the content, besides its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A plain URL anyone can request.
    Open,
    /// A URL carrying a secret signed for one caller (the shub download URL of a private image).
    Signed,
}

impl Caching {
    /// The `Cache-Control` and `Vary` headers for this answer.
    pub(crate) fn headers(self, h: &mut HeaderMap) {
        let cc = match self {
            Caching::Public => PUBLIC_IMMUTABLE,
            Caching::Private => PRIVATE_NO_STORE,
        };
        h.insert(CACHE_CONTROL, HeaderValue::from_static(cc));
        h.insert(VARY, HeaderValue::from_static(VARY_ON));
    }
}

/// Whether the request presented credentials of any kind (a bearer token, an sregistry HMAC).
fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(AUTHORIZATION)
}

/// How the response to a request for `cid` may be cached. A backend error counts as private:
/// when in doubt, nothing is shared.
pub(crate) async fn decide<B: VisibilityBackend>(
    backend: &B,
    headers: &HeaderMap,
    route: Route,
    cid: &Cid,
) -> Caching {
    if route == Route::Signed || has_credentials(headers) {
        return Caching::Private;
    }
    let Ok(collections) = backend.content_collections(cid).await else {
        return Caching::Private;
    };
    if collections.is_empty() {
        return Caching::Public;
    }
    for c in &collections {
        if let Ok(Visibility::Public) = visibility::of_collection(backend, c).await {
            return Caching::Public;
        }
    }
    Caching::Private
}
