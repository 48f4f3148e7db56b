//! The token routes against an in-memory token store: admin checks, the create/list/check/revoke
//! cycle, input errors, collection privacy, and a backend that keeps no tokens.

use super::*;
use crate::GatewayConfig;
use crate::backend::{AdminAuth, VisibilityBackend};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use shubnet_protocol::Cid;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const ADMIN: &str = "admin-secret";
const AUTH: (&str, &str) = ("authorization", "Bearer admin-secret");

/// The admin check the token routes sit behind.
macro_rules! admin_auth {
    ($t:ty) => {
        impl AdminAuth for $t {
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

admin_auth!(MemTokens);

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
    async fn authorize_hmac(
        &self,
        _: HmacClaim,
        _: &str,
        _: Right,
    ) -> Result<AuthResult, BackendError> {
        Ok(Err(AuthError::Unknown))
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
impl VisibilityBackend for MemTokens {
    async fn content_collections(&self, _: &Cid) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }
    async fn collection_is_private(&self, name: &str) -> Result<bool, BackendError> {
        Ok(self.lock().private.get(name).copied().unwrap_or(false))
    }
}

/// A node that keeps no tokens: every token and collection answer is the same 503.
#[derive(Clone)]
struct NoTokens;
admin_auth!(NoTokens);

fn no_tokens() -> BackendError {
    BackendError::Unavailable("this node does not manage user tokens".into())
}

impl TokenBackend for NoTokens {
    async fn create_token(&self, _: NewToken) -> Result<CreatedToken, BackendError> {
        Err(no_tokens())
    }
    async fn tokens(&self) -> Result<Vec<TokenInfo>, BackendError> {
        Err(no_tokens())
    }
    async fn revoke_token(&self, _: &str) -> Result<TokenInfo, BackendError> {
        Err(no_tokens())
    }
    async fn identify_token(&self, _: &str) -> Result<AuthResult, BackendError> {
        Err(no_tokens())
    }
    async fn authorize_token(
        &self,
        _: &str,
        _: &str,
        _: Right,
    ) -> Result<AuthResult, BackendError> {
        Err(no_tokens())
    }
    async fn authorize_hmac(
        &self,
        _: HmacClaim,
        _: &str,
        _: Right,
    ) -> Result<AuthResult, BackendError> {
        Err(no_tokens())
    }
    async fn set_collection_private(
        &self,
        _: &str,
        _: bool,
    ) -> Result<CollectionInfo, BackendError> {
        Err(no_tokens())
    }
    async fn collections(&self) -> Result<Vec<CollectionInfo>, BackendError> {
        Err(no_tokens())
    }
}

impl VisibilityBackend for NoTokens {
    async fn content_collections(&self, _: &Cid) -> Result<Vec<String>, BackendError> {
        Err(no_tokens())
    }
    async fn collection_is_private(&self, _: &str) -> Result<bool, BackendError> {
        Err(no_tokens())
    }
}

/// The token routes alone, under `/admin/v1` as [`crate::app`] mounts them.
fn app<B: routes::TokenRoutes>(b: &B) -> Router {
    Router::new()
        .nest("/admin/v1", router::<B>())
        .with_state(crate::shared_state(b.clone(), GatewayConfig::default()))
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

async fn call<B: routes::TokenRoutes>(
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
