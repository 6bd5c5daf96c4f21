//! The `/v1` endpoints of prices and costs (access: [`read`], called by the guard).
//!
//! | route | reads | who |
//! |---|---|---|
//! | `PUT /v1/prices/grids` (CSV) | replaces the grids it names | operators |
//! | `GET /v1/prices/grids[?format=csv]` | every grid | every token |
//! | `PUT /v1/prices/taxes` (CSV) | replaces the tax table | operators |
//! | `GET /v1/prices/taxes[?format=csv]` | the tax table | every token |
//! | `GET /v1/meters/{id}/cost?from&to&period&offer[&format]` | cost per period | as energy |
//! | `GET /v1/meters/{id}/estimate?since&offer` | the D.224-29 unbilled estimate | as energy |
//! | `GET /v1/meters/{id}/offers?offers=A,B[&to]` | 12 months under each offer | as energy |
//! | `GET /v1/fleet/offers?offers=A,B&from&to` | distribution of B's saving over A | operators, public bodies |
//!
//! A meter's cost is its energy over whole Europe/Paris days: for access it is an energy
//! question over the same range and period ([`Summary`] with `tz_paris` and whole days). An offer
//! whose option splits the day into registers (HPHC, TEMPO, EJP, SEASONAL) is a chosen tariff
//! (`tariff: true`: curve rights), as `tariff=option:...` on energy is; `BASE` and
//! `offer=contract` (the meter's own registers) are not; a dynamic offer needs the curve. The
//! comparison asks the same of every offer it prices.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::auth::{Figure, Summary};
use super::calendars::BadLine;
use super::prices::{self, MIN_FLEET_OFFERS};
use super::Governance;
use crate::engine::Store;
use crate::http::blocking;
use crate::http::error::{ApiError, ErrorCode, HttpError};
use crate::query::cost::{self, day_of, format_cents, CostPeriod, Grid, TaxKind};
use crate::query::tariffs::{date_of_day, DayColours, TariffOption, TariffPlan};
use crate::query::{Calendar, EnergySource, Period};

/// Largest body of a grids or taxes upload.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most offers one comparison prices.
pub const MAX_OFFERS: usize = 8;

/// The parameters of each route (the guard refuses any other).
pub(super) fn parameters(route: &str) -> Option<&'static [&'static str]> {
    let route = crate::http::routes::find(route)?;
    match route.guard {
        crate::http::routes::Guard::Priced => route.parameters,
        _ => None,
    }
}

#[derive(Clone)]
struct PricesState {
    store: Arc<Store>,
    gov: Arc<Governance>,
    /// How long an upload's body may take to arrive (408 past it).
    body_timeout: std::time::Duration,
}

/// The routes; [`super::http::attach`] puts them behind the guard. An upload's body must
/// arrive whole within `body_timeout` (408) and hold at most [`MAX_BODY_BYTES`] (413).
pub(super) fn routes<S: Clone + Send + Sync + 'static>(
    store: Arc<Store>,
    gov: Arc<Governance>,
    body_timeout: std::time::Duration,
) -> Router<S> {
    Router::new()
        .route(
            crate::http::routes::declared("/v1/prices/grids"),
            get(grids_get).put(grids_put),
        )
        .route(
            crate::http::routes::declared("/v1/prices/taxes"),
            get(taxes_get).put(taxes_put),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/cost"),
            get(meter_priced_get),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/estimate"),
            get(meter_priced_get),
        )
        .route(
            crate::http::routes::declared("/v1/meters/:id/offers"),
            get(meter_priced_get),
        )
        .route(
            crate::http::routes::declared("/v1/fleet/offers"),
            get(fleet_offers_get),
        )
        .with_state(PricesState {
            store,
            gov,
            body_timeout,
        })
}

/// A question about money, read once by the guard.
#[derive(Clone, Debug)]
pub enum Priced {
    Cost {
        meter: String,
        first_day: i64,
        end_day: i64,
        period: Period,
        offer: String,
        csv: bool,
        /// The caller may see what rests on the curve's point qualities (curve rights).
        curve: bool,
    },
    Estimate {
        meter: String,
        since_day: i64,
        /// Today (Paris): the estimate ends at the last whole day with data before it.
        end_day: i64,
        offer: String,
        curve: bool,
    },
    Offers {
        meter: String,
        offers: Vec<String>,
        first_day: i64,
        end_day: i64,
        csv: bool,
    },
    FleetOffers {
        offers: Vec<String>,
        first_day: i64,
        end_day: i64,
    },
    /// A price list, read or written.
    Prices { csv: bool },
}

