//! Guest ABI v2 (issue 14): a guest asks Rust and WASM particles and uses
//! the replies, supervises children it spawned, sets timers, knows its own
//! Point, parent and restarts, and crashes with a structured reason; every
//! new host function is held to the sandbox's budgets and grants. The
//! guest is `modules/wat/probe_v2.wat` (one-letter methods, see there).

use std::time::{Duration, Instant};

use hyperverse_modules::{
    crash_code, guests, Limits, ModuleError, SendBudget, WasmHost, WasmKind, REFUSED_DENIED,
    REFUSED_OPEN,
};
use hyperverse_runtime::{
    Body, CrashNotice, Ctx, Kind, Machine, Particle, ParticleError, Point, SpawnOptions, Wave,
};
use parking_lot::Mutex;
use std::sync::Arc;

const PROBE: &str = include_str!("../wat/probe_v2.wat");
const T: Duration = Duration::from_secs(10);

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

/// Replies twice the u64 in its body; counts what it got.
struct Doubler;

impl Particle for Doubler {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        Ok(Body::from_u64(if &*w.method == "get" { 21 * 2 } else { 0 }))
    }
}

/// Takes crash notices of its children, for a test to read.
#[derive(Clone, Default)]
struct Watcher(Arc<Mutex<Vec<CrashNotice>>>);

impl Particle for Watcher {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
    async fn crash_notice(&self, _: &Ctx, _: &mut (), n: CrashNotice) -> Result<(), ParticleError> {
        self.0.lock().push(n);
        Ok(())
    }
}

async fn machine(host: &WasmHost, watcher: Watcher) -> Machine {
    let b = Machine::standalone()
        .stars(2)
        .kind("doubler", Doubler)
        .kind("watcher", watcher);
    let b = host.install(b, "probe");
    host.install(b, "counter").build().await.unwrap()
}

fn host() -> WasmHost {
    host_with(WasmHost::builder())
}

fn host_with(b: hyperverse_modules::WasmHostBuilder) -> WasmHost {
    let host = b.limits(Limits::default()).build();
    host.load_wat("probe", PROBE).unwrap();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    host
}

async fn ask(m: &Machine, at: &Point, method: &str, body: impl Into<Body>) -> Body {
    tokio::time::timeout(T, m.ask(at, (method.to_string(), body.into())))
        .await
        .expect("in time")
        .unwrap_or_else(|e| panic!("{method} to {at}: {e}"))
}

fn u64_at(b: &Body, at: usize) -> u64 {
    u64::from_le_bytes(b.as_bytes()[at..at + 8].try_into().unwrap())
}

