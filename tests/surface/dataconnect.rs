//! The Data Connect routes: Enedis' shapes, end-of-interval local stamps across DST days, the
//! same values as the native API on the same store, the OAuth token flow, and every refusal of
//! the native API being a refusal here too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::auth::token_hash;
use courbe::governance::consent::{Collection, ConsentEvent};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::{Channel, Point, Quality};
use courbe_server::http::ServerConfig;
use serde_json::Value;

use super::support::METER as A;
use crate::util::{self, Reply};

/// A second meter, and one nobody holds data for.
const B: &str = "09111642617348";
const NOBODY: &str = "09111642619999";

/// Tokens of the test principals and the `client_id` each goes with.
const OPERATOR: (&str, &str) = ("tok-dc-operator", "ops");
const ACME: (&str, &str) = ("tok-dc-acme", "acme");
const OTHER: (&str, &str) = ("tok-dc-other", "other");
const CONSUMER_A: (&str, &str) = ("tok-dc-consumer-a", A);
const CONSUMER_B: (&str, &str) = ("tok-dc-consumer-b", B);
const PUBLIC_BODY: (&str, &str) = ("tok-dc-public-body", "insee");
const PUBLIC: (&str, &str) = ("tok-dc-public", "public");

fn tokens_text() -> String {
    [
        (OPERATOR.0, "operator ops".to_string()),
        (ACME.0, "supplier acme".to_string()),
        (OTHER.0, "supplier other".to_string()),
        (CONSUMER_A.0, format!("consumer {A}")),
        (CONSUMER_B.0, format!("consumer {B}")),
        (PUBLIC_BODY.0, "public_body insee".to_string()),
        (PUBLIC.0, "public".to_string()),
    ]
    .iter()
    .map(|(t, rest)| format!("{} {rest}\n", token_hash(t)))
    .collect()
}

/// A server with governance (the tokens above) over the store in `dir`.
struct Server {
    http: util::Server,
    store: Arc<Store>,
    gov: Arc<Governance>,
    tokens_path: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let tokens_path = dir.with_extension("tokens");
        std::fs::write(&tokens_path, tokens_text()).unwrap();
        let config = GovernanceConfig {
            tokens_path: Some(tokens_path.clone()),
            tokens_recheck: Duration::ZERO,
            ..GovernanceConfig::default()
        };
        let store = Arc::new(Store::open(dir, Options::default()).unwrap());
        let gov = Arc::new(Governance::open(dir, config).unwrap());
        let server_config = ServerConfig {
            governance: Some(gov.clone()),
            ..ServerConfig::default()
        };
        Server {
            http: util::Server::start(store.clone(), server_config),
            store,
            gov,
            tokens_path,
        }
    }

    fn get(&self, bearer: Option<&str>, path: &str) -> Reply {
        let mut req = util::agent().get(&self.http.url(path));
        if let Some(t) = bearer {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        util::reply(req.call())
    }

    fn token_request(&self, form: &str) -> Reply {
        util::post(
            &self
                .http
                .url("/oauth2/v3/token?redirect_uri=http%3A%2F%2Flocalhost"),
            "application/x-www-form-urlencoded",
            form,
        )
    }

    /// An access token for `(secret, client_id)` through the token endpoint.
    fn access_token(&self, (secret, client_id): (&str, &str)) -> String {
        let reply = self.token_request(&format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["access_token"].as_str().unwrap().to_string()
    }
}

fn point(ts_utc: i64, value: i32, step_min: u16) -> Point {
    Point {
        ts_utc,
        value,
        step_min,
        quality: Quality::Measured,
    }
}

/// Paris midnight of a date, UTC seconds.
fn paris_midnight(date: &str) -> i64 {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let date: jiff::civil::Date = date.parse().unwrap();
    date.to_zoned(tz).unwrap().timestamp().as_second()
}

/// `YYYY-MM-DD` of today's Paris date moved by `days`.
fn paris_date(days: i64) -> String {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let today = jiff::Timestamp::now().to_zoned(tz).date();
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

/// Half-hours of `meter`'s `channel` over `[from_utc, to_utc)`, value `base + i`.
fn half_hours(
    batch: &mut Batch,
    meter: &str,
    channel: Channel,
    (from_utc, to_utc): (i64, i64),
    base: i32,
) {
    let mut ts = from_utc;
    let mut i = 0;
    while ts < to_utc {
        batch
            .push(meter, channel, point(ts, base + (i % 97), 30))
            .unwrap();
        ts += 1_800;
        i += 1;
    }
}

fn readings(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["meter_reading"]["interval_reading"]
        .as_array()
        .unwrap()
        .clone()
}

fn field<'a>(readings: &'a [Value], name: &str) -> Vec<&'a str> {
    readings.iter().map(|r| r[name].as_str().unwrap()).collect()
}

