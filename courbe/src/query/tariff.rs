//! Tariff specs (`HC:22:00-06:00,12:30-14:30`) and the off-peak instants they give in UTC.
//!
//! A minute is off-peak (`HC`) when its local wall-clock time, read in the query's zone with the
//! offset in force at that instant, falls in a window. So on a spring-forward day a window inside
//! the skipped hour holds no minute, and on a fall-back day a window inside the repeated hour holds
//! its minutes twice.

use jiff::tz::TimeZone;

use super::calendar::offset_spans;
use super::{QueryError, Tariff};

const DAY_S: i64 = 86_400;

fn bad(why: impl Into<String>) -> QueryError {
    QueryError::BadTariff(why.into())
}

/// Reads `HH:MM` into minutes after midnight; `24:00` only when `end` is set.
fn parse_clock(s: &str, end: bool) -> Result<u16, QueryError> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| bad(format!("{s:?} is not HH:MM")))?;
    let two_digits = |part: &str| -> Result<u16, QueryError> {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{s:?} is not HH:MM")));
        }
        part.parse::<u16>()
            .map_err(|_| bad(format!("{s:?} is not HH:MM")))
    };
    let (h, m) = (two_digits(h)?, two_digits(m)?);
    if m > 59 {
        return Err(bad(format!("minutes out of range in {s:?}")));
    }
    match h {
        0..=23 => Ok(h * 60 + m),
        24 if m == 0 && end => Ok(1440),
        24 if m == 0 => Err(bad("24:00 may only end a window")),
        _ => Err(bad(format!("hours out of range in {s:?}"))),
    }
}

pub(crate) fn parse(spec: &str) -> Result<Tariff, QueryError> {
    let spec = spec.trim();
    let windows = spec
        .strip_prefix("HC:")
        .ok_or_else(|| bad(format!("{spec:?} does not start with \"HC:\"")))?;
    if windows.trim().is_empty() {
        return Err(bad("no off-peak window"));
    }
    let mut hc_windows_min = Vec::new();
    for window in windows.split(',') {
        let window = window.trim();
        let (start, end) = window
            .split_once('-')
            .ok_or_else(|| bad(format!("window {window:?} is not HH:MM-HH:MM")))?;
        let start = parse_clock(start.trim(), false)?;
        let end = parse_clock(end.trim(), true)?;
        if start == end {
            return Err(bad(format!("window {window:?} is empty")));
        }
        hc_windows_min.push((start, end));
    }
    Ok(Tariff { hc_windows_min })
}

impl std::fmt::Display for Tariff {
    /// Writes the spec back in the form [`Tariff::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HC:")?;
        for (i, &(start, end)) in self.hc_windows_min.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{:02}:{:02}-{:02}:{:02}",
                start / 60,
                start % 60,
                end / 60,
                end % 60
            )?;
        }
        Ok(())
    }
}

impl Tariff {
    /// The off-peak windows as sorted, disjoint, non-adjacent `[start, end)` seconds after local
    /// midnight within one day: windows crossing midnight are split, overlapping ones merged,
    /// values past 24:00 clamped.
    pub fn day_windows_s(&self) -> Vec<(i64, i64)> {
        let mut parts = Vec::new();
        for &(start, end) in &self.hc_windows_min {
            let start = i64::from(start.min(1440)) * 60;
            let end = i64::from(end.min(1440)) * 60;
            if end > start {
                parts.push((start, end));
            } else if end < start {
                parts.push((start, DAY_S));
                parts.push((0, end));
            }
        }
        parts.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(parts.len());
        for (start, end) in parts {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged.retain(|&(s, e)| e > s);
        merged
    }
}

/// The off-peak instants of a range as sorted, disjoint UTC intervals, with a cursor for
/// measuring time-ordered intervals against them.
#[derive(Clone, Debug)]
pub(crate) struct OffPeak {
    intervals: Vec<(i64, i64)>,
    cursor: usize,
}

impl OffPeak {
    /// The off-peak instants of `[from, to)` in `tz`.
    pub(crate) fn new(tariff: &Tariff, tz: &TimeZone, from_utc: i64, to_utc: i64) -> OffPeak {
        let windows = tariff.day_windows_s();
        let mut intervals: Vec<(i64, i64)> = Vec::new();
        for (span_start, span_end, offset) in offset_spans(tz, from_utc, to_utc) {
            // Local time is `t + offset` throughout the span.
            let first_day = (span_start + offset).div_euclid(DAY_S);
            let last_day = (span_end - 1 + offset).div_euclid(DAY_S);
            for day in first_day..=last_day {
                let midnight_utc = day * DAY_S - offset;
                for &(ws, we) in &windows {
                    let s = (midnight_utc + ws).max(span_start);
                    let e = (midnight_utc + we).min(span_end);
                    if s >= e {
                        continue;
                    }
                    match intervals.last_mut() {
                        Some(last) if s <= last.1 => last.1 = last.1.max(e),
                        _ => intervals.push((s, e)),
                    }
                }
            }
        }
        OffPeak {
            intervals,
            cursor: 0,
        }
    }

