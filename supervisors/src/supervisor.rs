//! The supervisor: OTP's `supervisor` behaviour as a state machine over an
//! abstract set of children.
//!
//! The logic here does not know what a child is. A [`Children`]
//! implementation starts and stops them (the runtime's starts particles; the
//! tests' records calls), and the supervisor decides what to start and stop,
//! in which order, following OTP's rules. Everything it does is recorded in
//! an event log, so tests assert the order of events, not final counts.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{
    AutoShutdown, Backoff, BackoffError, BackoffState, ChildSpec, ChildType, ExitReason, Intensity,
    IntensityError, Restart, RestartVerdict, Shutdown, SpecError, Strategy, SupFlags,
};

/// Starts and stops the children of one supervisor.
pub trait Children: Send {
    /// How to start a child (the `S` of [`ChildSpec<S>`]).
    type Start: Clone + Send + Sync;
    /// A running child. Equal handles mean the same incarnation, so an exit
    /// reported for an old incarnation is recognised and ignored.
    type Handle: Clone + PartialEq + fmt::Debug + Send + Sync;

    /// Starts child `id`; an error is a failed start and its reason.
    fn start(
        &mut self,
        id: &str,
        start: &Self::Start,
    ) -> impl Future<Output = Result<Self::Handle, ExitReason>> + Send;

    /// Stops a running child as `shutdown` says; returns how it ended.
    fn stop(
        &mut self,
        id: &str,
        handle: &Self::Handle,
        shutdown: Shutdown,
    ) -> impl Future<Output = ExitReason> + Send;

    /// The supervisor did this, just now (it is also in its log). The
    /// default does nothing; the runtime publishes it as it happens.
    fn event(&mut self, event: &SupEvent) {
        let _ = event;
    }

    /// True once the supervisor itself is being stopped: a restart in
    /// progress is abandoned (not counted against the intensity), as its
    /// shutdown follows. The default is never.
    fn stopping(&self) -> bool {
        false
    }
}

/// Logs an event and tells the children's owner at once.
fn record<C: Children>(log: &mut Vec<SupEvent>, children: &mut C, event: SupEvent) {
    children.event(&event);
    log.push(event);
}

/// One thing a supervisor did, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupEvent {
    /// A child started.
    Started { id: String },
    /// A child failed to start.
    StartFailed { id: String, reason: ExitReason },
    /// A child ended by itself.
    Exited { id: String, reason: ExitReason },
    /// The supervisor stopped a child (as a bystander of a restart, by the
    /// API, or at shutdown).
    Stopped { id: String, reason: ExitReason },
    /// The supervisor decided to restart because of this child.
    Restarting { id: String },
    /// A child's spec was removed (a temporary child ended, or `delete_child`).
    Removed { id: String },
    /// More restarts than the intensity allows: the supervisor gives up.
    GaveUp { restarts: u32 },
    /// A significant child ended and auto-shutdown ends the supervisor.
    AutoShutdown { id: String },
}

/// One line per event, for logs and tests: `started a`, `exited a: boom`,
/// `stopped b: shutdown`, `restarting a`, `removed t`, `gave_up after 3`,
/// `auto_shutdown by s`.
///
/// ```
/// use hyperverse_supervisors::{ExitReason, SupEvent};
///
/// let e = SupEvent::Exited { id: "db".into(), reason: ExitReason::Error("boom".into()) };
/// assert_eq!(e.to_string(), "exited db: boom");
/// ```
impl fmt::Display for SupEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupEvent::Started { id } => write!(f, "started {id}"),
            SupEvent::StartFailed { id, reason } => write!(f, "start_failed {id}: {reason}"),
            SupEvent::Exited { id, reason } => write!(f, "exited {id}: {reason}"),
            SupEvent::Stopped { id, reason } => write!(f, "stopped {id}: {reason}"),
            SupEvent::Restarting { id } => write!(f, "restarting {id}"),
            SupEvent::Removed { id } => write!(f, "removed {id}"),
            SupEvent::GaveUp { restarts } => write!(f, "gave_up after {restarts}"),
            SupEvent::AutoShutdown { id } => write!(f, "auto_shutdown by {id}"),
        }
    }
}

