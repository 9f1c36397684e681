//! `hyperverse`: the command-line front door to the Hyperverse runtime.
//!
//! For now it has one subcommand, `demo`, which runs a self-contained tour of
//! the runtime on an embedded Machine; a daemon will join it later. This file
//! only parses the command line, sets up logging and maps outcomes to exit
//! codes: what each subcommand does lives in its own module.

mod demo;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Hyperverse: an Erlang/OTP-style actor runtime.
///
/// Logging follows `RUST_LOG` (default: warnings only, crash warnings hidden
/// because the demo reports crashes itself).
#[derive(Debug, Parser)]
#[command(name = "hyperverse", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a tour of the runtime: a ~1,000-particle tree across the Stars,
    /// waves from several senders, planned crashes and restarts, then a
    /// report. Exits non-zero if any invariant fails.
    Demo(demo::DemoArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::Demo(args) => {
            // Cross-option checks clap cannot express; reported like any
            // other usage error (exit code 2, with the usage line).
            if let Err(msg) = args.validate() {
                Cli::command()
                    .error(clap::error::ErrorKind::ValueValidation, msg)
                    .exit();
            }
            match demo::run(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("hyperverse demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
