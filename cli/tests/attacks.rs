//! Attacks on the real `hyperverse` daemon: hostile values in well-formed
//! requests, clients that leave at the worst moment, file-descriptor
//! exhaustion, module files that are not what they say, answers larger
//! than the protocol allows, and requests that would make the daemon keep
//! what a client gave it. Each test ends by checking that an honest client
//! is still served.
//!
//! The wire types are mirrored here (bincode encodes a variant by its
//! index, so only the order must match `cli/src/daemon/protocol.rs`): the
//! tests speak the protocol as a foreign client would, Points as plain
//! strings so that bad ones can be smuggled in.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod support;
use support::BIN;
/// The protocol's frame limit (`protocol::MAX_FRAME`).
const MAX_FRAME: usize = 1 << 20;
/// How long anything may take before a test calls it a hang.
const HANG: Duration = Duration::from_secs(60);

const COUNTER_V1: &str = include_str!("../../modules/wat/counter_v1.wat");
const COUNTER_V2: &str = include_str!("../../modules/wat/counter_v2.wat");

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hv-attack-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A daemon started by a test: killed when the test ends, however it ends.
struct Running {
    child: Child,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Running {
    /// The runtime directory (the socket's).
    fn run(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HYPERVERSE_RUNTIME_DIR", self.run())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        out(&o)
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.run().join("control.sock")).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        s.set_write_timeout(Some(HANG)).unwrap();
        s
    }

    /// One request on a fresh connection, its answer.
    fn call(&self, method: &str, r: &Request) -> Answer {
        let mut s = self.connect();
        s.write_all(&frame(method, r)).unwrap();
        read_answer(&mut s).expect("an answer")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// File descriptors the daemon holds.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// CPU time used so far, in clock ticks (user + system).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat; `after` starts at field 3.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// A line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in kB.
    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in {status}"))
    }
    /// An honest client is served.
    fn still_serves(&self) {
        let p = format!("honest-{}", rand_tag());
        assert_eq!(self.ok(&["spawn", &p, "echo"]), "ok");
        assert_eq!(self.ok(&["ask", &p, "ping", "still here"]), "still here");
        assert_eq!(self.ok(&["kill", &p]), "ok");
    }
}

