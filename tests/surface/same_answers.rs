//! The same question gets the same answer over HTTP, from `courbe query` and from the query
//! functions called directly on the engine.

use std::sync::Arc;

use courbe::engine::{Options, Store};
use courbe::query::{self, Calendar, Period, Tariff};
use courbe::Channel;
use courbe_server::http::ServerConfig;

use super::support::{courbe_ok, Server};
use crate::util::get;

const FROM: &str = "2024-01-01";
const TO: &str = "2024-01-11";
const FROM_UTC: i64 = 1_704_063_600; // 2024-01-01T00:00:00+01:00
const TO_UTC: i64 = 1_704_927_600; // 2024-01-11T00:00:00+01:00

#[test]
fn http_answers_equal_courbe_query_output_and_direct_query_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data").display().to_string();
    let csv = courbe_ok(
        &["gen", "--meters", "20", "--days", "10", "--seed", "9"],
        None,
    );
    courbe_ok(&["ingest", "--data", &data, "-"], Some(csv.as_bytes()));
    let meter = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .expect("a meter")
        .to_string();

    // (HTTP path and query, `courbe query` arguments) for one question each.
    let questions: Vec<(String, Vec<String>)> = vec![
        (
            format!("/v1/meters/{meter}/curve?from={FROM}&to={TO}"),
            vec!["curve", "--meter", &meter],
        ),
        (
            format!("/v1/meters/{meter}/curve?from={FROM}&to={TO}&format=columns"),
            vec!["curve", "--meter", &meter, "--format", "columns"],
        ),
        (
            format!(
                "/v1/meters/{meter}/energy?from={FROM}&to={TO}&period=day&tariff=HC:22:00-06:00"
            ),
            vec![
                "energy",
                "--meter",
                &meter,
                "--period",
                "day",
                "--tariff",
                "HC:22:00-06:00",
            ],
        ),
        (
            format!("/v1/meters/{meter}/peak?from={FROM}&to={TO}&period=day"),
            vec!["peak", "--meter", &meter, "--period", "day"],
        ),
        (
            format!("/v1/fleet/curve?from={FROM}&to={TO}"),
            vec!["fleet-curve"],
        ),
        (
            format!("/v1/fleet/energy?from={FROM}&to={TO}&period=week"),
            vec!["fleet-energy", "--period", "week"],
        ),
        (
            format!("/v1/fleet/energy?from={FROM}&to={TO}&period=day&format=csv"),
            vec!["fleet-energy", "--period", "day", "--format", "csv"],
        ),
    ]
    .into_iter()
    .map(|(path, args)| (path, args.into_iter().map(String::from).collect()))
    .collect();

    let cli_answers: Vec<String> = questions
        .iter()
        .map(|(_, args)| {
            let mut full = vec!["query".to_string()];
            full.extend(args.iter().cloned());
            full.extend(["--data", &data, "--from", FROM, "--to", TO].map(String::from));
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            courbe_ok(&refs, None)
        })
        .collect();

    let store = Arc::new(Store::open(&data, Options::default()).expect("open"));
    let server = Server::start_with(store.clone(), ServerConfig::default());
    for ((path, _), cli) in questions.iter().zip(&cli_answers) {
        let reply = get(&server.url(path));
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        // `courbe query` ends its JSON line with a newline; CSV is the same bytes.
        let expected = cli.strip_suffix('\n').filter(|_| !path.contains("csv"));
        assert_eq!(reply.body, expected.unwrap_or(cli), "{path}");
    }

    // The engine's own answers, through the query functions.
    let snapshot = store.snapshot();
    let calendar = Calendar {
        from_utc: FROM_UTC,
        to_utc: TO_UTC,
        period: Period::Day,
        tz: query::time_zone("Europe/Paris").expect("zone"),
    };
    let points =
        query::curve(&*snapshot, &meter, Channel::CONSUMPTION, FROM_UTC, TO_UTC).expect("curve");
    let http_curve = get(&server.url(&questions[0].0)).json();
    let http_points = http_curve["points"].as_array().expect("points");
    assert_eq!(http_points.len(), points.len());
    for (json, point) in http_points.iter().zip(&points) {
        let ts: jiff::Timestamp = json["ts"].as_str().expect("ts").parse().expect("RFC 3339");
        assert_eq!(ts.as_second(), point.ts_utc);
        assert_eq!(json["value"], point.value);
        assert_eq!(json["step_min"], point.step_min);
        assert_eq!(json["quality"], point.quality.as_str());
    }

    let tariff: Tariff = "HC:22:00-06:00".parse().expect("tariff");
    let periods = query::energy(
        &*snapshot,
        &meter,
        Channel::CONSUMPTION,
        &calendar,
        Some(&tariff),
    )
    .expect("energy");
    let http_energy = get(&server.url(&questions[2].0)).json();
    let http_periods = http_energy["periods"].as_array().expect("periods");
    assert_eq!(http_periods.len(), periods.len());
    assert_eq!(periods.len(), 10);
    for (json, period) in http_periods.iter().zip(&periods) {
        assert_eq!(
            json["energy_wh"].as_f64(),
            Some(period.energy_wmin as f64 / 60.0)
        );
        assert_eq!(json["points"], period.points);
        assert_eq!(json["expected_points"], period.expected_points);
        let (hp, hc) = period.by_tariff_wmin.expect("by tariff");
        assert_eq!(json["by_tariff"]["HP"].as_f64(), Some(hp / 60.0));
        assert_eq!(json["by_tariff"]["HC"].as_f64(), Some(hc / 60.0));
    }

    let fleet = query::fleet_curve(&*snapshot, Channel::CONSUMPTION, FROM_UTC, TO_UTC, None)
        .expect("fleet curve");
    let http_fleet = get(&server.url(&questions[4].0)).json();
    let http_fleet = http_fleet["points"].as_array().expect("points");
    assert_eq!(http_fleet.len(), fleet.len());
    for (json, point) in http_fleet.iter().zip(&fleet) {
        assert_eq!(json["value"], point.total);
        assert_eq!(json["meters"], point.meters);
    }
    assert_eq!(fleet.iter().map(|p| p.meters).max(), Some(20));
}
