//! Local calendar periods and the wall clock of a time zone, both as UTC instants.
//!
//! A period is `[start, end)` in Unix seconds: `start` is the first instant of its first local day
//! (local midnight, or the end of a gap when midnight does not exist; the earlier one when it
//! repeats). Days are therefore DST-exact: a Paris day lasts 23, 24 or 25 hours.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::{Calendar, Period, QueryError};

/// Most periods one calendar query may list (about 270 years of days).
pub const MAX_PERIODS: usize = 100_000;

/// Earliest and latest instants a query may name (the range of civil time jiff represents,
/// less a day on each side so that local dates always exist).
pub const TIME_MIN_UTC: i64 = -377_705_116_800 + 86_400;
pub const TIME_MAX_UTC: i64 = 253_402_207_200 - 86_400;

/// Refuses `from >= to` and instants outside [`TIME_MIN_UTC`, `TIME_MAX_UTC`].
pub(crate) fn check_range(from_utc: i64, to_utc: i64) -> Result<(), QueryError> {
    if from_utc >= to_utc {
        return Err(QueryError::InvalidArgument(format!(
            "`from` ({from_utc}) must be before `to` ({to_utc})"
        )));
    }
    for t in [from_utc, to_utc] {
        if !(TIME_MIN_UTC..=TIME_MAX_UTC).contains(&t) {
            return Err(QueryError::InvalidArgument(format!(
                "instant {t} is outside the supported range"
            )));
        }
    }
    Ok(())
}

fn out_of_range(e: jiff::Error) -> QueryError {
    QueryError::InvalidArgument(format!("date out of range: {e}"))
}

/// The first instant of local date `date` in `tz`.
pub(crate) fn day_start_utc(tz: &TimeZone, date: Date) -> Result<i64, QueryError> {
    let ts = tz
        .to_ambiguous_timestamp(DateTime::from_parts(date, Time::midnight()))
        .compatible()
        .map_err(out_of_range)?;
    Ok(ts.as_second())
}

/// The local date of instant `t` in `tz`.
pub(crate) fn local_date(tz: &TimeZone, t: i64) -> Result<Date, QueryError> {
    let ts = Timestamp::from_second(t).map_err(out_of_range)?;
    Ok(tz.to_datetime(ts).date())
}

/// The first local date of the period containing `date`.
fn period_first_date(period: Period, date: Date) -> Result<Date, QueryError> {
    Ok(match period {
        Period::Day => date,
        Period::Week => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            date.checked_sub(back.days()).map_err(out_of_range)?
        }
        Period::Month => date.first_of_month(),
        Period::Year => date.first_of_year(),
    })
}

/// The first local date of the period after the one starting on `first`.
fn next_period_date(period: Period, first: Date) -> Result<Date, QueryError> {
    match period {
        Period::Day => first.tomorrow(),
        Period::Week => first.checked_add(7.days()),
        Period::Month => first.last_of_month().tomorrow(),
        Period::Year => first.last_of_year().tomorrow(),
    }
    .map_err(out_of_range)
}

impl Calendar {
    /// Checks the range (see [`check_range`]).
    pub fn validate(&self) -> Result<(), QueryError> {
        check_range(self.from_utc, self.to_utc)
    }

    /// Every period overlapping `[from, to)`, in order, the first and the last clipped to the
    /// range; contiguous and never empty.
    pub fn periods(&self) -> Result<Vec<(i64, i64)>, QueryError> {
        self.validate()?;
        if self.period == Period::Day {
            return self.days();
        }
        self.periods_by_date()
    }

    /// [`Self::periods`] for days, from the zone's offset spans ([`day_starts`]): the time-zone
    /// database is asked about the days next to an offset change only.
    fn days(&self) -> Result<Vec<(i64, i64)>, QueryError> {
        // Longer than any local day a zone has had (a change of a whole day of offset makes a
        // 48-hour one): a range this many times longer certainly spans too many days.
        const LONGEST_DAY_S: i64 = 49 * 3600;
        let too_many = || {
            QueryError::InvalidArgument(format!("the range spans more than {MAX_PERIODS} periods"))
        };
        if (self.to_utc - self.from_utc) / LONGEST_DAY_S > MAX_PERIODS as i64 + 1 {
            return Err(too_many());
        }
        if Timestamp::from_second(self.from_utc).is_err()
            || Timestamp::from_second(self.to_utc).is_err()
        {
            // Beyond jiff's instants: the date walk names the error.
            return self.periods_by_date();
        }
        let starts = day_starts(&self.tz, self.from_utc, self.to_utc);
        let mut out = Vec::with_capacity(starts.len() + 1);
        let mut start = self.from_utc;
        for &next in starts
            .iter()
            .filter(|&&t| t > self.from_utc && t < self.to_utc)
        {
            out.push((start, next));
            start = next;
        }
        out.push((start, self.to_utc));
        if out.len() > MAX_PERIODS {
            return Err(too_many());
        }
        Ok(out)
    }