#[test]
fn a_load_curve_is_stamped_at_the_end_of_each_interval_on_the_paris_wall_clock_across_dst_days() {
    let dir = tempfile::tempdir().unwrap();
    // No governance: the routes read their question themselves.
    let server = super::support::Server::start(dir.path(), ServerConfig::default());
    let mut batch = Batch::new();
    for day in ["2024-03-31", "2024-10-27"] {
        let from = paris_midnight(day);
        let next = day
            .parse::<jiff::civil::Date>()
            .unwrap()
            .tomorrow()
            .unwrap()
            .to_string();
        half_hours(
            &mut batch,
            A,
            Channel::CONSUMPTION,
            (from, paris_midnight(&next)),
            100,
        );
    }
    server.store.ingest(&batch).unwrap();

    let spring = util::get(&server.url(&format!(
        "/metering_data_clc/v5/consumption_load_curve?usage_point_id={A}&start=2024-03-31&end=2024-04-01"
    )));
    let body = spring.json();
    let reading = &body["meter_reading"];
    assert_eq!(reading["usage_point_id"], A);
    assert_eq!(reading["start"], "2024-03-31");
    assert_eq!(reading["end"], "2024-04-01");
    assert_eq!(reading["quality"], "BRUT");
    assert_eq!(
        reading["reading_type"],
        serde_json::json!({"unit": "W", "measurement_kind": "power", "aggregate": "average"})
    );
    let spring = readings(&spring);
    let dates = field(&spring, "date");
    assert_eq!(dates.len(), 46, "a 23-hour day");
    assert_eq!(
        dates[..5],
        [
            "2024-03-31 00:30:00",
            "2024-03-31 01:00:00",
            "2024-03-31 01:30:00",
            "2024-03-31 03:00:00",
            "2024-03-31 03:30:00"
        ]
    );
    assert_eq!(dates[45], "2024-04-01 00:00:00");
    assert!(dates.iter().all(|d| !d.contains(" 02:")), "{dates:?}");
    assert!(field(&spring, "interval_length")
        .iter()
        .all(|l| *l == "PT30M"));
    assert!(field(&spring, "measure_type").iter().all(|t| *t == "B"));
    assert!(spring.iter().all(|r| r["value"].is_string()));

    let autumn = readings(&util::get(&server.url(&format!(
        "/metering_data_clc/v5/consumption_load_curve?usage_point_id={A}&start=2024-10-27&end=2024-10-28"
    ))));
    let dates = field(&autumn, "date");
    assert_eq!(dates.len(), 50, "a 25-hour day");
    assert_eq!(
        dates[2..8],
        [
            "2024-10-27 01:30:00",
            "2024-10-27 02:00:00",
            "2024-10-27 02:30:00",
            "2024-10-27 02:00:00",
            "2024-10-27 02:30:00",
            "2024-10-27 03:00:00"
        ],
        "the hour lived twice is written twice, as Enedis writes it"
    );
    assert_eq!(dates[49], "2024-10-28 00:00:00");

    // The values are the native curve's, in order.
    for (start, end, dc) in [
        ("2024-03-31", "2024-04-01", &spring),
        ("2024-10-27", "2024-10-28", &autumn),
    ] {
        let native =
            util::get(&server.url(&format!("/v1/meters/{A}/curve?from={start}&to={end}"))).json();
        let native: Vec<String> = native["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].to_string())
            .collect();
        assert_eq!(field(dc, "value"), native);
    }
}

#[test]
fn daily_energy_is_the_native_energy_of_each_paris_day_rounded_to_the_wh() {
    let dir = tempfile::tempdir().unwrap();
    let server = super::support::Server::start(dir.path(), ServerConfig::default());
    let mut batch = Batch::new();
    // 2024-03-29 to 2024-04-02 with the DST day, 2024-03-30 missing; odd values make half Wh.
    for (from, to) in [("2024-03-29", "2024-03-30"), ("2024-03-31", "2024-04-02")] {
        let range = (paris_midnight(from), paris_midnight(to));
        half_hours(&mut batch, A, Channel::CONSUMPTION, range, 101);
        half_hours(&mut batch, A, Channel::PRODUCTION, range, 7);
    }
    // A 10-minute stretch on 2024-04-01 too.
    let t = paris_midnight("2024-04-01") + 12 * 3_600;
    for k in 0..6 {
        batch
            .push(A, Channel::CONSUMPTION, point(t + k * 600, 333, 10))
            .unwrap();
    }
    server.store.ingest(&batch).unwrap();
    for (route, channel) in [
        ("/metering_data_dc/v5/daily_consumption", "consumption"),
        ("/metering_data_dp/v5/daily_production", "production"),
    ] {
        let reply = util::get(&server.url(&format!(
            "{route}?usage_point_id={A}&start=2024-03-28&end=2024-04-03"
        )));
        assert_eq!(
            reply.json()["meter_reading"]["reading_type"],
            serde_json::json!({"unit": "Wh", "measurement_kind": "energy", "aggregate": "sum",
                "measuring_period": "P1D"})
        );
        let dc = readings(&reply);
        assert_eq!(
            field(&dc, "date"),
            ["2024-03-29", "2024-03-31", "2024-04-01"],
            "days without data are left out"
        );
        assert!(dc.iter().all(|r| r.get("interval_length").is_none()));
        let native = util::get(&server.url(&format!(
            "/v1/meters/{A}/energy?from=2024-03-28&to=2024-04-03&period=day&channel={channel}"
        )))
        .json();
        let expected: Vec<String> = native["periods"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["points"].as_u64().unwrap() > 0)
            .map(|p| format!("{}", p["energy_wh"].as_f64().unwrap().round() as i64))
            .collect();
        assert_eq!(field(&dc, "value"), expected, "{route}");
    }
}

#[test]
fn daily_max_power_comes_from_max_power_only_stamped_at_its_local_instant() {
    let dir = tempfile::tempdir().unwrap();
    let server = super::support::Server::start(dir.path(), ServerConfig::default());
    let mut batch = Batch::new();
    let range = (paris_midnight("2024-01-15"), paris_midnight("2024-01-17"));
    half_hours(&mut batch, A, Channel::CONSUMPTION, range, 500);
    let at = paris_midnight("2024-01-15") + 18 * 3_600 + 32 * 60;
    batch
        .push(A, Channel::MAX_POWER, point(at, 6_123, 1440))
        .unwrap();
    server.store.ingest(&batch).unwrap();
    for route in [
        "/metering_data_dcmp/v5/daily_consumption_max_power",
        "/metering_data_dc/v5/consumption_max_power",
    ] {
        let reply = util::get(&server.url(&format!(
            "{route}?usage_point_id={A}&start=2024-01-15&end=2024-01-17"
        )));
        assert_eq!(
            reply.json()["meter_reading"]["reading_type"],
            serde_json::json!({"unit": "VA", "measurement_kind": "power", "aggregate": "maximum",
                "measuring_period": "P1D"})
        );
        let dc = readings(&reply);
        assert_eq!(field(&dc, "date"), ["2024-01-15 18:32:00"], "{route}");
        assert_eq!(field(&dc, "value"), ["6123"]);
    }
    // Natively, the second day's peak is the curve's: Data Connect never shows it as VA.
    let native = util::get(&server.url(&format!(
        "/v1/meters/{A}/peak?from=2024-01-15&to=2024-01-17&period=day"
    )))
    .json();
    assert_eq!(native["periods"][1]["source"], "curve");
}

#[test]
fn the_token_endpoint_issues_an_access_token_good_on_the_metering_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut batch = Batch::new();
    half_hours(
        &mut batch,
        A,
        Channel::CONSUMPTION,
        (paris_midnight("2024-01-15"), paris_midnight("2024-01-16")),
        100,
    );
    server.store.ingest(&batch).unwrap();
    let reply = server.token_request(&format!(
        "grant_type=client_credentials&client_id=ops&client_secret={}",
        OPERATOR.0
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3_600);
    assert_eq!(token["scope"], "metering_data");
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(access.len(), 64);
    assert!(!reply.body.contains(OPERATOR.0), "the secret is not echoed");

    let curve = format!(
        "/metering_data_clc/v5/consumption_load_curve?usage_point_id={A}&start=2024-01-15&end=2024-01-16"
    );
    assert_eq!(readings(&server.get(Some(access), &curve)).len(), 48);
    // Two credentials are none (a proxy in front may read the other one), and a token in the
    // query string is a parameter the route does not read.
    let two = raw_get(
        &server.http.base,
        &curve,
        &[
            format!("Authorization: Bearer {access}"),
            format!("Authorization: Bearer {access}"),
        ],
    );
    assert!(two.starts_with("HTTP/1.1 401"), "{two}");
    let in_query = server.get(None, &format!("{curve}&access_token={access}"));
    assert_eq!(in_query.status, 401);
    let in_query = server.get(Some(access), &format!("{curve}&access_token={access}"));
    assert_eq!(in_query.status, 400);
    // The Courbe token itself is good there too.
    assert_eq!(server.get(Some(OPERATOR.0), &curve).status, 200);
    // Not on /v1.
    let v1 = server.get(
        Some(access),
        &format!("/v1/meters/{A}/curve?from=2024-01-15&to=2024-01-16"),
    );
    v1.assert_error(401, "unauthorized");
    // Revoked (RFC 7009) only by the client it was issued to.
    let acme = server.access_token(ACME);
    let revoke = |form: String| {
        util::post(
            &server.http.url("/oauth2/v3/revoke"),
            "application/x-www-form-urlencoded",
            &form,
        )
    };
    let by_other = revoke(format!(
        "token={acme}&client_id=other&client_secret={}",
        OTHER.0
    ));
    assert_eq!(by_other.status, 200, "{}", by_other.body);
    let grant_less = format!(
        "/metering_data_dc/v5/daily_consumption?usage_point_id={A}&start=2024-01-15&end=2024-01-16"
    );
    assert_eq!(
        server.get(Some(&acme), &grant_less).status,
        403,
        "acme's token still stands for acme"
    );
    let by_acme = revoke(format!(
        "token={acme}&client_id=acme&client_secret={}",
        ACME.0
    ));
    assert_eq!(by_acme.status, 200, "{}", by_acme.body);
    assert_eq!(server.get(Some(&acme), &grant_less).status, 401);
    let bad_client = revoke(format!("token={acme}&client_id=acme&client_secret=nope"));
    assert_eq!(bad_client.status, 401);
    assert_eq!(bad_client.json()["error"], "invalid_client");
    // Nor once its Courbe token is gone from the tokens file.
    let kept: String = tokens_text()
        .lines()
        .filter(|l| !l.starts_with(&token_hash(OPERATOR.0)))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&server.tokens_path, kept).unwrap();
    let gone = server.get(Some(access), &curve);
    assert_eq!(gone.status, 401, "{}", gone.body);
    assert_eq!(gone.json()["error"], "invalid_token");
}

