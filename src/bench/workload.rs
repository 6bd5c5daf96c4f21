//! What the load generator asks: the workloads, their request mix, and the prebuilt requests.

use std::fmt;
use std::str::FromStr;

use courbe_workload::{Fleet, FleetConfig};
use jiff::civil::Date;

use super::client::{get_request, post_request};
use crate::question::format_ts;
use crate::Quality;

/// A workload of `courbe bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One meter's curve over one local day (48 points).
    CurveDay,
    /// One meter's curve over a year (about 17,500 points).
    CurveYear,
    /// One meter's monthly energy over a year (12 periods), with the off-peak tariff of
    /// [`Plan::new`] when one is given.
    EnergyYear,
    /// One meter's monthly peak over a year (12 periods).
    PeakYear,
    /// The total of all meters per interval over one local day.
    FleetDay,
    /// `POST /v1/ingest` of one local day of [`BenchConfig::ingest_meters`] meters as CSV.
    ///
    /// [`BenchConfig::ingest_meters`]: super::BenchConfig::ingest_meters
    Ingest,
    /// All of the above, drawn per request with the weights of [`MIXED_WEIGHTS`].
    Mixed,
}

/// The kinds of request, in report order.
pub const KINDS: [Workload; 6] = [
    Workload::CurveDay,
    Workload::CurveYear,
    Workload::EnergyYear,
    Workload::PeakYear,
    Workload::FleetDay,
    Workload::Ingest,
];

/// Weights of [`KINDS`] in the mixed workload (percent): mostly one-meter questions, as a
/// customer portal asks them, a few fleet sums and ingest batches.
pub const MIXED_WEIGHTS: [u32; 6] = [35, 5, 30, 20, 2, 8];

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::CurveDay => "curve-day",
            Workload::CurveYear => "curve-year",
            Workload::EnergyYear => "energy-year",
            Workload::PeakYear => "peak-year",
            Workload::FleetDay => "fleet-day",
            Workload::Ingest => "ingest",
            Workload::Mixed => "mixed",
        }
    }

    /// Index in [`KINDS`]; `None` for [`Workload::Mixed`].
    pub fn kind_index(self) -> Option<usize> {
        KINDS.iter().position(|k| *k == self)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Workload, String> {
        KINDS
            .iter()
            .chain(std::iter::once(&Workload::Mixed))
            .find(|w| w.name() == s)
            .copied()
            .ok_or_else(|| {
                format!(
                    "unknown workload {s:?} (curve-day, curve-year, energy-year, peak-year, \
                     fleet-day, ingest or mixed)"
                )
            })
    }
}

