//! `hyperverse`: the command-line front door to the Hyperverse runtime.
//!
//! `demo` runs a self-contained tour of the runtime on an embedded Machine;
//! `run` runs a Machine as this user's daemon, and the client commands
//! (`spawn`, `tree`, `ask`, `module`, `fault`, `top`, ...) steer it over
//! its control socket; `config` checks a daemon configuration file. This
//! file only parses the command line, sets up logging and maps outcomes to
//! exit codes: what each subcommand does lives in its own module.

mod commands;
mod config;
mod daemon;
mod demo;
mod logging;
mod show;
mod top;

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
pub(crate) enum Command {
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
    /// and exits with 2.
    Config {
        /// The file (TOML; see examples/hyperverse.toml).
        file: Option<std::path::PathBuf>,
    },
    /// Run a Machine as this user's daemon, steered by the commands below
    /// over a control socket in the user's runtime directory
    /// ($HYPERVERSE_RUNTIME_DIR, $XDG_RUNTIME_DIR/hyperverse or
    /// ~/.hyperverse/run). At most one per user per host.
    Run {
        /// A configuration file (default: the embedded standalone one).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Start in the background: returns once the daemon is ready,
        /// its output going to daemon.log in the runtime directory.
        #[arg(long)]
        detach: bool,
    },
    /// Spawn a particle on the daemon (built-in kinds: echo, counter;
    /// `wasm:NAME` for module NAME, loaded from the module path on first
    /// use).
    Spawn {
        point: String,
        kind: String,
        #[arg(long, default_value = "")]
        args: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a particle.
    Send {
        point: String,
        method: String,
        #[arg(default_value = "")]
        body: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask a particle and print its reply.
    Ask {
        point: String,
        method: String,
        #[arg(default_value = "")]
        body: String,
        /// How long to wait, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// List the particles at or under a Point (default: all).
    Tree {
        point: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the daemon's counters.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Stop a particle and its subtree.
    Kill {
        point: String,
        #[arg(long)]
        json: bool,
    },
    /// Follow what the daemon's runtime does (spawns, crashes, restarts,
    /// stops), a line each, until the daemon stops or you press Ctrl-C.
    Events {
        #[arg(long)]
        json: bool,
    },
    /// WASM modules: list, load a file, reload live particles.
    Module {
        #[command(subcommand)]
        action: commands::ModuleAction,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Inject a fault (the fault-injection API) into a particle or a Star.
    Fault {
        #[command(subcommand)]
        action: commands::FaultAction,
        #[arg(long, global = true)]
        json: bool,
    },
    /// A live view of the daemon's particles (ratatui): waves/s, lane
    /// depth, restarts, status, Star and Machine, refreshed in place.
    Top {
        /// How often to ask the daemon, in milliseconds (rounded to a step
        /// of 250ms, 500ms, 1s, 2s, 5s, 10s, 30s; `+`/`-` change it live).
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Print one frame as plain text and exit (two samples an interval
        /// apart, for the rates), for scripts and logs.
        #[arg(long)]
        once: bool,
    },
    /// Stop the daemon.
    Stop {
        #[arg(long)]
        json: bool,
    },
}

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
        | Command::Stop { .. } => commands::client(cli.command).await,
        Command::Top { interval_ms, once } => match top::run_with(
            &daemon::paths::dir(),
            top::Options {
                interval: std::time::Duration::from_millis(interval_ms),
                once,
            },
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hyperverse top: {e}");
                ExitCode::from(3)
            }
        },
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
