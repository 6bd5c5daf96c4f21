//! Access control over the real server: every role against every endpoint.

use std::process::{Command, Stdio};

use courbe::engine::Batch;
use courbe::governance::grants::{DataKind, Kinds};
use courbe::Channel;
use serde_json::{json, Value};

use super::support::*;

/// Who calls: no token, an unknown token, then each role.
const CALLERS: [(&str, Option<&str>); 9] = [
    ("no token", None),
    ("unknown token", Some("tok-nobody-knows")),
    ("operator", Some(OPERATOR)),
    ("supplier with grant", Some(ACME)),
    ("supplier without grant", Some(OTHER_SUPPLIER)),
    ("consumer of A", Some(CONSUMER_A)),
    ("consumer of B", Some(CONSUMER_B)),
    ("public body", Some(PUBLIC_BODY)),
    ("public", Some(PUBLIC)),
];

/// A store with two days of A and B, max power for A, a grant to `acme` on A in force now,
/// and groups: 12 meters in one IRIS of one commune (A and B among them), 3 in one building.
pub fn fleet_server(dir: &std::path::Path) -> Server {
    let server = Server::start(dir);
    let mut batch = Batch::new();
    for (i, m) in [A, B].iter().enumerate() {
        day_batch(&mut batch, m, -3, 100 * (i as i32 + 1));
        day_batch(&mut batch, m, -2, 100 * (i as i32 + 1));
    }
    for k in 0..10 {
        day_batch(
            &mut batch,
            &format!("0911164261{:04}", 7000 + k),
            -2,
            300 + k,
        );
    }
    batch
        .push(
            A,
            Channel::MAX_POWER,
            max_power_point(day_utc(-2) + 3_600, 6_000),
        )
        .unwrap();
    server.store.ingest(&batch).unwrap();
    server
        .gov
        .create_grant(A, "acme", day_utc(-10), day_utc(300), "operator:setup")
        .unwrap();
    let mut groups = String::from("meter_id,commune,iris,building\n");
    groups.push_str(&format!("{A},75056,751010101,B1\n{B},75056,751010101,B1\n"));
    for k in 0..10 {
        let building = if k == 0 { "B1" } else { "" };
        groups.push_str(&format!(
            "0911164261{:04},75056,751010101,{building}\n",
            7000 + k
        ));
    }
    let memberships = courbe::governance::groups::parse_csv(&groups).unwrap();
    server.gov.load_groups(memberships).unwrap();
    server
}

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    /// JSON, or `(content type, text)` through [`raw`].
    body: Option<Value>,
    /// Expected status per caller, in the order of [`CALLERS`].
    expect: [u16; 9],
    /// What a success's body must satisfy.
    check: fn(&Value) -> bool,
}

/// The key of a non-JSON body in [`Case::body`].
const RAW: &str = "raw body";

fn raw(content_type: &str, text: &str) -> Value {
    json!({ RAW: [content_type, text] })
}

fn any(_: &Value) -> bool {
    true
}

