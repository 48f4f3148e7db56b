//! The node's metrics registry: one process-wide [`Metrics`] ([`global`]) that the HTTP
//! middleware, the p2p protocols, the registry and the token checks count into, and its
//! OpenMetrics text exposition.
//!
//! It owns the metric names, their labels and the encoding. It must not know about HTTP or
//! the node's parts: callers count, and the gateway serves the text. Label values are bounded:
//! routes are matched templates and rejection reasons are fixed names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

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
    /// Leaves the scrub hashed against their CIDs.
    pub scrub_blocks: Counter,
    /// Bytes the scrub read and hashed.
    pub scrub_bytes: Counter,
    /// Damaged leaves found, by who found them (`scrub` or `report`).
    pub corrupt_found: Family<FoundLabels, Counter>,
    /// Blobs moved to `quarantine/`.
    pub quarantined: Counter,
    /// Bad-leaf reports received from members, by outcome.
    pub badleaf_reports: Family<OutcomeLabels, Counter>,
}

/// Labels of a damage finding.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FoundLabels {
    /// `scrub` or `report`.
    pub by: String,
}

/// Labels of a handled report.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// A fixed, machine-readable outcome.
    pub outcome: String,
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
            scrub_blocks: Counter::default(),
            scrub_bytes: Counter::default(),
            corrupt_found: Family::default(),
            quarantined: Counter::default(),
            badleaf_reports: Family::default(),
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
        registry.register(
            "scrub_blocks",
            "Leaves the scrub hashed against their CIDs",
            m.scrub_blocks.clone(),
        );
        registry.register(
            "scrub_bytes",
            "Bytes the scrub read and hashed",
            m.scrub_bytes.clone(),
        );
        registry.register(
            "corrupt_blocks_found",
            "Damaged leaves found in the store, by who found them (scrub, report)",
            m.corrupt_found.clone(),
        );
        registry.register(
            "quarantined_blobs",
            "Blobs moved to quarantine/ after failing their check",
            m.quarantined.clone(),
        );
        registry.register(
            "badleaf_reports",
            "Bad-leaf reports received from members, by outcome",
            m.badleaf_reports.clone(),
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

    /// Counts a damaged leaf found `by` the scrub or a member's report.
    pub fn corrupt(&self, by: &str) {
        self.corrupt_found
            .get_or_create(&FoundLabels { by: by.to_owned() })
            .inc();
    }

    /// Counts a bad-leaf report handled with `outcome`.
    pub fn badleaf(&self, outcome: &str) {
        self.badleaf_reports
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
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