impl Priced {
    /// Narrows the answer to the kinds access allowed: without curve rights, the energy of
    /// estimated curve points (sub-day figures) is neither computed nor shown.
    pub fn draw_only_on(&mut self, curve_rights: bool) {
        match self {
            Priced::Cost { curve, .. } | Priced::Estimate { curve, .. } => *curve &= curve_rights,
            _ => {}
        }
    }
}

/// What the guard learns of a pricing route: the question, and for access the action.
pub enum Access {
    /// A meter's figures over whole Paris days: an energy question.
    Meter(Summary),
    ReadPrices,
    ManagePrices,
    FleetOffers,
}

fn one<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn day_param(params: &[(String, String)], name: &str) -> Result<Option<i64>, ApiError> {
    one(params, name)
        .map(|t| day_of(t).map_err(|e| ApiError::invalid(format!("`{name}`: {e}"))))
        .transpose()
}

fn required_day(params: &[(String, String)], name: &str) -> Result<i64, ApiError> {
    day_param(params, name)?.ok_or_else(|| ApiError::invalid(format!("missing parameter `{name}`")))
}

fn csv_param(params: &[(String, String)]) -> Result<bool, ApiError> {
    match one(params, "format") {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(ApiError::invalid(format!(
            "unknown format {f:?} (json or csv)"
        ))),
    }
}

/// Today's Paris day number.
fn today() -> Result<i64, ApiError> {
    let tz = crate::query::daily::paris();
    let date = jiff::Timestamp::now().to_zoned(tz).date();
    Ok(crate::query::tariffs::day_number(date))
}

fn first_of_month(day: i64) -> i64 {
    let (y, m, _) = crate::civil::civil_from_days(day);
    crate::civil::days_from_civil(y, m, 1)
}

fn months_back(day: i64, n: i64) -> i64 {
    let (y, m, _) = crate::civil::civil_from_days(day);
    let total = y * 12 + (m - 1) - n;
    crate::civil::days_from_civil(total.div_euclid(12), total.rem_euclid(12) + 1, 1)
}

/// Whether pricing `offer` splits days into registers the caller chose (curve rights), and a
/// 400 naming an offer the registry does not hold.
fn chosen_split(gov: &Governance, offer: &str) -> Result<bool, ApiError> {
    if offer == "contract" {
        return Ok(false);
    }
    let grid = gov.prices().grid(offer).ok_or_else(|| {
        ApiError::invalid(format!("unknown offer {offer:?} (see /v1/prices/grids)"))
    })?;
    Ok(match prices::option_registers(&grid.option) {
        Ok(Some(registers)) => registers.len() > 1,
        _ => true,
    })
}

fn utc(day: i64) -> Result<i64, ApiError> {
    Ok(cost::paris_day_start(day)?)
}

fn meter_summary(
    first_day: i64,
    end_day: i64,
    period: Period,
    tariff: bool,
) -> Result<Summary, ApiError> {
    Ok(Summary {
        figure: Figure::Energy,
        range_utc: (utc(first_day)?, utc(end_day)?),
        period,
        tz_paris: true,
        whole_local_days: true,
        tariff,
    })
}

