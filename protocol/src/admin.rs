//! The plain types the node admin API carries as JSON, shared by the gateway that serves them and
//! the `shubnet` CLI that decodes them. Types only: no I/O, no HTTP.

use crate::Cid;
use serde::{Deserialize, Serialize};

/// The result of adding a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOutcome {
    /// Root CID (CIDv1, base32), as `ipfs add --cid-version=1` prints it.
    #[serde(with = "crate::cid::text")]
    pub cid: Cid,
    /// File length in bytes.
    pub size: u64,
    /// Whole-file sha256, hex.
    pub sha256: String,
    /// Whether the content is now pinned.
    pub pinned: bool,
}

/// `POST /admin/v1/fetch`: what to fetch and from whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Root CID.
    pub cid: String,
    /// Peers to ask, as libp2p multiaddrs ending in `/p2p/PEER_ID`.
    pub peers: Vec<String>,
}

/// The result of importing a CAR file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarImportOutcome {
    /// The file DAG roots that were stored, each pinned.
    pub roots: Vec<AddOutcome>,
    /// Blocks read and verified.
    pub blocks: u64,
}

/// The result of a garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Root CIDs whose content was removed.
    #[serde(with = "crate::cid::text_list")]
    pub removed: Vec<Cid>,
    /// Bytes of blob files freed.
    pub freed_bytes: u64,
}

/// The result of checking the store and rebuilding its index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// Blob files checked against their CIDs.
    pub checked: u64,
    /// Blobs whose bytes did not hash to their name; moved aside to `quarantine/`.
    pub damaged: Vec<String>,
    /// Blocks written into the rebuilt index.
    pub indexed_blocks: u64,
    /// Leftover temporary files from interrupted writes that were removed.
    pub removed_partials: u64,
}

impl RepairReport {
    /// True when nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// One pinned root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// Root CID.
    #[serde(with = "crate::cid::text")]
    pub cid: Cid,
    /// File length in bytes.
    pub size: u64,
}

/// What the CLI asks of the federation through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FederationRequest {
    /// Found a federation with this node as first admin and member.
    Create {
        /// Federation display name.
        name: String,
        /// This node's institution id.
        institution: String,
        /// Collection patterns this institution publishes.
        namespaces: Vec<String>,
        /// Bytes of storage this node offers.
        storage: u64,
        /// Replication factor k; the roster default when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replication: Option<u32>,
        /// Fewest distinct institutions among the k holders; the roster default when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_institutions: Option<u32>,
    },
    /// Admit a newcomer from its join request line.
    Admit {
        /// The line `shubnet federation request` printed.
        request: String,
        /// Bytes of storage the newcomer offers.
        storage: u64,
    },
    /// Change the admin set or the signature threshold (a new roster version).
    Admins {
        /// Admin public keys (hex) to add.
        add: Vec<String>,
        /// Admin public keys (hex) to remove.
        remove: Vec<String>,
        /// New threshold, if changing.
        threshold: Option<u32>,
    },
    /// Co-sign a pending roster version.
    Sign {
        /// The roster line `admit` printed.
        roster: String,
    },
    /// Remove one node from the roster (after it ran `shubnet leave`); its institution stays.
    RemoveNode {
        /// The node's libp2p peer id.
        peer_id: String,
    },
    /// Trust federation `id` and take its roster chain (signed encodings, base64url).
    Join {
        /// The federation id.
        id: String,
        /// Signed roster encodings, base64url without padding, oldest first.
        rosters: Vec<String>,
    },
}

/// The result of a push or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// CID of the signed manifest.
    pub manifest: String,
    /// `collection/name:tag`.
    pub reference: String,
    /// Content root CID; absent for a tombstone.
    pub root: Option<String>,
    /// File size.
    pub size: u64,
    /// sha256 hex.
    pub sha256: String,
    /// The manifest's seq.
    pub seq: u64,
}
