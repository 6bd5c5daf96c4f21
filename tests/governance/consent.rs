//! Consent: refusal at ingest, history, revocation with erasure.

use courbe::engine::{Batch, Options, Store};
use courbe::governance::consent::{Collection, ConsentEvent, Refusal};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::source::SeriesSource;
use courbe::Channel;
use serde_json::json;

use super::access::fleet_server;
use super::support::*;

fn revocation(meter: &str, from_utc: i64, erase: bool) -> ConsentEvent {
    ConsentEvent {
        meter: meter.into(),
        from_utc,
        collection: Collection::Revoked,
        step_min: None,
        erase,
        recorded_utc: day_utc(0),
        by: "consumer:test".into(),
    }
}

#[test]
fn revoked_consent_refuses_curve_points_and_still_accepts_maximum_power() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, Options::default()).unwrap();
    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    let revoked_at = day_utc(-2);
    gov.record_consent(&store, revocation(A, revoked_at, false))
        .unwrap();

    let mut batch = Batch::new();
    // Before the revocation's instant, but sent while it is in force: refused too, so that a
    // re-sent old batch cannot repopulate a revoked curve.
    day_batch(&mut batch, A, -3, 100);
    day_batch(&mut batch, A, -2, 200); // after: refused
    day_batch(&mut batch, B, -2, 300); // another meter: collected
    batch
        .push(
            A,
            Channel::MAX_POWER,
            max_power_point(day_utc(-2) + 600, 7_000),
        )
        .unwrap();
    let (kept, screening) = gov.screen(&batch);
    assert_eq!(screening.refused_points, 96);
    assert_eq!(
        screening.refused,
        vec![(A.to_string(), Refusal::NoConsent, 96)]
    );
    store.ingest(&kept).unwrap();

    let snap = store.snapshot();
    let a = snap
        .points(A, Channel::CONSUMPTION, i64::MIN / 4, i64::MAX / 4)
        .unwrap();
    assert!(a.is_empty(), "{} points before {revoked_at}", a.len());
    let max = snap
        .points(A, Channel::MAX_POWER, i64::MIN / 4, i64::MAX / 4)
        .unwrap();
    assert_eq!(max.len(), 1);
    assert_eq!(max[0].value, 7_000);
    assert_eq!(
        snap.points(B, Channel::CONSUMPTION, i64::MIN / 4, i64::MAX / 4)
            .unwrap()
            .len(),
        48
    );
}

#[test]
fn the_consent_history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data, Options::default()).unwrap();
        let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
        gov.record_consent(&store, revocation(A, 1_000, false))
            .unwrap();
        let mut granted = revocation(A, 5_000, false);
        granted.collection = Collection::Granted;
        granted.step_min = Some(60);
        gov.record_consent(&store, granted).unwrap();
    }
    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    let history = gov.consent_history(A);
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].collection, Collection::Revoked);
    assert_eq!(history[1].step_min, Some(60));
    let mut batch = Batch::new();
    for (ts, step) in [(2_000, 30), (6_000, 30), (7_200, 60)] {
        batch
            .push(
                A,
                Channel::CONSUMPTION,
                courbe::Point {
                    ts_utc: ts,
                    value: 1,
                    step_min: step,
                    quality: courbe::Quality::Measured,
                },
            )
            .unwrap();
    }
    let (kept, screening) = gov.screen(&batch);
    assert_eq!(kept.len(), 1, "only the hourly point after the new grant");
    assert_eq!(
        screening.refused,
        vec![
            (A.to_string(), Refusal::NoConsent, 1),
            (A.to_string(), Refusal::FinerStep, 1)
        ]
    );
}

#[test]
fn a_consumer_revoking_with_erasure_leaves_no_curve_on_disk_but_keeps_maximum_power() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = fleet_server(&data);
        server.store.flush().unwrap();
        let reply = server.post_json(
            CONSUMER_A,
            &format!("/v1/meters/{A}/consent"),
            &json!({"collection": "revoked", "erase": true}),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["collection"], "revoked");
        assert_eq!(body["points_erased"], 96);
        let d = day_utc(-2);
        let curve = server
            .get(
                OPERATOR,
                &format!(
                    "/v1/meters/{A}/curve?from={}&to={}",
                    rfc(d),
                    rfc(d + 86_400)
                ),
            )
            .json();
        assert_eq!(curve["points"], json!([]));
        // A supplier's grant does not reach past a revocation.
        let supplier = server.get(
            ACME,
            &format!(
                "/v1/meters/{A}/curve?from={}&to={}",
                rfc(d),
                rfc(d + 86_400)
            ),
        );
        assert_eq!(supplier.status, 403);
    }
    // From disk, after a restart: the curve is gone, the maximum power is there.
    let store = Store::open(&data, Options::default()).unwrap();
    let snap = store.snapshot();
    let all = (i64::MIN / 4, i64::MAX / 4);
    assert!(snap
        .points(A, Channel::CONSUMPTION, all.0, all.1)
        .unwrap()
        .is_empty());
    assert_eq!(
        snap.points(A, Channel::MAX_POWER, all.0, all.1)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        snap.points(B, Channel::CONSUMPTION, all.0, all.1)
            .unwrap()
            .len(),
        96
    );
    assert!(snap.has_meter(A));
}

