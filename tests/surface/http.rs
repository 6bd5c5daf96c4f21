//! The HTTP API, served in process on port 0 and driven with a real HTTP client.

use courbe_server::http::ServerConfig;

use super::support::{day_csv, day_value, r50, Server, METER};
use crate::util::{get, post, post_chunked, request};

const CSV: &str = "text/csv";
const XML: &str = "application/xml";

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), ServerConfig::default());
    (dir, server)
}

fn ingest_day(server: &Server) {
    let reply = post(&server.url("/v1/ingest"), CSV, &day_csv());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["accepted"], 48);
    assert_eq!(v["rejected"], serde_json::json!([]));
}

fn curve_url(meter: &str, query: &str) -> String {
    format!("/v1/meters/{meter}/curve?{query}")
}

#[test]
fn an_ingested_csv_day_answers_curve_energy_with_tariff_and_peak() {
    let (_dir, server) = server();
    ingest_day(&server);

    let curve = get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16")));
    assert_eq!(curve.status, 200, "{}", curve.body);
    assert_eq!(curve.content_type, "application/json");
    let v = curve.json();
    assert_eq!(v["meter"], METER);
    assert_eq!(v["channel"], "consumption");
    assert_eq!(v["unit"], "W");
    let points = v["points"].as_array().expect("points");
    assert_eq!(points.len(), 48);
    assert_eq!(points[0]["ts"], "2024-01-14T23:00:00Z");
    assert_eq!(points[0]["value"], day_value(0));
    assert_eq!(points[0]["step_min"], 30);
    assert_eq!(points[0]["quality"], "measured");
    assert_eq!(points[47]["ts"], "2024-01-15T22:30:00Z");
    assert_eq!(points[47]["value"], day_value(47));

    let energy = get(&server.url(&format!(
        "/v1/meters/{METER}/energy?from=2024-01-15&to=2024-01-17&period=day&tariff=HC:22:00-06:00"
    )));
    assert_eq!(energy.status, 200, "{}", energy.body);
    let v = energy.json();
    assert_eq!(v["unit"], "Wh");
    assert_eq!(v["tz"], "Europe/Paris");
    let periods = v["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 2, "every period of the range is listed");
    assert_eq!(periods[0]["start"], "2024-01-14T23:00:00Z");
    assert_eq!(periods[0]["end"], "2024-01-15T23:00:00Z");
    assert_eq!(periods[0]["energy_wh"], 8040.0);
    assert_eq!(periods[0]["points"], 48);
    assert_eq!(periods[0]["expected_points"], 48);
    assert_eq!(periods[0]["by_tariff"]["HC"], 2040.0);
    assert_eq!(periods[0]["by_tariff"]["HP"], 6000.0);
    assert_eq!(periods[1]["points"], 0);
    assert_eq!(periods[1]["energy_wh"], 0.0);

    let peak = get(&server.url(&format!(
        "/v1/meters/{METER}/peak?from=2024-01-15&to=2024-01-16&period=day"
    )));
    assert_eq!(peak.status, 200, "{}", peak.body);
    let v = peak.json();
    assert_eq!(v["meter"], METER);
    let p = &v["periods"][0];
    assert_eq!(p["value"], 570);
    assert_eq!(p["unit"], "W");
    assert_eq!(p["source"], "curve");
    assert_eq!(p["at"], "2024-01-15T22:30:00Z");
}

#[test]
fn a_curve_in_columns_is_one_run_of_consecutive_intervals() {
    let (_dir, server) = server();
    ingest_day(&server);
    let reply = get(&server.url(&curve_url(
        METER,
        "from=2024-01-15&to=2024-01-16&format=columns",
    )));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["start"], "2024-01-14T23:00:00Z");
    assert_eq!(runs[0]["step_min"], 30);
    let expected: Vec<i64> = (0..48).map(day_value).collect();
    assert_eq!(runs[0]["values"], serde_json::json!(expected));
    assert!(runs[0].get("quality").is_none(), "all measured: no quality");
}

#[test]
fn an_r50_document_lands_with_end_of_interval_timestamps_shifted_to_starts() {
    let (_dir, server) = server();
    let reply = post(&server.url("/v1/ingest"), XML, &r50(METER, None));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 48);
    let curve = get(&server.url(&curve_url(METER, "from=2024-01-16&to=2024-01-17"))).json();
    let points = curve["points"].as_array().expect("points");
    assert_eq!(points.len(), 48);
    assert_eq!(points[0]["ts"], "2024-01-15T23:00:00Z");
    assert_eq!(points[0]["value"], 1000);
    assert_eq!(points[47]["ts"], "2024-01-16T22:30:00Z");
    assert_eq!(points[47]["value"], 1047);
}

