//! `/shubnet/fetch/1`: bulk transfer of a file DAG's leaves between federation members.
//!
//! Goals: move whole images (or byte ranges of them) at disk speed from every holder at once,
//! including holders that have only part of an image, and let the receiver verify every leaf
//! against its CID. Non-goals: blocks outside UnixFS files (Bitswap does those), discovery.
//!
//! One request per stream, client first: `Have`, `Watch`, `Nodes` or `Leaves`. The server
//! answers with frames and then closes its side; an [`Frame::Error`] frame ends any answer early.
//! - `Have{root}` → one [`Frame::Holding`]: complete, partial (a bitmap over leaf index), or none.
//! - `Watch{root}` → a [`Frame::Holding`] at once and another each time the holding changes
//!   (at most a few per second, the same one again now and then as a keep-alive), until it is
//!   complete or the client closes the stream. Nodes fetching the same image learn at once
//!   which leaves the others can serve, instead of polling `Have`.
//! - `Nodes{root}` → one [`Frame::Node`] per internal dag-pb node, then [`Frame::End`].
//! - `Leaves{root, first, count}` → [`Frame::Leaf`] for leaves `first..first+count` in order,
//!   then [`Frame::End`].
//!
//! On [`SESSION_PROTOCOL`] the frames are the same, but a stream carries requests one after
//! another: the client may send the next request before the answer to the last one ends (so a
//! long link never idles between answers), and the server answers them in order. `Watch` is
//! not allowed there (its answer never ends). The server closes a session after an
//! [`Frame::Error`], and after a while without requests. Sessions keep a stream, and the
//! receive window its muxer grew for it, across requests.
//!
//! Leaves are numbered in depth-first order of the DAG, which is file order; [`leaf_table`]
//! computes each leaf's CID and file offset from the dag-pb nodes, on both sides.
//!
//! Framing: `varint(len) ‖ tag ‖ fields`, `len ≤` [`MAX_FRAME`]. CIDs and byte strings are
//! `varint(len) ‖ bytes`; integers are varints.
//!
//! Frames and the leaf table only: it must not do I/O, check membership or choose holders; the
//! node's `p2p::fetch` reads and writes the frames on streams and decides who is served.

use crate::cid::{DAG_PB, MAX_BLOCK_SIZE, RAW};
use crate::unixfs::FileNode;
use crate::varint;
use cid::Cid;
use std::collections::HashMap;
use thiserror::Error;

/// The protocol id.
pub const PROTOCOL: &str = "/shubnet/fetch/1";
/// The protocol id of sessions: many requests on one stream, answered in order.
pub const SESSION_PROTOCOL: &str = "/shubnet/fetch/1/session";
/// Largest frame body accepted: one leaf of the largest block plus its header.
pub const MAX_FRAME: usize = MAX_BLOCK_SIZE + 64;
/// Largest number of leaves in a DAG served over this protocol (a bitmap of 2 MiB at most).
pub const MAX_LEAVES: u64 = 1 << 24;
/// Largest error reason sent.
pub const MAX_REASON: usize = 1024;

const TAG_HAVE: u8 = 1;
const TAG_NODES: u8 = 2;
const TAG_LEAVES: u8 = 3;
const TAG_WATCH: u8 = 4;
const TAG_HOLDING: u8 = 0x81;
const TAG_NODE: u8 = 0x82;
const TAG_LEAF: u8 = 0x83;
const TAG_END: u8 = 0x84;
const TAG_ERROR: u8 = 0x85;

const HOLD_NONE: u8 = 0;
const HOLD_COMPLETE: u8 = 1;
const HOLD_PARTIAL: u8 = 2;

/// Why a frame could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FetchError {
    /// The frame is longer than [`MAX_FRAME`].
    #[error("fetch frame of {0} bytes exceeds the limit")]
    TooLarge(u64),
    /// The frame ends early.
    #[error("truncated fetch frame")]
    Truncated,
    /// Bytes after the last field.
    #[error("trailing bytes in a fetch frame")]
    Trailing,
    /// An unknown tag or field value.
    #[error("malformed fetch frame: {0}")]
    Malformed(&'static str),
}

