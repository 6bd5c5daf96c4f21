//! Data Connect v5 metering documents.

use courbe::ingest::{parse, Format, IngestError};
use courbe::{Channel, Quality};

use super::support::{assert_rejected, daily, parsed, rejected};

fn document(reading_type: &str, readings: &[&str]) -> String {
    format!(
        "{{\"meter_reading\": {{\n  \"usage_point_id\": \"16401220101758\",\n  \"start\": \"2024-03-30\",\n  \
         \"end\": \"2024-04-02\",\n  \"quality\": \"BRUT\",\n  \"reading_type\": {reading_type},\n  \
         \"interval_reading\": [\n{}\n  ]\n}}}}\n",
        readings.join(",\n")
    )
}

const DAILY: &str = r#"{"measurement_kind": "energy", "measuring_period": "P1D", "unit": "Wh", "aggregate": "sum"}"#;
const CURVE: &str = r#"{"unit": "W", "measurement_kind": "power", "aggregate": "average"}"#;
const MAX: &str = r#"{"measurement_kind": "power", "measuring_period": "P1D", "unit": "VA", "aggregate": "maximum"}"#;

#[test]
fn daily_consumption_is_daily_energy_at_each_paris_midnight_and_bad_readings_are_numbered() {
    let doc = document(
        DAILY,
        &[
            r#"    {"value": "11776", "date": "2024-03-30"}"#,
            r#"    {"value": "14401", "date": "2024-03-31"}"#,
            r#"    {"value": "12820", "date": "2024-04-01"}"#,
            r#"    {"value": "null", "date": "2024-04-02"}"#,
            r#"    {"value": "1", "date": "2024-04-31"}"#,
            r#"    {"value": "3000000000", "date": "2024-04-03"}"#,
            r#"    {"value": "12"}"#,
            r#"    {"value": "-4", "date": "2024-04-04"}"#,
        ],
    );
    let parsed = parsed(&doc, Format::DataConnect);
    let m = "16401220101758";
    let q = Quality::Measured;
    assert_eq!(
        daily(&parsed),
        [
            (m, "ENERGY", 1_711_753_200, 11_776, q),
            (m, "ENERGY", 1_711_839_600, 14_401, q),
            (m, "ENERGY", 1_711_922_400, 12_820, q),
        ]
    );
    assert_rejected(&parsed, 12, &["date \"2024-04-31\"", "out of range"]);
    assert_rejected(&parsed, 13, &["\"3000000000\"", "2,147,483,647"]);
    assert_rejected(&parsed, 14, &["no date"]);
    assert_rejected(&parsed, 15, &["\"-4\" is not a non-negative number"]);
    assert_eq!(parsed.rejected.len(), 4, "{:?}", rejected(&parsed));
}

#[test]
fn a_load_curve_is_stamped_at_interval_starts_and_the_repeated_autumn_hour_is_told_apart() {
    // End-of-interval wall times across 2023-10-29, when 02:00-03:00 happens twice.
    let ends = [
        "2023-10-29 01:30:00",
        "2023-10-29 02:00:00",
        "2023-10-29 02:30:00",
        "2023-10-29 02:00:00",
        "2023-10-29 02:30:00",
        "2023-10-29 03:00:00",
    ];
    let readings: Vec<String> = ends
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(r#"    {{"value": "{}", "date": "{d}", "interval_length": "PT30M", "measure_type": "{}"}}"#,
                100 + i, if i == 2 { "E" } else { "B" })
        })
        .collect();
    let refs: Vec<&str> = readings.iter().map(String::as_str).collect();
    let parsed = parsed(&document(CURVE, &refs), Format::DataConnect);
    assert_eq!(parsed.rejected, []);
    let starts: Vec<i64> = parsed.rows.iter().map(|r| r.2.ts_utc).collect();
    // 01:30+02:00 ends the half hour from 2023-10-28T23:00Z; then every half hour, none twice.
    let first = 1_698_535_800 - 1800;
    assert_eq!(starts, (0..6).map(|i| first + 1800 * i).collect::<Vec<_>>());
    assert!(parsed
        .rows
        .iter()
        .all(|r| r.1 == Channel::CONSUMPTION && r.2.step_min == 30));
    assert_eq!(parsed.rows[2].2.quality, Quality::Estimated);
    // Asked as production, the same document is the production curve.
    let production = parse(
        document(CURVE, &refs).as_bytes(),
        Format::DataConnect,
        Channel::PRODUCTION,
    )
    .unwrap();
    assert!(production.rows.iter().all(|r| r.1 == Channel::PRODUCTION));
}

