//! Integration tests: `courbe bench` against an in-process server on port 0.

use std::sync::Arc;
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::{Channel, Point, Quality};
use courbe_server::bench::{self, BenchConfig, Workload};
use courbe_server::http::ServerConfig;

use crate::util::Server;

/// Three meters with 30 days of half-hourly points from 2024-01-01 (Paris).
fn store_with_meters(dir: &std::path::Path) -> Arc<Store> {
    let store = Store::open(dir, Options::default()).expect("open store");
    let mut batch = Batch::new();
    let first_ts = 1_704_063_600; // 2024-01-01T00:00:00+01:00
    for (m, meter) in ["09111642617347", "09111642617348", "09111642617349"]
        .iter()
        .enumerate()
    {
        for i in 0..30 * 48 {
            let point = Point {
                ts_utc: first_ts + i * 1_800,
                value: 300 + (i % 48) as i32 * 10 + m as i32,
                step_min: 30,
                quality: Quality::Measured,
            };
            batch
                .push(meter, Channel::CONSUMPTION, point)
                .expect("a valid point");
        }
    }
    store.ingest(&batch).expect("ingest");
    Arc::new(store)
}

fn config(server: &Server, workload: Workload) -> BenchConfig {
    BenchConfig {
        url: server.base.clone(),
        workload,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(300),
        concurrency: 4,
        days: 30,
        ..BenchConfig::default()
    }
}

#[test]
fn a_closed_loop_run_counts_exactly_what_the_server_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(store_with_meters(dir.path()), ServerConfig::default());
    let report = bench::run(&config(&server, Workload::CurveDay)).expect("the run completes");
    assert_eq!(report.meters, 3);
    assert!(report.requests > 100, "{}", report.to_text());
    assert_eq!(report.errors, 0, "{}", report.to_text());
    assert_eq!(report.transport_errors, 0);
    let server_count = report.server.clone().expect("/metrics was read");
    assert_eq!(
        server_count.requests,
        report.answered,
        "{}",
        report.to_text()
    );
    assert_eq!(server_count.errors, 0);
    assert_eq!(report.matches_server(), Some(true));
    // Warm-up and drain are answered but not measured.
    assert!(report.answered > report.requests);
    assert_eq!(report.statuses.get(&200).copied(), Some(report.answered));
    let l = &report.latency_ms;
    assert!(0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
    assert!(report.body_bytes_per_s > 0.0);
}

#[test]
fn an_open_loop_run_sends_the_requested_rate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(store_with_meters(dir.path()), ServerConfig::default());
    let report = bench::run(&BenchConfig {
        rate_per_s: Some(200.0),
        ..config(&server, Workload::PeakYear)
    })
    .expect("the run completes");
    // 200/s for 2 s: requests are due at fixed times, so the count is exact unless missed.
    assert_eq!(report.requests + report.missed, 400, "{}", report.to_text());
    // And they were sent: a run that missed them all (or most) is a failure, not a rate. The
    // bound leaves a loaded two-core machine a tenth of the requests (a second of grace after
    // the end already absorbs a slow start).
    assert!(report.missed <= 40, "{}", report.to_text());
    assert!(
        report.requests_per_s >= 180.0 && report.requests_per_s <= 220.0,
        "{}",
        report.to_text()
    );
    assert_eq!(report.errors, 0, "{}", report.to_text());
    assert_eq!(report.mode, "open");
    assert_eq!(report.matches_server(), Some(true), "{}", report.to_text());
}

#[test]
fn the_json_report_names_the_figures_of_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(store_with_meters(dir.path()), ServerConfig::default());
    let report = bench::run(&BenchConfig {
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        ..config(&server, Workload::EnergyYear)
    })
    .expect("the run completes");
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "requests_per_s",
        "errors",
        "latency_ms",
        "server",
        "statuses",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    for key in ["p50", "p99", "p999"] {
        assert!(json["latency_ms"][key].as_f64().is_some_and(|v| v > 0.0));
    }
}

#[test]
fn a_server_that_is_not_there_is_a_server_error() {
    // Bind then drop a listener: its port is free and refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = bench::run(&BenchConfig {
        url: format!("http://127.0.0.1:{port}"),
        ..BenchConfig::default()
    });
    assert!(
        matches!(result, Err(bench::BenchError::Server(_))),
        "{result:?}"
    );
}

#[test]
fn ingest_requests_land_and_report_the_points_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_meters(dir.path());
    let server = Server::start(store.clone(), ServerConfig::default());
    let report = bench::run(&BenchConfig {
        ingest_meters: 2,
        duration: Duration::from_secs(1),
        ..config(&server, Workload::Ingest)
    })
    .expect("the run completes");
    assert_eq!(report.errors, 0, "{}", report.to_text());
    assert!(report.requests > 0);
    let points_per_s = report.ingest_points_per_s.expect("ingest figures");
    // Every body holds one local day of 2 meters: at most 100 points per request.
    assert!(points_per_s > 0.0, "{}", report.to_text());
    assert!(
        points_per_s <= 100.0 * report.requests_per_s,
        "{}",
        report.to_text()
    );
    assert_eq!(report.matches_server(), Some(true), "{}", report.to_text());
}