/// A small, seeded generator (the workload crate's SplitMix64): the bench draws meters and days reproducibly.
#[derive(Clone, Debug)]
pub struct Rng(courbe_workload::rng::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(courbe_workload::rng::Rng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Everything needed to build requests: meters, days, and the prebuilt ingest bodies.
#[derive(Debug)]
pub struct Plan {
    host: String,
    meters: Vec<String>,
    /// `YYYY-MM-DD` of every local day of the span and of the day after it.
    days: Vec<String>,
    /// Index in `days` of the end of the year-long questions (exclusive).
    year_end: usize,
    /// Whole `POST /v1/ingest` requests and the points each carries.
    ingest: Vec<(Vec<u8>, u64)>,
    /// `&tariff=SPEC` (URL-encoded) of energy questions, or empty.
    tariff_param: String,
}

/// What a [`Plan`] asks about, besides the meters.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// First local day of the data.
    pub start: Date,
    /// Days of data from `start`.
    pub days: u32,
    /// Meters per ingest body; 0 prepares no ingest body.
    pub ingest_meters: u32,
    /// Off-peak windows of energy questions, e.g. `HC:22:00-06:00`.
    pub tariff: Option<String>,
    pub seed: u64,
}

/// Distinct ingest bodies prebuilt; requests cycle through them.
const INGEST_BODIES: u32 = 16;

impl Plan {
    pub fn new(host: &str, meters: Vec<String>, config: &PlanConfig) -> Result<Plan, String> {
        let PlanConfig {
            start,
            days,
            ingest_meters,
            seed,
            ..
        } = *config;
        if meters.is_empty() {
            return Err("the server holds no meter to ask about".into());
        }
        if days == 0 {
            return Err("the data span must hold at least one day".into());
        }
        let mut day_names = Vec::with_capacity(days as usize + 1);
        let mut day = start;
        for _ in 0..=days {
            day_names.push(day.to_string());
            day = day
                .tomorrow()
                .map_err(|e| format!("the span passes the calendar's end: {e}"))?;
        }
        let year_end = (days as usize).min(365);
        let mut rng = Rng::new(seed ^ 0x1A6E_5700);
        let mut ingest = Vec::new();
        for body_index in 0..if ingest_meters > 0 { INGEST_BODIES } else { 0 } {
            let offset = rng.below(days as usize);
            let day = day_names
                .get(offset)
                .and_then(|d| d.parse::<Date>().ok())
                .unwrap_or(start);
            let (csv, points) = ingest_csv(day, ingest_meters, body_index, seed);
            ingest.push((post_request(host, "/v1/ingest", "text/csv", &csv), points));
        }
        Ok(Plan {
            host: host.to_string(),
            meters,
            days: day_names,
            year_end,
            ingest,
            tariff_param: config
                .tariff
                .as_ref()
                .map(|t| format!("&tariff={}", encode_query_value(t)))
                .unwrap_or_default(),
        })
    }

    pub fn meters(&self) -> &[String] {
        &self.meters
    }

    /// A request of `kind` (not [`Workload::Mixed`]) and the points it ingests.
    pub fn request(&self, kind: Workload, rng: &mut Rng) -> (Vec<u8>, u64) {
        let meter = &self.meters[rng.below(self.meters.len())];
        let day_count = self.days.len() - 1;
        let first = &self.days[0];
        let year_end = &self.days[self.year_end];
        let path = match kind {
            Workload::CurveDay | Workload::FleetDay => {
                let i = rng.below(day_count);
                let (from, to) = (&self.days[i], &self.days[i + 1]);
                if kind == Workload::CurveDay {
                    format!("/v1/meters/{meter}/curve?from={from}&to={to}")
                } else {
                    format!("/v1/fleet/curve?from={from}&to={to}")
                }
            }
            Workload::CurveYear => format!("/v1/meters/{meter}/curve?from={first}&to={year_end}"),
            Workload::EnergyYear => format!(
                "/v1/meters/{meter}/energy?from={first}&to={year_end}&period=month{}",
                self.tariff_param
            ),
            Workload::PeakYear => {
                format!("/v1/meters/{meter}/peak?from={first}&to={year_end}&period=month")
            }
            Workload::Ingest | Workload::Mixed => {
                if let Some((request, points)) =
                    self.ingest.get(rng.below(self.ingest.len().max(1)))
                {
                    return (request.clone(), *points);
                }
                // No ingest body was prepared: ask the cheapest question instead.
                format!("/v1/meters/{meter}/peak?from={first}&to={year_end}&period=month")
            }
        };
        (get_request(&self.host, &path), 0)
    }
}

/// Percent-encodes everything but unreserved characters and `:`.
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One local day of `meters` generated meters as native CSV; the meters are those of the
/// generated fleet (`courbe gen`, `courbe demo`), so the bench rewrites existing curves rather
/// than adding meters.
fn ingest_csv(day: Date, meters: u32, body_index: u32, seed: u64) -> (Vec<u8>, u64) {
    let fleet = Fleet::new(FleetConfig {
        meters: meters.saturating_mul(INGEST_BODIES),
        start: day,
        days: 1,
        seed,
        ..FleetConfig::default()
    });
    let mut csv = b"meter_id,ts,value_w,quality,step_min\n".to_vec();
    let mut points = 0;
    let first = body_index.saturating_mul(meters);
    for index in first..first.saturating_add(meters) {
        let meter = fleet.meter(index);
        for r in &meter.consumption {
            let quality = Quality::from_u8(r.quality).unwrap_or(Quality::Estimated);
            csv.extend_from_slice(
                format!(
                    "{},{},{},{},{}\n",
                    meter.meter_id,
                    format_ts(r.ts_utc),
                    r.value,
                    quality.as_str(),
                    r.step_min
                )
                .as_bytes(),
            );
            points += 1;
        }
    }
    (csv, points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_name_reads_back() {
        for w in KINDS.iter().chain(std::iter::once(&Workload::Mixed)) {
            assert_eq!(w.name().parse::<Workload>(), Ok(*w));
        }
        assert!("curve".parse::<Workload>().is_err());
        assert_eq!(MIXED_WEIGHTS.iter().sum::<u32>(), 100);
    }

    #[test]
    fn requests_stay_inside_the_span_and_name_known_meters() {
        let meters = vec!["00000000000001".to_string(), "00000000000002".to_string()];
        let config = PlanConfig {
            start: jiff::civil::date(2024, 1, 1),
            days: 400,
            ingest_meters: 2,
            tariff: Some("HC:01:00-07:00,12:30-14:30".into()),
            seed: 7,
        };
        let plan = Plan::new("h", meters, &config).unwrap();
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let (req, _) = plan.request(Workload::CurveDay, &mut rng);
            let text = String::from_utf8(req).unwrap();
            assert!(text.starts_with("GET /v1/meters/0000000000000"), "{text}");
            let from = &text[text.find("from=").unwrap() + 5..][..10];
            assert!(("2024-01-01"..="2025-02-03").contains(&from), "{from}");
        }
        let (year, _) = plan.request(Workload::EnergyYear, &mut rng);
        let year = String::from_utf8(year).unwrap();
        assert!(
            year.contains("from=2024-01-01&to=2024-12-31&period=month"),
            "{year}"
        );
        let (ingest, points) = plan.request(Workload::Ingest, &mut rng);
        assert!(ingest.starts_with(b"POST /v1/ingest HTTP/1.1\r\n"));
        assert!((2 * 40..=2 * 50).contains(&points), "{points}");
    }

    #[test]
    fn the_rng_is_deterministic_and_stays_below_its_bound() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        for _ in 0..1000 {
            let x = a.below(7);
            assert_eq!(x, b.below(7));
            assert!(x < 7);
        }
    }
}
