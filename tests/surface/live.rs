//! The live view (`GET /v1/meters/{id}/live`, server-sent events) against a real server:
//! subscribe, ingest, receive; revoking consent ends the stream; a supplier without curve
//! rights gets 403; a subscriber that does not read is dropped without slowing ingest.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::auth::token_hash;
use courbe::governance::grants::{DataKind, Kinds};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::http::live::{LiveHub, LIVE_QUEUE};
use courbe::http::ServerConfig;
use courbe::{Channel, Point, Quality};

use crate::util::{self, Reply};

const A: &str = "09111642617347";
const OPERATOR: &str = "tok-operator";
const ACME: &str = "tok-acme";
const DAILY_ONLY: &str = "tok-daily-only";

/// Midnight UTC `days` days from today.
fn day_utc(days: i64) -> i64 {
    (jiff::Timestamp::now().as_second().div_euclid(86_400) + days) * 86_400
}

fn rfc(ts: i64) -> String {
    jiff::Timestamp::from_second(ts).unwrap().to_string()
}

struct Live {
    _dir: tempfile::TempDir,
    http: util::Server,
    gov: Arc<Governance>,
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
