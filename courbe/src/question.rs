//! The questions a client asks, read from text parameters into typed values, and their answers
//! as domain values: no transport, no JSON.
//!
//! The HTTP handlers and `courbe query` both build a [`Question`] from the same
//! [`QueryParams`] and answer it with [`answer`]; the server writes the [`Answer`] as JSON, CSV
//! or Arrow (`courbe_server::http::body`), so the two surfaces cannot disagree.

use jiff::tz::TimeZone;
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use crate::engine::Store;
use crate::query::tariffs::TariffSpec;
use crate::query::{self, Calendar, PeakSource, Period};
use crate::source::SeriesSource;
use crate::{Channel, Point};

/// The zone of calendar questions and local dates when none is given.
pub const DEFAULT_TZ: &str = crate::zone::PARIS;

const SECONDS_PER_DAY: i64 = 86_400;

/// Bounds on what one question may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest `[from, to)` of a curve or fleet curve, days (the contract: at least 2 years).
    pub max_curve_range_days: u32,
    /// Longest `[from, to)` of an energy, peak or fleet energy question, days (at least 10 years).
    pub max_calendar_range_days: u32,
    /// Most (meter, period) cells of one fleet energy answer.
    pub max_fleet_energy_cells: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_curve_range_days: 1_100,
            max_calendar_range_days: 4_020,
            max_fleet_energy_cells: 10_000_000,
        }
    }
}

/// The parameters of a question as text, from a query string ([`QueryParams::from_query`]) or
/// from command-line flags.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct QueryParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub tz: Option<String>,
    pub period: Option<String>,
    pub tariff: Option<String>,
    pub channel: Option<String>,
    /// `json` or `csv`; for curves also `points` (JSON, the default) or `columns` (JSON runs);
    /// for curves, energy and the fleet questions also `arrow` (an Arrow IPC stream).
    pub format: Option<String>,
    /// Comma-separated meter ids for fleet questions.
    pub meters: Option<String>,
    /// The civil year of a summary.
    pub year: Option<String>,
}

/// The parameters an erasure reads.
pub const ERASE_PARAMETERS: &[&str] = &["from", "to", "tz"];

/// The parameters an export reads.
pub const EXPORT_PARAMETERS: &[&str] = &["format", "channel"];

/// Reads a query string as `name=value` pairs, names and values percent-decoded (`+` is a
/// space, as in HTML forms); a pair without `=` has an empty value.
///
/// Fails closed: a name given twice (whatever its spelling, `from` or `%66rom`), a bad escape
/// or bytes that are not UTF-8 are an invalid argument naming the parameter, so that no two
/// readers of one request can pick different values.
pub fn read_query(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for segment in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (raw_name, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let name = percent_decode(raw_name)
            .ok_or_else(|| ApiError::invalid("unreadable query string: a bad parameter name"))?;
        let value = percent_decode(raw_value).ok_or_else(|| {
            ApiError::invalid(format!("unreadable query string: the value of `{name}`"))
        })?;
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::invalid(format!(
                "parameter `{name}` is given more than once"
            )));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// `application/x-www-form-urlencoded` decoding; `None` for a bad escape or non-UTF-8 bytes.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl QueryParams {
    /// Reads a query string with [`read_query`]; a parameter not in `allowed` is an invalid
    /// argument naming it (a parameter no one reads is refused, not ignored).
    pub fn from_query(query: Option<&str>, allowed: &[&str]) -> Result<QueryParams, ApiError> {
        let mut params = QueryParams::default();
        for (name, value) in read_query(query)? {
            let slot = match name.as_str() {
                _ if !allowed.contains(&name.as_str()) => None,
                "from" => Some(&mut params.from),
                "to" => Some(&mut params.to),
                "tz" => Some(&mut params.tz),
                "period" => Some(&mut params.period),
                "tariff" => Some(&mut params.tariff),
                "channel" => Some(&mut params.channel),
                "format" => Some(&mut params.format),
                "meters" => Some(&mut params.meters),
                "year" => Some(&mut params.year),
                _ => None,
            };
            let Some(slot) = slot else {
                return Err(ApiError::invalid(format!(
                    "unknown parameter `{name}` (this request reads {})",
                    allowed.join(", ")
                )));
            };
            *slot = Some(value);
        }
        Ok(params)
    }
}

/// Which question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    Curve,
    Energy,
    Peak,
    FleetCurve,
    FleetEnergy,
    /// Indexes per register at period boundaries.
    Index,
    /// A year's months: indexes, energy per register, maximum power.
    Summary,
}

impl QueryKind {
    /// The parameters this question reads; any other is refused.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            QueryKind::Curve => &["from", "to", "tz", "channel", "format"],
            QueryKind::Energy => &["from", "to", "tz", "period", "tariff", "channel", "format"],
            QueryKind::Peak => &["from", "to", "tz", "period", "format"],
            QueryKind::FleetCurve => &["from", "to", "tz", "channel", "format", "meters"],
            QueryKind::FleetEnergy => {
                &["from", "to", "tz", "period", "channel", "format", "meters"]
            }
            QueryKind::Index => &["from", "to", "period", "format"],
            QueryKind::Summary => &["year", "format"],
        }
    }

    /// Whether this question has an Arrow answer (`format=arrow`).
    pub fn answers_arrow(self) -> bool {
        matches!(
            self,
            QueryKind::Curve | QueryKind::Energy | QueryKind::FleetCurve | QueryKind::FleetEnergy
        )
    }

    fn range_limit_days(self, limits: &Limits) -> u32 {
        match self {
            QueryKind::Curve | QueryKind::FleetCurve => limits.max_curve_range_days,
            QueryKind::Energy
            | QueryKind::Peak
            | QueryKind::FleetEnergy
            | QueryKind::Index
            | QueryKind::Summary => limits.max_calendar_range_days,
        }
    }
}

