//! `/shubnet/sync/1` (anti-entropy between federation members) and the gossip announcements.
//!
//! Goals: a node that missed gossip (offline, partitioned, gossip disabled) learns every roster
//! version and manifest a peer has, exchanging little when both already agree, at 100 000
//! manifests and more. Non-goals: content transfer (that is `/shubnet/fetch/1` and Bitswap),
//! authentication (libp2p's noise gives the peer id; membership is checked by the node).
//!
//! The manifest set is split into [`BUCKETS`] buckets by the first byte of `sha256(cid bytes)`;
//! a bucket's digest is the XOR of those hashes plus a count, so both sides compute it in one
//! pass in any order. A client asks for the [`Response::Summary`], compares the 256 digests with
//! its own, lists only the buckets that differ and asks for the manifests it lacks, at most
//! [`MAX_BATCH`] per request. Roster versions come first: manifests are checked against them.
//!
//! Wire: each message is one frame, a 4-byte big-endian length and then the body, at most
//! [`MAX_FRAME`] bytes; the body is a kind byte and fields (varints, length-prefixed bytes).
//! Every count and length is capped before anything is allocated, so [`Request::decode`] and
//! [`Response::decode`] are safe on any input (see `fuzz/fuzz_targets/sync.rs`).

use crate::Cid;
use crate::varint;
use sha2::{Digest, Sha256};

/// The stream protocol id.
pub const PROTOCOL: &str = "/shubnet/sync/1";
/// Largest frame body, in bytes.
pub const MAX_FRAME: usize = 20 * 1024 * 1024;
/// Number of digest buckets.
pub const BUCKETS: usize = 256;
/// Most manifests asked for or sent in one message.
pub const MAX_BATCH: usize = 256;
/// Most roster versions sent in one message.
pub const MAX_ROSTERS: usize = 16;
/// Most CIDs in one bucket listing or holdings list.
pub const MAX_CIDS: usize = 400_000;
/// Longest text field (federation id, refusal reason).
pub const MAX_TEXT: usize = 1024;
/// Longest encoded CID accepted.
pub const MAX_CID_LEN: usize = 128;

/// Why a sync message did not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    /// The input ended early.
    #[error("sync message truncated")]
    Truncated,
    /// Bytes were left after the message.
    #[error("{0} trailing bytes after the sync message")]
    Trailing(usize),
    /// An unknown message kind.
    #[error("unknown sync message kind {0}")]
    UnknownKind(u8),
    /// A count or length over its cap.
    #[error("{what} of {len} exceeds the limit of {max}")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// What the message claimed.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// A malformed varint.
    #[error("bad varint: {0}")]
    Varint(#[from] varint::VarintError),
    /// A CID that does not parse.
    #[error("bad CID: {0}")]
    Cid(String),
    /// Text that is not UTF-8.
    #[error("text is not UTF-8")]
    Utf8,
    /// The summary does not have exactly [`BUCKETS`] buckets.
    #[error("summary has {0} buckets, not {BUCKETS}")]
    BucketCount(usize),
}

/// One bucket of the manifest set: how many CIDs and the XOR of their hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    /// Manifests in the bucket.
    pub count: u32,
    /// XOR of `sha256(cid bytes)` over the bucket.
    pub digest: [u8; 32],
}

/// The bucket index and hash of one manifest CID.
pub fn bucket_of(cid: &Cid) -> (u8, [u8; 32]) {
    let h: [u8; 32] = Sha256::digest(cid.to_bytes()).into();
    (h[0], h)
}

/// Digests of a whole manifest set, built one CID at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Exactly [`BUCKETS`] buckets.
    pub buckets: Vec<Bucket>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }
}

impl Summary {
    /// Adds one CID (adding the same CID twice cancels it out; callers add each once).
    pub fn add(&mut self, cid: &Cid) {
        let (i, h) = bucket_of(cid);
        let b = &mut self.buckets[usize::from(i)];
        b.count = b.count.saturating_add(1);
        for (d, x) in b.digest.iter_mut().zip(h) {
            *d ^= x;
        }
    }

