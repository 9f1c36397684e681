//! The real `hyperverse` binary as a daemon: `run` in the background, the
//! client commands against it (text and `--json`), one daemon per user,
//! owner-only permissions, and hostile bytes at the control socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{cli, err, out, BIN};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hv-daemon-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A daemon started by a test: killed when the test ends, however it
/// ends (a failed assertion must not leave a daemon behind).
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hyperverse run` on `dir` and waits for its "ready" line.
fn start(dir: &Path) -> Running {
    Running(support::run_daemon(dir))
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
    another_user_cannot_connect(&d);
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

/// Another user, for real where this test may become one (it runs as
/// root: CI and this sandbox do): the same client binary, run as `nobody`,
/// is refused by the directory's and socket's permissions. As any other
/// user, only the modes above can be checked.
fn another_user_cannot_connect(d: &Path) {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if euid != 0 {
        eprintln!("not root (uid {euid}): cannot become another user; modes checked only");
        return;
    }
    // A copy `nobody` may run (the build tree may not be open to it).
    let bin = std::env::temp_dir().join(format!("hv-other-user-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = bin.join("hyperverse");
    std::fs::copy(BIN, &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    const NOBODY: u32 = 65534;
    let o = Command::new(&exe)
        .args(["stats"])
        .env("HYPERVERSE_RUNTIME_DIR", d)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        err(&o).contains("Permission denied"),
        "another user must be refused: {}",
        err(&o)
    );
    // Even let through the directory (as if its mode were loosened), the
    // socket itself is the owner's only.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
    let o = Command::new(&exe)
        .args(["stats"])
        .env("HYPERVERSE_RUNTIME_DIR", d)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _ = std::fs::remove_dir_all(&bin);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("Permission denied"), "{}", err(&o));
    // And the owner still gets in.
    assert!(out(&cli(d, &["stats"])).starts_with("particles"));
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
    // A client of another protocol version: refused with why, before its
    // fields are read.
    let mut v = UnixStream::connect(&sock).unwrap();
    v.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    v.write_all(&frame("hv-control/0 tree", &Request::Stats))
        .unwrap();
    let mut answer = Vec::new();
    let _ = v.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("speaks `hv-control/0`, this one `hv-control/2`"),
        "{text}"
    );
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
    // A client that sends requests and never reads an answer: the daemon
    // blocks on that one connection only (and drops it after its idle
    // limit), never on the others.
    let hog = UnixStream::connect(&sock).unwrap();
    let hog_writer = std::thread::spawn(move || {
        let mut hog = hog;
        hog.set_write_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let frame = tree_request_frame();
        let mut sent = 0;
        while sent < 100_000 && hog.write_all(&frame).is_ok() {
            sent += 1;
        }
        (hog, sent)
    });
    // A follower of events that never reads, while events pour in.
    let mut deaf = UnixStream::connect(&sock).unwrap();
    deaf.write_all(&events_request_frame()).unwrap();
    for i in 0..200 {
        assert_eq!(
            out(&cli(&d, &["spawn", &format!("flood-{i}"), "echo"])),
            "ok"
        );
    }
    // Meanwhile, honest clients are served.
    assert_eq!(out(&cli(&d, &["spawn", "e", "echo"])), "ok");
    assert_eq!(out(&cli(&d, &["ask", "e", "ping", "still"])), "still");
    // The hog filled its socket and got stuck: the daemon wrote what it
    // could, then (after its idle limit) dropped it.
    let (_hog, sent) = hog_writer.join().unwrap();
    assert!(
        sent < 100_000,
        "the hog was never pushed back ({sent} frames)"
    );
    // It was a client the daemon answered (so it stalled on answers it did
    // not read), not one it closed at its first frame.
    assert!(sent > 100, "the hog was refused at once ({sent} frames)");
    let stats = out(&cli(&d, &["stats", "--json"]));
    assert!(stats.contains(r#""particles":201"#), "{stats}");
    drop(deaf);
    assert_eq!(out(&cli(&d, &["stop"])), "ok");
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).is_some());
    let _ = std::fs::remove_dir_all(&d);
}

/// The first variants of the daemon's `Request`, mirrored here (bincode
/// encodes a variant by its index, so order is all that must match): the
/// test speaks the protocol without sharing the code it tests, as a
/// foreign client would.
#[derive(serde::Serialize)]
#[allow(dead_code)]
enum Request {
    Spawn {
        point: hyperverse::Point,
        kind: String,
        args: Vec<u8>,
    },
    Send {
        point: hyperverse::Point,
        method: String,
        body: Vec<u8>,
    },
    Ask {
        point: hyperverse::Point,
        method: String,
        body: Vec<u8>,
        timeout_ms: u64,
    },
    Tree {
        under: hyperverse::Point,
    },
    Stats,
    Kill {
        point: hyperverse::Point,
    },
    Events,
}

/// One request frame: the wave's bytes behind a u32 LE length.
fn frame(method: &str, r: &Request) -> Vec<u8> {
    let body = hyperverse::Body::encode(r).unwrap();
    let wave = hyperverse::Wave::request(
        "cli".parse().unwrap(),
        "daemon".parse().unwrap(),
        method.to_string(),
        body,
    );
    // The method carries the protocol's version: `hv-control/2 tree`.
    let bytes = wave.to_bytes().unwrap();
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

/// A well-formed `tree` request: the hog above is a client the daemon
/// answers, not one it closes.
fn tree_request_frame() -> Vec<u8> {
    frame(
        "hv-control/2 tree",
        &Request::Tree {
            under: hyperverse::Point::root(),
        },
    )
}

/// A well-formed `events` request.
fn events_request_frame() -> Vec<u8> {
    frame("hv-control/2 events", &Request::Events)
}

const COUNTER_V1: &str = include_str!("../../modules/wat/counter_v1.wat");
const COUNTER_V2: &str = include_str!("../../modules/wat/counter_v2.wat");
const RESTORE_TRAPS: &str = include_str!("../../modules/wat/restore_traps.wat");

/// A config with a module folder (relative, so relative to the file).
fn config(d: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(d.join("mods")).unwrap();
    let file = d.join("hv.toml");
    std::fs::write(
        &file,
        format!("stars = 2\n[modules]\npath = [\"mods\"]\n{extra}"),
    )
    .unwrap();
    file
}

/// `run --detach`: returns once the daemon is ready.
fn start_detached(d: &Path, config: &Path) {
    let o = Command::new(BIN)
        .args(["run", "--detach", "--config"])
        .arg(config)
        .env("HYPERVERSE_RUNTIME_DIR", d.join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).starts_with("hyperverse daemon ready") && out(&o).contains("pid"),
        "{}",
        out(&o)
    );
}

/// A u64 reply as the CLI shows binary: 8 bytes LE in hex.
fn hex_u64(n: u64) -> String {
    format!(
        "0x{}",
        n.to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Stops the detached daemon however a test ends.
struct StopOnDrop(PathBuf);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = cli(&self.0.join("run"), &["stop"]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn modules_load_from_files_reload_live_with_each_outcome_and_faults_are_injected() {
    let d = dir("modules");
    let conf = config(&d, "");
    let _stop = StopOnDrop(d.clone());
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V1).unwrap();
    start_detached(&d, &conf);
    let r = d.join("run");
    let c = |args: &[&str]| cli(&r, args);

    // Found on disk, not loaded until used.
    let list = out(&c(&["module", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("name") && lines[0].contains("version"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("counter") && lines[1].contains("(not loaded)"),
        "{list}"
    );
    // The first spawn of `wasm:counter` loads it.
    assert_eq!(out(&c(&["spawn", "c1", "wasm:counter"])), "ok");
    assert_eq!(out(&c(&["spawn", "c2", "wasm:counter"])), "ok");
    assert_eq!(out(&c(&["send", "c1", "add"])), "ok");
    assert_eq!(out(&c(&["ask", "c1", "get"])), hex_u64(1));
    assert_eq!(
        out(&c(&["ask", "c1", "get", "--json"])),
        format!(r#"{{"ok":true,"reply_hex":"{}"}}"#, &hex_u64(1)[2..])
    );
    let json = out(&c(&["module", "list", "--json"]));
    assert!(
        json.contains(r#""name":"counter""#) && json.contains(r#""version":1"#),
        "{json}"
    );
    assert!(json.contains(r#""live":2"#), "{json}");
    let tree = out(&c(&["tree", "c1"]));
    assert!(
        tree.lines().nth(1).unwrap().contains("wasm:counter"),
        "{tree}"
    );
    assert!(
        tree.lines().nth(1).unwrap().trim_end().ends_with('1'),
        "version 1: {tree}"
    );

    // `module load FILE`: a file outside the path, its label from its name.
    std::fs::create_dir_all(d.join("extra")).unwrap();
    std::fs::write(d.join("extra/kv@3.wat"), COUNTER_V1).unwrap();
    let loaded = out(&c(&[
        "module",
        "load",
        d.join("extra/kv@3.wat").to_str().unwrap(),
    ]));
    assert!(
        loaded.starts_with("loaded kv@1 (") && loaded.ends_with("kv@3.wat"),
        "{loaded}"
    );
    assert_eq!(out(&c(&["spawn", "k", "wasm:kv"])), "ok");
    let json = out(&c(&["module", "list", "--json"]));
    assert!(json.contains(r#""label":"3""#), "{json}");

    // `module reload`: the file changed; each particle's outcome printed.
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V2).unwrap();
    let reload = c(&["module", "reload", "counter"]);
    assert!(reload.status.success(), "{}", err(&reload));
    let text = out(&reload);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("c1") && lines[0].ends_with("reloaded"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("c2") && lines[1].ends_with("reloaded"),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "counter 1 -> 2: 2 reloaded, 0 current, 0 failed, 0 gone"
    );
    // State kept: v2 answers `add` with the count.
    assert_eq!(out(&c(&["ask", "c1", "add"])), hex_u64(2));
    // Again: nothing changed, every particle current.
    let again = out(&c(&["module", "reload", "counter", "--json"]));
    assert!(
        again.contains(r#""outcome":"current","point":"c1""#),
        "{again}"
    );
    assert!(again.contains(r#""rolled_back":false"#), "{again}");
    // A version whose `restore` traps: each particle stays, says why, and
    // the version rolls back; the command exits 1.
    std::fs::write(d.join("mods/counter.wat"), RESTORE_TRAPS).unwrap();
    let failed = c(&["module", "reload", "counter"]);
    assert_eq!(failed.status.code(), Some(1));
    let text = out(&failed);
    let c1 = text
        .lines()
        .find(|l| l.starts_with("c1 "))
        .unwrap_or_default();
    assert!(
        c1.contains(" failed ") && c1.contains("`restore` trapped"),
        "{text}"
    );
    assert!(
        text.contains("counter 2 -> 3: 0 reloaded, 0 current, 2 failed"),
        "{text}"
    );
    assert!(text.contains("rolled back to 2"), "{text}");
    assert_eq!(
        out(&c(&["ask", "c1", "get"])),
        hex_u64(2),
        "still serving v2"
    );

    // Module errors: typed, exit 1.
    let bad = c(&["module", "reload", "nothing"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        err(&bad).contains("no file of it is in the search path"),
        "{}",
        err(&bad)
    );
    let bad = c(&["module", "load", "/nonexistent/x.wasm"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err(&bad).contains("/nonexistent/x.wasm"), "{}", err(&bad));
    std::fs::write(d.join("extra/junk.wasm"), b"not wasm at all").unwrap();
    let bad = c(&[
        "module",
        "load",
        d.join("extra/junk.wasm").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let bad = c(&["spawn", "z", "wasm:nothing"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err(&bad).contains("unknown kind"), "{}", err(&bad));

    // Faults. A crash: restarted, its count starts again.
    assert_eq!(out(&c(&["fault", "crash", "c1"])), "ok");
    let mut restarted = false;
    for _ in 0..100 {
        let t = out(&c(&["tree", "c1", "--json"]));
        if t.contains(r#""restarts":1"#) && t.contains(r#""status":"Ready""#) {
            restarted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(restarted, "{}", out(&c(&["tree", "c1"])));
    // Drops: an ask times out (exit 1); healed, it answers.
    assert_eq!(out(&c(&["fault", "drop", "c2"])), "ok");
    let lost = c(&["ask", "c2", "get", "--timeout-ms", "200"]);
    assert_eq!(lost.status.code(), Some(1));
    assert!(err(&lost).contains("timed out"), "{}", err(&lost));
    assert_eq!(
        out(&c(&["fault", "heal", "c2", "--json"])),
        r#"{"ok":true}"#
    );
    assert_eq!(out(&c(&["ask", "c2", "get"])), hex_u64(0));
    // A pause holds waves; resume lets them through, in order.
    assert_eq!(out(&c(&["fault", "pause", "c2"])), "ok");
    assert_eq!(out(&c(&["send", "c2", "add"])), "ok");
    let held = c(&["ask", "c2", "get", "--timeout-ms", "200"]);
    assert_eq!(held.status.code(), Some(1));
    assert_eq!(out(&c(&["fault", "resume", "c2"])), "ok");
    assert_eq!(out(&c(&["ask", "c2", "get"])), hex_u64(1));
    // A Star killed: its particles crash and come back.
    let killed = out(&c(&["fault", "kill-star", "1"]));
    assert!(killed.starts_with("star 1 killed:"), "{killed}");
    // Bad fault parameters: refused with why.
    let bad = c(&["fault", "drop", "c2", "--probability", "2"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err(&bad).contains("probability"), "{}", err(&bad));
    let bad = c(&["fault", "crash", "nobody"]);
    assert_eq!(bad.status.code(), Some(1));
    let bad = c(&["fault", "kill-star", "9"]);
    assert_eq!(bad.status.code(), Some(1));

    // A second detached start refuses, saying where the first one is.
    let second = Command::new(BIN)
        .args(["run", "--detach", "--config"])
        .arg(&conf)
        .env("HYPERVERSE_RUNTIME_DIR", &r)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        err(&second).contains("a daemon is already running"),
        "{}",
        err(&second)
    );
    assert_eq!(out(&c(&["stop"])), "ok");
}

#[test]
fn a_watched_module_reloads_when_its_file_changes() {
    let d = dir("watch");
    let conf = config(&d, "watch = true\n");
    let _stop = StopOnDrop(d.clone());
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V1).unwrap();
    start_detached(&d, &conf);
    let r = d.join("run");
    assert_eq!(out(&cli(&r, &["spawn", "w", "wasm:counter"])), "ok");
    assert_eq!(out(&cli(&r, &["send", "w", "add"])), "ok");
    let version = || {
        let t = out(&cli(&r, &["tree", "w", "--json"]));
        t.contains(r#""version":2"#)
    };
    assert!(!version());
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V2).unwrap();
    let started = Instant::now();
    while !version() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not reloaded: {}",
            out(&cli(&r, &["tree"]))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Reloaded with its state: v2's `add` answers the count.
    assert_eq!(out(&cli(&r, &["ask", "w", "add"])), hex_u64(2));
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
    // Module loads and reloads, and faults, are followed too.
    let m = d.with_extension("mods");
    std::fs::create_dir_all(&m).unwrap();
    let file = m.join("tally.wat");
    std::fs::write(&file, COUNTER_V1).unwrap();
    let loaded = out(&cli(&d, &["module", "load", file.to_str().unwrap()]));
    assert!(loaded.starts_with("loaded tally@1"), "{loaded}");
    assert_eq!(out(&cli(&d, &["spawn", "t", "wasm:tally"])), "ok");
    std::fs::write(&file, COUNTER_V2).unwrap();
    assert!(cli(&d, &["module", "reload", "tally"]).status.success());
    assert_eq!(out(&cli(&d, &["fault", "pause", "t"])), "ok");
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
    for (event, says) in [
        ("loaded", "tally@1"),
        ("reloaded", "1 -> 2: 1 reloaded"),
        ("fault", "Pause"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!(r#""event":"{event}""#)) && l.contains(says)),
            "{event}: {json}"
        );
    }
    let _ = std::fs::remove_dir_all(&m);
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

/// A port free now (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn clustered_daemons_show_every_machine_in_the_tree_and_route_between_them() {
    let root = dir("cluster");
    let (pa, pb) = (free_port(), free_port());
    let conf = |name: &str, port: u16, seeds: &str| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("hv.toml");
        std::fs::write(
            &file,
            format!(
                "stars = 2\n[cluster]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
                 secret = \"test secret\"\nseeds = [{seeds}]\nlost_after_ms = 2000\n"
            ),
        )
        .unwrap();
        (d.join("run"), file)
    };
    let (ra, fa) = conf("alpha", pa, "");
    let (rb, fb) = conf("beta", pb, &format!("\"127.0.0.1:{pa}\""));
    let start_with = |run: &Path, file: &Path| {
        Running(support::spawn_ready(
            Command::new(BIN)
                .args(["run", "--config"])
                .arg(file)
                .env("HYPERVERSE_RUNTIME_DIR", run),
        ))
    };
    let _a = start_with(&ra, &fa);
    let _b = start_with(&rb, &fb);
    assert_eq!(out(&cli(&ra, &["spawn", "a1", "counter"])), "ok");
    assert_eq!(out(&cli(&rb, &["spawn", "b1", "counter"])), "ok");
    assert_eq!(out(&cli(&rb, &["send", "b1", "add"])), "ok");
    // Each daemon's tree shows both Machines' particles once the
    // Registries have met.
    let started = Instant::now();
    loop {
        let t = out(&cli(&ra, &["tree", "--json"]));
        if t.contains(r#""machine":"beta","point":"b1""#) {
            assert!(t.contains(r#""machine":"alpha","point":"a1""#), "{t}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{t}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let tree = out(&cli(&rb, &["tree"]));
    let a1 = tree
        .lines()
        .find(|l| l.starts_with("a1 "))
        .unwrap_or_default();
    assert!(a1.contains("alpha") && a1.contains("Remote"), "{tree}");
    // A client of alpha signals and asks beta's particle: routed across.
    assert_eq!(out(&cli(&ra, &["send", "b1", "add"])), "ok");
    assert_eq!(out(&cli(&ra, &["ask", "b1", "get"])), "2");
    // A Point beta holds cannot be spawned on alpha.
    let twin = cli(&ra, &["spawn", "b1", "echo"]);
    assert_eq!(twin.status.code(), Some(1), "{}", out(&twin));
    let stats = out(&cli(&ra, &["stats", "--json"]));
    assert!(stats.contains(r#""cluster.peers":1"#), "{stats}");
    assert_eq!(out(&cli(&rb, &["stop"])), "ok");
    assert_eq!(out(&cli(&ra, &["stop"])), "ok");
    let _ = std::fs::remove_dir_all(&root);
}
