//! Attacks on pooled guest memories (`memory_pool.rs`), the `hv_inbox`
//! export (`instance.rs`) and the WASM particle's control hook.
//!
//! Pool: every test runs on its own thread, and memories are pooled per
//! thread, so a guest made after another was dropped on the same test
//! thread gets the dropped one's reservation back. The tests check that
//! such a guest sees none of the old bytes, reaches exactly its own size
//! (not the old, bigger one), and that `memory.grow`, `memory.size` and the
//! ceiling answer exactly as for a fresh memory (compared with a run on a
//! new thread, whose pool is empty).
//!
//! Inbox: ranges at the edges of memory, over the guest's own data, made
//! by growing inside `hv_inbox`, and the other calls whose bytes go in
//! (init, restore, on_reply, on_crash_notice).
//!
//! Control: garbage control bodies sent to a WASM particle must be refused
//! without crashing it or touching its state.

mod common;

use std::time::Duration;

use common::small_limits;
use hyperverse_modules::{
    guests, GuestInstance, Limits, ModuleError, ModuleStore, WasmHost, WasmKind,
};
use hyperverse_runtime::{Body, Kind, Machine, Point};
use tokio::time::timeout;

const PAGE: u32 = 65_536;

/// Limits of `small_limits` (32 pages) with fuel for scanning 2 MiB.
fn limits() -> Limits {
    small_limits().with_fuel(200_000_000)
}

fn store() -> ModuleStore {
    ModuleStore::new(limits())
}

/// A guest driven by one-letter methods (body: an i32 LE argument):
/// `f` fills [16, size) with the byte arg, `g` grows by arg pages, `s`
/// replies memory.size, `l` loads the byte at arg, `c` counts the nonzero
/// 8-byte words in [16, size) (and the first one's offset). Replies are
/// (n: i32, first: i32). Its `alloc` returns 0 (growing a 0-page memory to
/// 1 page first), so a call's bytes land in [0, 16).
fn scanner(memory: &str, extra: &str) -> String {
    format!(
        r#"(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") {memory})
  {extra}
  (func (export "hv_abi_version") (result i32) (i32.const 2))
  (func (export "alloc") (param i32) (result i32)
    (if (i32.eqz (memory.size)) (then (drop (memory.grow (i32.const 1)))))
    (i32.const 0))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $blen i32)
                          (result i32)
    (local $op i32) (local $arg i32) (local $i i32) (local $end i32) (local $n i32) (local $first i32)
    (local.set $op (i32.load8_u (local.get $m)))
    (if (i32.ge_u (local.get $blen) (i32.const 4))
      (then (local.set $arg (i32.load (local.get $b)))))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (local.set $first (i32.const -1))
    (block $done
      (if (i32.eq (local.get $op) (i32.const 102))
        (then (memory.fill (i32.const 16) (local.get $arg) (i32.sub (local.get $end) (i32.const 16)))
              (br $done)))
      (if (i32.eq (local.get $op) (i32.const 103))
        (then (local.set $n (memory.grow (local.get $arg))) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 115))
        (then (local.set $n (memory.size)) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 108))
        (then (local.set $n (i32.load8_u (local.get $arg))) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 99))
        (then
          (local.set $i (i32.const 16))
          (block $out (loop $scan
            (br_if $out (i32.ge_u (local.get $i) (local.get $end)))
            (if (i64.ne (i64.load (local.get $i)) (i64.const 0))
              (then (local.set $n (i32.add (local.get $n) (i32.const 1)))
                    (if (i32.lt_s (local.get $first) (i32.const 0))
                      (then (local.set $first (local.get $i))))))
            (local.set $i (i32.add (local.get $i) (i32.const 8)))
            (br $scan)))
          (br $done)))
      (unreachable))
    (i32.store (i32.const 8) (local.get $n))
    (i32.store (i32.const 12) (local.get $first))
    (call $reply (i32.const 8) (i32.const 8))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#
    )
}

/// Calls op `op` with `arg`: (n, first) or the error.
fn op(g: &mut GuestInstance, op: &str, arg: i32) -> Result<(i32, i32), ModuleError> {
    let r = g.handle(op, &arg.to_le_bytes())?.reply.expect("a reply");
    Ok((
        i32::from_le_bytes(r[..4].try_into().unwrap()),
        i32::from_le_bytes(r[4..8].try_into().unwrap()),
    ))
}