/// The representation the `format` parameter asks for (read with the question, so that its
/// refusal comes in the same order as the other parameters'); the server writes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Csv,
    /// An Apache Arrow IPC stream.
    Arrow,
}

/// A range in a calendar, with the name the caller gave its zone.
#[derive(Clone, Debug)]
pub struct CalendarQuestion {
    pub calendar: Calendar,
    pub tz_name: String,
}

impl CalendarQuestion {
    /// Whether `from` and `to` are both midnights in the question's zone, so that every period
    /// (a day or longer) is made of whole local days.
    pub fn whole_local_days(&self) -> bool {
        let midnight = |ts_utc: i64| {
            jiff::Timestamp::from_second(ts_utc)
                .map(|t| {
                    t.to_zoned(self.calendar.tz.clone()).time() == jiff::civil::Time::midnight()
                })
                .unwrap_or(false)
        };
        midnight(self.calendar.from_utc) && midnight(self.calendar.to_utc)
    }
}

/// A validated question.
#[derive(Clone, Debug)]
pub enum Question {
    Curve {
        meter: String,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
        /// Compact runs instead of points.
        columns: bool,
    },
    Energy {
        meter: String,
        channel: Channel,
        calendar: CalendarQuestion,
        tariff: Option<TariffSpec>,
    },
    Peak {
        meter: String,
        calendar: CalendarQuestion,
        /// What access control lets the answer come from.
        sources: PeakSources,
    },
    FleetCurve {
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
        meters: Option<Vec<String>>,
    },
    FleetEnergy {
        channel: Channel,
        calendar: CalendarQuestion,
        meters: Option<Vec<String>>,
    },
    /// Europe/Paris days or months.
    Index {
        meter: String,
        calendar: CalendarQuestion,
    },
    /// The twelve Europe/Paris months of a year.
    Summary {
        meter: String,
        year: i16,
        calendar: CalendarQuestion,
        /// Leave out (null) a month's peak that would come from the curve: for callers without
        /// curve rights over the year.
        max_power_only: bool,
    },
}

/// The sources a peak may be answered from, as access control allowed them. Without
/// `max_power` the peak is taken from the curve alone (`max_power` is not read); without
/// `curve` a period whose peak would come from the curve is refused (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeakSources {
    pub max_power: bool,
    pub curve: bool,
}

impl PeakSources {
    pub const ALL: PeakSources = PeakSources {
        max_power: true,
        curve: true,
    };
}

/// A meter id in a question: the engine's rule for a stored meter, refused as 400 with its
/// reason.
pub fn check_meter_id(id: &str) -> Result<(), ApiError> {
    crate::engine::check_meter_id(id.as_bytes(), crate::engine::MeterIdUse::Stored)
        .map(|_| ())
        .map_err(|reason| {
            ApiError::invalid(format!(
                "{reason}: a meter id is 1 to 64 characters of [0-9A-Za-z_.-]"
            ))
        })
}

pub fn parse_channel(name: Option<&str>) -> Result<Channel, ApiError> {
    match name {
        None => Ok(Channel::CONSUMPTION),
        Some(name) => Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "unknown channel {name:?} (consumption, production or max_power)"
                ))
            }),
    }
}

/// The channel of native CSV rows to ingest: a query's channels, `daily_energy` (Wh per
/// Europe/Paris day, each row at the day's midnight with step 1440), or `price` (price CSV).
pub fn parse_ingest_channel(name: Option<&str>) -> Result<Channel, ApiError> {
    match name {
        Some(name) if name == Channel::DAILY_ENERGY.as_str() => Ok(Channel::DAILY_ENERGY),
        // Price CSV (`ts,price`) of the series its caller names (`series`).
        Some(name) if name == Channel::PRICE.as_str() => Ok(Channel::PRICE),
        _ => parse_channel(name).map_err(|_| {
            ApiError::invalid(format!(
                "unknown channel {:?} (consumption, production, max_power, daily_energy or price)",
                name.unwrap_or_default()
            ))
        }),
    }
}

pub fn parse_tz(name: Option<&str>) -> Result<(TimeZone, String), ApiError> {
    let name = name.unwrap_or(DEFAULT_TZ);
    Ok((query::time_zone(name)?, name.to_string()))
}

/// Reads an RFC 3339 instant with any offset, or a local date `YYYY-MM-DD` (midnight in `tz`),
/// as Unix seconds. `param` names the parameter in the error.
pub fn parse_instant(text: &str, tz: &TimeZone, param: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_second());
    }
    // An unescaped `+` in a query string arrives as a space: `...T00:00:00 01:00`.
    if text.contains(' ') {
        if let Ok(ts) = text.replace(' ', "+").parse::<jiff::Timestamp>() {
            return Ok(ts.as_second());
        }
    }
    let is_date_shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if is_date_shape {
        if let Ok(date) = text.parse::<jiff::civil::Date>() {
            return date
                .to_zoned(tz.clone())
                .map(|z| z.timestamp().as_second())
                .map_err(|e| ApiError::invalid(format!("`{param}`: {text:?}: {e}")));
        }
    }
    Err(ApiError::invalid(format!(
        "`{param}`: {text:?} is neither an RFC 3339 instant (2024-01-01T00:00:00+01:00) \
         nor a local date (2024-01-01)"
    )))
}

