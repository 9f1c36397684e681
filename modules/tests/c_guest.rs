//! A guest written in C with the SDK header (`modules/sdk/c/hyperverse.h`),
//! compiled at test time by clang for wasm32 and run in a Machine: the
//! same contract as the WAT guests, from a real language. (`.ci/run`
//! installs clang and lld when they are missing; without them this test
//! fails and says so.)

use std::sync::{Arc, Mutex};

use hyperverse_modules::{guests, Limits, WasmHost, WasmKind};
use hyperverse_runtime::{Body, Ctx, Kind, Machine, Particle, ParticleError, Point, Wave};

mod common;
use common::compile_c as compile;

/// What a [`Recorder`] heard: each wave's method and body.
type Heard = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Records what it is sent.
struct Recorder(Heard);

impl Particle for Recorder {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        self.0
            .lock()
            .unwrap()
            .push((w.method.to_string(), w.body.as_bytes().to_vec()));
        Ok(Body::empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_guest_counts_replies_sends_to_its_parent_and_takes_over_a_wat_guests_state() {
    let wasm = compile("counter");
    let host = WasmHost::new(Limits::default());
    host.load("counter", &wasm).unwrap();
    host.load_wat("wat_counter", guests::COUNTER_V1).unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let machine = host
        .install(
            host.install(Machine::standalone().stars(2), "counter"),
            "wat_counter",
        )
        .kind("recorder", Recorder(heard.clone()))
        .build()
        .await
        .unwrap();

    // Spawned with a count and its parent's Point.
    let parent: Point = "p".parse().unwrap();
    let at: Point = "p:c".parse().unwrap();
    machine
        .spawn(parent.clone(), "recorder".into(), Body::empty())
        .await
        .unwrap();
    let mut args = 40u64.to_le_bytes().to_vec();
    args.extend_from_slice(b"p");
    machine
        .spawn(at.clone(), Kind::wasm("counter"), Body::from(args))
        .await
        .unwrap();
    machine.signal(&at, ("add", Body::empty())).unwrap();
    let got = machine.ask(&at, ("get", Body::empty())).await.unwrap();
    assert_eq!(got.as_u64(), Some(41));
    // Version 1, as the WAT counter it is the twin of.
    let version = machine.ask(&at, ("version", Body::empty())).await.unwrap();
    assert_eq!(version.as_bytes(), &[1]);
    // A send from C reaches the parent, from the guest's own Point.
    machine.ask(&at, ("notify", Body::empty())).await.unwrap();
    let started = std::time::Instant::now();
    while heard.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no wave heard"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        heard.lock().unwrap()[0],
        ("counted".to_string(), 41u64.to_le_bytes().to_vec())
    );
    // A guest refusing a call (status 2: `notify` with no parent given)
    // crashes like any other, and restarts.
    let orphan: Point = "orphan".parse().unwrap();
    machine
        .spawn(orphan.clone(), Kind::wasm("counter"), Body::from_u64(7))
        .await
        .unwrap();
    let refused = machine.ask(&orphan, ("notify", Body::empty())).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("status 2")),
        "{refused:?}"
    );

    // A WAT counter's live particle hot-reloads to the C counter (the same
    // snapshot: the count, 8 bytes LE), keeping its count.
    let w: Point = "w".parse().unwrap();
    machine
        .spawn(w.clone(), Kind::wasm("wat_counter"), Body::from_u64(5))
        .await
        .unwrap();
    machine.signal(&w, ("add", Body::empty())).unwrap();
    let report = host.reload(&machine, "wat_counter", &wasm).await.unwrap();
    assert_eq!(report.reloaded, vec![w.clone()], "{report:?}");
    let got = machine.ask(&w, ("get", Body::empty())).await.unwrap();
    assert_eq!(got.as_u64(), Some(6));
    let version = machine.ask(&w, ("version", Body::empty())).await.unwrap();
    assert_eq!(version.as_bytes(), &[1]);
    // Now running the C code: the WAT counter refuses `notify`, an unknown
    // method, with status 1; the C counter with its own status 2 (the WAT
    // snapshot gave it no parent to notify).
    let notify = machine.ask(&w, ("notify", Body::empty())).await;
    assert!(
        notify
            .as_ref()
            .is_err_and(|e| e.to_string().contains("status 2")),
        "{notify:?}"
    );
    machine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_key_value_shard_reloads_to_a_new_state_layout_and_refuses_to_go_back() {
    let (v1, v2) = (compile("kv_v1"), compile("kv_v2"));
    let host = WasmHost::new(Limits::default());
    host.load("kv", &v1).unwrap();
    let machine = host
        .install(Machine::standalone().stars(2), "kv")
        .build()
        .await
        .unwrap();
    let shard: Point = "shard".parse().unwrap();
    machine
        .spawn(shard.clone(), Kind::wasm("kv"), Body::empty())
        .await
        .unwrap();
    for put in ["a=1", "bee=twenty-two", "a=one"] {
        machine.ask(&shard, ("put", put)).await.unwrap();
    }
    let get = |key: &'static str| machine.ask(&shard, ("get", key));
    assert_eq!(get("a").await.unwrap().as_bytes(), b"one");
    assert_eq!(
        machine.ask(&shard, ("count", "")).await.unwrap().as_u64(),
        Some(2)
    );
    // A bad put is refused (status 2): a crash, and its Star restarts it
    // empty (init), as any crashed particle.
    let bad = machine.ask(&shard, ("put", "no equals sign")).await;
    assert!(
        bad.as_ref()
            .is_err_and(|e| e.to_string().contains("status 2")),
        "{bad:?}"
    );
    for put in ["a=one", "bee=twenty-two"] {
        machine.ask(&shard, ("put", put)).await.unwrap();
    }

    // Version 2 reads version 1's layout: the entries move, with 0 hits.
    let report = host.reload(&machine, "kv", &v2).await.unwrap();
    assert_eq!(report.reloaded, vec![shard.clone()], "{report:?}");
    assert_eq!(get("bee").await.unwrap().as_bytes(), b"twenty-two");
    assert_eq!(get("bee").await.unwrap().as_bytes(), b"twenty-two");
    let hits = machine.ask(&shard, ("hits", "bee")).await.unwrap();
    assert_eq!(hits.as_u64(), Some(2));
    assert_eq!(
        machine.ask(&shard, ("count", "")).await.unwrap().as_u64(),
        Some(2)
    );

    // Back to version 1: its restore refuses layout 2, so the particle
    // stays on version 2, serving, and version 2 is current again.
    let back = host.reload(&machine, "kv", &v1).await.unwrap();
    assert_eq!(back.failed.len(), 1, "{back:?}");
    assert!(back.rolled_back, "{back:?}");
    assert!(back.failed[0].reason.contains("restore"), "{back:?}");
    let hits = machine.ask(&shard, ("hits", "bee")).await.unwrap();
    assert_eq!(hits.as_u64(), Some(2), "still version 2, state and all");
    assert_eq!(host.current("kv").unwrap().version().seq, 2);
    machine.shutdown().await;
}
