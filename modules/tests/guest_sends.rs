//! What a WASM guest may send (issue 10): a bounded default lane, a send
//! budget per call and per second, and where (the access rules of issue
//! 15: its own subtree, its parent, the Points its spawn grants; see also
//! `access.rs`). Each test is named after what it
//! proves.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::small_limits;

/// [`small_limits`] with fuel for a full call's worth of sends: each
/// `hv.send` is a host call, priced at about a thousand fuel.
fn limits() -> hyperverse_modules::Limits {
    small_limits().with_fuel(20_000_000)
}
use hyperverse_modules::{
    guests, BudgetKind, ModuleError, ModuleStore, SendBudget, WasmHost, WasmKind,
    DEFAULT_WASM_LANE, MAX_SENDS_PER_CALL,
};
use hyperverse_runtime::{
    Body, ChildSpec, ChildStart, CrashNotice, Ctx, Kind, LaneLimit, Machine, Particle,
    ParticleError, Point, Restart, RestartLimit, SpawnError, SpawnOptions, Strategy, SupFlags,
    SupervisorSpec, Wave, WaveError, WhenFull,
};

/// A guest that sends on demand.
///
/// - A wave with an empty body counts it and replies the count (8 bytes
///   LE): how the tests see waves sent to the guest itself.
/// - A wave whose body is `[k: u32 LE][address]` makes `k` `hv.send`s to
///   the address with the wave's method: for the method `flood` each sent
///   wave carries the same body (so a guest flooding itself goes on
///   forever), for any other method an empty body. It replies `[sends that
///   returned 0: u64 LE][sends refused: u64 LE]`.
const SENDER: &str = r#"(module
  (import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $count (mut i64) (i64.const 0))
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (if (i32.gt_u (i32.add (local.get $ptr) (local.get $len)) (i32.const 65536))
      (then unreachable))
    (global.set $heap (i32.add (local.get $ptr) (local.get $len)))
    (local.get $ptr))
  (func (export "init") (param i32 i32) (result i32)
    (global.set $heap (i32.const 1024))
    (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $blen i32)
                          (result i32)
    (local $k i32) (local $i i32) (local $ok i64) (local $refused i64) (local $same i32)
    (global.set $heap (i32.const 1024))
    (if (i32.eqz (local.get $blen)) (then
      (global.set $count (i64.add (global.get $count) (i64.const 1)))
      (i64.store (i32.const 0) (global.get $count))
      (call $reply (i32.const 0) (i32.const 8))
      (return (i32.const 0))))
    (if (i32.lt_u (local.get $blen) (i32.const 4)) (then (return (i32.const 1))))
    (local.set $k (i32.load (local.get $b)))
    ;; "flood" (5 bytes, starting with f) forwards the whole body.
    (local.set $same (i32.and (i32.eq (local.get $mlen) (i32.const 5))
                              (i32.eq (i32.load8_u (local.get $m)) (i32.const 102))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
      (if (i32.eqz (call $send (i32.add (local.get $b) (i32.const 4))
                               (i32.sub (local.get $blen) (i32.const 4))
                               (local.get $m) (local.get $mlen)
                               (local.get $b)
                               (select (local.get $blen) (i32.const 0) (local.get $same))))
        (then (local.set $ok (i64.add (local.get $ok) (i64.const 1))))
        (else (local.set $refused (i64.add (local.get $refused) (i64.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i64.store (i32.const 0) (local.get $ok))
    (i64.store (i32.const 8) (local.get $refused))
    (call $reply (i32.const 0) (i32.const 16))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#;

/// The body that makes [`SENDER`] send `k` waves to `to`.
fn order(k: u32, to: &str) -> Body {
    let mut body = k.to_le_bytes().to_vec();
    body.extend_from_slice(to.as_bytes());
    Body::from(body)
}

/// A Rust parent: counts `add` waves (`get` replies the count), keeps its
/// children's crash notices (`notices` replies `(reason, gave_up)` pairs).
struct Parent;

#[derive(Default)]
struct ParentState {
    adds: u64,
    notices: Vec<CrashNotice>,
}

impl Particle for Parent {
    type State = ParentState;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<ParentState, ParticleError> {
        Ok(ParentState::default())
    }

    async fn handle(
        &self,
        _: &Ctx,
        state: &mut ParentState,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        match &*wave.method {
            "add" => state.adds += 1,
            "get" => return Ok(Body::from_u64(state.adds)),
            "notices" => {
                let notices: Vec<(String, String, bool)> = state
                    .notices
                    .iter()
                    .map(|n| (n.child.to_string(), n.reason.clone(), n.gave_up))
                    .collect();
                return Ok(Body::encode(&notices)?);
            }
            other => return Err(format!("parent: unknown method {other}").into()),
        }
        Ok(Body::empty())
    }

    async fn crash_notice(
        &self,
        _: &Ctx,
        state: &mut ParentState,
        notice: CrashNotice,
    ) -> Result<(), ParticleError> {
        state.notices.push(notice);
        Ok(())
    }
}

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

/// A host with the sample counter, the relay and [`SENDER`] loaded.
fn host_with(budget: SendBudget) -> WasmHost {
    let host = WasmHost::builder()
        .limits(limits())
        .send_budget(budget)
        .build();
    load_all(&host);
    host
}

fn load_all(host: &WasmHost) {
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    host.load_wat("relay", guests::RELAY).unwrap();
    host.load_wat("sender", SENDER).unwrap();
}

/// A Machine with the host's modules, a Rust `parent` Kind, and a
/// supervisor Kind `sup` whose one child, `worker`, is a WASM counter.
async fn boot(host: &WasmHost) -> Machine {
    let sup = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(10)),
        vec![ChildSpec::worker(
            "worker",
            ChildStart::kind(Kind::wasm("counter"), Body::empty()),
        )],
    );
    let mut builder = Machine::standalone()
        .stars(2)
        .kind("parent", Parent)
        .supervisor("sup", sup);
    for module in ["counter", "relay", "sender"] {
        builder = host.install(builder, module);
    }
    builder.build().await.unwrap()
}

async fn spawn(machine: &Machine, at: &str, kind: Kind) {
    machine
        .spawn(point(at), kind, Body::empty())
        .await
        .unwrap_or_else(|e| panic!("{at}: {e}"));
}

async fn spawn_granted(machine: &Machine, at: &str, kind: Kind, grants: &[&str]) {
    let opts = SpawnOptions {
        grants: grants.iter().map(|g| point(g)).collect(),
        ..SpawnOptions::default()
    };
    machine
        .spawn_with(point(at), kind, Body::empty(), opts)
        .await
        .unwrap_or_else(|e| panic!("{at}: {e}"));
}

async fn count(machine: &Machine, at: &str) -> u64 {
    let reply = machine.ask(&point(at), ("get", Body::empty())).await;
    reply
        .unwrap_or_else(|e| panic!("get {at}: {e}"))
        .as_u64()
        .unwrap()
}

/// The reason of the crash that answered a request.
fn crash_reason(answer: Result<Body, WaveError>) -> String {
    match answer {
        Err(WaveError::Crashed { reason, .. }) => reason,
        other => panic!("expected a crash, got {other:?}"),
    }
}

/// `[ok, refused]` from a [`SENDER`] reply.
fn sent(reply: &Body) -> (u64, u64) {
    let bytes = reply.as_bytes();
    assert_eq!(bytes.len(), 16, "{bytes:?}");
    (
        u64::from_le_bytes(bytes[..8].try_into().unwrap()),
        u64::from_le_bytes(bytes[8..].try_into().unwrap()),
    )
}

async fn notices(machine: &Machine, parent: &str) -> Vec<(String, String, bool)> {
    machine
        .ask(&point(parent), ("notices", Body::empty()))
        .await
        .unwrap()
        .decode()
        .unwrap()
}

fn over_budget(particle: &str, budget: BudgetKind, limit: u32) -> String {
    ModuleError::SendBudget {
        module: "sender".into(),
        particle: particle.into(),
        export: "handle".into(),
        budget,
        limit,
    }
    .to_string()
}

/// Issue 10's first attack, replayed: a guest whose every wave sends the
/// most waves a call may to itself, each doing the same. Its lane never
/// holds more than the default capacity (the waves past it are dropped),
/// it crashes on its per-second budget, its restart limit gives it up, and
/// meanwhile the Machine and a bystander keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_flooding_itself_keeps_its_lane_bounded() {
    // A per-second budget the flood exhausts within a few dozen calls even
    // on a loaded machine, yet large enough that the waves it lets out
    // fill the lane before the flooder is given up.
    let budget = SendBudget::default().with_per_second(50_000);
    let host = host_with(budget);
    let machine = boot(&host).await;
    spawn(&machine, "app", Kind::new("parent")).await;
    spawn(&machine, "app:bystander", Kind::wasm("counter")).await;
    let flooder = point("app:flood");
    let opts = SpawnOptions {
        // Two restarts in a minute, then given up: the supervisor's part.
        restart_limit: Some(RestartLimit {
            max_restarts: 2,
            period: Duration::from_secs(60),
            backoff: None,
        }),
        ..SpawnOptions::default()
    };
    let lane = machine
        .spawn_with(flooder.clone(), Kind::wasm("sender"), Body::empty(), opts)
        .await
        .unwrap();
    let capacity = DEFAULT_WASM_LANE.capacity;
    assert_eq!(lane.lane_limit(), Some(DEFAULT_WASM_LANE));

    // Watch the lane's length for the whole flood.
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (done, most, lane) = (done.clone(), most.clone(), lane.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(lane.queued(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };

    machine
        .signal(&flooder, ("flood", order(budget.per_call, "app:flood")))
        .unwrap();
    let started = Instant::now();
    let mut adds = 0;
    let notices = loop {
        // The bystander answers all along.
        machine
            .signal(&point("app:bystander"), ("add", Body::empty()))
            .unwrap();
        adds += 1;
        assert_eq!(count(&machine, "app:bystander").await, adds);
        let notices = notices(&machine, "app").await;
        if notices.iter().any(|(_, _, gave_up)| *gave_up) {
            break notices;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the flooder was not given up: {notices:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let most = most.load(Ordering::Relaxed);
    eprintln!(
        "flood: lane at most {most} of {capacity}, given up after {:?}",
        started.elapsed()
    );
    assert!(most <= capacity, "{most} waves in a lane of {capacity}");
    assert!(
        most > capacity / 2,
        "the flood filled the lane ({most} of {capacity} at most)"
    );
    // Three crashes (two restarts, then given up), each on the budget.
    assert_eq!(notices.len(), 3, "{notices:#?}");
    let expected = over_budget("app:flood", BudgetKind::PerSecond, budget.per_second);
    for (child, reason, _) in &notices {
        assert_eq!(child, "app:flood");
        assert!(reason.contains(&expected), "{reason}");
    }
    assert!(machine.record(&flooder).is_none(), "given up, it is gone");
    // The Machine still spawns and serves.
    spawn(&machine, "late", Kind::wasm("counter")).await;
    machine
        .signal(&point("late"), ("add", Body::empty()))
        .unwrap();
    assert_eq!(count(&machine, "late").await, 1);
    assert_eq!(count(&machine, "app:bystander").await, adds);
    machine.shutdown().await;
}

/// `hv.send` itself refuses past [`MAX_SENDS_PER_CALL`]: the guest sees 1
/// and nothing more is buffered. A WASM particle then fails the call with
/// the typed error (nothing sent), and so it does past a lower per-call
/// budget; a call within the budget sends all it queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_send_past_its_per_call_budget() {
    // In the sandbox alone: refused in hv.send, counted, not buffered.
    let store = ModuleStore::new(limits());
    let mut guest = store
        .load_wat("sender", SENDER)
        .unwrap()
        .instantiate()
        .unwrap();
    let out = guest
        .handle("add", order(MAX_SENDS_PER_CALL + 5, "target").as_bytes())
        .unwrap();
    assert_eq!(out.sends.len(), MAX_SENDS_PER_CALL as usize);
    assert_eq!(out.refused_sends, 5);
    let reply = out.reply.unwrap();
    assert_eq!(&reply[..8], &u64::from(MAX_SENDS_PER_CALL).to_le_bytes());
    assert_eq!(&reply[8..], &5u64.to_le_bytes(), "the guest saw 5 refusals");

    // As a particle under the default budget: past the ceiling, a crash.
    let host = host_with(SendBudget::default());
    let machine = boot(&host).await;
    spawn(&machine, "target", Kind::wasm("counter")).await;
    spawn_granted(&machine, "guest", Kind::wasm("sender"), &["target"]).await;
    let reason = crash_reason(
        machine
            .ask(
                &point("guest"),
                ("add", order(MAX_SENDS_PER_CALL + 1, "target")),
            )
            .await,
    );
    assert_eq!(
        reason,
        over_budget("guest", BudgetKind::PerCall, MAX_SENDS_PER_CALL)
    );
    assert_eq!(count(&machine, "target").await, 0, "nothing was sent");
    machine.shutdown().await;

    // Under a budget of 3 per call: 4 is a crash, 3 go out.
    let host = host_with(SendBudget::default().with_per_call(3));
    let machine = boot(&host).await;
    spawn(&machine, "target", Kind::wasm("counter")).await;
    spawn_granted(&machine, "guest", Kind::wasm("sender"), &["target"]).await;
    let reason = crash_reason(
        machine
            .ask(&point("guest"), ("add", order(4, "target")))
            .await,
    );
    assert_eq!(reason, over_budget("guest", BudgetKind::PerCall, 3));
    assert_eq!(count(&machine, "target").await, 0, "nothing was sent");
    let reply = machine
        .ask(&point("guest"), ("add", order(3, "target")))
        .await
        .unwrap();
    assert_eq!(sent(&reply), (3, 0));
    assert_eq!(count(&machine, "target").await, 3);
    assert_eq!(machine.record(&point("guest")).unwrap().restarts, 1);
    machine.shutdown().await;
}

/// The per-second budget is a bucket: a full second's worth at start, all
/// of a call's sends taken at once or the call fails (nothing sent), and
/// refilled at its rate. A restart (after the crash) starts a full bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_send_past_its_per_second_budget() {
    let host = host_with(SendBudget::default().with_per_second(3));
    let machine = boot(&host).await;
    spawn(&machine, "target", Kind::wasm("counter")).await;
    spawn_granted(&machine, "guest", Kind::wasm("sender"), &["target"]).await;
    let guest = point("guest");

    let reply = machine
        .ask(&guest, ("add", order(3, "target")))
        .await
        .unwrap();
    assert_eq!(sent(&reply), (3, 0));
    // The bucket is empty: refilling 3 tokens takes a second, so even one
    // more within it is refused, and the call sends nothing.
    let reason = crash_reason(machine.ask(&guest, ("add", order(3, "target"))).await);
    assert_eq!(reason, over_budget("guest", BudgetKind::PerSecond, 3));
    assert_eq!(count(&machine, "target").await, 3);

    // Restarted with a full bucket; after a second it is full again.
    let reply = machine
        .ask(&guest, ("add", order(3, "target")))
        .await
        .unwrap();
    assert_eq!(sent(&reply), (3, 0));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let reply = machine
        .ask(&guest, ("add", order(3, "target")))
        .await
        .unwrap();
    assert_eq!(sent(&reply), (3, 0));
    assert_eq!(count(&machine, "target").await, 9);
    assert_eq!(machine.record(&guest).unwrap().restarts, 1);
    machine.shutdown().await;
}

/// Issue 10's second attack, refused by the access rules: a guest
/// sending to a sibling, to another supervisor's child, or to a top-level
/// Point gets `SEND_DENIED` from `hv.send` and runs on (a denial never
/// crashes the sender), and the target gets nothing. Sends from `init`
/// obey the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_send_outside_its_subtree_parent_and_grants() {
    let host = host_with(SendBudget::default());
    let machine = boot(&host).await;
    spawn(&machine, "app", Kind::new("parent")).await;
    spawn(&machine, "app:sibling", Kind::wasm("counter")).await;
    spawn(&machine, "other", Kind::new("sup")).await;
    spawn(&machine, "top", Kind::wasm("counter")).await;
    // Granted something else: grants open only what they name.
    spawn_granted(&machine, "app:guest", Kind::wasm("sender"), &["top:below"]).await;
    assert_eq!(
        count(&machine, "other:worker").await,
        0,
        "the stranger's child"
    );

    let denied_before = machine.access_stats().denied_signals;
    let targets = ["app:sibling", "other:worker", "top", "other"];
    for to in targets {
        let reply = machine
            .ask(&point("app:guest"), ("add", order(1, to)))
            .await
            .unwrap_or_else(|e| panic!("{to}: {e}"));
        assert_eq!(sent(&reply), (0, 1), "{to} denied");
    }
    // Allowed waves among denied ones leave; the denied ones do not.
    let reply = machine
        .ask(&point("app:guest"), ("add", order(2, "top")))
        .await
        .unwrap();
    assert_eq!(sent(&reply), (0, 2));
    for to in ["app:sibling", "other:worker", "top"] {
        assert_eq!(count(&machine, to).await, 0, "{to} received nothing");
    }
    assert_eq!(count(&machine, "app").await, 0);
    assert_eq!(
        machine.access_stats().denied_signals - denied_before,
        targets.len() as u64 + 2,
        "each denial counted"
    );
    assert!(notices(&machine, "app").await.is_empty(), "no crash");
    assert_eq!(machine.record(&point("app:guest")).unwrap().restarts, 0);
    // The supervisor's child was never touched.
    let children = machine.supervisor(&point("other")).which_children().await;
    assert_eq!(children.unwrap().len(), 1);

    // From `init`: the relay greets the Point in its arguments; denied, it
    // starts all the same and the greeting never arrives.
    let opts = SpawnOptions {
        restart: Restart::Temporary,
        ..SpawnOptions::default()
    };
    machine
        .spawn_with(
            point("app:greeter"),
            Kind::wasm("relay"),
            "top".into(),
            opts,
        )
        .await
        .unwrap();
    assert_eq!(count(&machine, "top").await, 0);
    machine.shutdown().await;
}

/// The other side of the scope: a guest reaches itself, its children
/// (and theirs), its parent, and each granted Point and what is below it;
/// its grants are kept on its cell across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_may_send_to_its_parent_its_children_and_granted_points() {
    let host = host_with(SendBudget::default());
    let machine = boot(&host).await;
    spawn(&machine, "app", Kind::new("parent")).await;
    spawn_granted(&machine, "app:guest", Kind::wasm("sender"), &["shared"]).await;
    spawn(&machine, "app:guest:kid", Kind::wasm("counter")).await;
    spawn(&machine, "app:guest:kid:grandkid", Kind::wasm("counter")).await;
    spawn(&machine, "shared", Kind::wasm("counter")).await;
    spawn(&machine, "shared:deep", Kind::wasm("counter")).await;
    let guest = point("app:guest");
    let grants = machine.particle(&guest).unwrap().grants().to_vec();
    assert_eq!(grants, vec![point("shared")]);

    for to in [
        "app",
        "app:guest:kid",
        "app:guest:kid:grandkid",
        "shared",
        "shared:deep",
    ] {
        let reply = machine.ask(&guest, ("add", order(2, to))).await.unwrap();
        assert_eq!(sent(&reply), (2, 0), "{to}");
        assert_eq!(count(&machine, to).await, 2, "{to}");
    }
    // Itself: the empty-bodied `ping` it sent is counted before this ask.
    machine
        .ask(&guest, ("ping", order(1, "app:guest")))
        .await
        .unwrap();
    let counted = machine.ask(&guest, ("ping", Body::empty())).await.unwrap();
    assert_eq!(counted.as_u64(), Some(2));

    // A crash (an address that is no Point) keeps the grants: the
    // restarted guest still reaches what it was granted.
    crash_reason(machine.ask(&guest, ("add", order(1, "else::where"))).await);
    assert_eq!(machine.record(&guest).unwrap().restarts, 1);
    assert_eq!(
        machine.particle(&guest).unwrap().grants(),
        &[point("shared")]
    );
    machine
        .ask(&guest, ("add", order(1, "shared")))
        .await
        .unwrap();
    assert_eq!(count(&machine, "shared").await, 3);
    machine.shutdown().await;
}

/// WASM particles get the host's default lane; an explicit lane limit in
/// the spawn options wins, a host may choose another default or none, and
/// Rust Kinds stay unbounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_lane_limit_overrides_the_wasm_default() {
    let host = host_with(SendBudget::default());
    let machine = boot(&host).await;
    let lane_of = |at: &str| machine.particle(&point(at)).unwrap().lane_limit();

    spawn(&machine, "default", Kind::wasm("counter")).await;
    assert_eq!(lane_of("default"), Some(DEFAULT_WASM_LANE));
    spawn(&machine, "rust", Kind::new("parent")).await;
    assert_eq!(lane_of("rust"), None, "Rust Kinds keep unbounded lanes");

    let explicit = LaneLimit {
        capacity: 2,
        when_full: WhenFull::Reject,
        max_bytes: None,
    };
    let opts = SpawnOptions {
        lane: Some(explicit),
        ..SpawnOptions::default()
    };
    let lane = machine
        .spawn_with(
            point("explicit"),
            Kind::wasm("counter"),
            Body::empty(),
            opts,
        )
        .await
        .unwrap();
    assert_eq!(lane_of("explicit"), Some(explicit));
    // The explicit limit is the one enforced: a burst overflows 2, not 65,536.
    let mut full = None;
    for _ in 0..10_000 {
        if let Err(e) = lane.signal(("add", Body::empty())) {
            full = Some(WaveError::from(e));
            break;
        }
    }
    match full {
        Some(WaveError::LaneFull { capacity, .. }) => assert_eq!(capacity, 2),
        other => panic!("expected LaneFull, got {other:?}"),
    }
    machine.shutdown().await;

    // A host with another default, or with none.
    let custom = LaneLimit {
        capacity: 100,
        when_full: WhenFull::Reject,
        max_bytes: None,
    };
    for (default, expected) in [(Some(custom), Some(custom)), (None, None)] {
        let host = WasmHost::builder()
            .limits(limits())
            .lane_limit(default)
            .build();
        load_all(&host);
        let machine = boot(&host).await;
        spawn(&machine, "c", Kind::wasm("counter")).await;
        assert_eq!(
            machine.particle(&point("c")).unwrap().lane_limit(),
            expected
        );
        machine.shutdown().await;
    }

    // A default of capacity 0 is refused at spawn, as an explicit one is.
    let host = WasmHost::builder()
        .limits(limits())
        .lane_limit(Some(LaneLimit {
            capacity: 0,
            when_full: WhenFull::Wait,
            max_bytes: None,
        }))
        .build();
    load_all(&host);
    let machine = boot(&host).await;
    assert!(matches!(
        machine
            .spawn(point("c"), Kind::wasm("counter"), Body::empty())
            .await,
        Err(SpawnError::BadLaneLimit { .. })
    ));
    machine.shutdown().await;
}
