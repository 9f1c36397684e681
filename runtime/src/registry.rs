//! The Registry: where each particle lives, what it is and how it is doing.
//!
//! Waves are routed through it (Point → lane) and spawning is synchronised by
//! it (one particle per Point). The trait is what a clustered Registry will
//! implement later; [`MemRegistry`] is the standalone one.

use std::sync::Arc;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use crate::cell::ParticleCell;
use crate::{Kind, Point};

/// Where a particle is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Its `start` is running.
    Starting = 0,
    /// Serving waves.
    Ready = 1,
    /// Crashed; its supervisor is restarting it.
    Restarting = 2,
    /// Stopped, or given up by its supervisor.
    Stopped = 3,
}

impl Status {
    pub(crate) fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Starting,
            1 => Status::Ready,
            2 => Status::Restarting,
            _ => Status::Stopped,
        }
    }
}

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
}

/// Why the Registry refused a registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A live particle already holds that Point.
    #[error("a particle already lives at {point}")]
    Occupied { point: Point },
}

/// Point → particle, for routing and bookkeeping.
///
/// ```
/// use hyperverse_runtime::{MemRegistry, Registry, Point};
///
/// let reg = MemRegistry::new();
/// assert!(reg.record(&Point::parse("app").unwrap()).is_none());
/// assert_eq!(reg.len(), 0);
/// ```
pub trait Registry: Send + Sync + 'static {
    /// Registers a new particle. A Point whose particle was given up
    /// (status `Stopped`) may be taken again; a live one may not.
    fn register(&self, cell: Arc<ParticleCell>) -> Result<(), RegistryError>;
    /// Removes a particle; returns its cell if it was there.
    fn unregister(&self, point: &Point) -> Option<Arc<ParticleCell>>;
    /// The particle's cell, for routing.
    fn cell(&self, point: &Point) -> Option<Arc<ParticleCell>>;
    /// A snapshot of one particle.
    fn record(&self, point: &Point) -> Option<Record>;
    /// The particle at `point` and everything below it, breadth-first:
    /// parents before children, siblings in start order (the root lists
    /// every particle, by depth).
    fn subtree(&self, point: &Point) -> Vec<Record>;
    /// How many particles are registered.
    fn len(&self) -> usize;
    /// True when no particle is registered.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Entry {
    cell: Arc<ParticleCell>,
    children: Vec<Point>,
}

/// The in-memory Registry: a sharded concurrent map, so spawns and lookups
/// on different Points rarely contend.
#[derive(Default)]
pub struct MemRegistry {
    map: DashMap<Point, Entry, ahash::RandomState>,
}

impl MemRegistry {
    /// An empty Registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(point: &Point, e: &Entry) -> Record {
        Record {
            point: point.clone(),
            kind: e.cell.kind().clone(),
            star: e.cell.star(),
            status: e.cell.status(),
            parent: e.cell.parent().cloned(),
            children: e.children.clone(),
            restarts: e.cell.restarts(),
        }
    }
}

impl Registry for MemRegistry {
    fn register(&self, cell: Arc<ParticleCell>) -> Result<(), RegistryError> {
        let point = cell.point().clone();
        match self.map.entry(point.clone()) {
            MapEntry::Occupied(mut o) => {
                if o.get().cell.status() != crate::Status::Stopped {
                    return Err(RegistryError::Occupied { point });
                }
                o.get_mut().cell = cell.clone();
            }
            MapEntry::Vacant(v) => {
                v.insert(Entry {
                    cell: cell.clone(),
                    children: Vec::new(),
                });
            }
        }
        // The entry guard is dropped above: locking the parent's shard now
        // cannot deadlock even if it is the same shard.
        if let Some(parent) = cell.parent() {
            if let Some(mut p) = self.map.get_mut(parent) {
                if !p.children.contains(&point) {
                    p.children.push(point);
                }
            }
        }
        Ok(())
    }

    fn unregister(&self, point: &Point) -> Option<Arc<ParticleCell>> {
        let (_, entry) = self.map.remove(point)?;
        if let Some(parent) = entry.cell.parent() {
            if let Some(mut p) = self.map.get_mut(parent) {
                if let Some(i) = p.children.iter().position(|c| c == point) {
                    p.children.remove(i);
                }
            }
        }
        Some(entry.cell)
    }

    fn cell(&self, point: &Point) -> Option<Arc<ParticleCell>> {
        self.map.get(point).map(|e| e.cell.clone())
    }

    fn record(&self, point: &Point) -> Option<Record> {
        self.map.get(point).map(|e| Self::snapshot(point, &e))
    }

    fn subtree(&self, point: &Point) -> Vec<Record> {
        if point.is_root() {
            let mut all: Vec<Record> = self
                .map
                .iter()
                .map(|e| Self::snapshot(e.key(), e.value()))
                .collect();
            all.sort_by(|a, b| {
                a.point
                    .depth()
                    .cmp(&b.point.depth())
                    .then(a.point.cmp(&b.point))
            });
            return all;
        }
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([point.clone()]);
        while let Some(p) = queue.pop_front() {
            if let Some(rec) = self.record(&p) {
                queue.extend(rec.children.iter().cloned());
                out.push(rec);
            }
        }
        out
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}
