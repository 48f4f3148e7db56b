//! User tokens and private collections: the types every API shares, the [`TokenBackend`] trait a
//! node implements, and the admin routes the `shubnet token` and `shubnet collection` commands
//! call.
//!
//! A token belongs to a user and grants [`Right`]s on the collections its
//! [`CollectionPattern`]s match. The shub, sregistry and library APIs will present it either as a
//! bearer secret ([`TokenBackend::authorize_token`], library `Authorization: Bearer`) or as the
//! key of an sregistry HMAC signature ([`TokenBackend::authorize_hmac`],
//! `SREGISTRY-HMAC-SHA256`, reference/client-protocols.md §1.4). Either way the answer is an
//! [`AuthResult`]: the token's [`TokenInfo`], or an [`AuthError`] naming the rule that failed.
//! A backend failure is a separate, outer [`BackendError`], so "the node is broken" can never
//! read as "access denied" or the reverse.
//!
//! Routes, merged under `/admin/v1` and all behind the admin API's [`Admin`] check (loopback
//! peer and the admin bearer token):
//!
//! | method | path | does |
//! |---|---|---|
//! | `POST` | `/tokens` | `{"user","collections":[..],"rights":[..]}` → [`CreatedToken`]; the only time the secret is shown |
//! | `GET` | `/tokens` | every token as [`TokenInfo`], without secrets |
//! | `DELETE` | `/tokens/{id}` | revokes; answers the revoked [`TokenInfo`] |
//! | `GET` | `/tokens/check?collection=C&right=R` | checks the token in `X-Shubnet-Token`: 200 with its info, or 403 `{"error","reason"}` |
//! | `GET` | `/collections` | collections with settings ([`CollectionInfo`]) |
//! | `GET` | `/collections/{name}` | one collection's settings (public when never set) |
//! | `PUT`/`DELETE` | `/collections/{name}/private` | makes it private / public |
//!
//! `/tokens/check` exists so operators (and the tests) can ask "would this token be allowed?"
//! before any client API consumes tokens; it sits behind the admin check, so it is no token
//! oracle for remote callers.
//!
//! Errors are JSON `{"error": "..."}` as in the rest of the admin API.

use crate::admin::{Admin, AdminError};
use crate::{Backend, BackendError, SharedState};
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
use std::future::Future;
use std::str::FromStr;

/// The header `/tokens/check` reads the user token from.
pub const CHECK_TOKEN_HEADER: &str = "x-shubnet-token";
/// Most collection patterns one token may carry.
pub const MAX_PATTERNS: usize = 64;
/// Length of a token id: the first 8 hex digits of the token's sha256.
pub const ID_LEN: usize = 8;

/// Something a token may allow on a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Pull images of a private collection (public collections need no token).
    Pull,
    /// Push images (new tags) into the collection.
    Push,
    /// Delete tags (publish tombstones).
    Delete,
}

impl Right {
    /// Every right, in the order they are shown.
    pub const ALL: [Right; 3] = [Right::Pull, Right::Push, Right::Delete];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Pull => "pull",
            Right::Push => "push",
            Right::Delete => "delete",
        }
    }

    /// Parses a comma-separated list (`pull,push`), sorted and without duplicates. At least one
    /// right is required.
    pub fn parse_list(text: &str) -> Result<Vec<Right>, TokenRequestError> {
        normalize_rights(text.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Right {
    type Err = TokenRequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Right::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| TokenRequestError::UnknownRight(s.to_owned()))
    }
}

fn normalize_rights<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Right>, TokenRequestError> {
    let mut rights = names
        .into_iter()
        .map(Right::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    rights.sort();
    rights.dedup();
    if rights.is_empty() {
        return Err(TokenRequestError::NoRights);
    }
    Ok(rights)
}

fn valid_rights_list() -> String {
    Right::ALL.map(Right::as_str).join(", ")
}

/// Which collections a token covers. Parsed from text, and shown as the text it was given as:
///
/// - `lab-a`: exactly the collection `lab-a`;
/// - `lab-a/*`: every image in `lab-a` (the same collections as `lab-a`);
/// - `lab-*`: every collection whose name starts with `lab-` (as roster namespaces);
/// - `*`: every collection.
///
/// Collection names follow [`shubnet_protocol::reference`] (`a-z 0-9` joined by single `-`, at
/// most 39 characters); a prefix must be the start of some valid name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CollectionPattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternKind {
    All,
    Exact(String),
    Prefix(String),
}

