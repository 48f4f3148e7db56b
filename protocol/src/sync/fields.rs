//! The field codec shared by every sync message: varints, length-prefixed bytes, CID lists, and
//! a [`Reader`] that caps each count and length before allocating. It must not know message
//! kinds.

use super::{MAX_CID_LEN, MAX_TEXT, SyncError};
use crate::Cid;
use crate::varint;

pub(super) fn put_uint(out: &mut Vec<u8>, v: u64) {
    varint::encode(v, out);
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(super) fn put_cids(out: &mut Vec<u8>, cids: &[Cid]) {
    put_uint(out, cids.len() as u64);
    for c in cids {
        put_bytes(out, &c.to_bytes());
    }
}

pub(super) fn put_blobs(out: &mut Vec<u8>, blobs: &[Vec<u8>]) {
    put_uint(out, blobs.len() as u64);
    for b in blobs {
        put_bytes(out, b);
    }
}

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn byte(&mut self) -> Result<u8, SyncError> {
        let (&b, rest) = self.buf.split_first().ok_or(SyncError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    pub(super) fn uint(&mut self) -> Result<u64, SyncError> {
        let (v, n) = varint::decode(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    pub(super) fn count(&mut self, what: &'static str, max: usize) -> Result<usize, SyncError> {
        let n = self.uint()?;
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(SyncError::TooLarge { what, len: n, max }),
        }
    }

    pub(super) fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], SyncError> {
        let n = self.count(what, max)?;
        if self.buf.len() < n {
            return Err(SyncError::Truncated);
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    pub(super) fn text(&mut self, what: &'static str) -> Result<String, SyncError> {
        let b = self.bytes(what, MAX_TEXT)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| SyncError::Utf8)
    }

    pub(super) fn cid(&mut self) -> Result<Cid, SyncError> {
        let b = self.bytes("CID", MAX_CID_LEN)?;
        let c = Cid::try_from(b).map_err(|e| SyncError::Cid(e.to_string()))?;
        if c.to_bytes() != b {
            return Err(SyncError::Cid("not the canonical encoding".into()));
        }
        Ok(c)
    }

    pub(super) fn cids(&mut self, what: &'static str, max: usize) -> Result<Vec<Cid>, SyncError> {
        let n = self.count(what, max)?;
        // Each CID takes at least 2 bytes: never reserve more than the input could hold.
        let mut v = Vec::with_capacity(n.min(self.buf.len() / 2));
        for _ in 0..n {
            v.push(self.cid()?);
        }
        Ok(v)
    }

    pub(super) fn blobs(
        &mut self,
        what: &'static str,
        max: usize,
        each: usize,
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let n = self.count(what, max)?;
        let mut v = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            v.push(self.bytes(what, each)?.to_vec());
        }
        Ok(v)
    }

    pub(super) fn finish(self) -> Result<(), SyncError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SyncError::Trailing(self.buf.len()))
        }
    }
}
