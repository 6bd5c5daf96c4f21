//! `courbe gen`: a generated fleet as native CSV on stdout, one meter at a time.

use std::io::Write;

use courbe_workload::{Fleet, FleetConfig, MeterSeries};
use rayon::prelude::*;

use super::{output_error, progress_bar, CliError, GenArgs};
use crate::http::api::parse_channel;
use crate::ingest::{CsvWriter, CURVE_STEPS_MIN};
use crate::point_of;
use crate::Channel;

/// Meters generated in parallel before being written in order.
const METERS_PER_ROUND: u32 = 16;

/// Writes the fleet's curves of `args.channel` as native CSV; memory holds a few meters at
/// most, whatever the fleet size.
pub fn gen(args: &GenArgs, out: &mut dyn Write) -> Result<(), CliError> {
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
    let mut writer = CsvWriter::new(out);
    let mut first = 0;
    while first < args.meters {
        let last = first.saturating_add(METERS_PER_ROUND).min(args.meters);
        let round: Vec<MeterSeries> = (first..last)
            .into_par_iter()
            .map(|i| fleet.meter(i))
            .collect();
        for meter in &round {
            write_meter(&mut writer, meter, channel).map_err(output_error)?;
        }
        bar.inc(u64::from(last - first));
        first = last;
    }
    bar.finish_and_clear();
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