/// `from` and `to`, both required, read with [`parse_instant`].
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    tz: &TimeZone,
) -> Result<(i64, i64), ApiError> {
    let from = from.ok_or_else(|| ApiError::invalid("missing parameter `from`"))?;
    let to = to.ok_or_else(|| ApiError::invalid("missing parameter `to`"))?;
    Ok((
        parse_instant(from, tz, "from")?,
        parse_instant(to, tz, "to")?,
    ))
}

/// Refuses an empty or reversed `[from, to)`, naming both instants.
fn check_from_before_to(from_utc: i64, to_utc: i64) -> Result<(), ApiError> {
    if from_utc >= to_utc {
        return Err(ApiError::invalid(format!(
            "`from` ({}) must be before `to` ({})",
            format_ts(from_utc),
            format_ts(to_utc)
        )));
    }
    Ok(())
}

/// A comma-separated list of meter ids, each checked; `None` when there is no list.
pub fn parse_meter_list(list: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let ids: Vec<String> = list.split(',').map(|m| m.trim().to_string()).collect();
    for id in &ids {
        check_meter_id(id)?;
    }
    Ok(Some(ids))
}

/// RFC 3339 UTC with `Z`.
pub fn format_ts(ts_utc: i64) -> String {
    match jiff::Timestamp::from_second(ts_utc) {
        Ok(ts) => ts.to_string(),
        Err(_) => ts_utc.to_string(),
    }
}

/// A question read from a request, and how to encode its answer. The access guard reads it and
/// hands it to the handler: both see the same parameters, parsed once.
#[derive(Clone, Debug)]
pub struct Asked {
    pub question: Question,
    pub encoding: Encoding,
}

impl Asked {
    /// Reads a query string strictly ([`QueryParams::from_query`] with the parameters of
    /// `kind`) and validates it as [`Question::from_params`] does.
    pub fn read(
        kind: QueryKind,
        meter: Option<&str>,
        query: Option<&str>,
        limits: &Limits,
    ) -> Result<Asked, ApiError> {
        Asked::read_preferring(kind, meter, query, false, limits)
    }

    /// [`Asked::read`], for a request that asks for Arrow by other means than `format` (the
    /// server reads it from the `Accept` header): a question without `format` that has an
    /// Arrow answer is answered in Arrow when `prefers_arrow`; an explicit `format` wins, and
    /// other questions answer JSON.
    pub fn read_preferring(
        kind: QueryKind,
        meter: Option<&str>,
        query: Option<&str>,
        prefers_arrow: bool,
        limits: &Limits,
    ) -> Result<Asked, ApiError> {
        let mut params = QueryParams::from_query(query, kind.parameters())?;
        if params.format.is_none() && kind.answers_arrow() && prefers_arrow {
            params.format = Some("arrow".to_string());
        }
        let (question, encoding) = Question::from_params(kind, meter, &params, limits)?;
        Ok(Asked { question, encoding })
    }
}

impl Question {
    /// The meter of a per-meter question.
    pub fn meter(&self) -> Option<&str> {
        match self {
            Question::Curve { meter, .. }
            | Question::Energy { meter, .. }
            | Question::Peak { meter, .. }
            | Question::Index { meter, .. }
            | Question::Summary { meter, .. } => Some(meter),
            Question::FleetCurve { .. } | Question::FleetEnergy { .. } => None,
        }
    }

    /// `[from, to)` of the question, UTC seconds.
    pub fn range_utc(&self) -> (i64, i64) {
        match self {
            Question::Curve {
                from_utc, to_utc, ..
            }
            | Question::FleetCurve {
                from_utc, to_utc, ..
            } => (*from_utc, *to_utc),
            Question::Energy { calendar, .. }
            | Question::Peak { calendar, .. }
            | Question::FleetEnergy { calendar, .. }
            | Question::Index { calendar, .. }
            | Question::Summary { calendar, .. } => {
                (calendar.calendar.from_utc, calendar.calendar.to_utc)
            }
        }
    }

