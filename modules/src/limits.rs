//! The sandbox's limits: what one guest call may consume.
//!
//! A guest is untrusted code inside the Machine's process, so every resource
//! it can exhaust is bounded: CPU by fuel (wasmer's metering middleware
//! counts operators, the sandbox's own middleware charges operators whose
//! work depends on an operand by that operand, and a call traps when its
//! budget is spent), memory by a ceiling in 64 KiB pages plus a cap on
//! table entries (both enforced by [`SandboxTunables`] and checked at load),
//! native stack by the size of the stack guest code runs on, and host
//! memory by a cap on what one call may send, reply and log. Limits belong
//! to a [`ModuleStore`](crate::ModuleStore): they are compiled into (fuel)
//! or attached to (memory, tables, stack) each module's engine.
//!
//! An instance's memory budget is therefore
//! [`Limits::instance_budget_bytes`]: its one linear memory at the ceiling
//! plus all its tables at their cap. Within one instance, nothing a guest
//! does makes the host hold more for it (besides wasmer's fixed
//! per-instance bookkeeping and the call's output, capped by
//! `max_output_bytes`). What a WASM particle's guest opens beyond its
//! instance is bounded by counts (ABI v2: at most 1,000 children it
//! spawned, each an instance of its own; 64 open asks, each reply at most
//! 1 MiB; 64 timers), see `ABI.md`.
//!
//! [`SandboxTunables`]: crate::SandboxTunables

/// The smallest stack a guest call may be given. wasmer runs guest code, and
/// the host functions it calls, on this stack; below this the host's own
/// functions (buffering a send, emitting a log) could overflow it.
pub const MIN_STACK_BYTES: usize = 64 * 1024;

/// wasmer's largest accepted stack (100 MiB).
pub const MAX_STACK_BYTES: usize = 100 * 1024 * 1024;

/// The most pages a 32-bit memory can have (4 GiB).
pub const MAX_PAGES: u32 = 65_536;

/// The most table entries [`Limits::max_table_elements`] may allow: the
/// limit WebAssembly's JavaScript embedding sets on a table (10 million).
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

/// What one table entry can cost the host: wasmer stores each entry as one
/// pointer, and for a `funcref` table of fixed size (minimum = maximum)
/// also a 4-pointer function record in the instance.
pub const TABLE_ELEMENT_BYTES: u64 = 5 * std::mem::size_of::<usize>() as u64;

/// The size of a WebAssembly page.
const PAGE_BYTES: u64 = 64 * 1024;

