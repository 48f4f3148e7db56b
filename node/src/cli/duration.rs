//! Durations as operators type them on the command line (`90s`, `30m`, `2h`, `30d`).
//!
//! Owns only the parsing; it must not know which option takes a duration.

use std::time::Duration;

/// Text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration like 90s, 30m, 2h or 30d")]
pub struct DurationError(String);

/// Parses `90s`, `30m`, `2h`, `30d` or plain seconds.
pub(super) fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let (num, mult) = match t.chars().last() {
        Some('s') => (&t[..t.len() - 1], 1),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('h') => (&t[..t.len() - 1], 3600),
        Some('d') => (&t[..t.len() - 1], 86_400),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError(text.to_string()))
}
