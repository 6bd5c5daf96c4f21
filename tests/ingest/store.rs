//! The flows end to end: parsed, batched, stored and read back, through the library, the HTTP
//! ingest endpoint and `courbe ingest`.

use std::process::Command;
use std::sync::Arc;

use courbe::engine::{Options, Store};
use courbe::http::loading::ingest_document;
use courbe::http::ServerConfig;
use courbe::ingest::Format;
use courbe::{Channel, Point, Quality};

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
