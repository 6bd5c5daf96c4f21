//! `GET /v1/meters/{id}/live[?series=spot-AREA]`: server-sent events (`text/event-stream`), one
//! event per newly ingested consumption reading of the meter:
//!
//! ```text
//! event: reading
//! data: {"ts":"2024-05-01T10:00:00Z","value_w":1200,"step_min":30,"energy_wh":600.000,"price_eur_mwh":-12.50,"cost_eur":-0.007500}
//! ```
//!
//! - `energy_wh`: `value_w × step_min / 60`, in mWh (3 decimals, half away from zero).
//! - With a price series (`?series=`, else the [`LivePricing`] hook of the server's config):
//!   `cost_eur` is the reading's cost under those prices (`query::spot::period_cost`: each part
//!   of the interval at the price that covers it, exact, rounded once to µEUR, 6 decimals),
//!   present only when every second of the reading has a price; `price_eur_mwh` only when one
//!   price covers the whole reading. A missing price leaves both out: never guessed.
//! - Without a price series, with governance: `offer` and `cost_eur`, the reading's energy cost
//!   under the meter's contract offer (the one grid of its contract's option, as
//!   `offer=contract` prices it): each second at its register's price, exact, rounded once to
//!   µEUR; before subscription and taxes. Left out when no single grid prices it.
//! - **Path of a reading.** [`crate::engine::Store::observe_ingest`] hands [`LiveHub::publish`]
//!   each batch once `Store::ingest` has acknowledged it (durable and visible), so a stream
//!   never shows a reading a crash could lose. Each subscriber has a bounded queue of
//!   [`LIVE_QUEUE`] readings; `publish` never waits: a subscriber whose queue is full is
//!   dropped (its stream ends) and counted, so a slow client never slows ingest.
//! - **Access** is the curve's (the live view *is* the curve): the guard authorizes a curve read
//!   of the meter now at subscription; the stream re-asks every [`RECHECK`] and before each
//!   reading (over the reading's interval: a reading the principal may not read is left out),
//!   and ends when consent is revoked or the grant ends.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tokio::sync::mpsc;

use super::error::{ApiError, ErrorCode, HttpError};
use super::AppState;
use crate::engine::{is_price_series_namespace, valid_meter_id, Batch, Store};
use crate::governance::auth::{Action, Principal};
use crate::governance::Governance;
use crate::query::spot::{div_round, period_cost, spot_prices};
use crate::question::{format_ts, read_query};
use crate::{Channel, Point};

/// Readings a subscriber may have waiting; one more drops it.
pub const LIVE_QUEUE: usize = 256;
/// How often a stream re-checks its access while no reading arrives.
pub const RECHECK: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing an idle stream (and finds clients gone).
const KEEPALIVE_TICKS: u32 = 30;

/// The pluggable pricing of the live view: the price series a meter's offer follows, when it
/// is dynamic (`?series=` wins over it).
pub trait LivePricing: Send + Sync + std::fmt::Debug {
    fn series_of(&self, meter: &str) -> Option<String>;
}

/// One subscriber: its id and the queue of its readings.
type Subscriber = (u64, mpsc::Sender<Point>);

/// The subscribers of the live view, by meter.
#[derive(Debug, Default)]
pub struct LiveHub {
    subscribers: parking_lot::RwLock<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

impl LiveHub {
    /// A hub that `store` feeds with every acknowledged batch (for as long as the hub lives).
    pub fn attach(store: &Store) -> Arc<LiveHub> {
        let hub = Arc::new(LiveHub::default());
        let weak = Arc::downgrade(&hub);
        store.observe_ingest(Arc::new(move |batch: &Batch| {
            if let Some(hub) = weak.upgrade() {
                hub.publish(batch);
            }
        }));
        hub
    }

    /// A new subscriber of `meter`'s readings.
    pub fn subscribe(&self, meter: &str) -> (u64, mpsc::Receiver<Point>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(LIVE_QUEUE);
        self.subscribers
            .write()
            .entry(meter.to_owned())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    pub fn unsubscribe(&self, meter: &str, id: u64) {
        let mut subs = self.subscribers.write();
        if let Some(list) = subs.get_mut(meter) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                subs.remove(meter);
            }
        }
    }