/// `GET path` with these header lines, as raw HTTP/1.1 (a client library merges repeated
/// headers); the whole answer.
fn raw_get(base: &str, path: &str, headers: &[String]) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(&format!("{h}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_token_endpoint_refuses_in_the_oauth_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let good = format!("client_id=acme&client_secret={}", ACME.0);
    let cases = [
        (
            format!("grant_type=authorization_code&{good}"),
            400,
            "unsupported_grant_type",
        ),
        (good.clone(), 400, "invalid_request"),
        (
            "grant_type=client_credentials&client_id=acme&client_secret=tok-nobody-knows".into(),
            401,
            "invalid_client",
        ),
        (
            format!(
                "grant_type=client_credentials&client_id=other&client_secret={}",
                ACME.0
            ),
            401,
            "invalid_client",
        ),
        (
            format!("grant_type=client_credentials&{good}&client_id=acme"),
            400,
            "invalid_request",
        ),
        (
            format!("grant_type=client_credentials&{good}&username=x"),
            400,
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&client_id=acme".into(),
            400,
            "invalid_request",
        ),
        (
            format!("grant_type=client_credentials&{good}%zz"),
            400,
            "invalid_request",
        ),
    ];
    for (form, status, code) in cases {
        let reply = server.token_request(&form);
        assert_eq!(reply.status, status, "{form}: {}", reply.body);
        assert_eq!(reply.json()["error"], code, "{form}");
        assert!(!reply.body.contains(ACME.0), "the secret is not echoed");
    }
    let json = util::post(
        &server.http.url("/oauth2/v3/token"),
        "application/json",
        &format!(
            r#"{{"grant_type":"client_credentials","client_id":"acme","client_secret":"{}"}}"#,
            ACME.0
        ),
    );
    assert_eq!(json.status, 400);
    assert_eq!(json.json()["error"], "invalid_request");
    let query = util::post(
        &server
            .http
            .url(&format!("/oauth2/v3/token?client_secret={}", ACME.0)),
        "application/x-www-form-urlencoded",
        &format!("grant_type=client_credentials&{good}"),
    );
    assert_eq!(
        query.json()["error"],
        "invalid_request",
        "no secret in a URL"
    );
    let get = util::get(&server.http.url("/oauth2/v3/token"));
    assert_eq!(get.status, 405);
    assert_eq!(get.json()["error"], "method_not_allowed");
    assert!(get.json()["error_description"].is_string());
}

#[test]
fn the_metering_routes_refuse_what_they_cannot_read_in_data_connect_s_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let access = server.access_token(OPERATOR);
    let q = format!("usage_point_id={A}&start=2024-01-01&end=2024-01-02");
    let cases = [
        (
            format!("/metering_data_clc/v5/consumption_load_curve?{q}&tz=UTC"),
            "`tz`",
        ),
        (
            format!("/metering_data_clc/v5/consumption_load_curve?{q}&start=2024-01-01"),
            "`start`",
        ),
        (
            format!(
                "/metering_data_clc/v5/consumption_load_curve?usage_point_id={A}&start=2024-01-01&end=2024-01-09"
            ),
            "7 days",
        ),
        (
            format!(
                "/metering_data_dc/v5/daily_consumption?usage_point_id={A}&start=2023-01-01&end=2024-01-02"
            ),
            "365 days",
        ),
        (
            format!(
                "/metering_data_dc/v5/daily_consumption?usage_point_id={A}&start=2024-01-01T00:00:00Z&end=2024-01-02"
            ),
            "`start`",
        ),
    ];
    for (path, names) in cases {
        let reply = server.get(Some(&access), &path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        let v = reply.json();
        assert_eq!(v["error"], "invalid_argument", "{path}");
        let why = v["error_description"].as_str().unwrap();
        assert!(why.contains(names), "{path}: {why}");
    }
    let unknown = server.get(Some(&access), &format!("/metering_data_x/v5/nothing?{q}"));
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "not_found");
    // As on /v1: no route, nothing to protect, and the 404 names no meter.
    let no_token = server.get(None, &format!("/metering_data_x/v5/nothing?{q}"));
    assert_eq!(no_token.status, 404);
    let served = server.get(
        None,
        &format!("/metering_data_clc/v5/consumption_load_curve?{q}"),
    );
    assert_eq!(served.status, 401);
    assert_eq!(served.json()["error"], "invalid_token");
    let nobody = server.get(
        Some(&access),
        &format!(
            "/metering_data_dc/v5/daily_consumption?usage_point_id={NOBODY}&start=2024-01-01&end=2024-01-02"
        ),
    );
    assert_eq!(nobody.status, 404);
    assert_eq!(nobody.json()["error"], "unknown_meter");
}