#[test]
fn every_role_against_every_endpoint_gets_the_expected_status_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    server.release_days(-2, -1);
    let d = day_utc(-2);
    let range = format!("from={}&to={}", rfc(d), rfc(d + 86_400));
    let outside = format!("from={}&to={}", rfc(day_utc(-20)), rfc(day_utc(-19)));
    let future = format!("from={}&to={}", rfc(day_utc(400)), rfc(day_utc(401)));
    let cases = vec![
        Case {
            what: "curve of A inside the grant",
            method: "GET",
            path: format!("/v1/meters/{A}/curve?{range}"),
            body: None,
            expect: [401, 401, 200, 200, 403, 200, 403, 403, 403],
            check: |v| v["points"].as_array().map(Vec::len) == Some(48),
        },
        Case {
            what: "curve of A before the grant",
            method: "GET",
            path: format!("/v1/meters/{A}/curve?{outside}"),
            body: None,
            expect: [401, 401, 200, 403, 403, 200, 403, 403, 403],
            check: |v| v["points"].as_array().is_some_and(Vec::is_empty),
        },
        Case {
            what: "energy of A",
            method: "GET",
            path: format!("/v1/meters/{A}/energy?{range}&period=day&tz=UTC"),
            body: None,
            expect: [401, 401, 200, 200, 403, 200, 403, 403, 403],
            check: |v| v["periods"][0]["points"] == 48,
        },
        Case {
            what: "peak of A",
            method: "GET",
            path: format!("/v1/meters/{A}/peak?{range}&period=day&tz=UTC"),
            body: None,
            expect: [401, 401, 200, 200, 403, 200, 403, 403, 403],
            check: |v| v["periods"][0]["value"] == 6_000,
        },
        Case {
            what: "energy of a meter nobody holds",
            method: "GET",
            path: format!("/v1/meters/{NOBODY}/energy?{range}&period=day"),
            body: None,
            expect: [401, 401, 404, 403, 403, 403, 403, 403, 403],
            check: any,
        },
        Case {
            what: "curve of B",
            method: "GET",
            path: format!("/v1/meters/{B}/curve?{range}"),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 200, 403, 403],
            check: |v| v["meter"] == B,
        },
        Case {
            what: "erasure of a future range of B",
            method: "DELETE",
            path: format!("/v1/meters/{B}/curve?{future}"),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["points_removed"] == 0,
        },
        Case {
            what: "fleet curve",
            method: "GET",
            path: format!("/v1/fleet/curve?{range}"),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["points"][0]["meters"] == 12,
        },
        Case {
            what: "fleet energy",
            method: "GET",
            path: format!("/v1/fleet/energy?{range}&period=day"),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["meters"].as_array().map(Vec::len) == Some(12),
        },
        Case {
            what: "consent of A",
            method: "GET",
            path: format!("/v1/meters/{A}/consent"),
            body: None,
            expect: [401, 401, 200, 200, 403, 200, 403, 403, 403],
            check: |v| v["meter"] == A,
        },
        Case {
            what: "consent change of A",
            method: "POST",
            path: format!("/v1/meters/{A}/consent"),
            body: Some(
                json!({"collection": "granted", "step_min": 30, "from": rfc(day_utc(-400))}),
            ),
            expect: [401, 401, 201, 403, 403, 201, 403, 403, 403],
            check: |v| v["collection"] == "granted" && v["step_min"] == 30,
        },
        Case {
            what: "grants of A",
            method: "GET",
            path: format!("/v1/meters/{A}/grants"),
            body: None,
            expect: [401, 401, 200, 403, 403, 200, 403, 403, 403],
            check: |v| v["grants"][0]["supplier"] == "acme" && v["grants"][0]["in_force"] == true,
        },
        Case {
            what: "grant creation on B",
            method: "POST",
            path: format!("/v1/meters/{B}/grants"),
            body: Some(
                json!({"supplier": "zeta", "from": rfc(day_utc(-1)), "to": rfc(day_utc(30)), "kinds": ["daily"]}),
            ),
            expect: [401, 401, 201, 403, 403, 403, 403, 403, 403],
            check: |v| v["supplier"] == "zeta" && v["meter"] == B && v["kinds"] == json!(["daily"]),
        },
        Case {
            what: "revocation of an unknown grant",
            method: "DELETE",
            path: format!("/v1/meters/{B}/grants/999"),
            body: None,
            expect: [401, 401, 404, 403, 403, 403, 403, 403, 403],
            check: any,
        },
        Case {
            what: "export of A",
            method: "GET",
            path: format!("/v1/meters/{A}/export?format=json"),
            body: None,
            expect: [401, 401, 200, 403, 403, 200, 403, 403, 403],
            check: |v| v["channels"]["consumption"].as_array().map(Vec::len) == Some(96),
        },
        Case {
            what: "audit trail",
            method: "GET",
            path: "/v1/audit".into(),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["records"].is_array(),
        },
        Case {
            what: "group listing",
            method: "GET",
            path: "/v1/groups".into(),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["meters"] == 12,
        },
        Case {
            what: "ingest",
            method: "POST",
            path: "/v1/ingest".into(),
            body: Some(raw(
                "text/csv",
                &format!("meter_id,ts,value_w\n{B},{},42\n", rfc(day_utc(-1))),
            )),
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["accepted"] == 1,
        },
        Case {
            what: "aggregates by commune",
            method: "GET",
            path: format!("/v1/aggregates?level=commune&{range}&period=day&tz=UTC"),
            body: None,
            expect: [401, 401, 200, 200, 200, 200, 200, 200, 200],
            check: |v| v["groups"][0]["cells"][0]["meters"] == 12,
        },
        Case {
            what: "aggregates by building",
            method: "GET",
            path: format!("/v1/aggregates?level=building&{range}&period=day&tz=UTC"),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 200, 403],
            check: |v| v["groups"][0]["group"] == "B1" && v["groups"][0]["cells"][0]["meters"] == 3,
        },
        Case {
            what: "aggregates over an ad-hoc list of meters",
            method: "GET",
            path: format!("/v1/aggregates?meters={A},{B}&{range}&period=day&tz=UTC"),
            body: None,
            expect: [401, 401, 200, 403, 403, 403, 403, 403, 403],
            check: |v| v["groups"][0]["cells"][0]["suppressed"] == true,
        },
        Case {
            what: "comparison of A",
            method: "GET",
            path: format!("/v1/meters/{A}/compare?{}", paris_month(-2)),
            body: None,
            expect: [401, 401, 200, 403, 403, 200, 403, 403, 403],
            check: |v| v["months"][0]["groups"][0]["group"] == "751010101",
        },
        Case {
            what: "unknown /v1 path",
            method: "GET",
            path: "/v1/nothing/here".into(),
            body: None,
            // No route: nothing to protect, and the 404 names no meter.
            expect: [404; 9],
            check: any,
        },
        Case {
            what: "liveness",
            method: "GET",
            path: "/healthz".into(),
            body: None,
            expect: [200; 9],
            check: |v| v["status"] == "ok",
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        for ((who, token), expected) in CALLERS.iter().zip(case.expect) {
            let body = case.body.as_ref().map(|b| match b.get(RAW) {
                Some(raw) => (
                    raw[0].as_str().unwrap_or_default().to_string(),
                    raw[1].as_str().unwrap_or_default().to_string(),
                ),
                None => ("application/json".to_string(), b.to_string()),
            });
            let reply = server.call(
                *token,
                case.method,
                &case.path,
                body.as_ref().map(|(t, b)| (t.as_str(), b.as_str())),
            );
            let wrong = if reply.status != expected {
                Some(format!("status {}", reply.status))
            } else {
                match (expected, reply.error_code()) {
                    (401, Some(code)) if code == "unauthorized" => None,
                    (403, Some(code)) if code == "forbidden" => None,
                    (401 | 403, code) => Some(format!("error code {code:?}")),
                    (s, _) if s < 400 && !(case.check)(&reply.json()) => {
                        Some("body check failed".to_string())
                    }
                    _ => None,
                }
            };
            if let Some(why) = wrong {
                failures.push(format!(
                    "{} / {who}: expected {expected}, {why}: {}",
                    case.what, reply.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_refusal_is_the_same_for_a_meter_that_exists_and_one_that_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let range = format!("from={}&to={}&period=day", rfc(d), rfc(d + 86_400));
    for token in [OTHER_SUPPLIER, CONSUMER_A, PUBLIC] {
        let held = server.get(token, &format!("/v1/meters/{B}/energy?{range}"));
        let absent = server.get(token, &format!("/v1/meters/{NOBODY}/energy?{range}"));
        assert_eq!(held.status, 403);
        assert_eq!((held.status, &held.body), (absent.status, &absent.body));
    }
}

#[test]
fn a_supplier_read_is_in_the_audit_trail_with_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let range = format!("from={}&to={}", rfc(d), rfc(d + 86_400));
    assert_eq!(
        server
            .get(ACME, &format!("/v1/meters/{A}/curve?{range}"))
            .status,
        200
    );
    // A refused read is not a read.
    assert_eq!(
        server
            .get(ACME, &format!("/v1/meters/{B}/curve?{range}"))
            .status,
        403
    );
    let trail = server.get(OPERATOR, &format!("/v1/audit?meter={A}")).json();
    let records = trail["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{trail}");
    assert_eq!(records[0]["who"], "supplier:acme");
    assert_eq!(records[0]["from"], rfc(d));
    assert_eq!(records[0]["to"], rfc(d + 86_400));
    assert_eq!(records[0]["what"], "/v1/meters/:id/curve");
    assert_eq!(
        server.get(OPERATOR, &format!("/v1/audit?meter={B}")).json()["records"],
        json!([])
    );
}

#[test]
fn a_token_added_to_the_file_works_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let path = format!("/v1/meters/{B}/consent");
    assert_eq!(server.get("tok-late", &path).status, 401);
    let mut text = tokens_file_text();
    text.push_str(&format!(
        "{} consumer {B}\n",
        courbe::governance::auth::token_hash("tok-late")
    ));
    std::fs::write(&server.tokens_path, text).unwrap();
    assert_eq!(server.get("tok-late", &path).status, 200);
    // Removing a token takes effect the same way.
    std::fs::write(&server.tokens_path, tokens_file_text()).unwrap();
    assert_eq!(server.get("tok-late", &path).status, 401);
}

#[test]
fn a_revoked_grant_ends_the_suppliers_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let path = format!(
        "/v1/meters/{A}/energy?from={}&to={}&period=day",
        rfc(d),
        rfc(d + 86_400)
    );
    assert_eq!(server.get(ACME, &path).status, 200);
    let grants = server
        .get(OPERATOR, &format!("/v1/meters/{A}/grants"))
        .json();
    let id = grants["grants"][0]["id"].as_u64().unwrap();
    let revoked = server.call(
        Some(OPERATOR),
        "DELETE",
        &format!("/v1/meters/{A}/grants/{id}"),
        None,
    );
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json()["in_force"], false);
    assert_eq!(server.get(ACME, &path).status, 403);
    let listed = server
        .get(OPERATOR, &format!("/v1/meters/{A}/grants"))
        .json();
    assert!(listed["grants"][0]["revoked"].is_string(), "{listed}");
}

