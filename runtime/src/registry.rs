//! The Registry: where each particle lives, what it is and how it is doing.
//!
//! Waves are routed through it (Point → lane) and spawning is synchronised by
//! it (one particle per Point). Only the runtime writes to it: the
//! `Directory` trait is its side (what a clustered Registry will implement
//! later; `MemRegistry` is the standalone one), and users read it through
//! [`Registry`], a read-only view.

use std::sync::Arc;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use crate::cell::ParticleCell;
use crate::{Kind, Point, Status};

/// A snapshot of what the Registry knows about one particle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it lives.
    pub point: Point,
    /// What it is.
    pub kind: Kind,
    /// Which Star hosts it.
    pub star: usize,
    /// Where it is in its life.
    pub status: Status,
    /// Its parent particle, if any.
    pub parent: Option<Point>,
    /// Its children, in start order.
    pub children: Vec<Point>,
    /// Restarts so far.
    pub restarts: u32,
    /// The version of the code it runs, e.g. a WASM module's load sequence
    /// (`counter@3` is 3); 0 for particles whose code is not versioned.
    /// See [`crate::Ctx::set_code_version`].
    pub code_version: u64,
}

/// Why the Registry refused a registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegistryError {
    /// A live particle already holds that Point.
    #[error("a particle already lives at {point}")]
    Occupied { point: Point },
    /// The parent is gone, or ending, or between incarnations.
    #[error("{parent} takes no children now (cannot register {point})")]
    NoParent { point: Point, parent: Point },
}

/// Point → particle, for routing and bookkeeping: the runtime's own side
/// of the Registry (users get the read view, [`Registry`]).
pub(crate) trait Directory: Send + Sync + 'static {
    /// Registers a new particle. A Point whose particle was given up and
    /// is still ending (status `Stopped`) may be taken again; a live one
    /// may not. A child is admitted only while its parent is registered and
    /// accepts children.
    fn register(&self, cell: Arc<ParticleCell>) -> Result<(), RegistryError>;
    /// Removes `cell`'s particle if `cell` is still the one registered at
    /// its Point (a newer particle there is left alone); true if removed.
    fn unregister(&self, cell: &Arc<ParticleCell>) -> bool;
    /// The particle's cell, for routing.
    fn cell(&self, point: &Point) -> Option<Arc<ParticleCell>>;
    /// A snapshot of one particle.
    fn record(&self, point: &Point) -> Option<Record>;
    /// The particle at `point` and everything below it, as snapshots, in
    /// the order of [`Registry::cells_under`].
    fn subtree(&self, point: &Point) -> Vec<Record> {
        self.cells_under(point)
            .iter()
            .filter_map(|c| self.record(c.point()))
            .collect()
    }
    /// The cells of the particle at `point` and of everything below it
    /// (every particle for the root), parents before children.
    fn cells_under(&self, point: &Point) -> Vec<Arc<ParticleCell>>;
    /// True if the particle at `point` has children registered.
    fn has_children(&self, point: &Point) -> bool {
        self.record(point).is_some_and(|r| !r.children.is_empty())
    }
    /// How many particles are registered.
    fn len(&self) -> usize;
    /// True when no particle is registered.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The in-memory Registry: a sharded concurrent map, so spawns and lookups
/// on different Points rarely contend. Each particle's children are kept by
/// its own cell (by identity, in start order), not here.
pub(crate) struct MemRegistry {
    map: DashMap<Point, Arc<ParticleCell>, ahash::RandomState>,
}

/// Shards of the map: many more than cores, because every spawn, stop and
/// routed wave takes one shard's lock.
const SHARDS: usize = 64;

impl Default for MemRegistry {
    fn default() -> Self {
        MemRegistry {
            map: DashMap::with_hasher_and_shard_amount(ahash::RandomState::new(), SHARDS),
        }
    }
}

impl MemRegistry {
    /// An empty Registry.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A snapshot of `cell`'s particle (at `point`).
    pub(crate) fn snapshot(point: &Point, cell: &ParticleCell) -> Record {
        Record {
            point: point.clone(),
            kind: cell.kind().clone(),
            star: cell.star(),
            status: cell.status(),
            parent: cell.parent().cloned(),
            children: cell.children().iter().map(|c| c.point().clone()).collect(),
            restarts: cell.restarts(),
            code_version: cell.code_version(),
        }
    }
}