/// The native route of a metering route, with the same range.
fn native_of(dc_route: &str, meter: &str, start: &str, end: &str) -> String {
    let range = format!("from={start}&to={end}");
    match dc_route {
        "/metering_data_clc/v5/consumption_load_curve" => {
            format!("/v1/meters/{meter}/curve?{range}")
        }
        "/metering_data_plc/v5/production_load_curve" => {
            format!("/v1/meters/{meter}/curve?{range}&channel=production")
        }
        "/metering_data_dc/v5/daily_consumption" => {
            format!("/v1/meters/{meter}/energy?{range}&period=day")
        }
        "/metering_data_dp/v5/daily_production" => {
            format!("/v1/meters/{meter}/energy?{range}&period=day&channel=production")
        }
        _ => format!("/v1/meters/{meter}/peak?{range}&period=day"),
    }
}

/// What a Data Connect answer must hold, from the native answer to the same question.
fn expected_values(dc_route: &str, native: &Value) -> Vec<String> {
    if dc_route.ends_with("load_curve") {
        return native["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].to_string())
            .collect();
    }
    let periods = native["periods"].as_array().unwrap().iter();
    if dc_route.contains("max_power") {
        periods
            .filter(|p| p["source"] == "max_power")
            .map(|p| p["value"].to_string())
            .collect()
    } else {
        periods
            .filter(|p| p["points"].as_u64().unwrap() > 0)
            .map(|p| format!("{}", p["energy_wh"].as_f64().unwrap().round() as i64))
            .collect()
    }
}

#[test]
fn every_refusal_of_the_native_api_is_a_refusal_of_data_connect_and_every_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let day = |d: i64| paris_midnight(&paris_date(d));
    let mut batch = Batch::new();
    for (meter, base) in [(A, 100), (B, 200)] {
        half_hours(
            &mut batch,
            meter,
            Channel::CONSUMPTION,
            (day(-16), day(-1)),
            base,
        );
    }
    half_hours(&mut batch, A, Channel::PRODUCTION, (day(-16), day(-1)), 3);
    for d in -16..0 {
        batch
            .push(
                A,
                Channel::MAX_POWER,
                point(day(d) + 43_200, 6_000 + d as i32, 1440),
            )
            .unwrap();
    }
    server.store.ingest(&batch).unwrap();
    // acme holds a grant on A from 10 days ago; A's consent was revoked for a day 6 days ago.
    let utc_day = |d: i64| (jiff::Timestamp::now().as_second().div_euclid(86_400) + d) * 86_400;
    server
        .gov
        .create_grant(A, "acme", utc_day(-10), utc_day(300), "operator:setup")
        .unwrap();
    for (from, collection) in [(-6, Collection::Revoked), (-5, Collection::Granted)] {
        let event = ConsentEvent {
            meter: A.to_string(),
            from_utc: utc_day(from),
            collection,
            step_min: None,
            erase: false,
            recorded_utc: jiff::Timestamp::now().as_second(),
            by: format!("consumer:{A}"),
        };
        server.gov.record_consent(&server.store, event).unwrap();
    }
    let callers: [(&str, Option<(&str, &str)>); 9] = [
        ("no token", None),
        ("unknown token", Some(("tok-nobody-knows", "x"))),
        ("operator", Some(OPERATOR)),
        ("supplier with grant", Some(ACME)),
        ("supplier without grant", Some(OTHER)),
        ("consumer of A", Some(CONSUMER_A)),
        ("consumer of B", Some(CONSUMER_B)),
        ("public body", Some(PUBLIC_BODY)),
        ("public", Some(PUBLIC)),
    ];
    // Inside the grant with consent; before the grant; over the revoked day.
    let ranges = [(-8, -7), (-15, -13), (-7, -5)];
    let routes = [
        "/metering_data_clc/v5/consumption_load_curve",
        "/metering_data_plc/v5/production_load_curve",
        "/metering_data_dc/v5/daily_consumption",
        "/metering_data_dp/v5/daily_production",
        "/metering_data_dcmp/v5/daily_consumption_max_power",
    ];
    let mut seen = std::collections::BTreeMap::<u16, u32>::new();
    for (who, credentials) in callers {
        // Native calls carry the Courbe token; Data Connect calls the access token, when the
        // token endpoint gives one (an unknown secret gets none: its raw token is sent).
        let native_bearer = credentials.map(|c| c.0);
        let dc_bearer = credentials.map(|c| {
            let reply = server.token_request(&format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                c.1, c.0
            ));
            match reply.status {
                200 => reply.json()["access_token"].as_str().unwrap().to_string(),
                _ => c.0.to_string(),
            }
        });
        for meter in [A, B, NOBODY] {
            for (from, to) in ranges {
                let (start, end) = (paris_date(from), paris_date(to));
                for route in routes {
                    let native = server.get(native_bearer, &native_of(route, meter, &start, &end));
                    let dc = server.get(
                        dc_bearer.as_deref(),
                        &format!("{route}?usage_point_id={meter}&start={start}&end={end}"),
                    );
                    let what = format!("{who} {route} {meter} {start}..{end}");
                    assert_eq!(
                        dc.status, native.status,
                        "{what}: {} / {}",
                        native.body, dc.body
                    );
                    *seen.entry(dc.status).or_default() += 1;
                    if dc.status == 200 {
                        let dc_values = readings(&dc);
                        assert_eq!(
                            field(&dc_values, "value"),
                            expected_values(route, &native.json()),
                            "{what}"
                        );
                    } else {
                        let body = dc.json();
                        assert!(body["error"].is_string(), "{what}: {}", dc.body);
                        assert!(body["error_description"].is_string(), "{what}");
                    }
                }
            }
        }
    }
    // The matrix holds answers and each kind of refusal.
    for status in [200, 401, 403, 404] {
        assert!(
            seen.get(&status).is_some_and(|n| *n > 0),
            "{status}: {seen:?}"
        );
    }
    // The supplier's curve is refused before the grant and over the revoked day, allowed inside.
    let acme = server.access_token(ACME);
    let curve = |from: i64, to: i64| {
        server
            .get(
                Some(&acme),
                &format!(
                    "/metering_data_clc/v5/consumption_load_curve?usage_point_id={A}&start={}&end={}",
                    paris_date(from),
                    paris_date(to)
                ),
            )
            .status
    };
    assert_eq!(
        (curve(-8, -7), curve(-15, -13), curve(-7, -5)),
        (200, 403, 403)
    );
}

