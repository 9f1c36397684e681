//! Issue 10: a reload whose new version could not take over a particle is
//! rolled back, so later spawns and restarts do not start on it; but a
//! newer version loaded meanwhile is never undone, and particles that did
//! move stay moved.

mod common;

use std::time::Duration;

use common::{guest_wat, small_limits};
use hyperverse_modules::{guests, Limits, ModuleStore, WasmHost, WasmKind};
use hyperverse_runtime::{Body, Kind, Machine, Point};

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

async fn machine(host: &WasmHost, module: &str) -> Machine {
    host.install(Machine::standalone().stars(2), module)
        .build()
        .await
        .unwrap()
}

async fn spawn(machine: &Machine, at: &Point, module: &str, count: u64) {
    machine
        .spawn(at.clone(), Kind::wasm(module), Body::from_u64(count))
        .await
        .unwrap();
}

/// What the counter at `at` says its version is (`[1]`, `[2]`).
async fn runs(machine: &Machine, at: &Point) -> Vec<u8> {
    let reply = machine.ask(at, ("version", Body::empty())).await.unwrap();
    reply.as_bytes().to_vec()
}

/// counter v2 whose `restore` traps on an odd count: a reload to it moves
/// the even counters and fails the odd ones.
fn picky_v2() -> String {
    let restore = "    unreachable)\n)";
    assert!(guests::RESTORE_TRAPS.contains(restore));
    guests::RESTORE_TRAPS.replace(
        restore,
        "    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 1))))
    (global.set $count (i64.load (local.get $ptr)))
    (if (i64.ne (i64.and (global.get $count) (i64.const 1)) (i64.const 0))
      (then unreachable))
    (i32.const 0))\n)",
    )
}

/// A guest whose `handle` spins through a long loop (within its fuel;
/// about a second), to keep a particle busy while a reload waits for it.
fn spinner() -> String {
    guest_wat(
        "",
        "(global $i (mut i32) (i32.const 0))",
        "(global.set $i (i32.const 0))
         (block $done
           (loop $spin
             (global.set $i (i32.add (global.get $i) (i32.const 1)))
             (br_if $done (i32.ge_u (global.get $i) (i32.const 500000000)))
             (br $spin)))
         (i32.const 0)",
    )
}

fn spinner_limits() -> Limits {
    small_limits().with_fuel(20_000_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_reload_new_spawns_and_restarts_start_on_the_previous_version() {
    let host = WasmHost::builder().limits(small_limits()).build();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    let machine = machine(&host, "counter").await;
    let (a, b) = (point("a"), point("b"));
    spawn(&machine, &a, "counter", 10).await;
    spawn(&machine, &b, "counter", 20).await;

    let report = host
        .reload_wat(&machine, "counter", guests::RESTORE_TRAPS)
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 2, "{report}");
    assert!(report.rolled_back, "{report}");
    assert!(
        report.to_string().contains("; rolled back to counter@1"),
        "{report}"
    );
    assert_eq!(host.current("counter").unwrap().version().seq, 1);

    // A new spawn starts on v1.
    let c = point("c");
    spawn(&machine, &c, "counter", 30).await;
    assert_eq!(runs(&machine, &c).await, [1]);
    assert_eq!(machine.record(&c).unwrap().code_version, 1);
    // A restart too (an unknown method is a crash of the counter).
    assert!(machine.ask(&a, ("bogus", Body::empty())).await.is_err());
    assert_eq!(runs(&machine, &a).await, [1]);
    let record = machine.record(&a).unwrap();
    assert_eq!((record.code_version, record.restarts), (1, 1));
    // The particle that was not restarted kept its state on v1.
    let count = machine.ask(&b, ("get", Body::empty())).await.unwrap();
    assert_eq!(count.as_u64(), Some(20));

    // The same broken bytes again fail again, and roll back again.
    let again = host
        .reload_wat(&machine, "counter", guests::RESTORE_TRAPS)
        .await
        .unwrap();
    assert_eq!(again.version.seq, 2, "the store's newest version, reused");
    assert!(again.rolled_back, "{again}");
    assert_eq!(host.current("counter").unwrap().version().seq, 1);

    // A good version moves everyone and is not rolled back.
    let fixed = host
        .reload_wat(&machine, "counter", guests::COUNTER_V2)
        .await
        .unwrap();
    assert!(fixed.is_complete() && !fixed.rolled_back, "{fixed}");
    assert!(!fixed.to_string().contains("rolled back"), "{fixed}");
    assert_eq!(fixed.reloaded.len(), 3, "{fixed}");
    assert_eq!(host.current("counter").unwrap().version().seq, 3);
    machine.shutdown().await;
}

/// Particles whose move succeeded stay on the new version after the
/// rollback (moving them back would need the old code to read the new
/// code's snapshot); new spawns and restarts use the previous version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn particles_that_moved_stay_on_the_new_version_after_a_rollback() {
    let host = WasmHost::builder().limits(small_limits()).build();
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    let machine = machine(&host, "counter").await;
    let (even, odd) = (point("even"), point("odd"));
    spawn(&machine, &even, "counter", 4).await;
    spawn(&machine, &odd, "counter", 7).await;

    let report = host
        .reload_wat(&machine, "counter", &picky_v2())
        .await
        .unwrap();
    assert_eq!(report.reloaded, vec![even.clone()], "{report}");
    assert_eq!(report.failed.len(), 1, "{report}");
    assert_eq!(report.failed[0].point, odd);
    assert!(report.rolled_back, "{report}");

    assert_eq!(runs(&machine, &even).await, [2], "moved, and stays moved");
    assert_eq!(machine.record(&even).unwrap().code_version, 2);
    let count = machine.ask(&even, ("add", Body::empty())).await.unwrap();
    assert_eq!(count.as_u64(), Some(5), "with its state, on v2");
    assert_eq!(runs(&machine, &odd).await, [1]);
    assert_eq!(host.current("counter").unwrap().version().seq, 1);

    // The moved one's version is in use, so the store keeps it.
    assert!(host.store().version("counter", 2).is_some());
    // Restarted, the moved particle starts on the current version: v1.
    assert!(machine.ask(&even, ("bogus", Body::empty())).await.is_err());
    assert_eq!(runs(&machine, &even).await, [1]);
    machine.shutdown().await;
}

