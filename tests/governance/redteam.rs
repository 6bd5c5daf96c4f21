//! Attacks on the merged fixes of access, anonymity, consent and erasure that found a hole or
//! that no other test made: each test is named for the rule it holds.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use courbe::engine::fs::testing::{FaultOp, SimFs};
use courbe::engine::Batch;
use courbe::governance::auth::token_hash;
use courbe::governance::GovernanceConfig;

use super::support::*;

/// Meters of one IRIS (`I1`, commune 75056), each with day -2 at base `100 + index`.
fn neighbour(i: u32) -> String {
    format!("0911164263{i:04}")
}

/// Thirteen neighbours in one IRIS, and a consumer token (`tok-n0`) for the first.
fn neighbourhood(dir: &std::path::Path) -> Server {
    let server = Server::start(dir);
    let mut batch = Batch::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    for i in 0..13 {
        day_batch(&mut batch, &neighbour(i), -2, 100 + i as i32);
        groups.push_str(&format!("{},75056,I1\n", neighbour(i)));
    }
    server.store.ingest(&batch).unwrap();
    let memberships = courbe::governance::groups::parse_csv(&groups).unwrap();
    server.gov.load_groups(memberships).unwrap();
    let tokens = format!(
        "{}{} consumer {}\n",
        tokens_file_text(),
        token_hash("tok-n0"),
        neighbour(0)
    );
    std::fs::write(&server.tokens_path, tokens).unwrap();
    server
}