#[test]
fn an_r50_record_with_a_broken_element_is_rejected_by_its_line_and_the_rest_lands() {
    let (_dir, server) = server();
    let reply = post(&server.url("/v1/ingest"), XML, &r50(METER, Some(10)));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["accepted"], 47);
    let rejected = v["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 1, "{}", reply.body);
    // The first <PDC> is on line 5.
    assert_eq!(rejected[0]["line"], 15);
    assert!(!rejected[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
    let curve = get(&server.url(&curve_url(METER, "from=2024-01-16&to=2024-01-17"))).json();
    assert_eq!(curve["points"].as_array().map(Vec::len), Some(47));
}

#[test]
fn malformed_csv_lines_are_rejected_with_their_numbers_while_the_good_lines_land() {
    let (_dir, server) = server();
    let body = format!(
        "meter_id,ts,value_w,quality,step_min\n\
         {METER},2024-01-15T00:00:00+01:00,500,measured,30\n\
         {METER},not-a-date,500,measured,30\n\
         {METER},2024-01-15T00:30:00+01:00,abc,measured,30\n\
         {METER},2024-01-15T01:00:00+01:00,510\n\
         bad id!,2024-01-15T01:30:00+01:00,1,measured,30\n\
         {METER},2024-01-15T01:30:00+01:00,520,estimated,30\n"
    );
    let reply = post(&server.url("/v1/ingest"), CSV, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["accepted"], 3);
    let lines: Vec<u64> = v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, vec![3, 4, 6]);
    let curve = get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16"))).json();
    let values: Vec<i64> = curve["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["value"].as_i64().expect("value"))
        .collect();
    assert_eq!(values, vec![500, 510, 520]);
    assert_eq!(curve["points"][2]["quality"], "estimated");
}

#[test]
fn a_body_that_is_not_a_document_is_a_400() {
    let (_dir, server) = server();
    let reply = post(
        &server.url("/v1/ingest"),
        CSV,
        "this is not,a header\n1,2\n",
    );
    reply.assert_error(400, "malformed_document");
    let reply = post(&server.url("/v1/ingest"), XML, "<R50><PRM><Id_PRM>");
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[test]
fn an_oversized_body_is_refused_with_413_declared_or_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServerConfig {
        max_body_bytes: 1_024,
        ..ServerConfig::default()
    };
    let server = Server::start(dir.path(), config);
    let big = day_csv();
    assert!(big.len() > 1_024);
    post(&server.url("/v1/ingest"), CSV, &big).assert_error(413, "payload_too_large");
    post_chunked(&server.url("/v1/ingest"), CSV, big.as_bytes())
        .assert_error(413, "payload_too_large");
    // Nothing of the refused bodies landed.
    get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16")))
        .assert_error(404, "unknown_meter");
    // A body under the limit is read.
    let small: String = day_csv()
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let reply = post(&server.url("/v1/ingest"), CSV, &small);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 2);
}

#[test]
fn bad_dates_and_reversed_ranges_are_400_with_a_message() {
    let (_dir, server) = server();
    ingest_day(&server);
    let message = get(&server.url(&curve_url(METER, "from=yesterday&to=2024-01-16")))
        .assert_error(400, "invalid_argument");
    assert!(message.contains("from"), "{message}");
    get(&server.url(&curve_url(METER, "from=2024-01-15T00:00:00&to=2024-01-16")))
        .assert_error(400, "invalid_argument");
    let message = get(&server.url(&curve_url(METER, "from=2024-01-16&to=2024-01-15")))
        .assert_error(400, "invalid_argument");
    assert!(message.contains("before"), "{message}");
    get(&server.url(&curve_url(METER, "to=2024-01-15"))).assert_error(400, "invalid_argument");
    let message = get(&server.url(&curve_url(METER, "from=2000-01-01&to=2024-01-01")))
        .assert_error(400, "invalid_argument");
    assert!(message.contains("limit"), "{message}");
}

#[test]
fn an_encoded_offset_and_a_plus_read_as_space_are_both_understood() {
    let (_dir, server) = server();
    ingest_day(&server);
    for query in [
        "from=2024-01-15T00:00:00%2B01:00&to=2024-01-15T01:00:00%2B01:00",
        "from=2024-01-15T00:00:00+01:00&to=2024-01-15T01:00:00+01:00",
        "from=2024-01-14T23:00:00Z&to=2024-01-15T00:00:00Z",
    ] {
        let reply = get(&server.url(&curve_url(METER, query)));
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        assert_eq!(
            reply.json()["points"].as_array().map(Vec::len),
            Some(2),
            "{query}"
        );
    }
}

#[test]
fn an_unknown_meter_is_404_and_a_malformed_id_is_400() {
    let (_dir, server) = server();
    ingest_day(&server);
    for path in [
        "/v1/meters/00000000000000/curve?from=2024-01-15&to=2024-01-16",
        "/v1/meters/00000000000000/energy?from=2024-01-15&to=2024-01-16&period=day",
        "/v1/meters/00000000000000/peak?from=2024-01-15&to=2024-01-16&period=day",
        "/v1/fleet/curve?from=2024-01-15&to=2024-01-16&meters=00000000000000",
    ] {
        get(&server.url(path)).assert_error(404, "unknown_meter");
    }
    request("DELETE", &server.url("/v1/meters/00000000000000/curve"))
        .assert_error(404, "unknown_meter");
    get(&server.url("/v1/meters/a%20b/curve?from=2024-01-15&to=2024-01-16"))
        .assert_error(400, "invalid_argument");
}

#[test]
fn unknown_zone_period_or_tariff_are_400() {
    let (_dir, server) = server();
    ingest_day(&server);
    let energy = |query: &str| {
        get(&server.url(&format!(
            "/v1/meters/{METER}/energy?from=2024-01-15&to=2024-01-16&{query}"
        )))
    };
    energy("period=day&tz=Mars/Olympus_Mons").assert_error(400, "unknown_zone");
    energy("period=fortnight").assert_error(400, "unknown_period");
    energy("period=day&tariff=HC:25:00-06:00").assert_error(400, "bad_tariff");
    energy("period=day&tariff=nonsense").assert_error(400, "bad_tariff");
    energy("period=day&channel=gas").assert_error(400, "invalid_argument");
}

#[test]
fn a_wrong_method_is_405_with_a_json_error_and_an_unknown_path_404() {
    let (_dir, server) = server();
    for (method, path) in [
        ("POST", "/v1/meters/x/curve"),
        ("PUT", "/v1/meters/x/curve"),
        ("GET", "/v1/ingest"),
        ("DELETE", "/v1/fleet/curve"),
        ("POST", "/healthz"),
    ] {
        request(method, &server.url(path)).assert_error(405, "method_not_allowed");
    }
    get(&server.url("/v1/nothing-here")).assert_error(404, "not_found");
}

#[test]
fn erasing_a_range_then_the_whole_curve_removes_the_points() {
    let (_dir, server) = server();
    ingest_day(&server);
    let reply = request(
        "DELETE",
        &server.url(&curve_url(
            METER,
            "from=2024-01-15T00:00:00%2B01:00&to=2024-01-15T06:00:00%2B01:00",
        )),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["points_removed"], 12);
    let curve = get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16"))).json();
    let points = curve["points"].as_array().expect("points");
    assert_eq!(points.len(), 36);
    assert_eq!(points[0]["ts"], "2024-01-15T05:00:00Z");

    let reply = request("DELETE", &server.url(&format!("/v1/meters/{METER}/curve")));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["points_removed"], 36);
    get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16")))
        .assert_error(404, "unknown_meter");
}

