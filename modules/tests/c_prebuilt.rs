//! The prebuilt C guests (`modules/sdk/c/prebuilt/`, embedded as
//! `guests::C_COUNTER_V1` and `C_COUNTER_V2`), which `hyperverse demo` and
//! `examples/hot_reload.rs` run so that they need no C compiler:
//!
//! - always: they behave as the WAT counters they stand in for, and
//!   hot-reload from one to the other in a Machine, every particle keeping
//!   its count and its parent;
//! - where clang is installed (CI installs it; elsewhere this part is
//!   skipped with a note): they are what their C sources compile to now.
//!   Same behaviour on a scripted sequence of calls whatever the clang, and
//!   the same bytes when it is the clang version that built them (its
//!   output is deterministic). Either failing means `modules/sdk/c/build.sh`
//!   was not run after a change.

use std::sync::{Arc, Mutex};

use hyperverse_modules::{
    guests, CompiledModule, GuestInstance, HandleOutput, Limits, ModuleError, ModuleStore,
    WasmHost, WasmKind,
};
use hyperverse_runtime::{
    Body, Ctx, Kind, Machine, Particle, ParticleError, Point, SpawnError, Wave,
};
use wasmer::wasmparser::{Parser, Payload};

mod common;
use common::le;

/// One call of a script (see [`transcript`]).
#[derive(Debug, Clone)]
enum Step {
    /// A new instance of the module; the steps after it call that one.
    Fresh,
    Init(Vec<u8>),
    Handle(&'static str, Vec<u8>),
    Snapshot,
    Restore(Vec<u8>),
}

use Step::*;

/// `count` as 8 bytes LE, then `parent`: a counter's spawn arguments, and
/// its snapshot.
fn with_parent(count: u64, parent: &str) -> Vec<u8> {
    let mut bytes = le(count);
    bytes.extend_from_slice(parent.as_bytes());
    bytes
}

fn handle(method: &'static str) -> Step {
    Handle(method, Vec::new())
}

/// Calls the WAT counters and the C counters have in common: spawn
/// arguments and snapshots of 8 bytes, `add`, `get`, `version`, and the
/// refusals of bad arguments, bad snapshots and unknown methods.
fn shared_script() -> Vec<Step> {
    vec![
        Fresh,
        Init(Vec::new()),
        handle("version"),
        handle("add"),
        Handle("add", b"a body, ignored".to_vec()),
        handle("get"),
        Snapshot,
        // Unknown methods, a prefix and an extension of a known one among
        // them: status 1.
        handle("nope"),
        handle(""),
        handle("ad"),
        handle("addx"),
        handle("get"),
        Fresh,
        Init(le(41)),
        handle("add"),
        handle("get"),
        Snapshot,
        Fresh,
        Restore(le(u64::MAX - 1)),
        handle("add"),
        handle("get"),
        Snapshot,
        // Bad spawn arguments: status 2; bad snapshots: status 1.
        Fresh,
        Init(b"abc".to_vec()),
        Fresh,
        Restore(Vec::new()),
        Fresh,
        Restore(b"short".to_vec()),
    ]
}

/// Every call of the C counters: [`shared_script`], then a parent to
/// notify, kept in the snapshot, and the bounds on its length.
fn c_script() -> Vec<Step> {
    let longest = "p".repeat(127);
    let too_long = "p".repeat(128);
    let mut script = shared_script();
    script.extend([
        Fresh,
        handle("notify"), // no parent: status 2
        Fresh,
        Init(with_parent(41, "space:app")),
        handle("add"),
        handle("notify"),
        Snapshot,
        Fresh,
        Restore(with_parent(9, "space:other")),
        handle("notify"),
        Snapshot,
        Restore(le(3)), // a snapshot without a parent forgets it
        handle("notify"),
        Snapshot,
        Fresh,
        Init(with_parent(1, &longest)),
        Snapshot,
        Fresh,
        Init(with_parent(1, &too_long)),
        Fresh,
        Restore(with_parent(1, &too_long)),
    ]);
    script
}

/// Runs `script` on `module`: one line per step, with what the call
/// returned (its reply, and its sends and logs if `effects`), or the
/// status it refused with. Any other failure is a line of its own.
fn transcript(module: &CompiledModule, script: &[Step], effects: bool) -> Vec<String> {
    fn refused(e: ModuleError) -> String {
        match e {
            ModuleError::GuestStatus { status, .. } => format!("status {status}"),
            other => format!("failed: {other}"),
        }
    }
    let said = |out: HandleOutput| {
        if effects {
            let logs: Vec<_> = out.logs.iter().map(|l| l.message.as_str()).collect();
            format!(
                "reply {:?}, sends {:?}, logs {logs:?}",
                out.reply, out.sends
            )
        } else {
            format!("reply {:?}", out.reply)
        }
    };
    let mut guest: Option<GuestInstance> = None;
    let mut lines = Vec::new();
    for step in script {
        if let Fresh = step {
            guest = Some(module.instantiate().expect("the module instantiates"));
            continue;
        }
        let g = guest.as_mut().expect("a script starts with Fresh");
        let result = match step {
            Fresh => unreachable!(),
            Init(args) => g.init(args).map(said).unwrap_or_else(refused),
            Handle(method, body) => g.handle(method, body).map(said).unwrap_or_else(refused),
            Snapshot => g
                .snapshot()
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(refused),
            Restore(state) => g
                .restore(state)
                .map(|()| "ok".to_string())
                .unwrap_or_else(refused),
        };
        lines.push(format!("{step:?} -> {result}"));
    }
    lines
}

/// `wasm` loaded as `counter` in a store of its own (so that two builds
/// of the same source are two modules of the same name).
fn load(wasm: &[u8]) -> CompiledModule {
    ModuleStore::new(Limits::default())
        .load("counter", wasm)
        .expect("the module loads")
}

fn load_wat(wat: &str) -> CompiledModule {
    ModuleStore::new(Limits::default())
        .load_wat("counter", wat)
        .expect("the module loads")
}

#[test]
fn the_prebuilt_c_counters_behave_as_the_wat_counters() {
    let script = shared_script();
    let c_v1 = transcript(&load(guests::C_COUNTER_V1), &script, false);
    let c_v2 = transcript(&load(guests::C_COUNTER_V2), &script, false);
    assert_eq!(
        c_v1,
        transcript(&load_wat(guests::COUNTER_V1), &script, false)
    );
    assert_eq!(
        c_v2,
        transcript(&load_wat(guests::COUNTER_V2), &script, false)
    );
    // What the demo and the example rely on, said outright: v1 answers
    // `version` with 1 and `add` with nothing; v2 with 2 and the new count;
    // both keep the count in 8 bytes LE and refuse what they do not know.
    assert_eq!(c_v1[1], r#"Handle("version", []) -> reply Some([1])"#);
    assert_eq!(c_v2[1], r#"Handle("version", []) -> reply Some([2])"#);
    assert_eq!(c_v1[2], r#"Handle("add", []) -> reply None"#);
    assert_eq!(
        c_v2[2],
        format!(r#"Handle("add", []) -> reply Some({:?})"#, le(1))
    );
    for lines in [&c_v1, &c_v2] {
        assert_eq!(lines[5], format!("Snapshot -> {:?}", le(2)));
        assert_eq!(lines[6], r#"Handle("nope", []) -> status 1"#);
        assert_eq!(lines[14], format!("Snapshot -> {:?}", le(42)));
        assert_eq!(lines[18], format!("Snapshot -> {:?}", le(u64::MAX)));
        assert_eq!(lines[19], "Init([97, 98, 99]) -> status 2");
        assert_eq!(lines[20], "Restore([]) -> status 1");
        assert_eq!(lines.len(), 22, "{lines:?}");
    }
}

#[test]
fn the_prebuilt_c_counters_keep_a_parent_in_their_snapshot() {
    for (wasm, version) in [(guests::C_COUNTER_V1, 1), (guests::C_COUNTER_V2, 2)] {
        let lines = transcript(&load(wasm), &c_script(), true);
        let shared = shared_script()
            .iter()
            .filter(|s| !matches!(s, Fresh))
            .count();
        let own = &lines[shared..];
        let expect = |n: usize, tail: &str| {
            assert!(own[n].ends_with(tail), "v{version}: {} ≠ …{tail}", own[n]);
        };
        expect(0, "-> status 2"); // notify without a parent
        expect(
            1,
            &format!(r#"sends [], logs ["counter v{version} (C) started"]"#),
        );
        let counted = |to: &str, n: u64| {
            format!(
                "sends [GuestSend {{ to: {to:?}, method: \"counted\", body: {:?} }}], logs []",
                le(n)
            )
        };
        expect(3, &counted("space:app", 42));
        expect(
            4,
            &format!("Snapshot -> {:?}", with_parent(42, "space:app")),
        );
        expect(5, "-> ok");
        expect(6, &counted("space:other", 9));
        expect(7, &format!("{:?}", with_parent(9, "space:other")));
        expect(8, "-> ok");
        expect(9, "-> status 2");
        expect(10, &format!("{:?}", le(3)));
        expect(11, &format!(r#"logs ["counter v{version} (C) started"]"#));
        expect(12, &format!("{:?}", with_parent(1, &"p".repeat(127))));
        expect(13, "-> status 2");
        expect(14, "-> status 1");
        assert_eq!(own.len(), 15, "{own:?}");
    }
}

/// What a [`Recorder`] heard: each wave's sender, method and body.
type Heard = Arc<Mutex<Vec<(Point, String, Vec<u8>)>>>;

/// Records what it is sent.
struct Recorder(Heard);

impl Particle for Recorder {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        self.0.lock().unwrap().push((
            w.from.clone(),
            w.method.to_string(),
            w.body.as_bytes().to_vec(),
        ));
        Ok(Body::empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prebuilt_c_counters_hot_reload_in_a_machine_keeping_counts_and_parents() {
    let host = WasmHost::new(Limits::default());
    host.load("counter", guests::C_COUNTER_V1).unwrap();
    let heard: Heard = Arc::default();
    let machine = host
        .install(Machine::standalone().stars(2), "counter")
        .kind("recorder", Recorder(heard.clone()))
        .build()
        .await
        .unwrap();
    let parent: Point = "p".parse().unwrap();
    machine
        .spawn(parent.clone(), "recorder".into(), Body::empty())
        .await
        .unwrap();
    // Three counters: one told its parent and started at 10, two from 0.
    let points: Vec<Point> = (0..3).map(|i| format!("p:c{i}").parse().unwrap()).collect();
    for (i, at) in points.iter().enumerate() {
        let args = if i == 0 {
            with_parent(10, "p")
        } else {
            Vec::new()
        };
        machine
            .spawn(at.clone(), Kind::wasm("counter"), Body::from(args))
            .await
            .unwrap();
    }
    let ask = |at: &Point, method: &'static str| machine.ask(at, (method, Body::empty()));
    let mut expected = [10u64, 0, 0];
    for (i, at) in points.iter().enumerate() {
        for _ in 0..=i {
            machine.signal(at, ("add", Body::empty())).unwrap();
        }
        expected[i] += i as u64 + 1;
        assert_eq!(ask(at, "version").await.unwrap().as_bytes(), [1]);
        // v1 answers a request `add` with nothing.
        assert!(ask(at, "add").await.unwrap().as_bytes().is_empty());
        expected[i] += 1;
        assert_eq!(ask(at, "get").await.unwrap().as_u64(), Some(expected[i]));
        assert_eq!(machine.record(at).unwrap().code_version, 1);
    }

    let report = host
        .reload(&machine, "counter", guests::C_COUNTER_V2)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert!(!report.rolled_back, "{report}");
    assert_eq!(report.reloaded, points, "{report}");
    for (i, at) in points.iter().enumerate() {
        assert_eq!(ask(at, "get").await.unwrap().as_u64(), Some(expected[i]));
        assert_eq!(ask(at, "version").await.unwrap().as_bytes(), [2]);
        // v2 answers `add` with the new count.
        expected[i] += 1;
        assert_eq!(ask(at, "add").await.unwrap().as_u64(), Some(expected[i]));
        assert_eq!(machine.record(at).unwrap().code_version, 2);
    }
    // The parent came through the snapshot: v2 notifies it, from the
    // counter's own Point.
    ask(&points[0], "notify").await.unwrap();
    let started = std::time::Instant::now();
    while heard.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the parent heard nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        heard.lock().unwrap()[0],
        (points[0].clone(), "counted".to_string(), le(expected[0]))
    );
    // A counter told no parent refuses `notify` (status 2): a crash.
    let refused = ask(&points[1], "notify").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("status 2")),
        "{refused:?}"
    );
    // Bad spawn arguments are refused by v2's `init`, as by v1's: the
    // spawn fails, and the Machine goes on.
    match machine
        .spawn(
            "bad".parse().unwrap(),
            Kind::wasm("counter"),
            Body::from(b"abc".to_vec()),
        )
        .await
    {
        Err(SpawnError::StartFailed { reason, .. }) => {
            assert!(reason.contains("status 2"), "{reason}")
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert_eq!(
        ask(&points[2], "get").await.unwrap().as_u64(),
        Some(expected[2])
    );
    machine.shutdown().await;
}

/// The contents of `wasm`'s `producers` custom section (the compiler that
/// made it, with its version), if it has one.
fn producers(wasm: &[u8]) -> Option<Vec<u8>> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(section) = payload.expect("a valid module") {
            if section.name() == "producers" {
                return Some(section.data().to_vec());
            }
        }
    }
    None
}

#[test]
fn the_prebuilt_c_counters_are_what_their_sources_compile_to() {
    let Some(clang) = common::clang_version() else {
        eprintln!(
            "note: no clang here, so the prebuilt C guests are not checked against their \
             sources (CI installs clang and does)"
        );
        return;
    };
    let stale = "run modules/sdk/c/build.sh and commit modules/sdk/c/prebuilt/";
    for (source, prebuilt) in [
        ("counter", guests::C_COUNTER_V1),
        ("counter_v2", guests::C_COUNTER_V2),
    ] {
        let fresh = common::compile_c(source);
        let script = c_script();
        assert_eq!(
            transcript(&load(&fresh), &script, true),
            transcript(&load(prebuilt), &script, true),
            "examples/{source}.c, compiled now, behaves otherwise than its prebuilt module: \
             {stale}"
        );
        let (now, then) = (producers(&fresh), producers(prebuilt));
        assert!(then.is_some(), "the prebuilt {source} names no compiler");
        if now == then {
            assert!(
                fresh == prebuilt,
                "examples/{source}.c, compiled now by the clang that built its prebuilt module \
                 ({clang}), gives other bytes: {stale}"
            );
        } else {
            eprintln!(
                "note: {clang} is not the clang that built the prebuilt {source}, so only its \
                 behaviour was compared"
            );
        }
    }
}