#[test]
fn a_supplier_read_through_data_connect_is_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let day = |d: i64| paris_midnight(&paris_date(d));
    let mut batch = Batch::new();
    half_hours(&mut batch, A, Channel::CONSUMPTION, (day(-3), day(-1)), 100);
    server.store.ingest(&batch).unwrap();
    let utc_day = |d: i64| (jiff::Timestamp::now().as_second().div_euclid(86_400) + d) * 86_400;
    server
        .gov
        .create_grant(A, "acme", utc_day(-10), utc_day(300), "operator:setup")
        .unwrap();
    let acme = server.access_token(ACME);
    let path = format!(
        "/metering_data_dc/v5/daily_consumption?usage_point_id={A}&start={}&end={}",
        paris_date(-3),
        paris_date(-1)
    );
    assert_eq!(readings(&server.get(Some(&acme), &path)).len(), 2);
    let audit = server.get(Some(OPERATOR.0), &format!("/v1/audit?meter={A}"));
    assert_eq!(audit.status, 200, "{}", audit.body);
    let records = audit.json()["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["who"], "supplier:acme");
    assert_eq!(records[0]["what"], "/metering_data_dc/v5/daily_consumption");
    assert_eq!(
        records[0]["from"],
        jiff::Timestamp::from_second(day(-3)).unwrap().to_string()
    );
}

