//! The live view (`GET /v1/meters/{id}/live`, server-sent events) against a real server:
//! subscribe, ingest, receive; revoking consent ends the stream; a supplier without curve
//! rights gets 403; a subscriber that does not read is dropped without slowing ingest. And the
//! spot prices it is priced with: `PUT`/`GET /v1/prices/spot/{area}`, `POST /v1/ingest?channel=
//! price&series=`, `courbe gen --kind spot | courbe ingest --channel price --series`.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::auth::token_hash;
use courbe::governance::grants::{DataKind, Kinds};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::{Channel, Point, Quality};
use courbe_server::http::live::{LiveHub, LIVE_QUEUE};
use courbe_server::http::ServerConfig;

use crate::util::{self, Reply};

const A: &str = "09111642617347";
const OPERATOR: &str = "tok-operator";
const ACME: &str = "tok-acme";
const DAILY_ONLY: &str = "tok-daily-only";
const PUBLIC: &str = "tok-public";

/// Midnight UTC `days` days from today.
fn day_utc(days: i64) -> i64 {
    (jiff::Timestamp::now().as_second().div_euclid(86_400) + days) * 86_400
}

fn rfc(ts: i64) -> String {
    jiff::Timestamp::from_second(ts).unwrap().to_string()
}

struct Live {
    // Dropped first: the server flushes the store into `_dir` as it stops.
    http: util::Server,
    gov: Arc<Governance>,
    _dir: tempfile::TempDir,
}

impl Live {
    fn start() -> Live {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let tokens = dir.path().join("tokens");
        let lines: String = [
            (OPERATOR, "operator ops"),
            (ACME, "supplier acme"),
            (DAILY_ONLY, "supplier dailyco"),
            (PUBLIC, "public"),
        ]
        .iter()
        .map(|(t, rest)| format!("{} {rest}\n", token_hash(t)))
        .collect();
        std::fs::write(&tokens, lines).unwrap();
        let store = Arc::new(Store::open(&data, Options::default()).unwrap());
        let config = GovernanceConfig {
            tokens_path: Some(tokens),
            tokens_recheck: Duration::ZERO,
            ..GovernanceConfig::default()
        };
        let gov = Arc::new(Governance::open(&data, config).unwrap());
        gov.create_grant(A, "acme", day_utc(-10), day_utc(300), "operator:test")
            .unwrap();
        gov.create_grant_of(
            A,
            "dailyco",
            day_utc(-10),
            day_utc(300),
            Kinds::of(DataKind::Daily),
            "operator:test",
        )
        .unwrap();
        let http = util::Server::start(
            store,
            ServerConfig {
                governance: Some(gov.clone()),
                ..ServerConfig::default()
            },
        );
        Live {
            _dir: dir,
            http,
            gov,
        }
    }

    fn send(&self, token: &str, method: &str, path: &str, body: &str) -> Reply {
        util::reply(
            util::agent()
                .request(method, &self.http.url(path))
                .set("Authorization", &format!("Bearer {token}"))
                .set("Content-Type", "text/csv")
                .send_string(body),
        )
    }

    /// Subscribes as `token`; the lines of the stream arrive on the receiver, which closes
    /// when the stream ends. `Err` with the refusal when the subscription is refused.
    fn subscribe(&self, token: &str, query: &str) -> Result<mpsc::Receiver<String>, Reply> {
        let url = self.http.url(&format!("/v1/meters/{A}/live{query}"));
        let result = util::agent()
            .get(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .call();
        let response = match result {
            Ok(r) => r,
            Err(e) => return Err(util::reply(Err(e))),
        };
        assert_eq!(response.content_type(), "text/event-stream");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(response.into_reader()).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

/// The next `data:` line of the stream, as JSON.
fn next_event(rx: &mpsc::Receiver<String>) -> serde_json::Value {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("an event arrives");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data).expect("JSON data");
        }
    }
}

