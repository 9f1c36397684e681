//! The sandbox under attack (issue 10): each test is one way a hostile guest
//! tried to take more than its limits, and asserts the runtime's answer: a
//! typed error at load, or a failure of that one call with the host alive
//! and its memory bounded.
//!
//! No test asserts a duration: fuel is what bounds time, and the fuzz test
//! (`fuzz_guests.rs`) checks calls against their fuel-derived budget.

mod common;

use std::sync::Mutex;

use hyperverse_modules::{guests, CompiledModule, Limits, ModuleError, ModuleStore};

/// Tests that read the process's resident memory run one at a time (RSS
/// is per process, and cargo runs a file's tests on parallel threads).
static RSS_LOCK: Mutex<()> = Mutex::new(());

/// The default limits (16 MiB ceiling, 64 Ki table entries) with 2M fuel.
fn limits() -> Limits {
    Limits::default().with_fuel(2_000_000)
}

fn store() -> ModuleStore {
    ModuleStore::new(limits())
}

/// A complete ABI-1 guest: `imports`, module `fields` (memory included),
/// `handle`'s body (params `$m $mlen $body $blen`, must leave an i32) and
/// `snapshot`'s body (must leave an i64). Imports `hv.reply` as `$reply`.
fn guest(imports: &str, fields: &str, handle_body: &str, snapshot_body: &str) -> String {
    format!(
        r#"(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  {imports}
  {fields}
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $body i32) (param $blen i32)
                          (result i32) (local $i i32)
    {handle_body})
  (func (export "snapshot") (result i64) {snapshot_body})
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
  (func $f0)
)"#
    )
}

/// A guest with one page of memory whose `handle` runs `body`.
fn simple(fields: &str, handle_body: &str) -> String {
    guest(
        "",
        &format!(r#"(memory (export "memory") 1) {fields}"#),
        handle_body,
        "(i64.const 0)",
    )
}

/// Replies the i32 on top of the stack (4 bytes LE at address 0), then
/// returns 0.
const REPLY_I32: &str = "(local.set $i) (i32.store (i32.const 0) (local.get $i))
    (call $reply (i32.const 0) (i32.const 4)) (i32.const 0)";

fn reply_i32(module: &CompiledModule) -> i32 {
    let mut guest = module.instantiate().expect("instantiates");
    let reply = guest.handle("go", &[]).expect("handle succeeds").reply;
    let bytes: [u8; 4] = reply.expect("a reply").try_into().expect("4 bytes");
    i32::from_le_bytes(bytes)
}

/// The load error of `wat`, which must be refused.
fn refused(store: &ModuleStore, name: &str, wat: &str) -> ModuleError {
    let err = store
        .load_wat(name, wat)
        .expect_err("the module is refused");
    assert_eq!(err.module(), Some(name), "{err}");
    err
}

/// A `Compile` error (the engine's features refuse the module) whose
/// message mentions one of `words`.
fn assert_feature_refused(err: &ModuleError, words: &[&str]) {
    match err {
        ModuleError::Compile { message, .. } => assert!(
            words.iter().any(|w| message.to_lowercase().contains(w)),
            "{message} mentions none of {words:?}"
        ),
        other => panic!("expected a Compile error naming the feature, got {other:?}"),
    }
}

/// A `Refused` error whose `what` mentions `what`.
fn assert_sandbox_refused(err: &ModuleError, what: &str) {
    match err {
        ModuleError::Refused { what: found, .. } => {
            assert!(found.contains(what), "{found} does not mention {what}")
        }
        other => panic!("expected Refused, got {other:?}"),
    }
}

/// The process's resident memory in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm's second field");
    resident * 4096
}

const MIB: u64 = 1024 * 1024;

// ---- threads ----------------------------------------------------------

#[test]
fn shared_memory_is_refused_at_load() {
    let wat = guest(
        "",
        r#"(memory (export "memory") 1 1 shared)"#,
        "(i32.const 0)",
        "(i64.const 0)",
    );
    let err = refused(&store(), "shared", &wat);
    assert_feature_refused(&err, &["shared", "threads"]);
}

