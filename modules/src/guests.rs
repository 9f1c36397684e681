//! The sample guests in `modules/wat/`, as text, and the prebuilt C guests
//! in `modules/sdk/c/prebuilt/`, as bytes, for tests, examples and
//! benchmarks across the workspace. Each source's comments say what it does.

/// Counts `add` waves; `get` replies the count (8 bytes LE), `version`
/// replies `[1]`. Snapshot: the count, 8 bytes LE.
pub const COUNTER_V1: &str = include_str!("../wat/counter_v1.wat");

/// Same state as v1; `add` also replies the new count, `version` replies `[2]`.
pub const COUNTER_V2: &str = include_str!("../wat/counter_v2.wat");

/// The C counter `modules/sdk/c/examples/counter.c`, written with the SDK
/// header and compiled to wasm32 (`modules/sdk/c/prebuilt/counter_v1.wasm`,
/// checked in so that no C compiler is needed to run it). Behaves as
/// [`COUNTER_V1`]: `add` counts, `get` replies the count (8 bytes LE),
/// `version` replies `[1]`; also `notify` sends `counted` to a parent given
/// at spawn (args: the count, 8 bytes LE, then the parent's Point).
/// Snapshot: the count, 8 bytes LE, then the parent's Point if any.
///
/// Rebuild it with `modules/sdk/c/build.sh` (clang and lld) after changing
/// the source or `hyperverse.h`; `modules/tests/c_prebuilt.rs` checks it
/// against the source where clang is installed.
pub const C_COUNTER_V1: &[u8] = include_bytes!("../sdk/c/prebuilt/counter_v1.wasm");

/// Version 2 of [`C_COUNTER_V1`], from `modules/sdk/c/examples/counter_v2.c`
/// (`modules/sdk/c/prebuilt/counter_v2.wasm`): the same state and snapshot,
/// so live particles reload to it keeping their counts; `add` also replies
/// the new count and `version` replies `[2]`, as [`COUNTER_V2`]. Rebuilt by
/// the same `modules/sdk/c/build.sh`.
pub const C_COUNTER_V2: &[u8] = include_bytes!("../sdk/c/prebuilt/counter_v2.wasm");

/// `handle` loops forever: runs out of fuel.
pub const LOOPER: &str = include_str!("../wat/looper.wat");

/// `handle` grows memory one page at a time until refused: hits the ceiling.
pub const GROWER: &str = include_str!("../wat/grower.wat");

/// `handle` executes `unreachable`: traps.
pub const TRAPPER: &str = include_str!("../wat/trapper.wat");

/// `handle` recurses without end: overflows its stack.
pub const RECURSER: &str = include_str!("../wat/recurser.wat");

/// Imports `env.open`, which is no host function: refused at load.
pub const BAD_IMPORT: &str = include_str!("../wat/bad_import.wat");

/// counter_v2 whose `restore` traps: a reload to it fails for every particle.
pub const RESTORE_TRAPS: &str = include_str!("../wat/restore_traps.wat");

/// A counter that checks per-sender order: `add` may carry `[sender u8,
/// seq u64 LE]` and counts sequence gaps as `violations`; `since` replies
/// the adds this instance handled (not snapshotted, so it tells which
/// version handled what). Snapshot: 144 bytes of state.
pub const ORDERED_V1: &str = include_str!("../wat/ordered_v1.wat");

/// ordered_v1 with the same state; `add` also replies the new count,
/// `version` replies `[2]`.
pub const ORDERED_V2: &str = include_str!("../wat/ordered_v2.wat");

/// Sends waves with `hv.send`: from `init` to the Point in its arguments,
/// and from `handle` to the Point in the wave's body (same method).
pub const RELAY: &str = include_str!("../wat/relay.wat");
