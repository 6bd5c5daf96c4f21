//! `courbe gen`: a generated fleet as native CSV on stdout, one meter at a time.

use std::io::Write;

use courbe_workload::{Fleet, FleetConfig, MeterSeries};
use rayon::prelude::*;

use super::daily::{self, MeterDaily};
use super::{output_error, progress_bar, CliError, GenArgs, GenKind};
use crate::ingest::{CsvWriter, CURVE_STEPS_MIN};
use crate::point_of;
use crate::question::parse_channel;
use crate::Channel;

/// Meters generated in parallel before being written in order.
const METERS_PER_ROUND: u32 = 16;

/// Writes the fleet's curves of `args.channel` as native CSV; memory holds a few meters at
/// most, whatever the fleet size.
pub fn gen(args: &GenArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.kind == GenKind::Spot {
        return gen_spot(args, out);
    }
    if args.meters == 0 {
        return Err(CliError::User("--meters is required (at least 1)".into()));
    }
    let channel = parse_channel(Some(&args.channel))?;
    if channel == Channel::MAX_POWER {
        return Err(CliError::User(
            "gen writes curves: --channel consumption or production".into(),
        ));
    }
    if !CURVE_STEPS_MIN.contains(&args.step) {
        return Err(CliError::User(format!(
            "--step {} is not one of 5, 10, 15, 30 or 60 minutes",
            args.step
        )));
    }
    let start: jiff::civil::Date = args
        .start
        .parse()
        .map_err(|e| CliError::User(format!("--start {:?}: {e}", args.start)))?;
    let fleet = Fleet::new(FleetConfig {
        meters: args.meters,
        start,
        days: args.days,
        seed: args.seed,
        step_min: args.step,
        ..FleetConfig::default()
    });
    let bar = progress_bar(
        u64::from(args.meters),
        "{elapsed_precise} [{bar:40}] {pos}/{len} meters, ETA {eta}",
    );
    let tempo = daily::tempo_colours(&fleet);
    if args.kind == GenKind::Tempo {
        bar.finish_and_clear();
        writeln!(out, "date,colour").map_err(output_error)?;
        for (day, colour) in tempo {
            let date = crate::query::tariffs::date_of_day(day)
                .map_err(|e| CliError::Internal(e.to_string()))?;
            writeln!(out, "{date},{}", colour.as_str()).map_err(output_error)?;
        }
        return Ok(());
    }
    let colours = daily::day_colours(&tempo);
    let derive = matches!(args.kind, GenKind::Daily | GenKind::R151);
    // Each round's meters are generated on all cores, then written in order.
    let rounds =
        |write: &mut dyn FnMut(&MeterSeries, Option<&MeterDaily>) -> std::io::Result<()>| {
            let mut first = 0;
            while first < args.meters {
                let last = first.saturating_add(METERS_PER_ROUND).min(args.meters);
                let round: Vec<(MeterSeries, Option<MeterDaily>)> = (first..last)
                    .into_par_iter()
                    .map(|i| {
                        let series = fleet.meter(i);
                        let derived = derive
                            .then(|| daily::meter_daily(&fleet, i, &series, &colours))
                            .transpose()?;
                        Ok((series, derived))
                    })
                    .collect::<Result<_, crate::query::QueryError>>()
                    .map_err(|e| CliError::Internal(e.to_string()))?;
                for (meter, derived) in &round {
                    write(meter, derived.as_ref()).map_err(output_error)?;
                }
                bar.inc(u64::from(last - first));
                first = last;
            }
            bar.finish_and_clear();
            Ok::<(), CliError>(())
        };
    if args.kind == GenKind::R151 {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        daily::write_r151_header(&mut out).map_err(output_error)?;
        rounds(&mut |meter, derived| match derived {
            Some(d) => daily::write_r151_meter(&mut out, meter, d),
            None => Ok(()),
        })?;
        daily::write_r151_footer(&mut out).map_err(output_error)?;
        return out.flush().map_err(output_error);
    }
    let mut writer = CsvWriter::new(out);
    rounds(&mut |meter, derived| match derived {
        Some(d) => d
            .supplier
            .daily
            .iter()
            .try_for_each(|p| writer.write_row(&meter.meter_id, p)),
        None => write_meter(&mut writer, meter, channel),
    })?;
    writer.finish().map(|_| ()).map_err(output_error)
}

fn write_meter(
    writer: &mut CsvWriter<&mut dyn Write>,
    meter: &MeterSeries,
    channel: Channel,
) -> std::io::Result<()> {
    let readings = match channel {
        Channel::PRODUCTION => &meter.production,
        _ => &meter.consumption,
    };
    for r in readings {
        writer.write_row(&meter.meter_id, &point_of(r))?;
    }
    Ok(())
}

/// `--kind spot`: the synthetic 15-minute spot prices of the span (`courbe_workload::
/// synthetic_spot`, deterministic for `--seed`), as price CSV `ts,price` (EUR/MWh).
fn gen_spot(args: &GenArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let start: jiff::civil::Date = args
        .start
        .parse()
        .map_err(|e| CliError::User(format!("--start {:?}: {e}", args.start)))?;
    write_spot_csv(args.seed, start, args.days, out)
}

/// Writes `days` days of synthetic spot prices from `start` as price CSV (`ts,price`, EUR/MWh
/// with 2 decimals, one line per quarter hour): what `courbe ingest --channel price` and
/// `PUT /v1/prices/spot/{area}` read. Synthetic, not market data.
pub fn write_spot_csv(
    seed: u64,
    start: jiff::civil::Date,
    days: u32,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "ts,price").map_err(output_error)?;
    for p in courbe_workload::synthetic_spot(seed, start, days) {
        let c = p.centi_eur_mwh;
        let sign = if c < 0 { "-" } else { "" };
        let abs = c.unsigned_abs();
        writeln!(
            out,
            "{},{sign}{}.{:02}",
            crate::question::format_ts(p.ts_utc),
            abs / 100,
            abs % 100
        )
        .map_err(output_error)?;
    }
    Ok(())
}
