//! Running guests: the counter's waves, snapshot/restore across versions,
//! and every way a guest can fail, each a typed error that leaves the host
//! (and other guests) serving.

mod common;

use common::{guest_wat, le, small_limits, store};
use hyperverse_modules::{guests, GuestLog, GuestSend, Limits, LogLevel, ModuleError, ModuleStore};

#[test]
fn the_counter_counts_a_thousand_adds() {
    let store = store();
    let mut guest = store
        .load_wat("counter", guests::COUNTER_V1)
        .unwrap()
        .instantiate()
        .unwrap();
    assert_eq!(guest.init(&[]).unwrap(), Default::default());
    for _ in 0..1000 {
        let out = guest.handle("add", &[]).unwrap();
        assert_eq!(out.reply, None, "v1 does not reply to add");
    }
    let get = guest.handle("get", &[]).unwrap();
    assert_eq!(get.reply, Some(le(1000)));
    assert!(get.sends.is_empty() && get.logs.is_empty());
    assert!(guest.last_fuel_used() > 0);
    assert!(guest.last_fuel_used() < small_limits().fuel_per_call);
    assert_eq!(guest.handle("version", &[]).unwrap().reply, Some(vec![1]));
}

#[test]
fn init_takes_arguments_and_guest_statuses_are_errors() {
    let store = store();
    let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let mut guest = counter.instantiate().unwrap();
    guest.init(&le(41)).unwrap();
    guest.handle("add", &[]).unwrap();
    assert_eq!(guest.handle("get", &[]).unwrap().reply, Some(le(42)));

    assert_eq!(
        guest.handle("mul", b"body").unwrap_err(),
        ModuleError::GuestStatus {
            module: "counter".into(),
            export: "handle".into(),
            status: 1
        }
    );
    assert!(matches!(
        counter.instantiate().unwrap().init(b"abc").unwrap_err(),
        ModuleError::GuestStatus { export, status: 2, .. } if export == "init"
    ));
    // A refused wave changed nothing.
    assert_eq!(guest.handle("get", &[]).unwrap().reply, Some(le(42)));
}

