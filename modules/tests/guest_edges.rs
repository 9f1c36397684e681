//! Edges of WASM particles found in review, each a bug before its fix: a
//! start cancelled while the host thread was busy leaked its instance; a
//! `$wasm:reload` from any code moved a particle to a version the host had
//! not made current (a reload is no message now: the host moves guests on
//! their Stars' threads); empty guest sends escaped the output limit.

mod common;

use std::time::Duration;

use common::{guest_wat, small_limits};
use hyperverse_modules::{guests, Limits, ModuleStore, WasmHost, WasmKind};
use hyperverse_runtime::{Body, Ctx, Kind, Machine, Particle, ParticleError, Point, Wave};
use tokio::time::timeout;

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

const T: Duration = Duration::from_secs(10);

/// VmSize is per process: the tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A guest whose `init` burns most of its fuel (a few ms), with 16 pages
/// of memory so each live instance is visible in VmSize.
const SLOW_INIT: &str = r#"(module
  (memory (export "memory") 16)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  ;; Any wave with a non-empty body spins (tens of ms); others return at once.
  (func (export "handle") (param i32) (param i32) (param i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.eqz (local.get $blen)) (then (return (i32.const 0))))
    (local.set $i (i32.const 8000000))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#;

fn vm_size_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until the (single) Star's thread has run everything queued before.
async fn drain(machine: &Machine, n: usize) {
    let at = point(&format!("drain{n}"));
    timeout(
        T,
        machine.spawn(at.clone(), Kind::wasm("slow"), Body::empty()),
    )
    .await
    .unwrap()
    .unwrap();
    timeout(T, machine.ask(&at, ("x", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    timeout(T, machine.stop(&at)).await.unwrap().unwrap();
    timeout(T, machine.ask(&point("probe"), ("x", Body::empty())))
        .await
        .unwrap()
        .unwrap();
}

/// A particle killed while its `start` waits for its Star's thread (busy
/// with another guest's spin): when host threads owned the guests, the
/// Start job still made an instance whose reply channel was closed, so no
/// handle ever freed it. Now the start runs on the Star's thread itself;
/// the test still checks that such stops leak no instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_whose_start_is_cancelled_is_freed() {
    let _serial = SERIAL.lock().await;
    const ROUNDS: usize = 40;
    let host = WasmHost::builder()
        .limits(Limits::default().with_fuel(500_000_000))
        .build();
    host.load_wat("slow", SLOW_INIT).unwrap();
    let machine = host
        .install(
            Machine::standalone()
                .stars(1)
                .shutdown_timeout(Duration::from_millis(1)),
            "slow",
        )
        .build()
        .await
        .unwrap();
    timeout(
        T,
        machine.spawn(point("probe"), Kind::wasm("slow"), Body::empty()),
    )
    .await
    .unwrap()
    .unwrap();
    drain(&machine, 0).await;

    // Control: the same spawns and stops, each stop after its start.
    let before = vm_size_kb();
    for i in 0..ROUNDS {
        let at = point(&format!("ok{i}"));
        timeout(
            T,
            machine.spawn(at.clone(), Kind::wasm("slow"), Body::empty()),
        )
        .await
        .unwrap()
        .unwrap();
        timeout(T, machine.stop(&at)).await.unwrap().unwrap();
    }
    drain(&machine, 1).await;
    let control = vm_size_kb() as i64 - before as i64;

    // Stops that land while `start` is waiting for the Star's thread.
    let before = vm_size_kb();
    for i in 0..ROUNDS {
        let at = point(&format!("cut{i}"));
        // The Star's thread is busy with the probe's spin, so the start
        // of `at` waits behind it while `at` is stopped (killed after 1 ms).
        machine
            .signal(&point("probe"), ("spin", Body::from_u64(1)))
            .unwrap();
        machine
            .spawn_nowait(at.clone(), Kind::wasm("slow"), Body::empty())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let _ = timeout(T, machine.stop(&at)).await.unwrap();
    }
    drain(&machine, 2).await;
    let cut = vm_size_kb() as i64 - before as i64;
    assert!(
        host.live("slow").len() == 1,
        "only the probe: {:?}",
        host.live("slow")
    );
    // Each instance reserves at least its 16 pages (1 MiB).
    assert!(
        cut <= control + 4 * 1024,
        "VmSize grew by {cut} KiB after {ROUNDS} cancelled starts (control: {control} KiB): \
         their instances were never freed"
    );
    timeout(T, machine.shutdown()).await.unwrap();
}

/// Any other particle could send `$wasm:reload` "from ROOT" (Machine::ask
/// stamped ROOT), moving a guest to a version the host never promoted. A
/// reload is no message now, and a particle's handler sending control
/// through `Machine::control` is stamped as that particle: refused either
/// way.
struct Mallory;

impl Particle for Mallory {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), wave: Wave) -> Result<Body, ParticleError> {
        let to = wave.body.as_u64().unwrap();
        let reply = ctx
            .machine()
            .control(&point("victim"), Body::from_u64(to), T)
            .await?;
        Ok(reply)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_particle_cannot_forge_the_reload_wave() {
    let _serial = SERIAL.lock().await;
    let host = WasmHost::builder().limits(small_limits()).build();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    let machine = host
        .install(
            Machine::standalone().stars(2).kind("mallory", Mallory),
            "counter",
        )
        .build()
        .await
        .unwrap();
    let victim = point("victim");
    timeout(
        T,
        machine.spawn(victim.clone(), Kind::wasm("counter"), Body::from_u64(7)),
    )
    .await
    .unwrap()
    .unwrap();
    timeout(
        T,
        machine.spawn(point("mallory"), Kind::new("mallory"), Body::empty()),
    )
    .await
    .unwrap()
    .unwrap();
    // A version in the store that the host never made current (the store
    // is public: `host.store()`).
    let v2 = host
        .store()
        .load_wat("counter", guests::COUNTER_V2)
        .unwrap();
    assert_eq!(host.current("counter").unwrap().version().seq, 1);
    let _ = timeout(
        T,
        machine.ask(&point("mallory"), ("go", Body::from_u64(v2.version().seq))),
    )
    .await
    .unwrap();
    let version = timeout(T, machine.ask(&victim, ("version", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        version.as_bytes(),
        &[1],
        "a particle moved the victim to an unpromoted version"
    );
    assert_eq!(machine.record(&victim).unwrap().code_version, 1);
    timeout(T, machine.shutdown()).await.unwrap();
}

/// `hv.send` with empty address, method and body is charged 0 bytes, so the
/// output limit never stops a guest queueing sends without bound.
#[test]
fn empty_sends_are_bounded_by_the_output_limit() {
    let _serial = SERIAL.blocking_lock();
    let store = ModuleStore::new(small_limits().with_max_output_bytes(1024));
    let wat = guest_wat(
        r#"(import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))"#,
        "",
        r#"(local $i i32)
    (local.set $i (i32.const 50000))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $i)))
      (drop (call $send (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 0)"#,
    );
    let module = store.load_wat("spammer", &wat).unwrap();
    let mut guest = module.instantiate().unwrap();
    match guest.handle("go", &[]) {
        Ok(out) => panic!(
            "{} sends queued in one call under a 1024-byte output limit",
            out.sends.len()
        ),
        Err(e) => assert!(
            matches!(e, hyperverse_modules::ModuleError::OutputLimit { .. }),
            "{e}"
        ),
    }
}
