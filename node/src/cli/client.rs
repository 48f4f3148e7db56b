//! A small HTTP client for a node's admin and content APIs.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::NodeArgs;
use crate::paths::DataDir;
use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;

/// Talks to one node.
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    data_dir: std::path::PathBuf,
    bearer: Option<String>,
}

impl NodeClient {
    /// A client for the node named by `args`. The token is read lazily, only for admin calls.
    pub fn new(args: &NodeArgs) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: args.base_url().trim_end_matches('/').to_string(),
            http,
            token: args.token.clone(),
            data_dir: args
                .data_dir
                .clone()
                .unwrap_or_else(DataDir::default_location),
            bearer: None,
        })
    }

    /// Sends `token` as a bearer credential on content and verification requests (a user token
    /// with the pull right, for private collections).
    pub fn with_bearer(mut self, token: Option<String>) -> Self {
        self.bearer = token;
        self
    }

    fn token(&self) -> Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let path = DataDir::new(&self.data_dir).admin_token();
        let t = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading the admin token {}; pass --data-dir of the node (or --token) \
                 — the token is created when the node first starts",
                path.display()
            )
        })?;
        Ok(t.trim().to_string())
    }

    /// A GET of a content URL (no token needed), checked for success.
    pub async fn get(&self, path_and_query: &str) -> Result<reqwest::Response> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut req = self.http.get(&url);
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.with_context(|| self.unreachable(&url))?;
        check(resp, Api::Content).await
    }

    /// An authenticated admin call with an optional streamed body, decoded as JSON.
    pub async fn admin<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
    ) -> Result<T> {
        let url = format!("{}/admin/v1{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(self.token()?);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(b);
        }
        let resp = req.send().await.with_context(|| self.unreachable(&url))?;
        let resp = check(resp, Api::Admin).await?;
        resp.json().await.context("reading the node's reply")
    }

    /// An authenticated admin call with a JSON body.
    pub async fn admin_json<T: DeserializeOwned, B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let url = format!("{}/admin/v1{}", self.base, path);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(self.token()?)
            .json(body)
            .send()
            .await
            .with_context(|| self.unreachable(&url))?;
        check(resp, Api::Admin)
            .await?
            .json()
            .await
            .context("reading the node's reply")
    }

    /// An authenticated admin GET whose body is returned as a response to stream.
    pub async fn admin_stream(&self, path: &str) -> Result<reqwest::Response> {
        let url = format!("{}/admin/v1{}", self.base, path);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(self.token()?)
            .send()
            .await
            .with_context(|| self.unreachable(&url))?;
        check(resp, Api::Admin).await
    }

    fn unreachable(&self, url: &str) -> String {
        format!(
            "cannot reach the node at {url}; is `shubnet serve` running? \
             (set --node or SHUBNET_NODE to its URL)"
        )
    }
}

/// Which API a request went to, so an error can say what to do next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/admin/v1`: needs the node's admin token.
    Admin,
    /// Content and registry reads: public, or a user token for private collections.
    Content,
}

async fn check(resp: reqwest::Response, api: Api) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or(text);
    match next_step(status, api) {
        Some(hint) => bail!("the node answered {status}: {}\n  hint: {hint}", msg.trim()),
        None => bail!("the node answered {status}: {}", msg.trim()),
    }
}

/// What an operator or user can do about an error status.
fn next_step(status: reqwest::StatusCode, api: Api) -> Option<&'static str> {
    use reqwest::StatusCode as S;
    Some(match (status, api) {
        (S::UNAUTHORIZED | S::FORBIDDEN, Api::Admin) => {
            "the admin token was refused: run the command where the node runs with its \
             --data-dir (the token is DATA_DIR/keys/admin.token), or pass --token; remote \
             admin calls also need `serve --allow-remote-admin`"
        }
        (S::UNAUTHORIZED | S::FORBIDDEN, Api::Content) => {
            "the collection is private: pass --pull-token with a user token that has the pull \
             right (an operator creates one with `shubnet token create --rights pull`)"
        }
        (S::NOT_FOUND, _) => {
            "nothing by that name here: list tags with `shubnet tags [COLLECTION]` and content \
             with `shubnet pin ls`"
        }
        (S::PAYLOAD_TOO_LARGE, _) => {
            "the file is larger than the node accepts: raise http.max_upload_bytes in \
             config.toml (see `shubnet config reference`) and restart the node"
        }
        (S::SERVICE_UNAVAILABLE, _) => {
            "the node is not ready (starting, or not yet in a federation): retry shortly, and \
             see `shubnet status`"
        }
        (S::CONFLICT, _) => {
            "the tag is frozen or the request conflicts with the node's state: \
             see `shubnet tags` for the tag's current state"
        }
        (S::INSUFFICIENT_STORAGE, _) => {
            "the node's disk is full: free space or run `shubnet gc`, then retry"
        }
        _ => return None,
    })
}
