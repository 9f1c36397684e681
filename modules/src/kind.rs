//! `Kind::wasm("name")`: the Kind of a WASM module's particles.
//!
//! A Kind is only a name to the runtime; WASM Kinds are the module's name
//! under a `wasm:` prefix, so a module can never take the Kind of a Rust
//! particle by accident (`counter` the Rust Kind and `wasm:counter` the
//! module live side by side). The trait adds the constructor to the
//! runtime's [`Kind`] without the runtime knowing about WASM.

use hyperverse_runtime::Kind;

/// The prefix of every WASM Kind.
pub const WASM_KIND_PREFIX: &str = "wasm:";

/// WASM Kinds: `Kind::wasm("counter")` is the Kind of module `counter`'s
/// particles (bring the trait into scope).
///
/// ```
/// use hyperverse_modules::WasmKind;
/// use hyperverse_runtime::Kind;
///
/// let kind = Kind::wasm("counter");
/// assert_eq!(kind.as_str(), "wasm:counter");
/// assert_eq!(kind.wasm_module(), Some("counter"));
/// assert_eq!(Kind::new("counter").wasm_module(), None);
/// ```
pub trait WasmKind {
    /// The Kind whose particles run module `module`.
    fn wasm(module: &str) -> Kind;

    /// The module this Kind runs, if it is a WASM Kind.
    fn wasm_module(&self) -> Option<&str>;
}

impl WasmKind for Kind {
    fn wasm(module: &str) -> Kind {
        Kind::new(format!("{WASM_KIND_PREFIX}{module}"))
    }

    fn wasm_module(&self) -> Option<&str> {
        self.as_str().strip_prefix(WASM_KIND_PREFIX)
    }
}
