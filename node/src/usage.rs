//! Per-image usage: downloads served by this node and stars given by users, kept in the sled
//! index so they survive restarts, plus the download counts other members announce.
//!
//! Downloads count per content root (several tags may name the same bytes) when an HTTP client
//! reads an image from byte 0. Stars are one per user and image reference.
//!
//! Federation-wide downloads: every node gossips the running totals that changed, every
//! announce interval (`[p2p] usage_announce_secs`, default [`ANNOUNCE_EVERY`];
//! `Announcement::Usage`). Sync is the anti-entropy path that does not depend on gossip: every
//! sync summary carries a digest of the server's totals, and a member pulls them
//! (`Request::Usage`) whenever that digest differs from the one it last pulled. Each receiver
//! keeps the latest total per (member node, root), in memory and in sled (a restart forgets
//! nothing), and
//! shows its own count plus those. Each node reports only the downloads it served itself and a
//! receiver keeps one total per reporting node, so repeats never count twice. The counts are
//! advisory and unsigned, so they are bounded: a total above [`MAX_COUNT`] is ignored, a node may
//! report at most [`MAX_ROOTS_PER_PEER`] roots, and a total never goes down (a restarted peer's
//! smaller number cannot erase what it reported before).
//!
//! Owns the usage trees of the index ([`crate::db::UsageTrees`]) and their encodings. Must not
//! open other trees or send anything on the network (the announcer does that).

use shubnet_protocol::Cid;
use shubnet_protocol::search::Usage;
use shubnet_protocol::sync::{usage_digest, usage_term, xor_into};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a node announces its changed download totals, unless configured.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);
/// Largest believable download total for one image from one node.
pub const MAX_COUNT: u64 = 1 << 40;
/// Most roots remembered per announcing node.
pub const MAX_ROOTS_PER_PEER: usize = 1_000_000;