/// What the supervisor's owner must do after an exit was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Carry on supervising.
    Continue,
    /// The supervisor has stopped all its children and must now end with
    /// this reason (its own supervisor then sees it end).
    Shutdown(ExitReason),
    /// OTP's `{try_again_restart, Id}`: restarting child `id` failed (or
    /// its backoff delays it). The owner keeps supervising (answering
    /// calls) and, `after` this long, calls [`Supervisor::try_again`] with
    /// `id`, as OTP's supervisor sends itself a message. Meanwhile the
    /// child shows as restarting; a `terminate_child` of it cancels the
    /// retry (then `try_again` does nothing).
    TryAgain {
        /// The child to restart.
        id: String,
        /// How long to wait first (zero without a backoff).
        after: Duration,
    },
}

/// Errors of the supervisor API, with OTP's cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SupError {
    /// Bad flags.
    #[error("bad supervisor flags: {0}")]
    Flags(#[from] IntensityError),
    /// A restart backoff that cannot work.
    #[error("{0}")]
    Backoff(#[from] BackoffError),
    /// A bad child spec.
    #[error("bad child spec: {0}")]
    Spec(#[from] SpecError),
    /// OTP rejects auto-shutdown on a dynamic (simple_one_for_one) supervisor.
    #[error("a dynamic supervisor cannot auto-shutdown")]
    DynamicAutoShutdown,
    /// OTP rejects significant children when auto-shutdown is `never`.
    #[error("child `{id}` is significant, but auto_shutdown is never")]
    SignificantWithoutAutoShutdown { id: String },
    /// A dynamic supervisor has exactly one spec, the template.
    #[error("a dynamic supervisor needs exactly one child spec, got {specs}")]
    DynamicTemplate { specs: usize },
    /// A child failed to start (at supervisor start, or `start_child`).
    #[error("child `{id}` failed to start: {reason}")]
    StartFailed { id: String, reason: ExitReason },
    /// OTP's `{already_started, Pid}`.
    #[error("child `{id}` is already started")]
    AlreadyStarted { id: String },
    /// OTP's `already_present`: the spec is there, the child is not running.
    #[error("child `{id}` is already present (not running)")]
    AlreadyPresent { id: String },
    /// OTP's `running`: the operation needs a stopped child.
    #[error("child `{id}` is running")]
    Running { id: String },
    /// OTP's `restarting`.
    #[error("child `{id}` is being restarted")]
    Restarting { id: String },
    /// OTP's `not_found`.
    #[error("no child `{id}`")]
    NotFound { id: String },
    /// The operation does not apply to this strategy (e.g. `restart_child`
    /// on a dynamic supervisor, `add_child` on a static one).
    #[error("`{op}` is not supported by a {strategy:?} supervisor")]
    Unsupported { op: String, strategy: Strategy },
}

/// A child as `which_children` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo<H> {
    /// Its id.
    pub id: String,
    /// Its handle when running.
    pub handle: Option<H>,
    /// True while a restart of it keeps failing.
    pub restarting: bool,
    /// Worker or supervisor.
    pub child_type: ChildType,
}

/// `count_children`: OTP's `specs`, `active`, `supervisors`, `workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Child specs (children known to the supervisor).
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Specs of supervisor children.
    pub supervisors: usize,
    /// Specs of worker children.
    pub workers: usize,
}

enum State<H> {
    Running(H),
    /// A restart of it failed; the supervisor will try again.
    Restarting,
    NotRunning,
}

struct Child<S, H> {
    spec: ChildSpec<S>,
    state: State<H>,
    /// Its place in the supervisor's backoff, if it has one.
    backoff: Option<BackoffState>,
}

impl<S, H> Child<S, H> {
    fn is_alive(&self) -> bool {
        !matches!(self.state, State::NotRunning)
    }
}

/// OTP: "With auto_shutdown set to never, child specs with the significant
/// flag set to true are considered invalid and will be rejected."
fn check_significance<S>(flags: &SupFlags, spec: &ChildSpec<S>) -> Result<(), SupError> {
    if spec.significant && flags.auto_shutdown == AutoShutdown::Never {
        return Err(SupError::SignificantWithoutAutoShutdown {
            id: spec.id.clone(),
        });
    }
    Ok(())
}

