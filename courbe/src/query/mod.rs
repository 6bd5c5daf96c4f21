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

use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::source::{SeriesSource, SourceError};
use crate::{Channel, Quality};

pub mod calendar;
pub mod cost;
mod curve;
/// The resolved points of a series in `[from, to)`, none for an unknown meter (the governance
/// aggregates read every member of a group, known or not).
pub(crate) use curve::points as series_points;
pub mod daily;
mod energy;
mod fleet;
mod peak;
pub mod readings;
pub mod spot;
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

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Source(e) => Some(e),
            _ => None,
        }
    }
}

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
    /// Where the figures come from. With [`EnergySource::Daily`] or [`EnergySource::Index`],
    /// `points` and `expected_points` count days.
    pub source: EnergySource,
}

/// Where the figures of an energy period come from: the best source the period has.
///
/// In order: the curve when it is complete (every expected point present), else daily energy
/// when every Paris day of the period has a value, else index differences when every register
/// the meter reports has a reading at both bounds, else whichever of the curve and the daily
/// values covers more of the period (points over expected points, days over days), else none.
/// Daily energy and indexes answer only periods whose bounds are Europe/Paris midnights, and only
/// for `consumption` without an HP/HC window split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnergySource {
    /// No reading in the period.
    #[default]
    None,
    Curve,
    Daily,
    Index,
}

impl EnergySource {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySource::None => "none",
            EnergySource::Curve => "curve",
            EnergySource::Daily => "daily",
            EnergySource::Index => "index",
        }
    }
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

/// The same points as [`curve`], as columns in time order, handed to `f` (the buffers are this
/// thread's, reused from answer to answer).
pub fn with_curve_columns<R>(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
    f: impl FnOnce(&storage_format::block::DecodedBlock) -> R,
) -> Result<R, QueryError> {
    calendar::check_range(from_utc, to_utc)?;
    check_meter(src, meter)?;
    curve::with_columns(src, meter, channel, (from_utc, to_utc), f)
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
    let mut out = energy::periods(
        src,
        meter,
        channel,
        &periods,
        off_peak.as_mut(),
        &mut scratch,
    )?;
    if channel == Channel::CONSUMPTION && tariff.is_none() {
        fill_from_daily(src, meter, &mut out, &mut scratch)?;
    }
    Ok(out)
}

/// Whether a period's curve has every point it expects.
fn curve_complete(p: &EnergyPeriod) -> bool {
    p.expected_points > 0 && p.points >= p.expected_points
}

/// Replaces the figures of each period whose curve is not complete by a better source (see
/// [`EnergySource`]).
fn fill_from_daily(
    src: &dyn SeriesSource,
    meter: &str,
    out: &mut [EnergyPeriod],
    scratch: &mut storage_format::block::DecodedBlock,
) -> Result<(), QueryError> {
    if out.iter().all(curve_complete) {
        return Ok(());
    }
    let spans: Vec<(i64, i64)> = out.iter().map(|p| (p.start_utc, p.end_utc)).collect();
    let sums = daily::daily_sums(src, meter, &spans, scratch)?;
    let full = |s: &Option<daily::DailySum>| {
        s.is_some_and(|s| s.expected_days > 0 && s.days == s.expected_days)
    };
    let needs_index = out
        .iter()
        .zip(&sums)
        .any(|(p, s)| !curve_complete(p) && !full(s));
    let differences = match (needs_index, spans.first(), spans.last()) {
        (true, Some(&(from, _)), Some(&(_, to))) => {
            let registers = daily::meter_registers(src, meter, from, to.saturating_add(1))?;
            let total = daily::total_registers(&registers);
            daily::index_differences(src, meter, &total, &spans, scratch)?
        }
        _ => vec![None; spans.len()],
    };
    for ((p, sum), difference) in out.iter_mut().zip(&sums).zip(differences) {
        if curve_complete(p) {
            continue;
        }
        let daily = |p: &mut EnergyPeriod, s: &daily::DailySum| {
            p.energy_wmin = s.wh.saturating_mul(60);
            p.points = s.days;
            p.expected_points = s.expected_days;
            p.source = EnergySource::Daily;
        };
        match (sum, difference) {
            (Some(s), _) if full(sum) => daily(p, s),
            (_, Some(d)) => {
                let wh: i64 = d.iter().sum();
                let days = sum.map_or(0, |s| s.expected_days);
                p.energy_wmin = wh.saturating_mul(60);
                p.points = days;
                p.expected_points = days;
                p.source = EnergySource::Index;
            }
            (Some(s), None) if s.days > 0 => {
                // Both partial: the one covering more of the period (cross-multiplied ratios).
                let curve = u128::from(p.points) * u128::from(s.expected_days);
                let days = u128::from(s.days) * u128::from(p.expected_points.max(1));
                if p.points == 0 || days > curve {
                    daily(p, s);
                }
            }
            _ => {}
        }
    }
    Ok(())
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
    by_register_spans(src, meter, channel, &periods, plan, colours, false)
}

