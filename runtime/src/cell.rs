//! A particle's cell: what the Registry, the Star and the particle's own task
//! share about one particle, across all its incarnations.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::lane::LaneQueue;
use crate::{Kind, Point, Status};

/// How often a particle may be restarted: `max_restarts` within `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    /// Restarts allowed within one period.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
}

impl Default for RestartLimit {
    /// Ten restarts within five seconds.
    fn default() -> Self {
        RestartLimit {
            max_restarts: 10,
            period: Duration::from_secs(5),
        }
    }
}

/// The live facts about one particle, shared by its lane, its Star and the Registry.
///
/// Status and restart count are atomics here rather than Registry writes, so
/// that spawning and restarting do not take a Registry lock twice.
pub struct ParticleCell {
    point: Point,
    kind: Kind,
    star: usize,
    parent: Option<Point>,
    limit: RestartLimit,
    seq: u64,
    status: AtomicU8,
    restarts: AtomicU32,
    pub(crate) lane: LaneQueue,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
}

impl ParticleCell {
    pub(crate) fn new(
        point: Point,
        kind: Kind,
        star: usize,
        parent: Option<Point>,
        limit: RestartLimit,
        seq: u64,
    ) -> Self {
        ParticleCell {
            point,
            kind,
            star,
            parent,
            limit,
            seq,
            status: AtomicU8::new(Status::Starting as u8),
            restarts: AtomicU32::new(0),
            lane: LaneQueue::default(),
            task: Mutex::new(None),
        }
    }

    /// Where the particle lives.
    pub fn point(&self) -> &Point {
        &self.point
    }

    /// What it is.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The Star that hosts and supervises it.
    pub fn star(&self) -> usize {
        self.star
    }

    /// Its parent particle, if one lived at the parent Point when it was spawned.
    pub fn parent(&self) -> Option<&Point> {
        self.parent.as_ref()
    }

    /// Its place in the Machine's spawn order: children are listed, and
    /// will be stopped, by it.
    pub fn spawn_seq(&self) -> u64 {
        self.seq
    }

    /// Its restart limit.
    pub fn restart_limit(&self) -> RestartLimit {
        self.limit
    }

    /// Where it is in its life.
    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    pub(crate) fn set_status(&self, status: Status) {
        self.status.store(status as u8, Ordering::Release);
    }

    /// How many times it has been restarted, in all.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Acquire)
    }

    pub(crate) fn add_restart(&self) -> u32 {
        self.restarts.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waves waiting in its lane.
    pub fn queued(&self) -> usize {
        self.lane.len()
    }
}

impl std::fmt::Debug for ParticleCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticleCell")
            .field("point", &self.point)
            .field("kind", &self.kind)
            .field("star", &self.star)
            .field("status", &self.status())
            .field("restarts", &self.restarts())
            .finish()
    }
}
