//! Single use of sregistry HMAC signatures. The signed message names only the kind, the image
//! and the hour, so a captured `Authorization` header would otherwise work again until its hour
//! leaves the acceptance window. Every accepted signature is remembered until then, and a second
//! use is refused.
//!
//! A signature is spent when the request it authorized succeeds; a request that fails after the
//! check (a truncated upload, a refused push) gives it back, so the client's retry still works.
//! Memory is bounded: at most [`MAX_REMEMBERED`] signatures; when that many are live, new signed
//! requests are refused (503) rather than forgetting one early, which would reopen its replay.
//!
//! It must not check signatures or tokens: `auth` does, and only then asks here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Most signatures remembered at once (about 100 bytes each).
pub const MAX_REMEMBERED: usize = 65_536;

#[derive(Debug, Default)]
struct Inner {
    /// Signature → the Unix second its hour leaves the acceptance window.
    live: HashMap<[u8; 32], u64>,
    /// The same entries in insertion order, for expiry; an entry given back stays here until it
    /// expires, and is skipped then if the map no longer holds that expiry.
    order: VecDeque<([u8; 32], u64)>,
}

/// The signatures used within their acceptance window.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    inner: Arc<Mutex<Inner>>,
}

/// Why a signature may not be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This signature was already used.
    Replayed,
    /// [`MAX_REMEMBERED`] signatures are live.
    Full,
}

impl Seen {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `signature` used until `until` (Unix seconds), unless it is already. The
    /// returned guard gives it back when dropped without [`Spent::keep`].
    pub fn spend(&self, signature: [u8; 32], until: u64, now: u64) -> Result<Spent, Refusal> {
        let mut g = self.lock();
        let inner = &mut *g;
        while let Some(&(sig, exp)) = inner.order.front() {
            if exp > now {
                break;
            }
            inner.order.pop_front();
            if inner.live.get(&sig) == Some(&exp) {
                inner.live.remove(&sig);
            }
        }
        if inner.live.get(&signature).is_some_and(|&exp| exp > now) {
            return Err(Refusal::Replayed);
        }
        if inner.live.len() >= MAX_REMEMBERED || inner.order.len() >= 2 * MAX_REMEMBERED {
            return Err(Refusal::Full);
        }
        inner.live.insert(signature, until);
        inner.order.push_back((signature, until));
        Ok(Spent {
            seen: self.clone(),
            signature,
            kept: false,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().live.len()
    }
}

/// A signature reserved for one request.
#[derive(Debug)]
#[must_use = "a dropped reservation gives the signature back"]
pub struct Spent {
    seen: Seen,
    signature: [u8; 32],
    kept: bool,
}

impl Spent {
    /// The request succeeded: the signature stays used until its window ends.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        if !self.kept {
            self.seen.lock().live.remove(&self.signature);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_signature_is_refused_until_its_window_ends() {
        let seen = Seen::default();
        seen.spend([1; 32], 100, 10).expect("first use").keep();
        assert_eq!(seen.spend([1; 32], 100, 50).err(), Some(Refusal::Replayed));
        seen.spend([2; 32], 100, 50)
            .expect("another signature")
            .keep();
        seen.spend([1; 32], 200, 100)
            .expect("after the window")
            .keep();
    }

    #[test]
    fn a_failed_request_gives_the_signature_back() {
        let seen = Seen::default();
        drop(seen.spend([1; 32], 100, 10).expect("first use"));
        seen.spend([1; 32], 100, 11).expect("the retry").keep();
        assert_eq!(seen.spend([1; 32], 100, 12).err(), Some(Refusal::Replayed));
    }

    #[test]
    fn memory_is_bounded_and_expired_entries_free_it() {
        let seen = Seen::default();
        for i in 0..MAX_REMEMBERED as u32 {
            let mut sig = [0u8; 32];
            sig[..4].copy_from_slice(&i.to_le_bytes());
            seen.spend(sig, 100, 1).expect("room").keep();
        }
        assert_eq!(seen.spend([0xff; 32], 100, 2).err(), Some(Refusal::Full));
        seen.spend([0xff; 32], 300, 100)
            .expect("expired entries freed")
            .keep();
        assert_eq!(seen.len(), 1);
    }
}