impl Directory for MemRegistry {
    fn register(&self, cell: Arc<ParticleCell>) -> Result<(), RegistryError> {
        let point = cell.point().clone();
        match self.map.entry(point.clone()) {
            MapEntry::Occupied(mut o) => {
                if o.get().status() != crate::Status::Stopped {
                    return Err(RegistryError::Occupied { point });
                }
                // A given-up particle still ending is replaced: it leaves
                // its parent's children, where the new one enters in its
                // own start order. Its own children stay its own.
                let old = std::mem::replace(o.get_mut(), cell.clone());
                drop(o);
                if let Some(parent) = old.parent_cell() {
                    parent.disown(&old);
                }
            }
            MapEntry::Vacant(v) => {
                v.insert(cell.clone());
            }
        }
        // The entry guard is dropped above. The parent admits the child
        // under its children's lock (see `ParticleCell::adopt`).
        if let Some(parent) = cell.parent().filter(|_| !cell.remote_parent()) {
            let admitted = match (self.map.get(parent), cell.parent_cell()) {
                (Some(entry), Some(parent_cell)) if Arc::ptr_eq(&entry, &parent_cell) => {
                    drop(entry);
                    parent_cell.adopt(&cell)
                }
                _ => false,
            };
            if !admitted {
                self.map.remove_if(&point, |_, c| Arc::ptr_eq(c, &cell));
                return Err(RegistryError::NoParent {
                    point,
                    parent: parent.clone(),
                });
            }
        }
        Ok(())
    }

    fn unregister(&self, cell: &Arc<ParticleCell>) -> bool {
        let removed = self
            .map
            .remove_if(cell.point(), |_, c| Arc::ptr_eq(c, cell));
        if removed.is_none() {
            return false;
        }
        if let Some(parent) = cell.parent_cell() {
            parent.disown(cell);
        }
        true
    }

    fn cell(&self, point: &Point) -> Option<Arc<ParticleCell>> {
        self.map.get(point).map(|c| c.clone())
    }

    fn record(&self, point: &Point) -> Option<Record> {
        let cell = self.cell(point)?;
        Some(Self::snapshot(point, &cell))
    }

    fn cells_under(&self, point: &Point) -> Vec<Arc<ParticleCell>> {
        if point.is_root() {
            let mut all: Vec<Arc<ParticleCell>> = self.map.iter().map(|e| e.clone()).collect();
            all.sort_by_cached_key(|c| (c.point().depth(), c.spawn_seq()));
            return all;
        }
        // Breadth-first over the children lists: by depth, siblings in start order.
        let Some(top) = self.cell(point) else {
            return Vec::new();
        };
        let mut out = vec![top.clone()];
        out.extend(top.descendants());
        out
    }

    fn has_children(&self, point: &Point) -> bool {
        self.cell(point).is_some_and(|c| c.has_children())
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The Registry, read-only: where each particle lives, its Kind and
/// status, and its place in the tree. Snapshots, taken when asked for.
///
/// Only the runtime writes to it (a spawn registers, an end unregisters),
/// so what it says can be trusted for routing and provisioning.
///
/// ```
/// # use hyperverse_runtime::*;
/// # struct Idle;
/// # impl Particle for Idle {
/// #     type State = ();
/// #     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
/// # }
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("idle", Idle).build().await.unwrap();
/// machine.spawn("app".parse().unwrap(), "idle".into(), Body::empty()).await.unwrap();
/// machine.spawn("app:w1".parse().unwrap(), "idle".into(), Body::empty()).await.unwrap();
/// let registry = machine.registry();
/// assert_eq!(registry.len(), 2);
/// assert_eq!(registry.subtree(&"app".parse().unwrap()).len(), 2);
/// assert_eq!(registry.by_kind(&"idle".into()).len(), 2);
/// assert_eq!(registry.by_status(Status::Ready).len(), 2);
/// let app = registry.record(&"app".parse().unwrap()).unwrap();
/// assert_eq!(app.children, vec!["app:w1".parse::<Point>().unwrap()]);
/// machine.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Registry {
    dir: Arc<dyn Directory>,
    /// Whether the reader may read a Point's record (the privilege `read`,
    /// judged when it reads): records it may not read are not there for it.
    readable: Option<Readable>,
}

/// Judges a read, for the handle the view was taken from.
type Readable = Arc<dyn Fn(&Point) -> bool + Send + Sync>;

impl Registry {
    pub(crate) fn new(dir: Arc<dyn Directory>) -> Self {
        Registry {
            dir,
            readable: None,
        }
    }