/// What a holder has of a DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// Nothing.
    None,
    /// Every block.
    Complete,
    /// The dag-pb nodes and the leaves whose bit is set (bit `i % 8` of byte `i / 8`).
    Partial {
        /// Number of leaves in the DAG.
        leaves: u64,
        /// One bit per leaf, `ceil(leaves / 8)` bytes.
        bitmap: Vec<u8>,
    },
}

impl Holding {
    /// True if the holder has leaf `i`.
    pub fn has(&self, i: u64) -> bool {
        match self {
            Holding::None => false,
            Holding::Complete => true,
            Holding::Partial { leaves, bitmap } => {
                i < *leaves
                    && usize::try_from(i / 8)
                        .ok()
                        .and_then(|b| bitmap.get(b))
                        .is_some_and(|b| b & (1 << (i % 8)) != 0)
            }
        }
    }
}

/// One frame, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Request: what do you hold of `root`?
    Have(Cid),
    /// Request: what do you hold of `root`, now and each time it changes?
    Watch(Cid),
    /// Request: send the dag-pb nodes of `root`.
    Nodes(Cid),
    /// Request: send leaves `first..first+count` of `root`.
    Leaves {
        /// The DAG root.
        root: Cid,
        /// First leaf index.
        first: u64,
        /// Number of leaves.
        count: u64,
    },
    /// Answer to `Have`.
    Holding(Holding),
    /// One dag-pb node (answer to `Nodes`).
    Node {
        /// Its CID.
        cid: Cid,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// One leaf (answer to `Leaves`).
    Leaf {
        /// Leaf index.
        index: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The answer is complete.
    End,
    /// The request failed; the stream closes.
    Error(String),
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint::encode(b.len() as u64, out);
    out.extend_from_slice(b);
}

impl Frame {
    /// Encodes the frame body (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Frame::Have(root) => {
                out.push(TAG_HAVE);
                put_bytes(&mut out, &root.to_bytes());
            }
            Frame::Watch(root) => {
                out.push(TAG_WATCH);
                put_bytes(&mut out, &root.to_bytes());
            }
            Frame::Nodes(root) => {
                out.push(TAG_NODES);
                put_bytes(&mut out, &root.to_bytes());
            }
            Frame::Leaves { root, first, count } => {
                out.push(TAG_LEAVES);
                put_bytes(&mut out, &root.to_bytes());
                varint::encode(*first, &mut out);
                varint::encode(*count, &mut out);
            }
            Frame::Holding(h) => {
                out.push(TAG_HOLDING);
                match h {
                    Holding::None => out.push(HOLD_NONE),
                    Holding::Complete => out.push(HOLD_COMPLETE),
                    Holding::Partial { leaves, bitmap } => {
                        out.push(HOLD_PARTIAL);
                        varint::encode(*leaves, &mut out);
                        put_bytes(&mut out, bitmap);
                    }
                }
            }
            Frame::Node { cid, bytes } => {
                out.push(TAG_NODE);
                put_bytes(&mut out, &cid.to_bytes());
                put_bytes(&mut out, bytes);
            }
            Frame::Leaf { index, bytes } => {
                out.push(TAG_LEAF);
                varint::encode(*index, &mut out);
                put_bytes(&mut out, bytes);
            }
            Frame::End => out.push(TAG_END),
            Frame::Error(reason) => {
                out.push(TAG_ERROR);
                let mut end = reason.len().min(MAX_REASON);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                put_bytes(&mut out, &reason.as_bytes()[..end]);
            }
        }
        out
    }

    /// Encodes the frame with its length prefix, as it goes on the wire.
    pub fn encode_framed(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + 4);
        varint::encode(body.len() as u64, &mut out);
        out.extend_from_slice(&body);
        out
    }

    /// The wire bytes that precede a leaf's `len` bytes in a [`Frame::Leaf`] for leaf `index`:
    /// a sender writes this header and then the bytes themselves, so a leaf is not copied into
    /// a frame buffer first. `header ‖ bytes` equals `Frame::Leaf{..}.encode_framed()`.
    pub fn leaf_header(index: u64, len: usize) -> Vec<u8> {
        let mut fields = vec![TAG_LEAF];
        varint::encode(index, &mut fields);
        varint::encode(len as u64, &mut fields);
        let mut out = Vec::with_capacity(fields.len() + 10);
        varint::encode((fields.len() + len) as u64, &mut out);
        out.extend_from_slice(&fields);
        out
    }

    /// Decodes a frame body; rejects anything malformed, oversized or with trailing bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, FetchError> {
        if buf.len() > MAX_FRAME {
            return Err(FetchError::TooLarge(buf.len() as u64));
        }
        let mut r = Reader(buf);
        let frame = match r.byte()? {
            TAG_HAVE => Frame::Have(r.cid()?),
            TAG_WATCH => Frame::Watch(r.cid()?),
            TAG_NODES => Frame::Nodes(r.cid()?),
            TAG_LEAVES => Frame::Leaves {
                root: r.cid()?,
                first: r.uint()?,
                count: r.uint()?,
            },
            TAG_HOLDING => Frame::Holding(match r.byte()? {
                HOLD_NONE => Holding::None,
                HOLD_COMPLETE => Holding::Complete,
                HOLD_PARTIAL => {
                    let leaves = r.uint()?;
                    if leaves > MAX_LEAVES {
                        return Err(FetchError::Malformed("too many leaves"));
                    }
                    let bitmap = r.bytes()?.to_vec();
                    if bitmap.len() as u64 != leaves.div_ceil(8) {
                        return Err(FetchError::Malformed("bitmap length"));
                    }
                    Holding::Partial { leaves, bitmap }
                }
                _ => return Err(FetchError::Malformed("holding kind")),
            }),
            TAG_NODE => Frame::Node {
                cid: r.cid()?,
                bytes: r.bytes()?.to_vec(),
            },
            TAG_LEAF => Frame::Leaf {
                index: r.uint()?,
                bytes: r.bytes()?.to_vec(),
            },
            TAG_END => Frame::End,
            TAG_ERROR => {
                let b = r.bytes()?;
                if b.len() > MAX_REASON {
                    return Err(FetchError::Malformed("error reason too long"));
                }
                Frame::Error(String::from_utf8_lossy(b).into_owned())
            }
            _ => return Err(FetchError::Malformed("unknown tag")),
        };
        if !r.0.is_empty() {
            return Err(FetchError::Trailing);
        }
        Ok(frame)
    }

    /// If the frame body `buf` is a [`Frame::Leaf`], its index and where its bytes lie in `buf`,
    /// checked as [`Frame::decode`] checks them; `None` for any other frame. Lets a receiver
    /// keep a leaf in the buffer it was read into instead of copying it out.
    pub fn decode_leaf(buf: &[u8]) -> Option<Result<(u64, std::ops::Range<usize>), FetchError>> {
        if buf.first() != Some(&TAG_LEAF) {
            return None;
        }
        if buf.len() > MAX_FRAME {
            return Some(Err(FetchError::TooLarge(buf.len() as u64)));
        }
        let mut r = Reader(&buf[1..]);
        let parsed = (|| {
            let index = r.uint()?;
            let bytes = r.bytes()?;
            if !r.0.is_empty() {
                return Err(FetchError::Trailing);
            }
            let start = buf.len() - bytes.len();
            Ok((index, start..buf.len()))
        })();
        Some(parsed)
    }

    /// Splits one length-prefixed frame off the front of `buf`: `Ok(None)` if more bytes are
    /// needed, else the frame and the bytes it used. Rejects an oversized length at once.
    pub fn decode_framed(buf: &[u8]) -> Result<Option<(Self, usize)>, FetchError> {
        let (len, n) = match varint::decode(buf) {
            Ok(v) => v,
            Err(_) if buf.len() < 10 => return Ok(None),
            Err(_) => return Err(FetchError::Malformed("bad length prefix")),
        };
        if len > MAX_FRAME as u64 {
            return Err(FetchError::TooLarge(len));
        }
        let len = len as usize;
        let Some(body) = buf.get(n..n + len) else {
            return Ok(None);
        };
        Ok(Some((Frame::decode(body)?, n + len)))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, FetchError> {
        let (&b, rest) = self.0.split_first().ok_or(FetchError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, FetchError> {
        let (v, n) = varint::decode(self.0).map_err(|_| FetchError::Truncated)?;
        self.0 = &self.0[n..];
        Ok(v)
    }

    fn bytes(&mut self) -> Result<&'a [u8], FetchError> {
        let len = usize::try_from(self.uint()?).map_err(|_| FetchError::Truncated)?;
        if len > self.0.len() {
            return Err(FetchError::Truncated);
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(b)
    }

    fn cid(&mut self) -> Result<Cid, FetchError> {
        Cid::try_from(self.bytes()?).map_err(|_| FetchError::Malformed("invalid CID"))
    }
}

/// One leaf of a file DAG: its CID, and where its bytes sit in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafInfo {
    /// The raw block's CID.
    pub cid: Cid,
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
}

/// Why a DAG's leaf table could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DagError {
    /// A dag-pb node the walk needs is missing.
    #[error("the DAG lacks node {0}")]
    Missing(Cid),
    /// A node is not a UnixFS file node, or the DAG is not one this protocol moves.
    #[error("{0}")]
    Unsupported(String),
}

