//! CAR responses: `dag-scope`, `entity-bytes`, and the block-by-block DFS walk that streams them.
//!
//! What is sent, for a request of `/ipfs/{cid}?format=car`:
//!
//! - The CAR v1 header names the requested CID as its only root (the probe `bafkqaaa` included).
//! - `dag-scope=block`: the root block only.
//! - `dag-scope=entity`: for a UnixFS file, every block needed to read the whole file; for
//!   anything else (a directory, non-UnixFS dag-pb, other codecs) the root block only — that is
//!   the entity of a plain directory. HAMT-sharded directories are not walked (shubnet stores
//!   files only).
//! - `dag-scope=all` (the default): every block reachable through dag-pb links. Raw blocks have
//!   no links. Other codecs cannot be walked and give 501 before anything is sent.
//! - `entity-bytes=from:to` implies `entity` (an explicit `dag-scope=block|all` next to it is a
//!   400). `from` and `to` are inclusive byte offsets; `*` for `to` is the last byte; a negative
//!   value counts from the end (`-n` is byte `size - n`); `from` before the start is clamped to
//!   0 and `to` past the end to the last byte. For a UnixFS file the response holds the root
//!   and, in DFS order, exactly the nodes and leaves whose bytes intersect the range, chosen
//!   from the parents' `blocksizes` without fetching anything outside it (so a missing block
//!   outside the range does not matter). Per the trustless-gateway spec, a range that resolves
//!   to zero bytes or lies wholly outside the file (e.g. `from` past the end) is answered like
//!   `dag-scope=block`: the root block alone, whose `blocksizes` prove the file's length to the
//!   client. A range that is empty whatever the size (`5:2`, `-2:-5`) is a 400, which the spec
//!   asks for when the gateway can tell upfront. For entities that are not byte arrays the
//!   parameter is ignored.
//! - `dups=y` sends a block each time the walk meets it; `dups=n` (default) sends it once. With
//!   `dups=n` a subtree sent whole earlier is skipped without fetching it again.
//! - Identity-hash CIDs are walked (their bytes are inline) but never sent as blocks.
//! - The root block is fetched before the status is sent, so a missing root is a 404. A block
//!   that goes missing later ends the stream with an error instead of a clean end, so the client
//!   sees a truncated transfer rather than a valid-looking short CAR.
//!
//! It must not buffer a DAG: blocks are read and sent one at a time.

use super::negotiate::CarParams;
use super::range::{NoneMatch, if_none_match};
use super::{IpfsError, base_headers, disposition, load_block, not_modified};
use crate::ContentBackend;
use crate::caching::Caching;
use axum::body::Body;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};
use shubnet_protocol::cid::{DAG_PB, RAW, is_identity};
use shubnet_protocol::dagpb::{DagPbError, PbNode};
use shubnet_protocol::unixfs::FileNode;
use shubnet_protocol::{Cid, car};
use std::collections::{HashSet, VecDeque};
use std::io;

/// `dag-scope`: how much of the DAG below the root to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The root block only.
    Block,
    /// What is needed to read the root as one entity (a whole file).
    Entity,
    /// Everything reachable.
    All,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Block => "block",
            Scope::Entity => "entity",
            Scope::All => "all",
        }
    }
}

/// `entity-bytes=from:to` as written; resolved against the file size once the root is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityBytes {
    from: i64,
    /// `None` for `*`.
    to: Option<i64>,
}

