//! The module store: versions, caching, and refusing modules that break the ABI.

mod common;

use common::{guest_wat, small_limits, store};
use hyperverse_modules::{guests, CacheSecret, ContentHash, ModuleError, ModuleStore};

#[test]
fn each_load_is_a_new_version_with_seq_and_hash() {
    let store = store();
    let v1 = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let v2 = store.load_wat("counter", guests::COUNTER_V2).unwrap();
    let other = store.load_wat("other", guests::COUNTER_V1).unwrap();

    assert_eq!(&*v1.version().name, "counter");
    assert_eq!((v1.version().seq, v2.version().seq), (1, 2));
    assert_eq!(other.version().seq, 1, "sequences are per name");
    assert_ne!(v1.version().hash, v2.version().hash);
    assert_eq!(v1.version().hash, other.version().hash);

    let wasm = wasmer::wat2wasm(guests::COUNTER_V1.as_bytes()).unwrap();
    assert_eq!(v1.version().hash, ContentHash::of(&wasm));
    assert_eq!(v1.version().hash.to_hex().len(), 64);
    assert!(v1.version().to_string().starts_with("counter@1 (blake3 "));

    assert_eq!(store.current("counter").unwrap().version(), v2.version());
    assert_eq!(store.version("counter", 1).unwrap().version(), v1.version());
    assert!(store.version("counter", 3).is_none());
    assert!(store.version("counter", 0).is_none());
    assert!(store.current("nobody").is_none());
    let seqs: Vec<u64> = store.versions("counter").iter().map(|v| v.seq).collect();
    assert_eq!(seqs, [1, 2]);
}

#[test]
fn the_same_bytes_again_skip_compilation() {
    let store = store();
    let wasm = wasmer::wat2wasm(guests::COUNTER_V1.as_bytes()).unwrap();
    store.load("counter", &wasm).unwrap();
    assert_eq!(store.stats().compiles, 1);

    let again = store.load("counter", &wasm).unwrap();
    let elsewhere = store.load_wat("copy", guests::COUNTER_V1).unwrap();
    let stats = store.stats();
    assert_eq!(stats.compiles, 1, "neither reload compiled");
    assert_eq!(stats.memory_hits, 2);
    assert_eq!(
        again.version().seq,
        1,
        "the current version's bytes are that version"
    );

    // The shared artifact runs in each version's own instances.
    let mut guest = elsewhere.instantiate().unwrap();
    guest.init(&[]).unwrap();
    guest.handle("add", &[]).unwrap();
    assert_eq!(
        guest.handle("get", &[]).unwrap().reply,
        Some(1u64.to_le_bytes().to_vec())
    );

    store.load_wat("counter", guests::COUNTER_V2).unwrap();
    assert_eq!(store.stats().compiles, 2, "new bytes compile");
}

#[test]
fn invalid_bytes_and_text_are_compile_errors_naming_the_module() {
    let store = store();
    match store.load("junk", b"\0asm\x01\0\0\0garbage").unwrap_err() {
        ModuleError::Compile { module, message } => {
            assert_eq!(module, "junk");
            assert!(!message.is_empty());
        }
        other => panic!("expected Compile, got {other:?}"),
    }
    assert!(matches!(
        store.load("text", b"(module)").unwrap_err(),
        ModuleError::Compile { module, .. } if module == "text"
    ));
    assert!(matches!(
        store.load_wat("bad-wat", "(module (func (export \"x\") (result i32)").unwrap_err(),
        ModuleError::Compile { module, message } if module == "bad-wat" && message.contains("WAT")
    ));
    assert!(
        store.current("junk").is_none(),
        "a failed load makes no version"
    );
    assert_eq!(
        store.stats().compiles,
        2,
        "WAT that does not parse never reaches the compiler"
    );
}

