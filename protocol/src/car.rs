//! CAR v1 ("Content Addressable aRchive"), read and written as streams.
//!
//! Goals: byte-identical output to `@ipld/car`'s `CarWriter` for the same roots and blocks, and a
//! reader that cannot be made to allocate more than one capped section at a time.
//! Non-goals: CARv2 indexes (a v2 file is refused with a clear error).
//!
//! Spec: <https://ipld.io/specs/transport/car/carv1/>. A file is
//! `varint(len) ‖ dag-cbor {roots, version: 1}` followed by sections
//! `varint(len(cid) + len(block)) ‖ cid ‖ block`.
//!
//! It must not open files or sockets: callers hand it the `Read` or `Write`, and decide where
//! the blocks come from and go.

use crate::cid::{CidError, MAX_BLOCK_SIZE, verify};
use crate::varint;
use cid::Cid;
use std::io::{self, Read, Write};
use thiserror::Error;

/// Largest header accepted. Real headers hold a handful of roots.
pub const MAX_HEADER_SIZE: u64 = 64 * 1024;
/// Largest section accepted: one maximal block plus a generous CID.
pub const MAX_SECTION_SIZE: u64 = MAX_BLOCK_SIZE as u64 + 256;
/// Media type of a CAR response on the trustless gateway.
pub const MEDIA_TYPE: &str = "application/vnd.ipld.car";

/// Why a CAR stream could not be read.
#[derive(Debug, Error)]
pub enum CarError {
    /// Reading the underlying stream failed.
    #[error("reading CAR: {0}")]
    Io(#[from] io::Error),
    /// The stream ended in the middle of a header or section.
    #[error("CAR is truncated: {0}")]
    Truncated(&'static str),
    /// The header is not a CAR v1 header.
    #[error("CAR header is invalid: {0}")]
    BadHeader(&'static str),
    /// A CARv2 file; only v1 is read.
    #[error("CAR version {0} is not supported; convert to CARv1 first")]
    Version(u64),
    /// A section is larger than any block could be.
    #[error("CAR section of {0} bytes exceeds the {MAX_SECTION_SIZE}-byte limit")]
    SectionTooLarge(u64),
    /// A section's CID cannot be parsed.
    #[error("CAR section has an invalid CID")]
    BadCid,
    /// A block's bytes do not match its CID, or use a hash we cannot check.
    #[error(transparent)]
    Block(#[from] CidError),
}

/// Encodes the CAR v1 header, including its length prefix.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let mut cbor = Vec::with_capacity(20 + roots.len() * 41);
    cbor.push(0xa2); // map(2); keys sorted length-first as DAG-CBOR requires
    cbor.push(0x65);
    cbor.extend_from_slice(b"roots");
    crate::manifest::cbor::head(&mut cbor, 4, roots.len() as u64);
    for root in roots {
        let bytes = root.to_bytes();
        cbor.extend_from_slice(&[0xd8, 0x2a]); // tag(42)
        crate::manifest::cbor::head(&mut cbor, 2, bytes.len() as u64 + 1);
        cbor.push(0x00);
        cbor.extend_from_slice(&bytes);
    }
    cbor.push(0x67);
    cbor.extend_from_slice(b"version");
    cbor.push(0x01);
    let mut out = Vec::with_capacity(cbor.len() + 2);
    varint::encode(cbor.len() as u64, &mut out);
    out.extend_from_slice(&cbor);
    out
}

/// Encodes the prefix of one section: its length varint and the CID. The block bytes follow.
pub fn encode_section_prefix(cid: &Cid, block_len: usize) -> Vec<u8> {
    let cid_bytes = cid.to_bytes();
    let mut out = Vec::with_capacity(cid_bytes.len() + 4);
    varint::encode((cid_bytes.len() + block_len) as u64, &mut out);
    out.extend_from_slice(&cid_bytes);
    out
}

/// Writes a CAR v1 stream.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    inner: W,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header and returns a writer ready for blocks.
    pub fn new(mut inner: W, roots: &[Cid]) -> io::Result<Self> {
        inner.write_all(&encode_header(roots))?;
        Ok(Self { inner })
    }

    /// Appends one block. The caller is responsible for its CID being right.
    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        self.inner
            .write_all(&encode_section_prefix(cid, data.len()))?;
        self.inner.write_all(data)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// Reads a CAR v1 stream block by block.
#[derive(Debug)]
pub struct CarReader<R: Read> {
    inner: R,
    roots: Vec<Cid>,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, CarError> {
        let len = varint::read(&mut inner)?.ok_or(CarError::Truncated("no header"))?;
        if len == 0 || len > MAX_HEADER_SIZE {
            return Err(CarError::BadHeader("header length out of range"));
        }
        let mut buf = vec![0u8; len as usize];
        read_exact(&mut inner, &mut buf, "inside the header")?;
        let roots = parse_header(&buf)?;
        Ok(Self { inner, roots })
    }

    /// The roots named in the header (may be empty; gateways treat them as advisory).
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, unverified, or `None` at a clean end of stream.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let Some(len) = varint::read(&mut self.inner).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                CarError::Truncated("inside a section length")
            } else {
                CarError::Io(e)
            }
        })?
        else {
            return Ok(None);
        };
        if len > MAX_SECTION_SIZE {
            return Err(CarError::SectionTooLarge(len));
        }
        let mut buf = vec![0u8; len as usize];
        read_exact(&mut self.inner, &mut buf, "inside a block")?;
        let mut cursor = &buf[..];
        let cid = Cid::read_bytes(&mut cursor).map_err(|_| CarError::BadCid)?;
        let cid_len = buf.len() - cursor.len();
        buf.drain(..cid_len);
        Ok(Some((cid, buf)))
    }

    /// The next block after checking its bytes against its CID.
    pub fn next_verified_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        match self.next_block()? {
            Some((cid, data)) => {
                verify(&cid, &data)?;
                Ok(Some((cid, data)))
            }
            None => Ok(None),
        }
    }

    /// The underlying reader, e.g. to ask a counting reader where a block ended.
    pub fn inner_ref(&self) -> &R {
        &self.inner
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], where_: &'static str) -> Result<(), CarError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            CarError::Truncated(where_)
        } else {
            CarError::Io(e)
        }
    })
}

