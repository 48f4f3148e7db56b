//! What search, listings and usage counts exchange between the gateway and the node: the
//! query, the hits (summaries kept in the node's in-memory index, so a search page never
//! decodes a manifest) and the per-image usage (downloads, stars). Plain data: it must not
//! search, count or do I/O; the node's index and usage store do.

use serde::{Deserialize, Serialize};

/// Largest page of hits a client may ask for.
pub const MAX_LIMIT: usize = 200;

/// A search over every image the node knows in the federation. All given criteria must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// Free text: every word must appear in the reference, a label, or the definition file
    /// (case-insensitive). Words of the reference also match as substrings.
    #[serde(default)]
    pub q: String,
    /// Exact collection.
    #[serde(default)]
    pub collection: Option<String>,
    /// Name substring.
    #[serde(default)]
    pub name: Option<String>,
    /// Exact tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Label key (case-insensitive).
    #[serde(default)]
    pub label_key: Option<String>,
    /// Label value (case-insensitive); with or without a key.
    #[serde(default)]
    pub label_value: Option<String>,
    /// Hits to skip.
    #[serde(default)]
    pub offset: usize,
    /// Hits to return (at most [`MAX_LIMIT`]; 0 means 20).
    #[serde(default)]
    pub limit: usize,
}

impl SearchQuery {
    /// The page size to use.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => 20,
            n => n.min(MAX_LIMIT),
        }
    }
}

/// One image (tag head) as listings show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHit {
    /// `collection/name:tag`.
    pub reference: String,
    /// Collection.
    pub collection: String,
    /// Name.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// CID of the head manifest.
    pub manifest: String,
    /// Content root CID.
    #[serde(with = "crate::cid::text")]
    pub root: crate::Cid,
    /// Bytes.
    pub size: u64,
    /// sha256 hex.
    pub sha256: String,
    /// Unix seconds of the push.
    pub created: u64,
    /// The tag can never move.
    pub frozen: bool,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// Downloads (this node's count plus what other members announced).
    pub downloads: u64,
    /// Stars.
    pub stars: u64,
}

/// One page of hits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    /// Hits matching in all.
    pub total: usize,
    /// This page, sorted by reference.
    pub hits: Vec<ImageHit>,
}

/// A collection as the collections list shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSummary {
    /// The collection name.
    pub name: String,
    /// Live images (tags).
    pub images: usize,
    /// Bytes of those images.
    pub size: u64,
    /// Unix seconds of the newest push.
    pub updated: u64,
}

/// Usage of one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Downloads.
    pub downloads: u64,
    /// Stars.
    pub stars: u64,
}
