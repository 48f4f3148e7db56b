//! Single questions to one holder: opening a stream (reconnecting if needed) or leasing a kept
//! session (`session`), `Have`, `Nodes`,
//! and the survey of who holds an image, which also opens its partial download. Must not
//! schedule or move leaves: that is `transfer`.

use super::{ASK_TIMEOUT, FetchClient, FetchError, MAX_NODES, RECONNECT_WAIT, RETRY_DELAY};
use crate::p2p::command::Command;
use crate::p2p::fetch::{WireError, read_frame, write_frame};
use crate::p2p::streams::protocol;
use crate::store::StoreError;
use crate::store::partial::Partial;
use futures::AsyncWriteExt;
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::{DAG_PB, verify};
use shubnet_protocol::fetch::{Frame, Holding, PROTOCOL, SESSION_PROTOCOL};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why asking one holder something failed. Each text names the holder, so it stands alone in a
/// fetch error's list of reasons.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The node's event loop is gone, so nothing can reconnect.
    #[error("the p2p network is not running")]
    NetworkDown,
    /// The event loop tried to reconnect and could not.
    #[error("{reason}")]
    Reconnect {
        /// The holder.
        peer: PeerId,
        /// The event loop's explanation.
        reason: crate::p2p::command::DialFailure,
    },
    /// The event loop did not answer the reconnect within [`ASK_TIMEOUT`].
    #[error("cannot reconnect to {peer}")]
    ReconnectTimedOut {
        /// The holder.
        peer: PeerId,
    },
    /// Connected, but no fetch stream could be opened.
    #[error("cannot open a fetch stream to {peer}: {source}")]
    Open {
        /// The holder.
        peer: PeerId,
        /// What libp2p said.
        source: libp2p_stream::OpenStreamError,
    },
    /// The request could not be written, three times.
    #[error("sending to {peer}: {source}")]
    Send {
        /// The holder.
        peer: PeerId,
        /// The last write error.
        source: std::io::Error,
    },
    /// The holder answered with an error frame.
    #[error("{peer}: {reason}")]
    Declined {
        /// The holder.
        peer: PeerId,
        /// What it said.
        reason: String,
    },
    /// The holder answered with a frame that does not answer the question, or ended the stream.
    #[error("{peer} answered {asked} with {answer:?}")]
    Unexpected {
        /// The holder.
        peer: PeerId,
        /// The question (`Have`, `Nodes`).
        asked: &'static str,
        /// What it sent (`None`: the stream ended).
        answer: Box<Option<Frame>>,
    },
    /// The stream broke or carried a malformed frame.
    #[error("{peer}: {source}")]
    Wire {
        /// The holder.
        peer: PeerId,
        /// The stream's error.
        source: WireError,
    },
    /// A dag-pb node that does not hash to its CID (counted as misbehaviour).
    #[error("{peer} sent a node that does not match {cid}")]
    WrongNode {
        /// The holder.
        peer: PeerId,
        /// The CID it claimed.
        cid: Box<Cid>,
    },
    /// More than [`MAX_NODES`] dag-pb nodes for one DAG.
    #[error("{peer} sent too many nodes")]
    TooManyNodes {
        /// The holder.
        peer: PeerId,
    },
    /// No answer to `Have` within [`ASK_TIMEOUT`].
    #[error("{peer} did not answer within {ASK_TIMEOUT:?}")]
    NoAnswer {
        /// The holder.
        peer: PeerId,
    },
    /// Not every dag-pb node within [`ASK_TIMEOUT`].
    #[error("{peer} did not send the nodes in time")]
    NodesLate {
        /// The holder.
        peer: PeerId,
    },
}

/// A stream to a holder with a request sent on it.
pub(super) struct Lease {
    /// The stream.
    pub stream: libp2p::Stream,
    /// A session (more requests may follow, and it may be given back), else a one-request
    /// stream to a holder without sessions.
    pub session: bool,
    /// A kept session: if it ends before answering, it was closed while idle, which says
    /// nothing about the holder.
    pub reused: bool,
}

