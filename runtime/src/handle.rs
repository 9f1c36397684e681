//! The runtime's handles, as types: the [`Machine`], a particle's [`Ctx`],
//! the [`Launch`] a [`Driver`] gets, and the `Driver` trait itself.
//!
//! Only their definitions live here (and what needs nothing above them).
//! They refer to each other: a Machine holds its Drivers, a Driver
//! launches with a `Launch` holding a `Ctx`, and a `Ctx` holds its
//! Machine. Kept together, below everything that gives them behaviour (the
//! `impl` blocks in `machine/`, `ctx`, `driver` and `run`), so that no file
//! imports one above it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::{oneshot, OnceCell};

use crate::cell::ParticleCell;
use crate::deadline::Deadlines;
use crate::event::EventSink;
use crate::registry::Directory;
use crate::stars::StarSlot;
use crate::{Body, DownReason, LaneLimit, RestartLimit};

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
/// let at: Point = "greeter".parse()?;
/// machine.spawn(at.clone(), "greeter".into(), "Hello".into()).await?;
/// let reply = machine.ask(&at, ("greet", "Erlang")).await?;
/// assert_eq!(reply.as_bytes(), b"Hello, Erlang!");
/// // Unknown Points are typed errors, not hangs.
/// assert!(matches!(
///     machine.ask(&"nobody".parse()?, ("greet", "x")).await,
///     Err(WaveError::NoSuchParticle { .. })
/// ));
/// machine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Machine {
    pub(crate) shared: Arc<Shared>,
    /// The CLI user this handle acts as ([`Machine::as_user`]); `None`
    /// for the Machine's own handles.
    pub(crate) user: Option<Arc<str>>,
}

pub(crate) struct Shared {
    pub(crate) stars: Arc<[StarSlot]>,
    pub(crate) root: ActorRef<()>,
    pub(crate) drivers: crate::drivers::Drivers<dyn Driver>,
    pub(crate) registry: Arc<dyn Directory>,
    pub(crate) events: Arc<EventSink>,
    pub(crate) next_star: AtomicUsize,
    pub(crate) limit: RestartLimit,
    pub(crate) request_timeout: Duration,
    pub(crate) deadlines: Arc<Deadlines>,
    pub(crate) next_seq: AtomicU64,
    pub(crate) down: AtomicBool,
    pub(crate) shutdown: OnceCell<()>,
    /// The runtime the Machine was built on: particles run there, whoever
    /// spawns them.
    pub(crate) runtime: tokio::runtime::Handle,
    /// How long a stopping particle may take before it is killed.
    pub(crate) shutdown_timeout: Duration,
    /// Where waves to Points on other Machines go, once a cluster attaches
    /// it (see [`crate::remote`]).
    pub(crate) remote: crate::remote::RemoteSlot,
    /// The Stars' own threads, for particles that run on them.
    pub(crate) star_threads: crate::star_thread::StarThreads,
    /// True if every particle runs on its Star's thread
    /// ([`crate::MachineBuilder::star_threads`]).
    pub(crate) all_on_star_threads: bool,
    /// Access rules, policy and superusers (see [`crate::access`]).
    pub(crate) access: Arc<crate::access::Access>,
}

/// A particle's view of the Machine: who it is, and how to send, spawn and stop.
#[derive(Clone)]
pub struct Ctx {
    pub(crate) machine: Machine,
    pub(crate) cell: Arc<ParticleCell>,
}

/// Everything a Driver needs to launch one particle.
///
/// A Driver must call [`Launch::run`]; a `Launch` dropped without running
/// ends the particle at once (its spawn fails, its Point is freed), so a
/// faulty Driver cannot leave a particle that never answers.
pub struct Launch {
    pub(crate) ctx: Ctx,
    pub(crate) args: Body,
    pub(crate) ready: Option<oneshot::Sender<Result<(), String>>>,
    pub(crate) launched: bool,
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

/// Finds a Driver for a Kind no Driver was installed for.
///
/// Asked at most until it answers `Some` for a Kind (that Driver is then
/// kept), on the spawning caller's thread: it must be quick (a lookup, a
/// directory listing at most) and must not wait on anything (a Driver that
/// loads code should load it when its particle starts, which is async). A
/// panic in it is a `None`.
///
/// ```
/// use std::sync::Arc;
/// use hyperverse_runtime::*;
///
/// struct Echo;
/// impl Particle for Echo {
///     type State = ();
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
///     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// }
///
/// /// Every Kind named `echo:…` is an echo.
/// struct Echoes;
/// impl KindResolver for Echoes {
///     fn resolve(&self, kind: &Kind) -> Option<Arc<dyn Driver>> {
///         kind.as_str().starts_with("echo:").then(|| Arc::new(ParticleDriver::new(Echo)) as _)
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let m = Machine::standalone().resolver(Arc::new(Echoes)).build().await?;
/// m.spawn("a".parse()?, "echo:one".into(), Body::empty()).await?;
/// assert_eq!(m.ask(&"a".parse()?, ("say", "hi")).await?.as_bytes(), b"hi");
/// assert!(matches!(
///     m.spawn("b".parse()?, "other".into(), Body::empty()).await,
///     Err(SpawnError::UnknownKind { .. })
/// ));
/// assert_eq!(m.kinds(), vec![Kind::from("echo:one")]);
/// m.shutdown().await;
/// # Ok(()) }
/// ```
pub trait KindResolver: Send + Sync + 'static {
    /// The Driver for `kind`, if this resolver knows it.
    fn resolve(&self, kind: &crate::Kind) -> Option<Arc<dyn Driver>>;
}
