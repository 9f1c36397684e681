//! The daemon's Prometheus endpoint, scraped from the real binary: the
//! answer parsed as Prometheus text (with `prometheus-parse`, and line by
//! line against the format's grammar), the values checked against what the
//! test did to the daemon, counters checked monotonic across scrapes, and
//! hostile clients (garbage, oversized heads, silent and too many
//! connections) answered without holding up a scrape.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use prometheus_parse::{LineInfo, Scrape, Value};

mod support;
use support::BIN;
/// The daemon's Stars in these tests.
const STARS: usize = 2;
/// How long a test waits for something that should happen at once; only
/// ever a limit on a wait that polls, never a performance bound.
const PATIENCE: Duration = Duration::from_secs(30);

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hv-metrics-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port free now (the daemon binds it right after; another process
/// taking it in between would fail the start loudly, not silently).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon under test; stopped (or killed) when dropped.
struct Daemon {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Daemon {
    /// Starts `hyperverse run --config` with metrics on a free port, and
    /// waits for its "ready" line.
    fn start(tag: &str) -> Daemon {
        let dir = dir(tag);
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = dir.join("hyperverse.toml");
        std::fs::write(
            &config,
            format!("stars = {STARS}\n\n[metrics]\nlisten = \"{addr}\"\n"),
        )
        .unwrap();
        let child = support::spawn_ready(
            Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&config)
                .env("HYPERVERSE_RUNTIME_DIR", dir.join("run")),
        );
        Daemon { child, dir, addr }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HYPERVERSE_RUNTIME_DIR", self.dir.join("run"))
            .output()
            .unwrap()
    }

    /// Runs a client command that must answer `expect`.
    fn ok(&self, args: &[&str], expect: &str) {
        let o = self.cli(args);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim_end(),
            expect,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// One raw exchange: `request` sent, everything until the server
    /// closes read back.
    fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(request).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        answer
    }

    /// As [`Daemon::raw`], for a server that may close without reading:
    /// errors end the exchange, what was read is kept.
    fn raw_lossy(&self, request: &[u8]) -> Vec<u8> {
        let mut answer = Vec::new();
        if let Ok(mut s) = TcpStream::connect(self.addr) {
            let _ = s.set_read_timeout(Some(PATIENCE));
            let _ = s.write_all(request);
            let _ = s.read_to_end(&mut answer);
        }
        answer
    }

    /// `GET /metrics`, checked as HTTP and parsed as Prometheus text.
    fn scrape(&self) -> Metrics {
        let answer = self.raw(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let (status, headers, body) = http(&answer);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(
            headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(headers["connection"], "close");
        assert_eq!(headers["content-length"], body.len().to_string());
        Metrics::parse(&String::from_utf8(body).expect("the metrics are UTF-8"))
    }

    /// Scrapes until `done` holds.
    fn scrape_until(&self, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
        let start = Instant::now();
        loop {
            let m = self.scrape();
            if done(&m) {
                return m;
            }
            assert!(start.elapsed() < PATIENCE, "never saw {what}:\n{}", m.text);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.cli(&["stop"]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP/1.1 answer: its status line, headers (lower-cased names) and
/// body.
fn http(answer: &[u8]) -> (String, HashMap<String, String>, Vec<u8>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(answer)));
    let head = std::str::from_utf8(&answer[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("a header line");
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers, answer[end + 4..].to_vec())
}

/// A scrape, parsed.
struct Metrics {
    text: String,
    scrape: Scrape,
    /// `# TYPE` of each family.
    types: HashMap<String, String>,
}

impl Metrics {
    /// Parses `text` with `prometheus-parse`, after checking every line
    /// against the text format 0.0.4 (the parser itself skips lines it
    /// cannot read, so it alone would accept a broken exposition): `# HELP`
    /// and `# TYPE` once per family, before its samples, and samples of
    /// declared families only, with well-formed names, labels and values.
    fn parse(text: &str) -> Metrics {
        assert!(text.ends_with('\n'), "no final newline");
        let mut helps = HashSet::new();
        let mut types = HashMap::new();
        let mut samples = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP text");
                assert!(valid_name(name) && !help.is_empty(), "{line}");
                assert!(helps.insert(name.to_string()), "a second HELP: {line}");
                assert!(!types.contains_key(name), "HELP after TYPE: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').expect("a TYPE");
                assert!(valid_name(name), "{line}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                    "{line}"
                );
                assert!(helps.contains(name), "TYPE without HELP: {line}");
                assert!(
                    types.insert(name.to_string(), ty.to_string()).is_none(),
                    "{line}"
                );
            } else {
                let name = check_sample(line);
                assert!(
                    types.contains_key(name),
                    "a sample of an undeclared family: {line}"
                );
                assert!(
                    matches!(LineInfo::parse(line), LineInfo::Sample { .. }),
                    "{line}"
                );
                samples += 1;
            }
        }
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        assert_eq!(scrape.samples.len(), samples, "{text}");
        Metrics {
            text: text.to_string(),
            scrape,
            types,
        }
    }

    /// The value of the one sample of `metric` whose labels include
    /// `labels`; `None` if there is none.
    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                ref other => panic!("{metric}: {other:?}"),
            })
            .collect();
        assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
        found.first().copied()
    }

    /// As [`Metrics::get`], and there must be one.
    fn one(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(metric, labels)
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{}", self.text))
    }

    /// The sum of every sample of `metric` whose labels include `labels`.
    fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) => v,
                ref other => panic!("{metric}: {other:?}"),
            })
            .sum()
    }

    /// Every counter sample, by name and sorted labels.
    fn counters(&self) -> BTreeMap<String, f64> {
        self.scrape
            .samples
            .iter()
            .filter_map(|s| match s.value {
                Value::Counter(v) => {
                    let mut labels: Vec<String> =
                        s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    labels.sort();
                    Some((format!("{}{{{}}}", s.metric, labels.join(",")), v))
                }
                _ => None,
            })
            .collect()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks one sample line (`name{k="v",...} value`) strictly; its name.
fn check_sample(line: &str) -> &str {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("not a sample: {line}"));
    let name = &line[..name_end];
    assert!(valid_name(name), "{line}");
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        let mut chars = labels.char_indices().peekable();
        let end = loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).expect("labels end");
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.unwrap_or_else(|| panic!("a label without `=`: {line}"));
            assert!(valid_name(&labels[start..eq]), "{line}");
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            // label value, with \\, \" and \n escapes only
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => {
                        let e = chars.next().map(|(_, c)| c);
                        assert!(matches!(e, Some('\\' | '"' | 'n')), "{line}");
                    }
                    Some('"') => break,
                    Some('\n') | None => panic!("an unterminated label value: {line}"),
                    Some(_) => {}
                }
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => break i,
                _ => panic!("bad labels: {line}"),
            }
        };
        rest = &labels[end + 1..];
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line}"));
    assert!(
        value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
        "a bad value: {line}"
    );
    name
}