/// Why a usage update failed.
#[derive(Debug, thiserror::Error)]
#[error("usage index: {0}")]
pub struct UsageError(#[from] sled::Error);

/// A cheap-to-clone handle on the usage trees.
#[derive(Debug, Clone)]
pub struct UsageStore {
    downloads: sled::Tree,
    stars: sled::Tree,
    /// The announced totals on disk (the map below is their cache).
    announced: sled::Tree,
    /// Announced totals: peer id → root → downloads.
    remote: Arc<Mutex<HashMap<String, HashMap<Cid, u64>>>>,
    /// `usage_digest` of this node's own totals, kept current by every count: sync summaries
    /// carry it so members pull the totals only when they changed.
    digest: Arc<Mutex<[u8; 32]>>,
}

fn be(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl UsageStore {
    /// Opens the usage trees of the node's index and loads what members announced before.
    pub fn open(index: &crate::db::Index) -> Result<Self, UsageError> {
        let trees = index.usage_trees()?;
        let announced = trees.announced;
        let mut remote: HashMap<String, HashMap<Cid, u64>> = HashMap::new();
        for item in announced.iter() {
            let (k, v) = item?;
            let Some(sep) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let (Ok(peer), Ok(root)) =
                (std::str::from_utf8(&k[..sep]), Cid::try_from(&k[sep + 1..]))
            else {
                continue;
            };
            remote
                .entry(peer.to_owned())
                .or_default()
                .insert(root, be(&v).min(MAX_COUNT));
        }
        let store = Self {
            downloads: trees.downloads,
            stars: trees.stars,
            announced,
            remote: Arc::new(Mutex::new(remote)),
            digest: Arc::default(),
        };
        *store.digest.lock().unwrap_or_else(PoisonError::into_inner) =
            usage_digest(&store.local_totals()?);
        Ok(store)
    }

    /// Counts one download of `root`.
    pub fn count_download(&self, root: &Cid) -> Result<u64, UsageError> {
        let n = self.downloads.update_and_fetch(root.to_bytes(), |old| {
            Some((old.map_or(0, be) + 1).to_be_bytes().to_vec())
        })?;
        let n = n.as_deref().map_or(0, be);
        // Each count moves one root from n-1 to n; XOR is order-free, so concurrent counts
        // still leave the digest of the final totals.
        let mut d = self.digest.lock().unwrap_or_else(PoisonError::into_inner);
        if n > 1 {
            xor_into(&mut d, &usage_term(root, n - 1));
        }
        xor_into(&mut d, &usage_term(root, n));
        Ok(n)
    }

    /// The digest of this node's own totals (`shubnet_protocol::sync::usage_digest`).
    pub fn digest(&self) -> [u8; 32] {
        *self.digest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Downloads of `root` served here.
    pub fn local_downloads(&self, root: &Cid) -> Result<u64, UsageError> {
        Ok(self
            .downloads
            .get(root.to_bytes())?
            .as_deref()
            .map_or(0, be))
    }

    /// Downloads of `root` across the federation: this node's plus what members announced.
    pub fn downloads(&self, root: &Cid) -> Result<u64, UsageError> {
        let remote: u64 = self
            .remote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|m| m.get(root))
            .fold(0u64, |a, n| a.saturating_add(*n));
        Ok(self.local_downloads(root)?.saturating_add(remote))
    }

    /// This node's totals, for its announcements.
    pub fn local_totals(&self) -> Result<Vec<(Cid, u64)>, UsageError> {
        self.local_totals_after(None, usize::MAX)
    }

    /// At most `limit` of this node's totals, for roots after `after` in byte order (one page
    /// of a sync answer).
    pub fn local_totals_after(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<Vec<(Cid, u64)>, UsageError> {
        let iter = match after {
            Some(c) => self.downloads.range((
                std::ops::Bound::Excluded(c.to_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.downloads.iter(),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if let Ok(c) = Cid::try_from(k.as_ref()) {
                out.push((c, be(&v)));
            }
        }
        Ok(out)
    }

    /// Records totals announced by member node `peer`; returns how many were taken. Totals
    /// above [`MAX_COUNT`] and roots beyond [`MAX_ROOTS_PER_PEER`] are dropped; a total never
    /// decreases. Raised totals are written to sled before this returns.
    pub fn record_announced(&self, peer: &str, totals: &[(Cid, u64)]) -> Result<usize, UsageError> {
        let mut batch = sled::Batch::default();
        let mut taken = 0;
        {
            let mut remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
            let mine = remote.entry(peer.to_owned()).or_default();
            for (root, n) in totals {
                if *n > MAX_COUNT || (mine.len() >= MAX_ROOTS_PER_PEER && !mine.contains_key(root))
                {
                    continue;
                }
                taken += 1;
                let e = mine.entry(*root).or_insert(0);
                if *n > *e {
                    *e = *n;
                    let mut k = peer.as_bytes().to_vec();
                    k.push(0);
                    k.extend_from_slice(&root.to_bytes());
                    batch.insert(k, n.to_be_bytes().to_vec());
                }
            }
        }
        self.announced.apply_batch(batch)?;
        Ok(taken)
    }

    fn star_prefix(reference: &str) -> Vec<u8> {
        let mut k = reference.as_bytes().to_vec();
        k.push(0);
        k
    }

    /// Stars of `reference`.
    pub fn stars(&self, reference: &str) -> Result<u64, UsageError> {
        let mut n = 0;
        for item in self.stars.scan_prefix(Self::star_prefix(reference)).keys() {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Sets or clears `user`'s star on `reference`.
    pub fn set_star(&self, reference: &str, user: &str, on: bool) -> Result<(), UsageError> {
        let mut k = Self::star_prefix(reference);
        k.extend_from_slice(user.as_bytes());
        if on {
            self.stars.insert(k, &[])?;
        } else {
            self.stars.remove(k)?;
        }
        Ok(())
    }

    /// Usage of the image `reference` whose content is `root`.
    pub fn usage(&self, reference: &str, root: Option<&Cid>) -> Result<Usage, UsageError> {
        Ok(Usage {
            downloads: root.map(|r| self.downloads(r)).transpose()?.unwrap_or(0),
            stars: self.stars(reference)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_add_up_and_stars_are_one_per_user() {
        let tmp = tempfile::tempdir().expect("tmp");
        let db = crate::db::Index::open(tmp.path()).expect("sled");
        let u = UsageStore::open(&db).expect("open");
        let root = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"x");
        assert_eq!(u.count_download(&root).expect("count"), 1);
        assert_eq!(u.count_download(&root).expect("count"), 2);
        u.set_star("c/n:t", "alice", true).expect("star");
        u.set_star("c/n:t", "alice", true).expect("star again");
        u.set_star("c/n:t", "bob", true).expect("star");
        u.set_star("c/n:tt", "carol", true).expect("other image");
        assert_eq!(
            u.usage("c/n:t", Some(&root)).expect("usage"),
            Usage {
                downloads: 2,
                stars: 2
            }
        );
        u.set_star("c/n:t", "bob", false).expect("unstar");
        assert_eq!(u.stars("c/n:t").expect("stars"), 1);
    }

    #[test]
    fn announced_totals_add_up_are_bounded_and_never_go_down() {
        let tmp = tempfile::tempdir().expect("tmp");
        let db = crate::db::Index::open(tmp.path()).expect("sled");
        let u = UsageStore::open(&db).expect("open");
        let root = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"x");
        u.count_download(&root).expect("count");
        assert_eq!(u.record_announced("peer-b", &[(root, 5)]).expect("rec"), 1);
        assert_eq!(u.record_announced("peer-c", &[(root, 3)]).expect("rec"), 1);
        assert_eq!(u.downloads(&root).expect("downloads"), 1 + 5 + 3);
        // Re-announcing replaces that peer's total; a smaller one is ignored.
        u.record_announced("peer-b", &[(root, 6)]).expect("rec");
        u.record_announced("peer-b", &[(root, 2)]).expect("rec");
        assert_eq!(u.downloads(&root).expect("downloads"), 1 + 6 + 3);
        // An absurd total is dropped.
        assert_eq!(
            u.record_announced("peer-d", &[(root, MAX_COUNT + 1)])
                .expect("rec"),
            0
        );
        assert_eq!(u.downloads(&root).expect("downloads"), 10);
        assert_eq!(u.local_totals().expect("totals"), vec![(root, 1)]);
        assert_eq!(
            u.digest(),
            shubnet_protocol::sync::usage_digest(&u.local_totals().expect("totals"))
        );
        // What members announced survives a reopen (a restart), and stays bounded by max.
        drop(u);
        let u = UsageStore::open(&db).expect("reopen");
        assert_eq!(u.downloads(&root).expect("downloads"), 10);
        u.record_announced("peer-b", &[(root, 4)]).expect("rec");
        assert_eq!(u.downloads(&root).expect("downloads"), 10);
    }

    #[test]
    fn local_totals_page_in_root_order() {
        let tmp = tempfile::tempdir().expect("tmp");
        let db = crate::db::Index::open(tmp.path()).expect("sled");
        let u = UsageStore::open(&db).expect("open");
        let mut roots: Vec<Cid> = (0u32..5)
            .map(|i| shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, &i.to_le_bytes()))
            .collect();
        for (i, r) in roots.iter().enumerate() {
            for _ in 0..=i {
                u.count_download(r).expect("count");
            }
        }
        roots.sort_by_key(|c| c.to_bytes());
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = u.local_totals_after(after.as_ref(), 2).expect("page");
            got.extend(page.iter().map(|(c, _)| *c));
            if page.len() < 2 {
                break;
            }
            after = page.last().map(|(c, _)| *c);
        }
        assert_eq!(got, roots);
        assert_eq!(
            u.local_totals()
                .expect("all")
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
            1 + 2 + 3 + 4 + 5
        );
        // The running digest matches one computed from the totals, and survives a reopen.
        let want = shubnet_protocol::sync::usage_digest(&u.local_totals().expect("all"));
        assert_eq!(u.digest(), want);
        drop(u);
        assert_eq!(UsageStore::open(&db).expect("reopen").digest(), want);
    }
}
