//! RFC 3339 timestamps: a fast parser for the fixed layout every input uses
//! (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`) and a fast UTC formatter, both exact for years 0000 to
//! 9999. They run once per ingested or exported row, hence no general date library on that path.

use crate::civil::{civil_from_days, days_from_civil};

const DAY_S: i64 = 86_400;

/// Parses an RFC 3339 timestamp with any offset into Unix seconds UTC. Fractional seconds are
/// accepted only when zero (points are whole seconds).
pub fn parse_rfc3339(s: &[u8]) -> Result<i64, &'static str> {
    const LAYOUT: &str = "not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS followed by Z or ±HH:MM)";
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = s.get(from..from + len)?;
        digits.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let at = |i: usize, expected: &[u8]| s.get(i).is_some_and(|b| expected.contains(b));
    let fields = (|| {
        if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
            return None;
        }
        Some((
            num(0, 4)?,
            num(5, 2)?,
            num(8, 2)?,
            num(11, 2)?,
            num(14, 2)?,
            num(17, 2)?,
        ))
    })();
    let Some((year, month, day, hour, minute, second)) = fields else {
        return Err(LAYOUT);
    };
    let mut i = 19;
    if at(i, b".") {
        i += 1;
        let start = i;
        let mut nonzero = false;
        while let Some(b) = s.get(i).filter(|b| b.is_ascii_digit()) {
            nonzero |= *b != b'0';
            i += 1;
        }
        if i == start {
            return Err(LAYOUT);
        }
        if nonzero {
            return Err("fractional seconds are not supported");
        }
    }
    let offset_s = match s.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let (Some(h), true, Some(m)) = (num(i + 1, 2), at(i + 3, b":"), num(i + 4, 2)) else {
                return Err(LAYOUT);
            };
            if h > 23 || m > 59 {
                return Err("UTC offset out of range");
            }
            i += 6;
            let magnitude = h * 3600 + m * 60;
            if sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        None => return Err("timestamp without a UTC offset (add Z or ±HH:MM)"),
        Some(_) => return Err(LAYOUT),
    };
    if i != s.len() {
        return Err(LAYOUT);
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("date out of range");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range");
    }
    Ok(days_from_civil(year, month, day) * DAY_S + hour * 3600 + minute * 60 + second - offset_s)
}

/// Formats Unix seconds as RFC 3339 UTC (`2024-01-01T00:00:00Z`).
pub fn format_rfc3339_utc(ts_utc: i64) -> String {
    let mut out = Vec::with_capacity(20);
    write_rfc3339_utc(ts_utc, &mut out);
    // Only ASCII is written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `ts_utc` as RFC 3339 UTC to `out`.
pub(crate) fn write_rfc3339_utc(ts_utc: i64, out: &mut Vec<u8>) {
    let days = ts_utc.div_euclid(DAY_S);
    let sod = ts_utc.rem_euclid(DAY_S);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        // Outside RFC 3339's four-digit years: jiff's formatting (or the raw number) says it.
        match jiff::Timestamp::from_second(ts_utc) {
            Ok(ts) => out.extend_from_slice(ts.to_string().as_bytes()),
            Err(_) => out.extend_from_slice(ts_utc.to_string().as_bytes()),
        }
        return;
    }
    let mut buf = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for d in buf[at..at + width].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    out.extend_from_slice(&buf);
}

pub(crate) use crate::zone::paris;

/// Parses a civil date `YYYY-MM-DD` (years 0001 to 9999).
pub(crate) fn parse_date(s: &[u8]) -> Result<jiff::civil::Date, &'static str> {
    const LAYOUT: &str = "not a date (YYYY-MM-DD)";
    if s.len() != 10 || s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return Err(LAYOUT);
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        s.get(from..from + len)?.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (Some(y), Some(m), Some(d)) = (num(0, 4), num(5, 2), num(8, 2)) else {
        return Err(LAYOUT);
    };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || y < 1 {
        return Err("date out of range");
    }
    jiff::civil::Date::new(y as i16, m as i8, d as i8).map_err(|_| "date out of range")
}

/// The instant of local midnight starting `date` in `tz` (Paris midnight always exists: its
/// clock changes are at 02:00 and 03:00).
pub(crate) fn local_midnight(
    tz: &jiff::tz::TimeZone,
    date: jiff::civil::Date,
) -> Result<i64, String> {
    date.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_second())
        .map_err(|e| format!("{date}: {e}"))
}