#[test]
fn a_scrape_is_prometheus_text_with_what_the_daemon_did() {
    let d = Daemon::start("values");
    // Before anything: every (Star, status) series, at zero.
    let m = d.scrape();
    assert_eq!(m.one("hyperverse_stars", &[]), STARS as f64);
    for star in 0..STARS {
        let star = star.to_string();
        for status in ["starting", "ready", "restarting", "stopped"] {
            assert_eq!(
                m.one(
                    "hyperverse_particles",
                    &[("star", &star), ("status", status)]
                ),
                0.0
            );
        }
        assert_eq!(
            m.one("hyperverse_waves_taken_total", &[("star", &star)]),
            0.0
        );
        assert_eq!(m.one("hyperverse_spawned_total", &[("star", &star)]), 0.0);
    }
    assert_eq!(m.types["hyperverse_particles"], "gauge");
    assert_eq!(m.types["hyperverse_waves_taken_total"], "counter");
    assert_eq!(m.types["hyperverse_lane_depth"], "gauge");
    // No crash yet: the family has no series (and so no lines at all).
    assert_eq!(m.sum("hyperverse_crashes_total", &[]), 0.0);
    assert_eq!(m.one("hyperverse_lane_depth_max", &[]), 0.0);
    assert!(m.scrape.docs["hyperverse_waves_taken_total"].contains("rate()"));

    // Three particles; six waves to `c`, three to `e` (each ask answered
    // after the waves sent before it were taken).
    d.ok(&["spawn", "c", "counter"], "ok");
    d.ok(&["spawn", "c2", "counter"], "ok");
    d.ok(&["spawn", "e", "echo"], "ok");
    for _ in 0..5 {
        d.ok(&["send", "c", "add"], "ok");
    }
    d.ok(&["ask", "c", "get"], "5");
    for _ in 0..3 {
        d.ok(&["ask", "e", "ping", "hi"], "hi");
    }
    let first = d.scrape();
    assert_eq!(
        first.sum("hyperverse_particles", &[("status", "ready")]),
        3.0
    );
    assert_eq!(first.sum("hyperverse_particles", &[]), 3.0);
    assert_eq!(first.sum("hyperverse_spawned_total", &[]), 3.0);
    assert!(
        first.sum("hyperverse_waves_taken_total", &[]) >= 9.0,
        "{}",
        first.text
    );
    for q in ["0.5", "0.9", "0.99"] {
        let v = first.one("hyperverse_lane_depth", &[("quantile", q)]);
        assert!(v >= 0.0 && v <= first.one("hyperverse_lane_depth_max", &[]));
    }
    assert!(first.get("hyperverse_letters_queued", &[]).is_some());
    assert_eq!(first.sum("hyperverse_crashes_total", &[]), 0.0);

    // A crash: counted with its reason, restarted.
    d.ok(&["send", "c", "crash"], "ok");
    let crashed = d.scrape_until("the restart", |m| {
        m.sum("hyperverse_restarts_total", &[]) >= 1.0
            && m.sum("hyperverse_particles", &[("status", "ready")]) == 3.0
    });
    assert_eq!(
        crashed.sum("hyperverse_crashes_total", &[("reason", "asked to crash")]),
        1.0,
        "{}",
        crashed.text
    );
    assert_eq!(crashed.sum("hyperverse_crashes_total", &[]), 1.0);
    assert_eq!(crashed.types["hyperverse_crashes_total"], "counter");
    assert_eq!(crashed.sum("hyperverse_restarts_total", &[]), 1.0);
    assert_eq!(crashed.sum("hyperverse_gave_up_total", &[]), 0.0);
    // Restarted, not re-spawned.
    assert_eq!(crashed.sum("hyperverse_spawned_total", &[]), 3.0);

    // More waves, then `c` (which took most of them) ends: the waves
    // counter grows, then holds; no counter ever goes back.
    for _ in 0..4 {
        d.ok(&["send", "c", "add"], "ok");
    }
    d.ok(&["ask", "c", "get"], "4");
    let busier = d.scrape();
    assert!(
        busier.sum("hyperverse_waves_taken_total", &[])
            > crashed.sum("hyperverse_waves_taken_total", &[]),
        "{}",
        busier.text
    );
    d.ok(&["kill", "c"], "ok");
    let ended = d.scrape_until("c's stop", |m| {
        m.sum("hyperverse_particles", &[]) == 2.0 && m.one("hyperverse_stopped_total", &[]) >= 1.0
    });
    let scrapes = [&first, &crashed, &busier, &ended];
    for pair in scrapes.windows(2) {
        let (before, after) = (pair[0].counters(), pair[1].counters());
        for (series, v) in &before {
            let now = after
                .get(series)
                .unwrap_or_else(|| panic!("{series} went away"));
            assert!(now >= v, "{series}: {v} then {now}");
        }
    }
    // Most waves were c's: a sum over live lanes would have fallen.
    assert!(
        ended.sum("hyperverse_waves_taken_total", &[])
            >= busier.sum("hyperverse_waves_taken_total", &[]),
        "c's waves stay counted after it ended:\n{}",
        ended.text
    );
}

