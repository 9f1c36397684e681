//! Machines: a process hosting Stars, routing waves between their particles.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::{broadcast, oneshot};
use tracing::Instrument;

use crate::cell::ParticleCell;
use crate::deadline::Deadlines;
use crate::lane::{deliver, Letter};
use crate::star::{Decision, MachineRoot, Star, StarArgs, StarCounters, StarMsg, StarStats};
use crate::targets;
use crate::{
    Body, Ctx, Driver, Event, InFlight, Kind, Lane, Launch, MachineError, MemRegistry, Particle,
    ParticleDriver, Point, Record, Registry, RestartLimit, SpawnError, Status, TreeSpec, Wave,
    WaveError,
};

/// How long [`Machine::ask`] waits unless the builder says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct StarSlot {
    actor: ActorRef<StarMsg>,
    counters: Arc<StarCounters>,
}

struct Shared {
    stars: Vec<StarSlot>,
    root: ActorRef<()>,
    drivers: HashMap<Kind, Arc<dyn Driver>, ahash::RandomState>,
    registry: Arc<dyn Registry>,
    events: broadcast::Sender<Event>,
    next_star: AtomicUsize,
    limit: RestartLimit,
    request_timeout: Duration,
    deadlines: Arc<Deadlines>,
    next_seq: AtomicU64,
    down: AtomicBool,
}

/// Where and how to spawn one particle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpawnOptions {
    /// Pin it to this Star (default: its parent's Star, or round-robin for top-level particles).
    pub star: Option<usize>,
    /// Its restart limit (default: the Machine's).
    pub restart_limit: Option<RestartLimit>,
}

/// A process hosting Stars: it places particles, routes waves by Point and
/// shuts down children before parents.
///
/// Standalone, every Star lives on this Machine; a clustered Machine will
/// look the same to a particle.
///
/// ```
/// use hyperverse_runtime::*;
///
/// struct Greeter;
/// impl Particle for Greeter {
///     type State = String;
///     async fn start(&self, _: &Ctx, args: &Body) -> Result<String, ParticleError> {
///         Ok(String::from_utf8(args.as_bytes().to_vec())?)
///     }
///     async fn handle(&self, _: &Ctx, greeting: &mut String, w: Wave) -> Result<Body, ParticleError> {
///         let who = std::str::from_utf8(w.body.as_bytes())?;
///         Ok(format!("{greeting}, {who}!").into())
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let machine = Machine::standalone().stars(2).kind("greeter", Greeter).build().await?;
/// let at: Point = "app:greeter".parse()?;
/// machine.spawn(at.clone(), "greeter".into(), "Hello".into()).await?;
/// let reply = machine.ask(&at, "greet", "Erlang").await?;
/// assert_eq!(reply.body.as_bytes(), b"Hello, Erlang!");
/// // Unknown Points are typed errors, not hangs.
/// assert!(matches!(
///     machine.ask(&"app:nobody".parse()?, "greet", "x").await,
///     Err(WaveError::NoSuchParticle { .. })
/// ));
/// machine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Machine {
    shared: Arc<Shared>,
}

/// Builds a standalone [`Machine`].
pub struct MachineBuilder {
    stars: usize,
    drivers: Vec<(Kind, Arc<dyn Driver>)>,
    registry: Option<Arc<dyn Registry>>,
    limit: RestartLimit,
    request_timeout: Duration,
}

impl MachineBuilder {
    /// How many Stars (default: the number of cores).
    pub fn stars(mut self, n: usize) -> Self {
        self.stars = n;
        self
    }

    /// Installs a Rust particle as the Driver of `kind`.
    pub fn kind<P: Particle>(self, kind: impl Into<Kind>, particle: P) -> Self {
        self.driver(kind, Arc::new(ParticleDriver::new(particle)))
    }

    /// Installs a Driver for `kind` (one per Kind: a second is an error at build).
    pub fn driver(mut self, kind: impl Into<Kind>, driver: Arc<dyn Driver>) -> Self {
        self.drivers.push((kind.into(), driver));
        self
    }

    /// The default restart limit for every particle.
    pub fn restart_limit(mut self, max_restarts: u32, period: Duration) -> Self {
        self.limit = RestartLimit {
            max_restarts,
            period,
        };
        self
    }

