//! The optional `hv_inbox` export: a call's bytes written straight into a
//! buffer the guest names, saving the `alloc` call, when they fit, and
//! through `alloc` when they do not; and what a guest that lies about its
//! inbox gets (a typed error when its instance is made, never a write
//! outside its memory).

mod common;

use common::store;
use hyperverse_modules::ModuleError;

/// A guest whose `handle` replies where its method was written and how
/// many times `alloc` was called so far (4 + 4 bytes LE); its inbox is
/// whatever `inbox_body` returns.
fn probe(inbox_body: &str) -> String {
    format!(
        r#"(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") 1)
  (global $allocs (mut i32) (i32.const 0))
  (func (export "hv_abi_version") (result i32) (i32.const 2))
  (func (export "hv_inbox") (result i64) {inbox_body})
  (func (export "alloc") (param i32) (result i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (i32.const 8192))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $blen i32)
                          (result i32)
    (i32.store (i32.const 0) (local.get $m))
    (i32.store (i32.const 4) (global.get $allocs))
    (call $reply (i32.const 0) (i32.const 8))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)"#
    )
}

/// (where the method was written, allocs so far) from a probe's reply.
fn seen(reply: Option<Vec<u8>>) -> (u32, u32) {
    let r = reply.expect("the probe replies");
    (
        u32::from_le_bytes(r[..4].try_into().unwrap()),
        u32::from_le_bytes(r[4..8].try_into().unwrap()),
    )
}

/// `(ptr << 32) | len` as a WAT constant.
fn packed(ptr: u32, len: u32) -> String {
    format!("(i64.const {})", (u64::from(ptr) << 32) | u64::from(len))
}

#[test]
fn bytes_that_fit_go_to_the_inbox_and_the_rest_through_alloc() {
    let store = store();
    let module = store.load_wat("probe", &probe(&packed(256, 64))).unwrap();
    let mut guest = module.instantiate().unwrap();
    guest.init(&[]).unwrap();

    // Method and body, 60 bytes: in the inbox, no alloc.
    let out = guest.handle("echo", &[7; 56]).unwrap();
    assert_eq!(seen(out.reply), (256, 0));
    // 64 bytes exactly still fit.
    assert_eq!(
        seen(guest.handle("echo", &[7; 60]).unwrap().reply),
        (256, 0)
    );
    // 65 do not: alloc is asked, as without an inbox.
    assert_eq!(
        seen(guest.handle("echo", &[7; 61]).unwrap().reply),
        (8192, 1)
    );
    assert_eq!(seen(guest.handle("echo", &[]).unwrap().reply), (256, 1));
}

#[test]
fn an_empty_inbox_is_no_inbox() {
    let store = store();
    let module = store.load_wat("probe", &probe(&packed(256, 0))).unwrap();
    let mut guest = module.instantiate().unwrap();
    assert_eq!(seen(guest.handle("echo", &[]).unwrap().reply), (8192, 1));
}

#[test]
fn an_inbox_outside_memory_is_refused_when_the_instance_is_made() {
    let store = store();
    // One page is 65,536 bytes: a buffer past it, one ending a byte past
    // it, and one whose end overflows 32 bits.
    for (ptr, len) in [(70_000, 16), (65_000, 537), (u32::MAX, u32::MAX)] {
        let module = store.load_wat("liar", &probe(&packed(ptr, len))).unwrap();
        match module.instantiate().unwrap_err() {
            ModuleError::AbiViolation {
                export, message, ..
            } => {
                assert_eq!(export, "hv_inbox");
                assert!(message.contains("outside guest memory"), "{message}");
            }
            other => panic!("inbox {ptr:#x}+{len}: {other:?}"),
        }
    }
    // The last byte of memory is still in it.
    let module = store.load_wat("edge", &probe(&packed(65_535, 1))).unwrap();
    assert!(module.instantiate().is_ok());
}

#[test]
fn an_inbox_export_that_traps_loops_or_lies_about_its_type_fails_cleanly() {
    let store = store();
    let trapping = store.load_wat("trap", &probe("unreachable")).unwrap();
    assert!(matches!(
        trapping.instantiate().unwrap_err(),
        ModuleError::Trap { export, .. } if export == "hv_inbox"
    ));
    let looping = store
        .load_wat("loop", &probe("(loop $l (br $l)) (i64.const 0)"))
        .unwrap();
    assert!(matches!(
        looping.instantiate().unwrap_err(),
        ModuleError::OutOfFuel { export, .. } if export == "hv_inbox"
    ));
    let wrong = probe("(i64.const 0)").replace(
        r#"(func (export "hv_inbox") (result i64) (i64.const 0))"#,
        r#"(func (export "hv_inbox") (result i32) (i32.const 0))"#,
    );
    assert!(matches!(
        store.load_wat("typed", &wrong).unwrap_err(),
        ModuleError::WrongSignature { export, .. } if export == "hv_inbox"
    ));
}