/// Reads a pricing request (`None`: not a pricing route): the question and what access needs.
/// Every refusal names what is wrong.
pub fn read(
    route: &str,
    method: &Method,
    meter: Option<&str>,
    params: &[(String, String)],
    gov: &Governance,
) -> Result<Option<(Priced, Access)>, ApiError> {
    let Some(names) = parameters(route) else {
        return Ok(None);
    };
    let get = method == Method::GET || method == Method::HEAD;
    for (i, (name, _)) in params.iter().enumerate() {
        if !names.contains(&name.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown parameter `{name}` (this request reads {})",
                names.join(", ")
            )));
        }
        if params[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::invalid(format!("parameter `{name}` given twice")));
        }
    }
    let meter = meter.unwrap_or("").to_string();
    let offer = || {
        one(params, "offer")
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid("missing parameter `offer` (a grid name or contract)"))
    };
    Ok(Some(match route {
        "/v1/prices/grids" | "/v1/prices/taxes" => {
            let access = if method == Method::PUT {
                Access::ManagePrices
            } else {
                Access::ReadPrices
            };
            (
                Priced::Prices {
                    csv: csv_param(params)?,
                },
                access,
            )
        }
        _ if !get => return Ok(None),
        "/v1/meters/:id/cost" => {
            let first_day = required_day(params, "from")?;
            let end_day = required_day(params, "to")?;
            if end_day <= first_day {
                return Err(ApiError::invalid("`from` must be a day before `to`"));
            }
            if end_day - first_day > cost::MAX_COST_DAYS {
                return Err(ApiError::invalid(format!(
                    "a cost spans at most {} days",
                    cost::MAX_COST_DAYS
                )));
            }
            let period = match one(params, "period").unwrap_or("month") {
                "day" => Period::Day,
                "month" => Period::Month,
                "year" => Period::Year,
                p => {
                    return Err(ApiError::invalid(format!(
                        "unknown period {p:?} (day, month or year)"
                    )))
                }
            };
            let offer = offer()?;
            let tariff = chosen_split(gov, &offer)?;
            let csv = csv_param(params)?;
            (
                Priced::Cost {
                    meter,
                    first_day,
                    end_day,
                    period,
                    offer,
                    csv,
                    curve: true,
                },
                Access::Meter(meter_summary(first_day, end_day, period, tariff)?),
            )
        }
        "/v1/meters/:id/estimate" => {
            let since_day = required_day(params, "since")?;
            let end_day = today()?;
            if since_day >= end_day {
                return Err(ApiError::invalid("`since` must be a day before today"));
            }
            if end_day - since_day > cost::MAX_COST_DAYS {
                return Err(ApiError::invalid(format!(
                    "an estimate spans at most {} days",
                    cost::MAX_COST_DAYS
                )));
            }
            let offer = offer()?;
            let tariff = chosen_split(gov, &offer)?;
            (
                Priced::Estimate {
                    meter,
                    since_day,
                    end_day,
                    offer,
                    curve: true,
                },
                Access::Meter(meter_summary(since_day, end_day, Period::Day, tariff)?),
            )
        }
        "/v1/meters/:id/offers" | "/v1/fleet/offers" => {
            let list = one(params, "offers")
                .ok_or_else(|| ApiError::invalid("missing parameter `offers` (A,B,...)"))?;
            let offers: Vec<String> = list.split(',').map(|o| o.trim().to_string()).collect();
            let most = if route == "/v1/fleet/offers" {
                2
            } else {
                MAX_OFFERS
            };
            if offers.len() < 2 || offers.len() > most {
                return Err(ApiError::invalid(format!(
                    "`offers`: 2 to {most} offers, comma-separated"
                )));
            }
            for (i, o) in offers.iter().enumerate() {
                if offers[..i].contains(o) {
                    return Err(ApiError::invalid(format!("offer {o:?} given twice")));
                }
            }
            let mut tariff = false;
            for o in &offers {
                tariff |= chosen_split(gov, o)?;
            }
            if route == "/v1/fleet/offers" {
                if offers.iter().any(|o| o == "contract") {
                    return Err(ApiError::invalid(
                        "a fleet comparison names grids, not `contract`",
                    ));
                }
                let first_day = required_day(params, "from")?;
                let end_day = required_day(params, "to")?;
                if end_day <= first_day || end_day - first_day > cost::MAX_COST_DAYS {
                    return Err(ApiError::invalid(format!(
                        "`from` must be before `to`, at most {} days apart",
                        cost::MAX_COST_DAYS
                    )));
                }
                (
                    Priced::FleetOffers {
                        offers,
                        first_day,
                        end_day,
                    },
                    Access::FleetOffers,
                )
            } else {
                let to = match day_param(params, "to")? {
                    Some(d) if first_of_month(d) == d => d,
                    Some(_) => {
                        return Err(ApiError::invalid(
                            "`to` must be the first day of a month (YYYY-MM-01)",
                        ))
                    }
                    None => first_of_month(today()?),
                };
                let first_day = months_back(to, 12);
                let csv = csv_param(params)?;
                (
                    Priced::Offers {
                        meter,
                        offers,
                        first_day,
                        end_day: to,
                        csv,
                    },
                    Access::Meter(meter_summary(first_day, to, Period::Month, tariff)?),
                )
            }
        }
        _ => return Ok(None),
    }))
}

fn bad_lines(bad: &[BadLine]) -> ApiError {
    let lines: Vec<String> = bad
        .iter()
        .take(50)
        .map(|b| format!("line {}: {}", b.line, b.reason))
        .collect();
    ApiError::new(
        ErrorCode::MalformedDocument,
        format!("nothing stored: {}", lines.join("; ")),
    )
}

fn csv_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, CSV)], text).into_response()
}

