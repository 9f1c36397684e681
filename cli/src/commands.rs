//! The client commands: each becomes one request to the daemon, and its
//! answer is printed by `show` (text, or one JSON object with `--json`).
//!
//! Exit codes: 0 done, 1 the daemon refused (a bad Kind, a Point no one
//! holds, a timeout...), 2 bad input on the command line, 3 no daemon or
//! no answer.

use std::process::ExitCode;

use clap::Subcommand;

use crate::daemon::protocol::{Answer, FaultSpec, Request};
use crate::daemon::server::parse_point;
use crate::daemon::{client, paths};
use crate::show;
use crate::Command;

/// `hyperverse module …`.
#[derive(Debug, Subcommand)]
pub enum ModuleAction {
    /// The modules loaded, and those the module path offers.
    List,
    /// Load a module file (NAME.wasm, NAME.wat or NAME@VERSION.wasm): it
    /// becomes the version new particles of `wasm:NAME` start on.
    Load { file: std::path::PathBuf },
    /// Read module NAME's file again and move its live particles to it,
    /// each keeping its state; prints each particle's outcome.
    Reload { name: String },
}

/// `hyperverse fault …`: Machine::inject and Machine::kill_star.
#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Crash a particle as if its handler failed (its Star restarts it).
    Crash {
        point: String,
        #[arg(default_value = "injected from the CLI")]
        reason: String,
    },
    /// Hold a particle's letters until `resume` (they queue meanwhile).
    Pause { point: String },
    /// Take letters again after `pause`.
    Resume { point: String },
    /// Hold each wave, with a probability, for min..=max milliseconds.
    Delay {
        point: String,
        #[arg(long, default_value_t = 10)]
        min_ms: u64,
        #[arg(long, default_value_t = 100)]
        max_ms: u64,
        #[arg(long, default_value_t = 1.0)]
        probability: f64,
    },
    /// Discard each wave with a probability (a dropped ask times out).
    Drop {
        point: String,
        #[arg(long, default_value_t = 1.0)]
        probability: f64,
    },
    /// Make the particle's next start fail (then crash it to see it).
    FailStart {
        point: String,
        #[arg(default_value = "injected start failure")]
        reason: String,
    },
    /// Remove delays, drops and a pause.
    Heal { point: String },
    /// Kill a Star: its particles crash with it, and it restarts.
    KillStar { star: usize },
}

impl FaultAction {
    fn spec(self) -> Result<FaultSpec, String> {
        Ok(match self {
            FaultAction::Crash { point, reason } => FaultSpec::Crash {
                point: parse_point(&point)?,
                reason,
            },
            FaultAction::Pause { point } => FaultSpec::Pause {
                point: parse_point(&point)?,
            },
            FaultAction::Resume { point } => FaultSpec::Resume {
                point: parse_point(&point)?,
            },
            FaultAction::Delay {
                point,
                min_ms,
                max_ms,
                probability,
            } => FaultSpec::Delay {
                point: parse_point(&point)?,
                min_ms,
                max_ms,
                probability,
            },
            FaultAction::Drop { point, probability } => FaultSpec::Drop {
                point: parse_point(&point)?,
                probability,
            },
            FaultAction::FailStart { point, reason } => FaultSpec::FailStart {
                point: parse_point(&point)?,
                reason,
            },
            FaultAction::Heal { point } => FaultSpec::Heal {
                point: parse_point(&point)?,
            },
            FaultAction::KillStar { star } => FaultSpec::KillStar { star },
        })
    }
}

/// The request a client command makes, and whether it wants JSON.
fn request(command: Command) -> (Result<Request, String>, bool) {
    match command {
        Command::Spawn {
            point,
            kind,
            args,
            json,
        } => (
            parse_point(&point).map(|point| Request::Spawn {
                point,
                kind,
                args: args.into_bytes(),
            }),
            json,
        ),
        Command::Send {
            point,
            method,
            body,
            json,
        } => (
            parse_point(&point).map(|point| Request::Send {
                point,
                method,
                body: body.into_bytes(),
            }),
            json,
        ),
        Command::Ask {
            point,
            method,
            body,
            timeout_ms,
            json,
        } => (
            parse_point(&point).map(|point| Request::Ask {
                point,
                method,
                body: body.into_bytes(),
                timeout_ms,
            }),
            json,
        ),
        Command::Tree { point, json } => (
            point
                .as_deref()
                .map_or(Ok(hyperverse::Point::root()), parse_point)
                .map(|under| Request::Tree { under }),
            json,
        ),
        Command::Stats { json } => (Ok(Request::Stats), json),
        Command::Kill { point, json } => (
            parse_point(&point).map(|point| Request::Kill { point }),
            json,
        ),
        Command::Module { action, json } => (
            Ok(match action {
                ModuleAction::List => Request::ModuleList,
                // The daemon reads the file: give it a path that does not
                // depend on the client's working directory.
                ModuleAction::Load { file } => Request::ModuleLoad {
                    path: std::path::absolute(&file).unwrap_or(file),
                },
                ModuleAction::Reload { name } => Request::ModuleReload { name },
            }),
            json,
        ),
        Command::Fault { action, json } => (action.spec().map(Request::Fault), json),
        Command::Stop { json } => (Ok(Request::Stop), json),
        Command::Run { .. }
        | Command::Config { .. }
        | Command::Demo(_)
        | Command::Events { .. }
        | Command::Top { .. } => (Err("not a client command".into()), false),
    }
}

/// Runs one client command: the request, its answer printed.
pub async fn client(command: Command) -> ExitCode {
    let (request, json) = request(command);
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyperverse: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bar = show::Progress::new(json);
    let answer = client::call_with_progress(&paths::dir(), &request, |a| {
        if let Answer::Progress { done, total } = a {
            bar.update(done, total);
        }
    })
    .await;
    bar.finish();
    match answer {
        Ok(a) => show::answer(a, json),
        Err(e) => {
            eprintln!("hyperverse: {e}");
            ExitCode::from(3)
        }
    }
}
