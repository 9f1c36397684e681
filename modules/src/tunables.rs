//! The memory ceiling, the table cap and the stack size, enforced through
//! wasmer's `Tunables`.
//!
//! wasmer asks an engine's `Tunables` to create every memory and table and
//! for the VM configuration of each call. [`SandboxTunables`] wraps wasmer's
//! `BaseTunables` and changes these things:
//!
//! - a memory's maximum is capped to the ceiling (an absent maximum becomes
//!   the ceiling), so `memory.grow` past it fails as WebAssembly says it
//!   should: it returns -1;
//! - a memory whose *minimum* is above the ceiling is refused outright;
//! - each memory is wrapped in a [`CeilingMemory`] that records a refused
//!   grow. A guest may well handle -1 (an allocator returning null), but the
//!   sandbox's contract is that hitting the ceiling is a crash, so the
//!   instance checks the record after every call and reports `MemoryLimit`;
//! - a table's maximum is capped to the table-entry cap (an absent maximum
//!   becomes the cap). wasmer's `VMTable::grow` checks the maximum before
//!   it allocates, so a `table.grow` past the cap returns -1 inside the
//!   guest and the host allocates nothing; without the cap a table with no
//!   declared maximum grew by whatever the guest asked (a grow by
//!   `u32::MAX` aborted the process on the failed allocation);
//! - a table whose *minimum* is above the cap is refused before wasmer
//!   allocates it (a declared 64 Mi-entry table committed 512 MiB). The
//!   load refuses such modules first (`abi::validate`, which also refuses
//!   tables whose caps add up past the cap); this is the second line;
//! - `vmconfig()` gives the stack size guest calls run on (wasmer runs
//!   guest code on a separate coroutine stack of that size and turns a hit
//!   of its guard page into a `StackOverflow` trap).
//!
//! The record is a thread-local counter, not a field the instance can reach:
//! wasmer gives no way back from an instance's memory to our wrapper, and a
//! guest call runs synchronously on the calling thread (the coroutine stack
//! is switched to, not another thread), so "the counter moved during my
//! call on this thread" is exact. Tunables are per engine, and an engine is
//! shared by every instance of a module version, so a per-engine flag would
//! mix up instances running on different threads.

use std::cell::Cell;
use std::ptr::NonNull;
use std::time::Duration;

use wasmer::sys::vm::{
    ExpectedValue, LinearMemory, MemoryError, MemoryStyle, ThreadConditions, Trap, VMConfig,
    VMMemory, VMMemoryDefinition, VMSharedMemory, VMTable, VMTableDefinition, WaiterError,
};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryType, Pages, TableStyle, TableType};

use crate::limits::Limits;
use crate::memory_pool::PooledMemory;

thread_local! {
    /// How many grows this thread's guest memories refused at the ceiling.
    static CEILING_HITS: Cell<u64> = const { Cell::new(0) };
}

/// The number of grows refused at the ceiling on this thread so far. An
/// instance reads it before and after a call: a change means the call hit
/// the ceiling.
pub(crate) fn ceiling_hits() -> u64 {
    CEILING_HITS.with(Cell::get)
}

/// `BaseTunables` with a memory ceiling and a stack size; see the module docs.
pub struct SandboxTunables {
    base: BaseTunables,
    max_pages: Pages,
    max_table_elements: u32,
    vmconfig: VMConfig,
}

impl SandboxTunables {
    /// Tunables enforcing `limits`' memory ceiling and stack size.
    pub fn new(limits: &Limits) -> Self {
        Self {
            base: BaseTunables::new(),
            max_pages: Pages(limits.effective_max_pages()),
            max_table_elements: limits.effective_max_table_elements(),
            vmconfig: VMConfig {
                wasm_stack_size: Some(limits.effective_stack_bytes()),
            },
        }
    }

    /// The memory ceiling in pages.
    pub fn max_pages(&self) -> u32 {
        self.max_pages.0
    }

    /// The table-entry cap.
    pub fn max_table_elements(&self) -> u32 {
        self.max_table_elements
    }

    /// `ty` with its maximum capped to the table-entry cap.
    fn capped_table(&self, ty: &TableType) -> TableType {
        let mut capped = *ty;
        let cap = self.max_table_elements;
        capped.maximum = Some(ty.maximum.unwrap_or(cap).min(cap));
        capped
    }

    /// Refuses a table whose minimum is already above the cap, before
    /// wasmer allocates its entries.
    fn check_table(&self, ty: &TableType) -> Result<(), String> {
        if ty.minimum > self.max_table_elements {
            return Err(format!(
                "table of {} entries refused: the sandbox allows {} table entries",
                ty.minimum, self.max_table_elements
            ));
        }
        Ok(())
    }

