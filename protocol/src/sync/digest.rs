//! The digests both sides of a sync compare: the manifest set's [`BUCKETS`] buckets and the
//! order-free digest of download totals. Pure hashing; it must not know about the wire format.

use super::BUCKETS;
use crate::Cid;
use sha2::{Digest, Sha256};

/// One bucket of the manifest set: how many CIDs and the XOR of their hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    /// Manifests in the bucket.
    pub count: u32,
    /// XOR of `sha256(cid bytes)` over the bucket.
    pub digest: [u8; 32],
}

/// The bucket index and hash of one manifest CID.
pub fn bucket_of(cid: &Cid) -> (u8, [u8; 32]) {
    let h: [u8; 32] = Sha256::digest(cid.to_bytes()).into();
    (h[0], h)
}

/// Digests of a whole manifest set, built one CID at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Exactly [`BUCKETS`] buckets.
    pub buckets: Vec<Bucket>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }
}

impl Summary {
    /// Adds one CID (adding the same CID twice cancels it out; callers add each once).
    pub fn add(&mut self, cid: &Cid) {
        let (i, h) = bucket_of(cid);
        let b = &mut self.buckets[usize::from(i)];
        b.count = b.count.saturating_add(1);
        for (d, x) in b.digest.iter_mut().zip(h) {
            *d ^= x;
        }
    }

    /// Indices of buckets that differ from `other` (all of them if `other` is malformed).
    pub fn differing(&self, other: &[Bucket]) -> Vec<u8> {
        (0..BUCKETS)
            .filter(|&i| other.get(i) != self.buckets.get(i))
            .filter_map(|i| u8::try_from(i).ok())
            .collect()
    }
}

/// One `(root, downloads)` total's share of a [`usage_digest`].
pub fn usage_term(root: &Cid, downloads: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(root.to_bytes());
    h.update(downloads.to_be_bytes());
    h.finalize().into()
}

/// The digest of a set of download totals: the XOR of their [`usage_term`]s (zero for none).
/// Order-free, so a node keeps it current by XOR-ing out a root's old term and in its new one.
pub fn usage_digest<'a>(totals: impl IntoIterator<Item = &'a (Cid, u64)>) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (c, n) in totals {
        xor_into(&mut d, &usage_term(c, *n));
    }
    d
}

/// `acc ^= x`, bytewise.
pub fn xor_into(acc: &mut [u8; 32], x: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a ^= b;
    }
}
