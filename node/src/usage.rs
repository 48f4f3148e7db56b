//! Per-image usage: downloads served by this node and stars given by users, kept in the sled
//! index so they survive restarts.
//!
//! Downloads count per content root (several tags may name the same bytes) when an HTTP client
//! reads an image from byte 0. Stars are one per user and image reference.

use shubnet_gateway::search::Usage;
use shubnet_protocol::Cid;

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
    pub fn downloads(&self, root: &Cid) -> Result<u64, UsageError> {
        Ok(self.downloads.get(root.to_bytes())?.as_deref().map_or(0, be))
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
}
