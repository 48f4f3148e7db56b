//! What a fetch returns: its error and its report (per image, per holder). Plain data: it
//! must not reach the network or the store beyond naming their errors.

use crate::store::StoreError;
use serde::Serialize;
use shubnet_protocol::Cid;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No holder named, none announced, and no peer connected.
    #[error("no holder of {0} is known and no peer is connected")]
    NoHolders(Cid),
    /// Every candidate was asked; none holds the image.
    #[error("none of the {asked} peers asked holds {root}{}", detail(.reasons))]
    NotHeld {
        /// The image.
        root: Cid,
        /// How many were asked.
        asked: usize,
        /// What each said, when it was not a plain "no".
        reasons: Vec<String>,
    },
    /// Some leaves could not be fetched from anyone; what was verified is kept for a retry.
    #[error("{root}: {missing} of {total} leaves could not be fetched: {}", .reasons.join("; "))]
    Incomplete {
        /// The image.
        root: Cid,
        /// Leaves still missing.
        missing: u64,
        /// Leaves wanted.
        total: u64,
        /// Why each holder stopped.
        reasons: Vec<String>,
    },
    /// The DAG's nodes could not be obtained or do not describe a supported file.
    #[error("{0}")]
    Dag(String),
    /// The local store failed (disk full, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn detail(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    }
}

/// What one holder contributed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HolderReport {
    /// Its peer id.
    pub peer: String,
    /// Leaves it sent that were verified and kept.
    pub leaves: u64,
    /// Leaf bytes received from it (including any refused).
    pub bytes: u64,
    /// Its misbehaviour count after this transfer (wrong blocks, malformed frames).
    pub misbehaviour: u64,
    /// Why it was dropped from the transfer, if it was.
    pub dropped: Option<String>,
}

/// The outcome of a fetch, logged as JSON (`fetch report: {...}`) and returned to callers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchReport {
    /// The image.
    pub root: String,
    /// File size.
    pub size: u64,
    /// Leaves in the DAG.
    pub leaves: u64,
    /// Leaves already verified on disk before this call (a resumed transfer).
    pub already_verified: u64,
    /// Leaves fetched and verified by this call.
    pub fetched_leaves: u64,
    /// Leaf bytes received by this call.
    pub bytes_received: u64,
    /// Per holder.
    pub holders: Vec<HolderReport>,
    /// Milliseconds from the survey of holders to the last leaf verified.
    pub transfer_ms: u64,
    /// Milliseconds to make the copy a stored blob (fsync, whole-file sha256, index).
    pub store_ms: u64,
}

impl FetchReport {
    /// Logs the report as one JSON line, which `bench/transfer.sh` and operators read.
    pub(super) fn log(&self, root: &Cid) {
        let json = serde_json::to_string(self).unwrap_or_default();
        tracing::info!(%root, "fetch report: {json}");
    }
}
