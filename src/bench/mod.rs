//! `courbe bench`: a load generator for performance teams, against a running server.
//!
//! [`run`] takes a [`BenchConfig`] and returns a [`Report`]:
//! 1. **Discovery**: the meters are read once from `GET /v1/fleet/energy` (CSV, one local
//!    day from [`BenchConfig::start`]); every meter with data in the store is listed there.
//!    With [`BenchConfig::fleet_meters`], the ids of the generated fleet (`courbe gen`,
//!    `courbe demo`) are used instead, without asking the server.
//! 2. **Warm-up** for [`BenchConfig::warmup`], then **measurement** for
//!    [`BenchConfig::duration`], on [`BenchConfig::concurrency`] keep-alive connections:
//!    - closed loop (no rate): each connection sends its next request when the previous
//!      answer is in; a request counts when its answer arrives inside the measured window;
//!    - open loop (a rate): request `i` is due at `i / rate` seconds; the connection that
//!      takes it waits until it is due and its latency runs from when it was due, not from
//!      when it was sent, so a server that falls behind shows it in the percentiles (no
//!      coordinated omission). Requests still unsent a second after the end are `missed`.
//! 3. **Cross-check**: `/metrics` is read before and after; the requests the server counted
//!    in between (every route but `/metrics`) are reported next to the answers the bench
//!    received, warm-up and drain included.
//!
//! Latencies go to HDR histograms (microseconds, 3 significant digits), one per connection,
//! merged at the end. Meters and days are drawn from a seeded generator.

mod client;
mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jiff::civil::Date;
use serde::Serialize;

pub use client::{ClientError, Connection, Response};
pub use workload::{Plan, PlanConfig, Rng, Workload, KINDS, MIXED_WEIGHTS};

/// Largest latency the histograms hold, microseconds (one hour); slower answers are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// How long an open-loop run may go on after its end to send the requests already due.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(1);

/// What to run; `BenchConfig::default()` is `courbe bench`'s defaults.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// `http://host:port` of the server (no TLS).
    pub url: String,
    pub workload: Workload,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    pub warmup: Duration,
    /// Connections, each with one request in flight at most.
    pub concurrency: usize,
    /// Requests per second of the open loop; `None` runs a closed loop.
    pub rate_per_s: Option<f64>,
    /// First local day (Europe/Paris) of the data the questions ask about.
    pub start: Date,
    /// Days of data from `start`; year questions ask about the first 365 of them.
    pub days: u32,
    /// Meters per ingest request (one local day each, 48 points per meter).
    pub ingest_meters: u32,
    /// Ask about meters `0..n` of the generated fleet instead of discovering the server's.
    pub fleet_meters: Option<u32>,
    /// Off-peak windows added to energy questions (`HC:22:00-06:00`); none by default.
    pub tariff: Option<String>,
    /// Seed of the draws of meters, days and ingest bodies.
    pub seed: u64,
    /// Worker threads of the client's runtime.
    pub threads: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            url: "http://127.0.0.1:8080".into(),
            workload: Workload::EnergyYear,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            concurrency: 64,
            rate_per_s: None,
            start: jiff::civil::date(2024, 1, 1),
            days: 365,
            ingest_meters: 100,
            fleet_meters: None,
            tariff: None,
            seed: 1,
            threads: 1,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug)]
pub enum BenchError {
    /// A setting the caller can fix.
    InvalidArgument(String),
    /// The server could not be reached or did not answer the setup requests.
    Server(String),
    /// The client's runtime could not start.
    Runtime(std::io::Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::InvalidArgument(m) | BenchError::Server(m) => f.write_str(m),
            BenchError::Runtime(e) => write!(f, "cannot start the client runtime: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Latency {
            mean: h.mean() / 1e3,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Figures of one kind of request inside the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    pub workload: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    pub latency_ms: Latency,
}

/// What the server's `/metrics` counted during the run.
#[derive(Clone, Debug, Serialize)]
pub struct ServerCount {
    /// Requests answered, every route but `/metrics`.
    pub requests: u64,
    /// Of which with a status of 400 or more.
    pub errors: u64,
}

/// The figures of a run. Measured figures count the answers that arrived inside the measured
/// window; `sent`/`answered` count everything, warm-up and drain included.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub url: String,
    pub workload: &'static str,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub concurrency: usize,
    pub rate_per_s: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub meters: usize,
    /// Requests answered inside the measured window, errors included.
    pub requests: u64,
    /// Of those, answers with a status of 400 or more and requests without an answer.
    pub errors: u64,
    pub requests_per_s: f64,
    /// Latency of the successful measured requests.
    pub latency_ms: Latency,
    /// Points accepted per second by ingest requests in the window (ingest and mixed).
    pub ingest_points_per_s: Option<f64>,
    /// Bytes of answer bodies received per second in the window.
    pub body_bytes_per_s: f64,
    /// Per kind of request (only the kinds sent).
    pub kinds: Vec<KindReport>,
    /// Every HTTP answer received, warm-up and drain included.
    pub answered: u64,
    /// Answers received by status, warm-up and drain included.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection failures), warm-up and drain included.
    pub transport_errors: u64,
    /// First transport error seen, to say why.
    pub first_transport_error: Option<String>,
    /// Open loop: requests due in the window but never sent.
    pub missed: u64,
    /// The server's own count over the run, when its `/metrics` could be read.
    pub server: Option<ServerCount>,
}

impl Report {
    /// Whether the server counted exactly the answers the bench received.
    pub fn matches_server(&self) -> Option<bool> {
        self.server.as_ref().map(|s| s.requests == self.answered)
    }

