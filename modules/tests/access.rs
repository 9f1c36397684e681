//! Access rules on Points for WASM guests (issue 15): a guest's sends and
//! asks are judged by the runtime's rules for its particle as a confined
//! visitor; a denial is a code to the guest, never a crash, and the target
//! never gets the wave. Rule changes take effect for the next wave; a
//! module's grants manifest and its spawn's grants open what they name; a
//! reload needs the `reload` privilege. Each test is named after what it
//! proves.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use hyperverse_modules::{
    guests, ModuleError, ModuleGrants, ModulePath, WasmHost, WasmKind, REFUSED_DENIED, SEND_DENIED,
};
use hyperverse_runtime::access::{AccessPolicy, Privilege, Visitor};
use hyperverse_runtime::{Body, Kind, Machine, Point, SpawnError, SpawnOptions};

/// A guest that sends and asks on demand (ABI v2).
///
/// - `s` body=Point: `hv.send(Point, "add", "")`; replies its result (8 LE).
/// - `a` body=Point: `hv.ask(Point, "get", "", 0)`; replies its result
///   (8 LE: a tag, or a refusal).
/// - `k` body=Point: `hv.stop(Point)`; replies its result (8 LE: a tag).
/// - `r`: replies the last `on_reply` status (8 LE, -1 if none yet) and
///   the reply's first 8 bytes (8 LE).
const AGENT: &str = r#"(module
  (import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "hv" "ask" (func $ask (param i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "stop" (func $stop (param i32 i32) (result i64)))
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "add")
  (data (i32.const 68) "get")
  (global $heap (mut i32) (i32.const 1024))
  (global $status (mut i64) (i64.const -1))
  (global $value (mut i64) (i64.const 0))
  (func (export "hv_abi_version") (result i32) (i32.const 2))
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
    (local.get $ptr))
  (func $reply64 (param $v i64)
    (i64.store (i32.const 0) (local.get $v))
    (call $reply (i32.const 0) (i32.const 8)))
  (func (export "init") (param i32 i32) (result i32)
    (global.set $heap (i32.const 1024))
    (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $bl i32)
                          (result i32)
    (local $op i32)
    (global.set $heap (i32.const 1024))
    (local.set $op (i32.load8_u (local.get $m)))
    (if (i32.eq (local.get $op) (i32.const 115)) ;; s
      (then
        (call $reply64 (i64.extend_i32_s
          (call $send (local.get $b) (local.get $bl) (i32.const 64) (i32.const 3)
                      (i32.const 0) (i32.const 0))))
        (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 97)) ;; a
      (then
        (global.set $status (i64.const -1))
        (call $reply64
          (call $ask (local.get $b) (local.get $bl) (i32.const 68) (i32.const 3)
                     (i32.const 0) (i32.const 0) (i32.const 0)))
        (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 107)) ;; k
      (then
        (global.set $status (i64.const -1))
        (call $reply64 (call $stop (local.get $b) (local.get $bl)))
        (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 114)) ;; r
      (then
        (i64.store (i32.const 0) (global.get $status))
        (i64.store (i32.const 8) (global.get $value))
        (call $reply (i32.const 0) (i32.const 16))))
    (i32.const 0))
  (func (export "on_reply") (param $tag i64) (param $status i32) (param $ptr i32) (param $len i32)
                            (result i32)
    (global.set $status (i64.extend_i32_s (local.get $status)))
    (global.set $value (i64.const 0))
    (if (i32.ge_u (local.get $len) (i32.const 8))
      (then (global.set $value (i64.load (local.get $ptr)))))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#;

const T: Duration = Duration::from_secs(10);

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

fn host() -> WasmHost {
    let host = WasmHost::builder().limits(common::small_limits()).build();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    host
}

/// A Machine with `policy`, running the host's `counter` and `agent`.
async fn boot(host: &WasmHost, policy: AccessPolicy) -> Machine {
    let b = Machine::standalone().access(policy);
    let b = host.install(b, "counter");
    host.install(b, "agent").build().await.unwrap()
}

/// `app` and `db` (counters) and the agent at `app:agent`.
async fn layout(machine: &Machine, opts: SpawnOptions) {
    for at in ["app", "db"] {
        machine
            .spawn(point(at), Kind::wasm("counter"), Body::empty())
            .await
            .unwrap();
    }
    machine
        .spawn_with(point("app:agent"), Kind::wasm("agent"), Body::empty(), opts)
        .await
        .unwrap();
}

async fn call(machine: &Machine, op: &str, to: &str) -> i64 {
    let reply = tokio::time::timeout(
        T,
        machine.ask(
            &point("app:agent"),
            (op.to_string(), Body::from(to.as_bytes().to_vec())),
        ),
    )
    .await
    .expect("in time")
    .unwrap_or_else(|e| panic!("{op} {to}: {e}"));
    i64::from_le_bytes(reply.as_bytes()[..8].try_into().unwrap())
}

/// The agent's `hv.send` to `to`: its result.
async fn send(machine: &Machine, to: &str) -> i64 {
    call(machine, "s", to).await
}

/// The agent's `hv.ask` of `to`: its result (a tag, or a refusal).
async fn ask(machine: &Machine, to: &str) -> i64 {
    call(machine, "a", to).await
}

/// Waits for the agent's `on_reply`: (status, the reply's u64).
async fn answer(machine: &Machine) -> (i64, u64) {
    let deadline = Instant::now() + T;
    loop {
        let reply = machine
            .ask(&point("app:agent"), ("r", Body::empty()))
            .await
            .unwrap();
        let b = reply.as_bytes();
        let status = i64::from_le_bytes(b[..8].try_into().unwrap());
        if status != -1 {
            return (status, u64::from_le_bytes(b[8..16].try_into().unwrap()));
        }
        assert!(Instant::now() < deadline, "no on_reply");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What counter `at` counted (its waves are handled in order, so every
/// signal sent to it before this ask is counted).
async fn count(machine: &Machine, at: &str) -> u64 {
    machine
        .ask(&point(at), ("get", Body::empty()))
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

/// The agent is alive and was never restarted.
fn unhurt(machine: &Machine) {
    let record = machine
        .record(&point("app:agent"))
        .expect("the agent lives");
    assert_eq!(record.restarts, 0, "a denial never crashes the guest");
}

/// Asserts that the agent may not send to or ask `db`, and that `db`
/// counted nothing more than `before`.
async fn denied(machine: &Machine, before: u64) {
    let before_stats = machine.access_stats();
    assert_eq!(send(machine, "db").await, i64::from(SEND_DENIED));
    assert_eq!(ask(machine, "db").await, REFUSED_DENIED);
    // Counted as what they are: a signal and a request.
    let after = machine.access_stats();
    assert_eq!(
        (after.denied_signals, after.denied_requests),
        (
            before_stats.denied_signals + 1,
            before_stats.denied_requests + 1
        ),
        "counted"
    );
    assert_eq!(count(machine, "db").await, before, "db never got the wave");
    unhurt(machine);
}

/// Asserts that the agent may send to and ask `db`, which counted
/// `before` until now.
async fn allowed(machine: &Machine, before: u64) {
    assert_eq!(send(machine, "db").await, 0);
    assert_eq!(count(machine, "db").await, before + 1);
    assert!(ask(machine, "db").await > 0, "a tag");
    assert_eq!(answer(machine).await, (0, before + 1), "db's reply");
    unhurt(machine);
}

async fn policies(test: impl AsyncFn(AccessPolicy)) {
    for policy in [AccessPolicy::Open, AccessPolicy::Enforced] {
        test(policy).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_outside_its_grants_is_denied_and_runs_on_under_either_policy() {
    policies(async |policy| {
        let host = host();
        host.load_wat("agent", AGENT).unwrap();
        let machine = boot(&host, policy).await;
        layout(&machine, SpawnOptions::default()).await;
        denied(&machine, 0).await;
        // A denied address among allowed ones: the others still leave. Its
        // parent and its own Point are its own.
        assert_eq!(send(&machine, "app").await, 0, "{policy:?}");
        assert_eq!(count(&machine, "app").await, 1);
        assert_eq!(send(&machine, "ROOT").await, i64::from(SEND_DENIED));
        assert_eq!(send(&machine, "app:agent:kid").await, 0, "its subtree");
        // An address that is no Point is still the guest breaking the ABI.
        let broken = machine
            .ask(&point("app:agent"), ("s", Body::from(b"db::x".to_vec())))
            .await;
        assert!(broken.is_err(), "{broken:?}");
        machine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_opens_the_next_wave_and_a_revoke_closes_it_again() {
    policies(async |policy| {
        let host = host();
        host.load_wat("agent", AGENT).unwrap();
        let machine = boot(&host, policy).await;
        layout(&machine, SpawnOptions::default()).await;
        denied(&machine, 0).await;
        let grant = "send,ask on db to app:agent".parse().unwrap();
        machine.grant(grant).unwrap();
        allowed(&machine, 0).await;
        machine
            .revoke("send,ask on db to app:agent".parse().unwrap())
            .unwrap();
        denied(&machine, 1).await;
        // A grant to its Kind reaches it too.
        machine
            .grant("send,ask on db:** to kind=wasm:agent".parse().unwrap())
            .unwrap();
        allowed(&machine, 1).await;
        machine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_option_grants_still_open_what_they_name() {
    policies(async |policy| {
        let host = host();
        host.load_wat("agent", AGENT).unwrap();
        let machine = boot(&host, policy).await;
        let opts = SpawnOptions {
            grants: vec![point("db")],
            ..SpawnOptions::default()
        };
        layout(&machine, opts).await;
        allowed(&machine, 0).await;
        // Only what they name.
        machine
            .spawn(point("other"), Kind::wasm("counter"), Body::empty())
            .await
            .unwrap();
        assert_eq!(send(&machine, "other").await, i64::from(SEND_DENIED));
        assert_eq!(count(&machine, "other").await, 0);
        machine.shutdown().await;
    })
    .await;
}

/// A guest's `hv.stop` is judged by the same rules: a Point outside its
/// subtree only with a `stop` grant, never its own line, and a refusal is
/// an outcome for `on_reply`, not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_stops_only_what_the_rules_let_it_and_never_its_own_line() {
    let host = host();
    host.load_wat("agent", AGENT).unwrap();
    let machine = boot(&host, AccessPolicy::Enforced).await;
    layout(&machine, SpawnOptions::default()).await;
    assert!(call(&machine, "k", "db").await > 0);
    assert_eq!(answer(&machine).await.0, 1, "refused");
    assert!(machine.record(&point("db")).is_some(), "db not stopped");
    machine
        .grant("stop on db to app:agent".parse().unwrap())
        .unwrap();
    machine
        .grant("stop on app to app:agent".parse().unwrap())
        .unwrap();
    assert!(call(&machine, "k", "app").await > 0);
    assert_eq!(answer(&machine).await.0, 1, "its own line, granted or not");
    assert!(call(&machine, "k", "db").await > 0);
    assert_eq!(answer(&machine).await.0, 0, "granted");
    assert!(machine.record(&point("db")).is_none(), "db stopped");
    unhurt(&machine);
    machine.shutdown().await;
}

/// A folder with `agent.wat` and, if given, `agent.grants`.
fn module_dir(manifest: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.wat"), AGENT).unwrap();
    if let Some(text) = manifest {
        std::fs::write(dir.path().join("agent.grants"), text).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modules_manifest_grants_its_particles_and_a_new_one_replaces_it() {
    policies(async |policy| {
        let dir = module_dir(Some("# what agents need\nsend,ask on db:**\n"));
        let host = host();
        host.load_file(&dir.path().join("agent.wat")).await.unwrap();
        assert_eq!(
            host.grants("agent"),
            ModuleGrants::parse("agent", "send,ask on db:**").unwrap()
        );
        let machine = boot(&host, policy).await;
        layout(&machine, SpawnOptions::default()).await;
        // In force from its first particle's start, as the Machine's rules.
        let rules: Vec<String> = machine.rules().grants().map(|g| g.to_string()).collect();
        assert!(
            rules.contains(&"send,ask on db:** to kind=wasm:agent".to_string()),
            "{rules:?}"
        );
        allowed(&machine, 0).await;
        // The manifest gone, a reload of the file revokes its grants.
        std::fs::remove_file(dir.path().join("agent.grants")).unwrap();
        host.reload_file(&machine, "agent", |_, _| {})
            .await
            .unwrap();
        assert!(host.grants("agent").is_empty());
        denied(&machine, 1).await;
        machine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_from_the_search_path_is_in_force_for_the_first_particle() {
    let dir = module_dir(Some("send on db"));
    let host = WasmHost::builder()
        .limits(common::small_limits())
        .search_path(ModulePath::new(vec![dir.path().to_path_buf()]))
        .build();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    let machine = boot(&host, AccessPolicy::Enforced).await;
    layout(&machine, SpawnOptions::default()).await;
    assert_eq!(send(&machine, "db").await, 0);
    assert_eq!(count(&machine, "db").await, 1);
    // It grants send, not ask.
    assert_eq!(ask(&machine, "db").await, REFUSED_DENIED);
    unhurt(&machine);
    machine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_needs_the_reload_privilege_on_every_live_particle() {
    let host = host();
    host.load_wat("agent", AGENT).unwrap();
    let machine = boot(&host, AccessPolicy::Open).await;
    layout(&machine, SpawnOptions::default()).await;
    let alice = machine.as_user("alice").unwrap();
    // Other bytes: a new version.
    let v2 = AGENT.replace(
        r#"(data (i32.const 68) "get")"#,
        r#"(data (i32.const 68) "get") (data (i32.const 80) "v2")"#,
    );
    let wasm = wasmer::wat2wasm(v2.as_bytes()).unwrap().into_owned();

    let refused = host
        .reload_as(&machine, &alice, "agent", &wasm, |_, _| {})
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        ModuleError::Denied {
            module: "agent".into(),
            visitor: Visitor::User("alice".into()),
            point: point("app:agent"),
            privilege: Privilege::Reload,
        }
    );
    assert!(refused
        .to_string()
        .contains("user=alice may not reload app:agent"));
    // Nothing changed: still on its first version.
    assert_eq!(machine.record(&point("app:agent")).unwrap().code_version, 1);
    // A user's handle given as the Machine is judged as that user too.
    assert!(matches!(
        host.reload(&alice, "agent", &wasm).await,
        Err(ModuleError::Denied { .. })
    ));

    machine
        .grant("reload on app:** to user=alice".parse().unwrap())
        .unwrap();
    let report = host
        .reload_as(&machine, &alice, "agent", &wasm, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.reloaded, vec![point("app:agent")]);
    assert!(report.is_complete());
    assert!(machine.record(&point("app:agent")).unwrap().code_version > 1);
    // The Machine's own handle, outside every handler, may always.
    host.reload_wat(&machine, "agent", AGENT).await.unwrap();
    unhurt(&machine);
    machine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_manifest_is_a_typed_load_error_and_nothing_changes() {
    let host = host();
    let cases: [(&str, usize); 4] = [
        ("sned on db", 1),
        ("send on db\nsend on db to kind=x", 2),
        ("\n\nsend on a::b", 3),
        ("send db:**", 1),
    ];
    for (text, line) in cases {
        let dir = module_dir(Some(text));
        let err = host
            .load_file(&dir.path().join("agent.wat"))
            .await
            .unwrap_err();
        match &err {
            ModuleError::Manifest {
                module, line: l, ..
            } => assert_eq!((module.as_str(), *l), ("agent", line), "{text:?}: {err}"),
            other => panic!("{text:?}: {other:?}"),
        }
        assert!(host.current("agent").is_none(), "not loaded");
    }
    // Not a file, not UTF-8, too large: the file as a whole.
    let dir = module_dir(None);
    std::fs::create_dir(dir.path().join("agent.grants")).unwrap();
    assert_manifest_error(&host, dir.path()).await;
    let dir = module_dir(None);
    std::fs::write(dir.path().join("agent.grants"), [0xff, 0xfe]).unwrap();
    assert_manifest_error(&host, dir.path()).await;
    let dir = module_dir(None);
    let big = "send on db\n".repeat(hyperverse_modules::MAX_MANIFEST_BYTES as usize / 10);
    std::fs::write(dir.path().join("agent.grants"), big).unwrap();
    assert_manifest_error(&host, dir.path()).await;
    assert!(host.current("agent").is_none());

    // Found on the search path, it fails the first start, typed.
    let dir = module_dir(Some("all on"));
    let host = WasmHost::builder()
        .limits(common::small_limits())
        .search_path(ModulePath::new(vec![dir.path().to_path_buf()]))
        .build();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    let machine = boot(&host, AccessPolicy::Open).await;
    let err = machine
        .spawn(point("agent"), Kind::wasm("agent"), Body::empty())
        .await
        .unwrap_err();
    match err {
        SpawnError::StartFailed { reason, .. } => {
            assert!(reason.contains("grants manifest"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The host runs on.
    machine
        .spawn(point("c"), Kind::wasm("counter"), Body::empty())
        .await
        .unwrap();
    machine.shutdown().await;
}

async fn assert_manifest_error(host: &WasmHost, dir: &Path) {
    let err = host.load_file(&dir.join("agent.wat")).await.unwrap_err();
    assert!(
        matches!(err, ModuleError::Manifest { line: 0, .. }),
        "{err:?}"
    );
}