#[test]
fn a_subscriber_receives_each_ingested_reading_with_its_dynamic_cost_until_consent_is_revoked() {
    let live = Live::start();
    let events = live
        .subscribe(ACME, "?series=spot-FR")
        .expect("acme may read the curve");
    let h = day_utc(-1) + 10 * 3600;
    // 15-minute prices: 100.00 then -20.00 EUR/MWh.
    let prices = format!("ts,price\n{},100\n{},-20.00\n", rfc(h), rfc(h + 900));
    let put = live.send(OPERATOR, "PUT", "/v1/prices/spot/FR", &prices);
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.json()["accepted"], 2);
    // One 30-minute reading of 1 kW over both prices, one 15-minute reading over the first.
    let csv = format!(
        "meter_id,ts,value_w,quality,step_min\n{A},{},1000,measured,30\n{A},{},2000,measured,15\n",
        rfc(h),
        rfc(h + 1800)
    );
    let ingest = live.send(OPERATOR, "POST", "/v1/ingest", &csv);
    assert_eq!(ingest.status, 200, "{}", ingest.body);
    let first = next_event(&events);
    assert_eq!(first["ts"], rfc(h));
    assert_eq!(
        (first["value_w"].as_i64(), first["step_min"].as_i64()),
        (Some(1000), Some(30))
    );
    assert_eq!(first["energy_wh"].as_f64(), Some(500.0));
    // 0.25 kWh × 0.100 EUR/kWh − 0.25 kWh × 0.020 EUR/kWh; two prices: no single price.
    assert_eq!(first["cost_eur"].as_f64(), Some(0.02));
    assert!(first.get("price_eur_mwh").is_none(), "{first}");
    // The second reading has no price: its cost is left out, never guessed.
    let second = next_event(&events);
    assert_eq!(second["ts"], rfc(h + 1800));
    assert_eq!(second["energy_wh"].as_f64(), Some(500.0));
    assert!(second.get("cost_eur").is_none(), "{second}");
    // A reading under one price states it.
    let csv = format!(
        "meter_id,ts,value_w,quality,step_min\n{A},{},4000,measured,15\n",
        rfc(h + 900)
    );
    assert_eq!(live.send(OPERATOR, "POST", "/v1/ingest", &csv).status, 200);
    let third = next_event(&events);
    assert_eq!(third["price_eur_mwh"].as_f64(), Some(-20.0));
    assert_eq!(third["cost_eur"].as_f64(), Some(-0.02));
    // Revoking consent ends the stream.
    let revoke = util::reply(
        util::agent()
            .post(&live.http.url(&format!("/v1/meters/{A}/consent")))
            .set("Authorization", &format!("Bearer {OPERATOR}"))
            .set("Content-Type", "application/json")
            .send_string(r#"{"collection":"revoked"}"#),
    );
    assert_eq!(revoke.status, 201, "{}", revoke.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match events.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => assert!(!line.starts_with("data:"), "no reading after: {line}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream did not end"
        );
    }
    drop(live.gov);
}

#[test]
fn revoking_the_suppliers_grant_ends_its_stream() {
    let live = Live::start();
    let events = live.subscribe(ACME, "").expect("acme may read the curve");
    assert!(events
        .recv_timeout(Duration::from_secs(20))
        .expect("the opening comment")
        .starts_with(':'));
    let grant = live
        .gov
        .grants_of(A)
        .into_iter()
        .find(|g| g.supplier == "acme")
        .expect("acme's grant");
    live.gov
        .revoke_grant(A, grant.id, "operator:test")
        .unwrap()
        .expect("revoked");
    loop {
        match events.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => assert!(!line.starts_with("data:"), "{line}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end"),
        }
    }
    live.subscribe(ACME, "")
        .expect_err("no grant")
        .assert_error(403, "forbidden");
}