/// A tiny DAG-CBOR reader for the only document a CAR header may be.
struct Cbor<'a> {
    buf: &'a [u8],
}

impl<'a> Cbor<'a> {
    fn byte(&mut self) -> Result<u8, CarError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or(CarError::BadHeader("header ends early"))?;
        self.buf = rest;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], CarError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len())
            .ok_or(CarError::BadHeader("length past end of header"))?;
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// Returns (major type, argument).
    fn head(&mut self) -> Result<(u8, u64), CarError> {
        let b = self.byte()?;
        let major = b >> 5;
        let info = b & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.fixed()?)),
            26 => u64::from(u32::from_be_bytes(self.fixed()?)),
            27 => u64::from_be_bytes(self.fixed()?),
            _ => return Err(CarError::BadHeader("indefinite or reserved CBOR length")),
        };
        Ok((major, arg))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CarError> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn text(&mut self) -> Result<&'a [u8], CarError> {
        match self.head()? {
            (3, n) => self.take(n),
            _ => Err(CarError::BadHeader("map key is not a string")),
        }
    }

    fn cid(&mut self) -> Result<Cid, CarError> {
        if self.head()? != (6, 42) {
            return Err(CarError::BadHeader("root is not a CID (tag 42)"));
        }
        let bytes = match self.head()? {
            (2, n) => self.take(n)?,
            _ => return Err(CarError::BadHeader("CID tag does not wrap bytes")),
        };
        match bytes.split_first() {
            Some((0, cid)) => Cid::try_from(cid).map_err(|_| CarError::BadCid),
            _ => Err(CarError::BadHeader(
                "CID bytes lack the 0x00 multibase prefix",
            )),
        }
    }
}

