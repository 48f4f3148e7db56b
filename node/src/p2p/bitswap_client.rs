//! The Bitswap 1.2.0 client: fetches a UnixFS file DAG by CID from given peers (any IPFS node,
//! e.g. Helia or kubo).
//!
//! Wants go out on streams this node opens (`WantType::Block`, `send_dont_have`); answers come
//! back on streams the peer opens, which the server's accept loop reads and hands to
//! [`Pending::deliver`]. A block is matched to a want by the CID computed from its bytes (the
//! protocol decoder hashes every block), and hashed once more here before it is used, so a
//! block that is not exactly the one wanted is never stored. A want answered `DontHave` or not
//! at all within [`WANT_TIMEOUT`] moves to the next peer; when none is left the fetch fails
//! and nothing is kept.
//!
//! Failures are [`BitswapFetchError`]s. This module must not store what it fetches (the store
//! imports the spool and index it returns) nor drive the swarm beyond asking for dials.

use super::command::Command;
use super::error::{BitswapFetchError, ImageBlock, Unanswered, WantsError};
use super::streams::protocol;
use crate::store::FetchedDag;
use futures::stream::FuturesUnordered;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use shubnet_protocol::Cid;
use shubnet_protocol::bitswap::{Message, PROTOCOL, Presence, Want, WantType};
use shubnet_protocol::cid::{DAG_PB, RAW, is_identity, verify};
use shubnet_protocol::unixfs::FileNode;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, oneshot};

type Result<T, E = BitswapFetchError> = std::result::Result<T, E>;

/// How long a want may go unanswered before the peer counts as not having the block.
pub const WANT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dialling a peer may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Wants outstanding at once.
pub const MAX_OUTSTANDING: usize = 64;

/// What a peer said about a wanted block.
#[derive(Debug)]
pub enum Reply {
    /// The block; its CID was computed from these bytes.
    Block(Vec<u8>),
    /// The peer does not have it.
    DontHave,
}

type Waiters = HashMap<Cid, Vec<(PeerId, oneshot::Sender<Reply>)>>;

/// Wants waiting for an answer, shared between fetches and the inbound stream reader.
#[derive(Debug, Clone, Default)]
pub struct Pending(Arc<Mutex<Waiters>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(&self, cid: Cid, peer: PeerId) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(cid).or_default().push((peer, tx));
        rx
    }

    /// Routes the blocks and presences of a message from `peer` to the fetches waiting for them.
    /// A block satisfies every waiter (its CID is computed from its bytes, so whoever sent it
    /// it is the block); a `DontHave` only the wants sent to that peer.
    pub fn deliver(&self, peer: &PeerId, msg: &Message) {
        if msg.blocks.is_empty() && msg.presences.is_empty() {
            return;
        }
        let mut map = self.lock();
        for (cid, data) in &msg.blocks {
            for (_, tx) in map.remove(cid).unwrap_or_default() {
                let _ = tx.send(Reply::Block(data.clone()));
            }
        }
        for (cid, p) in &msg.presences {
            if *p != Presence::DontHave {
                continue;
            }
            if let Some(waiters) = map.get_mut(cid) {
                let (theirs, rest): (Vec<_>, Vec<_>) =
                    waiters.drain(..).partition(|(p, _)| p == peer);
                *waiters = rest;
                for (_, tx) in theirs {
                    let _ = tx.send(Reply::DontHave);
                }
                if waiters.is_empty() {
                    map.remove(cid);
                }
            }
        }
    }

    /// Drops waiters whose fetch has gone.
    fn forget_abandoned(&self) {
        self.lock().retain(|_, w| {
            w.retain(|(_, tx)| !tx.is_closed());
            !w.is_empty()
        });
    }
}

/// Cleans the shared map when a fetch ends, however it ends.
struct Cleanup(Pending);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.forget_abandoned();
    }
}

