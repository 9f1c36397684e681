//! The one error type of this crate.
//!
//! Every variant names the module (and, where there is one, the export or
//! import) so that a crash notice or a failed reload tells an operator what
//! to fix without a debugger. Messages are owned strings rather than wasmer's
//! own error types so the error is `Clone + Send + Sync` and can cross into
//! the runtime (a crash reason, a reload report) without dragging wasmer's
//! types along.

use thiserror::Error;

use hyperverse_runtime::access::{Privilege, Visitor};
use hyperverse_runtime::Point;

use crate::budget::BudgetKind;

/// Why loading, instantiating or calling a guest module failed.
///
/// Load-time variants (`Compile`, `MissingExport`, `WrongSignature`,
/// `UndeclaredImport`, `WrongImportSignature`, `Refused`) mean the module
/// was refused and no version was made. A module that uses a WebAssembly
/// feature the sandbox turns off (threads, multi-memory, memory64,
/// exceptions, tail calls...) is a `Compile` error whose message is the
/// validator's, naming the feature: the engine itself does not accept it. Call-time variants (`Trap`, `OutOfFuel`,
/// `MemoryLimit`, `StackOverflow`, `AbiViolation`, `OutputLimit`,
/// `GuestStatus`) are a crash of that guest call: the instance is still
/// memory-safe to use, but its own state may be half-updated, so the runtime
/// treats it as crashed and starts a fresh instance. `NotLoaded` and `Host`
/// come from the runtime integration: a WASM particle whose module was
/// never loaded, and a host thread that failed under a guest; so does
/// `SendBudget`, a WASM particle's call that sent too much (a crash too:
/// nothing is sent). `Denied` is a reload the access rules refused, and
/// `Manifest` a module's grants manifest that does not parse (refused at
/// load, as a module that does not compile).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// The bytes are not a valid WebAssembly module (or the WAT text does
    /// not parse), or the compiler rejected them.
    #[error("module `{module}`: does not compile: {message}")]
    Compile {
        /// The module's name.
        module: String,
        /// The parser's or compiler's message.
        message: String,
    },

    /// A required export of the guest ABI is absent.
    #[error("module `{module}`: missing export `{export}` required by the guest ABI")]
    MissingExport {
        /// The module's name.
        module: String,
        /// The export the ABI requires.
        export: String,
    },

    /// An export exists but is not of the kind or signature the ABI requires.
    #[error("module `{module}`: export `{export}` is {found}, the guest ABI requires {expected}")]
    WrongSignature {
        /// The module's name.
        module: String,
        /// The export at fault.
        export: String,
        /// What the ABI requires, e.g. `func (i32) -> i32`.
        expected: String,
        /// What the module declares.
        found: String,
    },

    /// The module imports something that is not a host function of the ABI
    /// (another namespace, an unknown name, or a memory/table/global).
    #[error(
        "module `{module}`: imports `{import}`, which is not a host function of the guest ABI"
    )]
    UndeclaredImport {
        /// The module's name.
        module: String,
        /// The import as `namespace.name`.
        import: String,
    },

    /// The module imports a documented host function with another signature.
    #[error("module `{module}`: imports `{import}` as {found}, the host provides {expected}")]
    WrongImportSignature {
        /// The module's name.
        module: String,
        /// The import as `namespace.name`.
        import: String,
        /// The signature the host provides.
        expected: String,
        /// The signature the module declares.
        found: String,
    },

    /// The module declares something the sandbox cannot bound: more than
    /// one memory, a shared memory, tables past the table-entry cap,
    /// exception tags. Found at load, before any instance exists.
    #[error("module `{module}`: refused by the sandbox: {what}: {reason}")]
    Refused {
        /// The module's name.
        module: String,
        /// What was refused, e.g. `table 0 with a minimum of 67108864 entries`.
        what: String,
        /// Why, with the limit it broke.
        reason: String,
    },

    /// The module speaks another version of the guest ABI.
    #[error(
        "module `{module}`: guest ABI version {found}, this host speaks versions 1 to {supported}"
    )]
    AbiVersion {
        /// The module's name.
        module: String,
        /// What `hv_abi_version` returned.
        found: i32,
        /// The newest version this host implements (it runs 1 to this).
        supported: i32,
    },

    /// Instantiation failed (a start function trapped, a data segment did
    /// not fit, a resource could not be allocated).
    #[error("module `{module}`: cannot be instantiated: {message}")]
    Instantiate {
        /// The module's name.
        module: String,
        /// wasmer's message.
        message: String,
    },

    /// The guest trapped (`unreachable`, an out-of-bounds access, a division
    /// by zero...).
    #[error("module `{module}`: `{export}` trapped: {message}")]
    Trap {
        /// The module's name.
        module: String,
        /// The export that was being called.
        export: String,
        /// The trap message, e.g. `unreachable`.
        message: String,
    },

    /// The call used up its fuel: the guest looped or worked too long.
    #[error("module `{module}`: `{export}` ran out of fuel ({fuel} per call)")]
    OutOfFuel {
        /// The module's name.
        module: String,
        /// The export that was being called.
        export: String,
        /// The fuel each call is given.
        fuel: u64,
    },

    /// The guest tried to grow its memory past the ceiling, or declares a
    /// minimum above it (then `export` is `memory`, found at load).
    #[error("module `{module}`: `{export}` hit the memory ceiling of {max_pages} pages of 64 KiB")]
    MemoryLimit {
        /// The module's name.
        module: String,
        /// The export that was being called, or `memory` at load.
        export: String,
        /// The ceiling in 64 KiB pages.
        max_pages: u32,
    },

    /// The guest recursed (or used stack) past its stack size.
    #[error("module `{module}`: `{export}` overflowed its stack of {stack_bytes} bytes")]
    StackOverflow {
        /// The module's name.
        module: String,
        /// The export that was being called.
        export: String,
        /// The stack size of guest calls.
        stack_bytes: usize,
    },

    /// The guest crashed itself with `hv.crash(code, message)` (ABI v2): a
    /// structured reason. The text starts `guest crash CODE: `, which is
    /// how a parent reads the code back from a crash notice's reason (see
    /// [`crash_code`](crate::crash_code)).
    #[error("guest crash {code}: {message} (module `{module}`, in `{export}`)")]
    GuestCrash {
        /// The module's name.
        module: String,
        /// The export that was running.
        export: String,
        /// The guest's code.
        code: i32,
        /// The guest's message.
        message: String,
    },

    /// The guest broke the ABI: a pointer outside its memory, a method or
    /// address that is not UTF-8, `reply` twice or outside `handle`...
    #[error("module `{module}`: `{export}` broke the guest ABI: {message}")]
    AbiViolation {
        /// The module's name.
        module: String,
        /// The export that was being called.
        export: String,
        /// What was wrong.
        message: String,
    },

    /// The guest produced more sends, replies and logs in one call than the
    /// host buffers.
    #[error("module `{module}`: `{export}` produced more than {limit_bytes} bytes of output in one call")]
    OutputLimit {
        /// The module's name.
        module: String,
        /// The export that was being called.
        export: String,
        /// The limit in bytes.
        limit_bytes: usize,
    },

    /// An export returned a non-zero status: the guest itself reports failure.
    #[error("module `{module}`: `{export}` returned error status {status}")]
    GuestStatus {
        /// The module's name.
        module: String,
        /// The export that returned it.
        export: String,
        /// The status (non-zero).
        status: i32,
    },

    /// A WASM particle's guest sent past its [`SendBudget`]: more waves in
    /// one call than the per-call budget (`hv.send` refuses them past
    /// [`MAX_SENDS_PER_CALL`]), or more than its per-second bucket held.
    /// The call fails (a crash of the particle) and nothing it sent leaves.
    ///
    /// [`SendBudget`]: crate::SendBudget
    /// [`MAX_SENDS_PER_CALL`]: crate::MAX_SENDS_PER_CALL
    #[error("module `{module}`: particle `{particle}` went over its send budget of {limit} {budget} in `{export}`")]
    SendBudget {
        /// The module's name.
        module: String,
        /// The particle's Point.
        particle: String,
        /// The export whose sends went over (`init` or `handle`).
        export: String,
        /// Which limit.
        budget: BudgetKind,
        /// Its value.
        limit: u32,
    },

    /// The access rules refused a management action on a module's
    /// particle: a reload by a visitor without the `reload` privilege on
    /// it ([`WasmHost::reload_as`](crate::WasmHost::reload_as)). Nothing
    /// changed. (A guest's own denied waves are no error: `hv.send` and
    /// `hv.ask` return a code and the guest runs on.)
    #[error("module `{module}`: {visitor} may not {privilege} {point}")]
    Denied {
        /// The module's name.
        module: String,
        /// Who was refused.
        visitor: Visitor,
        /// The first Point it was refused on.
        point: Point,
        /// The privilege it lacks.
        privilege: Privilege,
    },

    /// A module's grants manifest (`NAME.grants` beside its file, see
    /// [`ModuleGrants`](crate::ModuleGrants)) is not one: the module was
    /// not loaded and nothing changed.
    #[error("module `{module}`: grants manifest {path}, line {line}: {message}")]
    Manifest {
        /// The module's name.
        module: String,
        /// The manifest (or `(given)` for one not read from a file).
        path: String,
        /// The line at fault, from 1 (0: the file as a whole).
        line: usize,
        /// What is wrong with it.
        message: String,
    },

    /// No folder of the host's search path holds a file of the module.
    #[error(
        "module `{module}` is not loaded, and no file of it is in the search path ({searched})"
    )]
    NotFound {
        /// The module's name.
        module: String,
        /// The folders searched, joined.
        searched: String,
    },

    /// A module file could not be read (or is too large to be).
    #[error("module `{module}`: {path}: {message}")]
    File {
        /// The module's name.
        module: String,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },

    /// A WASM particle's module has never been loaded into its
    /// [`WasmHost`](crate::WasmHost): its `start` fails with this.
    #[error("module `{module}` is not loaded")]
    NotLoaded {
        /// The module's name.
        module: String,
    },

    /// The guest is not where its particle's handle says: a panic in the
    /// host or in wasmer (never the guest's doing) dropped it, or the handle
    /// was used off its Star's thread. The call's particle crashes and
    /// restarts with a fresh guest.
    #[error("module `{module}`: host failure: {message}")]
    Host {
        /// The module's name.
        module: String,
        /// What went wrong.
        message: String,
    },

    /// The on-disk artifact cache (or its secret) could not be set up: an
    /// I/O error.
    #[error("module cache at `{path}`: {message}")]
    Cache {
        /// The cache directory or secret file.
        path: String,
        /// What went wrong.
        message: String,
    },

    /// A disk cache directory, or the secret that authenticates its
    /// artifacts, was refused because someone other than this process's
    /// user could change it. Cached artifacts are native code, so trusting
    /// such a directory would let them choose what the Machine runs.
    #[error("module cache: refused `{path}`: {reason}")]
    CacheRefused {
        /// The directory or file refused.
        path: String,
        /// Why.
        reason: CacheRefusal,
    },
}