/// The leaves of the file DAG under `root`, in file order, computed from its dag-pb `nodes`
/// (each already verified against its CID by the caller). A raw root is its own only leaf,
/// whose length the caller must learn elsewhere (`root_len`).
pub fn leaf_table(
    root: &Cid,
    nodes: &HashMap<Cid, Vec<u8>>,
    root_len: Option<u32>,
) -> Result<Vec<LeafInfo>, DagError> {
    let mut out = Vec::new();
    if root.codec() == RAW {
        let len = root_len.ok_or_else(|| {
            DagError::Unsupported(format!(
                "{root} is a single raw block; its length is unknown"
            ))
        })?;
        out.push(LeafInfo {
            cid: *root,
            offset: 0,
            len,
        });
        return Ok(out);
    }
    let mut offset = 0u64;
    let mut stack: Vec<(Cid, Option<u64>)> = vec![(*root, None)];
    while let Some((cid, claimed)) = stack.pop() {
        match cid.codec() {
            RAW => {
                let len = claimed.ok_or(DagError::Unsupported("a leaf without size".into()))?;
                if len > MAX_BLOCK_SIZE as u64 {
                    return Err(DagError::Unsupported(format!("leaf {cid} is too large")));
                }
                out.push(LeafInfo {
                    cid,
                    offset,
                    len: len as u32,
                });
                if out.len() as u64 > MAX_LEAVES {
                    return Err(DagError::Unsupported("too many leaves".into()));
                }
                offset += len;
            }
            DAG_PB => {
                let bytes = nodes.get(&cid).ok_or(DagError::Missing(cid))?;
                let node = FileNode::decode(&cid, bytes).map_err(|e| {
                    DagError::Unsupported(format!("{cid} is not a UnixFS file node: {e}"))
                })?;
                let FileNode::Branch { data, children } = node else {
                    return Err(DagError::Unsupported(format!("{cid} is not a branch")));
                };
                if !data.is_empty() {
                    return Err(DagError::Unsupported(format!(
                        "{cid} carries data inline; only files with raw leaves are supported"
                    )));
                }
                let total: u64 = children.iter().map(|c| c.1).sum();
                if claimed.is_some_and(|c| c != total) {
                    return Err(DagError::Unsupported(format!(
                        "{cid}: size differs from its parent's blocksizes"
                    )));
                }
                if stack.len() + children.len() > MAX_LEAVES as usize {
                    return Err(DagError::Unsupported("too many links".into()));
                }
                stack.extend(children.iter().rev().map(|(c, s)| (*c, Some(*s))));
            }
            other => {
                return Err(DagError::Unsupported(format!(
                    "{cid} has codec {other:#x}, not raw or dag-pb"
                )));
            }
        }
    }
    Ok(out)
}