#[test]
fn hostile_clients_are_answered_or_dropped_and_scrapes_go_on() {
    let d = Daemon::start("hostile");
    let status = |answer: &[u8]| http(answer).0;

    // Not HTTP.
    let a = d.raw(b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 400 Bad Request");
    // A head over 8 KiB, blank line or not.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let a = d.raw(big.as_bytes());
    assert_eq!(status(&a), "HTTP/1.1 431 Request Header Fields Too Large");
    // Other paths, other methods.
    let a = d.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 404 Not Found");
    let a = d.raw(b"GET /metrics/../etc/passwd HTTP/1.1\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 404 Not Found");
    let a = d.raw(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    let (line, headers, _) = http(&a);
    assert_eq!(line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(headers["allow"], "GET, HEAD");
    // HEAD: the length of the metrics, no body.
    let a = d.raw(b"HEAD /metrics HTTP/1.1\r\n\r\n");
    let (line, headers, body) = http(&a);
    assert_eq!(line, "HTTP/1.1 200 OK");
    assert!(headers["content-length"].parse::<usize>().unwrap() > 0);
    assert!(body.is_empty());

    // A client that connects and says nothing holds up no one: another
    // is answered while it still waits (nothing was written to it yet).
    let mut silent = TcpStream::connect(d.addr).unwrap();
    let m = d.scrape();
    assert_eq!(m.one("hyperverse_stars", &[]), STARS as f64);
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        silent.read(&mut buf).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "the silent client was already answered or closed"
    );
    // And it is dropped in the end, told why.
    silent.set_nonblocking(false).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    silent.read_to_end(&mut answer).unwrap();
    assert_eq!(status(&answer), "HTTP/1.1 408 Request Timeout");
    d.scrape();
}

#[test]
fn connections_past_the_cap_are_turned_away_until_some_end() {
    let d = Daemon::start("cap");
    // 32 are served at once: 40 silent ones fill every slot.
    let silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(d.addr).unwrap())
        .collect();
    let a = d.raw_lossy(b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(
        a.is_empty() || http(&a).0 == "HTTP/1.1 503 Service Unavailable",
        "{}",
        String::from_utf8_lossy(&a)
    );
    // They go: scrapes are served again.
    drop(silent);
    let start = Instant::now();
    loop {
        let a = d.raw_lossy(b"GET /metrics HTTP/1.1\r\n\r\n");
        if !a.is_empty() && http(&a).0 == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_taken_port_stops_the_daemon_from_starting() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = dir("taken");
    let config = dir.join("hyperverse.toml");
    std::fs::write(&config, format!("[metrics]\nlisten = \"{addr}\"\n")).unwrap();
    let o = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("HYPERVERSE_RUNTIME_DIR", dir.join("run"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("metrics at {addr}")), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
