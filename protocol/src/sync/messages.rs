//! The messages of `/shubnet/sync/1` and of the federation's gossip topic, as plain types. Their
//! byte encodings live in `wire`; this file must not grow any.

use super::Bucket;
use crate::Cid;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The peer's roster version, manifest digests and holdings, for federation `federation`.
    Summary {
        /// The federation id the client is in.
        federation: String,
    },
    /// Roster versions after `after`, oldest first (at most [`MAX_ROSTERS`](super::MAX_ROSTERS)).
    Rosters {
        /// The client's current version.
        after: u64,
    },
    /// The manifest CIDs in one bucket.
    Bucket {
        /// Bucket index.
        index: u8,
    },
    /// These manifests (at most [`MAX_BATCH`](super::MAX_BATCH)).
    Manifests {
        /// Wanted manifest CIDs.
        cids: Vec<Cid>,
    },
    /// The server's own download totals for roots after `after` in byte order (at most
    /// [`MAX_USAGE_ENTRIES`](super::MAX_USAGE_ENTRIES)): a member that just connected catches up on
    /// the counts gossip only repeats when they change.
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
        /// [`BUCKETS`](super::BUCKETS) manifest buckets.
        buckets: Vec<Bucket>,
        /// Image roots the server holds completely and pinned.
        holdings: Vec<Cid>,
        /// Digest of the server's own download totals ([`usage_digest`](super::usage_digest)): a
        /// client pulls the [`Request::Usage`] pages whenever it differs from the one it last
        /// pulled, so counts converge by anti-entropy like manifests. `None` from a server that
        /// predates it.
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
    /// length-prefixed CID and a big-endian u64; fewer than
    /// [`MAX_USAGE_ENTRIES`](super::MAX_USAGE_ENTRIES) means this was the last page.
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
    /// The message's author is leaving the federation (`shubnet leave`): placement should skip it
    /// so the next nodes copy its images while it still serves them. Only the author can say this
    /// of itself, so it needs no other authority; it lapses unless repeated.
    Leaving,
    /// Downloads the author served, per image root (its running totals). Advisory, unsigned data:
    /// receivers bound and sanity-check it. At most [`MAX_USAGE_ENTRIES`](super::MAX_USAGE_ENTRIES)
    /// per message.
    Usage(Vec<(Cid, u64)>),
}

impl Announcement {
    /// True for the kinds the previous release does not know (it rejects them as undecodable):
    /// they go on the federation's second topic, which that release does not subscribe to.
    pub fn is_extension(&self) -> bool {
        matches!(self, Announcement::Leaving | Announcement::Usage(_))
    }
}
