//! `courbe erase`, `compact`, `verify` and `stats`: one-line summaries on stdout.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::{open_existing_store, output_error, CliError, EraseArgs, ReleaseArgs};
use crate::engine::Stats;
use crate::question::{self, EraseQuestion, QueryParams};

/// Erases the meter's curve (or `[from, to)` of it); gone from disk when it returns.
pub fn erase(data: &Path, args: &EraseArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let params = QueryParams {
        from: args.from.clone(),
        to: args.to.clone(),
        tz: Some(args.tz.clone()),
        ..QueryParams::default()
    };
    let question = EraseQuestion::from_params(&args.meter, &params)?;
    let store = open_existing_store(data)?;
    let erased = crate::http::body::erase(&store, &question)?;
    writeln!(
        out,
        "erased {} points of meter {}",
        erased.points_removed, erased.meter
    )
    .map_err(output_error)
}

/// Releases the aggregates of whole Paris months, as `POST /v1/aggregates/releases` does.
pub fn release(data: &Path, args: &ReleaseArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (tz, _) = question::parse_tz(None)?;
    let (from_utc, to_utc) = question::parse_range(Some(&args.from), Some(&args.to), &tz)?;
    let channel = question::parse_channel(Some(&args.channel))?;
    if args.aggregate_min_meters < 2
        || args
            .dominance_share
            .is_some_and(|s| !(0.0..=1.0).contains(&s))
    {
        return Err(CliError::User(
            "--aggregate-min-meters is at least 2, --dominance-share between 0 and 1".into(),
        ));
    }
    let store = open_existing_store(data)?;
    let config = crate::governance::GovernanceConfig {
        aggregates: crate::governance::aggregates::Suppression {
            min_meters: args.aggregate_min_meters,
            max_share: args.dominance_share,
            ..Default::default()
        },
        ..Default::default()
    };
    let gov = crate::governance::Governance::open(data, config)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let summary = gov.release(&store, from_utc, to_utc, channel)?;
    let summary = crate::governance::bodies::ReleaseSummaryJson::from(summary);
    let json = serde_json::to_string(&summary).map_err(|e| CliError::Internal(e.to_string()))?;
    writeln!(out, "{json}").map_err(output_error)
}

pub fn compact(data: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let store = open_existing_store(data)?;
    let before = store.stats();
    let started = Instant::now();
    store.flush()?;
    store.compact()?;
    let after = store.stats();
    writeln!(
        out,
        "compacted in {:.1} s: {} -> {} segments, {} -> {} bytes on disk",
        started.elapsed().as_secs_f64(),
        before.segments,
        after.segments,
        before.bytes_on_disk,
        after.bytes_on_disk
    )
    .map_err(output_error)
}

/// Checks every checksum; corruption is an internal failure (exit status 2).
pub fn verify(data: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let store = open_existing_store(data)?;
    let started = Instant::now();
    let stats = store.verify()?;
    writeln!(
        out,
        "ok: {} segments, {} points, {} bytes checked in {:.1} s",
        stats.segments,
        stats.points,
        stats.bytes_on_disk,
        started.elapsed().as_secs_f64()
    )
    .map_err(output_error)
}

pub fn stats(data: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let store = open_existing_store(data)?;
    writeln!(out, "{}", stats_line(&store.stats())).map_err(output_error)
}

/// `meters 20, points 9600, segments 1, bytes on disk 40960, 4.27 bytes/point`.
pub fn stats_line(stats: &Stats) -> String {
    let per_point = if stats.points == 0 {
        0.0
    } else {
        stats.bytes_on_disk as f64 / stats.points as f64
    };
    format!(
        "meters {}, points {}, segments {}, bytes on disk {}, {per_point:.2} bytes/point",
        stats.meters, stats.points, stats.segments, stats.bytes_on_disk
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_gives_bytes_per_point() {
        let line = stats_line(&Stats {
            meters: 2,
            points: 400,
            segments: 1,
            bytes_on_disk: 1_000,
        });
        assert_eq!(
            line,
            "meters 2, points 400, segments 1, bytes on disk 1000, 2.50 bytes/point"
        );
        assert!(stats_line(&Stats::default()).ends_with("0.00 bytes/point"));
    }
}
