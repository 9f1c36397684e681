//! The client commands: each becomes one request to the daemon, and its
//! answer is printed by `show` (text, or one JSON object with `--json`).
//!
//! Exit codes: 0 done, 1 the daemon refused (a bad Kind, a Point no one
//! holds, a timeout...), 2 bad input on the command line, 3 no daemon or
//! no answer.

use std::process::ExitCode;

use crate::args::{Command, FaultAction, ModuleAction};
use crate::daemon::protocol::parse_point;
use crate::daemon::protocol::{Answer, FaultSpec, Request};
use crate::daemon::{client, paths};
use crate::show;

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
