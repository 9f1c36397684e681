//! The sample guests in `modules/wat/`, as text, for tests, examples and
//! benchmarks across the workspace. Each file's comments say what it does.

/// Counts `add` waves; `get` replies the count (8 bytes LE), `version`
/// replies `[1]`. Snapshot: the count, 8 bytes LE.
pub const COUNTER_V1: &str = include_str!("../wat/counter_v1.wat");

/// Same state as v1; `add` also replies the new count, `version` replies `[2]`.
pub const COUNTER_V2: &str = include_str!("../wat/counter_v2.wat");

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