/// Parses a local wall time `YYYY-MM-DD HH:MM:SS` (or with `T`) and returns the instants it may
/// be in `tz`: one, or two (earlier first) in the hour a clock goes back; none in the hour it
/// skips (an error).
pub(crate) fn parse_local_datetime(
    tz: &jiff::tz::TimeZone,
    s: &[u8],
) -> Result<(i64, i64), String> {
    const LAYOUT: &str = "not a local date and time (YYYY-MM-DD HH:MM:SS)";
    if s.len() != 19 || !matches!(s.get(10), Some(b' ' | b'T')) {
        return Err(LAYOUT.into());
    }
    let date = parse_date(s.get(..10).unwrap_or_default()).map_err(str::to_owned)?;
    let t = s.get(11..).unwrap_or_default();
    let num = |from: usize| -> Option<i8> {
        let d = t.get(from..from + 2)?;
        d.iter().try_fold(0i8, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + (b - b'0') as i8)
        })
    };
    let (Some(h), true, Some(mi), true, Some(sec)) = (
        num(0),
        t.get(2) == Some(&b':'),
        num(3),
        t.get(5) == Some(&b':'),
        num(6),
    ) else {
        return Err(LAYOUT.into());
    };
    if h > 23 || mi > 59 || sec > 59 {
        return Err("time of day out of range".into());
    }
    let dt = date.at(h, mi, sec, 0);
    let ambiguous = tz.to_ambiguous_zoned(dt);
    if matches!(ambiguous.offset(), jiff::tz::AmbiguousOffset::Gap { .. }) {
        return Err(format!(
            "{dt} does not exist in Europe/Paris (the clock skips that hour)"
        ));
    }
    let earlier = ambiguous
        .clone()
        .earlier()
        .map_err(|e| e.to_string())?
        .timestamp()
        .as_second();
    let later = ambiguous
        .later()
        .map_err(|e| e.to_string())?
        .timestamp()
        .as_second();
    Ok((earlier, later))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_are_applied_and_z_means_utc() {
        assert_eq!(
            parse_rfc3339(b"2024-01-01T00:00:00+01:00"),
            Ok(1_704_063_600)
        );
        assert_eq!(parse_rfc3339(b"2023-12-31T23:00:00Z"), Ok(1_704_063_600));
        assert_eq!(parse_rfc3339(b"2023-12-31t23:00:00z"), Ok(1_704_063_600));
        assert_eq!(
            parse_rfc3339(b"2023-12-31 18:30:00-04:30"),
            Ok(1_704_063_600)
        );
        assert_eq!(
            parse_rfc3339(b"2023-12-31T23:00:00.000Z"),
            Ok(1_704_063_600)
        );
        assert_eq!(parse_rfc3339(b"1969-12-31T23:59:59Z"), Ok(-1));
        assert_eq!(parse_rfc3339(b"2024-02-29T00:00:00Z"), Ok(1_709_164_800));
    }

    #[test]
    fn malformed_timestamps_are_refused_with_a_reason() {
        for bad in [
            &b"2024-01-01"[..],
            b"2024-01-01T00:00:00",
            b"2024-01-01T00:00:00+0100",
            b"2024-01-01T00:00:00+01:00 ",
            b"2024-13-01T00:00:00Z",
            b"2023-02-29T00:00:00Z",
            b"2024-01-01T24:00:00Z",
            b"2024-01-01T00:00:60Z",
            b"2024-01-01T00:00:00+24:00",
            b"2024-01-01T00:00:00.5Z",
            b"2024-01-01T00:00:00.Z",
            b"2024/01/01T00:00:00Z",
            b"\xff\xfe",
            b"",
        ] {
            assert!(
                parse_rfc3339(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn utc_formatting_writes_z() {
        assert_eq!(format_rfc3339_utc(1_704_063_600), "2023-12-31T23:00:00Z");
        assert_eq!(format_rfc3339_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339_utc(0), "1970-01-01T00:00:00Z");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn parsing_and_formatting_agree_with_jiff(
            ts in -62_135_596_800i64..253_402_300_799,
            offset_min in -23 * 60i32..=23 * 60,
        ) {
            let jts = jiff::Timestamp::from_second(ts).unwrap();
            prop_assert_eq!(format_rfc3339_utc(ts), jts.to_string());
            let offset = jiff::tz::Offset::from_seconds(offset_min * 60).unwrap();
            let text = jts.display_with_offset(offset).to_string();
            if text.len() == 25 {
                prop_assert_eq!(parse_rfc3339(text.as_bytes()), Ok(ts), "{}", text);
            }
        }
    }
}
