//! Keys and values of the store's sled trees (opened through [`crate::db::Index`], which owns
//! their names). A block key is `varint(len(cid)) ‖ cid ‖ root`, so a prefix scan finds every
//! copy of one block.
//!
//! Owns the byte encodings only. Must not open trees or touch files.

use shubnet_protocol::Cid;
use shubnet_protocol::varint;

/// The key prefix shared by every location of `cid`.
pub fn block_prefix(cid: &Cid) -> Vec<u8> {
    let bytes = cid.to_bytes();
    let mut k = Vec::with_capacity(bytes.len() + 40);
    varint::encode(bytes.len() as u64, &mut k);
    k.extend_from_slice(&bytes);
    k
}

/// The key of `cid` inside the blob of `root`.
pub fn block_key(cid: &Cid, root: &Cid) -> Vec<u8> {
    let mut k = block_prefix(cid);
    k.extend_from_slice(&root.to_bytes());
    k
}

/// The root a block key belongs to.
pub fn root_of_block_key(key: &[u8]) -> Option<Cid> {
    let (len, n) = varint::decode(key).ok()?;
    let rest = key.get(n + usize::try_from(len).ok()?..)?;
    Cid::try_from(rest).ok()
}

/// Where a block's bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `len` bytes at `offset` of the root's blob file (a raw leaf).
    Blob {
        /// Byte offset in the blob.
        offset: u64,
        /// Length of the block.
        len: u32,
    },
    /// The block bytes themselves (dag-pb nodes, which are small).
    Inline(Vec<u8>),
}

impl Location {
    /// Encodes for the BLOCKS tree.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Location::Blob { offset, len } => {
                let mut v = Vec::with_capacity(13);
                v.push(0);
                v.extend_from_slice(&offset.to_be_bytes());
                v.extend_from_slice(&len.to_be_bytes());
                v
            }
            Location::Inline(bytes) => {
                let mut v = Vec::with_capacity(bytes.len() + 1);
                v.push(1);
                v.extend_from_slice(bytes);
                v
            }
        }
    }

    /// Decodes a BLOCKS value; `None` if the index is damaged (repair rebuilds it).
    pub fn decode(v: &[u8]) -> Option<Self> {
        match v.split_first()? {
            (0, rest) if rest.len() == 12 => Some(Location::Blob {
                offset: u64::from_be_bytes(rest[..8].try_into().ok()?),
                len: u32::from_be_bytes(rest[8..].try_into().ok()?),
            }),
            (1, rest) => Some(Location::Inline(rest.to_vec())),
            _ => None,
        }
    }
}

/// What the index knows about a stored image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRecord {
    /// File length.
    pub size: u64,
    /// Whole-file sha256.
    pub sha256: [u8; 32],
}

impl RootRecord {
    /// Encodes for the ROOTS tree.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.sha256);
        v
    }

    /// Decodes a ROOTS value.
    pub fn decode(v: &[u8]) -> Option<Self> {
        if v.len() != 40 {
            return None;
        }
        Some(Self {
            size: u64::from_be_bytes(v[..8].try_into().ok()?),
            sha256: v[8..].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shubnet_protocol::cid::{RAW, cid_for};

    #[test]
    fn keys_and_values_roundtrip() {
        let a = cid_for(RAW, b"a");
        let r = cid_for(RAW, b"root");
        let k = block_key(&a, &r);
        assert!(k.starts_with(&block_prefix(&a)));
        assert_eq!(root_of_block_key(&k), Some(r));
        for loc in [
            Location::Blob { offset: 7, len: 9 },
            Location::Inline(vec![1, 2, 3]),
        ] {
            assert_eq!(Location::decode(&loc.encode()), Some(loc));
        }
        let rec = RootRecord {
            size: 5,
            sha256: [7; 32],
        };
        assert_eq!(RootRecord::decode(&rec.encode()), Some(rec));
    }
}
