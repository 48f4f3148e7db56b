//! User tokens and private collections in the gateway: the [`TokenBackend`] trait a node
//! implements and the admin routes ([`routes`]) the `shubnet token` and `shubnet collection`
//! commands call. The plain types live in [`shubnet_protocol::tokens`] (re-exported here) so the
//! node's token store and the CLI need no gateway. This module must not decide visibility: that
//! is `crate::visibility`'s.
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
//! Routes, merged under `/admin/v1` and all behind the admin API's [`Admin`](crate::admin::Admin) check (loopback
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

mod routes;
#[cfg(test)]
mod tests;

use crate::BackendError;
use std::future::Future;

pub use routes::router;
pub use shubnet_protocol::tokens::*;

/// The header `/tokens/check` reads the user token from.
pub const CHECK_TOKEN_HEADER: &str = "x-shubnet-token";

/// What the gateway needs from a node to manage and check user tokens and private collections.
///
/// Implementations store only what cannot reveal a token (see the node's `tokens` module) and
/// compare secrets in constant time. No method has a default: a backend that keeps
/// no tokens says so in each answer.
pub trait TokenBackend: Clone + Send + Sync + 'static {
    /// Creates a token. The returned secret is not stored and cannot be shown again.
    fn create_token(
        &self,
        req: NewToken,
    ) -> impl Future<Output = Result<CreatedToken, BackendError>> + Send;

    /// Every token, revoked ones included, oldest first.
    fn tokens(&self) -> impl Future<Output = Result<Vec<TokenInfo>, BackendError>> + Send;

    /// Revokes the token with this id ([`BackendError::NotFound`] if none). Revoking twice is not
    /// an error; the first revocation time stays.
    fn revoke_token(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<TokenInfo, BackendError>> + Send;

    /// The token behind a bearer secret, whatever it covers (for `/v1/token-status`): only
    /// [`AuthError::Unknown`] or [`AuthError::Revoked`] can fail it.
    fn identify_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<AuthResult, BackendError>> + Send;

    /// Whether the bearer secret `token` allows `right` on `collection`.
    fn authorize_token(
        &self,
        token: &str,
        collection: &str,
        right: Right,
    ) -> impl Future<Output = Result<AuthResult, BackendError>> + Send;

    /// Whether an sregistry HMAC signature authorizes `right` on `collection`. The caller parses
    /// the `Authorization` header into the claim and checks the timestamp window.
    fn authorize_hmac(
        &self,
        claim: HmacClaim,
        collection: &str,
        right: Right,
    ) -> impl Future<Output = Result<AuthResult, BackendError>> + Send;

    /// Makes a collection private or public.
    fn set_collection_private(
        &self,
        name: &str,
        private: bool,
    ) -> impl Future<Output = Result<CollectionInfo, BackendError>> + Send;

    /// Every collection with settings, by name.
    fn collections(&self)
    -> impl Future<Output = Result<Vec<CollectionInfo>, BackendError>> + Send;
}