impl EntityBytes {
    /// Parses `from:to`, refusing ranges that are empty whatever the file size.
    pub(crate) fn parse(text: &str) -> Result<Self, IpfsError> {
        let bad = || {
            IpfsError::BadRequest(format!(
                "entity-bytes {text:?} is invalid; expected from:to with integers \
                 (negative from the end) and * for the end of the file"
            ))
        };
        let (from, to) = text.split_once(':').ok_or_else(bad)?;
        let int = |s: &str| -> Option<i64> {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let from = int(from).ok_or_else(bad)?;
        let to = if to == "*" {
            None
        } else {
            Some(int(to).ok_or_else(bad)?)
        };
        if let Some(to) = to
            && (from >= 0) == (to >= 0)
            && to < from
        {
            return Err(IpfsError::BadRequest(format!(
                "entity-bytes {text:?} is an empty range"
            )));
        }
        Ok(Self { from, to })
    }

    /// The inclusive byte range within a file of `size` bytes, or `None` if it holds no byte.
    pub(crate) fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        let from = if self.from < 0 {
            size.saturating_sub(self.from.unsigned_abs())
        } else {
            self.from.unsigned_abs()
        };
        let to = match self.to {
            None => last,
            Some(t) if t < 0 => size.checked_sub(t.unsigned_abs())?.min(last),
            Some(t) => t.unsigned_abs().min(last),
        };
        (from <= to).then_some((from, to))
    }

    fn canonical(self) -> String {
        match self.to {
            Some(to) => format!("{}:{to}", self.from),
            None => format!("{}:*", self.from),
        }
    }
}

/// A validated CAR request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CarRequest {
    scope: Scope,
    bytes: Option<EntityBytes>,
    params: CarParams,
}

impl CarRequest {
    /// Checks `dag-scope` and `entity-bytes` and combines them with the negotiated parameters.
    pub(crate) fn parse(
        scope: Option<&str>,
        bytes: Option<&str>,
        params: CarParams,
    ) -> Result<Self, IpfsError> {
        let bytes = bytes
            .filter(|b| !b.is_empty())
            .map(EntityBytes::parse)
            .transpose()?;
        let scope = match scope.filter(|s| !s.is_empty()) {
            None if bytes.is_some() => Scope::Entity,
            None => Scope::All,
            Some("all") if bytes.is_none() => Scope::All,
            Some("entity") => Scope::Entity,
            Some("block") if bytes.is_none() => Scope::Block,
            Some(s @ ("block" | "all")) => {
                return Err(IpfsError::BadRequest(format!(
                    "entity-bytes implies dag-scope=entity and cannot be combined with \
                     dag-scope={s}"
                )));
            }
            Some(other) => {
                return Err(IpfsError::BadRequest(format!(
                    "dag-scope {other:?} is invalid; use block, entity or all"
                )));
            }
        };
        Ok(Self {
            scope,
            bytes,
            params,
        })
    }

    /// A strong entity tag unique to the CID and every parameter that changes the bytes sent.
    pub(crate) fn etag(&self, cid: &Cid) -> String {
        let key = format!(
            "scope={};bytes={};dups={};order=dfs;version=1",
            self.scope.as_str(),
            self.bytes.map(EntityBytes::canonical).unwrap_or_default(),
            if self.params.dups { "y" } else { "n" },
        );
        let digest = Sha256::digest(key.as_bytes());
        format!("\"{cid}.car.{}\"", hex::encode(&digest[..8]))
    }
}

/// Answers a CAR request: 404 for a missing root, else 200 with the walk streamed.
pub(crate) async fn respond<B: ContentBackend>(
    backend: &B,
    cid: Cid,
    req: CarRequest,
    head: bool,
    filename: Option<&str>,
    headers: &HeaderMap,
    caching: Caching,
) -> Result<Response, IpfsError> {
    let etag = req.etag(&cid);
    let none_match = if_none_match(headers, &etag);
    if none_match == NoneMatch::Tag {
        return Ok(not_modified(&cid, &etag, caching));
    }
    let root = load_block(backend, &cid)
        .await?
        .ok_or_else(|| IpfsError::NotFound(format!("{cid} is not held by this node")))?;
    if none_match == NoneMatch::Any {
        return Ok(not_modified(&cid, &etag, caching));
    }
    let want = plan(&cid, &root, &req)?;
    let walk = Walk::new(backend.clone(), cid, root, want, req.params.dups)
        .map_err(|e| IpfsError::NotImplemented(format!("cannot build a CAR for {cid}: {e}")))?;
    let mut out = base_headers(&cid, &etag, caching);
    if let Ok(ct) = HeaderValue::from_str(&req.params.content_type()) {
        out.insert(CONTENT_TYPE, ct);
    }
    let default_name = format!("{cid}.car");
    out.insert(
        CONTENT_DISPOSITION,
        disposition("attachment", filename.unwrap_or(&default_name)),
    );
    // No Content-Length: the CAR is streamed. An empty stream (not `Body::empty`) keeps axum
    // from announcing `Content-Length: 0` on HEAD.
    let body = if head {
        Body::from_stream(futures::stream::empty::<io::Result<Bytes>>())
    } else {
        Body::from_stream(walk.into_stream())
    };
    Ok((StatusCode::OK, out, body).into_response())
}

