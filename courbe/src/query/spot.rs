//! Spot prices and the cost of energy under a dynamic offer.
//!
//! A price series (channel [`Channel::PRICE`], stored under a series id `spot-AREA`, see
//! [`crate::engine::PRICE_SERIES_PREFIX`]) holds EUR/MWh × 100 per market interval (15 or 60
//! minutes, signed). [`dynamic_energy_cost`] prices a meter's load curve against it:
//!
//! - **Alignment.** Each curve interval's energy is split by the seconds it shares with each
//!   price interval, and each part is charged at that price: a 30-minute reading over two
//!   15-minute prices is charged half at each; a 10-minute reading inside one 15-minute price is
//!   charged at it wholly. Seconds of curve that no price covers are counted in
//!   [`DynamicPeriod::unpriced_s`] and charged nothing: a missing price is reported, never
//!   guessed.
//! - **Exactness.** The sum is kept exactly in W·s × centi-EUR/MWh (`i128`) and divided once per
//!   period: `cost_micro_eur = round(Σ W × s × c / 360_000)` (1 MWh = 3.6 × 10⁹ W·s, 1 EUR = 100
//!   centi-euros = 10⁶ µEUR), half away from zero. Callers that bill in cents round that once
//!   more ([`DynamicPeriod::cost_cents`], half away from zero).
//! - **Curve required.** Energy comes from the curve only; a period whose curve does not cover
//!   every second says so ([`DynamicPeriod::curve_missing_s`]): its energy and cost are those of
//!   the seconds that have a curve.

use storage_format::block::DecodedBlock;

use super::QueryError;
use crate::source::{SeriesSource, MAX_CURVE_STEP_S};
use crate::{Channel, Point};

/// The cost of one period of a meter's curve under a price series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicPeriod {
    pub from_utc: i64,
    pub to_utc: i64,
    /// Energy of the curve within the period, W·s (exact; Wh = W·s / 3600).
    pub energy_ws: i64,
    /// Σ W × s × centi-EUR/MWh over the priced seconds, exact.
    pub cost_raw: i128,
    /// The cost in µEUR, `cost_raw / 360_000` rounded half away from zero (once per period).
    pub cost_micro_eur: i64,
    /// Seconds of the period that the curve covers.
    pub curve_s: i64,
    /// Seconds of the period without a curve reading (0: the curve is complete).
    pub curve_missing_s: i64,
    /// Seconds of curve without a price (charged nothing).
    pub unpriced_s: i64,
}

impl DynamicPeriod {
    /// Whether every second of the period has a curve reading and a price.
    pub fn complete(&self) -> bool {
        self.curve_missing_s == 0 && self.unpriced_s == 0
    }

    /// The energy in Wh, rounded half away from zero.
    pub fn energy_wh(&self) -> i64 {
        div_round(i128::from(self.energy_ws), 3600) as i64
    }

    /// The cost in euro cents, from the exact sum, rounded half away from zero.
    pub fn cost_cents(&self) -> i64 {
        div_round(self.cost_raw, 3_600_000_000) as i64
    }
}

/// W·s × centi-EUR/MWh in one µEUR: 3.6 × 10⁹ W·s/MWh × 100 c/EUR / 10⁶ µEUR/EUR.
pub const RAW_PER_MICRO_EUR: i128 = 360_000;

/// `n / d` rounded half away from zero (`d > 0`).
pub fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d {
        q + n.signum()
    } else {
        q
    }
}

/// The resolved points of `(id, channel)` whose intervals meet `[from, to)`, in time order.
pub fn series_points(
    src: &dyn SeriesSource,
    id: &str,
    channel: Channel,
    from_utc: i64,
    to_utc: i64,
) -> Result<Vec<Point>, QueryError> {
    let mut out = Vec::new();
    let mut scratch = DecodedBlock::default();
    for chunk in src.chunks(
        id,
        channel,
        from_utc.saturating_sub(MAX_CURVE_STEP_S),
        to_utc,
    )? {
        chunk.decode_into(&mut scratch)?;
        out.extend(
            scratch
                .points()
                .filter(|p| p.ts_utc < to_utc && p.ts_utc + 60 * i64::from(p.step_min) > from_utc),
        );
    }
    out.sort_by_key(|p| p.ts_utc);
    Ok(out)
}

/// The prices of series `series` meeting `[from, to)`.
pub fn spot_prices(
    src: &dyn SeriesSource,
    series: &str,
    from_utc: i64,
    to_utc: i64,
) -> Result<Vec<Point>, QueryError> {
    series_points(src, series, Channel::PRICE, from_utc, to_utc)
}

