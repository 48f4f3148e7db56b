//! Encodings of recently read tag heads, so the manifest route that every `shub://` pull and
//! listing client hits first does not walk sled's page cache per request.
//!
//! Correctness rests on one rule: a reader may only insert what it read if no head changed
//! since it started reading. Every head change bumps a generation and drops the tag's entry;
//! a reader captures the generation before its sled reads and inserts only if it is unchanged,
//! so a read that raced a change can never leave a stale head in the cache.
//!
//! Owns only memory. Must not read sled itself (the registry hands it what it read).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Entries kept; the map is emptied when it fills (hot tags come straight back).
const CAPACITY: usize = 4096;

/// The cache. Cheap to share behind the registry's `Arc`.
#[derive(Debug, Default)]
pub(super) struct HeadCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    map: HashMap<String, Arc<[u8]>>,
}

impl HeadCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached encoding of the head at `key`.
    pub(super) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.state().map.get(key).cloned()
    }

    /// The generation to pass to [`Self::insert`] for a read that starts now.
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Keeps `bytes` as the head at `key`, unless a head changed since `generation`.
    pub(super) fn insert(&self, generation: u64, key: String, bytes: &[u8]) {
        let mut s = self.state();
        if s.generation != generation {
            return;
        }
        if s.map.len() >= CAPACITY {
            s.map.clear();
        }
        s.map.insert(key, Arc::from(bytes));
    }

    /// Forgets the head at `key` (call after the new head is written).
    pub(super) fn invalidate(&self, key: &str) {
        let mut s = self.state();
        s.generation += 1;
        s.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let c = HeadCache::default();
        let g = c.generation();
        c.insert(g, "a/b:c".into(), b"v1");
        assert_eq!(c.get("a/b:c").as_deref(), Some(&b"v1"[..]));
        // A reader starts, a writer changes the head, the reader finishes with the old bytes.
        let g = c.generation();
        c.invalidate("a/b:c");
        c.insert(g, "a/b:c".into(), b"v1");
        assert!(c.get("a/b:c").is_none(), "a stale head was cached");
        let g = c.generation();
        c.insert(g, "a/b:c".into(), b"v2");
        assert_eq!(c.get("a/b:c").as_deref(), Some(&b"v2"[..]));
    }

    #[test]
    fn it_stays_bounded() {
        let c = HeadCache::default();
        for i in 0..CAPACITY * 2 + 1 {
            let g = c.generation();
            c.insert(g, format!("c/n:{i}"), b"x");
        }
        assert!(c.state().map.len() <= CAPACITY);
    }
}
