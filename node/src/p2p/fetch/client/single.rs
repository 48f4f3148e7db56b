//! Fetching an image that is one raw block: no DAG, no partial download, no workers; the block
//! is asked of each holder in turn and verified against the root itself. Must not touch the
//! multi-leaf transfer's state.

use super::{AskError, FetchClient, FetchError, FetchReport, HolderReport, STALL_TIMEOUT};
use crate::p2p::fetch::{WireError, read_frame};
use bytes::Bytes;
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::verify;
use shubnet_protocol::fetch::{Frame, Holding};

/// Why one holder did not give the block. The text is the holder's `dropped` reason in the
/// fetch report, so it does not repeat the peer id (the report names it).
#[derive(Debug, thiserror::Error)]
pub(super) enum BlockError {
    /// No stream to the holder, or the request could not be sent.
    #[error(transparent)]
    Ask(#[from] AskError),
    /// The holder answered with an error frame.
    #[error("declined: {reason}")]
    Declined {
        /// What it said.
        reason: String,
    },
    /// The holder sent another leaf than leaf 0.
    #[error("sent leaf {index} of a one-block image")]
    WrongLeaf {
        /// The index it sent.
        index: u64,
    },
    /// The holder answered with a frame that is not a leaf, or ended the stream.
    #[error("answered Leaves with {answer:?}")]
    Unexpected {
        /// What it sent (`None`: the stream ended).
        answer: Box<Option<Frame>>,
    },
    /// The stream broke or carried a malformed frame.
    #[error("{0}")]
    Wire(WireError),
    /// The block does not hash to the root.
    #[error("sent a block that does not match {root}")]
    Mismatch {
        /// The image asked for.
        root: Box<Cid>,
    },
    /// Nothing within [`STALL_TIMEOUT`].
    #[error("did not send the block within {STALL_TIMEOUT:?}")]
    TimedOut,
}

impl FetchClient {
    /// An image that is one raw block (a file of at most one leaf): asks the holders in turn
    /// for leaf 0, verifies it against `root` itself, and stores it (unpinned). A holder that
    /// sends a wrong block is counted and the next one is asked.
    pub(super) async fn fetch_single(
        &self,
        root: Cid,
        found: &[(PeerId, Holding)],
    ) -> Result<FetchReport, FetchError> {
        let mut report = FetchReport {
            root: root.to_string(),
            leaves: 1,
            ..Default::default()
        };
        let mut reasons = Vec::new();
        for (peer, _) in found.iter().filter(|(_, h)| *h != Holding::None) {
            let mut h = HolderReport {
                peer: peer.to_string(),
                ..Default::default()
            };
            let got = self.block_from(*peer, root, &mut h).await;
            report.bytes_received += h.bytes;
            match got {
                Ok(bytes) => {
                    let rec = self.store.store_single_block(&root, bytes).await?;
                    h.leaves = 1;
                    report.holders.push(h);
                    report.size = rec.size;
                    report.fetched_leaves = 1;
                    report.log(&root);
                    return Ok(report);
                }
                Err(why) => {
                    let why = why.to_string();
                    reasons.push(format!("{peer}: {why}"));
                    h.dropped = Some(why);
                    report.holders.push(h);
                }
            }
        }
        report.log(&root);
        Err(FetchError::Incomplete {
            root,
            missing: 1,
            total: 1,
            reasons,
        })
    }

    /// The single block `root` from `peer` (its leaf 0), verified against `root`.
    async fn block_from(
        &self,
        peer: PeerId,
        root: Cid,
        h: &mut HolderReport,
    ) -> Result<Bytes, BlockError> {
        let ask = async {
            let req = Frame::Leaves {
                root,
                first: 0,
                count: 1,
            };
            let mut s = self.request(peer, &req).await?;
            let bytes = match read_frame(&mut s).await {
                Ok(Some(Frame::Leaf { index: 0, bytes })) => bytes,
                Ok(Some(Frame::Error(reason))) => return Err(BlockError::Declined { reason }),
                Ok(Some(Frame::Leaf { index, .. })) => return Err(BlockError::WrongLeaf { index }),
                Ok(answer) => {
                    return Err(BlockError::Unexpected {
                        answer: Box::new(answer),
                    });
                }
                Err(e) => return Err(BlockError::Wire(e)),
            };
            self.download.acquire(bytes.len()).await;
            h.bytes += bytes.len() as u64;
            if verify(&root, &bytes).is_err() {
                h.misbehaviour = self.peers.misbehaved(peer);
                tracing::warn!(
                    %peer,
                    misbehaviour = h.misbehaviour,
                    %root,
                    "a holder sent a block that does not match its CID"
                );
                return Err(BlockError::Mismatch {
                    root: Box::new(root),
                });
            }
            Ok(Bytes::from(bytes))
        };
        tokio::time::timeout(STALL_TIMEOUT, ask)
            .await
            .unwrap_or(Err(BlockError::TimedOut))
    }
}