/// A handle for fetching content over Bitswap; cheap to clone.
#[derive(Clone)]
pub struct BitswapClient {
    control: libp2p_stream::Control,
    pending: Pending,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for BitswapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitswapClient").finish_non_exhaustive()
    }
}

impl BitswapClient {
    pub(super) fn new(
        control: libp2p_stream::Control,
        pending: Pending,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Self {
            control,
            pending,
            commands,
        }
    }

    /// Connects to `addr` (which must end in `/p2p/PEER_ID`), returning once connected.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Dial(addr, tx))
            .await
            .map_err(|_| BitswapFetchError::NotRunning)?;
        match tokio::time::timeout(DIAL_TIMEOUT, rx).await {
            Err(_) => Err(BitswapFetchError::DialTimeout {
                after: DIAL_TIMEOUT,
            }),
            Ok(Err(_)) => Err(BitswapFetchError::Stopped),
            Ok(Ok(r)) => Ok(r?),
        }
    }

    async fn send_wants(&self, peer: PeerId, cids: &[Cid]) -> Result<(), WantsError> {
        let msg = Message {
            wants: cids
                .iter()
                .map(|c| Want {
                    cid: *c,
                    priority: 1,
                    cancel: false,
                    want_type: WantType::Block,
                    send_dont_have: true,
                })
                .collect(),
            ..Default::default()
        };
        let mut s = self
            .control
            .clone()
            .open_stream(peer, protocol(PROTOCOL))
            .await
            .map_err(|source| WantsError::OpenStream { peer, source })?;
        let framed = msg.encode_framed();
        s.write_all(&framed).await?;
        shubnet_metrics::global().transferred("bitswap", true, framed.len() as u64);
        s.close().await?;
        Ok(())
    }

    /// Fetches the UnixFS file DAG under `root` from `peers`: raw leaves go into the file
    /// `spool` (in arrival order; the returned index says where), dag-pb nodes into memory.
    /// Every block is verified against its CID first.
    pub async fn fetch(&self, root: Cid, peers: &[Multiaddr], spool: &Path) -> Result<FetchedDag> {
        let _cleanup = Cleanup(self.pending.clone());
        if peers.is_empty() {
            return Err(BitswapFetchError::NoPeers {
                root: Box::new(root),
            });
        }
        let mut connected = Vec::new();
        let mut failures = Vec::new();
        for addr in peers {
            match self.dial(addr.clone()).await {
                Ok(p) => connected.push(p),
                Err(e) => failures.push((addr.clone(), e)),
            }
        }
        if connected.is_empty() {
            return Err(BitswapFetchError::Unreachable { failures });
        }
        if is_identity(&root) {
            return Err(BitswapFetchError::IdentityRoot {
                root: Box::new(root),
            });
        }
        let file = tokio::fs::File::create(spool)
            .await
            .map_err(BitswapFetchError::SpoolCreate)?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut pos = 0u64;
        let mut dag = FetchedDag::default();
        let mut seen = HashSet::from([root]);
        // Each want with the index (in `connected`) of the peer to ask.
        let mut queue: VecDeque<(Cid, usize)> = VecDeque::from([(root, 0)]);
        let mut inflight = FuturesUnordered::new();
        loop {
            let room = MAX_OUTSTANDING.saturating_sub(inflight.len());
            if room > 0 && !queue.is_empty() {
                let mut by_peer: HashMap<usize, Vec<Cid>> = HashMap::new();
                for (cid, i) in queue.drain(..room.min(queue.len())) {
                    by_peer.entry(i).or_default().push(cid);
                }
                for (i, cids) in by_peer {
                    let peer = connected[i];
                    for &cid in &cids {
                        let rx = self.pending.register(cid, peer);
                        inflight.push(async move {
                            (cid, i, tokio::time::timeout(WANT_TIMEOUT, rx).await)
                        });
                    }
                    self.send_wants(peer, &cids).await.map_err(|source| {
                        BitswapFetchError::Wants {
                            root: Box::new(root),
                            source,
                        }
                    })?;
                }
            }
            let Some((cid, i, answer)) = inflight.next().await else {
                break;
            };
            let peer = connected[i];
            let data = match answer {
                Ok(Ok(Reply::Block(data))) => data,
                other => {
                    let why = match other {
                        Ok(Ok(_)) => Unanswered::DontHave,
                        Err(_) => Unanswered::Timeout,
                        Ok(Err(_)) => Unanswered::Closed,
                    };
                    if i + 1 < connected.len() {
                        tracing::debug!(%cid, %peer, why = %why, "trying the next peer");
                        queue.push_front((cid, i + 1));
                        continue;
                    }
                    return Err(BitswapFetchError::Missing {
                        at: Box::new(ImageBlock { root, cid }),
                        peer,
                        why,
                        others: connected.len() > 1,
                    });
                }
            };
            // The decoder computed the CID it was matched by; hash again before any use.
            verify(&cid, &data).map_err(|source| {
                shubnet_metrics::global().reject("block", "hash_mismatch");
                BitswapFetchError::BadBlock { peer, source }
            })?;
            match cid.codec() {
                RAW => {
                    let len = u32::try_from(data.len())
                        .map_err(|_| BitswapFetchError::BlockTooLarge { cid: Box::new(cid) })?;
                    out.write_all(&data)
                        .await
                        .map_err(BitswapFetchError::SpoolWrite)?;
                    dag.index.insert(cid, (pos, len));
                    pos += u64::from(len);
                }
                DAG_PB => {
                    let node = FileNode::decode(&cid, &data).map_err(|source| {
                        BitswapFetchError::NotUnixFs {
                            at: Box::new(ImageBlock { root, cid }),
                            source,
                        }
                    })?;
                    if let FileNode::Branch { children, .. } = node {
                        for (c, _) in children {
                            if is_identity(&c) {
                                return Err(BitswapFetchError::IdentityChild {
                                    root: Box::new(root),
                                });
                            }
                            if seen.insert(c) {
                                queue.push_back((c, 0));
                            }
                        }
                    }
                    dag.nodes.insert(cid, data);
                }
                codec => {
                    return Err(BitswapFetchError::Codec {
                        at: Box::new(ImageBlock { root, cid }),
                        codec,
                    });
                }
            }
        }
        out.flush().await.map_err(BitswapFetchError::SpoolWrite)?;
        Ok(dag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shubnet_protocol::cid::cid_for;

    fn block_msg(cid: Cid, data: &[u8]) -> Message {
        // Encode and decode as on the wire: the decoder computes the CID from the bytes.
        let m = Message {
            blocks: vec![(cid, data.to_vec())],
            ..Default::default()
        };
        Message::decode(&m.encode()).expect("decodes")
    }

    #[test]
    fn a_forged_block_satisfies_no_want_and_a_true_one_does() {
        let pending = Pending::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let cid = cid_for(RAW, b"wanted");
        let mut rx = pending.register(cid, a);
        pending.deliver(&b, &block_msg(cid, b"forged"));
        assert!(
            rx.try_recv().is_err(),
            "a block with other bytes was delivered"
        );
        pending.deliver(&b, &block_msg(cid, b"wanted"));
        assert!(matches!(rx.try_recv(), Ok(Reply::Block(d)) if d == b"wanted"));
        assert!(pending.lock().is_empty());
    }

    #[test]
    fn dont_have_only_answers_wants_sent_to_that_peer() {
        let pending = Pending::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let cid = cid_for(RAW, b"x");
        let mut from_a = pending.register(cid, a);
        let mut from_b = pending.register(cid, b);
        let msg = Message {
            presences: vec![(cid, Presence::DontHave)],
            ..Default::default()
        };
        pending.deliver(&b, &msg);
        assert!(from_a.try_recv().is_err());
        assert!(matches!(from_b.try_recv(), Ok(Reply::DontHave)));
        drop(from_a);
        pending.forget_abandoned();
        assert!(pending.lock().is_empty());
    }
}
