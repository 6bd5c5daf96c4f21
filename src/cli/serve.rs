//! `courbe serve` and `courbe demo`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use courbe_workload::{Fleet, FleetConfig, MeterSeries};
use indicatif::ProgressBar;
use jiff::civil::Date;
use rayon::prelude::*;
use tokio::net::TcpListener;

use super::{init_logging, open_store, progress_bar, CliError, DemoArgs, ServeArgs};
use crate::engine::{Batch, Store};
use crate::http::{self, ServerConfig};
use crate::question::DEFAULT_TZ;
use crate::source::SeriesSource;
use crate::{point_of, Channel};

/// Meters generated in parallel, then ingested as one batch, by `demo`.
const DEMO_METERS_PER_BATCH: u32 = 16;

pub fn serve(data: &Path, args: &ServeArgs) -> Result<(), CliError> {
    init_logging();
    // A server compacts in the background (`CompactionPolicy`), so a store fed day by day stays
    // at about one segment per month without an operator, and builds each segment's clock-band
    // summaries in the background, so that no offer comparison pays for them.
    let options = crate::engine::Options {
        background_compaction: true,
        background_summaries: true,
        ..Default::default()
    };
    let store = Arc::new(Store::open(data, options).map_err(CliError::from)?);
    let _compactor = store.start_compactor();
    if args.aggregate_min_meters < 2
        || args
            .dominance_share
            .is_some_and(|s| !(0.0..=1.0).contains(&s))
    {
        return Err(CliError::User(
            "--aggregate-min-meters is at least 2; --dominance-share is between 0 and 1".into(),
        ));
    }
    let suppression = crate::governance::aggregates::Suppression {
        min_meters: args.aggregate_min_meters,
        max_share: args.dominance_share,
        ..Default::default()
    };
    let governance = open_governance(data, args.tokens.clone(), suppression)?;
    let config = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        governance: Some(governance),
        ..ServerConfig::default()
    };
    serve_store(store, &args.listen, config, |addr| {
        eprintln!("courbe: serving {} on http://{addr}", data.display());
    })
}

/// Hook (governance): the registries of `data` and the tokens of the server.
fn open_governance(
    data: &Path,
    tokens_path: Option<std::path::PathBuf>,
    aggregates: crate::governance::aggregates::Suppression,
) -> Result<Arc<crate::governance::Governance>, CliError> {
    let config = crate::governance::GovernanceConfig {
        tokens_path,
        aggregates,
        ..Default::default()
    };
    match crate::governance::Governance::open(data, config) {
        Ok(gov) => Ok(Arc::new(gov)),
        Err(e @ crate::governance::Error::Tokens { .. }) => Err(CliError::User(e.to_string())),
        Err(e) => Err(CliError::Internal(e.to_string())),
    }
}

/// Serves `store` on `listen` until Ctrl-C or SIGTERM; [`http::run`] then flushes it.
fn serve_store(
    store: Arc<Store>,
    listen: &str,
    config: ServerConfig,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| CliError::User(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Internal(format!("no local address: {e}")))?;
        // Checked before saying where it serves; `http::run` checks it again.
        http::check_exposure(addr, config.governance.as_deref()).map_err(CliError::User)?;
        on_listening(addr);
        let shutdown = async {
            shutdown_signal().await;
            eprintln!("courbe: shutting down");
        };
        http::run(listener, store, config, shutdown)
            .await
            .map_err(|e| match e {
                http::ServeError::Exposed(why) => CliError::User(why),
                http::ServeError::Flush(e) => CliError::from(e),
                e => CliError::Internal(format!("server failed: {e}")),
            })
    })
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Fills an empty store with a generated fleet, then serves it and prints example queries.
pub fn demo(data: &Path, args: &DemoArgs) -> Result<(), CliError> {
    let store = Arc::new(open_store(data)?);
    let governance = open_governance(data, None, Default::default())?;
    if store.stats().points == 0 {
        let config = FleetConfig {
            meters: args.meters,
            days: args.days,
            ..FleetConfig::default()
        };
        eprintln!(
            "courbe: generating {} meters x {} days into {}{}",
            config.meters,
            config.days,
            data.display(),
            if cfg!(debug_assertions) {
                " (a debug build: `cargo run --release -- demo` is about 3 times faster)"
            } else {
                ""
            }
        );
        let started = Instant::now();
        let bar = progress_bar(
            u64::from(config.meters),
            "{elapsed_precise} [{bar:40}] {pos}/{len} meters, ETA {eta}",
        );
        let fleet = Fleet::new(config);
        let points = ingest_fleet(&store, &governance, &fleet, &bar)?;
        bar.finish_and_clear();
        store.flush()?;
        // One segment per month instead of one per flush: a lookup visits every live segment of
        // the months it reads, so this is what makes one-meter questions fast at fleet scale.
        store.compact()?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "courbe: ingested and compacted {points} points in {seconds:.1} s ({:.0} points/s)",
            points as f64 / seconds.max(1e-9)
        );
        load_demo_prices(&store, &governance, fleet.config())?;
        release_demo_months(&store, &governance, fleet.config())?;
    }
    let Some(example) = Example::find(&store) else {
        return Err(CliError::Internal(
            "the data directory holds no consumption curve to show".into(),
        ));
    };
    init_logging();
    let config = ServerConfig {
        governance: Some(governance),
        ..ServerConfig::default()
    };
    serve_store(store, &args.listen, config, |addr| {
        let mut text = format!(
            "courbe: serving {} on http://{addr}\nTry:\n",
            data.display()
        );
        for line in example.curl_lines(&addr.to_string()) {
            text.push_str(&format!("  {line}\n"));
        }
        text.push_str("Ctrl-C stops the server.\n");
        // A closed stdout must not stop the server.
        let mut stdout = std::io::stdout();
        let _ = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
    })
}

