//! The flows end to end: parsed, batched, stored and read back, through the library, the HTTP
//! ingest endpoint and `courbe ingest`.

use std::process::Command;
use std::sync::Arc;

use courbe::engine::{Options, Store};
use courbe::ingest::Format;
use courbe::{Channel, Point, Quality};
use courbe_server::http::loading::ingest_document;
use courbe_server::http::ServerConfig;

use crate::util::{post, Server};

const R151: &str = include_str!("../data/enedis/R151.xml");
const SGE_INDEX: &str = include_str!("../data/enedis/Enedis_SGE_HDM_A06NW10D_excerpt.csv");
const METER: &str = "09111642617347";
/// 2022-02-02T00:00:00+01:00.
const MIDNIGHT: i64 = 1_643_756_400;

fn read(store: &Store, channel: Channel) -> Vec<(i64, i32, Quality)> {
    store
        .snapshot()
        .points(METER, channel, 0, i64::MAX)
        .expect("series reads back")
        .into_iter()
        .map(|p: Point| (p.ts_utc, p.value, p.quality))
        .collect()
}

fn register(store: &Store, name: &str) -> Channel {
    store
        .snapshot()
        .index_channel(name)
        .unwrap_or_else(|| panic!("register {name} is in the table"))
}

#[test]
fn the_r151_fixture_lands_in_the_store_as_index_and_max_power_points() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let report = ingest_document(
        &store,
        R151.as_bytes(),
        Format::R151,
        Channel::CONSUMPTION,
        1000,
    )
    .unwrap();
    assert_eq!((report.accepted, report.rejected_count), (3, 0));
    let measured = Quality::Measured;
    for name in ["BASE", "DIST_BASE"] {
        let channel = register(&store, name);
        assert_eq!(
            read(&store, channel),
            [(MIDNIGHT, 9_744_495, measured)],
            "{name}"
        );
    }
    assert_eq!(
        read(&store, Channel::MAX_POWER),
        [(MIDNIGHT, 3_817, measured)]
    );
    // Ingested again, the registers keep their channels and the points are replaced, not doubled.
    ingest_document(
        &store,
        R151.as_bytes(),
        Format::R151,
        Channel::CONSUMPTION,
        1000,
    )
    .unwrap();
    assert_eq!(store.snapshot().registers().len(), 2);
    assert_eq!(read(&store, register(&store, "BASE")).len(), 1);
}

fn data_connect_daily() -> String {
    format!(
        "{{\"meter_reading\": {{\"usage_point_id\": \"{METER}\", \"start\": \"2022-02-02\", \
         \"end\": \"2022-02-04\", \"quality\": \"BRUT\", \"reading_type\": {{\"measurement_kind\": \
         \"energy\", \"measuring_period\": \"P1D\", \"unit\": \"Wh\", \"aggregate\": \"sum\"}}, \
         \"interval_reading\": [{{\"value\": \"25513\", \"date\": \"2022-02-02\"}}, \
         {{\"value\": \"bad\", \"date\": \"2022-02-03\"}}]}}}}"
    )
}

#[test]
fn every_flow_reaches_the_store_over_http_detected_from_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let server = Server::start(store.clone(), ServerConfig::default());
    let url = server.url("/v1/ingest");

    let reply = post(&url, "application/xml", R151);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 3);

    let reply = post(&url, "text/csv", SGE_INDEX);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 14 + 6, "{}", reply.body);

    let reply = post(&url, "application/json", &data_connect_daily());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected"][0]["line"], 1);
    assert!(v["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("\"bad\""));

    // The SGE index of 2022-02-02T23:00+01:00 and R151's of 2022-02-02 share the register BASE.
    let base = read(&store, register(&store, "BASE"));
    assert!(base.contains(&(MIDNIGHT, 9_744_495, Quality::Measured)));
    assert!(base.contains(&(1_643_839_200, 9_723_814, Quality::Measured)));
    assert_eq!(base.len(), 8);
    assert_eq!(
        read(&store, Channel::DAILY_ENERGY),
        [(MIDNIGHT, 25_513, Quality::Measured)]
    );
    assert_eq!(read(&store, Channel::MAX_POWER).len(), 1 + 6);

    let reply = post(&url, "application/json", "{\"meter_reading\": {}}");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("reading_type"), "{}", reply.body);
}

