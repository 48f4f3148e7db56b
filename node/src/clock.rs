//! Wall-clock seconds, for the timestamps stored in pins, tokens, manifests and file names.
//! It only reads the system clock: it keeps no state and must not panic on a clock set before
//! 1970, which reads as 0.

/// Seconds since the Unix epoch; 0 if the clock is before it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