/// Per period `[from, to)` of `periods`: the energy of `meter`'s consumption curve and its cost
/// under the prices of `series` (module docs: alignment, exactness, what is reported).
pub fn dynamic_energy_cost(
    src: &dyn SeriesSource,
    meter: &str,
    series: &str,
    periods: &[(i64, i64)],
) -> Result<Vec<DynamicPeriod>, QueryError> {
    if let Some(&(a, b)) = periods.iter().find(|(a, b)| a >= b) {
        return Err(QueryError::InvalidArgument(format!(
            "period [{a}, {b}) is empty: from must be before to"
        )));
    }
    if !src.has_meter(meter) {
        return Err(QueryError::UnknownMeter(meter.to_owned()));
    }
    let (Some(lo), Some(hi)) = (
        periods.iter().map(|p| p.0).min(),
        periods.iter().map(|p| p.1).max(),
    ) else {
        return Ok(Vec::new());
    };
    let curve = series_points(src, meter, Channel::CONSUMPTION, lo, hi)?;
    let prices = series_points(src, series, Channel::PRICE, lo, hi)?;
    Ok(periods
        .iter()
        .map(|&(a, b)| period_cost(&curve, &prices, a, b))
        .collect())
}

fn end(p: &Point) -> i64 {
    p.ts_utc + 60 * i64::from(p.step_min)
}

/// The cost of `[a, b)`; `curve` and `prices` sorted and non-overlapping.
pub fn period_cost(curve: &[Point], prices: &[Point], a: i64, b: i64) -> DynamicPeriod {
    let mut out = DynamicPeriod {
        from_utc: a,
        to_utc: b,
        energy_ws: 0,
        cost_raw: 0,
        cost_micro_eur: 0,
        curve_s: 0,
        curve_missing_s: 0,
        unpriced_s: 0,
    };
    let first = curve.partition_point(|p| end(p) <= a);
    let mut pi = prices.partition_point(|p| end(p) <= a);
    for c in curve[first..].iter().take_while(|p| p.ts_utc < b) {
        let (s, e) = (c.ts_utc.max(a), end(c).min(b));
        if s >= e {
            continue;
        }
        let w = i128::from(c.value);
        out.curve_s += e - s;
        out.energy_ws += (w * i128::from(e - s)) as i64;
        let mut priced = 0;
        // Prices before this reading are behind it for every later reading too.
        while pi < prices.len() && end(&prices[pi]) <= s {
            pi += 1;
        }
        let mut k = pi;
        while k < prices.len() && prices[k].ts_utc < e {
            let (x, y) = (prices[k].ts_utc.max(s), end(&prices[k]).min(e));
            if x < y {
                out.cost_raw += w * i128::from(y - x) * i128::from(prices[k].value);
                priced += y - x;
            }
            k += 1;
        }
        out.unpriced_s += (e - s) - priced;
    }
    out.curve_missing_s = (b - a) - out.curve_s;
    out.cost_micro_eur = div_round(out.cost_raw, RAW_PER_MICRO_EUR) as i64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quality;

    fn p(ts: i64, value: i32, step_min: u16) -> Point {
        Point {
            ts_utc: ts,
            value,
            step_min,
            quality: Quality::Measured,
        }
    }

    #[test]
    fn a_half_hour_over_two_quarter_hour_prices_is_charged_half_at_each() {
        // 1 kW for 30 min = 0.5 kWh; prices 100 and -20 EUR/MWh: 0.25 × 0.1 − 0.25 × 0.02 EUR.
        let curve = [p(0, 1000, 30)];
        let prices = [p(0, 10_000, 15), p(900, -2_000, 15)];
        let c = period_cost(&curve, &prices, 0, 1800);
        assert_eq!(c.energy_wh(), 500);
        assert_eq!(c.cost_micro_eur, 25_000 - 5_000);
        assert_eq!(c.cost_cents(), 2);
        assert!(c.complete());
    }

    #[test]
    fn a_missing_price_and_a_missing_reading_are_reported_not_guessed() {
        let curve = [p(0, 1000, 15), p(1800, 1000, 15)];
        let prices = [p(0, 10_000, 15)];
        let c = period_cost(&curve, &prices, 0, 3600);
        assert_eq!(
            (c.curve_s, c.curve_missing_s, c.unpriced_s),
            (1800, 1800, 900)
        );
        assert_eq!(c.cost_micro_eur, 25_000);
        assert!(!c.complete());
    }

    #[test]
    fn rounding_is_half_away_from_zero_once() {
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(div_round(4, 10), 0);
        assert_eq!(div_round(-14, 10), -1);
    }
}