/// A bitmap over leaf indexes, as [`Holding::Partial`] carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    bits: Vec<u8>,
    len: u64,
    set: u64,
}

impl Bitmap {
    /// All clear, `len` bits.
    pub fn new(len: u64) -> Self {
        Self {
            bits: vec![0; len.div_ceil(8) as usize],
            len,
            set: 0,
        }
    }

    /// From bytes (as persisted or sent); `None` if the length does not fit.
    pub fn from_bytes(len: u64, bits: Vec<u8>) -> Option<Self> {
        if bits.len() as u64 != len.div_ceil(8) {
            return None;
        }
        let mut b = Self { bits, len, set: 0 };
        b.set = (0..len).filter(|&i| b.get(i)).count() as u64;
        Some(b)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Bits in the map.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the map has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bits set.
    pub fn count(&self) -> u64 {
        self.set
    }

    /// True when every bit is set.
    pub fn is_full(&self) -> bool {
        self.set == self.len
    }

    /// Bit `i` (false past the end).
    pub fn get(&self, i: u64) -> bool {
        i < self.len && self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0
    }

    /// Sets bit `i` (ignored past the end).
    pub fn set(&mut self, i: u64) {
        if i < self.len && !self.get(i) {
            self.bits[(i / 8) as usize] |= 1 << (i % 8);
            self.set += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::cid_for;
    use crate::unixfs::{Block, Importer, Layout};
    use proptest::prelude::*;

    fn root() -> Cid {
        cid_for(DAG_PB, b"root")
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Have(root()),
            Frame::Watch(root()),
            Frame::Nodes(root()),
            Frame::Leaves {
                root: root(),
                first: 7,
                count: 300,
            },
            Frame::Holding(Holding::None),
            Frame::Holding(Holding::Complete),
            Frame::Holding(Holding::Partial {
                leaves: 10,
                bitmap: vec![0b101, 0b10],
            }),
            Frame::Node {
                cid: root(),
                bytes: vec![1, 2, 3],
            },
            Frame::Leaf {
                index: 1 << 20,
                bytes: vec![9; 1000],
            },
            Frame::End,
            Frame::Error("not a member".into()),
        ]
    }

    #[test]
    fn every_frame_roundtrips() {
        for f in samples() {
            assert_eq!(Frame::decode(&f.encode()), Ok(f.clone()));
            let wire = f.encode_framed();
            assert_eq!(
                Frame::decode_framed(&wire),
                Ok(Some((f.clone(), wire.len())))
            );
        }
    }

    #[test]
    fn a_leaf_header_and_its_bytes_make_the_leaf_frame() {
        for (index, len) in [
            (0u64, 0usize),
            (5, 1000),
            (1 << 20, 262_144),
            (3, MAX_BLOCK_SIZE),
        ] {
            let bytes = vec![7u8; len];
            let mut wire = Frame::leaf_header(index, len);
            wire.extend_from_slice(&bytes);
            assert_eq!(wire, Frame::Leaf { index, bytes }.encode_framed());
        }
    }

    #[test]
    fn decode_leaf_agrees_with_decode() {
        for f in samples() {
            let body = f.encode();
            match (&f, Frame::decode_leaf(&body)) {
                (Frame::Leaf { index, bytes }, Some(Ok((i, range)))) => {
                    assert_eq!((*index, &body[range]), (i, bytes.as_slice()));
                }
                (Frame::Leaf { .. }, other) => panic!("{f:?} gave {other:?}"),
                (_, None) => {}
                (_, other) => panic!("{f:?} is not a leaf but gave {other:?}"),
            }
            if matches!(f, Frame::Leaf { .. }) {
                for cut in 0..body.len() {
                    assert!(matches!(
                        Frame::decode_leaf(&body[..cut]),
                        Some(Err(_)) | None
                    ));
                }
                let mut long = body.clone();
                long.push(0);
                assert_eq!(Frame::decode_leaf(&long), Some(Err(FetchError::Trailing)));
            }
        }
    }

    #[test]
    fn truncated_frames_are_refused_or_wait() {
        for f in samples() {
            let body = f.encode();
            for cut in 0..body.len() {
                assert!(Frame::decode(&body[..cut]).is_err(), "{f:?} cut at {cut}");
            }
            let wire = f.encode_framed();
            for cut in 0..wire.len() {
                assert_eq!(Frame::decode_framed(&wire[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn garbage_and_oversize_are_refused() {
        assert_eq!(
            Frame::decode(&[0x42]),
            Err(FetchError::Malformed("unknown tag"))
        );
        let mut trailing = Frame::End.encode();
        trailing.push(0);
        assert_eq!(Frame::decode(&trailing), Err(FetchError::Trailing));
        let mut big = Vec::new();
        varint::encode(MAX_FRAME as u64 + 1, &mut big);
        assert!(matches!(
            Frame::decode_framed(&big),
            Err(FetchError::TooLarge(_))
        ));
        // A bitmap whose length does not match the leaf count.
        let bad = Frame::Holding(Holding::Partial {
            leaves: 100,
            bitmap: vec![1],
        });
        assert!(Frame::decode(&bad.encode()).is_err());
        // A leaf whose length runs past the frame.
        assert_eq!(
            Frame::decode(&[TAG_LEAF, 0, 200, 1, 1]),
            Err(FetchError::Truncated)
        );
    }

    #[test]
    fn leaf_table_matches_the_importer() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i * 7 + i / 1000) as u8)
            .collect();
        let mut imp = Importer::new(Layout::default());
        imp.update(&data);
        let mut blocks: Vec<Block> = imp.take_blocks().collect();
        let (rest, summary) = imp.finish();
        blocks.extend(rest);
        let mut nodes = HashMap::new();
        let mut leaves = Vec::new();
        for b in blocks {
            match b {
                Block::Node { cid, bytes } => {
                    nodes.insert(cid, bytes);
                }
                Block::Leaf { cid, offset, len } => leaves.push((cid, offset, len)),
            }
        }
        let table = leaf_table(&summary.root, &nodes, None).expect("a table");
        assert_eq!(table.len(), leaves.len());
        for (t, (cid, offset, len)) in table.iter().zip(&leaves) {
            assert_eq!((t.cid, t.offset, u64::from(t.len)), (*cid, *offset, *len));
        }
        let missing = HashMap::new();
        assert_eq!(
            leaf_table(&summary.root, &missing, None),
            Err(DagError::Missing(summary.root))
        );
    }

    #[test]
    fn bitmap_counts() {
        let mut b = Bitmap::new(20);
        b.set(3);
        b.set(3);
        b.set(19);
        b.set(25);
        assert_eq!(b.count(), 2);
        assert!(b.get(19) && !b.get(18));
        let c = Bitmap::from_bytes(20, b.as_bytes().to_vec()).expect("fits");
        assert_eq!(c, b);
        let h = Holding::Partial {
            leaves: 20,
            bitmap: b.as_bytes().to_vec(),
        };
        assert!(h.has(3) && !h.has(4) && !h.has(100));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Frame::decode(&bytes);
            let _ = Frame::decode_framed(&bytes);
        }
    }
}
