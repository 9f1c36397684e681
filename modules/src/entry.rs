//! A host's modules as its particles see them: the version each module's
//! new incarnations start on, the incarnations alive now (what a reload
//! walks), and the file each module was read from. Shared by the host
//! (`wasm_host.rs`), the particles (`particle.rs`) and loading from disk
//! (`from_disk.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hyperverse_runtime::{Machine, Point};
use parking_lot::Mutex;

use crate::budget::GuestPolicy;
use crate::error::ModuleError;
use crate::manifest::ModuleGrants;
use crate::store::{CompiledModule, ModuleStore};

/// What a host shares with the particles of all its modules.
pub(crate) struct HostShared {
    pub(crate) store: Arc<ModuleStore>,
    pub(crate) modules: Mutex<HashMap<Arc<str>, Arc<ModuleEntry>>>,
    pub(crate) reload_timeout: std::time::Duration,
    /// The send budget of every guest, and the default lane.
    pub(crate) policy: GuestPolicy,
    /// Where modules not loaded are looked for on their first start.
    pub(crate) path: crate::search::ModulePath,
}

impl HostShared {
    /// The entry of module `name`, made on first mention.
    pub(crate) fn entry(&self, name: &str) -> Arc<ModuleEntry> {
        let mut modules = self.modules.lock();
        if let Some(entry) = modules.get(name) {
            return entry.clone();
        }
        let name: Arc<str> = Arc::from(name);
        let entry = Arc::new(ModuleEntry {
            name: name.clone(),
            inner: Mutex::new(EntryInner::default()),
            next_id: AtomicU64::new(0),
            reloads: tokio::sync::Mutex::new(()),
            loading: tokio::sync::Mutex::new(()),
            grants: Mutex::new(Arc::new(ModuleGrants::none())),
            in_force: tokio::sync::Mutex::new(Arc::new(ModuleGrants::none())),
            grants_pending: AtomicBool::new(false),
        });
        modules.insert(name, entry.clone());
        entry
    }
}

/// One module as its particles see it: the version new incarnations start
/// on, and the incarnations alive now.
pub(crate) struct ModuleEntry {
    pub(crate) name: Arc<str>,
    inner: Mutex<EntryInner>,
    next_id: AtomicU64,
    /// Reloads of one module run one at a time.
    pub(crate) reloads: tokio::sync::Mutex<()>,
    /// Loads on first use (from the search path) run one at a time.
    pub(crate) loading: tokio::sync::Mutex<()>,
    /// The grants its manifest gives its particles (`manifest.rs`).
    grants: Mutex<Arc<ModuleGrants>>,
    /// The grants in force in the Machine's rules; changed one change at
    /// a time.
    in_force: tokio::sync::Mutex<Arc<ModuleGrants>>,
    /// True while `grants` may differ from `in_force`: what a start looks
    /// at, so that a module whose grants are in force costs its starts
    /// one atomic load.
    grants_pending: AtomicBool,
}

#[derive(Default)]
struct EntryInner {
    /// The version a new incarnation starts on.
    current: Option<CompiledModule>,
    /// Live incarnations (with a guest) by a number of their own, with
    /// their Star: a Point can briefly have two (one ending, one starting).
    live: HashMap<u64, (Point, usize)>,
    /// The file it was last read from, if any, and that file's stamp
    /// then.
    source: Option<(crate::search::ModuleFile, Option<crate::search::FileStamp>)>,
}

impl ModuleEntry {
    /// The current version for a new incarnation at `point`, which is
    /// listed as live until the returned token drops. One lock for both, so
    /// a reload (which swaps the version and reads the list under the same
    /// lock) either sees this incarnation or was seen by it.
    pub(crate) fn enlist(
        self: &Arc<Self>,
        point: &Point,
        star: usize,
    ) -> Result<(CompiledModule, Live), ModuleError> {
        let mut inner = self.inner.lock();
        let module = inner
            .current
            .clone()
            .ok_or_else(|| ModuleError::NotLoaded {
                module: self.name.to_string(),
            })?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        inner.live.insert(id, (point.clone(), star));
        drop(inner);
        let live = Live {
            entry: self.clone(),
            id,
        };
        Ok((module, live))
    }

