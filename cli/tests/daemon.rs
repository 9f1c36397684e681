//! The real `hyperverse` binary as a daemon: `run` in the background, the
//! client commands against it (text and `--json`), one daemon per user,
//! owner-only permissions, and hostile bytes at the control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hyperverse");

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hv-daemon-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Starts `hyperverse run` on `dir` and waits for its "ready" line.
fn start(dir: &Path) -> Child {
    let mut child = Command::new(BIN)
        .arg("run")
        .env("HYPERVERSE_RUNTIME_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("hyperverse daemon ready"), "{line}");
    child
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HYPERVERSE_RUNTIME_DIR", dir)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim_end().to_string()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn the_client_commands_steer_a_running_daemon() {
    let d = dir("steer");
    let mut daemon = start(&d);
    // Spawn, send, ask: text and JSON.
    assert_eq!(out(&cli(&d, &["spawn", "c", "counter"])), "ok");
    assert_eq!(out(&cli(&d, &["send", "c", "add"])), "ok");
    assert_eq!(
        out(&cli(&d, &["send", "c", "add", "--json"])),
        r#"{"ok":true}"#
    );
    assert_eq!(out(&cli(&d, &["ask", "c", "get"])), "2");
    assert_eq!(
        out(&cli(&d, &["ask", "c", "get", "--json"])),
        r#"{"ok":true,"reply":"2"}"#
    );
    assert_eq!(out(&cli(&d, &["spawn", "c:e", "echo"])), "ok");
    assert_eq!(out(&cli(&d, &["ask", "c:e", "ping", "hello"])), "hello");
    // The tree, aligned, and as JSON.
    let tree = out(&cli(&d, &["tree"]));
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert!(
        lines[0].starts_with("point") && lines[0].contains("restarts"),
        "{tree}"
    );
    assert!(
        lines[1].starts_with("c ") && lines[1].contains("counter"),
        "{tree}"
    );
    assert!(
        lines[2].starts_with("c:e") && lines[2].contains("echo"),
        "{tree}"
    );
    let json = out(&cli(&d, &["tree", "c:e", "--json"]));
    assert!(
        json.contains(r#""point":"c:e""#) && json.contains(r#""kind":"echo""#),
        "{json}"
    );
    assert!(!json.contains(r#""point":"c""#), "{json}");
    // Counters.
    let stats = out(&cli(&d, &["stats", "--json"]));
    assert!(stats.contains(r#""particles":2"#), "{stats}");
    // Errors: typed, with non-zero exits.
    let bad = cli(&d, &["ask", "nowhere", "get"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        err(&bad).contains("no particle at nowhere"),
        "{}",
        err(&bad)
    );
    let bad = cli(&d, &["spawn", "x", "no-such-kind"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err(&bad).contains("unknown kind"), "{}", err(&bad));
    let bad = cli(&d, &["spawn", "a::b", "echo"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(err(&bad).contains("bad point"), "{}", err(&bad));
    // Kill a subtree.
    assert_eq!(out(&cli(&d, &["kill", "c"])), "ok");
    assert_eq!(
        out(&cli(&d, &["tree", "--json"])),
        r#"{"ok":true,"tree":[]}"#
    );
    // Stop: the daemon exits, its socket goes, clients say so.
    assert_eq!(out(&cli(&d, &["stop"])), "ok");
    let status = wait_exit(&mut daemon, Duration::from_secs(10)).expect("the daemon did not stop");
    assert!(status.success());
    let gone = cli(&d, &["stats"]);
    assert_eq!(gone.status.code(), Some(3));
    assert!(err(&gone).contains("no daemon running"), "{}", err(&gone));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn one_daemon_per_user_and_owner_only_permissions() {
    let d = dir("one");
    let mut daemon = start(&d);
    let second = Command::new(BIN)
        .arg("run")
        .env("HYPERVERSE_RUNTIME_DIR", &d)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let why = err(&second);
    assert!(why.contains("a daemon is already running"), "{why}");
    assert!(why.contains("control.sock"), "{why}");
    // Only the owner may enter the directory or use the socket.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d), 0o700);
    assert_eq!(mode(&d.join("control.sock")), 0o600);
    assert_eq!(out(&cli(&d, &["stop"])), "ok");
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).is_some());
    // A daemon that died (SIGKILL) left its socket, and its lock went with
    // it: the next one takes over.
    let mut killed = start(&d);
    killed.kill().unwrap();
    let _ = killed.wait();
    assert!(d.join("control.sock").exists(), "a stale socket");
    let mut again = start(&d);
    let stats = out(&cli(&d, &["stats", "--json"]));
    assert!(stats.contains(r#""particles":0"#), "{stats}");
    assert_eq!(out(&cli(&d, &["stop"])), "ok");
    assert!(wait_exit(&mut again, Duration::from_secs(10)).is_some());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn garbage_huge_frames_and_silent_clients_do_not_stop_the_daemon() {
    let d = dir("hostile");
    let mut daemon = start(&d);
    let sock = d.join("control.sock");
    // A client that connects and never says anything, held open.
    let _silent = UnixStream::connect(&sock).unwrap();
    // Garbage: a frame that is no wave. The daemon answers why and closes.
    let mut g = UnixStream::connect(&sock).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    g.write_all(&5u32.to_le_bytes()).unwrap();
    g.write_all(b"hello").unwrap();
    let mut answer = Vec::new();
    let _ = g.read_to_end(&mut answer);
    assert!(answer.len() > 4, "an error answer, then the close");
    // A frame claiming 4 GiB: closed without reading it.
    let mut h = UnixStream::connect(&sock).unwrap();
    h.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    h.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = h.read_to_end(&mut rest);
    // Random bytes from many clients.
    let mut seed = 0x5eed_u64;
    for _ in 0..50 {
        let mut c = UnixStream::connect(&sock).unwrap();
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = c.write_all(&bytes);
    }
    // Meanwhile, honest clients are served.
    assert_eq!(out(&cli(&d, &["spawn", "e", "echo"])), "ok");
    assert_eq!(out(&cli(&d, &["ask", "e", "ping", "still"])), "still");
    assert_eq!(out(&cli(&d, &["stop"])), "ok");
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).is_some());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn events_follow_spawns_crashes_and_restarts_as_they_happen() {
    let d = dir("events");
    let mut daemon = start(&d);
    let follower = Command::new(BIN)
        .args(["events", "--json"])
        .env("HYPERVERSE_RUNTIME_DIR", &d)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = Command::new(BIN)
        .arg("events")
        .env("HYPERVERSE_RUNTIME_DIR", &d)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Both subscribed (nothing to read yet: they wait for events).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(out(&cli(&d, &["spawn", "c", "counter"])), "ok");
    let crash = cli(&d, &["ask", "c", "crash"]);
    assert_eq!(crash.status.code(), Some(1));
    assert!(err(&crash).contains("asked to crash"), "{}", err(&crash));
    // The Star restarted it: it answers again.
    assert_eq!(out(&cli(&d, &["ask", "c", "get"])), "0");
    assert_eq!(out(&cli(&d, &["stop"])), "ok");
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).is_some());
    // The daemon went: the followers end, having printed what happened.
    let json = follower.wait_with_output().unwrap();
    assert!(json.status.success());
    let json = out(&json);
    let lines: Vec<&str> = json.lines().collect();
    assert!(
        lines[0].contains(r#""event":"spawned""#) && lines[0].contains(r#""point":"c""#),
        "{json}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""event":"crashed""#) && l.contains("asked to crash")),
        "{json}"
    );
    assert!(
        lines.iter().any(|l| l.contains(r#""event":"restarted""#)),
        "{json}"
    );
    let plain = out(&text.wait_with_output().unwrap());
    assert!(
        plain
            .lines()
            .next()
            .unwrap()
            .starts_with("spawned    c  counter on star"),
        "{plain}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
