//! Bitswap 1.2.0 messages (`/ipfs/bitswap/1.2.0`), as kubo/boxo and Helia speak them.
//!
//! Goals: decode any wantlist a real client sends, and encode responses (blocks and presences)
//! in messages small enough for every client. Non-goals: the 1.0.0 `blocks` field on output.
//!
//! Spec: <https://specs.ipfs.tech/bitswap-protocol/>. Framing on a stream is
//! `varint(len) ‖ protobuf`; several messages may follow one another. Streams carry messages one
//! way only: a server answers on a stream it opens itself (reference/ipfs-interop.md §2.2).
//!
//! Messages only, as bytes: it must not do I/O or decide which blocks to give whom; the node's
//! Bitswap server and client own streams, the store and privacy.

use crate::dagpb::{DagPbError, Fields, Value, put_bytes, put_uint};
use crate::varint;
use cid::Cid;
use thiserror::Error;

/// The protocol id.
pub const PROTOCOL: &str = "/ipfs/bitswap/1.2.0";
/// Largest message accepted (go-libp2p's and Helia's limit).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Largest message sent: Helia resets streams over its 4 MiB limit, boxo splits at 2 MiB.
pub const MAX_SEND_SIZE: usize = 2 * 1024 * 1024;
/// Wants honoured per message; Helia's own cap per peer.
pub const MAX_WANTS: usize = 1024;
/// Blocks at most this size answer a `Have` want with the block itself (boxo, Helia).
pub const MAX_HAVE_AS_BLOCK: usize = 1024;

/// Why a message could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BitswapError {
    /// Broken protobuf.
    #[error("malformed bitswap message: {0}")]
    Malformed(&'static str),
    /// A CID field did not parse.
    #[error("bitswap message carries an invalid CID")]
    BadCid,
    /// More wants than accepted.
    #[error("wantlist has more than {MAX_WANTS} entries")]
    TooManyWants,
}

impl From<DagPbError> for BitswapError {
    fn from(e: DagPbError) -> Self {
        match e {
            DagPbError::Malformed(m) => BitswapError::Malformed(m),
            _ => BitswapError::Malformed("bad field"),
        }
    }
}

/// What a want asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantType {
    /// Send the block.
    Block,
    /// Say whether the block is held.
    Have,
}

/// One wantlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The block wanted.
    pub cid: Cid,
    /// Higher first.
    pub priority: i32,
    /// Withdraws an earlier want.
    pub cancel: bool,
    /// Block or Have.
    pub want_type: WantType,
    /// Answer DontHave when the block is missing.
    pub send_dont_have: bool,
}

/// A presence answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The block is held.
    Have,
    /// The block is not held.
    DontHave,
}

/// A decoded or to-be-encoded message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Wantlist entries.
    pub wants: Vec<Want>,
    /// Whether the wantlist replaces the previous one.
    pub full: bool,
    /// Blocks sent: CID and bytes.
    pub blocks: Vec<(Cid, Vec<u8>)>,
    /// Presences sent.
    pub presences: Vec<(Cid, Presence)>,
}

impl Message {
    /// Encodes the protobuf body (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.wants.is_empty() || self.full {
            let mut wl = Vec::new();
            let mut e = Vec::new();
            for w in &self.wants {
                e.clear();
                put_bytes(1, &w.cid.to_bytes(), &mut e);
                if w.priority != 0 {
                    put_uint(2, u64::from(w.priority as u32), &mut e);
                }
                if w.cancel {
                    put_uint(3, 1, &mut e);
                }
                if w.want_type == WantType::Have {
                    put_uint(4, 1, &mut e);
                }
                if w.send_dont_have {
                    put_uint(5, 1, &mut e);
                }
                put_bytes(1, &e, &mut wl);
            }
            if self.full {
                put_uint(2, 1, &mut wl);
            }
            put_bytes(1, &wl, &mut out);
        }
        let mut b = Vec::new();
        for (cid, data) in &self.blocks {
            b.clear();
            put_bytes(1, &prefix(cid), &mut b);
            put_bytes(2, data, &mut b);
            put_bytes(3, &b, &mut out);
        }
        for (cid, p) in &self.presences {
            b.clear();
            put_bytes(1, &cid.to_bytes(), &mut b);
            if *p == Presence::DontHave {
                put_uint(2, 1, &mut b);
            }
            put_bytes(4, &b, &mut out);
        }
        out
    }

    /// The message with its varint length prefix, ready for a stream.
    pub fn encode_framed(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + 5);
        varint::encode(body.len() as u64, &mut out);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a message body. Blocks are returned with the CID their prefix and bytes name;
    /// the caller still verifies nothing was forged (the CID is computed, not trusted).
    pub fn decode(buf: &[u8]) -> Result<Self, BitswapError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(BitswapError::Malformed("message too large"));
        }
        let mut m = Message::default();
        let mut f = Fields::new(buf);
        while let Some((field, value)) = f.next_field()? {
            match (field, value) {
                (1, Value::Bytes(wl)) => decode_wantlist(wl, &mut m)?,
                (2, Value::Bytes(_)) => {} // 1.0.0 blocks: CIDv0 only, not used by 1.2.0 peers
                (3, Value::Bytes(b)) => m.blocks.push(decode_block(b)?),
                (4, Value::Bytes(p)) => m.presences.push(decode_presence(p)?),
                (5, Value::Uint(_)) => {}
                _ => return Err(BitswapError::Malformed("unknown field")),
            }
        }
        Ok(m)
    }
}

/// The CID prefix of a block: version, codec, multihash code and length.
fn prefix(cid: &Cid) -> Vec<u8> {
    let mut p = Vec::with_capacity(6);
    varint::encode(cid.version() as u64, &mut p);
    varint::encode(cid.codec(), &mut p);
    varint::encode(cid.hash().code(), &mut p);
    varint::encode(u64::from(cid.hash().size()), &mut p);
    p
}

