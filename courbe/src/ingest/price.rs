//! Price series CSV: `ts,price[,step_min]`, one market interval a line.
//!
//! - `ts`: the interval start, RFC 3339 with any offset; aligned on the step.
//! - `price`: EUR/MWh, a decimal with at most 2 decimals, signed (spot prices go negative):
//!   `-12.5`, `87`, `104.27`; stored exactly as centi-EUR/MWh (`i32`).
//! - `step_min` (optional column): 15 or 60. Without it, a document whose consecutive rows are
//!   all at least 60 minutes apart (and some exactly 60) holds hourly prices; any other holds
//!   15-minute prices.
//!
//! Every line that cannot be read is rejected with its number (the header is line 1) and the
//! rest is read; the engine's point rules (step, alignment, range) apply on top.

use super::{parse_rfc3339, IngestError, Rejected, Sink};
use crate::{Channel, Point, Quality};

/// Largest price magnitude, EUR/MWh (i32 centi-euros).
const PRICE_MAX_CENTS: i64 = i32::MAX as i64;

/// Reads `input` as price CSV and hands each price of series `series` to `sink`.
pub fn parse_price_csv_into(
    input: &[u8],
    series: &str,
    sink: &mut dyn Sink,
) -> Result<(), IngestError> {
    let text = std::str::from_utf8(input).map_err(|e| IngestError::Document {
        line: 1,
        reason: format!("not UTF-8: {e}"),
    })?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim().trim_start_matches('\u{feff}'))
        .unwrap_or("");
    let with_step = match header {
        "ts,price" => false,
        "ts,price,step_min" => true,
        other => {
            return Err(IngestError::Header {
                line: 1,
                reason: format!("{other:?} is not ts,price or ts,price,step_min"),
            })
        }
    };
    let mut rows: Vec<(u64, i64, i32, Option<u16>)> = Vec::new();
    for (i, line) in lines {
        let line_no = i as u64 + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_row(line, with_step) {
            Ok((ts, cents, step)) => rows.push((line_no, ts, cents, step)),
            Err(reason) => sink.reject(Rejected {
                line: line_no,
                reason,
            }),
        }
    }
    let gaps = rows.windows(2).map(|w| w[1].1 - w[0].1);
    let hourly = rows.len() > 1 && gaps.clone().all(|g| g >= 3600) && gaps.min() == Some(3600);
    let default_step = if hourly { 60 } else { 15 };
    for (line, ts, cents, step) in rows {
        let point = Point {
            ts_utc: ts,
            value: cents,
            step_min: step.unwrap_or(default_step),
            quality: Quality::Measured,
        };
        sink.point(line, series, Channel::PRICE, point);
    }
    Ok(())
}

fn parse_row(line: &str, with_step: bool) -> Result<(i64, i32, Option<u16>), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let want = if with_step { 3 } else { 2 };
    if fields.len() != want {
        return Err(format!("{} fields, expected {want}", fields.len()));
    }
    let ts = parse_rfc3339(fields[0].as_bytes()).map_err(|e| format!("ts {:?}: {e}", fields[0]))?;
    let cents = parse_centi(fields[1]).ok_or_else(|| {
        format!(
            "price {:?} is not a decimal EUR/MWh with at most 2 decimals within ±21474836.47",
            fields[1]
        )
    })?;
    let step = if with_step {
        match fields[2].parse::<u16>() {
            Ok(s @ (15 | 60)) => Some(s),
            _ => return Err(format!("step_min {:?} is not 15 or 60", fields[2])),
        }
    } else {
        None
    };
    Ok((ts, cents, step))
}

/// `-12.5` → -1250: a signed decimal with at most 2 decimals, as hundredths.
pub fn parse_centi(text: &str) -> Option<i32> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || frac.len() > 2
        || !all_digits(whole)
        || !all_digits(frac)
    {
        return None;
    }
    if digits.contains('.') && frac.is_empty() {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    let cents = whole * 100 + frac;
    if cents > PRICE_MAX_CENTS {
        return None;
    }
    i32::try_from(if negative { -cents } else { cents }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Parsed;

    #[test]
    fn prices_read_exactly_in_hundredths_and_bad_lines_are_numbered() {
        assert_eq!(parse_centi("-12.5"), Some(-1250));
        assert_eq!(parse_centi("87"), Some(8700));
        assert_eq!(parse_centi("104.27"), Some(10427));
        assert_eq!(parse_centi("+0.07"), Some(7));
        for bad in [
            "1.234",
            "",
            "-",
            "1.",
            ".5",
            "1e3",
            "12,5",
            "99999999999",
            "abc",
        ] {
            assert_eq!(parse_centi(bad), None, "{bad}");
        }
        let csv = b"ts,price\n2024-05-01T00:00:00Z,45.5\n2024-05-01T00:15:00Z,-3.25\nx,1\n2024-05-01T00:30:00Z,1.999\n";
        let mut parsed = Parsed::default();
        parse_price_csv_into(csv, "spot-FR", &mut parsed).expect("reads");
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(
            (parsed.rows[1].1, parsed.rows[1].2.value),
            (Channel::PRICE, -325)
        );
        assert_eq!(parsed.rows[1].2.step_min, 15);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5]);
    }

    #[test]
    fn an_hourly_document_reads_as_hourly_prices_and_a_bad_header_is_refused() {
        let csv = b"ts,price\n2024-05-01T00:00:00Z,45\n2024-05-01T01:00:00Z,40\n2024-05-01T03:00:00Z,41\n";
        let mut parsed = Parsed::default();
        parse_price_csv_into(csv, "spot-FR", &mut parsed).expect("reads");
        assert!(parsed.rows.iter().all(|r| r.2.step_min == 60));
        let mut parsed = Parsed::default();
        let err = parse_price_csv_into(b"time,value\n", "spot-FR", &mut parsed).unwrap_err();
        assert!(err.to_string().contains("ts,price"), "{err}");
    }
}