    /// Indices of buckets that differ from `other` (all of them if `other` is malformed).
    pub fn differing(&self, other: &[Bucket]) -> Vec<u8> {
        (0..BUCKETS)
            .filter(|&i| other.get(i) != self.buckets.get(i))
            .filter_map(|i| u8::try_from(i).ok())
            .collect()
    }
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The peer's roster version, manifest digests and holdings, for federation `federation`.
    Summary {
        /// The federation id the client is in.
        federation: String,
    },
    /// Roster versions after `after`, oldest first (at most [`MAX_ROSTERS`]).
    Rosters {
        /// The client's current version.
        after: u64,
    },
    /// The manifest CIDs in one bucket.
    Bucket {
        /// Bucket index.
        index: u8,
    },
    /// These manifests (at most [`MAX_BATCH`]).
    Manifests {
        /// Wanted manifest CIDs.
        cids: Vec<Cid>,
    },
    /// The server's own download totals for roots after `after` in byte order (at most
    /// [`MAX_USAGE_ENTRIES`]): a member that just connected catches up on the counts gossip
    /// only repeats when they change.
    Usage {
        /// The last root of the previous page; `None` for the first page.
        after: Option<Cid>,
    },
}

/// What a server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::Summary`].
    Summary {
        /// The server's current roster version.
        roster_version: u64,
        /// [`BUCKETS`] manifest buckets.
        buckets: Vec<Bucket>,
        /// Image roots the server holds completely and pinned.
        holdings: Vec<Cid>,
        /// Digest of the server's own download totals ([`usage_digest`]): a client pulls the
        /// [`Request::Usage`] pages whenever it differs from the one it last pulled, so counts
        /// converge by anti-entropy like manifests. `None` from a server that predates it.
        usage: Option<[u8; 32]>,
    },
    /// Signed roster encodings, oldest first.
    Rosters {
        /// Encoded `SignedRoster`s.
        rosters: Vec<Vec<u8>>,
    },
    /// Manifest CIDs of one bucket.
    Bucket {
        /// The CIDs.
        cids: Vec<Cid>,
    },
    /// Encoded manifests the server has, of those asked for.
    Manifests {
        /// Encoded `Manifest`s.
        manifests: Vec<Vec<u8>>,
    },
    /// Answer to [`Request::Usage`]: `(root, downloads)` in ascending root byte order, each a
    /// length-prefixed CID and a big-endian u64; fewer than [`MAX_USAGE_ENTRIES`] means this was
    /// the last page.
    Usage {
        /// The server's totals.
        totals: Vec<(Cid, u64)>,
    },
    /// The server will not sync with this client (not a member, other federation).
    Refused {
        /// Why, for the logs.
        reason: String,
    },
}

/// A gossip message on the federation's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A new manifest (encoded).
    Manifest(Vec<u8>),
    /// A new roster version (encoded `SignedRoster`).
    Roster(Vec<u8>),
    /// The message's author now holds this image root completely.
    Holding(Cid),
    /// The message's author is leaving the federation (`shubnet leave`): placement should skip
    /// it so the next nodes copy its images while it still serves them. Only the author can say
    /// this of itself, so it needs no other authority; it lapses unless repeated.
    Leaving,
    /// Downloads the author served, per image root (its running totals). Advisory, unsigned
    /// data: receivers bound and sanity-check it. At most [`MAX_USAGE_ENTRIES`] per message.
    Usage(Vec<(Cid, u64)>),
}

/// One `(root, downloads)` total's share of a [`usage_digest`].
pub fn usage_term(root: &Cid, downloads: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(root.to_bytes());
    h.update(downloads.to_be_bytes());
    h.finalize().into()
}

/// The digest of a set of download totals: the XOR of their [`usage_term`]s (zero for none).
/// Order-free, so a node keeps it current by XOR-ing out a root's old term and in its new one.
pub fn usage_digest<'a>(totals: impl IntoIterator<Item = &'a (Cid, u64)>) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (c, n) in totals {
        xor_into(&mut d, &usage_term(c, *n));
    }
    d
}

/// `acc ^= x`, bytewise.
pub fn xor_into(acc: &mut [u8; 32], x: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a ^= b;
    }
}

/// Most `(root, downloads)` pairs in one usage announcement.
pub const MAX_USAGE_ENTRIES: usize = 1000;

/// Wraps a body in a frame: 4-byte big-endian length, then the body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The body length a frame header announces, refused over [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, SyncError> {
    let len = u32::from_be_bytes(header);
    let n = usize::try_from(len).map_err(|_| SyncError::TooLarge {
        what: "frame",
        len: u64::from(len),
        max: MAX_FRAME,
    })?;
    if n > MAX_FRAME {
        return Err(SyncError::TooLarge {
            what: "frame",
            len: u64::from(len),
            max: MAX_FRAME,
        });
    }
    Ok(n)
}

