//! The `courbe` command line: flags ([`Cli`]) and one library function per command.
//!
//! `main` only parses flags and calls [`run`]; every command is testable in process. Answers
//! go to stdout, progress and diagnostics to stderr. Exit statuses: 0 success, 1 user error
//! ([`CliError::User`]), 2 internal failure ([`CliError::Internal`]).

mod bench;
pub mod daily;
mod gen;
mod ingest;
mod maintenance;
mod prices;
mod query;
mod serve;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{self, Options, Store};
use crate::http::error::ApiError;

pub use bench::{bench, BenchArgs};
pub use gen::gen;
pub use ingest::ingest;
pub use maintenance::{compact, erase, release, stats, verify};
pub use prices::{prices, PricesArgs};
pub use query::query;
pub use serve::{demo, serve};

/// Where `--data` points when not given.
pub const DEFAULT_DATA_DIR: &str = "./courbe-data";

/// Storage engine and server for French smart-meter load curves.
#[derive(Debug, Parser)]
#[command(
    name = "courbe",
    version,
    after_help = "Exit status: 0 on success, 1 on a user error (bad input, unknown meter), \
                  2 on an internal failure.\n\n\
                  Quick start: courbe demo\n\
                  Example:     courbe gen --meters 20 --days 10 | courbe ingest -"
)]
pub struct Cli {
    /// Data directory of the store.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Quick start: fill an empty data dir with a generated fleet, then serve it and print
    /// example queries.
    Demo(DemoArgs),
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Write realistic synthetic load curves as native CSV on stdout (deterministic for a seed).
    Gen(GenArgs),
    /// Ingest native CSV, Enedis R50 XML or Enedis CSV exports (`-` is stdin); durable when it
    /// returns.
    Ingest(IngestArgs),
    /// Answer a question on stdout, as the HTTP API does.
    #[command(
        after_help = "Example: courbe query energy --meter 09111642617347 --from 2024-01-01 \
                      --to 2025-01-01 --period month --tariff HC:22:00-06:00"
    )]
    Query(QueryArgs),
    /// Erase a meter's curve, all of it or [from, to); physically gone when it returns.
    Erase(EraseArgs),
    /// Merge segments, dropping replaced and erased values; rewrite segments of an older format
    /// version in the current one.
    Compact,
    /// Check every checksum of every file.
    Verify,
    /// Print meters, points, bytes on disk and bytes per point.
    Stats,
    /// Load generator against a running server: requests/s and latency p50/p99/p99.9.
    Bench(BenchArgs),
    /// Manage bearer tokens of the HTTP API (`token add`).
    Token(crate::governance::cli::TokenArgs),
    /// Grant, list or revoke a supplier's access to a meter's data of some kinds (daily,
    /// max_power, curve); the server must be stopped (a running one takes the grants routes).
    Grant(crate::governance::cli::GrantArgs),
    /// Release the anonymised aggregates of whole Europe/Paris months [from, to), once: what
    /// every reader but an operator is answered from (the server must be stopped; a running
    /// one takes `POST /v1/aggregates/releases`).
    Release(ReleaseArgs),
    /// Load price grids and taxes (`prices load`), or price a fleet's saving of one offer over
    /// another (`prices fleet`); the server must be stopped.
    Prices(PricesArgs),
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// First month released (`YYYY-MM-01`, Europe/Paris).
    #[arg(long)]
    pub from: String,
    /// First month after the release (`YYYY-MM-01`, Europe/Paris).
    #[arg(long)]
    pub to: String,
    /// consumption or production.
    #[arg(long, default_value = "consumption")]
    pub channel: String,
    /// Fewest active meters of a published aggregate cell: as the server's.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub aggregate_min_meters: u32,
    /// The dominance share of the server, when it has one.
    #[arg(long, value_name = "SHARE")]
    pub dominance_share: Option<f64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to serve on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Meters of the generated fleet (when the data dir is empty).
    #[arg(long, default_value_t = 2_000)]
    pub meters: u32,
    /// Days of the generated fleet, from 2024-01-01.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to serve on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Largest request body in bytes; larger ones are refused with 413.
    #[arg(long, value_name = "BYTES", default_value_t = crate::http::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: u64,
    /// Bearer tokens, one a line: `SHA256-HEX ROLE [SUBJECT]` (re-read when it changes).
    /// Without it every caller is an operator and only loopback addresses are served.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Fewest active meters of a published aggregate cell (D.111-53: 10).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub aggregate_min_meters: u32,
    /// Suppress an aggregate cell where one meter holds more than this share of the energy
    /// (0 to 1); no dominance rule when absent.
    #[arg(long, value_name = "SHARE")]
    pub dominance_share: Option<f64>,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of meters (every kind but `spot`).
    #[arg(long, required_unless_present = "kind", default_value_t = 0)]
    pub meters: u32,
    /// Number of days.
    #[arg(long)]
    pub days: u32,
    /// First local day (Europe/Paris), YYYY-MM-DD.
    #[arg(long, default_value = "2024-01-01")]
    pub start: String,
    /// Seed of the generator: the same seed gives the same curves.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Step of the curves, minutes (5, 10, 15, 30 or 60).
    #[arg(long, value_name = "MIN", default_value_t = 30)]
    pub step: u16,
    /// Which channel to write: consumption or production (`--kind curve`).
    #[arg(long, default_value = "consumption")]
    pub channel: String,
    /// What to write: `curve` (native CSV), `daily` (native CSV of daily energy, Wh per
    /// Europe/Paris day), `r151` (Enedis R151 XML: daily indexes per register and maximum
    /// power), `tempo` (the span's Tempo colours, `date,colour`) or `spot` (SYNTHETIC 15-minute
    /// spot prices, `ts,price` in EUR/MWh, what `ingest --channel price` reads; not market
    /// data: `courbe_workload::synthetic_spot`). Daily data follow each meter's curve under its
    /// tariff option (60% BASE, 30% HP/HC, 10% Tempo).
    #[arg(long, value_enum, default_value_t = GenKind::Curve)]
    pub kind: GenKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenKind {
    Curve,
    Daily,
    R151,
    Tempo,
    Spot,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Channel of the native CSV points (consumption, production, max_power or daily_energy:
    /// Wh per Europe/Paris day at its midnight, what `gen --kind daily` writes; price: CSV
    /// `ts,price` in EUR/MWh of the series `--series` names), and of load
    /// curves in the other formats (consumption or production).
    #[arg(long, default_value = "consumption")]
    pub channel: String,
    /// With `--channel price`: the price series the files' `ts,price` lines go to (`spot-FR`).
    #[arg(long)]
    pub series: Option<String>,
    /// Files to ingest, native CSV, Enedis R50 or R151 XML, Enedis SGE CSV export or Data
    /// Connect JSON (detected); `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// The questions of `courbe query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueryKindArg {
    Curve,
    Energy,
    Peak,
    FleetCurve,
    FleetEnergy,
    /// Index of each register at each day or month boundary (Europe/Paris dates).
    Index,
    /// A year's months: indexes, energy per register, maximum power (--year).
    Summary,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    pub kind: QueryKindArg,
    /// Meter id (curve, energy, peak, index, summary).
    #[arg(long)]
    pub meter: Option<String>,
    /// Start, inclusive: RFC 3339 instant or local date YYYY-MM-DD (all but summary).
    #[arg(long)]
    pub from: Option<String>,
    /// End, exclusive: RFC 3339 instant or local date YYYY-MM-DD (all but summary).
    #[arg(long)]
    pub to: Option<String>,
    /// Civil year (summary).
    #[arg(long)]
    pub year: Option<String>,
    /// Calendar period: day, week, month or year (energy, peak, fleet-energy) [default: day].
    #[arg(long)]
    pub period: Option<String>,
    /// Time zone of calendar periods and local dates.
    #[arg(long, default_value = crate::question::DEFAULT_TZ)]
    pub tz: String,
    /// Off-peak windows, e.g. HC:22:00-06:00 or HC:01:00-07:00,12:30-14:30 (energy).
    #[arg(long)]
    pub tariff: Option<String>,
    /// consumption, production or max_power.
    #[arg(long)]
    pub channel: Option<String>,
    /// Comma-separated meter ids (fleet questions; default all).
    #[arg(long)]
    pub meters: Option<String>,
    /// json, csv, or for curves columns (compact runs, JSON); arrow (an Arrow IPC stream) for
    /// curve, energy, fleet-curve and fleet-energy.
    #[arg(long, default_value = "json")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    #[arg(long)]
    pub meter: String,
    /// Start of the erased range, inclusive (with --to).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// End of the erased range, exclusive (with --from).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Time zone of local dates.
    #[arg(long, default_value = crate::question::DEFAULT_TZ)]
    pub tz: String,
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The caller can fix it: bad input, unknown meter... (exit status 1).
    User(String),
    /// A failure of the machine or of the data (exit status 2).
    Internal(String),
    /// The reader of stdout closed it (`courbe gen | head`): [`run`] returns success.
    OutputClosed,
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::User(_) => 1,
            CliError::Internal(_) => 2,
            CliError::OutputClosed => 0,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::User(m) | CliError::Internal(m) => f.write_str(m),
            CliError::OutputClosed => f.write_str("the output was closed"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> CliError {
        if e.code.is_user_error() {
            CliError::User(e.message)
        } else {
            CliError::Internal(e.message)
        }
    }
}

impl From<engine::Error> for CliError {
    fn from(e: engine::Error) -> CliError {
        ApiError::from(e).into()
    }
}

/// Writing an answer failed; a closed pipe is not a failure (see [`run`]).
fn output_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError::OutputClosed
    } else {
        CliError::Internal(format!("cannot write the output: {e}"))
    }
}