#[test]
fn a_comparison_is_of_whole_paris_months_so_no_quartile_is_a_neighbours_half_hour() {
    let dir = tempfile::tempdir().unwrap();
    let server = neighbourhood(&dir.path().join("data"));
    let me = neighbour(0);
    let d = day_utc(-2);
    // The attack: one half-hour as "a month". With 13 contributors the first quartile is the
    // 4th smallest half-hour energy: exactly neighbour 3's (103 W over 30 min = 51.5 Wh).
    let half_hour = format!("from={}&to={}&tz=UTC", rfc(d), rfc(d + 1_800));
    let month = paris_month(-2);
    let utc_month = month.replace("tz=Europe/Paris", "tz=UTC");
    let paris = |days: i64| rfc(day_utc(days))[..10].to_string();
    for range in [
        half_hour,
        format!("from={}&to={}", paris(-2), paris(-1)),
        utc_month,
        month.replace("&tz=Europe/Paris", "&tz=America/St_Johns"),
    ] {
        for token in [OPERATOR, "tok-n0"] {
            let path = format!("/v1/meters/{me}/compare?{range}");
            let message = server
                .get(token, &path)
                .assert_error(400, "invalid_argument");
            assert!(message.contains("month"), "{path}: {message}");
        }
    }
    // Whole released Paris months are answered, as before.
    server.release_days(-2, -1);
    let reply = server.get("tok-n0", &format!("/v1/meters/{me}/compare?{month}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["months"][0]["groups"][0]["meters"], 13, "{body}");
}

#[test]
fn a_late_meter_cannot_be_recovered_from_two_comparisons_of_a_released_month() {
    let dir = tempfile::tempdir().unwrap();
    let server = neighbourhood(&dir.path().join("data"));
    let me = neighbour(0);
    let path = format!("/v1/meters/{me}/compare?{}", paris_month(-2));
    server.release_days(-2, -1);
    let before = server.get("tok-n0", &path);
    assert_eq!(before.status, 200, "{}", before.body);
    let before = before.json();
    assert_eq!(before["months"][0]["groups"][0]["meters"], 13, "{before}");
    // Frozen as a live comparison computes it: the operator's live answer is the same then.
    let live = server.get(OPERATOR, &path).json();
    assert_eq!(live["months"][0], before["months"][0]);
    // A 14th meter of I1 arrives late: live, its month would be 2 × median' − v7 exactly.
    let late = neighbour(13);
    let mut batch = Batch::new();
    day_batch(&mut batch, &late, -2, 300);
    server.store.ingest(&batch).unwrap();
    let groups: String = std::iter::once("meter_id,commune,iris\n".to_string())
        .chain((0..14).map(|i| format!("{},75056,I1\n", neighbour(i))))
        .collect();
    let memberships = courbe::governance::groups::parse_csv(&groups).unwrap();
    server.gov.load_groups(memberships).unwrap();
    let live = server.get(OPERATOR, &path).json();
    assert_eq!(live["months"][0]["groups"][0]["meters"], 14, "{live}");
    assert_ne!(
        live["months"][0]["groups"][0]["median_wh"],
        before["months"][0]["groups"][0]["median_wh"]
    );
    // The consumer reads the released month again: the same distributions, its own energy.
    let after = server.get("tok-n0", &path);
    assert_eq!(after.status, 200, "{}", after.body);
    let after = after.json();
    assert_eq!(after["months"][0]["groups"], before["months"][0]["groups"]);
    assert_eq!(
        after["months"][0]["energy_wh"],
        before["months"][0]["energy_wh"]
    );
}

#[test]
fn a_supplier_read_the_audit_trail_cannot_record_is_not_answered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens_path = data.with_extension("tokens");
    std::fs::write(&tokens_path, tokens_file_text()).unwrap();
    let config = GovernanceConfig {
        tokens_path: Some(tokens_path),
        tokens_recheck: Duration::ZERO,
        ..GovernanceConfig::default()
    };
    let fs = SimFs::new();
    let server = Server::start_on(&data, config, Arc::new(fs.clone()));
    let mut batch = Batch::new();
    day_batch(&mut batch, A, -2, 100);
    server.store.ingest(&batch).unwrap();
    server
        .gov
        .create_grant(A, "acme", day_utc(-10), day_utc(300), "operator:setup")
        .unwrap();
    let d = day_utc(-2);
    let range = format!("from={}&to={}", rfc(d), rfc(d + 86_400));
    // The registry's next write fails: the read is not recorded, so it is not answered.
    fs.fail_nth(FaultOp::Write, 0);
    for what in ["curve", "energy"] {
        let path = format!("/v1/meters/{A}/{what}?{range}");
        let reply = server.get(ACME, &path);
        reply.assert_error(500, "internal");
        assert!(!reply.body.contains("energy_wh") && !reply.body.contains("\"points\""));
    }
    let audit = server.get(OPERATOR, &format!("/v1/audit?meter={A}")).json();
    assert_eq!(audit["records"], serde_json::json!([]), "{audit}");
    // The operator's reads are not audited and still answered.
    let reply = server.get(OPERATOR, &format!("/v1/meters/{A}/curve?{range}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Sends `request` as raw bytes to `server` and returns the status line (empty when none
/// came within `wait`).
fn raw_status(server: &Server, request: &str, wait: Duration) -> String {
    let url = server.url("/");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn two_authorization_headers_are_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut batch = Batch::new();
    day_batch(&mut batch, A, -2, 100);
    server.store.ingest(&batch).unwrap();
    let d = day_utc(-2);
    let target = format!(
        "/v1/meters/{A}/curve?from={}&to={}",
        rfc(d),
        rfc(d + 86_400)
    );
    // Whichever a reader takes, the first or the last, two credentials are none.
    for (first, second) in [(OPERATOR, PUBLIC), (PUBLIC, OPERATOR), (OPERATOR, OPERATOR)] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {first}\r\n\
             Authorization: Bearer {second}\r\nConnection: close\r\n\r\n"
        );
        let status = raw_status(&server, &request, Duration::from_secs(30));
        assert!(status.contains(" 401 "), "{first} then {second}: {status}");
    }
    let one = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}\r\n\
         Connection: close\r\n\r\n"
    );
    assert!(raw_status(&server, &one, Duration::from_secs(30)).contains(" 200 "));
}

