//! Guest memories whose address space is reused, on the thread that freed
//! them, instead of mapped and unmapped per instance.
//!
//! Why: a guest memory of the static style is an 8 GiB reservation (the
//! wasm32 address space and its guard: compiled code checks no bounds).
//! wasmer maps one for every instance and unmaps it when the Store is
//! dropped. `munmap` takes the process's address-space lock for writing
//! and flushes the TLB of every core running the process, by
//! inter-processor interrupt. A hot reload makes and drops one instance per
//! particle, on every Star thread at once, while the other threads serve
//! waves: measured on 10,000 particles on two Star threads, `mmap`,
//! `mprotect` and `munmap` (and their waits for each other) were most of
//! each particle's swap. A freed memory's reservation is therefore kept in
//! a small pool of its thread and handed to the next instance made there,
//! which maps nothing.
//!
//! A reused memory must read as zero, as WebAssembly says a new memory
//! does (a C guest's `.bss` relies on it), and must not show one guest's
//! data to another. So a memory is scrubbed when freed: the process's
//! page map (`/proc/self/pagemap`, one read) tells which of its pages are
//! in memory, which swapped out and which empty. Those in memory are zeroed
//! in place (they stay resident, so the next guest takes no page fault on
//! them), swapped ones are given back with `madvise(MADV_DONTNEED)`, and
//! empty ones read as zero already. A page written and then swapped out
//! is not empty, so nothing is left behind either way. Where the page map
//! cannot be read, `mincore` tells pages in memory from the rest, and all
//! the rest is given back. A memory that holds more than [`KEEP_RESIDENT`]
//! bytes, or whose scrub fails, is unmapped whole.
//! Pages past a smaller next guest's size are made inaccessible again, so
//! a guest can reach exactly its own size, as with a fresh memory.
//!
//! Only local, unshared, static-style memories are pooled; the rest are
//! wasmer's own.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::ptr::NonNull;
use std::sync::OnceLock;

use wasmer::sys::vm::{LinearMemory, MemoryError, MemoryStyle, Mmap, MmapType, VMMemoryDefinition};
use wasmer::{MemoryType, Pages, WASM_PAGE_SIZE};

/// Reservations kept per thread. A reload frees one memory per instance it
/// makes, so a few suffice for it; the rest serve bursts of stops and
/// spawns. Each is 8 GiB of address space (not of memory).
const POOL_CAP: usize = 64;

/// The most bytes of zeroed pages a pooled memory keeps resident; a memory
/// that used more is given back to the system whole.
pub(crate) const KEEP_RESIDENT: usize = 256 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Region>> = const { RefCell::new(Vec::new()) };
    /// Memories this thread took from its pool (for tests and metrics).
    static REUSED: Cell<u64> = const { Cell::new(0) };
}

/// How many memories this thread has taken from its pool so far.
#[cfg(test)]
pub(crate) fn reused_on_this_thread() -> u64 {
    REUSED.with(Cell::get)
}

/// How many freed memories this thread keeps for reuse now.
#[cfg(test)]
pub(crate) fn pooled_on_this_thread() -> usize {
    POOL.try_with(|p| p.borrow().len()).unwrap_or(0)
}

/// One reservation: `accessible` bytes readable and writable from its
/// start, the rest inaccessible.
#[derive(Debug)]
struct Region {
    mmap: Mmap,
    accessible: usize,
}

impl Region {
    fn base(&mut self) -> *mut u8 {
        self.mmap.as_mut_ptr()
    }

