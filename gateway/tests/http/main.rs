//! HTTP tests of the gateway against an in-memory backend, driven through `Router::oneshot`
//! (and, in `wire`, one real socket). The raw and CAR cases port the list of
//! ipfs/gateway-conformance's `trustless_gateway_raw_test.go` and
//! `trustless_gateway_car_test.go` to shubnet's file DAGs.

// Tests state their expectations with `expect`; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod caching;
mod car;
mod mem;
mod plain;
mod raw;
mod visibility;
mod wire;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use mem::{File, MemBackend};
use shubnet_gateway::GatewayConfig;
use shubnet_protocol::Cid;
use shubnet_protocol::car::CarReader;
use shubnet_protocol::unixfs::{FileNode, Layout};
use std::collections::HashMap;
use tower::ServiceExt;

/// The probe CID: identity multihash of nothing.
pub const PROBE: &str = "bafkqaaa";
/// The identity CID of the conformance suite's dups=y case: "hello i am inlined cid\n".
pub const INLINED: &str = "bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa";

/// A small layout that makes deep trees: 16-byte chunks, 3 links per node.
pub fn deep_layout() -> Layout {
    Layout::new(16, 3).expect("valid layout")
}

/// Deterministic bytes with no two equal 16-byte chunks (xorshift).
pub fn distinct_data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A backend with one deep file: 437 bytes → 28 leaves of ≤16 bytes, 5 levels.
pub fn deep_file() -> (MemBackend, File) {
    let backend = MemBackend::new(deep_layout());
    let file = backend.import(&distinct_data(16 * 27 + 5));
    (backend, file)
}

/// The app with the default config.
pub fn app(backend: &MemBackend) -> Router {
    shubnet_gateway::app(backend.clone(), GatewayConfig::default())
}

/// A finished response: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// A header as text, or "" if absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
            .unwrap_or("")
    }

    /// The `error` field of a JSON error body.
    pub fn error(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON error body");
        v["error"].as_str().expect("error is a string").to_string()
    }
}

/// Sends a request and reads the whole body, which must end cleanly.
pub async fn send(app: Router, req: Request<Body>) -> Reply {
    let resp = app.oneshot(req).await.expect("router is infallible");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body ends cleanly").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A request with headers.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).expect("valid request")
}

/// `GET uri` with headers.
pub async fn get(backend: &MemBackend, uri: &str, headers: &[(&str, &str)]) -> Reply {
    send(app(backend), request("GET", uri, headers)).await
}

/// `HEAD uri` with headers.
pub async fn head(backend: &MemBackend, uri: &str, headers: &[(&str, &str)]) -> Reply {
    send(app(backend), request("HEAD", uri, headers)).await
}

/// Parses a CAR body, checking every block against its CID: (roots, block CIDs in order).
pub fn car_blocks(body: &[u8]) -> (Vec<Cid>, Vec<Cid>) {
    let mut r = CarReader::new(body).expect("a CAR header");
    let roots = r.roots().to_vec();
    let mut cids = Vec::new();
    while let Some((cid, _)) = r.next_verified_block().expect("a valid, verified block") {
        cids.push(cid);
    }
    (roots, cids)
}

/// One block of a file DAG in DFS pre-order, with the file bytes `start..end` it covers.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// The block.
    pub cid: Cid,
    /// First file byte under it.
    pub start: u64,
    /// One past the last file byte under it.
    pub end: u64,
}

/// The DFS pre-order of `file`'s DAG. Byte spans come from the importer's leaf offsets (the
/// k-th leaf met is the k-th leaf of the file), not from `blocksizes`, so this oracle does not
/// share the gateway's arithmetic.
pub fn dfs(file: &File) -> Vec<Span> {
    let nodes: HashMap<Cid, Vec<u8>> = file.nodes.iter().cloned().collect();
    let mut leaves = file.leaves.iter();
    let mut out = Vec::new();
    fn walk<'a>(
        cid: Cid,
        nodes: &HashMap<Cid, Vec<u8>>,
        leaves: &mut impl Iterator<Item = &'a (Cid, u64, u64)>,
        out: &mut Vec<Span>,
    ) -> (u64, u64) {
        let at = out.len();
        out.push(Span {
            cid,
            start: 0,
            end: 0,
        });
        let (start, end) = match nodes.get(&cid) {
            None => {
                let (leaf, off, len) = leaves.next().expect("a leaf for each raw block");
                assert_eq!(*leaf, cid, "DFS meets leaves in file order");
                (*off, off + len)
            }
            Some(bytes) => {
                let FileNode::Branch { children, .. } =
                    FileNode::decode(&cid, bytes).expect("a file node")
                else {
                    panic!("dag-pb node decoded as raw");
                };
                let mut span = (u64::MAX, 0);
                for (child, _) in children {
                    let (s, e) = walk(child, nodes, leaves, out);
                    span = (span.0.min(s), span.1.max(e));
                }
                span
            }
        };
        out[at].start = start;
        out[at].end = end;
        (start, end)
    }
    walk(file.root, &nodes, &mut leaves, &mut out);
    out
}

/// What a CAR for inclusive bytes `from..=to` must hold: the root, then every block whose span
/// meets the range, in DFS order; with `dups=n`, only the first occurrence of each CID.
pub fn expected_range(file: &File, from: u64, to: u64, dups: bool) -> Vec<Cid> {
    let all = dfs(file);
    let mut out: Vec<Cid> = vec![all[0].cid];
    out.extend(
        all[1..]
            .iter()
            .filter(|s| s.start <= to && s.end > from && s.end > s.start)
            .map(|s| s.cid),
    );
    if !dups {
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert(*c));
    }
    out
}

/// The full DFS, optionally without duplicates.
pub fn expected_all(file: &File, dups: bool) -> Vec<Cid> {
    let mut out: Vec<Cid> = dfs(file).iter().map(|s| s.cid).collect();
    if !dups {
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert(*c));
    }
    out
}

/// The depth of the deepest leaf below the root (root = 0).
pub fn depth(file: &File) -> usize {
    let nodes: HashMap<Cid, Vec<u8>> = file.nodes.iter().cloned().collect();
    fn d(cid: &Cid, nodes: &HashMap<Cid, Vec<u8>>) -> usize {
        match nodes.get(cid) {
            None => 0,
            Some(bytes) => match FileNode::decode(cid, bytes).expect("file node") {
                FileNode::Raw => 0,
                FileNode::Branch { children, .. } => {
                    1 + children.iter().map(|(c, _)| d(c, nodes)).max().unwrap_or(0)
                }
            },
        }
    }
    d(&file.root, &nodes)
}

/// The immutable caching header every success carries.
pub const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// Checks the headers shared by every successful `/ipfs/{cid}` response.
pub fn assert_ipfs_headers(r: &Reply, cid: &str, etag: &str) {
    assert_eq!(r.header("etag"), etag);
    assert_eq!(r.header("cache-control"), IMMUTABLE);
    assert_eq!(r.header("x-ipfs-path"), format!("/ipfs/{cid}"));
    assert_eq!(r.header("x-ipfs-roots"), cid);
    assert_eq!(r.header("x-content-type-options"), "nosniff");
}