fn ok(g: &mut GuestInstance, o: &str, arg: i32) -> i32 {
    op(g, o, arg)
        .unwrap_or_else(|e| panic!("{o}({arg}): {e:?}"))
        .0
}

/// A guest of `store`'s module `name` that grows to `pages` and writes
/// 0x5A over all of it, then is dropped (its memory back to this thread).
fn leave_secret(store: &ModuleStore, pages: u32) {
    let writer = store.load_wat("writer", &scanner("1", "")).unwrap();
    let mut w = writer.instantiate().unwrap();
    if pages > 1 {
        assert_eq!(ok(&mut w, "g", pages as i32 - 1), 1);
    }
    ok(&mut w, "f", 0x5A);
    let (n, _) = op(&mut w, "c", 0).unwrap();
    assert_eq!(n as u32, (pages * PAGE - 16) / 8, "the writer filled all");
    drop(w);
}

fn is_oob(e: &ModuleError) -> bool {
    matches!(e, ModuleError::Trap { message, .. } if message.contains("out of bounds"))
}

#[test]
fn a_dropped_guests_secret_is_never_seen_by_the_next_guest_on_its_thread() {
    let store = store();
    // A different module reads: only its data segment word is nonzero.
    let reader = store
        .load_wat(
            "reader",
            &scanner("1", r#"(data (i32.const 32) "mine1234")"#),
        )
        .unwrap();
    // Writers that stay under KEEP_RESIDENT (pooled) and above it (unmapped).
    for pages in [1, 2, 3, 4, 5, 8, 1, 4] {
        leave_secret(&store, pages);
        let mut r = reader.instantiate().unwrap();
        assert_eq!(
            op(&mut r, "c", 0).unwrap(),
            (1, 32),
            "after a {pages}-page writer"
        );
        assert_eq!(ok(&mut r, "g", 9), 1);
        assert_eq!(
            op(&mut r, "c", 0).unwrap(),
            (1, 32),
            "pages grown after a {pages}-page writer"
        );
    }
    // Several memories in the pool at once, handed out in any order.
    for _ in 0..3 {
        leave_secret(&store, 3);
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut r = reader.instantiate().unwrap();
        ok(&mut r, "g", 3);
        assert_eq!(op(&mut r, "c", 0).unwrap(), (1, 32));
        held.push(r);
    }
}

#[test]
fn a_smaller_guest_cannot_reach_the_pages_a_bigger_one_had() {
    let store = store();
    let small = store.load_wat("small", &scanner("1", "")).unwrap();
    leave_secret(&store, 4);
    let mut s = small.instantiate().unwrap();
    assert_eq!(ok(&mut s, "l", PAGE as i32 - 1), 0);
    for at in [PAGE, PAGE + 8, 2 * PAGE, 4 * PAGE - 1] {
        let e = op(&mut s, "l", at as i32).unwrap_err();
        assert!(is_oob(&e), "load at {at}: {e:?}");
    }
    // Grown by one: that page (the writer's second) reads zero, the next traps.
    assert_eq!(ok(&mut s, "g", 1), 1);
    assert_eq!(ok(&mut s, "l", PAGE as i32 + 5), 0);
    assert!(is_oob(&op(&mut s, "l", 2 * PAGE as i32).unwrap_err()));
    assert_eq!(s.memory_pages(), 2);
}

/// The replies (or error kinds) of a fixed sequence of grows, sizes,
/// loads and scans, for a guest made after `before` ran.
fn grow_script(before: impl FnOnce(&ModuleStore)) -> Vec<String> {
    let store = store();
    before(&store);
    let m = store.load_wat("script", &scanner("2 6", "")).unwrap();
    let mut g = m.instantiate().unwrap();
    let mut out = vec![format!("pages {}", g.memory_pages())];
    for (o, arg) in [
        ("s", 0),
        ("g", 0),
        ("l", 2 * PAGE as i32 - 1),
        ("l", 2 * PAGE as i32),
        ("g", 3),
        ("s", 0),
        ("l", 5 * PAGE as i32 - 1),
        ("l", 5 * PAGE as i32),
        ("g", 2), // past the declared maximum (6), under the ceiling: -1
        ("s", 0),
        ("g", 1),
        ("g", 1),
        ("l", 6 * PAGE as i32),
        ("c", 0),
    ] {
        out.push(match op(&mut g, o, arg) {
            Ok(r) => format!("{o}({arg}) = {r:?}"),
            Err(e) => format!("{o}({arg}) failed: oob {}", is_oob(&e)),
        });
    }
    out.push(format!("pages {}", g.memory_pages()));
    out
}

#[test]
fn grow_size_and_bounds_after_reuse_are_those_of_a_fresh_memory() {
    let fresh = std::thread::spawn(|| grow_script(|_| {})).join().unwrap();
    assert!(fresh.contains(&"g(2) = (-1, -1)".to_string()), "{fresh:#?}");
    assert!(fresh.contains(&"c(0) = (0, -1)".to_string()), "{fresh:#?}");
    for pages in [1, 3, 4, 6, 7] {
        let reused = grow_script(|s| leave_secret(s, pages));
        assert_eq!(reused, fresh, "after a {pages}-page guest");
    }
}

#[test]
fn the_ceiling_after_reuse_is_still_a_memory_limit() {
    let store = store();
    let m = store.load_wat("greedy", &scanner("1", "")).unwrap();
    for pages in [4, 32, 2] {
        leave_secret(&store, pages);
        let mut g = m.instantiate().unwrap();
        assert_eq!(ok(&mut g, "g", 31), 1, "up to the ceiling is fine");
        assert_eq!(ok(&mut g, "l", 32 * PAGE as i32 - 1), 0);
        assert!(
            matches!(
                op(&mut g, "g", 1),
                Err(ModuleError::MemoryLimit { max_pages: 32, .. })
            ),
            "after a {pages}-page guest"
        );
        drop(g);
        let mut g = m.instantiate().unwrap();
        assert!(matches!(
            op(&mut g, "g", 32),
            Err(ModuleError::MemoryLimit { .. })
        ));
        assert_eq!(g.memory_pages(), 1);
    }
}

#[test]
fn a_zero_page_memory_after_reuse_has_no_byte_until_it_grows() {
    // Reads byte 0 in its start function: must trap on a 0-page memory.
    let start_reader = scanner(
        "0 4",
        r#"(func $peek (drop (i32.load8_u (i32.const 0)))) (start $peek)"#,
    );
    let fresh_err = std::thread::spawn(move || {
        let store = store();
        let m = store.load_wat("zero", &start_reader).unwrap();
        format!("{:?}", m.instantiate().map(|_| ()))
    })
    .join()
    .unwrap();
    assert!(fresh_err.contains("out of bounds"), "{fresh_err}");
    let store = store();
    let start_reader = scanner(
        "0 4",
        r#"(func $peek (drop (i32.load8_u (i32.const 0)))) (start $peek)"#,
    );
    let m = store.load_wat("zero", &start_reader).unwrap();
    let grower = store.load_wat("zero-grow", &scanner("0 4", "")).unwrap();
    for pages in [1, 4] {
        leave_secret(&store, pages);
        let err = m.instantiate().map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, ModuleError::Instantiate { message, .. } if message.contains("out of bounds")),
            "after a {pages}-page guest: {err:?}"
        );
        leave_secret(&store, pages);
        let mut g = grower.instantiate().unwrap();
        assert_eq!(g.memory_pages(), 0);
        // Its alloc grows it to one page: zero but for the call's bytes.
        assert_eq!(op(&mut g, "c", 0).unwrap(), (0, -1));
        assert_eq!(g.memory_pages(), 1);
        assert!(is_oob(&op(&mut g, "l", PAGE as i32).unwrap_err()));
    }
}