    /// The view of a reader whose reads `readable` judges.
    pub(crate) fn read_as(
        mut self,
        readable: impl Fn(&Point) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.readable = Some(Arc::new(readable));
        self
    }

    fn may_read(&self, point: &Point) -> bool {
        self.readable.as_ref().is_none_or(|r| r(point))
    }

    /// A snapshot of the particle at `point`, if one lives there (and the
    /// reader may read it: the privilege `read`).
    pub fn record(&self, point: &Point) -> Option<Record> {
        self.may_read(point)
            .then(|| self.dir.record(point))
            .flatten()
    }

    /// True if a particle lives at `point` (that the reader may read).
    pub fn contains(&self, point: &Point) -> bool {
        self.may_read(point) && self.dir.cell(point).is_some()
    }

    /// The particle at `point` and everything below it (every particle for
    /// the root), parents before children: those the reader may read.
    pub fn subtree(&self, point: &Point) -> Vec<Record> {
        let mut all = self.dir.subtree(point);
        all.retain(|r| self.may_read(&r.point));
        all
    }

    /// True if the particle at `point` has children.
    pub fn has_children(&self, point: &Point) -> bool {
        self.may_read(point) && self.dir.has_children(point)
    }

    /// Every particle of `kind`, parents before children.
    pub fn by_kind(&self, kind: &Kind) -> Vec<Record> {
        self.matching(|c| c.kind() == kind)
    }

    /// Every particle whose status is `status` now, parents before children.
    pub fn by_status(&self, status: Status) -> Vec<Record> {
        self.matching(|c| c.status() == status)
    }

    fn matching(&self, keep: impl Fn(&ParticleCell) -> bool) -> Vec<Record> {
        self.dir
            .cells_under(&Point::root())
            .iter()
            .filter(|c| keep(c) && self.may_read(c.point()))
            .map(|c| MemRegistry::snapshot(c.point(), c))
            .collect()
    }

    /// How many particles live on the Machine.
    pub fn len(&self) -> usize {
        self.dir.len()
    }

    /// True when no particle lives on the Machine.
    pub fn is_empty(&self) -> bool {
        self.dir.is_empty()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, RestartLimit};

    fn cell(reg: &MemRegistry, point: &str, parent: Option<&str>, seq: u64) -> Arc<ParticleCell> {
        let parent = parent.map(|p| reg.cell(&p.parse().unwrap()).unwrap());
        Arc::new(ParticleCell::new(
            point.parse().unwrap(),
            Kind::new("k"),
            0,
            parent.as_ref(),
            RestartLimit::default(),
            Default::default(),
            seq,
            None,
            false,
        ))
    }

    fn children(reg: &MemRegistry, p: &str) -> Vec<String> {
        let rec = reg.record(&p.parse().unwrap()).unwrap();
        rec.children.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn children_stay_in_start_order_through_removals_and_replacement() {
        let reg = MemRegistry::new();
        reg.register(cell(&reg, "a", None, 0)).unwrap();
        for (i, name) in ["a:x", "a:y", "a:z"].iter().enumerate() {
            reg.register(cell(&reg, name, Some("a"), i as u64 + 1))
                .unwrap();
        }
        assert_eq!(children(&reg, "a"), ["a:x", "a:y", "a:z"]);
        assert!(matches!(
            reg.register(cell(&reg, "a:y", Some("a"), 9)),
            Err(RegistryError::Occupied { .. })
        ));
        let x = reg.cell(&"a:x".parse().unwrap()).unwrap();
        assert!(reg.unregister(&x));
        assert!(!reg.unregister(&x), "only once");
        assert_eq!(children(&reg, "a"), ["a:y", "a:z"]);
        // A given-up particle's Point is taken again; it moves to the end.
        let old_y = reg.cell(&"a:y".parse().unwrap()).unwrap();
        old_y.set_status(Status::Stopped);
        reg.register(cell(&reg, "a:y", Some("a"), 10)).unwrap();
        assert!(!reg.unregister(&old_y), "the newer particle stays");
        assert_eq!(children(&reg, "a"), ["a:z", "a:y"]);
        let under: Vec<String> = reg
            .subtree(&"a".parse().unwrap())
            .iter()
            .map(|r| r.point.to_string())
            .collect();
        assert_eq!(under, ["a", "a:z", "a:y"]);
        assert_eq!(reg.subtree(&Point::root()).len(), 3);
        assert_eq!(reg.len(), 3);
    }
}
