//! Why a p2p protocol exchange failed: sync rounds ([`SyncFailure`]), the Bitswap server
//! ([`BitswapServeError`]) and client ([`BitswapFetchError`]), and the fetch/1 server
//! ([`FetchServeError`], and [`Refusal`], the reason a fetch/1 request is declined).
//!
//! Each `Display` is the text logs and peers read: a [`Refusal`] goes to the peer inside
//! `Frame::Error`, so its words are part of what other nodes see and must stay as they are.
//! This module holds types only; it must not open streams, read the store or decide anything.

use super::command::DialFailure;
use crate::registry::RegistryError;
use crate::store::StoreError;
use crate::usage::UsageError;
use libp2p::{Multiaddr, PeerId};
use libp2p_stream::OpenStreamError;
use shubnet_protocol::Cid;
use shubnet_protocol::bitswap::BitswapError;
use shubnet_protocol::cid::CidError;
use shubnet_protocol::dagpb::DagPbError;
use shubnet_protocol::fetch::{DagError, Frame};
use shubnet_protocol::manifest::ManifestError;
use shubnet_protocol::roster::RosterError;
use std::time::Duration;
use tokio::task::JoinError;
use tokio::time::error::Elapsed;

/// Why a `/shubnet/sync/1` exchange (either side) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The stream broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A frame header announced an impossible length.
    #[error("{0}")]
    Frame(#[from] shubnet_protocol::sync::SyncError),
    /// The stream ended inside a frame.
    #[error("truncated frame: {0}")]
    TruncatedFrame(#[source] std::io::Error),
    /// The peer sent no request for this long.
    #[error("peer idle")]
    Idle {
        /// How long the server waited.
        after: Duration,
    },
    /// The peer did not answer a request in time.
    #[error("no answer in time: {source}")]
    NoAnswer {
        /// How long the client waited.
        after: Duration,
        /// The timer's report.
        source: Elapsed,
    },
    /// The peer closed the stream instead of answering.
    #[error("the peer closed the sync stream")]
    Closed,
    /// The peer answered with a refusal.
    #[error("the peer refused to sync: {reason}")]
    Refused {
        /// The peer's words.
        reason: String,
    },
    /// The peer's request did not decode.
    #[error("bad sync request: {0}")]
    BadRequest(#[source] shubnet_protocol::sync::SyncError),
    /// The peer's answer did not decode.
    #[error("bad sync answer: {0}")]
    BadAnswer(#[source] shubnet_protocol::sync::SyncError),
    /// The peer answered something the protocol does not allow at that point.
    #[error("the peer answered {what}")]
    Unexpected {
        /// What came instead.
        what: &'static str,
    },
    /// The peer sent a manifest that does not decode.
    #[error("the peer answered an undecodable manifest ({0})")]
    BadManifest(#[source] ManifestError),
    /// The peer sent a roster that does not decode.
    #[error("the peer sent an undecodable roster: {0}")]
    BadRoster(#[source] RosterError),
    /// The peer sent a roster the registry refused.
    #[error("the peer sent a roster this node refuses: {0}")]
    RosterRefused(#[source] Box<SyncFailure>),
    /// This node has no federation to sync.
    #[error("not in a federation")]
    NoFederation,
    /// No stream to the peer could be opened.
    #[error("cannot open a sync stream: {0}")]
    OpenStream(#[source] OpenStreamError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The usage store failed.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The access store failed.
    #[error(transparent)]
    Access(#[from] crate::access::AccessStoreError),
    /// A blocking task panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(#[from] JoinError),
}

/// Why the Bitswap server stopped reading a peer's stream.
#[derive(Debug, thiserror::Error)]
pub enum BitswapServeError {
    /// The stream broke.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A message announced more bytes than Bitswap allows.
    #[error("message of {len} bytes exceeds the limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A message did not decode.
    #[error(transparent)]
    Decode(#[from] BitswapError),
    /// No stream back to the peer could be opened for the answers.
    #[error("cannot open a stream back: {0}")]
    OpenStream(#[source] OpenStreamError),
    /// The peer took no answer bytes for this long.
    #[error("the peer took no answer for {after:?}")]
    WriteStalled {
        /// How long the write waited.
        after: Duration,
    },
}

/// Why a Bitswap dial or fetch failed. The HTTP adapter hands the `Display` to the client.
#[derive(Debug, thiserror::Error)]
pub enum BitswapFetchError {
    /// The network's event loop is gone.
    #[error("the p2p network is not running")]
    NotRunning,
    /// The dial took too long.
    #[error("no connection within {after:?}")]
    DialTimeout {
        /// How long it was given.
        after: Duration,
    },
    /// The network stopped before answering.
    #[error("the p2p network stopped")]
    Stopped,
    /// The event loop could not connect.
    #[error(transparent)]
    Dial(#[from] DialFailure),
    /// No peer address was given.
    #[error("no peer to fetch {root} from; name at least one (--peer MULTIADDR)")]
    NoPeers {
        /// The image asked for.
        root: Box<Cid>,
    },
    /// Every dial failed.
    #[error("cannot connect to any peer: {}", joined(.failures))]
    Unreachable {
        /// Each address and why it failed.
        failures: Vec<(Multiaddr, BitswapFetchError)>,
    },
    /// The root inlines its content.
    #[error("{root} is an identity CID; there is nothing to fetch")]
    IdentityRoot {
        /// The image asked for.
        root: Box<Cid>,
    },
    /// The spool file could not be created.
    #[error("creating the fetch spool: {0}")]
    SpoolCreate(#[source] std::io::Error),
    /// The spool file could not be written.
    #[error("writing the fetch spool: {0}")]
    SpoolWrite(#[source] std::io::Error),
    /// Wants could not be sent.
    #[error("fetching {root}: {source}")]
    Wants {
        /// The image being fetched.
        root: Box<Cid>,
        /// Why sending failed.
        source: WantsError,
    },
    /// The last peer to ask did not give a block.
    #[error(
        "cannot fetch block {}{}: peer {peer} {why}{}",
        .at.cid,
        part_of(.at),
        if *.others { ", nor did the other peers" } else { "" }
    )]
    Missing {
        /// The block and its image.
        at: Box<ImageBlock>,
        /// The last peer asked.
        peer: PeerId,
        /// What that peer did.
        why: Unanswered,
        /// Whether other peers were asked before it.
        others: bool,
    },
    /// A block did not hash to its CID.
    #[error("peer {peer} sent a bad block: {source}")]
    BadBlock {
        /// The sender.
        peer: PeerId,
        /// The mismatch.
        source: CidError,
    },
    /// A raw block longer than a leaf index can describe.
    #[error("block {cid} is too large")]
    BlockTooLarge {
        /// The block.
        cid: Box<Cid>,
    },
    /// A dag-pb block that is no UnixFS file node.
    #[error("{}: {} is not a UnixFS file node: {source}", .at.root, .at.cid)]
    NotUnixFs {
        /// The node and its image.
        at: Box<ImageBlock>,
        /// The decoder's reason.
        source: DagPbError,
    },
    /// A file DAG links to an identity CID.
    #[error("{root}: identity CIDs inside a file DAG are not supported")]
    IdentityChild {
        /// The image being fetched.
        root: Box<Cid>,
    },
    /// A block of a codec a file DAG cannot hold.
    #[error("{}: block {} has codec {codec:#x}, not raw or dag-pb", .at.root, .at.cid)]
    Codec {
        /// The block and its image.
        at: Box<ImageBlock>,
        /// Its codec.
        codec: u64,
    },
}

/// A block of an image, named in an error.
#[derive(Debug)]
pub struct ImageBlock {
    /// The image.
    pub root: Cid,
    /// The block.
    pub cid: Cid,
}

/// Why a want went unanswered by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// It answered `DontHave`.
    #[error("does not have it")]
    DontHave,
    /// It did not answer within the want timeout.
    #[error("did not send it within the timeout")]
    Timeout,
    /// The fetch's channel closed.
    #[error("stream closed")]
    Closed,
}

/// Why wants could not be sent to a peer.
#[derive(Debug, thiserror::Error)]
pub enum WantsError {
    /// No Bitswap stream could be opened.
    #[error("cannot open a bitswap stream to {peer}: {source}")]
    OpenStream {
        /// The peer.
        peer: PeerId,
        /// libp2p-stream's reason.
        source: OpenStreamError,
    },
    /// The stream broke.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn joined(failures: &[(Multiaddr, BitswapFetchError)]) -> String {
    failures
        .iter()
        .map(|(a, e)| format!("{a}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn part_of(m: &ImageBlock) -> String {
    if m.cid == m.root {
        String::new()
    } else {
        format!(" (part of {})", m.root)
    }
}

/// Why the fetch/1 server stopped serving a stream (logged at debug level, never sent).
#[derive(Debug, thiserror::Error)]
pub enum FetchServeError {
    /// The stream broke.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer sent no request in time.
    #[error("no request within {after:?}")]
    NoRequest {
        /// How long it was given.
        after: Duration,
    },
}

/// Why a fetch/1 request is declined; the `Display` goes to the peer in `Frame::Error`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The peer is not a roster member: fetch/1 is federation-only.
    #[error("refused: this node serves /shubnet/fetch/1 only to roster members")]
    NotMember,
    /// The request did not decode.
    #[error("bad request: {0}")]
    BadRequest(#[source] super::fetch::WireError),
    /// The first frame was not a request.
    #[error("not a request: {0:?}")]
    NotARequest(Box<Frame>),
    /// `Watch` on a session: its answer never ends, so nothing could follow it.
    #[error("Watch is not allowed in a session; use /shubnet/fetch/1")]
    WatchInSession,
    /// The stream broke while answering.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("{0}")]
    Task(#[from] JoinError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The image's leaf table could not be computed.
    #[error("{0}")]
    Dag(#[from] DagError),
    /// Neither a complete copy nor a partial download of the image is here.
    #[error("{root} is not held here")]
    NotHeld {
        /// The image.
        root: Box<Cid>,
    },
    /// A dag-pb node of a complete image is missing.
    #[error("node {} of {} is missing here", .at.cid, .at.root)]
    NodeMissing {
        /// The node and its image.
        at: Box<ImageBlock>,
    },
    /// The blob of a complete image could not be opened.
    #[error("cannot open {root}: {source}")]
    Open {
        /// The image.
        root: Box<Cid>,
        /// The store's reason.
        source: StoreError,
    },
    /// The range asked for goes past the image's last leaf.
    #[error("{root} has {leaves} leaves; asked for {first}..{end}")]
    OutOfRange {
        /// The image.
        root: Box<Cid>,
        /// Its leaf count.
        leaves: u64,
        /// First leaf asked for.
        first: u64,
        /// One past the last leaf asked for.
        end: u64,
    },
    /// A leaf of a partial download is not verified yet.
    #[error("leaf {index} of {root} is not held here")]
    LeafNotHeld {
        /// The leaf.
        index: u64,
        /// The image.
        root: Box<Cid>,
    },
    /// A stored block failed its hash check.
    #[error("block {cid} is damaged here")]
    Damaged {
        /// The block.
        cid: Box<Cid>,
    },
    /// A leaf could not be read.
    #[error("cannot read leaf {index}: {source}")]
    ReadLeaf {
        /// The leaf.
        index: u64,
        /// The store's reason.
        source: StoreError,
    },
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transports or behaviours could not be set up.
    #[error("setting up the transports: {0}")]
    Transport(String),
    /// The gossipsub configuration was refused.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// A protocol name was refused.
    #[error("protocol name: {0}")]
    ProtocolName(String),
    /// A stream protocol was registered twice.
    #[error("registering {protocol}: {reason}")]
    Register {
        /// The protocol.
        protocol: &'static str,
        /// libp2p-stream's reason.
        reason: String,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// The transport's reason.
        reason: String,
    },
}
