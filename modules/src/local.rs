//! Guests kept on the thread that made them: a slab in a thread-local.
//!
//! wasmer's `Store` is not `Send` (wasmer 7 keeps thread-bound state in
//! it), while a particle's `State` must be, because the runtime's
//! `Particle` trait lets a particle's task move between threads. An
//! `unsafe impl Send` around the Store would be a promise we cannot check
//! against wasmer's internals. Instead a WASM particle runs on its Star's
//! own thread ([`Launch::run_on_star_thread`]), which polls its task and
//! no other thread ever does, and its guest lives in that thread's slab;
//! the particle's State holds a [`LocalGuest`] (which slab, which slot),
//! which is `Send` and can only reach the guest from the thread that
//! holds it. So a wave is a plain function call into the guest: no
//! thread hand-off, no channel, no allocation for the call.
//!
//! Safe by construction rather than by promise: a `LocalGuest` used on
//! another thread finds that thread's slab, whose id is not its own, and
//! gets an error (its particle crashes); dropped on another thread, it
//! leaves its guest in place, to be dropped with its own thread's slab.
//! Neither happens while the runtime keeps its word that a Star thread's
//! task never moves.
//!
//! Lifetime: the guest is dropped, with its Store, when the `LocalGuest`
//! is (a crash, a stop, a kill: one Store per incarnation). During a call
//! the guest is taken out of its slot, so a panic inside wasmer (a bug:
//! traps and limits are errors) drops it as it unwinds and the slot is
//! found empty afterwards; the particle's guard turns the panic into a
//! crash, and the restart makes a fresh guest.
//!
//! [`Launch::run_on_star_thread`]: hyperverse_runtime::Launch::run_on_star_thread

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyperverse_runtime::Ctx;

use crate::error::ModuleError;
use crate::instance::GuestInstance;

/// Tells one thread's slab from every other's (0 is never used).
static NEXT_SLAB: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static SLAB: RefCell<Slab> = RefCell::new(Slab::new());
}

/// A guest's place in its thread's slab. The generation tells a freed
/// and reused slot from the one a stale handle meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotId {
    slab: u64,
    index: u32,
    generation: u32,
}

struct Entry {
    generation: u32,
    /// Boxed: a call takes the guest out of its slot and puts it back,
    /// which moves a pointer rather than the whole instance (measured: the
    /// two moves of an unboxed one were a tenth of a wave's cost).
    guest: Option<Box<GuestInstance>>,
    /// The particle whose guest it is, for a reload done on this thread
    /// (`swap.rs`): its Point and its code version.
    owner: Option<Ctx>,
}

/// The guests of one thread. Only that thread ever touches it.
struct Slab {
    id: u64,
    entries: Vec<Entry>,
    free: Vec<u32>,
}

impl Slab {
    fn new() -> Self {
        Slab {
            id: NEXT_SLAB.fetch_add(1, Ordering::Relaxed),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, guest: Box<GuestInstance>, owner: Option<Ctx>) -> SlotId {
        let index = match self.free.pop() {
            Some(index) => {
                let entry = &mut self.entries[index as usize];
                entry.guest = Some(guest);
                entry.owner = owner;
                index
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    guest: Some(guest),
                    owner,
                });
                (self.entries.len() - 1) as u32
            }
        };
        SlotId {
            slab: self.id,
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    fn entry(&mut self, slot: SlotId) -> Option<&mut Entry> {
        if slot.slab != self.id {
            return None;
        }
        let entry = self.entries.get_mut(slot.index as usize)?;
        (entry.generation == slot.generation).then_some(entry)
    }

    /// Frees the slot (and drops its guest, if it is in it).
    fn remove(&mut self, slot: SlotId) -> Option<Box<GuestInstance>> {
        let entry = self.entry(slot)?;
        entry.generation = entry.generation.wrapping_add(1);
        let guest = entry.guest.take();
        entry.owner = None;
        self.free.push(slot.index);
        guest
    }
}

/// Calls `f` with the guests of this thread that run a version of module
/// `name`, and their particles, in slot order from slot `from`, at most
/// `budget` of them; returns the slot to go on from, `None` once past the
/// last. Each guest is out of the slab while `f` has it (as in
/// [`LocalGuest::with`]): `f` may replace it, and if `f` panics it is
/// dropped. Between two calls of this function the thread may run other
/// tasks: a guest whose particle ended meanwhile is simply not met.
pub(crate) fn walk_guests_of(
    name: &str,
    from: usize,
    budget: usize,
    mut f: impl FnMut(&mut GuestInstance, &Ctx),
) -> Option<usize> {
    let mut index = from;
    let mut met = 0;
    while met < budget {
        let taken = SLAB.with(|s| {
            let mut s = s.borrow_mut();
            let entry = s.entries.get_mut(index)?;
            let mine = entry.owner.is_some()
                && entry
                    .guest
                    .as_ref()
                    .is_some_and(|g| g.module().name() == name);
            if !mine {
                return Some(None);
            }
            // The owner first: nothing is taken out unless all is there.
            let owner = entry.owner.clone()?;
            let guest = entry.guest.take()?;
            Some(Some((guest, owner, entry.generation)))
        })?;
        if let Some((mut guest, owner, generation)) = taken {
            f(&mut guest, &owner);
            met += 1;
            SLAB.with(|s| {
                let mut s = s.borrow_mut();
                if let Some(e) = s.entries.get_mut(index) {
                    if e.generation == generation {
                        e.guest = Some(guest);
                    }
                }
            });
        }
        index += 1;
    }
    Some(index)
}

/// A guest in the slab of the thread that made it. `Send`, so it can live
/// in a particle's State, but only usable on that thread; dropping it
/// drops the guest and its Store.
pub(crate) struct LocalGuest {
    slot: SlotId,
    /// The module's name, for errors about a lost guest.
    module: Arc<str>,
}

impl std::fmt::Debug for LocalGuest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGuest")
            .field("module", &self.module)
            .field("slot", &self.slot)
            .finish()
    }
}

