//! `courbe ingest FILE...`: native CSV, R50 and R151 flows streamed in bounded batches, Enedis
//! SGE exports and Data Connect documents read whole; durable when it returns.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use super::{open_store, output_error, progress_bar, CliError, IngestArgs};
use crate::engine::Store;
use crate::governance::Governance;
use crate::http::error::ApiError;
use crate::http::loading::{BatchSink, Delivery, IngestReport, SinkConfig};
use crate::ingest::{self, Rejected};
use crate::question::parse_ingest_channel;
use crate::Channel;

/// Points per [`Store::ingest`] call.
pub const BATCH_POINTS: usize = 100_000;
/// Rejected records printed; the others are counted.
pub const SHOWN_REJECTED: usize = 20;

/// One input's outcome.
struct InputReport {
    name: String,
    report: IngestReport,
}

/// Ingests every input; prints `accepted N, rejected M, X points/s` on `out` and the first
/// rejected records on stderr. Fails with a user error when an input is unusable as a whole
/// (unreadable file, no header, not an R50 flow) or when no record of the input was accepted.
pub fn ingest(data: &Path, args: &IngestArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let channel = parse_ingest_channel(Some(&args.channel))?;
    let series = match (channel == Channel::PRICE, &args.series) {
        (true, None) => {
            return Err(CliError::User(
                "--channel price needs --series (spot-AREA, e.g. spot-FR)".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(CliError::User(
                "--series names a price series: only with --channel price".into(),
            ))
        }
        (_, series) => series.as_deref(),
    };
    let store = open_store(data)?;
    // Hook (governance): the consent registry screens every batch.
    let gov = crate::governance::Governance::open(data, Default::default())
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut unusable = Vec::new();
    for path in &args.files {
        let name = if path == Path::new("-") {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        let read = match series {
            Some(series) => ingest_prices(&store, &gov, path, series),
            None => ingest_input(&store, &gov, path, channel),
        };
        match read {
            Ok(report) => reports.push(InputReport { name, report }),
            Err(CliError::User(reason)) => {
                eprintln!("courbe: {name}: {reason}");
                unusable.push(name);
            }
            Err(other) => return Err(other),
        }
    }
    store.flush()?;
    // What the background compactor of a server would do: a store fed file by file stays at
    // about one segment per month.
    store.compact_by_policy()?;
    let seconds = started.elapsed().as_secs_f64();
    let accepted: u64 = reports.iter().map(|r| r.report.accepted).sum();
    let rejected: u64 = reports.iter().map(|r| r.report.rejected_count).sum();
    print_rejected(&reports, rejected);
    let refused: u64 = reports.iter().map(|r| r.report.refused_by_consent).sum();
    if refused > 0 {
        eprintln!("courbe: {refused} curve points refused: collection consent revoked");
    }
    writeln!(
        out,
        "accepted {accepted}, rejected {rejected}, {:.0} points/s ({seconds:.2} s)",
        accepted as f64 / seconds.max(1e-9)
    )
    .map_err(output_error)?;
    if !unusable.is_empty() {
        return Err(CliError::User(format!(
            "{} of {} inputs could not be read: {}",
            unusable.len(),
            args.files.len(),
            unusable.join(", ")
        )));
    }
    if accepted == 0 && rejected > 0 {
        return Err(CliError::User(
            "no record of the input could be read".into(),
        ));
    }
    Ok(())
}

fn print_rejected(reports: &[InputReport], total: u64) {
    let mut shown = 0u64;
    for input in reports {
        for Rejected { line, reason } in &input.report.rejected {
            if shown == SHOWN_REJECTED as u64 {
                break;
            }
            eprintln!("rejected: {} line {line}: {reason}", input.name);
            shown += 1;
        }
    }
    if total > shown {
        eprintln!("rejected: ... and {} more", total - shown);
    }
}

/// Reads one price CSV input whole (`-` is stdin) and ingests it into `series`.
fn ingest_prices(
    store: &Store,
    gov: &Governance,
    path: &Path,
    series: &str,
) -> Result<IngestReport, CliError> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        io::stdin().lock().read_to_end(&mut bytes)
    } else {
        File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::User(format!("cannot read: {e}")))?;
    crate::http::loading::ingest_prices_screened(store, Some(gov), &bytes, series, BATCH_POINTS)
        .map_err(|e| {
            if e.code.is_user_error() {
                CliError::User(e.to_string())
            } else {
                CliError::Internal(e.message)
            }
        })
}

/// Reads and ingests one input (`-` is stdin).
fn ingest_input(
    store: &Store,
    gov: &Governance,
    path: &Path,
    channel: Channel,
) -> Result<IngestReport, CliError> {
    if path == Path::new("-") {
        return ingest_reader(store, gov, io::stdin().lock(), None, channel);
    }
    let file = File::open(path).map_err(|e| CliError::User(format!("cannot open: {e}")))?;
    let metadata = file.metadata().ok();
    if metadata.as_ref().is_some_and(std::fs::Metadata::is_dir) {
        return Err(CliError::User(
            "a directory, not a file (name the files in it)".into(),
        ));
    }
    ingest_reader(store, gov, file, metadata.map(|m| m.len()), channel)
}

fn ingest_reader(
    store: &Store,
    gov: &Governance,
    input: impl Read,
    len: Option<u64>,
    channel: Channel,
) -> Result<IngestReport, CliError> {
    let bar = match len {
        Some(len) => progress_bar(
            len,
            "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}, ETA {eta}",
        ),
        None => progress_bar(0, "{elapsed_precise} {bytes} {bytes_per_sec}"),
    };
    let reader = io::BufReader::with_capacity(1 << 20, bar.wrap_read(input));
    let mut sink = BatchSink::new(
        store,
        SinkConfig {
            delivery: Delivery::Streaming,
            batch_points: BATCH_POINTS,
            keep_rejected: SHOWN_REJECTED,
        },
    )
    .with_consent(Some(gov));
    let parsed = ingest::parse_reader(reader, channel, &mut sink);
    bar.finish_and_clear();
    if let Err(e) = parsed {
        let ingested = sink.accepted();
        let e = ApiError::from(e);
        return Err(if e.code.is_user_error() {
            let note = if ingested > 0 {
                format!(" ({ingested} points before it were ingested)")
            } else {
                String::new()
            };
            CliError::User(format!("{e}{note}"))
        } else {
            CliError::Internal(e.message)
        });
    }
    Ok(sink.finish()?)
}