/// Loads the illustrative price grids and taxes (`governance::prices::demo_grids`) and a
/// synthetic spot price series `spot-FR` over the generated span (`courbe_workload::spot`:
/// generated, not market data), so that cost and offer questions answer.
fn load_demo_prices(
    store: &Store,
    gov: &crate::governance::Governance,
    config: &FleetConfig,
) -> Result<(), CliError> {
    crate::governance::prices::load_demo(gov.prices())
        .map_err(|e| CliError::Internal(format!("cannot store the demo prices: {e}")))?;
    let spot = crate::http::prices::synthetic_spot_batch(
        "spot-FR",
        config.seed,
        config.start,
        config.days,
    )
    .ok_or_else(|| CliError::Internal("the synthetic spot series is not valid".into()))?;
    store.ingest(&spot)?;
    eprintln!(
        "courbe: loaded illustrative tariff grids and taxes, and {} synthetic 15-minute spot prices (spot-FR)",
        spot.len()
    );
    Ok(())
}

/// Releases the aggregates of the whole Europe/Paris months holding the generated span, so
/// that callers other than operators are answered (they read releases only).
fn release_demo_months(
    store: &Store,
    gov: &crate::governance::Governance,
    config: &FleetConfig,
) -> Result<(), CliError> {
    let internal = |e: String| CliError::Internal(e);
    let tz = jiff::tz::TimeZone::get(DEFAULT_TZ).map_err(|e| internal(e.to_string()))?;
    let last = config
        .start
        .checked_add(jiff::Span::new().days(i64::from(config.days.max(1)) - 1))
        .map_err(|e| internal(e.to_string()))?;
    let end = last
        .first_of_month()
        .checked_add(jiff::Span::new().months(1))
        .map_err(|e| internal(e.to_string()))?;
    let at = |d: Date| -> Result<i64, CliError> {
        Ok(d.to_zoned(tz.clone())
            .map_err(|e| internal(e.to_string()))?
            .timestamp()
            .as_second())
    };
    let from = config.start.first_of_month();
    let summary = gov
        .release(store, at(from)?, at(end)?, Channel::CONSUMPTION)
        .map_err(|e| internal(e.message))?;
    eprintln!(
        "courbe: released the aggregates of {from} to {end} ({} months, {} bytes)",
        summary.months, summary.bytes
    );
    Ok(())
}

/// Whether meter `index` of the demo fleet gave curve consent: 3 meters in 5 did, the others
/// send only what every Linky meter sends (daily energy, indexes, maximum power).
pub fn demo_curve_consent(index: u32) -> bool {
    index % 5 >= 2
}