/// Today's Data Connect answers against a naive reference built from `/v1`'s points: seeded
/// fleets of mixed steps, gaps and overwritten readings over weeks of 2024 holding both DST days.
#[test]
fn load_curves_match_a_naive_reference_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = super::support::Server::start(dir.path(), ServerConfig::default());
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let mut rng = util::Rng::new(0x0D47_AC01_1EC7);
    let weeks = ["2024-03-27", "2024-10-23", "2024-06-10", "2024-12-28"];
    for start in weeks {
        let from = paris_midnight(start);
        let to = from + 8 * 86_400;
        for round in 0..2 {
            let mut batch = Batch::new();
            let mut ts = from - 3_600 * rng.below(3) as i64;
            while ts < to {
                let step = *rng.pick(&[10u16, 15, 30, 30, 30, 60]);
                let run = 1 + rng.below(40) as i64;
                for _ in 0..run {
                    // Round 2 rewrites a few stretches: the newest reading wins.
                    if round == 0 || rng.chance(10) {
                        batch
                            .push(
                                A,
                                Channel::CONSUMPTION,
                                point(ts, rng.below(9_000) as i32, step),
                            )
                            .unwrap();
                    }
                    ts += 60 * i64::from(step);
                }
                if rng.chance(20) {
                    ts += 60 * 30 * (1 + rng.below(8) as i64);
                }
                // Back on the half-hour grid after a gap, as meters are.
                ts -= ts.rem_euclid(600);
            }
            server.store.ingest(&batch).unwrap();
        }
    }
    for start in weeks {
        let first: jiff::civil::Date = start.parse().unwrap();
        let end = first.checked_add(jiff::Span::new().days(7)).unwrap();
        let native =
            util::get(&server.url(&format!("/v1/meters/{A}/curve?from={first}&to={end}"))).json();
        let reference: Vec<(String, String, String)> = native["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let ts: jiff::Timestamp = p["ts"].as_str().unwrap().parse().unwrap();
                let step = p["step_min"].as_i64().unwrap();
                let end = ts.checked_add(jiff::Span::new().minutes(step)).unwrap();
                (
                    end.to_zoned(paris.clone())
                        .strftime("%Y-%m-%d %H:%M:%S")
                        .to_string(),
                    p["value"].to_string(),
                    format!("PT{step}M"),
                )
            })
            .collect();
        assert!(reference.len() > 100, "{start}: {}", reference.len());
        let dc = readings(&util::get(&server.url(&format!(
            "/metering_data_clc/v5/consumption_load_curve?usage_point_id={A}&start={first}&end={end}"
        ))));
        let got: Vec<(String, String, String)> = dc
            .iter()
            .map(|r| {
                (
                    r["date"].as_str().unwrap().to_string(),
                    r["value"].as_str().unwrap().to_string(),
                    r["interval_length"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, reference, "{start}");
    }
}
