//! Unsigned LEB128 varints, as used by protobuf, multiformats and CAR framing.
//!
//! Decoding is capped at 9 bytes (63 bits), the multiformats limit, so a hostile input cannot
//! make us loop or overflow. It must never consume a byte past a varint's end, so the framing
//! around it stays in step.

use thiserror::Error;

/// The longest varint accepted, per the multiformats unsigned-varint spec.
pub const MAX_VARINT_LEN: usize = 9;

/// Why a varint could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended in the middle of the varint.
    #[error("input ended inside a varint")]
    Truncated,
    /// More than [`MAX_VARINT_LEN`] bytes, or a value that needs more than 63 bits.
    #[error("varint is longer than {MAX_VARINT_LEN} bytes")]
    Overflow,
    /// The encoding has redundant trailing zero groups, which multiformats forbids.
    #[error("varint is not minimally encoded")]
    NotMinimal,
}

/// Appends `value` to `out` as a varint.
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Number of bytes [`encode`] writes for `value`.
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint from the front of `buf`, returning the value and the bytes consumed.
pub fn decode(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i >= MAX_VARINT_LEN {
            return Err(VarintError::Overflow);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(VarintError::NotMinimal);
            }
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Reads a protobuf varint: up to 10 bytes, the full `u64` range, as dag-pb and bitswap use.
pub fn decode_protobuf(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return Err(VarintError::Overflow);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 10 {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Reads a varint from a byte source one byte at a time. Returns `Ok(None)` on a clean EOF
/// before the first byte, which is how CAR and bitswap streams end.
pub fn read<R: std::io::Read>(r: &mut R) -> std::io::Result<Option<u64>> {
    let mut value: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..MAX_VARINT_LEN {
        match r.read(&mut byte) {
            Ok(0) if i == 0 => return Ok(None),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    VarintError::Truncated,
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let b = byte[0];
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    VarintError::NotMinimal,
                ));
            }
            return Ok(Some(value));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        VarintError::Overflow,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut v = Vec::new();
        encode(262144, &mut v);
        assert_eq!(v, [0x80, 0x80, 0x10]);
        assert_eq!(encoded_len(262144), 3);
        assert_eq!(encoded_len(0), 1);
        assert_eq!(decode(&[0x80, 0x00]), Err(VarintError::NotMinimal));
        assert_eq!(decode(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0xff; 10]), Err(VarintError::Overflow));
    }

    proptest! {
        #[test]
        fn roundtrip(x in 0u64..(1 << 63)) {
            let mut v = Vec::new();
            encode(x, &mut v);
            prop_assert_eq!(v.len(), encoded_len(x));
            prop_assert_eq!(decode(&v), Ok((x, v.len())));
            prop_assert_eq!(read(&mut &v[..]).ok().flatten(), Some(x));
            prop_assert_eq!(decode_protobuf(&v), Ok((x, v.len())));
        }

        #[test]
        fn protobuf_full_range(x in any::<u64>()) {
            let mut v = Vec::new();
            encode(x, &mut v);
            prop_assert_eq!(decode_protobuf(&v), Ok((x, v.len())));
        }
    }
}
