//! The guest ABI, version 1: what a module must export and may import.
//!
//! `modules/ABI.md` is the guide for guest authors; this file is the same
//! contract as data, checked at every load so that a module that would fail
//! at its first wave is refused up front, with the export or import named.
//! The rules, in short:
//!
//! - All pointers and lengths are `i32` offsets and byte counts in the
//!   guest's exported `memory` (read as unsigned).
//! - Bytes go *in* through the guest's `alloc`: the host calls `alloc(len)`,
//!   writes `len` bytes at the returned pointer, then passes the pointer to
//!   `init`, `handle` or `restore`. The buffer is the guest's from then on;
//!   the host never frees anything (a bump allocator reset at the end of
//!   each call is enough).
//! - Bytes come *out* through host calls (`reply`, `send`, `log`), which
//!   copy from guest memory at once, or, for `snapshot`, as a pointer and
//!   length packed in an `i64` that the host copies from right after.
//! - Status results are `0` for success; anything else is the guest saying
//!   it failed (`GuestStatus`).
//!
//! The version is an export, `hv_abi_version() -> i32`, checked when an
//! instance is made; a future version 2 host can then tell old guests apart
//! and refuse (or adapt to) them.

use std::fmt::Write;

use wasmer::{ExternType, FunctionType, Module, Type};

use crate::error::ModuleError;
use crate::limits::Limits;

/// The newest ABI version this host implements: version 2 adds asking,
/// spawning and stopping children, timers, a guest's own Point, parent and
/// restart count, and structured crashes (see `modules/ABI.md`).
pub const ABI_VERSION: i32 = 2;

/// The oldest ABI version this host still runs: version 1 modules (send,
/// reply, log, now_ms) run unchanged.
pub const MIN_ABI_VERSION: i32 = 1;

/// The import namespace of the host functions.
pub const HOST_MODULE: &str = "hv";

/// The exported memory guests must have.
pub const MEMORY_EXPORT: &str = "memory";

/// The exports wasmer's metering middleware adds to every compiled module;
/// the host's, not the guest's.
pub(crate) const METERING_EXPORTS: [&str; 2] = [
    "wasmer_metering_remaining_points",
    "wasmer_metering_points_exhausted",
];

/// A function in the ABI: its name and exact signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncSpec {
    /// The export or import name.
    pub name: &'static str,
    /// Parameter types, in order.
    pub params: &'static [Type],
    /// Result types, in order.
    pub results: &'static [Type],
    /// What it is for (shown in docs and errors).
    pub doc: &'static str,
}

impl FuncSpec {
    fn matches(&self, ty: &FunctionType) -> bool {
        ty.params() == self.params && ty.results() == self.results
    }

    /// The signature as text, e.g. `func (i32, i32) -> i32`.
    pub fn signature(&self) -> String {
        signature_text(self.params, self.results)
    }
}

use Type::{I32, I64};

/// `hv_abi_version() -> i32`: the ABI version the guest was written for.
pub const HV_ABI_VERSION: FuncSpec = FuncSpec {
    name: "hv_abi_version",
    params: &[],
    results: &[I32],
    doc: "returns the ABI version the guest implements (1)",
};
/// `alloc(len) -> ptr`: room for `len` bytes the host is about to write.
pub const ALLOC: FuncSpec = FuncSpec {
    name: "alloc",
    params: &[I32],
    results: &[I32],
    doc: "returns a pointer to `len` writable bytes",
};
/// `init(args_ptr, args_len) -> status`: run once per incarnation.
pub const INIT: FuncSpec = FuncSpec {
    name: "init",
    params: &[I32, I32],
    results: &[I32],
    doc: "starts the particle with its spawn arguments; 0 = ok",
};
/// `handle(method_ptr, method_len, body_ptr, body_len) -> status`: one wave.
pub const HANDLE: FuncSpec = FuncSpec {
    name: "handle",
    params: &[I32, I32, I32, I32],
    results: &[I32],
    doc: "handles one wave (method is UTF-8); replies with hv.reply; 0 = ok",
};
/// `snapshot() -> i64`: the state as bytes, `(ptr << 32) | len`.
pub const SNAPSHOT: FuncSpec = FuncSpec {
    name: "snapshot",
    params: &[],
    results: &[I64],
    doc: "returns (ptr << 32) | len of the state's bytes, valid until the next call",
};
/// `restore(ptr, len) -> status`: take over a snapshot's state.
pub const RESTORE: FuncSpec = FuncSpec {
    name: "restore",
    params: &[I32, I32],
    results: &[I32],
    doc: "replaces the state with a snapshot's bytes (perhaps an older version's); 0 = ok",
};

