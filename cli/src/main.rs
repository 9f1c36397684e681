//! `hyperverse`: the command-line front door to the Hyperverse runtime.
//!
//! `demo` runs a self-contained tour of the runtime on an embedded Machine;
//! `run` runs a Machine as this user's daemon, and the client commands
//! (`spawn`, `tree`, `ask`, `module`, `fault`, `top`, ...) steer it over
//! its control socket; `config` checks a daemon configuration file. This
//! file only parses the command line, sets up logging and maps outcomes to
//! exit codes: what each subcommand does lives in its own module.

mod access_config;
mod args;
mod commands;
mod config;
mod daemon;
mod demo;
mod logging;
mod show;
mod top;

use std::process::ExitCode;

use args::{Cli, Command};
use clap::{CommandFactory, Parser};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::Run { config, detach } => {
            let checked = match &config {
                Some(f) => config::DaemonConfig::from_file(f),
                None => Ok(config::DaemonConfig::default()),
            };
            let c = match checked {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("hyperverse run: {e}");
                    return ExitCode::from(2);
                }
            };
            if detach {
                return match daemon::detach::start(config.as_deref(), &daemon::paths::dir()) {
                    Ok(line) => {
                        println!("{line}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("hyperverse run: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            match daemon::server::run(c, &daemon::paths::dir()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hyperverse run: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Spawn { .. }
        | Command::Send { .. }
        | Command::Ask { .. }
        | Command::Tree { .. }
        | Command::Stats { .. }
        | Command::Kill { .. }
        | Command::Module { .. }
        | Command::Fault { .. }
        | Command::Stop { .. }
        | Command::Grant { .. }
        | Command::Revoke { .. }
        | Command::Rules { .. } => commands::client(cli.command).await,
        Command::Top {
            point,
            interval_ms,
            once,
        } => {
            let under = match point
                .as_deref()
                .map_or(Ok(hyperverse::Point::root()), daemon::protocol::parse_point)
            {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("hyperverse top: {e}");
                    return ExitCode::from(2);
                }
            };
            let options = top::Options {
                interval: std::time::Duration::from_millis(interval_ms),
                once,
                under,
            };
            match top::run_with(&daemon::paths::dir(), options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hyperverse top: {e}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Events { json } => {
            use std::io::Write;
            let shown = daemon::client::follow(&daemon::paths::dir(), |a| {
                if matches!(a, daemon::protocol::Answer::Following) {
                    // On stderr: stdout carries events only.
                    eprintln!("hyperverse: following the daemon's events");
                    return;
                }
                if let daemon::protocol::Answer::Event {
                    what,
                    point,
                    detail,
                } = a
                {
                    let line = if json {
                        serde_json::json!({ "event": what, "point": point, "detail": detail })
                            .to_string()
                    } else {
                        format!("{what:<10} {point}  {detail}")
                    };
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            })
            .await;
            match shown {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hyperverse: {e}");
                    ExitCode::from(3)
                }
            }
        }
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