/// Checks a supervisor's flags and child specs as [`Supervisor::start`]
/// does before it starts anything (OTP's `init/1` result check): sound
/// intensity, valid specs with distinct ids, significance only with
/// auto-shutdown, a dynamic supervisor's one template.
///
/// ```
/// use hyperverse_supervisors::*;
///
/// let twice = vec![ChildSpec::worker("a", ()), ChildSpec::worker("a", ())];
/// assert!(check_spec(&SupFlags::default(), &twice).is_err());
/// assert!(check_spec(&SupFlags::default(), &twice[..1]).is_ok());
/// ```
pub fn check_spec<S>(flags: &SupFlags, specs: &[ChildSpec<S>]) -> Result<(), SupError> {
    flags.validate()?;
    if flags.strategy == Strategy::Dynamic && flags.auto_shutdown != AutoShutdown::Never {
        // OTP 27: auto_shutdown is not valid for simple_one_for_one.
        return Err(SupError::DynamicAutoShutdown);
    }
    for (i, spec) in specs.iter().enumerate() {
        spec.validate()?;
        check_significance(flags, spec)?;
        if specs[..i].iter().any(|s| s.id == spec.id) {
            return Err(SpecError::DuplicateId {
                id: spec.id.clone(),
            }
            .into());
        }
    }
    if flags.strategy == Strategy::Dynamic && specs.len() != 1 {
        return Err(SupError::DynamicTemplate { specs: specs.len() });
    }
    Ok(())
}

/// OTP's supervisor, over any [`Children`].
///
/// ```
/// use hyperverse_supervisors::*;
///
/// /// Children that are just names.
/// struct Names(u64);
/// impl Children for Names {
///     type Start = ();
///     type Handle = u64;
///     async fn start(&mut self, _: &str, _: &()) -> Result<u64, ExitReason> {
///         self.0 += 1;
///         Ok(self.0)
///     }
///     async fn stop(&mut self, _: &str, _: &u64, _: Shutdown) -> ExitReason {
///         ExitReason::Shutdown
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let mut kids = Names(0);
/// let specs = vec![ChildSpec::worker("a", ()), ChildSpec::worker("b", ())];
/// let mut sup = Supervisor::start(SupFlags::new(Strategy::OneForAll), specs, &mut kids)
///     .await
///     .unwrap();
/// // `a` crashes: one_for_all stops `b`, then starts both again, in order.
/// let a = sup.handle("a").unwrap();
/// sup.take_log();
/// let outcome = sup.child_exited(&mut kids, "a", &a, ExitReason::Error("boom".into())).await;
/// assert_eq!(outcome, Outcome::Continue);
/// let log: Vec<String> = sup.take_log().iter().map(|e| format!("{e:?}")).collect();
/// assert_eq!(log[1], r#"Restarting { id: "a" }"#);
/// assert_eq!(log[2], r#"Stopped { id: "b", reason: Shutdown }"#);
/// assert_eq!(log[3..], [r#"Started { id: "a" }"#, r#"Started { id: "b" }"#]);
/// # });
/// ```
pub struct Supervisor<C: Children> {
    flags: SupFlags,
    intensity: Intensity,
    children: Vec<Child<C::Start, C::Handle>>,
    /// The one spec of a dynamic supervisor.
    template: Option<ChildSpec<C::Start>>,
    log: Vec<SupEvent>,
    /// The next restart is not counted against the intensity.
    exempt: bool,
    /// Beyond OTP: a growing delay before each restart of a child.
    backoff: Option<Backoff>,
    /// Picks backoff jitter (xorshift; quality is not the point).
    random: u64,
}

