//! Drivers: each Kind has exactly one, and it creates and runs that Kind's particles.

use std::sync::Arc;

use crate::{run, Driver, LaneLimit, Launch, Particle};

impl Launch {
    /// Runs `particle` as this particle's code in a task of its own: the
    /// standard particle life (start, waves, crashes reported to the Star,
    /// restarts on the same lane).
    ///
    /// It runs on the Machine's tokio runtime, or on its Star's thread if
    /// the Machine was built with [`crate::MachineBuilder::star_threads`].
    pub fn run<P: Particle>(self, particle: Arc<P>) {
        let on_star = self.ctx.machine.shared.all_on_star_threads;
        self.run_where(particle, on_star);
    }

    /// Runs `particle` as [`Launch::run`] does, on its Star's own thread
    /// (see [`crate::MachineBuilder::star_threads`]): its task, every
    /// incarnation of it, is polled by that thread only, so its State may
    /// keep handles on thread-bound data in that thread's thread-locals (a
    /// WASM guest's Store), and waves from particles of the same Star
    /// reach it without waking another thread. If the thread cannot be
    /// started, the particle ends at once, its spawn fails with
    /// `StartFailed`, and why is logged (`hyperverse::spawn`).
    /// Unless the Machine was built with
    /// [`crate::MachineBuilder::star_threads`], that thread has tokio's
    /// timers but not its IO driver: such a particle must not use sockets.
    pub fn run_on_star_thread<P: Particle>(self, particle: Arc<P>) {
        self.run_where(particle, true);
    }

    fn run_where<P: Particle>(mut self, particle: Arc<P>, on_star: bool) {
        let runtime = if on_star {
            let machine = &self.ctx.machine;
            match machine
                .shared
                .star_threads
                .handle(self.ctx.star(), &machine.shared.runtime)
            {
                Ok(h) => h,
                Err(why) => {
                    tracing::error!(target: crate::targets::SPAWN, point = %self.ctx.me(), %why, "no Star thread for the particle");
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(why.to_string()));
                    }
                    // Dropped unrun: the particle ends, its Point is freed.
                    return;
                }
            }
        } else {
            self.ctx.machine.runtime().clone()
        };
        let args = std::mem::take(&mut self.args);
        // Made here and moved into the task: even a task dropped before it
        // first runs ends the particle properly.
        let guard = run::EndGuard::new(self.ctx.clone());
        self.ctx.cell.set_stops_own_children(P::STOPS_OWN_CHILDREN);
        let life = run::run(particle, args, self.ready.take(), guard);
        let task = runtime.spawn(life);
        self.ctx.cell.set_abort(task.abort_handle());
        self.launched = true;
    }
}

/// The Driver for a Rust [`Particle`].
pub struct ParticleDriver<P: Particle> {
    particle: Arc<P>,
    lane: Option<LaneLimit>,
    on_star_thread: bool,
}

impl<P: Particle> ParticleDriver<P> {
    /// Wraps a particle value (its particles' lanes unbounded unless their
    /// spawn options bound them).
    pub fn new(particle: P) -> Self {
        ParticleDriver {
            particle: Arc::new(particle),
            lane: None,
            on_star_thread: false,
        }
    }

    /// Runs its particles on their Stars' own threads
    /// ([`Launch::run_on_star_thread`]) whatever the Machine's default.
    pub fn on_star_thread(mut self) -> Self {
        self.on_star_thread = true;
        self
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
        if self.on_star_thread {
            launch.run_on_star_thread(self.particle.clone());
        } else {
            launch.run(self.particle.clone());
        }
    }

    fn default_lane(&self) -> Option<LaneLimit> {
        self.lane
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Body, Ctx, Kind, Machine, ParticleError, Point, SpawnError, SpawnOptions, Wave, WhenFull,
    };

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