/// The functions every guest exports (besides `memory`).
pub const REQUIRED_EXPORTS: [FuncSpec; 6] =
    [HV_ABI_VERSION, ALLOC, INIT, HANDLE, SNAPSHOT, RESTORE];

/// v2 `on_reply(tag, status, ptr, len) -> status`: the outcome of a tagged
/// request (`hv.ask`, `hv.spawn`, `hv.stop`), delivered as a call of its
/// own, in the particle's lane, after the call that made the request.
/// `status` 0: done (for an ask, the body is the reply; for a spawn, the
/// child's Point); anything else: failed, the body the reason (UTF-8).
pub const ON_REPLY: FuncSpec = FuncSpec {
    name: "on_reply",
    params: &[I64, I32, I32, I32],
    results: &[I32],
    doc: "takes the outcome of a tagged request (status 0 ok, else failed with a UTF-8 reason); 0 = ok",
};
/// v2 `on_crash_notice(child_ptr, child_len, code, reason_ptr, reason_len,
/// restarts, gave_up) -> status`: a child crashed.
pub const ON_CRASH_NOTICE: FuncSpec = FuncSpec {
    name: "on_crash_notice",
    params: &[I32, I32, I32, I32, I32, I32, I32],
    results: &[I32],
    doc: "a child crashed: its Point, its hv.crash code (-1 if it did not call hv.crash),           the reason's text, its restarts, and 1 if it is not restarted; 0 = ok",
};

/// `hv_inbox() -> i64`: `(ptr << 32) | len` of a buffer in guest memory
/// the host may write a call's bytes into instead of asking `alloc` for
/// room, when they fit (any version). Asked once, when the instance is
/// made; the range must lie in memory then.
pub const INBOX: FuncSpec = FuncSpec {
    name: "hv_inbox",
    params: &[],
    results: &[I64],
    doc: "where the host may write a call's bytes without calling alloc: (ptr << 32) | len, asked once",
};

/// The exports a guest may add (v2, and `hv_inbox` in any version),
/// checked for their signature if present.
pub const OPTIONAL_EXPORTS: [FuncSpec; 3] = [ON_REPLY, ON_CRASH_NOTICE, INBOX];

/// `hv.send(to_ptr, to_len, method_ptr, method_len, body_ptr, body_len) -> i32`.
pub const SEND: FuncSpec = FuncSpec {
    name: "send",
    params: &[I32, I32, I32, I32, I32, I32],
    results: &[I32],
    doc: "queues a signal wave to the Point `to` (UTF-8) with a UTF-8 method; \
          delivered after the call succeeds; returns 0",
};
/// `hv.reply(ptr, len)`.
pub const REPLY: FuncSpec = FuncSpec {
    name: "reply",
    params: &[I32, I32],
    results: &[],
    doc: "sets the reply body of the wave being handled; at most once, only in handle",
};
/// `hv.log(level, ptr, len)`.
pub const LOG: FuncSpec = FuncSpec {
    name: "log",
    params: &[I32, I32, I32],
    results: &[],
    doc: "logs a UTF-8 message; level 0 error, 1 warn, 2 info, 3 debug, 4 trace",
};
/// `hv.now_ms() -> i64`.
pub const NOW_MS: FuncSpec = FuncSpec {
    name: "now_ms",
    params: &[],
    results: &[I64],
    doc: "wall-clock milliseconds since the Unix epoch",
};

