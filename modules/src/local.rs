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
    guest: Option<GuestInstance>,
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

    fn insert(&mut self, guest: GuestInstance) -> SlotId {
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index as usize].guest = Some(guest);
                index
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    guest: Some(guest),
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
    fn remove(&mut self, slot: SlotId) -> Option<GuestInstance> {
        let entry = self.entry(slot)?;
        entry.generation = entry.generation.wrapping_add(1);
        let guest = entry.guest.take();
        self.free.push(slot.index);
        guest
    }
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
    /// Keeps `guest` in this thread's slab.
    pub(crate) fn keep(guest: GuestInstance) -> Self {
        let module = guest.module().version().name.clone();
        let slot = SLAB.with(|s| s.borrow_mut().insert(guest));
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
        let a = LocalGuest::keep(counter.instantiate().unwrap());
        a.with(|g| g.init(&[]).map(drop)).unwrap();
        let a_slot = a.slot;
        drop(a);
        let b = LocalGuest::keep(counter.instantiate().unwrap());
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
        let g = LocalGuest::keep(counter.instantiate().unwrap());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = g.with(|_| -> Result<(), ModuleError> { panic!("in the host") });
        }));
        assert!(caught.is_err());
        assert!(g.with(|_| Ok(())).is_err(), "not trusted again");
    }
}