fn parse_header(buf: &[u8]) -> Result<Vec<Cid>, CarError> {
    let mut c = Cbor { buf };
    let (major, entries) = c.head()?;
    if major != 5 || entries > 8 {
        return Err(CarError::BadHeader("header is not a small map"));
    }
    let mut roots = None;
    let mut version = None;
    for _ in 0..entries {
        match c.text()? {
            b"roots" => {
                let (major, n) = c.head()?;
                if major != 4 || n > 1024 {
                    return Err(CarError::BadHeader("roots is not a list"));
                }
                roots = Some((0..n).map(|_| c.cid()).collect::<Result<Vec<_>, _>>()?);
            }
            b"version" => match c.head()? {
                (0, v) => version = Some(v),
                _ => return Err(CarError::BadHeader("version is not an integer")),
            },
            _ => return Err(CarError::BadHeader("unknown header key")),
        }
    }
    if !c.buf.is_empty() {
        return Err(CarError::BadHeader("trailing bytes after header"));
    }
    match version {
        Some(1) => roots.ok_or(CarError::BadHeader("header has no roots")),
        Some(v) => Err(CarError::Version(v)),
        None => Err(CarError::BadHeader("header has no version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{RAW, cid_for};
    use proptest::prelude::*;

    #[test]
    fn header_matches_carwriter_bytes() {
        let root = cid_for(RAW, b"hello world");
        let h = encode_header(&[root]);
        assert_eq!(
            &h[..15],
            &[
                0x3a, 0xa2, 0x65, b'r', b'o', b'o', b't', b's', 0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00,
                0x01
            ]
        );
        assert_eq!(h.len(), 59);
        assert!(h.ends_with(b"version\x01"));
    }

    #[test]
    fn roundtrip_and_verification() {
        let blocks: Vec<_> = (0u8..5)
            .map(|i| (cid_for(RAW, &[i; 10]), vec![i; 10]))
            .collect();
        let mut w = CarWriter::new(Vec::new(), &[blocks[0].0]).expect("vec write");
        for (c, d) in &blocks {
            w.write_block(c, d).expect("vec write");
        }
        let bytes = w.finish().expect("vec flush");
        let mut r = CarReader::new(&bytes[..]).expect("header");
        assert_eq!(r.roots(), &[blocks[0].0]);
        for (c, d) in &blocks {
            assert_eq!(
                r.next_verified_block().expect("block"),
                Some((*c, d.clone()))
            );
        }
        assert!(r.next_block().expect("eof").is_none());

        // A corrupt block is refused by name.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut r = CarReader::new(&bad[..]).expect("header");
        for _ in 0..4 {
            r.next_verified_block().expect("good block");
        }
        assert!(matches!(
            r.next_verified_block(),
            Err(CarError::Block(CidError::Mismatch(_)))
        ));

        // Truncation anywhere is an error, never a silent short read.
        for cut in 1..bytes.len() {
            let mut n = 0;
            let res = CarReader::new(&bytes[..cut]).and_then(|mut r| {
                while r.next_block()?.is_some() {
                    n += 1;
                }
                Ok(())
            });
            // A cut exactly at a section boundary is a valid shorter CAR.
            if res.is_ok() {
                assert!(n < 5, "cut at {cut} still read every block");
            }
        }
    }

    #[test]
    fn truncated_header_and_v2_are_errors() {
        assert!(matches!(
            CarReader::new(&[][..]),
            Err(CarError::Truncated(_))
        ));
        assert!(matches!(
            CarReader::new(&[0x3a, 0xa2][..]),
            Err(CarError::Truncated(_))
        ));
        // The CARv2 pragma: {version: 2}.
        let v2 = [
            0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02,
        ];
        assert!(matches!(CarReader::new(&v2[..]), Err(CarError::Version(2))));
    }

    proptest! {
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(mut r) = CarReader::new(&bytes[..]) {
                while let Ok(Some(_)) = r.next_block() {}
            }
        }
    }
}
