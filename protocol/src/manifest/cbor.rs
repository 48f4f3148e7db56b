//! The strict DAG-CBOR subset that manifests, rosters and join requests are written in.
//!
//! Written by hand, like the CAR header codec, so that canonical form is something this file
//! guarantees rather than something a serde backend happens to do. The encoder writes map keys
//! in DAG-CBOR order (shorter keys first, then bytewise: RFC 7049 §3.9) and every integer and
//! length in its shortest form. The decoder refuses anything else: non-minimal heads, keys out
//! of order or repeated, indefinite lengths, floats, tags other than 42 (CID), CIDs whose bytes
//! are not their canonical encoding, invalid UTF-8, trailing bytes, nesting deeper than
//! [`MAX_DEPTH`]. A declared length larger than the bytes left is refused before anything is
//! allocated, so the work a decoder does is bounded by its (capped) input.
//!
//! It knows no schema and must not do I/O: manifests, rosters and join requests map their
//! fields onto it.
//!
//! Spec: <https://ipld.io/specs/codecs/dag-cbor/spec/>.

use cid::Cid;
use std::cmp::Ordering;
use thiserror::Error;

/// Deepest nesting accepted inside an opaque value (unknown metadata entries).
pub const MAX_DEPTH: u32 = 16;
/// Most entries in a map that stands for a struct. Above the number of fields any struct has,
/// so that an extra key is reported by name ([`CborError::UnknownField`]).
pub const MAX_FIELDS: u64 = 64;

const UINT: u8 = 0;
const NINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
/// The IPLD tag for a CID.
const CID_TAG: u64 = 42;