/// [`energy_by_register`] over contiguous `spans` `[start, end)` (UTC seconds, each starting
/// where the previous ended) rather than calendar periods. An option with a single register
/// takes a period whose curve is not complete from the best source [`energy`] would (daily
/// energy, else the total index), whatever the names of the meter's registers.
pub fn energy_by_register_spans(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    periods: &[(i64, i64)],
    plan: &tariffs::TariffPlan,
    colours: &tariffs::DayColours,
) -> Result<Vec<RegisterPeriod>, QueryError> {
    by_register_spans(src, meter, channel, periods, plan, colours, true)
}

fn by_register_spans(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    periods: &[(i64, i64)],
    plan: &tariffs::TariffPlan,
    colours: &tariffs::DayColours,
    single_as_total: bool,
) -> Result<Vec<RegisterPeriod>, QueryError> {
    check_energy_channel(channel)?;
    check_meter(src, meter)?;
    let (Some(&(from_utc, _)), Some(&(_, to_utc))) = (periods.first(), periods.last()) else {
        return Ok(Vec::new());
    };
    if periods.windows(2).any(|w| w[0].1 != w[1].0) || periods.iter().any(|p| p.0 >= p.1) {
        return Err(QueryError::InvalidArgument(
            "spans must be contiguous and not empty".into(),
        ));
    }
    let mut registers = tariffs::Registers::new(
        plan,
        colours,
        from_utc,
        to_utc + 60 * i64::from(storage_format::STEP_MIN_MAX),
    )?;
    let mut scratch = storage_format::block::DecodedBlock::default();
    let (periods, split) =
        energy::periods_by_register(src, meter, channel, periods, &mut registers, &mut scratch)?;
    registers_with_fallback(
        src,
        meter,
        channel,
        &registers.names,
        (periods, split),
        single_as_total,
        &mut scratch,
    )
}

/// The curve's figures per period and register (`walked`, from [`energy::periods_by_register`]
/// or [`energy::periods_by_register_read`]) with each period whose curve is not complete taken
/// from a better source, as [`by_register_spans`] does.
pub(crate) fn registers_with_fallback(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    names: &[String],
    (periods, split): (Vec<EnergyPeriod>, Vec<Vec<i128>>),
    single_as_total: bool,
    scratch: &mut storage_format::block::DecodedBlock,
) -> Result<Vec<RegisterPeriod>, QueryError> {
    let mut out: Vec<RegisterPeriod> = periods
        .into_iter()
        .zip(split)
        .map(|(period, ws)| RegisterPeriod {
            period,
            by_register_ws: names.iter().cloned().zip(ws).collect(),
        })
        .collect();
    if channel == Channel::CONSUMPTION && !out.iter().all(|p| curve_complete(&p.period)) {
        if let (true, [only]) = (single_as_total, names) {
            if only != tariffs::NO_CONTRACT && only != tariffs::UNKNOWN {
                let mut totals: Vec<EnergyPeriod> = out.iter().map(|p| p.period.clone()).collect();
                fill_from_daily(src, meter, &mut totals, scratch)?;
                for (p, total) in out.iter_mut().zip(totals) {
                    if total.source != p.period.source {
                        p.by_register_ws[0].1 = i128::from(total.energy_wmin) * 60;
                        p.period = total;
                    }
                }
                return Ok(out);
            }
        }
        fill_registers_from_index(src, meter, names, &mut out, scratch)?;
    }
    Ok(out)
}

/// Replaces the figures of each period whose curve is not complete by the differences of the
/// meter's index registers of the same names, when it reports every one of them at both bounds.
fn fill_registers_from_index(
    src: &dyn SeriesSource,
    meter: &str,
    names: &[String],
    out: &mut [RegisterPeriod],
    scratch: &mut storage_format::block::DecodedBlock,
) -> Result<(), QueryError> {
    let known = src.registers();
    let Some(channels) = names
        .iter()
        .map(|name| known.iter().find(|(_, n)| **n == **name).map(|(c, _)| *c))
        .collect::<Option<Vec<Channel>>>()
    else {
        return Ok(());
    };
    let spans: Vec<(i64, i64)> = out
        .iter()
        .map(|p| (p.period.start_utc, p.period.end_utc))
        .collect();
    let differences = daily::index_differences(src, meter, &channels, &spans, scratch)?;
    let tz = daily::paris();
    for (p, difference) in out.iter_mut().zip(differences) {
        let Some(d) = difference.filter(|_| !curve_complete(&p.period)) else {
            continue;
        };
        let days = daily::paris_days(&tz, p.period.start_utc, p.period.end_utc)
            .map_or(0, |d| d.len() as u64);
        p.period.energy_wmin = d.iter().sum::<i64>().saturating_mul(60);
        p.period.points = days;
        p.period.expected_points = days;
        p.period.source = EnergySource::Index;
        for ((_, ws), wh) in p.by_register_ws.iter_mut().zip(d) {
            *ws = i128::from(wh) * 3600;
        }
    }
    Ok(())
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
    if meters.is_none() {
        return fleet::curve_of_all(src, channel, from_utc, to_utc);
    }
    let meters = fleet::meter_list(src, channel, meters)?;
    fleet::curve(src, channel, from_utc, to_utc, &meters)
}

