//! shubnet's HTTP face. Each client API is its own router, bounded by the backend traits it
//! calls ([`backend`]); [`app`] merges them over a [`Backend`] that implements them all.
//!
//! The gateway never touches a disk or a socket other than its HTTP connections: everything it
//! serves comes through the backend traits the node implements, so every route can be tested
//! in memory. What is private is decided in one place, [`visibility`].

pub mod admin;
pub mod backend;
mod caching;
mod error;
pub mod health;
pub mod ipfs;
pub mod library;
pub mod metrics;
pub mod oci;
pub mod publish;
pub use shubnet_protocol::search;
pub mod shub;
pub mod timeouts;
pub mod tls;
pub mod tokens;
pub mod ui;
pub mod verify;
pub mod visibility;

pub use backend::{
    AdminAuth, Backend, BackendError, ByteStream, ContentBackend, LifecycleBackend, MetricsBackend,
    NotReady, PublishBackend, RegistryBackend, StoreBackend, UploadBackend, UsageBackend,
    VisibilityBackend,
};
pub use tokens::TokenBackend;

use axum::Router;
use std::sync::Arc;

/// Settings the HTTP layer needs; the node fills them from its configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Accept admin API calls from non-loopback peers. Off by default: the admin API is for the
    /// local CLI.
    pub allow_remote_admin: bool,
    /// Largest upload accepted by the admin add and CAR import routes, in bytes.
    pub max_upload_bytes: u64,
    /// Whether this gateway itself serves HTTPS; absolute URLs it builds (shub `image`) then use
    /// `https` unless a proxy's `X-Forwarded-Proto` says otherwise.
    pub tls: bool,
    /// Request-head and body-idle timeouts ([`timeouts`]).
    pub timeouts: timeouts::Timeouts,
    /// How long a library upload that no tag call claimed stays pinned before the node
    /// unpins it (the node sweeps; the gateway only records uploads).
    pub upload_expiry: std::time::Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            allow_remote_admin: false,
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            tls: false,
            timeouts: timeouts::Timeouts::default(),
            upload_expiry: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// Shared state of every route.
#[derive(Debug)]
pub struct AppState<B> {
    /// The node behind the gateway.
    pub backend: B,
    /// HTTP settings.
    pub config: GatewayConfig,
    /// Per-process key that signs the download URLs of private images (shub `image`).
    pub url_key: [u8; 32],
    /// Library uploads waiting for their tag call.
    pub uploads: library::Uploads,
    /// Library multipart uploads in progress.
    pub multipart: library::Sessions,
    /// Rendered shub manifest bodies of public tags.
    pub rendered: shub::rendered::Rendered,
    /// sregistry HMAC signatures already used within their acceptance window.
    pub hmac_seen: shub::replay::Seen,
    /// OCI blob upload sessions in progress.
    pub oci_uploads: oci::OciUploads,
}

/// The `Content-Length` a request declares, if any: upload routes refuse an oversized body
/// before reading a byte of it.
pub(crate) fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Handlers receive the state behind an `Arc` so cloning per request is cheap.
pub type SharedState<B> = Arc<AppState<B>>;

/// The state every route shares, with a fresh per-process download-URL key.
pub fn shared_state<B>(backend: B, config: GatewayConfig) -> SharedState<B> {
    let mut url_key = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut url_key) {
        // Without randomness private download URLs would be guessable; refuse them instead.
        tracing::error!(error = %e, "no OS randomness; private shub download URLs will not verify");
    }
    Arc::new(AppState {
        backend,
        config,
        url_key,
        uploads: library::Uploads::default(),
        multipart: library::Sessions::default(),
        rendered: shub::rendered::Rendered::default(),
        hmac_seen: shub::replay::Seen::default(),
        oci_uploads: oci::OciUploads::default(),
    })
}

/// The whole HTTP application. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the admin API can see the peer.
pub fn app<B: Backend>(backend: B, config: GatewayConfig) -> Router {
    let idle = config.timeouts.body_idle;
    let state = shared_state(backend, config);
    Router::new()
        .merge(ipfs::router::<B>())
        .merge(health::router::<B>())
        .merge(shub::router::<B>())
        .merge(library::router::<B>())
        .merge(oci::router::<B>())
        .merge(ui::router::<B>())
        .nest("/shubnet/v1", verify::router::<B>())
        .nest(
            "/admin/v1",
            admin::router::<B>()
                .merge(tokens::router::<B>())
                .merge(publish::router::<B>()),
        )
        .route("/metrics", axum::routing::get(metrics::scrape::<B>))
        // Last, so every route above is counted under its matched template.
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(move |req, next| {
            timeouts::idle_body(idle, req, next)
        }))
        .with_state(state)
}
