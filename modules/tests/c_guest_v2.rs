//! Guests written in C with the SDK header's ABI v2 (`modules/sdk/c`):
//! `examples/supervisor.c` spawns temporary `examples/worker.c` children,
//! restarts each from its crash notices (with the child's `hv_crash` code),
//! and asks them for their counts, using the replies. Both are compiled at
//! test time by clang for wasm32, as `c_guest.rs` does, and run in a
//! Machine. Without clang and wasm-ld these tests print a note and skip,
//! unless `CI` is set (`.ci/run` installs them): then they fail.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hyperverse_modules::{Limits, WasmHost, WasmKind};
use hyperverse_runtime::{Body, Kind, Machine, Point};

const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/c");
const T: Duration = Duration::from_secs(10);

/// True if clang and wasm-ld can be run; if not, a note (and, under CI,
/// a failure: CI has them).
fn have_toolchain() -> bool {
    let runs = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    let missing: Vec<_> = ["clang", "wasm-ld"]
        .into_iter()
        .filter(|t| !runs(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} missing: .ci/run installs clang and lld"
    );
    eprintln!("note: skipped, {missing:?} not installed (apt-get install clang lld)");
    false
}

/// Compiles C `source` with the header's recipe plus `defines` (see
/// `common::clang`).
fn clang(source: &Path, defines: &[&str]) -> Result<Vec<u8>, String> {
    common::clang(source, defines)
}

/// Compiles `sdk/c/examples/NAME.c`.
fn compile(name: &str) -> Vec<u8> {
    let source = Path::new(SDK).join("examples").join(format!("{name}.c"));
    clang(&source, &[]).unwrap_or_else(|e| panic!("clang failed on {name}.c:\n{e}"))
}

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

async fn ask(m: &Machine, at: &Point, method: &str, body: impl Into<Body>) -> Vec<u8> {
    tokio::time::timeout(T, m.ask(at, (method.to_string(), body.into())))
        .await
        .expect("in time")
        .unwrap_or_else(|e| panic!("{method} to {at}: {e}"))
        .as_bytes()
        .to_vec()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// What the supervisor knows of one child (its `child` method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChildView {
    up: bool,
    restarts: u32,
    last_code: i32,
    failed: u32,
}

async fn child_view(m: &Machine, sup: &Point, name: &str) -> ChildView {
    let b = ask(m, sup, "child", name.to_string()).await;
    ChildView {
        up: u32_at(&b, 0) == 1,
        restarts: u32_at(&b, 4),
        last_code: u32_at(&b, 8) as i32,
        failed: u32_at(&b, 12),
    }
}

