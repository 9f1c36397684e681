//! A hot reload is no message (the host moves guests on their Stars'
//! threads), never a wave: a guest that sends `$wasm:reload` with `hv.send` to
//! another WASM particle sends an ordinary wave, which that particle's
//! guest handles like any other, and nothing is reloaded.

use std::time::Duration;

use hyperverse_modules::{WasmHost, WasmKind};
use hyperverse_runtime::{Body, Kind, Machine, Point};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn point(text: &str) -> Point {
    text.parse().unwrap()
}

/// Counts every wave, whatever its method, and replies `[version, count]`;
/// its snapshot is the count (4 bytes), so a reload keeps it.
fn tally(version: u8) -> String {
    format!(
        r#"(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.const {version}))
    (i32.store8 (i32.const 1) (global.get $n))
    (call $reply (i32.const 0) (i32.const 2))
    (i32.const 0))
  (func (export "snapshot") (result i64)
    (i32.store (i32.const 8) (global.get $n))
    (i64.const 0x0000000800000004))
  (func (export "restore") (param $ptr i32) (param $len i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 4)) (then (return (i32.const 1))))
    (global.set $n (i32.load (local.get $ptr)))
    (i32.const 0))
)"#
    )
}

/// On any wave, sends `$wasm:reload` with body 2 (8 bytes LE: what a reload
/// to version 2 carried when it was a wave) to `forger:victim`, its child.
const FORGER: &str = r#"(module
  (import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "forger:victim")
  (data (i32.const 32) "$wasm:reload")
  (data (i32.const 48) "\02\00\00\00\00\00\00\00")
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (drop (call $send (i32.const 16) (i32.const 13)
                      (i32.const 32) (i32.const 12)
                      (i32.const 48) (i32.const 8)))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sending_a_reload_wave_does_not_reload_another_particle() {
    let host = WasmHost::builder().build();
    host.load_wat("tally", &tally(1)).unwrap();
    host.load_wat("forger", FORGER).unwrap();
    let builder = host.install(Machine::standalone().stars(2), "tally");
    let m = host.install(builder, "forger").build().await.unwrap();
    let (forger, victim) = (point("forger"), point("forger:victim"));
    m.spawn(forger.clone(), Kind::wasm("forger"), Body::empty())
        .await
        .unwrap();
    m.spawn(victim.clone(), Kind::wasm("tally"), Body::empty())
        .await
        .unwrap();
    // Version 2 is current: a reload would move the victim to it.
    host.load_wat("tally", &tally(2)).unwrap();

    for _ in 0..3 {
        timeout(T, m.ask(&forger, ("go", Body::empty())))
            .await
            .unwrap()
            .unwrap();
    }
    // Each forged wave reached the v1 guest as an ordinary wave: this one is
    // its fourth, still on version 1, never restarted.
    let reply = timeout(T, m.ask(&victim, ("n", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.as_bytes(), [1, 4]);
    let record = m.record(&victim).unwrap();
    assert_eq!((record.code_version, record.restarts), (1, 0));

    // A reload by the host does move it, count kept.
    let report = timeout(T, host.reload_wat(&m, "tally", &tally(2)))
        .await
        .unwrap()
        .unwrap();
    assert!(report.reloaded.contains(&victim), "{report}");
    let reply = timeout(T, m.ask(&victim, ("n", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.as_bytes(), [2, 5]);
    assert_eq!(m.record(&victim).unwrap().code_version, 2);
    timeout(T, m.shutdown()).await.unwrap();
}