impl CollectionPattern {
    /// Checks and parses a pattern.
    pub fn parse(text: &str) -> Result<Self, TokenRequestError> {
        let bad = |why: &str| TokenRequestError::BadPattern {
            pattern: text.to_owned(),
            why: why.to_owned(),
        };
        let kind = if text == "*" {
            PatternKind::All
        } else if let Some(coll) = text.strip_suffix("/*") {
            reference::validate_collection(coll).map_err(|e| bad(&e.to_string()))?;
            PatternKind::Exact(coll.to_owned())
        } else if let Some(prefix) = text.strip_suffix('*') {
            // Some collection starts with the prefix exactly when appending a letter makes one.
            reference::validate_collection(&format!("{prefix}a"))
                .map_err(|_| bad("no collection name can start with the part before '*'"))?;
            PatternKind::Prefix(prefix.to_owned())
        } else {
            reference::validate_collection(text).map_err(|e| bad(&e.to_string()))?;
            PatternKind::Exact(text.to_owned())
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }

    /// True when the pattern covers `collection`.
    pub fn matches(&self, collection: &str) -> bool {
        match &self.kind {
            PatternKind::All => true,
            PatternKind::Exact(c) => c == collection,
            PatternKind::Prefix(p) => collection.starts_with(p.as_str()),
        }
    }

    /// The pattern as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl FromStr for CollectionPattern {
    type Err = TokenRequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CollectionPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CollectionPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a token request (from the CLI or the admin API) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRequestError {
    /// The user name breaks the naming rules.
    #[error(
        "invalid user name {0:?}: use 1-64 lowercase letters and digits, joined by single '.', '_' or '-' (the library entity rules)"
    )]
    BadUser(String),
    /// A collection pattern is not one of the accepted forms.
    #[error(
        "invalid collection pattern {pattern:?} ({why}); use a collection name (lab-a), all of one collection (lab-a/*), a name prefix followed by '*' (lab-*), or '*' for every collection"
    )]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// No collection pattern was given.
    #[error("give at least one collection pattern (--collection)")]
    NoCollections,
    /// More than [`MAX_PATTERNS`] patterns.
    #[error("a token may cover at most {MAX_PATTERNS} collection patterns")]
    TooManyPatterns,
    /// A right that does not exist.
    #[error("unknown right {0:?}; valid rights are {list}", list = valid_rights_list())]
    UnknownRight(String),
    /// No right was given.
    #[error("give at least one right; valid rights are {list}", list = valid_rights_list())]
    NoRights,
}

/// Checks a user name: the library entity rules (`a-z 0-9` runs joined by single `.`, `_`
/// or `-`, 1-64 characters), so the user can also be the entity of library references.
pub fn validate_user(user: &str) -> Result<(), TokenRequestError> {
    reference::validate_name(user).map_err(|_| TokenRequestError::BadUser(user.to_owned()))
}

/// A token request as JSON carries it: `POST /admin/v1/tokens`. Plain strings, so a bad right
/// or pattern gets this module's error message rather than a deserializer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Who the token is for.
    pub user: String,
    /// Collection patterns ([`CollectionPattern`]).
    pub collections: Vec<String>,
    /// Rights by name (`pull`, `push`, `delete`).
    pub rights: Vec<String>,
}

impl TokenRequest {
    /// Validates every field.
    pub fn validate(&self) -> Result<NewToken, TokenRequestError> {
        validate_user(&self.user)?;
        if self.collections.is_empty() {
            return Err(TokenRequestError::NoCollections);
        }
        if self.collections.len() > MAX_PATTERNS {
            return Err(TokenRequestError::TooManyPatterns);
        }
        let mut collections = Vec::with_capacity(self.collections.len());
        for text in &self.collections {
            let p = CollectionPattern::parse(text)?;
            if !collections.contains(&p) {
                collections.push(p);
            }
        }
        Ok(NewToken {
            user: self.user.clone(),
            collections,
            rights: normalize_rights(self.rights.iter().map(String::as_str))?,
        })
    }
}

/// A validated token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Who the token is for.
    pub user: String,
    /// What it covers (not empty, no duplicates).
    pub collections: Vec<CollectionPattern>,
    /// What it allows (not empty, sorted, no duplicates).
    pub rights: Vec<Right>,
}

/// What is known about a token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The first [`ID_LEN`] hex digits of the token's sha256; names it for listing and revoking.
    pub id: String,
    /// Who it belongs to.
    pub user: String,
    /// What it covers.
    pub collections: Vec<CollectionPattern>,
    /// What it allows.
    pub rights: Vec<Right>,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Revocation time, unix seconds; a revoked token allows nothing.
    pub revoked: Option<u64>,
}

