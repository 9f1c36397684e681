//! Events: what the runtime did, for logs, demos and test assertions.

use crate::{CrashNotice, Kind, Point};

/// One thing the runtime did. Subscribe with [`crate::Machine::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A particle was placed on a Star and its task launched.
    Spawned {
        point: Point,
        kind: Kind,
        star: usize,
    },
    /// A particle died abnormally.
    Crashed(CrashNotice),
    /// The Star decided to restart a crashed particle (its new `start`
    /// runs next, and may itself crash).
    Restarted { point: Point, restarts: u32 },
    /// A particle stopped normally.
    Stopped { point: Point },
}