#[test]
fn the_ingest_endpoint_refuses_the_curve_of_a_revoked_meter_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let revoke = server.post_json(
        CONSUMER_B,
        &format!("/v1/meters/{B}/consent"),
        &json!({"collection": "revoked", "from": rfc(day_utc(-1))}),
    );
    assert_eq!(revoke.status, 201, "{}", revoke.body);
    let d = day_utc(-1);
    let mut csv = String::from("meter_id,ts,value_w,quality,step_min\n");
    for i in 0..4 {
        csv.push_str(&format!("{A},{},500,measured,30\n", rfc(d + i * 1_800)));
        csv.push_str(&format!("{B},{},600,measured,30\n", rfc(d + i * 1_800)));
    }
    // Before the revocation's instant, sent while it is in force: refused too.
    csv.push_str(&format!("{B},{},700,measured,30\n", rfc(d - 1_800)));
    let reply = server.call(
        Some(OPERATOR),
        "POST",
        "/v1/ingest",
        Some(("text/csv", &csv)),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"accepted": 4, "rejected": [], "refused_by_consent": 5})
    );
    let max_power = format!(
        "meter_id,ts,value_w,quality,step_min\n{B},{},9000,measured,1440\n",
        rfc(d + 3_600)
    );
    let reply = server.call(
        Some(OPERATOR),
        "POST",
        "/v1/ingest?channel=max_power",
        Some(("text/csv", &max_power)),
    );
    assert_eq!(reply.json(), json!({"accepted": 1, "rejected": []}));
    let snap = server.store.snapshot();
    let b = snap
        .points(B, Channel::CONSUMPTION, d - 1_800, d + 86_400)
        .unwrap();
    // The fleet's last half-hour of the day before, not the refused re-sent value.
    assert_eq!(b.len(), 1);
    assert_ne!(b[0].value, 700);
    assert_eq!(
        snap.points(B, Channel::MAX_POWER, d, d + 86_400)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        snap.points(A, Channel::CONSUMPTION, d, d + 86_400)
            .unwrap()
            .len(),
        4
    );
    // Suppliers and consumers do not ingest.
    for token in [ACME, CONSUMER_A, PUBLIC_BODY] {
        let reply = server.call(Some(token), "POST", "/v1/ingest", Some(("text/csv", &csv)));
        assert_eq!(reply.status, 403);
    }
}

