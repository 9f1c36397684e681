//! WASM modules for Hyperverse: named, versioned modules run by wasmer in a
//! sandbox, the foundation the runtime's WASM Kind and hot reload build on.
//!
//! The pieces, one per file:
//!
//! - [`ModuleStore`] (`store.rs`) loads a module by name from bytes or WAT;
//!   each load is a new [`ModuleVersion`] (name, sequence, content hash).
//!   Compiled artifacts are cached in memory and, optionally, on disk, so
//!   loading the same bytes again (or after a restart) skips compilation.
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
//!   handed back with the call's result, so this crate needs no runtime.
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

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod abi;
mod disk_cache;
mod engine;
mod error;
pub mod guests;
mod host;
mod instance;
mod limits;
mod store;
mod tunables;
mod version;

pub use error::ModuleError;
pub use host::{GuestLog, GuestSend, HandleOutput, LogLevel};
pub use instance::GuestInstance;
pub use limits::{Limits, MAX_PAGES, MAX_STACK_BYTES, MIN_STACK_BYTES};
pub use store::{CompiledModule, ModuleStore, StoreStats};
pub use tunables::SandboxTunables;
pub use version::{ContentHash, ModuleVersion};
