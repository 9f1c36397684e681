//! Issue 10: the module store must not grow without end. The same bytes
//! again are the same version, and a name keeps its newest versions plus
//! those still in use, nothing more.

mod common;

use common::{guest_wat, store};
use hyperverse_modules::{guests, ModuleStore, DEFAULT_KEEP_VERSIONS};

fn seqs(store: &ModuleStore, name: &str) -> Vec<u64> {
    store.versions(name).iter().map(|v| v.seq).collect()
}

/// A distinct module for each `n` (its `handle` returns status `n`).
fn variant(n: u32) -> Vec<u8> {
    wasmer::wat2wasm(guest_wat("", "", &format!("(i32.const {n})")).as_bytes())
        .unwrap()
        .into_owned()
}

#[test]
fn loading_the_same_bytes_a_thousand_times_keeps_one_version() {
    let store = store();
    let wasm = wasmer::wat2wasm(guests::COUNTER_V1.as_bytes()).unwrap();
    for _ in 0..1_000 {
        let module = store.load("counter", &wasm).unwrap();
        assert_eq!(module.version().seq, 1);
    }
    assert_eq!(seqs(&store, "counter"), [1]);
    let stats = store.stats();
    assert_eq!((stats.compiles, stats.memory_hits), (1, 999));
    assert_eq!(stats.versions_dropped, 0);
}

/// Alternating two binaries (a reload and back, over and over) makes a
/// new version each time, but only the newest are kept, and the two
/// artifacts are compiled once.
#[test]
fn alternating_loads_keep_only_the_newest_versions() {
    let store = store();
    for i in 0..100 {
        let wat = if i % 2 == 0 {
            guests::COUNTER_V1
        } else {
            guests::COUNTER_V2
        };
        store.load_wat("counter", wat).unwrap();
    }
    let newest: Vec<u64> = (101 - DEFAULT_KEEP_VERSIONS as u64..=100).collect();
    assert_eq!(seqs(&store, "counter"), newest);
    assert_eq!(store.current("counter").unwrap().version().seq, 100);
    assert_eq!(store.stats().compiles, 2);
    assert_eq!(
        store.stats().versions_dropped,
        100 - DEFAULT_KEEP_VERSIONS as u64
    );
}

#[test]
fn versions_are_bounded_but_in_use_ones_are_kept() {
    let store = store().keep_versions(2);
    let held = store.load("m", &variant(0)).unwrap();
    // An instance holds its version too, without any handle on it.
    let instance = store.load("m", &variant(1)).unwrap().instantiate().unwrap();
    for n in 2..10 {
        store.load("m", &variant(n)).unwrap();
    }
    assert_eq!(seqs(&store, "m"), [1, 2, 9, 10], "newest two plus in use");
    assert!(
        store.version("m", 5).is_none(),
        "dropped: neither newest nor in use"
    );
    assert_eq!(store.version("m", 1).unwrap().version(), held.version());
    assert_eq!(store.stats().versions_dropped, 6);

    // Once no one holds them, the next load drops them; seqs go on.
    drop(held);
    drop(instance);
    let next = store.load("m", &variant(10)).unwrap();
    assert_eq!(next.version().seq, 11, "seqs are never reused");
    assert_eq!(seqs(&store, "m"), [10, 11]);
    assert!(store.version("m", 1).is_none());
    assert!(store.version("m", 2).is_none());
    // Other names are not affected.
    store.load("other", &variant(0)).unwrap();
    assert_eq!(seqs(&store, "m"), [10, 11]);
}

/// The artifact of a dropped version goes too: loading its bytes again
/// compiles them again (the memory cache is bounded with the versions).
#[test]
fn a_dropped_versions_artifact_leaves_memory_too() {
    let store = store().keep_versions(1);
    store.load("m", &variant(0)).unwrap();
    store.load("m", &variant(1)).unwrap();
    assert_eq!(seqs(&store, "m"), [2]);
    store.load("m", &variant(0)).unwrap();
    assert_eq!(store.stats().compiles, 3, "variant 0 was compiled again");

    // An artifact another name still uses stays.
    store.load("keeper", &variant(2)).unwrap();
    store.load("m", &variant(2)).unwrap();
    store.load("m", &variant(3)).unwrap();
    let compiles = store.stats().compiles;
    store.load("m", &variant(2)).unwrap();
    assert_eq!(
        store.stats().compiles,
        compiles,
        "variant 2 was still in memory"
    );
}
