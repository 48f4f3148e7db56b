//! HTTP conditional and range requests (RFC 9110 §13, §14) for immutable content.
//!
//! Only what clients of an image registry send is implemented: one `bytes` range in any of its
//! three forms, `If-Range` with an entity tag, and `If-None-Match`. A request for several ranges
//! gets the whole representation with 200, which RFC 9110 §14.2 allows and which spares us
//! `multipart/byteranges`. A syntactically invalid `Range` is ignored (200), as §14.2 requires.
//!
//! It parses and decides; it must not read content.

use axum::http::HeaderMap;
use axum::http::header::{IF_NONE_MATCH, IF_RANGE, RANGE};

/// How much of a representation of `size` bytes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// All of it, 200.
    Full,
    /// Bytes `start..end` (end exclusive, `start < end <= size`), 206.
    Partial {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Nothing can be sent for the asked range, 416.
    Unsatisfiable,
}

/// Decides what to send for a representation whose entity tag is `etag` (quoted).
pub(crate) fn select(headers: &HeaderMap, etag: &str, size: u64) -> Selection {
    let mut ranges = headers.get_all(RANGE).iter();
    let (Some(value), None) = (ranges.next(), ranges.next()) else {
        return Selection::Full;
    };
    if let Some(cond) = headers.get(IF_RANGE) {
        // Only a strong entity tag can validate a range; we have no Last-Modified date.
        if cond.as_bytes() != etag.as_bytes() {
            return Selection::Full;
        }
    }
    let Ok(text) = value.to_str() else {
        return Selection::Full;
    };
    parse(text, size)
}

/// Interprets one `Range` header value against a size.
fn parse(text: &str, size: u64) -> Selection {
    let Some((unit, set)) = text.trim().split_once('=') else {
        return Selection::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Selection::Full;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        // Empty or multiple ranges: serve the whole representation.
        return Selection::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Selection::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = digits(last) else {
            return Selection::Full;
        };
        if n == 0 || size == 0 {
            return Selection::Unsatisfiable;
        }
        return Selection::Partial {
            start: size.saturating_sub(n),
            end: size,
        };
    }
    let Some(start) = digits(first) else {
        return Selection::Full;
    };
    let last = if last.is_empty() {
        None
    } else {
        match digits(last) {
            Some(l) if l >= start => Some(l),
            _ => return Selection::Full,
        }
    };
    if start >= size {
        return Selection::Unsatisfiable;
    }
    let end = last.map_or(size, |l| l.saturating_add(1).min(size));
    Selection::Partial { start, end }
}

/// A non-negative decimal without sign or spaces.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What `If-None-Match` says about a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoneMatch {
    /// No header, or no tag in it matches.
    No,
    /// One of the listed tags matches ours (weak comparison, RFC 9110 §13.1.2).
    Tag,
    /// `*`: matches if the content exists at all.
    Any,
}

/// Evaluates `If-None-Match` against our quoted entity tag.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> NoneMatch {
    let ours = etag.trim_start_matches("W/");
    let mut any = false;
    for value in headers.get_all(IF_NONE_MATCH) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for tag in text.split(',').map(str::trim) {
            if tag == "*" {
                any = true;
            } else if tag.trim_start_matches("W/") == ours {
                return NoneMatch::Tag;
            }
        }
    }
    if any { NoneMatch::Any } else { NoneMatch::No }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // a failed expectation is the test failure
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sel(range: &str, size: u64) -> Selection {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(range).expect("test header"));
        select(&h, "\"x\"", size)
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(
            sel("bytes=2-5", 10),
            Selection::Partial { start: 2, end: 6 }
        );
        assert_eq!(
            sel("bytes=7-", 10),
            Selection::Partial { start: 7, end: 10 }
        );
        assert_eq!(
            sel("bytes=-3", 10),
            Selection::Partial { start: 7, end: 10 }
        );
        assert_eq!(
            sel("bytes=-30", 10),
            Selection::Partial { start: 0, end: 10 }
        );
        assert_eq!(
            sel("bytes=2-500", 10),
            Selection::Partial { start: 2, end: 10 }
        );
        assert_eq!(
            sel("BYTES = 0-0", 10),
            Selection::Partial { start: 0, end: 1 }
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(sel("bytes=10-", 10), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=10-20", 10), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=-0", 10), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=0-", 0), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=-5", 0), Selection::Unsatisfiable);
    }

    #[test]
    fn invalid_or_multiple_ranges_serve_everything() {
        for r in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=",
            "0-1",
        ] {
            assert_eq!(sel(r, 10), Selection::Full, "{r}");
        }
    }

    #[test]
    fn if_range_must_match_the_strong_etag() {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_static("bytes=0-1"));
        h.insert(IF_RANGE, HeaderValue::from_static("\"x\""));
        assert_eq!(
            select(&h, "\"x\"", 10),
            Selection::Partial { start: 0, end: 2 }
        );
        h.insert(IF_RANGE, HeaderValue::from_static("\"y\""));
        assert_eq!(select(&h, "\"x\"", 10), Selection::Full);
        h.insert(IF_RANGE, HeaderValue::from_static("W/\"x\""));
        assert_eq!(select(&h, "\"x\"", 10), Selection::Full);
    }

    #[test]
    fn none_match_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(if_none_match(&h, "\"a\""), NoneMatch::No);
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"b\", W/\"a\""));
        assert_eq!(if_none_match(&h, "\"a\""), NoneMatch::Tag);
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"b\""));
        assert_eq!(if_none_match(&h, "\"a\""), NoneMatch::No);
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_none_match(&h, "\"a\""), NoneMatch::Any);
    }
}