/// Why a disk cache directory or its secret file was refused (see
/// [`ModuleError::CacheRefused`]). Modes are shown in octal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CacheRefusal {
    /// The path is a symbolic link: whoever can change the link chooses
    /// the directory (or secret) actually used.
    #[error("it is a symbolic link")]
    Symlink,
    /// The path exists but is not a directory (or, for a secret, not a
    /// regular file).
    #[error("it is not a {expected}")]
    WrongType {
        /// `directory` or `regular file`.
        expected: &'static str,
    },
    /// The directory is owned by another user, who could write to it.
    #[error("it is owned by uid {owner}, not by this process's effective uid {euid}")]
    NotOwned {
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// The directory is writable by its group or by everyone.
    #[error("it is writable by group or others (mode {mode:o})")]
    WritableByOthers {
        /// Its permission bits.
        mode: u32,
    },
    /// A directory above the cache lets others rename or replace the
    /// cache: it is owned by someone other than root and this user, or is
    /// writable by others without the sticky bit.
    #[error("the directory `{ancestor}` above it can be changed by others ({why})")]
    UnsafeAncestor {
        /// The directory at fault.
        ancestor: String,
        /// What is wrong with it.
        why: String,
    },
    /// The secret file can be read or written by its group or by everyone.
    #[error(
        "the secret is readable or writable by group or others (mode {mode:o}); it must be 0600"
    )]
    SecretExposed {
        /// Its permission bits.
        mode: u32,
    },
    /// The secret file is not the 32 bytes a secret is.
    #[error("the secret file holds {len} bytes, a cache secret is 32")]
    SecretLength {
        /// Its length.
        len: u64,
    },
    /// The secret file lies inside the cache directory: anyone who can read
    /// the cache could then forge its artifacts.
    #[error("its secret `{secret}` lies inside it; keep the secret outside the cache")]
    SecretInsideCache {
        /// The secret file.
        secret: String,
    },
    /// This platform has no Unix permissions to check, so the cache cannot
    /// be trusted.
    #[error("disk caches need Unix file permissions, which this platform lacks")]
    Unsupported,
}

