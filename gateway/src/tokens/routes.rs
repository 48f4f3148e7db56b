//! The token and collection admin routes under `/admin/v1` (the table in [`super`]). Every
//! route takes the [`Admin`] extractor first; nothing here decides what a token allows (the
//! backend does) or what is private (`crate::visibility`).

use super::{
    AuthError, CHECK_TOKEN_HEADER, CollectionInfo, CreatedToken, ID_LEN, Right, TokenBackend,
    TokenInfo, TokenRequest,
};
use crate::SharedState;
use crate::admin::{Admin, AdminError};
use crate::backend::{AdminAuth, VisibilityBackend};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shubnet_protocol::reference;
use std::fmt;
use std::str::FromStr;

/// What the token routes need from a node.
pub trait TokenRoutes: AdminAuth + TokenBackend + VisibilityBackend {}
impl<T: AdminAuth + TokenBackend + VisibilityBackend> TokenRoutes for T {}

/// Routes for tokens and collections, merged into the admin router under `/admin/v1`.
pub fn router<B: TokenRoutes>() -> Router<SharedState<B>> {
    Router::new()
        .route("/tokens", get(list::<B>).post(create::<B>))
        .route("/tokens/check", get(check::<B>))
        .route("/tokens/{id}", axum::routing::delete(revoke::<B>))
        .route("/collections", get(collections::<B>))
        .route("/collections/{name}", get(collection::<B>))
        .route(
            "/collections/{name}/private",
            put(set_private::<B>).delete(set_public::<B>),
        )
}

fn bad_request(e: impl fmt::Display) -> AdminError {
    AdminError::BadRequest(e.to_string())
}

/// `POST /admin/v1/tokens`. The body is read as JSON whatever its `Content-Type`, so errors
/// in it come back in this API's format.
async fn create<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedToken>), AdminError> {
    let req: TokenRequest = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "the body must be JSON {{\"user\", \"collections\": [..], \"rights\": [..]}}: {e}"
        ))
    })?;
    let new = req.validate().map_err(bad_request)?;
    let created = state.backend.create_token(new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /admin/v1/tokens`.
async fn list<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<Vec<TokenInfo>>, AdminError> {
    Ok(Json(state.backend.tokens().await?))
}

/// A token id from the path: [`ID_LEN`] hex digits (case-insensitive).
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, AdminError> {
    let Path(id) = path.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let id = id.to_ascii_lowercase();
    let federation_id_len = shubnet_protocol::access::CAPABILITY_ID_LEN * 2;
    let hex = id.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || (id.len() != ID_LEN && id.len() != federation_id_len) {
        return Err(bad_request(format!(
            "invalid token id {id:?}: ids are the {ID_LEN} hex digits (or \
             {federation_id_len} for a federation token) `shubnet token list` shows"
        )));
    }
    Ok(id)
}

/// `DELETE /admin/v1/tokens/{id}`.
async fn revoke<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TokenInfo>, AdminError> {
    let id = path_id(path)?;
    let info = state.backend.revoke_token(&id).await?;
    // Uploads the token started end with it, and leave no partial files.
    state.multipart.drop_token(&info.id).await;
    Ok(Json(info))
}

/// The query of `/tokens/check`.
#[derive(Debug, Deserialize)]
struct CheckQuery {
    collection: String,
    right: String,
}

/// The 200 answer of `/tokens/check`.
#[derive(Debug, Serialize)]
struct Allowed {
    allowed: bool,
    token: TokenInfo,
}

/// `GET /admin/v1/tokens/check?collection=C&right=R` with the user token in `X-Shubnet-Token`.
async fn check<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    query: Result<Query<CheckQuery>, QueryRejection>,
) -> Result<Response, AdminError> {
    let Query(q) = query.map_err(|e| {
        bad_request(format!(
            "give ?collection=NAME&right=pull|push|delete ({})",
            e.body_text()
        ))
    })?;
    reference::validate_collection(&q.collection)
        .map_err(|e| bad_request(format!("invalid collection {:?}: {e}", q.collection)))?;
    let right = Right::from_str(&q.right).map_err(bad_request)?;
    let token = headers
        .get(CHECK_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_request("send the user token in the X-Shubnet-Token header"))?;
    match state
        .backend
        .authorize_token(token, &q.collection, right)
        .await?
    {
        Ok(info) => Ok(Json(Allowed {
            allowed: true,
            token: info,
        })
        .into_response()),
        Err(denied) => Ok(denied_response(&denied)),
    }
}

/// 403 `{"error": message, "reason": ..., "allowed": false}`.
fn denied_response(e: &AuthError) -> Response {
    let body = serde_json::json!({
        "error": e.to_string(),
        "reason": e.reason(),
        "allowed": false,
    });
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// A collection name from the path, checked.
fn path_collection(path: Result<Path<String>, PathRejection>) -> Result<String, AdminError> {
    let Path(name) = path.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    reference::validate_collection(&name)
        .map_err(|e| bad_request(format!("invalid collection {name:?}: {e}")))?;
    Ok(name)
}

/// `GET /admin/v1/collections`.
async fn collections<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<Vec<CollectionInfo>>, AdminError> {
    Ok(Json(state.backend.collections().await?))
}

/// `GET /admin/v1/collections/{name}`.
async fn collection<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CollectionInfo>, AdminError> {
    let name = path_collection(path)?;
    let private = state.backend.collection_is_private(&name).await?;
    Ok(Json(CollectionInfo { name, private }))
}

/// `PUT /admin/v1/collections/{name}/private`.
async fn set_private<B: TokenRoutes>(
    admin: Admin,
    state: State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CollectionInfo>, AdminError> {
    set_visibility(admin, state, path, true).await
}

/// `DELETE /admin/v1/collections/{name}/private`.
async fn set_public<B: TokenRoutes>(
    admin: Admin,
    state: State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CollectionInfo>, AdminError> {
    set_visibility(admin, state, path, false).await
}

async fn set_visibility<B: TokenRoutes>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
    private: bool,
) -> Result<Json<CollectionInfo>, AdminError> {
    let name = path_collection(path)?;
    Ok(Json(
        state.backend.set_collection_private(&name, private).await?,
    ))
}
