//! Which nodes hold an image: rendezvous (highest-random-weight) hashing over the roster.
//!
//! Every node computes the same order from the roster and the root CID alone, so no
//! coordinator is needed, and a member joining or leaving moves only the images it ranks
//! first for. A member (institution) is ranked by its best node, so the first k picks land on
//! k distinct institutions whenever k members offer storage; only when fewer do, further nodes
//! of the same institutions fill in.

use sha2::{Digest, Sha256};
use shubnet_protocol::Cid;
use shubnet_protocol::roster::Roster;

/// One node that may hold images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its institution (member id).
    pub member: String,
    /// Its libp2p peer id, as text.
    pub peer: String,
    score: [u8; 32],
}

fn score(root: &Cid, peer: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"shubnet-placement-v1\0");
    h.update(root.to_bytes());
    h.update(peer.as_bytes());
    h.finalize().into()
}

/// Every node of every member that offers storage, best first: each member's best node in
/// score order, then the members' other nodes in score order.
pub fn order(roster: &Roster, root: &Cid) -> Vec<Candidate> {
    let mut firsts = Vec::new();
    let mut rest = Vec::new();
    for m in roster.members.iter().filter(|m| m.storage_bytes > 0) {
        let mut nodes: Vec<Candidate> = m
            .peer_ids
            .iter()
            .map(|p| Candidate {
                member: m.id.clone(),
                peer: p.clone(),
                score: score(root, p),
            })
            .collect();
        nodes.sort_by_key(|c| std::cmp::Reverse(c.score));
        let mut it = nodes.into_iter();
        if let Some(best) = it.next() {
            firsts.push(best);
        }
        rest.extend(it);
    }
    firsts.sort_by_key(|c| std::cmp::Reverse(c.score));
    rest.sort_by_key(|c| std::cmp::Reverse(c.score));
    firsts.extend(rest);
    firsts
}

/// The k nodes that should hold `root` now: the first k of [`order`] that `live` accepts.
/// A node that is down past the grace period is skipped, so the next one takes its place —
/// that is repair.
pub fn placed(roster: &Roster, root: &Cid, live: impl Fn(&str) -> bool) -> Vec<Candidate> {
    let k = roster.replication.k as usize;
    order(roster, root)
        .into_iter()
        .filter(|c| live(&c.peer))
        .take(k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shubnet_protocol::cid::{RAW, cid_for};
    use shubnet_protocol::roster::{Member, Replication};

    fn roster(members: &[(&str, &[&str], u64)], k: u32) -> Roster {
        let mut r = Roster::genesis("t", vec![[1; 32]], 1, 0);
        r.replication = Replication {
            k,
            min_institutions: 1,
        };
        for (id, peers, storage) in members {
            r.members.push(Member {
                id: (*id).into(),
                peer_ids: peers.iter().map(|p| (*p).to_string()).collect(),
                storage_bytes: *storage,
                ..Member::default()
            });
        }
        r
    }

    #[test]
    fn distinct_institutions_first_and_storage_only() {
        let r = roster(
            &[
                ("a", &["a1", "a2", "a3"], 1),
                ("b", &["b1"], 1),
                ("c", &["c1"], 0),
            ],
            2,
        );
        for n in 0..50u8 {
            let root = cid_for(RAW, &[n]);
            let p = placed(&r, &root, |_| true);
            assert_eq!(p.len(), 2);
            assert_ne!(
                p[0].member, p[1].member,
                "two institutions before a second node"
            );
            assert!(p.iter().all(|c| c.member != "c"), "c offers no storage");
        }
        // k larger than the institutions: other nodes of the same institutions fill in.
        let r3 = roster(&[("a", &["a1", "a2"], 1), ("b", &["b1"], 1)], 3);
        let p = placed(&r3, &cid_for(RAW, b"x"), |_| true);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn deterministic_and_spread() {
        let r = roster(
            &[
                ("a", &["a1"], 1),
                ("b", &["b1"], 1),
                ("c", &["c1"], 1),
                ("d", &["d1"], 1),
            ],
            1,
        );
        let mut counts = std::collections::HashMap::new();
        for n in 0..400u16 {
            let root = cid_for(RAW, &n.to_be_bytes());
            let p = placed(&r, &root, |_| true);
            assert_eq!(p, placed(&r, &root, |_| true));
            *counts.entry(p[0].member.clone()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 4);
        assert!(counts.values().all(|&c| c > 50), "{counts:?}");
    }

    #[test]
    fn a_dead_holder_is_replaced_by_the_next_and_only_its_images_move() {
        let r = roster(
            &[("a", &["a1"], 1), ("b", &["b1"], 1), ("c", &["c1"], 1)],
            2,
        );
        let mut moved = 0;
        for n in 0..100u8 {
            let root = cid_for(RAW, &[n]);
            let before = placed(&r, &root, |_| true);
            let after = placed(&r, &root, |p| p != "a1");
            assert_eq!(after.len(), 2);
            assert!(after.iter().all(|c| c.peer != "a1"));
            if before.iter().any(|c| c.peer == "a1") {
                moved += 1;
                let full = order(&r, &root);
                assert_eq!(after[1].peer, full[2].peer, "the next in order steps in");
            } else {
                assert_eq!(before, after, "images a did not hold stay put");
            }
        }
        assert!(moved > 30 && moved < 100, "{moved}");
    }
}