#[test]
fn max_power_readings_keep_the_instant_of_the_peak() {
    let doc = document(
        MAX,
        &[
            r#"    {"value": "9656", "date": "2024-03-30 04:12:00"}"#,
            r#"    {"value": "5000", "date": "2024-03-31T06:10:00.000Z"}"#,
            r#"    {"value": null, "date": "2024-04-01 00:00:00"}"#,
            r#"    {"value": "7000", "date": "2024-03-31 02:30:00"}"#,
        ],
    );
    let parsed = parsed(&doc, Format::DataConnect);
    let got: Vec<(Channel, i64, i32)> = parsed
        .rows
        .iter()
        .map(|r| (r.1, r.2.ts_utc, r.2.value))
        .collect();
    assert_eq!(
        got,
        [
            (Channel::MAX_POWER, 1_711_768_320, 9_656), // 04:12 +01:00
            (Channel::MAX_POWER, 1_711_865_400, 5_000),
        ]
    );
    assert_rejected(&parsed, 11, &["does not exist in Europe/Paris"]);
}

#[test]
fn documents_that_cannot_be_read_as_a_whole_are_refused_with_a_reason() {
    let one = [r#"    {"value": "1", "date": "2024-03-30"}"#];
    for (doc, says) in [
        (document(&DAILY.replace("\"Wh\"", "\"MWh\""), &one), "MWh"),
        (
            document(&CURVE.replace("average", "median"), &one),
            "median",
        ),
        (
            document(&MAX.replace("\"VA\"", "\"W\""), &one),
            "not VA or kVA",
        ),
        (
            "{\"meter_reading\": {\"interval_reading\": []}}".to_owned(),
            "no reading_type",
        ),
        (
            "{\"meter_reading\": [1, 2]}".to_owned(),
            "not a Data Connect metering document",
        ),
        (
            "{\"meter_reading\": {\n\"reading_type\": 3}}".to_owned(),
            "line 2",
        ),
    ] {
        let err = parse(doc.as_bytes(), Format::DataConnect, Channel::CONSUMPTION).unwrap_err();
        assert!(matches!(err, IngestError::Document { .. }), "{err}");
        assert!(err.to_string().contains(says), "{says}: {err}");
    }
    let err = parse(
        document(DAILY, &one).as_bytes(),
        Format::DataConnect,
        Channel::PRODUCTION,
    )
    .unwrap_err();
    assert!(err.to_string().contains("daily production"), "{err}");
}

#[test]
fn a_bad_usage_point_rejects_every_reading_with_its_line() {
    let doc = document(
        DAILY,
        &[
            r#"    {"value": "1", "date": "2024-03-30"}"#,
            r#"    {"value": "2", "date": "2024-03-31"}"#,
        ],
    )
    .replace("16401220101758", "1640122010175X");
    let parsed = parsed(&doc, Format::DataConnect);
    assert_eq!(parsed.daily, []);
    let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [8, 9]);
    assert!(parsed.rejected[0].reason.contains("not 14 digits"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// A Data Connect document with a few bytes overwritten never panics the parser, and every
    /// rejection names a line of the input.
    #[test]
    fn mutated_documents_never_panic_and_rejections_name_real_lines(
        edits in proptest::collection::vec(
            (proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()),
            0..6,
        ),
        which in 0usize..3,
    ) {
        let readings = [
            r#"    {"value": "100", "date": "2023-10-29 02:00:00", "interval_length": "PT30M", "measure_type": "B"}"#,
            r#"    {"value": "101", "date": "2023-10-29 02:30:00", "interval_length": "PT30M"}"#,
            r#"    {"value": "102", "date": "2023-10-29 02:00:00", "interval_length": "PT30M"}"#,
        ];
        let kinds = [CURVE, DAILY, MAX];
        let mut doc = document(kinds[which], &readings).into_bytes();
        for (at, byte) in edits {
            let at = at % doc.len();
            doc[at] = byte;
        }
        let lines = doc.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        for channel in [Channel::CONSUMPTION, Channel::PRODUCTION, Channel::MAX_POWER] {
            match parse(&doc, Format::DataConnect, channel) {
                Ok(parsed) => {
                    for r in &parsed.rejected {
                        proptest::prop_assert!(r.line >= 1 && r.line <= lines, "{:?}", r);
                    }
                }
                Err(IngestError::Document { line, .. }) => {
                    proptest::prop_assert!(line >= 1 && line <= lines, "line {}", line);
                }
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
        }
    }
}