    /// Makes exactly the first `bytes` accessible.
    fn set_accessible(&mut self, bytes: usize) -> Result<(), String> {
        if bytes > self.accessible {
            self.mmap
                .make_accessible(self.accessible, bytes - self.accessible)?;
        } else if bytes < self.accessible {
            // Given back before it is closed: every inaccessible page of a
            // reservation is empty, so whoever makes it accessible again
            // (a later, bigger guest) finds zeros, not bytes a scrub of
            // the accessible part never saw (a `reset` memory that grew
            // again shrinks here while its old pages hold data).
            // SAFETY: the range lies inside this reservation (page aligned:
            // both are multiples of the wasm page), and no guest can reach
            // it from now on (it is past the memory's length).
            let failed = unsafe {
                let start = self.base().add(bytes).cast();
                let len = self.accessible - bytes;
                libc::madvise(start, len, libc::MADV_DONTNEED) != 0
                    || libc::mprotect(start, len, libc::PROT_NONE) != 0
            };
            if failed {
                return Err(std::io::Error::last_os_error().to_string());
            }
        }
        self.accessible = bytes;
        Ok(())
    }

    /// Zeroes the accessible bytes (see the module docs). False if the
    /// region should not be reused.
    fn scrub(&mut self) -> bool {
        let len = self.accessible;
        if len == 0 {
            return true;
        }
        let page = page_size();
        let base = self.base();
        let Some(states) = page_states(base, len, page) else {
            return false;
        };
        let held = states.iter().filter(|s| **s == Page::Present).count() * page;
        if held > KEEP_RESIDENT {
            return false;
        }
        let mut at = 0;
        while at < states.len() {
            let here = states[at];
            let run = states[at..].iter().take_while(|s| **s == here).count();
            // SAFETY: the run lies inside the accessible bytes, which no
            // instance uses any more.
            unsafe {
                let start = base.add(at * page);
                match here {
                    Page::Empty => {}
                    Page::Present => std::ptr::write_bytes(start, 0, run * page),
                    Page::Elsewhere => {
                        if libc::madvise(start.cast(), run * page, libc::MADV_DONTNEED) != 0 {
                            return false;
                        }
                    }
                }
            }
            at += run;
        }
        true
    }
}

/// What one page of a freed memory holds, as far as scrubbing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// Never written, or given back: it reads as zero without our help.
    Empty,
    /// In memory: zeroed in place.
    Present,
    /// Swapped out, or not known to be empty: given back to the system.
    Elsewhere,
}

/// The state of each page of `base..base + len`. From
/// `/proc/self/pagemap` where it can be read (one read tells present,
/// swapped and empty apart); else from `mincore`, which cannot tell a page
/// never written from one swapped out, so every page not in memory is
/// `Elsewhere`.
fn page_states(base: *mut u8, len: usize, page: usize) -> Option<Vec<Page>> {
    // Opened once per process; a forked child (whose copy of the handle
    // would read its parent's map) opens its own each time.
    static PAGEMAP: OnceLock<(u32, Option<File>)> = OnceLock::new();
    let open = || File::open("/proc/self/pagemap").ok();
    let pid = std::process::id();
    let (opened_by, file) = PAGEMAP.get_or_init(|| (pid, open()));
    let from_map = if *opened_by == pid {
        file.as_ref()
            .and_then(|file| pagemap_states(file, base, len, page))
    } else {
        open().and_then(|file| pagemap_states(&file, base, len, page))
    };
    from_map.or_else(|| mincore_states(base, len, page))
}

/// [`page_states`] from the page map: 8 bytes per page, bit 63 "present",
/// bit 62 "swapped".
fn pagemap_states(pagemap: &File, base: *mut u8, len: usize, page: usize) -> Option<Vec<Page>> {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    let mut raw = vec![0u8; len / page * 8];
    let at = (base as u64 / page as u64) * 8;
    pagemap.read_exact_at(&mut raw, at).ok()?;
    Some(
        raw.chunks_exact(8)
            .map(|e| {
                let entry = u64::from_ne_bytes(e.try_into().unwrap_or_default());
                if entry & PRESENT != 0 {
                    Page::Present
                } else if entry & SWAPPED != 0 {
                    Page::Elsewhere
                } else {
                    Page::Empty
                }
            })
            .collect(),
    )
}

