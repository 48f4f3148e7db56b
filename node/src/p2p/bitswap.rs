//! The Bitswap 1.2.0 server: answers wantlists from any peer with blocks it holds and that it
//! may give that peer, each verified against its CID before it leaves (the store hashes every
//! block it serves). Answers go out on a stream this node opens, packed into ≤ 2 MiB messages.
//!
//! Blocks only private collections publish are treated as not held for peers that are not
//! roster members. Every message sent passes through the node's upload limit (the same bucket
//! as `/shubnet/fetch/1`), so `--upload-limit` caps all that the node gives away.
//!
//! It only reads the store and answers; it must not write the store, decide membership (the
//! [`Gate`] does) or privacy (the [`Visibility`] service does), nor drive the swarm.

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
use shubnet_protocol::bitswap::{
    MAX_HAVE_AS_BLOCK, MAX_MESSAGE_SIZE, Message, PROTOCOL, Presence, WantType, pack,
};

/// What answering wantlists reads.
#[derive(Clone, Debug)]
pub(super) struct Server {
    /// The blocks.
    pub store: Store,
    /// Members may have private blocks.
    pub gate: Gate,
    /// Which blocks are private.
    pub visibility: Visibility,
}

/// Registers the protocol and spawns the accept loop. Blocks and presences that arrive are
/// handed to the client's waiting fetches through `pending`. Answers are paced by `upload`.
pub(super) fn serve(
    tasks: &Tasks,
    mut control: libp2p_stream::Control,
    server: Server,
    pending: Pending,
    upload: RateLimit,
) -> Result<(), super::error::NetError> {
    let mut incoming = super::streams::accept(&mut control, PROTOCOL)?;
    tasks.spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let (backend, control, pending, upload) = (
                server.clone(),
                control.clone(),
                pending.clone(),
                upload.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = inbound(peer, stream, backend, control, pending, upload).await {
                    tracing::debug!(%peer, error = %e, "bitswap stream ended");
                }
            });
        }
    });
    Ok(())
}

/// Reads length-prefixed messages until the peer closes its side.
async fn inbound(
    peer: PeerId,
    mut stream: libp2p::Stream,
    backend: Server,
    mut control: libp2p_stream::Control,
    pending: Pending,
    upload: RateLimit,
) -> Result<(), BitswapServeError> {
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
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        shubnet_metrics::global().transferred("bitswap", false, len as u64);
        let msg = Message::decode(&buf)?;
        pending.deliver(&peer, &msg);
        let answers = answer(&peer, &msg, &backend).await;
        if answers.is_empty() {
            continue;
        }
        let mut out = control
            .open_stream(peer, protocol(PROTOCOL))
            .await
            .map_err(BitswapServeError::OpenStream)?;
        for m in answers {
            let framed = m.encode_framed();
            upload.acquire(framed.len()).await;
            out.write_all(&framed).await?;
            shubnet_metrics::global().transferred("bitswap", true, framed.len() as u64);
        }
        out.close().await?;
    }
}

async fn answer(peer: &PeerId, msg: &Message, server: &Server) -> Vec<Message> {
    let mut blocks = Vec::new();
    let mut presences = Vec::new();
    let member = server.gate.is_member(peer);
    for want in msg.wants.iter().filter(|w| !w.cancel) {
        let (store, cid) = (server.store.clone(), want.cid);
        let block = tokio::task::spawn_blocking(move || store.block(&cid)).await;
        let held = match block {
            Ok(Ok(Some(b))) if member || server.visibility.is_public(&want.cid).await => Some(b),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(cid = %want.cid, error = %e, "cannot serve a wanted block");
                None
            }
            Err(e) => {
                tracing::warn!(cid = %want.cid, error = %e, "block read task failed");
                None
            }
        };
        match (held, want.want_type) {
            (Some(b), WantType::Block) => blocks.push((want.cid, b.to_vec())),
            (Some(b), WantType::Have) if b.len() <= MAX_HAVE_AS_BLOCK => {
                blocks.push((want.cid, b.to_vec()))
            }
            (Some(_), WantType::Have) => presences.push((want.cid, Presence::Have)),
            (None, _) if want.send_dont_have => presences.push((want.cid, Presence::DontHave)),
            (None, _) => {}
        }
    }
    pack(blocks, presences)
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
