//! Decoding CIDv1 strings (base32, `b…`), written here from the specs so that the tests do not
//! trust the code they test.

/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multicodec of dag-pb blocks.
pub const DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// The parts of a CIDv1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidV1 {
    /// Content codec (0x55 raw, 0x70 dag-pb, …).
    pub codec: u64,
    /// Multihash function code.
    pub hash_code: u64,
    /// The digest.
    pub digest: Vec<u8>,
}

fn base32_lower(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes a base32 CIDv1 string; `None` if it is not one.
pub fn decode(text: &str) -> Option<CidV1> {
    let bytes = base32_lower(text.strip_prefix('b')?)?;
    let mut rest = bytes.as_slice();
    if varint(&mut rest)? != 1 {
        return None;
    }
    let codec = varint(&mut rest)?;
    let hash_code = varint(&mut rest)?;
    let len = varint(&mut rest)? as usize;
    if rest.len() != len {
        return None;
    }
    Some(CidV1 {
        codec,
        hash_code,
        digest: rest.to_vec(),
    })
}

/// Panics unless `data` is the block that `cid` names (sha2-256 only).
#[track_caller]
pub fn assert_block_matches(cid: &str, data: &[u8]) {
    let c = decode(cid).unwrap_or_else(|| panic!("{cid:?} is not a base32 CIDv1"));
    assert_eq!(c.hash_code, SHA2_256, "{cid}: not a sha2-256 CID");
    let got = crate::data::sha256_hex(data);
    assert_eq!(
        got,
        hex::encode(&c.digest),
        "a block of {} bytes does not hash to {cid}",
        data.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_cids() {
        let hw =
            decode("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e").expect("cid");
        assert_eq!(hw.codec, RAW);
        assert_eq!(hw.hash_code, SHA2_256);
        assert_eq!(
            hw.digest,
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
                b"hello world"
            ))
            .to_vec()
        );
        let root =
            decode("bafybeibyui7o3sbw3yifnewshhrbnuntcehluzvbkwgi5vmtsdobnc2c6y").expect("cid");
        assert_eq!(root.codec, DAG_PB);
        assert!(decode("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD").is_none());
        assert!(decode("bnotacid").is_none());
    }
}
