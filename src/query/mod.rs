//! Queries over a [`SeriesSource`]: curve, calendar energy with tariff periods, peak power,
//! fleet sums.
//!
//! API contract (the CLI, the HTTP layer and the tests code against it; the bodies are the
//! query module's to write). Instants are Unix seconds UTC; `from` is inclusive, `to` exclusive.

use jiff::tz::TimeZone;

use crate::source::{SeriesSource, SourceError};
use crate::{Channel, Quality};

/// Why a query was refused or failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// A bad argument: `from` not before `to`, a range over the server's bound...
    InvalidArgument(String),
    UnknownZone(String),
    UnknownPeriod(String),
    /// An unreadable tariff spec, with the reason.
    BadTariff(String),
    UnknownMeter(String),
    Source(SourceError),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            QueryError::UnknownZone(z) => write!(f, "unknown time zone {z:?}"),
            QueryError::UnknownPeriod(p) => {
                write!(f, "unknown period {p:?} (day, week, month or year)")
            }
            QueryError::BadTariff(why) => write!(f, "unreadable tariff: {why}"),
            QueryError::UnknownMeter(m) => write!(f, "unknown meter {m:?}"),
            QueryError::Source(e) => write!(f, "read failed: {e}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<SourceError> for QueryError {
    fn from(e: SourceError) -> Self {
        QueryError::Source(e)
    }
}

/// A calendar period in a time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    /// ISO week, Monday to Monday.
    Week,
    Month,
    Year,
}

impl std::str::FromStr for Period {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Period, QueryError> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            "year" => Ok(Period::Year),
            other => Err(QueryError::UnknownPeriod(other.to_string())),
        }
    }
}

/// Off-peak (`HC`) windows in local time; every other minute is peak (`HP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tariff {
    /// `[start, end)` in minutes after local midnight; `end < start` crosses midnight.
    pub hc_windows_min: Vec<(u16, u16)>,
}

impl std::str::FromStr for Tariff {
    type Err = QueryError;
    /// Reads `HC:22:00-06:00` or `HC:01:00-07:00,12:30-14:30`.
    fn from_str(s: &str) -> Result<Tariff, QueryError> {
        todo!("query helper: {s}")
    }
}

/// Looks up an IANA zone name (`Europe/Paris`) or returns [`QueryError::UnknownZone`].
pub fn time_zone(name: &str) -> Result<TimeZone, QueryError> {
    TimeZone::get(name).map_err(|_| QueryError::UnknownZone(name.to_string()))
}

/// A run of consecutive intervals with one step, for charts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub start_utc: i64,
    pub step_min: u16,
    pub values: Vec<i32>,
    /// Present only when some point of the run is not `measured`.
    pub quality: Option<Vec<Quality>>,
}

/// One calendar period of an energy answer.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyPeriod {
    pub start_utc: i64,
    pub end_utc: i64,
    /// Exact energy in W·min (`value_w * step_min` summed); Wh is this / 60.
    pub energy_wmin: i64,
    pub points: u64,
    pub expected_points: u64,
    /// With a tariff: (HP, HC) in W·min; an interval straddling a window edge is split by minutes
    /// so the two may carry fractions.
    pub by_tariff_wmin: Option<(f64, f64)>,
}

impl EnergyPeriod {
    pub fn energy_wh(&self) -> f64 {
        self.energy_wmin as f64 / 60.0
    }
}

/// Where a peak value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakSource {
    /// The `max_power` channel, VA.
    MaxPower,
    /// The highest curve value, W.
    Curve,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeakPeriod {
    pub start_utc: i64,
    pub end_utc: i64,
    /// `None` when the period holds no data.
    pub peak: Option<(i32, i64, PeakSource)>,
}

/// One interval of a fleet curve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetPoint {
    pub ts_utc: i64,
    pub total: i64,
    pub meters: u32,
}

/// One meter's periods in a fleet energy answer.
#[derive(Clone, Debug, PartialEq)]
pub struct MeterEnergy {
    pub meter: String,
    pub periods: Vec<EnergyPeriod>,
}

/// The range and calendar of a calendar query.
#[derive(Clone, Debug)]
pub struct Calendar {
    pub from_utc: i64,
    pub to_utc: i64,
    pub period: Period,
    pub tz: TimeZone,
}

/// The points of `(meter, channel)` in `[from, to)`.
pub fn curve(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
) -> Result<Vec<crate::Point>, QueryError> {
    todo!(
        "query helper: {} {meter} {channel:?} {from_utc} {to_utc}",
        src.has_meter(meter)
    )
}

/// The same points as compact runs of consecutive intervals.
pub fn curve_runs(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
) -> Result<Vec<Run>, QueryError> {
    todo!(
        "query helper: {} {meter} {channel:?} {from_utc} {to_utc}",
        src.has_meter(meter)
    )
}

/// Energy per calendar period, every period of the range listed.
pub fn energy(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    calendar: &Calendar,
    tariff: Option<&Tariff>,
) -> Result<Vec<EnergyPeriod>, QueryError> {
    todo!(
        "query helper: {} {meter} {channel:?} {calendar:?} {tariff:?}",
        src.has_meter(meter)
    )
}

/// Highest power per calendar period: `max_power` where the period has it, else the curve.
pub fn peak(
    src: &dyn SeriesSource,
    meter: &str,
    calendar: &Calendar,
) -> Result<Vec<PeakPeriod>, QueryError> {
    todo!(
        "query helper: {} {meter} {calendar:?}",
        src.has_meter(meter)
    )
}

/// Total per interval of all meters (or `meters`), with how many contributed.
pub fn fleet_curve(
    src: &dyn SeriesSource,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
    meters: Option<&[String]>,
) -> Result<Vec<FleetPoint>, QueryError> {
    todo!(
        "query helper: {} {channel:?} {from_utc} {to_utc} {meters:?}",
        src.has_meter("")
    )
}

/// Every meter's (or `meters`') energy per period, computed on all cores.
pub fn fleet_energy(
    src: &dyn SeriesSource,
    channel: Channel,
    calendar: &Calendar,
    meters: Option<&[String]>,
) -> Result<Vec<MeterEnergy>, QueryError> {
    todo!(
        "query helper: {} {channel:?} {calendar:?} {meters:?}",
        src.has_meter("")
    )
}