    /// A few lines for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let loop_text = match self.rate_per_s {
            Some(rate) => format!("open loop at {rate} requests/s"),
            None => "closed loop".into(),
        };
        out.push_str(&format!(
            "courbe bench: {} on {}, {}, concurrency {}, {} meters, {:.0} s after {:.0} s of warm-up\n",
            self.workload, self.url, loop_text, self.concurrency, self.meters, self.duration_s,
            self.warmup_s
        ));
        out.push_str(&format!(
            "requests  {} ({:.1}/s), errors {}{}\n",
            self.requests,
            self.requests_per_s,
            self.errors,
            if self.missed > 0 {
                format!(
                    ", missed {} (the client or server fell behind)",
                    self.missed
                )
            } else {
                String::new()
            }
        ));
        out.push_str(&format!("latency   {}\n", latency_text(&self.latency_ms)));
        if self.kinds.len() > 1 {
            for k in &self.kinds {
                out.push_str(&format!(
                    "  {:<12} {:>9} ({:.1}/s), errors {}, {}\n",
                    k.workload,
                    k.requests,
                    k.requests_per_s,
                    k.errors,
                    latency_text(&k.latency_ms)
                ));
            }
        }
        if let Some(rate) = self.ingest_points_per_s {
            out.push_str(&format!("ingest    {rate:.0} points/s\n"));
        }
        out.push_str(&format!(
            "received  {:.1} MB/s of bodies\n",
            self.body_bytes_per_s / 1e6
        ));
        let failed: Vec<String> = self
            .statuses
            .iter()
            .filter(|(status, _)| **status >= 400)
            .map(|(status, n)| format!("{n} x {status}"))
            .collect();
        if !failed.is_empty() {
            out.push_str(&format!(
                "failed    {}, warm-up included\n",
                failed.join(", ")
            ));
        }
        if let Some(e) = &self.first_transport_error {
            out.push_str(&format!(
                "transport {} requests without answer; first: {e}\n",
                self.transport_errors
            ));
        }
        match &self.server {
            Some(s) => out.push_str(&format!(
                "server    /metrics counted {} requests ({} errors); the bench received {} answers, warm-up included: {}\n",
                s.requests,
                s.errors,
                self.answered,
                if s.requests == self.answered { "they match" } else { "MISMATCH" }
            )),
            None => out.push_str("server    /metrics could not be read\n"),
        }
        out
    }
}

fn latency_text(l: &Latency) -> String {
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  mean {:.3} ms",
        l.p50, l.p99, l.p999, l.max, l.mean
    )
}

