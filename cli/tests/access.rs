//! Access rules through the daemon: the control socket's peer uid is the
//! CLI user a connection acts as; a denied user is told so (`access
//! denied: …`, exit code 4); `grant`, `revoke` and `rules` change and show
//! the rules; hostile grant texts and frames are refused without harm.
//!
//! The owner and another user for real need two uids: the test becomes
//! `nobody` for the other user's commands where it may (it runs as root:
//! CI and this sandbox do). As any uid, the test makes itself a plain user
//! instead by naming another uid the owner (`[access] owner`), and shows a
//! grant taking effect through the config file.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod support;
use support::{err, out, BIN};

/// The exit code of an access denied.
const DENIED: i32 = 4;
const COUNTER_V1: &str = include_str!("../../modules/wat/counter_v1.wat");
const COUNTER_V2: &str = include_str!("../../modules/wat/counter_v2.wat");

/// `nobody`: the other user, where the test may become it.
const NOBODY: u32 = 65534;
/// A uid the test never is: made the owner so that the test is not.
const ELSEWHERE: u32 = 4_000_000_000;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hv-access-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // Others pass through to the socket below (the daemon makes its own
    // directory 0711 with `shared_socket`).
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// The test's own uid: the control socket's peer for its commands.
fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// A daemon started by a test with a config: killed when the test ends,
/// however it ends.
struct Running {
    child: Child,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(dir: &Path, config: &str) -> Running {
        let file = dir.join("hv.toml");
        std::fs::write(&file, config).unwrap();
        let child = support::spawn_ready(
            Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&file)
                .env("HYPERVERSE_RUNTIME_DIR", dir.join("run")),
        );
        Running {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn run(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// A command as the test's own uid.
    fn cli(&self, args: &[&str]) -> Output {
        support::cli(&self.run(), args)
    }

    /// A command as uid `uid` (root only).
    fn cli_as(&self, uid: u32, args: &[&str]) -> Output {
        Command::new(other_users_binary())
            .args(args)
            .env("HYPERVERSE_RUNTIME_DIR", self.run())
            .uid(uid)
            .gid(NOBODY)
            .output()
            .unwrap()
    }

    /// Kills the daemon and waits for it to go (a plain user may not
    /// stop it).
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of the binary another user may run (the build tree may not be
/// open to it).
fn other_users_binary() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let bin = std::env::temp_dir().join(format!("hv-access-bin-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = bin.join("hyperverse");
        std::fs::copy(BIN, &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe
    })
}

/// It succeeded; its stdout.
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "expected success: {} {}",
        out(o),
        err(o)
    );
    out(o)
}

/// It was denied, with exit code 4 and a message that says `needle`.
fn denied(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(DENIED), "{} {}", out(o), err(o));
    let e = err(o);
    assert!(e.starts_with("hyperverse: access denied: "), "{e}");
    assert!(e.contains(needle), "`{needle}` not in: {e}");
}

#[test]
fn a_plain_user_is_denied_until_the_config_grants() {
    let d = dir("plain");
    let me = my_uid();
    // The owner is some other uid: the test is alice, a plain user.
    let base = format!(
        "[access]\npolicy = \"enforced\"\nowner = {ELSEWHERE}\nusers = {{ alice = {me} }}\n"
    );
    let daemon = Running::start(
        &d,
        &format!("{base}grants = [\"spawn on ROOT to user=alice\"]\n"),
    );
    let rules = ok(&daemon.cli(&["rules"]));
    assert!(rules.contains("policy  enforced"), "{rules}");
    assert!(rules.contains("you     user=alice\n"), "{rules}");
    assert!(rules.contains("  spawn on ROOT to user=alice"), "{rules}");
    // Spawning a top-level particle is granted; the rest is not.
    assert_eq!(ok(&daemon.cli(&["spawn", "app", "counter"])), "ok");
    denied(
        &daemon.cli(&["spawn", "app:db", "counter"]),
        "user=alice may not spawn app:db under app",
    );
    denied(
        &daemon.cli(&["send", "app", "add"]),
        "user=alice may not send app",
    );
    denied(
        &daemon.cli(&["ask", "app", "get"]),
        "user=alice may not ask app",
    );
    denied(&daemon.cli(&["kill", "app"]), "user=alice may not stop app");
    denied(
        &daemon.cli(&["fault", "crash", "app"]),
        "user=alice may not inject faults into app",
    );
    denied(
        &daemon.cli(&["fault", "kill-star", "0"]),
        "user=alice may not stop ROOT",
    );
    denied(&daemon.cli(&["stats"]), "user=alice may not read ROOT");
    denied(
        &daemon.cli(&["module", "load", "/nonexistent/m.wat"]),
        "user=alice may not reload ROOT",
    );
    denied(
        &daemon.cli(&["module", "reload", "counter"]),
        "user=alice may not reload ROOT",
    );
    // What alice may not read is not there for her.
    assert_eq!(
        ok(&daemon.cli(&["tree", "--json"])),
        r#"{"ok":true,"tree":[]}"#
    );
    // Rules and the daemon are the owner's.
    denied(
        &daemon.cli(&["grant", "send", "on", "app:**", "to", "user=alice"]),
        "user=alice may not change the rules on app:**",
    );
    denied(&daemon.cli(&["stop"]), "user=alice may not stop the daemon");
    let j = daemon.cli(&["send", "app", "add", "--json"]);
    assert_eq!(j.status.code(), Some(DENIED));
    assert!(out(&j).contains(r#""denied":true"#), "{}", out(&j));
    daemon.kill();

    // The same commands once the config grants them.
    let daemon = Running::start(
        &d,
        &format!(
            "{base}grants = [\"spawn on ROOT to user=alice\", \"all on app:** to user=alice\"]\n"
        ),
    );
    assert_eq!(ok(&daemon.cli(&["spawn", "app", "counter"])), "ok");
    assert_eq!(ok(&daemon.cli(&["spawn", "app:db", "counter"])), "ok");
    assert_eq!(ok(&daemon.cli(&["send", "app:db", "add"])), "ok");
    assert_eq!(ok(&daemon.cli(&["ask", "app:db", "get"])), "1");
    let tree = ok(&daemon.cli(&["tree"]));
    assert!(tree.contains("app:db"), "{tree}");
    assert_eq!(ok(&daemon.cli(&["kill", "app"])), "ok");
    // Still not the daemon's owner.
    denied(&daemon.cli(&["stop"]), "may not stop the daemon");
    daemon.kill();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_reload_needs_reload_on_every_live_particle_of_its_module() {
    let d = dir("reload");
    std::fs::create_dir_all(d.join("mods")).unwrap();
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V1).unwrap();
    let me = my_uid();
    let config = |grants: &str| {
        format!(
            "[modules]\npath = [\"mods\"]\n\n[access]\npolicy = \"enforced\"\nowner = {ELSEWHERE}\n\
             users = {{ alice = {me} }}\ngrants = [\"spawn,reload on ROOT to user=alice\", \
             \"ask,reload on w1 to user=alice\"{grants}]\n"
        )
    };
    let daemon = Running::start(&d, &config(""));
    assert_eq!(ok(&daemon.cli(&["spawn", "w1", "wasm:counter"])), "ok");
    assert_eq!(ok(&daemon.cli(&["spawn", "w2", "wasm:counter"])), "ok");
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V2).unwrap();
    // w2 is alice's to spawn, not to reload: the whole reload is refused,
    // naming it, and nothing moved.
    denied(
        &daemon.cli(&["module", "reload", "counter"]),
        "user=alice may not reload w2",
    );
    daemon.kill();
    // Granted on both (through the config: alice is no owner), it goes.
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V1).unwrap();
    let daemon = Running::start(&d, &config(", \"reload on w2 to user=alice\""));
    assert_eq!(ok(&daemon.cli(&["spawn", "w1", "wasm:counter"])), "ok");
    assert_eq!(ok(&daemon.cli(&["spawn", "w2", "wasm:counter"])), "ok");
    std::fs::write(d.join("mods/counter.wat"), COUNTER_V2).unwrap();
    let report = ok(&daemon.cli(&["module", "reload", "counter"]));
    assert!(report.contains("w1") && report.contains("w2"), "{report}");
    assert!(report.contains("2 reloaded"), "{report}");
    assert_eq!(ok(&daemon.cli(&["ask", "w1", "get"])), "0x0000000000000000");
    daemon.kill();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_user_follows_only_the_events_of_what_it_may_read() {
    let d = dir("events");
    let me = my_uid();
    let daemon = Running::start(
        &d,
        &format!(
            "[access]\npolicy = \"enforced\"\nowner = {ELSEWHERE}\nusers = {{ alice = {me} }}\n\
             grants = [\"spawn on ROOT to user=alice\", \"read on open:** to user=alice\"]\n"
        ),
    );
    let mut follow = connect(&daemon);
    follow
        .write_all(&frame("events", &Request::Events))
        .unwrap();
    assert!(matches!(read_answer(&mut follow), Some(Answer::Following)));
    assert_eq!(ok(&daemon.cli(&["spawn", "hidden", "echo"])), "ok");
    assert_eq!(ok(&daemon.cli(&["spawn", "open", "echo"])), "ok");
    // The first event alice sees is the second spawn's.
    match read_answer(&mut follow) {
        Some(Answer::Event { what, point, .. }) => {
            assert_eq!((what.as_str(), point.as_str()), ("spawned", "open"));
        }
        other => panic!("{other:?}"),
    }
    daemon.kill();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_owner_grants_and_revokes_for_another_user() {
    if my_uid() != 0 {
        eprintln!("not root: cannot become another user; see a_plain_user_is_denied_until_the_config_grants");
        return;
    }
    let d = dir("owner");
    let daemon = Running::start(
        &d,
        &format!(
            "[access]\npolicy = \"enforced\"\nshared_socket = true\nusers = {{ alice = {NOBODY} }}\n"
        ),
    );
    let alice = |args: &[&str]| daemon.cli_as(NOBODY, args);
    // The owner (the daemon's uid, root here) may do everything.
    assert_eq!(ok(&daemon.cli(&["spawn", "app", "counter"])), "ok");
    assert_eq!(ok(&daemon.cli(&["spawn", "app:db", "counter"])), "ok");
    assert_eq!(ok(&daemon.cli(&["send", "app:db", "add"])), "ok");
    let rules = ok(&daemon.cli(&["rules"]));
    assert!(rules.contains("you     user=owner (superuser)"), "{rules}");
    assert!(rules.contains("grants  0"), "{rules}");
    // Alice, another uid on the same socket, may do nothing.
    denied(
        &alice(&["send", "app:db", "add"]),
        "user=alice may not send app:db",
    );
    denied(
        &alice(&["kill", "app:db"]),
        "user=alice may not stop app:db",
    );
    denied(
        &alice(&["spawn", "app:x", "echo"]),
        "user=alice may not spawn app:x under app",
    );
    denied(
        &alice(&["grant", "all on ** to user=alice"]),
        "user=alice may not change the rules on **",
    );
    // The owner grants; alice's next command is allowed.
    assert_eq!(
        ok(&daemon.cli(&["grant", "send,stop", "on", "app:**", "to", "user=alice"])),
        "ok"
    );
    let rules = ok(&alice(&["rules"]));
    assert!(rules.contains("you     user=alice\n"), "{rules}");
    assert!(
        rules.contains("  send,stop on app:** to user=alice"),
        "{rules}"
    );
    assert_eq!(ok(&alice(&["send", "app:db", "add"])), "ok");
    // What the grant does not give stays refused.
    denied(
        &alice(&["ask", "app:db", "get"]),
        "user=alice may not ask app:db",
    );
    assert_eq!(ok(&daemon.cli(&["ask", "app:db", "get"])), "2");
    // Revoked: send goes, stop stays.
    assert_eq!(
        ok(&daemon.cli(&["revoke", "send on app:** to user=alice"])),
        "ok"
    );
    let json = ok(&daemon.cli(&["rules", "--json"]));
    assert!(
        json.contains(r#""grants":["stop on app:** to user=alice"]"#),
        "{json}"
    );
    assert!(json.contains(r#""policy":"enforced""#), "{json}");
    denied(
        &alice(&["send", "app:db", "add"]),
        "user=alice may not send app:db",
    );
    assert_eq!(ok(&daemon.cli(&["ask", "app:db", "get"])), "2");
    assert_eq!(ok(&alice(&["kill", "app:db"])), "ok");
    // A grant on one Point: alice may spawn under `app`.
    assert_eq!(
        ok(&daemon.cli(&["grant", "spawn", "on", "app", "to", "user=alice"])),
        "ok"
    );
    assert_eq!(ok(&alice(&["spawn", "app:web", "echo"])), "ok");
    // Alice may not stop the daemon; a uid that is no user may do nothing.
    denied(&alice(&["stop"]), "user=alice may not stop the daemon");
    let stranger = daemon.cli_as(4242, &["tree"]);
    denied(&stranger, "uid 4242 is not a user of this daemon");
    // The owner may.
    let mut daemon = daemon;
    assert_eq!(ok(&daemon.cli(&["stop"])), "ok");
    let _ = daemon.child.wait();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn hostile_grant_texts_and_frames_are_refused_and_survived() {
    let d = dir("hostile");
    let daemon = Running::start(&d, "[access]\npolicy = \"open\"\n");
    // On the client, before anything is sent: exit code 2, with the text.
    for (args, needle) in [
        (
            vec!["grant", "fly", "on", "app", "to", "*"],
            "bad grant `fly on app to *`",
        ),
        (vec!["grant", "send", "on", "a::b", "to", "*"], "a::b"),
        (vec!["revoke", "send on app"], "bad grant `send on app`"),
        (vec!["grant", "send on app to kind="], "bad grant"),
    ] {
        let o = daemon.cli(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
    }
    let long = format!("send on app to user={}", "x".repeat(5000));
    let o = daemon.cli(&["grant", &long]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("the most is 4096"), "{}", err(&o));
    // At the socket: well-formed frames whose grant is not one are
    // answered with why; the owner's connection stays served.
    let cases: Vec<(&str, Request)> = vec![
        (
            "grant",
            Request::Grant {
                grant: "x".repeat(900_000),
            },
        ),
        (
            "revoke",
            Request::Revoke {
                grant: "send on \u{0} to *".into(),
            },
        ),
        (
            "grant",
            Request::Grant {
                grant: "send,,,ask on app to group=".into(),
            },
        ),
        (
            "grant",
            Request::Grant {
                grant: "all on ** to user=é\u{202e}".into(),
            },
        ),
    ];
    let mut s = connect(&daemon);
    for (method, request) in &cases {
        s.write_all(&frame(method, request)).unwrap();
        match read_answer(&mut s) {
            Some(Answer::Error(why)) => assert!(why.contains("grant"), "{why}"),
            other => panic!("{method}: {other:?}"),
        }
    }
    // Hostile frames: a `grant` method over a `rules` body, a body that is
    // no request, a claimed frame over the limit. Each is refused and its
    // connection closed.
    for bytes in [
        frame("grant", &Request::Rules),
        raw_frame(&wave("revoke", hyperverse::Body::from(vec![0xffu8; 64]))),
        raw_frame(&wave(
            "grant",
            hyperverse::Body::from(vec![2u8, 0, 0, 0, 0xff]),
        )),
    ] {
        let mut c = connect(&daemon);
        c.write_all(&bytes).unwrap();
        assert!(
            matches!(read_answer(&mut c), Some(Answer::Error(_))),
            "refused with why"
        );
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap_or(0), 0, "then closed");
    }
    let mut c = connect(&daemon);
    c.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    // Still serving, the rules unchanged.
    s.write_all(&frame("rules", &Request::Rules)).unwrap();
    match read_answer(&mut s) {
        Some(Answer::Rules { grants, policy, .. }) => {
            assert!(grants.is_empty(), "{grants:?}");
            assert_eq!(policy, "open");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ok(&daemon.cli(&["spawn", "e", "echo"])), "ok");
    assert_eq!(ok(&daemon.cli(&["ask", "e", "ping", "still"])), "still");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_bad_access_table_stops_the_daemon_before_it_starts() {
    let d = dir("badconfig");
    for (text, key) in [
        ("[access]\npolicy = \"closed\"\n", "access.policy"),
        (
            "[access]\ngrants = [\"send on app to\"]\n",
            "access.grants[0]",
        ),
        ("[access]\nusers = { alice = -5 }\n", "access.users.alice"),
    ] {
        let file = d.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let o = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(&file)
            .env("HYPERVERSE_RUNTIME_DIR", d.join("run"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{text}: {}", err(&o));
        assert!(err(&o).contains(&format!("key `{key}`")), "{}", err(&o));
    }
    let _ = std::fs::remove_dir_all(&d);
}

// The protocol, mirrored: the binary's types are not a library's.

const MAX_FRAME: usize = 1 << 20;
const PROTOCOL: &str = "hv-control/2";

fn connect(d: &Running) -> UnixStream {
    let s = UnixStream::connect(d.run().join("control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn raw_frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

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

fn frame(method: &str, r: &Request) -> Vec<u8> {
    raw_frame(&wave(method, hyperverse::Body::encode(r).unwrap()))
}

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

/// The daemon's `Request`, mirrored up to the access commands (variants
/// are encoded by index: the order is the protocol's).
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
    Fault(()),
    Stop,
    Grant {
        grant: String,
    },
    Revoke {
        grant: String,
    },
    Rules,
}

/// The daemon's `Answer`, mirrored (the rows' fields are not read here).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Answer {
    Error(String),
    Done,
    Reply(Vec<u8>),
    Tree(Vec<serde::de::IgnoredAny>),
    Stats(Vec<(String, u64)>),
    Following,
    Event {
        what: String,
        point: String,
        detail: String,
    },
    Modules(Vec<serde::de::IgnoredAny>),
    Loaded(serde::de::IgnoredAny),
    Progress {
        done: u64,
        total: u64,
    },
    Reloaded(serde::de::IgnoredAny),
    Denied(String),
    Rules {
        policy: String,
        you: String,
        grants: Vec<String>,
        groups: Vec<(String, Vec<String>)>,
    },
}