/// Why bytes are not the canonical DAG-CBOR of the document expected.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CborError {
    /// The input is larger than any valid document of this kind.
    #[error("{len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The input ends inside an item.
    #[error("truncated DAG-CBOR")]
    Truncated,
    /// Bytes that are not valid CBOR, or CBOR that DAG-CBOR forbids.
    #[error("malformed DAG-CBOR: {0}")]
    Malformed(&'static str),
    /// Valid CBOR, but not in the one canonical form (so it would have a second CID).
    #[error("not canonical DAG-CBOR: {0}")]
    NonCanonical(&'static str),
    /// A field has the wrong CBOR type or an out-of-range value.
    #[error("field {field}: expected {expected}")]
    WrongType {
        /// Dotted path of the field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A map has a key this version does not know.
    #[error("unknown field {0:?}")]
    UnknownField(String),
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A list is longer than its cap.
    #[error("field {field} has {len} entries; at most {max} are allowed")]
    TooMany {
        /// Dotted path of the field.
        field: &'static str,
        /// Declared length.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The document declares a format version this code does not read.
    #[error("format version {0} is not supported")]
    UnsupportedVersion(u64),
}

/// DAG-CBOR map key order: length first, then bytes.
pub fn key_cmp(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Rejects inputs over `max` bytes before any parsing.
pub fn check_size(buf: &[u8], max: usize) -> Result<(), CborError> {
    if buf.len() > max {
        Err(CborError::TooLarge {
            len: buf.len(),
            max,
        })
    } else {
        Ok(())
    }
}

// ---- encoding -------------------------------------------------------------------------------

/// Writes a head (major type and argument) in its shortest form.
pub fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    // Each arm's range guarantees the narrowing cast is lossless.
    match value {
        0..=23 => out.push(m | value as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, value as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// Writes an unsigned integer.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    head(out, UINT, v);
}

/// Writes a byte string.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

/// Writes a text string.
pub fn text(out: &mut Vec<u8>, s: &str) {
    head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Writes a boolean.
pub fn boolean(out: &mut Vec<u8>, b: bool) {
    out.push(if b { TRUE } else { FALSE });
}

/// Writes a CID as tag 42 around `0x00 ‖ cid bytes`.
pub fn cid(out: &mut Vec<u8>, c: &Cid) {
    let b = c.to_bytes();
    head(out, TAG, CID_TAG);
    head(out, BYTES, b.len() as u64 + 1);
    out.push(0x00);
    out.extend_from_slice(&b);
}

/// Writes an array head; the caller writes `len` items after it.
pub fn array(out: &mut Vec<u8>, len: usize) {
    head(out, ARRAY, len as u64);
}

/// One map entry for [`map`]: its key and how to write its value.
pub type Entry<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// Writes a map, sorting the entries into DAG-CBOR key order first. Keys must be distinct.
pub fn map(out: &mut Vec<u8>, entries: &mut [Entry<'_>]) {
    entries.sort_by(|a, b| key_cmp(a.0, b.0));
    head(out, MAP, entries.len() as u64);
    for (k, write) in entries.iter() {
        text(out, k);
        write(out);
    }
}

/// Writes a map of text to text, in DAG-CBOR key order.
pub fn text_map<'a>(out: &mut Vec<u8>, m: impl ExactSizeIterator<Item = (&'a str, &'a str)>) {
    let mut pairs: Vec<_> = m.collect();
    pairs.sort_by(|a, b| key_cmp(a.0, b.0));
    head(out, MAP, pairs.len() as u64);
    for (k, v) in pairs {
        text(out, k);
        text(out, v);
    }
}

// ---- decoding -------------------------------------------------------------------------------

/// A cursor over a DAG-CBOR document that accepts only canonical form.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), CborError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CborError::Malformed("trailing bytes after the document"))
        }
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        let (&b, rest) = self.buf.split_first().ok_or(CborError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], CborError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len())
            .ok_or(CborError::Truncated)?;
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads a head: (major type, argument), or for major 7 the raw initial byte as argument.
    fn head(&mut self) -> Result<(u8, u64), CborError> {
        let b = self.byte()?;
        let major = b >> 5;
        let info = b & 0x1f;
        if major == SIMPLE {
            return match b {
                FALSE | TRUE | NULL => Ok((SIMPLE, u64::from(b))),
                0xf9..=0xfb => Err(CborError::Malformed("floats are not used")),
                _ => Err(CborError::Malformed("unsupported simple value")),
            };
        }
        let (arg, min) = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => (u64::from(self.byte()?), 24),
            25 => (u64::from(u16::from_be_bytes(self.fixed()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.fixed()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.fixed()?), 0x1_0000_0000),
            31 => return Err(CborError::Malformed("indefinite lengths are not allowed")),
            _ => return Err(CborError::Malformed("reserved additional information")),
        };
        if arg < min {
            return Err(CborError::NonCanonical(
                "integer or length not in shortest form",
            ));
        }
        Ok((major, arg))
    }

    /// Reads the head of an item of type `major`, else `WrongType`.
    fn expect(
        &mut self,
        major: u8,
        field: &'static str,
        expected: &'static str,
    ) -> Result<u64, CborError> {
        match self.head()? {
            (m, arg) if m == major => Ok(arg),
            _ => Err(CborError::WrongType { field, expected }),
        }
    }

    /// Reads an unsigned integer.
    pub fn uint(&mut self, field: &'static str) -> Result<u64, CborError> {
        self.expect(UINT, field, "an unsigned integer")
    }

    /// Reads an unsigned integer that fits in a `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, CborError> {
        u32::try_from(self.uint(field)?).map_err(|_| CborError::WrongType {
            field,
            expected: "an integer below 2^32",
        })
    }

    /// Reads a boolean.
    pub fn boolean(&mut self, field: &'static str) -> Result<bool, CborError> {
        match self.head()? {
            (SIMPLE, v) if v == u64::from(TRUE) => Ok(true),
            (SIMPLE, v) if v == u64::from(FALSE) => Ok(false),
            _ => Err(CborError::WrongType {
                field,
                expected: "a boolean",
            }),
        }
    }

    /// Reads a byte string.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], CborError> {
        let n = self.expect(BYTES, field, "a byte string")?;
        self.take(n)
    }

    /// Reads a byte string of exactly `N` bytes.
    pub fn byte_array<const N: usize>(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<[u8; N], CborError> {
        let b = self.bytes(field)?;
        <[u8; N]>::try_from(b).map_err(|_| CborError::WrongType { field, expected })
    }

    /// Reads a text string.
    pub fn text(&mut self, field: &'static str) -> Result<&'a str, CborError> {
        let n = self.expect(TEXT, field, "a text string")?;
        std::str::from_utf8(self.take(n)?).map_err(|_| CborError::Malformed("text is not UTF-8"))
    }

    /// Reads a CID (tag 42).
    pub fn cid(&mut self, field: &'static str) -> Result<Cid, CborError> {
        let wrong = CborError::WrongType {
            field,
            expected: "a CID (tag 42)",
        };
        if self.head()? != (TAG, CID_TAG) {
            return Err(wrong);
        }
        let b = self.bytes(field)?;
        match b.split_first() {
            Some((0, raw)) => parse_cid(raw),
            _ => Err(CborError::Malformed("CID bytes lack the 0x00 prefix")),
        }
    }

    /// Reads an array head and returns its length, checked against `max` and the bytes left.
    pub fn array(&mut self, field: &'static str, max: u64) -> Result<u64, CborError> {
        let n = self.expect(ARRAY, field, "an array")?;
        self.check_count(field, n, max)
    }

    /// Reads a map head and returns a reader for its keys.
    pub fn map(&mut self, field: &'static str, max: u64) -> Result<MapKeys<'a>, CborError> {
        let n = self.expect(MAP, field, "a map")?;
        let n = self.check_count(field, n, max)?;
        Ok(MapKeys {
            remaining: n,
            last: None,
        })
    }

    fn check_count(&self, field: &'static str, n: u64, max: u64) -> Result<u64, CborError> {
        if n > max {
            return Err(CborError::TooMany { field, len: n, max });
        }
        // Every item takes at least one byte: a longer declaration is a lie.
        if n > self.buf.len() as u64 {
            return Err(CborError::Truncated);
        }
        Ok(n)
    }

    /// Reads the next key of a map opened with [`Decoder::map`], checking canonical order.
    pub fn key(&mut self, keys: &mut MapKeys<'a>) -> Result<Option<&'a str>, CborError> {
        if keys.remaining == 0 {
            return Ok(None);
        }
        keys.remaining -= 1;
        let k = self.text("map key")?;
        if let Some(prev) = keys.last {
            match key_cmp(prev, k) {
                Ordering::Less => {}
                Ordering::Equal => return Err(CborError::NonCanonical("repeated map key")),
                Ordering::Greater => {
                    return Err(CborError::NonCanonical("map keys out of canonical order"));
                }
            }
        }
        keys.last = Some(k);
        Ok(Some(k))
    }

    /// Skips one complete item, checking it is canonical, and returns its bytes.
    pub fn raw_value(&mut self) -> Result<&'a [u8], CborError> {
        let start = self.buf;
        self.skip(0)?;
        Ok(&start[..start.len() - self.buf.len()])
    }

    fn skip(&mut self, depth: u32) -> Result<(), CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::Malformed("nested too deeply"));
        }
        match self.head()? {
            (UINT | NINT | SIMPLE, _) => Ok(()),
            (BYTES, n) => self.take(n).map(|_| ()),
            (TEXT, n) => std::str::from_utf8(self.take(n)?)
                .map(|_| ())
                .map_err(|_| CborError::Malformed("text is not UTF-8")),
            (ARRAY, n) => {
                let n = self.check_count("array", n, u64::MAX)?;
                (0..n).try_for_each(|_| self.skip(depth + 1))
            }
            (MAP, n) => {
                let n = self.check_count("map", n, u64::MAX)?;
                let mut keys = MapKeys {
                    remaining: n,
                    last: None,
                };
                while self.key(&mut keys)?.is_some() {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            (TAG, CID_TAG) => match self.bytes("CID")?.split_first() {
                Some((0, raw)) => parse_cid(raw).map(|_| ()),
                _ => Err(CborError::Malformed("CID bytes lack the 0x00 prefix")),
            },
            (TAG, _) => Err(CborError::Malformed("tags other than 42 are not allowed")),
            _ => Err(CborError::Malformed("unknown major type")),
        }
    }
}

/// The state of a map being read: how many entries are left and the previous key.
#[derive(Debug)]
pub struct MapKeys<'a> {
    remaining: u64,
    last: Option<&'a str>,
}

fn parse_cid(raw: &[u8]) -> Result<Cid, CborError> {
    let c = Cid::try_from(raw).map_err(|_| CborError::Malformed("invalid CID"))?;
    if c.to_bytes() != raw {
        return Err(CborError::NonCanonical(
            "CID bytes are not in canonical form",
        ));
    }
    Ok(c)
}

/// A required field, or `MissingField`.
pub fn required<T>(slot: Option<T>, field: &'static str) -> Result<T, CborError> {
    slot.ok_or(CborError::MissingField(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest_and_checked() {
        for v in [
            0u64,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            uint(&mut out, v);
            let mut d = Decoder::new(&out);
            assert_eq!(d.uint("x"), Ok(v));
            d.finish().unwrap();
        }
        // 5 written with a one-byte argument.
        assert_eq!(
            Decoder::new(&[0x18, 0x05]).uint("x"),
            Err(CborError::NonCanonical(
                "integer or length not in shortest form"
            ))
        );
        assert!(matches!(
            Decoder::new(&[0x5f]).bytes("x"),
            Err(CborError::Malformed(_))
        ));
        assert!(matches!(
            Decoder::new(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]).raw_value(),
            Err(CborError::Malformed(_))
        ));
    }

    #[test]
    fn map_keys_must_be_canonical() {
        let mut out = Vec::new();
        let w = |o: &mut Vec<u8>| uint(o, 1);
        map(&mut out, &mut [("bb", &w), ("a", &w), ("ab", &w)]);
        let mut d = Decoder::new(&out);
        let mut keys = d.map("m", 8).unwrap();
        let mut seen = Vec::new();
        while let Some(k) = d.key(&mut keys).unwrap() {
            seen.push(k);
            d.uint("v").unwrap();
        }
        assert_eq!(seen, ["a", "ab", "bb"]);

        // {"b": 1, "a": 1} and {"a": 1, "a": 1}
        for bad in [
            &[0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x01][..],
            &[0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x01],
            &[0xa2, 0x62, b'a', b'a', 0x01, 0x61, b'b', 0x01],
        ] {
            assert!(matches!(
                Decoder::new(bad).raw_value(),
                Err(CborError::NonCanonical(_))
            ));
        }
    }

    #[test]
    fn lying_lengths_do_not_allocate() {
        // An array claiming 2^32 entries in five bytes.
        let mut d = Decoder::new(&[0x9a, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.array("x", u64::MAX), Err(CborError::Truncated));
        let deep = vec![0x81; 100];
        assert!(matches!(
            Decoder::new(&deep).raw_value(),
            Err(CborError::Malformed("nested too deeply"))
        ));
    }
}