fn priced_csv(priced: &Option<Extension<Priced>>) -> bool {
    matches!(priced, Some(Extension(Priced::Prices { csv: true, .. })))
}

async fn grids_get(
    State(s): State<PricesState>,
    priced: Option<Extension<Priced>>,
) -> Result<Response, HttpError> {
    let grids = s.gov.prices().grids();
    if priced_csv(&priced) {
        return Ok(csv_response(prices::grids_csv(&grids)));
    }
    let grids: Vec<Value> = grids.iter().map(grid_json).collect();
    Ok(Json(json!({ "grids": grids })).into_response())
}

fn grid_json(g: &Grid) -> Value {
    let periods: Vec<Value> = g
        .prices
        .iter()
        .map(|p| {
            let energy: serde_json::Map<String, Value> = p
                .energy
                .iter()
                .map(|(r, v)| (r.clone(), Value::String(cost::format_micro(*v, 5))))
                .collect();
            json!({
                "from": p.from,
                "to": p.to,
                "energy_eur_per_kwh": energy,
                "subscription_eur_per_month": cost::format_micro(p.subscription, 2),
            })
        })
        .collect();
    json!({ "name": g.name, "option": g.option, "kva": g.kva, "prices": periods })
}

async fn grids_put(State(s): State<PricesState>, body: Body) -> Result<Response, HttpError> {
    let body = super::http::read_body(body, MAX_BODY_BYTES, s.body_timeout).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedDocument, "the body is not UTF-8"))?;
    let grids = prices::parse_grids(text).map_err(|b| bad_lines(&b))?;
    let gov = s.gov.clone();
    let stored = blocking(move || Ok(gov.prices().set_grids(grids)?)).await?;
    Ok(Json(json!({ "stored": stored })).into_response())
}

async fn taxes_get(
    State(s): State<PricesState>,
    priced: Option<Extension<Priced>>,
) -> Result<Response, HttpError> {
    let taxes = s.gov.prices().taxes();
    if priced_csv(&priced) {
        return Ok(csv_response(prices::taxes_csv(&taxes)));
    }
    let taxes: Vec<Value> = taxes
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "kind": t.kind.as_str(),
                "from": t.from,
                "to": t.to,
                "value": cost::format_micro(t.value, t.kind.decimals()),
                "unit": if t.kind == TaxKind::PerKwh { "EUR/kWh" } else { "%" },
            })
        })
        .collect();
    Ok(Json(json!({ "taxes": taxes })).into_response())
}

async fn taxes_put(State(s): State<PricesState>, body: Body) -> Result<Response, HttpError> {
    let body = super::http::read_body(body, MAX_BODY_BYTES, s.body_timeout).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedDocument, "the body is not UTF-8"))?;
    let taxes = prices::parse_taxes(text).map_err(|b| bad_lines(&b))?;
    let gov = s.gov.clone();
    let stored = blocking(move || Ok(gov.prices().set_taxes(taxes)?)).await?;
    Ok(Json(json!({ "stored": stored })).into_response())
}

/// The grid, the register plan and the colours pricing `offer` for `meter` over
/// `[first_day, end_day)` reads. `contract`: the meter's contracts, priced by the one grid of
/// their option (400 naming the choice otherwise).
pub fn resolve_offer(
    gov: &Governance,
    meter: &str,
    offer: &str,
    first_day: i64,
    end_day: i64,
) -> Result<(Grid, TariffPlan, DayColours), ApiError> {
    let colours = gov.calendars().colours_between(first_day - 2, end_day + 3);
    if offer != "contract" {
        let grid = gov.prices().grid(offer).ok_or_else(|| {
            ApiError::invalid(format!("unknown offer {offer:?} (see /v1/prices/grids)"))
        })?;
        if grid.dynamic_area().is_some() {
            // Priced interval by interval against the spot series (`query::cost`); the plan
            // is not read.
            let base = TariffOption::parse("BASE")?;
            return Ok((grid, TariffPlan::Option(base), colours));
        }
        let option = TariffOption::parse(&grid.option)?;
        return Ok((grid, TariffPlan::Option(option), colours));
    }
    let plan = gov.calendars().plan(meter).map_err(ApiError::invalid)?;
    let (start, end) = (utc(first_day)?, utc(end_day)?);
    let TariffPlan::Contracts(contracts) = &plan else {
        return Err(ApiError::internal("a contract plan"));
    };
    let mut options: Vec<&TariffOption> = Vec::new();
    for (s, e, o) in contracts {
        if *s < end && *e > start && !options.contains(&o) {
            options.push(o);
        }
    }
    let option = match options.as_slice() {
        [] => {
            return Err(ApiError::invalid(format!(
                "offer=contract: meter {meter} has no contract over the range; name an offer"
            )))
        }
        [one] => (*one).clone(),
        many => {
            let names: Vec<&str> = many.iter().map(|o| o.name.as_str()).collect();
            return Err(ApiError::invalid(format!(
                "offer=contract: the contracts change option over the range ({}); name an offer \
                 or a range with one option",
                names.join(", ")
            )));
        }
    };
    let grids: Vec<Grid> = gov
        .prices()
        .grids()
        .into_iter()
        .filter(|g| TariffOption::parse(&g.option).is_ok_and(|o| o == option))
        .collect();
    match grids.as_slice() {
        [grid] => Ok((grid.clone(), plan, colours)),
        [] => Err(ApiError::invalid(format!(
            "offer=contract: no grid prices the contract's option {}; name an offer",
            option.name
        ))),
        many => {
            let names: Vec<&str> = many.iter().map(|g| g.name.as_str()).collect();
            Err(ApiError::invalid(format!(
                "offer=contract: several grids price option {} ({}); name one with offer=",
                option.name,
                names.join(", ")
            )))
        }
    }
}