/// v2 `hv.self(ptr, cap) -> len`.
pub const SELF: FuncSpec = FuncSpec {
    name: "self",
    params: &[I32, I32],
    results: &[I32],
    doc:
        "writes the particle's own Point (UTF-8) at ptr if it fits in cap bytes; returns its length",
};
/// v2 `hv.parent(ptr, cap) -> len`.
pub const PARENT: FuncSpec = FuncSpec {
    name: "parent",
    params: &[I32, I32],
    results: &[I32],
    doc: "writes the parent's Point at ptr if it fits in cap bytes; returns its length, -1 if none",
};
/// v2 `hv.restarts() -> i32`.
pub const RESTARTS: FuncSpec = FuncSpec {
    name: "restarts",
    params: &[],
    results: &[I32],
    doc: "how many times this particle has been restarted",
};
/// v2 `hv.ask(to_ptr, to_len, method_ptr, method_len, body_ptr, body_len,
/// timeout_ms) -> tag`.
pub const ASK: FuncSpec = FuncSpec {
    name: "ask",
    params: &[I32, I32, I32, I32, I32, I32, I32],
    results: &[I64],
    doc: "queues a request to `to` (sent after the call succeeds); returns its tag (> 0), \
          whose reply comes to on_reply, or a negative refusal",
};
/// v2 `hv.spawn(name_ptr, name_len, kind_ptr, kind_len, args_ptr,
/// args_len, flags) -> tag`.
pub const SPAWN: FuncSpec = FuncSpec {
    name: "spawn",
    params: &[I32, I32, I32, I32, I32, I32, I32],
    results: &[I64],
    doc: "queues spawning child `name` of Kind `kind` (flags bit 0: temporary, its \
          crashes are the guest's to handle); returns its tag, or a negative refusal",
};
/// v2 `hv.stop(point_ptr, point_len) -> tag`.
pub const STOP: FuncSpec = FuncSpec {
    name: "stop",
    params: &[I32, I32],
    results: &[I64],
    doc: "queues stopping a particle of the guest's own subtree; returns its tag, or a negative refusal",
};
/// v2 `hv.timer(delay_ms, method_ptr, method_len, body_ptr, body_len) -> id`.
pub const TIMER: FuncSpec = FuncSpec {
    name: "timer",
    params: &[I32, I32, I32, I32, I32],
    results: &[I64],
    doc: "after delay_ms, a signal wave from the particle to itself; returns its id (> 0), \
          or a negative refusal",
};
/// v2 `hv.crash(code, ptr, len)`: never returns.
pub const CRASH: FuncSpec = FuncSpec {
    name: "crash",
    params: &[I32, I32, I32],
    results: &[],
    doc: "crashes the particle with a code and a UTF-8 message; never returns",
};

/// The host functions a guest may import, all from [`HOST_MODULE`].
pub const HOST_FUNCTIONS: [FuncSpec; 12] = [
    SEND, REPLY, LOG, NOW_MS, SELF, PARENT, RESTARTS, ASK, SPAWN, STOP, TIMER, CRASH,
];

/// The v2 imports whose outcome comes to `on_reply`: a module importing
/// one must export it.
pub const TAGGED_IMPORTS: [&str; 3] = [ASK.name, SPAWN.name, STOP.name];

/// `func (i32, i32) -> i32`, `func () -> i64`, `func (i32)`.
fn signature_text(params: &[Type], results: &[Type]) -> String {
    let mut text = String::from("func (");
    for (i, ty) in params.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{}", type_name(*ty));
    }
    text.push(')');
    match results {
        [] => {}
        [one] => {
            let _ = write!(text, " -> {}", type_name(*one));
        }
        many => {
            text.push_str(" -> (");
            for (i, ty) in many.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(type_name(*ty));
            }
            text.push(')');
        }
    }
    text
}

fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::I32 => "i32",
        Type::I64 => "i64",
        Type::F32 => "f32",
        Type::F64 => "f64",
        Type::V128 => "v128",
        Type::ExternRef => "externref",
        Type::FuncRef => "funcref",
        Type::ExceptionRef => "exnref",
    }
}