#[test]
fn a_suppliers_read_of_a_meters_consent_is_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let server = super::access::fleet_server(&dir.path().join("data"));
    let reply = server.get(ACME, &format!("/v1/meters/{A}/consent"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A refused read is not a read.
    assert_eq!(
        server
            .get(OTHER_SUPPLIER, &format!("/v1/meters/{A}/consent"))
            .status,
        403
    );
    let trail = server.get(OPERATOR, &format!("/v1/audit?meter={A}")).json();
    let records = trail["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{trail}");
    assert_eq!(records[0]["who"], "supplier:acme");
    assert_eq!(records[0]["what"], "/v1/meters/:id/consent");
    // The whole history was read: no bound.
    assert_eq!(records[0]["from"], serde_json::Value::Null);
    assert_eq!(records[0]["to"], serde_json::Value::Null);
}

#[test]
fn groups_that_do_not_nest_are_refused_so_a_commune_minus_an_iris_is_never_one_meter() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut batch = Batch::new();
    for i in 0..21 {
        day_batch(&mut batch, &neighbour(i), -2, 100 + i as i32);
    }
    server.store.ingest(&batch).unwrap();
    // Commune X: ten meters in IRIS P and the victim (neighbour 10) in IRIS Y; Y's other ten
    // meters lie in commune Z. Each group holds at least ten, yet X minus P is the victim.
    let mut groups = String::from("meter_id,commune,iris\n");
    for i in 0..21 {
        let (commune, iris) = match i {
            0..=9 => ("X", "P"),
            10 => ("X", "Y"),
            _ => ("Z", "Y"),
        };
        groups.push_str(&format!("{},{commune},{iris}\n", neighbour(i)));
    }
    let put = |csv: &str| server.call(Some(OPERATOR), "PUT", "/v1/groups", Some(("text/csv", csv)));
    let message = put(&groups).assert_error(400, "invalid_argument");
    assert!(message.contains("IRIS \"Y\""), "{message}");
    let sizes = server.get(OPERATOR, "/v1/groups").json();
    assert_eq!(
        sizes["meters"], 0,
        "nothing of a refused load is kept: {sizes}"
    );
    // Nor can a later load move one meter out of the nesting of the earlier ones.
    let nested = groups.replace(",X,Y\n", ",Z,Y\n");
    assert_eq!(put(&nested).status, 200);
    let moved = format!("meter_id,commune,iris\n{},X,Y\n", neighbour(10));
    put(&moved).assert_error(400, "invalid_argument");
    // A building lies in one IRIS.
    let buildings = format!(
        "meter_id,commune,iris,building\n{},X,P,B1\n{},Z,Y,B1\n",
        neighbour(0),
        neighbour(11)
    );
    let message = put(&buildings).assert_error(400, "invalid_argument");
    assert!(message.contains("building \"B1\""), "{message}");
}

#[test]
fn a_governance_body_is_bounded_in_time_and_size_as_an_ingest_body() {
    let dir = tempfile::tempdir().unwrap();
    let config = courbe_server::http::ServerConfig {
        body_read_timeout: Duration::from_secs(1),
        ..courbe_server::http::ServerConfig::default()
    };
    let server = Server::start_serving(&dir.path().join("data"), config);
    // A consumer's consent, an operator's grant and groups: each body stalls after a byte.
    for (token, method, path) in [
        (CONSUMER_A, "POST", format!("/v1/meters/{A}/consent")),
        (OPERATOR, "POST", format!("/v1/meters/{A}/grants")),
        (OPERATOR, "PUT", "/v1/groups".to_string()),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        );
        let started = std::time::Instant::now();
        let status = raw_status(&server, &request, Duration::from_secs(8));
        assert!(status.contains(" 408 "), "{method} {path}: {status:?}");
        assert!(started.elapsed() < Duration::from_secs(8));
    }
    // A consent or grant is a small document.
    let big = format!(
        "{{\"collection\":\"granted\",\"from\":\"{}\"}}",
        " ".repeat(100_000)
    );
    let reply = server.call(
        Some(CONSUMER_A),
        "POST",
        &format!("/v1/meters/{A}/consent"),
        Some(("application/json", &big)),
    );
    reply.assert_error(413, "payload_too_large");
}

