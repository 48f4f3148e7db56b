//! `shubnet status`: what an operator checks first — is every image held by enough live nodes?
//! It reads only local state (registry, store, peer book), so it answers at once; it must not ask
//! peers or change anything.

use super::{Replicator, Result, placement};
use serde::Serialize;

/// The node's view of the federation's replication health.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

impl Replicator {
    /// The status report; reads only local state, so it answers at once.
    pub fn status(&self) -> Result<Status> {
        let reg = &self.inner.registry;
        let roster = reg.roster()?.map(|r| r.body);
        let me = self.inner.me.to_string();
        let mut images = Vec::new();
        if let Some(roster) = &roster {
            let (live, _) = self.images()?;
            for (root, img) in live {
                let local = self.inner.store.root_record(&root)?.is_some()
                    && self.inner.store.is_pinned(&root)?;
                let mut holders = Vec::new();
                let mut unreachable = Vec::new();
                if local {
                    holders.push(me.clone());
                }
                for p in self.inner.book.holders_of(&root) {
                    if p == self.inner.me {
                        continue;
                    }
                    if self.inner.book.is_live(&p, self.grace()) {
                        holders.push(p.to_string());
                    } else {
                        unreachable.push(p.to_string());
                    }
                }
                let target = roster.replication.k;
                let placed = placement::placed(roster, &root, |p| self.is_live(p))
                    .into_iter()
                    .map(|c| c.peer)
                    .collect();
                images.push(ImageStatus {
                    under_replicated: holders.len() < target as usize,
                    replicas: holders.len(),
                    tags: img.tags,
                    root: root.to_string(),
                    size: img.size,
                    target,
                    holders,
                    unreachable_holders: unreachable,
                    placed,
                    local,
                });
            }
        }
        images.sort_by(|a, b| {
            b.under_replicated
                .cmp(&a.under_replicated)
                .then(a.replicas.cmp(&b.replicas))
                .then_with(|| a.tags.cmp(&b.tags))
        });
        let mut connected: Vec<String> = self
            .inner
            .book
            .connected_peers()
            .iter()
            .map(ToString::to_string)
            .collect();
        connected.sort();
        Ok(Status {
            peer_id: me,
            federation: reg.federation_id(),
            roster_version: roster.as_ref().map(|r| r.version),
            replication_factor: roster.as_ref().map_or(0, |r| r.replication.k),
            connected_peers: connected,
            not_ready: None,
            leaving: self.is_leaving(),
            images,
        })
    }
}
