//! The demo's two Kinds: supervisor-like regions and the workers under them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyperverse::{Body, CrashNotice, Ctx, Particle, ParticleError, Wave, WaveKind};

/// Kind name of the region particles (parents of workers).
pub const REGION: &str = "region";
/// Kind name of the worker particles.
pub const WORKER: &str = "worker";

/// Counted traffic: a worker echoes the body.
pub const WORK: &str = "work";
/// Asks a worker for its restart count; also flushes its lane (see `traffic`).
pub const PING: &str = "ping";
/// Makes a worker crash by returning an error whose text is the body.
pub const CRASH: &str = "crash";
/// Makes a worker crash by panicking.
pub const PANIC: &str = "panic";
/// Asks a region for the crash notices it has received.
pub const NOTICES: &str = "notices";

/// Every planned panic message starts with this, so the demo's panic hook
/// can silence exactly those and still print any real panic.
pub const PLANNED_PANIC: &str = "planned panic";

/// `work` waves handled by all workers, all incarnations.
///
/// It lives in the (shared) particle value rather than in per-particle state
/// because a crash drops the state: the demo wants to count what was
/// delivered before and after every restart.
#[derive(Debug, Default)]
pub struct Tally {
    signals: AtomicU64,
    requests: AtomicU64,
}

impl Tally {
    /// `work` signals handled so far.
    pub fn signals(&self) -> u64 {
        self.signals.load(Ordering::Acquire)
    }

    /// `work` requests handled so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }
}

/// A worker: echoes `work`, answers `ping`, and crashes when told to.
pub struct Worker {
    tally: Arc<Tally>,
}

impl Worker {
    /// A worker Kind that counts into `tally`.
    pub fn new(tally: Arc<Tally>) -> Self {
        Worker { tally }
    }
}

impl Particle for Worker {
    type State = ();

    async fn start(&self, _ctx: &Ctx, _args: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Ctx, _: &mut (), wave: Wave) -> Result<Body, ParticleError> {
        match &*wave.method {
            WORK => {
                let counter = match wave.kind {
                    WaveKind::Request => &self.tally.requests,
                    WaveKind::Signal | WaveKind::Reply => &self.tally.signals,
                };
                counter.fetch_add(1, Ordering::AcqRel);
                Ok(wave.body)
            }
            PING => Ok(Body::from_u64(u64::from(ctx.restarts()))),
            CRASH => Err(String::from_utf8_lossy(wave.body.as_bytes())
                .into_owned()
                .into()),
            PANIC => panic!(
                "{PLANNED_PANIC} ({})",
                String::from_utf8_lossy(wave.body.as_bytes())
            ),
            other => Err(format!("unknown method `{other}`").into()),
        }
    }
}

/// A region: the parent of a group of workers. Like an OTP supervisor it is
/// told when a child crashes; it keeps the notices so the demo can show what
/// a parent actually received (rather than what the runtime claims to send).
pub struct Region;

impl Particle for Region {
    type State = Vec<CrashNotice>;

    async fn start(&self, _ctx: &Ctx, _args: &Body) -> Result<Vec<CrashNotice>, ParticleError> {
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _ctx: &Ctx,
        notices: &mut Vec<CrashNotice>,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        match &*wave.method {
            NOTICES => Ok(Body::encode(notices)?),
            other => Err(format!("unknown method `{other}`").into()),
        }
    }

    async fn crash_notice(
        &self,
        ctx: &Ctx,
        notices: &mut Vec<CrashNotice>,
        notice: CrashNotice,
    ) -> Result<(), ParticleError> {
        tracing::debug!(region = %ctx.me(), child = %notice.child, "crash notice");
        notices.push(notice);
        Ok(())
    }
}