#[test]
fn a_v1_snapshot_restores_into_v2_with_the_count_kept() {
    let store = store();
    let v1 = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let v2 = store.load_wat("counter", guests::COUNTER_V2).unwrap();

    let mut old = v1.instantiate().unwrap();
    old.init(&[]).unwrap();
    for _ in 0..7 {
        old.handle("add", &[]).unwrap();
    }
    let state = old.snapshot().unwrap();
    assert_eq!(state, le(7));

    let mut new = v2.instantiate().unwrap();
    new.restore(&state).unwrap();
    assert_eq!(new.version().seq, 2);
    assert_eq!(new.handle("get", &[]).unwrap().reply, Some(le(7)));
    // v2's behaviour: add replies the new count, version says 2.
    assert_eq!(new.handle("add", &[]).unwrap().reply, Some(le(8)));
    assert_eq!(new.handle("version", &[]).unwrap().reply, Some(vec![2]));

    // Restoring garbage is the guest's refusal, not a crash of the host.
    assert!(matches!(
        new.restore(b"short").unwrap_err(),
        ModuleError::GuestStatus { export, status: 1, .. } if export == "restore"
    ));
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_and_everyone_keeps_working() {
    let store = store();
    let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let looper = store.load_wat("looper", guests::LOOPER).unwrap();
    let mut neighbour = counter.instantiate().unwrap();
    neighbour.init(&[]).unwrap();

    let mut spinner = looper.instantiate().unwrap();
    spinner.init(&[]).unwrap();
    let err = spinner.handle("spin", &[]).unwrap_err();
    assert_eq!(
        err,
        ModuleError::OutOfFuel {
            module: "looper".into(),
            export: "handle".into(),
            fuel: 1_000_000
        }
    );
    assert!(err.to_string().contains("ran out of fuel"));
    assert_eq!(spinner.last_fuel_used(), 1_000_000);

    // The same instance: fresh fuel for the next call, so it serves what
    // does not loop, and a second loop is reported the same way.
    assert_eq!(spinner.snapshot().unwrap(), Vec::<u8>::new());
    assert!(matches!(
        spinner.handle("spin", &[]).unwrap_err(),
        ModuleError::OutOfFuel { .. }
    ));

    // Its neighbour never noticed.
    neighbour.handle("add", &[]).unwrap();
    assert_eq!(neighbour.handle("get", &[]).unwrap().reply, Some(le(1)));
}

#[test]
fn fuel_is_per_call_not_per_instance() {
    // 2,000 fuel is enough for one add but far from enough for 1,000.
    let store = ModuleStore::new(small_limits().with_fuel(2_000));
    let mut guest = store
        .load_wat("counter", guests::COUNTER_V1)
        .unwrap()
        .instantiate()
        .unwrap();
    guest.init(&[]).unwrap();
    for _ in 0..1000 {
        guest.handle("add", &[]).unwrap();
    }
    assert_eq!(guest.handle("get", &[]).unwrap().reply, Some(le(1000)));
}

#[test]
fn growing_memory_without_bound_hits_the_ceiling() {
    let store = store(); // 32 pages
    let mut guest = store
        .load_wat("grower", guests::GROWER)
        .unwrap()
        .instantiate()
        .unwrap();
    guest.init(&[]).unwrap();
    assert_eq!(
        guest.handle("grow", &[]).unwrap_err(),
        ModuleError::MemoryLimit {
            module: "grower".into(),
            export: "handle".into(),
            max_pages: 32
        }
    );
    assert_eq!(
        guest.memory_pages(),
        32,
        "grown to the ceiling, not past it"
    );
}

#[test]
fn a_trap_is_reported_with_its_message() {
    let store = store();
    let mut guest = store
        .load_wat("trapper", guests::TRAPPER)
        .unwrap()
        .instantiate()
        .unwrap();
    guest.init(&[]).unwrap();
    match guest.handle("boom", &[]).unwrap_err() {
        ModuleError::Trap {
            module,
            export,
            message,
        } => {
            assert_eq!((module.as_str(), export.as_str()), ("trapper", "handle"));
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    assert_eq!(guest.snapshot().unwrap(), Vec::<u8>::new());
}

#[test]
fn deep_recursion_overflows_the_stack_limit() {
    let store = ModuleStore::new(small_limits().with_stack_bytes(64 * 1024));
    let mut guest = store
        .load_wat("recurser", guests::RECURSER)
        .unwrap()
        .instantiate()
        .unwrap();
    assert_eq!(
        guest.handle("dive", &[]).unwrap_err(),
        ModuleError::StackOverflow {
            module: "recurser".into(),
            export: "handle".into(),
            stack_bytes: 64 * 1024
        }
    );
    assert!(
        guest.last_fuel_used() < 1_000_000,
        "the stack gave out first"
    );
    // And again: the stack is fine for the next call.
    assert!(matches!(
        guest.handle("dive", &[]).unwrap_err(),
        ModuleError::StackOverflow { .. }
    ));
}

#[test]
fn a_restore_that_traps_is_an_error_and_the_old_instance_serves_on() {
    let store = store();
    let v1 = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let broken = store.load_wat("counter", guests::RESTORE_TRAPS).unwrap();
    let mut old = v1.instantiate().unwrap();
    old.init(&le(5)).unwrap();
    let state = old.snapshot().unwrap();

    let err = broken.instantiate().unwrap().restore(&state).unwrap_err();
    assert!(
        matches!(&err, ModuleError::Trap { module, export, message }
            if module == "counter" && export == "restore" && message.contains("unreachable")),
        "{err:?}"
    );
    old.handle("add", &[]).unwrap();
    assert_eq!(old.handle("get", &[]).unwrap().reply, Some(le(6)));
}

#[test]
fn sends_replies_and_logs_come_back_with_the_call() {
    let store = store();
    let wat = guest_wat(
        r#"(import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))
           (import "hv" "reply" (func $reply (param i32 i32)))
           (import "hv" "log" (func $log (param i32 i32 i32)))
           (import "hv" "now_ms" (func $now (result i64)))"#,
        r#"(data (i32.const 16) "space:app:w7pinghello")"#,
        r#"(drop (call $send (i32.const 16) (i32.const 12) (i32.const 28) (i32.const 4)
                             (local.get $body) (local.get $blen)))
           (call $log (i32.const 2) (i32.const 32) (i32.const 5))
           (call $log (i32.const 99) (i32.const 16) (i32.const 5))
           (i64.store (i32.const 0) (call $now))
           (call $reply (i32.const 0) (i32.const 8))
           (i32.const 0)"#,
    );
    let mut guest = store
        .load_wat("chatty", &wat)
        .unwrap()
        .instantiate()
        .unwrap();
    let out = guest.handle("go", b"payload").unwrap();
    assert_eq!(
        out.sends,
        [GuestSend {
            to: "space:app:w7".into(),
            method: "ping".into(),
            body: b"payload".to_vec()
        }]
    );
    assert_eq!(
        out.logs,
        [
            GuestLog {
                level: LogLevel::Info,
                message: "hello".into()
            },
            GuestLog {
                level: LogLevel::Trace,
                message: "space".into()
            }
        ]
    );
    let now = i64::from_le_bytes(out.reply.unwrap().try_into().unwrap());
    assert!(
        now > 1_600_000_000_000,
        "milliseconds since the epoch: {now}"
    );
}

#[test]
fn abi_violations_are_named_not_bare_traps() {
    let store = store();
    let imports = r#"(import "hv" "reply" (func $reply (param i32 i32)))
                     (import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))"#;
    let violation = |name: &str, body: &str| {
        let wat = guest_wat(imports, "", body);
        let mut guest = store.load_wat(name, &wat).unwrap().instantiate().unwrap();
        match guest.handle("go", &[]).unwrap_err() {
            ModuleError::AbiViolation {
                module,
                export,
                message,
            } => {
                assert_eq!((module.as_str(), export.as_str()), (name, "handle"));
                message
            }
            other => panic!("{name}: expected AbiViolation, got {other:?}"),
        }
    };

    let message = violation(
        "out-of-bounds",
        "(call $reply (i32.const -16) (i32.const 100)) (i32.const 0)",
    );
    assert!(message.contains("outside guest memory"), "{message}");

    let message = violation(
        "twice",
        "(call $reply (i32.const 0) (i32.const 1)) (call $reply (i32.const 0) (i32.const 1)) (i32.const 0)",
    );
    assert!(message.contains("twice"), "{message}");

    // 0xff is never UTF-8.
    let message = violation(
        "not-utf8",
        "(i32.store8 (i32.const 0) (i32.const 255))
         (drop (call $send (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))
         (i32.const 0)",
    );
    assert!(message.contains("UTF-8"), "{message}");

    // reply is for handle only.
    let wat = guest_wat(imports, "", "(i32.const 0)").replace(
        r#"(func (export "init") (param i32 i32) (result i32) (i32.const 0))"#,
        r#"(func (export "init") (param i32 i32) (result i32)
             (call $reply (i32.const 0) (i32.const 1)) (i32.const 0))"#,
    );
    let mut guest = store
        .load_wat("early", &wat)
        .unwrap()
        .instantiate()
        .unwrap();
    assert!(matches!(
        guest.init(&[]).unwrap_err(),
        ModuleError::AbiViolation { export, message, .. }
            if export == "init" && message.contains("allowed in handle")
    ));

    // alloc handing back a pointer outside memory is caught by the host.
    let wat = guest_wat("", "", "(i32.const 0)").replace(
        r#"(func (export "alloc") (param i32) (result i32) (i32.const 1024))"#,
        r#"(func (export "alloc") (param i32) (result i32) (i32.const -8))"#,
    );
    let mut guest = store
        .load_wat("bad-alloc", &wat)
        .unwrap()
        .instantiate()
        .unwrap();
    assert!(matches!(
        guest.handle("go", b"0123456789").unwrap_err(),
        ModuleError::AbiViolation { export, .. } if export == "alloc"
    ));
}

