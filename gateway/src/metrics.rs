//! `/metrics`: the node's counters in the Prometheus/OpenMetrics text format, for dashboards and
//! alerts.
//!
//! One process runs one node, so the metrics live in one process-wide [`Metrics`] ([`global`]):
//! the HTTP middleware here, the p2p protocols, the registry and the token checks count into it
//! without threading a handle through every layer. Gauges that describe state (peers, store
//! size, under-replicated images) are refreshed at scrape time by [`Backend::refresh_metrics`],
//! which must stay cheap: the node answers from values its background rounds already computed.
//!
//! Label values are bounded: HTTP routes are the matched route *templates*
//! (`/api/container/{*rest}`), never raw paths, and rejection reasons are fixed names.

use crate::{Backend, SharedState};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

/// The content type of the exposition (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route template, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: String,
}

/// Labels of a latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route template.
    pub route: String,
}

/// Labels of a byte counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    /// `http`, `fetch` (/shubnet/fetch/1) or `bitswap`.
    pub protocol: String,
    /// `sent` or `received`.
    pub direction: String,
}

/// Labels of a rejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// `manifest`, `block` or `token`.
    pub kind: String,
    /// A fixed, machine-readable reason.
    pub reason: String,
}

/// Every metric the node exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route template, method and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Time to the response head, by route template.
    pub http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Payload bytes by protocol and direction.
    pub bytes: Family<BytesLabels, Counter>,
    /// Peers with an open connection.
    pub peers: Gauge,
    /// Live images with fewer live holders than the replication target.
    pub under_replicated: Gauge,
    /// Live images the node knows (every tag head with content).
    pub images: Gauge,
    /// Bytes of complete images held in the store.
    pub store_bytes: Gauge,
    /// Rejected manifests, blocks and tokens, by reason.
    pub rejected: Family<RejectLabels, Counter>,
    /// Image downloads served over HTTP (requests that start at byte 0).
    pub downloads: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("shubnet");
        let m = Metrics {
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            bytes: Family::default(),
            peers: Gauge::default(),
            under_replicated: Gauge::default(),
            images: Gauge::default(),
            store_bytes: Gauge::default(),
            rejected: Family::default(),
            downloads: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head, by route template",
            m.http_latency.clone(),
        );
        registry.register(
            "transferred_bytes",
            "Payload bytes by protocol (http, fetch, bitswap) and direction (sent, received)",
            m.bytes.clone(),
        );
        registry.register(
            "connected_peers",
            "Peers with an open connection",
            m.peers.clone(),
        );
        registry.register(
            "images_under_replicated",
            "Live images held by fewer live nodes than the replication target",
            m.under_replicated.clone(),
        );
        registry.register("images", "Live images known to this node", m.images.clone());
        registry.register(
            "store_bytes",
            "Bytes of complete images held in the store",
            m.store_bytes.clone(),
        );
        registry.register(
            "rejected",
            "Rejected manifests, blocks and tokens, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "downloads",
            "Image downloads served over HTTP",
            m.downloads.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts `n` payload bytes sent (`sent = true`) or received over `protocol`.
    pub fn transferred(&self, protocol: &str, sent: bool, n: u64) {
        self.bytes
            .get_or_create(&BytesLabels {
                protocol: protocol.to_owned(),
                direction: if sent { "sent" } else { "received" }.to_owned(),
            })
            .inc_by(n);
    }

    /// Counts one rejected `kind` (`manifest`, `block`, `token`) for `reason`.
    pub fn reject(&self, kind: &str, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                kind: kind.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// `GET /metrics`.
pub(crate) async fn scrape<B: Backend>(State(state): State<SharedState<B>>) -> Response {
    state.backend.refresh_metrics(global()).await;
    let mut resp = global().encode().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// Middleware (installed with `route_layer`, so the matched route is known): counts the
/// request, its latency to the response head, and the body bytes both ways as they stream.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let m = global();
    let received = counter(&m.bytes, "received");
    let req = req.map(|b| Body::new(Counting::new(b, received)));
    let start = Instant::now();
    let resp = next.run(req).await;
    record(m, route, method, resp.status(), start);
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    let sent = counter(&m.bytes, "sent");
    resp.map(|b| Body::new(Counting::new(b, sent)))
}

/// The HTTP byte counter for `direction` (the family's lock is released before returning).
fn counter(f: &Family<BytesLabels, Counter>, direction: &str) -> Counter {
    f.get_or_create(&BytesLabels {
        protocol: "http".into(),
        direction: direction.into(),
    })
    .clone()
}

fn record(m: &Metrics, route: String, method: String, status: StatusCode, start: Instant) {
    m.http_latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status: status.as_u16().to_string(),
        })
        .inc();
}

/// A body that counts its data bytes as they pass, keeping the inner body's size hint (so
/// `Content-Length` is unchanged).
struct Counting {
    inner: Body,
    counter: Counter,
}

impl Counting {
    fn new(inner: Body, counter: Counter) -> Self {
        Self { inner, counter }
    }
}

impl HttpBody for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_ends_with_eof() {
        let m = global();
        m.transferred("fetch", true, 5);
        m.reject("manifest", "bad_signature");
        record(
            m,
            "/x/{y}".into(),
            "GET".into(),
            StatusCode::OK,
            Instant::now(),
        );
        let text = m.encode();
        for name in [
            "shubnet_transferred_bytes_total{protocol=\"fetch\",direction=\"sent\"}",
            "shubnet_rejected_total{kind=\"manifest\",reason=\"bad_signature\"}",
            "# TYPE shubnet_connected_peers gauge",
            "# TYPE shubnet_http_request_duration_seconds histogram",
            "shubnet_http_requests_total{route=\"/x/{y}\",method=\"GET\",status=\"200\"}",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
