//! Server metrics, rendered by hand in the Prometheus text exposition format (version 0.0.4).
//!
//! Labels come from route templates (`/v1/meters/:id/curve`), never from raw paths, so the
//! number of series is bounded by the number of routes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::engine::Stats;

/// Upper bounds of the latency histogram buckets, seconds.
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Observations per bucket of [`LATENCY_BUCKETS_S`] (not cumulative), then the overflow.
    counts: [u64; LATENCY_BUCKETS_S.len() + 1],
    sum_s: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = LATENCY_BUCKETS_S
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.sum_s += seconds;
    }
}

/// Counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, method, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (route, method) → latency.
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    ingest_accepted_points: AtomicU64,
    ingest_rejected_records: AtomicU64,
    ingest_bytes: AtomicU64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, latency: Duration) {
        *self
            .requests
            .lock()
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        self.latency
            .lock()
            .entry((route.to_string(), method.to_string()))
            .or_default()
            .observe(latency.as_secs_f64());
    }

    pub fn observe_ingest(&self, bytes: u64, accepted_points: u64, rejected_records: u64) {
        self.ingest_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.ingest_accepted_points
            .fetch_add(accepted_points, Ordering::Relaxed);
        self.ingest_rejected_records
            .fetch_add(rejected_records, Ordering::Relaxed);
    }

    /// The exposition text, with the store's sizes when known.
    pub fn render(&self, store: Option<&Stats>) -> String {
        let mut out = String::new();
        out.push_str("# HELP courbe_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE courbe_http_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "courbe_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP courbe_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE courbe_http_request_duration_seconds histogram\n");
        for ((route, method), h) in self.latency.lock().iter() {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS_S.iter().zip(h.counts.iter()) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "courbe_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let total: u64 = h.counts.iter().sum();
            let _ = writeln!(
                out,
                "courbe_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "courbe_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum_s
            );
            let _ = writeln!(
                out,
                "courbe_http_request_duration_seconds_count{{{labels}}} {total}"
            );
        }
        counter(
            &mut out,
            "courbe_ingest_points_accepted_total",
            "Points accepted by POST /v1/ingest.",
            self.ingest_accepted_points.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "courbe_ingest_records_rejected_total",
            "Records rejected by POST /v1/ingest.",
            self.ingest_rejected_records.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "courbe_ingest_bytes_total",
            "Body bytes read by POST /v1/ingest.",
            self.ingest_bytes.load(Ordering::Relaxed),
        );
        if let Some(stats) = store {
            gauge(
                &mut out,
                "courbe_store_bytes",
                "Bytes of the data directory on disk.",
                stats.bytes_on_disk,
            );
            gauge(
                &mut out,
                "courbe_store_points",
                "Points held by the store.",
                stats.points,
            );
            gauge(
                &mut out,
                "courbe_store_meters",
                "Meters with data.",
                stats.meters,
            );
            gauge(
                &mut out,
                "courbe_store_segments",
                "Segment files.",
                stats.segments,
            );
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
    );
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_route_method_and_status() {
        let m = Metrics::new();
        m.observe_request("/healthz", "GET", 200, Duration::from_millis(1));
        m.observe_request("/healthz", "GET", 200, Duration::from_millis(3));
        m.observe_request("/v1/ingest", "POST", 413, Duration::from_micros(100));
        let text = m.render(None);
        assert!(text.contains(
            "courbe_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "courbe_http_requests_total{route=\"/v1/ingest\",method=\"POST\",status=\"413\"} 1\n"
        ));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let m = Metrics::new();
        m.observe_request("/r", "GET", 200, Duration::from_millis(1));
        m.observe_request("/r", "GET", 200, Duration::from_millis(20));
        m.observe_request("/r", "GET", 200, Duration::from_secs(60));
        let text = m.render(None);
        let labels = "route=\"/r\",method=\"GET\"";
        assert!(text.contains(&format!(
            "courbe_http_request_duration_seconds_bucket{{{labels},le=\"0.001\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "courbe_http_request_duration_seconds_bucket{{{labels},le=\"0.025\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "courbe_http_request_duration_seconds_bucket{{{labels},le=\"10\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "courbe_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "courbe_http_request_duration_seconds_count{{{labels}}} 3\n"
        )));
    }

    #[test]
    fn ingest_counters_and_store_sizes_are_exposed() {
        let m = Metrics::new();
        m.observe_ingest(1_000, 40, 2);
        m.observe_ingest(500, 2, 0);
        let stats = Stats {
            meters: 3,
            points: 42,
            segments: 1,
            bytes_on_disk: 4_096,
        };
        let text = m.render(Some(&stats));
        assert!(text.contains("courbe_ingest_points_accepted_total 42\n"));
        assert!(text.contains("courbe_ingest_records_rejected_total 2\n"));
        assert!(text.contains("courbe_ingest_bytes_total 1500\n"));
        assert!(text.contains("courbe_store_bytes 4096\n"));
        assert!(text.contains("courbe_store_meters 3\n"));
        assert!(text.contains("# TYPE courbe_store_points gauge\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
