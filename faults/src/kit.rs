//! The test kit: an in-order event log with awaits, and a seed announcer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse_runtime::{Event, Machine, Point, Status, SupEvent};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// An await that ran out of time: what it waited for, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}")]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub waited: Duration,
}

/// One event, with when it happened (since the log was made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub at: Duration,
    pub event: Event,
}

struct Inner {
    start: Instant,
    events: Mutex<Vec<Logged>>,
    changed: Notify,
}

/// Every event of a Machine (spawns, crashes, restarts, stops, supervisor
/// events), in the order they happened, for assertions and awaits.
/// Install it with [`hyperverse_runtime::MachineBuilder::observer`]:
/// it sees each event synchronously, so it never misses or reorders one.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

impl EventLog {
    /// An empty log; its clock starts now.
    pub fn new() -> Self {
        EventLog {
            inner: Arc::new(Inner {
                start: Instant::now(),
                events: Mutex::new(Vec::new()),
                changed: Notify::new(),
            }),
        }
    }

    /// The observer to install on the Machine's builder.
    pub fn observer(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let inner = self.inner.clone();
        move |e| {
            inner.events.lock().push(Logged {
                at: inner.start.elapsed(),
                event: e.clone(),
            });
            inner.changed.notify_waiters();
        }
    }

    /// Everything so far.
    pub fn events(&self) -> Vec<Logged> {
        self.inner.events.lock().clone()
    }

    /// How many events so far match `pred`.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.inner
            .events
            .lock()
            .iter()
            .filter(|l| pred(&l.event))
            .count()
    }

    /// The supervisor events of `supervisor`, in order.
    pub fn supervisor_events(&self, supervisor: &Point) -> Vec<SupEvent> {
        self.inner
            .events
            .lock()
            .iter()
            .filter_map(|l| match &l.event {
                Event::Supervisor {
                    supervisor: s,
                    event,
                } if s == supervisor => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits until `cond` holds of the log (checked at each new event).
    pub async fn await_until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&[Logged]) -> bool,
    ) -> Result<(), TimedOut> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if cond(&self.inner.events.lock()) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(TimedOut {
                    what: what.to_string(),
                    waited: timeout,
                });
            }
        }
    }

    /// Waits until at least `n` events match `pred` ("N crash notices seen").
    pub async fn await_count(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<(), TimedOut> {
        self.await_until(&format!("{n} matching events"), timeout, |log| {
            log.iter().filter(|l| pred(&l.event)).count() >= n
        })
        .await
    }

    /// Waits until a supervisor particle gives up (its intensity exceeded).
    pub async fn await_gave_up(
        &self,
        supervisor: &Point,
        timeout: Duration,
    ) -> Result<(), TimedOut> {
        self.await_until(&format!("{supervisor} to give up"), timeout, |log| {
            log.iter().any(|l| {
                matches!(&l.event, Event::Supervisor { supervisor: s, event: SupEvent::GaveUp { .. } } if s == supervisor)
            })
        })
        .await
    }

    /// Waits until the particle at `point` is ready again: started, serving,
    /// and with no injected crash still waiting to be taken (so that right
    /// after `inject(Crash)` it waits for the crash and the restart).
    pub async fn await_ready(
        &self,
        machine: &Machine,
        point: &Point,
        timeout: Duration,
    ) -> Result<(), TimedOut> {
        let deadline = Instant::now() + timeout;
        loop {
            if machine
                .particle(point)
                .is_ok_and(|c| c.status() == Status::Ready && !c.crash_pending())
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TimedOut {
                    what: format!("{point} to be ready"),
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Prints a test's seed when it starts, and again if the test fails, so
/// that any failure can be replayed: keep it alive for the test's length.
///
/// ```
/// let _seed = hyperverse_faults::SeedGuard::new(42);
/// // ... a failing assertion here prints "fault seed: 42 (replay with it)".
/// ```
pub struct SeedGuard(u64);

impl SeedGuard {
    /// Announces `seed`.
    pub fn new(seed: u64) -> Self {
        println!("fault seed: {seed}");
        SeedGuard(seed)
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("fault seed: {} (replay with it)", self.0);
        }
    }
}