// ---- hv_inbox ----

/// A guest whose exports record where their bytes were written and how
/// many `alloc`s were made: `handle` replies 64 bytes from 0 (slots:
/// 0 handle's method ptr, 4 allocs, 16 init ptr, 20 restore ptr, 24
/// on_reply ptr, 28 crash child ptr, 32 crash reason ptr, 36 the reason's
/// first 4 bytes, 40 on_reply's first 4 bytes, 44 init's first 4 bytes).
fn recorder(memory: &str, inbox_body: &str, extra: &str) -> String {
    format!(
        r#"(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") {memory})
  {extra}
  (global $allocs (mut i32) (i32.const 0))
  (func (export "hv_abi_version") (result i32) (i32.const 2))
  (func (export "hv_inbox") (result i64) {inbox_body})
  (func (export "alloc") (param i32) (result i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (i32.const 8192))
  (func (export "init") (param $p i32) (param $l i32) (result i32)
    (i32.store (i32.const 16) (local.get $p))
    (if (i32.ge_u (local.get $l) (i32.const 4))
      (then (i32.store (i32.const 44) (i32.load (local.get $p)))))
    (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $blen i32)
                          (result i32)
    (i32.store (i32.const 0) (local.get $m))
    (i32.store (i32.const 4) (global.get $allocs))
    (i32.store (i32.const 48) (i32.load (local.get $m)))
    (call $reply (i32.const 0) (i32.const 64))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param $p i32) (param $l i32) (result i32)
    (i32.store (i32.const 20) (local.get $p)) (i32.const 0))
  (func (export "on_reply") (param $tag i64) (param $st i32) (param $p i32) (param $l i32) (result i32)
    (i32.store (i32.const 24) (local.get $p))
    (i32.store (i32.const 40) (i32.load (local.get $p)))
    (i32.const 0))
  (func (export "on_crash_notice") (param $c i32) (param $cl i32) (param $code i32)
        (param $r i32) (param $rl i32) (param $n i32) (param $up i32) (result i32)
    (i32.store (i32.const 28) (local.get $c))
    (i32.store (i32.const 32) (local.get $r))
    (i32.store (i32.const 36) (i32.load (local.get $r)))
    (i32.const 0))
)"#
    )
}

