//! The node's two sled databases and the name of every tree in them, so no part opens another
//! part's trees or picks a name that clashes with one.
//!
//! - `index/` ([`Index`]): derived state that `shubnet repair` rebuilds from `blobs/` and `log/`;
//!   shared by the store, the registry and the usage counts, each through its own tree set.
//! - `accounts/` ([`Accounts`]): user tokens and private collections, which nothing can rebuild,
//!   so they live apart and survive the loss of the index.
//!
//! Owns opening the databases and the tree names (versioned: a format change gets a new tree
//! instead of misreading an old one). Must not read or write records: their encodings belong to
//! the parts that own the trees.

use std::path::Path;

/// Store: block CID + root CID → where the block's bytes are (`store::tables::block_key`).
const BLOCKS: &str = "blocks-1";
/// Store: root CID → `store::tables::RootRecord`: the blob exists and is indexed.
const ROOTS: &str = "roots-1";
/// Store: root CID → pin time (unix seconds, big-endian u64).
const PINS: &str = "pins-1";
/// Store: root CID → unix seconds until which unpinned content is kept (deleted images).
const RETAINED: &str = "retained-1";
/// Store: root CID → unix seconds when every leaf of its blob last hashed to its CID (at
/// import, on receipt, or by the scrub); absent means the blob is hashed as it is read.
const VERIFIED: &str = "verified-1";
/// Registry: roster version (u64 big-endian) → signed roster encoding.
const ROSTERS: &str = "rosters-1";
/// Registry: manifest CID → signed manifest encoding.
const MANIFESTS: &str = "manifests-1";
/// Registry: `collection/name:tag` → CID of the head manifest.
const HEADS: &str = "heads-1";
/// Registry: `root CID ‖ 0x00 ‖ collection` → (): which collections publish each content root.
const ROOT_COLLECTIONS: &str = "root-collections-1";
/// Registry: the one roster version waiting for more admin signatures.
const PENDING: &str = "pending-roster-1";
/// Usage: root CID bytes → downloads (u64 big-endian).
const DOWNLOADS: &str = "downloads-1";
/// Usage: `reference ‖ 0x00 ‖ user` → ().
const STARS: &str = "stars-1";
/// Usage: `peer id ‖ 0x00 ‖ root CID bytes` → downloads that member announced (u64 BE).
const ANNOUNCED: &str = "announced-downloads-1";
/// Accounts: sha256(token) → token record (JSON).
const TOKENS: &str = "tokens-1";
/// Accounts: collection name → collection record (JSON).
const COLLECTIONS: &str = "collections-1";
/// Signed collection policies by collection name (`access`).
const POLICIES: &str = "policies-1";
/// Signed revocations by capability id and signing key (`access`).
const REVOCATIONS: &str = "revocations-1";
/// Capabilities this node issued, by id (`access`): what `token list` shows and `revoke` needs.
const ISSUED: &str = "issued-1";

/// How much of the index sled may cache in memory.
const INDEX_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// The index database (`index/`), handing each part only its own trees.
#[derive(Clone, Debug)]
pub struct Index {
    db: sled::Db,
}

/// The content store's trees.
#[derive(Debug)]
pub struct StoreTrees {
    /// Where each block's bytes are.
    pub blocks: sled::Tree,
    /// The stored images.
    pub roots: sled::Tree,
    /// The pinned images.
    pub pins: sled::Tree,
    /// Unpinned images kept until a deadline.
    pub retained: sled::Tree,
    /// Blobs whose leaves were all hashed against their CIDs, and when.
    pub verified: sled::Tree,
}

/// The registry's trees.
#[derive(Debug)]
pub struct RegistryTrees {
    /// Roster versions.
    pub rosters: sled::Tree,
    /// Accepted manifests.
    pub manifests: sled::Tree,
    /// Tag heads.
    pub heads: sled::Tree,
    /// The roster version waiting for signatures.
    pub pending: sled::Tree,
    /// Which collections publish each content root.
    pub root_collections: sled::Tree,
}

