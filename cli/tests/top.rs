//! `hyperverse top` in a real terminal: tmux runs the real binary against
//! a real daemon, the test types keys into it and reads the screen back,
//! as a person at the terminal would. What the view shows (a rate from a
//! stream of letters, a restart, the order after `s` and `r`, a filter, a
//! daemon going away and coming back) and that `q` ends it cleanly are
//! checked on the screen itself.
//!
//! tmux is needed: without it the test fails and says so (`.ci/run`
//! installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod support;
use support::{cli, BIN};

/// How long a screen may take to show what is awaited: generous, since
/// this only bounds a wait for something that is expected to happen (a
/// 1 s refresh, twice) on a loaded 2-core machine; it measures nothing.
const PATIENCE: Duration = Duration::from_secs(30);

/// Starts `hyperverse run` on `dir` and waits for its "ready" line.
fn start_daemon(dir: &Path) -> Child {
    support::run_daemon(dir)
}

fn ok(dir: &Path, args: &[&str]) {
    let o = cli(dir, args);
    assert!(
        o.status.success(),
        "hyperverse {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Everything the test started, ended whatever happens (a failed assert
/// included): the letter feeder, the tmux server with `top` in it, the
/// daemon, the directory.
struct Cleanup {
    dir: PathBuf,
    daemon: Option<Child>,
    tmux: Option<String>,
    /// The tmux server's socket file, which `kill-server` leaves behind.
    tmux_file: Option<PathBuf>,
    feeding: Arc<AtomicBool>,
    feeder: Option<JoinHandle<()>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.feeding.store(false, Ordering::SeqCst);
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        if let Some(socket) = self.tmux.take() {
            let _ = Command::new("tmux")
                .args(["-L", &socket, "kill-server"])
                .output();
        }
        if let Some(f) = self.tmux_file.take() {
            let _ = std::fs::remove_file(f);
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs tmux on the test's own server.
fn tmux(socket: &str, args: &[&str]) -> String {
    let o = Command::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn screen(socket: &str) -> String {
    tmux(socket, &["capture-pane", "-p", "-t", "top"])
}

/// Waits until the screen satisfies `ready`, and returns it; fails with
/// the last screen seen if it never does.
fn wait_screen(socket: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let s = screen(socket);
        if ready(&s) {
            return s;
        }
        if start.elapsed() > PATIENCE {
            panic!("the screen never showed {what}; last screen:\n{s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cells of the particle row whose Point is `point` (indented or not).
fn row<'a>(screen: &'a str, point: &str) -> Option<Vec<&'a str>> {
    rows(screen).into_iter().find(|cells| cells[0] == point)
}

/// The particle rows: below the two title lines and the header, up to the
/// first blank line.
fn rows(screen: &str) -> Vec<Vec<&str>> {
    screen
        .lines()
        .skip(3)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect()
}

fn points(screen: &str) -> Vec<&str> {
    rows(screen).into_iter().map(|cells| cells[0]).collect()
}

/// Columns of a row, as the header names them.
const RATE: usize = 3;
const RESTARTS: usize = 6;

fn rate(cells: &[&str]) -> f64 {
    cells[RATE].parse().unwrap_or(0.0)
}

#[test]
fn top_shows_live_particles_and_answers_its_keys_in_a_real_terminal() {
    let tmux_there = Command::new("tmux").arg("-V").output();
    assert!(
        tmux_there.is_ok_and(|o| o.status.success()),
        "tmux is missing: this test drives `hyperverse top` in a real terminal \
         through tmux; install it (`apt-get install tmux`, as .ci/run does)"
    );
    let dir = std::env::temp_dir().join(format!("hv-top-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut guard = Cleanup {
        dir: dir.clone(),
        daemon: None,
        tmux: None,
        tmux_file: None,
        feeding: Arc::new(AtomicBool::new(true)),
        feeder: None,
    };
    guard.daemon = Some(start_daemon(&dir));
    // Names chosen so that Point order and waves/s order differ.
    for (point, kind) in [
        ("alpha", "echo"),
        ("alpha:cache", "echo"),
        ("flaky", "counter"),
        ("web", "counter"),
    ] {
        ok(&dir, &["spawn", point, kind]);
    }
    ok(&dir, &["send", "flaky", "crash"]);
    // A stream of letters to `web` for as long as the test needs a rate.
    guard.feeder = Some(std::thread::spawn({
        let dir = dir.clone();
        let feeding = guard.feeding.clone();
        move || {
            while feeding.load(Ordering::SeqCst) {
                if !cli(&dir, &["send", "web", "add"]).status.success() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }));

    // `top` in a 120x30 terminal; the pane stays after `top` exits so
    // that its exit status can be read, and no status bar takes a row.
    let socket = format!(
        "hv-top-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let conf = dir.join("tmux.conf");
    std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n").unwrap();
    let after = dir.join("after-top");
    let dir_env = format!("HYPERVERSE_RUNTIME_DIR={}", dir.display());
    guard.tmux = Some(socket.clone());
    tmux(
        &socket,
        &[
            "-f",
            conf.to_str().unwrap(),
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "120",
            "-y",
            "30",
            "env",
            &dir_env,
            "sh",
            "-c",
            // After `top`: its exit status and the terminal's modes, to
            // check that it left the terminal as it found it.
            r#""$0" top; echo "exit $?" > "$1"; stty -a >> "$1""#,
            BIN,
            after.to_str().unwrap(),
        ],
    );

    let file = tmux(&socket, &["display-message", "-p", "#{socket_path}"]);
    guard.tmux_file = Some(PathBuf::from(file.trim()));

    // Every particle, the busy one with a rate, the crashed one with its
    // restart.
    let s = wait_screen(&socket, "a rate for web and flaky's restart", |s| {
        row(s, "web").is_some_and(|r| rate(&r) > 0.0)
            && row(s, "flaky").is_some_and(|r| r[RESTARTS] == "1" && r[2] == "Ready")
    });
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].starts_with("hyperverse top"), "{s}");
    assert!(lines[0].contains("4 particles"), "{s}");
    assert!(lines[0].contains("every 1s"), "{s}");
    assert!(
        lines[0].contains(&dir.join("control.sock").display().to_string()),
        "{s}"
    );
    assert!(lines[2].starts_with("POINT"), "{s}");
    assert_eq!(lines[1], "sort: point", "{s}");
    // Tree order, the child indented under its parent.
    assert_eq!(points(&s), ["alpha", "alpha:cache", "flaky", "web"], "{s}");
    assert!(lines.iter().any(|l| l.starts_with("  alpha:cache ")), "{s}");
    let web = row(&s, "web").unwrap();
    assert_eq!(web[1..3], ["counter", "Ready"], "{s}");
    let flaky = row(&s, "flaky").unwrap();
    assert_eq!(flaky[1..3], ["counter", "Ready"], "{s}");
    assert_eq!(row(&s, "alpha").unwrap()[RESTARTS], "0", "{s}");
    assert!(lines[29].contains("q quit"), "the footer: {s}");

    // `s`: by waves/s, the busy one first.
    tmux(&socket, &["send-keys", "-t", "top", "s"]);
    let s = wait_screen(&socket, "the waves/s sort", |s| {
        s.lines().nth(1) == Some("sort: waves/s")
    });
    assert_eq!(points(&s)[0], "web", "{s}");
    assert_eq!(points(&s).len(), 4, "{s}");
    // `r`: reversed, the busy one last.
    tmux(&socket, &["send-keys", "-t", "top", "r"]);
    let s = wait_screen(&socket, "the reversed sort", |s| {
        s.lines().nth(1) == Some("sort: waves/s (reversed)")
    });
    assert_eq!(points(&s).last(), Some(&"web"), "{s}");

    // `/`, text, Enter: only what matches.
    tmux(&socket, &["send-keys", "-t", "top", "/"]);
    wait_screen(&socket, "the filter prompt", |s| s.contains(" filter: _"));
    tmux(&socket, &["send-keys", "-t", "top", "-l", "--", "flak"]);
    wait_screen(&socket, "the typed filter", |s| {
        s.contains(" filter: flak_")
    });
    tmux(&socket, &["send-keys", "-t", "top", "Enter"]);
    let s = wait_screen(&socket, "the filter applied", |s| {
        s.contains("filter: flak  (1 of 4 shown)")
    });
    assert_eq!(points(&s), ["flaky"], "{s}");
    // Esc: all again.
    tmux(&socket, &["send-keys", "-t", "top", "Escape"]);
    let s = wait_screen(&socket, "the filter cleared", |s| points(s).len() == 4);
    assert!(!s.contains("filter:"), "{s}");

    // `-`: a faster refresh, named in the title.
    tmux(&socket, &["send-keys", "-t", "top", "-l", "--", "-"]);
    wait_screen(&socket, "the 500ms interval", |s| s.contains("every 500ms"));

    // The daemon goes: the view says so and keeps asking; a new one comes
    // up on the same directory: the view follows it.
    guard.feeding.store(false, Ordering::SeqCst);
    if let Some(f) = guard.feeder.take() {
        f.join().unwrap();
    }
    ok(&dir, &["stop"]);
    if let Some(mut d) = guard.daemon.take() {
        d.wait().unwrap();
    }
    wait_screen(&socket, "the lost daemon", |s| {
        s.contains("daemon unreachable: no daemon running")
    });
    guard.daemon = Some(start_daemon(&dir));
    ok(&dir, &["spawn", "reborn", "echo"]);
    let s = wait_screen(&socket, "the new daemon's particles", |s| {
        points(s) == ["reborn"]
    });
    assert!(!s.contains("unreachable"), "{s}");
    assert!(s.lines().next().unwrap().contains("  1 particle  "), "{s}");

    // `q`: `top` exits with 0 and gives the terminal back: main screen,
    // cooked mode (line editing and echo on again).
    tmux(&socket, &["send-keys", "-t", "top", "q"]);
    let start = Instant::now();
    loop {
        let dead = tmux(&socket, &["list-panes", "-t", "top", "-F", "#{pane_dead}"]);
        if dead.trim() == "1" {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "top did not exit after q; screen:\n{}",
            screen(&socket)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = std::fs::read_to_string(&after).unwrap();
    assert!(after.starts_with("exit 0\n"), "{after}");
    let modes: Vec<&str> = after.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig"] {
        assert!(modes.contains(&mode), "{mode} after top: {after}");
    }
    let s = screen(&socket);
    assert!(!s.contains("WAVES/S"), "the alternate screen was left: {s}");
}