    /// Hands the consumption readings of `batch` to their meters' subscribers without
    /// waiting; drops a subscriber whose queue is full or whose stream is gone.
    pub fn publish(&self, batch: &Batch) {
        let mut gone: Vec<(String, u64)> = Vec::new();
        {
            let subs = self.subscribers.read();
            if subs.is_empty() {
                return;
            }
            for (meter, channel, points) in batch.series() {
                if channel != Channel::CONSUMPTION {
                    continue;
                }
                let Some(list) = subs.get(meter) else {
                    continue;
                };
                for (id, tx) in list {
                    if points.iter().any(|p| tx.try_send(*p).is_err()) {
                        gone.push((meter.to_owned(), *id));
                    }
                }
            }
        }
        for (meter, id) in gone {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.unsubscribe(&meter, id);
        }
    }

    /// Subscribers now, all meters together.
    pub fn subscribers(&self) -> usize {
        self.subscribers.read().values().map(Vec::len).sum()
    }

    /// Subscribers dropped so far (queue full, or stream gone when a reading came).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The body of a live response: what the stream's task sends, until it ends.
struct LiveBody(mpsc::Receiver<Bytes>);

impl futures_core::Stream for LiveBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(Ok))
    }
}

/// `n / 10^scale` as a decimal with `scale` digits.
fn decimal(n: i128, scale: u32) -> String {
    let unit = 10i128.pow(scale);
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    let unit = unit as u128;
    format!(
        "{sign}{}.{:0width$}",
        a / unit,
        a % unit,
        width = scale as usize
    )
}

/// A reading's cost under `meter`'s contract offer (`offer=contract`: the one grid of its
/// contract's option), when that offer prices per register: `(offer, cost in µEUR rounded half
/// away from zero)`. `None` without governance, contract, single grid, price in force or with
/// a dynamic offer (those follow a spot series).
fn contract_cost(gov: &Governance, meter: &str, p: &Point) -> Option<(String, i128)> {
    use crate::query::tariffs::{day_number, Registers};
    let end = p.ts_utc + 60 * i64::from(p.step_min);
    let tz = crate::query::daily::paris();
    let date = jiff::Timestamp::from_second(p.ts_utc)
        .ok()?
        .to_zoned(tz)
        .date();
    let day = day_number(date);
    let (grid, plan, colours) =
        crate::governance::prices_http::resolve_offer(gov, meter, "contract", day, day + 1).ok()?;
    if grid.dynamic_area().is_some() {
        return None;
    }
    let prices = grid.prices_on(day)?;
    let mut registers = Registers::new(&plan, &colours, p.ts_utc, end).ok()?;
    let mut ws = vec![0i128; registers.names.len()];
    registers.split(p.ts_utc, end, p.value, &mut ws);
    // W·s × µEUR/kWh over 3.6 × 10⁶ W·s/kWh: µEUR.
    let mut raw = 0i128;
    for (name, ws) in registers.names.iter().zip(&ws) {
        if *ws != 0 {
            raw += ws * i128::from(*prices.energy.get(name)?);
        }
    }
    Some((grid.name, div_round(raw, 3_600_000)))
}