#[test]
fn a_missing_export_is_named() {
    let store = store();
    let wat = guest_wat("", "", "(i32.const 0)").replace("(export \"snapshot\")", "");
    let err = store.load_wat("forgetful", &wat).unwrap_err();
    assert_eq!(
        err,
        ModuleError::MissingExport {
            module: "forgetful".into(),
            export: "snapshot".into()
        }
    );
    assert!(err.to_string().contains("`snapshot`"));

    let no_memory = guest_wat("", "", "(i32.const 0)").replace("(export \"memory\")", "");
    assert!(matches!(
        store.load_wat("amnesiac", &no_memory).unwrap_err(),
        ModuleError::MissingExport { export, .. } if export == "memory"
    ));
}

#[test]
fn a_wrong_signature_is_named_with_both_signatures() {
    let store = store();
    let wat = guest_wat("", "", "(i32.const 0)").replace(
        r#"(func (export "restore") (param i32 i32) (result i32) (i32.const 0))"#,
        r#"(func (export "restore") (param i32) (result i64) (i64.const 0))"#,
    );
    assert_eq!(
        store.load_wat("skewed", &wat).unwrap_err(),
        ModuleError::WrongSignature {
            module: "skewed".into(),
            export: "restore".into(),
            expected: "func (i32, i32) -> i32".into(),
            found: "func (i32) -> i64".into(),
        }
    );

    let global = guest_wat(
        "",
        r#"(global (export "snapshot") i64 (i64.const 0))"#,
        "(i32.const 0)",
    )
    .replace(r#"(func (export "snapshot")"#, "(func");
    assert!(matches!(
        store.load_wat("globby", &global).unwrap_err(),
        ModuleError::WrongSignature { export, found, .. } if export == "snapshot" && found == "a global"
    ));
}

#[test]
fn an_undeclared_import_is_refused_and_named() {
    let store = store();
    assert_eq!(
        store.load_wat("sneaky", guests::BAD_IMPORT).unwrap_err(),
        ModuleError::UndeclaredImport {
            module: "sneaky".into(),
            import: "env.open".into()
        }
    );

    // The right namespace is not enough: the name must be a host function.
    let wat = guest_wat(
        r#"(import "hv" "fork" (func (param i32)))"#,
        "",
        "(i32.const 0)",
    );
    assert!(matches!(
        store.load_wat("forker", &wat).unwrap_err(),
        ModuleError::UndeclaredImport { import, .. } if import == "hv.fork"
    ));
    // A v2 host function with another signature is refused with both.
    let wat = guest_wat(
        r#"(import "hv" "spawn" (func (param i32)))"#,
        "",
        "(i32.const 0)",
    );
    assert!(matches!(
        store.load_wat("spawner", &wat).unwrap_err(),
        ModuleError::WrongImportSignature { import, .. } if import == "hv.spawn"
    ));

    // Nor may a guest import anything but functions.
    let wat = guest_wat(r#"(import "hv" "send" (global i32))"#, "", "(i32.const 0)");
    assert!(matches!(
        store.load_wat("globals", &wat).unwrap_err(),
        ModuleError::UndeclaredImport { import, .. } if import.starts_with("hv.send")
    ));
}

#[test]
fn a_host_function_imported_with_another_signature_is_named() {
    let store = store();
    let wat = guest_wat(
        r#"(import "hv" "reply" (func (param i32)))"#,
        "",
        "(i32.const 0)",
    );
    assert_eq!(
        store.load_wat("mismatched", &wat).unwrap_err(),
        ModuleError::WrongImportSignature {
            module: "mismatched".into(),
            import: "hv.reply".into(),
            expected: "func (i32, i32)".into(),
            found: "func (i32)".into(),
        }
    );
}

#[test]
fn every_documented_host_function_may_be_imported() {
    let store = store();
    let wat = guest_wat(
        r#"(import "hv" "send" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
           (import "hv" "reply" (func (param i32 i32)))
           (import "hv" "log" (func (param i32 i32 i32)))
           (import "hv" "now_ms" (func (result i64)))"#,
        "",
        "(i32.const 0)",
    );
    store.load_wat("polite", &wat).unwrap();
}

#[test]
fn a_memory_minimum_above_the_ceiling_is_refused_at_load() {
    let store = store(); // 32 pages
    let wat = guest_wat("", "", "(i32.const 0)").replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 33)",
    );
    assert_eq!(
        store.load_wat("greedy", &wat).unwrap_err(),
        ModuleError::MemoryLimit {
            module: "greedy".into(),
            export: "memory".into(),
            max_pages: 32
        }
    );
}

