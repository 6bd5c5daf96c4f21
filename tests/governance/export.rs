//! Portability: the export of a meter, and its round trip through `courbe ingest`.

use std::process::Command;

use courbe::engine::{Options, Store};
use courbe::Channel;
use courbe_server::question::{Limits, QueryKind, QueryParams, Question};

use super::access::fleet_server;
use super::support::*;

#[test]
fn the_json_export_holds_every_channel_and_the_consent_and_grant_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let consent = serde_json::json!({"collection": "granted", "step_min": 30});
    assert_eq!(
        server
            .post_json(CONSUMER_A, &format!("/v1/meters/{A}/consent"), &consent)
            .status,
        201
    );
    let reply = server.get(CONSUMER_A, &format!("/v1/meters/{A}/export?format=json"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let doc = reply.json();
    assert_eq!(doc["meter"], A);
    assert_eq!(doc["channels"]["consumption"].as_array().unwrap().len(), 96);
    assert_eq!(doc["channels"]["consumption"][0]["value"], 100);
    assert_eq!(doc["channels"]["max_power"][0]["value"], 6_000);
    assert_eq!(doc["channels"]["production"], serde_json::json!([]));
    assert_eq!(doc["consent"][0]["collection"], "granted");
    assert_eq!(doc["consent"][0]["by"], format!("consumer:{A}"));
    assert_eq!(doc["grants"][0]["supplier"], "acme");
    assert_eq!(
        doc["grants"][0]["kinds"],
        serde_json::json!(["daily", "max_power", "curve"]),
        "the consumer sees what each grant allows"
    );
    let unknown = server.get(OPERATOR, &format!("/v1/meters/{NOBODY}/export"));
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_csv_export_round_trips_through_courbe_ingest_to_the_same_points() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let copy = dir.path().join("copy");
    for channel in [Channel::CONSUMPTION, Channel::MAX_POWER] {
        let reply = server.get(
            CONSUMER_A,
            &format!(
                "/v1/meters/{A}/export?format=csv&channel={}",
                channel.as_str()
            ),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply
            .body
            .starts_with("meter_id,ts,value_w,quality,step_min\n"));
        let file = dir.path().join(format!("{}.csv", channel.as_str()));
        std::fs::write(&file, &reply.body).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_courbe"))
            .args(["ingest", "--data"])
            .arg(&copy)
            .args(["--channel", channel.as_str()])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let copied = Store::open(&copy, Options::default()).unwrap();
    let all = (i64::MIN / 4, i64::MAX / 4);
    for channel in Channel::ALL {
        let original = server
            .store
            .snapshot()
            .points(A, channel, all.0, all.1)
            .unwrap();
        let read_back = copied.snapshot().points(A, channel, all.0, all.1).unwrap();
        assert_eq!(original, read_back, "{}", channel.as_str());
    }
    // The same answers: energy by day with a tariff, and peaks (from max_power).
    let d = day_utc(-3);
    for (kind, extra) in [
        (QueryKind::Energy, "&period=day&tariff=HC:22:00-06:00"),
        (QueryKind::Peak, "&period=day"),
        (QueryKind::Curve, "&format=columns"),
    ] {
        let uri: axum::http::Uri = format!("/?from={}&to={}{extra}", rfc(d), rfc(d + 2 * 86_400))
            .parse()
            .unwrap();
        let axum::extract::Query(params) =
            axum::extract::Query::<QueryParams>::try_from_uri(&uri).unwrap();
        let limits = Limits::default();
        let (question, encoding) = Question::from_params(kind, Some(A), &params, &limits).unwrap();
        let answer = |store: &Store| {
            courbe_server::http::body::answer(&*store.snapshot(), &question, &limits)
                .unwrap()
                .encode(encoding)
                .unwrap()
                .0
        };
        let copied_answer = answer(&copied);
        assert_eq!(answer(&server.store), copied_answer, "{kind:?}");
        let text = String::from_utf8(copied_answer).unwrap();
        assert!(
            text.contains(A) && text.contains("\"start\""),
            "a real answer: {text}"
        );
    }
}

#[test]
fn a_long_history_streams_in_chunks_that_form_one_valid_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let mut batch = courbe::engine::Batch::new();
    for day in -90..-3 {
        day_batch(&mut batch, A, day, 1_000);
    }
    server.store.ingest(&batch).unwrap();
    server.store.flush().unwrap();
    // Corrections after the flush: the export holds the newest value of each interval.
    let mut fix = courbe::engine::Batch::new();
    day_batch(&mut fix, A, -50, 7_000);
    server.store.ingest(&fix).unwrap();
    let reply = server.get(OPERATOR, &format!("/v1/meters/{A}/export"));
    assert_eq!(reply.status, 200);
    assert!(reply.body.len() > 256 * 1024, "{} bytes", reply.body.len());
    let doc = reply.json();
    let points = doc["channels"]["consumption"].as_array().unwrap();
    assert_eq!(points.len(), 89 * 48);
    let ts: Vec<&str> = points.iter().map(|p| p["ts"].as_str().unwrap()).collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "in time order, once each"
    );
    let corrected = rfc(day_utc(-50));
    let at = points
        .iter()
        .position(|p| p["ts"] == corrected.as_str())
        .unwrap();
    assert_eq!(points[at]["value"], 7_000);
    let csv = server.get(OPERATOR, &format!("/v1/meters/{A}/export?format=csv"));
    assert_eq!(csv.body.lines().count(), 1 + 89 * 48);
}