impl LocalGuest {
    /// Keeps `guest` in this thread's slab, as the guest of the particle
    /// `owner` (if any: a reload on this thread finds only those).
    pub(crate) fn keep(guest: GuestInstance, owner: Option<Ctx>) -> Self {
        let module = guest.module().version().name.clone();
        let slot = SLAB.with(|s| s.borrow_mut().insert(Box::new(guest), owner));
        LocalGuest { slot, module }
    }

    /// Calls `f` with the guest. The guest is out of the slab during the
    /// call, so `f` may itself use other guests of this thread.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Host`] if the guest is not in this thread's slab (the
    /// handle is used on another thread, or a panic dropped its guest);
    /// else what `f` returns.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut GuestInstance) -> Result<T, ModuleError>,
    ) -> Result<T, ModuleError> {
        let taken = SLAB.with(|s| s.borrow_mut().entry(self.slot).and_then(|e| e.guest.take()));
        let Some(mut guest) = taken else {
            return Err(ModuleError::Host {
                module: self.module.to_string(),
                message:
                    "its guest is not on this thread (lost to a panic, or used from another thread)"
                        .into(),
            });
        };
        // If `f` panics, the guest is dropped as it unwinds: what a panic
        // left of it is not trusted again.
        let out = f(&mut guest);
        SLAB.with(|s| {
            if let Some(e) = s.borrow_mut().entry(self.slot) {
                e.guest = Some(guest);
            }
        });
        out
    }
}

impl Drop for LocalGuest {
    fn drop(&mut self) {
        // `try_with`: during the thread's own teardown the slab may be
        // gone already (and its guests with it).
        let removed = SLAB
            .try_with(|s| {
                s.try_borrow_mut()
                    .ok()
                    .and_then(|mut s| s.remove(self.slot))
            })
            .ok()
            .flatten();
        // Dropped outside the slab's borrow: a Store's drop runs no guest
        // code, but nothing is lost by not holding the borrow.
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_stale_or_foreign_handles_find_nothing() {
        const fn send<T: Send>() {}
        send::<LocalGuest>();

        let store = crate::ModuleStore::new(crate::Limits::default());
        let counter = store
            .load_wat("counter", crate::guests::COUNTER_V1)
            .unwrap();
        let a = LocalGuest::keep(counter.instantiate().unwrap(), None);
        a.with(|g| g.init(&[]).map(drop)).unwrap();
        let a_slot = a.slot;
        drop(a);
        let b = LocalGuest::keep(counter.instantiate().unwrap(), None);
        assert_eq!(b.slot.index, a_slot.index, "the slot is reused");
        assert_ne!(b.slot.generation, a_slot.generation);
        let stale = LocalGuest {
            slot: a_slot,
            module: "counter".into(),
        };
        assert!(
            stale.with(|_| Ok(())).is_err(),
            "a stale handle finds nothing"
        );
        std::mem::forget(stale);
        b.with(|g| g.init(&[]).map(drop)).unwrap();

        // On another thread, the same handle finds another slab.
        let answer = std::thread::scope(|s| s.spawn(|| b.with(|_| Ok(())).is_err()).join());
        assert!(answer.unwrap(), "a foreign thread cannot reach the guest");
        b.with(|g| g.handle("add", &[]).map(drop))
            .expect("still there on its own thread");
    }

    #[test]
    fn a_panic_in_a_call_drops_the_guest() {
        let store = crate::ModuleStore::new(crate::Limits::default());
        let counter = store
            .load_wat("counter", crate::guests::COUNTER_V1)
            .unwrap();
        let g = LocalGuest::keep(counter.instantiate().unwrap(), None);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = g.with(|_| -> Result<(), ModuleError> { panic!("in the host") });
        }));
        assert!(caught.is_err());
        assert!(g.with(|_| Ok(())).is_err(), "not trusted again");
    }
}