impl TokenInfo {
    /// Whether this token allows `right` on `collection`. Checks, in order: revoked, collection,
    /// right.
    pub fn allows(&self, collection: &str, right: Right) -> Result<(), AuthError> {
        if self.revoked.is_some() {
            return Err(AuthError::Revoked {
                id: self.id.clone(),
            });
        }
        if !self.collections.iter().any(|p| p.matches(collection)) {
            return Err(AuthError::WrongCollection {
                id: self.id.clone(),
                collection: collection.to_owned(),
            });
        }
        if !self.rights.contains(&right) {
            return Err(AuthError::MissingRight {
                id: self.id.clone(),
                right,
            });
        }
        Ok(())
    }
}

/// A token just created: the secret (shown this once) and its info.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The secret: 40 lowercase hex digits, the form sregistry clients expect.
    pub token: String,
    /// Everything else.
    #[serde(flatten)]
    pub info: TokenInfo,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"<secret>")
            .field("info", &self.info)
            .finish()
    }
}

/// Why a presented token does not allow a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token matches: never issued here, mistyped, or an HMAC signature no token of the named
    /// user produced.
    #[error("the token is not valid on this node")]
    Unknown,
    /// The token was revoked.
    #[error("token {id} has been revoked")]
    Revoked {
        /// The token's id.
        id: String,
    },
    /// The token does not cover the collection.
    #[error("token {id} does not cover collection {collection:?}")]
    WrongCollection {
        /// The token's id.
        id: String,
        /// The collection asked for.
        collection: String,
    },
    /// The token covers the collection but not this right.
    #[error("token {id} does not grant the {right} right")]
    MissingRight {
        /// The token's id.
        id: String,
        /// The right asked for.
        right: Right,
    },
}

impl AuthError {
    /// A stable machine-readable name: `unknown`, `revoked`, `wrong_collection`,
    /// `missing_right`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Unknown => "unknown",
            AuthError::Revoked { .. } => "revoked",
            AuthError::WrongCollection { .. } => "wrong_collection",
            AuthError::MissingRight { .. } => "missing_right",
        }
    }
}

/// The answer to "does this credential allow this?".
pub type AuthResult = Result<TokenInfo, AuthError>;

/// One collection's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The collection name.
    pub name: String,
    /// Private collections are pulled only with a token that has the `pull` right.
    pub private: bool,
}

fn no_tokens() -> BackendError {
    BackendError::Unavailable("this node does not manage user tokens".into())
}

/// What the gateway needs from a node to manage and check user tokens and private collections.
///
/// Implementations store only what cannot reveal a token (see the node's `tokens` module) and
/// compare secrets in constant time. Every method has a default that fails closed with
/// [`BackendError::Unavailable`], for backends that keep no tokens.
pub trait TokenBackend: Clone + Send + Sync + 'static {
    /// Creates a token. The returned secret is not stored and cannot be shown again.
    fn create_token(
        &self,
        req: NewToken,
    ) -> impl Future<Output = Result<CreatedToken, BackendError>> + Send {
        let _ = req;
        async { Err(no_tokens()) }
    }

    /// Every token, revoked ones included, oldest first.
    fn tokens(&self) -> impl Future<Output = Result<Vec<TokenInfo>, BackendError>> + Send {
        async { Err(no_tokens()) }
    }

    /// Revokes the token with this id ([`BackendError::NotFound`] if none). Revoking twice is not
    /// an error; the first revocation time stays.
    fn revoke_token(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<TokenInfo, BackendError>> + Send {
        let _ = id;
        async { Err(no_tokens()) }
    }

    /// The token behind a bearer secret, whatever it covers (for `/v1/token-status`): only
    /// [`AuthError::Unknown`] or [`AuthError::Revoked`] can fail it.
    fn identify_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<AuthResult, BackendError>> + Send {
        let _ = token;
        async { Err(no_tokens()) }
    }

    /// Whether the bearer secret `token` allows `right` on `collection`.
    fn authorize_token(
        &self,
        token: &str,
        collection: &str,
        right: Right,
    ) -> impl Future<Output = Result<AuthResult, BackendError>> + Send {
        let _ = (token, collection, right);
        async { Err(no_tokens()) }
    }

    /// Whether an sregistry HMAC signature authorizes `right` on `collection`: `signature` (hex)
    /// must be HMAC-SHA256 of `message` keyed by one of `user`'s tokens. The caller parses the
    /// `Authorization` header and builds `message` (`kind|collection|timestamp|name|tag|`,
    /// client-protocols.md §1.4) and checks the timestamp window.
    fn authorize_hmac(
        &self,
        user: &str,
        message: &[u8],
        signature: &str,
        collection: &str,
        right: Right,
    ) -> impl Future<Output = Result<AuthResult, BackendError>> + Send {
        let _ = (user, message, signature, collection, right);
        async { Err(no_tokens()) }
    }

    /// Makes a collection private or public.
    fn set_collection_private(
        &self,
        name: &str,
        private: bool,
    ) -> impl Future<Output = Result<CollectionInfo, BackendError>> + Send {
        let _ = (name, private);
        async { Err(no_tokens()) }
    }

    /// Whether a collection is private. Collections never set are public.
    fn collection_is_private(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        let _ = name;
        async { Err(no_tokens()) }
    }

    /// Every collection with settings, by name.
    fn collections(
        &self,
    ) -> impl Future<Output = Result<Vec<CollectionInfo>, BackendError>> + Send {
        async { Err(no_tokens()) }
    }
}