#[test]
fn a_parameter_no_governance_route_reads_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = super::access::fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let range = format!("from={}&to={}", rfc(d), rfc(d + 86_400));
    let month = paris_month(-2);
    let csv = ("text/csv", "meter_id,ts,value_w\n");
    for (token, method, path, body, name) in [
        (
            PUBLIC,
            "GET",
            format!("/v1/aggregates?{range}&levle=building"),
            None,
            "levle",
        ),
        (
            CONSUMER_A,
            "GET",
            format!("/v1/meters/{A}/compare?{month}&meters={B}"),
            None,
            "meters",
        ),
        (
            CONSUMER_A,
            "GET",
            format!("/v1/meters/{A}/compare?{month}&level=iris"),
            None,
            "level",
        ),
        (
            OPERATOR,
            "GET",
            format!("/v1/audit?metre={A}"),
            None,
            "metre",
        ),
        (
            CONSUMER_A,
            "GET",
            format!("/v1/meters/{A}/consent?x=1"),
            None,
            "x",
        ),
        (
            CONSUMER_A,
            "GET",
            format!("/v1/meters/{A}/grants?x=1"),
            None,
            "x",
        ),
        (OPERATOR, "GET", "/v1/groups?x=1".to_string(), None, "x"),
        (
            PUBLIC,
            "GET",
            "/v1/aggregates/releases?channel=production".to_string(),
            None,
            "channel",
        ),
        (
            OPERATOR,
            "POST",
            "/v1/ingest?chanel=production".to_string(),
            Some(csv),
            "chanel",
        ),
    ] {
        let reply = server.call(Some(token), method, &path, body);
        let message = reply.assert_error(400, "invalid_argument");
        assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
    }
    // What each route reads is still read.
    server.release_days(-2, -1);
    for (token, path) in [
        (
            PUBLIC,
            format!("/v1/aggregates?{range}&level=iris&code=751010101&kind=curve&tz=UTC"),
        ),
        (
            CONSUMER_A,
            format!("/v1/meters/{A}/compare?{month}&channel=consumption"),
        ),
        (
            OPERATOR,
            format!("/v1/audit?meter={A}&who=supplier:acme&{range}"),
        ),
    ] {
        let reply = server.get(token, &path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
}

#[test]
fn a_meter_spelled_another_way_in_the_path_is_the_same_meter_for_access_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let server = super::access::fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let range = format!("from={}&to={}", rfc(d), rfc(d + 86_400));
    // `%30` is `0`: the guard and the handler decode the path alike.
    let spelled = |meter: &str| format!("%30{}", &meter[1..]);
    let curve = |meter: &str| format!("/v1/meters/{meter}/curve?{range}");
    server
        .get(ACME, &curve(&spelled(B)))
        .assert_error(403, "forbidden");
    server
        .get(CONSUMER_B, &curve(&spelled(A)))
        .assert_error(403, "forbidden");
    assert_eq!(server.get(CONSUMER_A, &curve(&spelled(A))).status, 200);
    let reply = server.get(ACME, &curve(&spelled(A)));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["meter"], A);
    // Dots are meter-id characters, never a way up the path (sent raw: a client would
    // remove the dot segment).
    for meter in ["..", "%2E%2E", "."] {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CONSUMER_A}\r\n\
             Connection: close\r\n\r\n",
            curve(meter)
        );
        let status = raw_status(&server, &request, Duration::from_secs(30));
        assert!(status.contains(" 403 "), "{meter}: {status}");
    }
    // A route's own words are not decoded: no route, nothing read.
    let encoded = format!("/v1/meters/{A}/%63urve?{range}");
    server.get(ACME, &encoded).assert_error(404, "not_found");
    let trail = server.get(OPERATOR, &format!("/v1/audit?meter={A}")).json();
    let records = trail["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        1,
        "the one read, under the meter's id: {trail}"
    );
}

/// Eleven neighbours of IRIS `I1` with day -2, and a twelfth member whose day -2 arrives late.
fn late_neighbourhood(dir: &std::path::Path) -> Server {
    let server = Server::start(dir);
    let mut batch = Batch::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    for i in 0..12 {
        if i < 11 {
            day_batch(&mut batch, &neighbour(i), -2, 100 + i as i32);
        }
        groups.push_str(&format!("{},75056,I1\n", neighbour(i)));
    }
    server.store.ingest(&batch).unwrap();
    let memberships = courbe::governance::groups::parse_csv(&groups).unwrap();
    server.gov.load_groups(memberships).unwrap();
    server
}

