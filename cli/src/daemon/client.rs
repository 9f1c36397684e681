//! The client side of the control socket: one request, one answer.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

use super::protocol::{self, Answer, Request};

/// How long a client waits for the daemon's answer, beyond an ask's own
/// timeout.
const PATIENCE: Duration = Duration::from_secs(30);

/// Follows the daemon's events, calling `each` for every one, until the
/// daemon goes.
///
/// # Errors
///
/// As [`call`].
pub async fn follow(dir: &Path, mut each: impl FnMut(Answer)) -> Result<(), String> {
    let socket = super::paths::socket(dir);
    let mut stream = UnixStream::connect(&socket).await.map_err(|e| {
        format!(
            "no daemon running (cannot connect to {}: {e}); start one with `hyperverse run`",
            socket.display()
        )
    })?;
    protocol::write_request(&mut stream, &Request::Events)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match protocol::read::<Answer>(&mut stream).await {
            Ok(Some(a)) => each(a),
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("the daemon's answer: {e}")),
        }
    }
}

/// Sends `request` to the daemon whose directory is `dir`.
///
/// # Errors
///
/// Readable text: no daemon running there, a broken connection, no answer.
pub async fn call(dir: &Path, request: &Request) -> Result<Answer, String> {
    call_with_progress(dir, request, |_| {}).await
}

/// [`call`], for a request whose answer may be preceded by
/// [`Answer::Progress`] frames (a reload): each is handed to `progress`,
/// and the wait for the next frame starts again with it.
///
/// # Errors
///
/// As [`call`].
pub async fn call_with_progress(
    dir: &Path,
    request: &Request,
    mut progress: impl FnMut(Answer),
) -> Result<Answer, String> {
    let socket = super::paths::socket(dir);
    let mut stream = UnixStream::connect(&socket).await.map_err(|e| {
        format!(
            "no daemon running (cannot connect to {}: {e}); start one with `hyperverse run`",
            socket.display()
        )
    })?;
    protocol::write_request(&mut stream, request)
        .await
        .map_err(|e| format!("the daemon's socket: {e}"))?;
    // An ask waits for its own timeout first.
    let patience = match request {
        Request::Ask { timeout_ms, .. } => {
            PATIENCE.saturating_add(Duration::from_millis(*timeout_ms))
        }
        _ => PATIENCE,
    };
    loop {
        match tokio::time::timeout(patience, protocol::read::<Answer>(&mut stream)).await {
            Ok(Ok(Some(a @ Answer::Progress { .. }))) => progress(a),
            Ok(Ok(Some(a))) => return Ok(a),
            Ok(Ok(None)) => return Err("the daemon closed the connection".into()),
            Ok(Err(e)) => return Err(format!("the daemon's answer: {e}")),
            Err(_) => {
                return Err(format!(
                    "no answer from the daemon within {} s",
                    patience.as_secs()
                ))
            }
        }
    }
}
