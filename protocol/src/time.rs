//! Unix times as the UTC strings clients and people read, without a date library. Pure: the
//! clock is read by the caller.

/// (year, month, day, hour, minute, second) of a Unix time, UTC (Howard Hinnant's algorithm).
fn civil(t: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

/// `%Y%m%dT%HZ`, the sregistry HMAC timestamp.
pub fn hour_stamp(t: u64) -> String {
    let (y, m, d, h, _, _) = civil(t);
    format!("{y:04}{m:02}{d:02}T{h:02}Z")
}

/// RFC 3339 with microseconds, as DRF renders dates (`2024-05-01T12:00:00.000000Z`).
pub fn rfc3339(t: u64) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000000Z")
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as the CLI shows times.
pub fn utc(t: u64) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(hour_stamp(0), "19700101T00Z");
        // 2026-11-25T18:30:00Z
        assert_eq!(hour_stamp(1_795_631_400), "20261125T18Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00.000000Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
