//! `hyperverse`: the command-line front door to the Hyperverse runtime.
//!
//! For now it has two subcommands: `demo`, which runs a self-contained tour
//! of the runtime on an embedded Machine, and `config`, which checks a
//! daemon configuration file; the daemon will join them later. This file
//! only parses the command line, sets up logging and maps outcomes to exit
//! codes: what each subcommand does lives in its own module.

mod config;
mod demo;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Hyperverse: an Erlang/OTP-style actor runtime.
///
/// Logging goes to stderr and follows `RUST_LOG` (default: warnings only,
/// with the runtime's per-crash warnings hidden because the demo reports
/// crashes itself; `RUST_LOG=warn` shows them).
#[derive(Debug, Parser)]
#[command(name = "hyperverse", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a tour of the runtime on an embedded Machine.
    ///
    /// Spawns a tree of ~1,000 particles across the Stars, sends waves from
    /// several senders while a few workers crash on purpose, hot-reloads
    /// WASM particles under load, runs a seeded fault storm on a Machine of
    /// its own, then reports what the particles, the Registry and the Stars
    /// saw. Exits with 1 if any invariant fails (a lost wave, a missing
    /// crash notice, ...).
    Demo(demo::DemoArgs),
    /// Check a daemon configuration file and print it as it will be
    /// used, every key with its value (defaults filled in); with no file,
    /// the embedded standalone default. A bad file names the key and why,
    /// and exits with 2. (The daemon itself, `hyperverse run`, is to come.)
    Config {
        /// The file (TOML; see examples/hyperverse.toml).
        file: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::Config { file } => {
            let checked = match &file {
                Some(f) => config::DaemonConfig::from_file(f),
                None => Ok(config::DaemonConfig::default()),
            };
            match checked {
                Ok(c) => {
                    print!("{}", c.to_toml());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hyperverse config: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo(args) => {
            // Cross-option checks clap cannot express; reported like any
            // other usage error (exit code 2, with the usage line).
            if let Err(msg) = args.validate() {
                usage_error("demo", msg);
            }
            // On a worker thread, not the `block_on` thread: there every
            // wake-up crosses threads, and a request costs microseconds.
            match tokio::spawn(demo::run(args)).await {
                Ok(Ok(true)) => ExitCode::SUCCESS,
                Ok(Ok(false)) => ExitCode::FAILURE,
                Ok(Err(e)) => {
                    eprintln!("hyperverse demo: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("hyperverse demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Exits with a usage error about subcommand `name`, formatted by clap like
/// its own errors (so with that subcommand's usage line).
fn usage_error(name: &str, msg: String) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let mut cmd = match cli.find_subcommand_mut(name) {
        Some(sub) => sub.clone(),
        None => cli,
    };
    cmd.error(clap::error::ErrorKind::ValueValidation, msg)
        .exit()
}
