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

/// The result of `shubnet scrub`: every stored blob re-hashed against its CIDs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    /// Blobs checked.
    pub checked: u64,
    /// Leaves hashed.
    pub leaves: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Root CIDs of damaged blobs, moved to `quarantine/`.
    pub damaged: Vec<String>,
    /// Of those, the ones whose good copy was fetched again from another member.
    pub refetched: Vec<String>,
    /// Of those, the ones not fetched again yet, each with the reason.
    pub not_refetched: Vec<String>,
}

impl ScrubReport {
    /// True when no blob was damaged.
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
        /// The founding institution's public gateway URL, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<String>,
    },
    /// Admit a newcomer from its join request line.
    Admit {
        /// The line `shubnet federation request` printed.
        request: String,
        /// Bytes of storage the newcomer offers.
        storage: u64,
        /// The newcomer's public gateway URL, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<String>,
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

/// What a federation admin action did, as `POST /admin/v1/federation` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FederationOutcome {
    /// A roster change (admit, admins, sign, remove-node): accepted or waiting for signatures.
    Roster(RosterChange),
    /// The node now trusts federation `id` at roster `version`.
    Joined {
        /// The federation id.
        id: String,
        /// The newest roster version taken.
        version: u64,
    },
    /// A federation was founded.
    Created {
        /// The new federation's id.
        id: String,
    },
}

/// A new roster version, either current now or waiting for more admin signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum RosterChange {
    /// Enough signatures: this version is current.
    Accepted {
        /// The roster version.
        version: u64,
        /// The signed roster as one line of text.
        roster: String,
    },
    /// The other admins must co-sign the line before it takes effect.
    Pending {
        /// The roster version.
        version: u64,
        /// Signatures present.
        signatures: usize,
        /// Signatures needed.
        needed: u32,
        /// The partially signed roster as one line of text, for `shubnet federation sign`.
        roster: String,
    },
}

/// The node's view of the federation's replication health (`GET /admin/v1/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// The federation id, if the node has joined one.
    pub federation: Option<String>,
    /// The roster version the node trusts.
    pub roster_version: Option<u64>,
    /// Replication factor k from the roster.
    pub replication_factor: u32,
    /// Peers with an open connection.
    pub connected_peers: Vec<String>,
    /// True while this node is leaving the federation (`shubnet leave`).
    pub leaving: bool,
    /// Why `/readyz` fails now (for example, no member connected); `None` when ready.
    pub not_ready: Option<String>,
    /// Every live image, under-replicated first.
    pub images: Vec<ImageStatus>,
}

/// One image's holders against its target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageStatus {
    /// Tags naming this content (`collection/name:tag`).
    pub tags: Vec<String>,
    /// Root CID.
    pub root: String,
    /// Size in bytes.
    pub size: u64,
    /// Holders wanted (k).
    pub target: u32,
    /// Live nodes known to hold a complete pinned copy (this node included).
    pub replicas: usize,
    /// Those nodes' peer ids.
    pub holders: Vec<String>,
    /// Known holders not seen within the grace period.
    pub unreachable_holders: Vec<String>,
    /// Where placement puts it now (peer ids, best first).
    pub placed: Vec<String>,
    /// True when this node holds a pinned copy.
    pub local: bool,
    /// True when `replicas < target`.
    pub under_replicated: bool,
}

/// How far a node's hand-over is (`/admin/v1/leave`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveProgress {
    /// This node's peer id.
    pub peer_id: String,
    /// True while the node is leaving.
    pub leaving: bool,
    /// Replication factor k from the roster (0 outside a federation).
    pub target: u32,
    /// Images this node holds.
    pub images: Vec<LeaveImage>,
    /// How many of them still lack k holders elsewhere.
    pub pending: usize,
    /// Images that can never reach k without this node (too few other nodes offer storage).
    pub impossible: usize,
    /// True when leaving and every image has k holders on other nodes.
    pub done: bool,
    /// True when this node's admin key may sign the roster change that removes it (alone,
    /// if the threshold is 1).
    pub admin: bool,
}

/// One image a leaving node holds, against the holders it has elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveImage {
    /// Tags naming it.
    pub tags: Vec<String>,
    /// Root CID.
    pub root: String,
    /// Size in bytes.
    pub size: u64,
    /// Live nodes other than this one (and not leaving) that announced a complete copy.
    pub other_holders: Vec<String>,
    /// Nodes other than this one that offer storage and could hold it.
    pub candidates: usize,
    /// True when `other_holders` reaches the target.
    pub ready: bool,
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    /// The CLI tells the three answers apart by their fields, so each must come back as itself.
    #[test]
    fn federation_outcomes_round_trip_as_themselves() {
        for o in [
            FederationOutcome::Created {
                id: "bafyfed".into(),
            },
            FederationOutcome::Joined {
                id: "bafyfed".into(),
                version: 3,
            },
            FederationOutcome::Roster(RosterChange::Accepted {
                version: 2,
                roster: "shubnet-roster-v1.x".into(),
            }),
            FederationOutcome::Roster(RosterChange::Pending {
                version: 4,
                signatures: 1,
                needed: 2,
                roster: "shubnet-roster-v1.y".into(),
            }),
        ] {
            let text = serde_json::to_string(&o).unwrap();
            let back: FederationOutcome = serde_json::from_str(&text).unwrap();
            assert_eq!(back, o, "{text}");
        }
        let pending = serde_json::to_value(FederationOutcome::Roster(RosterChange::Pending {
            version: 4,
            signatures: 1,
            needed: 2,
            roster: "r".into(),
        }))
        .unwrap();
        assert_eq!(pending["status"], "pending");
        assert_eq!(pending["needed"], 2);
    }
}