/// Runs the load described by `config` and returns its figures.
pub fn run(config: &BenchConfig) -> Result<Report, BenchError> {
    check(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(run_async(config))
}

fn check(config: &BenchConfig) -> Result<(), BenchError> {
    let invalid = |m: &str| Err(BenchError::InvalidArgument(m.into()));
    if config.concurrency == 0 {
        return invalid("the concurrency must be at least 1");
    }
    if config.threads == 0 {
        return invalid("the client needs at least 1 thread");
    }
    if config.duration.is_zero() {
        return invalid("the duration must be more than 0 s");
    }
    if let Some(rate) = config.rate_per_s {
        if !(rate.is_finite() && rate > 0.0) {
            return invalid("the rate must be a positive number of requests per second");
        }
    }
    if config.days == 0 {
        return invalid("the data span must hold at least one day");
    }
    if matches!(config.workload, Workload::Ingest | Workload::Mixed) && config.ingest_meters == 0 {
        return invalid("ingest requests need at least 1 meter each");
    }
    Ok(())
}

/// `host:port` of an `http://` URL, and the address it resolves to.
async fn resolve(url: &str) -> Result<(String, SocketAddr), BenchError> {
    if url.starts_with("https://") {
        return Err(BenchError::InvalidArgument(
            "https is not supported: give the server's http:// address".into(),
        ));
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(BenchError::InvalidArgument(format!("no host in {url:?}")));
    }
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| BenchError::InvalidArgument(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| BenchError::InvalidArgument(format!("{host} resolves to no address")))?;
    Ok((host.to_string(), addr))
}

/// GET `path` and its body; a status other than 200 is an error.
async fn fetch(conn: &mut Connection, host: &str, path: &str) -> Result<Vec<u8>, BenchError> {
    let response = conn
        .send(&client::get_request(host, path), true)
        .await
        .map_err(|e| BenchError::Server(format!("GET {path}: {e}")))?;
    let body = response.body.unwrap_or_default();
    if response.status != 200 {
        return Err(BenchError::Server(format!(
            "GET {path} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )));
    }
    Ok(body)
}

/// Every meter with consumption data on the first day of the span, from the fleet energy CSV
/// (`meter_id,start,end,energy_wh`, one line per meter).
async fn discover_meters(
    conn: &mut Connection,
    host: &str,
    start: Date,
) -> Result<Vec<String>, BenchError> {
    let next = start
        .tomorrow()
        .map_err(|e| BenchError::InvalidArgument(format!("no day after {start}: {e}")))?;
    let path = format!("/v1/fleet/energy?from={start}&to={next}&period=day&format=csv");
    let body = fetch(conn, host, &path).await?;
    let text = String::from_utf8(body)
        .map_err(|_| BenchError::Server("the fleet energy CSV is not UTF-8".into()))?;
    let mut meters: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    meters.dedup();
    Ok(meters)
}

/// The ids of meters `0..n` of the generated fleet (they do not depend on its seed or span).
fn fleet_meter_ids(n: u32) -> Vec<String> {
    let fleet = courbe_workload::Fleet::new(courbe_workload::FleetConfig {
        meters: n,
        days: 1,
        ..courbe_workload::FleetConfig::default()
    });
    (0..n).map(|i| fleet.meter_id(i)).collect()
}

/// Requests the server counted, every route but `/metrics`, and those with a status >= 400.
pub fn server_requests(metrics_text: &str) -> (u64, u64) {
    let (mut all, mut errors) = (0, 0);
    for line in metrics_text.lines() {
        let Some(rest) = line.strip_prefix("courbe_http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if labels.contains("route=\"/metrics\"") {
            continue;
        }
        let Ok(n) = value.trim().parse::<u64>() else {
            continue;
        };
        all += n;
        let status = labels
            .split(',')
            .find_map(|l| l.strip_prefix("status=\""))
            .and_then(|s| s.trim_end_matches('"').parse::<u16>().ok());
        if status.is_some_and(|s| s >= 400) {
            errors += n;
        }
    }
    (all, errors)
}

async fn scrape(conn: &mut Connection, host: &str) -> Option<(u64, u64)> {
    let body = fetch(conn, host, "/metrics").await.ok()?;
    Some(server_requests(&String::from_utf8_lossy(&body)))
}

/// What every connection shares.
struct Shared {
    plan: Plan,
    workload: Workload,
    started: Instant,
    warm_end: Instant,
    end: Instant,
    /// Open loop: interval between due times, and the next request number.
    interval: Option<Duration>,
    next_slot: AtomicU64,
}

/// What one connection saw.
struct Tally {
    /// Per kind of [`KINDS`]: latency of successes, errors, ingest points, in the window.
    latency: Vec<Histogram<u64>>,
    errors: [u64; KINDS.len()],
    points: u64,
    body_bytes: u64,
    answered: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_transport_error: Option<String>,
    missed: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: KINDS.iter().map(|_| histogram()).collect(),
            errors: [0; KINDS.len()],
            points: 0,
            body_bytes: 0,
            answered: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            first_transport_error: None,
            missed: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            // Both histograms have the same bounds: adding cannot fail.
            let _ = a.add(b);
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.points += other.points;
        self.body_bytes += other.body_bytes;
        self.answered += other.answered;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        if self.first_transport_error.is_none() {
            self.first_transport_error = other.first_transport_error;
        }
        self.missed += other.missed;
    }
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's range.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!())
}

/// Mixed-workload draw: an index of [`KINDS`] by [`MIXED_WEIGHTS`].
fn pick_kind(workload: Workload, rng: &mut Rng) -> usize {
    if let Some(index) = workload.kind_index() {
        return index;
    }
    let total: u32 = MIXED_WEIGHTS.iter().sum();
    let mut draw = rng.below(total as usize) as u32;
    for (i, w) in MIXED_WEIGHTS.iter().enumerate() {
        if draw < *w {
            return i;
        }
        draw -= w;
    }
    0
}

async fn connection_loop(shared: Arc<Shared>, mut conn: Connection, seed: u64) -> Tally {
    let mut tally = Tally::new();
    let mut rng = Rng::new(seed);
    loop {
        let kind = pick_kind(shared.workload, &mut rng);
        let (request, points) = shared.plan.request(KINDS[kind], &mut rng);
        // When the request counts from: due time (open loop) or send time (closed loop).
        let (origin, measured) = match shared.interval {
            Some(interval) => {
                let slot = shared.next_slot.fetch_add(1, Ordering::Relaxed);
                let due = shared.started + interval.mul_f64(slot as f64);
                if due >= shared.end {
                    break;
                }
                let now = Instant::now();
                if now >= shared.end + OPEN_LOOP_GRACE {
                    tally.missed += u64::from(due >= shared.warm_end);
                    continue;
                }
                tokio::time::sleep_until(due.into()).await;
                (due, due >= shared.warm_end)
            }
            None => {
                let now = Instant::now();
                if now >= shared.end {
                    break;
                }
                (now, false)
            }
        };
        let result = conn.send(&request, points > 0).await;
        let done = Instant::now();
        let measured = match shared.interval {
            Some(_) => measured,
            None => done >= shared.warm_end && done < shared.end,
        };
        match result {
            Ok(response) => {
                tally.answered += 1;
                *tally.statuses.entry(response.status).or_default() += 1;
                if !measured {
                    continue;
                }
                tally.body_bytes += response.body_len;
                if response.status >= 400 {
                    tally.errors[kind] += 1;
                    continue;
                }
                if points > 0 {
                    tally.points += response.body.as_deref().map_or(0, accepted_points);
                }
                let us = (done - origin)
                    .as_micros()
                    .clamp(1, u128::from(MAX_LATENCY_US));
                tally.latency[kind].saturating_record(us as u64);
            }
            Err(e) => {
                tally.transport_errors += 1;
                if tally.first_transport_error.is_none() {
                    tally.first_transport_error = Some(e.to_string());
                }
                if measured {
                    tally.errors[kind] += 1;
                }
                // A refused connection is not retried in a busy loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

/// `accepted` of an ingest answer `{"accepted": N, ...}`.
fn accepted_points(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Accepted {
        accepted: u64,
    }
    serde_json::from_slice::<Accepted>(body).map_or(0, |a| a.accepted)
}

async fn run_async(config: &BenchConfig) -> Result<Report, BenchError> {
    let (host, addr) = resolve(&config.url).await?;
    let mut control = Connection::connect(addr)
        .await
        .map_err(|e| BenchError::Server(format!("cannot reach {}: {e}", config.url)))?;
    let meters = match config.fleet_meters {
        Some(n) => fleet_meter_ids(n),
        None => discover_meters(&mut control, &host, config.start).await?,
    };
    let needs_ingest = matches!(config.workload, Workload::Ingest | Workload::Mixed);
    let plan = Plan::new(
        &host,
        meters,
        &PlanConfig {
            start: config.start,
            days: config.days,
            ingest_meters: if needs_ingest {
                config.ingest_meters
            } else {
                0
            },
            tariff: config.tariff.clone(),
            seed: config.seed,
        },
    )
    .map_err(BenchError::Server)?;
    let meter_count = plan.meters().len();
    let mut conns = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        conns.push(
            Connection::connect(addr)
                .await
                .map_err(|e| BenchError::Server(format!("cannot reach {}: {e}", config.url)))?,
        );
    }
    let before = scrape(&mut control, &host).await;
    let started = Instant::now();
    let warm_end = started + config.warmup;
    let shared = Arc::new(Shared {
        plan,
        workload: config.workload,
        started,
        warm_end,
        end: warm_end + config.duration,
        interval: config
            .rate_per_s
            .map(|rate| Duration::from_secs_f64(1.0 / rate)),
        next_slot: AtomicU64::new(0),
    });
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let seed = workload::Rng::new(config.seed ^ (i as u64).wrapping_mul(0x9E37)).next_u64();
            tokio::spawn(connection_loop(shared.clone(), conn, seed))
        })
        .collect();
    let mut tally = Tally::new();
    for task in tasks {
        let one = task
            .await
            .map_err(|e| BenchError::Server(format!("a connection task failed: {e}")))?;
        tally.merge(one);
    }
    let after = scrape(&mut control, &host).await;
    Ok(report(config, meter_count, tally, before.zip(after)))
}

fn report(
    config: &BenchConfig,
    meters: usize,
    tally: Tally,
    server: Option<((u64, u64), (u64, u64))>,
) -> Report {
    let seconds = config.duration.as_secs_f64();
    let mut all = histogram();
    let mut kinds = Vec::new();
    let (mut requests, mut errors) = (0, 0);
    for (i, kind) in KINDS.iter().enumerate() {
        let (h, e) = (&tally.latency[i], tally.errors[i]);
        let n = h.len() + e;
        let _ = all.add(h);
        requests += n;
        errors += e;
        let sent = config.workload == *kind
            || (config.workload == Workload::Mixed && MIXED_WEIGHTS[i] > 0);
        if sent {
            kinds.push(KindReport {
                workload: kind.name(),
                requests: n,
                errors: e,
                requests_per_s: n as f64 / seconds,
                latency_ms: Latency::of(h),
            });
        }
    }
    let ingests = matches!(config.workload, Workload::Ingest | Workload::Mixed);
    Report {
        url: config.url.clone(),
        workload: config.workload.name(),
        mode: if config.rate_per_s.is_some() {
            "open"
        } else {
            "closed"
        },
        concurrency: config.concurrency,
        rate_per_s: config.rate_per_s,
        warmup_s: config.warmup.as_secs_f64(),
        duration_s: seconds,
        meters,
        requests,
        errors,
        requests_per_s: requests as f64 / seconds,
        latency_ms: Latency::of(&all),
        ingest_points_per_s: ingests.then(|| tally.points as f64 / seconds),
        body_bytes_per_s: tally.body_bytes as f64 / seconds,
        kinds,
        answered: tally.answered,
        statuses: tally.statuses,
        transport_errors: tally.transport_errors,
        first_transport_error: tally.first_transport_error,
        missed: tally.missed,
        server: server.map(|((all0, err0), (all1, err1))| ServerCount {
            requests: all1.saturating_sub(all0),
            errors: err1.saturating_sub(err0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_requests_sum_every_route_but_metrics() {
        let text = "# HELP courbe_http_requests_total x\n\
            courbe_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 7\n\
            courbe_http_requests_total{route=\"/v1/meters/:id/energy\",method=\"GET\",status=\"200\"} 40\n\
            courbe_http_requests_total{route=\"/v1/meters/:id/energy\",method=\"GET\",status=\"404\"} 2\n\
            courbe_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n\
            courbe_http_request_duration_seconds_count{route=\"/r\",method=\"GET\"} 99\n";
        assert_eq!(server_requests(text), (43, 3));
    }

    #[test]
    fn settings_that_cannot_run_are_refused() {
        let zero = BenchConfig {
            concurrency: 0,
            ..BenchConfig::default()
        };
        assert!(matches!(run(&zero), Err(BenchError::InvalidArgument(_))));
        let rate = BenchConfig {
            rate_per_s: Some(0.0),
            ..BenchConfig::default()
        };
        assert!(matches!(run(&rate), Err(BenchError::InvalidArgument(_))));
        let tls = BenchConfig {
            url: "https://example.org".into(),
            ..BenchConfig::default()
        };
        assert!(matches!(run(&tls), Err(BenchError::InvalidArgument(_))));
    }

    #[test]
    fn mixed_draws_follow_the_weights() {
        let mut rng = Rng::new(5);
        let mut counts = [0u32; KINDS.len()];
        for _ in 0..100_000 {
            counts[pick_kind(Workload::Mixed, &mut rng)] += 1;
        }
        for (count, weight) in counts.iter().zip(MIXED_WEIGHTS) {
            let share = f64::from(*count) / 1_000.0;
            assert!((share - f64::from(weight)).abs() < 1.0, "{counts:?}");
        }
        assert_eq!(pick_kind(Workload::PeakYear, &mut rng), 3);
    }
}