fn packed(ptr: u32, len: u32) -> String {
    format!("(i64.const {})", (u64::from(ptr) << 32) | u64::from(len))
}

fn slot(reply: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(reply[at..at + 4].try_into().unwrap())
}

fn record(g: &mut GuestInstance) -> Vec<u8> {
    g.handle("rec!", &[]).unwrap().reply.unwrap()
}

#[test]
fn every_kind_of_call_takes_its_bytes_through_the_inbox_when_they_fit() {
    let store = store();
    let m = store
        .load_wat("rec", &recorder("1", &packed(1024, 64), ""))
        .unwrap();
    let mut g = m.instantiate().unwrap();
    g.init(b"ARGS").unwrap();
    g.restore(b"STATE").unwrap();
    g.on_reply(7, 0, b"RPLY").unwrap();
    g.on_crash_notice("kid", 3, "WHY?", 1, false).unwrap();
    let r = record(&mut g);
    assert_eq!(slot(&r, 0), 1024, "handle");
    assert_eq!(slot(&r, 4), 0, "no alloc at all");
    assert_eq!(slot(&r, 16), 1024, "init");
    assert_eq!(&r[44..48], b"ARGS");
    assert_eq!(slot(&r, 20), 1024, "restore");
    assert_eq!(slot(&r, 24), 1024, "on_reply");
    assert_eq!(&r[40..44], b"RPLY");
    assert_eq!((slot(&r, 28), slot(&r, 32)), (1024, 1027), "crash notice");
    assert_eq!(&r[36..40], b"WHY?", "the reason right after the child");
    // Too big for the inbox: each goes through alloc.
    let big = [b'B'; 65];
    g.init(&big).unwrap();
    g.on_reply(8, 0, &big).unwrap();
    g.on_crash_notice("kid", 3, &"R".repeat(62), 1, false)
        .unwrap();
    let r = record(&mut g);
    assert_eq!(slot(&r, 4), 3, "three allocs");
    assert_eq!(
        (slot(&r, 16), slot(&r, 24), slot(&r, 28)),
        (8192, 8192, 8192)
    );
    assert_eq!(slot(&r, 32), 8192 + 3);
}

