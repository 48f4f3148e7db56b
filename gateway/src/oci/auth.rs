//! Credentials of the OCI API. A client presents a shubnet user token either as the password of
//! `Basic` auth (`apptainer registry login`, docker-style credentials) or as a `Bearer` token
//! that the token endpoint handed out: that endpoint checks the Basic credentials and returns
//! the same user token, so rights stay the token's own and revocation applies at once.
//!
//! Whether a collection is private is `crate::visibility`'s answer; this module only finds the
//! credential and turns refusals into the spec's 401 challenge or 403.

use super::OciBackend;
use super::error::{Code, OciError};
use crate::SharedState;
use crate::tokens::{AuthError, Right, TokenInfo};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

/// The user token a request carries, from `Bearer` or from the password (else the user name)
/// of `Basic`.
pub(crate) fn credential(headers: &HeaderMap) -> Option<String> {
    let value = super::header_str(headers, header::AUTHORIZATION)?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
    let token = if pass.is_empty() { user } else { pass };
    (!token.is_empty()).then(|| token.to_owned())
}

/// The 401 that makes a client fetch a token for `scope` and retry.
pub(crate) fn challenge<B>(state: &SharedState<B>, headers: &HeaderMap, scope: &str) -> OciError {
    let base = crate::shub::external_base(headers, state.config.tls)
        .unwrap_or_else(|_| "http://localhost".to_owned());
    let service = base
        .split_once("://")
        .map_or(base.as_str(), |(_, host)| host)
        .to_owned();
    let value = format!(r#"Bearer realm="{base}/v2/token",service="{service}",scope="{scope}""#);
    OciError::new(Code::Unauthorized, "authentication required")
        .with_header(header::WWW_AUTHENTICATE, &value)
}

fn scope(repo: &super::Repo, actions: &str) -> String {
    format!("repository:{}:{actions}", repo.path())
}

/// The token's info if the request may use `right` on the repository's collection; a 401
/// challenge without a credential, or with one this node does not know; 403 otherwise.
pub(crate) async fn require<B: OciBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    repo: &super::Repo,
    right: Right,
) -> Result<TokenInfo, OciError> {
    let actions = match right {
        Right::Pull => "pull",
        Right::Push => "push,pull",
        Right::Delete => "delete",
    };
    let Some(token) = credential(headers) else {
        return Err(challenge(state, headers, &scope(repo, actions)));
    };
    match state
        .backend
        .authorize_token(&token, &repo.collection, right)
        .await?
    {
        Ok(info) => Ok(info),
        Err(e @ (AuthError::Unknown | AuthError::Revoked { .. })) => {
            Err(challenge(state, headers, &scope(repo, actions)).with_message(e.to_string()))
        }
        Err(e) => Err(OciError::new(Code::Denied, e.to_string())),
    }
}

/// `Ok` if the repository's collection is public or the request may pull it; a 401 challenge
/// when a private collection is asked for without a credential.
pub(crate) async fn may_pull<B: OciBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    repo: &super::Repo,
) -> Result<(), OciError> {
    let token = credential(headers);
    match crate::visibility::may_pull_with(&state.backend, token.as_deref(), &repo.collection).await
    {
        Ok(_) => Ok(()),
        Err(crate::visibility::Refusal::NoCredential { .. }) => {
            Err(challenge(state, headers, &scope(repo, "pull")))
        }
        Err(r) => Err(r.into()),
    }
}

/// The ping refuses only credentials this node does not know, so a client learns at login.
pub(crate) async fn check_ping<B: OciBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
) -> Result<(), OciError> {
    let Some(token) = credential(headers) else {
        return Ok(());
    };
    match state.backend.identify_token(&token).await? {
        Ok(_) => Ok(()),
        Err(e) => Err(challenge(state, headers, "").with_message(e.to_string())),
    }
}

/// `GET /v2/token`: exchanges Basic credentials (a user token as the password) for a bearer
/// token. Without credentials there is nothing to hand out: anonymous clients need no token for
/// public collections, and a private or push scope needs the user's token. The `scope` asked
/// for is not narrowed into the token: each request is checked against the token's own rights.
pub(crate) async fn token<B: OciBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
) -> Result<Response, OciError> {
    let Some(token) = credential(&headers) else {
        return Err(OciError::new(
            Code::Unauthorized,
            "send a shubnet user token as the Basic auth password",
        ));
    };
    match state.backend.identify_token(&token).await? {
        Ok(_) => Ok(Json(json!({
            "token": token,
            "access_token": token,
            "expires_in": 3600,
            "issued_at": crate::shub::time::rfc3339(crate::shub::time::unix_now()),
        }))
        .into_response()),
        Err(e) => Err(OciError::new(Code::Unauthorized, e.to_string())),
    }
}