/// The usage counts' trees.
#[derive(Debug)]
pub struct UsageTrees {
    /// Downloads served here.
    pub downloads: sled::Tree,
    /// Stars given by users.
    pub stars: sled::Tree,
    /// Download totals other members announced.
    pub announced: sled::Tree,
}

impl Index {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, sled::Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(INDEX_CACHE_BYTES)
            .open()?;
        Ok(Self { db })
    }

    /// An index that lives only as long as the handle, for tests that rebuild from `log/`.
    #[cfg(test)]
    pub fn temporary() -> Result<Self, sled::Error> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(Self { db })
    }

    /// The content store's trees.
    pub fn store_trees(&self) -> Result<StoreTrees, sled::Error> {
        Ok(StoreTrees {
            blocks: self.db.open_tree(BLOCKS)?,
            roots: self.db.open_tree(ROOTS)?,
            pins: self.db.open_tree(PINS)?,
            retained: self.db.open_tree(RETAINED)?,
            verified: self.db.open_tree(VERIFIED)?,
        })
    }

    /// The registry's trees.
    pub fn registry_trees(&self) -> Result<RegistryTrees, sled::Error> {
        Ok(RegistryTrees {
            rosters: self.db.open_tree(ROSTERS)?,
            manifests: self.db.open_tree(MANIFESTS)?,
            heads: self.db.open_tree(HEADS)?,
            pending: self.db.open_tree(PENDING)?,
            root_collections: self.db.open_tree(ROOT_COLLECTIONS)?,
        })
    }

    /// The usage counts' trees.
    pub fn usage_trees(&self) -> Result<UsageTrees, sled::Error> {
        Ok(UsageTrees {
            downloads: self.db.open_tree(DOWNLOADS)?,
            stars: self.db.open_tree(STARS)?,
            announced: self.db.open_tree(ANNOUNCED)?,
        })
    }

    /// Writes everything buffered to disk, off the async threads.
    pub async fn flush_async(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(drop)
    }

    /// Writes everything buffered to disk, blocking.
    pub fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush().map(drop)
    }
}

/// The accounts database (`accounts/`): tokens and private collections.
#[derive(Clone, Debug)]
pub struct Accounts {
    db: sled::Db,
}

/// The token store's trees.
#[derive(Debug)]
pub struct AccountTrees {
    /// Token records by the hash of the token.
    pub tokens: sled::Tree,
    /// Collection settings by name.
    pub collections: sled::Tree,
}

/// The access state's trees: signed records that replicate, and the grants this node issued.
#[derive(Debug)]
pub struct AccessTrees {
    /// Signed collection policies by collection name.
    pub policies: sled::Tree,
    /// Signed revocations by capability id then signing key.
    pub revocations: sled::Tree,
    /// Capabilities this node issued, by id.
    pub issued: sled::Tree,
}

impl Accounts {
    /// Opens (creating if needed) the accounts database at `path`.
    pub fn open(path: &Path) -> Result<Self, sled::Error> {
        Ok(Self {
            db: sled::Config::new().path(path).open()?,
        })
    }

    /// The token store's trees.
    pub fn trees(&self) -> Result<AccountTrees, sled::Error> {
        Ok(AccountTrees {
            tokens: self.db.open_tree(TOKENS)?,
            collections: self.db.open_tree(COLLECTIONS)?,
        })
    }

    /// The federation access state's trees.
    pub fn access_trees(&self) -> Result<AccessTrees, sled::Error> {
        Ok(AccessTrees {
            policies: self.db.open_tree(POLICIES)?,
            revocations: self.db.open_tree(REVOCATIONS)?,
            issued: self.db.open_tree(ISSUED)?,
        })
    }

    /// Writes everything buffered to disk.
    pub fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush().map(drop)
    }

    /// Every tree with its name, for tests that scan the whole database for leaked secrets.
    #[cfg(test)]
    pub fn every_tree(&self) -> Vec<(String, sled::Tree)> {
        self.db
            .tree_names()
            .into_iter()
            .map(|n| {
                let tree = self.db.open_tree(&n).expect("tree");
                (String::from_utf8_lossy(&n).into_owned(), tree)
            })
            .collect()
    }
}