/// Two fleet curves of disjoint sets of meters added into the curve of their union: totals and
/// meter counts added at equal instants, in time order (a cluster's router merges its
/// readers' curves with it).
pub fn merge_fleet_curves(a: Vec<FleetPoint>, b: Vec<FleetPoint>) -> Vec<FleetPoint> {
    fleet::merge(a, b)
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

/// [`fleet_energy`] handed to `each` `chunk` meters at a time, in meter order (each slice
/// computed on all cores), so that a caller can stream the answer without holding it whole.
/// The checks of the whole question come before the first call; stops at the first error.
pub fn fleet_energy_each<E: From<QueryError>>(
    src: &dyn SeriesSource,
    channel: Channel,
    calendar: &Calendar,
    meters: Option<&[String]>,
    chunk: usize,
    mut each: impl FnMut(Vec<MeterEnergy>) -> Result<(), E>,
) -> Result<(), E> {
    check_energy_channel(channel)?;
    let periods = calendar.periods()?;
    let meters = fleet::meter_list(src, channel, meters)?;
    fleet::energy_each(src, channel, &periods, &meters, chunk, &mut each)
}

/// The index of every register at each boundary of a calendar of Paris days or months.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexTable {
    /// The registers the meter reports in the range (at any instant of it, bounds included),
    /// in code order.
    pub registers: Vec<Arc<str>>,
    /// Each boundary (every period's start, then the last period's end) with, per register,
    /// the reading at exactly that instant.
    pub rows: Vec<(i64, Vec<Option<daily::IndexReading>>)>,
}

/// The index of each register at each period boundary of `calendar` (D.224-26 1°: monthly
/// indexes, read or estimated). Daily readings are dated by Paris days: the calendar must be in
/// Europe/Paris with bounds at Paris midnights, and its periods days or months.
pub fn index(
    src: &dyn SeriesSource,
    meter: &str,
    calendar: &Calendar,
) -> Result<IndexTable, QueryError> {
    check_daily_calendar(calendar)?;
    let periods = calendar.periods()?;
    check_meter(src, meter)?;
    let mut bounds: Vec<i64> = periods.iter().map(|p| p.0).collect();
    bounds.push(calendar.to_utc);
    let registers = daily::meter_registers(src, meter, calendar.from_utc, calendar.to_utc + 1)?;
    let mut scratch = storage_format::block::DecodedBlock::default();
    let mut columns = Vec::with_capacity(registers.len());
    for (channel, _) in &registers {
        columns.push(daily::readings_at(
            src,
            meter,
            *channel,
            &bounds,
            &mut scratch,
        )?);
    }
    Ok(IndexTable {
        registers: registers.into_iter().map(|(_, name)| name).collect(),
        rows: bounds
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                (
                    t,
                    columns
                        .iter()
                        .map(|c| c.get(i).copied().flatten())
                        .collect(),
                )
            })
            .collect(),
    })
}

fn check_daily_calendar(calendar: &Calendar) -> Result<(), QueryError> {
    if calendar.tz.iana_name() != Some(daily::DAILY_TZ) {
        return Err(QueryError::InvalidArgument(format!(
            "indexes are dated by {} days: use that zone",
            daily::DAILY_TZ
        )));
    }
    if !matches!(calendar.period, Period::Day | Period::Month) {
        return Err(QueryError::InvalidArgument(
            "indexes are answered per day or per month".into(),
        ));
    }
    for (name, t) in [("from", calendar.from_utc), ("to", calendar.to_utc)] {
        if !crate::zone::is_paris_midnight(t) {
            return Err(QueryError::InvalidArgument(format!(
                "`{name}` must be a {} midnight (a date)",
                daily::DAILY_TZ
            )));
        }
    }
    Ok(())
}

