//! How shubnet names blocks, and how it checks a block against its name.
//!
//! Every block shubnet creates is CIDv1 with a sha2-256 multihash: raw leaves use the `raw`
//! codec (0x55) and internal nodes `dag-pb` (0x70). Blocks received from elsewhere (CAR files,
//! peers) may also use CIDv0 or the identity multihash; those are verified too, anything else
//! is refused rather than trusted.
//!
//! It never accepts a block without recomputing its hash, and it must not do I/O.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Multicodec for raw binary blocks (UnixFS raw leaves).
pub const RAW: u64 = 0x55;
/// Multicodec for dag-pb blocks (UnixFS internal nodes).
pub const DAG_PB: u64 = 0x70;
/// Multicodec for dag-cbor (CAR headers, manifests, rosters).
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of the identity "hash" (the data is inlined in the CID).
pub const IDENTITY: u64 = 0x00;
/// Largest block accepted from anywhere: the bitswap limit of 2 MiB.
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;
/// Largest identity multihash accepted, so a CID cannot smuggle a large payload.
pub const MAX_IDENTITY_LEN: usize = 128;

/// Why a CID could not be parsed or a block failed verification.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CidError {
    /// The text is not a CID in any supported multibase.
    #[error("not a valid CID: {0}")]
    Malformed(String),
    /// The multihash function is not one shubnet verifies.
    #[error("unsupported multihash code 0x{0:x}; only sha2-256 and identity are accepted")]
    UnsupportedHash(u64),
    /// The block's bytes do not hash to the digest in its CID.
    #[error("block bytes do not match CID {0}")]
    Mismatch(Cid),
    /// The block is larger than any block shubnet accepts.
    #[error("block of {0} bytes exceeds the {MAX_BLOCK_SIZE}-byte limit")]
    TooLarge(usize),
}

/// Wraps a sha2-256 digest as a multihash.
pub fn sha256_multihash(digest: &[u8; 32]) -> Multihash<64> {
    // A 32-byte digest always fits the 64-byte multihash, so this cannot fail.
    Multihash::wrap(SHA2_256, digest).unwrap_or_default()
}

/// Names `data` as a CIDv1 with the given codec and a sha2-256 hash.
pub fn cid_for(codec: u64, data: &[u8]) -> Cid {
    let digest: [u8; 32] = Sha256::digest(data).into();
    Cid::new_v1(codec, sha256_multihash(&digest))
}

/// Parses a CID from its text form with an error a user can act on.
pub fn parse(text: &str) -> Result<Cid, CidError> {
    let cid = Cid::try_from(text).map_err(|e| CidError::Malformed(format!("{text:?}: {e}")))?;
    match cid.hash().code() {
        SHA2_256 | IDENTITY => Ok(cid),
        other => Err(CidError::UnsupportedHash(other)),
    }
}

/// True when the CID carries its data inline (identity multihash); such blocks are never stored
/// or sent, per the trustless gateway spec.
pub fn is_identity(cid: &Cid) -> bool {
    cid.hash().code() == IDENTITY
}

/// Checks that `data` is the block `cid` names. Called on every block before it is stored or
/// served from an untrusted source.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), CidError> {
    let mh = cid.hash();
    match mh.code() {
        SHA2_256 => {
            if data.len() > MAX_BLOCK_SIZE {
                return Err(CidError::TooLarge(data.len()));
            }
            let digest = Sha256::digest(data);
            if mh.size() == 32 && mh.digest() == digest.as_slice() {
                Ok(())
            } else {
                Err(CidError::Mismatch(*cid))
            }
        }
        IDENTITY => {
            if mh.digest() == data && data.len() <= MAX_IDENTITY_LEN {
                Ok(())
            } else {
                Err(CidError::Mismatch(*cid))
            }
        }
        other => Err(CidError::UnsupportedHash(other)),
    }
}

/// Serde for a [`Cid`] as its text form (CIDv1 base32), as the JSON APIs carry it: the type
/// crosses the boundary, the wire stays a string. Use with `#[serde(with = "cid::text")]`.
pub mod text {
    use super::{Cid, parse};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes the CID's text form.
    pub fn serialize<S: Serializer>(cid: &Cid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(cid)
    }

    /// Parses the text form, refusing what [`parse`] refuses.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }
}

/// [`text`] for a list of CIDs.
pub mod text_list {
    use super::{Cid, parse};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes each CID's text form.
    pub fn serialize<S: Serializer>(cids: &[Cid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(cids.iter().map(ToString::to_string))
    }

    /// Parses each text form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cid>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| parse(t).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_is_kubo_cid() {
        let cid = cid_for(RAW, b"hello world");
        assert_eq!(
            cid.to_string(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        assert_eq!(verify(&cid, b"hello world"), Ok(()));
        assert_eq!(verify(&cid, b"hello worle"), Err(CidError::Mismatch(cid)));
    }

    #[test]
    fn probe_cid_is_empty_identity() {
        let cid = parse("bafkqaaa").expect("the probe CID parses");
        assert!(is_identity(&cid));
        assert_eq!(verify(&cid, b""), Ok(()));
    }

    #[test]
    fn malformed_text_is_rejected() {
        assert!(matches!(parse("not-a-cid"), Err(CidError::Malformed(_))));
        assert!(matches!(parse(""), Err(CidError::Malformed(_))));
    }

    #[test]
    fn empty_dag_pb_block_constant() {
        assert_eq!(
            cid_for(DAG_PB, b"").to_string(),
            "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }
}
