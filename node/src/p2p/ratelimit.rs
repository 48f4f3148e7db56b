//! Per-node token buckets, so an institution can cap what it gives the federation (upload) and
//! what it takes (download), in bytes per second. One bucket per direction is shared by every
//! transfer of that direction; a limit of 0 means unlimited. It only paces callers: it must not
//! refuse or drop a transfer, and it keeps no per-peer state.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How much may be spent at once after an idle period: a quarter second of the rate, at least
/// one largest block, so a single leaf never waits forever.
const BURST_SECONDS: f64 = 0.25;
const MIN_BURST: f64 = 2.0 * 1024.0 * 1024.0;

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

/// A shared token bucket; clones share it.
#[derive(Debug, Clone, Default)]
pub struct RateLimit(Option<Arc<Mutex<Bucket>>>);

impl RateLimit {
    /// A bucket refilled at `bytes_per_sec`; 0 is unlimited.
    pub fn new(bytes_per_sec: u64) -> Self {
        if bytes_per_sec == 0 {
            return Self(None);
        }
        let rate = bytes_per_sec as f64;
        let burst = (rate * BURST_SECONDS).max(MIN_BURST);
        Self(Some(Arc::new(Mutex::new(Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }))))
    }

    /// True if no limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.0.is_none()
    }

    /// Waits until `bytes` may pass, then takes them. The bucket may go into debt, so a
    /// request larger than the burst passes and later ones wait it off.
    pub async fn acquire(&self, bytes: usize) {
        let Some(b) = &self.0 else { return };
        let wait = {
            let mut b = b.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let refill = now.duration_since(b.at).as_secs_f64() * b.rate;
            b.tokens = (b.tokens + refill).min(b.burst);
            b.at = now;
            b.tokens -= bytes as f64;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / b.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The node's two buckets.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Everything this node sends on fetch/1 and Bitswap.
    pub upload: RateLimit,
    /// Everything the fetch client receives.
    pub download: RateLimit,
}

impl Limits {
    /// Buckets for the given rates (0 = unlimited).
    pub fn new(upload: u64, download: u64) -> Self {
        Self {
            upload: RateLimit::new(upload),
            download: RateLimit::new(download),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limit_holds_the_rate() {
        let l = RateLimit::new(4 * 1024 * 1024);
        let start = Instant::now();
        // 2 MiB burst, then 6 MiB at 4 MiB/s: at least 1.5 s.
        for _ in 0..8 {
            l.acquire(1024 * 1024).await;
        }
        let t = start.elapsed();
        assert!(t >= Duration::from_millis(1400), "{t:?}");
        assert!(t < Duration::from_secs(4), "{t:?}");
        let free = RateLimit::new(0);
        assert!(free.is_unlimited());
        free.acquire(usize::MAX).await;
    }
}