#[test]
fn a_grant_over_three_years_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let body =
        json!({"supplier": "acme", "from": rfc(day_utc(0)), "to": rfc(day_utc(3 * 366 + 1))});
    let reply = server.post_json(OPERATOR, &format!("/v1/meters/{B}/grants"), &body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error_code().as_deref(), Some("invalid_argument"));
}

/// Runs `courbe serve` with arguments; returns the child.
fn spawn_serve(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn without_a_tokens_file_the_server_refuses_a_non_loopback_address_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = spawn_serve(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ])
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(stderr.contains("--tokens"), "{stderr}");
}

#[test]
fn tokens_never_appear_in_the_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, tokens_file_text()).unwrap();
    let mut child = spawn_serve(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
        "--tokens",
        tokens.to_str().unwrap(),
    ]);
    // The address is announced on stderr; read until it is.
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let addr = loop {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(
            n > 0,
            "the server exited: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find("on http://") {
            if let Some(line) = text[at + 10..]
                .split('\n')
                .next()
                .filter(|_| text[at..].contains('\n'))
            {
                break line.trim().to_string();
            }
        }
    };
    let port = addr.rsplit(':').next().unwrap().to_string();
    let base = format!("http://127.0.0.1:{port}");
    for token in [OPERATOR, ACME, PUBLIC, "tok-nobody-knows"] {
        let _ = ureq::get(&format!("{base}/v1/meters/{A}/consent?token={token}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call();
    }
    // The unknown token's path contains the token in its query string: the log must not.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stderr, &mut rest).unwrap();
    let _ = child.wait().unwrap();
    seen.extend_from_slice(&rest);
    let log = String::from_utf8_lossy(&seen);
    assert!(log.contains("/v1/meters/"), "requests are logged: {log}");
    for token in [OPERATOR, ACME, PUBLIC, "tok-nobody-knows"] {
        assert!(!log.contains(token), "{token} in the log: {log}");
        let hash = courbe::governance::auth::token_hash(token);
        assert!(!log.contains(&hash), "a token hash in the log: {log}");
    }
}

// ---- the guard reads the request once, and refuses what it cannot read ----

/// The local date (`YYYY-MM-DD`) of `day_utc(days)`.
fn date(days: i64) -> String {
    rfc(day_utc(days))[..10].to_string()
}

/// The curve of A over day -2 (inside acme's grant) and over day -20 (before it).
fn inside_and_outside() -> (String, String) {
    let d = day_utc(-2);
    let o = day_utc(-20);
    (
        format!("from={}&to={}", rfc(d), rfc(d + 86_400)),
        format!("from={}&to={}", rfc(o), rfc(o + 86_400)),
    )
}

fn audit_of(server: &Server, meter: &str) -> Vec<Value> {
    server
        .get(OPERATOR, &format!("/v1/audit?meter={meter}"))
        .json()["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_repeated_parameter_is_refused_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let (inside, outside) = inside_and_outside();
    let o = day_utc(-20);
    // The red-team request: a range outside the grant and a repeated parameter the guard
    // could not read.
    let reply = server.get(
        ACME,
        &format!("/v1/meters/{A}/curve?{outside}&level=x&level=y"),
    );
    let message = reply.assert_error(400, "invalid_argument");
    assert!(message.contains("`level`"), "{message}");
    // A repeated `from` or `to`: neither value is chosen.
    for (name, extra) in [
        ("from", format!("from={}", rfc(o))),
        ("to", format!("to={}", rfc(o + 86_400))),
    ] {
        let path = format!("/v1/meters/{A}/curve?{inside}&{extra}");
        let message = server
            .get(ACME, &path)
            .assert_error(400, "invalid_argument");
        assert!(message.contains(&format!("`{name}`")), "{message}");
    }
    // A second zone, and the same on energy and peak.
    for what in ["curve", "energy", "peak"] {
        let path = format!("/v1/meters/{A}/{what}?{inside}&tz=UTC&tz=Asia/Kathmandu");
        let message = server
            .get(ACME, &path)
            .assert_error(400, "invalid_argument");
        assert!(message.contains("`tz`"), "{what}: {message}");
    }
    assert_eq!(audit_of(&server, A), Vec::<Value>::new());
    // The building level hidden behind a second `level` is not read as the default commune.
    let reply = server.get(
        PUBLIC,
        &format!("/v1/aggregates?level=commune&level=building&{inside}&period=day"),
    );
    let message = reply.assert_error(400, "invalid_argument");
    assert!(message.contains("`level`"), "{message}");
}

#[test]
fn a_parameter_the_route_does_not_read_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let (inside, _) = inside_and_outside();
    for path in [
        format!("/v1/meters/{A}/curve?{inside}&level=building"),
        format!("/v1/meters/{A}/curve?{inside}&period=day"),
        format!("/v1/meters/{A}/peak?{inside}&tariff=HC:22:00-06:00"),
        format!("/v1/meters/{A}/energy?{inside}&meters={B}"),
        format!("/v1/meters/{A}/energy?{inside}&fro=x"),
    ] {
        let reply = server.get(OPERATOR, &path);
        let message = reply.assert_error(400, "invalid_argument");
        let name = path.rsplit('&').next().unwrap().split('=').next().unwrap();
        assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
    }
}

#[test]
fn a_percent_encoded_name_is_the_parameter_it_spells() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let (inside, _) = inside_and_outside();
    let o = day_utc(-20);
    // `%66rom` is `from`: a second one.
    let path = format!("/v1/meters/{A}/curve?{inside}&%66rom={}", rfc(o));
    let message = server
        .get(ACME, &path)
        .assert_error(400, "invalid_argument");
    assert!(message.contains("`from`"), "{message}");
    // Alone, it is the range, and the range is outside the grant.
    let path = format!(
        "/v1/meters/{A}/curve?%66rom={}&%74o={}",
        rfc(o),
        rfc(o + 86_400)
    );
    server.get(ACME, &path).assert_error(403, "forbidden");
    assert_eq!(audit_of(&server, A), Vec::<Value>::new());
    // A percent-encoded meter id is the meter it spells, for access and for the audit trail.
    let encoded = format!("{}%{:x}{}", &A[..4], A.as_bytes()[4], &A[5..]);
    let reply = server.get(ACME, &format!("/v1/meters/{encoded}/curve?{inside}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["meter"], A);
    let records = audit_of(&server, A);
    assert_eq!(records.len(), 1, "{records:?}");
    let reply = server.get(ACME, &format!("/v1/meters/{encoded}/curve?{inside}&x=1"));
    reply.assert_error(400, "invalid_argument");
}

#[test]
fn an_unescaped_plus_is_an_offset_for_the_guard_and_the_handler_alike() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let local = |ts: i64| {
        // `+01:00` written as is: the query string turns `+` into a space.
        let t = jiff::Timestamp::from_second(ts + 3_600).unwrap();
        format!("{}+01:00", &t.to_string()[..19])
    };
    let path = format!(
        "/v1/meters/{A}/curve?from={}&to={}",
        local(d),
        local(d + 86_400)
    );
    let reply = server.get(ACME, &path);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["points"].as_array().map(Vec::len), Some(48));
    let o = day_utc(-20);
    let outside = format!(
        "/v1/meters/{A}/curve?from={}&to={}",
        local(o),
        local(o + 86_400)
    );
    server.get(ACME, &outside).assert_error(403, "forbidden");
    let records = audit_of(&server, A);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["from"], rfc(d));
    assert_eq!(records[0]["to"], rfc(d + 86_400));
}

