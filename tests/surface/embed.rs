//! `courbe_server::http::run` called by an embedder: the loopback rule and the final flush are
//! the server's, not only `courbe serve`'s.

use std::sync::Arc;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::{Channel, Point, Quality};
use courbe_server::http::{run, ServeError, ServerConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a server on `addr` that is asked to stop at once.
fn run_on(addr: &str, store: Arc<Store>, config: ServerConfig) -> Result<(), ServeError> {
    runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        run(listener, store, config, async {}).await
    })
}

fn expect_exposed(served: Result<(), ServeError>) -> String {
    match served {
        Err(ServeError::Exposed(why)) => why,
        other => panic!("refused as exposed, got {other:?}"),
    }
}

#[test]
fn an_embedders_run_refuses_a_public_address_without_governance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let why = expect_exposed(run_on("0.0.0.0:0", store, ServerConfig::default()));
    assert!(why.contains("loopback only"), "{why}");
}

#[test]
fn an_embedders_run_refuses_a_public_address_with_governance_but_no_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let gov = Arc::new(Governance::open(dir.path(), GovernanceConfig::default()).unwrap());
    let config = ServerConfig {
        governance: Some(gov),
        ..ServerConfig::default()
    };
    let why = expect_exposed(run_on("0.0.0.0:0", store, config));
    assert!(why.contains("--tokens"), "{why}");
}

#[test]
fn an_embedders_run_serves_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    run_on("127.0.0.1:0", store, ServerConfig::default()).unwrap();
}

#[test]
fn an_embedders_run_flushes_the_store_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let mut batch = Batch::new();
    for i in 0..48 {
        let point = Point {
            ts_utc: 1_704_067_200 + 1_800 * i,
            value: 500 + i as i32,
            step_min: 30,
            quality: Quality::Measured,
        };
        batch
            .push("09111642617347", Channel::CONSUMPTION, point)
            .unwrap();
    }
    store.ingest(&batch).unwrap();
    assert_eq!(store.memtable_memory().points, 48);
    assert_eq!(store.stats().segments, 0);
    run_on("127.0.0.1:0", store.clone(), ServerConfig::default()).unwrap();
    assert_eq!(store.memtable_memory().points, 0, "the memtable is flushed");
    assert!(store.stats().segments >= 1, "into a segment");
}
