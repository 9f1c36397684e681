//! WASM modules for Hyperverse: named, versioned modules run by wasmer in a
//! sandbox, the foundation the runtime's WASM Kind and hot reload build on.
//!
//! The pieces, one per file:
//!
//! - [`ModuleStore`] (`store.rs`) loads a module by name from bytes or WAT;
//!   each load of new bytes is a new [`ModuleVersion`] (name, sequence,
//!   content hash), and a store keeps a bounded number of them. Compiled
//!   artifacts are cached in memory and, optionally, on disk
//!   (`disk_cache.rs`: authenticated with a [`CacheSecret`], bounded by
//!   [`DiskCacheConfig`]), so loading the same bytes again (or after a
//!   restart) skips compilation.
//! - The guest ABI (`abi.rs`, and `modules/ABI.md` for guest authors): the
//!   exports a module must provide and the host functions it may import.
//!   Every load is checked against it, so a module that would not run is
//!   refused with an error naming the export or import at fault.
//! - [`Limits`] (`limits.rs`) and the engine's tunables (`tunables.rs`): fuel
//!   per call, a memory ceiling, a stack size and a cap on host output.
//! - [`GuestInstance`] (`instance.rs`): one running instance with its own
//!   wasmer `Store`; each call resets the fuel, and any trap, fuel exhaustion
//!   or ceiling hit comes back as a typed [`ModuleError`], never a panic.
//!   What the guest sends, replies and logs is buffered (`host.rs`) and
//!   handed back with the call's result, so the sandbox needs no runtime.
//!
//! And the runtime integration, built on those:
//!
//! - [`WasmHost`] (`wasm_host.rs`) runs modules as Kinds of a Machine:
//!   [`WasmKind`] gives `Kind::wasm("counter")`, `WasmHost::install` its
//!   Driver. A WASM particle (`particle.rs`) is an ordinary supervised
//!   particle: each wave is one call of the guest's `handle`, the guest's
//!   sends leave as waves from the particle, its reply answers the request,
//!   and any sandbox failure is a crash its Star handles. What a guest may
//!   send is bounded (`budget.rs`): per call and per second
//!   ([`SendBudget`]), and a WASM particle's lane is bounded by default
//!   ([`DEFAULT_WASM_LANE`]). Where it may send, ask, spawn and stop is
//!   the runtime's access rules', judged for the particle as a confined
//!   visitor (`Ctx::confined_may`, the code the receiving side runs): its
//!   own subtree, its parent, the Points its spawn grants, and what the
//!   rules grant it, its module's manifest among them ([`ModuleGrants`],
//!   `manifest.rs`); a denied wave is not sent and the guest gets a code.
//!   A reload needs the `reload` privilege on every live particle it
//!   would move ([`WasmHost::reload_as`]).
//! - Guests on their Star's thread (`local.rs`): wasmer's `Store` is not
//!   `Send`, so a WASM particle runs on its Star's own thread
//!   ([`Launch::run_on_star_thread`](hyperverse_runtime::Launch::run_on_star_thread))
//!   and its guest lives in that thread's slab; the particle holds a
//!   `Send` handle on it, and every wave is a direct call.
//! - Hot reload ([`WasmHost::reload`], `reload.rs`): a new version is
//!   compiled, becomes current, and every live particle swaps to it on
//!   its Star's thread, between two calls of its guest (`snapshot`, new
//!   instance, `restore`, in `swap.rs`), so waves sent meanwhile wait in
//!   its lane and none is lost; guest memories are reused on the thread
//!   that freed them (`memory_pool.rs`), so a swap maps nothing; the [`ReloadReport`] says who moved
//!   and who stayed, and whether the new version was rolled back because
//!   a particle's move to it failed. The Registry's `Record::code_version`
//!   shows each particle's version.
//!
//! ```
//! use hyperverse_modules::{guests, Limits, ModuleStore};
//!
//! let store = ModuleStore::new(Limits::default());
//! let counter = store.load_wat("counter", guests::COUNTER_V1)?;
//! let mut guest = counter.instantiate()?;
//! guest.init(&[])?;
//! guest.handle("add", &[])?;
//! let out = guest.handle("get", &[])?;
//! assert_eq!(out.reply, Some(1u64.to_le_bytes().to_vec()));
//! # Ok::<(), hyperverse_modules::ModuleError>(())
//! ```
//!
//! The same counter as a particle, reloaded live: see [`WasmHost`].

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod abi;
mod budget;
mod disk_cache;
mod effects;
mod engine;
mod entry;
mod error;
mod from_disk;
mod guest_control;
pub mod guests;
mod host;
mod instance;
mod kind;
mod limits;
mod local;
mod manifest;
mod memory_pool;
mod particle;
mod reload;
mod search;
mod store;
mod swap;
mod tunables;
mod version;
mod wasm_host;

/// `tracing` target of WASM particles (undeliverable guest sends, host
/// thread failures).
pub const TARGET_WASM: &str = "hyperverse::wasm";
/// `tracing` target of hot reloads: an `info` span per reload, `debug` per
/// particle moved, `warn` per particle that stays on its old version.
pub const TARGET_RELOAD: &str = "hyperverse::reload";

pub use budget::{
    BudgetKind, SendBudget, DEFAULT_LANE_BYTES, DEFAULT_LANE_CAPACITY, DEFAULT_SENDS_PER_CALL,
    DEFAULT_SENDS_PER_SECOND, DEFAULT_WASM_LANE, MAX_SENDS_PER_CALL,
};
pub use disk_cache::{
    CacheSecret, DiskCacheConfig, DEFAULT_CACHE_MAX_BYTES, DEFAULT_CACHE_MAX_FILES,
};
pub use error::{crash_code, CacheRefusal, ModuleError};
pub use host::{
    CallContext, GuestEffect, GuestLog, GuestSend, HandleOutput, LogLevel, DEFAULT_ASK_TIMEOUT_MS,
    MAX_DELAY_MS, MAX_OPEN_REQUESTS, MAX_OPEN_TIMERS, REFUSED_DELAY, REFUSED_DENIED, REFUSED_OPEN,
    REFUSED_PER_CALL, SEND_DENIED,
};
pub use instance::GuestInstance;
pub use kind::{WasmKind, WASM_KIND_PREFIX};
pub use limits::{
    Limits, MAX_PAGES, MAX_STACK_BYTES, MAX_TABLE_ELEMENTS, MIN_STACK_BYTES, TABLE_ELEMENT_BYTES,
};
pub use manifest::{ModuleGrants, MAX_MANIFEST_BYTES, MAX_MANIFEST_GRANTS};
pub use reload::{ReloadFailure, ReloadReport};
pub use search::{FileStamp, ModuleFile, ModulePath, MAX_MODULE_FILE};
pub use store::{CompiledModule, ModuleStore, StoreStats, DEFAULT_KEEP_VERSIONS};
pub use tunables::SandboxTunables;
pub use version::{ContentHash, ModuleVersion};
pub use wasm_host::{ModuleInfo, WasmHost, WasmHostBuilder, DEFAULT_RELOAD_TIMEOUT};
