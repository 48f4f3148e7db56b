//! The Bitswap 1.2.0 server: answers wantlists from any peer with blocks it holds and that it
//! may give that peer, each verified against its CID before it leaves (the store hashes every
//! block it serves). Answers go out on a stream this node opens, in ≤ 2 MiB messages.
//!
//! Blocks only private collections publish are treated as not held for peers that are not
//! roster members. Every message sent passes through the node's upload limit (the same bucket
//! as `/shubnet/fetch/1`), so `--upload-limit` caps all that the node gives away; messages to
//! non-members also pass the public upload limit (`--public-upload-limit`).
//!
//! Bitswap is open to any peer, so what one message may cost is bounded: wants for the same
//! block count once, want-have is answered from the index (only blocks small enough to be sent
//! instead of a presence are read), and blocks are read one at a time as the answer is written,
//! under the per-peer and node-wide byte budgets and the per-peer stream cap of
//! [`Budgets`](super::bitswap_budget::Budgets).
//!
//! It only reads the store and answers; it must not write the store, decide membership (the
//! [`Gate`] does) or privacy (the [`Visibility`] service does), nor drive the swarm.

use super::bitswap_budget::{Budgets, Held, Turn};
use super::bitswap_client::Pending;
use super::error::BitswapServeError;
use super::gate::Gate;
use super::ratelimit::RateLimit;
use super::streams::protocol;
use super::tasks::Tasks;
use crate::store::Store;
use crate::visibility::Visibility;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::bitswap::{
    MAX_HAVE_AS_BLOCK, MAX_MESSAGE_SIZE, MAX_SEND_SIZE, Message, PROTOCOL, Presence, Want, WantType,
};
use std::collections::HashMap;
use std::time::Duration;

/// How long one answer message may take to leave before the peer is given up on (its budget
/// would otherwise stay held by a peer that does not read).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// What a presence adds to a message, about.
const PRESENCE_COST: usize = 64;

/// What answering wantlists reads and the limits it answers under.
#[derive(Clone, Debug)]
pub(super) struct Server {
    /// The blocks.
    pub store: Store,
    /// Members may have private blocks.
    pub gate: Gate,
    /// Which blocks are private.
    pub visibility: Visibility,
    /// The node's upload bucket.
    pub upload: RateLimit,
    /// The bucket for what non-members are sent.
    pub public_upload: RateLimit,
    /// Streams and bytes in flight.
    pub budgets: Budgets,
}

/// Registers the protocol and spawns the accept loop. Blocks and presences that arrive are
/// handed to the client's waiting fetches through `pending`.
pub(super) fn serve(
    tasks: &Tasks,
    mut control: libp2p_stream::Control,
    server: Server,
    pending: Pending,
) -> Result<(), super::error::NetError> {
    let mut incoming = super::streams::accept(&mut control, PROTOCOL)?;
    tasks.spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let (server, control, pending) = (server.clone(), control.clone(), pending.clone());
            tokio::spawn(async move {
                if let Err(e) = inbound(peer, stream, server, control, pending).await {
                    tracing::debug!(%peer, error = %e, "bitswap stream ended");
                }
            });
        }
    });
    Ok(())
}

/// Reads length-prefixed messages until the peer closes its side, once the peer's budget gives
/// this stream a turn. A stream beyond the peer's cap is dropped unread.
async fn inbound(
    peer: PeerId,
    mut stream: libp2p::Stream,
    server: Server,
    mut control: libp2p_stream::Control,
    pending: Pending,
) -> Result<(), BitswapServeError> {
    let Some(turn) = server.budgets.turn(peer).await else {
        tracing::debug!(%peer, "bitswap stream dropped: the peer has too many open");
        return Ok(());
    };
    loop {
        let Some(announced) = read_varint(&mut stream).await? else {
            return Ok(());
        };
        let len = usize::try_from(announced)
            .ok()
            .filter(|len| *len <= MAX_MESSAGE_SIZE)
            .ok_or(BitswapServeError::TooLarge {
                len: announced,
                max: MAX_MESSAGE_SIZE,
            })?;
        let wants = {
            let _held = turn.hold(len).await;
            let mut buf = vec![0u8; len];
            stream.read_exact(&mut buf).await?;
            shubnet_metrics::global().transferred("bitswap", false, len as u64);
            let msg = Message::decode(&buf)?;
            pending.deliver(&peer, &msg);
            distinct(msg.wants)
        };
        if !wants.is_empty() {
            let mut answer = Answer {
                peer,
                member: server.gate.is_member(&peer),
                server: &server,
                control: &mut control,
                turn: &turn,
                out: None,
                batch: Batch::default(),
            };
            answer.all(wants).await?;
        }
    }
}

/// The wants of one message, one per block, in first-seen order: cancels dropped, a block want
/// beating a have want, and a don't-have asked for if any copy asked.
fn distinct(wants: Vec<Want>) -> Vec<Want> {
    let mut at: HashMap<Cid, usize> = HashMap::new();
    let mut out: Vec<Want> = Vec::new();
    for w in wants.into_iter().filter(|w| !w.cancel) {
        match at.get(&w.cid) {
            Some(&i) => {
                let kept = &mut out[i];
                if w.want_type == WantType::Block {
                    kept.want_type = WantType::Block;
                }
                kept.send_dont_have |= w.send_dont_have;
                kept.priority = kept.priority.max(w.priority);
            }
            None => {
                at.insert(w.cid, out.len());
                out.push(w);
            }
        }
    }
    out
}

/// The message being filled, with the budget its blocks hold.
#[derive(Default)]
struct Batch {
    msg: Message,
    size: usize,
    held: Vec<Held>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.msg.blocks.is_empty() && self.msg.presences.is_empty()
    }
}