#[test]
fn courbe_ingest_reads_r151_and_the_sge_index_export_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/enedis/");
    let out = Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args(["ingest", "--data"])
        .arg(&data)
        .arg(format!("{fixtures}R151.xml"))
        .arg(format!("{fixtures}Enedis_SGE_HDM_A06NW10D_excerpt.csv"))
        .output()
        .expect("courbe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("accepted 23, rejected 0"), "{stdout}");
    let store = Store::open(&data, Options::default()).unwrap();
    assert_eq!(read(&store, register(&store, "DIST_BASE")).len(), 8);
}

/// Native CSV of `meter`'s half hours over 2023-10-28..2023-10-31 (Paris; the 29th has 25 hours),
/// and three daily maxima at their instants.
fn curve_and_peaks(meter: &str) -> (String, String) {
    let start = 1_698_444_000; // 2023-10-28T00:00:00+02:00
    let end = 1_698_706_800; // 2023-10-31T00:00:00+01:00
    let mut curve = String::from("meter_id,ts,value_w\n");
    for (i, ts) in (start..end).step_by(1800).enumerate() {
        let ts = courbe::ingest::format_rfc3339_utc(ts);
        curve.push_str(&format!("{meter},{ts},{}\n", 200 + (i * 37) % 900));
    }
    let peaks = format!(
        "meter_id,ts,value_w\n{meter},2023-10-28T17:03:00Z,6100\n\
         {meter},2023-10-29T01:20:00Z,5400\n{meter},2023-10-30T18:45:10Z,7000\n"
    );
    (curve, peaks)
}

#[test]
fn a_data_connect_answer_ingested_into_another_store_answers_the_same() {
    let meter = "16401220101758";
    let (curve, peaks) = curve_and_peaks(meter);
    let dir_a = tempfile::tempdir().unwrap();
    let a = Arc::new(Store::open(dir_a.path(), Options::default()).unwrap());
    ingest_document(
        &a,
        curve.as_bytes(),
        Format::Csv,
        Channel::CONSUMPTION,
        1000,
    )
    .unwrap();
    ingest_document(&a, peaks.as_bytes(), Format::Csv, Channel::MAX_POWER, 1000).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let b = Arc::new(Store::open(dir_b.path(), Options::default()).unwrap());
    let server_a = Server::start(a.clone(), ServerConfig::default());
    let server_b = Server::start(b.clone(), ServerConfig::default());
    let query = format!("usage_point_id={meter}&start=2023-10-28&end=2023-10-31");
    for path in [
        "/metering_data_clc/v5/consumption_load_curve",
        "/metering_data_dc/v5/daily_consumption",
        "/metering_data_dcmp/v5/daily_consumption_max_power",
    ] {
        let from_a = crate::util::get(&server_a.url(&format!("{path}?{query}")));
        assert_eq!(from_a.status, 200, "{path}: {}", from_a.body);
        let n = from_a.json()["meter_reading"]["interval_reading"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        let reply = post(
            &server_b.url("/v1/ingest"),
            "application/json",
            &from_a.body,
        );
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.json()["accepted"], n, "{path}: {}", reply.body);
        assert_eq!(reply.json()["rejected"], serde_json::json!([]), "{path}");
        let from_b = crate::util::get(&server_b.url(&format!("{path}?{query}")));
        assert_eq!(from_b.json(), from_a.json(), "{path}");
    }
    // The curve came back point for point, the repeated autumn hour included.
    let points = |s: &Store| {
        s.snapshot()
            .points(meter, Channel::CONSUMPTION, 0, i64::MAX)
            .unwrap()
    };
    assert_eq!(points(&b), points(&a));
    assert_eq!(points(&b).len(), 48 + 50 + 48);
    assert_eq!(
        b.snapshot()
            .points(meter, Channel::DAILY_ENERGY, 0, i64::MAX)
            .unwrap()
            .len(),
        3
    );
}