/// What to send below one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The block alone.
    Block,
    /// The block and everything reachable through dag-pb links.
    All,
    /// The blocks of a UnixFS file needed for bytes `from..=to` relative to this node's first
    /// byte; `None` for all of them.
    File(Option<(u64, u64)>),
}

impl Want {
    /// True when the block's whole subtree will be sent.
    fn is_whole(self) -> bool {
        matches!(self, Want::All | Want::File(None))
    }
}

/// Decides what to send below the root, given its block.
pub(crate) fn plan(root: &Cid, block: &[u8], req: &CarRequest) -> Result<Want, IpfsError> {
    match req.scope {
        Scope::Block => Ok(Want::Block),
        Scope::Entity => match FileNode::decode(root, block) {
            Ok(node) => {
                let Some(bytes) = req.bytes else {
                    return Ok(Want::File(None));
                };
                let size = file_len(&node, block.len());
                Ok(match bytes.resolve(size) {
                    None => Want::Block,
                    Some((0, to)) if to.saturating_add(1) == size => Want::File(None),
                    Some(range) => Want::File(Some(range)),
                })
            }
            // Not a byte array: the entity is the block itself and entity-bytes is ignored.
            Err(_) => Ok(Want::Block),
        },
        Scope::All => match root.codec() {
            RAW | DAG_PB => Ok(Want::All),
            other => Err(IpfsError::NotImplemented(format!(
                "dag-scope=all is supported for raw and dag-pb blocks only, not codec 0x{other:x}"
            ))),
        },
    }
}

/// File bytes under a decoded node.
fn file_len(node: &FileNode, block_len: usize) -> u64 {
    match node {
        FileNode::Raw => block_len as u64,
        FileNode::Branch { data, children } => children
            .iter()
            .fold(data.len() as u64, |acc, (_, n)| acc.saturating_add(*n)),
    }
}

/// Why the walk cannot continue below a block.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalkError {
    /// A block that should be dag-pb (or a UnixFS file node) is not.
    #[error("{0}")]
    DagPb(#[from] DagPbError),
    /// Links of this codec cannot be followed.
    #[error("cannot follow links of codec 0x{0:x}")]
    Codec(u64),
}

/// One block still to visit.
#[derive(Debug)]
struct Frame {
    cid: Cid,
    want: Want,
}

impl Frame {
    /// Whether visiting this frame can send anything below the block itself.
    fn may_descend(&self) -> bool {
        self.want != Want::Block && self.cid.codec() == DAG_PB
    }
}