/// Answering one message's wants, writing each message as soon as it is full.
struct Answer<'a> {
    peer: PeerId,
    member: bool,
    server: &'a Server,
    control: &'a mut libp2p_stream::Control,
    turn: &'a Turn,
    out: Option<libp2p::Stream>,
    batch: Batch,
}

/// What this node may answer for one want.
enum Found {
    /// Held and may be given: the block's length.
    Held(usize),
    /// Not held, or not for this peer.
    Missing,
}

impl Answer<'_> {
    async fn all(&mut self, wants: Vec<Want>) -> Result<(), BitswapServeError> {
        for want in wants {
            match (
                find(self.server, self.member, &want.cid).await,
                want.want_type,
            ) {
                (Found::Held(len), WantType::Have) if len > MAX_HAVE_AS_BLOCK => {
                    self.presence(want.cid, Presence::Have).await?
                }
                (Found::Held(len), _) => {
                    if !self.block(want.cid, len).await? && want.send_dont_have {
                        self.presence(want.cid, Presence::DontHave).await?
                    }
                }
                (Found::Missing, _) if want.send_dont_have => {
                    self.presence(want.cid, Presence::DontHave).await?
                }
                (Found::Missing, _) => {}
            }
        }
        self.flush().await?;
        if let Some(mut out) = self.out.take() {
            out.close().await?;
        }
        Ok(())
    }

    /// Reads the block into the batch under the budgets; false if it could not be read.
    async fn block(&mut self, cid: Cid, len: usize) -> Result<bool, BitswapServeError> {
        // The block, and its copy in the encoded message.
        let cost = 2 * len + PRESENCE_COST;
        if self.batch.size + cost > MAX_SEND_SIZE {
            self.flush().await?;
        }
        let held = match self.turn.try_hold(cost) {
            Some(h) => h,
            None => {
                // Wait holding nothing, so no two streams wait for each other's bytes.
                self.flush().await?;
                match self.turn.hold(cost).await {
                    Some(h) => h,
                    None => return Ok(false),
                }
            }
        };
        let store = self.server.store.clone();
        let bytes = match tokio::task::spawn_blocking(move || store.block(&cid)).await {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return Ok(false),
            Ok(Err(e)) => {
                tracing::warn!(%cid, error = %e, "cannot serve a wanted block");
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(%cid, error = %e, "block read task failed");
                return Ok(false);
            }
        };
        self.batch.size += cost;
        self.batch.msg.blocks.push((cid, bytes.to_vec()));
        self.batch.held.push(held);
        Ok(true)
    }

    async fn presence(&mut self, cid: Cid, p: Presence) -> Result<(), BitswapServeError> {
        if self.batch.size + PRESENCE_COST > MAX_SEND_SIZE {
            self.flush().await?;
        }
        self.batch.size += PRESENCE_COST;
        self.batch.msg.presences.push((cid, p));
        Ok(())
    }

    /// Sends the batch (opening the answer stream on first use) and releases its budget.
    async fn flush(&mut self) -> Result<(), BitswapServeError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let framed = batch.msg.encode_framed();
        drop(batch.msg);
        if !self.member {
            self.server.public_upload.acquire(framed.len()).await;
        }
        self.server.upload.acquire(framed.len()).await;
        let out = match &mut self.out {
            Some(out) => out,
            None => {
                let s = self
                    .control
                    .open_stream(self.peer, protocol(PROTOCOL))
                    .await
                    .map_err(BitswapServeError::OpenStream)?;
                self.out.insert(s)
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, out.write_all(&framed))
            .await
            .map_err(|_| BitswapServeError::WriteStalled {
                after: WRITE_TIMEOUT,
            })??;
        shubnet_metrics::global().transferred("bitswap", true, framed.len() as u64);
        drop(batch.held);
        Ok(())
    }
}

/// Asks the index (not the blob) whether the block is held, then whether this peer may
/// have it.
async fn find(server: &Server, member: bool, cid: &Cid) -> Found {
    let (store, c) = (server.store.clone(), *cid);
    let len = match tokio::task::spawn_blocking(move || store.block_len(&c)).await {
        Ok(Ok(Some(len))) => len,
        Ok(Ok(None)) => return Found::Missing,
        Ok(Err(e)) => {
            tracing::warn!(%cid, error = %e, "cannot look up a wanted block");
            return Found::Missing;
        }
        Err(e) => {
            tracing::warn!(%cid, error = %e, "block lookup task failed");
            return Found::Missing;
        }
    };
    if member || server.visibility.is_public(cid).await {
        Found::Held(len)
    } else {
        Found::Missing
    }
}

async fn read_varint(s: &mut libp2p::Stream) -> std::io::Result<Option<u64>> {
    let mut value = 0u64;
    for i in 0..9 {
        let mut b = [0u8; 1];
        match s.read(&mut b).await? {
            0 if i == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {}
        }
        value |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "varint too long",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shubnet_protocol::cid::{RAW, cid_for};

    fn want(cid: Cid, want_type: WantType, send_dont_have: bool, cancel: bool) -> Want {
        Want {
            cid,
            priority: 1,
            cancel,
            want_type,
            send_dont_have,
        }
    }

    #[test]
    fn duplicate_wants_count_once() {
        let (a, b) = (cid_for(RAW, b"a"), cid_for(RAW, b"b"));
        let mut wants = vec![want(a, WantType::Have, false, false); 1024];
        wants.push(want(b, WantType::Block, false, true));
        wants.push(want(a, WantType::Block, true, false));
        wants.push(want(b, WantType::Have, false, false));
        let d = distinct(wants);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].cid, a);
        assert_eq!(d[0].want_type, WantType::Block);
        assert!(d[0].send_dont_have);
        assert_eq!((d[1].cid, d[1].want_type), (b, WantType::Have));
    }
}
