//! Review attacks by a hostile WASM guest (issue 10 hardening): the send
//! scope and lane, and ABI edges wasm-smith does not aim at.
//!
//! Tests are named after the correct behaviour; those that fail today are
//! holes (see the review report), the passing ones are regression tests.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse_modules::{Limits, ModuleError, ModuleStore, WasmHost, WasmKind};
use hyperverse_runtime::{
    Body, Ctx, Kind, Machine, Particle, ParticleError, Point, SpawnError, SpawnOptions, Wave,
    WaveError,
};
use parking_lot::Mutex;

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

/// A guest: `imports`, `data`, `alloc`'s body (param `$len`), `handle`'s
/// body (params `$m $mlen $b $blen`, local `$i`), `init`'s and
/// `snapshot`'s bodies.
fn wat(imports: &str, data: &str, alloc: &str, init: &str, handle: &str, snapshot: &str) -> String {
    format!(
        r#"(module
  (import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "hv" "reply" (func $reply (param i32 i32)))
  (import "hv" "log" (func $log (param i32 i32 i32)))
  {imports}
  (memory (export "memory") 1)
  {data}
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param $len i32) (result i32) {alloc})
  (func (export "init") (param $a i32) (param $alen i32) (result i32) {init})
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $blen i32)
                          (result i32) (local $i i32)
    {handle})
  (func (export "snapshot") (result i64) {snapshot})
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#
    )
}

fn plain(handle: &str) -> String {
    wat(
        "",
        "",
        "(i32.const 1024)",
        "(i32.const 0)",
        handle,
        "(i64.const 0)",
    )
}

// ---------------------------------------------------------------------------
// Hole: the default WASM lane bounds waves, not bytes
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// The default WASM lane bounds the bytes it holds, not only the waves
// ---------------------------------------------------------------------------

/// A guest that sends itself 900 waves of 4 KiB per call (within the
/// default fuel, output limit, per-call and per-second budgets) parked
/// 65,536 × 4 KiB = 256 MiB in its own lane in well under a second when the
/// default lane counted waves only (found by the review); the default lane
/// now also caps the bytes waiting (16 MiB). The test stops as soon as
/// 64 MiB are queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_default_lane_bounds_the_bytes_it_holds_not_only_the_waves() {
    const BODY: usize = 4096;
    const CAP: usize = 64 << 20;
    let fat = wat(
        "",
        r#"(data (i32.const 16) "fat") (data (i32.const 32) "flood")"#,
        "(i32.const 16384)",
        "(i32.const 0)",
        r#"(block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 900)))
      (drop (call $send (i32.const 16) (i32.const 3) (i32.const 32) (i32.const 5)
                        (i32.const 4096) (i32.const 4096)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 0)"#,
        "(i64.const 0)",
    );
    // The defaults: fuel, output limit, send budget and lane.
    let host = WasmHost::builder().build();
    host.load_wat("fat", &fat).unwrap();
    let m = host
        .install(Machine::standalone(), "fat")
        .build()
        .await
        .unwrap();
    let lane = m
        .spawn(point("fat"), Kind::wasm("fat"), Body::empty())
        .await
        .unwrap();
    lane.signal(("flood", Body::empty())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(lane.queued());
        if peak * BODY > CAP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    m.shutdown().await;
    assert!(
        peak * BODY <= CAP,
        "one guest parked {peak} waves of {BODY} bytes ({} MiB) in its own lane",
        (peak * BODY) >> 20
    );
}

// ---------------------------------------------------------------------------
// Withstood: the send scope against Point tricks
// ---------------------------------------------------------------------------

/// Records every wave it gets as `to <- from`.
struct Rec(Arc<Mutex<Vec<String>>>);
impl Particle for Rec {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        self.0.lock().push(format!("{} <- {}", ctx.me(), w.from));
        Ok(Body::empty())
    }
}

