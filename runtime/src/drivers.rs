//! The Drivers of a Machine: those installed when it was built, and those
//! a [`crate::KindResolver`] finds the first time a Kind is asked for.
//!
//! Erlang's code server loads a module the first time a call needs it; a
//! daemon that finds WASM modules in a search path wants the same of
//! Kinds. The installed map is fixed at build and read with no lock (the
//! spawn path of every Rust Kind); only a miss takes the resolved map's
//! lock and, the first time, asks the resolver. A Kind keeps the first
//! Driver found for it for the Machine's life: "one Driver per Kind"
//! holds for resolved Kinds too.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::Kind;

type Map<D> = HashMap<Kind, Arc<D>, ahash::RandomState>;

/// A resolver, as this file sees it: a function from a Kind to a Driver.
pub(crate) type Resolve<D> = Box<dyn Fn(&Kind) -> Option<Arc<D>> + Send + Sync>;

/// Installed Drivers, then resolved ones. Generic over the Driver type
/// (always `dyn Driver`) so that this file needs nothing from the one that
/// defines it, which holds a `Drivers`.
pub(crate) struct Drivers<D: ?Sized> {
    installed: Map<D>,
    resolver: Option<Resolve<D>>,
    resolved: RwLock<Map<D>>,
}

impl<D: ?Sized> Drivers<D> {
    pub(crate) fn new(installed: Map<D>, resolver: Option<Resolve<D>>) -> Self {
        Drivers {
            installed,
            resolver,
            resolved: RwLock::new(HashMap::with_hasher(ahash::RandomState::new())),
        }
    }

    /// The Driver of `kind`, resolving it the first time.
    pub(crate) fn get(&self, kind: &Kind) -> Option<Arc<D>> {
        if let Some(d) = self.installed.get(kind) {
            return Some(d.clone());
        }
        let resolver = self.resolver.as_ref()?;
        if let Some(d) = self.resolved.read().get(kind) {
            return Some(d.clone());
        }
        // Outside the lock: a resolver is user code.
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| resolver(kind)))
            .ok()
            .flatten()?;
        // Two callers may resolve the same Kind at once: the first kept wins.
        Some(
            self.resolved
                .write()
                .entry(kind.clone())
                .or_insert(found)
                .clone(),
        )
    }

    /// Every Kind with a Driver so far, sorted.
    pub(crate) fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.installed.keys().cloned().collect();
        kinds.extend(self.resolved.read().keys().cloned());
        kinds.sort();
        kinds
    }
}
