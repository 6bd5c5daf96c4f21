//! `courbe prices`: load price grids and taxes into the registry, and price a fleet's saving of
//! one offer over another (the server must be stopped: a running one holds the registries).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};

use super::{open_existing_store, CliError};
use crate::governance::prices::{self, load_demo};
use crate::governance::prices_http::{distribution, paths_json, resolve_offer};
use crate::governance::{Governance, GovernanceConfig};
use crate::query::cost::day_of;

#[derive(Debug, Args)]
pub struct PricesArgs {
    #[command(subcommand)]
    pub command: PricesCommand,
}

#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Load grids and taxes from CSV files (see `GET /v1/prices/grids?format=csv`), or the
    /// illustrative demo grids and taxes with `--demo`.
    Load {
        #[arg(long, value_name = "FILE")]
        grids: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        taxes: Option<PathBuf>,
        /// The illustrative 2024-2025 Tarif Bleu grids (BASE, HPHC, TEMPO at 6 kVA) and taxes.
        #[arg(long)]
        demo: bool,
    },
    /// Every meter's saving of offer B over offer A over Paris days [from, to), priced per
    /// month: quartiles and mean, as JSON; the time it took on stderr.
    Fleet {
        /// `A,B`: two grid names.
        #[arg(long)]
        offers: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

fn user(e: impl std::fmt::Display) -> CliError {
    CliError::User(e.to_string())
}

fn open(data: &Path) -> Result<Governance, CliError> {
    Governance::open(data, GovernanceConfig::default())
        .map_err(|e| CliError::Internal(e.to_string()))
}

pub fn prices(data: &Path, args: &PricesArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        PricesCommand::Load { grids, taxes, demo } => {
            let gov = open(data)?;
            if *demo {
                load_demo(gov.prices()).map_err(user)?;
            }
            let bad = |b: Vec<crate::governance::calendars::BadLine>| {
                let lines: Vec<String> = b
                    .iter()
                    .map(|b| format!("line {}: {}", b.line, b.reason))
                    .collect();
                CliError::User(format!("nothing stored: {}", lines.join("; ")))
            };
            if let Some(path) = grids {
                let text = std::fs::read_to_string(path).map_err(user)?;
                let grids = prices::parse_grids(&text).map_err(bad)?;
                gov.prices().set_grids(grids).map_err(user)?;
            }
            if let Some(path) = taxes {
                let text = std::fs::read_to_string(path).map_err(user)?;
                let taxes = prices::parse_taxes(&text).map_err(bad)?;
                gov.prices().set_taxes(taxes).map_err(user)?;
            }
            let names: Vec<String> = gov.prices().grids().into_iter().map(|g| g.name).collect();
            writeln!(
                out,
                "grids: {}; taxes: {}",
                names.join(", "),
                gov.prices().taxes().len()
            )
            .map_err(super::output_error)?;
            Ok(())
        }
        PricesCommand::Fleet { offers, from, to } => {
            let (first, end) = (day_of(from).map_err(user)?, day_of(to).map_err(user)?);
            if end <= first {
                return Err(user("--from must be before --to"));
            }
            let names: Vec<&str> = offers.split(',').collect();
            let [a, b] = names.as_slice() else {
                return Err(user("--offers A,B: two grid names"));
            };
            let store = open_existing_store(data)?;
            let gov = open(data)?;
            let resolved = vec![
                resolve_offer(&gov, "", a, first, end)?,
                resolve_offer(&gov, "", b, first, end)?,
            ];
            let taxes = gov.prices().taxes();
            let started = Instant::now();
            let snapshot = store.snapshot();
            let prices::FleetSavings {
                mut savings,
                skipped,
                paths,
            } = prices::fleet_savings(&*snapshot, &resolved, &taxes, first, end)
                .map_err(|e| CliError::from(crate::http::error::ApiError::from(e)))?;
            let seconds = started.elapsed().as_secs_f64();
            let counted = savings.len();
            let answer = serde_json::json!({
                "a": a, "b": b, "from": from, "to": to,
                "meters": counted, "skipped": skipped,
                "paths": { "a": paths_json(paths.first()), "b": paths_json(paths.get(1)) },
                "distribution": distribution(&mut savings),
            });
            writeln!(out, "{answer}").map_err(super::output_error)?;
            eprintln!(
                "courbe: priced {} meters under 2 offers in {seconds:.2} s",
                counted + skipped
            );
            Ok(())
        }
    }
}