fn wh(ws: i128) -> i64 {
    i64::try_from((ws * 2 + 3600).div_euclid(7200)).unwrap_or(i64::MAX)
}

fn money(cents: i64) -> Value {
    json!({ "cents": cents, "eur": format_cents(cents) })
}

fn date_text(day: i64) -> String {
    date_of_day(day).map_or_else(|_| day.to_string(), |d| d.to_string())
}

fn sources_text(sources: &[EnergySource]) -> String {
    let names: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
    names.join("+")
}

fn period_json(p: &CostPeriod) -> Value {
    let total_ws: i128 = p.cost.registers.iter().map(|r| r.ws).sum();
    let registers: Vec<Value> = p
        .cost
        .registers
        .iter()
        .map(|r| {
            json!({
                "register": r.register,
                "energy_wh": wh(r.ws),
                "cost": money(r.cents),
                "priced": r.priced,
            })
        })
        .collect();
    let taxes: Vec<Value> = p
        .cost
        .taxes
        .iter()
        .map(|t| json!({ "name": t.name, "kind": t.kind.as_str(), "amount": money(t.cents) }))
        .collect();
    json!({
        "from": date_text(p.first_day),
        "to": date_text(p.end_day),
        "start": crate::question::format_ts(p.start_utc),
        "end": crate::question::format_ts(p.end_utc),
        "source": sources_text(&p.sources),
        "energy_wh": wh(total_ws),
        "estimated_wh": wh(p.estimated_ws),
        "registers": registers,
        "subscription": money(p.cost.subscription_cents),
        "taxes": taxes,
        "total": money(p.cost.total_cents),
        "unpriced_days": p.cost.unpriced_days,
    })
}

fn periods_csv(offer: &str, periods: &[CostPeriod], out: &mut String) {
    for p in periods {
        let head = format!(
            "{offer},{},{},{}",
            date_text(p.first_day),
            date_text(p.end_day),
            sources_text(&p.sources)
        );
        for r in &p.cost.registers {
            out.push_str(&format!(
                "{head},energy,{},{},{}\n",
                r.register,
                wh(r.ws),
                format_cents(r.cents)
            ));
        }
        out.push_str(&format!(
            "{head},subscription,,,{}\n",
            format_cents(p.cost.subscription_cents)
        ));
        for t in &p.cost.taxes {
            out.push_str(&format!(
                "{head},{},{},,{}\n",
                t.kind.as_str(),
                t.name,
                format_cents(t.cents)
            ));
        }
        out.push_str(&format!(
            "{head},total,,,{}\n",
            format_cents(p.cost.total_cents)
        ));
    }
}

const CSV_HEAD: &str = "offer,from,to,source,item,name,energy_wh,eur\n";

/// The rounding rule, as answers state it.
pub const ROUNDING: &str = "each line (energy per register, subscription, each tax) rounded once \
    per period to the cent, half up, from exact amounts; totals are sums of rounded lines; the \
    subscription is charged per day, monthly price / days of the month";

fn priced_of(priced: Option<Extension<Priced>>) -> Result<Priced, ApiError> {
    priced
        .map(|Extension(p)| p)
        .ok_or_else(|| ApiError::internal("a pricing question the guard did not read"))
}

