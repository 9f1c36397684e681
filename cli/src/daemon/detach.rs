//! `hyperverse run --detach`: the daemon in the background, as a service
//! manager would start it, and the command returns once it is ready.
//!
//! The daemon is this same binary run again without `--detach`, in a
//! process group of its own (so the terminal's Ctrl-C does not reach it),
//! with no stdin, and its output appended to `daemon.log` in the runtime
//! directory. Readiness is its "ready" line in that log; if it exits
//! first (a daemon already runs, a bad address), the log's last lines say
//! why.

use std::io::{BufRead, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a detached start may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The daemon's log.
pub fn log(dir: &Path) -> PathBuf {
    dir.join("daemon.log")
}

/// Starts the daemon in the background; returns its ready line.
///
/// # Errors
///
/// Readable text: the directory or log cannot be made, the binary cannot
/// be started, or the daemon exited or did not get ready (with what its
/// log says).
pub fn start(config: Option<&Path>, dir: &Path) -> Result<String, String> {
    super::paths::make_private(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = log(dir);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    // Only what this start writes is read back.
    let from = log.seek(SeekFrom::End(0)).unwrap_or(0);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run");
    if let Some(c) = config {
        cmd.arg("--config")
            .arg(std::path::absolute(c).unwrap_or(c.to_path_buf()));
    }
    let err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = cmd
        .env(super::paths::DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let started = Instant::now();
    loop {
        let said = said_since(&log_path, from);
        if let Some(ready) = said
            .iter()
            .find(|l| l.starts_with("hyperverse daemon ready"))
        {
            return Ok(format!(
                "{ready} (pid {}, log {})",
                child.id(),
                log_path.display()
            ));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = said.iter().rev().take(5).rev().cloned().collect::<Vec<_>>();
            return Err(format!("the daemon exited ({status}): {}", tail.join("; ")));
        }
        if started.elapsed() > READY_WITHIN {
            return Err(format!(
                "the daemon (pid {}) did not say it was ready within {} s; see {}",
                child.id(),
                READY_WITHIN.as_secs(),
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log's lines from byte `from` on.
fn said_since(path: &Path, from: u64) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .collect()
}
