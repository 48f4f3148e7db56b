//! `/shubnet/access/1`: how members exchange the signed access records of
//! [`crate::access`] (collection policies and capability revocations).
//!
//! A separate protocol from `/shubnet/sync/1`, so that members of an older version, which would
//! count an unknown sync request kind against the peer, simply refuse the stream. The access
//! state is small (one policy per collection that ever changed visibility, one revocation per
//! withdrawn grant), so a pull moves all of it in one round trip when the digests differ and
//! nothing but the digest when they agree. An owner pushes a record to every connected member
//! the moment it signs one, so a change reaches the federation without waiting for a round.
//!
//! Wire: the frame of [`super::frame`], with a body capped at [`MAX_ACCESS_FRAME`]. This module
//! owns the messages and their codec; it must not do I/O or judge who may sign a record.

use super::SyncError;
use super::fields::{Reader, put_bytes, put_uint};
use sha2::{Digest, Sha256};

/// The stream protocol id.
pub const ACCESS_PROTOCOL: &str = "/shubnet/access/1";
/// Largest access message body, in bytes.
pub const MAX_ACCESS_FRAME: usize = 8 * 1024 * 1024;
/// Most records in one message.
pub const MAX_ACCESS_RECORDS: usize = 16_384;

/// One signed record, still encoded; the receiver decodes and judges it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessRecord {
    /// A [`crate::access::SignedPolicy`].
    Policy(Vec<u8>),
    /// A [`crate::access::Revocation`].
    Revocation(Vec<u8>),
}

/// What a member asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRequest {
    /// Every record the peer holds, unless its digest equals `digest`.
    Pull {
        /// The federation id the asker belongs to.
        federation: String,
        /// [`access_digest`] of the asker's records.
        digest: [u8; 32],
    },
    /// Records the asker just signed or learned.
    Push {
        /// The federation id the asker belongs to.
        federation: String,
        /// The records.
        records: Vec<AccessRecord>,
    },
}

/// What a member answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessResponse {
    /// Both hold the same records.
    Same,
    /// Every record the peer holds.
    Records(Vec<AccessRecord>),
    /// How many pushed records were new and valid.
    Accepted(u32),
    /// The peer will not answer (not a member, another federation).
    Refused(String),
}

const REQ_PULL: u8 = 1;
const REQ_PUSH: u8 = 2;
const RESP_SAME: u8 = 1;
const RESP_RECORDS: u8 = 2;
const RESP_ACCEPTED: u8 = 3;
const RESP_REFUSED: u8 = 4;
const REC_POLICY: u8 = 1;
const REC_REVOCATION: u8 = 2;

impl AccessRecord {
    fn kind(&self) -> u8 {
        match self {
            AccessRecord::Policy(_) => REC_POLICY,
            AccessRecord::Revocation(_) => REC_REVOCATION,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            AccessRecord::Policy(b) | AccessRecord::Revocation(b) => b,
        }
    }
}

/// A digest of a record set that does not depend on the order records are listed in.
pub fn access_digest(records: &[AccessRecord]) -> [u8; 32] {
    let mut hashes: Vec<[u8; 32]> = records
        .iter()
        .map(|r| {
            let mut h = Sha256::new();
            h.update([r.kind()]);
            h.update(r.bytes());
            h.finalize().into()
        })
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut h = Sha256::new();
    hashes.iter().for_each(|x| h.update(x));
    h.finalize().into()
}

fn put_records(out: &mut Vec<u8>, records: &[AccessRecord]) {
    put_uint(out, records.len() as u64);
    for r in records {
        out.push(r.kind());
        put_bytes(out, r.bytes());
    }
}

fn records(r: &mut Reader<'_>) -> Result<Vec<AccessRecord>, SyncError> {
    let n = r.count("access records", MAX_ACCESS_RECORDS)?;
    let mut v = Vec::with_capacity(n.min(r.buf.len() / 2));
    for _ in 0..n {
        let kind = r.byte()?;
        let b = r
            .bytes("access record", crate::access::MAX_RECORD_SIZE)?
            .to_vec();
        v.push(match kind {
            REC_POLICY => AccessRecord::Policy(b),
            REC_REVOCATION => AccessRecord::Revocation(b),
            k => return Err(SyncError::UnknownKind(k)),
        });
    }
    Ok(v)
}