    /// Validates `params` for a question of `kind` about `meter` (required by the per-meter
    /// kinds, ignored by the fleet ones). Returns the question and how to encode its answer.
    pub fn from_params(
        kind: QueryKind,
        meter: Option<&str>,
        params: &QueryParams,
        limits: &Limits,
    ) -> Result<(Question, Encoding), ApiError> {
        let (tz, tz_name) = parse_tz(params.tz.as_deref())?;
        if kind == QueryKind::Summary {
            return Question::summary_from_params(meter, params, tz, tz_name);
        }
        let (from_utc, to_utc) = parse_range(params.from.as_deref(), params.to.as_deref(), &tz)?;
        check_from_before_to(from_utc, to_utc)?;
        let limit_days = kind.range_limit_days(limits);
        if to_utc - from_utc > i64::from(limit_days) * SECONDS_PER_DAY {
            return Err(ApiError::invalid(format!(
                "the range from {} to {} is over the limit of {limit_days} days for this question",
                format_ts(from_utc),
                format_ts(to_utc)
            )));
        }
        let channel = parse_channel(params.channel.as_deref())?;
        let (encoding, columns) = match params.format.as_deref() {
            None | Some("json") => (Encoding::Json, false),
            Some("csv") => (Encoding::Csv, false),
            Some("arrow") if kind.answers_arrow() => (Encoding::Arrow, false),
            Some("points") if kind == QueryKind::Curve => (Encoding::Json, false),
            Some("columns") if kind == QueryKind::Curve => (Encoding::Json, true),
            Some(other) => {
                let allowed = match kind {
                    QueryKind::Curve => "points, columns, json, csv or arrow",
                    _ if kind.answers_arrow() => "json, csv or arrow",
                    _ => "json or csv",
                };
                return Err(ApiError::invalid(format!(
                    "unknown format {other:?} ({allowed})"
                )));
            }
        };
        let calendar = || -> Result<CalendarQuestion, ApiError> {
            let period: Period = params.period.as_deref().unwrap_or("day").parse()?;
            Ok(CalendarQuestion {
                calendar: Calendar {
                    from_utc,
                    to_utc,
                    period,
                    tz: tz.clone(),
                },
                tz_name: tz_name.clone(),
            })
        };
        let meter = || -> Result<String, ApiError> {
            let meter = meter.ok_or_else(|| ApiError::invalid("missing meter id"))?;
            check_meter_id(meter)?;
            Ok(meter.to_string())
        };
        let meters = || parse_meter_list(params.meters.as_deref());
        let question = match kind {
            QueryKind::Curve => Question::Curve {
                meter: meter()?,
                channel,
                from_utc,
                to_utc,
                columns,
            },
            QueryKind::Energy => Question::Energy {
                meter: meter()?,
                channel,
                calendar: calendar()?,
                tariff: params.tariff.as_deref().map(str::parse).transpose()?,
            },
            QueryKind::Peak => Question::Peak {
                meter: meter()?,
                calendar: calendar()?,
                sources: PeakSources::ALL,
            },
            QueryKind::FleetCurve => Question::FleetCurve {
                channel,
                from_utc,
                to_utc,
                meters: meters()?,
            },
            QueryKind::FleetEnergy => Question::FleetEnergy {
                channel,
                calendar: calendar()?,
                meters: meters()?,
            },
            QueryKind::Index => Question::Index {
                meter: meter()?,
                calendar: calendar()?,
            },
            QueryKind::Summary => unreachable_summary()?,
        };
        Ok((question, encoding))
    }

    /// A summary reads `year` (and `format`), not a range.
    fn summary_from_params(
        meter: Option<&str>,
        params: &QueryParams,
        tz: TimeZone,
        tz_name: String,
    ) -> Result<(Question, Encoding), ApiError> {
        let meter = meter.ok_or_else(|| ApiError::invalid("missing meter id"))?;
        check_meter_id(meter)?;
        let text = params
            .year
            .as_deref()
            .ok_or_else(|| ApiError::invalid("missing parameter `year`"))?;
        let year: i16 = text
            .parse()
            .ok()
            .filter(|y| (1970..=9998).contains(y))
            .ok_or_else(|| {
                ApiError::invalid(format!("`year`: {text:?} is not a year from 1970 to 9998"))
            })?;
        let encoding = match params.format.as_deref() {
            None | Some("json") => Encoding::Json,
            Some("csv") => Encoding::Csv,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "unknown format {other:?} (json or csv)"
                )))
            }
        };
        let start = |y: i16| {
            jiff::civil::Date::new(y, 1, 1)
                .and_then(|d| d.to_zoned(tz.clone()))
                .map(|z| z.timestamp().as_second())
                .map_err(|e| ApiError::invalid(format!("`year`: {e}")))
        };
        let calendar = CalendarQuestion {
            calendar: Calendar {
                from_utc: start(year)?,
                to_utc: start(year + 1)?,
                period: Period::Month,
                tz,
            },
            tz_name,
        };
        Ok((
            Question::Summary {
                meter: meter.to_string(),
                year,
                calendar,
                max_power_only: false,
            },
            encoding,
        ))
    }
}

/// [`Question::from_params`] hands summaries to [`Question::summary_from_params`] first.
fn unreachable_summary() -> Result<Question, ApiError> {
    Err(ApiError::internal(
        "a summary question is read by its own reader",
    ))
}

/// An erasure: all of a meter's curve, or `[from, to)` of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EraseQuestion {
    pub meter: String,
    pub range_utc: Option<(i64, i64)>,
}

impl EraseQuestion {
    /// `from` and `to` come together or not at all.
    pub fn from_params(meter: &str, params: &QueryParams) -> Result<EraseQuestion, ApiError> {
        check_meter_id(meter)?;
        let range_utc = match (params.from.as_deref(), params.to.as_deref()) {
            (None, None) => None,
            (Some(from), Some(to)) => {
                let (tz, _) = parse_tz(params.tz.as_deref())?;
                let from_utc = parse_instant(from, &tz, "from")?;
                let to_utc = parse_instant(to, &tz, "to")?;
                check_from_before_to(from_utc, to_utc)?;
                Some((from_utc, to_utc))
            }
            _ => {
                return Err(ApiError::invalid(
                    "give both `from` and `to`, or neither to erase the whole curve",
                ))
            }
        };
        Ok(EraseQuestion {
            meter: meter.to_string(),
            range_utc,
        })
    }
}