// --- encoding helpers ---

fn put_uint(out: &mut Vec<u8>, v: u64) {
    varint::encode(v, out);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_cids(out: &mut Vec<u8>, cids: &[Cid]) {
    put_uint(out, cids.len() as u64);
    for c in cids {
        put_bytes(out, &c.to_bytes());
    }
}

fn put_blobs(out: &mut Vec<u8>, blobs: &[Vec<u8>]) {
    put_uint(out, blobs.len() as u64);
    for b in blobs {
        put_bytes(out, b);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, SyncError> {
        let (&b, rest) = self.buf.split_first().ok_or(SyncError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, SyncError> {
        let (v, n) = varint::decode(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    fn count(&mut self, what: &'static str, max: usize) -> Result<usize, SyncError> {
        let n = self.uint()?;
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(SyncError::TooLarge { what, len: n, max }),
        }
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], SyncError> {
        let n = self.count(what, max)?;
        if self.buf.len() < n {
            return Err(SyncError::Truncated);
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    fn text(&mut self, what: &'static str) -> Result<String, SyncError> {
        let b = self.bytes(what, MAX_TEXT)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| SyncError::Utf8)
    }

    fn cid(&mut self) -> Result<Cid, SyncError> {
        let b = self.bytes("CID", MAX_CID_LEN)?;
        let c = Cid::try_from(b).map_err(|e| SyncError::Cid(e.to_string()))?;
        if c.to_bytes() != b {
            return Err(SyncError::Cid("not the canonical encoding".into()));
        }
        Ok(c)
    }

    fn cids(&mut self, what: &'static str, max: usize) -> Result<Vec<Cid>, SyncError> {
        let n = self.count(what, max)?;
        // Each CID takes at least 2 bytes: never reserve more than the input could hold.
        let mut v = Vec::with_capacity(n.min(self.buf.len() / 2));
        for _ in 0..n {
            v.push(self.cid()?);
        }
        Ok(v)
    }

    fn blobs(
        &mut self,
        what: &'static str,
        max: usize,
        each: usize,
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let n = self.count(what, max)?;
        let mut v = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            v.push(self.bytes(what, each)?.to_vec());
        }
        Ok(v)
    }

    fn finish(self) -> Result<(), SyncError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SyncError::Trailing(self.buf.len()))
        }
    }
}

const REQ_SUMMARY: u8 = 1;
const REQ_ROSTERS: u8 = 2;
const REQ_BUCKET: u8 = 3;
const REQ_MANIFESTS: u8 = 4;
const REQ_USAGE: u8 = 5;

const RESP_SUMMARY: u8 = 1;
const RESP_ROSTERS: u8 = 2;
const RESP_BUCKET: u8 = 3;
const RESP_MANIFESTS: u8 = 4;
const RESP_REFUSED: u8 = 5;
const RESP_USAGE: u8 = 6;

const ANN_MANIFEST: u8 = 1;
const ANN_ROSTER: u8 = 2;
const ANN_HOLDING: u8 = 3;
const ANN_LEAVING: u8 = 4;
const ANN_USAGE: u8 = 5;

impl Request {
    /// The body (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Summary { federation } => {
                out.push(REQ_SUMMARY);
                put_bytes(&mut out, federation.as_bytes());
            }
            Request::Rosters { after } => {
                out.push(REQ_ROSTERS);
                put_uint(&mut out, *after);
            }
            Request::Bucket { index } => {
                out.push(REQ_BUCKET);
                out.push(*index);
            }
            Request::Manifests { cids } => {
                out.push(REQ_MANIFESTS);
                put_cids(&mut out, cids);
            }
            Request::Usage { after } => {
                out.push(REQ_USAGE);
                match after {
                    None => out.push(0),
                    Some(c) => {
                        out.push(1);
                        put_bytes(&mut out, &c.to_bytes());
                    }
                }
            }
        }
        out
    }

    /// Decodes a body, enforcing every cap.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        let mut r = Reader { buf };
        let req = match r.byte()? {
            REQ_SUMMARY => Request::Summary {
                federation: r.text("federation id")?,
            },
            REQ_ROSTERS => Request::Rosters { after: r.uint()? },
            REQ_BUCKET => Request::Bucket { index: r.byte()? },
            REQ_MANIFESTS => Request::Manifests {
                cids: r.cids("manifest request", MAX_BATCH)?,
            },
            REQ_USAGE => Request::Usage {
                after: match r.byte()? {
                    0 => None,
                    1 => Some(r.cid()?),
                    k => return Err(SyncError::UnknownKind(k)),
                },
            },
            k => return Err(SyncError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    /// The body (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Summary {
                roster_version,
                buckets,
                holdings,
                usage,
            } => {
                out.push(RESP_SUMMARY);
                put_uint(&mut out, *roster_version);
                put_uint(&mut out, buckets.len() as u64);
                for b in buckets {
                    put_uint(&mut out, u64::from(b.count));
                    out.extend_from_slice(&b.digest);
                }
                put_cids(&mut out, holdings);
                // Trailing and optional, so a summary without it still decodes.
                if let Some(d) = usage {
                    out.extend_from_slice(d);
                }
            }
            Response::Rosters { rosters } => {
                out.push(RESP_ROSTERS);
                put_blobs(&mut out, rosters);
            }
            Response::Bucket { cids } => {
                out.push(RESP_BUCKET);
                put_cids(&mut out, cids);
            }
            Response::Manifests { manifests } => {
                out.push(RESP_MANIFESTS);
                put_blobs(&mut out, manifests);
            }
            Response::Usage { totals } => {
                out.push(RESP_USAGE);
                let n = totals.len().min(MAX_USAGE_ENTRIES);
                put_uint(&mut out, n as u64);
                for (c, count) in totals.iter().take(n) {
                    put_bytes(&mut out, &c.to_bytes());
                    // Fixed width, as in the gossip announcement: any u64 round-trips.
                    out.extend_from_slice(&count.to_be_bytes());
                }
            }
            Response::Refused { reason } => {
                out.push(RESP_REFUSED);
                let mut end = reason.len().min(MAX_TEXT);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                put_bytes(&mut out, &reason.as_bytes()[..end]);
            }
        }
        out
    }

    /// Decodes a body, enforcing every cap.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        let mut r = Reader { buf };
        let resp = match r.byte()? {
            RESP_SUMMARY => {
                let roster_version = r.uint()?;
                let n = r.count("buckets", BUCKETS)?;
                if n != BUCKETS {
                    return Err(SyncError::BucketCount(n));
                }
                let mut buckets = Vec::with_capacity(BUCKETS);
                for _ in 0..n {
                    let count = u32::try_from(r.uint()?).map_err(|_| SyncError::TooLarge {
                        what: "bucket count",
                        len: u64::MAX,
                        max: u32::MAX as usize,
                    })?;
                    let d = r.buf.get(..32).ok_or(SyncError::Truncated)?;
                    let mut digest = [0u8; 32];
                    digest.copy_from_slice(d);
                    r.buf = &r.buf[32..];
                    buckets.push(Bucket { count, digest });
                }
                let holdings = r.cids("holdings", MAX_CIDS)?;
                let usage = match r.buf.len() {
                    32 => {
                        let mut d = [0u8; 32];
                        d.copy_from_slice(r.buf);
                        r.buf = &[];
                        Some(d)
                    }
                    _ => None,
                };
                Response::Summary {
                    roster_version,
                    buckets,
                    holdings,
                    usage,
                }
            }
            RESP_ROSTERS => Response::Rosters {
                rosters: r.blobs("rosters", MAX_ROSTERS, crate::roster::MAX_ROSTER_SIZE)?,
            },
            RESP_BUCKET => Response::Bucket {
                cids: r.cids("bucket", MAX_CIDS)?,
            },
            RESP_MANIFESTS => Response::Manifests {
                manifests: r.blobs("manifests", MAX_BATCH, crate::manifest::MAX_MANIFEST_SIZE)?,
            },
            RESP_REFUSED => Response::Refused {
                reason: r.text("reason")?,
            },
            RESP_USAGE => {
                let n = r.count("usage entries", MAX_USAGE_ENTRIES)?;
                let mut totals = Vec::with_capacity(n);
                for _ in 0..n {
                    let c = r.cid()?;
                    let b = r.buf.get(..8).ok_or(SyncError::Truncated)?;
                    let mut count = [0u8; 8];
                    count.copy_from_slice(b);
                    r.buf = &r.buf[8..];
                    totals.push((c, u64::from_be_bytes(count)));
                }
                Response::Usage { totals }
            }
            k => return Err(SyncError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(resp)
    }
}

