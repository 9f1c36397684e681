//! Monitors: a one-way watch on a particle's end.
//!
//! As in Erlang, a monitor delivers exactly one down notice to the watcher,
//! with the reason, when the watched particle ends, and at once if it has
//! already ended (or never existed). A particle that crashes and is
//! restarted has not ended: its Point, lane and monitors live on (its parent
//! hears of the crash through a crash notice instead).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Point;

/// Names one monitor (and the particle it watches), for
/// [`crate::Ctx::demonitor`] and in its notice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorRef {
    id: u64,
    target: Point,
}

impl MonitorRef {
    pub(crate) fn new(id: u64, target: Point) -> Self {
        MonitorRef { id, target }
    }

    /// Its number, unique on its Machine.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The particle it watches.
    pub fn target(&self) -> &Point {
        &self.target
    }
}

impl fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}>", self.id)
    }
}

/// Why a watched particle is down.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DownReason {
    /// It stopped itself (`Ctx::stop`): a normal exit.
    Stopped,
    /// It was stopped from outside (its parent ended, `Machine::stop`,
    /// shutdown): OTP's `shutdown`, which linked particles die of.
    Shutdown,
    /// It crashed once too often; its Star gave up. The last crash's reason.
    GaveUp(String),
    /// It was killed (it did not stop within the shutdown timeout) or its
    /// task ended abnormally.
    Killed,
    /// Nothing lived there when the monitor was set (Erlang's `noproc`).
    NoSuchParticle,
    /// The access rules do not let the watcher monitor it (the privilege
    /// `link`): the monitor fires at once, as for `NoSuchParticle`.
    Denied,
    /// The Machine hosting it was lost (Erlang's `noconnection`): its
    /// session dropped and did not return in time, or it restarted.
    MachineLost(String),
}

/// The one notice a monitor delivers.
///
/// Delivered to the watcher's [`crate::Particle::down`], in its lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownNotice {
    /// The particle that is down.
    pub target: Point,
    /// Why.
    pub reason: DownReason,
    /// The monitor that fired.
    pub monitor: MonitorRef,
}