/// [`page_states`] from `mincore`: in memory or not.
fn mincore_states(base: *mut u8, len: usize, page: usize) -> Option<Vec<Page>> {
    let mut resident = vec![0u8; len / page];
    // SAFETY: `base..base + len` is mapped (a reservation) and `resident`
    // has one byte per page of it.
    if unsafe { libc::mincore(base.cast(), len, resident.as_mut_ptr()) } != 0 {
        return None;
    }
    Some(
        resident
            .iter()
            .map(|r| {
                if r & 1 == 1 {
                    Page::Present
                } else {
                    Page::Elsewhere
                }
            })
            .collect(),
    )
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// A region of `total` bytes with `accessible` of them usable: from this
/// thread's pool if it has one of that reservation, else newly mapped.
fn take(total: usize, accessible: usize) -> Result<Region, MemoryError> {
    let pooled = POOL
        .try_with(|p| {
            let mut pool = p.borrow_mut();
            // The same size needs no mprotect; look at the newest first.
            let at = pool
                .iter()
                .rposition(|r| r.mmap.len() == total && r.accessible == accessible)
                .or_else(|| pool.iter().rposition(|r| r.mmap.len() == total))?;
            Some(pool.swap_remove(at))
        })
        .ok()
        .flatten();
    if let Some(mut region) = pooled {
        if region.set_accessible(accessible).is_ok() {
            let _ = REUSED.try_with(|r| r.set(r.get() + 1));
            return Ok(region);
        }
        // A failed mprotect: this one is unmapped, a fresh one made.
    }
    let mmap = Mmap::accessible_reserved(accessible, total, None, MmapType::Private)
        .map_err(MemoryError::Region)?;
    Ok(Region { mmap, accessible })
}

/// Scrubs `region` and keeps it for this thread's next instance, or
/// unmaps it.
fn give_back(mut region: Region) {
    // Room first: a region that will not be kept is unmapped, not scrubbed.
    let room = POOL
        .try_with(|p| p.borrow().len() < POOL_CAP)
        .unwrap_or(false);
    if !room || !region.scrub() {
        return;
    }
    let kept = POOL.try_with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < POOL_CAP {
            pool.push(region);
            None
        } else {
            Some(region)
        }
    });
    // Unmapped outside the pool's borrow (or during thread teardown).
    drop(kept);
}

/// A guest's linear memory in a pooled reservation (static style: it never
/// moves, and every byte past its size traps).
#[derive(Debug)]
pub(crate) struct PooledMemory {
    region: Option<Region>,
    /// Where compiled code reads the memory's base and length: inside the
    /// instance's VM context, which outlives this memory.
    definition: NonNull<VMMemoryDefinition>,
    ty: MemoryType,
    style: MemoryStyle,
}

// SAFETY: as for wasmer's own `VMOwnedMemory`: the pointer is to the
// owning instance's context, and a memory is used by one thread at a time
// (a Store is not shared between threads).
unsafe impl Send for PooledMemory {}
// SAFETY: `&self` methods only read the definition; it is written
// through `&mut self` (grow, reset) while wasmer's compiled code holds
// the same pointer, which is sound because one thread at a time uses a
// Store and everything in it, as for wasmer's own `VMOwnedMemory`.
unsafe impl Sync for PooledMemory {}

impl PooledMemory {
    /// A memory of `ty` (its maximum already capped by the sandbox) whose
    /// definition lives at `definition`, if `ty` and `style` are of the
    /// kind pooled; `None` for wasmer to make.
    ///
    /// # Safety
    ///
    /// `definition` must point to the memory definition inside the VM
    /// context of the instance being made, as wasmer's
    /// `Tunables::create_vm_memory` guarantees.
    pub(crate) unsafe fn new(
        ty: &MemoryType,
        style: &MemoryStyle,
        definition: NonNull<VMMemoryDefinition>,
    ) -> Option<Result<Self, MemoryError>> {
        if ty.shared || !matches!(style, MemoryStyle::Static) {
            return None;
        }
        let bound = MemoryStyle::static_bound();
        if ty.minimum > bound {
            return Some(Err(MemoryError::MinimumMemoryTooLarge {
                min_requested: ty.minimum,
                max_allowed: bound,
            }));
        }
        let total = bound.bytes().0 + style.offset_guard_size() as usize;
        let accessible = ty.minimum.bytes().0;
        Some(take(total, accessible).map(|mut region| {
            // SAFETY: the caller's promise: `definition` is valid and ours.
            unsafe {
                let d = &mut *definition.as_ptr();
                d.base = region.base();
                d.current_length = accessible;
            }
            PooledMemory {
                region: Some(region),
                definition,
                ty: *ty,
                style: *style,
            }
        }))
    }