#[test]
fn fleet_curve_and_energy_sum_the_meters() {
    let (_dir, server) = server();
    ingest_day(&server);
    let other = day_csv().replace(METER, "09111642617348");
    assert_eq!(post(&server.url("/v1/ingest"), CSV, &other).status, 200);

    let curve = get(&server.url("/v1/fleet/curve?from=2024-01-15&to=2024-01-16")).json();
    assert_eq!(curve["unit"], "W");
    let points = curve["points"].as_array().expect("points");
    assert_eq!(points.len(), 48);
    assert_eq!(points[3]["value"], 2 * day_value(3));
    assert_eq!(points[3]["meters"], 2);
    let one = get(&server.url(&format!(
        "/v1/fleet/curve?from=2024-01-15&to=2024-01-16&meters={METER}"
    )))
    .json();
    assert_eq!(one["points"][3]["meters"], 1);

    let energy = get(&server.url("/v1/fleet/energy?from=2024-01-15&to=2024-01-16&period=day"));
    assert_eq!(energy.status, 200, "{}", energy.body);
    let v = energy.json();
    assert_eq!(v["unit"], "Wh");
    let meters = v["meters"].as_array().expect("meters");
    assert_eq!(meters.len(), 2);
    assert_eq!(meters[0]["meter"], METER);
    assert_eq!(meters[0]["periods"][0]["energy_wh"], 8040.0);

    let csv =
        get(&server.url("/v1/fleet/energy?from=2024-01-15&to=2024-01-16&period=day&format=csv"));
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    assert_eq!(
        csv.body,
        format!(
            "meter_id,start,end,energy_wh\n\
             {METER},2024-01-14T23:00:00Z,2024-01-15T23:00:00Z,8040\n\
             09111642617348,2024-01-14T23:00:00Z,2024-01-15T23:00:00Z,8040\n"
        )
    );
}

