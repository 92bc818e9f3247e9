//! RFC 3339 timestamps (the CloudEvent `time`) as `SystemTime`, without a
//! date-time crate in every build.

use std::time::{Duration, SystemTime};

/// Parses `2026-01-02T03:04:05.123Z` or `…+02:00`; `None` when it is not
/// RFC 3339 or before 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = bytes.get(range)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes.get(at) != Some(&byte))
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let scaled = format!("{:0<9}", &fraction[..digits.min(9)]);
        nanos = scaled.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let parse = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
            };
            let (hours, minutes) = (parse(*h1, *h2)?, parse(*m1, *m2)?);
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> Option<(u64, u32)> {
        parse_rfc3339(text).map(|t| {
            let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            (since.as_secs(), since.subsec_nanos())
        })
    }

    #[test]
    fn reads_utc_offsets_and_fractions() {
        assert_eq!(seconds("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(seconds("2026-01-02T03:04:05Z"), Some((1_767_323_045, 0)));
        assert_eq!(seconds("2026-01-02T05:04:05+02:00"), Some((1_767_323_045, 0)));
        assert_eq!(seconds("2026-01-01T22:04:05-05:00"), Some((1_767_323_045, 0)));
        assert_eq!(seconds("2026-01-02T03:04:05.25Z"), Some((1_767_323_045, 250_000_000)));
        assert_eq!(seconds("2024-02-29T00:00:00.123456789123Z"), Some((1_709_164_800, 123_456_789)));
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for text in [
            "",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-13-02T03:04:05Z",
            "2025-02-29T00:00:00Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05+0200",
            "1969-12-31T23:59:59Z",
            "२०२६-01-02T03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }
}