    /// Seconds of `[start, end)` that are off-peak. Successive calls must not go back in time
    /// (`start` non-decreasing).
    pub(crate) fn overlap_s(&mut self, start: i64, end: i64) -> i64 {
        while let Some(&(_, e)) = self.intervals.get(self.cursor) {
            if e > start {
                break;
            }
            self.cursor += 1;
        }
        let mut total = 0;
        for &(s, e) in self.intervals.get(self.cursor..).unwrap_or(&[]) {
            if s >= end {
                break;
            }
            total += e.min(end) - s.max(start);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_with_several_windows_and_midnight_crossings_are_read() {
        let t = parse("HC:22:00-06:00").unwrap();
        assert_eq!(t.hc_windows_min, vec![(1320, 360)]);
        assert_eq!(t.day_windows_s(), vec![(0, 21_600), (79_200, 86_400)]);
        let t = parse("HC:01:00-07:00,12:30-14:30,23:00-24:00").unwrap();
        assert_eq!(t.hc_windows_min, vec![(60, 420), (750, 870), (1380, 1440)]);
        assert_eq!(t.to_string(), "HC:01:00-07:00,12:30-14:30,23:00-24:00");
    }

    #[test]
    fn overlapping_windows_merge() {
        let t = parse("HC:01:00-03:00,02:00-04:00,23:00-01:30").unwrap();
        assert_eq!(t.day_windows_s(), vec![(0, 4 * 3600), (23 * 3600, DAY_S)]);
    }

    #[test]
    fn malformed_specs_are_bad_tariffs_with_a_reason() {
        for spec in [
            "",
            "HC:",
            "HP:01:00-02:00",
            "HC:1:00-02:00",
            "HC:01:00",
            "HC:01:60-02:00",
            "HC:25:00-02:00",
            "HC:24:00-02:00",
            "HC:01:00-24:30",
            "HC:01:00-01:00",
            "HC:01:00-02:00,",
            "HC:0a:00-02:00",
            "HC:+1:00-02:00",
        ] {
            match parse(spec) {
                Err(QueryError::BadTariff(why)) => assert!(!why.is_empty(), "{spec}"),
                other => panic!("{spec:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn off_peak_intervals_follow_the_paris_wall_clock_across_dst() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let t = parse("HC:02:00-03:00").unwrap();
        // 2024-03-30T23:00Z .. 2024-04-01T22:00Z: the 31st has no 02:00-03:00.
        let op = OffPeak::new(&t, &tz, 1_711_839_600, 1_712_008_800);
        assert_eq!(op.intervals, vec![(1_711_929_600, 1_711_933_200)]);
        // 2024-10-27 repeats 02:00-03:00: two hours, contiguous in UTC (00:00Z to 02:00Z).
        let op = OffPeak::new(&t, &tz, 1_729_980_000, 1_730_070_000);
        assert_eq!(op.intervals, vec![(1_729_987_200, 1_729_994_400)]);
    }

    #[test]
    fn overlap_counts_the_off_peak_seconds_of_each_interval() {
        let t = parse("HC:22:00-06:00").unwrap();
        let mut op = OffPeak::new(&t, &TimeZone::UTC, 0, 2 * DAY_S);
        assert_eq!(op.overlap_s(5 * 3600, 7 * 3600), 3600);
        assert_eq!(op.overlap_s(12 * 3600, 13 * 3600), 0);
        assert_eq!(op.overlap_s(21 * 3600, 31 * 3600), 8 * 3600);
        assert_eq!(op.overlap_s(2 * DAY_S - 1800, 2 * DAY_S + 1800), 1800);
    }
}