/// The body and content type of a meter's priced question (a cost, an estimate, an offers
/// comparison) over `series`, priced with `gov`'s grids, taxes, calendars and contracts: what one
/// node's handler sends, and what a reader of a cluster sends its router. `None` for a question
/// that is not about one meter.
pub fn meter_answer(
    series: &dyn crate::source::SeriesSource,
    gov: &Governance,
    priced: Priced,
) -> Result<Option<(Vec<u8>, &'static str)>, ApiError> {
    let value = match priced {
        Priced::Cost {
            meter,
            first_day,
            end_day,
            period,
            offer,
            csv,
            curve,
        } => cost_answer(
            series,
            gov,
            &meter,
            (first_day, end_day),
            period,
            &offer,
            curve,
            csv,
        )?,
        Priced::Estimate {
            meter,
            since_day,
            end_day,
            offer,
            curve,
        } => estimate_answer(series, gov, &meter, since_day, end_day, &offer, curve)?,
        Priced::Offers {
            meter,
            offers,
            first_day,
            end_day,
            csv,
        } => offers_answer(series, gov, &meter, &offers, first_day, end_day, csv)?,
        Priced::FleetOffers { .. } | Priced::Prices { .. } => return Ok(None),
    };
    Ok(Some(match value {
        Written::Csv(text) => (text.into_bytes(), CSV),
        Written::Json(v) => (
            serde_json::to_vec(&v)
                .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?,
            "application/json",
        ),
    }))
}

const CSV: &str = "text/csv; charset=utf-8";

/// An answer before it is encoded.
enum Written {
    Csv(String),
    Json(Value),
}