/// The IRIS curve of day -2 in UTC, for `token`.
fn iris_day_curve(d: i64) -> String {
    format!(
        "/v1/aggregates?level=iris&kind=curve&tz=UTC&from={}&to={}",
        rfc(d),
        rfc(d + 86_400)
    )
}

#[test]
fn late_data_after_a_release_never_changes_a_published_slot_so_two_reads_never_subtract_to_a_meter()
{
    let dir = tempfile::tempdir().unwrap();
    let server = late_neighbourhood(&dir.path().join("data"));
    let d = day_utc(-2);
    server.release_days(-2, -1);
    // The attack: read, let the operator load a twelfth meter's day, read again, subtract.
    let before = server.get(PUBLIC, &iris_day_curve(d));
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(
        before.body.contains("\"points\""),
        "I1 is published: {}",
        before.body
    );
    let mut late = Batch::new();
    day_batch(&mut late, &neighbour(11), -2, 5_000);
    server.store.ingest(&late).unwrap();
    for token in [PUBLIC, PUBLIC_BODY, ACME] {
        let after = server.get(token, &iris_day_curve(d));
        assert_eq!(after.status, 200, "{}", after.body);
        assert_eq!(
            after.json(),
            before.json(),
            "after - before is the late meter's day"
        );
    }
    // The operator sees the store now, and the release when asked for it.
    let live = server.get(OPERATOR, &iris_day_curve(d)).json();
    assert_ne!(live, before.json(), "the late day is in the store");
    let released = server.get(OPERATOR, &format!("{}&source=release", iris_day_curve(d)));
    assert_eq!(released.json(), before.json());
}

#[test]
fn an_aggregate_outside_the_released_months_is_not_released_and_says_what_is() {
    let dir = tempfile::tempdir().unwrap();
    let server = late_neighbourhood(&dir.path().join("data"));
    let d = day_utc(-2);
    server
        .get(PUBLIC, &iris_day_curve(d))
        .assert_error(404, "not_released");
    let summary = server.release_days(-2, -1);
    let (first, end) = paris_months_holding(d, d + 86_400);
    let far = day_utc(-400);
    for token in [PUBLIC, PUBLIC_BODY, ACME] {
        let message = server
            .get(token, &iris_day_curve(far))
            .assert_error(404, "not_released");
        assert!(
            message.contains(&first) && message.contains(&end),
            "{message} names {summary}"
        );
        // A range that only begins inside the release is not inside it.
        let path = format!(
            "/v1/aggregates?level=iris&from={}&to={}&tz=UTC",
            rfc(d),
            rfc(d + 120 * 86_400)
        );
        server.get(token, &path).assert_error(404, "not_released");
        // The other channel is not released.
        let production = format!("{}&channel=production", iris_day_curve(d));
        server
            .get(token, &production)
            .assert_error(404, "not_released");
        // Live answers are the operator's.
        let live = format!("{}&source=live", iris_day_curve(d));
        server.get(token, &live).assert_error(403, "forbidden");
    }
    assert_eq!(server.get(OPERATOR, &iris_day_curve(far)).status, 200);
}