/// The children to visit below a block, in link order.
fn children(cid: &Cid, block: &[u8], want: Want) -> Result<Vec<Frame>, WalkError> {
    match want {
        Want::Block => Ok(Vec::new()),
        Want::All => match cid.codec() {
            RAW => Ok(Vec::new()),
            DAG_PB => Ok(PbNode::decode(block)?
                .links
                .into_iter()
                .map(|l| Frame {
                    cid: l.hash,
                    want: Want::All,
                })
                .collect()),
            other => Err(WalkError::Codec(other)),
        },
        Want::File(range) => match FileNode::decode(cid, block)? {
            FileNode::Raw => Ok(Vec::new()),
            FileNode::Branch { data, children } => {
                let mut out = Vec::with_capacity(children.len());
                let mut start = data.len() as u64;
                for (child, size) in children {
                    let end = start.saturating_add(size); // exclusive
                    let sub = match range {
                        None => Some(None),
                        Some((from, to)) if size > 0 && start <= to && end > from => {
                            let lo = from.saturating_sub(start);
                            let hi = to.min(end - 1) - start;
                            Some(if lo == 0 && hi + 1 == size {
                                None
                            } else {
                                Some((lo, hi))
                            })
                        }
                        Some((_, to)) if start > to => break,
                        Some(_) => None,
                    };
                    if let Some(sub) = sub {
                        out.push(Frame {
                            cid: child,
                            want: Want::File(sub),
                        });
                    }
                    start = end;
                }
                Ok(out)
            }
        },
    }
}

/// The DFS walk, producing CAR bytes one block at a time.
pub(crate) struct Walk<B> {
    backend: B,
    stack: Vec<Frame>,
    dups: bool,
    /// Blocks already sent (`dups=n` only).
    seen: HashSet<Cid>,
    /// Blocks whose whole subtree was sent (`dups=n` only).
    whole: HashSet<Cid>,
    out: VecDeque<Bytes>,
    done: bool,
}

impl<B: ContentBackend> Walk<B> {
    /// Starts a walk whose root block is already loaded; errors if the root cannot be walked.
    pub(crate) fn new(
        backend: B,
        root: Cid,
        block: Bytes,
        want: Want,
        dups: bool,
    ) -> Result<Self, WalkError> {
        let kids = children(&root, &block, want)?;
        let mut walk = Self {
            backend,
            stack: Vec::new(),
            dups,
            seen: HashSet::new(),
            whole: HashSet::new(),
            out: VecDeque::from([Bytes::from(car::encode_header(&[root]))]),
            done: false,
        };
        walk.visit(root, block, want, kids);
        Ok(walk)
    }

    /// Queues a block for sending (unless identity or a duplicate we drop) and its children.
    fn visit(&mut self, cid: Cid, block: Bytes, want: Want, kids: Vec<Frame>) {
        let first = self.dups || self.seen.insert(cid);
        if first && !is_identity(&cid) {
            self.out
                .push_back(Bytes::from(car::encode_section_prefix(&cid, block.len())));
            self.out.push_back(block);
        }
        if !self.dups && want.is_whole() {
            // Safe to record before the subtree is sent: nothing inside a subtree can be the
            // subtree's own root, so no later visit happens before it is complete.
            self.whole.insert(cid);
        }
        self.stack.extend(kids.into_iter().rev());
    }

    /// The next chunk of CAR bytes, an error that ends the stream, or `None` at a clean end.
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if let Some(chunk) = self.out.pop_front() {
                return Some(Ok(chunk));
            }
            if self.done {
                return None;
            }
            let Some(frame) = self.stack.pop() else {
                self.done = true;
                return None;
            };
            if !self.dups
                && (self.whole.contains(&frame.cid)
                    || (self.seen.contains(&frame.cid) && !frame.may_descend()))
            {
                continue;
            }
            if let Err(e) = self.step(frame).await {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    /// Loads one block and visits it.
    async fn step(&mut self, frame: Frame) -> io::Result<()> {
        let block = match load_block(&self.backend, &frame.cid).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                tracing::warn!(cid = %frame.cid, "block missing mid-CAR; ending the stream");
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "block {} is not available; the CAR is incomplete",
                        frame.cid
                    ),
                ));
            }
            Err(e) => {
                tracing::warn!(cid = %frame.cid, error = %e, "backend failed mid-CAR");
                return Err(io::Error::other(format!("loading {}: {e}", frame.cid)));
            }
        };
        let kids = children(&frame.cid, &block, frame.want).map_err(|e| {
            tracing::warn!(cid = %frame.cid, error = %e, "cannot walk below block");
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", frame.cid))
        })?;
        self.visit(frame.cid, block, frame.want, kids);
        Ok(())
    }

    /// The walk as a body stream.
    pub(crate) fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        futures::stream::unfold(self, |mut walk| async move {
            let item = walk.next_chunk().await?;
            Some((item, walk))
        })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // a failed expectation is the test failure
