//! `shubnet leave`: a node hands its images to the other members before it departs.
//!
//! The node announces over gossip that it is leaving, and repeats it while it drains. Every
//! node then computes placement without it (it cannot be chosen, exactly as if it were down),
//! so the next nodes in rendezvous order fetch its images — the repair path — while the
//! leaving node still serves them. The node itself stops taking new copies. It is done when
//! every image it holds has k holders among the other live, staying nodes; only then does the
//! CLI remove it from the roster (or print the command an admin runs) and stop it. Nothing is
//! ever unpinned here, so a leave that is cancelled or times out loses nothing. It must not
//! change the roster or stop the node: it only reports progress, and the CLI acts on it.

use super::{LeaveImage, LeaveProgress};
use super::{Replicator, Result, placement};
use libp2p::PeerId;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the leaving node repeats its announcement.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(3);

/// The least time another node keeps honouring a leaving announcement without a repeat.
const MIN_LEAVING_TTL: Duration = Duration::from_secs(300);

impl Replicator {
    /// How long another node's leaving announcement counts without a repeat: at least the
    /// grace period, so a departed node goes straight from "leaving" to "down".
    pub(super) fn leaving_ttl(&self) -> Duration {
        self.grace().max(MIN_LEAVING_TTL)
    }

    /// True while this node is leaving.
    pub fn is_leaving(&self) -> bool {
        self.inner.leaving.load(Ordering::SeqCst)
    }

    /// True if `peer` announced that it is leaving.
    pub(super) fn peer_is_leaving(&self, peer: &PeerId) -> bool {
        self.inner.book.is_leaving(peer, self.leaving_ttl())
    }

    /// Starts leaving: from now on placement skips this node everywhere. Survives a restart
    /// (a marker file) until the leave is cancelled.
    pub fn start_leaving(&self) -> std::io::Result<()> {
        let marker = self.inner.store.dir().leaving_marker();
        crate::durable::replace(
            &marker,
            b"shubnet leave in progress\n",
            crate::durable::Mode::Shared,
        )
        .map_err(|e| e.source)?;
        if !self.inner.leaving.swap(true, Ordering::SeqCst) {
            tracing::info!("leaving the federation: handing images over to the other members");
        }
        self.announce_leaving(true);
        self.nudge();
        Ok(())
    }

    /// Stays after all: placement counts this node again once the others' marks lapse.
    pub fn cancel_leaving(&self) -> std::io::Result<()> {
        let marker = self.inner.store.dir().leaving_marker();
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if self.inner.leaving.swap(false, Ordering::SeqCst) {
            tracing::info!("leave cancelled: this node holds and takes images again");
        }
        self.nudge();
        Ok(())
    }

    /// Repeats the announcement if due (or now, with `force`).
    pub(super) fn announce_leaving(&self, force: bool) {
        if !self.is_leaving() {
            return;
        }
        let mut last = self
            .inner
            .leave_announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if force || last.is_none_or(|t| t.elapsed() >= ANNOUNCE_EVERY) {
            *last = Some(Instant::now());
            self.inner.transfers.announce_leaving();
        }
    }

    /// The hand-over's progress; reads only local state (and repeats the announcement).
    pub fn leave_progress(&self) -> Result<LeaveProgress> {
        self.announce_leaving(false);
        let me = self.inner.me;
        let leaving = self.is_leaving();
        let mut out = LeaveProgress {
            peer_id: me.to_string(),
            leaving,
            target: 0,
            images: Vec::new(),
            pending: 0,
            impossible: 0,
            done: false,
            admin: false,
        };
        let Some(roster) = self.inner.registry.roster()? else {
            out.done = leaving;
            return Ok(out);
        };
        let roster = roster.body;
        out.admin = roster.is_admin(&self.inner.registry.keys().admin.verifying_key().to_bytes());
        let k = roster.replication.k;
        out.target = k;
        let (live, _) = self.images()?;
        for (root, img) in live {
            if self.inner.store.root_record(&root)?.is_none() {
                continue;
            }
            let mut others: Vec<String> = self
                .inner
                .book
                .holders_of(&root)
                .into_iter()
                .filter(|p| {
                    *p != me && self.inner.book.is_live(p, self.grace()) && !self.peer_is_leaving(p)
                })
                .map(|p| p.to_string())
                .collect();
            others.sort();
            let candidates = placement::order(&roster, &root)
                .into_iter()
                .filter(|c| {
                    c.peer != me.to_string()
                        && c.peer
                            .parse::<PeerId>()
                            .is_ok_and(|p| !self.peer_is_leaving(&p))
                })
                .count();
            let ready = others.len() >= k as usize;
            if !ready {
                out.pending += 1;
                if candidates.max(others.len()) < k as usize {
                    out.impossible += 1;
                }
            }
            out.images.push(LeaveImage {
                tags: img.tags,
                root: root.to_string(),
                size: img.size,
                other_holders: others,
                candidates,
                ready,
            });
        }
        out.images
            .sort_by(|a, b| a.ready.cmp(&b.ready).then(a.tags.cmp(&b.tags)));
        out.done = leaving && out.pending == 0;
        Ok(out)
    }
}