#[test]
fn empty_values_are_invalid_arguments_before_any_access_decision() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let to = rfc(d + 86_400);
    for (query, name) in [
        (format!("from=&to={to}"), "from"),
        (format!("from&to={to}"), "from"),
        (format!("from={}&to={to}&tz=", rfc(d)), "time zone"),
        (format!("from={}&to={to}&channel=", rfc(d)), "channel"),
        (format!("from={}&to={to}&format=", rfc(d)), "format"),
    ] {
        for token in [ACME, OTHER_SUPPLIER] {
            let reply = server.get(token, &format!("/v1/meters/{A}/curve?{query}"));
            assert_eq!(reply.status, 400, "{query}: {}", reply.body);
            assert!(
                reply.body.contains(name),
                "{query}: the message names {name}: {}",
                reply.body
            );
        }
    }
    assert_eq!(audit_of(&server, A), Vec::<Value>::new());
}

#[test]
fn head_is_guarded_like_get_and_a_trailing_slash_is_no_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let (inside, outside) = inside_and_outside();
    let head = |token: &str, path: &str| server.call(Some(token), "HEAD", path, None).status;
    assert_eq!(head(ACME, &format!("/v1/meters/{A}/curve?{inside}")), 200);
    assert_eq!(head(ACME, &format!("/v1/meters/{A}/curve?{outside}")), 403);
    assert_eq!(
        head(
            ACME,
            &format!("/v1/meters/{A}/curve?{outside}&level=x&level=y")
        ),
        400
    );
    for who in [ACME, OTHER_SUPPLIER, OPERATOR] {
        let reply = server.get(who, &format!("/v1/meters/{A}/curve/?{outside}"));
        reply.assert_error(404, "not_found");
    }
}