    /// `ty` with its maximum capped to the ceiling.
    fn capped(&self, ty: &MemoryType) -> MemoryType {
        let mut capped = *ty;
        capped.maximum = Some(ty.maximum.unwrap_or(self.max_pages).min(self.max_pages));
        capped
    }

    /// Refuses a memory whose minimum is already above the ceiling.
    fn check(&self, ty: &MemoryType) -> Result<(), MemoryError> {
        if ty.minimum > self.max_pages {
            return Err(MemoryError::MinimumMemoryTooLarge {
                min_requested: ty.minimum,
                max_allowed: self.max_pages,
            });
        }
        Ok(())
    }
}

impl Tunables for SandboxTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(&self.capped(memory))
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(&self.capped_table(table))
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.check(ty)?;
        let capped = self.capped(ty);
        let inner = self.base.create_host_memory(&capped, style)?;
        Ok(VMMemory(Box::new(CeilingMemory::new(
            inner,
            self.max_pages,
        ))))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        self.check(ty)?;
        let capped = self.capped(ty);
        // SAFETY: forwarded unchanged from wasmer, which guarantees that
        // `vm_definition_location` points to a valid location in VM memory.
        let inner = match unsafe { PooledMemory::new(&capped, style, vm_definition_location) } {
            Some(pooled) => VMMemory(Box::new(pooled?)),
            // SAFETY: as above.
            None => unsafe {
                self.base
                    .create_vm_memory(&capped, style, vm_definition_location)?
            },
        };
        Ok(VMMemory(Box::new(CeilingMemory::new(
            inner,
            self.max_pages,
        ))))
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.check_table(ty)?;
        self.base.create_host_table(&self.capped_table(ty), style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        self.check_table(ty)?;
        let capped = self.capped_table(ty);
        // SAFETY: forwarded from wasmer (only the maximum lowered), as above.
        unsafe {
            self.base
                .create_vm_table(&capped, style, vm_definition_location)
        }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.vmconfig
    }
}

/// A guest memory that counts grows refused at the ceiling (see the module
/// docs); everything else is the wrapped memory's.
#[derive(Debug)]
struct CeilingMemory {
    inner: VMMemory,
    max_pages: Pages,
}

impl CeilingMemory {
    fn new(inner: VMMemory, max_pages: Pages) -> Self {
        Self { inner, max_pages }
    }
}

impl LinearMemory for CeilingMemory {
    fn ty(&self) -> MemoryType {
        self.inner.ty()
    }

    fn size(&self) -> Pages {
        self.inner.size()
    }

    fn style(&self) -> MemoryStyle {
        self.inner.style()
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let wanted = u64::from(self.inner.size().0) + u64::from(delta.0);
        if wanted > u64::from(self.max_pages.0) {
            CEILING_HITS.with(|hits| hits.set(hits.get() + 1));
            return Err(MemoryError::CouldNotGrow {
                current: self.inner.size(),
                attempted_delta: delta,
            });
        }
        self.inner.grow(delta)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        // `min_size` is in bytes.
        if min_size > u64::from(self.max_pages.0) * wasmer::WASM_PAGE_SIZE as u64 {
            CEILING_HITS.with(|hits| hits.set(hits.get() + 1));
            return Err(MemoryError::CouldNotGrow {
                current: self.inner.size(),
                attempted_delta: Pages(0),
            });
        }
        self.inner.grow_at_least(min_size)
    }

    fn reset(&mut self) -> Result<(), MemoryError> {
        self.inner.reset()
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.inner.vmmemory()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        let inner = VMMemory(LinearMemory::try_clone(&self.inner)?);
        Ok(Box::new(Self::new(inner, self.max_pages)))
    }

    unsafe fn initialize_with_data(&self, start: usize, data: &[u8]) -> Result<(), Trap> {
        // SAFETY: the caller's obligations are the wrapped memory's.
        unsafe { self.inner.initialize_with_data(start, data) }
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        let inner = VMMemory(LinearMemory::copy(&self.inner)?);
        Ok(Box::new(Self::new(inner, self.max_pages)))
    }

    fn as_shared(&self) -> Result<VMSharedMemory, MemoryError> {
        self.inner.as_shared()
    }

    unsafe fn do_wait(
        &mut self,
        dst: u32,
        expected: ExpectedValue,
        timeout: Option<Duration>,
    ) -> Result<u32, WaiterError> {
        // SAFETY: the caller's obligations are the wrapped memory's.
        unsafe { self.inner.do_wait(dst, expected, timeout) }
    }

    fn do_notify(&mut self, dst: u32, count: u32) -> u32 {
        self.inner.do_notify(dst, count)
    }

    fn thread_conditions(&self) -> Option<&ThreadConditions> {
        self.inner.thread_conditions()
    }
}
