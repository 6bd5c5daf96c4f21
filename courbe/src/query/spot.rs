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
    /// `[from_utc, to_utc)` before any reading is counted.
    fn empty(from_utc: i64, to_utc: i64) -> DynamicPeriod {
        DynamicPeriod {
            from_utc,
            to_utc,
            energy_ws: 0,
            cost_raw: 0,
            cost_micro_eur: 0,
            curve_s: 0,
            curve_missing_s: 0,
            unpriced_s: 0,
        }
    }

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
    let mut out = DynamicPeriod::empty(a, b);
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

/// A curve's points meeting a range, as columns (what [`series_points`] gives, without a
/// `Point` per reading): time-ordered, non-overlapping.
#[derive(Clone, Debug, Default)]
pub struct CurveColumns {
    pub ts: Vec<i64>,
    pub value: Vec<i32>,
    pub step: Vec<u16>,
}

impl CurveColumns {
    /// Reads the resolved points of `(id, channel)` meeting `[from, to)` into `self` (its
    /// vectors reused), decoding through `scratch`.
    pub fn read(
        &mut self,
        src: &dyn SeriesSource,
        id: &str,
        channel: Channel,
        (from_utc, to_utc): (i64, i64),
        scratch: &mut DecodedBlock,
    ) -> Result<(), QueryError> {
        self.ts.clear();
        self.value.clear();
        self.step.clear();
        let mut sorted = true;
        for chunk in src.chunks(
            id,
            channel,
            from_utc.saturating_sub(MAX_CURVE_STEP_S),
            to_utc,
        )? {
            chunk.decode_into(scratch)?;
            let n = scratch
                .ts_utc
                .len()
                .min(scratch.value.len())
                .min(scratch.step_min.len());
            let (ts, step) = (&scratch.ts_utc[..n], &scratch.step_min[..n]);
            // A chunk's points are sorted and do not overlap, so their ends are sorted too:
            // those meeting the range are one run, from the first ending after `from` to the
            // last starting before `to`.
            let j = ts.partition_point(|&t| t < to_utc);
            let (mut i, mut hi) = (0, j);
            while i < hi {
                let mid = i + (hi - i) / 2;
                if ts[mid] + 60 * i64::from(step[mid]) <= from_utc {
                    i = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if i < j {
                sorted &= self.ts.last().is_none_or(|&last| last < ts[i]);
                self.ts.extend_from_slice(&ts[i..j]);
                self.value.extend_from_slice(&scratch.value[i..j]);
                self.step.extend_from_slice(&step[i..j]);
            }
        }
        if !sorted {
            // Chunks come in time order; kept exact if a source ever breaks that.
            let mut order: Vec<usize> = (0..self.ts.len()).collect();
            order.sort_by_key(|&i| self.ts[i]);
            self.ts = order.iter().map(|&i| self.ts[i]).collect();
            self.value = order.iter().map(|&i| self.value[i]).collect();
            self.step = order.iter().map(|&i| self.step[i]).collect();
        }
        Ok(())
    }
}

/// A price series as the integral of its price over time: `cost(s, e)` is
/// `Σ price × seconds` over `[s, e)` in two look-ups, and `priced(s, e)` the seconds a price
/// covers, whatever the number of price intervals inside. Exactly what walking the intervals
/// one by one sums ([`period_cost`]).
#[derive(Clone, Debug, Default)]
pub struct PriceIntegral {
    /// Per price interval: start, end, price (c€/MWh), then the sum of `price × seconds` and
    /// the seconds priced before its start.
    start: Vec<i64>,
    end: Vec<i64>,
    price: Vec<i64>,
    before: Vec<i128>,
    priced_before: Vec<i64>,
}

impl PriceIntegral {
    /// Of `prices`, sorted and non-overlapping (as [`series_points`] gives them).
    pub fn new(prices: &[Point]) -> PriceIntegral {
        let mut out = PriceIntegral::default();
        let (mut sum, mut secs) = (0i128, 0i64);
        for p in prices {
            let (a, b) = (p.ts_utc, end(p));
            out.start.push(a);
            out.end.push(b);
            out.price.push(i64::from(p.value));
            out.before.push(sum);
            out.priced_before.push(secs);
            sum += i128::from(p.value) * i128::from(b - a);
            secs += b - a;
        }
        out
    }

    /// `(Σ price × seconds, seconds priced)` over `[min, t)`, the price interval holding or
    /// preceding `t` found from `hint` (moved forward, so time-ordered look-ups cost O(1)).
    #[inline]
    fn at(&self, t: i64, hint: &mut usize) -> (i128, i64) {
        let n = self.start.len();
        // The intervals starting at or before `t`: `k` of them; a few steps from the hint,
        // else a binary search.
        let mut k = (*hint).min(n);
        if k > 0 && self.start[k - 1] > t {
            k = self.start.partition_point(|&s| s <= t);
        } else {
            let mut steps = 0;
            while k < n && self.start[k] <= t {
                k += 1;
                steps += 1;
                if steps == 4 {
                    k += self.start[k..].partition_point(|&s| s <= t);
                    break;
                }
            }
        }
        *hint = k;
        let Some(i) = k.checked_sub(1) else {
            return (0, 0);
        };
        let inside = t.min(self.end[i]) - self.start[i];
        (
            self.before[i] + i128::from(self.price[i]) * i128::from(inside),
            self.priced_before[i] + inside,
        )
    }
}

/// [`period_cost`] over columns and a [`PriceIntegral`]: the same figures, one pair of price
/// look-ups per reading instead of a walk over the price intervals it meets.
pub fn period_cost_columns(
    curve: &CurveColumns,
    prices: &PriceIntegral,
    a: i64,
    b: i64,
) -> DynamicPeriod {
    let mut out = DynamicPeriod::empty(a, b);
    let n = curve.ts.len().min(curve.value.len()).min(curve.step.len());
    let (ts, value, step) = (&curve.ts[..n], &curve.value[..n], &curve.step[..n]);
    let end_of = |i: usize| ts[i] + 60 * i64::from(step[i]);
    // Readings are sorted and do not overlap, so their ends are sorted too: the first one
    // ending after `a`.
    let (mut i, mut hi) = (0, n);
    while i < hi {
        let mid = i + (hi - i) / 2;
        if end_of(mid) <= a {
            i = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut hint = 0usize;
    // The integral at the last reading's end: where the next one starts, on a curve without
    // gaps.
    let mut last = (i64::MIN, 0i128, 0i64);
    while i < n && ts[i] < b {
        let (s, e) = (ts[i].max(a), end_of(i).min(b));
        if s < e {
            let w = i64::from(value[i]);
            out.curve_s += e - s;
            out.energy_ws += w * (e - s);
            let (cost_s, priced_s) = match last {
                (t, cost, priced) if t == s => (cost, priced),
                _ => prices.at(s, &mut hint),
            };
            let (cost_e, priced_e) = prices.at(e, &mut hint);
            last = (e, cost_e, priced_e);
            out.cost_raw += i128::from(w) * (cost_e - cost_s);
            out.unpriced_s += (e - s) - (priced_e - priced_s);
        }
        i += 1;
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

    /// Sorted, non-overlapping intervals from `(gap, step index, value)` triples, starting at
    /// `origin`; gaps in whole minutes, so starts fall anywhere.
    fn intervals(origin: i64, spec: &[(u16, usize, i32)], steps: &[u16]) -> Vec<Point> {
        let mut t = origin;
        spec.iter()
            .map(|&(gap, k, v)| {
                t += 60 * i64::from(gap);
                let point = p(t, v, steps[k % steps.len()]);
                t = end(&point);
                point
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn pricing_columns_against_the_integral_of_prices_is_walking_every_price_interval(
            curve in proptest::collection::vec((0u16..40, 0usize..5, -5_000i32..100_000), 0..60),
            prices in proptest::collection::vec((0u16..50, 0usize..2, -50_000i32..300_000), 0..80),
            cuts in proptest::collection::vec(-3_600i64..200_000, 1..6),
        ) {
            let curve = intervals(0, &curve, &[5, 10, 15, 30, 60]);
            let prices = intervals(-7_200, &prices, &[15, 60]);
            let columns = CurveColumns {
                ts: curve.iter().map(|p| p.ts_utc).collect(),
                value: curve.iter().map(|p| p.value).collect(),
                step: curve.iter().map(|p| p.step_min).collect(),
            };
            let integral = PriceIntegral::new(&prices);
            let mut cuts = cuts;
            cuts.sort_unstable();
            cuts.dedup();
            for w in cuts.windows(2) {
                proptest::prop_assert_eq!(
                    period_cost_columns(&columns, &integral, w[0], w[1]),
                    period_cost(&curve, &prices, w[0], w[1])
                );
            }
            // Periods one after another reuse nothing between calls.
            if let (Some(&a), Some(&b)) = (cuts.first(), cuts.last()) {
                if a < b {
                    proptest::prop_assert_eq!(
                        period_cost_columns(&columns, &integral, a, b),
                        period_cost(&curve, &prices, a, b)
                    );
                }
            }
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero_once() {
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(div_round(4, 10), 0);
        assert_eq!(div_round(-14, 10), -1);
    }
}