#[test]
fn a_failed_load_leaves_the_current_version_current() {
    let store = store();
    store.load_wat("counter", guests::COUNTER_V1).unwrap();
    store.load_wat("counter", guests::BAD_IMPORT).unwrap_err();
    let current = store.current("counter").unwrap();
    assert_eq!(current.version().seq, 1);
    assert_eq!(store.versions("counter").len(), 1);
}

/// The secret of the disk caches in these tests (kept by the caller: the
/// same one after a "restart").
fn secret() -> CacheSecret {
    CacheSecret::from_bytes([42; 32])
}

/// The artifact files in `dir`.
fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "hvart"))
        .collect()
}

#[test]
fn the_disk_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = ModuleStore::with_disk_cache(small_limits(), dir.path(), secret()).unwrap();
    first.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!(first.stats().compiles, 1);
    assert_eq!(first.stats().disk_writes, 1);
    assert_eq!(artifacts(dir.path()).len(), 1);
    drop(first);

    // A "restarted Machine": a new store on the same directory.
    let second = ModuleStore::with_disk_cache(small_limits(), dir.path(), secret()).unwrap();
    let counter = second.load_wat("counter", guests::COUNTER_V1).unwrap();
    let stats = second.stats();
    assert_eq!((stats.compiles, stats.disk_hits), (0, 1));

    let mut guest = counter.instantiate().unwrap();
    guest.init(&common::le(9)).unwrap();
    guest.handle("add", &[]).unwrap();
    assert_eq!(
        guest.handle("get", &[]).unwrap().reply,
        Some(common::le(10))
    );

    // The metering survived the round trip: a looper still runs out of fuel.
    let looper = second.load_wat("looper", guests::LOOPER).unwrap();
    let third = ModuleStore::with_disk_cache(small_limits(), dir.path(), secret()).unwrap();
    let looper_again = third.load_wat("looper", guests::LOOPER).unwrap();
    assert_eq!(third.stats().disk_hits, 1);
    for module in [looper, looper_again] {
        let err = module
            .instantiate()
            .unwrap()
            .handle("spin", &[])
            .unwrap_err();
        assert!(matches!(err, ModuleError::OutOfFuel { .. }), "{err:?}");
    }
}

#[test]
fn the_disk_cache_is_keyed_by_limits_and_rejects_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = ModuleStore::with_disk_cache(small_limits(), dir.path(), secret()).unwrap();
    first.load_wat("counter", guests::COUNTER_V1).unwrap();

    // Other limits: another key, so another compile and another file.
    let other =
        ModuleStore::with_disk_cache(small_limits().with_fuel(5), dir.path(), secret()).unwrap();
    other.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!(other.stats().compiles, 1);
    assert_eq!(artifacts(dir.path()).len(), 2);

    // Damage every file: flip one byte in the middle.
    for path in artifacts(dir.path()) {
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let after = ModuleStore::with_disk_cache(small_limits(), dir.path(), secret()).unwrap();
    let counter = after.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!((after.stats().compiles, after.stats().disk_hits), (1, 0));
    assert_eq!(
        after.stats().disk_writes,
        1,
        "the damaged file was replaced"
    );
    counter.instantiate().unwrap().init(&[]).unwrap();

    // A truncated file is as good as none.
    for path in artifacts(dir.path()) {
        std::fs::write(&path, b"HVWASM1\0short").unwrap();
    }
    let truncated = ModuleStore::with_disk_cache(small_limits(), dir.path(), secret()).unwrap();
    truncated.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!(truncated.stats().compiles, 1);
}

#[test]
fn a_cache_directory_that_cannot_be_made_is_an_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = ModuleStore::with_disk_cache(small_limits(), file.path().join("sub"), secret())
        .unwrap_err();
    assert!(matches!(err, ModuleError::Cache { .. }), "{err:?}");
    assert_eq!(err.module(), None);
}
