//! Drivers: each Kind has exactly one, and it creates and runs that Kind's particles.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::{run, Body, Ctx, DownReason, LaneLimit, Particle};

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
        let life = run::run(particle, args, self.ready.take(), guard);
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

    /// The lane limit of this Kind's particles when their spawn options
    /// give none ([`crate::SpawnOptions::lane`] always wins). The default,
    /// `None`, leaves their lanes unbounded. A Kind whose particles run
    /// untrusted code (WASM guests) bounds them here, so that no sender,
    /// the particle itself included, can grow its lane without limit.
    /// Asked once per spawn (restarts keep the lane).
    fn default_lane(&self) -> Option<LaneLimit> {
        None
    }
}

/// The Driver for a Rust [`Particle`].
pub struct ParticleDriver<P: Particle> {
    particle: Arc<P>,
    lane: Option<LaneLimit>,
}

impl<P: Particle> ParticleDriver<P> {
    /// Wraps a particle value (its particles' lanes unbounded unless their
    /// spawn options bound them).
    pub fn new(particle: P) -> Self {
        ParticleDriver {
            particle: Arc::new(particle),
            lane: None,
        }
    }

    /// Gives its particles `lane` when their spawn options give no lane
    /// limit (see [`Driver::default_lane`]); `None` leaves them unbounded.
    pub fn with_default_lane(mut self, lane: Option<LaneLimit>) -> Self {
        self.lane = lane;
        self
    }
}

impl<P: Particle> Driver for ParticleDriver<P> {
    fn launch(&self, launch: Launch) {
        launch.run(self.particle.clone());
    }

    fn default_lane(&self) -> Option<LaneLimit> {
        self.lane
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Machine, ParticleError, Point, SpawnError, SpawnOptions, Wave, WhenFull};

    /// Replies its grants, one Point per line.
    struct Grantee;

    impl Particle for Grantee {
        type State = ();

        async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
            Ok(())
        }

        async fn handle(&self, ctx: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
            let grants: Vec<&str> = ctx.grants().iter().map(Point::as_str).collect();
            Ok(grants.join("\n").into())
        }
    }

    /// A Driver whose `default_lane` panics.
    struct Broken;

    impl Driver for Broken {
        fn launch(&self, launch: Launch) {
            launch.run(Arc::new(Grantee));
        }

        fn default_lane(&self) -> Option<LaneLimit> {
            panic!("no lane for you")
        }
    }

    fn p(text: &str) -> Point {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_drivers_default_lane_applies_unless_the_spawn_gives_one() {
        let bounded = LaneLimit {
            capacity: 7,
            when_full: WhenFull::Reject,
            max_bytes: None,
        };
        let machine = Machine::standalone()
            .kind("plain", Grantee)
            .driver(
                "bounded",
                Arc::new(ParticleDriver::new(Grantee).with_default_lane(Some(bounded))),
            )
            .driver("broken", Arc::new(Broken))
            .build()
            .await
            .unwrap();
        let lane_of = |at: &str| machine.particle(&p(at)).unwrap().lane_limit();

        machine
            .spawn(p("plain"), Kind::new("plain"), Body::empty())
            .await
            .unwrap();
        assert_eq!(lane_of("plain"), None);
        machine
            .spawn(p("b"), Kind::new("bounded"), Body::empty())
            .await
            .unwrap();
        assert_eq!(lane_of("b"), Some(bounded));
        let explicit = LaneLimit {
            capacity: 3,
            when_full: WhenFull::Wait,
            max_bytes: None,
        };
        let opts = SpawnOptions {
            lane: Some(explicit),
            ..SpawnOptions::default()
        };
        machine
            .spawn_with(p("e"), Kind::new("bounded"), Body::empty(), opts)
            .await
            .unwrap();
        assert_eq!(lane_of("e"), Some(explicit));

        // A Driver panicking over its lane fails that spawn only.
        let err = machine
            .spawn(p("x"), Kind::new("broken"), Body::empty())
            .await
            .unwrap_err();
        assert!(matches!(err, SpawnError::StartFailed { .. }), "{err}");
        assert!(machine.record(&p("x")).is_none());
        machine
            .spawn(p("x"), Kind::new("plain"), Body::empty())
            .await
            .unwrap();
        machine.shutdown().await;
    }

    #[tokio::test]
    async fn grants_are_kept_on_the_cell_and_read_from_ctx() {
        let machine = Machine::standalone()
            .kind("grantee", Grantee)
            .build()
            .await
            .unwrap();
        let opts = SpawnOptions {
            grants: vec![p("shared"), p("db:main")],
            ..SpawnOptions::default()
        };
        let lane = machine
            .spawn_with(p("g"), Kind::new("grantee"), Body::empty(), opts)
            .await
            .unwrap();
        assert_eq!(lane.grants(), &[p("shared"), p("db:main")]);
        let reply = machine
            .ask(&p("g"), ("grants", Body::empty()))
            .await
            .unwrap();
        assert_eq!(reply.as_bytes(), b"shared\ndb:main");

        let none = machine
            .spawn(p("n"), Kind::new("grantee"), Body::empty())
            .await
            .unwrap();
        assert!(none.grants().is_empty());
        machine.shutdown().await;
    }
}
