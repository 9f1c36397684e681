//! What the CLI's integration tests share: the real binary, started as a
//! daemon and waited for, and run as a client.

#![allow(dead_code)] // each test file uses its own part of it

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The `hyperverse` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hyperverse");

/// Spawns `cmd` (a `hyperverse run …`, or a shell that execs one) with its
/// stdout piped, and waits for the daemon's "ready" line.
pub fn spawn_ready(cmd: &mut Command) -> Child {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.starts_with("hyperverse daemon ready") {
        let _ = child.kill();
        panic!("the daemon did not get ready: {line:?}");
    }
    child
}

/// `hyperverse run` on runtime directory `run`, ready.
pub fn run_daemon(run: &Path) -> Child {
    spawn_ready(
        Command::new(BIN)
            .arg("run")
            .env("HYPERVERSE_RUNTIME_DIR", run),
    )
}

/// One client command against the daemon of runtime directory `run`.
pub fn cli(run: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HYPERVERSE_RUNTIME_DIR", run)
        .output()
        .unwrap()
}

/// Its stdout, trimmed at the end.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

/// Its stderr, trimmed at the end.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim_end().to_string()
}
