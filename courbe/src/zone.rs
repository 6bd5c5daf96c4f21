//! Europe/Paris, the zone of French tariffs, daily readings and Paris days: looked up once, here.
//!
//! The zone database is compiled in (jiff's `tzdb-bundle-always`), so the lookup cannot fail on a
//! machine without /usr/share/zoneinfo; it falls back to UTC rather than panic if it ever did.

use jiff::tz::TimeZone;

/// The zone's name.
pub const PARIS: &str = "Europe/Paris";

/// Europe/Paris.
pub fn paris() -> TimeZone {
    static ZONE: std::sync::OnceLock<TimeZone> = std::sync::OnceLock::new();
    ZONE.get_or_init(|| TimeZone::get(PARIS).unwrap_or(TimeZone::UTC))
        .clone()
}

/// Whether `ts_utc` is the first instant of a Paris day (its wall clock reads 00:00:00).
pub fn is_paris_midnight(ts_utc: i64) -> bool {
    let Ok(ts) = jiff::Timestamp::from_second(ts_utc) else {
        return false;
    };
    let local = ts.to_zoned(paris());
    (local.hour(), local.minute(), local.second()) == (0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn a_paris_midnight_is_23_00_utc_in_winter_and_22_00_utc_in_summer() {
        assert!(is_paris_midnight(utc("2024-01-14T23:00:00Z")));
        assert!(is_paris_midnight(utc("2024-07-14T22:00:00Z")));
        // The fall-back day: midnight is still summer time; the next one winter time.
        assert!(is_paris_midnight(utc("2024-10-26T22:00:00Z")));
        assert!(is_paris_midnight(utc("2024-10-27T23:00:00Z")));
        assert!(!is_paris_midnight(utc("2024-10-27T22:00:00Z")));
        assert!(!is_paris_midnight(i64::MAX));
        assert_eq!(paris().iana_name(), Some(PARIS));
    }
}