/// Runs a parsed command line, answers on stdout.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Demo(args) => demo(&cli.data, args),
        Command::Serve(args) => serve(&cli.data, args),
        Command::Gen(args) => gen(args, &mut out),
        Command::Ingest(args) => ingest(&cli.data, args, &mut out),
        Command::Query(args) => query(&cli.data, args, &mut out),
        Command::Erase(args) => erase(&cli.data, args, &mut out),
        Command::Compact => compact(&cli.data, &mut out),
        Command::Verify => verify(&cli.data, &mut out),
        Command::Stats => stats(&cli.data, &mut out),
        Command::Release(args) => release(&cli.data, args, &mut out),
        Command::Bench(args) => bench(args, &mut out),
        Command::Token(args) => {
            crate::governance::cli::token(args, &mut out).map_err(|e| CliError::User(e.to_string()))
        }
        Command::Grant(args) => crate::governance::cli::grant(&cli.data, args, &mut out),
        Command::Prices(args) => prices(&cli.data, args, &mut out),
    };
    match result.and_then(|()| out.flush().map_err(output_error)) {
        Err(CliError::OutputClosed) => Ok(()),
        other => other,
    }
}

/// Opens the store in `dir`, creating it.
pub fn open_store(dir: &Path) -> Result<Store, CliError> {
    Store::open(dir, Options::default()).map_err(CliError::from)
}