/// What one guest call may consume. See the module docs for why each exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Fuel for one call (one wave, one `init`, one `snapshot`, one
    /// `restore`): roughly one unit per WebAssembly operator executed. At
    /// most `i64::MAX` (the fuel counter is an i64 global).
    pub fuel_per_call: u64,
    /// The memory ceiling in 64 KiB pages: a memory's maximum is capped to
    /// it, and a `memory.grow` past it fails the call with `MemoryLimit`.
    pub max_memory_pages: u32,
    /// The most entries all of an instance's tables may hold together: each
    /// table's maximum is capped to it, a module whose tables could
    /// together grow past it is refused at load, and a `table.grow` past a
    /// table's maximum returns -1 inside the guest. Counted in the
    /// instance's memory budget at [`TABLE_ELEMENT_BYTES`] each. At most
    /// [`MAX_TABLE_ELEMENTS`].
    pub max_table_elements: u32,
    /// The size of the native stack guest calls run on, in bytes; deeper
    /// recursion is a `StackOverflow`. Clamped to
    /// [`MIN_STACK_BYTES`]..=[`MAX_STACK_BYTES`].
    pub stack_bytes: usize,
    /// The most bytes one call may send, reply and log in all; more is an
    /// `OutputLimit`. Bounds what a guest makes the host buffer.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    /// 10 million fuel per call, 16 MiB of memory, 64 Ki table entries
    /// (2.5 MiB at most), 512 KiB of stack, 16 MiB of output per call.
    fn default() -> Self {
        Self {
            fuel_per_call: 10_000_000,
            max_memory_pages: 256,
            max_table_elements: 65_536,
            stack_bytes: 512 * 1024,
            max_output_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// These limits with `fuel` per call.
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel_per_call = fuel;
        self
    }

    /// These limits with a memory ceiling of `pages` (64 KiB each, at most
    /// [`MAX_PAGES`]).
    pub fn with_max_memory_pages(mut self, pages: u32) -> Self {
        self.max_memory_pages = pages.min(MAX_PAGES);
        self
    }

    /// These limits with at most `entries` table entries per instance (at
    /// most [`MAX_TABLE_ELEMENTS`]).
    pub fn with_max_table_elements(mut self, entries: u32) -> Self {
        self.max_table_elements = entries.min(MAX_TABLE_ELEMENTS);
        self
    }

    /// These limits with a guest stack of `bytes`, clamped to
    /// [`MIN_STACK_BYTES`]..=[`MAX_STACK_BYTES`].
    pub fn with_stack_bytes(mut self, bytes: usize) -> Self {
        self.stack_bytes = bytes.clamp(MIN_STACK_BYTES, MAX_STACK_BYTES);
        self
    }

    /// These limits with at most `bytes` of output per call.
    pub fn with_max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// The stack size actually used (the field clamped to its bounds, in
    /// case it was set directly).
    pub fn effective_stack_bytes(&self) -> usize {
        self.stack_bytes.clamp(MIN_STACK_BYTES, MAX_STACK_BYTES)
    }

    /// The fuel actually given (the field capped to `i64::MAX`).
    pub fn effective_fuel(&self) -> u64 {
        self.fuel_per_call.min(i64::MAX as u64)
    }

    /// The memory ceiling actually used.
    pub fn effective_max_pages(&self) -> u32 {
        self.max_memory_pages.min(MAX_PAGES)
    }

    /// The table-entry cap actually used.
    pub fn effective_max_table_elements(&self) -> u32 {
        self.max_table_elements.min(MAX_TABLE_ELEMENTS)
    }

    /// The most host memory one instance's linear memory and tables can
    /// take together: the memory ceiling plus the table-entry cap at
    /// [`TABLE_ELEMENT_BYTES`] each.
    pub fn instance_budget_bytes(&self) -> u64 {
        u64::from(self.effective_max_pages()) * PAGE_BYTES
            + u64::from(self.effective_max_table_elements()) * TABLE_ELEMENT_BYTES
    }

    /// A stable text of every setting that shapes a compiled artifact or the
    /// engine it is loaded into; part of the on-disk cache key, so an
    /// artifact is never reused under other limits.
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "fuel={};pages={};table_elements={};stack={};output={}",
            self.effective_fuel(),
            self.effective_max_pages(),
            self.effective_max_table_elements(),
            self.effective_stack_bytes(),
            self.max_output_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_the_ceiling_plus_the_tables() {
        let limits = Limits::default();
        assert_eq!(
            limits.instance_budget_bytes(),
            16 * 1024 * 1024 + 65_536 * TABLE_ELEMENT_BYTES
        );
    }

    #[test]
    fn every_limit_is_in_the_fingerprint() {
        let base = Limits::default();
        let variants = [
            base.with_fuel(1),
            base.with_max_memory_pages(1),
            base.with_max_table_elements(1),
            base.with_stack_bytes(MIN_STACK_BYTES),
            base.with_max_output_bytes(1),
        ];
        for other in variants {
            assert_ne!(base.fingerprint(), other.fingerprint(), "{other:?}");
        }
    }

    #[test]
    fn the_table_cap_is_clamped() {
        let limits = Limits::default().with_max_table_elements(u32::MAX);
        assert_eq!(limits.effective_max_table_elements(), MAX_TABLE_ELEMENTS);
    }
}
