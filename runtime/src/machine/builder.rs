//! Building a standalone Machine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;
use tokio::sync::OnceCell;

use super::DEFAULT_REQUEST_TIMEOUT;
use crate::deadline::Deadlines;
use crate::event::{EventSink, Observer};
use crate::handle::{Machine, Shared};
use crate::registry::{Directory, MemRegistry};
use crate::stars::{MachineRoot, RootArgs, StarSlot};
use crate::targets;
use crate::Event;
use crate::{Driver, Kind, MachineError, Particle, ParticleDriver, RestartLimit};

/// Events a subscriber may fall behind by before it loses the oldest.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// Builds a standalone [`Machine`]: `Machine::standalone()…build().await`.
pub struct MachineBuilder {
    stars: usize,
    drivers: Vec<(Kind, Arc<dyn Driver>)>,
    limit: RestartLimit,
    request_timeout: Duration,
    event_capacity: usize,
    shutdown_timeout: Duration,
    observers: Vec<Observer>,
    resolver: Option<Arc<dyn crate::KindResolver>>,
    star_threads: bool,
    /// The first bad supervisor spec given, reported by `build`.
    bad_supervisor: Option<MachineError>,
    access: crate::access::AccessPolicy,
    superusers: Vec<Arc<str>>,
    rules: crate::access::Rules,
    bad_rule: Option<crate::access::RuleError>,
}

/// How long a stopping particle may take before it is killed (OTP's default
/// shutdown for workers).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Machine {
    /// A builder for a Machine whose Stars all live in this process.
    pub fn standalone() -> MachineBuilder {
        MachineBuilder::new()
    }
}

impl MachineBuilder {
    pub(super) fn new() -> Self {
        MachineBuilder {
            stars: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            drivers: Vec::new(),
            limit: RestartLimit::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            observers: Vec::new(),
            resolver: None,
            star_threads: false,
            bad_supervisor: None,
            access: crate::access::AccessPolicy::Open,
            superusers: Vec::new(),
            rules: crate::access::Rules::default(),
            bad_rule: None,
        }
    }