mod tests {
    use super::*;

    fn eb(text: &str) -> EntityBytes {
        EntityBytes::parse(text).expect("valid entity-bytes")
    }

    #[test]
    fn resolve_follows_the_spec_examples() {
        // The conformance suite's 1026-byte multiblock.txt.
        assert_eq!(eb("0:*").resolve(1026), Some((0, 1025)));
        assert_eq!(eb("512:*").resolve(1026), Some((512, 1025)));
        assert_eq!(eb("512:1023").resolve(1026), Some((512, 1023)));
        assert_eq!(eb("512:-256").resolve(1026), Some((512, 770)));
        assert_eq!(eb("-5:*").resolve(1026), Some((1021, 1025)));
        assert_eq!(eb("-9999:*").resolve(1026), Some((0, 1025)));
        assert_eq!(eb("-9999:-3").resolve(1026), Some((0, 1023)));
        assert_eq!(eb("0:0").resolve(1026), Some((0, 0)));
        assert_eq!(eb("0:99999").resolve(1026), Some((0, 1025)));
    }

    #[test]
    fn resolve_outside_or_empty_is_none() {
        assert_eq!(eb("1026:*").resolve(1026), None);
        assert_eq!(eb("5000:6000").resolve(1026), None);
        assert_eq!(eb("1000:-100").resolve(1026), None);
        assert_eq!(eb("0:-2000").resolve(1026), None);
        assert_eq!(eb("0:*").resolve(0), None);
    }

    #[test]
    fn parse_rejects_garbage_and_upfront_empty_ranges() {
        for bad in [
            "", "1", "a:b", "1:", ":2", "+1:2", "1:2:3", "5:2", "-2:-5", "1:**",
        ] {
            assert!(EntityBytes::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            eb("-5:3"),
            EntityBytes {
                from: -5,
                to: Some(3)
            }
        );
    }

    #[test]
    fn scope_and_bytes_combine() {
        let p = CarParams { dups: false };
        let r = |s: Option<&str>, b: Option<&str>| CarRequest::parse(s, b, p).map(|r| r.scope);
        assert_eq!(r(None, None).ok(), Some(Scope::All));
        assert_eq!(r(Some("block"), None).ok(), Some(Scope::Block));
        assert_eq!(r(None, Some("0:*")).ok(), Some(Scope::Entity));
        assert_eq!(r(Some("entity"), Some("0:*")).ok(), Some(Scope::Entity));
        assert!(r(Some("block"), Some("0:*")).is_err());
        assert!(r(Some("all"), Some("0:*")).is_err());
        assert!(r(Some("everything"), None).is_err());
    }

    #[test]
    fn etag_changes_with_every_parameter() {
        let cid = shubnet_protocol::cid::cid_for(RAW, b"x");
        let tag = |s: Option<&str>, b: Option<&str>, dups: bool| {
            CarRequest::parse(s, b, CarParams { dups })
                .expect("valid request")
                .etag(&cid)
        };
        let base = tag(None, None, false);
        assert!(base.starts_with(&format!("\"{cid}.car.")) && base.ends_with('"'));
        assert_eq!(base, tag(Some("all"), None, false));
        assert_ne!(base, tag(None, None, true));
        assert_ne!(base, tag(Some("block"), None, false));
        assert_ne!(
            tag(None, Some("0:10"), false),
            tag(None, Some("0:11"), false)
        );
    }
}