/// Addresses that look like the guest's scope and are not: each is denied
/// by the access rules (`hv.send` returns `SEND_DENIED`, the guest runs
/// on) or crashes the call (`AbiViolation` for a text that is no Point),
/// and nothing reaches anyone. In-scope addresses still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_tricks_in_send_addresses_never_leave_the_guests_scope() {
    // Sends one wave, method `x`, to the address in the wave's body.
    let addr = plain(
        "(drop (call $send (local.get $b) (local.get $blen) (i32.const 0) (i32.const 1)
                         (i32.const 0) (i32.const 0)))
    (i32.const 0)",
    );
    let host = WasmHost::builder().limits(common::small_limits()).build();
    host.load_wat("addr", &addr).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let m = host
        .install(Machine::standalone().kind("rec", Rec(log.clone())), "addr")
        .build()
        .await
        .unwrap();
    for at in [
        "app",
        "app:gx",
        "app:sib",
        "shared",
        "shared:db",
        "shared:dbx",
        "g",
        "ROOTx",
    ] {
        m.spawn(point(at), "rec".into(), Body::empty())
            .await
            .unwrap();
    }
    let opts = SpawnOptions {
        grants: vec![point("shared:db")],
        // Every refused address is a crash: room for all of them.
        restart_limit: Some(hyperverse_runtime::RestartLimit {
            max_restarts: 1_000,
            period: Duration::from_secs(5),
            backoff: None,
        }),
        ..SpawnOptions::default()
    };
    m.spawn_with(point("app:g"), Kind::wasm("addr"), Body::empty(), opts)
        .await
        .unwrap();
    m.spawn(point("app:g:kid"), "rec".into(), Body::empty())
        .await
        .unwrap();
    let long = format!("app:g:{}", "k".repeat(300));
    let deep = format!("app:g{}", ":k".repeat(40));
    let bad: Vec<Vec<u8>> = vec![
        b"app:gx".to_vec(),
        b"app:sib".to_vec(),
        b"app:g:".to_vec(),
        b":app:g".to_vec(),
        b"app::g".to_vec(),
        b"app:g ".to_vec(),
        b" app:g".to_vec(),
        b"APP:g".to_vec(),
        b"app:G".to_vec(),
        b"ROOT".to_vec(),
        b"ROOTx".to_vec(),
        b"app:g:ROOT".to_vec(),
        b"shared".to_vec(),
        b"shared:dbx".to_vec(),
        b"g".to_vec(),
        b"".to_vec(),
        "app:g\u{0}".as_bytes().to_vec(),
        "app:gé".as_bytes().to_vec(),
        "app\u{ff1a}g".as_bytes().to_vec(), // a full-width colon
        vec![b'a', b'p', b'p', b':', b'g', 0xff],
        long.into_bytes(),
        deep.into_bytes(),
    ];
    for to in &bad {
        let answer = m.ask(&point("app:g"), ("x", Body::from(to.clone()))).await;
        match answer {
            // A Point the access rules deny: `hv.send` said so, the guest
            // ran on and nothing left (checked below).
            Ok(_) => {}
            Err(WaveError::Crashed { reason, .. }) => assert!(
                reason.contains("may not send to")
                    || reason.contains("outside")
                    || reason.contains("scope")
                    || reason.contains("hv.send"),
                "{:?}: {reason}",
                String::from_utf8_lossy(to)
            ),
            other => panic!(
                "{:?} was not refused: {other:?}",
                String::from_utf8_lossy(to)
            ),
        }
    }
    // Its crashes ended its children: a fresh one, once its last restart
    // is done (while it restarts it takes no children).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match m
            .spawn(point("app:g:kid"), "rec".into(), Body::empty())
            .await
        {
            Ok(_) => break,
            Err(SpawnError::NoParent { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("app:g:kid: {e}"),
        }
    }
    // In scope: its child, its parent, its grant.
    for to in ["app:g:kid", "app", "shared:db"] {
        m.ask(&point("app:g"), ("x", Body::from(to.as_bytes().to_vec())))
            .await
            .unwrap_or_else(|e| panic!("{to}: {e}"));
    }
    // Let the in-scope waves arrive.
    for at in ["app:g:kid", "app", "shared:db"] {
        m.ask(&point(at), ("sync", Body::empty())).await.unwrap();
    }
    let mut got: Vec<String> = log
        .lock()
        .iter()
        .filter(|l| l.ends_with("<- app:g"))
        .cloned()
        .collect();
    got.sort();
    m.shutdown().await;
    assert_eq!(
        got,
        ["app <- app:g", "app:g:kid <- app:g", "shared:db <- app:g"]
    );
}

