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
//!
//! This module owns the constants and the decode error; `digest` the manifest buckets and the
//! usage digest, `messages` the message types, and `wire` (with its field codec) their
//! encodings. It must not do I/O or know about peers: the node's `p2p::anti_entropy` and
//! `p2p::gossip` drive the exchange.

use crate::varint;

pub mod access;
mod digest;
mod fields;
mod messages;
mod wire;

pub use access::{
    ACCESS_PROTOCOL, AccessRecord, AccessRequest, AccessResponse, MAX_ACCESS_FRAME,
    MAX_ACCESS_RECORDS, access_digest,
};
pub use digest::{Bucket, Summary, bucket_of, usage_digest, usage_term, xor_into};
pub use messages::{Announcement, Request, Response};
pub use wire::{frame, frame_len};

/// The stream protocol id of the current dialect: the summary carries the usage digest, and
/// `Usage` pages may be asked for.
pub const PROTOCOL: &str = "/shubnet/sync/2";
/// The previous release's dialect, still served and spoken to peers that offer nothing newer:
/// no usage digest in the summary and no `Usage` requests, which that release cannot decode
/// (and would count as misbehaviour).
pub const PROTOCOL_V1: &str = "/shubnet/sync/1";
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
/// Most `(root, downloads)` pairs in one usage announcement.
pub const MAX_USAGE_ENTRIES: usize = 1000;

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

#[cfg(test)]
mod tests;
