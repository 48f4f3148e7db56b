//! A small HTTP client for a node's admin and content APIs.

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
        check(resp).await
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
        let resp = check(resp).await?;
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
        check(resp)
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
        check(resp).await
    }

    fn unreachable(&self, url: &str) -> String {
        format!(
            "cannot reach the node at {url}; is `shubnet serve` running? \
             (set --node or SHUBNET_NODE to its URL)"
        )
    }
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or(text);
    bail!("the node answered {status}: {}", msg.trim())
}