/// One month of a [`YearSummary`].
#[derive(Clone, Debug, PartialEq)]
pub struct MonthSummary {
    /// Energy from the best source the month has (see [`EnergySource`]).
    pub energy: EnergyPeriod,
    /// Per register of [`YearSummary::registers`], `index(end) - index(start)` in Wh, when both
    /// readings exist and the index did not run backwards.
    pub by_register_wh: Vec<Option<i64>>,
    /// The highest power of the month (`max_power` where it has any, else the curve).
    pub peak: Option<(i32, i64, PeakSource)>,
}

/// What a consumer may ask for a year (D.224-26): per month the indexes at its start, the
/// energy in total and per register, and the maximum power; then the year's.
#[derive(Clone, Debug, PartialEq)]
pub struct YearSummary {
    pub year: i16,
    pub registers: Vec<Arc<str>>,
    /// The indexes at the thirteen month boundaries.
    pub indexes: IndexTable,
    pub months: Vec<MonthSummary>,
    /// The year's energy from the months' figures, the sources they used, and its peak.
    pub total: EnergyPeriod,
    pub peak: Option<(i32, i64, PeakSource)>,
}

/// The twelve Europe/Paris months of `year` for `meter`.
pub fn summary(src: &dyn SeriesSource, meter: &str, year: i16) -> Result<YearSummary, QueryError> {
    let tz = daily::paris();
    let start = |y: i16| -> Result<i64, QueryError> {
        let date = jiff::civil::Date::new(y, 1, 1)
            .map_err(|e| QueryError::InvalidArgument(format!("year {y}: {e}")))?;
        calendar::day_start_utc(&tz, date)
    };
    let next = year
        .checked_add(1)
        .ok_or_else(|| QueryError::InvalidArgument(format!("year {year} is out of range")))?;
    let calendar = Calendar {
        from_utc: start(year)?,
        to_utc: start(next)?,
        period: Period::Month,
        tz: tz.clone(),
    };
    let indexes = index(src, meter, &calendar)?;
    let energy = energy(src, meter, Channel::CONSUMPTION, &calendar, None)?;
    let peaks = peak(src, meter, &calendar)?;
    let months: Vec<MonthSummary> = energy
        .into_iter()
        .zip(peaks)
        .enumerate()
        .map(|(i, (energy, peak))| {
            let (Some((_, a)), Some((_, b))) = (indexes.rows.get(i), indexes.rows.get(i + 1))
            else {
                return MonthSummary {
                    energy,
                    by_register_wh: Vec::new(),
                    peak: peak.peak,
                };
            };
            let by_register_wh = a
                .iter()
                .zip(b)
                .map(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) if b.wh >= a.wh => Some(b.wh - a.wh),
                    _ => None,
                })
                .collect();
            MonthSummary {
                energy,
                by_register_wh,
                peak: peak.peak,
            }
        })
        .collect();
    let mut total = EnergyPeriod {
        start_utc: calendar.from_utc,
        end_utc: calendar.to_utc,
        energy_wmin: 0,
        points: 0,
        expected_points: 0,
        by_tariff_wmin: None,
        source: EnergySource::None,
    };
    for m in &months {
        total.energy_wmin = total.energy_wmin.saturating_add(m.energy.energy_wmin);
        total.source = match (total.source, m.energy.source) {
            (EnergySource::None, s) => s,
            (s, EnergySource::None) => s,
            (a, b) if a == b => a,
            // Months from different sources: the year names the least exact one used.
            (a, b) => a.max_by_detail(b),
        };
    }
    let peak = highest_of(&months);
    Ok(YearSummary {
        year,
        registers: indexes.registers.clone(),
        indexes,
        months,
        total,
        peak,
    })
}

/// The highest of the months' peaks, the earliest of equal ones.
fn highest_of(months: &[MonthSummary]) -> Option<(i32, i64, PeakSource)> {
    months
        .iter()
        .filter_map(|m| m.peak)
        .fold(None, |best, p| match best {
            Some(b) if b.0 > p.0 || (b.0 == p.0 && b.1 <= p.1) => Some(b),
            _ => Some(p),
        })
}

impl YearSummary {
    /// Leaves out every peak that comes from the curve (for callers without curve rights), the
    /// year's peak taken again from what is left.
    pub fn keep_max_power_peaks_only(&mut self) {
        for m in &mut self.months {
            m.peak = m.peak.filter(|p| p.2 == PeakSource::MaxPower);
        }
        self.peak = highest_of(&self.months);
    }
}

impl EnergySource {
    /// Of two sources, the coarser one (curve, then daily, then index).
    fn max_by_detail(self, other: EnergySource) -> EnergySource {
        let rank = |s: EnergySource| match s {
            EnergySource::None => 0,
            EnergySource::Curve => 1,
            EnergySource::Daily => 2,
            EnergySource::Index => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}