impl<C: Children> Supervisor<C> {
    /// Validates the flags and specs, then starts the children in spec order,
    /// each started before the next. If one fails to start, those already
    /// started are stopped in reverse order and the start fails. A dynamic
    /// supervisor takes exactly one spec, its template, and starts nothing.
    pub async fn start(
        flags: SupFlags,
        specs: Vec<ChildSpec<C::Start>>,
        children: &mut C,
    ) -> Result<Self, SupError> {
        Self::try_start(flags, specs, children)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`Supervisor::start`], keeping the event log of a failed start
    /// (which children started and were stopped again).
    pub async fn try_start(
        flags: SupFlags,
        specs: Vec<ChildSpec<C::Start>>,
        children: &mut C,
    ) -> Result<Self, (SupError, Vec<SupEvent>)> {
        Self::validated(&flags, &specs).map_err(|e| (e, Vec::new()))?;
        let mut sup = Supervisor {
            flags,
            intensity: Intensity::new(flags.max_restarts, flags.period)
                .map_err(|e| (e.into(), Vec::new()))?,
            children: Vec::new(),
            template: None,
            log: Vec::new(),
            exempt: false,
            backoff: None,
            random: 0x9E37_79B9_7F4A_7C15,
        };
        if flags.strategy == Strategy::Dynamic {
            sup.template = specs.into_iter().next();
            return Ok(sup);
        }
        for spec in specs {
            let id = spec.id.clone();
            sup.children.push(Child {
                spec,
                state: State::NotRunning,
                backoff: None,
            });
            let last = sup.children.len() - 1;
            if let Err(reason) = sup.start_at(children, last).await {
                sup.children.pop();
                sup.stop_all(children).await;
                return Err((SupError::StartFailed { id, reason }, sup.log));
            }
        }
        Ok(sup)
    }

    /// Checks flags and specs before anything starts.
    fn validated(flags: &SupFlags, specs: &[ChildSpec<C::Start>]) -> Result<(), SupError> {
        check_spec(flags, specs)
    }

    /// The template of a dynamic supervisor.
    pub fn template(&self) -> Option<&ChildSpec<C::Start>> {
        self.template.as_ref()
    }

    /// Delays each restart of a child by `backoff` (each child has its own
    /// place in it), or no longer (`None`, OTP's way). A delayed restart is
    /// an [`Outcome::TryAgain`] whose `after` is the delay: the supervisor
    /// keeps answering meanwhile, and the attempt, when it comes, counts
    /// against the intensity.
    pub fn set_backoff(&mut self, backoff: Option<Backoff>) {
        self.backoff = backoff;
        for c in &mut self.children {
            c.backoff = None;
        }
    }

    /// The next restart this supervisor makes is not counted against its
    /// intensity: for an exit that is no fault of the child (a test's
    /// injected kill), which must not make the supervisor give up.
    pub fn exempt_next_restart(&mut self) {
        self.exempt = true;
    }

    /// Restarts within the current intensity window.
    pub fn restarts_in_period(&self) -> u32 {
        self.intensity.in_period()
    }

    /// The flags.
    pub fn flags(&self) -> &SupFlags {
        &self.flags
    }

    /// Everything done since the last [`Supervisor::take_log`].
    pub fn log(&self) -> &[SupEvent] {
        &self.log
    }

    /// Takes the event log, leaving it empty.
    pub fn take_log(&mut self) -> Vec<SupEvent> {
        std::mem::take(&mut self.log)
    }