#[test]
fn courbe_ingest_refuses_the_curve_of_a_revoked_meter_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data, Options::default()).unwrap();
        let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
        gov.record_consent(&store, revocation(A, 0, false)).unwrap();
        store.flush().unwrap();
    }
    let file = dir.path().join("in.csv");
    std::fs::write(
        &file,
        format!("meter_id,ts,value_w\n{A},2024-01-01T00:00:00Z,5\n{B},2024-01-01T00:00:00Z,6\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args(["ingest", "--data"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("accepted 1,"));
    assert!(stderr.contains("1 curve points refused"), "{stderr}");
    let store = Store::open(&data, Options::default()).unwrap();
    let snap = store.snapshot();
    assert!(!snap.has_meter(A));
    assert!(snap.has_meter(B));
}

/// Every file under `dir` (recursively) except the governance registries.
fn store_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name() != Some(std::ffi::OsStr::new(courbe::governance::DIR_NAME)) {
                out.extend(store_files(&path));
            }
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_erasing_revocation_leaves_no_byte_of_the_meter_in_the_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = fleet_server(&data);
    server.store.flush().unwrap();
    let holds_b = |files: &[std::path::PathBuf]| {
        files.iter().any(|f| {
            std::fs::read(f)
                .unwrap()
                .windows(B.len())
                .any(|w| w == B.as_bytes())
        })
    };
    assert!(holds_b(&store_files(&data)), "B is on disk before");
    let reply = server.post_json(
        CONSUMER_B,
        &format!("/v1/meters/{B}/consent"),
        &json!({"collection": "revoked", "erase": true}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["points_erased"], 96);
    // B had only a curve: its id is gone with it (the registries keep the revocation).
    assert!(!holds_b(&store_files(&data)), "B's bytes remain on disk");
    assert_eq!(server.gov.consent_history(B).len(), 1);
}

/// `POST /v1/meters/{meter}/consent` by the operator; the answer's body.
fn post_consent(server: &Server, meter: &str, body: serde_json::Value) -> serde_json::Value {
    let reply = server.post_json(OPERATOR, &format!("/v1/meters/{meter}/consent"), &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

/// Ingests one half-hour of `meter` at `ts_utc` through `/v1/ingest`; the points accepted.
fn ingest_one(server: &Server, meter: &str, ts_utc: i64) -> u64 {
    let csv = format!(
        "meter_id,ts,value_w,quality,step_min\n{meter},{},500,measured,30\n",
        rfc(ts_utc)
    );
    let reply = server.call(
        Some(OPERATOR),
        "POST",
        "/v1/ingest",
        Some(("text/csv", &csv)),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["accepted"].as_u64().unwrap()
}

#[test]
fn a_revocation_from_minus_infinity_recorded_after_a_grant_is_in_force_and_refuses_new_points() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    post_consent(
        &server,
        A,
        json!({"collection": "granted", "from": "2024-01-01T00:00:00Z"}),
    );
    let body = post_consent(
        &server,
        A,
        json!({"collection": "revoked", "from": "-infinity", "erase": true}),
    );
    assert_eq!(body["collection"], "revoked", "{body}");
    assert_eq!(body["points_erased"], 96);
    let now = courbe::governance::now_utc();
    assert_eq!(ingest_one(&server, A, now - now % 1_800), 0);
    assert_eq!(ingest_one(&server, B, now - now % 1_800), 1);
    assert!(server
        .store
        .snapshot()
        .points(A, Channel::CONSUMPTION, i64::MIN / 4, i64::MAX / 4)
        .unwrap()
        .is_empty());
}

#[test]
fn a_re_sent_historical_batch_does_not_repopulate_the_curve_of_a_revoked_meter() {
    for erase in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let server = fleet_server(&dir.path().join("data"));
        // Revoked from now on: the points before now were collected under consent.
        post_consent(&server, A, json!({"collection": "revoked", "erase": erase}));
        let mut batch = Batch::new();
        day_batch(&mut batch, A, -3, 900);
        day_batch(&mut batch, B, -3, 900);
        let (stored, screening) = server.gov.ingest(&server.store, &batch).unwrap();
        assert_eq!(stored, 48, "erase: {erase}");
        assert_eq!(
            screening.refused,
            vec![(A.to_string(), Refusal::NoConsent, 48)]
        );
        let a = server
            .store
            .snapshot()
            .points(A, Channel::CONSUMPTION, i64::MIN / 4, i64::MAX / 4)
            .unwrap();
        assert!(a.iter().all(|p| p.value < 900), "erase: {erase}");
        assert_eq!(a.len(), if erase { 0 } else { 96 });
    }
}

#[test]
fn a_revocation_without_erasure_holds_out_every_batch_screened_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = std::sync::Arc::new(Store::open(&data, Options::default()).unwrap());
    let gov = std::sync::Arc::new(Governance::open(&data, GovernanceConfig::default()).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (store, gov, stop) = (store.clone(), gov.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut k = 0i64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut batch = Batch::new();
                    let ts = day_utc(-1) + (k * 3 + w) * 60;
                    batch
                        .push(
                            A,
                            Channel::CONSUMPTION,
                            courbe::Point {
                                ts_utc: ts,
                                value: 1,
                                step_min: 30,
                                quality: courbe::Quality::Measured,
                            },
                        )
                        .unwrap();
                    gov.ingest(&store, &batch).unwrap();
                    k += 1;
                }
            })
        })
        .collect();
    let count = || {
        store
            .snapshot()
            .points(A, Channel::CONSUMPTION, i64::MIN / 4, i64::MAX / 4)
            .unwrap()
            .len()
    };
    while count() < 50 {
        std::thread::yield_now();
    }
    gov.record_consent(&store, revocation(A, day_utc(-1), false))
        .unwrap();
    let at_acknowledgement = count();
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(
        count(),
        at_acknowledgement,
        "points landed after the revocation was acknowledged"
    );
}

/// The model of a consent history: the latest recorded decision whose instant is at or before
/// `t` (`None`: nothing recorded for `t`).
fn model_state(events: &[(i64, bool)], t: i64) -> Option<bool> {
    events
        .iter()
        .rev()
        .find(|(from, _)| *from <= t)
        .map(|(_, granted)| *granted)
}