// ---- without curve rights, energy and peak answer whole local days only ----

/// [`fleet_server`], plus a grant on A to `other` of daily data and maximum power over A's
/// days, and of the curve only from day -1 on, after A's data: `other` holds no curve rights
/// over any day with data.
fn late_grant_server(dir: &std::path::Path) -> Server {
    let server = fleet_server(dir);
    let daily = Kinds::of(DataKind::Daily).with(DataKind::MaxPower);
    server
        .gov
        .create_grant_of(
            A,
            "other",
            day_utc(-10),
            day_utc(300),
            daily,
            "operator:setup",
        )
        .unwrap();
    server
        .gov
        .create_grant(A, "other", day_utc(-1), day_utc(300), "operator:setup")
        .unwrap();
    server
}

#[test]
fn the_red_team_sub_day_peak_and_energy_are_refused_without_curve_rights() {
    let dir = tempfile::tempdir().unwrap();
    let server = late_grant_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let half_hour = format!("from={}&to={}", rfc(d), rfc(d + 1_800));
    for what in ["peak", "energy"] {
        let path = format!("/v1/meters/{A}/{what}?period=day&{half_hour}");
        server
            .get(OTHER_SUPPLIER, &path)
            .assert_error(403, "forbidden");
        let production = format!("{path}&channel=production");
        if what == "energy" {
            server
                .get(OTHER_SUPPLIER, &production)
                .assert_error(403, "forbidden");
        }
        assert_eq!(
            server
                .call(Some(OTHER_SUPPLIER), "HEAD", &path, None)
                .status,
            403
        );
        // With curve rights over the range, the same question is answered as before.
        let reply = server.get(ACME, &path);
        assert_eq!(reply.status, 200, "{what}: {}", reply.body);
    }
    let peak = server
        .get(ACME, &format!("/v1/meters/{A}/peak?period=day&{half_hour}"))
        .json();
    assert_eq!(peak["periods"][0]["source"], "curve");
}

