//! Probes: particles that record what they receive, for assertions.

use std::sync::Arc;
use std::time::Duration;

use hyperverse_runtime::{Body, Ctx, Particle, ParticleError, Point, Wave};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::TimedOut;

/// One wave a probe received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The probe that got it.
    pub at: Point,
    /// Its sender.
    pub from: Point,
    pub method: String,
    pub body: Body,
}

#[derive(Default)]
struct Inner {
    waves: Mutex<Vec<Received>>,
    changed: Notify,
}

/// What the probes of one [`Probe`] Kind received, shared with the test.
#[derive(Clone, Default)]
pub struct ProbeLog {
    inner: Arc<Inner>,
}

impl ProbeLog {
    /// Every wave received so far, in the order handled.
    pub fn waves(&self) -> Vec<Received> {
        self.inner.waves.lock().clone()
    }

    /// Waits until at least `n` waves were received.
    pub async fn await_waves(&self, n: usize, timeout: Duration) -> Result<(), TimedOut> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.inner.waves.lock().len() >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(TimedOut {
                    what: format!("{n} waves at the probes"),
                    waited: timeout,
                });
            }
        }
    }
}

/// A particle Kind that records every wave it handles (its log survives
/// its crashes) and answers requests with the body it got. Crash it with
/// an injected fault; a wave with method `"crash"` crashes it too.
pub struct Probe {
    log: ProbeLog,
}

impl Probe {
    /// A probe Kind and the log its particles write to.
    pub fn new() -> (Probe, ProbeLog) {
        let log = ProbeLog::default();
        (Probe { log: log.clone() }, log)
    }
}

impl Particle for Probe {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if &*w.method == "crash" {
            return Err("a probe was told to crash".into());
        }
        self.log.inner.waves.lock().push(Received {
            at: ctx.me().clone(),
            from: w.from.clone(),
            method: w.method.to_string(),
            body: w.body.clone(),
        });
        self.log.inner.changed.notify_waiters();
        Ok(w.body)
    }
}