/// `init` is held to the same rules: a guest whose `init` sends outside
/// its grants is denied (its `hv.send` says so, and it starts all the
/// same: a denial never crashes), and nothing is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_from_init_are_held_to_the_scope() {
    let init_sender = wat(
        "",
        r#"(data (i32.const 16) "stranger")"#,
        "(i32.const 1024)",
        "(drop (call $send (i32.const 16) (i32.const 8) (i32.const 0) (i32.const 1)
                         (i32.const 0) (i32.const 0)))
    (i32.const 0)",
        "(i32.const 0)",
        "(i64.const 0)",
    );
    let host = WasmHost::builder().limits(common::small_limits()).build();
    host.load_wat("init_sender", &init_sender).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let m = host
        .install(
            Machine::standalone().kind("rec", Rec(log.clone())),
            "init_sender",
        )
        .build()
        .await
        .unwrap();
    m.spawn(point("stranger"), "rec".into(), Body::empty())
        .await
        .unwrap();
    let r = m
        .spawn(point("g"), Kind::wasm("init_sender"), Body::empty())
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(m.access_stats().denied_signals, 1, "the denial, counted");
    m.ask(&point("stranger"), ("sync", Body::empty()))
        .await
        .unwrap();
    let got = log.lock().clone();
    m.shutdown().await;
    assert!(got.iter().all(|l| !l.ends_with("<- g")), "{got:?}");
}

// ---------------------------------------------------------------------------
// Withstood: ABI edges, one instance at a time
// ---------------------------------------------------------------------------

fn instance(limits: Limits, wat: &str) -> hyperverse_modules::GuestInstance {
    ModuleStore::new(limits)
        .load_wat("edge", wat)
        .expect("loads")
        .instantiate()
        .expect("instantiates")
}

fn abi(err: &ModuleError) -> bool {
    matches!(err, ModuleError::AbiViolation { .. })
}

/// A snapshot packed as `(u32::MAX << 32) | u32::MAX`, or a range that
/// wraps past the end of memory, is an `AbiViolation`; nothing is read.
#[test]
fn a_snapshot_outside_memory_is_an_abi_violation() {
    for packed in [
        "-1",
        "0xffff00000002",
        "0x0000ffff00000002",
        "0x100010000",
        "0x0000000000010001",
    ] {
        let mut g = instance(
            common::small_limits(),
            &wat(
                "",
                "",
                "(i32.const 1024)",
                "(i32.const 0)",
                "(i32.const 0)",
                &format!("(i64.const {packed})"),
            ),
        );
        let err = g.snapshot().expect_err(packed);
        assert!(abi(&err), "{packed}: {err}");
    }
    // Exactly the whole memory is fine.
    let mut g = instance(
        common::small_limits(),
        &wat(
            "",
            "",
            "(i32.const 1024)",
            "(i32.const 0)",
            "(i32.const 0)",
            "(i64.const 0x10000)",
        ),
    );
    assert_eq!(g.snapshot().unwrap().len(), 65536);
}

/// `alloc` returning the last byte of memory (for more than one byte), -1,
/// or `i32::MIN` is an `AbiViolation` of that call; the instance answers
/// the next call.
#[test]
fn alloc_pointers_at_or_past_the_end_of_memory_are_abi_violations() {
    for ptr in ["65535", "-1", "0x80000000", "65534"] {
        let mut g = instance(
            common::small_limits(),
            &wat(
                "",
                "",
                &format!("(i32.const {ptr})"),
                "(i32.const 0)",
                "(i32.const 0)",
                "(i64.const 0)",
            ),
        );
        let err = g.handle("abc", b"").expect_err(ptr);
        assert!(abi(&err), "{ptr}: {err}");
        let err = g.restore(&[1, 2, 3]).expect_err(ptr);
        assert!(abi(&err), "{ptr}: {err}");
    }
    // The last byte exactly: one byte fits.
    let mut g = instance(
        common::small_limits(),
        &wat(
            "",
            "",
            "(i32.const 65535)",
            "(i32.const 0)",
            "(i32.const 0)",
            "(i64.const 0)",
        ),
    );
    g.handle("a", b"").unwrap();
}

/// Host calls with lengths of `i32::MAX` (or negative, read as > 2 GiB)
/// are refused before anything is copied; the output limit is exact.
#[test]
fn host_call_lengths_are_checked_before_copying_and_the_output_limit_is_exact() {
    let limits = common::small_limits().with_max_output_bytes(1000);
    let call = |body: &str| {
        let mut g = instance(limits, &plain(&format!("{body} (i32.const 0)")));
        g.handle("m", b"")
    };
    for body in [
        "(call $reply (i32.const 0) (i32.const 0x7fffffff))",
        "(call $reply (i32.const 0) (i32.const -1))",
        "(call $log (i32.const 0) (i32.const 0) (i32.const 0x7fffffff))",
        "(drop (call $send (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const -1)))",
        "(drop (call $send (i32.const 0) (i32.const -1) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const -1)))",
        "(call $log (i32.const 0) (i32.const 0) (i32.const 1001))",
        "(call $log (i32.const 0) (i32.const 0) (i32.const 500)) (call $reply (i32.const 0) (i32.const 501))",
    ] {
        let err = call(body).expect_err(body);
        assert!(matches!(err, ModuleError::OutputLimit { .. }), "{body}: {err}");
    }
    // Exactly the limit passes.
    let out = call("(call $log (i32.const 0) (i32.const 0) (i32.const 500)) (call $reply (i32.const 0) (i32.const 500))")
        .unwrap();
    assert_eq!(out.reply.map(|r| r.len()), Some(500));
    // A range past the memory, within the output limit, is an ABI violation.
    let err = call("(call $reply (i32.const 65000) (i32.const 1000))").unwrap_err();
    assert!(abi(&err), "{err}");
}

