//! The Bitswap 1.2.0 server: answers wantlists from any peer with blocks it holds and that it
//! may give that peer, each verified against its CID before it leaves (the store hashes every
//! block it serves). Answers go out on a stream this node opens, packed into ≤ 2 MiB messages.
//!
//! Blocks only private collections publish are treated as not held for peers that are not
//! roster members. Every message sent passes through the node's upload limit (the same bucket
//! as `/shubnet/fetch/1`), so `--upload-limit` caps all that the node gives away.

use super::bitswap_client::Pending;
use super::protocol;
use super::ratelimit::RateLimit;
use crate::http::backend::NodeBackend;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use shubnet_gateway::ContentBackend;
use shubnet_protocol::bitswap::{
    MAX_HAVE_AS_BLOCK, MAX_MESSAGE_SIZE, Message, PROTOCOL, Presence, WantType, pack,
};

/// Registers the protocol and spawns the accept loop. Blocks and presences that arrive are
/// handed to the client's waiting fetches through `pending`. Answers are paced by `upload`.
pub fn serve(
    mut control: libp2p_stream::Control,
    backend: NodeBackend,
    pending: Pending,
    upload: RateLimit,
) -> anyhow::Result<()> {
    let mut incoming = control
        .accept(protocol(PROTOCOL))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let (backend, control, pending, upload) = (
                backend.clone(),
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
    backend: NodeBackend,
    mut control: libp2p_stream::Control,
    pending: Pending,
    upload: RateLimit,
) -> anyhow::Result<()> {
    loop {
        let Some(len) = read_varint(&mut stream).await? else {
            return Ok(());
        };
        let len = usize::try_from(len)?;
        if len > MAX_MESSAGE_SIZE {
            anyhow::bail!("message of {len} bytes exceeds the limit");
        }
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
            .map_err(|e| anyhow::anyhow!("cannot open a stream back: {e}"))?;
        for m in answers {
            let framed = m.encode_framed();
            upload.acquire(framed.len()).await;
            out.write_all(&framed).await?;
            shubnet_metrics::global().transferred("bitswap", true, framed.len() as u64);
        }
        out.close().await?;
    }
}

async fn answer(peer: &PeerId, msg: &Message, backend: &NodeBackend) -> Vec<Message> {
    let mut blocks = Vec::new();
    let mut presences = Vec::new();
    let member = backend.is_member(peer).await;
    for want in msg.wants.iter().filter(|w| !w.cancel) {
        let held = match backend.block(&want.cid).await {
            Ok(Some(b)) if member || backend.visibility().is_public(&want.cid).await => Some(b),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(cid = %want.cid, error = %e, "cannot serve a wanted block");
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
