//! The dag-pb codec and the UnixFS `Data` message it carries.
//!
//! Goals: encode exactly the bytes kubo and Helia produce for UnixFS file nodes, and decode any
//! valid dag-pb block safely. Non-goals: directories, HAMT shards, mode/mtime.
//!
//! Spec: <https://ipld.io/specs/codecs/dag-pb/spec/> and `unixfs.proto` in boxo. This is written
//! by hand rather than with a protobuf derive because canonical dag-pb writes `Links` (field 2)
//! *before* `Data` (field 1); derive macros sort by tag and would change every CID.
//!
//! One block at a time: it must not build or walk DAGs (that is [`crate::unixfs`]) nor do I/O.

use crate::varint;
use cid::Cid;
use thiserror::Error;

/// Why a dag-pb or UnixFS message could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DagPbError {
    /// The protobuf framing is broken (bad varint, length past the end, bad wire type).
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// A link's hash is not a valid CID.
    #[error("link hash is not a valid CID")]
    BadLink,
    /// The UnixFS type is one shubnet does not read (directory, symlink, HAMT...).
    #[error("UnixFS node of type {0} is not a file")]
    NotAFile(u64),
}

/// One link of a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    /// The child's CID.
    pub hash: Cid,
    /// The link name; UnixFS file chunks use `Some("")`, which kubo always writes.
    pub name: Option<String>,
    /// Cumulative size of the child DAG in bytes (block bytes, not file bytes).
    pub tsize: Option<u64>,
}

/// A decoded dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode {
    /// Child links, in order.
    pub links: Vec<PbLink>,
    /// Opaque payload; for UnixFS, an encoded [`UnixfsData`].
    pub data: Option<Vec<u8>>,
}

/// UnixFS node types (`Data.DataType`).
pub mod data_type {
    /// Raw data (old-style leaves).
    pub const RAW: u64 = 0;
    /// A directory.
    pub const DIRECTORY: u64 = 1;
    /// A file or file chunk.
    pub const FILE: u64 = 2;
}

/// The UnixFS `Data` message, restricted to the fields files use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnixfsData {
    /// `Data.Type`; see [`data_type`].
    pub kind: u64,
    /// Inline file bytes (only in leaf-style nodes; kubo's internal nodes have none).
    pub data: Option<Vec<u8>>,
    /// Total file bytes under this node.
    pub filesize: Option<u64>,
    /// File bytes under each child, in link order.
    pub blocksizes: Vec<u64>,
}

pub(crate) fn put_key(field: u64, wire: u64, out: &mut Vec<u8>) {
    varint::encode((field << 3) | wire, out);
}

pub(crate) fn put_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    put_key(field, 2, out);
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

pub(crate) fn put_uint(field: u64, v: u64, out: &mut Vec<u8>) {
    put_key(field, 0, out);
    varint::encode(v, out);
}

impl PbNode {
    /// Canonical encoding: each link (Hash, Name, Tsize) then Data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.links.len() * 48 + 16);
        let mut link_buf = Vec::with_capacity(64);
        for link in &self.links {
            link_buf.clear();
            put_bytes(1, &link.hash.to_bytes(), &mut link_buf);
            if let Some(name) = &link.name {
                put_bytes(2, name.as_bytes(), &mut link_buf);
            }
            if let Some(t) = link.tsize {
                put_uint(3, t, &mut link_buf);
            }
            put_bytes(2, &link_buf, &mut out);
        }
        if let Some(d) = &self.data {
            put_bytes(1, d, &mut out);
        }
        out
    }

    /// Decodes a dag-pb block. Accepts either field order, as the spec requires of decoders.
    pub fn decode(buf: &[u8]) -> Result<Self, DagPbError> {
        let mut node = PbNode::default();
        let mut r = Fields::new(buf);
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => node.data = Some(b.to_vec()),
                (2, Value::Bytes(b)) => node.links.push(decode_link(b)?),
                _ => return Err(DagPbError::Malformed("unknown field in PBNode")),
            }
        }
        Ok(node)
    }
}