#[test]
fn a_supplier_without_curve_rights_and_a_bad_parameter_are_refused() {
    let live = Live::start();
    let refused = live.subscribe(DAILY_ONLY, "").expect_err("no curve rights");
    refused.assert_error(403, "forbidden");
    let bad = live
        .subscribe(ACME, "?series=FR")
        .expect_err("not a series id");
    bad.assert_error(400, "invalid_argument");
    let bad = live
        .subscribe(ACME, "?from=2024-01-01")
        .expect_err("an unknown parameter");
    bad.assert_error(400, "invalid_argument");
}

#[test]
fn a_subscriber_that_does_not_read_is_dropped_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let hub = LiveHub::attach(&store);
    let (_id, _never_read) = hub.subscribe(A);
    let (_other, _idle) = hub.subscribe("09111642617348");
    assert_eq!(hub.subscribers(), 2);
    let mut batch = Batch::new();
    for i in 0..(LIVE_QUEUE as i64 + 10) {
        let p = Point {
            ts_utc: 1_714_521_600 + 1800 * i,
            value: 500,
            step_min: 30,
            quality: Quality::Measured,
        };
        batch.push(A, Channel::CONSUMPTION, p).unwrap();
    }
    store
        .ingest(&batch)
        .expect("ingest is not held up by a full queue");
    assert_eq!((hub.subscribers(), hub.dropped()), (1, 1));
    // Prices and other channels reach no subscriber.
    let mut prices = Batch::new();
    prices
        .push(
            "spot-FR",
            Channel::PRICE,
            Point {
                ts_utc: 1_714_521_600,
                value: -500,
                step_min: 15,
                quality: Quality::Measured,
            },
        )
        .unwrap();
    store.ingest(&prices).unwrap();
    assert_eq!(_idle.len(), 0);
}

#[test]
fn spot_prices_are_written_by_the_operator_and_read_by_every_token() {
    let live = Live::start();
    let csv = "ts,price\n2024-05-01T00:00:00Z,45.5\n2024-05-01T00:15:00Z,-3.25\n\
               2024-05-01T00:30:00Z,1.234\nnot-a-time,4\n2024-05-01T00:35:00Z,4\n";
    let put = live.send(OPERATOR, "PUT", "/v1/prices/spot/FR", csv);
    assert_eq!(put.status, 200, "{}", put.body);
    let body = put.json();
    assert_eq!(body["accepted"], 2);
    let lines: Vec<i64> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5, 6], "{body}");
    // A supplier may not write prices; every token reads them.
    live.send(ACME, "PUT", "/v1/prices/spot/FR", csv)
        .assert_error(403, "forbidden");
    let path = "/v1/prices/spot/FR?from=2024-05-01T00:00:00Z&to=2024-05-02";
    for token in [PUBLIC, ACME, DAILY_ONLY, OPERATOR] {
        let got = live.send(token, "GET", path, "");
        assert_eq!(got.status, 200, "{token}: {}", got.body);
        let prices = got.json()["prices"].clone();
        assert_eq!(prices[0]["price_eur_mwh"].as_f64(), Some(45.5));
        assert_eq!(prices[1]["price_eur_mwh"].as_f64(), Some(-3.25));
        assert_eq!(prices[1]["step_min"], 15);
        assert_eq!(prices.as_array().unwrap().len(), 2);
    }
    // The generic ingest takes prices with their series, and only then.
    let more = "ts,price\n2024-05-01T01:00:00Z,-0.01\n";
    let ok = live.send(
        OPERATOR,
        "POST",
        "/v1/ingest?channel=price&series=spot-FR",
        more,
    );
    assert_eq!(
        (ok.status, ok.json()["accepted"].as_i64()),
        (200, Some(1)),
        "{}",
        ok.body
    );
    live.send(OPERATOR, "POST", "/v1/ingest?channel=price", more)
        .assert_error(400, "invalid_argument");
    live.send(OPERATOR, "POST", "/v1/ingest?series=spot-FR", more)
        .assert_error(400, "invalid_argument");
    live.send(OPERATOR, "POST", "/v1/ingest?channel=price&series=FR", more)
        .assert_error(400, "invalid_argument");
    // Bad areas, ranges and parameters are named.
    for bad in [
        "/v1/prices/spot/fr?from=2024-05-01&to=2024-05-02",
        "/v1/prices/spot/FR?from=2024-05-02&to=2024-05-01",
        "/v1/prices/spot/FR?from=2024-05-01",
        "/v1/prices/spot/FR?from=2024-05-01&to=2024-05-02&tz=UTC",
        "/v1/prices/spot/FR?from=2023-01-01&to=2024-05-02",
    ] {
        live.send(PUBLIC, "GET", bad, "")
            .assert_error(400, "invalid_argument");
    }
    // A series id is no meter.
    let curve = live.send(
        OPERATOR,
        "GET",
        "/v1/meters/spot-FR/curve?from=2024-05-01&to=2024-05-02",
        "",
    );
    assert_eq!(curve.status, 404, "{}", curve.body);
}