/// Erases as asked; the points are physically gone from disk when it returns.
pub fn erase(
    store: &Store,
    question: &EraseQuestion,
) -> Result<crate::engine::EraseReport, ApiError> {
    ensure_meter(&*store.snapshot(), &question.meter)?;
    Ok(store.erase(&question.meter, question.range_utc)?)
}

/// The refusal of a request the caller's token does not allow; the same words whatever the
/// reason, so that a refusal says nothing about the meter.
pub fn forbidden() -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        "this token does not allow this request",
    )
}

/// An unknown meter is a 404 whatever the question.
fn ensure_meter(src: &dyn SeriesSource, meter: &str) -> Result<(), ApiError> {
    if src.has_meter(meter) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnknownMeter,
            format!("unknown meter {meter:?}"),
        ))
    }
}

/// The fewest seconds a period of this kind lasts (DST days are 23 hours).
fn shortest_period_s(period: Period) -> i64 {
    let days = match period {
        Period::Day => 1,
        Period::Week => 7,
        Period::Month => 28,
        Period::Year => 365,
    };
    days * SECONDS_PER_DAY - 3_600
}

/// Energy split by the registers of an option or of the meter's contracts.
fn energy_by_register(
    src: &dyn SeriesSource,
    meter: &str,
    channel: Channel,
    calendar: &CalendarQuestion,
    spec: &TariffSpec,
) -> Result<Answer, ApiError> {
    let empty = query::tariffs::DayColours::default();
    let unresolved;
    let (plan, colours) = match spec {
        TariffSpec::Resolved { plan, colours } => (plan, colours),
        TariffSpec::Option(option) => {
            unresolved = query::tariffs::TariffPlan::Option(option.clone());
            (&unresolved, &empty)
        }
        TariffSpec::Contract | TariffSpec::Hc(_) => {
            return Err(ApiError::invalid(
                "tariff=contract needs the governance registries (a server with governance)",
            ))
        }
    };
    let periods =
        query::energy_by_register(src, meter, channel, &calendar.calendar, plan, colours)?;
    Ok(Answer::EnergyByRegister {
        meter: meter.to_string(),
        channel,
        tz: calendar.tz_name.clone(),
        periods,
    })
}

/// Refuses a fleet energy question whose listed meters are not all known, or whose answer would
/// be over [`Limits::max_fleet_energy_cells`].
pub fn check_fleet_energy(
    src: &dyn SeriesSource,
    channel: Channel,
    calendar: &CalendarQuestion,
    meters: Option<&[String]>,
    limits: &Limits,
) -> Result<(), ApiError> {
    let meter_count = match meters {
        Some(list) => {
            check_fleet_curve(src, Some(list))?;
            list.len()
        }
        None => src.meters(channel).len(),
    };
    check_fleet_energy_size(meter_count, calendar, limits)
}

/// Refuses a fleet energy answer of `meter_count` meters that would be over
/// [`Limits::max_fleet_energy_cells`] (a cluster's router checks its merged answer with it).
pub fn check_fleet_energy_size(
    meter_count: usize,
    calendar: &CalendarQuestion,
    limits: &Limits,
) -> Result<(), ApiError> {
    let cal = &calendar.calendar;
    let periods = (cal.to_utc - cal.from_utc) / shortest_period_s(cal.period) + 2;
    let cells = (meter_count as u64).saturating_mul(periods.max(0) as u64);
    if cells > limits.max_fleet_energy_cells {
        return Err(ApiError::invalid(format!(
            "the answer would hold about {cells} meter-periods, over the limit of {}: \
             narrow the range, take a longer period or list the meters",
            limits.max_fleet_energy_cells
        )));
    }
    Ok(())
}

/// Refuses a fleet question listing a meter the store does not know (404).
pub fn check_fleet_curve(
    src: &dyn SeriesSource,
    meters: Option<&[String]>,
) -> Result<(), ApiError> {
    for meter in meters.into_iter().flatten() {
        ensure_meter(src, meter)?;
    }
    Ok(())
}

/// The answer to a [`Question`]: the query's own values, with what the question said of them.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Curve {
        meter: String,
        channel: Channel,
        points: Vec<Point>,
    },
    /// A curve as runs (`format=columns`).
    CurveRuns {
        meter: String,
        channel: Channel,
        runs: Vec<query::Run>,
    },
    Energy {
        meter: String,
        channel: Channel,
        /// The zone's name as the caller gave it.
        tz: String,
        periods: Vec<query::EnergyPeriod>,
    },
    /// Energy split by the registers of a tariff option or of the meter's contracts.
    EnergyByRegister {
        meter: String,
        channel: Channel,
        tz: String,
        periods: Vec<query::RegisterPeriod>,
    },
    Peak {
        meter: String,
        periods: Vec<query::PeakPeriod>,
    },
    FleetCurve {
        channel: Channel,
        points: Vec<query::FleetPoint>,
    },
    FleetEnergy {
        tz: String,
        meters: Vec<query::MeterEnergy>,
    },
    Index {
        meter: String,
        table: query::IndexTable,
    },
    Summary {
        meter: String,
        summary: query::YearSummary,
    },
}