    /// How long [`Machine::ask`] waits for a reply.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Uses another Registry implementation.
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Starts the Stars and returns the Machine. Must run inside a tokio runtime.
    pub async fn build(self) -> Result<Machine, MachineError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MachineError::NoRuntime);
        }
        if self.stars == 0 {
            return Err(MachineError::NoStars);
        }
        hyperverse_supervisors::Intensity::new(self.limit.max_restarts, self.limit.period)?;
        let mut drivers = HashMap::with_hasher(ahash::RandomState::new());
        for (kind, driver) in self.drivers {
            if drivers.insert(kind.clone(), driver).is_some() {
                return Err(MachineError::DuplicateKind { kind });
            }
        }
        let registry = self
            .registry
            .unwrap_or_else(|| Arc::new(MemRegistry::new()));
        let (events, _) = broadcast::channel(1 << 16);
        let (root, _) =
            Actor::spawn(None, MachineRoot, ())
                .await
                .map_err(|e| MachineError::StarStart {
                    star: 0,
                    reason: e.to_string(),
                })?;
        let mut stars = Vec::with_capacity(self.stars);
        for id in 0..self.stars {
            let counters = Arc::new(StarCounters::default());
            let args = StarArgs {
                id,
                registry: registry.clone(),
                events: events.clone(),
                counters: counters.clone(),
            };
            let (actor, _) = Actor::spawn_linked(None, Star, args, root.get_cell())
                .await
                .map_err(|e| MachineError::StarStart {
                    star: id,
                    reason: e.to_string(),
                })?;
            stars.push(StarSlot { actor, counters });
        }
        tracing::info!(target: targets::MACHINE, stars = self.stars, "machine started");
        Ok(Machine {
            shared: Arc::new(Shared {
                stars,
                root,
                drivers,
                registry,
                events,
                next_star: AtomicUsize::new(0),
                limit: self.limit,
                request_timeout: self.request_timeout,
                deadlines: Deadlines::new(),
                next_seq: AtomicU64::new(0),
                down: AtomicBool::new(false),
            }),
        })
    }
}