#[test]
fn generated_spot_prices_go_through_the_command_line_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("spot.csv");
    let gen = std::process::Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args([
            "gen",
            "--kind",
            "spot",
            "--start",
            "2024-03-30",
            "--days",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    std::fs::write(&csv, &gen.stdout).unwrap();
    let text = String::from_utf8(gen.stdout).unwrap();
    assert!(text.starts_with("ts,price\n"));
    // 30 March (96 quarter hours) and 31 March (the spring DST day: 92).
    assert_eq!(text.lines().count(), 1 + 96 + 92);
    let data = dir.path().join("data");
    let ingest = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_courbe"))
            .args(["ingest", "--channel", "price", "--data"])
            .arg(&data)
            .args(extra)
            .arg(&csv)
            .output()
            .unwrap()
    };
    let refused = ingest(&[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--series"));
    let done = ingest(&["--series", "spot-FR"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let store = Store::open(&data, Options::default()).unwrap();
    let prices = store
        .snapshot()
        .points("spot-FR", Channel::PRICE, 0, i64::MAX)
        .unwrap();
    assert_eq!(prices.len(), 96 + 92);
    assert!(prices.iter().all(|p| p.step_min == 15));
}

#[test]
fn without_a_spot_series_a_reading_is_priced_under_the_meters_contract_offer() {
    let live = Live::start();
    courbe::governance::prices::load_demo(live.gov.prices()).unwrap();
    let contract = courbe::governance::calendars::Contract {
        option: "HPHC".into(),
        from: "2025-02-01".into(),
        to: None,
        hc: Some("22:00-06:00".into()),
    };
    live.gov
        .calendars()
        .set_contracts(A, vec![contract], "operator:test", 0)
        .unwrap();
    let events = live.subscribe(ACME, "").expect("acme may read the curve");
    // 10:00 UTC is peak time in Paris; 23:00 UTC off-peak.
    let h = day_utc(-1) + 10 * 3600;
    let csv = format!(
        "meter_id,ts,value_w,quality,step_min\n{A},{},1000,measured,30\n{A},{},2000,measured,30\n",
        rfc(h),
        rfc(h + 13 * 3600)
    );
    assert_eq!(live.send(OPERATOR, "POST", "/v1/ingest", &csv).status, 200);
    // bleu-hphc-6 from 2025-02-01: HP 0.14513, HC 0.10763 EUR/kWh (energy, before taxes).
    let peak = next_event(&events);
    assert_eq!(peak["offer"], "bleu-hphc-6", "{peak}");
    assert_eq!(peak["cost_eur"].as_f64(), Some(0.072565));
    let off_peak = next_event(&events);
    assert_eq!(off_peak["cost_eur"].as_f64(), Some(0.10763));
    drop(live.gov);
}
