//! `courbe query`: the HTTP API's answers on stdout.

use std::io::Write;
use std::path::Path;

use super::{open_existing_store, output_error, CliError, QueryArgs, QueryKindArg};
use crate::http::body;
use crate::question::{Encoding, Limits, QueryKind, QueryParams, Question};

impl From<QueryKindArg> for QueryKind {
    fn from(kind: QueryKindArg) -> QueryKind {
        match kind {
            QueryKindArg::Curve => QueryKind::Curve,
            QueryKindArg::Energy => QueryKind::Energy,
            QueryKindArg::Peak => QueryKind::Peak,
            QueryKindArg::FleetCurve => QueryKind::FleetCurve,
            QueryKindArg::FleetEnergy => QueryKind::FleetEnergy,
            QueryKindArg::Index => QueryKind::Index,
            QueryKindArg::Summary => QueryKind::Summary,
        }
    }
}

/// The parameters the HTTP API would receive for the same question.
pub fn params_of(args: &QueryArgs) -> QueryParams {
    QueryParams {
        from: args.from.clone(),
        to: args.to.clone(),
        tz: Some(args.tz.clone()),
        period: args.period.clone(),
        tariff: args.tariff.clone(),
        channel: args.channel.clone(),
        format: Some(args.format.clone()),
        meters: args.meters.clone(),
        year: args.year.clone(),
    }
}

/// Answers the question on `out`: the JSON the HTTP API sends (one line), or CSV.
/// The arguments are checked before the store is opened.
pub fn query(data: &Path, args: &QueryArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let limits = Limits::default();
    let (question, encoding) = Question::from_params(
        args.kind.into(),
        args.meter.as_deref(),
        &params_of(args),
        &limits,
    )?;
    let store = open_existing_store(data)?;
    let snapshot = store.snapshot();
    match encoding {
        Encoding::Json => {
            let answer = body::answer(&*snapshot, &question, &limits)?;
            writeln!(out, "{}", answer.to_json()?).map_err(output_error)
        }
        Encoding::Csv => body::answer(&*snapshot, &question, &limits)?
            .write_csv(out)
            .map_err(output_error),
        // The bytes of the stream, as the HTTP API sends them.
        Encoding::Arrow => {
            let (bytes, _) = body::answer_encoded(&*snapshot, &question, encoding, &limits)?;
            out.write_all(&bytes).map_err(output_error)
        }
    }
}
