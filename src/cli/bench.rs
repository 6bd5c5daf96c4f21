//! `courbe bench`: flags of the load generator, which lives in [`crate::bench`].

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::{output_error, CliError};
use crate::bench::{self, BenchConfig, BenchError, Workload};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server, http://HOST:PORT.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Measured seconds, after the warm-up.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up, not measured.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    pub warmup: f64,
    /// Connections, one request in flight on each.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// curve-day, curve-year, energy-year, peak-year, fleet-day, ingest or mixed.
    #[arg(long, value_name = "W", default_value = "energy-year")]
    pub workload: Workload,
    /// Open loop: requests per second, due at fixed times whatever the answers (latency
    /// counts from the due time). Without it, a closed loop.
    #[arg(long, value_name = "PER_S")]
    pub rate: Option<f64>,
    /// First local day of the server's data (questions are asked inside the span).
    #[arg(long, default_value = "2024-01-01")]
    pub start: String,
    /// Days of data from --start.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Meters per ingest request (one local day each).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub ingest_meters: u32,
    /// Ask about meters 0..N of the generated fleet (courbe gen, courbe demo) instead of
    /// reading the server's meters from /v1/fleet/energy at start.
    #[arg(long, value_name = "N")]
    pub fleet_meters: Option<u32>,
    /// Off-peak windows added to energy-year questions, e.g. HC:22:00-06:00.
    #[arg(long, value_name = "SPEC")]
    pub tariff: Option<String>,
    /// Seed of the draws of meters and days.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Client threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn seconds(flag: &str, value: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| CliError::User(format!("--{flag} {value}: not a number of seconds")))
}

pub fn bench(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let config = BenchConfig {
        url: args.url.clone(),
        workload: args.workload,
        duration: seconds("duration", args.duration)?,
        warmup: seconds("warmup", args.warmup)?,
        concurrency: args.concurrency,
        rate_per_s: args.rate,
        start: args
            .start
            .parse()
            .map_err(|e| CliError::User(format!("--start {:?}: {e}", args.start)))?,
        days: args.days,
        ingest_meters: args.ingest_meters,
        fleet_meters: args.fleet_meters,
        tariff: args.tariff.clone(),
        seed: args.seed,
        threads: args.threads,
    };
    let report = bench::run(&config).map_err(|e| match e {
        BenchError::InvalidArgument(m) => CliError::User(m),
        BenchError::Server(m) => CliError::Internal(m),
        BenchError::Runtime(e) => CliError::Internal(e.to_string()),
    })?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Internal(format!("cannot encode the report: {e}")))?;
        writeln!(out, "{text}").map_err(output_error)
    } else {
        out.write_all(report.to_text().as_bytes())
            .map_err(output_error)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("courbe").chain(args.iter().copied()))
    }

    #[test]
    fn the_flags_of_the_contract_parse_into_bench_args() {
        let cli = parse(&[
            "bench",
            "--url",
            "http://127.0.0.1:9000",
            "--duration",
            "5",
            "--concurrency",
            "8",
            "--workload",
            "mixed",
            "--rate",
            "250",
            "--json",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not the bench command: {:?}", cli.command);
        };
        assert_eq!(args.url, "http://127.0.0.1:9000");
        assert_eq!((args.duration, args.concurrency), (5.0, 8));
        assert_eq!(args.workload, Workload::Mixed);
        assert_eq!(args.rate, Some(250.0));
        assert!(args.json);
    }

    #[test]
    fn an_unknown_workload_or_a_negative_duration_is_refused() {
        assert!(parse(&["bench", "--workload", "curve"]).is_err());
        let cli = parse(&["bench", "--duration=-1"]).unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not the bench command");
        };
        let result = bench(&args, &mut Vec::new());
        assert!(matches!(result, Err(CliError::User(_))), "{result:?}");
    }
}