fn check_len(buf: &[u8]) -> Result<(), SyncError> {
    if buf.len() > MAX_ACCESS_FRAME {
        return Err(SyncError::TooLarge {
            what: "access message",
            len: buf.len() as u64,
            max: MAX_ACCESS_FRAME,
        });
    }
    Ok(())
}

impl AccessRequest {
    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            AccessRequest::Pull { federation, digest } => {
                out.push(REQ_PULL);
                put_bytes(&mut out, federation.as_bytes());
                out.extend_from_slice(digest);
            }
            AccessRequest::Push {
                federation,
                records,
            } => {
                out.push(REQ_PUSH);
                put_bytes(&mut out, federation.as_bytes());
                put_records(&mut out, records);
            }
        }
        out
    }

    /// Decodes a body; safe on any input.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        check_len(buf)?;
        let mut r = Reader { buf };
        let req = match r.byte()? {
            REQ_PULL => {
                let federation = r.text("federation")?;
                let d = r.buf.get(..32).ok_or(SyncError::Truncated)?;
                let mut digest = [0u8; 32];
                digest.copy_from_slice(d);
                r.buf = &r.buf[32..];
                AccessRequest::Pull { federation, digest }
            }
            REQ_PUSH => AccessRequest::Push {
                federation: r.text("federation")?,
                records: records(&mut r)?,
            },
            k => return Err(SyncError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl AccessResponse {
    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            AccessResponse::Same => out.push(RESP_SAME),
            AccessResponse::Records(records) => {
                out.push(RESP_RECORDS);
                put_records(&mut out, records);
            }
            AccessResponse::Accepted(n) => {
                out.push(RESP_ACCEPTED);
                put_uint(&mut out, u64::from(*n));
            }
            AccessResponse::Refused(reason) => {
                out.push(RESP_REFUSED);
                put_bytes(&mut out, reason.as_bytes());
            }
        }
        out
    }

    /// Decodes a body; safe on any input.
    pub fn decode(buf: &[u8]) -> Result<Self, SyncError> {
        check_len(buf)?;
        let mut r = Reader { buf };
        let resp = match r.byte()? {
            RESP_SAME => AccessResponse::Same,
            RESP_RECORDS => AccessResponse::Records(records(&mut r)?),
            RESP_ACCEPTED => {
                let n = r.uint()?;
                let n = u32::try_from(n).map_err(|_| SyncError::TooLarge {
                    what: "accepted count",
                    len: n,
                    max: MAX_ACCESS_RECORDS,
                })?;
                AccessResponse::Accepted(n)
            }
            RESP_REFUSED => AccessResponse::Refused(r.text("reason")?),
            k => return Err(SyncError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let recs = vec![
            AccessRecord::Policy(vec![1, 2, 3]),
            AccessRecord::Revocation(vec![4]),
        ];
        for req in [
            AccessRequest::Pull {
                federation: "fed".into(),
                digest: [7; 32],
            },
            AccessRequest::Push {
                federation: "fed".into(),
                records: recs.clone(),
            },
        ] {
            assert_eq!(AccessRequest::decode(&req.encode()).unwrap(), req);
        }
        for resp in [
            AccessResponse::Same,
            AccessResponse::Records(recs),
            AccessResponse::Accepted(3),
            AccessResponse::Refused("no".into()),
        ] {
            assert_eq!(AccessResponse::decode(&resp.encode()).unwrap(), resp);
        }
    }

    #[test]
    fn a_huge_record_count_is_refused_before_allocation() {
        let mut body = vec![RESP_RECORDS];
        put_uint(&mut body, 1 << 40);
        assert!(matches!(
            AccessResponse::decode(&body),
            Err(SyncError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_digest_ignores_order_and_duplicates() {
        let a = AccessRecord::Policy(vec![1]);
        let b = AccessRecord::Revocation(vec![1]);
        assert_eq!(
            access_digest(&[a.clone(), b.clone()]),
            access_digest(&[b.clone(), a.clone(), a.clone()])
        );
        assert_ne!(access_digest(&[a]), access_digest(&[b]));
    }
}