/// The `data` of one reading's event.
fn event_of(
    store: &Store,
    gov: Option<&Governance>,
    meter: &str,
    series: Option<&str>,
    p: &Point,
) -> String {
    let end = p.ts_utc + 60 * i64::from(p.step_min);
    let ws = i128::from(p.value) * i128::from(end - p.ts_utc);
    let mut json = format!(
        "{{\"ts\":\"{}\",\"value_w\":{},\"step_min\":{},\"energy_wh\":{}",
        format_ts(p.ts_utc),
        p.value,
        p.step_min,
        decimal(div_round(ws * 10, 36), 3)
    );
    if let Some(series) = series {
        if let Ok(prices) = spot_prices(&*store.snapshot(), series, p.ts_utc, end) {
            let c = period_cost(std::slice::from_ref(p), &prices, p.ts_utc, end);
            if let [one] = prices.as_slice() {
                if one.ts_utc <= p.ts_utc && one.ts_utc + 60 * i64::from(one.step_min) >= end {
                    json.push_str(&format!(
                        ",\"price_eur_mwh\":{}",
                        decimal(i128::from(one.value), 2)
                    ));
                }
            }
            if c.unpriced_s == 0 {
                json.push_str(&format!(
                    ",\"cost_eur\":{}",
                    decimal(i128::from(c.cost_micro_eur), 6)
                ));
            }
        }
    } else if let Some((offer, micro)) = gov.and_then(|g| contract_cost(g, meter, p)) {
        // Energy only, before subscription and taxes: what the reading adds to the bill's
        // energy lines.
        json.push_str(&format!(
            ",\"offer\":\"{offer}\",\"cost_eur\":{}",
            decimal(micro, 6)
        ));
    }
    json.push('}');
    format!("event: reading\ndata: {json}\n\n")
}

/// Whether `principal` may read `meter`'s curve over `range` (always without governance).
fn allowed(
    gov: Option<&Governance>,
    principal: Option<&Principal>,
    meter: &str,
    range: (i64, i64),
) -> bool {
    match (gov, principal) {
        (Some(gov), Some(principal)) => gov
            .authorize_kinds(
                principal,
                &Action::ReadCurve {
                    meter,
                    channel: Channel::CONSUMPTION,
                    range_utc: range,
                },
            )
            .is_ok(),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

pub(super) async fn live(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    principal: Option<Extension<Principal>>,
    uri: Uri,
) -> Result<Response, HttpError> {
    let meter = super::meter_id(path)?;
    if !valid_meter_id(&meter) {
        return Err(ApiError::invalid(format!("meter id {meter:?} is not valid")).into());
    }
    if is_price_series_namespace(&meter) {
        return Err(ApiError::new(
            ErrorCode::UnknownMeter,
            format!("unknown meter {meter:?} (a price series id)"),
        )
        .into());
    }
    let mut series = None;
    for (name, value) in read_query(uri.query())? {
        match name.as_str() {
            "series" => {
                crate::engine::check_price_series_id(&value).map_err(ApiError::invalid)?;
                series = Some(value);
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter `{other}` (this request reads series)"
                ))
                .into())
            }
        }
    }
    let series = series.or_else(|| {
        state
            .config
            .live_pricing
            .as_ref()
            .and_then(|p| p.series_of(&meter))
    });
    let principal = principal.map(|Extension(p)| p);
    let gov = state.config.governance.clone();
    let hub = state.live.clone();
    let store = state.store.clone();
    let (id, mut readings) = hub.subscribe(&meter);
    let (out, body) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let may = |range| allowed(gov.as_deref(), principal.as_ref(), &meter, range);
        let mut tick = tokio::time::interval(RECHECK);
        let mut ticks = 0u32;
        let opening = Bytes::from(format!(": live view of {meter}\n\n"));
        if out.send(opening).await.is_ok() {
            loop {
                tokio::select! {
                    reading = readings.recv() => {
                        let Some(p) = reading else { break };
                        let now = crate::governance::now_utc();
                        if !may((now, now + 1)) {
                            break;
                        }
                        if !may((p.ts_utc, p.ts_utc + 60 * i64::from(p.step_min))) {
                            continue;
                        }
                        let event = event_of(&store, gov.as_deref(), &meter, series.as_deref(), &p);
                        if out.send(Bytes::from(event)).await.is_err() {
                            break;
                        }
                    }
                    _ = tick.tick() => {
                        let now = crate::governance::now_utc();
                        if !may((now, now + 1)) {
                            break;
                        }
                        ticks += 1;
                        if ticks % KEEPALIVE_TICKS == 0
                            && out.send(Bytes::from_static(b":\n\n")).await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
        }
        hub.unsubscribe(&meter, id);
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(LiveBody(body)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_text() {
        assert_eq!(decimal(-1250, 2), "-12.50");
        assert_eq!(decimal(7, 6), "0.000007");
        assert_eq!(decimal(600_000, 3), "600.000");
        assert_eq!(decimal(-7_500, 6), "-0.007500");
    }
}
