//! `/shubnet/badleaf/1`: a fetcher tells a holder that a leaf it sent did not hash to its CID,
//! so the holder re-checks its copy at once instead of waiting for its scrub.
//!
//! A new protocol rather than a new kind of fetch frame, so a node that does not know it refuses
//! the stream by name and nothing else changes. One report per stream:
//!
//! - fetcher → holder: `varint(len) ‖ root CID ‖ varint(len) ‖ leaf CID` ([`Report`]), at most
//!   [`MAX_REPORT`] bytes;
//! - holder → fetcher: one byte, the [`Verdict`]; then the stream closes.
//!
//! The holder answers members only and rate-limits reports per peer (a report makes it read and
//! hash a leaf); this module owns the bytes only.

use crate::Cid;
use crate::varint;

/// The protocol name.
pub const PROTOCOL: &str = "/shubnet/badleaf/1";

/// Largest encoded report: two CIDs of at most 64 bytes each, with their lengths.
pub const MAX_REPORT: usize = 2 * (64 + 2);

/// A leaf of `root` that arrived damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The image.
    pub root: Cid,
    /// The leaf that did not hash to its CID.
    pub leaf: Cid,
}

/// Why a report could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    /// More than [`MAX_REPORT`] bytes.
    #[error("a bad-leaf report is at most {MAX_REPORT} bytes, got {0}")]
    TooLarge(usize),
    /// The bytes end early or a length is malformed.
    #[error("a bad-leaf report is truncated")]
    Truncated,
    /// A CID does not parse.
    #[error("a bad-leaf report names an invalid {what} CID")]
    BadCid {
        /// `root` or `leaf`.
        what: &'static str,
    },
    /// Bytes follow the report.
    #[error("a bad-leaf report has {0} trailing bytes")]
    Trailing(usize),
}

impl Report {
    /// The report's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_REPORT);
        for c in [self.root, self.leaf] {
            let b = c.to_bytes();
            varint::encode(b.len() as u64, &mut out);
            out.extend_from_slice(&b);
        }
        out
    }

    /// Decodes exactly one report.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() > MAX_REPORT {
            return Err(ReportError::TooLarge(bytes.len()));
        }
        let (root, rest) = take_cid(bytes, "root")?;
        let (leaf, rest) = take_cid(rest, "leaf")?;
        if !rest.is_empty() {
            return Err(ReportError::Trailing(rest.len()));
        }
        Ok(Report { root, leaf })
    }
}

fn take_cid<'a>(bytes: &'a [u8], what: &'static str) -> Result<(Cid, &'a [u8]), ReportError> {
    let (len, n) = varint::decode(bytes).map_err(|_| ReportError::Truncated)?;
    let len = usize::try_from(len).map_err(|_| ReportError::Truncated)?;
    let body = bytes
        .get(n..n.checked_add(len).ok_or(ReportError::Truncated)?)
        .ok_or(ReportError::Truncated)?;
    let cid = Cid::try_from(body).map_err(|_| ReportError::BadCid { what })?;
    Ok((cid, &bytes[n + len..]))
}

/// The holder's answer to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The holder's copy of the leaf hashes right (the damage was on the way, or a lie).
    Intact = 0,
    /// The copy was damaged: the blob is quarantined and a good copy is being fetched.
    Quarantined = 1,
    /// The holder does not hold that leaf of that image (any more).
    NotHeld = 2,
    /// Not checked: the peer is not a member, reported too often, or the report was malformed.
    Refused = 3,
}

impl Verdict {
    /// The answer byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The verdict a byte names; `None` for an unknown byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Verdict::Intact,
            1 => Verdict::Quarantined,
            2 => Verdict::NotHeld,
            3 => Verdict::Refused,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(seed: u8) -> Cid {
        crate::cid::cid_for(crate::cid::RAW, &[seed; 10])
    }

    #[test]
    fn a_report_round_trips_and_garbage_is_refused() {
        let r = Report {
            root: cid(1),
            leaf: cid(2),
        };
        let b = r.encode();
        assert!(b.len() <= MAX_REPORT);
        assert_eq!(Report::decode(&b), Ok(r));
        assert_eq!(
            Report::decode(&b[..b.len() - 1]),
            Err(ReportError::Truncated)
        );
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Report::decode(&long), Err(ReportError::Trailing(1)));
        assert!(matches!(
            Report::decode(&[0u8; MAX_REPORT + 1]),
            Err(ReportError::TooLarge(_))
        ));
        assert_eq!(
            Report::decode(&[3, 1, 2, 3, 1, 0]),
            Err(ReportError::BadCid { what: "root" })
        );
        for v in [
            Verdict::Intact,
            Verdict::Quarantined,
            Verdict::NotHeld,
            Verdict::Refused,
        ] {
            assert_eq!(Verdict::from_byte(v.to_byte()), Some(v));
        }
        assert_eq!(Verdict::from_byte(9), None);
    }
}