/// A rollback never undoes a version someone else made current while the
/// reload was waiting for its particles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_does_not_undo_a_newer_version_loaded_meanwhile() {
    let host = WasmHost::builder().limits(spinner_limits()).build();
    host.load_wat("spin", &spinner()).unwrap();
    // v2's artifact compiled up front, so loading it below is instant.
    host.store().load_wat("warm", guests::COUNTER_V2).unwrap();
    let machine = machine(&host, "spin").await;
    let busy = point("busy");
    spawn(&machine, &busy, "spin", 0).await;
    machine.signal(&busy, ("spin", Body::empty())).unwrap();

    // While the reload waits behind the spin, load a newer version.
    let reload = host.reload_wat(&machine, "spin", guests::RESTORE_TRAPS);
    let meanwhile = async {
        while host.current("spin").unwrap().version().seq < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let newer = host.load_wat("spin", guests::COUNTER_V2).unwrap();
        assert_eq!(newer.version().seq, 3);
    };
    let (report, ()) = tokio::join!(reload, meanwhile);
    let report = report.unwrap();

    assert_eq!(report.failed.len(), 1, "{report}");
    assert_eq!(report.failed[0].stays_on, Some(1), "{report}");
    assert!(!report.rolled_back, "{report}");
    assert_eq!(host.current("spin").unwrap().version().seq, 3);
    machine.shutdown().await;
}

/// A particle that did not answer in time says nothing about the new
/// version: no rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_that_does_not_answer_in_time_causes_no_rollback() {
    let host = WasmHost::builder()
        .store(ModuleStore::new(spinner_limits()))
        .reload_timeout(Duration::from_millis(20))
        .build();
    host.load_wat("spin", &spinner()).unwrap();
    let machine = machine(&host, "spin").await;
    let busy = point("busy");
    spawn(&machine, &busy, "spin", 0).await;
    machine.signal(&busy, ("spin", Body::empty())).unwrap();

    let report = host
        .reload_wat(&machine, "spin", guests::COUNTER_V2)
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1, "{report}");
    assert_eq!(report.failed[0].stays_on, None, "{report}");
    assert!(!report.rolled_back, "{report}");
    assert_eq!(host.current("spin").unwrap().version().seq, 2);
    // Reported as not moved, it is never moved later: the reload's task on
    // its Star's thread was stopped at the deadline, so when the spin ends
    // the particle goes on on version 1.
    machine.ask(&busy, ("after", Body::empty())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(machine.record(&busy).unwrap().code_version, 1);
    machine.shutdown().await;
}