impl FetchClient {
    /// Opens a `name` stream to `peer`, reconnecting through the event loop if the connection
    /// is gone. A peer that does not support `name` is not reconnected.
    async fn open(&self, peer: PeerId, name: &'static str) -> Result<libp2p::Stream, AskError> {
        match self.control.clone().open_stream(peer, protocol(name)).await {
            Ok(s) => return Ok(s),
            Err(source @ libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {
                return Err(AskError::Open { peer, source });
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot open a fetch stream; reconnecting")
            }
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reconnect(peer, tx))
            .await
            .map_err(|_| AskError::NetworkDown)?;
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(reason))) => return Err(AskError::Reconnect { peer, reason }),
            _ => return Err(AskError::ReconnectTimedOut { peer }),
        }
        self.control
            .clone()
            .open_stream(peer, protocol(name))
            .await
            .map_err(|source| AskError::Open { peer, source })
    }

    /// Opens a one-request stream to `peer` and sends `req`.
    pub(super) async fn request(
        &self,
        peer: PeerId,
        req: &Frame,
    ) -> Result<libp2p::Stream, AskError> {
        self.request_on(peer, PROTOCOL, req).await
    }

    /// Opens a `name` stream to `peer` and sends `req`. A connection that closes just as the
    /// stream opens (two members dialling each other at once keep one of the two connections)
    /// is retried twice, after 0.2 s and 0.4 s, reconnecting if no connection is left.
    async fn request_on(
        &self,
        peer: PeerId,
        name: &'static str,
        req: &Frame,
    ) -> Result<libp2p::Stream, AskError> {
        let mut retries = 0u32;
        loop {
            let mut s = self.open(peer, name).await?;
            match send(&mut s, req).await {
                Ok(()) => return Ok(s),
                Err(_) if retries < 2 => {
                    retries += 1;
                    tokio::time::sleep(RETRY_DELAY * (1 << (retries - 1))).await;
                }
                Err(source) => return Err(AskError::Send { peer, source }),
            }
        }
    }

    /// Sends `req` to `peer` on a kept session if one is idle, else on a new session, else
    /// (a holder without sessions) on a one-request stream.
    pub(super) async fn lease(&self, peer: PeerId, req: &Frame) -> Result<Lease, AskError> {
        while let Some(mut stream) = self.sessions.take(&peer) {
            // A failed write: the session was closed while idle; try the next one.
            if send(&mut stream, req).await.is_ok() {
                return Ok(Lease {
                    stream,
                    session: true,
                    reused: true,
                });
            }
        }
        if !self.sessions.lacks(&peer) {
            match self.request_on(peer, SESSION_PROTOCOL, req).await {
                Ok(stream) => {
                    return Ok(Lease {
                        stream,
                        session: true,
                        reused: false,
                    });
                }
                Err(AskError::Open {
                    source: libp2p_stream::OpenStreamError::UnsupportedProtocol(_),
                    ..
                }) => {
                    tracing::debug!(%peer, "holder without fetch sessions; one stream per request");
                    self.sessions.refused(peer);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Lease {
            stream: self.request(peer, req).await?,
            session: false,
            reused: false,
        })
    }

    /// Keeps a session whose answers were all read, for the next request to `peer`.
    pub(super) fn give_back(&self, peer: PeerId, lease: Lease) {
        if lease.session {
            self.sessions.put(peer, lease.stream);
        }
    }

    /// Asks `peer` what it holds of `root`.
    pub async fn have(&self, peer: PeerId, root: Cid) -> Result<Holding, AskError> {
        let ask = async {
            loop {
                let mut lease = self.lease(peer, &Frame::Have(root)).await?;
                match read_frame(&mut lease.stream).await {
                    Ok(Some(Frame::Holding(h))) => {
                        self.give_back(peer, lease);
                        return Ok(h);
                    }
                    // A kept session closed while idle: ask on another.
                    Ok(None) | Err(WireError::Io(_)) if lease.reused => {}
                    other => return Err(refusal(peer, "Have", other)),
                }
            }
        };
        tokio::time::timeout(ASK_TIMEOUT, ask)
            .await
            .unwrap_or(Err(AskError::NoAnswer { peer }))
    }

    /// The verified dag-pb nodes of `root` from `peer`.
    async fn nodes_from(&self, peer: PeerId, root: Cid) -> Result<Vec<(Cid, Vec<u8>)>, AskError> {
        let ask = async {
            let mut lease = self.lease(peer, &Frame::Nodes(root)).await?;
            let mut out = Vec::new();
            loop {
                let frame = read_frame(&mut lease.stream).await;
                if lease.reused
                    && out.is_empty()
                    && matches!(frame, Ok(None) | Err(WireError::Io(_)))
                {
                    // A kept session closed while idle: ask on another.
                    lease = self.lease(peer, &Frame::Nodes(root)).await?;
                    continue;
                }
                match frame {
                    Ok(Some(Frame::Node { cid, bytes })) => {
                        if cid.codec() != DAG_PB || verify(&cid, &bytes).is_err() {
                            self.peers.misbehaved(peer);
                            return Err(AskError::WrongNode {
                                peer,
                                cid: Box::new(cid),
                            });
                        }
                        if out.len() >= MAX_NODES {
                            return Err(AskError::TooManyNodes { peer });
                        }
                        out.push((cid, bytes));
                    }
                    Ok(Some(Frame::End)) => {
                        self.give_back(peer, lease);
                        return Ok(out);
                    }
                    other => return Err(refusal(peer, "Nodes", other)),
                }
            }
        };
        tokio::time::timeout(ASK_TIMEOUT, ask)
            .await
            .unwrap_or(Err(AskError::NodesLate { peer }))
    }

    /// Who holds `root` (and what): the named holders, else those that announced it, else
    /// every connected peer, each asked `Have`.
    pub(super) async fn survey(
        &self,
        root: Cid,
        holders: Vec<PeerId>,
    ) -> Result<Vec<(PeerId, Holding)>, FetchError> {
        let named = !holders.is_empty();
        let deadline = tokio::time::Instant::now() + RECONNECT_WAIT;
        loop {
            let mut candidates = holders.clone();
            match self
                .survey_once(root, named, &mut candidates, deadline)
                .await
            {
                // A failed ask (a connection being replaced just after a restart, a reset
                // stream) is no answer: ask again while the reconnect window lasts.
                Err(FetchError::NotHeld { reasons, .. })
                    if !reasons.is_empty() && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(%root, ?reasons, "no holder answered; asking again");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                other => return other,
            }
        }
    }

    async fn survey_once(
        &self,
        root: Cid,
        named: bool,
        candidates: &mut Vec<PeerId>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<(PeerId, Holding)>, FetchError> {
        while !named && candidates.is_empty() {
            // Announced holders first, then every connected peer: announcements can lag (a
            // copy finished a moment ago) or be stale (a holder lost its disk).
            *candidates = self.peers.holders_of(&root);
            for p in self.peers.connected_peers() {
                if !candidates.contains(&p) {
                    candidates.push(p);
                }
            }
            // Nobody yet: a node that just started, or whose connection just dropped, is
            // usually reconnecting; give that a moment before giving up.
            // A node that never saw a peer has nobody to wait for.
            if candidates.is_empty()
                && tokio::time::Instant::now() < deadline
                && !self.peers.snapshot().is_empty()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                break;
            }
        }
        if candidates.is_empty() {
            return Err(FetchError::NoHolders(root));
        }
        let asked = candidates.len();
        let answers = futures::future::join_all(
            candidates
                .iter()
                .map(|&p| async move { (p, self.have(p, root).await) }),
        )
        .await;
        let mut found = Vec::new();
        let mut reasons = Vec::new();
        for (peer, a) in answers {
            match a {
                // Kept: a member fetching the same image may soon serve parts of it.
                Ok(h) => found.push((peer, h)),
                Err(e) => reasons.push(e.to_string()),
            }
        }
        if found.iter().all(|(_, h)| matches!(h, Holding::None)) {
            return Err(FetchError::NotHeld {
                root,
                asked,
                reasons,
            });
        }
        // Complete holders first: they are asked for the nodes.
        found.sort_by_key(|(_, h)| match h {
            Holding::Complete => 0,
            Holding::Partial { .. } => 1,
            Holding::None => 2,
        });
        Ok(found)
    }

    pub(super) async fn partial_for(
        &self,
        root: Cid,
        holders: &[(PeerId, Holding)],
    ) -> Result<Arc<Partial>, FetchError> {
        let errors = Mutex::new(Vec::new());
        let res = self
            .partials
            .open(&self.store, root, || async {
                for (peer, _) in holders.iter().filter(|(_, h)| *h != Holding::None) {
                    match self.nodes_from(*peer, root).await {
                        Ok(n) => return Ok(n),
                        Err(e) => errors
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(e.to_string()),
                    }
                }
                Err(StoreError::Fetch(format!(
                    "cannot learn the DAG of {root}: {}",
                    errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .join("; ")
                )))
            })
            .await;
        match res {
            Ok(p) => Ok(p),
            Err(StoreError::Fetch(m)) | Err(StoreError::Invalid(m)) => Err(FetchError::Dag(m)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes `req` and flushes it.
pub(super) async fn send(s: &mut libp2p::Stream, req: &Frame) -> std::io::Result<()> {
    write_frame(s, req).await?;
    s.flush().await
}

/// A reply that does not answer `asked`: an error frame, another frame, the end of the stream,
/// or a broken stream.
fn refusal(peer: PeerId, asked: &'static str, got: Result<Option<Frame>, WireError>) -> AskError {
    match got {
        Ok(Some(Frame::Error(reason))) => AskError::Declined { peer, reason },
        Ok(answer) => AskError::Unexpected {
            peer,
            asked,
            answer: Box::new(answer),
        },
        Err(source) => AskError::Wire { peer, source },
    }
}