    /// [`Self::periods`] by walking local dates, each boundary asked of the time-zone database.
    fn periods_by_date(&self) -> Result<Vec<(i64, i64)>, QueryError> {
        let mut out = Vec::new();
        let mut first = period_first_date(self.period, local_date(&self.tz, self.from_utc)?)?;
        let mut start = self.from_utc;
        while start < self.to_utc {
            if out.len() >= MAX_PERIODS {
                return Err(QueryError::InvalidArgument(format!(
                    "the range spans more than {MAX_PERIODS} periods"
                )));
            }
            first = next_period_date(self.period, first)?;
            let next = day_start_utc(&self.tz, first)?;
            // A period boundary is strictly after the previous one: local days last hours.
            let end = next.max(start + 1).min(self.to_utc);
            out.push((start, end));
            start = end;
        }
        Ok(out)
    }
}

/// Every day start of `tz` in `[from, to]` (local midnight, or the first instant of the day when
/// a change skips midnight), from the zone's offset spans: within a span of offset `o`, they are
/// the instants `t` where `t + o` is a whole number of days. Only the days next to an offset
/// change are asked of the time-zone database, not every day.
pub(crate) fn day_starts(tz: &TimeZone, from: i64, to: i64) -> Vec<i64> {
    const DAY_S: i64 = 86_400;
    let spans = offset_spans(tz, from, to + 1);
    let near_change = |t: i64| {
        spans
            .iter()
            .skip(1)
            .any(|&(change, _, _)| (change - t).abs() < DAY_S + DAY_S / 2)
    };
    let mut out = Vec::new();
    for &(span_start, span_end, offset) in &spans {
        let mut t = (span_start + offset).div_euclid(DAY_S) * DAY_S - offset;
        if t < span_start {
            t += DAY_S;
        }
        while t < span_end {
            if !near_change(t) {
                out.push(t);
            }
            t += DAY_S;
        }
    }
    // Around each change, the database's own day starts.
    for &(change, _, _) in spans.iter().skip(1) {
        let Ok(date) = local_date(tz, change) else {
            continue;
        };
        for d in (-2i64..=2).filter_map(|k| date.checked_add(jiff::Span::new().days(k)).ok()) {
            if let Ok(t) = day_start_utc(tz, d) {
                if near_change(t) {
                    out.push(t);
                }
            }
        }
    }
    out.retain(|&t| from <= t && t <= to);
    out.sort_unstable();
    out.dedup();
    out
}