#[test]
fn healthz_answers_and_metrics_count_requests_ingest_and_store_size() {
    let (_dir, server) = server();
    let health = get(&server.url("/healthz"));
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    ingest_day(&server);
    let bad = format!("meter_id,ts,value_w\n{METER},oops,1\n");
    assert_eq!(post(&server.url("/v1/ingest"), CSV, &bad).status, 200);
    get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16")));
    get(&server.url(&curve_url(METER, "from=bad&to=2024-01-16")));

    let metrics = get(&server.url("/metrics"));
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    let text = metrics.body;
    assert!(text.contains(
        "courbe_http_requests_total{route=\"/v1/meters/:id/curve\",method=\"GET\",status=\"200\"} 1\n"
    ), "{text}");
    assert!(text.contains(
        "courbe_http_requests_total{route=\"/v1/meters/:id/curve\",method=\"GET\",status=\"400\"} 1\n"
    ), "{text}");
    assert!(
        text.contains("courbe_ingest_points_accepted_total 48\n"),
        "{text}"
    );
    assert!(
        text.contains("courbe_ingest_records_rejected_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "courbe_http_request_duration_seconds_count{route=\"/v1/ingest\",method=\"POST\"} 2\n"
        ),
        "{text}"
    );
    assert!(text.contains("courbe_store_meters 1\n"), "{text}");
    let points_line = text
        .lines()
        .find(|l| l.starts_with("courbe_store_points "))
        .expect("store points");
    assert_eq!(points_line, "courbe_store_points 48");
}

#[test]
fn the_server_shuts_down_gracefully_and_the_data_stays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), ServerConfig::default());
    ingest_day(&server);
    let store = server.stop();
    drop(store);
    let server = Server::start(dir.path(), ServerConfig::default());
    let curve = get(&server.url(&curve_url(METER, "from=2024-01-15&to=2024-01-16"))).json();
    assert_eq!(curve["points"].as_array().map(Vec::len), Some(48));
}

#[test]
fn concurrent_ingests_over_http_all_land() {
    let (_dir, server) = server();
    let meters: Vec<String> = (0..8).map(|i| format!("0911164261734{i}")).collect();
    std::thread::scope(|scope| {
        for meter in &meters {
            let (server, body) = (&server, day_csv().replace(METER, meter));
            scope.spawn(move || {
                let reply = post(&server.url("/v1/ingest"), CSV, &body);
                assert_eq!(reply.status, 200, "{}", reply.body);
                assert_eq!(reply.json()["accepted"], 48);
            });
        }
    });
    let curve = get(&server.url("/v1/fleet/curve?from=2024-01-15&to=2024-01-16")).json();
    let points = curve["points"].as_array().expect("points");
    assert_eq!(points.len(), 48);
    assert!(points.iter().all(|p| p["meters"] == 8), "{curve}");
    assert_eq!(points[0]["value"], 8 * day_value(0));
}

#[test]
fn a_fleet_energy_answer_over_the_size_limit_is_400() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::default();
    config.limits.max_fleet_energy_cells = 10;
    let server = Server::start(dir.path(), config);
    ingest_day(&server);
    let ok = get(&server.url("/v1/fleet/energy?from=2024-01-15&to=2024-01-17&period=day"));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let message = get(&server.url("/v1/fleet/energy?from=2024-01-01&to=2024-03-01&period=day"))
        .assert_error(400, "invalid_argument");
    assert!(message.contains("limit"), "{message}");
}