/// Opens the store of a command that only reads or maintains existing data: a missing data
/// directory is the caller's mistake, not an empty store to create.
pub fn open_existing_store(dir: &Path) -> Result<Store, CliError> {
    if !dir.is_dir() {
        return Err(CliError::User(format!(
            "no data directory at {} (give --data DIR)",
            dir.display()
        )));
    }
    open_store(dir)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let target = if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Logs requests and errors on stderr (`RUST_LOG` overrides the level, `info` by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("courbe").chain(args.iter().copied()))
    }

    #[test]
    fn every_command_of_the_contract_parses() {
        for args in [
            &["demo"][..],
            &["serve", "--listen", "127.0.0.1:0"],
            &[
                "gen", "--meters", "3", "--days", "2", "--seed", "7", "--step", "15",
            ],
            &["ingest", "--channel", "production", "a.csv", "-"],
            &[
                "query",
                "curve",
                "--meter",
                "m",
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
            ],
            &[
                "query",
                "fleet-energy",
                "--from",
                "2024-01-01",
                "--to",
                "2024-02-01",
            ],
            &["erase", "--meter", "m"],
            &[
                "erase",
                "--meter",
                "m",
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
            ],
            &["compact"],
            &["verify"],
            &["stats", "--data", "/tmp/x"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}: {:?}", parse(args).err());
        }
    }

    #[test]
    fn data_is_accepted_before_or_after_the_command() {
        let before = parse(&["--data", "/d", "stats"]).unwrap();
        let after = parse(&["stats", "--data", "/d"]).unwrap();
        assert_eq!(before.data, PathBuf::from("/d"));
        assert_eq!(after.data, PathBuf::from("/d"));
        assert_eq!(
            parse(&["stats"]).unwrap().data,
            PathBuf::from(DEFAULT_DATA_DIR)
        );
    }

    #[test]
    fn erase_needs_both_ends_of_a_range() {
        assert!(parse(&["erase", "--meter", "m", "--from", "2024-01-01"]).is_err());
        assert!(parse(&["erase", "--from", "2024-01-01", "--to", "2024-01-02"]).is_err());
    }

    #[test]
    fn user_and_internal_errors_have_their_exit_codes() {
        let user = CliError::from(ApiError::invalid("bad date"));
        assert_eq!(user.exit_code(), 1);
        let internal = CliError::from(ApiError::internal("disk"));
        assert_eq!(internal.exit_code(), 2);
    }
}