/// Routes for tokens and collections, merged into the admin router under `/admin/v1`.
pub fn router<B: Backend + TokenBackend>() -> Router<SharedState<B>> {
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
async fn create<B: Backend + TokenBackend>(
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
async fn list<B: Backend + TokenBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<Vec<TokenInfo>>, AdminError> {
    Ok(Json(state.backend.tokens().await?))
}

/// A token id from the path: [`ID_LEN`] hex digits (case-insensitive).
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, AdminError> {
    let Path(id) = path.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let id = id.to_ascii_lowercase();
    if id.len() != ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request(format!(
            "invalid token id {id:?}: ids are the {ID_LEN} hex digits `shubnet token list` shows"
        )));
    }
    Ok(id)
}

/// `DELETE /admin/v1/tokens/{id}`.
async fn revoke<B: Backend + TokenBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TokenInfo>, AdminError> {
    let id = path_id(path)?;
    Ok(Json(state.backend.revoke_token(&id).await?))
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
async fn check<B: Backend + TokenBackend>(
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
async fn collections<B: Backend + TokenBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
) -> Result<Json<Vec<CollectionInfo>>, AdminError> {
    Ok(Json(state.backend.collections().await?))
}

/// `GET /admin/v1/collections/{name}`.
async fn collection<B: Backend + TokenBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CollectionInfo>, AdminError> {
    let name = path_collection(path)?;
    let private = state.backend.collection_is_private(&name).await?;
    Ok(Json(CollectionInfo { name, private }))
}

/// `PUT /admin/v1/collections/{name}/private`.
async fn set_private<B: Backend + TokenBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CollectionInfo>, AdminError> {
    let name = path_collection(path)?;
    Ok(Json(
        state.backend.set_collection_private(&name, true).await?,
    ))
}

/// `DELETE /admin/v1/collections/{name}/private`.
async fn set_public<B: Backend + TokenBackend>(
    _: Admin,
    State(state): State<SharedState<B>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CollectionInfo>, AdminError> {
    let name = path_collection(path)?;
    Ok(Json(
        state.backend.set_collection_private(&name, false).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{AddOutcome, CarImportOutcome, GcReport, PinInfo, RepairReport};
    use crate::{ByteStream, GatewayConfig};
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use shubnet_protocol::Cid;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    const ADMIN: &str = "admin-secret";
    const AUTH: (&str, &str) = ("authorization", "Bearer admin-secret");

    /// `Backend` methods the token routes never call.
    macro_rules! stub_backend {
        ($t:ty) => {
            impl Backend for $t {
                async fn block(&self, _: &Cid) -> Result<Option<bytes::Bytes>, BackendError> {
                    Ok(None)
                }
                async fn file_size(&self, _: &Cid) -> Result<Option<u64>, BackendError> {
                    Ok(None)
                }
                async fn read_file(
                    &self,
                    c: &Cid,
                    _: u64,
                    _: u64,
                ) -> Result<ByteStream, BackendError> {
                    Err(BackendError::NotFound(c.to_string()))
                }
                async fn add(&self, _: ByteStream) -> Result<AddOutcome, BackendError> {
                    Err(BackendError::Invalid("stub".into()))
                }
                async fn import_car(
                    &self,
                    _: ByteStream,
                ) -> Result<CarImportOutcome, BackendError> {
                    Err(BackendError::Invalid("stub".into()))
                }
                async fn pin(&self, _: &Cid) -> Result<(), BackendError> {
                    Ok(())
                }
                async fn unpin(&self, _: &Cid) -> Result<(), BackendError> {
                    Ok(())
                }
                async fn pins(&self) -> Result<Vec<PinInfo>, BackendError> {
                    Ok(Vec::new())
                }
                async fn gc(&self) -> Result<GcReport, BackendError> {
                    Ok(GcReport::default())
                }
                async fn repair(&self) -> Result<RepairReport, BackendError> {
                    Ok(RepairReport::default())
                }
                fn check_admin_token(&self, token: &str) -> bool {
                    token == ADMIN
                }
            }
        };
    }

    /// Tokens in memory, secrets in the clear: the routes are under test here, not storage.
    #[derive(Clone, Default)]
    struct MemTokens {
        inner: Arc<Mutex<Mem>>,
    }

    #[derive(Default)]
    struct Mem {
        tokens: Vec<(String, TokenInfo)>,
        private: BTreeMap<String, bool>,
    }

    impl MemTokens {
        fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
            self.inner.lock().expect("lock")
        }
        fn find(&self, token: &str) -> AuthResult {
            let m = self.lock();
            let (_, info) = m
                .tokens
                .iter()
                .find(|(t, _)| t == token)
                .ok_or(AuthError::Unknown)?;
            Ok(info.clone())
        }
    }

    stub_backend!(MemTokens);

    impl TokenBackend for MemTokens {
        async fn create_token(&self, req: NewToken) -> Result<CreatedToken, BackendError> {
            let mut m = self.lock();
            let n = m.tokens.len() + 1;
            let info = TokenInfo {
                id: format!("{n:08x}"),
                user: req.user,
                collections: req.collections,
                rights: req.rights,
                created: 1_700_000_000,
                revoked: None,
            };
            let token = format!("{n:040x}");
            m.tokens.push((token.clone(), info.clone()));
            Ok(CreatedToken { token, info })
        }
        async fn tokens(&self) -> Result<Vec<TokenInfo>, BackendError> {
            Ok(self.lock().tokens.iter().map(|(_, i)| i.clone()).collect())
        }
        async fn revoke_token(&self, id: &str) -> Result<TokenInfo, BackendError> {
            let mut m = self.lock();
            let (_, info) = m
                .tokens
                .iter_mut()
                .find(|(_, i)| i.id == id)
                .ok_or_else(|| BackendError::NotFound(format!("no token with id {id}")))?;
            info.revoked.get_or_insert(1_700_000_001);
            Ok(info.clone())
        }
        async fn identify_token(&self, token: &str) -> Result<AuthResult, BackendError> {
            Ok(self.find(token))
        }
        async fn authorize_token(
            &self,
            token: &str,
            collection: &str,
            right: Right,
        ) -> Result<AuthResult, BackendError> {
            Ok(self
                .find(token)
                .and_then(|i| i.allows(collection, right).map(|()| i)))
        }
        async fn set_collection_private(
            &self,
            name: &str,
            private: bool,
        ) -> Result<CollectionInfo, BackendError> {
            self.lock().private.insert(name.to_owned(), private);
            Ok(CollectionInfo {
                name: name.to_owned(),
                private,
            })
        }
        async fn collection_is_private(&self, name: &str) -> Result<bool, BackendError> {
            Ok(self.lock().private.get(name).copied().unwrap_or(false))
        }
        async fn collections(&self) -> Result<Vec<CollectionInfo>, BackendError> {
            Ok(self
                .lock()
                .private
                .iter()
                .map(|(name, &private)| CollectionInfo {
                    name: name.clone(),
                    private,
                })
                .collect())
        }
    }

    /// A backend that keeps no tokens: every method is the trait's default.
    #[derive(Clone)]
    struct NoTokens;
    stub_backend!(NoTokens);
    impl TokenBackend for NoTokens {}

    fn app<B: Backend + TokenBackend>(b: &B) -> Router {
        crate::app(b.clone(), GatewayConfig::default())
    }

    struct Reply {
        status: StatusCode,
        body: serde_json::Value,
        text: String,
    }

    impl Reply {
        fn error(&self) -> String {
            self.body["error"].as_str().unwrap_or_default().to_owned()
        }
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::from(body.to_owned())).expect("request")
    }

    async fn send(app: Router, r: Request<Body>) -> Reply {
        let resp = app.oneshot(r).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply { status, body, text }
    }

    async fn call<B: Backend + TokenBackend>(
        b: &B,
        method: &str,
        uri: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut headers = vec![AUTH];
        headers.extend_from_slice(extra);
        send(app(b), req(method, uri, &headers, body)).await
    }

    async fn create(b: &MemTokens, user: &str, colls: &[&str], rights: &[&str]) -> CreatedToken {
        let body = serde_json::json!({"user": user, "collections": colls, "rights": rights});
        let r = call(b, "POST", "/admin/v1/tokens", &[], &body.to_string()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        serde_json::from_value(r.body).expect("CreatedToken")
    }

    async fn check(b: &MemTokens, token: &str, collection: &str, right: &str) -> Reply {
        let uri = format!("/admin/v1/tokens/check?collection={collection}&right={right}");
        call(b, "GET", &uri, &[(CHECK_TOKEN_HEADER, token)], "").await
    }

    const ROUTES: [(&str, &str); 8] = [
        ("POST", "/admin/v1/tokens"),
        ("GET", "/admin/v1/tokens"),
        ("GET", "/admin/v1/tokens/check?collection=a&right=pull"),
        ("DELETE", "/admin/v1/tokens/00000001"),
        ("GET", "/admin/v1/collections"),
        ("GET", "/admin/v1/collections/lab-a"),
        ("PUT", "/admin/v1/collections/lab-a/private"),
        ("DELETE", "/admin/v1/collections/lab-a/private"),
    ];

    #[test]
    fn rights_parse_with_clear_errors() {
        assert_eq!(
            Right::parse_list("push, pull,push"),
            Ok(vec![Right::Pull, Right::Push])
        );
        let e = Right::parse_list("pull,fly").expect_err("fly").to_string();
        assert!(
            e.contains("\"fly\"") && e.contains("pull, push, delete"),
            "{e}"
        );
        let e = Right::parse_list(" , ").expect_err("empty").to_string();
        assert!(e.contains("at least one right"), "{e}");
        assert!(Right::from_str("PULL").is_err(), "rights are lowercase");
    }

    #[test]
    fn patterns_parse_and_match() {
        let cases: [(&str, &[&str], &[&str]); 5] = [
            ("*", &["lab-a", "x"], &[]),
            ("lab-a", &["lab-a"], &["lab-ab", "lab", "lab-b"]),
            ("lab-a/*", &["lab-a"], &["lab-ab", "lab-b"]),
            ("lab-*", &["lab-a", "lab-bio"], &["lab", "labs", "other"]),
            ("lab*", &["lab", "labs", "lab-a"], &["la", "xlab"]),
        ];
        for (text, yes, no) in cases {
            let p = CollectionPattern::parse(text).expect(text);
            assert_eq!(p.as_str(), text);
            for c in yes {
                assert!(p.matches(c), "{text} should match {c}");
            }
            for c in no {
                assert!(!p.matches(c), "{text} should not match {c}");
            }
        }
        for bad in [
            "", "Lab-A", "lab_a", "lab.a", "lab-a/", "lab-a/b", "lab--*", "-*", "a*b", "**",
            "lab-a/**", "../x", "lab a",
        ] {
            let e = CollectionPattern::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid collection pattern"), "{bad}: {e}");
        }
        let long = "a".repeat(40);
        assert!(CollectionPattern::parse(&long).is_err());
        // Serde goes through the same checks.
        assert!(serde_json::from_str::<CollectionPattern>("\"lab_a\"").is_err());
        let p: CollectionPattern = serde_json::from_str("\"lab-*\"").expect("pattern");
        assert_eq!(serde_json::to_string(&p).expect("json"), "\"lab-*\"");
    }

    #[test]
    fn requests_validate_every_field() {
        let ok = TokenRequest {
            user: "alice".into(),
            collections: vec!["lab-a".into(), "lab-a".into(), "lab-*".into()],
            rights: vec!["push".into(), "pull".into()],
        };
        let v = ok.validate().expect("valid");
        assert_eq!(v.collections.len(), 2, "duplicates dropped");
        assert_eq!(v.rights, vec![Right::Pull, Right::Push]);
        for (req, want) in [
            (
                TokenRequest {
                    user: "Alice".into(),
                    ..ok.clone()
                },
                "invalid user name",
            ),
            (
                TokenRequest {
                    user: String::new(),
                    ..ok.clone()
                },
                "invalid user name",
            ),
            (
                TokenRequest {
                    collections: vec![],
                    ..ok.clone()
                },
                "at least one collection",
            ),
            (
                TokenRequest {
                    rights: vec![],
                    ..ok.clone()
                },
                "at least one right",
            ),
            (
                TokenRequest {
                    rights: vec!["admin".into()],
                    ..ok.clone()
                },
                "valid rights are pull, push, delete",
            ),
            (
                TokenRequest {
                    collections: vec!["x".into(); MAX_PATTERNS + 1],
                    ..ok.clone()
                },
                "at most",
            ),
        ] {
            let e = req.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{req:?}: {e}");
        }
    }

    #[test]
    fn allows_checks_revoked_then_collection_then_right() {
        let mut info = TokenInfo {
            id: "0badcafe".into(),
            user: "alice".into(),
            collections: vec![CollectionPattern::parse("lab-a/*").expect("p")],
            rights: vec![Right::Pull],
            created: 1,
            revoked: None,
        };
        assert_eq!(info.allows("lab-a", Right::Pull), Ok(()));
        let e = info
            .allows("lab-b", Right::Push)
            .expect_err("wrong collection");
        assert_eq!(e.reason(), "wrong_collection");
        assert_eq!(
            info.allows("lab-a", Right::Push)
                .expect_err("right")
                .reason(),
            "missing_right"
        );
        info.revoked = Some(2);
        assert_eq!(
            info.allows("lab-a", Right::Pull)
                .expect_err("revoked")
                .reason(),
            "revoked"
        );
    }

    #[test]
    fn created_token_debug_hides_the_secret() {
        let c = CreatedToken {
            token: "5027225717bf0030465db1e7099e496022c42181".into(),
            info: TokenInfo {
                id: "12345678".into(),
                user: "u".into(),
                collections: vec![],
                rights: vec![],
                created: 0,
                revoked: None,
            },
        };
        assert!(!format!("{c:?}").contains("5027225717"));
    }

    #[tokio::test]
    async fn every_route_needs_the_admin_token() {
        let b = MemTokens::default();
        for (method, uri) in ROUTES {
            for headers in [
                vec![],
                vec![("authorization", "Bearer wrong")],
                vec![("authorization", "Basic YWRtaW4tc2VjcmV0")],
            ] {
                let r = send(app(&b), req(method, uri, &headers, "{}")).await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} {headers:?}"
                );
                assert!(r.error().contains("admin token"), "{}", r.text);
            }
        }
        assert!(b.lock().tokens.is_empty());
        assert!(b.lock().private.is_empty());
    }

    #[tokio::test]
    async fn remote_peers_are_refused() {
        let b = MemTokens::default();
        for (method, uri) in ROUTES {
            for headers in [vec![AUTH], vec![]] {
                let mut r = req(method, uri, &headers, "{}");
                let peer: SocketAddr = "192.0.2.7:5000".parse().expect("addr");
                r.extensions_mut().insert(ConnectInfo(peer));
                let r = send(app(&b), r).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri}");
                assert!(r.error().contains("local"), "{}", r.text);
            }
        }
        assert!(b.lock().tokens.is_empty());
    }

    #[tokio::test]
    async fn create_list_check_revoke() {
        let b = MemTokens::default();
        let t = create(&b, "alice", &["lab-a/*"], &["pull"]).await;
        assert_eq!(t.info.user, "alice");
        assert_eq!(t.info.rights, vec![Right::Pull]);

        let r = call(&b, "GET", "/admin/v1/tokens", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            !r.text.contains(&t.token),
            "list shows the secret: {}",
            r.text
        );
        assert_eq!(r.body[0]["id"], t.info.id.as_str());
        assert_eq!(r.body[0]["collections"][0], "lab-a/*");
        assert_eq!(r.body[0]["revoked"], serde_json::Value::Null);

        let r = check(&b, &t.token, "lab-a", "pull").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["allowed"], true);
        assert_eq!(r.body["token"]["id"], t.info.id.as_str());

        for (coll, right, reason) in [
            ("lab-b", "pull", "wrong_collection"),
            ("lab-a", "push", "missing_right"),
            ("lab-a", "delete", "missing_right"),
        ] {
            let r = check(&b, &t.token, coll, right).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{coll} {right}: {}",
                r.text
            );
            assert_eq!(r.body["reason"], reason);
            assert_eq!(r.body["allowed"], false);
            assert!(r.error().contains(&t.info.id), "{}", r.text);
        }
        let r = check(&b, &"0".repeat(40), "lab-a", "pull").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body["reason"], "unknown");

        let uri = format!("/admin/v1/tokens/{}", t.info.id.to_uppercase());
        let r = call(&b, "DELETE", &uri, &[], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.body["revoked"].is_u64());
        let r = check(&b, &t.token, "lab-a", "pull").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body["reason"], "revoked");
    }

    #[tokio::test]
    async fn bad_input_is_400_with_a_reason() {
        let b = MemTokens::default();
        let t = create(&b, "alice", &["*"], &["pull"]).await;
        for (method, uri, extra, body, want) in [
            ("POST", "/admin/v1/tokens", None, "not json", "must be JSON"),
            (
                "POST",
                "/admin/v1/tokens",
                None,
                r#"{"user":"a"}"#,
                "must be JSON",
            ),
            (
                "POST",
                "/admin/v1/tokens",
                None,
                r#"{"user":"a","collections":["x"],"rights":["pull","fly"]}"#,
                "valid rights are pull, push, delete",
            ),
            (
                "POST",
                "/admin/v1/tokens",
                None,
                r#"{"user":"a","collections":["Lab_A"],"rights":["pull"]}"#,
                "invalid collection pattern",
            ),
            (
                "DELETE",
                "/admin/v1/tokens/xyz",
                None,
                "",
                "invalid token id",
            ),
            (
                "DELETE",
                "/admin/v1/tokens/123456789",
                None,
                "",
                "invalid token id",
            ),
            (
                "GET",
                "/admin/v1/tokens/check?collection=a",
                Some(t.token.as_str()),
                "",
                "right=",
            ),
            (
                "GET",
                "/admin/v1/tokens/check?collection=a&right=own",
                Some(t.token.as_str()),
                "",
                "valid rights",
            ),
            (
                "GET",
                "/admin/v1/tokens/check?collection=A_b&right=pull",
                Some(t.token.as_str()),
                "",
                "invalid collection",
            ),
            (
                "GET",
                "/admin/v1/tokens/check?collection=a&right=pull",
                None,
                "",
                "X-Shubnet-Token",
            ),
            (
                "PUT",
                "/admin/v1/collections/Bad_Name/private",
                None,
                "",
                "invalid collection",
            ),
            (
                "GET",
                "/admin/v1/collections/..",
                None,
                "",
                "invalid collection",
            ),
        ] {
            let extra: Vec<(&str, &str)> = extra
                .map(|t| vec![(CHECK_TOKEN_HEADER, t)])
                .unwrap_or_default();
            let r = call(&b, method, uri, &extra, body).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri}: {}",
                r.text
            );
            assert!(r.error().contains(want), "{method} {uri}: {}", r.text);
        }
        assert_eq!(b.lock().tokens.len(), 1, "no bad request created a token");
        let r = call(&b, "DELETE", "/admin/v1/tokens/abcdef01", &[], "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }

    #[tokio::test]
    async fn collections_turn_private_and_public() {
        let b = MemTokens::default();
        let r = call(&b, "GET", "/admin/v1/collections/lab-a", &[], "").await;
        assert_eq!(
            r.body,
            serde_json::json!({"name": "lab-a", "private": false})
        );
        let r = call(&b, "PUT", "/admin/v1/collections/lab-a/private", &[], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            r.body,
            serde_json::json!({"name": "lab-a", "private": true})
        );
        let r = call(&b, "GET", "/admin/v1/collections/lab-a", &[], "").await;
        assert_eq!(r.body["private"], true);
        let r = call(&b, "GET", "/admin/v1/collections", &[], "").await;
        assert_eq!(
            r.body,
            serde_json::json!([{"name": "lab-a", "private": true}])
        );
        let r = call(&b, "DELETE", "/admin/v1/collections/lab-a/private", &[], "").await;
        assert_eq!(
            r.body,
            serde_json::json!({"name": "lab-a", "private": false})
        );
    }

    #[tokio::test]
    async fn a_backend_without_tokens_fails_closed_with_503() {
        let b = NoTokens;
        for (method, uri) in ROUTES {
            let extra = [(CHECK_TOKEN_HEADER, "x")];
            let body = r#"{"user":"a","collections":["x"],"rights":["pull"]}"#;
            let r = call(&b, method, uri, &extra, body).await;
            assert_eq!(
                r.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {uri}: {}",
                r.text
            );
            assert!(
                r.error().contains("does not manage user tokens"),
                "{}",
                r.text
            );
        }
    }
}