impl Announcement {
    /// The gossip payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Announcement::Manifest(b) => {
                out.push(ANN_MANIFEST);
                out.extend_from_slice(b);
            }
            Announcement::Roster(b) => {
                out.push(ANN_ROSTER);
                out.extend_from_slice(b);
            }
            Announcement::Holding(c) => {
                out.push(ANN_HOLDING);
                out.extend_from_slice(&c.to_bytes());
            }
            Announcement::Leaving => out.push(ANN_LEAVING),
            Announcement::Usage(entries) => {
                out.push(ANN_USAGE);
                let n = entries.len().min(MAX_USAGE_ENTRIES);
                out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
                for (c, count) in entries.iter().take(n) {
                    let b = c.to_bytes();
                    out.push(u8::try_from(b.len()).unwrap_or(u8::MAX));
                    out.extend_from_slice(&b);
                    out.extend_from_slice(&count.to_be_bytes());
                }
            }
        }
        out
    }

    /// Decodes a gossip payload; the manifest or roster inside is not decoded here.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        let (&kind, rest) = buf.split_first().ok_or(SyncError::Truncated)?;
        let cap = |max: usize, what| {
            if rest.len() > max {
                Err(SyncError::TooLarge {
                    what,
                    len: rest.len() as u64,
                    max,
                })
            } else {
                Ok(rest.to_vec())
            }
        };
        match kind {
            ANN_MANIFEST => Ok(Announcement::Manifest(cap(
                crate::manifest::MAX_MANIFEST_SIZE,
                "manifest",
            )?)),
            ANN_ROSTER => Ok(Announcement::Roster(cap(
                crate::roster::MAX_ROSTER_SIZE,
                "roster",
            )?)),
            ANN_HOLDING => {
                let c = Cid::try_from(rest).map_err(|e| SyncError::Cid(e.to_string()))?;
                if c.to_bytes() != rest {
                    return Err(SyncError::Cid("not the canonical encoding".into()));
                }
                Ok(Announcement::Holding(c))
            }
            ANN_LEAVING if rest.is_empty() => Ok(Announcement::Leaving),
            ANN_LEAVING => Err(SyncError::TooLarge {
                what: "leaving announcement",
                len: rest.len() as u64,
                max: 0,
            }),
            ANN_USAGE => decode_usage(rest),
            k => Err(SyncError::UnknownKind(k)),
        }
    }
}

