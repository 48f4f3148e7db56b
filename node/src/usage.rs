//! Per-image usage: downloads served by this node and stars given by users, kept in the sled
//! index so they survive restarts, plus the download counts other members announce.
//!
//! Downloads count per content root (several tags may name the same bytes) when an HTTP client
//! reads an image from byte 0. Stars are one per user and image reference.
//!
//! Federation-wide downloads: every node gossips its own running totals every
//! [`ANNOUNCE_EVERY`] (`Announcement::Usage`); each receiver keeps the latest total per
//! (member node, root) in memory and shows its own count plus those. The counts are advisory
//! and unsigned, so they are bounded: a total above [`MAX_COUNT`] is ignored, a node may report
//! at most [`MAX_ROOTS_PER_PEER`] roots, and a total never goes down (a restarted peer's smaller
//! number cannot erase what it reported before).

use shubnet_gateway::search::Usage;
use shubnet_protocol::Cid;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a node announces its download totals.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);
/// Largest believable download total for one image from one node.
pub const MAX_COUNT: u64 = 1 << 40;
/// Most roots remembered per announcing node.
pub const MAX_ROOTS_PER_PEER: usize = 1_000_000;

/// sled tree: root CID bytes → downloads (u64 big-endian).
const DOWNLOADS: &str = "downloads-1";
/// sled tree: `reference ‖ 0x00 ‖ user` → ().
const STARS: &str = "stars-1";

/// Why a usage update failed.
#[derive(Debug, thiserror::Error)]
#[error("usage index: {0}")]
pub struct UsageError(#[from] sled::Error);

/// A cheap-to-clone handle on the usage trees.
#[derive(Debug, Clone)]
pub struct UsageStore {
    downloads: sled::Tree,
    stars: sled::Tree,
    /// Announced totals: peer id → root → downloads.
    remote: Arc<Mutex<HashMap<String, HashMap<Cid, u64>>>>,
}

fn be(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl UsageStore {
    /// Opens the trees in the node's index database.
    pub fn open(db: &sled::Db) -> Result<Self, UsageError> {
        Ok(Self {
            downloads: db.open_tree(DOWNLOADS)?,
            stars: db.open_tree(STARS)?,
            remote: Arc::default(),
        })
    }

    /// Counts one download of `root`.
    pub fn count_download(&self, root: &Cid) -> Result<u64, UsageError> {
        let n = self.downloads.update_and_fetch(root.to_bytes(), |old| {
            Some((old.map_or(0, be) + 1).to_be_bytes().to_vec())
        })?;
        Ok(n.as_deref().map_or(0, be))
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
        let mut out = Vec::new();
        for item in self.downloads.iter() {
            let (k, v) = item?;
            if let Ok(c) = Cid::try_from(k.as_ref()) {
                out.push((c, be(&v)));
            }
        }
        Ok(out)
    }

    /// Records totals announced by member node `peer`; returns how many were taken. Totals
    /// above [`MAX_COUNT`] and roots beyond [`MAX_ROOTS_PER_PEER`] are dropped; a total never
    /// decreases.
    pub fn record_announced(&self, peer: &str, totals: &[(Cid, u64)]) -> usize {
        let mut remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = remote.entry(peer.to_owned()).or_default();
        let mut taken = 0;
        for (root, n) in totals {
            if *n > MAX_COUNT || (mine.len() >= MAX_ROOTS_PER_PEER && !mine.contains_key(root)) {
                continue;
            }
            let e = mine.entry(*root).or_insert(0);
            *e = (*e).max(*n);
            taken += 1;
        }
        taken
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

/// Announces this node's download totals over gossip every [`ANNOUNCE_EVERY`], in messages of
/// at most `MAX_USAGE_ENTRIES` roots.
pub fn spawn_announcer(usage: UsageStore, net: crate::p2p::Network) {
    tokio::spawn(async move {
        let mut last: HashMap<Cid, u64> = HashMap::new();
        loop {
            tokio::time::sleep(ANNOUNCE_EVERY).await;
            let u = usage.clone();
            let Ok(Ok(totals)) = tokio::task::spawn_blocking(move || u.local_totals()).await else {
                continue;
            };
            // Only what changed since the last round (receivers keep the latest totals).
            let changed: Vec<(Cid, u64)> = totals
                .into_iter()
                .filter(|(c, n)| last.get(c) != Some(n))
                .collect();
            for chunk in changed.chunks(shubnet_protocol::sync::MAX_USAGE_ENTRIES) {
                net.announce_usage(chunk.to_vec());
            }
            last.extend(changed);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_add_up_and_stars_are_one_per_user() {
        let tmp = tempfile::tempdir().expect("tmp");
        let db = sled::open(tmp.path()).expect("sled");
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
        let db = sled::open(tmp.path()).expect("sled");
        let u = UsageStore::open(&db).expect("open");
        let root = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"x");
        u.count_download(&root).expect("count");
        assert_eq!(u.record_announced("peer-b", &[(root, 5)]), 1);
        assert_eq!(u.record_announced("peer-c", &[(root, 3)]), 1);
        assert_eq!(u.downloads(&root).expect("downloads"), 1 + 5 + 3);
        // Re-announcing replaces that peer's total; a smaller one is ignored.
        u.record_announced("peer-b", &[(root, 6)]);
        u.record_announced("peer-b", &[(root, 2)]);
        assert_eq!(u.downloads(&root).expect("downloads"), 1 + 6 + 3);
        // An absurd total is dropped.
        assert_eq!(u.record_announced("peer-d", &[(root, MAX_COUNT + 1)]), 0);
        assert_eq!(u.downloads(&root).expect("downloads"), 10);
        assert_eq!(u.local_totals().expect("totals"), vec![(root, 1)]);
    }
}
