//! `shubnet status`: what an operator checks first — is every image held by enough live nodes?
//! It reads only local state (registry, store, peer book), so it answers at once; it must not ask
//! peers or change anything.

use super::{ImageStatus, Status};
use super::{Replicator, Result, placement};

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