#[test]
fn atomic_wait_cannot_block_the_host_thread() {
    // The review's guest: `memory.atomic.wait32` with no timeout blocked
    // its host thread for seconds. Threads are off, so it never loads, on
    // a shared memory or an unshared one.
    let wait =
        "(drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1))) (i32.const 0)";
    for memory in ["1 1 shared", "1"] {
        let wat = guest(
            "",
            &format!(r#"(memory (export "memory") {memory})"#),
            wait,
            "(i64.const 0)",
        );
        let err = refused(&store(), "waiter", &wat);
        assert_feature_refused(&err, &["shared", "threads", "atomic"]);
    }
    // The host thread is free: a neighbour answers at once.
    let counter = store().load_wat("counter", guests::COUNTER_V1).unwrap();
    let mut neighbour = counter.instantiate().unwrap();
    neighbour.init(&[]).unwrap();
    neighbour.handle("add", &[]).unwrap();
}

#[test]
fn atomic_notify_and_fences_are_refused_too() {
    let wat = simple(
        "",
        "(drop (memory.atomic.notify (i32.const 0) (i32.const 1))) (atomic.fence) (i32.const 0)",
    );
    let err = refused(&store(), "notifier", &wat);
    assert_feature_refused(&err, &["threads", "atomic"]);
}

// ---- tables -----------------------------------------------------------

#[test]
fn table_grow_past_the_cap_returns_minus_one_inside_the_guest() {
    let cap = limits().max_table_elements;
    let store = store();
    // To the cap: succeeds, returning the old size 0.
    let to_cap = store
        .load_wat(
            "to-cap",
            &simple(
                r#"(table $t (export "t") 0 funcref)"#,
                &format!("(table.grow $t (ref.null func) (i32.const {cap})) {REPLY_I32}"),
            ),
        )
        .unwrap();
    assert_eq!(reply_i32(&to_cap), 0);

    // One past it: -1, inside the guest; the call goes on and succeeds.
    let past = store
        .load_wat(
            "past-cap",
            &simple(
                r#"(table $t (export "t") 0 funcref)"#,
                &format!(
                    "(drop (table.grow $t (ref.null func) (i32.const {cap})))
                     (table.grow $t (ref.null func) (i32.const 1)) {REPLY_I32}"
                ),
            ),
        )
        .unwrap();
    let mut guest = past.instantiate().unwrap();
    let reply = guest.handle("go", &[]).unwrap().reply.unwrap();
    assert_eq!(reply, (-1i32).to_le_bytes());
    assert_eq!(guest.table_size("t"), Some(cap));
}

#[test]
fn table_grow_by_u32_max_does_not_abort_the_process() {
    let _serial = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let module = store()
        .load_wat(
            "grow-max",
            &simple(
                r#"(table $t (export "t") 0 funcref)"#,
                &format!("(table.grow $t (ref.null func) (i32.const -1)) {REPLY_I32}"),
            ),
        )
        .unwrap();
    let before = rss_bytes();
    let mut guest = module.instantiate().unwrap();
    for _ in 0..6 {
        let reply = guest.handle("go", &[]).unwrap().reply.unwrap();
        assert_eq!(reply, (-1i32).to_le_bytes(), "the grow fails in the guest");
    }
    assert_eq!(guest.table_size("t"), Some(0));
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 * MIB, "RSS grew by {} MiB", grown / MIB);
}

#[test]
fn table_grows_without_a_declared_maximum_stay_under_the_cap() {
    // The review's attack: six grows of 16 Mi entries added 768 MiB.
    let _serial = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let module = store()
        .load_wat(
            "grow-16mi",
            &simple(
                r#"(table $t (export "t") 0 funcref)"#,
                &format!("(table.grow $t (ref.null func) (i32.const 16777216)) {REPLY_I32}"),
            ),
        )
        .unwrap();
    let before = rss_bytes();
    let mut guest = module.instantiate().unwrap();
    for _ in 0..6 {
        let reply = guest.handle("go", &[]).unwrap().reply.unwrap();
        assert_eq!(reply, (-1i32).to_le_bytes());
    }
    assert_eq!(guest.table_size("t"), Some(0));
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 * MIB, "RSS grew by {} MiB", grown / MIB);
}

