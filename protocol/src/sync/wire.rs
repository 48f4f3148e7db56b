//! Byte encodings of the sync messages and gossip announcements, and the frame around a sync
//! message. Every decoder enforces the caps in the parent module, so it is safe on any input.
//! It must not do I/O: the node's sync and gossip tasks move the bytes.

use super::fields::{Reader, put_blobs, put_bytes, put_cids, put_uint};
use super::{
    Announcement, BUCKETS, Bucket, MAX_BATCH, MAX_CIDS, MAX_FRAME, MAX_ROSTERS, MAX_TEXT,
    MAX_USAGE_ENTRIES, Request, Response, SyncError,
};
use crate::Cid;

/// Wraps a body in a frame: 4-byte big-endian length, then the body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The body length a frame header announces, refused over [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, SyncError> {
    let len = u32::from_be_bytes(header);
    let n = usize::try_from(len).map_err(|_| SyncError::TooLarge {
        what: "frame",
        len: u64::from(len),
        max: MAX_FRAME,
    })?;
    if n > MAX_FRAME {
        return Err(SyncError::TooLarge {
            what: "frame",
            len: u64::from(len),
            max: MAX_FRAME,
        });
    }
    Ok(n)
}

pub(super) const REQ_SUMMARY: u8 = 1;
pub(super) const REQ_ROSTERS: u8 = 2;
pub(super) const REQ_BUCKET: u8 = 3;
pub(super) const REQ_MANIFESTS: u8 = 4;
pub(super) const REQ_USAGE: u8 = 5;

pub(super) const RESP_SUMMARY: u8 = 1;
pub(super) const RESP_ROSTERS: u8 = 2;
pub(super) const RESP_BUCKET: u8 = 3;
pub(super) const RESP_MANIFESTS: u8 = 4;
pub(super) const RESP_REFUSED: u8 = 5;
pub(super) const RESP_USAGE: u8 = 6;

pub(super) const ANN_MANIFEST: u8 = 1;
pub(super) const ANN_ROSTER: u8 = 2;
pub(super) const ANN_HOLDING: u8 = 3;
pub(super) const ANN_LEAVING: u8 = 4;
pub(super) const ANN_USAGE: u8 = 5;

impl Request {
    /// The body (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Summary { federation } => {
                out.push(REQ_SUMMARY);
                put_bytes(&mut out, federation.as_bytes());
            }
            Request::Rosters { after } => {
                out.push(REQ_ROSTERS);
                put_uint(&mut out, *after);
            }
            Request::Bucket { index } => {
                out.push(REQ_BUCKET);
                out.push(*index);
            }
            Request::Manifests { cids } => {
                out.push(REQ_MANIFESTS);
                put_cids(&mut out, cids);
            }
            Request::Usage { after } => {
                out.push(REQ_USAGE);
                match after {
                    None => out.push(0),
                    Some(c) => {
                        out.push(1);
                        put_bytes(&mut out, &c.to_bytes());
                    }
                }
            }
        }
        out
    }

    /// Decodes a body, enforcing every cap.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        let mut r = Reader { buf };
        let req = match r.byte()? {
            REQ_SUMMARY => Request::Summary {
                federation: r.text("federation id")?,
            },
            REQ_ROSTERS => Request::Rosters { after: r.uint()? },
            REQ_BUCKET => Request::Bucket { index: r.byte()? },
            REQ_MANIFESTS => Request::Manifests {
                cids: r.cids("manifest request", MAX_BATCH)?,
            },
            REQ_USAGE => Request::Usage {
                after: match r.byte()? {
                    0 => None,
                    1 => Some(r.cid()?),
                    k => return Err(SyncError::UnknownKind(k)),
                },
            },
            k => return Err(SyncError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    /// The body (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Summary {
                roster_version,
                buckets,
                holdings,
                usage,
            } => {
                out.push(RESP_SUMMARY);
                put_uint(&mut out, *roster_version);
                put_uint(&mut out, buckets.len() as u64);
                for b in buckets {
                    put_uint(&mut out, u64::from(b.count));
                    out.extend_from_slice(&b.digest);
                }
                put_cids(&mut out, holdings);
                // Trailing and optional, so a summary without it still decodes.
                if let Some(d) = usage {
                    out.extend_from_slice(d);
                }
            }
            Response::Rosters { rosters } => {
                out.push(RESP_ROSTERS);
                put_blobs(&mut out, rosters);
            }
            Response::Bucket { cids } => {
                out.push(RESP_BUCKET);
                put_cids(&mut out, cids);
            }
            Response::Manifests { manifests } => {
                out.push(RESP_MANIFESTS);
                put_blobs(&mut out, manifests);
            }
            Response::Usage { totals } => {
                out.push(RESP_USAGE);
                let n = totals.len().min(MAX_USAGE_ENTRIES);
                put_uint(&mut out, n as u64);
                for (c, count) in totals.iter().take(n) {
                    put_bytes(&mut out, &c.to_bytes());
                    // Fixed width, as in the gossip announcement: any u64 round-trips.
                    out.extend_from_slice(&count.to_be_bytes());
                }
            }
            Response::Refused { reason } => {
                out.push(RESP_REFUSED);
                let mut end = reason.len().min(MAX_TEXT);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                put_bytes(&mut out, &reason.as_bytes()[..end]);
            }
        }
        out
    }

    /// Decodes a body, enforcing every cap.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        let mut r = Reader { buf };
        let resp = match r.byte()? {
            RESP_SUMMARY => {
                let roster_version = r.uint()?;
                let n = r.count("buckets", BUCKETS)?;
                if n != BUCKETS {
                    return Err(SyncError::BucketCount(n));
                }
                let mut buckets = Vec::with_capacity(BUCKETS);
                for _ in 0..n {
                    let count = u32::try_from(r.uint()?).map_err(|_| SyncError::TooLarge {
                        what: "bucket count",
                        len: u64::MAX,
                        max: u32::MAX as usize,
                    })?;
                    let d = r.buf.get(..32).ok_or(SyncError::Truncated)?;
                    let mut digest = [0u8; 32];
                    digest.copy_from_slice(d);
                    r.buf = &r.buf[32..];
                    buckets.push(Bucket { count, digest });
                }
                let holdings = r.cids("holdings", MAX_CIDS)?;
                let usage = match r.buf.len() {
                    32 => {
                        let mut d = [0u8; 32];
                        d.copy_from_slice(r.buf);
                        r.buf = &[];
                        Some(d)
                    }
                    _ => None,
                };
                Response::Summary {
                    roster_version,
                    buckets,
                    holdings,
                    usage,
                }
            }
            RESP_ROSTERS => Response::Rosters {
                rosters: r.blobs("rosters", MAX_ROSTERS, crate::roster::MAX_ROSTER_SIZE)?,
            },
            RESP_BUCKET => Response::Bucket {
                cids: r.cids("bucket", MAX_CIDS)?,
            },
            RESP_MANIFESTS => Response::Manifests {
                manifests: r.blobs("manifests", MAX_BATCH, crate::manifest::MAX_MANIFEST_SIZE)?,
            },
            RESP_REFUSED => Response::Refused {
                reason: r.text("reason")?,
            },
            RESP_USAGE => {
                let n = r.count("usage entries", MAX_USAGE_ENTRIES)?;
                let mut totals = Vec::with_capacity(n);
                for _ in 0..n {
                    let c = r.cid()?;
                    let b = r.buf.get(..8).ok_or(SyncError::Truncated)?;
                    let mut count = [0u8; 8];
                    count.copy_from_slice(b);
                    r.buf = &r.buf[8..];
                    totals.push((c, u64::from_be_bytes(count)));
                }
                Response::Usage { totals }
            }
            k => return Err(SyncError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(resp)
    }
}