#[test]
fn output_past_the_limit_is_refused_before_it_is_copied() {
    let store = ModuleStore::new(small_limits().with_max_output_bytes(1000));
    // Each send claims a 4 GiB body: refused by its length alone.
    let wat = guest_wat(
        r#"(import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))"#,
        "",
        "(drop (call $send (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                           (i32.const 0) (i32.const -1)))
         (i32.const 0)",
    );
    let mut guest = store
        .load_wat("flood", &wat)
        .unwrap()
        .instantiate()
        .unwrap();
    assert_eq!(
        guest.handle("go", &[]).unwrap_err(),
        ModuleError::OutputLimit {
            module: "flood".into(),
            export: "handle".into(),
            limit_bytes: 1000
        }
    );
}

#[test]
fn another_abi_version_is_refused_at_instantiation() {
    let store = store();
    // This host runs versions 1 and 2; 0 and 3 are refused.
    for version in [0, 3] {
        let wat = guest_wat("", "", "(i32.const 0)").replace(
            r#"(func (export "hv_abi_version") (result i32) (i32.const 1))"#,
            &format!(r#"(func (export "hv_abi_version") (result i32) (i32.const {version}))"#),
        );
        let module = store.load_wat("future", &wat).unwrap();
        assert_eq!(
            module.instantiate().unwrap_err(),
            ModuleError::AbiVersion {
                module: "future".into(),
                found: version,
                supported: 2
            }
        );
    }
    let wat = guest_wat("", "", "(i32.const 0)").replace(
        r#"(func (export "hv_abi_version") (result i32) (i32.const 1))"#,
        r#"(func (export "hv_abi_version") (result i32) (i32.const 2))"#,
    );
    assert!(store.load_wat("v2", &wat).unwrap().instantiate().is_ok());
}

#[test]
fn a_start_function_that_traps_fails_instantiation() {
    let store = store();
    let wat = guest_wat(
        "",
        "(func $start unreachable) (start $start)",
        "(i32.const 0)",
    );
    let module = store.load_wat("stillborn", &wat).unwrap();
    assert!(matches!(
        module.instantiate().unwrap_err(),
        ModuleError::Instantiate { module, message }
            if module == "stillborn" && message.contains("unreachable")
    ));
}

#[test]
fn instances_are_independent_and_freed_with_their_store() {
    let store = ModuleStore::new(Limits::default());
    let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let mut a = counter.instantiate().unwrap();
    let mut b = counter.instantiate().unwrap();
    a.init(&[]).unwrap();
    b.init(&le(100)).unwrap();
    a.handle("add", &[]).unwrap();
    assert_eq!(a.handle("get", &[]).unwrap().reply, Some(le(1)));
    assert_eq!(b.handle("get", &[]).unwrap().reply, Some(le(100)));
    // Many short-lived incarnations: each drop frees its Store.
    for n in 0..200 {
        let mut guest = counter.instantiate().unwrap();
        guest.init(&le(n)).unwrap();
        assert_eq!(guest.handle("get", &[]).unwrap().reply, Some(le(n)));
    }
}

#[test]
fn guests_on_other_threads_do_not_see_each_others_failures() {
    // One store shared by threads; each thread runs its own instances. A
    // grower hitting the ceiling on one thread must not fail a counter on
    // another (the ceiling record is per thread).
    let store = std::sync::Arc::new(store());
    let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let grower = store.load_wat("grower", guests::GROWER).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (store, counter, grower) = (store.clone(), counter.clone(), grower.clone());
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    for _ in 0..20 {
                        let mut guest = grower.instantiate().unwrap();
                        assert!(matches!(
                            guest.handle("grow", &[]).unwrap_err(),
                            ModuleError::MemoryLimit { .. }
                        ));
                    }
                } else {
                    // Loads race with the other threads too.
                    let again = store.load_wat("counter", guests::COUNTER_V1).unwrap();
                    for module in [counter, again] {
                        let mut guest = module.instantiate().unwrap();
                        guest.init(&[]).unwrap();
                        for _ in 0..500 {
                            guest.handle("add", &[]).unwrap();
                        }
                        assert_eq!(guest.handle("get", &[]).unwrap().reply, Some(le(500)));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.stats().compiles, 2);
}