#[test]
fn an_inbox_over_the_guests_own_data_or_all_its_memory_is_its_own_business() {
    let store = store();
    // Over its own data segment: allowed, and the call's bytes overwrite it.
    let m = store
        .load_wat(
            "data",
            &recorder(
                "1",
                &packed(2048, 16),
                r#"(data (i32.const 2048) "precious-data...")"#,
            ),
        )
        .unwrap();
    let mut g = m.instantiate().unwrap();
    let r = record(&mut g);
    assert_eq!((slot(&r, 0), &r[48..52]), (2048, &b"rec!"[..]));

    // All of a 2-page memory from 0: a call of exactly 131,072 bytes fits,
    // one more byte goes through alloc (whose room is then too small).
    let m = store
        .load_wat("all", &recorder("2", &packed(0, 2 * PAGE), ""))
        .unwrap();
    let mut g = m.instantiate().unwrap();
    let out = g.handle("rec!", &vec![7; 2 * PAGE as usize - 4]).unwrap();
    assert_eq!(slot(&out.reply.unwrap(), 4), 0, "no alloc");
    let err = g
        .handle("rec!", &vec![7; 2 * PAGE as usize - 3])
        .unwrap_err();
    assert!(
        matches!(&err, ModuleError::AbiViolation { export, .. } if export == "alloc"),
        "{err:?}"
    );
}

#[test]
fn an_inbox_reaching_past_memory_is_refused_whatever_its_start() {
    let store = store();
    for (ptr, len) in [
        (0, u32::MAX),
        (0, PAGE + 1),
        (1, PAGE),
        (PAGE, 1),
        (u32::MAX, 1),
    ] {
        let m = store
            .load_wat("liar", &recorder("1", &packed(ptr, len), ""))
            .unwrap();
        let err = m.instantiate().unwrap_err();
        assert!(
            matches!(&err, ModuleError::AbiViolation { export, .. } if export == "hv_inbox"),
            "inbox {ptr:#x}+{len}: {err:?}"
        );
    }
    // A negative i64 is a pointer past 2 GiB, not a small one.
    let m = store
        .load_wat("neg", &recorder("1", "(i64.const -1)", ""))
        .unwrap();
    assert!(matches!(
        m.instantiate().unwrap_err(),
        ModuleError::AbiViolation { .. }
    ));
    // 0+65,536 and 1+65,535 end exactly at the end: allowed.
    for (ptr, len) in [(0, PAGE), (1, PAGE - 1)] {
        let m = store
            .load_wat("edge", &recorder("1", &packed(ptr, len), ""))
            .unwrap();
        let mut g = m.instantiate().unwrap();
        assert_eq!(slot(&record(&mut g), 0), ptr);
    }
}

#[test]
fn an_inbox_in_pages_hv_inbox_grew_is_in_memory() {
    let store = store();
    let grow_then_point = format!(
        "(drop (memory.grow (i32.const 1))) {}",
        packed(PAGE + 100, 64)
    );
    let m = store
        .load_wat("grown", &recorder("1", &grow_then_point, ""))
        .unwrap();
    let mut g = m.instantiate().unwrap();
    assert_eq!(g.memory_pages(), 2);
    let r = record(&mut g);
    assert_eq!((slot(&r, 0), slot(&r, 4)), (PAGE + 100, 0));
    assert_eq!(&r[48..52], b"rec!");
    // hv_inbox growing past the ceiling is the ceiling's crash.
    let m = store
        .load_wat(
            "greedy",
            &recorder(
                "1",
                "(drop (memory.grow (i32.const 40))) (i64.const 64)",
                "",
            ),
        )
        .unwrap();
    let err = m.instantiate().unwrap_err();
    assert!(matches!(err, ModuleError::MemoryLimit { .. }), "{err:?}");
}

#[test]
fn an_inbox_guest_on_a_reused_memory_sees_only_its_call_bytes() {
    let store = store();
    let m = store
        .load_wat("rec", &recorder("1", &packed(1024, 64), ""))
        .unwrap();
    leave_secret(&store, 1);
    let mut g = m.instantiate().unwrap();
    // The inbox (and what is past the call's bytes in it) reads as new.
    g.handle("ab", &[]).unwrap();
    let out = g.handle("rec!", &[]).unwrap().reply.unwrap();
    assert_eq!(slot(&out, 0), 1024);
    let scan = store.load_wat("scan", &scanner("1", "")).unwrap();
    drop(g);
    let mut s = scan.instantiate().unwrap();
    assert_eq!(op(&mut s, "c", 0).unwrap(), (0, -1));
}