#[test]
fn without_curve_rights_energy_answers_whole_paris_days_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = late_grant_server(&dir.path().join("data"));
    let days = format!("from={}&to={}", date(-3), date(-1));
    let energy = |query: &str| {
        server.get(
            OTHER_SUPPLIER,
            &format!("/v1/meters/{A}/energy?{days}&{query}"),
        )
    };
    for query in ["period=day", "period=week", "period=month&tz=Europe/Paris"] {
        let reply = energy(query);
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    }
    let day = energy("period=day").json();
    assert_eq!(day["periods"].as_array().map(Vec::len), Some(2), "{day}");
    assert_eq!(day["tz"], "Europe/Paris");
    // Differencing: the same days in other zones would subtract to sub-day windows; an off-peak
    // window would isolate one half-hour a day.
    for query in [
        "period=day&tz=UTC",
        "period=day&tz=Asia/Kathmandu",
        "period=day&tz=Etc/GMT-1",
        "period=day&tariff=HC:03:00-03:30",
        "period=day&channel=production&tz=UTC",
    ] {
        energy(query).assert_error(403, "forbidden");
    }
    // From and to must be local midnights.
    let d = day_utc(-2);
    for (from, to) in [
        (rfc(d), date(-1)),
        (date(-3), rfc(d)),
        (format!("{}T00:30:00+01:00", date(-3)), date(-1)),
    ] {
        let path = format!("/v1/meters/{A}/energy?from={from}&to={to}&period=day");
        let reply = server.get(OTHER_SUPPLIER, &path);
        // A UTC midnight is a Paris midnight only when Paris is at +00:00, which it never is.
        reply.assert_error(403, "forbidden");
    }
    // Every allowed read is audited with its real range.
    let records = audit_of(&server, A);
    assert_eq!(records.len(), 4, "{records:?}");
    for r in &records {
        assert_eq!(r["who"], "supplier:other");
        assert!(r["from"].is_string() && r["to"].is_string(), "{r}");
    }
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let midnight = |text: &str| {
        let date: jiff::civil::Date = text.parse().unwrap();
        date.to_zoned(paris.clone())
            .unwrap()
            .timestamp()
            .as_second()
    };
    assert_eq!(records[0]["from"], rfc(midnight(&date(-3))));
    assert_eq!(records[0]["to"], rfc(midnight(&date(-1))));
}

