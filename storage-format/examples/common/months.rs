//! Month arithmetic shared by the examples (`#[path]`-included; not an example itself).

/// Months since 1970-01 of a Unix timestamp (UTC).
pub fn utc_month_of(ts_utc: i64) -> u32 {
    let days = ts_utc.div_euclid(86_400);
    // Civil-from-days (H. Hinnant), shifted so that March is month 0.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    ((year - 1970) * 12 + month - 1) as u32
}

/// First second of month `p` (months since 1970-01) in Europe/Paris: local midnight on the
/// first, UTC+2 from April to October and UTC+1 otherwise (the engine's partition rule).
#[allow(dead_code, reason = "used by measure, not by train_tables")]
pub fn paris_month_start(p: u32) -> i64 {
    let y = 1970 + i64::from(p / 12);
    let m = i64::from(p % 12) + 1;
    // Days-from-civil (H. Hinnant).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let offset_s = if (4..=10).contains(&m) { 7_200 } else { 3_600 };
    days * 86_400 - offset_s
}

/// The engine's time partition of a timestamp: its Europe/Paris calendar month.
#[allow(dead_code, reason = "used by measure, not by train_tables")]
pub fn paris_month_of(ts_utc: i64) -> u32 {
    let utc = utc_month_of(ts_utc);
    if ts_utc >= paris_month_start(utc + 1) {
        utc + 1
    } else {
        utc
    }
}