/// Polls until `done` holds of what `view` returns; that value.
async fn until<V: std::fmt::Debug, F: std::future::Future<Output = V>>(
    what: &str,
    mut view: impl FnMut() -> F,
    done: impl Fn(&V) -> bool,
) -> V {
    let deadline = Instant::now() + T;
    loop {
        let v = view().await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {v:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The supervisor's last ask: (status, count), once its reply came.
async fn last_ask(m: &Machine, sup: &Point) -> (i64, u64) {
    until(
        "the ask's reply reached on_reply",
        || async {
            let b = ask(m, sup, "last", Body::empty()).await;
            (u64_at(&b, 0) as i64, u64_at(&b, 8))
        },
        |(status, _)| *status != -1,
    )
    .await
}

async fn machine() -> (WasmHost, Machine) {
    let host = WasmHost::new(Limits::default());
    host.load("worker", &compile("worker")).unwrap();
    host.load("supervisor", &compile("supervisor")).unwrap();
    let b = host.install(Machine::standalone().stars(2), "worker");
    let m = host.install(b, "supervisor").build().await.unwrap();
    (host, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_supervisor_spawns_restarts_and_asks_its_workers() {
    if !have_toolchain() {
        return;
    }
    let (_host, m) = machine().await;
    // A Point longer than the header's first hv.self buffer (64 bytes), so
    // hv_me must ask again with more room: the children's addresses are
    // built from it.
    // (Its parent must live first: a worker will do.)
    let top = p("a-space-with-a-name-long-enough-for-the-test");
    m.spawn(top.clone(), Kind::wasm("worker"), Body::empty())
        .await
        .unwrap();
    let sup = top.child("supervisor-of-workers").unwrap();
    assert!(sup.to_string().len() > 64);
    let mut args = vec![3u8];
    args.extend_from_slice(b"wasm:worker");
    m.spawn(sup.clone(), Kind::wasm("supervisor"), Body::from(args))
        .await
        .unwrap();
    let child = |i: usize| p(&format!("{sup}:w{i}"));

    // Its init spawned three temporary children; each spawn's outcome came
    // to its on_reply.
    for i in 0..3 {
        let name = format!("w{i}");
        let view = until(
            "spawned",
            || child_view(&m, &sup, &name),
            |v: &ChildView| v.up,
        )
        .await;
        assert_eq!(
            view,
            ChildView {
                up: true,
                restarts: 0,
                last_code: -1,
                failed: 0
            }
        );
        let w = child(i);
        assert!(m.record(&w).is_some(), "{w} lives");
        // Spawned with its args: the count (i + 1) * 100.
        assert_eq!(
            u64_at(&ask(&m, &w, "get", Body::empty()).await, 0),
            (i as u64 + 1) * 100
        );
        // hv_me and hv_parent, past the first buffer too.
        assert_eq!(
            ask(&m, &w, "who", Body::empty()).await,
            format!("{w}|{sup}").into_bytes()
        );
    }
    assert!(m.record(&child(3)).is_none(), "only the three asked for");

    // An ask's reply comes to on_reply and is used: kept and added up.
    let tag = u64_at(&ask(&m, &sup, "ask", "w1").await, 0) as i64;
    assert!(tag > 0, "a tag, not a refusal: {tag}");
    assert_eq!(last_ask(&m, &sup).await, (0, 200));
    ask(&m, &child(1), "add", Body::empty()).await;
    ask(&m, &child(1), "add", Body::empty()).await;
    ask(&m, &sup, "ask", "w1").await;
    assert_eq!(last_ask(&m, &sup).await, (0, 202), "the child's count now");
    assert_eq!(u64_at(&ask(&m, &sup, "total", Body::empty()).await, 0), 402);

    // A child's hv_crash code reaches the supervisor, which respawns it:
    // a new particle (its Star does not restart a temporary child), so it
    // starts again from its args.
    for (round, code) in [(1u32, 42i32), (2, 7)] {
        let err = m
            .ask(&child(1), ("crash", code.to_le_bytes().to_vec()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("guest crash {code}:")),
            "{err}"
        );
        let view = until(
            "the crash notice reached the supervisor and it respawned w1",
            || child_view(&m, &sup, "w1"),
            |v: &ChildView| v.restarts == round && v.up,
        )
        .await;
        assert_eq!(view.last_code, code, "the child's hv_crash code");
        let count = until(
            "the respawned w1 answers",
            || async {
                m.ask(&child(1), ("get", Body::empty()))
                    .await
                    .ok()
                    .map(|b| u64_at(b.as_bytes(), 0))
            },
            Option::is_some,
        )
        .await;
        assert_eq!(count, Some(200), "fresh from its args, not the old 202");
        assert_eq!(
            m.record(&child(1)).unwrap().restarts,
            0,
            "not a Star restart"
        );
    }

    // A crash that is no hv_crash (a refused call, status 1) has no code.
    let err = m
        .ask(&child(0), ("no such method", Body::empty()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("status 1"), "{err}");
    let view = until(
        "w0 respawned",
        || child_view(&m, &sup, "w0"),
        |v: &ChildView| v.restarts == 1 && v.up,
    )
    .await;
    assert_eq!(view.last_code, -1, "HV_NO_CODE");

    // The others were left alone; the supervisor itself never crashed.
    assert_eq!(
        child_view(&m, &sup, "w2").await,
        ChildView {
            up: true,
            restarts: 0,
            last_code: -1,
            failed: 0
        }
    );
    assert_eq!(m.record(&sup).unwrap().restarts, 0);

    // An ask to a child that is gone fails, as an outcome, not a crash.
    tokio::time::timeout(T, m.stop(&child(2)))
        .await
        .unwrap()
        .unwrap();
    ask(&m, &sup, "ask", "w2").await;
    let (status, count) = last_ask(&m, &sup).await;
    assert_eq!((status, count), (1, 0), "failed, nothing used");
    assert_eq!(u64_at(&ask(&m, &sup, "total", Body::empty()).await, 0), 402);
    assert_eq!(m.record(&sup).unwrap().restarts, 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_worker_knows_its_place_and_restarts() {
    if !have_toolchain() {
        return;
    }
    let (_host, m) = machine().await;
    // Directly under the root: no parent; permanent, so its Star restarts it.
    let solo = p("solo");
    m.spawn(solo.clone(), Kind::wasm("worker"), Body::from_u64(5))
        .await
        .unwrap();
    assert_eq!(ask(&m, &solo, "who", Body::empty()).await, b"solo|");
    assert_eq!(
        u64_at(&ask(&m, &solo, "restarts", Body::empty()).await, 0),
        0
    );
    let err = m
        .ask(&solo, ("crash", 9i32.to_le_bytes().to_vec()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("guest crash 9: asked to crash"),
        "{err}"
    );
    assert_eq!(
        u64_at(&ask(&m, &solo, "restarts", Body::empty()).await, 0),
        1
    );
    assert_eq!(u64_at(&ask(&m, &solo, "get", Body::empty()).await, 0), 5);
    m.shutdown().await;
}

#[test]
fn the_header_turns_the_on_reply_rule_into_a_build_error() {
    if !have_toolchain() {
        return;
    }
    // The ABI refuses to load a module importing hv.ask without exporting
    // on_reply; with the header, such a module is never built: hv_ask
    // exists only with HV_ON_REPLY, which makes hv_on_reply required.
    let dir = std::env::temp_dir().join(format!("hv-c-v2-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("asker.c");
    std::fs::write(
        &source,
        r#"#define HV_MAIN
#include "hyperverse.h"
int32_t hv_init(const uint8_t *a, uint32_t l) {
    (void)a; (void)l;
    return hv_ask("p:c", "get", 0, 0, 0) > 0 ? HV_OK : 2;
}
int32_t hv_handle(const char *m, uint32_t ml, const uint8_t *b, uint32_t bl) {
    (void)m; (void)ml; (void)b; (void)bl;
    return HV_OK;
}
hv_bytes hv_snapshot(void) { hv_bytes b = {0, 0}; return b; }
int32_t hv_restore(const uint8_t *s, uint32_t l) { (void)s; (void)l; return HV_OK; }
#ifdef DEFINE_ON_REPLY
int32_t hv_on_reply(int64_t t, int32_t s, const uint8_t *b, uint32_t l) {
    (void)t; (void)s; (void)b; (void)l;
    return HV_OK;
}
#endif
"#,
    )
    .unwrap();
    let undeclared = clang(&source, &[]).unwrap_err();
    assert!(undeclared.contains("hv_ask"), "{undeclared}");
    let unlinked = clang(&source, &["HV_ON_REPLY"]).unwrap_err();
    assert!(
        unlinked.contains("undefined symbol: hv_on_reply"),
        "{unlinked}"
    );
    let wasm = clang(&source, &["HV_ON_REPLY", "DEFINE_ON_REPLY"]).unwrap();
    let store = hyperverse_modules::ModuleStore::new(Limits::default());
    let module = store.load("asker", &wasm).unwrap();
    let mut guest = module.instantiate().unwrap();
    let out = guest.init(&[]).unwrap();
    assert_eq!(out.effects.len(), 1, "the ask was queued: {out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