#[test]
fn without_curve_rights_a_peak_comes_from_max_power_over_whole_days_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = late_grant_server(&dir.path().join("data"));
    let peak = |from: &str, to: &str| {
        server.get(
            OTHER_SUPPLIER,
            &format!("/v1/meters/{A}/peak?from={from}&to={to}&period=day"),
        )
    };
    // Day -2 has a max_power record: answered from it.
    let reply = peak(&date(-2), &date(-1));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["periods"][0]["source"], "max_power", "{v}");
    assert_eq!(v["periods"][0]["value"], 6_000);
    // Day -3 has only its curve: its highest half-hour is curve data.
    peak(&date(-3), &date(-1)).assert_error(403, "forbidden");
    peak(&date(-3), &date(-2)).assert_error(403, "forbidden");
    // The curve-sourced peak of the same day is answered with curve rights.
    let reply = server.get(
        ACME,
        &format!(
            "/v1/meters/{A}/peak?from={}&to={}&period=day",
            date(-3),
            date(-2)
        ),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["periods"][0]["source"], "curve");
}

#[test]
fn after_consent_is_revoked_a_supplier_keeps_whole_days_and_loses_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let d = day_utc(-2);
    let curve = format!(
        "/v1/meters/{A}/curve?from={}&to={}",
        rfc(d),
        rfc(d + 86_400)
    );
    let sub_day = format!(
        "/v1/meters/{A}/energy?from={}&to={}&period=day",
        rfc(d),
        rfc(d + 1_800)
    );
    let whole_days = format!(
        "/v1/meters/{A}/energy?from={}&to={}&period=day",
        date(-3),
        date(-1)
    );
    for path in [&curve, &sub_day, &whole_days] {
        assert_eq!(server.get(ACME, path).status, 200, "{path}");
    }
    let revoked = server.post_json(
        OPERATOR,
        &format!("/v1/meters/{A}/consent"),
        &json!({"collection": "revoked"}),
    );
    assert_eq!(revoked.status, 201, "{}", revoked.body);
    server.get(ACME, &curve).assert_error(403, "forbidden");
    server.get(ACME, &sub_day).assert_error(403, "forbidden");
    assert_eq!(server.get(ACME, &whole_days).status, 200);
}