/// Answers `question` from `src`.
pub fn answer(
    src: &dyn SeriesSource,
    question: &Question,
    limits: &Limits,
) -> Result<Answer, ApiError> {
    match question {
        Question::Curve {
            meter,
            channel,
            from_utc,
            to_utc,
            columns,
        } => {
            ensure_meter(src, meter)?;
            if *columns {
                let runs = query::curve_runs(src, meter, *channel, *from_utc, *to_utc)?;
                Ok(Answer::CurveRuns {
                    meter: meter.clone(),
                    channel: *channel,
                    runs,
                })
            } else {
                let points = query::curve(src, meter, *channel, *from_utc, *to_utc)?;
                Ok(Answer::Curve {
                    meter: meter.clone(),
                    channel: *channel,
                    points,
                })
            }
        }
        Question::Energy {
            meter,
            channel,
            calendar,
            tariff,
        } => {
            ensure_meter(src, meter)?;
            let hc = match tariff {
                None => None,
                Some(TariffSpec::Hc(t)) => Some(t),
                Some(spec) => return energy_by_register(src, meter, *channel, calendar, spec),
            };
            let periods = query::energy(src, meter, *channel, &calendar.calendar, hc)?;
            Ok(Answer::Energy {
                meter: meter.clone(),
                channel: *channel,
                tz: calendar.tz_name.clone(),
                periods,
            })
        }
        Question::Peak {
            meter,
            calendar,
            sources,
        } => {
            ensure_meter(src, meter)?;
            let without_max_power = Hiding {
                src,
                hidden: Channel::MAX_POWER,
            };
            let from: &dyn SeriesSource = match sources.max_power {
                true => src,
                false => &without_max_power,
            };
            let periods = query::peak(from, meter, &calendar.calendar)?;
            if !sources.curve
                && periods
                    .iter()
                    .any(|p| matches!(p.peak, Some((_, _, PeakSource::Curve))))
            {
                return Err(forbidden());
            }
            Ok(Answer::Peak {
                meter: meter.clone(),
                periods,
            })
        }
        Question::Index { meter, calendar } => {
            ensure_meter(src, meter)?;
            let table = query::index(src, meter, &calendar.calendar)?;
            Ok(Answer::Index {
                meter: meter.clone(),
                table,
            })
        }
        Question::Summary {
            meter,
            year,
            max_power_only,
            ..
        } => {
            ensure_meter(src, meter)?;
            let mut summary = query::summary(src, meter, *year)?;
            if *max_power_only {
                summary.keep_max_power_peaks_only();
            }
            Ok(Answer::Summary {
                meter: meter.clone(),
                summary,
            })
        }
        Question::FleetCurve {
            channel,
            from_utc,
            to_utc,
            meters,
        } => {
            check_fleet_curve(src, meters.as_deref())?;
            let points = query::fleet_curve(src, *channel, *from_utc, *to_utc, meters.as_deref())?;
            Ok(Answer::FleetCurve {
                channel: *channel,
                points,
            })
        }
        Question::FleetEnergy {
            channel,
            calendar,
            meters,
        } => {
            check_fleet_energy(src, *channel, calendar, meters.as_deref(), limits)?;
            let meters = query::fleet_energy(src, *channel, &calendar.calendar, meters.as_deref())?;
            Ok(Answer::FleetEnergy {
                tz: calendar.tz_name.clone(),
                meters,
            })
        }
    }
}

/// `src` with one channel hidden: it holds no point and no meter of `hidden`. What access
/// control does not let an answer read is never read.
struct Hiding<'a> {
    src: &'a dyn SeriesSource,
    hidden: Channel,
}

impl SeriesSource for Hiding<'_> {
    fn has_meter(&self, meter: &str) -> bool {
        self.src.has_meter(meter)
    }

    fn meters(&self, channel: Channel) -> Vec<String> {
        match channel == self.hidden {
            true => Vec::new(),
            false => self.src.meters(channel),
        }
    }

    fn chunks(
        &self,
        meter: &str,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Vec<crate::source::Chunk<'_>>, crate::source::SourceError> {
        match channel == self.hidden {
            true => Ok(Vec::new()),
            false => self.src.chunks(meter, channel, from_utc, to_utc),
        }
    }

    fn fleet_sums(
        &self,
        channel: Channel,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<Option<Vec<crate::source::InstantSum>>, crate::source::SourceError> {
        match channel == self.hidden {
            true => Ok(Some(Vec::new())),
            false => self.src.fleet_sums(channel, from_utc, to_utc),
        }
    }
}

