//! A hot reload moves guests on their Stars' own threads (`swap.rs`): only
//! the reloaded module's, on every Star, each keeping its state, while the
//! other modules' guests on the same threads go on untouched.

use std::time::Duration;

use hyperverse_modules::{guests, Limits, WasmHost, WasmKind};
use hyperverse_runtime::{Body, Kind, Machine, Point, SpawnOptions};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

async fn count(machine: &Machine, at: &Point) -> u64 {
    // Behind whatever the sender queued (a debug build on two cores can
    // take seconds): the test's own bound, not the default ask timeout.
    let got = machine
        .ask(at, ("get", Body::empty()))
        .within(Some(T))
        .await
        .unwrap();
    got.as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_only_its_modules_guests_on_every_star() {
    let host = WasmHost::new(Limits::default());
    host.load_wat("a", guests::COUNTER_V1).unwrap();
    host.load_wat("b", guests::COUNTER_V1).unwrap();
    let machine = host
        .install(host.install(Machine::standalone().stars(3), "a"), "b")
        .build()
        .await
        .unwrap();
    // Six of each module, two per Star, each with a count of its own.
    let mut spawned = Vec::new();
    for i in 0..6u64 {
        for module in ["a", "b"] {
            let at = point(&format!("{module}{i}"));
            let options = SpawnOptions {
                star: Some(i as usize % 3),
                ..Default::default()
            };
            timeout(
                T,
                machine.spawn_with(at.clone(), Kind::wasm(module), Body::from_u64(i), options),
            )
            .await
            .unwrap()
            .unwrap();
            spawned.push((module, at, i));
        }
    }
    let report = timeout(T, host.reload_wat(&machine, "a", guests::COUNTER_V2))
        .await
        .unwrap()
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.reloaded.len(), 6, "{report}");
    assert!(
        report.current.is_empty() && report.gone.is_empty(),
        "{report}"
    );
    for (module, at, i) in &spawned {
        let version = timeout(T, machine.ask(at, ("version", Body::empty())))
            .await
            .unwrap()
            .unwrap();
        let expected: &[u8] = if *module == "a" { &[2] } else { &[1] };
        assert_eq!(version.as_bytes(), expected, "{at}");
        assert_eq!(
            machine.record(at).unwrap().code_version,
            u64::from(expected[0]),
            "{at}"
        );
        assert_eq!(count(&machine, at).await, *i, "{at} kept its count");
    }
    // Reloading again to the same bytes moves no one: all current.
    let again = timeout(T, host.reload_wat(&machine, "a", guests::COUNTER_V2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.current.len(), 6, "{again}");
    assert!(again.reloaded.is_empty(), "{again}");
    timeout(T, machine.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_sent_during_a_reload_are_all_handled_in_order_by_one_version_or_the_other() {
    let host = WasmHost::new(Limits::default());
    host.load_wat("c", guests::COUNTER_V1).unwrap();
    let machine = host
        .install(Machine::standalone().stars(2), "c")
        .build()
        .await
        .unwrap();
    let points: Vec<Point> = (0..200).map(|i| point(&format!("c{i}"))).collect();
    for at in &points {
        timeout(T, machine.spawn(at.clone(), Kind::wasm("c"), Body::empty()))
            .await
            .unwrap()
            .unwrap();
    }
    // A sender adds to every counter, round after round, while the reload
    // runs; it stops once the reload is done.
    let lanes: Vec<_> = points
        .iter()
        .map(|at| machine.particle(at).unwrap())
        .collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut rounds = 0u64;
            // At least 3 rounds, and at most 100 (20,000 waves), so the
            // lanes never hold more than a debug build drains quickly.
            while (!done.load(std::sync::atomic::Ordering::Relaxed) || rounds < 3) && rounds < 100 {
                for lane in &lanes {
                    lane.signal_waiting(("add", Body::empty())).await.unwrap();
                }
                rounds += 1;
                tokio::task::yield_now().await;
            }
            rounds
        })
    };
    let report = timeout(T, host.reload_wat(&machine, "c", guests::COUNTER_V2))
        .await
        .unwrap()
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = timeout(T, sender).await.unwrap().unwrap();
    assert_eq!(report.reloaded.len(), 200, "{report}");
    for at in &points {
        assert_eq!(count(&machine, at).await, rounds, "{at} lost a wave");
    }
    timeout(T, machine.shutdown()).await.unwrap();
}