impl Machine {
    /// A builder for a Machine whose Stars all live in this process.
    pub fn standalone() -> MachineBuilder {
        MachineBuilder {
            stars: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            drivers: Vec::new(),
            registry: None,
            limit: RestartLimit::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Number of Stars.
    pub fn stars(&self) -> usize {
        self.shared.stars.len()
    }

    /// Each Star's counters.
    pub fn star_stats(&self) -> Vec<StarStats> {
        self.shared
            .stars
            .iter()
            .enumerate()
            .map(|(i, s)| s.counters.snapshot(i))
            .collect()
    }

    /// The Kinds this Machine has Drivers for, sorted.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.shared.drivers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// The Registry.
    pub fn registry(&self) -> &dyn Registry {
        &*self.shared.registry
    }

    /// A snapshot of the particle at `point`.
    pub fn record(&self, point: &Point) -> Option<Record> {
        self.shared.registry.record(point)
    }

    /// Subscribes to what the runtime does from now on (spawns, crashes,
    /// restarts, stops). A subscriber that falls 65,536 events behind loses
    /// the oldest.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    fn emit(&self, event: impl FnOnce() -> Event) {
        if self.shared.events.receiver_count() > 0 {
            let _ = self.shared.events.send(event());
        }
    }

    /// Spawns a particle and waits until its `start` has succeeded.
    ///
    /// Its parent is the particle at `point.parent()`, if there is one; it
    /// goes on its parent's Star, or round-robin for top-level particles.
    pub async fn spawn(&self, point: Point, kind: Kind, args: Body) -> Result<Lane, SpawnError> {
        self.spawn_with(point, kind, args, SpawnOptions::default())
            .await
    }

    /// [`Machine::spawn`] with placement and restart options.
    pub async fn spawn_with(
        &self,
        point: Point,
        kind: Kind,
        args: Body,
        opts: SpawnOptions,
    ) -> Result<Lane, SpawnError> {
        let (tx, rx) = oneshot::channel();
        let lane = self.launch(point, None, kind, args, opts, Some(tx))?;
        wait_ready(lane.point(), &mut { rx }).await?;
        Ok(lane)
    }

    /// Spawns a particle without waiting for its `start` (Erlang's `spawn`):
    /// waves sent to it meanwhile wait in its lane.
    pub fn spawn_nowait(&self, point: Point, kind: Kind, args: Body) -> Result<Lane, SpawnError> {
        self.launch(point, None, kind, args, SpawnOptions::default(), None)
    }

    /// Wraps a cell in a Lane handle.
    fn lane_to(&self, cell: Arc<ParticleCell>) -> Lane {
        Lane {
            cell,
            deadlines: self.shared.deadlines.clone(),
        }
    }

    /// Registers and launches one particle. `parent` is its parent's cell
    /// when the caller has it (a particle spawning a child), saving a lookup.
    pub(crate) fn launch(
        &self,
        point: Point,
        parent: Option<Arc<ParticleCell>>,
        kind: Kind,
        args: Body,
        opts: SpawnOptions,
        ready: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<Lane, SpawnError> {
        let sh = &*self.shared;
        if sh.down.load(Ordering::Acquire) {
            return Err(SpawnError::MachineDown);
        }
        if point.is_root() {
            return Err(SpawnError::Root);
        }
        let Some(driver) = sh.drivers.get(&kind) else {
            return Err(SpawnError::UnknownKind { point, kind });
        };
        let parent = match parent {
            Some(p) => Some(p),
            // A top-level particle's parent is the root, which holds none.
            None if point.depth() > 1 => point.parent().and_then(|p| sh.registry.cell(&p)),
            None => None,
        };
        let star = match (opts.star, &parent) {
            (Some(s), _) if s >= sh.stars.len() => {
                return Err(SpawnError::NoSuchStar {
                    star: s,
                    stars: sh.stars.len(),
                })
            }
            (Some(s), _) => s,
            (None, Some(p)) => p.star(),
            (None, None) => sh.next_star.fetch_add(1, Ordering::Relaxed) % sh.stars.len(),
        };
        let _span = tracing::debug_span!(target: targets::SPAWN, "spawn", point = %point, kind = %kind, star).entered();
        let cell = Arc::new(ParticleCell::new(
            point.clone(),
            kind.clone(),
            star,
            parent.map(|p| p.point().clone()),
            opts.restart_limit.unwrap_or(sh.limit),
            sh.next_seq.fetch_add(1, Ordering::Relaxed),
        ));
        sh.registry
            .register(cell.clone())
            .map_err(|_| SpawnError::AlreadyExists {
                point: point.clone(),
            })?;
        sh.stars[star]
            .counters
            .spawned
            .fetch_add(1, Ordering::Relaxed);
        self.emit(|| Event::Spawned { point, kind, star });
        driver.launch(Launch {
            ctx: Ctx {
                machine: self.clone(),
                cell: cell.clone(),
            },
            args,
            ready,
        });
        Ok(self.lane_to(cell))
    }

    /// Spawns a whole tree under `under` (use [`Point::root`] for a top-level
    /// tree) and waits until every particle in it has started. Every Point
    /// and Kind is checked before anything is spawned; if a spawn fails
    /// midway, what was spawned is stopped again.
    pub async fn spawn_tree(
        &self,
        under: &Point,
        spec: &TreeSpec,
    ) -> Result<Vec<Point>, SpawnError> {
        let mut plan = Vec::new();
        spec.flatten(under, &mut plan)?;
        for p in &plan {
            if !self.shared.drivers.contains_key(&p.kind) {
                return Err(SpawnError::UnknownKind {
                    point: p.point.clone(),
                    kind: p.kind.clone(),
                });
            }
        }
        let mut waiting = Vec::with_capacity(plan.len());
        for p in plan {
            let (tx, rx) = oneshot::channel();
            match self.launch(p.point.clone(), None, p.kind, p.args, p.options, Some(tx)) {
                Ok(_) => waiting.push((p.point, rx)),
                Err(e) => {
                    self.stop_spawned(&waiting).await;
                    return Err(e);
                }
            }
        }
        let mut points = Vec::with_capacity(waiting.len());
        let mut failed = None;
        for (point, rx) in waiting.iter_mut().map(|(p, rx)| (p.clone(), rx)) {
            if let Err(e) = wait_ready(&point, rx).await {
                failed.get_or_insert(e);
            }
            points.push(point);
        }
        if let Some(e) = failed {
            self.stop_spawned(&waiting).await;
            return Err(e);
        }
        Ok(points)
    }

    async fn stop_spawned<T>(&self, spawned: &[(Point, T)]) {
        if let Some((top, _)) = spawned.first() {
            let _ = self.stop(top).await;
        }
    }

    /// A lane to the particle at `point`, for repeated sends without lookups.
    pub fn lane(&self, point: &Point) -> Result<Lane, WaveError> {
        let cell = self.resolve(point)?;
        if cell.lane.is_closed() {
            return Err(WaveError::Stopped {
                point: point.clone(),
            });
        }
        Ok(self.lane_to(cell))
    }

    /// Routes a signal to `wave.to`.
    pub fn signal(&self, wave: Wave) -> Result<(), WaveError> {
        deliver(&*self.resolve(&wave.to)?, wave)
    }

    fn resolve(&self, point: &Point) -> Result<Arc<ParticleCell>, WaveError> {
        self.shared.registry.cell(point).ok_or_else(|| {
            if self.shared.down.load(Ordering::Acquire) {
                WaveError::MachineDown
            } else {
                WaveError::NoSuchParticle {
                    point: point.clone(),
                }
            }
        })
    }

    /// Routes a request to `wave.to` and waits up to `timeout` for its reply.
    pub async fn request(&self, wave: Wave, timeout: Duration) -> Result<Wave, WaveError> {
        let cell = self.resolve(&wave.to)?;
        self.lane_to(cell).ask(wave, timeout).await
    }

    /// A request from the Machine itself (sender `ROOT`) with the default timeout.
    pub async fn ask(
        &self,
        to: &Point,
        method: impl Into<std::borrow::Cow<'static, str>>,
        body: impl Into<Body>,
    ) -> Result<Wave, WaveError> {
        let wave = Wave::request(Point::root(), to.clone(), method, body);
        self.request(wave, self.shared.request_timeout).await
    }

    /// Stops the particle at `point` and everything below it, children
    /// before parents, and waits until they have stopped. Waiting requests
    /// get [`WaveError::Stopped`].
    pub async fn stop(&self, point: &Point) -> Result<(), WaveError> {
        let cells = self.shared.registry.cells_under(point);
        if cells.is_empty() && !point.is_root() {
            return Err(WaveError::NoSuchParticle {
                point: point.clone(),
            });
        }
        // Parents come before children, so from the back, one depth at a
        // time: every particle of a depth is told to stop, then awaited.
        let mut rest = &cells[..];
        while let Some(last) = rest.last() {
            let depth = last.point().depth();
            let split = rest.partition_point(|c| c.point().depth() < depth);
            let (shallower, level) = rest.split_at(split);
            rest = shallower;
            for cell in level {
                cell.lane.request_stop();
            }
            for cell in level {
                let task = cell.task.lock().take();
                if let Some(task) = task {
                    let _ = task.await;
                }
                // A particle that was given up keeps its record until stopped.
                self.unregister_if_current(cell);
            }
        }
        Ok(())
    }

    /// Stops every particle (children first), then the Stars.
    pub async fn shutdown(&self) {
        if self.shared.down.swap(true, Ordering::AcqRel) {
            return;
        }
        let span = tracing::info_span!(target: targets::MACHINE, "shutdown");
        async {
            let _ = self.stop(&Point::root()).await;
            for star in &self.shared.stars {
                star.actor.stop(None);
            }
            self.shared.root.stop(None);
            tracing::info!(target: targets::MACHINE, "machine stopped");
        }
        .instrument(span)
        .await
    }

    fn unregister_if_current(&self, cell: &Arc<ParticleCell>) {
        if let Some(current) = self.shared.registry.cell(cell.point()) {
            if Arc::ptr_eq(&current, cell) {
                self.shared.registry.unregister(cell.point());
            }
        }
    }

    /// Asks the particle's Star what to do about a crash.
    pub(crate) async fn report_crash(
        &self,
        cell: &Arc<ParticleCell>,
        reason: String,
        in_flight: Option<InFlight>,
    ) -> Decision {
        let (reply, rx) = oneshot::channel();
        let msg = StarMsg::Crashed {
            cell: cell.clone(),
            reason,
            in_flight,
            reply,
        };
        if self.shared.stars[cell.star()].actor.cast(msg).is_err() {
            return Decision::GiveUp;
        }
        rx.await.unwrap_or(Decision::GiveUp)
    }

    /// A particle's task is ending: answer what is left in its lane, and
    /// unregister it unless it was given up (its record then stays, `Stopped`).
    pub(crate) fn finish(
        &self,
        cell: &Arc<ParticleCell>,
        leftover: VecDeque<Letter>,
        gave_up: bool,
    ) {
        for letter in leftover {
            letter.refuse(cell.point());
        }
        cell.set_status(Status::Stopped);
        if cell.restarts() > 0 || gave_up {
            let _ = self.shared.stars[cell.star()]
                .actor
                .cast(StarMsg::Forget(cell.point().clone()));
        }
        if !gave_up {
            self.unregister_if_current(cell);
            tracing::debug!(target: targets::SPAWN, point = %cell.point(), "particle stopped");
            self.emit(|| Event::Stopped {
                point: cell.point().clone(),
            });
        }
    }
}

async fn wait_ready(
    point: &Point,
    rx: &mut oneshot::Receiver<Result<(), String>>,
) -> Result<(), SpawnError> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(SpawnError::StartFailed {
            point: point.clone(),
            reason,
        }),
        Err(_) => Err(SpawnError::StartFailed {
            point: point.clone(),
            reason: "stopped before it started".into(),
        }),
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("stars", &self.stars())
            .field("particles", &self.shared.registry.len())
            .finish()
    }
}
