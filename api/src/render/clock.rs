//! Calendar formatting of unix times (UTC) without a date library.

/// `(year, month 1..=12, day 1..=31)` of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `(year, month, day, hour, minute, second)` of unix seconds.
fn split(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// RFC 3339 UTC, e.g. `2024-04-26T07:04:17Z` (cilium's ExpirationTime column).
pub(crate) fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = split(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Hubble's time column, Go layout `Jan _2 15:04:05.000`, UTC.
pub(crate) fn hubble(ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, mo, d, h, mi, s) = split(ms / 1000);
    let month = MONTHS[(mo - 1) as usize];
    format!("{month} {d:>2} {h:02}:{mi:02}:{s:02}.{:03}", ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2024-02-29 (leap day) 12:34:56 UTC
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(hubble(1_709_210_096_007), "Feb 29 12:34:56.007");
        // 2025-06-05 03:04:05 UTC: single-digit day is space-padded like Go's `_2`.
        assert_eq!(hubble(1_749_092_645_120), "Jun  5 03:04:05.120");
    }
}