/// Polls `r` until on_reply has run (its status is no longer -1).
async fn outcome(m: &Machine, at: &Point) -> (i64, u64) {
    let deadline = Instant::now() + T;
    loop {
        let r = ask(m, at, "r", Body::empty()).await;
        let status = u64_at(&r, 0) as i64;
        if status != -1 {
            return (status, u64_at(&r, 8));
        }
        assert!(Instant::now() < deadline, "no on_reply for {at}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_asks_a_wasm_and_a_rust_particle_and_uses_the_replies() {
    let host = host();
    let m = machine(&host, Watcher::default()).await;
    let asker = p("asker");
    m.spawn(asker.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    // A WASM counter in its subtree, counted up to 3.
    m.spawn(p("asker:c"), Kind::wasm("counter"), Body::from_u64(3))
        .await
        .unwrap();
    ask(&m, &asker, "a", "asker:c").await;
    assert_eq!(
        outcome(&m, &asker).await,
        (0, 3),
        "the WASM counter's count"
    );

    // A Rust particle granted to it, on another Star.
    m.spawn_with(
        p("rusty"),
        Kind::new("doubler"),
        Body::empty(),
        SpawnOptions {
            star: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let granted = p("asker2");
    m.spawn_with(
        granted.clone(),
        Kind::wasm("probe"),
        Body::empty(),
        SpawnOptions {
            star: Some(0),
            grants: vec![p("rusty")],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ask(&m, &granted, "a", "rusty").await;
    assert_eq!(
        outcome(&m, &granted).await,
        (0, 42),
        "the Rust particle's reply"
    );

    // An ask that fails (nobody there) comes back as a failure, not a crash.
    ask(&m, &asker, "a", "asker:nobody").await;
    let (status, _) = outcome(&m, &asker).await;
    assert_eq!(status, 1);
    assert_eq!(m.record(&asker).unwrap().restarts, 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_supervises_the_children_it_spawned() {
    let host = host();
    let m = machine(&host, Watcher::default()).await;
    let sup = p("sup");
    // Its init spawns `sup:w`, a temporary probe: the Star will not restart
    // it, the guest does, from its crash notices.
    m.spawn(sup.clone(), Kind::wasm("probe"), Body::from("wasm:probe"))
        .await
        .unwrap();
    let w = p("sup:w");
    let deadline = Instant::now() + T;
    while m.record(&w).is_none() {
        assert!(Instant::now() < deadline, "the child was not spawned");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The child knows where it is.
    assert_eq!(ask(&m, &w, "w", Body::empty()).await.as_bytes(), b"sup:w");
    assert_eq!(ask(&m, &w, "p", Body::empty()).await.as_bytes(), b"sup");
    assert_eq!(
        u64_at(&ask(&m, &w, "W", Body::empty()).await, 0),
        5,
        "too little room: the length, nothing written"
    );

    for round in 1..=3u32 {
        ask(&m, &w, "i", Body::empty()).await;
        // A structured crash: code 42.
        let _ = m.ask(&w, ("x", Body::empty())).await;
        let deadline = Instant::now() + T;
        loop {
            let n = ask(&m, &sup, "N", Body::empty()).await;
            let (notices, code) = (
                u32::from_le_bytes(n.as_bytes()[..4].try_into().unwrap()),
                i32::from_le_bytes(n.as_bytes()[4..].try_into().unwrap()),
            );
            if notices == round {
                assert_eq!(code, 42, "the child's hv.crash code reached its parent");
                break;
            }
            assert!(Instant::now() < deadline, "no crash notice {round}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Respawned by the guest: a new particle (no Star restart), fresh state.
        let deadline = Instant::now() + T;
        loop {
            if let Ok(c) = m.ask(&w, ("c", Body::empty())).await {
                assert_eq!(u64_at(&c, 0), 0, "a fresh child");
                break;
            }
            assert!(Instant::now() < deadline, "not respawned");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            m.record(&w).unwrap().restarts,
            0,
            "the Star did not restart it"
        );
    }
    assert_eq!(m.record(&sup).unwrap().restarts, 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_crash_reason_is_structured_and_its_restart_count_known() {
    let host = host();
    let watcher = Watcher::default();
    let m = machine(&host, watcher.clone()).await;
    m.spawn(p("boss"), Kind::new("watcher"), Body::empty())
        .await
        .unwrap();
    let w = p("boss:w");
    m.spawn(w.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    assert_eq!(u64_at(&ask(&m, &w, "n", Body::empty()).await, 0), 0);
    let err = m.ask(&w, ("x", Body::empty())).await.unwrap_err();
    assert!(err.to_string().contains("guest crash 42"), "{err}");
    assert_eq!(u64_at(&ask(&m, &w, "n", Body::empty()).await, 0), 1);
    // A message length of 1 GiB is clamped by the host, not read.
    let _ = m.ask(&w, ("X", Body::empty())).await.unwrap_err();
    assert_eq!(u64_at(&ask(&m, &w, "n", Body::empty()).await, 0), 2);
    // The parent hears each crash in its own lane: the second notice may
    // still be on its way when the restarted guest answers.
    let t = std::time::Instant::now();
    while watcher.0.lock().len() < 2 && t.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let notices = watcher.0.lock().clone();
    assert_eq!(notices.len(), 2);
    assert_eq!(
        crash_code(&notices[0].reason),
        Some(42),
        "{}",
        notices[0].reason
    );
    assert!(notices[0].reason.contains("asked to die"));
    assert_eq!(crash_code(&notices[1].reason), Some(7));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_send_the_guest_its_wave_and_die_with_their_incarnation() {
    let host = host();
    let m = machine(&host, Watcher::default()).await;
    let at = p("clock");
    m.spawn(at.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    let t0 = Instant::now();
    let id = ask(&m, &at, "t", 30u32.to_le_bytes().to_vec()).await;
    assert!(u64_at(&id, 0) as i64 > 0, "an id");
    assert_eq!(
        u64_at(&ask(&m, &at, "c", Body::empty()).await, 0),
        0,
        "not yet"
    );
    let deadline = Instant::now() + T;
    while u64_at(&ask(&m, &at, "c", Body::empty()).await, 0) == 0 {
        assert!(Instant::now() < deadline, "the timer never fired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(t0.elapsed() >= Duration::from_millis(30));

    // A timer set by an incarnation that crashes never reaches the next.
    ask(&m, &at, "t", 150u32.to_le_bytes().to_vec()).await;
    let _ = m.ask(&at, ("x", Body::empty())).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        u64_at(&ask(&m, &at, "c", Body::empty()).await, 0),
        0,
        "the fresh incarnation got no tick"
    );

    // At most 64 open timers: the 65th is refused, the guest runs on.
    let last = ask(&m, &at, "T", Body::empty()).await;
    assert_eq!(u64_at(&last, 0) as i64, REFUSED_OPEN);
    assert_eq!(m.record(&at).unwrap().restarts, 1, "only the crash above");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_host_function_is_held_to_the_budgets_and_grants() {
    let host = host_with(WasmHost::builder().guest_may_spawn("doubler"));
    let watcher = Watcher::default();
    let m = machine(&host, watcher.clone()).await;
    m.spawn(p("boss"), Kind::new("watcher"), Body::empty())
        .await
        .unwrap();
    let g = p("boss:g");
    m.spawn(g.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();

    // hv.ask out of its grants (its parent's sibling) is refused to the
    // guest at once (REFUSED_DENIED, nothing queued), and it runs on.
    m.spawn(p("other"), Kind::new("doubler"), Body::empty())
        .await
        .unwrap();
    let last = ask(&m, &g, "A", "other").await;
    assert_eq!(u64_at(&last, 0) as i64, REFUSED_DENIED);
    assert_eq!(m.record(&g).unwrap().restarts, 0, "no crash for a denial");
    assert!(watcher.0.lock().is_empty(), "no crash notice");
    // Its parent is in scope.
    ask(&m, &g, "a", "boss").await;
    assert_eq!(outcome(&m, &g).await.0, 0);

    // At most 64 open asks: the 65th of one call is refused.
    m.spawn(p("boss:g:c"), Kind::wasm("counter"), Body::empty())
        .await
        .unwrap();
    let last = ask(&m, &g, "A", "boss:g:c").await;
    assert_eq!(u64_at(&last, 0) as i64, REFUSED_OPEN);

    // hv.spawn: a Rust Kind the host did not grant is refused to the guest
    // (a failed outcome, no crash); a granted one and a WASM Kind spawn.
    // (A fresh probe: the replies to the asks above may still be coming in
    // to the first one's on_reply.)
    let g = p("boss:h");
    m.spawn(g.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    let restarts = m.record(&g).unwrap().restarts;
    ask(&m, &g, "s", "watcher").await;
    assert_eq!(outcome(&m, &g).await.0, 1, "watcher is not granted");
    assert!(m.record(&p("boss:h:w")).is_none());
    ask(&m, &g, "s", "doubler").await;
    let deadline = Instant::now() + T;
    while m.record(&p("boss:h:w")).is_none() {
        assert!(
            Instant::now() < deadline,
            "the granted Kind was not spawned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.record(&p("boss:h:w")).unwrap().kind, Kind::new("doubler"));

    // hv.stop: outside its subtree refused, inside done.
    ask(&m, &g, "k", "other").await;
    assert_eq!(outcome(&m, &g).await.0, 1);
    assert!(m.record(&p("other")).is_some(), "not stopped");
    ask(&m, &g, "k", "boss:h:w").await;
    assert_eq!(outcome(&m, &g).await.0, 0);
    assert!(m.record(&p("boss:h:w")).is_none(), "stopped");
    assert_eq!(
        m.record(&g).unwrap().restarts,
        restarts,
        "no crash for a no"
    );
    m.shutdown().await;

    // The per-call budget counts asks with sends: 65 asks past a budget of 10.
    let host = host_with(WasmHost::builder().send_budget(SendBudget::default().with_per_call(10)));
    let m = machine(&host, Watcher::default()).await;
    m.spawn(p("g"), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("g:c"), Kind::wasm("counter"), Body::empty())
        .await
        .unwrap();
    let err = m.ask(&p("g"), ("A", "g:c")).await.unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    m.shutdown().await;
}

#[test]
fn v2_host_functions_keep_to_their_phases_and_exports() {
    let store = hyperverse_modules::ModuleStore::new(Limits::default());
    let probe = store.load_wat("probe", PROBE).unwrap();
    let mut g = probe.instantiate().unwrap();
    g.init(&[]).unwrap();
    // hv.ask in snapshot is a broken rule, named.
    assert!(matches!(
        g.snapshot().unwrap_err(),
        ModuleError::AbiViolation { message, .. } if message.contains("hv.ask")
    ));
    // Called bare (no runtime), a tagged call queues an effect with a tag.
    let out = g.handle("a", b"x").unwrap();
    assert_eq!(out.effects.len(), 1);
    // A module importing hv.ask must export on_reply.
    let no_reply = PROBE.replace("(func (export \"on_reply\")", "(func $on_reply");
    assert!(matches!(
        store.load_wat("deaf", &no_reply).unwrap_err(),
        ModuleError::MissingExport { export, .. } if export.starts_with("on_reply")
    ));
}

/// Replies after a pause (an ask into it stays open meanwhile).
struct Sleeper;

impl Particle for Sleeper {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Body::from_u64(7))
    }
}

/// Forges the control letter that carries an ask's outcome, for every
/// incarnation and tag it can guess, at the Point in its body.
struct Forger;

impl Particle for Forger {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let target: Point = w.body.as_str()?.parse()?;
        let mut sent = 0u64;
        for incarnation in 1u64..=64 {
            for tag in 1u64..=4 {
                // The layout of the runtime's own letter: kind 2, then
                // incarnation, tag, status (LE), then the reply body.
                let mut letter = vec![2u8];
                letter.extend_from_slice(&incarnation.to_le_bytes());
                letter.extend_from_slice(&tag.to_le_bytes());
                letter.extend_from_slice(&0i32.to_le_bytes());
                letter.extend_from_slice(&666u64.to_le_bytes());
                if ctx.machine().control(&target, letter, T).await.is_ok() {
                    sent += 1;
                }
            }
        }
        Ok(Body::from_u64(sent))
    }
}

/// Attack: no particle can hand a guest a forged reply. Outcomes come as
/// trusted control, honoured only from the Machine and only for an ask of
/// the guest's current incarnation that is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_cannot_forge_the_reply_to_a_guests_ask() {
    let host = host();
    let b = Machine::standalone()
        .stars(2)
        .kind("sleeper", Sleeper)
        .kind("forger", Forger);
    let m = host.install(b, "probe").build().await.unwrap();
    let asker = p("asker");
    m.spawn(asker.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("asker:slow"), Kind::new("sleeper"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("mallory"), Kind::new("forger"), Body::empty())
        .await
        .unwrap();
    // An ask stays open for 300 ms...
    ask(&m, &asker, "a", "asker:slow").await;
    // ...while another particle forges 256 outcomes for it.
    let sent = ask(&m, &p("mallory"), "go", "asker").await;
    assert_eq!(
        sent.as_u64(),
        Some(256),
        "every letter was taken (and ignored)"
    );
    let r = ask(&m, &asker, "r", Body::empty()).await;
    assert_eq!(
        u64_at(&r, 0) as i64,
        -1,
        "no forged outcome reached on_reply"
    );
    // The real one does, once.
    assert_eq!(outcome(&m, &asker).await, (0, 7));
    assert_eq!(m.record(&asker).unwrap().restarts, 0);
    m.shutdown().await;
}

/// Attack (review): a guest whose `on_reply` stops something again, so
/// that every outcome sets off another. The rounds of one wave share one
/// per-call budget, so the wave ends (failing with `SendBudget`, a crash)
/// instead of pinning its Star's thread; the particle yields between
/// rounds, so a neighbour on the same Star answers meanwhile.
const STOP_LOOP: &str = r#"(module
  (import "hv" "stop" (func $stop (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "hv_abi_version") (result i32) (i32.const 2))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) (global.set $heap (i32.const 1024)) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (global.set $heap (i32.const 1024))
    (drop (call $stop (i32.const 0) (i32.const 1)))
    (i32.const 0))
  (func (export "on_reply") (param i64 i32 i32 i32) (result i32)
    (global.set $heap (i32.const 1024))
    (drop (call $stop (i32.const 0) (i32.const 1)))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_that_set_off_outcomes_end_within_the_budget() {
    let host = host();
    host.load_wat("stoploop", STOP_LOOP).unwrap();
    let b = host.install(Machine::standalone().stars(1), "probe");
    let m = host.install(b, "stoploop").build().await.unwrap();
    m.spawn(p("loop"), Kind::wasm("stoploop"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("neighbour"), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    let looping = {
        let m = m.clone();
        tokio::spawn(async move { m.ask(&p("loop"), ("go", Body::empty())).await })
    };
    // The neighbour on the same Star thread answers while the loop runs.
    assert_eq!(
        u64_at(&ask(&m, &p("neighbour"), "c", Body::empty()).await, 0),
        0
    );
    let err = tokio::time::timeout(T, looping)
        .await
        .expect("the wave ends")
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    tokio::time::timeout(T, m.shutdown())
        .await
        .expect("shutdown is not held up");
}

/// Attack (review): a guest may spawn only modules its host has loaded;
/// an unknown `wasm:` Kind is refused to it, with no search on its behalf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_spawn_a_module_its_host_has_not_loaded() {
    let host = host();
    let m = machine(&host, Watcher::default()).await;
    let g = p("g");
    m.spawn(g.clone(), Kind::wasm("probe"), Body::empty())
        .await
        .unwrap();
    ask(&m, &g, "s", "wasm:nowhere").await;
    assert_eq!(outcome(&m, &g).await.0, 1);
    assert!(m.record(&p("g:w")).is_none());
    ask(&m, &g, "s", "wasm:counter").await;
    assert_eq!(outcome(&m, &g).await.0, 0, "a loaded module is spawned");
    m.shutdown().await;
}
