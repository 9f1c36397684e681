//! Machines: a process hosting Stars, routing waves between their particles.
//!
//! Senders are the runtime's to set. No send API takes a sender:
//! [`Machine::signal`], [`Machine::ask`], [`Machine::signal_waiting`] and
//! [`Machine::control`] stamp the particle whose handler calls them, or the
//! Machine itself ([`Point::root`]) when called from anywhere else; [`Ctx`]
//! stamps its own particle. The sender is what the runtime's guards key on
//! (a parent stopping its children refuses their requests, whichever way
//! they were sent), what the supervisor API is judged by (only the Machine
//! or an ancestor of the supervisor may use it), and what the cluster
//! carries between Machines and the access rules on Points judge: none of
//! that could stand on a sender the caller writes.

mod access;
pub(crate) use access::{admit, Origin};
mod builder;
mod faults;
mod remote;
mod stop;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};

pub use builder::{MachineBuilder, DEFAULT_EVENT_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT};

use crate::cell::ParticleCell;
use crate::control::{ControlKind, ControlReply};
use crate::handle::Machine;
use crate::lane::Letter;
use crate::particle_ref::{ask_cell, signal_cell, signal_waiting_cell};
use crate::registry::RegistryError;
use crate::remote::Remote;
use crate::star::{StarMsg, StarStats};
use crate::targets;
use crate::{
    Ask, Body, Ctx, DownNotice, DownReason, Event, ExitSignal, Kind, Launch, MonitorRef,
    ParticleRef, Point, Record, Registry, SendError, Sendable, SpawnError, SpawnOptions, Status,
    SupervisorRef, TreeSpec, WaveError,
};

/// How long an [`Ask`] waits unless the builder (or [`Ask::within`]) says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type ReadyTx = oneshot::Sender<Result<(), String>>;
type ReadyRx = oneshot::Receiver<Result<(), String>>;

impl Machine {
    /// Number of Stars.
    pub fn stars(&self) -> usize {
        self.shared.stars.len()
    }

    /// Fault injection: makes Star `star`'s actor fail, as a bug in it
    /// would. The Machine's root supervisor restarts it (its particles are
    /// not touched; their restart histories start afresh).
    ///
    /// # Errors
    ///
    /// [`FaultError::Forbidden`] from inside any particle's handler (a Star
    /// hosts every subtree's particles: only the Machine may fail one);
    /// [`FaultError::NoSuchStar`].
    pub fn crash_star(&self, star: usize, reason: &str) -> Result<(), crate::FaultError> {
        let caller = crate::stamp::sender();
        if !caller.is_root()
            || (self.user.is_some() && !self.may(crate::access::Privilege::Stop, &Point::root()))
        {
            return Err(crate::FaultError::Forbidden {
                caller,
                target: format!("star {star}"),
            });
        }
        let Some(slot) = self.shared.stars.get(star) else {
            return Err(crate::FaultError::NoSuchStar {
                star,
                stars: self.shared.stars.len(),
            });
        };
        slot.send(StarMsg::Fail(reason.to_string()));
        Ok(())
    }

