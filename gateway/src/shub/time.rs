//! The clock as the shub and library APIs read it; the UTC formats are the protocol's.
//!
//! It only formats: it must not decide which hours a signature may carry (that is `auth`).

pub use shubnet_protocol::time::{hour_stamp, rfc3339};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
