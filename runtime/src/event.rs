//! Events: what the runtime did, for logs, demos and test assertions.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use hyperverse_supervisors::SupEvent;
use tokio::sync::broadcast;

use crate::targets;
use crate::{CrashNotice, Kind, Point};

/// The text of a caught panic's payload.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}

/// One thing the runtime did. Subscribe with [`crate::Machine::events`].
/// New kinds of events may be added: match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// A supervisor particle did something (started, stopped or restarted
    /// a child, gave up, …): its event log, in order.
    Supervisor { supervisor: Point, event: SupEvent },
}

/// Sees every event synchronously, as it happens, on the thread that
/// caused it (see [`crate::MachineBuilder::observer`]). Keep it quick. A
/// panic in an observer is caught and logged: it never unwinds into the
/// runtime (a Star, a particle's end, a spawn), and the other observers
/// and subscribers still get the event.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where the runtime's events go: synchronous observers, then the
/// broadcast channel. Building an event is skipped when nobody listens.
pub(crate) struct EventSink {
    tx: broadcast::Sender<Event>,
    observers: Vec<Observer>,
}

impl EventSink {
    pub(crate) fn new(capacity: usize, observers: Vec<Observer>) -> Self {
        EventSink {
            tx: broadcast::channel(capacity).0,
            observers,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        let listened = self.tx.receiver_count() > 0;
        if !listened && self.observers.is_empty() {
            return;
        }
        let event = event();
        for o in &self.observers {
            // User code: it must not unwind into the runtime, which calls
            // this from a Star, from a particle's end and from spawns.
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| o(&event))) {
                tracing::error!(
                    target: targets::MACHINE,
                    panic = %panic_text(&*panic),
                    ?event,
                    "an observer panicked (ignored)"
                );
            }
        }
        if listened {
            let _ = self.tx.send(event);
        }
    }
}