    fn length(&self) -> usize {
        // SAFETY: the definition outlives this memory (see the field).
        unsafe { self.definition.as_ref().current_length }
    }
}

impl LinearMemory for PooledMemory {
    fn ty(&self) -> MemoryType {
        let mut ty = self.ty;
        ty.minimum = self.size();
        ty
    }

    fn size(&self) -> Pages {
        Pages((self.length() / WASM_PAGE_SIZE) as u32)
    }

    fn style(&self) -> MemoryStyle {
        self.style
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let previous = self.size();
        if delta.0 == 0 {
            return Ok(previous);
        }
        let refused = MemoryError::CouldNotGrow {
            current: previous,
            attempted_delta: delta,
        };
        let Some(wanted) = previous.checked_add(delta) else {
            return Err(refused);
        };
        if wanted > MemoryStyle::static_bound() || self.ty.maximum.is_some_and(|max| wanted > max) {
            return Err(refused);
        }
        let bytes = wanted.bytes().0;
        let region = self.region.as_mut().ok_or(refused)?;
        region.set_accessible(bytes).map_err(MemoryError::Region)?;
        // SAFETY: see `length`; only this memory writes its definition.
        unsafe { (*self.definition.as_ptr()).current_length = bytes };
        Ok(previous)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        let current = self.length() as u64;
        if current < min_size {
            let pages = (min_size - current).div_ceil(WASM_PAGE_SIZE as u64);
            let pages = u32::try_from(pages).map_err(|_| MemoryError::CouldNotGrow {
                current: self.size(),
                attempted_delta: Pages(u32::MAX),
            })?;
            self.grow(Pages(pages))?;
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), MemoryError> {
        // As wasmer's own memory: the size goes to zero, the bytes stay
        // mapped until the memory is dropped.
        // SAFETY: see `grow`.
        unsafe { (*self.definition.as_ptr()).current_length = 0 };
        Ok(())
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.definition
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Err(MemoryError::MemoryNotShared)
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Err(MemoryError::UnsupportedOperation {
            message: "a guest memory is not copied".into(),
        })
    }
}

impl Drop for PooledMemory {
    fn drop(&mut self) {
        if let Some(region) = self.region.take() {
            give_back(region);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use wasmer::{imports, Instance, Module, Store, TypedFunction};

    /// A guest that fills and reads its memory (two pages, growable).
    const SCRIBBLER: &str = r#"(module
      (memory (export "memory") 2 64)
      (data (i32.const 16) "seed")
      (func (export "fill") (param $at i32) (param $byte i32) (param $len i32)
        (memory.fill (local.get $at) (local.get $byte) (local.get $len)))
      (func (export "grow") (param $pages i32) (result i32)
        (memory.grow (local.get $pages)))
      (func (export "load") (param $at i32) (result i32)
        (i32.load8_u (local.get $at))))"#;

    struct Scribbler {
        store: Store,
        fill: TypedFunction<(i32, i32, i32), ()>,
        grow: TypedFunction<i32, i32>,
        load: TypedFunction<i32, i32>,
        memory: wasmer::Memory,
    }

    fn scribbler((engine, module): &(wasmer::Engine, Module)) -> Scribbler {
        let mut store = Store::new(engine.clone());
        let instance = Instance::new(&mut store, module, &imports! {}).unwrap();
        let e = &instance.exports;
        Scribbler {
            fill: e.get_typed_function(&store, "fill").unwrap(),
            grow: e.get_typed_function(&store, "grow").unwrap(),
            load: e.get_typed_function(&store, "load").unwrap(),
            memory: e.get_memory("memory").unwrap().clone(),
            store,
        }
    }

    /// The scribbler compiled under the sandbox's tunables (so its memory
    /// is a pooled one), with its engine.
    fn scribbler_module() -> (wasmer::Engine, Module) {
        let engine = crate::engine::fresh_engine(&Limits::default());
        let module = Module::new(&engine, SCRIBBLER).unwrap();
        (engine, module)
    }

    /// A scribbler grown to 3 pages, every byte of them `byte`.
    fn grown_and_filled(module: &(wasmer::Engine, Module), byte: i32) -> Scribbler {
        let mut guest = scribbler(module);
        assert_eq!(guest.grow.call(&mut guest.store, 1).unwrap(), 2);
        let len = 3 * WASM_PAGE_SIZE as i32;
        guest.fill.call(&mut guest.store, 0, byte, len).unwrap();
        guest
    }

    fn bytes(s: &Scribbler) -> Vec<u8> {
        s.memory.view(&s.store).copy_to_vec().unwrap()
    }

    #[test]
    fn a_reused_memory_reads_as_new_and_ends_where_its_size_does() {
        let module = scribbler_module();
        let page = WASM_PAGE_SIZE as i32;

        // The first guest writes everywhere it can, grown to 3 pages.
        let first = grown_and_filled(&module, 0xAB);
        drop(first);
        let pooled = pooled_on_this_thread();
        assert!(pooled >= 1, "a freed memory is kept");

        // The next one on this thread gets it back: its own size, zeroed
        // but for its data segment.
        let reused = reused_on_this_thread();
        let mut second = scribbler(&module);
        assert_eq!(reused_on_this_thread(), reused + 1, "taken from the pool");
        let seen = bytes(&second);
        assert_eq!(seen.len(), 2 * WASM_PAGE_SIZE);
        assert_eq!(&seen[16..20], b"seed");
        assert!(
            seen[..16].iter().chain(&seen[20..]).all(|b| *b == 0),
            "a reused memory shows nothing of the guest before"
        );
        // The third page, accessible to the first guest, is not to this one.
        let trap = second.load.call(&mut second.store, 2 * page).unwrap_err();
        assert!(trap.message().contains("out of bounds"), "{trap}");
        // And grows as a new memory does, zeroed.
        assert_eq!(second.grow.call(&mut second.store, 2).unwrap(), 2);
        assert_eq!(
            second.load.call(&mut second.store, 3 * page + 7).unwrap(),
            0
        );
        assert!(bytes(&second)[2 * WASM_PAGE_SIZE..].iter().all(|b| *b == 0));
    }

    #[test]
    fn the_page_map_and_mincore_agree_on_what_a_memory_holds() {
        let page = page_size();
        let mut region = take(64 * page, 16 * page).unwrap();
        let base = region.base();
        // SAFETY: the first 16 pages are accessible and ours.
        unsafe {
            base.add(3 * page).write(7);
            base.add(9 * page + 5).write(1);
        }
        let written = |states: &[Page]| {
            states
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == Page::Present)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let by_mincore = mincore_states(base, 16 * page, page).unwrap();
        assert_eq!(written(&by_mincore), [3, 9]);
        assert!(by_mincore
            .iter()
            .all(|s| matches!(s, Page::Present | Page::Elsewhere)));
        // The page map may be unreadable here (some sandboxes hide it):
        // then the scrub uses mincore, tested above.
        if let Ok(pagemap) = std::fs::File::open("/proc/self/pagemap") {
            let by_map = pagemap_states(&pagemap, base, 16 * page, page).unwrap();
            assert_eq!(written(&by_map), [3, 9]);
            assert!(by_map
                .iter()
                .all(|s| matches!(s, Page::Present | Page::Empty)));
        }
        assert!(region.scrub());
        // SAFETY: as above.
        unsafe {
            assert_eq!(base.add(3 * page).read(), 0);
            assert_eq!(base.add(9 * page + 5).read(), 0);
        }
    }

    #[test]
    fn a_memory_that_held_much_is_given_back_whole() {
        let module = scribbler_module();
        // Empty this thread's pool first (tests share threads only
        // sequentially, but start from a known place).
        let held: Vec<_> = (0..pooled_on_this_thread())
            .map(|_| scribbler(&module))
            .collect();
        assert_eq!(pooled_on_this_thread(), 0);
        let mut big = scribbler(&module);
        let pages = (KEEP_RESIDENT / WASM_PAGE_SIZE) as i32 + 1;
        big.grow.call(&mut big.store, pages).unwrap();
        let len = (pages + 2) * WASM_PAGE_SIZE as i32;
        big.fill.call(&mut big.store, 0, 1, len).unwrap();
        drop(big);
        assert_eq!(pooled_on_this_thread(), 0, "not kept: it held too much");
        // A small one is kept, as before.
        drop(scribbler(&module));
        assert_eq!(pooled_on_this_thread(), 1);
        drop(held);
    }

    /// Attack: `Memory::reset` (public in wasmer) drops the size to zero,
    /// and a later grow shrinks the accessible part; the pages past it,
    /// written before the reset, are not scrubbed when the memory is freed
    /// (the scrub covers only the accessible part), so the next instance
    /// that grows over them must still read zeros.
    #[test]
    fn a_memory_reset_then_freed_leaks_nothing_to_the_next_instance() {
        let module = scribbler_module();
        let mut first = grown_and_filled(&module, 0xEE);
        first.memory.reset(&mut first.store).unwrap();
        assert_eq!(first.memory.view(&first.store).size().0, 0);
        first.memory.grow(&mut first.store, 1).unwrap();
        drop(first);
        let reused = reused_on_this_thread();
        let mut second = scribbler(&module);
        assert_eq!(reused_on_this_thread(), reused + 1, "taken from the pool");
        assert_eq!(second.grow.call(&mut second.store, 1).unwrap(), 2);
        let seen = bytes(&second);
        let leaked = seen
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == 0xEE && !(16..20).contains(i))
            .count();
        assert_eq!(
            leaked, 0,
            "bytes of the instance before, in pages it grew over"
        );
    }