fn decode_wantlist(buf: &[u8], m: &mut Message) -> Result<(), BitswapError> {
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        match (field, value) {
            (1, Value::Bytes(e)) => {
                if m.wants.len() >= MAX_WANTS {
                    return Err(BitswapError::TooManyWants);
                }
                m.wants.push(decode_want(e)?);
            }
            (2, Value::Uint(v)) => m.full = v != 0,
            _ => return Err(BitswapError::Malformed("unknown wantlist field")),
        }
    }
    Ok(())
}

fn decode_want(buf: &[u8]) -> Result<Want, BitswapError> {
    let mut w = Want {
        cid: Cid::default(),
        priority: 0,
        cancel: false,
        want_type: WantType::Block,
        send_dont_have: false,
    };
    let mut have_cid = false;
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        match (field, value) {
            (1, Value::Bytes(c)) => {
                w.cid = Cid::try_from(c).map_err(|_| BitswapError::BadCid)?;
                have_cid = true;
            }
            (2, Value::Uint(p)) => w.priority = p as i32,
            (3, Value::Uint(c)) => w.cancel = c != 0,
            (4, Value::Uint(t)) => {
                w.want_type = if t == 1 {
                    WantType::Have
                } else {
                    WantType::Block
                }
            }
            (5, Value::Uint(d)) => w.send_dont_have = d != 0,
            _ => return Err(BitswapError::Malformed("unknown want field")),
        }
    }
    if !have_cid {
        return Err(BitswapError::Malformed("want without a CID"));
    }
    Ok(w)
}

fn decode_block(buf: &[u8]) -> Result<(Cid, Vec<u8>), BitswapError> {
    let (mut pfx, mut data) = (None, None);
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        match (field, value) {
            (1, Value::Bytes(p)) => pfx = Some(p),
            (2, Value::Bytes(d)) => data = Some(d),
            _ => return Err(BitswapError::Malformed("unknown block field")),
        }
    }
    let (pfx, data) = (pfx.unwrap_or_default(), data.unwrap_or_default());
    let mut rest = pfx;
    let mut next = || -> Result<u64, BitswapError> {
        let (v, n) = varint::decode(rest).map_err(|_| BitswapError::Malformed("bad prefix"))?;
        rest = &rest[n..];
        Ok(v)
    };
    let (version, codec, code, len) = (next()?, next()?, next()?, next()?);
    if version != 1 || code != crate::cid::SHA2_256 || len != 32 {
        return Err(BitswapError::Malformed("unsupported block prefix"));
    }
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(data).into();
    Ok((
        Cid::new_v1(codec, crate::cid::sha256_multihash(&digest)),
        data.to_vec(),
    ))
}

fn decode_presence(buf: &[u8]) -> Result<(Cid, Presence), BitswapError> {
    let (mut cid, mut p) = (None, Presence::Have);
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        match (field, value) {
            (1, Value::Bytes(c)) => cid = Some(Cid::try_from(c).map_err(|_| BitswapError::BadCid)?),
            (2, Value::Uint(t)) => {
                p = if t == 1 {
                    Presence::DontHave
                } else {
                    Presence::Have
                }
            }
            _ => return Err(BitswapError::Malformed("unknown presence field")),
        }
    }
    Ok((
        cid.ok_or(BitswapError::Malformed("presence without CID"))?,
        p,
    ))
}

/// Packs answers into messages of at most [`MAX_SEND_SIZE`] bytes each.
pub fn pack(blocks: Vec<(Cid, Vec<u8>)>, presences: Vec<(Cid, Presence)>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut cur = Message::default();
    let mut size = 0usize;
    for (cid, data) in blocks {
        let cost = data.len() + 64;
        if size + cost > MAX_SEND_SIZE && (!cur.blocks.is_empty() || !cur.presences.is_empty()) {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += cost;
        cur.blocks.push((cid, data));
    }
    for (cid, p) in presences {
        if size + 64 > MAX_SEND_SIZE {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += 64;
        cur.presences.push((cid, p));
    }
    if !cur.blocks.is_empty() || !cur.presences.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{DAG_PB, RAW, cid_for};
    use proptest::prelude::*;

    #[test]
    fn roundtrip_and_block_cids_are_computed() {
        let a = cid_for(RAW, b"a");
        let b = cid_for(DAG_PB, b"b");
        let m = Message {
            wants: vec![Want {
                cid: a,
                priority: 5,
                cancel: false,
                want_type: WantType::Have,
                send_dont_have: true,
            }],
            full: true,
            blocks: vec![(a, b"a".to_vec()), (b, b"b".to_vec())],
            presences: vec![(b, Presence::DontHave)],
        };
        assert_eq!(Message::decode(&m.encode()), Ok(m.clone()));
        // A block whose bytes were swapped decodes to the CID of what was actually sent.
        let forged = Message {
            blocks: vec![(a, b"not a".to_vec())],
            ..Default::default()
        };
        let got = Message::decode(&forged.encode()).expect("decodes");
        assert_ne!(got.blocks[0].0, a);
    }

    #[test]
    fn packing_respects_the_size_limit() {
        let blocks: Vec<_> = (0..20u8)
            .map(|i| (cid_for(RAW, &[i]), vec![i; 262_144]))
            .collect();
        let msgs = pack(blocks, vec![]);
        assert!(msgs.len() >= 3);
        for m in &msgs {
            assert!(m.encode().len() <= MAX_SEND_SIZE + 1024);
        }
        assert_eq!(msgs.iter().map(|m| m.blocks.len()).sum::<usize>(), 20);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&bytes);
        }
    }
}