/// The unit of a channel's values: `W`, `VA` for `max_power`, `Wh` otherwise.
pub fn unit_of(channel: Channel) -> &'static str {
    match channel {
        Channel::CONSUMPTION | Channel::PRODUCTION => "W",
        Channel::MAX_POWER => "VA",
        _ => "Wh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::zone::paris;

    fn params(from: &str, to: &str) -> QueryParams {
        QueryParams {
            from: Some(from.into()),
            to: Some(to.into()),
            ..QueryParams::default()
        }
    }

    #[test]
    fn instants_are_read_with_any_offset() {
        let tz = paris();
        let utc = parse_instant("2024-01-01T00:00:00Z", &tz, "from").unwrap();
        assert_eq!(utc, 1_704_067_200);
        let plus_one = parse_instant("2024-01-01T01:00:00+01:00", &tz, "from").unwrap();
        assert_eq!(plus_one, utc);
        let minus = parse_instant("2023-12-31T19:00:00-05:00", &tz, "from").unwrap();
        assert_eq!(minus, utc);
    }

    #[test]
    fn an_unescaped_plus_read_as_a_space_is_still_an_offset() {
        let tz = paris();
        let t = parse_instant("2024-01-01T01:00:00 01:00", &tz, "from").unwrap();
        assert_eq!(t, 1_704_067_200);
    }

    #[test]
    fn a_local_date_is_midnight_in_the_zone() {
        let t = parse_instant("2024-01-01", &paris(), "from").unwrap();
        assert_eq!(t, 1_704_067_200 - 3_600);
        let summer = parse_instant("2024-07-01", &paris(), "from").unwrap();
        assert_eq!(format_ts(summer), "2024-06-30T22:00:00Z");
        let utc = query::time_zone("UTC").unwrap();
        assert_eq!(
            parse_instant("2024-01-01", &utc, "from").unwrap(),
            1_704_067_200
        );
    }

    #[test]
    fn unreadable_dates_are_invalid_arguments_naming_the_parameter() {
        for bad in [
            "yesterday",
            "2024-13-01",
            "2024-01-01T00:00:00",
            "2024-1-1",
            "",
        ] {
            let e = parse_instant(bad, &paris(), "to").unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(e.message.contains("`to`"), "{}", e.message);
        }
    }

    #[test]
    fn from_must_be_before_to() {
        let limits = Limits::default();
        for (from, to) in [("2024-01-02", "2024-01-01"), ("2024-01-01", "2024-01-01")] {
            let e = Question::from_params(QueryKind::Curve, Some("m1"), &params(from, to), &limits)
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains("before"), "{}", e.message);
        }
    }

    #[test]
    fn ranges_are_bounded_per_kind_of_question() {
        let limits = Limits::default();
        let two_years = params("2022-01-01", "2024-01-01");
        let ten_years = params("2014-01-01", "2024-01-01");
        assert!(Question::from_params(QueryKind::Curve, Some("m"), &two_years, &limits).is_ok());
        assert!(Question::from_params(QueryKind::Energy, Some("m"), &ten_years, &limits).is_ok());
        assert!(Question::from_params(QueryKind::Peak, Some("m"), &ten_years, &limits).is_ok());
        let e =
            Question::from_params(QueryKind::Curve, Some("m"), &ten_years, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("limit"), "{}", e.message);
        let fifty = params("1974-01-01", "2024-01-01");
        let e = Question::from_params(QueryKind::Energy, Some("m"), &fifty, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn unknown_zone_period_channel_and_format_are_refused() {
        let limits = Limits::default();
        let mut p = params("2024-01-01", "2024-02-01");
        p.tz = Some("Mars/Olympus_Mons".into());
        let e = Question::from_params(QueryKind::Energy, Some("m"), &p, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownZone);

        let mut p = params("2024-01-01", "2024-02-01");
        p.period = Some("fortnight".into());
        let e = Question::from_params(QueryKind::Energy, Some("m"), &p, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownPeriod);

        let mut p = params("2024-01-01", "2024-02-01");
        p.channel = Some("gas".into());
        let e = Question::from_params(QueryKind::Curve, Some("m"), &p, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);

        let mut p = params("2024-01-01", "2024-02-01");
        p.format = Some("columns".into());
        let e = Question::from_params(QueryKind::Energy, Some("m"), &p, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn meter_ids_are_checked_before_any_lookup() {
        let limits = Limits::default();
        let p = params("2024-01-01", "2024-02-01");
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            let e = Question::from_params(QueryKind::Curve, Some(bad), &p, &limits).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad:?}");
        }
        assert!(crate::engine::valid_meter_id("09111642617347"));
        assert!(crate::engine::valid_meter_id("site-1_a.b"));
        assert!(crate::engine::valid_meter_id(&"x".repeat(64)));
    }

    #[test]
    fn a_curve_question_reads_its_shape_and_encoding() {
        let limits = Limits::default();
        let mut p = params("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z");
        p.format = Some("columns".into());
        p.channel = Some("production".into());
        let (q, enc) = Question::from_params(QueryKind::Curve, Some("m1"), &p, &limits).unwrap();
        assert_eq!(enc, Encoding::Json);
        match q {
            Question::Curve {
                meter,
                channel,
                from_utc,
                to_utc,
                columns,
            } => {
                assert_eq!(meter, "m1");
                assert_eq!(channel, Channel::PRODUCTION);
                assert_eq!((from_utc, to_utc), (1_704_067_200, 1_704_153_600));
                assert!(columns);
            }
            other => panic!("not a curve: {other:?}"),
        }
    }

    #[test]
    fn a_query_string_is_read_once_and_fails_closed() {
        let pairs = read_query(Some("from=a+b&%74o=%2B1&&flag")).unwrap();
        let expect = [("from", "a b"), ("to", "+1"), ("flag", "")];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expect);
        assert_eq!(read_query(None).unwrap(), Vec::new());
        for (bad, name) in [
            ("from=a&from=b", "`from`"),
            ("from=a&%66rom=b", "`from`"),
            ("tz=UTC&t%7A=UTC", "`tz`"),
            ("from=%zz", "`from`"),
            ("from=%e9", "`from`"),
            ("from=%+1", "`from`"),
        ] {
            let e = read_query(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(e.message.contains(name), "{bad}: {}", e.message);
        }
    }

    /// `text` form-encoded, each byte written literally or escaped as `bits` says.
    fn encode(text: &str, mut bits: u64) -> String {
        let mut out = String::new();
        for b in text.bytes() {
            let escape = bits & 1 == 1;
            bits = bits.rotate_right(1);
            match b {
                b' ' if !escape => out.push('+'),
                b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'-' | b'_' | b':' if !escape => {
                    out.push(char::from(b))
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// However the names and values are escaped, they read back as sent; and a name sent
        /// twice, in any two spellings, is refused naming it.
        #[test]
        fn any_escaping_reads_back_and_any_second_spelling_is_refused(
            pairs in proptest::collection::btree_map("[a-z%+ é]{1,6}", "[ -~é€]{0,12}", 1..6),
            bits in proptest::prelude::any::<u64>(),
            repeat in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let pairs: Vec<(String, String)> = pairs.into_iter().collect();
            let query: Vec<String> = pairs
                .iter()
                .enumerate()
                .map(|(i, (n, v))| {
                    let b = bits.rotate_left(i as u32 * 7);
                    format!("{}={}", encode(n, b), encode(v, !b))
                })
                .collect();
            proptest::prop_assert_eq!(read_query(Some(&query.join("&"))).unwrap(), pairs.clone());
            let (name, value) = &pairs[repeat.index(pairs.len())];
            let again = format!("{}&{}={}", query.join("&"), encode(name, !bits), encode(value, bits));
            let e = read_query(Some(&again)).unwrap_err();
            proptest::prop_assert_eq!(e.code, ErrorCode::InvalidArgument);
            proptest::prop_assert!(e.message.contains(&format!("`{name}`")), "{}", e.message);
        }
    }

    #[test]
    fn a_parameter_the_question_does_not_read_is_refused_naming_it() {
        let limits = Limits::default();
        let range = "from=2024-01-01&to=2024-01-02";
        for (kind, extra) in [
            (QueryKind::Curve, "period=day"),
            (QueryKind::Curve, "tariff=HC:22:00-06:00"),
            (QueryKind::Peak, "channel=production"),
            (QueryKind::Energy, "meters=m"),
            (QueryKind::FleetCurve, "level=x"),
        ] {
            let query = format!("{range}&{extra}");
            let e = Asked::read(kind, Some("m"), Some(&query), &limits).unwrap_err();
            let name = extra.split('=').next().unwrap_or_default();
            assert!(e.message.contains(&format!("`{name}`")), "{}", e.message);
        }
        let asked = Asked::read(
            QueryKind::Energy,
            Some("m"),
            Some(&format!("{range}&period=week&tz=UTC&tariff=HC:22:00-06:00")),
            &limits,
        )
        .unwrap();
        assert!(matches!(
            asked.question,
            Question::Energy {
                tariff: Some(_),
                ..
            }
        ));
        assert_eq!(asked.question.range_utc(), (1_704_067_200, 1_704_153_600));
    }

    #[test]
    fn whole_local_days_are_midnight_to_midnight_in_the_questions_zone() {
        let limits = Limits::default();
        let calendar =
            |query: &str| match Asked::read(QueryKind::Energy, Some("m"), Some(query), &limits)
                .unwrap()
                .question
            {
                Question::Energy { calendar, .. } => calendar,
                other => panic!("not energy: {other:?}"),
            };
        assert!(calendar("from=2024-03-30&to=2024-04-01").whole_local_days());
        assert!(calendar("from=2024-03-30T23:00:00Z&to=2024-03-31T22:00:00Z").whole_local_days());
        assert!(!calendar("from=2024-03-31T00:00:00Z&to=2024-04-01").whole_local_days());
        assert!(!calendar("from=2024-03-30&to=2024-03-30T00:30:00+01:00").whole_local_days());
        assert!(
            calendar("from=2024-03-31T00:00:00Z&to=2024-04-01T00:00:00Z&tz=UTC").whole_local_days()
        );
    }

    #[test]
    fn a_preference_for_arrow_applies_only_without_format_and_to_questions_with_an_arrow_answer() {
        let limits = Limits::default();
        let range = "from=2024-01-01&to=2024-01-02";
        let read = |kind, query: &str, prefers_arrow| {
            Asked::read_preferring(kind, Some("m"), Some(query), prefers_arrow, &limits)
                .unwrap()
                .encoding
        };
        assert_eq!(read(QueryKind::Curve, range, true), Encoding::Arrow);
        assert_eq!(read(QueryKind::Curve, range, false), Encoding::Json);
        let csv = format!("{range}&format=csv");
        assert_eq!(read(QueryKind::Curve, &csv, true), Encoding::Csv);
        assert_eq!(read(QueryKind::Peak, range, true), Encoding::Json);
        let e = Asked::read(
            QueryKind::Peak,
            Some("m"),
            Some(&format!("{range}&format=arrow")),
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn timestamps_are_written_in_utc_with_z() {
        assert_eq!(format_ts(1_704_067_200), "2024-01-01T00:00:00Z");
    }
}
