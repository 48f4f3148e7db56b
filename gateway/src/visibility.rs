//! The one place the gateway decides whether a request may see an image's content or metadata:
//! it asks the node's [`VisibilityBackend`] what is private and the [`TokenBackend`] whether the
//! request's bearer token may pull it. Routes call these functions; none decides privacy itself.

use crate::SharedState;
use crate::backend::{TokenBackend, VisibilityBackend};
use crate::error::{backend_response, json_error};
use crate::tokens::Right;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    crate::admin::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// `Ok(())` if `collection` is public or the request's token may pull it; otherwise the 403 to
/// send (registries answer 403, never 401, for private images).
pub(crate) async fn may_read<B: VisibilityBackend + TokenBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    collection: &str,
) -> Result<(), Response> {
    match state.backend.collection_is_private(collection).await {
        Ok(false) => Ok(()),
        Ok(true) => {
            let Some(token) = bearer(headers) else {
                return Err(json_error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "collection {collection} is private; send a token with the pull right"
                    ),
                ));
            };
            match state
                .backend
                .authorize_token(token, collection, Right::Pull)
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(denied)) => Err(json_error(StatusCode::FORBIDDEN, &denied.to_string())),
                Err(e) => Err(backend_response(&e)),
            }
        }
        Err(e) => Err(backend_response(&e)),
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
    if collections.is_empty() {
        return Ok(());
    }
    let mut denied = None;
    for c in &collections {
        match may_read(state, headers, c).await {
            Ok(()) => return Ok(()),
            Err(resp) => denied = Some(resp),
        }
    }
    match denied {
        Some(resp) => Err(resp),
        None => Ok(()),
    }
}