#[test]
fn consent_is_the_latest_recorded_decision_for_the_instants_it_covers() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let now = courbe::governance::now_utc();
    // Instants of decisions and of probes: -infinity, the past, now, the future.
    let instants = [
        i64::MIN,
        day_utc(-30),
        day_utc(-3),
        day_utc(-2),
        now - now % 1_800,
        day_utc(2),
    ];
    let pick = proptest::sample::select(instants.to_vec());
    let history = proptest::collection::vec((pick.clone(), any::<bool>()), 0..7);
    let probes = proptest::collection::vec(pick, 1..5);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 40,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &[0x11; 32],
        ),
    );
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&(history, probes), |(events, probes)| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let meter = format!("0911164262{n:04}");
            let mut answer = json!({"collection": "not_recorded"});
            for (from, granted) in &events {
                let from = if *from == i64::MIN {
                    json!("-infinity")
                } else {
                    json!(rfc(*from))
                };
                let collection = if *granted { "granted" } else { "revoked" };
                answer = post_consent(
                    &server,
                    &meter,
                    json!({"collection": collection, "from": from}),
                );
            }
            let now = courbe::governance::now_utc();
            let collecting_now = model_state(&events, now).unwrap_or(true);
            let expected_now = match model_state(&events, now) {
                None => "not_recorded",
                Some(true) => "granted",
                Some(false) => "revoked",
            };
            prop_assert_eq!(&answer["collection"], expected_now, "{:?}", events);
            let got = server.get(OPERATOR, &format!("/v1/meters/{meter}/consent"));
            if events.is_empty() {
                // Courbe holds nothing about this meter: the operator is told so.
                prop_assert_eq!(got.status, 404);
            } else {
                prop_assert_eq!(&got.json()["collection"], expected_now, "{:?}", events);
            }
            // The ingest gate: a point at `t` is kept while collection holds now and at `t`.
            for t in probes {
                let t = t.max(day_utc(-40));
                let mut batch = Batch::new();
                batch
                    .push(
                        &meter,
                        Channel::CONSUMPTION,
                        courbe::Point {
                            ts_utc: t,
                            value: 1,
                            step_min: 30,
                            quality: courbe::Quality::Measured,
                        },
                    )
                    .unwrap();
                let (kept, _) = server.gov.screen(&batch);
                let expected = collecting_now && model_state(&events, t).unwrap_or(true);
                prop_assert_eq!(kept.len() == 1, expected, "{:?} at {}", events, t);
            }
            Ok(())
        })
        .unwrap();
}

/// How many records of the consent registry file name `meter` (its records are JSON).
fn consent_records_naming(data: &std::path::Path, meter: &str) -> usize {
    let bytes = std::fs::read(data.join(courbe::governance::DIR_NAME).join("consent.log")).unwrap();
    bytes
        .windows(meter.len() + 2)
        .filter(|w| *w == format!("\"{meter}\"").as_bytes())
        .count()
}

#[test]
fn after_an_erasure_the_consent_registry_keeps_of_the_meter_only_its_erasing_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = fleet_server(&data);
        post_consent(
            &server,
            A,
            json!({"collection": "granted", "from": "2024-01-01T00:00:00Z", "step_min": 30}),
        );
        post_consent(&server, A, json!({"collection": "revoked"}));
        post_consent(
            &server,
            B,
            json!({"collection": "granted", "from": "2024-01-01"}),
        );
        assert_eq!(consent_records_naming(&data, A), 2);
        let body = post_consent(
            &server,
            A,
            json!({"collection": "revoked", "from": "-infinity", "erase": true}),
        );
        assert_eq!(body["history"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body["history"][0]["erase"], true);
        // The meter id is in the erasure's record only (its `meter` field); B is untouched.
        assert_eq!(consent_records_naming(&data, A), 1);
        assert_eq!(consent_records_naming(&data, B), 1);
        // The registry is appended to as before.
        post_consent(&server, B, json!({"collection": "revoked"}));
    }
    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    assert_eq!(gov.consent_history(A).len(), 1);
    assert_eq!(gov.consent_history(B).len(), 2);
}

#[test]
fn a_registry_left_unpruned_by_a_crash_after_an_erasure_is_pruned_at_open() {
    use courbe::governance::record_log::RecordLog;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let registries = data.join(courbe::governance::DIR_NAME);
    std::fs::create_dir_all(&registries).unwrap();
    {
        let log = RecordLog::open(
            std::sync::Arc::new(courbe::engine::fs::RealFs),
            &registries.join("consent.log"),
            |_: ConsentEvent| {},
        )
        .unwrap();
        let mut granted = revocation(A, day_utc(-100), false);
        granted.collection = Collection::Granted;
        log.append(&granted).unwrap();
        log.append(&revocation(A, i64::MIN, true)).unwrap();
    }
    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    assert_eq!(gov.consent_history(A), vec![revocation(A, i64::MIN, true)]);
    drop(gov);
    assert_eq!(consent_records_naming(&data, A), 1);
}