    /// The handle of a running child.
    pub fn handle(&self, id: &str) -> Option<C::Handle> {
        self.find(id).and_then(|i| match &self.children[i].state {
            State::Running(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// True while child `id`'s restart waits to be tried again (see
    /// [`Outcome::TryAgain`]).
    pub fn is_restarting(&self, id: &str) -> bool {
        self.find(id)
            .is_some_and(|i| matches!(self.children[i].state, State::Restarting))
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// Starts the child at `i`, recording the outcome in its state and the log.
    async fn start_at(&mut self, children: &mut C, i: usize) -> Result<(), ExitReason> {
        let child = &mut self.children[i];
        match children.start(&child.spec.id, &child.spec.start).await {
            Ok(handle) => {
                child.state = State::Running(handle);
                record(
                    &mut self.log,
                    children,
                    SupEvent::Started {
                        id: child.spec.id.clone(),
                    },
                );
                Ok(())
            }
            Err(reason) => {
                child.state = State::Restarting;
                record(
                    &mut self.log,
                    children,
                    SupEvent::StartFailed {
                        id: child.spec.id.clone(),
                        reason: reason.clone(),
                    },
                );
                Err(reason)
            }
        }
    }

    /// Stops the child at `i` if it runs. Returns false if the child was
    /// removed (a temporary child's spec goes with it).
    async fn stop_at(&mut self, children: &mut C, i: usize) -> bool {
        let child = &mut self.children[i];
        if let State::Running(handle) = std::mem::replace(&mut child.state, State::NotRunning) {
            let reason = children
                .stop(&child.spec.id, &handle, child.spec.shutdown)
                .await;
            record(
                &mut self.log,
                children,
                SupEvent::Stopped {
                    id: child.spec.id.clone(),
                    reason,
                },
            );
        }
        if self.children[i].spec.restart == Restart::Temporary
            || self.flags.strategy == Strategy::Dynamic
        {
            let removed = self.children.remove(i);
            record(
                &mut self.log,
                children,
                SupEvent::Removed {
                    id: removed.spec.id,
                },
            );
            return false;
        }
        true
    }

    /// Stops every child in reverse start order (supervisor shutdown).
    async fn stop_all(&mut self, children: &mut C) {
        for i in (0..self.children.len()).rev() {
            self.stop_at(children, i).await;
        }
    }

    /// Stops all children in reverse start order: the supervisor is ending.
    pub async fn shutdown(&mut self, children: &mut C) {
        self.stop_all(children).await;
    }

    /// A child ended by itself with `reason`. `handle` names the incarnation
    /// that ended: an exit of an incarnation the supervisor already replaced
    /// or stopped is ignored. A restart that fails to start (or is delayed
    /// by the backoff) is an [`Outcome::TryAgain`]: call
    /// [`Supervisor::try_again`] later, as OTP's supervisor retries by a
    /// message to itself rather than in a loop.
    pub async fn child_exited(
        &mut self,
        children: &mut C,
        id: &str,
        handle: &C::Handle,
        reason: ExitReason,
    ) -> Outcome {
        let Some(i) = self.find(id) else {
            return Outcome::Continue;
        };
        if !matches!(&self.children[i].state, State::Running(h) if h == handle) {
            return Outcome::Continue;
        }
        self.children[i].state = State::NotRunning;
        record(
            &mut self.log,
            children,
            SupEvent::Exited {
                id: id.to_string(),
                reason: reason.clone(),
            },
        );
        let spec = &self.children[i].spec;
        let restart = match spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_normal(),
            Restart::Temporary => false,
        };
        if restart {
            return self.restart(children, i).await;
        }
        let significant = spec.significant;
        if spec.restart == Restart::Temporary || self.flags.strategy == Strategy::Dynamic {
            let removed = self.children.remove(i);
            record(
                &mut self.log,
                children,
                SupEvent::Removed {
                    id: removed.spec.id,
                },
            );
        }
        if significant {
            let end = match self.flags.auto_shutdown {
                AutoShutdown::Never => false,
                AutoShutdown::AnySignificant => true,
                AutoShutdown::AllSignificant => !self
                    .children
                    .iter()
                    .any(|c| c.spec.significant && c.is_alive()),
            };
            if end {
                record(
                    &mut self.log,
                    children,
                    SupEvent::AutoShutdown { id: id.to_string() },
                );
                self.stop_all(children).await;
                return Outcome::Shutdown(ExitReason::Shutdown);
            }
        }
        Outcome::Continue
    }

    /// The backoff delay before the next restart of the child at `i`
    /// (zero without a backoff).
    fn delay(&mut self, i: usize) -> Duration {
        let Some(policy) = &self.backoff else {
            return Duration::ZERO;
        };
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let random = self.random;
        self.children[i]
            .backoff
            .get_or_insert_with(|| policy.start())
            .next_delay(Instant::now(), random)
    }

    /// The child at `i` must be restarted: at once, or after its backoff
    /// delay (an [`Outcome::TryAgain`], the child restarting meanwhile).
    async fn restart(&mut self, children: &mut C, i: usize) -> Outcome {
        let after = self.delay(i);
        if after.is_zero() {
            return self.attempt(children, i).await;
        }
        let id = self.children[i].spec.id.clone();
        self.children[i].state = State::Restarting;
        Outcome::TryAgain { id, after }
    }

    /// OTP's `try_again_restart`: tries again to restart child `id` after
    /// an [`Outcome::TryAgain`]. The attempt counts against the intensity
    /// (past it, the supervisor gives up: [`Outcome::Shutdown`]); it may
    /// fail again (another `TryAgain`). Nothing is done if the child is no
    /// longer restarting: it was terminated, deleted or started meanwhile,
    /// or the supervisor is stopping.
    pub async fn try_again(&mut self, children: &mut C, id: &str) -> Outcome {
        match self.find(id) {
            Some(i) if matches!(self.children[i].state, State::Restarting) => {
                self.attempt(children, i).await
            }
            _ => Outcome::Continue,
        }
    }

    /// One restart per the strategy because the child at `i` must be
    /// restarted; it counts against the intensity. A start that fails is
    /// OTP's `{try_again, Id}` for the child that failed (after its backoff
    /// delay, if any), never a loop here: the owner answers calls between
    /// attempts.
    async fn attempt(&mut self, children: &mut C, i: usize) -> Outcome {
        if children.stopping() {
            return Outcome::Continue;
        }
        let id = self.children[i].spec.id.clone();
        let verdict = if std::mem::take(&mut self.exempt) {
            RestartVerdict::Restart { in_period: 0 }
        } else {
            self.intensity.record()
        };
        if let RestartVerdict::GiveUp { in_period } = verdict {
            record(
                &mut self.log,
                children,
                SupEvent::GaveUp {
                    restarts: in_period,
                },
            );
            self.stop_all(children).await;
            return Outcome::Shutdown(ExitReason::Shutdown);
        }
        record(
            &mut self.log,
            children,
            SupEvent::Restarting { id: id.clone() },
        );
        // On a retry of one_for_all / rest_for_one the child may be
        // running again (started by the attempt that failed further on):
        // it is stopped with the others, never forgotten.
        if !matches!(self.children[i].state, State::Running(_)) {
            self.children[i].state = State::Restarting;
        }
        let started = match self.flags.strategy {
            Strategy::OneForOne | Strategy::Dynamic => {
                self.start_at(children, i).await.map_err(|_| i)
            }
            Strategy::OneForAll => self.restart_from(children, 0).await,
            Strategy::RestForOne => self.restart_from(children, i).await,
        };
        match started {
            Ok(()) => Outcome::Continue,
            Err(failed) => {
                let after = self.delay(failed);
                Outcome::TryAgain {
                    id: self.children[failed].spec.id.clone(),
                    after,
                }
            }
        }
    }

    /// Stops the running children from `from` on in reverse order (the
    /// crashed one is down already, unless an earlier attempt restarted
    /// it), then starts them again in order; temporary bystanders are
    /// removed, not restarted.
    /// On failure, the index of the child that failed to start.
    async fn restart_from(&mut self, children: &mut C, from: usize) -> Result<(), usize> {
        let mut i = self.children.len();
        while i > from {
            i -= 1;
            // A temporary bystander's spec goes (the indices after it move).
            self.stop_at(children, i).await;
        }
        for i in from..self.children.len() {
            if self.start_at(children, i).await.is_err() {
                return Err(i);
            }
        }
        Ok(())
    }

    /// `start_child` on a static supervisor: adds a spec and starts it.
    pub async fn start_child(
        &mut self,
        children: &mut C,
        spec: ChildSpec<C::Start>,
    ) -> Result<C::Handle, SupError> {
        if self.flags.strategy == Strategy::Dynamic {
            return Err(self.unsupported("start_child"));
        }
        spec.validate()?;
        check_significance(&self.flags, &spec)?;
        if let Some(i) = self.find(&spec.id) {
            return Err(match self.children[i].state {
                State::Running(_) => SupError::AlreadyStarted { id: spec.id },
                _ => SupError::AlreadyPresent { id: spec.id },
            });
        }
        self.push_and_start(children, spec).await
    }

    /// `start_child` on a dynamic supervisor: a child from the template,
    /// named `id`, started with `start`.
    pub async fn add_child(
        &mut self,
        children: &mut C,
        id: impl Into<String>,
        start: C::Start,
    ) -> Result<C::Handle, SupError> {
        let Some(template) = &self.template else {
            return Err(self.unsupported("add_child"));
        };
        let spec = ChildSpec {
            id: id.into(),
            start,
            ..template.clone()
        };
        spec.validate()?;
        if self.find(&spec.id).is_some() {
            return Err(SupError::AlreadyStarted { id: spec.id });
        }
        self.push_and_start(children, spec).await
    }

    async fn push_and_start(
        &mut self,
        children: &mut C,
        spec: ChildSpec<C::Start>,
    ) -> Result<C::Handle, SupError> {
        let id = spec.id.clone();
        self.children.push(Child {
            spec,
            state: State::NotRunning,
            backoff: None,
        });
        let last = self.children.len() - 1;
        match self.start_at(children, last).await {
            Ok(()) => Ok(self.handle(&id).expect("just started")),
            Err(reason) => {
                // OTP keeps no spec for a child whose start failed here.
                self.children.pop();
                Err(SupError::StartFailed { id, reason })
            }
        }
    }

    /// Stops a child; its spec stays (unless temporary, or dynamic).
    pub async fn terminate_child(&mut self, children: &mut C, id: &str) -> Result<(), SupError> {
        let i = self
            .find(id)
            .ok_or_else(|| SupError::NotFound { id: id.into() })?;
        self.stop_at(children, i).await;
        Ok(())
    }

    /// Starts a stopped child again from its spec.
    pub async fn restart_child(
        &mut self,
        children: &mut C,
        id: &str,
    ) -> Result<C::Handle, SupError> {
        let i = self.stopped_child("restart_child", id)?;
        match self.start_at(children, i).await {
            Ok(()) => Ok(self.handle(id).expect("just started")),
            Err(reason) => {
                self.children[i].state = State::NotRunning;
                Err(SupError::StartFailed {
                    id: id.into(),
                    reason,
                })
            }
        }
    }

    /// Removes a stopped child's spec.
    pub fn delete_child(&mut self, children: &mut C, id: &str) -> Result<(), SupError> {
        let i = self.stopped_child("delete_child", id)?;
        self.children.remove(i);
        record(&mut self.log, children, SupEvent::Removed { id: id.into() });
        Ok(())
    }

    /// The index of child `id` for an operation `op` that needs it stopped,
    /// with OTP's errors: not on a dynamic supervisor, not found, running,
    /// restarting.
    fn stopped_child(&self, op: &'static str, id: &str) -> Result<usize, SupError> {
        if self.flags.strategy == Strategy::Dynamic {
            return Err(self.unsupported(op));
        }
        let i = self
            .find(id)
            .ok_or_else(|| SupError::NotFound { id: id.into() })?;
        match self.children[i].state {
            State::Running(_) => Err(SupError::Running { id: id.into() }),
            State::Restarting => Err(SupError::Restarting { id: id.into() }),
            State::NotRunning => Ok(i),
        }
    }

    /// The children in start order.
    pub fn which_children(&self) -> Vec<ChildInfo<C::Handle>> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                handle: match &c.state {
                    State::Running(h) => Some(h.clone()),
                    _ => None,
                },
                restarting: matches!(c.state, State::Restarting),
                child_type: c.spec.child_type,
            })
            .collect()
    }

    /// OTP's `count_children`.
    pub fn count_children(&self) -> Counts {
        let mut counts = Counts::default();
        for c in &self.children {
            counts.specs += 1;
            counts.active += usize::from(matches!(c.state, State::Running(_)));
            match c.spec.child_type {
                ChildType::Supervisor => counts.supervisors += 1,
                ChildType::Worker => counts.workers += 1,
            }
        }
        counts
    }

    fn unsupported(&self, op: &'static str) -> SupError {
        SupError::Unsupported {
            op: op.to_string(),
            strategy: self.flags.strategy,
        }
    }
}