    /// Runs `future` on Star `star`'s own thread (starting it if need
    /// be), beside the particles that run there: what it sends them and
    /// what they answer wakes no other thread. For work that talks to many
    /// particles of one Star at once, such as a WASM module's hot reload,
    /// which reloads each Star's guests from that Star's thread. The future
    /// is not a particle: what it sends is stamped as the Machine's.
    ///
    /// # Errors
    ///
    /// [`StarThreadError::NoSuchStar`]; [`StarThreadError::Unavailable`] if
    /// the thread cannot start or the Machine is shutting down.
    ///
    /// Through a CLI user's handle the future still runs as the Machine:
    /// a user's handle is for the daemon's own code, which never runs a
    /// user's.
    pub fn spawn_on_star<F>(
        &self,
        star: usize,
        future: F,
    ) -> Result<tokio::task::JoinHandle<F::Output>, crate::StarThreadError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self
            .shared
            .star_threads
            .handle(star, &self.shared.runtime)?;
        Ok(handle.spawn(future))
    }

    /// How many Star threads are running (see
    /// [`crate::MachineBuilder::star_threads`]): each starts with the first
    /// particle of its Star that runs on it, and all stop at shutdown.
    pub fn running_star_threads(&self) -> usize {
        self.shared.star_threads.started()
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
        self.shared.drivers.kinds()
    }

    /// The Registry, read-only: registering and unregistering are the
    /// Machine's business.
    pub fn registry(&self) -> Registry {
        let reader = self.clone();
        Registry::new(self.shared.registry.clone())
            .read_as(move |p| reader.may(crate::access::Privilege::Read, p))
    }

    /// A snapshot of the particle at `point`, if one lives there and this
    /// handle's visitor may read it (the privilege `read`).
    pub fn record(&self, point: &Point) -> Option<Record> {
        self.check_action(crate::access::Privilege::Read, point)
            .ok()?;
        self.shared.registry.record(point)
    }

    /// Subscribes to what the runtime does from now on (spawns, crashes,
    /// restarts, stops). A subscriber that falls behind by more than the
    /// builder's `event_capacity` loses the oldest. Every event, whoever
    /// subscribes: code that relays them to a user (the daemon) keeps
    /// those of Points the user may read ([`Machine::may`] with `read`).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        self.shared.events.emit(event);
    }

    /// Spawns a particle and waits until its `start` has succeeded.
    ///
    /// A particle at `a:b:c` is a child of the particle at `a:b`, which must
    /// be alive ([`SpawnError::NoParent`] otherwise); one-segment Points are
    /// top-level. A child goes on its parent's Star; top-level particles go
    /// round-robin.
    ///
    /// A `start` that fails is a crash like any other: it is restarted within
    /// the restart limit (the parent getting a notice each time), and this
    /// returns [`SpawnError::StartFailed`] only once the Star gives up.
    pub async fn spawn(
        &self,
        point: Point,
        kind: Kind,
        args: Body,
    ) -> Result<ParticleRef, SpawnError> {
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
    ) -> Result<ParticleRef, SpawnError> {
        let (tx, rx) = oneshot::channel();
        let lane = self.launch(point, None, kind, args, opts, Some(tx), false)?;
        wait_ready(lane.point(), rx).await?;
        Ok(lane)
    }

    /// Spawns a particle without waiting for its `start` (Erlang's `spawn`):
    /// waves sent to it meanwhile wait in its lane.
    pub fn spawn_nowait(
        &self,
        point: Point,
        kind: Kind,
        args: Body,
    ) -> Result<ParticleRef, SpawnError> {
        self.launch(
            point,
            None,
            kind,
            args,
            SpawnOptions::default(),
            None,
            false,
        )
    }

    /// [`Machine::spawn_nowait`] with placement and restart options.
    pub fn spawn_nowait_with(
        &self,
        point: Point,
        kind: Kind,
        args: Body,
        opts: SpawnOptions,
    ) -> Result<ParticleRef, SpawnError> {
        self.launch(point, None, kind, args, opts, None, false)
    }

    /// The Machine's default restart backoff, if any.
    pub(crate) fn default_backoff(&self) -> Option<hyperverse_supervisors::Backoff> {
        self.shared.limit.backoff.as_deref().copied()
    }

    /// The runtime particles run on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.shared.runtime
    }

    /// Wraps a cell in a handle.
    pub(crate) fn particle_ref(&self, cell: Arc<ParticleCell>) -> ParticleRef {
        ParticleRef {
            cell,
            deadlines: self.shared.deadlines.clone(),
            access: self.shared.access.clone(),
            user: self.user.clone(),
        }
    }

    /// Spawns a child of the supervisor particle `sup`: its restarts are
    /// the supervisor's to decide, not its Star's.
    pub(crate) fn launch_supervised(
        &self,
        point: Point,
        sup: &Arc<ParticleCell>,
        kind: Kind,
        args: Body,
        opts: SpawnOptions,
    ) -> Result<ParticleRef, SpawnError> {
        self.launch(point, Some(sup.clone()), kind, args, opts, None, true)
    }

    /// Counts a crash a supervisor particle handles, on the child's Star.
    pub(crate) fn count_crash(&self, star: usize) {
        self.shared.stars[star]
            .counters
            .crashes
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a restart a supervisor particle performs, on the child's Star.
    pub(crate) fn count_restart(&self, star: usize) {
        self.shared.stars[star]
            .counters
            .restarts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A handle for OTP's supervisor API on the supervisor particle at
    /// `point` (see [`SupervisorRef`]).
    pub fn supervisor(&self, point: &Point) -> SupervisorRef {
        SupervisorRef::new(self.clone(), point.clone())
    }

    /// Registers and launches one particle. `parent` is its parent's cell
    /// when the caller has it (a particle spawning a child), saving a lookup.
    /// A `supervised` particle is a child of a supervisor particle.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch(
        &self,
        point: Point,
        parent: Option<Arc<ParticleCell>>,
        kind: Kind,
        args: Body,
        opts: SpawnOptions,
        ready: Option<ReadyTx>,
        supervised: bool,
    ) -> Result<ParticleRef, SpawnError> {
        self.launch_as(point, parent, kind, args, opts, ready, supervised, false)
    }

    /// [`Machine::launch`]; a particle whose parent is not here may be
    /// admitted as the child of a parent on another Machine when
    /// `remote_parent` is set (the cluster's spawns) and the cluster knows
    /// the parent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch_as(
        &self,
        point: Point,
        parent: Option<Arc<ParticleCell>>,
        kind: Kind,
        args: Body,
        opts: SpawnOptions,
        ready: Option<ReadyTx>,
        supervised: bool,
        remote_parent: bool,
    ) -> Result<ParticleRef, SpawnError> {
        let sh = &*self.shared;
        if sh.down.load(Ordering::Acquire) {
            return Err(SpawnError::MachineDown);
        }
        if point.is_root() {
            return Err(SpawnError::Root);
        }
        if !remote_parent {
            let parent = point.parent().unwrap_or_else(Point::root);
            if let Err(visitor) = self.check_action(crate::access::Privilege::Spawn, &parent) {
                return Err(SpawnError::Denied {
                    visitor,
                    point,
                    parent,
                });
            }
        }
        if !opts.grants.is_empty() && !self.may_give(&opts.grants) {
            return Err(SpawnError::Denied {
                visitor: self.visitor(),
                parent: point.parent().unwrap_or_else(Point::root),
                point,
            });
        }
        let Some(driver) = sh.drivers.get(&kind) else {
            return Err(SpawnError::UnknownKind { point, kind });
        };
        let limit = opts.restart_limit.unwrap_or_else(|| sh.limit.clone());
        let lane = match opts.lane {
            Some(lane) => Some(lane),
            // A Driver is user code: a panic here fails this spawn only.
            None => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver.default_lane()
            })) {
                Ok(lane) => lane,
                Err(_) => {
                    return Err(SpawnError::StartFailed {
                        point,
                        reason: "its driver panicked choosing its lane limit".into(),
                    })
                }
            },
        };
        if lane.is_some_and(|l| l.capacity == 0) {
            return Err(SpawnError::BadLaneLimit { point });
        }
        if self.remote_for(&point).is_some() {
            // One particle per Point in the cluster: it lives elsewhere.
            return Err(SpawnError::AlreadyExists { point });
        }
        if let Err(e) = limit.check() {
            return Err(SpawnError::BadRestartLimit {
                point,
                reason: e.to_string(),
            });
        }
        let mut elsewhere = None;
        let parent = match (parent, point.depth()) {
            (Some(p), _) => Some(p),
            (None, 1) => None,
            (None, _) => {
                let parent_point = point.parent().unwrap_or_else(Point::root);
                match sh.registry.cell(&parent_point) {
                    Some(p) if p.status() != Status::Stopped => Some(p),
                    None if remote_parent && self.remote_for(&parent_point).is_some() => {
                        elsewhere = Some(parent_point);
                        None
                    }
                    _ => {
                        return Err(SpawnError::NoParent {
                            point,
                            parent: parent_point,
                        })
                    }
                }
            }
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
        let mut cell = ParticleCell::new(
            point.clone(),
            kind.clone(),
            star,
            parent.as_ref(),
            limit,
            opts.restart,
            sh.next_seq.fetch_add(1, Ordering::Relaxed),
            lane,
            supervised,
        )
        .with_grants(opts.grants);
        if let Some(parent) = elsewhere {
            cell = cell.with_remote_parent(parent);
        }
        let cell = Arc::new(cell);
        sh.registry.register(cell.clone()).map_err(|e| match e {
            RegistryError::Occupied { point } => SpawnError::AlreadyExists { point },
            RegistryError::NoParent { point, parent } => SpawnError::NoParent { point, parent },
        })?;
        self.tell_remote_registered(&point);
        sh.stars[star]
            .counters
            .spawned
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: targets::SPAWN, "particle spawned");
        self.emit(|| Event::Spawned { point, kind, star });
        let launch = Launch::new(
            Ctx {
                // The particle's own handle: never a user's.
                machine: self.own(),
                cell: cell.clone(),
            },
            args,
            ready,
        );
        // A Driver is user code: a panic in it must not leave a registered
        // particle that never runs (the dropped `Launch` ends it).
        if let Err(panic) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.launch(launch)))
        {
            tracing::error!(target: targets::SPAWN, panic = %crate::event::panic_text(&*panic), "a driver panicked");
        }
        if cell.never_ran() {
            // The Driver dropped its Launch: the particle never ran.
            return Err(SpawnError::StartFailed {
                point: cell.point().clone(),
                reason: "its driver did not run it".into(),
            });
        }
        Ok(self.particle_ref(cell))
    }

    /// Spawns a whole tree under `under` (use [`Point::root`] for a top-level
    /// tree) and waits until every particle in it has started. Every Point
    /// and Kind is checked before anything is spawned; if a spawn fails
    /// midway, exactly the particles it spawned are stopped again.
    pub async fn spawn_tree(
        &self,
        under: &Point,
        spec: &TreeSpec,
    ) -> Result<Vec<Point>, SpawnError> {
        let mut plan = Vec::new();
        spec.flatten(under, &mut plan)?;
        for p in &plan {
            if self.shared.drivers.get(&p.kind).is_none() {
                return Err(SpawnError::UnknownKind {
                    point: p.point.clone(),
                    kind: p.kind.clone(),
                });
            }
        }
        let mut spawned: Vec<(ParticleRef, ReadyRx)> = Vec::with_capacity(plan.len());
        let mut failed = None;
        for p in plan {
            let (tx, rx) = oneshot::channel();
            match self.launch(p.point, None, p.kind, p.args, p.options, Some(tx), false) {
                Ok(lane) => spawned.push((lane, rx)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut lanes = Vec::with_capacity(spawned.len());
        for (lane, rx) in spawned {
            if let Err(e) = wait_ready(lane.point(), rx).await {
                failed.get_or_insert(e);
            }
            lanes.push(lane);
        }
        if let Some(e) = failed {
            self.stop_cells(lanes.into_iter().map(|l| l.cell).collect())
                .await;
            return Err(e);
        }
        Ok(lanes.into_iter().map(|l| l.cell.point().clone()).collect())
    }

    /// Makes the particle at `watcher` monitor the one at `target`: the
    /// watcher gets exactly one [`crate::DownNotice`] when the target ends,
    /// at once if it already has (or never lived): see [`Ctx::monitor`].
    ///
    /// # Errors
    ///
    /// [`WaveError::Forbidden`] from a handler of a particle that is neither
    /// `watcher` nor one of its ancestors (down notices are never refused
    /// for room, so monitoring on another's behalf would grow its lane past
    /// any bound); [`WaveError::NoSuchParticle`] if no watcher lives there.
    pub fn monitor(&self, watcher: &Point, target: &Point) -> Result<MonitorRef, WaveError> {
        crate::stamp::may_act_on(watcher).map_err(|caller| WaveError::Forbidden {
            caller,
            point: watcher.clone(),
        })?;
        // A user's handle stamps `ROOT`: it acts on the watcher's behalf
        // only with `link` on it too.
        if self.user.is_some() {
            self.check_action(crate::access::Privilege::Link, watcher)
                .map_err(|visitor| WaveError::Denied {
                    visitor,
                    point: watcher.clone(),
                    privilege: crate::access::Privilege::Link,
                })?;
        }
        let watcher = self.resolve(watcher)?;
        Ok(self.monitor_cell(&watcher, target))
    }

    pub(crate) fn monitor_cell(&self, watcher: &Arc<ParticleCell>, target: &Point) -> MonitorRef {
        let r = MonitorRef::new(
            self.shared.next_seq.fetch_add(1, Ordering::Relaxed),
            target.clone(),
        );
        if self
            .check_action(crate::access::Privilege::Link, target)
            .is_err()
        {
            send_down(
                watcher,
                DownNotice {
                    target: target.clone(),
                    reason: DownReason::Denied,
                    monitor: r.clone(),
                },
            );
            return r;
        }
        let live = match self.shared.registry.cell(target) {
            Some(t) => {
                // Monitors belong to the watcher's incarnation (as to an
                // Erlang process): they go when it crashes or ends. Noted
                // first, so that a target ending at once finds it to forget.
                watcher.lane.note_watching(&t, r.id());
                let added = t.lane.add_monitor(r.id(), Arc::downgrade(watcher));
                if !added {
                    watcher.lane.forget_watching(r.id());
                }
                added
            }
            // On another Machine: the cluster watches it.
            None => self
                .remote_for(target)
                .is_some_and(|remote| remote.monitor(watcher.point(), &r)),
        };
        if !live {
            send_down(
                watcher,
                DownNotice {
                    target: target.clone(),
                    reason: DownReason::NoSuchParticle,
                    monitor: r.clone(),
                },
            );
        }
        r
    }

    /// Links two particles, both ways (see [`crate::ExitSignal`]).
    pub(crate) fn link(&self, me: &Arc<ParticleCell>, other: &Point) -> Result<(), WaveError> {
        if other == me.point() {
            // Erlang's `link(self())`: nothing to do.
            return Ok(());
        }
        self.check_action(crate::access::Privilege::Link, other)
            .map_err(|visitor| WaveError::Denied {
                visitor,
                point: other.clone(),
                privilege: crate::access::Privilege::Link,
            })?;
        let other = match self.resolve(other) {
            Ok(o) => o,
            Err(e) => {
                // On another Machine: the cluster links them.
                return match self.remote_for(other) {
                    Some(remote) if remote.link(me.point(), other) => Ok(()),
                    _ => Err(e),
                };
            }
        };
        if other.has_ended() || !other.lane.add_link(me) {
            return Err(WaveError::NoSuchParticle {
                point: other.point().clone(),
            });
        }
        me.lane.add_link(&other);
        Ok(())
    }

    /// Removes a link, both ways.
    pub(crate) fn unlink(&self, me: &Arc<ParticleCell>, other: &Point) {
        if let Some(other) = self.shared.registry.cell(other) {
            other.lane.remove_link(me);
            me.lane.remove_link(&other);
        } else if let Some(remote) = self.shared.remote.get() {
            remote.unlink(me.point(), other);
        }
    }

    /// Removes the monitors `cell`'s incarnation set on others: it ends.
    pub(crate) fn drop_monitors(&self, cell: &ParticleCell) {
        for (target, r) in cell.lane.take_watching() {
            if let Some(target) = target.upgrade() {
                target.lane.remove_monitor(r);
            }
        }
    }

    /// Sends an exit signal down every link of `cell`'s incarnation, which
    /// ends (the links go with it).
    pub(crate) fn fire_links(&self, cell: &ParticleCell, reason: &str, normal: bool) {
        for other in cell.lane.take_links() {
            let Some(other) = other.upgrade() else {
                continue;
            };
            other.lane.remove_link(cell);
            let _ = other.lane.push(Letter::Exit(ExitSignal {
                from: cell.point().clone(),
                reason: reason.to_string(),
                normal,
            }));
        }
        if let Some(remote) = self.shared.remote.get() {
            remote.exited(cell.point(), reason, normal);
        }
    }

    /// Removes a monitor; true if it had not fired yet (it never will
    /// now). Only its watcher, an ancestor of the watcher or the Machine
    /// may (a `MonitorRef` is plain data: anyone could make one); through
    /// a CLI user's handle, with `link` on the watcher.
    pub fn demonitor(&self, monitor: &MonitorRef) -> bool {
        if self.cell_at(monitor.target()).is_none() {
            if let Some(remote) = self.shared.remote.get() {
                return remote.demonitor(monitor);
            }
        }
        let Some(target) = self.shared.registry.cell(monitor.target()) else {
            return false;
        };
        let Some(watcher) = target
            .lane
            .monitor_watcher(monitor.id())
            .and_then(|w| w.upgrade())
        else {
            return false;
        };
        if crate::stamp::may_act_on(watcher.point()).is_err()
            || (self.user.is_some()
                && self
                    .check_action(crate::access::Privilege::Link, watcher.point())
                    .is_err())
        {
            return false;
        }
        let Some(watcher) = target.lane.remove_monitor(monitor.id()) else {
            return false;
        };
        // The watcher forgets it too: nothing of it is left on either side.
        if let Some(watcher) = watcher.upgrade() {
            watcher.lane.forget_watching(monitor.id());
        }
        true
    }

    /// A handle on the particle at `point`, for repeated sends without
    /// lookups (see [`ParticleRef`]).
    ///
    /// # Errors
    ///
    /// [`WaveError::NoSuchParticle`] if nothing lives there
    /// ([`WaveError::MachineDown`] once the Machine is shut down);
    /// [`WaveError::Stopped`] if the particle there has ended.
    pub fn particle(&self, point: &Point) -> Result<ParticleRef, WaveError> {
        let cell = self.resolve(point)?;
        if cell.has_ended() {
            return Err(WaveError::Stopped {
                point: point.clone(),
            });
        }
        Ok(self.particle_ref(cell))
    }

    /// The cell of the particle at `point`, if one lives there.
    pub(crate) fn cell_at(&self, point: &Point) -> Option<Arc<ParticleCell>> {
        self.shared.registry.cell(point)
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

    /// Sends `message` one way to the particle at `to`: a typed
    /// [`crate::Message`] or an untyped `(method, body)` pair. Its sender
    /// is stamped by the runtime: the particle whose handler calls this, or
    /// the Machine itself ([`Point::root`]) from anywhere else.
    ///
    /// # Errors
    ///
    /// The message handed back ([`SendError::into_inner`]) with
    /// [`WaveError::NoSuchParticle`] if nothing lives at `to`
    /// ([`WaveError::MachineDown`] once the Machine is shut down), or as
    /// [`ParticleRef::signal`]: `Stopped`, `LaneFull`.
    ///
    /// # Cancel safety
    ///
    /// Not async: the message is queued, or handed back, before this
    /// returns.
    pub fn signal<S: Sendable>(&self, to: &Point, message: S) -> Result<(), SendError<S::Back>> {
        self.signal_from(self.stamp(), to, message)
    }

    /// [`Machine::signal`] from a sender the runtime stamped.
    pub(crate) fn signal_from<S: Sendable>(
        &self,
        from: Point,
        to: &Point,
        message: S,
    ) -> Result<(), SendError<S::Back>> {
        match self.shared.registry.cell(to) {
            Some(cell) => signal_cell(&cell, &self.shared.access, from, self.origin(), message),
            None => match self.remote_for(to) {
                Some(_) if self.user_stays_home() => Err(SendError::new(
                    self.user_abroad(to, crate::access::Privilege::Send),
                    S::back(message.parcel(), from, to.clone()),
                )),
                Some(remote) => remote::signal::<S>(&**remote, from, to, message),
                None => Err(self.unroutable::<S>(from, to, message)),
            },
        }
    }

    /// Whether this handle is a user's that may not send abroad: every
    /// user but a superuser (the daemon's owner, as trusted as the
    /// Machine, whose voice its waves would leave with).
    fn user_stays_home(&self) -> bool {
        self.user.is_some() && !self.may_as_superuser()
    }

    /// A CLI user's wave to another Machine: refused, counted and logged.
    /// A user is this Machine's: its wave would leave as the Machine's own
    /// (the peer knows no users), with every right a peer gives it.
    #[cold]
    fn user_abroad(&self, to: &Point, want: crate::access::Privilege) -> WaveError {
        let from = self.stamp();
        let visit = self.visit_of(&from);
        self.shared
            .access
            .denied(&visit, to, want, crate::access::Judged::of(want));
        WaveError::Denied {
            visitor: visit.visitor(),
            point: to.clone(),
            privilege: want,
        }
    }

    /// The attached Remote, when it hosts `point` (see [`crate::remote`]).
    #[inline]
    pub(crate) fn remote_for(&self, point: &Point) -> Option<&Arc<dyn Remote>> {
        self.shared.remote.get().filter(|r| r.hosts(point))
    }

    /// Tells the attached Remote that a particle was registered at `point`.
    pub(crate) fn tell_remote_registered(&self, point: &Point) {
        if let Some(r) = self.shared.remote.get() {
            r.registered(point);
        }
    }

    /// A send to a Point where nothing lives, refused with the message.
    #[cold]
    fn unroutable<S: Sendable>(&self, from: Point, to: &Point, message: S) -> SendError<S::Back> {
        let error = self
            .resolve(to)
            .err()
            .unwrap_or(WaveError::NoSuchParticle { point: to.clone() });
        SendError::new(error, S::back(message.parcel(), from, to.clone()))
    }

    /// Sends `message` one way to the particle at `to`, waiting for room
    /// if its lane is bounded with [`crate::WhenFull::Wait`]; see
    /// [`ParticleRef::signal_waiting`].
    ///
    /// # Errors
    ///
    /// As [`Machine::signal`], and the particle ending while this waits.
    ///
    /// # Cancel safety
    ///
    /// As [`ParticleRef::signal_waiting`]: a message queued stays queued; one
    /// still waiting for room is dropped with the future.
    pub fn signal_waiting<S: Sendable>(
        &self,
        to: &Point,
        message: S,
    ) -> impl Future<Output = Result<(), SendError<S::Back>>> + Send + 'static {
        self.signal_waiting_from(self.stamp(), to, message)
    }

    /// [`Machine::signal_waiting`] from a sender the runtime stamped.
    pub(crate) fn signal_waiting_from<S: Sendable>(
        &self,
        from: Point,
        to: &Point,
        message: S,
    ) -> impl Future<Output = Result<(), SendError<S::Back>>> + Send + 'static {
        let sent = match self.shared.registry.cell(to) {
            Some(cell) => Ok(Some(signal_waiting_cell(
                cell,
                &self.shared.access,
                from,
                self.origin(),
                message,
            ))),
            // A remote lane does not push back yet: the wave is queued on
            // the link to its Machine.
            None => match self.remote_for(to) {
                Some(_) if self.user_stays_home() => Err(SendError::new(
                    self.user_abroad(to, crate::access::Privilege::Send),
                    S::back(message.parcel(), from, to.clone()),
                )),
                Some(remote) => remote::signal::<S>(&**remote, from, to, message).map(|()| None),
                None => Err(self.unroutable::<S>(from, to, message)),
            },
        };
        async move {
            match sent? {
                Some(waiting) => waiting.await,
                None => Ok(()),
            }
        }
    }

    /// Sends `message` as a request to the particle at `to` and returns the
    /// [`Ask`] to await for its answer (`M::Reply` for a typed
    /// [`crate::Message`], a [`Body`] for an untyped pair), within the
    /// builder's `request_timeout` unless [`Ask::within`] says otherwise.
    /// Its sender is stamped as for [`Machine::signal`], so a handler
    /// asking its own parent this way is refused exactly as through
    /// [`Ctx::ask`] while the parent stops or restarts its children.
    ///
    /// # Errors
    ///
    /// See [`Ask`]; [`WaveError::NoSuchParticle`] (or
    /// [`WaveError::MachineDown`]) if nothing lives at `to`.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this is called; dropping the `Ask` does
    /// not withdraw it (the particle still handles it, the answer is
    /// dropped).
    pub fn ask<S: Sendable>(&self, to: &Point, message: S) -> Ask<S::Reply> {
        self.ask_from(self.stamp(), to, message)
    }

    /// [`Machine::ask`] from a sender the runtime stamped.
    pub(crate) fn ask_from<S: Sendable>(
        &self,
        from: Point,
        to: &Point,
        message: S,
    ) -> Ask<S::Reply> {
        match self.resolve(to) {
            Ok(cell) => ask_cell(
                &cell,
                &self.shared.access,
                from,
                self.origin(),
                message,
                &self.shared.deadlines,
                self.shared.request_timeout,
            ),
            Err(e) => match self.remote_for(to) {
                Some(_) if self.user_stays_home() => Ask::failed(
                    self.user_abroad(to, crate::access::Privilege::Ask),
                    <S as crate::send::sealed::Sealed>::open,
                ),
                Some(remote) => remote::ask::<S>(
                    &**remote,
                    from,
                    to,
                    message,
                    &self.shared.deadlines,
                    self.shared.request_timeout,
                ),
                None => Ask::failed(e, <S as crate::send::sealed::Sealed>::open),
            },
        }
    }

    /// How long an [`Ask`] waits unless told otherwise (the builder's
    /// `request_timeout`).
    pub fn request_timeout(&self) -> Duration {
        self.shared.request_timeout
    }

    /// Sends trusted control to the particle at `to` and waits up to
    /// `timeout` for the answer its [`crate::Particle::control`] hook
    /// returns. Control is a letter of its own kind, not a wave: no wave,
    /// whatever its method, reaches that hook, so a Driver can take control
    /// from in-process Rust code (a WASM guest's ask reply) that no
    /// particle or guest can forge by sending a wave.
    ///
    /// Its sender is stamped as for [`Machine::signal`] and handed to the
    /// hook ([`crate::Control::from`]): the hook decides what to honour from
    /// whom (a WASM ask reply is honoured only from the Machine itself). The
    /// body is the Driver's own encoding; control is queued in order with
    /// the particle's waves, when this is called, and bounded lanes treat
    /// it as a request.
    ///
    /// # Errors
    ///
    /// As [`Machine::ask`]: `NoSuchParticle` (or `MachineDown`),
    /// `Timeout`, `Crashed` (the hook failed: a crash of the particle,
    /// reported at once), `Stopped`, `CallingSelf`, `LaneFull`.
    ///
    /// # Cancel safety
    ///
    /// As [`Machine::ask`]: dropping the future does not withdraw
    /// control already queued; the hook still runs and its answer is
    /// dropped.
    pub fn control(
        &self,
        to: &Point,
        body: impl Into<Body>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Body, WaveError>> + Send + 'static {
        // Driver control is for in-process code: a user's handle needs
        // to be a superuser's (the privilege named is `stop`, the nearest:
        // control steers a particle's Driver).
        let user_denied = self.user.is_some()
            && !self.may_as_superuser()
            && self
                .check_action(crate::access::Privilege::Stop, &Point::root())
                .is_err();
        let sent = if user_denied {
            Err(WaveError::Denied {
                visitor: self.visitor(),
                point: to.clone(),
                privilege: crate::access::Privilege::Stop,
            })
        } else {
            self.resolve(to).map(|cell| {
                self.particle_ref(cell)
                    .control(ControlKind::Driver(body.into()), timeout)
            })
        };
        async move {
            match sent?.await? {
                ControlReply::Driver(body) => Ok(body),
                // The hook's answer is the only reply to Driver control.
                ControlReply::Supervisor(_) => Ok(Body::empty()),
            }
        }
    }
}

/// Queues a down notice for a watcher (dropped if the watcher has ended).
pub(crate) fn send_down(watcher: &ParticleCell, notice: DownNotice) {
    let _ = watcher.lane.push(Letter::Down(notice));
}

pub(crate) async fn wait_ready(point: &Point, rx: ReadyRx) -> Result<(), SpawnError> {
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
