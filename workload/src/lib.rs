//! Realistic, deterministic household load curves for Courbe's tests, benches and `courbe gen`.
//!
//! API contract (benches, tests and the CLI code against it; the bodies are the workload
//! helper's to write). Pure computation: no files, threads or clocks.

use jiff::civil::Date;

/// One generated reading. `quality`: 0 measured, 1 estimated, 2 corrected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Interval start (for max power: the instant of the daily maximum), Unix seconds UTC.
    pub ts_utc: i64,
    /// W (VA for max power).
    pub value: i32,
    pub step_min: u16,
    pub quality: u8,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub meters: u32,
    /// First local day (Europe/Paris), from its local midnight.
    pub start: Date,
    pub days: u32,
    pub seed: u64,
    /// Step of every meter's curve, minutes (30 by default).
    pub step_min: u16,
    /// Share of meters whose step changes once in the span (30 to 10 minutes, say); 0 by default.
    pub step_change_share: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            meters: 2_000,
            start: jiff::civil::date(2024, 1, 1),
            days: 365,
            seed: 1,
            step_min: 30,
            step_change_share: 0.0,
        }
    }
}

/// One meter's whole span.
#[derive(Clone, Debug)]
pub struct MeterSeries {
    pub meter_id: String,
    /// Load curve, W, in time order (gaps are missing readings).
    pub consumption: Vec<Reading>,
    /// Solar production for the meters that have it, else empty.
    pub production: Vec<Reading>,
    /// One reading a day: maximum apparent power (VA) and its instant.
    pub max_power: Vec<Reading>,
}

/// A fleet: meters are generated one at a time, each independently of the others.
#[derive(Clone, Debug)]
pub struct Fleet {
    config: FleetConfig,
}

impl Fleet {
    pub fn new(config: FleetConfig) -> Fleet {
        Fleet { config }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The id of meter `index`: 14 digits, like a French PRM.
    pub fn meter_id(&self, index: u32) -> String {
        todo!("workload helper: {index}")
    }

    /// Generates meter `index` (deterministic for the fleet's seed and the index).
    pub fn meter(&self, index: u32) -> MeterSeries {
        todo!("workload helper: {index}")
    }
}
