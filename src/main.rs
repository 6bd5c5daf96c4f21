//! The `courbe` binary: parses flags, runs the command, maps failures to exit statuses.

use std::process::ExitCode;

use clap::Parser;
use courbe_server::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are the caller's (1); --help and --version are answers (0).
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("courbe: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