/// Generates every meter of `fleet` (a few in parallel while the previous ones are ingested)
/// and ingests what each sends: the curve (consumption, production) of the meters with
/// consent, and for every meter its daily energy, the indexes of its tariff option's registers
/// and the distributor's, and its daily maximum power; records each meter's tariff contract
/// and the Tempo calendar the derivation used. Returns the number of points.
pub fn ingest_fleet(
    store: &Store,
    gov: &crate::governance::Governance,
    fleet: &Fleet,
    bar: &ProgressBar,
) -> Result<u64, CliError> {
    let tempo = super::daily::tempo_colours(fleet);
    gov.calendars()
        .set_colours(super::daily::TEMPO_SERIES, &tempo)
        .map_err(|e| CliError::Internal(format!("cannot store the Tempo calendar: {e}")))?;
    let colours = super::daily::day_colours(&tempo);
    let meters = fleet.config().meters;
    let generate = |first: u32| -> Result<Vec<Generated>, CliError> {
        let last = first.saturating_add(DEMO_METERS_PER_BATCH).min(meters);
        (first..last)
            .into_par_iter()
            .map(|index| {
                let series = fleet.meter(index);
                let daily = super::daily::meter_daily(fleet, index, &series, &colours)
                    .map_err(|e| CliError::Internal(e.to_string()))?;
                Ok(Generated {
                    index,
                    series,
                    daily,
                })
            })
            .collect()
    };
    let start = fleet.config().start.to_string();
    let mut points = 0u64;
    let mut next = generate(0)?;
    let mut first = 0;
    while !next.is_empty() {
        let current = std::mem::take(&mut next);
        first += DEMO_METERS_PER_BATCH;
        let (ingested, generated) = rayon::join(
            || ingest_series(store, &current),
            || {
                if first < meters {
                    generate(first)
                } else {
                    Ok(Vec::new())
                }
            },
        );
        points += ingested?;
        for g in &current {
            let contract = crate::governance::calendars::Contract {
                option: g
                    .daily
                    .option
                    .split(':')
                    .next()
                    .unwrap_or("BASE")
                    .to_string(),
                from: start.clone(),
                to: None,
                hc: g.daily.option.split_once(':').map(|(_, w)| w.to_string()),
            };
            gov.calendars()
                .set_contracts(&g.series.meter_id, vec![contract], "demo", 0)
                .map_err(|e| CliError::Internal(format!("cannot store a contract: {e}")))?;
        }
        bar.inc(current.len() as u64);
        next = generated?;
    }
    Ok(points)
}

/// One generated meter of the demo.
struct Generated {
    index: u32,
    series: MeterSeries,
    daily: super::daily::MeterDaily,
}

fn ingest_series(store: &Store, generated: &[Generated]) -> Result<u64, CliError> {
    let mut batch = Batch::new();
    for g in generated {
        let meter = &g.series.meter_id;
        let refused = |e: crate::engine::InvalidPoint| {
            CliError::Internal(format!(
                "generated point refused for meter {meter}: {}",
                e.0
            ))
        };
        let curves: &[(Channel, &Vec<courbe_workload::Reading>)] = if demo_curve_consent(g.index) {
            &[
                (Channel::CONSUMPTION, &g.series.consumption),
                (Channel::PRODUCTION, &g.series.production),
            ]
        } else {
            &[]
        };
        for (channel, readings) in curves
            .iter()
            .chain(std::iter::once(&(Channel::MAX_POWER, &g.series.max_power)))
        {
            for r in readings.iter() {
                batch.push(meter, *channel, point_of(r)).map_err(refused)?;
            }
        }
        for readings in [&g.daily.supplier, &g.daily.distributor] {
            // A name the store knows is a lookup; a new one is committed before its first use.
            let channels = readings
                .registers
                .iter()
                .map(|name| store.index_channel(name))
                .collect::<Result<Vec<Channel>, _>>()?;
            for (channel, p) in readings.points(&channels) {
                batch.push(meter, channel, p).map_err(refused)?;
            }
        }
    }
    store.ingest(&batch)?;
    Ok(batch.len() as u64)
}

/// A meter of the store and the span of its data, to write queries that answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub meter: String,
    /// A meter without a curve (daily data only), when the store has one.
    pub daily_meter: Option<String>,
    /// First and last local days (Europe/Paris) with data.
    pub first_day: Date,
    pub last_day: Date,
}

impl Example {
    /// The first meter with a consumption curve, and its span.
    pub fn find(store: &Store) -> Option<Example> {
        let snapshot = store.snapshot();
        let curves = snapshot.meters(Channel::CONSUMPTION);
        let meter = curves.first()?.clone();
        let daily_meter = snapshot
            .meters(Channel::DAILY_ENERGY)
            .into_iter()
            .find(|m| curves.binary_search(m).is_err());
        let chunks = snapshot
            .chunks(&meter, Channel::CONSUMPTION, i64::MIN / 4, i64::MAX / 4)
            .ok()?;
        let (first_ts, _) = chunks.first()?.span();
        let (_, end_ts) = chunks.last()?.span();
        let tz = crate::query::time_zone(DEFAULT_TZ).ok()?;
        let day = |ts: i64| -> Option<Date> {
            Some(
                jiff::Timestamp::from_second(ts)
                    .ok()?
                    .to_zoned(tz.clone())
                    .date(),
            )
        };
        Some(Example {
            meter,
            daily_meter,
            first_day: day(first_ts)?,
            last_day: day(end_ts - 1)?,
        })
    }

