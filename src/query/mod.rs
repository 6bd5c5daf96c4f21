//! Queries over a [`SeriesSource`]: curve, calendar energy with tariff periods, peak power,
//! fleet sums.
//!
//! The CLI and the HTTP layer call the functions of this module; they read data only through
//! [`SeriesSource`], so the same code answers from the engine and from test models.
//!
//! # Semantics
//!
//! - **Time**: Unix seconds UTC; `from` is inclusive, `to` exclusive. `from >= to`, or an instant
//!   outside the civil years -9999..=9999, is [`QueryError::InvalidArgument`]. A meter that holds
//!   no data on any channel ([`SeriesSource::has_meter`]) is [`QueryError::UnknownMeter`].
//! - **Periods** are local calendar periods in the query's zone (see [`Calendar::periods`]): days
//!   from local midnight to local midnight (a Paris day lasts 23, 24 or 25 hours), ISO weeks from
//!   Monday, months, years. An answer lists every period overlapping `[from, to)`, the first and
//!   last clipped to the range: `start_utc`/`end_utc` are the clipped bounds. A range of more
//!   than [`MAX_PERIODS`] periods is InvalidArgument.
//! - **Membership**: a point belongs to the period that contains its `ts_utc` (the start of its
//!   interval), even when its interval ends after the period.
//! - **Energy** of a point is `value * step_min` W·min, summed exactly in `i64` (Wh = /60).
//!   Energy is asked of `consumption` or `production`; of `max_power` it is InvalidArgument.
//! - **Expected points** of a period: the step in force at an instant is the step of the meter's
//!   latest point at or before it (looking before `from` too); before the meter's first point it
//!   is that point's step; a series without any point uses 30 minutes. A period is cut where the
//!   step in force changes; each piece contributes `floor(piece length / step)` and the pieces are
//!   summed. A full Paris day at 30 minutes expects 48 points (46 on 2024-03-31, 50 on
//!   2024-10-27); a day whose step goes from 30 to 10 minutes at noon expects 24 + 72.
//! - **Tariff** (`HC:HH:MM-HH:MM[,...]`, see [`Tariff`]): each interval's energy is split in
//!   proportion to the seconds of it whose local wall-clock time (DST-correct) falls in an off-peak
//!   window; `HP` is the rest. The split of a whole interval is charged to the period of its start.
//! - **Registers** (`tariff=option:...` or a meter's contracts, see [`tariffs`]): each interval's
//!   `value * seconds` goes to the register of each of its seconds (Europe/Paris wall clock,
//!   day colours); the registers of a period add up to its energy exactly (in W·s, `energy * 60`).
//!   Like the HP/HC split, a whole interval is charged to the period of its start.
//! - **Peak**: per period, the highest `max_power` point (VA, at the point's instant) when the
//!   period holds any, else the highest consumption value (W, at the interval's start); ties go to
//!   the earliest instant.
//! - **Fleet curve**: the sum of values grouped by exact `ts_utc` over the meters; a meter on
//!   another step contributes at its own instants (a 10-minute meter adds to 12:00, 12:10, 12:20;
//!   a 30-minute one only to 12:00), so totals are per instant, not resampled. Fleet queries
//!   take every meter holding the channel, or the listed ones (each once; one the store does not
//!   know is UnknownMeter), one meter per task on rayon's pool.
//! - **Summaries**: a block wholly inside one period (first and last point in it) is counted from
//!   its [`crate::BlockSummary`] without decoding, unless a tariff split needs its points, or its
//!   steps are mixed and the expected count needs them.

use jiff::tz::TimeZone;

use crate::source::{SeriesSource, SourceError};
use crate::{Channel, Quality};

pub mod calendar;
mod curve;
mod energy;
mod fleet;
mod peak;
mod tariff;
pub mod tariffs;