/// One node's handler of the meter's priced routes: the question the guard read, answered over
/// the store's snapshot.
async fn meter_priced_get(
    State(s): State<PricesState>,
    priced: Option<Extension<Priced>>,
) -> Result<Response, HttpError> {
    let priced = priced_of(priced)?;
    let answer = blocking(move || {
        let snapshot = s.store.snapshot();
        meter_answer(&*snapshot, &s.gov, priced)
    })
    .await?;
    let (body, content_type) =
        answer.ok_or_else(|| ApiError::internal("not a meter's priced question"))?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

#[allow(clippy::too_many_arguments)]
fn cost_answer(
    series: &dyn crate::source::SeriesSource,
    gov: &Governance,
    meter: &str,
    (first_day, end_day): (i64, i64),
    period: Period,
    offer: &str,
    curve: bool,
    csv: bool,
) -> Result<Written, ApiError> {
    let (grid, plan, colours) = resolve_offer(gov, meter, offer, first_day, end_day)?;
    let taxes = gov.prices().taxes();
    let periods = cost::meter_cost_with(
        series,
        meter,
        &grid,
        &taxes,
        &plan,
        &colours,
        first_day,
        end_day,
        Some(period),
        curve,
    )?;
    if csv {
        let mut out = CSV_HEAD.to_string();
        periods_csv(&grid.name, &periods, &mut out);
        return Ok(Written::Csv(out));
    }
    let total: i64 = periods.iter().map(|p| p.cost.total_cents).sum();
    let list: Vec<Value> = periods
        .iter()
        .map(|p| {
            let mut v = period_json(p);
            if !curve {
                v["estimated_wh"] = Value::Null;
            }
            v
        })
        .collect();
    Ok(Written::Json(json!({
        "meter": meter,
        "offer": grid.name,
        "option": grid.option,
        "kva": grid.kva,
        "currency": "EUR",
        "rounding": ROUNDING,
        "periods": list,
        "total": money(total),
    })))
}

/// The last whole Paris day with data in `[first_day, end_day)`, as a day after it.
fn last_day_with_data(
    src: &dyn crate::source::SeriesSource,
    meter: &str,
    first_day: i64,
    end_day: i64,
) -> Result<Option<i64>, ApiError> {
    let calendar = Calendar {
        from_utc: utc(first_day)?,
        to_utc: utc(end_day)?,
        period: Period::Day,
        tz: crate::query::daily::paris(),
    };
    let days = crate::query::energy(
        src,
        meter,
        storage_format::Channel::CONSUMPTION,
        &calendar,
        None,
    )?;
    Ok(days
        .iter()
        .rposition(|p| p.source != EnergySource::None && p.points >= p.expected_points)
        .map(|i| first_day + i as i64 + 1))
}

fn estimate_answer(
    series: &dyn crate::source::SeriesSource,
    gov: &Governance,
    meter: &str,
    since_day: i64,
    end_day: i64,
    offer: &str,
    curve: bool,
) -> Result<Written, ApiError> {
    let (grid, plan, colours) = resolve_offer(gov, meter, offer, since_day, end_day)?;
    let taxes = gov.prices().taxes();
    let Some(last) = last_day_with_data(series, meter, since_day, end_day)? else {
        return Err(ApiError::invalid(format!(
            "meter {meter} has no whole day with data since {}",
            date_text(since_day)
        )));
    };
    let periods = cost::meter_cost(
        series, meter, &grid, &taxes, &plan, &colours, since_day, last, None,
    )?;
    let Some(p) = periods.first() else {
        return Err(ApiError::internal("an estimate without a period"));
    };
    let total_ws: i128 = p.cost.registers.iter().map(|r| r.ws).sum();
    // Energy-related euros (energy, per-kWh taxes, VAT on them) in proportion of the estimated
    // energy; half up to the cent.
    let energy_cents: i64 = p.cost.registers.iter().map(|r| r.cents).sum::<i64>()
        + p.cost
            .taxes
            .iter()
            .filter(|t| matches!(t.kind, TaxKind::PerKwh | TaxKind::VatEnergy))
            .map(|t| t.cents)
            .sum::<i64>();
    let estimated_cents = if total_ws > 0 {
        cost::Exact::new(i128::from(energy_cents) * p.estimated_ws, total_ws * 100).cents()
    } else {
        0
    };
    let measured = p.sources.iter().any(|s| *s != EnergySource::None);
    let mut basis = Vec::new();
    if measured && p.estimated_ws < total_ws {
        basis.push("measured");
    }
    if p.estimated_ws > 0 {
        basis.push("estimated");
    }
    let statements = [
        "This estimate is given for information only.".to_string(),
        format!(
            "It covers consumption not yet invoiced, from {} to {} included.",
            date_text(since_day),
            date_text(last - 1)
        ),
        "It is not a request for payment.".to_string(),
        format!(
            "It is based on {} data read by the meter ({}); no self-read data.",
            if basis.is_empty() {
                "no".to_string()
            } else {
                basis.join(" and ")
            },
            sources_text(&p.sources)
        ),
    ];
    Ok(Written::Json(json!({
        "meter": meter,
        "offer": grid.name,
        "option": grid.option,
        "since": date_text(since_day),
        "through": date_text(last - 1),
        "currency": "EUR",
        "rounding": ROUNDING,
        "statements": statements,
        "basis": basis,
        "source": sources_text(&p.sources),
        "energy_wh": wh(total_ws),
        "registers": period_json(p)["registers"].clone(),
        "subscription": money(p.cost.subscription_cents),
        "taxes": period_json(p)["taxes"].clone(),
        "total": money(p.cost.total_cents),
        // Without curve rights the basis says whether estimated points exist, not their energy.
        "estimated": if curve {
            json!({ "energy_wh": wh(p.estimated_ws), "amount": money(estimated_cents) })
        } else {
            Value::Null
        },
        "unpriced_days": p.cost.unpriced_days,
    })))
}

fn offers_answer(
    series: &dyn crate::source::SeriesSource,
    gov: &Governance,
    meter: &str,
    offers: &[String],
    first_day: i64,
    end_day: i64,
    csv: bool,
) -> Result<Written, ApiError> {
    let mut resolved = Vec::new();
    for o in offers {
        resolved.push(resolve_offer(gov, meter, o, first_day, end_day)?);
    }
    let taxes = gov.prices().taxes();
    let mut priced = Vec::new();
    for (grid, plan, colours) in resolved {
        let periods = cost::meter_cost(
            series,
            meter,
            &grid,
            &taxes,
            &plan,
            &colours,
            first_day,
            end_day,
            Some(Period::Month),
        )?;
        priced.push((grid, periods));
    }
    if csv {
        let mut out = CSV_HEAD.to_string();
        for (grid, periods) in &priced {
            periods_csv(&grid.name, periods, &mut out);
        }
        return Ok(Written::Csv(out));
    }
    let totals: Vec<i64> = priced
        .iter()
        .map(|(_, ps)| ps.iter().map(|p| p.cost.total_cents).sum())
        .collect();
    // An offer with a day or a register it cannot price is not compared: no cheapest then.
    let complete: Vec<bool> = priced
        .iter()
        .map(|(_, ps)| {
            ps.iter()
                .all(|p| p.cost.unpriced_days == 0 && p.cost.registers.iter().all(|r| r.priced))
        })
        .collect();
    let cheapest = totals
        .iter()
        .enumerate()
        .min_by_key(|(_, t)| **t)
        .filter(|_| complete.iter().all(|c| *c))
        .map(|(i, _)| priced[i].0.name.clone());
    let list: Vec<Value> = priced
        .iter()
        .zip(&totals)
        .zip(&complete)
        .map(|(((grid, periods), total), complete)| {
            let months: Vec<Value> = periods
                .iter()
                .map(|p| {
                    json!({
                        "from": date_text(p.first_day),
                        "source": sources_text(&p.sources),
                        "total": money(p.cost.total_cents),
                        "unpriced_days": p.cost.unpriced_days,
                    })
                })
                .collect();
            json!({
                "offer": grid.name,
                "option": grid.option,
                "total": money(*total),
                "complete": complete,
                "months": months,
            })
        })
        .collect();
    Ok(Written::Json(json!({
        "meter": meter,
        "from": date_text(first_day),
        "to": date_text(end_day),
        "currency": "EUR",
        "rounding": ROUNDING,
        "offers": list,
        "cheapest": cheapest,
    })))
}

/// Quartiles (nearest rank on the sorted values) and mean (half up to the cent) of `values`.
pub fn distribution(values: &mut [i64]) -> Option<Value> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = |q: usize| values[((values.len() - 1) * q).div_ceil(4)];
    let sum: i128 = values.iter().map(|v| i128::from(*v)).sum();
    let mean = cost::Exact::new(sum, 100 * values.len() as i128).cents();
    Some(json!({
        "meters": values.len(),
        "min": money(values[0]),
        "q1": money(rank(1)),
        "median": money(rank(2)),
        "q3": money(rank(3)),
        "max": money(values[values.len() - 1]),
        "mean": money(mean),
    }))
}