#[test]
fn a_huge_declared_table_is_refused() {
    // The review's 64 Mi-entry table committed 513 MiB at instantiation.
    let _serial = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = rss_bytes();
    let wat = simple("(table 67108864 funcref)", "(i32.const 0)");
    let err = refused(&store(), "huge-table", &wat);
    assert_sandbox_refused(&err, "table 0 with a minimum of 67108864 entries");
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 * MIB, "RSS grew by {} MiB", grown / MIB);
}

#[test]
fn a_table_just_over_the_cap_is_refused_and_one_at_the_cap_loads() {
    let cap = limits().max_table_elements;
    let store = store();
    let over = simple(&format!("(table {} funcref)", cap + 1), "(i32.const 0)");
    assert_sandbox_refused(&refused(&store, "over", &over), "table 0");
    let at = simple(
        &format!(r#"(table $t (export "t") {cap} funcref)"#),
        "(i32.const 0)",
    );
    let guest = store.load_wat("at", &at).unwrap().instantiate().unwrap();
    assert_eq!(guest.table_size("t"), Some(cap));
}

#[test]
fn a_declared_maximum_above_the_cap_is_capped() {
    let cap = limits().max_table_elements;
    let module = store()
        .load_wat(
            "big-max",
            &simple(
                r#"(table $t (export "t") 0 100000000 funcref)"#,
                &format!(
                    "(drop (table.grow $t (ref.null func) (i32.const {cap})))
                     (table.grow $t (ref.null func) (i32.const 1)) {REPLY_I32}"
                ),
            ),
        )
        .unwrap();
    assert_eq!(reply_i32(&module), -1);
}

#[test]
fn tables_that_together_could_pass_the_cap_are_refused() {
    let store = store();
    // Two tables, each allowed to grow to the cap: twice the budget.
    let two = simple("(table 0 funcref) (table 0 funcref)", "(i32.const 0)");
    assert_sandbox_refused(&refused(&store, "two", &two), "2 tables");
    // Maxima that add up within the cap are fine.
    let bounded = simple(
        "(table 0 100 funcref) (table 0 100 externref)",
        "(i32.const 0)",
    );
    store
        .load_wat("bounded", &bounded)
        .unwrap()
        .instantiate()
        .unwrap();
}

#[test]
fn table_bulk_operators_are_charged_by_length_and_fixed_table_size() {
    let store = ModuleStore::new(Limits::default().with_fuel(1_000_000_000));
    let fuel_of = |fields: &str, op: &str| {
        let module = store
            .load_wat("tables", &simple(fields, &format!("{op} (i32.const 0)")))
            .unwrap();
        let mut guest = module.instantiate().unwrap();
        guest.handle("go", &[]).unwrap();
        guest.last_fuel_used()
    };
    let growable = "(table $t 1000 funcref) (elem declare func $f0)";
    let fill = |n: u32| format!("(table.fill $t (i32.const 0) (ref.func $f0) (i32.const {n}))");
    let small = fuel_of(growable, &fill(10));
    let large = fuel_of(growable, &fill(1000));
    assert!(large >= small + 990 * 100, "{small} then {large}");
    // A fixed-size funcref table: wasmer rewrites all of it each time, so
    // even one entry costs the table's size.
    let fixed = "(table $t 60000 60000 funcref) (elem declare func $f0)";
    assert!(fuel_of(fixed, &fill(1)) > 60_000 * 10);
}

// ---- memories ---------------------------------------------------------

#[test]
fn twenty_memories_are_refused() {
    let memories: String = (0..20)
        .map(|i| format!("(memory $m{i} 256 256)\n"))
        .collect();
    let wat = guest(
        "",
        &format!(r#"(memory (export "memory") 1) {memories}"#),
        "(i32.const 0)",
        "(i64.const 0)",
    );
    let err = refused(&store(), "twenty", &wat);
    assert_feature_refused(&err, &["multiple memories", "multi-memory", "multi_memory"]);
}

#[test]
fn a_64_bit_memory_is_refused() {
    let wat = guest(
        "",
        r#"(memory (export "memory") i64 1)"#,
        "(i32.const 0)",
        "(i64.const 0)",
    );
    assert_feature_refused(&refused(&store(), "mem64", &wat), &["memory64", "64-bit"]);
}

#[test]
fn imported_memory_table_and_global_are_refused() {
    let store = store();
    let own_memory = r#"(memory (export "memory") 1)"#;
    let cases = [
        (
            r#"(import "hv" "memory" (memory 1))"#,
            r#"(export "memory" (memory 0))"#,
        ),
        (r#"(import "env" "table" (table 10 funcref))"#, own_memory),
        (r#"(import "hv" "fuel" (global i64))"#, own_memory),
    ];
    for (import, memory) in cases {
        let wat = guest(import, memory, "(i32.const 0)", "(i64.const 0)");
        let err = refused(&store, "importer", &wat);
        assert!(
            matches!(err, ModuleError::UndeclaredImport { .. }),
            "{import}: {err:?}"
        );
    }
}

#[test]
fn memory_fill_of_16_mib_is_refused_or_charged_by_length() {
    // The review's guest filled 16 MiB for 1 fuel. Now it pays by length:
    // 2M fuel does not buy it.
    let wat = guest(
        "",
        r#"(memory (export "memory") 256)"#,
        "(memory.fill (i32.const 0) (i32.const 7) (i32.const 16777216)) (i32.const 0)",
        "(i64.const 0)",
    );
    let err = store()
        .load_wat("filler", &wat)
        .unwrap()
        .instantiate()
        .unwrap()
        .handle("go", &[])
        .unwrap_err();
    assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");

    // With enough fuel it runs, and the fuel used covers its length.
    let rich = ModuleStore::new(Limits::default().with_fuel(10_000_000));
    let mut guest = rich
        .load_wat("filler", &wat)
        .unwrap()
        .instantiate()
        .unwrap();
    guest.handle("go", &[]).unwrap();
    assert!(
        guest.last_fuel_used() > 16 * MIB / 8,
        "{}",
        guest.last_fuel_used()
    );
}

#[test]
fn bulk_operators_in_one_basic_block_cannot_run_before_paying() {
    // Twenty fills in straight-line code (no branch where wasmer's metering
    // would check): each is paid before it runs, so the first one that
    // cannot be paid traps and no byte is written. `snapshot` returns the
    // first 16 bytes of memory.
    let fills = "(memory.fill (i32.const 0) (i32.const 7) (i32.const 16777216))\n".repeat(20);
    let wat = guest(
        "",
        r#"(memory (export "memory") 256)"#,
        &format!("{fills} (i32.const 0)"),
        "(i64.const 16)",
    );
    let module = store().load_wat("fills", &wat).unwrap();
    let mut guest = module.instantiate().unwrap();
    let err = guest.handle("go", &[]).unwrap_err();
    assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");
    assert_eq!(guest.snapshot().unwrap(), vec![0; 16], "no fill ran");
}

#[test]
fn memory_copy_and_init_are_charged_by_length() {
    let store = ModuleStore::new(Limits::default().with_fuel(100_000_000));
    let fuel_of = |op: String| {
        let wat = guest(
            "",
            r#"(memory (export "memory") 256) (data $d "0123456789abcdef")"#,
            &format!("{op} (i32.const 0)"),
            "(i64.const 0)",
        );
        let mut guest = store.load_wat("bulk", &wat).unwrap().instantiate().unwrap();
        guest.handle("go", &[]).unwrap();
        guest.last_fuel_used()
    };
    let copy = |n: u64| format!("(memory.copy (i32.const 0) (i32.const 8388608) (i32.const {n}))");
    let (one, eight) = (fuel_of(copy(MIB)), fuel_of(copy(8 * MIB)));
    assert!(eight >= one + 7 * MIB / 8, "{one} then {eight}");
    let init = |n: u32| format!("(memory.init $d (i32.const 0) (i32.const 0) (i32.const {n}))");
    assert!(fuel_of(init(16)) > fuel_of(init(0)));
}

#[test]
fn memory_grow_past_the_ceiling_returns_minus_one_and_fails_the_call() {
    let wat = simple("", &format!("(memory.grow (i32.const -1)) {REPLY_I32}"));
    let module = store().load_wat("grow-max", &wat).unwrap();
    let mut guest = module.instantiate().unwrap();
    let err = guest.handle("go", &[]).unwrap_err();
    assert!(matches!(err, ModuleError::MemoryLimit { .. }), "{err:?}");
    assert_eq!(guest.memory_pages(), 1);
}

#[test]
fn memory_and_tables_stay_within_the_instance_budget() {
    let _serial = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let limits = limits();
    let (pages, cap) = (limits.max_memory_pages, limits.max_table_elements);
    let wat = guest(
        "",
        r#"(memory (export "memory") 1) (table $t (export "t") 0 funcref)"#,
        // Grow both to their caps and touch every page of memory; then ask
        // for more of each.
        &format!(
            "(drop (table.grow $t (ref.null func) (i32.const {cap})))
             (drop (table.grow $t (ref.null func) (i32.const 1)))
             (drop (memory.grow (i32.const {})))
             (memory.fill (i32.const 0) (i32.const 1) (i32.const {}))
             (drop (memory.grow (i32.const 1)))
             (i32.const 0)",
            pages - 1,
            u64::from(pages) * 65536
        ),
        "(i64.const 0)",
    );
    let module = ModuleStore::new(limits.with_fuel(50_000_000))
        .load_wat("budget", &wat)
        .unwrap();
    let before = rss_bytes();
    let mut guest = module.instantiate().unwrap();
    let err = guest.handle("go", &[]).unwrap_err();
    assert!(matches!(err, ModuleError::MemoryLimit { .. }), "{err:?}");
    assert_eq!(guest.memory_pages(), pages);
    assert_eq!(guest.table_size("t"), Some(cap));
    let grown = rss_bytes().saturating_sub(before);
    let bound = limits.instance_budget_bytes() + 32 * MIB;
    assert!(grown < bound, "RSS grew by {} MiB", grown / MIB);
}

// ---- time -------------------------------------------------------------

#[test]
fn host_calls_are_charged_by_the_bytes_they_copy() {
    let store = ModuleStore::new(Limits::default().with_fuel(100_000_000));
    let fuel_of = |len: u64| {
        let wat = guest(
            r#"(import "hv" "log" (func $log (param i32 i32 i32)))"#,
            r#"(memory (export "memory") 256)"#,
            &format!("(call $log (i32.const 4) (i32.const 0) (i32.const {len})) (i32.const 0)"),
            "(i64.const 0)",
        );
        let mut guest = store
            .load_wat("logger", &wat)
            .unwrap()
            .instantiate()
            .unwrap();
        guest.handle("go", &[]).unwrap();
        guest.last_fuel_used()
    };
    let (empty, mib) = (fuel_of(0), fuel_of(MIB));
    assert!(empty >= 1_000, "a host call has a base price: {empty}");
    assert!(mib >= empty + MIB, "1 MiB of log costs by length: {mib}");
}

#[test]
fn a_start_function_that_loops_is_stopped_by_fuel() {
    let wat = guest(
        "",
        r#"(memory (export "memory") 1) (start $spin)
           (func $spin (loop $l (br $l)))"#,
        "(i32.const 0)",
        "(i64.const 0)",
    );
    let module = store().load_wat("spinner", &wat).unwrap();
    let err = module.instantiate().unwrap_err();
    assert!(
        matches!(&err, ModuleError::Instantiate { message, .. } if message.contains("start")),
        "{err:?}"
    );
}

#[test]
fn a_data_segment_past_the_memory_fails_instantiation_not_the_host() {
    let wat = guest(
        "",
        r#"(memory (export "memory") 1) (data (i32.const 65530) "0123456789")"#,
        "(i32.const 0)",
        "(i64.const 0)",
    );
    let module = store().load_wat("overflowing", &wat).unwrap();
    let err = module.instantiate().unwrap_err();
    assert!(matches!(err, ModuleError::Instantiate { .. }), "{err:?}");
}

#[test]
fn a_large_data_segment_within_the_ceiling_loads_and_runs() {
    let data = "\\00".repeat(1 << 20);
    let wat = guest(
        "",
        &format!(r#"(memory (export "memory") 32) (data (i32.const 0) "{data}")"#),
        "(i32.const 0)",
        "(i64.const 0)",
    );
    let module = store().load_wat("big-data", &wat).unwrap();
    module.instantiate().unwrap().handle("go", &[]).unwrap();
}

#[test]
fn a_deep_br_table_is_metered() {
    let targets = "$l ".repeat(10_000);
    let wat = simple(
        "",
        &format!("(loop $l (br_table {targets} $l (i32.const 3))) (i32.const 0)"),
    );
    let module = store().load_wat("br-table", &wat).unwrap();
    let err = module.instantiate().unwrap().handle("go", &[]).unwrap_err();
    assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");
}

#[test]
fn many_functions_load_and_are_metered() {
    let funcs: String = (0..2_000)
        .map(|i| format!("(func $g{i} (result i32) (i32.const {i}))\n"))
        .collect();
    let calls: String = (0..2_000).map(|i| format!("(drop (call $g{i}))")).collect();
    let wat = simple(&funcs, &format!("(loop $l {calls} (br $l)) (i32.const 0)"));
    let module = store().load_wat("many", &wat).unwrap();
    let err = module.instantiate().unwrap().handle("go", &[]).unwrap_err();
    assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");
}

#[test]
fn simd_is_accepted_and_metered() {
    let wat = simple(
        "",
        "(loop $l (v128.store (i32.const 0) (i32x4.add (v128.load (i32.const 0)) (v128.const i32x4 1 2 3 4))) (br $l)) (i32.const 0)",
    );
    let module = store().load_wat("simd", &wat).unwrap();
    let err = module.instantiate().unwrap().handle("go", &[]).unwrap_err();
    assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");
}

// ---- features turned off -----------------------------------------------

#[test]
fn exceptions_are_refused() {
    let wat = simple("(tag $e)", "(throw $e)");
    assert_feature_refused(&refused(&store(), "thrower", &wat), &["exception"]);
}

#[test]
fn tail_calls_are_refused() {
    let wat = simple("(func $t (result i32) (return_call $t))", "(call $t)");
    assert_feature_refused(&refused(&store(), "tail", &wat), &["tail"]);
}

#[test]
fn relaxed_simd_is_refused() {
    let wat = simple(
        "",
        "(drop (i8x16.relaxed_swizzle (v128.const i64x2 0 0) (v128.const i64x2 0 0))) (i32.const 0)",
    );
    assert_feature_refused(&refused(&store(), "relaxed", &wat), &["relaxed"]);
}

#[test]
fn typed_function_references_are_refused() {
    let wat = simple(
        "(type $ft (func)) (elem declare func $f0)",
        "(call_ref $ft (ref.func $f0)) (i32.const 0)",
    );
    let err = refused(&store(), "call-ref", &wat);
    assert!(matches!(err, ModuleError::Compile { .. }), "{err:?}");
}

#[test]
fn a_hostile_guest_leaves_its_neighbours_answering() {
    let store = store();
    let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let mut neighbour = counter.instantiate().unwrap();
    neighbour.init(&[]).unwrap();
    let hostile = [
        simple("", "(loop $l (br $l)) (i32.const 0)"),
        simple(
            r#"(table $t 0 funcref)"#,
            "(loop $l (drop (table.grow $t (ref.null func) (i32.const -1))) (br $l)) (i32.const 0)",
        ),
        simple(
            "",
            "(loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536)) (br $l)) (i32.const 0)",
        ),
    ];
    for wat in &hostile {
        let module = store.load_wat("hostile", wat).unwrap();
        let err = module.instantiate().unwrap().handle("go", &[]).unwrap_err();
        assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");
        neighbour.handle("add", &[]).unwrap();
    }
    let count = neighbour.handle("get", &[]).unwrap().reply;
    assert_eq!(count, Some(common::le(3)));
}

// ---- measuring the prices ----------------------------------------------

/// A loop of `n` iterations of `inner` as a `handle` body.
fn repeat(n: u32, inner: &str) -> String {
    format!(
        "(local.set $i (i32.const {n}))
         (block $done (loop $l
           (br_if $done (i32.eqz (local.get $i)))
           {inner}
           (local.set $i (i32.sub (local.get $i) (i32.const 1)))
           (br $l)))
         (i32.const 0)"
    )
}

/// Prints the time per fuel unit of the costliest operators, as measured
/// for the prices in `engine.rs` and `ABI.md` ("Time"). Not a check (no
/// timing assertions): run it to re-measure after a wasmer upgrade,
/// `cargo test -p hyperverse-modules --test sandbox_attacks
/// measure_time_per_fuel -- --ignored --nocapture` (and with `--release`).
#[test]
#[ignore = "a measurement, not a check"]
fn measure_time_per_fuel() {
    let store = ModuleStore::new(Limits::default().with_fuel(4_000_000_000));
    let imports = r#"(import "hv" "now_ms" (func $now (result i64)))
                     (import "hv" "log" (func $log (param i32 i32 i32)))"#;
    let big = r#"(memory (export "memory") 256)"#;
    let one = r#"(memory (export "memory") 1)"#;
    let fixed = "(table $t 65536 65536 funcref) (elem declare func $f0)";
    let segment = "(elem $e func $f0 $f0 $f0 $f0 $f0 $f0 $f0 $f0)";
    let cases: Vec<(&str, String, String)> = vec![
        ("i32 loop", one.into(), repeat(10_000_000, "(local.set $i (i32.add (local.get $i) (i32.const 0)))")),
        ("i64.div_u", one.into(), repeat(5_000_000, "(drop (i64.div_u (i64.const -1) (i64.extend_i32_u (i32.or (local.get $i) (i32.const 3)))))")),
        ("memory.fill 16 MiB", big.into(), repeat(50, "(memory.fill (i32.const 0) (local.get $i) (i32.const 16777216))")),
        ("memory.copy 1 B", big.into(), repeat(1_000_000, "(memory.copy (local.get $i) (i32.const 1) (i32.const 1))")),
        ("memory.copy 8 MiB", big.into(), repeat(50, "(memory.copy (i32.const 0) (i32.const 8388608) (i32.const 8388608))")),
        ("table.fill 64 Ki", format!("{one} {fixed}"), repeat(100, "(table.fill $t (i32.const 0) (ref.func $f0) (i32.const 65536))")),
        ("table.init fixed", format!("{one} {fixed} {segment}"), repeat(200, "(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 8))")),
        ("table.grow 1", format!("{one} (table $t 0 funcref)"), repeat(65_536, "(drop (table.grow $t (ref.null func) (i32.const 1)))")),
        ("memory.grow 1", one.into(), repeat(255, "(drop (memory.grow (i32.const 1)))")),
        ("data.drop", format!(r#"{one} (data $d "01")"#), repeat(1_000_000, "(data.drop $d)")),
        ("hv.now_ms", one.into(), repeat(1_000_000, "(drop (call $now))")),
        ("hv.log 0 B", one.into(), repeat(100_000, "(call $log (i32.const 9) (i32.const 0) (i32.const 0))")),
        ("hv.log 1 MiB", big.into(), repeat(15, "(call $log (i32.const 9) (i32.const 0) (i32.const 1048576))")),
        ("hv.reply 8 MiB", big.into(), "(call $reply (i32.const 0) (i32.const 8388608)) (i32.const 0)".into()),
        ("page first touch", big.into(), repeat(4096, "(i32.store (i32.mul (i32.sub (local.get $i) (i32.const 1)) (i32.const 4096)) (i32.const 1))")),
    ];
    for (name, fields, body) in cases {
        let wat = guest(imports, &fields, &body, "(i64.const 0)");
        let module = store.load_wat("measure", &wat).expect("loads");
        let mut guest = module.instantiate().expect("instantiates");
        let start = std::time::Instant::now();
        let result = guest.handle("go", &[]);
        let took = start.elapsed();
        let fuel = guest.last_fuel_used().max(1);
        let ns_per_fuel = took.as_nanos() as f64 / fuel as f64;
        let result = result.map(drop).map_err(|e| e.to_string());
        println!(
            "{name:>18}: {fuel:>12} fuel, {took:>12.3?}, {ns_per_fuel:>8.3} ns/fuel {result:?}"
        );
    }
}