fn rand_tag() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Starts `hyperverse run` in `d/run`, with `config` (a file's text) if
/// given, under the shell limits `ulimit` (e.g. `-n 64`) if given, and
/// waits for its "ready" line.
fn start(d: &Path, config: Option<&str>, ulimit: Option<&str>) -> Running {
    let mut script = String::new();
    if let Some(u) = ulimit {
        script.push_str(&format!("ulimit {u} || exit 99; "));
    }
    script.push_str("exec \"$0\" run");
    if let Some(c) = config {
        let file = d.join("hv.toml");
        std::fs::write(&file, c).unwrap();
        script.push_str(&format!(" --config '{}'", file.display()));
    }
    let child = support::spawn_ready(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(BIN)
            .current_dir(d)
            .env("HYPERVERSE_RUNTIME_DIR", d.join("run"))
            // One malloc arena: a thread's first allocation under
            // contention would otherwise map a 64 MiB arena of its own,
            // which the address-space checks below would count.
            .env("MALLOC_ARENA_MAX", "1"),
    );
    Running {
        child,
        dir: d.to_path_buf(),
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim_end().to_string()
}

/// Polls `done` until it holds; a hang detector, not a deadline.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon's `Request`, mirrored (Points as strings).
#[derive(Serialize)]
#[allow(dead_code)]
enum Request {
    Spawn {
        point: String,
        kind: String,
        args: Vec<u8>,
    },
    Send {
        point: String,
        method: String,
        body: Vec<u8>,
    },
    Ask {
        point: String,
        method: String,
        body: Vec<u8>,
        timeout_ms: u64,
    },
    Tree {
        under: String,
    },
    Stats,
    Kill {
        point: String,
    },
    Events,
    ModuleList,
    ModuleLoad {
        path: PathBuf,
    },
    ModuleReload {
        name: String,
    },
    Fault(FaultSpec),
    Stop,
}

#[derive(Serialize)]
#[allow(dead_code)]
enum FaultSpec {
    Crash {
        point: String,
        reason: String,
    },
    Pause {
        point: String,
    },
    Resume {
        point: String,
    },
    Delay {
        point: String,
        min_ms: u64,
        max_ms: u64,
        probability: f64,
    },
    Drop {
        point: String,
        probability: f64,
    },
    FailStart {
        point: String,
        reason: String,
    },
    Heal {
        point: String,
    },
    KillStar {
        star: usize,
    },
}

/// The daemon's `Answer`, mirrored.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Answer {
    Error(String),
    Done,
    Reply(Vec<u8>),
    Tree(Vec<Row>),
    Stats(Vec<(String, u64)>),
    Following,
    Event {
        what: String,
        point: String,
        detail: String,
    },
    Modules(Vec<ModuleRow>),
    Loaded(ModuleRow),
    Progress {
        done: u64,
        total: u64,
    },
    Reloaded {
        module: ModuleRow,
        previous: u64,
        to: u64,
        rolled_back: bool,
        particles: Vec<ReloadRow>,
    },
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Row {
    point: String,
    kind: String,
    machine: String,
    star: usize,
    status: String,
    restarts: u32,
    version: u64,
    queued: u64,
    taken: u64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ModuleRow {
    name: String,
    seq: u64,
    hash: String,
    label: String,
    file: String,
    live: u64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ReloadRow {
    point: String,
    outcome: String,
    reason: String,
}

/// `bytes` behind a u32 LE length.
fn raw_frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// The protocol's version, first in every method.
const PROTOCOL: &str = "hv-control/2";

/// A wave's bytes: a request from `cli` to `daemon` with `body`, its
/// method `PROTOCOL COMMAND`.
fn wave(method: &str, body: hyperverse::Body) -> Vec<u8> {
    hyperverse::Wave::request(
        "cli".parse().unwrap(),
        "daemon".parse().unwrap(),
        format!("{PROTOCOL} {method}"),
        body,
    )
    .to_bytes()
    .unwrap()
    .to_vec()
}

/// One request frame.
fn frame(method: &str, r: &Request) -> Vec<u8> {
    raw_frame(&wave(method, hyperverse::Body::encode(r).unwrap()))
}

/// Reads one answer frame; `None` when the daemon closed first.
fn read_answer(s: &mut UnixStream) -> Option<Answer> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = u32::from_le_bytes(len) as usize;
    assert!(len <= MAX_FRAME, "the daemon sent a frame of {len} bytes");
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).unwrap();
    let wave = hyperverse::Wave::from_bytes(&buf).unwrap();
    Some(wave.body.decode().unwrap())
}

/// After a refused frame: an error answer, then the close.
fn refused_and_closed(s: &mut UnixStream) -> String {
    let answer = read_answer(s);
    let Some(Answer::Error(why)) = answer else {
        panic!("not an error: {answer:?}");
    };
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed after it");
    why
}

#[test]
fn hostile_values_in_well_formed_frames_are_answered_or_refused() {
    let d = start(&dir("values"), None, None);
    assert_eq!(d.ok(&["spawn", "e", "echo"]), "ok");
    // Asks with no time at all and with all the time there is: answered
    // (the second at once, the echo being quick), never a panic.
    let ask = |timeout_ms| Request::Ask {
        point: "e".into(),
        method: "m".into(),
        body: b"hi".to_vec(),
        timeout_ms,
    };
    let zero = d.call("ask", &ask(0));
    assert!(
        matches!(&zero, Answer::Reply(b) if b == b"hi") || matches!(&zero, Answer::Error(_)),
        "{zero:?}"
    );
    assert!(matches!(d.call("ask", &ask(u64::MAX)), Answer::Reply(b) if b == b"hi"));
    // Args just under the frame limit: taken; just over it: refused, closed.
    let spawn = |p: &str, n: usize| Request::Spawn {
        point: p.into(),
        kind: "echo".into(),
        args: vec![7; n],
    };
    let overhead = frame("spawn", &spawn("big", 0)).len() - 4 + 8;
    let fits = frame("spawn", &spawn("big", MAX_FRAME - overhead));
    assert!(fits.len() - 4 <= MAX_FRAME);
    let mut s = d.connect();
    s.write_all(&fits).unwrap();
    assert!(matches!(read_answer(&mut s), Some(Answer::Done)));
    let over = frame("spawn", &spawn("bigger", MAX_FRAME));
    let mut s = d.connect();
    let _ = s.write_all(&over);
    assert!(refused_and_closed(&mut s).contains("the most is"));
    // Points the CLI would refuse, smuggled in the body: refused by the
    // decoder, never reaching the Machine.
    for bad in [
        "a::b".to_string(),
        String::new(),
        "x".repeat(300),
        vec!["s"; 40].join(":"),
        "ROOT:x".into(),
        "é".into(),
    ] {
        let mut s = d.connect();
        s.write_all(&frame("kill", &Request::Kill { point: bad.clone() }))
            .unwrap();
        refused_and_closed(&mut s);
    }
    // A variant index past the last one; an empty frame; a wave whose body
    // is no request at all.
    let mut body = Vec::new();
    for b in [200u8, 0, 0, 0] {
        body.push(b);
    }
    for bytes in [
        raw_frame(&wave("x", hyperverse::Body::from(body.clone()))),
        raw_frame(&[]),
        raw_frame(&wave("stats", hyperverse::Body::from("no request"))),
    ] {
        let mut s = d.connect();
        s.write_all(&bytes).unwrap();
        refused_and_closed(&mut s);
    }
    // A method that lies about its body, or a signal rather than a
    // request: refused, neither command obeyed.
    let lying = raw_frame(&wave(
        "stop",
        hyperverse::Body::encode(&Request::Stats).unwrap(),
    ));
    let signal = hyperverse::Wave::signal(
        "cli".parse().unwrap(),
        "daemon".parse().unwrap(),
        format!("{PROTOCOL} stats"),
        hyperverse::Body::encode(&Request::Stats).unwrap(),
    );
    for bytes in [lying, raw_frame(&signal.to_bytes().unwrap())] {
        let mut s = d.connect();
        s.write_all(&bytes).unwrap();
        assert!(
            matches!(read_answer(&mut s), Some(Answer::Error(ref e)) if e.contains("is not its body's command")),
            "refused"
        );
    }
    // Still running (the lie said `stop`).
    assert!(matches!(d.call("stats", &Request::Stats), Answer::Stats(_)));
    // A client that half-closes after its request still gets its answer.
    let mut s = d.connect();
    s.write_all(&frame("stats", &Request::Stats)).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(matches!(read_answer(&mut s), Some(Answer::Stats(_))));
    assert!(read_answer(&mut s).is_none());
    d.still_serves();
}

#[test]
fn faults_with_hostile_parameters_are_refused_or_survived() {
    let d = start(&dir("faults"), Some("stars = 3\n"), None);
    assert_eq!(d.ok(&["spawn", "c", "counter"]), "ok");
    for p in ["NaN", "inf", "-inf", "-0.5", "1.0000001"] {
        let flag = format!("--probability={p}");
        for kind in ["drop", "delay"] {
            let o = d.cli(&["fault", kind, "c", &flag]);
            assert_eq!(o.status.code(), Some(1), "{kind} {p}: {}", out(&o));
            assert!(err(&o).contains("probability"), "{}", err(&o));
        }
    }
    let o = d.cli(&["fault", "delay", "c", "--min-ms", "10", "--max-ms", "5"]);
    assert_eq!(o.status.code(), Some(1));
    // A delay as long as a u64 of milliseconds: the wave is held, the
    // particle can still be killed and its Point used again.
    let max = u64::MAX.to_string();
    let min = (u64::MAX - 1).to_string();
    assert_eq!(
        d.ok(&["fault", "delay", "c", "--min-ms", &min, "--max-ms", &max]),
        "ok"
    );
    assert_eq!(d.ok(&["send", "c", "add"]), "ok");
    let o = d.cli(&["ask", "c", "get", "--timeout-ms", "300"]);
    assert_eq!(o.status.code(), Some(1), "held: {}", out(&o));
    assert_eq!(d.ok(&["kill", "c"]), "ok");
    assert_eq!(d.ok(&["spawn", "c", "counter"]), "ok");
    assert_eq!(d.ok(&["ask", "c", "get"]), "0");
    // Every Star killed, again and again, while a particle is asked.
    for round in 0..5 {
        for star in 0..3 {
            assert!(
                d.ok(&["fault", "kill-star", &star.to_string()])
                    .contains("killed"),
                "round {round}"
            );
        }
    }
    for star in [3usize, usize::MAX] {
        let a = d.call("fault", &Request::Fault(FaultSpec::KillStar { star }));
        assert!(
            matches!(&a, Answer::Error(e) if e.contains("no Star")),
            "{a:?}"
        );
    }
    eventually("the counter back after the kills", || {
        d.cli(&["ask", "c", "get"]).status.success()
    });
    d.still_serves();
}

#[test]
fn module_files_that_are_not_files_are_refused_and_hang_nothing() {
    let d = dir("files");
    let mods = d.join("mods");
    std::fs::create_dir_all(&mods).unwrap();
    let fifo = mods.join("fifo.wasm");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/dev/zero", mods.join("zero.wasm")).unwrap();
    std::fs::create_dir_all(mods.join("dir.wasm")).unwrap();
    std::os::unix::fs::symlink(mods.join("loop.wasm"), mods.join("loop.wasm")).unwrap();
    std::fs::write(mods.join("ünï.wat"), "(module)").unwrap();
    std::fs::write(mods.join("ok.wat"), COUNTER_V1).unwrap();
    let d = start(
        &d,
        Some("[modules]\npath = [\"mods\"]\nwatch = true\n"),
        None,
    );
    // Spawned: each load fails with why, none blocks.
    for (name, why) in [
        ("fifo", "not a regular file"),
        ("zero", "not a regular file"),
        ("dir", "not a regular file"),
        ("loop", ""),
    ] {
        let o = d.cli(&["spawn", name, &format!("wasm:{name}")]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", out(&o));
        assert!(err(&o).contains(why), "{name}: {}", err(&o));
        let o = d.cli(&[
            "module",
            "load",
            mods.join(format!("{name}.wasm")).to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", out(&o));
    }
    // Names that are no module's: refused before any read.
    for path in [
        "/dev/zero",
        "/proc/self/mem",
        mods.join("ünï.wat").to_str().unwrap(),
    ] {
        let o = d.cli(&["module", "load", path]);
        assert_eq!(o.status.code(), Some(1), "{path}");
        assert!(err(&o).contains("not a module file"), "{}", err(&o));
    }
    let o = d.cli(&["spawn", "u", "wasm:ünï"]);
    assert_eq!(o.status.code(), Some(1));
    // The good module still loads, the list shows what is there, and the
    // watcher, with a FIFO beside it, reloads a changed file.
    assert_eq!(d.ok(&["spawn", "k", "wasm:ok"]), "ok");
    let list = d.ok(&["module", "list"]);
    assert!(list.contains("ok") && list.contains("fifo"), "{list}");
    std::fs::write(mods.join("ok.wat"), COUNTER_V2).unwrap();
    eventually("the watcher's reload", || {
        d.ok(&["module", "list", "--json"])
            .contains(r#""version":2"#)
    });
    d.still_serves();
}

/// A reload whose client reads the first progress frame and goes: the
/// reload runs to its end, every particle moved, and the daemon serves.
#[test]
fn a_reload_whose_client_leaves_midway_completes() {
    let d = dir("reload");
    std::fs::create_dir_all(d.join("mods")).unwrap();
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V1).unwrap();
    let d = start(&d, Some("[modules]\npath = [\"mods\"]\n"), None);
    let mut s = d.connect();
    for i in 0..200 {
        s.write_all(&frame(
            "spawn",
            &Request::Spawn {
                point: format!("c{i}"),
                kind: "wasm:counter".into(),
                args: Vec::new(),
            },
        ))
        .unwrap();
        assert!(matches!(read_answer(&mut s), Some(Answer::Done)));
    }
    std::fs::write(d.dir.join("mods/counter.wat"), COUNTER_V2).unwrap();
    s.write_all(&frame(
        "module.reload",
        &Request::ModuleReload {
            name: "counter".into(),
        },
    ))
    .unwrap();
    let a = read_answer(&mut s);
    assert!(matches!(a, Some(Answer::Progress { .. })), "{a:?}");
    drop(s);
    eventually("all 200 on version 2", || {
        let Answer::Tree(rows) = d.call(
            "tree",
            &Request::Tree {
                under: "ROOT".into(),
            },
        ) else {
            return false;
        };
        rows.len() == 200 && rows.iter().all(|r| r.version == 2)
    });
    assert_eq!(d.ok(&["ask", "c0", "get"]), "0x0000000000000000");
    d.still_serves();
}

/// Clients hammering the daemon while one says `stop`: every client gets
/// an answer or a clear error, none hangs, and the daemon exits.
#[test]
fn requests_racing_a_stop_end_cleanly() {
    let mut d = start(&dir("stop"), None, None);
    assert_eq!(d.ok(&["spawn", "e", "echo"]), "ok");
    let socket = d.run().join("control.sock");
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        return;
                    };
                    s.set_read_timeout(Some(HANG)).unwrap();
                    let ask = Request::Ask {
                        point: "e".into(),
                        method: "m".into(),
                        body: b"x".to_vec(),
                        timeout_ms: 5000,
                    };
                    if s.write_all(&frame("ask", &ask)).is_err() {
                        return;
                    }
                    // An answer, or the close: never a hang (read timeout).
                    let mut len = [0u8; 4];
                    match s.read_exact(&mut len) {
                        Ok(()) => {}
                        Err(e) => {
                            assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "a hang");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(d.ok(&["stop"]), "ok");
    for c in clients {
        c.join().unwrap();
    }
    let start = Instant::now();
    while d.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < HANG, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The metrics server against slow, many, pipelined and binary clients:
/// each gets an answer or is dropped, and a scrape then works.
#[test]
fn the_metrics_server_survives_hostile_http_clients() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = start(
        &dir("http"),
        Some(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")),
        None,
    );
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        s
    };
    let answer = |bytes: &[u8]| {
        let mut s = connect();
        let _ = s.write_all(bytes);
        let mut a = Vec::new();
        let _ = s.read_to_end(&mut a);
        String::from_utf8_lossy(&a).to_string()
    };
    // Many at once, each silent: held to the head timeout, never a hang.
    let silent: Vec<TcpStream> = (0..100).map(|_| connect()).collect();
    // Pipelined requests: one answer, then the close.
    let two = answer(b"GET /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n");
    assert!(
        two.starts_with("HTTP/1.1 200") || two.starts_with("HTTP/1.1 503"),
        "{two}"
    );
    assert_eq!(two.matches("HTTP/1.1 ").count(), 1, "{two}");
    drop(silent);
    eventually("a scrape after the silent ones", || {
        answer(b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200")
    });
    // Smuggling-ish heads and bytes that are not text.
    for (bytes, status) in [
        (
            &b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            "HTTP/1.1 200",
        ),
        (b"GET /metrics HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "HTTP/1.1 400"),
        (b"\xff\xfe GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        (b"GET /metrics\x00 HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
    ] {
        let a = answer(bytes);
        assert!(a.starts_with(status), "{}: {a}", String::from_utf8_lossy(bytes));
    }
    // A slowloris: a byte at a time, never the end of its head.
    let mut slow = connect();
    let started = Instant::now();
    let mut timed_out = String::new();
    for b in b"GET /metrics HTTP/1.1\r\nX: ".iter().cycle().take(200) {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let _ = slow.read_to_string(&mut timed_out);
    assert!(timed_out.starts_with("HTTP/1.1 408"), "{timed_out}");
    assert!(answer(b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    d.still_serves();
}

/// Connections past the daemon's file-descriptor limit: accepting fails
/// while they are open; the daemon must not spin on the failing accept
/// (a spin is a core at 100% for as long as the clients hold on), and it
/// serves again once they go.
#[test]
fn out_of_file_descriptors_the_daemon_waits_rather_than_spins_and_recovers() {
    let d = start(&dir("fds"), None, Some("-n 48"));
    let mut held = Vec::new();
    for _ in 0..80 {
        match UnixStream::connect(d.run().join("control.sock")) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    assert!(held.len() > 48, "only {} connections", held.len());
    eventually("the daemon out of descriptors", || d.fds() >= 46);
    // A spin detector, not a benchmark: a spinning accept loop burns a
    // whole core (≈ 3 s of CPU in 3 s); a waiting one next to nothing.
    let ticks_per_s = 100;
    let start = d.cpu_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let used = d.cpu_ticks() - start;
    assert!(
        used < 3 * ticks_per_s / 2,
        "{used} ticks of CPU in 3 s while out of descriptors"
    );
    drop(held);
    eventually("honest clients served again", || {
        d.cli(&["stats"]).status.success()
    });
    d.still_serves();
}

/// A client that asks with a timeout of forever (or a long one) and goes,
/// or follows events and goes while the daemon is quiet: the daemon must
/// let go of the connection, or such clients pin one file descriptor and
/// one task each, for ever.
#[test]
fn a_client_that_leaves_a_long_ask_or_a_quiet_follow_is_let_go() {
    let d = start(&dir("leave"), None, None);
    assert_eq!(d.ok(&["spawn", "p", "echo"]), "ok");
    assert_eq!(d.ok(&["fault", "pause", "p"]), "ok");
    let before = d.fds();
    for _ in 0..20 {
        let mut s = d.connect();
        s.write_all(&frame(
            "ask",
            &Request::Ask {
                point: "p".into(),
                method: "m".into(),
                body: Vec::new(),
                timeout_ms: u64::MAX,
            },
        ))
        .unwrap();
        let mut f = d.connect();
        f.write_all(&frame("events", &Request::Events)).unwrap();
        assert!(matches!(read_answer(&mut f), Some(Answer::Following)));
        // Both gone; the ask still waits on the paused particle.
    }
    eventually("the daemon lets go of the 40 connections", || {
        d.fds() < before + 5
    });
    // A client that half-closes while it waits still gets its answer.
    let mut s = d.connect();
    s.write_all(&frame(
        "ask",
        &Request::Ask {
            point: "p".into(),
            method: "m".into(),
            body: b"late".to_vec(),
            timeout_ms: 60_000,
        },
    ))
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.ok(&["fault", "resume", "p"]), "ok");
    assert!(matches!(read_answer(&mut s), Some(Answer::Reply(b)) if b == b"late"));
    d.still_serves();
}

/// A "file" that is regular, says it is empty, and never ends: a module
/// path entry (or `module load`) pointing at `/proc/self/pagemap` (the
/// daemon's own: 8 bytes per page of its address space, hundreds of GiB)
/// must be refused at the module file limit, not read until memory runs
/// out. The daemon runs with its address space capped, so that a daemon
/// without the limit fails here instead of taking the machine's memory.
#[test]
fn a_module_file_that_never_ends_is_read_no_further_than_the_limit() {
    let d = dir("endless");
    let mods = d.join("mods");
    std::fs::create_dir_all(&mods).unwrap();
    std::os::unix::fs::symlink("/proc/self/pagemap", mods.join("endless.wasm")).unwrap();
    let d = start(
        &d,
        Some("[modules]\npath = [\"mods\"]\n"),
        Some("-v 3000000"),
    );
    let o = d.cli(&["spawn", "p", "wasm:endless"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(err(&o).contains("larger than"), "{}", err(&o));
    let o = d.cli(&[
        "module",
        "load",
        mods.join("endless.wasm").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(err(&o).contains("larger than"), "{}", err(&o));
    // Read to the limit (64 MiB) and no further.
    let peak = d.status_kb("VmHWM");
    assert!(peak < 1 << 20, "the daemon's peak memory: {peak} kB");
    d.still_serves();
}

/// `module reload NAME` for names no module has, each large and each
/// different: the daemon must keep nothing per name (no module entry, no
/// metrics series with the name as a label).
#[test]
fn reloads_of_modules_that_do_not_exist_leave_nothing_behind() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = start(
        &dir("bogus"),
        Some(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")),
        None,
    );
    let scrape = || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        answer
    };
    let base_rss = d.status_kb("VmRSS");
    let base_scrape = scrape().len();
    let mut s = d.connect();
    for i in 0..300 {
        let name = format!("{i}-{}", "n".repeat(256 << 10));
        s.write_all(&frame("module.reload", &Request::ModuleReload { name }))
            .unwrap();
        let a = read_answer(&mut s);
        assert!(matches!(&a, Some(Answer::Error(_))), "{i}");
    }
    let grown = d.status_kb("VmRSS").saturating_sub(base_rss);
    // 300 names of 256 KiB: 75 MiB if kept.
    assert!(grown < 40 << 10, "the daemon grew by {grown} kB");
    let now = scrape().len();
    assert!(
        now < base_scrape + (64 << 10),
        "the scrape grew from {base_scrape} to {now} bytes"
    );
    d.still_serves();
}

/// A `tree` answer larger than a frame may be: the client must get a clear
/// error from the daemon (not a frame it refuses to read), and smaller
/// answers still work.
#[test]
fn an_answer_over_the_frame_limit_is_an_error_that_says_so() {
    let d = start(&dir("huge"), Some("stars = 2\n"), None);
    let seg = |c: char| c.to_string().repeat(64);
    let parent = format!("{}:{}:{}", seg('a'), seg('b'), seg('c'));
    let mut s = d.connect();
    let mut spawn = |point: String| {
        s.write_all(&frame(
            "spawn",
            &Request::Spawn {
                point,
                kind: "echo".into(),
                args: Vec::new(),
            },
        ))
        .unwrap();
        let a = read_answer(&mut s);
        assert!(matches!(a, Some(Answer::Done)), "{a:?}");
    };
    spawn(seg('a'));
    spawn(format!("{}:{}", seg('a'), seg('b')));
    spawn(parent.clone());
    // Points of 255 bytes: ~290 bytes a row, 4,500 rows over 1 MiB.
    for i in 0..4500 {
        spawn(format!("{parent}:{i:0>60}"));
    }
    let o = d.cli(&["tree"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("limit") && err(&o).contains("tree"),
        "{}",
        err(&o)
    );
    let one = format!("{parent}:{:0>60}", 7);
    assert!(d.ok(&["tree", &one]).contains(&one));
    d.still_serves();
}

#[test]
fn connections_past_the_cap_are_told_so_and_claimed_frames_pin_no_memory() {
    const CAP: usize = 128; // the daemon's MAX_CONNECTIONS
    let d = dir("cap");
    let daemon = start(&d, None, Some("-n 1024"));
    // Address space, not residence: a buffer reserved whole for a claimed
    // length is mapped at once but stays untouched (so not resident).
    let before = daemon.status_kb("VmSize");
    let threads_before = daemon.status_kb("Threads");
    // Each connection claims a frame of 1 MiB, then sends nothing more.
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut s = daemon.connect();
        s.write_all(&(1u32 << 20).to_le_bytes()).unwrap();
        s.write_all(b"x").unwrap();
        held.push(s);
    }
    // Give the daemon time to take every connection and start reading.
    std::thread::sleep(Duration::from_millis(500));
    let grown = daemon.status_kb("VmSize").saturating_sub(before);
    // The daemon runs with one malloc arena (see `start`); a thread it
    // starts meanwhile (tokio's blocking pool, on a loaded machine) still
    // maps its stack.
    let new_threads = daemon.status_kb("Threads").saturating_sub(threads_before);
    let allowed = (32 << 10) + (8 << 10) * new_threads;
    assert!(
        // An eager buffer per claim is 128 MiB more.
        grown < allowed,
        "{CAP} claimed-but-empty frames pinned {grown} kB ({new_threads} new threads)"
    );
    // One more: told the daemon is full, and closed.
    let mut over = daemon.connect();
    let why = refused_and_closed(&mut over);
    assert!(why.contains("connections already"), "{why}");
    // Once they go, honest clients are served.
    drop(held);
    eventually("served after the hogs left", || {
        daemon.cli(&["stats"]).status.success()
    });
    daemon.still_serves();
}