/// The body of a usage announcement: u16 count, then per entry a u8 CID length, the CID's
/// canonical bytes and a u64 count (big-endian).
fn decode_usage(mut rest: &[u8]) -> Result<Announcement, SyncError> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], SyncError> {
        if rest.len() < n {
            return Err(SyncError::Truncated);
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Ok(a)
    }
    let head = take(&mut rest, 2)?;
    let n = usize::from(u16::from_be_bytes([head[0], head[1]]));
    if n > MAX_USAGE_ENTRIES {
        return Err(SyncError::TooLarge {
            what: "usage entries",
            len: n as u64,
            max: MAX_USAGE_ENTRIES,
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(take(&mut rest, 1)?[0]);
        let raw = take(&mut rest, len)?;
        let c = Cid::try_from(raw).map_err(|e| SyncError::Cid(e.to_string()))?;
        if c.to_bytes() != raw {
            return Err(SyncError::Cid("not the canonical encoding".into()));
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(take(&mut rest, 8)?);
        out.push((c, u64::from_be_bytes(count)));
    }
    if !rest.is_empty() {
        return Err(SyncError::Cid(
            "trailing bytes after the usage entries".into(),
        ));
    }
    Ok(Announcement::Usage(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{RAW, cid_for};

    #[test]
    fn usage_announcements_roundtrip_and_refuse_truncation() {
        let a = Announcement::Usage(vec![(cid(1), 7), (cid(2), u64::MAX)]);
        let bytes = a.encode();
        assert_eq!(Announcement::decode(&bytes).expect("decodes"), a);
        for cut in 1..bytes.len() {
            assert!(Announcement::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Announcement::decode(&extra).is_err());
        let mut many = vec![4u8];
        many.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(
            Announcement::decode(&many),
            Err(SyncError::TooLarge { .. })
        ));
    }
    use proptest::prelude::*;

    fn cid(n: u32) -> Cid {
        cid_for(RAW, &n.to_le_bytes())
    }

    #[test]
    fn roundtrips() {
        let reqs = [
            Request::Summary {
                federation: "fed".into(),
            },
            Request::Rosters { after: 7 },
            Request::Bucket { index: 255 },
            Request::Manifests {
                cids: vec![cid(1), cid(2)],
            },
            Request::Usage { after: None },
            Request::Usage {
                after: Some(cid(4)),
            },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        let mut s = Summary::default();
        s.add(&cid(1));
        let resps = [
            Response::Summary {
                roster_version: 3,
                buckets: s.buckets.clone(),
                holdings: vec![cid(9)],
                usage: None,
            },
            Response::Summary {
                roster_version: 3,
                buckets: s.buckets.clone(),
                holdings: vec![],
                usage: Some(usage_digest(&[(cid(6), 2)])),
            },
            Response::Rosters {
                rosters: vec![vec![1, 2], vec![]],
            },
            Response::Bucket { cids: vec![cid(3)] },
            Response::Manifests {
                manifests: vec![vec![0; 10]],
            },
            Response::Refused {
                reason: "not a member".into(),
            },
            Response::Usage {
                totals: vec![(cid(6), 0), (cid(7), u64::MAX)],
            },
        ];
        for r in resps {
            assert_eq!(Response::decode(&r.encode()), Ok(r));
        }
        for a in [
            Announcement::Manifest(vec![1, 2, 3]),
            Announcement::Roster(vec![4]),
            Announcement::Holding(cid(5)),
            Announcement::Leaving,
        ] {
            assert_eq!(Announcement::decode(&a.encode()), Ok(a));
        }
    }

    #[test]
    fn caps_and_garbage() {
        // A manifest request claiming 2^40 CIDs is refused before allocating.
        let mut b = vec![REQ_MANIFESTS];
        varint::encode(1 << 40, &mut b);
        assert!(matches!(
            Request::decode(&b),
            Err(SyncError::TooLarge { .. })
        ));
        assert_eq!(Request::decode(&[]), Err(SyncError::Truncated));
        assert_eq!(Request::decode(&[99]), Err(SyncError::UnknownKind(99)));
        let mut ok = Request::Rosters { after: 1 }.encode();
        ok.push(0);
        assert_eq!(Request::decode(&ok), Err(SyncError::Trailing(1)));
        assert!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).is_err());
        assert_eq!(frame_len(5u32.to_be_bytes()), Ok(5));
        // A summary with too few buckets.
        let mut s = vec![RESP_SUMMARY, 1, 1, 0];
        s.extend_from_slice(&[0; 32]);
        s.push(0);
        assert_eq!(Response::decode(&s), Err(SyncError::BucketCount(1)));
        // A usage page claiming more entries than a page holds is refused before allocating.
        let mut u = vec![RESP_USAGE];
        varint::encode(MAX_USAGE_ENTRIES as u64 + 1, &mut u);
        assert!(matches!(
            Response::decode(&u),
            Err(SyncError::TooLarge { .. })
        ));
        assert_eq!(
            Request::decode(&[REQ_USAGE, 2]),
            Err(SyncError::UnknownKind(2))
        );
    }

    #[test]
    fn usage_digests_are_order_free_and_track_each_total() {
        let totals = [(cid(1), 3), (cid(2), 5)];
        let d = usage_digest(&totals);
        assert_eq!(d, usage_digest(totals.iter().rev()));
        assert_eq!(usage_digest(&[]), [0; 32]);
        // One more download of cid(1): XOR the old term out and the new one in.
        let mut inc = d;
        xor_into(&mut inc, &usage_term(&cid(1), 3));
        xor_into(&mut inc, &usage_term(&cid(1), 4));
        assert_eq!(inc, usage_digest(&[(cid(1), 4), (cid(2), 5)]));
        assert_ne!(inc, d);
        // A summary with a digest of the wrong length is refused, not half-read.
        let mut b = Response::Summary {
            roster_version: 1,
            buckets: Summary::default().buckets,
            holdings: vec![],
            usage: Some(d),
        }
        .encode();
        b.pop();
        assert_eq!(Response::decode(&b), Err(SyncError::Trailing(31)));
    }

    #[test]
    fn summaries_compare_by_bucket() {
        let (mut a, mut b) = (Summary::default(), Summary::default());
        for i in 0..1000 {
            a.add(&cid(i));
            b.add(&cid(999 - i));
        }
        assert!(a.differing(&b.buckets).is_empty());
        b.add(&cid(5000));
        let d = a.differing(&b.buckets);
        assert_eq!(d, vec![bucket_of(&cid(5000)).0]);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::decode(&data);
            let _ = Response::decode(&data);
            let _ = Announcement::decode(&data);
        }
    }
}
