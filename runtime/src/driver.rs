//! Drivers: each Kind has exactly one, and it creates and runs that Kind's particles.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::{run, Body, Ctx, DownReason, Particle};

/// Everything a Driver needs to launch one particle.
///
/// A Driver must call [`Launch::run`]; a `Launch` dropped without running
/// ends the particle at once (its spawn fails, its Point is freed), so a
/// faulty Driver cannot leave a particle that never answers.
pub struct Launch {
    ctx: Ctx,
    args: Body,
    ready: Option<oneshot::Sender<Result<(), String>>>,
    launched: bool,
}

impl Drop for Launch {
    fn drop(&mut self) {
        if !self.launched {
            self.ctx.cell.set_never_ran();
            self.ctx
                .machine
                .finish(&self.ctx.cell, Default::default(), DownReason::Killed);
        }
    }
}

impl Launch {
    pub(crate) fn new(
        ctx: Ctx,
        args: Body,
        ready: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Self {
        Launch {
            ctx,
            args,
            ready,
            launched: false,
        }
    }

    /// The new particle's context (its Point, Kind, Machine).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Its spawn arguments.
    pub fn args(&self) -> &Body {
        &self.args
    }

    /// Runs `particle` as this particle's code in a task of its own: the
    /// standard particle life (start, waves, crashes reported to the Star,
    /// restarts on the same lane).
    pub fn run<P: Particle>(mut self, particle: Arc<P>) {
        let args = std::mem::take(&mut self.args);
        // Made here and moved into the task: even a task dropped before it
        // first runs ends the particle properly.
        let guard = run::EndGuard::new(self.ctx.clone());
        self.ctx.cell.set_stops_own_children(P::STOPS_OWN_CHILDREN);
        let life = run::run(particle, self.ctx.clone(), args, self.ready.take(), guard);
        let task = self.ctx.machine.runtime().spawn(life);
        self.ctx.cell.set_abort(task.abort_handle());
        self.launched = true;
    }
}

/// Creates and runs the particles of one Kind.
///
/// Most users never write one: [`crate::MachineBuilder::kind`] wraps a
/// [`Particle`] in a [`ParticleDriver`]. A Driver of its own is for Kinds whose
/// particles need more than a `Particle` value, such as WASM modules.
///
/// ```
/// use std::sync::Arc;
/// use hyperverse_runtime::*;
///
/// struct Noop;
/// impl Particle for Noop {
///     type State = ();
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
///     async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> { Ok(Body::empty()) }
/// }
///
/// /// A driver that counts launches before running the particle.
/// struct Counting(std::sync::atomic::AtomicUsize);
/// impl Driver for Counting {
///     fn launch(&self, launch: Launch) {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         launch.run(Arc::new(Noop));
///     }
/// }
/// # #[tokio::main] async fn main() {
/// let driver = Arc::new(Counting(Default::default()));
/// let machine = Machine::standalone().driver("noop", driver.clone()).build().await.unwrap();
/// machine.spawn("a".parse().unwrap(), "noop".into(), Body::empty()).await.unwrap();
/// assert_eq!(driver.0.load(std::sync::atomic::Ordering::Relaxed), 1);
/// machine.shutdown().await;
/// # }
/// ```
pub trait Driver: Send + Sync + 'static {
    /// Launches one particle. Must not block: spawn the work.
    fn launch(&self, launch: Launch);
}

/// The Driver for a Rust [`Particle`].
pub struct ParticleDriver<P: Particle> {
    particle: Arc<P>,
}

impl<P: Particle> ParticleDriver<P> {
    /// Wraps a particle value.
    pub fn new(particle: P) -> Self {
        ParticleDriver {
            particle: Arc::new(particle),
        }
    }
}

impl<P: Particle> Driver for ParticleDriver<P> {
    fn launch(&self, launch: Launch) {
        launch.run(self.particle.clone());
    }
}