fn decode_link(buf: &[u8]) -> Result<PbLink, DagPbError> {
    let mut hash = None;
    let mut name = None;
    let mut tsize = None;
    let mut r = Fields::new(buf);
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                hash = Some(Cid::try_from(b).map_err(|_| DagPbError::BadLink)?);
            }
            (2, Value::Bytes(b)) => {
                name = Some(
                    String::from_utf8(b.to_vec())
                        .map_err(|_| DagPbError::Malformed("link name is not UTF-8"))?,
                );
            }
            (3, Value::Uint(v)) => tsize = Some(v),
            _ => return Err(DagPbError::Malformed("unknown field in PBLink")),
        }
    }
    Ok(PbLink {
        hash: hash.ok_or(DagPbError::Malformed("link without hash"))?,
        name,
        tsize,
    })
}

impl UnixfsData {
    /// Encodes as kubo does: Type, Data, filesize, then each blocksize unpacked.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.blocksizes.len() * 4);
        put_uint(1, self.kind, &mut out);
        if let Some(d) = &self.data {
            put_bytes(2, d, &mut out);
        }
        if let Some(fs) = self.filesize {
            put_uint(3, fs, &mut out);
        }
        for &b in &self.blocksizes {
            put_uint(4, b, &mut out);
        }
        out
    }

    /// Decodes a UnixFS `Data` message. Unknown optional fields (hashType, fanout, mode,
    /// mtime) are skipped; packed blocksizes are accepted as well as unpacked.
    pub fn decode(buf: &[u8]) -> Result<Self, DagPbError> {
        let mut out = UnixfsData::default();
        let mut r = Fields::new(buf);
        let mut saw_type = false;
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (1, Value::Uint(v)) => {
                    out.kind = v;
                    saw_type = true;
                }
                (2, Value::Bytes(b)) => out.data = Some(b.to_vec()),
                (3, Value::Uint(v)) => out.filesize = Some(v),
                (4, Value::Uint(v)) => out.blocksizes.push(v),
                (4, Value::Bytes(mut packed)) => {
                    while !packed.is_empty() {
                        let (v, n) = varint::decode_protobuf(packed)
                            .map_err(|_| DagPbError::Malformed("bad packed blocksize"))?;
                        out.blocksizes.push(v);
                        packed = &packed[n..];
                    }
                }
                (5..=8, _) => {}
                _ => return Err(DagPbError::Malformed("unknown field in UnixFS Data")),
            }
        }
        if !saw_type {
            return Err(DagPbError::Malformed("UnixFS Data without Type"));
        }
        Ok(out)
    }

    /// Bytes of file content this node stands for.
    pub fn file_len(&self) -> u64 {
        self.filesize.unwrap_or_else(|| {
            self.data.as_ref().map_or(0, |d| d.len() as u64) + self.blocksizes.iter().sum::<u64>()
        })
    }
}

pub(crate) enum Value<'a> {
    Uint(u64),
    Bytes(&'a [u8]),
}

pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, DagPbError> {
        let (v, n) =
            varint::decode_protobuf(self.buf).map_err(|_| DagPbError::Malformed("bad varint"))?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    pub(crate) fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, DagPbError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        match key & 7 {
            0 => Ok(Some((field, Value::Uint(self.varint()?)))),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= self.buf.len())
                    .ok_or(DagPbError::Malformed("length past end of block"))?;
                let (b, rest) = self.buf.split_at(len);
                self.buf = rest;
                Ok(Some((field, Value::Bytes(b))))
            }
            _ => Err(DagPbError::Malformed("unsupported wire type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{RAW, cid_for};
    use proptest::prelude::*;

    #[test]
    fn data_message_matches_worked_example() {
        let d = UnixfsData {
            kind: data_type::FILE,
            data: None,
            filesize: Some(262145),
            blocksizes: vec![262144, 1],
        };
        assert_eq!(
            hex::encode(d.encode()),
            "080218818010208080102001",
            "reference/ipfs-interop.md §1.3"
        );
        assert_eq!(UnixfsData::decode(&d.encode()), Ok(d));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &[0x12, 0x05, 0x0a][..],
            &[0xff],
            &[0x0b, 0x01],
            &[0x12, 0x02, 0x0a, 0x01],
        ] {
            assert!(PbNode::decode(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn node_roundtrip(seeds in proptest::collection::vec(any::<u64>(), 0..20),
                          data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
            let node = PbNode {
                links: seeds.iter().map(|s| PbLink {
                    hash: cid_for(RAW, &s.to_le_bytes()),
                    name: Some(String::new()),
                    tsize: Some(*s),
                }).collect(),
                data,
            };
            prop_assert_eq!(PbNode::decode(&node.encode()), Ok(node));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PbNode::decode(&bytes);
            let _ = UnixfsData::decode(&bytes);
        }
    }
}
