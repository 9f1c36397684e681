//! The client commands: each becomes one request to the daemon, and its
//! answer is printed by `show` (text, or one JSON object with `--json`).
//!
//! Exit codes: 0 done, 1 the daemon refused (a bad Kind, a Point no one
//! holds, a timeout...), 2 bad input on the command line, 3 no daemon or
//! no answer, 4 access denied (the rules refused this user, or the daemon
//! does not know it).

use std::process::ExitCode;

use hyperverse::access::{Grant, RuleError};

use crate::args::{Command, FaultAction, ModuleAction};
use crate::daemon::protocol::parse_point;
use crate::daemon::protocol::MAX_GRANT;
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

/// A grant on the command line that is not one: the text, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadGrant {
    /// It does not parse.
    #[error("bad grant `{text}`: {error}")]
    Parse {
        /// The text as given (words joined by spaces).
        text: String,
        /// What is wrong with it.
        error: RuleError,
    },
    /// It names a user or group no config can name.
    #[error("bad grant `{text}`: {why}")]
    Name {
        /// The text as given.
        text: String,
        /// What is wrong with the name.
        why: String,
    },
    /// Longer than any grant.
    #[error("a grant of {len} bytes: the most is {MAX_GRANT}")]
    TooLong {
        /// Its length.
        len: usize,
    },
}

/// The words of `hyperverse grant|revoke` as one grant, checked before
/// anything is sent; sent in its canonical form.
///
/// # Errors
///
/// [`BadGrant`] with the text and why.
pub fn parse_grant(words: &[String]) -> Result<String, BadGrant> {
    let text = words.join(" ");
    if text.len() > MAX_GRANT {
        return Err(BadGrant::TooLong { len: text.len() });
    }
    let grant = match text.parse::<Grant>() {
        Ok(g) => g,
        Err(error) => return Err(BadGrant::Parse { text, error }),
    };
    match crate::access_config::check_grant_names(&grant) {
        Ok(()) => Ok(grant.to_string()),
        Err(why) => Err(BadGrant::Name { text, why }),
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
        Command::Grant { grant, json } => (
            parse_grant(&grant)
                .map(|grant| Request::Grant { grant })
                .map_err(|e| e.to_string()),
            json,
        ),
        Command::Revoke { grant, json } => (
            parse_grant(&grant)
                .map(|grant| Request::Revoke { grant })
                .map_err(|e| e.to_string()),
            json,
        ),
        Command::Rules { json } => (Ok(Request::Rules), json),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_grant_is_parsed_before_it_is_sent() {
        assert_eq!(
            parse_grant(&words("ask,send on app:** to user=alice")),
            Ok("send,ask on app:** to user=alice".to_string())
        );
        // One quoted word, as well as several.
        assert!(parse_grant(&["spawn on ROOT to *".to_string()]).is_ok());
        let e = parse_grant(&words("fly on app to user=alice")).unwrap_err();
        assert!(
            matches!(&e, BadGrant::Parse { text, error: RuleError::Privilege { .. } } if text == "fly on app to user=alice"),
            "{e}"
        );
        assert!(e.to_string().contains("`fly`"), "{e}");
        let e = parse_grant(&words("send on a::b to *")).unwrap_err();
        assert!(e.to_string().contains("a::b"), "{e}");
        assert!(matches!(
            parse_grant(&words("send on app")),
            Err(BadGrant::Parse {
                error: RuleError::Grant { .. },
                ..
            })
        ));
        assert!(matches!(
            parse_grant(&words("send on app to user=a\u{202e}")),
            Err(BadGrant::Name { .. })
        ));
        assert!(matches!(
            parse_grant(&["x".repeat(MAX_GRANT + 1)]),
            Err(BadGrant::TooLong { .. })
        ));
    }
}