#[test]
fn a_released_range_is_never_released_again_and_only_operators_release() {
    let dir = tempfile::tempdir().unwrap();
    let server = late_neighbourhood(&dir.path().join("data"));
    let d = day_utc(-2);
    let (first, end) = paris_months_holding(d, d + 86_400);
    let summary = server.release(&first, &end);
    assert_eq!(summary["channel"], "consumption", "{summary}");
    assert_eq!(summary["months"], 1, "{summary}");
    let before = server.get(PUBLIC, &iris_day_curve(d)).json();
    let mut late = Batch::new();
    day_batch(&mut late, &neighbour(11), -2, 5_000);
    server.store.ingest(&late).unwrap();
    let (earlier, _) = paris_months_holding(d - 40 * 86_400, d);
    let (_, later) = paris_months_holding(d, d + 40 * 86_400);
    for (from, to) in [
        (first.as_str(), end.as_str()),
        (earlier.as_str(), end.as_str()),
        (first.as_str(), later.as_str()),
        (earlier.as_str(), later.as_str()),
    ] {
        let reply = server.post_json(
            OPERATOR,
            "/v1/aggregates/releases",
            &serde_json::json!({"from": from, "to": to}),
        );
        reply.assert_error(409, "conflict");
    }
    assert_eq!(server.get(PUBLIC, &iris_day_curve(d)).json(), before);
    // Not whole months, or not the operator's: refused.
    let reply = server.post_json(
        OPERATOR,
        "/v1/aggregates/releases",
        &serde_json::json!({"from": rfc(d), "to": rfc(d + 86_400)}),
    );
    reply.assert_error(400, "invalid_argument");
    for token in [PUBLIC, PUBLIC_BODY, ACME, CONSUMER_A] {
        let reply = server.post_json(
            token,
            "/v1/aggregates/releases",
            &serde_json::json!({"from": earlier, "to": first}),
        );
        reply.assert_error(403, "forbidden");
        let list = server.get(token, "/v1/aggregates/releases");
        assert_eq!(list.status, 200, "{}", list.body);
        assert_eq!(list.json()["releases"][0], summary);
    }
    // Another channel, or the months next to it, are released once.
    let production = server.post_json(
        OPERATOR,
        "/v1/aggregates/releases",
        &serde_json::json!({"from": first, "to": end, "channel": "production"}),
    );
    assert_eq!(production.status, 201, "{}", production.body);
    server.release(&earlier, &first);
}

#[test]
fn releases_survive_a_restart_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = day_utc(-2);
    let (answer, list) = {
        let server = late_neighbourhood(&data);
        server.release_days(-2, -1);
        (
            server.get(PUBLIC, &iris_day_curve(d)).json(),
            server.get(PUBLIC, "/v1/aggregates/releases").json(),
        )
    };
    let mut late = Batch::new();
    day_batch(&mut late, &neighbour(11), -2, 5_000);
    // Restarted with a stricter rule: the released months stay as they were decided.
    let tokens_path = data.with_extension("tokens");
    let config = GovernanceConfig {
        tokens_path: Some(tokens_path),
        tokens_recheck: Duration::ZERO,
        aggregates: courbe::governance::aggregates::Suppression {
            min_meters: 20,
            ..Default::default()
        },
        ..GovernanceConfig::default()
    };
    let server = Server::start_on(&data, config, Arc::new(courbe::engine::fs::RealFs));
    server.store.ingest(&late).unwrap();
    assert_eq!(server.get(PUBLIC, &iris_day_curve(d)).json(), answer);
    assert_eq!(answer["min_meters"], 10, "{answer}");
    assert_eq!(server.get(PUBLIC, "/v1/aggregates/releases").json(), list);
}

#[test]
fn a_corrupted_or_truncated_release_file_stops_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = {
        let server = late_neighbourhood(&data);
        let summary = server.release_days(-2, -1);
        summary["file"].as_str().unwrap().to_string()
    };
    let path = data.join("governance").join("releases").join(&file);
    let bytes = std::fs::read(&path).unwrap();
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for broken in [bytes[..bytes.len() / 2].to_vec(), flipped, Vec::new()] {
        std::fs::write(&path, &broken).unwrap();
        let opened = courbe::governance::Governance::open(&data, GovernanceConfig::default());
        let e = opened.unwrap_err().to_string();
        assert!(e.contains(&file), "{e}");
    }
    // A release interrupted before its rename is no release.
    std::fs::write(&path, &bytes).unwrap();
    let tmp = path.with_extension("rel.tmp");
    std::fs::write(&tmp, &bytes[..10]).unwrap();
    let gov = courbe::governance::Governance::open(&data, GovernanceConfig::default()).unwrap();
    assert_eq!(gov.releases().len(), 1);
    assert!(!tmp.exists());
}