/// How an extern is described in errors: a function's signature, or its kind.
fn extern_text(ty: &ExternType) -> String {
    match ty {
        ExternType::Function(f) => signature_text(f.params(), f.results()),
        ExternType::Memory(m) if m.shared => "a shared memory".to_string(),
        ExternType::Memory(_) => "a memory".to_string(),
        ExternType::Global(_) => "a global".to_string(),
        ExternType::Table(_) => "a table".to_string(),
        ExternType::Tag(_) => "a tag".to_string(),
    }
}

/// Checks a compiled module against the ABI and the sandbox: every import
/// is a documented host function with its exact signature; the module
/// declares nothing the sandbox cannot bound (see [`check_sandbox`]);
/// `memory` is exported (unshared, with a minimum within the ceiling); and
/// every required function is exported with its exact signature. The first
/// problem found is returned, imports first (an undeclared import is the
/// more serious one).
///
/// Runs after every compile and after every load from the disk cache, so
/// it also guards against an artifact compiled under other rules.
pub(crate) fn validate(name: &str, module: &Module, limits: &Limits) -> Result<(), ModuleError> {
    check_imports(name, module)?;
    check_sandbox(name, module, limits)?;
    check_exports(name, module, limits)?;
    check_optional_exports(name, module)
}

/// The v2 exports, if present, have their signature; a module importing a
/// tagged request exports `on_reply`, so no outcome is ever lost.
fn check_optional_exports(name: &str, module: &Module) -> Result<(), ModuleError> {
    for spec in &OPTIONAL_EXPORTS {
        let found = module.exports().find(|e| e.name() == spec.name);
        match found.as_ref().map(|e| e.ty()) {
            None => {}
            Some(ExternType::Function(ty)) if spec.matches(ty) => {}
            Some(other) => {
                return Err(ModuleError::WrongSignature {
                    module: name.to_string(),
                    export: spec.name.to_string(),
                    expected: spec.signature(),
                    found: extern_text(other),
                })
            }
        }
    }
    let tagged = module
        .imports()
        .any(|i| i.module() == HOST_MODULE && TAGGED_IMPORTS.contains(&i.name()));
    if tagged && !module.exports().any(|e| e.name() == ON_REPLY.name) {
        return Err(ModuleError::MissingExport {
            module: name.to_string(),
            export: format!(
                "{} (the module imports hv.ask, hv.spawn or hv.stop)",
                ON_REPLY.name
            ),
        });
    }
    Ok(())
}

/// Every import is a host function of the ABI with its exact signature, so
/// a guest can never import a memory, table, global or tag (which would
/// escape the memory ceiling and table cap, or share state between guests).
fn check_imports(name: &str, module: &Module) -> Result<(), ModuleError> {
    for import in module.imports() {
        let label = format!("{}.{}", import.module(), import.name());
        let spec = (import.module() == HOST_MODULE)
            .then(|| HOST_FUNCTIONS.iter().find(|f| f.name == import.name()))
            .flatten();
        let Some(spec) = spec else {
            return Err(ModuleError::UndeclaredImport {
                module: name.to_string(),
                import: label,
            });
        };
        match import.ty() {
            ExternType::Function(ty) if spec.matches(ty) => {}
            ExternType::Function(_) => {
                return Err(ModuleError::WrongImportSignature {
                    module: name.to_string(),
                    import: label,
                    expected: spec.signature(),
                    found: extern_text(import.ty()),
                });
            }
            // `hv.send` imported as a memory or global: not a host function.
            _ => {
                return Err(ModuleError::UndeclaredImport {
                    module: name.to_string(),
                    import: format!("{label} ({})", extern_text(import.ty())),
                });
            }
        }
    }
    Ok(())
}