    /// A guest of another module (memory of 0 pages, no maximum) made on a
    /// pooled reservation of a 3-page guest: nothing accessible, and each
    /// grow exposes zeroed pages only.
    #[test]
    fn a_zero_page_memory_on_a_reused_reservation_exposes_nothing() {
        let module = scribbler_module();
        // A metering middleware serves one module: an engine of its own.
        let zero_engine = crate::engine::fresh_engine(&Limits::default());
        let zero = Module::new(
            &zero_engine,
            SCRIBBLER.replace(
                "(memory (export \"memory\") 2 64)\n      (data (i32.const 16) \"seed\")",
                "(memory (export \"memory\") 0)",
            ),
        )
        .unwrap();
        let page = WASM_PAGE_SIZE as i32;
        for _ in 0..3 {
            let mut first = scribbler(&module);
            first.grow.call(&mut first.store, 1).unwrap();
            first
                .fill
                .call(&mut first.store, 0, 0x77, 3 * page)
                .unwrap();
            drop(first);
            let reused = reused_on_this_thread();
            let mut z = scribbler(&(zero_engine.clone(), zero.clone()));
            assert_eq!(reused_on_this_thread(), reused + 1, "taken from the pool");
            assert_eq!(bytes(&z).len(), 0);
            let trap = z.load.call(&mut z.store, 0).unwrap_err();
            assert!(trap.message().contains("out of bounds"), "{trap}");
            assert_eq!(z.grow.call(&mut z.store, 0).unwrap(), 0);
            assert_eq!(z.grow.call(&mut z.store, 3).unwrap(), 0);
            assert!(bytes(&z).iter().all(|b| *b == 0), "grown pages read zero");
            let trap = z.load.call(&mut z.store, 3 * page).unwrap_err();
            assert!(trap.message().contains("out of bounds"), "{trap}");
        }
    }
}