/// `hv.send` and `hv.reply` are refused in `snapshot`, `restore` and `alloc`
/// during a restore (an `AbiViolation`), so a reload cannot smuggle waves.
#[test]
fn sends_and_replies_outside_init_and_handle_are_abi_violations() {
    let send = "(drop (call $send (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))";
    // In snapshot.
    let mut g = instance(
        common::small_limits(),
        &wat(
            "",
            "",
            "(i32.const 1024)",
            "(i32.const 0)",
            "(i32.const 0)",
            &format!("{send} (i64.const 0)"),
        ),
    );
    assert!(abi(&g.snapshot().unwrap_err()));
    // In alloc, called by the host for a restore.
    let mut g = instance(
        common::small_limits(),
        &wat(
            "",
            "",
            &format!("{send} (i32.const 1024)"),
            "(i32.const 0)",
            "(i32.const 0)",
            "(i64.const 0)",
        ),
    );
    assert!(abi(&g.restore(b"state").unwrap_err()));
    let mut g = instance(
        common::small_limits(),
        &wat(
            "",
            "",
            "(call $reply (i32.const 0) (i32.const 1)) (i32.const 1024)",
            "(i32.const 0)",
            "(i32.const 0)",
            "(i64.const 0)",
        ),
    );
    assert!(abi(&g.restore(b"state").unwrap_err()));
}

/// `memory.grow` by huge deltas in a tight loop within the fuel fails the
/// call (`MemoryLimit` or `OutOfFuel`), with the memory at or below the
/// ceiling; the same instance then answers.
#[test]
fn memory_grow_by_huge_deltas_in_a_loop_is_bounded() {
    let limits = common::small_limits();
    let mut g = instance(
        limits,
        &plain(
            "(block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 100000)))
      (drop (memory.grow (i32.const 0x7fffffff)))
      (drop (memory.grow (i32.const 65535)))
      (drop (memory.grow (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 0)",
        ),
    );
    let err = g.handle("m", b"").unwrap_err();
    assert!(
        matches!(
            err,
            ModuleError::MemoryLimit { .. } | ModuleError::OutOfFuel { .. }
        ),
        "{err}"
    );
    assert!(g.memory_pages() <= limits.effective_max_pages());
}

/// A full default WASM lane does not make `Machine::ask` wait forever: it
/// times out with the Machine's request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_to_a_full_wasm_lane_times_out() {
    // Each wave burns ~500k fuel.
    let slow = plain(
        "(block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 100000)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 0)",
    );
    let host = WasmHost::builder().limits(common::small_limits()).build();
    host.load_wat("slow", &slow).unwrap();
    let m = host
        .install(
            Machine::standalone().request_timeout(Duration::from_millis(300)),
            "slow",
        )
        .build()
        .await
        .unwrap();
    let lane = m
        .spawn(point("slow"), Kind::wasm("slow"), Body::empty())
        .await
        .unwrap();
    // Paused: nothing leaves the lane while it is filled.
    m.inject(&point("slow"), hyperverse_runtime::Fault::Pause)
        .unwrap();
    let mut sent = 0usize;
    while lane.signal(("x", Body::empty())).is_ok() {
        sent += 1;
        assert!(
            sent <= hyperverse_modules::DEFAULT_LANE_CAPACITY + 2,
            "the lane is unbounded"
        );
    }
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        m.ask(&point("slow"), ("x", Body::empty())),
    )
    .await
    .expect("ask returned");
    assert!(matches!(asked, Err(WaveError::Timeout { .. })), "{asked:?}");
    tokio::time::timeout(Duration::from_secs(5), m.shutdown())
        .await
        .expect("shutdown in time");
}