/// The UTC offset in force over `[from, to)`, as maximal spans `(start, end, offset_s)`.
pub(crate) fn offset_spans(tz: &TimeZone, from_utc: i64, to_utc: i64) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    let Ok(from_ts) = Timestamp::from_second(from_utc) else {
        return out;
    };
    let mut start = from_utc;
    let mut offset = i64::from(tz.to_offset(from_ts).seconds());
    for transition in tz.following(from_ts) {
        let at = transition.timestamp().as_second();
        if at >= to_utc {
            break;
        }
        let next_offset = i64::from(transition.offset().seconds());
        if at > start && next_offset != offset {
            out.push((start, at, offset));
            start = at;
        }
        offset = next_offset;
    }
    if start < to_utc {
        out.push((start, to_utc, offset));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::zone::paris;

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn paris_days_last_23_24_and_25_hours_around_dst() {
        let cal = Calendar {
            from_utc: ts("2024-03-30T23:00:00Z"),
            to_utc: ts("2024-04-01T22:00:00Z"),
            period: Period::Day,
            tz: paris(),
        };
        let p = cal.periods().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1 - p[0].0, 23 * 3600);
        assert_eq!(p[1].1 - p[1].0, 24 * 3600);
        let cal = Calendar {
            from_utc: ts("2024-10-26T22:00:00Z"),
            to_utc: ts("2024-10-27T23:00:00Z"),
            ..cal
        };
        assert_eq!(cal.periods().unwrap(), vec![(cal.from_utc, cal.to_utc)]);
        assert_eq!(cal.to_utc - cal.from_utc, 25 * 3600);
    }

    #[test]
    fn periods_are_clipped_to_the_range_and_weeks_start_on_monday() {
        // 2024-01-03 is a Wednesday.
        let cal = Calendar {
            from_utc: ts("2024-01-03T12:00:00Z"),
            to_utc: ts("2024-01-20T00:00:00Z"),
            period: Period::Week,
            tz: TimeZone::UTC,
        };
        assert_eq!(
            cal.periods().unwrap(),
            vec![
                (cal.from_utc, ts("2024-01-08T00:00:00Z")),
                (ts("2024-01-08T00:00:00Z"), ts("2024-01-15T00:00:00Z")),
                (ts("2024-01-15T00:00:00Z"), cal.to_utc),
            ]
        );
    }

    #[test]
    fn months_and_years_follow_the_local_calendar() {
        let cal = Calendar {
            from_utc: ts("2023-12-31T23:00:00Z"),
            to_utc: ts("2025-01-01T00:00:00Z"),
            period: Period::Month,
            tz: paris(),
        };
        let p = cal.periods().unwrap();
        assert_eq!(p.len(), 13);
        assert_eq!(p[0].0, ts("2023-12-31T23:00:00Z"));
        assert_eq!(p[2].0, ts("2024-02-29T23:00:00Z"));
        assert_eq!(p[3].0, ts("2024-03-31T22:00:00Z"));
        assert_eq!(p[12], (ts("2024-12-31T23:00:00Z"), cal.to_utc));
        let years = Calendar {
            period: Period::Year,
            ..cal
        };
        assert_eq!(
            years.periods().unwrap(),
            vec![
                (cal.from_utc, ts("2024-12-31T23:00:00Z")),
                (ts("2024-12-31T23:00:00Z"), cal.to_utc)
            ]
        );
    }

    proptest::proptest! {
        /// Zones whose changes happen at midnight (Santiago, Havana, Beirut, Sao Paulo until
        /// 2019), by two hours (Troll) or by half an hour (Lord Howe), beside Paris and UTC.
        #[test]
        fn day_periods_from_offset_spans_are_the_date_walk(
            zone in proptest::sample::select(vec![
                "Europe/Paris", "UTC", "America/Santiago", "America/Havana", "Asia/Beirut",
                "America/Sao_Paulo", "Antarctica/Troll", "Australia/Lord_Howe",
            ]),
            from in 1_200_000_000i64..1_800_000_000,
            len in 1i64..(3 * 366 * 86_400),
        ) {
            let cal = Calendar {
                from_utc: from,
                to_utc: from + len,
                period: Period::Day,
                tz: TimeZone::get(zone).unwrap(),
            };
            proptest::prop_assert_eq!(cal.days().unwrap(), cal.periods_by_date().unwrap());
        }
    }

    #[test]
    fn a_range_of_more_days_than_the_bound_is_refused() {
        let (min, max) = (-377_705_023_201, 253_402_207_199); // jiff's instants
        for (from, to) in [
            (0, MAX_PERIODS as i64 * 86_400 + 1),
            (min, max),
            (TIME_MIN_UTC, TIME_MAX_UTC),
        ] {
            let cal = Calendar {
                from_utc: from,
                to_utc: to,
                period: Period::Day,
                tz: TimeZone::UTC,
            };
            assert!(matches!(cal.periods(), Err(QueryError::InvalidArgument(_))));
        }
        let cal = Calendar {
            from_utc: 0,
            to_utc: MAX_PERIODS as i64 * 86_400,
            period: Period::Day,
            tz: TimeZone::UTC,
        };
        assert_eq!(cal.periods().unwrap().len(), MAX_PERIODS);
    }

    #[test]
    fn an_empty_or_reversed_range_is_an_invalid_argument() {
        let cal = Calendar {
            from_utc: 10,
            to_utc: 10,
            period: Period::Day,
            tz: paris(),
        };
        assert!(matches!(cal.periods(), Err(QueryError::InvalidArgument(_))));
        let cal = Calendar {
            from_utc: 0,
            to_utc: i64::MAX,
            ..cal
        };
        assert!(matches!(cal.periods(), Err(QueryError::InvalidArgument(_))));
    }

    #[test]
    fn offset_spans_split_at_each_transition() {
        let from = ts("2024-03-01T00:00:00Z");
        let to = ts("2024-11-01T00:00:00Z");
        let spans = offset_spans(&paris(), from, to);
        assert_eq!(
            spans,
            vec![
                (from, ts("2024-03-31T01:00:00Z"), 3600),
                (ts("2024-03-31T01:00:00Z"), ts("2024-10-27T01:00:00Z"), 7200),
                (ts("2024-10-27T01:00:00Z"), to, 3600),
            ]
        );
        assert_eq!(offset_spans(&TimeZone::UTC, from, to), vec![(from, to, 0)]);
    }
}