#[test]
fn a_consumer_reads_everything_of_its_own_meter_and_a_supplier_no_export_or_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    server.release_days(-2, -1);
    let d = day_utc(-2);
    let half_hour = format!(
        "from={}&to={}&tz=UTC&tariff=HC:00:00-00:30",
        rfc(d),
        rfc(d + 1_800)
    );
    for path in [
        format!("/v1/meters/{A}/energy?{half_hour}"),
        format!("/v1/meters/{A}/peak?from={}&to={}", rfc(d), rfc(d + 1_800)),
        format!("/v1/meters/{A}/export?format=json"),
        format!("/v1/meters/{A}/compare?{}", paris_month(-2)),
    ] {
        let reply = server.get(CONSUMER_A, &path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        server.get(CONSUMER_B, &path).assert_error(403, "forbidden");
        if path.contains("/export") || path.contains("/compare") {
            server.get(ACME, &path).assert_error(403, "forbidden");
        }
    }
}

// ---- unknown meters ----

#[test]
fn the_operator_gets_404_for_an_unknown_meter_and_others_the_same_403_as_for_a_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let range = paris_month(-2);
    for what in ["consent", "grants", &format!("compare?{range}")] {
        let reply = server.get(OPERATOR, &format!("/v1/meters/{NOBODY}/{what}"));
        reply.assert_error(404, "not_found");
        assert_eq!(
            server
                .get(OPERATOR, &format!("/v1/meters/{B}/{what}"))
                .status,
            200
        );
        for token in [ACME, OTHER_SUPPLIER, CONSUMER_B, PUBLIC, PUBLIC_BODY] {
            let held = server.get(token, &format!("/v1/meters/{A}/{what}"));
            let absent = server.get(token, &format!("/v1/meters/{NOBODY}/{what}"));
            if held.status == 403 {
                assert_eq!((absent.status, &absent.body), (403, &held.body), "{what}");
            } else {
                assert_eq!(absent.status, 403, "{what}: {}", absent.body);
            }
        }
    }
}

#[test]
fn a_tokens_file_that_cannot_be_read_whole_refuses_every_token_until_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let path = format!("/v1/meters/{B}/consent");
    assert_eq!(server.get(CONSUMER_B, &path).status, 200);
    assert_eq!(server.gov.tokens_status(), Ok(()));
    // The consumer's line removed and a broken line added in the same edit.
    let edited: String = tokens_file_text()
        .lines()
        .filter(|l| !l.starts_with(&courbe::governance::auth::token_hash(CONSUMER_B)))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "oops operator\n";
    std::fs::write(&server.tokens_path, &edited).unwrap();
    assert_eq!(server.get(CONSUMER_B, &path).status, 401);
    assert_eq!(server.get(OPERATOR, &path).status, 401);
    assert!(server.gov.tokens_status().is_err());
    let health = server.call(None, "GET", "/healthz", None);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["status"], "degraded", "{}", health.body);
    assert!(
        !health.body.contains(&*server.tokens_path.to_string_lossy()),
        "{}",
        health.body
    );
    // Deleted: nobody.
    std::fs::remove_file(&server.tokens_path).unwrap();
    assert_eq!(server.get(OPERATOR, &path).status, 401);
    let why = server.gov.tokens_status().unwrap_err();
    assert!(why.contains("cannot read"), "{why}");
    // Fixed: the file as written now, the removed token still out.
    std::fs::write(&server.tokens_path, edited.replace("oops operator\n", "")).unwrap();
    assert_eq!(server.get(OPERATOR, &path).status, 200);
    assert_eq!(server.get(CONSUMER_B, &path).status, 401);
    assert_eq!(server.gov.tokens_status(), Ok(()));
    assert_eq!(server.call(None, "GET", "/healthz", None).status, 200);
}

#[test]
fn a_path_the_route_table_does_not_declare_is_404_with_any_token_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for token in [
        None,
        Some(OPERATOR),
        Some(ACME),
        Some(CONSUMER_A),
        Some(PUBLIC),
    ] {
        for method in ["GET", "POST"] {
            let reply = server.call(token, method, "/v1/something/new", None);
            reply.assert_error(404, "not_found");
        }
    }
}
