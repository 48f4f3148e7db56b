//! `/metrics`: the node's counters in the Prometheus/OpenMetrics text format, for dashboards and
//! alerts.
//!
//! One process runs one node, so the metrics live in one process-wide [`Metrics`] ([`global`]):
//! the HTTP middleware here, the p2p protocols, the registry and the token checks count into it
//! without threading a handle through every layer. Gauges that describe state (peers, store
//! size, under-replicated images) are refreshed at scrape time by [`MetricsBackend::refresh_metrics`],
//! which must stay cheap: the node answers from values its background rounds already computed.
//!
//! Label values are bounded: HTTP routes are the matched route *templates*
//! (`/api/container/{*rest}`), never raw paths, methods are the standard ones or `other`
//! ([`method_label`]), and rejection reasons are fixed names.

use crate::{MetricsBackend, SharedState};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub use shubnet_metrics::{
    BytesLabels, CONTENT_TYPE, HttpLabels, Metrics, RejectLabels, RouteLabels, global,
};

/// `GET /metrics`.
pub(crate) async fn scrape<B: MetricsBackend>(State(state): State<SharedState<B>>) -> Response {
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
    let method = method_label(req.method()).to_owned();
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

/// The `method` label: a client may send any token as a method, and every label value is a
/// series kept for the life of the process, so only the standard methods are named.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
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

    #[test]
    fn unknown_methods_share_one_label() {
        for junk in ["FOO", "X-1", "get", "PROPFIND"] {
            let m = Method::from_bytes(junk.as_bytes()).expect("a valid method token");
            assert_eq!(method_label(&m), "other", "{junk}");
        }
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
    }
}