    /// Makes `module` current unless it or a newer version already is;
    /// says what it replaced and lists the live incarnations (under the
    /// same lock, see [`ModuleEntry::enlist`]).
    pub(crate) fn promote(&self, module: &CompiledModule) -> Promotion {
        let mut inner = self.inner.lock();
        let previous = inner.current.clone();
        let promoted = previous
            .as_ref()
            .is_none_or(|p| p.version().seq < module.version().seq);
        if promoted {
            inner.current = Some(module.clone());
        }
        let stars = inner.live.values().map(|(_, star)| *star).collect();
        let mut live: Vec<Point> = inner.live.values().map(|(p, _)| p.clone()).collect();
        drop(inner);
        live.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        live.dedup();
        Promotion {
            previous,
            promoted,
            live,
            stars,
        }
    }

    /// Makes `previous` current again if `failed` still is, so that new
    /// incarnations stop starting on a version that failed; a version made
    /// current since (by another load) is newer and stays. Returns whether
    /// it rolled back.
    pub(crate) fn roll_back(&self, failed: &CompiledModule, previous: &CompiledModule) -> bool {
        let mut inner = self.inner.lock();
        let still_current = inner
            .current
            .as_ref()
            .is_some_and(|m| m.version().seq == failed.version().seq);
        if still_current {
            inner.current = Some(previous.clone());
        }
        still_current
    }

    /// The version new incarnations start on.
    pub(crate) fn current(&self) -> Option<CompiledModule> {
        self.inner.lock().current.clone()
    }

    /// Remembers the file the module was read from, as it was then.
    pub(crate) fn set_source(
        &self,
        file: crate::search::ModuleFile,
        stamp: Option<crate::search::FileStamp>,
    ) {
        self.inner.lock().source = Some((file, stamp));
    }

    /// The file the module was last read from, if any, with its stamp then.
    pub(crate) fn source(
        &self,
    ) -> Option<(crate::search::ModuleFile, Option<crate::search::FileStamp>)> {
        self.inner.lock().source.clone()
    }

    /// Sets the grants of its manifest, to be put in force by
    /// [`ModuleEntry::grants_in_force`].
    pub(crate) fn set_grants(&self, grants: ModuleGrants) {
        *self.grants.lock() = Arc::new(grants);
        self.grants_pending.store(true, Ordering::Release);
    }

    /// The grants of its manifest.
    pub(crate) fn grants(&self) -> Arc<ModuleGrants> {
        self.grants.lock().clone()
    }

    /// Puts its manifest's grants in force in `machine`'s rules (revoking
    /// what an earlier manifest granted and this one does not), unless
    /// they are already; see `manifest.rs`.
    ///
    /// # Errors
    ///
    /// The rule change refused: they stay pending, for the next try.
    pub(crate) async fn grants_in_force(
        &self,
        machine: &Machine,
    ) -> Result<(), hyperverse_runtime::access::RuleError> {
        if !self.grants_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut in_force = self.in_force.lock().await;
        // Cleared before the wanted grants are read: a manifest set
        // meanwhile sets it again, for the next start.
        self.grants_pending.store(false, Ordering::Release);
        let wanted = self.grants();
        if *wanted == **in_force {
            return Ok(());
        }
        let applied = crate::manifest::put_in_force(machine, &self.name, &in_force, &wanted).await;
        match applied {
            Ok(()) => *in_force = wanted,
            Err(_) => self.grants_pending.store(true, Ordering::Release),
        }
        applied
    }

    /// How many incarnations run it now.
    pub(crate) fn live_count(&self) -> usize {
        self.inner.lock().live.len()
    }

    /// The Points of the live incarnations, sorted.
    pub(crate) fn live(&self) -> Vec<Point> {
        let mut live: Vec<Point> = self
            .inner
            .lock()
            .live
            .values()
            .map(|(point, _)| point.clone())
            .collect();
        live.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        live.dedup();
        live
    }
}

/// What [`ModuleEntry::promote`] did.
pub(crate) struct Promotion {
    /// The version current before, if any.
    pub(crate) previous: Option<CompiledModule>,
    /// Whether the module became current (not if it, or a newer version,
    /// already was).
    pub(crate) promoted: bool,
    /// The Points of the live incarnations, sorted.
    pub(crate) live: Vec<Point>,
    /// The Stars they run on (every incarnation's, a Point's two included).
    pub(crate) stars: std::collections::BTreeSet<usize>,
}

/// An incarnation's entry in its module's live list, removed on drop.
pub(crate) struct Live {
    entry: Arc<ModuleEntry>,
    id: u64,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.entry.inner.lock().live.remove(&self.id);
    }
}