    /// How long a particle told to stop may take (its handler in hand, its
    /// children, its `stop` hook) before it is killed (default 5 s).
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self
    }

    /// How many Stars (default: the number of cores).
    pub fn stars(mut self, n: usize) -> Self {
        self.stars = n;
        self
    }

    /// Runs every particle on its Star's own thread: each Star becomes a
    /// scheduler as well as a supervision domain, as an Erlang scheduler
    /// is, and spreading particles over Stars spreads them over threads.
    /// Waves between particles of one Star then never wake another thread
    /// (a request and its reply between two of them cost no thread
    /// hand-off at all), at the price of tokio's work stealing: a Star's
    /// particles share its thread, and a long handler delays the others.
    /// By default (`false`) particles run on the Machine's tokio runtime,
    /// except those whose Driver asks for their Star's thread
    /// ([`crate::Launch::run_on_star_thread`], as WASM particles do).
    /// Ordering, supervision and restarts are the same either way.
    ///
    /// Star threads have tokio's timers; they have its IO driver (sockets,
    /// `tokio::net`) only on a Machine built with `star_threads(true)`, so
    /// a particle a Driver puts on its Star's thread on another Machine
    /// must not use tokio's IO (WASM guests have none).
    pub fn star_threads(mut self, on: bool) -> Self {
        self.star_threads = on;
        self
    }

    /// Installs a Rust particle as the Driver of `kind`.
    pub fn kind<P: Particle>(self, kind: impl Into<Kind>, particle: P) -> Self {
        self.driver(kind, Arc::new(ParticleDriver::new(particle)))
    }

    /// Installs an OTP supervisor as `kind`: each particle of that Kind
    /// supervises the children `spec` names (see [`crate::SupervisorRef`]).
    /// The spec is checked here: a bad one is
    /// [`MachineError::BadSupervisor`] from [`MachineBuilder::build`].
    pub fn supervisor(mut self, kind: impl Into<Kind>, spec: crate::SupervisorSpec) -> Self {
        let kind = kind.into();
        if let Err(error) = spec.validate() {
            self.bad_supervisor
                .get_or_insert(MachineError::BadSupervisor {
                    kind: kind.clone(),
                    error,
                });
        }
        self.kind(kind, crate::supervision::SupervisorParticle { spec })
    }

    /// Installs a Driver for `kind` (one per Kind: a second is an error at build).
    pub fn driver(mut self, kind: impl Into<Kind>, driver: Arc<dyn Driver>) -> Self {
        self.drivers.push((kind.into(), driver));
        self
    }

    /// Finds Drivers for Kinds none was installed for, the first time each
    /// is spawned (see [`crate::KindResolver`]); a Kind installed with
    /// [`MachineBuilder::driver`] or [`MachineBuilder::kind`] never asks
    /// it. One resolver per Machine: a second replaces the first.
    pub fn resolver(mut self, resolver: Arc<dyn crate::KindResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The default restart limit for every particle: at most `max_restarts`
    /// within any `period` (default: 10 in 5 s).
    pub fn restart_limit(mut self, max_restarts: u32, period: Duration) -> Self {
        self.limit.max_restarts = max_restarts;
        self.limit.period = period;
        self
    }

    /// A growing delay before each restart, for every particle (default:
    /// none, as in OTP).
    pub fn restart_backoff(mut self, backoff: hyperverse_supervisors::Backoff) -> Self {
        self.limit.backoff = Some(Box::new(backoff));
        self
    }

    /// How long [`Machine::ask`] waits for a reply (default 5 s).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// How far an [`Machine::events`] subscriber may fall behind (default 4,096).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Calls `observer` with every event, synchronously, where it happens:
    /// unlike [`Machine::events`] it sees events in the exact order they
    /// happened relative to what particles do, and never falls behind. For
    /// test probes and logs; keep it quick, it runs inside the runtime. A
    /// panic in it is caught and logged (`hyperverse::machine`), never
    /// unwound into the runtime.
    pub fn observer(mut self, observer: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Starts the Stars and returns the Machine. Must run inside a tokio runtime.
    /// The Machine's [`crate::access::AccessPolicy`] (default `Open`: any
    /// visitor but a confined one may send, ask, spawn, link and read, as
    /// before rules; `Enforced`: only ownership, superusers and grants).
    pub fn access(mut self, policy: crate::access::AccessPolicy) -> Self {
        self.access = policy;
        self
    }

    /// Makes the CLI user `user` a superuser (the daemon's owner).
    pub fn superuser(mut self, user: &str) -> Self {
        match crate::access::name(user) {
            Ok(u) => self.superusers.push(u),
            Err(e) => {
                self.bad_rule.get_or_insert(e);
            }
        }
        self
    }

    /// A grant in force from the start (see [`crate::Machine::grant`]); a
    /// bad one fails [`MachineBuilder::build`] with
    /// [`MachineError::BadRule`].
    pub fn grant(mut self, grant: crate::access::Grant) -> Self {
        if let Err(e) = self.rules.apply(&crate::access::Change::Grant(grant)) {
            self.bad_rule.get_or_insert(e);
        }
        self
    }

    pub async fn build(self) -> Result<Machine, MachineError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(MachineError::NoRuntime);
        };
        if self.stars == 0 {
            return Err(MachineError::NoStars);
        }
        if let Some(bad) = self.bad_supervisor {
            return Err(bad);
        }
        if let Some(bad) = self.bad_rule {
            return Err(MachineError::BadRule(bad));
        }
        self.limit.intensity()?;
        if let Some(b) = &self.limit.backoff {
            b.validate()?;
        }
        let mut drivers = HashMap::with_hasher(ahash::RandomState::new());
        for (kind, driver) in self.drivers {
            if drivers.insert(kind.clone(), driver).is_some() {
                return Err(MachineError::DuplicateKind { kind });
            }
        }
        let registry: Arc<dyn Directory> = Arc::new(MemRegistry::new());
        let events = Arc::new(EventSink::new(self.event_capacity, self.observers));
        let stars: Arc<[StarSlot]> = (0..self.stars).map(|_| StarSlot::new()).collect();
        let remote = crate::remote::RemoteSlot::default();
        let args = RootArgs {
            slots: stars.clone(),
            events: events.clone(),
            remote: remote.clone(),
        };
        let (root, _) =
            Actor::spawn(None, MachineRoot, args)
                .await
                .map_err(|e| MachineError::StarStart {
                    star: 0,
                    reason: e.to_string(),
                })?;
        tracing::info!(target: targets::MACHINE, stars = self.stars, "machine started");
        Ok(Machine {
            shared: Arc::new(Shared {
                stars,
                root,
                drivers: crate::drivers::Drivers::new(
                    drivers,
                    self.resolver
                        .map(|r| -> crate::drivers::Resolve<dyn crate::Driver> {
                            Box::new(move |kind| r.resolve(kind))
                        }),
                ),
                registry,
                events,
                next_star: AtomicUsize::new(0),
                limit: self.limit,
                request_timeout: self.request_timeout,
                deadlines: Deadlines::start(self.request_timeout),
                next_seq: AtomicU64::new(0),
                down: AtomicBool::new(false),
                shutdown: OnceCell::new(),
                runtime,
                shutdown_timeout: self.shutdown_timeout,
                remote,
                star_threads: crate::star_thread::StarThreads::new(self.stars, self.star_threads),
                all_on_star_threads: self.star_threads,
                access: Arc::new(crate::access::Access::new(
                    self.access,
                    self.rules,
                    self.superusers,
                )),
            }),
            user: None,
        })
    }
}