    /// Five `curl` command lines that work when pasted.
    pub fn curl_lines(&self, addr: &str) -> Vec<String> {
        let base = format!("http://{addr}");
        let meter = &self.meter;
        // A day inside the span, two weeks in when the span allows it.
        let day = self
            .first_day
            .checked_add(jiff::Span::new().days(14))
            .ok()
            .filter(|d| *d <= self.last_day)
            .unwrap_or(self.first_day);
        let next_day = day.tomorrow().unwrap_or(day);
        // Whole months: from the first of the first month to the first after the last day.
        let first = self.first_day.first_of_month();
        let end = self
            .last_day
            .last_of_month()
            .tomorrow()
            .unwrap_or(self.last_day);
        let mut lines = vec![
            format!("curl '{base}/v1/meters/{meter}/curve?from={day}&to={next_day}'"),
            format!(
                "curl '{base}/v1/meters/{meter}/energy?from={first}&to={end}&period=month&tariff=HC:22:00-06:00'"
            ),
            format!("curl '{base}/v1/meters/{meter}/peak?from={first}&to={end}&period=month'"),
            format!("curl '{base}/v1/fleet/curve?from={day}&to={next_day}'"),
            format!(
                "curl '{base}/v1/fleet/energy?from={first}&to={end}&period=month&format=csv'"
            ),
        ];
        // Its cost under an offer, and four offers side by side over the last 12 months.
        lines.extend([
            format!(
                "curl '{base}/v1/meters/{meter}/cost?from={first}&to={end}&period=month&offer=bleu-tempo-6'"
            ),
            format!(
                "curl '{base}/v1/meters/{meter}/offers?offers=bleu-base-6,bleu-hphc-6,bleu-tempo-6,spot-dynamic-6&to={end}'"
            ),
        ]);
        if let Some(daily) = &self.daily_meter {
            // A meter without curve consent: energy by register from its indexes over the days
            // it has them, its monthly indexes, its year.
            let after = self.last_day.tomorrow().unwrap_or(self.last_day);
            let first_day = self.first_day;
            lines.extend([
                format!(
                    "curl '{base}/v1/meters/{daily}/energy?from={first_day}&to={after}&period=month&tariff=contract'"
                ),
                format!(
                    "curl '{base}/v1/meters/{daily}/index?from={first_day}&to={after}&period=month'"
                ),
                format!(
                    "curl '{base}/v1/meters/{daily}/summary?year={}&format=csv'",
                    self.first_day.year()
                ),
            ]);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_examples_name_the_meter_and_days_inside_the_span() {
        let example = Example {
            meter: "09111642617347".into(),
            daily_meter: None,
            first_day: jiff::civil::date(2024, 1, 1),
            last_day: jiff::civil::date(2024, 12, 30),
        };
        let lines = example.curl_lines("127.0.0.1:8080");
        assert_eq!(lines.len(), 7);
        assert!(lines[5].contains("/cost?from=2024-01-01&to=2025-01-01&period=month"));
        assert!(lines[6].contains("/offers?offers=") && lines[6].contains("&to=2025-01-01"));
        assert_eq!(
            lines[0],
            "curl 'http://127.0.0.1:8080/v1/meters/09111642617347/curve?from=2024-01-15&to=2024-01-16'"
        );
        assert!(lines[1].contains("from=2024-01-01&to=2025-01-01&period=month"));
        assert!(lines
            .iter()
            .all(|l| l.starts_with("curl 'http://127.0.0.1:8080/v1/")));
    }

    #[test]
    fn a_one_day_span_gives_examples_on_that_day() {
        let example = Example {
            meter: "m".into(),
            daily_meter: Some("d".into()),
            first_day: jiff::civil::date(2024, 3, 31),
            last_day: jiff::civil::date(2024, 3, 31),
        };
        let lines = example.curl_lines("h:1");
        assert!(
            lines[0].contains("from=2024-03-31&to=2024-04-01"),
            "{}",
            lines[0]
        );
    }
}