// ---- control ----

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_control_letters_do_not_crash_a_wasm_particle() {
    let host = WasmHost::new(small_limits());
    host.load_wat("counter", guests::COUNTER_V1).unwrap();
    let machine = host
        .install(Machine::standalone().stars(2), "counter")
        .build()
        .await
        .unwrap();
    let at: Point = "victim".parse().unwrap();
    timeout(
        T,
        machine.spawn(at.clone(), Kind::wasm("counter"), Body::from_u64(40)),
    )
    .await
    .unwrap()
    .unwrap();
    let mut reply20 = vec![2u8];
    reply20.extend_from_slice(&u64::MAX.to_le_bytes());
    reply20.extend_from_slice(&0u64.to_le_bytes());
    reply20.extend_from_slice(&0i32.to_le_bytes());
    let mut reply_now = vec![2u8];
    reply_now.extend_from_slice(&0u64.to_le_bytes());
    reply_now.extend_from_slice(&1u64.to_le_bytes());
    reply_now.extend_from_slice(&(-1i32).to_le_bytes());
    reply_now.extend_from_slice(b"forged");
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![1],
        vec![2],
        vec![2; 20],
        reply20,
        reply_now,
        vec![0xFF; 4096],
        b"$wasm:reload".to_vec(),
    ];
    for body in bodies {
        let len = body.len();
        let answer = timeout(T, machine.control(&at, Body::from(body), T))
            .await
            .unwrap();
        assert!(answer.is_ok(), "{len}-byte control: {answer:?}");
        timeout(T, machine.ask(&at, ("add", Body::empty())))
            .await
            .unwrap()
            .unwrap();
    }
    let got = timeout(T, machine.ask(&at, ("get", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.as_u64(), Some(49), "state kept through every letter");
    assert_eq!(machine.record(&at).unwrap().restarts, 0, "never crashed");
    timeout(T, machine.shutdown()).await.unwrap();
}

/// A hot reload swaps guests one after the other on each Star thread, so
/// each new instance may be made on the memory of the particle swapped
/// just before (another tenant). Every v1 guest fills 3 pages with a
/// secret in `init`; after the reload, every v2 guest scans its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_swapped_by_a_reload_see_nothing_of_the_guests_swapped_before() {
    let filler = scanner("1 32", "").replace(
        r#"(func (export "init") (param i32 i32) (result i32) (i32.const 0))"#,
        r#"(func (export "init") (param i32 i32) (result i32)
    (drop (memory.grow (i32.const 2)))
    (memory.fill (i32.const 16) (i32.const 0x5A) (i32.const 196592))
    (i32.const 0))"#,
    );
    let host = WasmHost::new(limits());
    host.load_wat("tenant", &filler).unwrap();
    let machine = host
        .install(Machine::standalone().stars(2), "tenant")
        .build()
        .await
        .unwrap();
    let points: Vec<Point> = (0..24).map(|i| format!("t{i}").parse().unwrap()).collect();
    for at in &points {
        timeout(
            T,
            machine.spawn(at.clone(), Kind::wasm("tenant"), Body::empty()),
        )
        .await
        .unwrap()
        .unwrap();
    }
    let scan = |body: Body| {
        let b = body.as_bytes().to_vec();
        (
            i32::from_le_bytes(b[..4].try_into().unwrap()),
            i32::from_le_bytes(b[4..8].try_into().unwrap()),
        )
    };
    // Before: each sees its own secret, all 3 pages of it.
    let before = timeout(T, machine.ask(&points[0], ("c", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(scan(before), ((3 * 65_536 - 16) / 8, 16));
    let report = timeout(T, host.reload_wat(&machine, "tenant", &scanner("1 32", "")))
        .await
        .unwrap()
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.reloaded.len(), points.len(), "{report}");
    for at in &points {
        let got = timeout(T, machine.ask(at, ("c", Body::empty())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(scan(got), (0, -1), "{at} sees another guest's bytes");
    }
    timeout(T, machine.shutdown()).await.unwrap();
}
