//! Which leaves to ask which holder for: the bookkeeping of one transfer, free of I/O so it can
//! be tested alone.
//!
//! The aim is BitTorrent's: when many nodes fetch one image from a seeder at once, the seeder's
//! upload should go to leaves no other node has yet, and everything else should travel between
//! the nodes. So the schedule knows what every holder has (complete holders have everything;
//! partial holders announce bitmaps, see `Watch`), counts for each leaf how many partial holders
//! have it, and hands each worker a run of the *rarest* pending leaves its holder has.
//!
//! Runs are contiguous (file order, so writes and reads stay sequential). A worker continues
//! where its last run ended while that stays among the rarest; otherwise it jumps into the
//! longest stretch of rarest leaves: at its start if one run covers it, else at a random point,
//! so workers, and nodes that cannot see each other's requests in flight, start far apart and
//! rarely ask a seeder for the same leaf.
//! In streaming mode (an on-demand read) leaves go strictly in file order instead.
//!
//! It must not do I/O, hold leaf bytes or verify anything: the workers in `client` move and
//! check the leaves and report back here.

use libp2p::PeerId;
use shubnet_protocol::fetch::Holding;
use std::collections::{BTreeSet, HashMap};

/// The state of one transfer's schedule.
#[derive(Debug)]
pub struct Schedule {
    pending: BTreeSet<u64>,
    inflight: usize,
    holders: HashMap<PeerId, Holding>,
    /// Per leaf, how many partial holders have it (complete holders are not counted).
    avail: Vec<u32>,
    streaming: bool,
    run_leaves: u64,
}

/// One worker's place in the schedule: where its last run ended, and its random state.
#[derive(Debug, Clone)]
pub struct Cursor {
    next: Option<u64>,
    /// Rarity of the leaves of the last run: continuing is fine while the next leaf is as rare.
    rarity: u32,
    rng: u64,
}