pub use calendar::MAX_PERIODS;

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
    /// Reads `HC:22:00-06:00` or `HC:01:00-07:00,12:30-14:30`: `HC:` then one or more windows
    /// `HH:MM-HH:MM` separated by commas. Hours 00-24 (24:00 only as an end), minutes 00-59;
    /// `end < start` crosses midnight; `00:00-24:00` is the whole day; overlapping windows merge.
    /// An empty spec, an empty window (`06:00-06:00`) or any other form is
    /// [`QueryError::BadTariff`] with the reason.
    fn from_str(s: &str) -> Result<Tariff, QueryError> {
        tariff::parse(s)
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

fn check_meter(src: &dyn SeriesSource, meter: &str) -> Result<(), QueryError> {
    if src.has_meter(meter) {
        Ok(())
    } else {
        Err(QueryError::UnknownMeter(meter.to_string()))
    }
}

fn check_energy_channel(channel: Channel) -> Result<(), QueryError> {
    if channel == Channel::MAX_POWER {
        return Err(QueryError::InvalidArgument(
            "energy is defined for the consumption and production channels, not max_power".into(),
        ));
    }
    Ok(())
}

/// The points of `(meter, channel)` in `[from, to)`, in time order.
pub fn curve(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
) -> Result<Vec<crate::Point>, QueryError> {
    calendar::check_range(from_utc, to_utc)?;
    check_meter(src, meter)?;
    curve::points(src, meter, channel, from_utc, to_utc)
}

/// The same points as compact runs: a run continues while each point starts where the previous
/// one ended and keeps its step.
pub fn curve_runs(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
) -> Result<Vec<Run>, QueryError> {
    let points = curve(src, meter, channel, from_utc, to_utc)?;
    Ok(curve::runs(&points))
}

/// Energy per calendar period, every period of the range listed (see the module docs for
/// expected points and the tariff split). `max_power` has no energy: InvalidArgument.
pub fn energy(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    calendar: &Calendar,
    tariff: Option<&Tariff>,
) -> Result<Vec<EnergyPeriod>, QueryError> {
    check_energy_channel(channel)?;
    let periods = calendar.periods()?;
    check_meter(src, meter)?;
    let mut off_peak = tariff.map(|t| {
        tariff::OffPeak::new(
            t,
            &calendar.tz,
            calendar.from_utc,
            calendar.to_utc + 60 * i64::from(storage_format::STEP_MIN_MAX),
        )
    });
    let mut scratch = storage_format::block::DecodedBlock::default();
    energy::periods(
        src,
        meter,
        channel,
        &periods,
        off_peak.as_mut(),
        &mut scratch,
    )
}

/// One calendar period of an energy answer split by register.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterPeriod {
    pub period: EnergyPeriod,
    /// Every register of the answer (the same list in each period), with its exact energy in
    /// W·s (Wh is this / 3600); their sum is `period.energy_wmin * 60`.
    pub by_register_ws: Vec<(String, i128)>,
}

/// Energy per calendar period split by the registers of `plan` (see [`tariffs`]), day colours
/// read from `colours`.
pub fn energy_by_register(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    calendar: &Calendar,
    plan: &tariffs::TariffPlan,
    colours: &tariffs::DayColours,
) -> Result<Vec<RegisterPeriod>, QueryError> {
    check_energy_channel(channel)?;
    let periods = calendar.periods()?;
    check_meter(src, meter)?;
    let mut registers = tariffs::Registers::new(
        plan,
        colours,
        calendar.from_utc,
        calendar.to_utc + 60 * i64::from(storage_format::STEP_MIN_MAX),
    )?;
    let mut scratch = storage_format::block::DecodedBlock::default();
    let (periods, split) =
        energy::periods_by_register(src, meter, channel, &periods, &mut registers, &mut scratch)?;
    Ok(periods
        .into_iter()
        .zip(split)
        .map(|(period, ws)| RegisterPeriod {
            period,
            by_register_ws: registers.names.iter().cloned().zip(ws).collect(),
        })
        .collect())
}

/// Highest power per calendar period: `max_power` where the period has it, else the curve.
pub fn peak(
    src: &dyn SeriesSource,
    meter: &str,
    calendar: &Calendar,
) -> Result<Vec<PeakPeriod>, QueryError> {
    let periods = calendar.periods()?;
    check_meter(src, meter)?;
    peak::periods(src, meter, &periods)
}

/// Total per interval of all meters of `channel` (or of `meters`, each counted once), with how
/// many contributed; in time order. A listed meter unknown to the store is UnknownMeter.
pub fn fleet_curve(
    src: &dyn SeriesSource,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
    meters: Option<&[String]>,
) -> Result<Vec<FleetPoint>, QueryError> {
    calendar::check_range(from_utc, to_utc)?;
    let meters = fleet::meter_list(src, channel, meters)?;
    fleet::curve(src, channel, from_utc, to_utc, &meters)
}

/// Every meter's (or `meters`') energy per period, like [`energy`] without tariff, sorted by
/// meter id, computed on all cores.
pub fn fleet_energy(
    src: &dyn SeriesSource,
    channel: Channel,
    calendar: &Calendar,
    meters: Option<&[String]>,
) -> Result<Vec<MeterEnergy>, QueryError> {
    check_energy_channel(channel)?;
    let periods = calendar.periods()?;
    let meters = fleet::meter_list(src, channel, meters)?;
    fleet::energy(src, channel, &periods, &meters)
}