/// `memory` and the required functions are exported with the ABI's types.
fn check_exports(name: &str, module: &Module, limits: &Limits) -> Result<(), ModuleError> {
    let exports: Vec<_> = module.exports().collect();
    let find = |wanted: &str| exports.iter().find(|e| e.name() == wanted);

    match find(MEMORY_EXPORT).map(|e| e.ty()) {
        None => {
            return Err(ModuleError::MissingExport {
                module: name.to_string(),
                export: MEMORY_EXPORT.to_string(),
            })
        }
        Some(ExternType::Memory(memory)) if !memory.shared => {
            if memory.minimum.0 > limits.effective_max_pages() {
                return Err(ModuleError::MemoryLimit {
                    module: name.to_string(),
                    export: MEMORY_EXPORT.to_string(),
                    max_pages: limits.effective_max_pages(),
                });
            }
        }
        Some(other) => {
            return Err(ModuleError::WrongSignature {
                module: name.to_string(),
                export: MEMORY_EXPORT.to_string(),
                expected: "an unshared memory".to_string(),
                found: extern_text(other),
            })
        }
    }

    for spec in &REQUIRED_EXPORTS {
        match find(spec.name).map(|e| e.ty()) {
            None => {
                return Err(ModuleError::MissingExport {
                    module: name.to_string(),
                    export: spec.name.to_string(),
                })
            }
            Some(ExternType::Function(ty)) if spec.matches(ty) => {}
            Some(other) => {
                return Err(ModuleError::WrongSignature {
                    module: name.to_string(),
                    export: spec.name.to_string(),
                    expected: spec.signature(),
                    found: extern_text(other),
                })
            }
        }
    }
    Ok(())
}

/// Refuses what the sandbox cannot bound, with the limit broken named:
///
/// - more than one memory (only one is under the ceiling: multi-memory is
///   off in the engine, and twenty memories once gave a guest twenty
///   ceilings);
/// - a shared memory (threads are off: `memory.atomic.wait32` on a shared
///   memory blocked a host thread with no timeout);
/// - a table whose minimum is above the table-entry cap, or tables whose
///   maxima (each capped to the cap by the tunables) add up past it, so
///   that all of an instance's tables together never hold more than the
///   cap;
/// - exception tags (exceptions are off in the engine).
///
/// The engine's features already refuse most of these at compile time;
/// these checks name the limit, and hold for artifacts from the disk cache.
fn check_sandbox(name: &str, module: &Module, limits: &Limits) -> Result<(), ModuleError> {
    let refused = |what: String, reason: String| ModuleError::Refused {
        module: name.to_string(),
        what,
        reason,
    };
    // `info()` is wasmer's full module description (hidden from its docs,
    // stable within the pinned ~7.4): unlike `exports()` it also lists the
    // memories and tables the module does not export.
    let info = module.info();

    let memories: Vec<_> = info.memories.values().collect();
    if memories.len() > 1 {
        return Err(refused(
            format!("{} memories", memories.len()),
            "the sandbox allows one memory, the one under the memory ceiling".into(),
        ));
    }
    if memories.iter().any(|memory| memory.shared) {
        return Err(refused(
            "a shared memory".into(),
            "threads are off: a wait on a shared memory could block the host thread".into(),
        ));
    }

    let cap = limits.effective_max_table_elements();
    let mut total: u64 = 0;
    for (index, table) in info.tables.values().enumerate() {
        if table.minimum > cap {
            return Err(refused(
                format!("table {index} with a minimum of {} entries", table.minimum),
                format!("the sandbox allows {cap} table entries per instance"),
            ));
        }
        total += u64::from(table.maximum.unwrap_or(cap).min(cap));
    }
    if total > u64::from(cap) {
        return Err(refused(
            format!(
                "{} tables that can grow to {total} entries together",
                info.tables.len()
            ),
            format!(
                "the sandbox allows {cap} table entries per instance; \
                 declare maxima that add up to at most that"
            ),
        ));
    }

    if !info.tags.is_empty() {
        return Err(refused(
            format!("{} exception tags", info.tags.len()),
            "exceptions are off".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_like_wat() {
        assert_eq!(HANDLE.signature(), "func (i32, i32, i32, i32) -> i32");
        assert_eq!(REPLY.signature(), "func (i32, i32)");
        assert_eq!(SNAPSHOT.signature(), "func () -> i64");
    }
}