async fn fleet_offers_get(
    State(s): State<PricesState>,
    priced: Option<Extension<Priced>>,
    principal: Option<Extension<super::auth::Principal>>,
) -> Result<Response, HttpError> {
    let Priced::FleetOffers {
        offers,
        first_day,
        end_day,
    } = priced_of(priced)?
    else {
        return Err(ApiError::internal("not a fleet offers question").into());
    };
    let mut resolved = Vec::new();
    for o in &offers {
        resolved.push(resolve_offer(&s.gov, "", o, first_day, end_day)?);
    }
    let taxes = s.gov.prices().taxes();
    let store = s.store.clone();
    let operator = principal.is_some_and(|Extension(p)| p.role == super::auth::Role::Operator);
    let savings = blocking(move || {
        let snapshot = store.snapshot();
        Ok(prices::fleet_savings(
            &*snapshot, &resolved, &taxes, first_day, end_day,
        )?)
    })
    .await?;
    Ok(Json(fleet_offers_body(
        &offers, first_day, end_day, savings, operator,
    ))
    .into_response())
}

/// The answer of a fleet comparison of `offers` (a, b) over Paris days `[first_day, end_day)`
/// from every meter's saving: the distribution shown to an operator, or to anyone once it counts
/// [`MIN_FLEET_OFFERS`] meters. One node and a cluster's router (with the savings of every
/// reader's meters) write it.
pub fn fleet_offers_body(
    offers: &[String],
    first_day: i64,
    end_day: i64,
    savings: prices::FleetSavings,
    operator: bool,
) -> Value {
    let prices::FleetSavings {
        mut savings,
        skipped,
        paths,
    } = savings;
    let counted = savings.len();
    // Fewer meters than the floor: a distribution close to one household's figures.
    let distribution = if operator || counted >= MIN_FLEET_OFFERS {
        distribution(&mut savings)
    } else {
        None
    };
    json!({
        "from": date_text(first_day),
        "to": date_text(end_day),
        "a": offers.first(),
        "b": offers.get(1),
        "saving": "cost under a minus cost under b, per meter, over the range",
        "currency": "EUR",
        "meters": counted,
        "skipped": skipped,
        "paths": {
            "about": "meters priced from the clock-band summaries and from the curve, per offer",
            "a": paths_json(paths.first()),
            "b": paths_json(paths.get(1)),
        },
        "distribution": distribution,
        "suppressed": distribution.is_none() && counted > 0,
    })
}

/// The JSON of how many meters an offer priced from summaries and from the curve (`null`: no
/// such offer), in the fleet comparison's `paths`.
pub(crate) fn paths_json(paths: Option<&prices::OfferPaths>) -> serde_json::Value {
    paths.map_or(
        serde_json::Value::Null,
        |p| json!({ "summaries": p.summaries, "curve": p.curve }),
    )
}
