//! The cost of access control on query requests: requests/s with and without it.
//!
//! `cargo run --release --example access_cost -- [SECONDS] [CLIENTS]` (default 5 s, 8 clients).
//! Serves 200 meters x 14 days in process on 127.0.0.1:0 and runs closed-loop keep-alive
//! clients asking for one meter's one-day curve (seeded choice of meter and day), in four modes:
//! no governance; governance with an operator token; with a consumer token (its own meter); with
//! a supplier token holding grants (grant and consent checks, and one audit record appended and
//! synced per read).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use courbe::engine::{Batch, Options, Store};
use courbe::governance::auth::token_hash;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::{Channel, Point, Quality};
use courbe_server::http::{self, ServerConfig};

const METERS: u32 = 200;
const DAYS: i64 = 14;
/// Midnight UTC 30 days ago: grants (at most three years) must cover the data and now.
fn t0() -> i64 {
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| (jiff::Timestamp::now().as_second() / 86_400 - 30) * 86_400)
}

fn meter(i: u32) -> String {
    format!("0911164270{i:04}")
}

fn fill(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..METERS {
        let mut batch = Batch::new();
        for k in 0..DAYS * 48 {
            batch
                .push(
                    &meter(i),
                    Channel::CONSUMPTION,
                    Point {
                        ts_utc: t0() + k * 1_800,
                        value: 200 + ((k * 37 + i64::from(i)) % 900) as i32,
                        step_min: 30,
                        quality: Quality::Measured,
                    },
                )
                .map_err(|e| e.0)?;
        }
        store.ingest(&batch)?;
    }
    store.flush()?;
    Ok(())
}

/// Serves on a free port in a thread; returns the base URL and a stop handle.
fn serve(store: Arc<Store>, config: ServerConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let _ = tx.send(listener.local_addr().expect("addr"));
            let _ = http::run(listener, store, config, async {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let addr = rx.recv().expect("the server starts");
    (format!("http://{addr}"), stop)
}

/// Closed-loop clients for `seconds`; returns requests/s. `meters` are the ones asked for.
fn load(base: &str, token: Option<&str>, meters: &[u32], seconds: u64, clients: u32) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for c in 0..clients {
        let (done, count) = (done.clone(), count.clone());
        let base = base.to_string();
        let token = token.map(str::to_string);
        let meters = meters.to_vec();
        threads.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().build();
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(c);
            while !done.load(Ordering::Relaxed) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let m = meters[(state >> 33) as usize % meters.len()];
                let day = ((state >> 17) % DAYS as u64) as i64;
                let from = t0() + day * 86_400;
                let url = format!(
                    "{base}/v1/meters/{}/curve?from={}&to={}",
                    meter(m),
                    jiff::Timestamp::from_second(from).expect("ts"),
                    jiff::Timestamp::from_second(from + 86_400).expect("ts"),
                );
                let mut req = agent.get(&url);
                if let Some(t) = &token {
                    req = req.set("Authorization", &format!("Bearer {t}"));
                }
                match req.call() {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.into_string();
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected answer: {other:?}"),
                }
            }
        }));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    done.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let clients: u32 = args.next().map_or(Ok(8), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let store = Arc::new(Store::open(&data, Options::default())?);
    fill(&store)?;
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "{} operator\n{} consumer {}\n{} supplier acme\n",
            token_hash("op"),
            token_hash("me"),
            meter(0),
            token_hash("acme")
        ),
    )?;
    let gov = Arc::new(Governance::open(
        &data,
        GovernanceConfig {
            tokens_path: Some(tokens),
            ..GovernanceConfig::default()
        },
    )?);
    let now = jiff::Timestamp::now().as_second();
    for i in 0..METERS {
        gov.create_grant(&meter(i), "acme", t0(), now + 86_400, "bench")?;
    }
    let all: Vec<u32> = (0..METERS).collect();
    println!("{METERS} meters x {DAYS} days, one-day curve requests, {clients} clients, {seconds} s each");
    let modes: [(&str, bool, Option<&str>, &[u32]); 4] = [
        ("no access control", false, None, &all),
        ("operator token", true, Some("op"), &all),
        ("consumer token (own meter)", true, Some("me"), &[0]),
        (
            "supplier token (grant, consent, audit)",
            true,
            Some("acme"),
            &all,
        ),
    ];
    for (name, governed, token, meters) in modes {
        let config = ServerConfig {
            governance: governed.then(|| gov.clone()),
            ..ServerConfig::default()
        };
        let (base, stop) = serve(store.clone(), config);
        let _ = load(&base, token, meters, 1, clients); // warm-up
        let rate = load(&base, token, meters, seconds, clients);
        println!("{name:<40} {rate:>10.0} requests/s");
        let _ = stop.send(());
    }
    Ok(())
}