impl ModuleError {
    /// The name of the module the error is about, if it is about one.
    pub fn module(&self) -> Option<&str> {
        match self {
            Self::Compile { module, .. }
            | Self::MissingExport { module, .. }
            | Self::WrongSignature { module, .. }
            | Self::UndeclaredImport { module, .. }
            | Self::WrongImportSignature { module, .. }
            | Self::Refused { module, .. }
            | Self::AbiVersion { module, .. }
            | Self::Instantiate { module, .. }
            | Self::Trap { module, .. }
            | Self::OutOfFuel { module, .. }
            | Self::MemoryLimit { module, .. }
            | Self::StackOverflow { module, .. }
            | Self::AbiViolation { module, .. }
            | Self::GuestCrash { module, .. }
            | Self::OutputLimit { module, .. }
            | Self::GuestStatus { module, .. }
            | Self::NotLoaded { module }
            | Self::NotFound { module, .. }
            | Self::File { module, .. }
            | Self::Host { module, .. }
            | Self::SendBudget { module, .. }
            | Self::Denied { module, .. }
            | Self::Manifest { module, .. } => Some(module),
            Self::Cache { .. } | Self::CacheRefused { .. } => None,
        }
    }
}

/// The code of a guest's `hv.crash`, read back from a crash reason (a
/// [`CrashNotice`](hyperverse_runtime::CrashNotice)'s `reason`, which is the
/// text of [`ModuleError::GuestCrash`]); `None` if the crash was something
/// else (a trap, fuel, a Rust particle's error).
///
/// ```
/// use hyperverse_modules::{crash_code, ModuleError};
///
/// let e = ModuleError::GuestCrash {
///     module: "kv".into(),
///     export: "handle".into(),
///     code: 7,
///     message: "disk full: no".into(),
/// };
/// assert_eq!(crash_code(&e.to_string()), Some(7));
/// assert_eq!(crash_code("panic: oops"), None);
/// ```
pub fn crash_code(reason: &str) -> Option<i32> {
    let rest = reason.strip_prefix("guest crash ")?;
    let (code, _) = rest.split_once(": ")?;
    code.parse().ok()
}