impl Announcement {
    /// The gossip payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Announcement::Manifest(b) => {
                out.push(ANN_MANIFEST);
                out.extend_from_slice(b);
            }
            Announcement::Roster(b) => {
                out.push(ANN_ROSTER);
                out.extend_from_slice(b);
            }
            Announcement::Holding(c) => {
                out.push(ANN_HOLDING);
                out.extend_from_slice(&c.to_bytes());
            }
            Announcement::Leaving => out.push(ANN_LEAVING),
            Announcement::Usage(entries) => {
                out.push(ANN_USAGE);
                let n = entries.len().min(MAX_USAGE_ENTRIES);
                out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
                for (c, count) in entries.iter().take(n) {
                    let b = c.to_bytes();
                    out.push(u8::try_from(b.len()).unwrap_or(u8::MAX));
                    out.extend_from_slice(&b);
                    out.extend_from_slice(&count.to_be_bytes());
                }
            }
        }
        out
    }

    /// Decodes a gossip payload; the manifest or roster inside is not decoded here.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        let (&kind, rest) = buf.split_first().ok_or(SyncError::Truncated)?;
        let cap = |max: usize, what| {
            if rest.len() > max {
                Err(SyncError::TooLarge {
                    what,
                    len: rest.len() as u64,
                    max,
                })
            } else {
                Ok(rest.to_vec())
            }
        };
        match kind {
            ANN_MANIFEST => Ok(Announcement::Manifest(cap(
                crate::manifest::MAX_MANIFEST_SIZE,
                "manifest",
            )?)),
            ANN_ROSTER => Ok(Announcement::Roster(cap(
                crate::roster::MAX_ROSTER_SIZE,
                "roster",
            )?)),
            ANN_HOLDING => {
                let c = Cid::try_from(rest).map_err(|e| SyncError::Cid(e.to_string()))?;
                if c.to_bytes() != rest {
                    return Err(SyncError::Cid("not the canonical encoding".into()));
                }
                Ok(Announcement::Holding(c))
            }
            ANN_LEAVING if rest.is_empty() => Ok(Announcement::Leaving),
            ANN_LEAVING => Err(SyncError::TooLarge {
                what: "leaving announcement",
                len: rest.len() as u64,
                max: 0,
            }),
            ANN_USAGE => decode_usage(rest),
            k => Err(SyncError::UnknownKind(k)),
        }
    }
}

/// The body of a usage announcement: u16 count, then per entry a u8 CID length, the CID's
/// canonical bytes and a u64 count (big-endian).
fn decode_usage(mut rest: &[u8]) -> Result<Announcement, SyncError> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], SyncError> {
        if rest.len() < n {
            return Err(SyncError::Truncated);
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Ok(a)
    }
    let head = take(&mut rest, 2)?;
    let n = usize::from(u16::from_be_bytes([head[0], head[1]]));
    if n > MAX_USAGE_ENTRIES {
        return Err(SyncError::TooLarge {
            what: "usage entries",
            len: n as u64,
            max: MAX_USAGE_ENTRIES,
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(take(&mut rest, 1)?[0]);
        let raw = take(&mut rest, len)?;
        let c = Cid::try_from(raw).map_err(|e| SyncError::Cid(e.to_string()))?;
        if c.to_bytes() != raw {
            return Err(SyncError::Cid("not the canonical encoding".into()));
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(take(&mut rest, 8)?);
        out.push((c, u64::from_be_bytes(count)));
    }
    if !rest.is_empty() {
        return Err(SyncError::Cid(
            "trailing bytes after the usage entries".into(),
        ));
    }
    Ok(Announcement::Usage(out))
}