impl Cursor {
    /// A cursor with its own random sequence (seed it differently per worker and per node).
    pub fn new(seed: u64) -> Self {
        Self {
            next: None,
            rarity: 0,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Schedule {
    /// A schedule for the `wanted` leaves of an image of `leaves` leaves, asking at most
    /// `run_leaves` leaves per request; `streaming` keeps file order.
    pub fn new(leaves: u64, wanted: BTreeSet<u64>, run_leaves: u64, streaming: bool) -> Self {
        Self {
            pending: wanted,
            inflight: 0,
            holders: HashMap::new(),
            avail: vec![0; leaves as usize],
            streaming,
            run_leaves: run_leaves.max(1),
        }
    }

    /// Records what `peer` holds now, replacing what it held before.
    pub fn set_holding(&mut self, peer: PeerId, h: Holding) {
        let old = self.holders.insert(peer, h);
        let new = self.holders.get(&peer);
        let bits = |h: Option<&Holding>| match h {
            Some(Holding::Partial { bitmap, .. }) => Some(bitmap.clone()),
            _ => None,
        };
        let (old, new) = (bits(old.as_ref()), bits(new));
        if old == new {
            return;
        }
        let n = self.avail.len();
        let byte = |b: &Option<Vec<u8>>, k: usize| b.as_ref().and_then(|v| v.get(k)).copied();
        let bytes = n.div_ceil(8);
        for k in 0..bytes {
            let (o, w) = (byte(&old, k).unwrap_or(0), byte(&new, k).unwrap_or(0));
            if o == w {
                continue;
            }
            for bit in 0..8 {
                let i = k * 8 + bit;
                if i >= n {
                    break;
                }
                let (had, has) = (o & (1 << bit) != 0, w & (1 << bit) != 0);
                if has && !had {
                    self.avail[i] += 1;
                } else if had && !has {
                    self.avail[i] = self.avail[i].saturating_sub(1);
                }
            }
        }
    }

    /// What `peer` holds, as last recorded.
    pub fn holding(&self, peer: &PeerId) -> Option<&Holding> {
        self.holders.get(peer)
    }

    /// Takes a run of pending leaves that `peer` has, marking it in flight: `(first, count)`.
    pub fn take(&mut self, peer: &PeerId, cur: &mut Cursor) -> Option<(u64, u64)> {
        let h = self.holders.get(peer)?;
        let first = if self.streaming {
            self.pending.iter().copied().find(|&i| h.has(i))?
        } else {
            let cont = cur.next.filter(|&c| {
                self.pending.contains(&c) && h.has(c) && self.avail[c as usize] <= cur.rarity
            });
            match cont {
                Some(c) => c,
                None => {
                    let (rarity, first) = self.jump(h, cur)?;
                    cur.rarity = rarity;
                    first
                }
            }
        };
        let rarity = cur.rarity.max(self.avail[first as usize]);
        let mut count = 1;
        while count < self.run_leaves {
            let i = first + count;
            if !(self.pending.contains(&i) && h.has(i))
                || (!self.streaming && self.avail[i as usize] > rarity)
            {
                break;
            }
            count += 1;
        }
        for i in first..first + count {
            self.pending.remove(&i);
        }
        self.inflight += 1;
        cur.next = Some(first + count);
        Some((first, count))
    }

    /// The rarity of the rarest pending leaves `h` has, and where to start in the longest
    /// stretch of them: its start if one run covers it, else a random point of it.
    fn jump(&self, h: &Holding, cur: &mut Cursor) -> Option<(u32, u64)> {
        let rarity = self
            .pending
            .iter()
            .filter(|&&i| h.has(i))
            .map(|&i| self.avail[i as usize])
            .min()?;
        // Longest run of consecutive pending leaves of that rarity that `h` has.
        let (mut best, mut run): ((u64, u64), Option<(u64, u64)>) = ((0, 0), None);
        for &i in &self.pending {
            if !(h.has(i) && self.avail[i as usize] == rarity) {
                continue;
            }
            run = match run {
                Some((s, len)) if s + len == i => Some((s, len + 1)),
                _ => Some((i, 1)),
            };
            if let Some((s, len)) = run
                && len > best.1
            {
                best = (s, len);
            }
        }
        let (start, len) = best;
        // A stretch one run covers is taken whole; a longer one from a random point of it.
        if len <= self.run_leaves {
            return Some((rarity, start));
        }
        Some((rarity, start + cur.random() % len))
    }

    /// Ends a run: its leaves that `done` does not accept (not verified) are pending again.
    pub fn give_back(&mut self, first: u64, count: u64, done: impl Fn(u64) -> bool) {
        for i in first..first + count {
            if !done(i) {
                self.pending.insert(i);
            }
        }
        self.inflight = self.inflight.saturating_sub(1);
    }

    /// True when nothing is pending or in flight.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.inflight == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(n: u64, has: impl Fn(u64) -> bool) -> Holding {
        let mut bits = vec![0u8; n.div_ceil(8) as usize];
        for i in (0..n).filter(|&i| has(i)) {
            bits[(i / 8) as usize] |= 1 << (i % 8);
        }
        Holding::Partial {
            leaves: n,
            bitmap: bits,
        }
    }

    #[test]
    fn a_seeder_is_asked_for_what_no_partial_holder_has() {
        let n = 100;
        let mut s = Schedule::new(n, (0..n).collect(), 8, false);
        let (seed, peer) = (PeerId::random(), PeerId::random());
        s.set_holding(seed, Holding::Complete);
        s.set_holding(peer, bitmap(n, |i| i < 50));
        let mut c = Cursor::new(7);
        for _ in 0..6 {
            let (first, count) = s.take(&seed, &mut c).expect("a run");
            assert!(first >= 50, "the seeder was asked for leaf {first}");
            assert!(first + count <= n);
        }
        // The partial holder is asked for what it has.
        let mut c = Cursor::new(9);
        let (first, count) = s.take(&peer, &mut c).expect("a run");
        assert!(first + count <= 50);
    }

    #[test]
    fn workers_start_apart_and_continue_in_order() {
        let n = 1000;
        let mut s = Schedule::new(n, (0..n).collect(), 16, false);
        let seed = PeerId::random();
        s.set_holding(seed, Holding::Complete);
        let (mut a, mut b) = (Cursor::new(1), Cursor::new(2));
        let (fa, ca) = s.take(&seed, &mut a).expect("a run");
        let (fb, _) = s.take(&seed, &mut b).expect("a run");
        assert_ne!(fa, fb);
        let (next, _) = s.take(&seed, &mut a).expect("a run");
        assert_eq!(next, fa + ca, "a worker continues where it left off");
    }

    #[test]
    fn every_leaf_is_taken_once_and_given_back_if_not_verified() {
        let n = 77;
        let mut s = Schedule::new(n, (0..n).collect(), 5, false);
        let seed = PeerId::random();
        s.set_holding(seed, Holding::Complete);
        let mut c = Cursor::new(3);
        let mut seen = BTreeSet::new();
        let mut runs = Vec::new();
        while let Some((f, k)) = s.take(&seed, &mut c) {
            for i in f..f + k {
                assert!(seen.insert(i), "leaf {i} taken twice");
            }
            runs.push((f, k));
        }
        assert_eq!(seen.len() as u64, n);
        assert!(!s.is_done());
        // One run fails halfway: its unverified leaves come back.
        let (f, k) = runs[0];
        s.give_back(f, k, |i| i < f + k / 2);
        for (f, k) in runs.into_iter().skip(1) {
            s.give_back(f, k, |_| true);
        }
        let again = s.take(&seed, &mut c).expect("the failed leaves again");
        assert_eq!(again, (f + k / 2, k - k / 2));
        s.give_back(again.0, again.1, |_| true);
        assert!(s.is_done());
    }

    #[test]
    fn streaming_goes_in_file_order_and_holdings_update_counts() {
        let n = 40;
        let mut s = Schedule::new(n, (10..n).collect(), 4, true);
        let p = PeerId::random();
        s.set_holding(p, bitmap(n, |i| i >= 20));
        let mut c = Cursor::new(5);
        assert_eq!(s.take(&p, &mut c), Some((20, 4)));
        s.set_holding(p, bitmap(n, |i| i >= 10));
        assert_eq!(s.avail[10], 1);
        assert_eq!(s.take(&p, &mut c), Some((10, 4)));
        s.set_holding(p, Holding::None);
        assert!(s.avail.iter().all(|&a| a == 0));
        assert_eq!(s.take(&p, &mut c), None);
    }
}
