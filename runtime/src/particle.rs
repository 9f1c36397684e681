//! The Particle trait: what a user writes to make a kind of actor.

use std::future::Future;
use std::sync::Arc;

use crate::cell::ParticleCell;
use crate::{
    Ask, Body, Control, CrashNotice, DownNotice, ExitSignal, Kind, Machine, Messages, MonitorRef,
    ParticleRef, Point, SendError, Sendable, SpawnError, SpawnOptions, Wave, WaveError,
};

/// What a handler returns on failure. Any error converts into it with `?`;
/// its text becomes the crash reason. Returning one is a crash, like a panic.
pub type ParticleError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A kind of supervised actor, in the spirit of ractor's `Actor`: the
/// particle value is shared by every particle of its Kind and holds no
/// per-particle data; each particle's data is its explicit `State`.
///
/// Each particle handles one wave at a time, in its own task. A panic or an
/// `Err` from `start`, `handle` or `crash_notice` is a crash: the Star
/// restarts the particle (a fresh `start` with the same spawn arguments,
/// same lane, queued waves kept) and its parent gets a [`CrashNotice`]. A
/// child of a supervisor particle (see [`crate::SupervisorSpec`]) is
/// restarted by that supervisor instead, per its strategy; returning an
/// [`crate::ExitReason`] as the error (`Err(ExitReason::Shutdown.into())`)
/// exits with that reason, as Erlang's `exit/1` does.
///
/// ```
/// use hyperverse_runtime::*;
///
/// /// Counts "add" signals; answers "get" requests with the count.
/// struct Counter;
///
/// impl Particle for Counter {
///     type State = u64;
///
///     async fn start(&self, _ctx: &Ctx, args: &Body) -> Result<u64, ParticleError> {
///         Ok(args.as_u64().unwrap_or(0))
///     }
///
///     async fn handle(&self, _ctx: &Ctx, count: &mut u64, wave: Wave) -> Result<Body, ParticleError> {
///         match &*wave.method {
///             "add" => *count += 1,
///             "get" => return Ok(Body::from_u64(*count)),
///             "crash" => return Err("asked to crash".into()),
///             other => return Err(format!("unknown method {other}").into()),
///         }
///         Ok(Body::empty())
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("counter", Counter).build().await.unwrap();
/// let at: Point = "counter".parse().unwrap();
/// machine.spawn(at.clone(), Kind::new("counter"), Body::from_u64(10)).await.unwrap();
/// machine.signal(&at, ("add", Body::empty())).unwrap();
/// let reply = machine.ask(&at, ("get", Body::empty())).await.unwrap();
/// assert_eq!(reply.as_u64(), Some(11));
/// machine.shutdown().await;
/// # }
/// ```
pub trait Particle: Send + Sync + 'static {
    /// The particle's own data, made by `start` and handed to every handler.
    type State: Send + 'static;

    /// True if its `stop` stops its children itself, in an order of its
    /// own (a supervisor: reverse start order, each within its shutdown);
    /// the runtime then stops whatever is left after `stop` returns. By
    /// default children are stopped before `stop` runs.
    const STOPS_OWN_CHILDREN: bool = false;

    /// Makes a fresh state from the spawn arguments; runs at spawn and at every restart.
    fn start(
        &self,
        ctx: &Ctx,
        args: &Body,
    ) -> impl Future<Output = Result<Self::State, ParticleError>> + Send;

    /// The typed messages this particle handles, each with a
    /// [`crate::Handler`]: `messages.on::<Add>().on::<Get>();`. A typed
    /// message of a declared type goes to its handler as the value itself;
    /// a wave whose method is a declared message's is decoded and goes to
    /// the same handler; everything else goes to [`Particle::handle`]. The
    /// default declares none.
    fn messages(messages: &mut Messages<'_, Self>)
    where
        Self: Sized,
    {
        let _ = messages;
    }

    /// Handles one wave (or a typed message of a type not declared in
    /// [`Particle::messages`], encoded). For a request, the returned body
    /// is the reply; for a signal it is dropped. The default refuses every
    /// wave as a crash, as a `gen_server` does a message it has no clause
    /// for: a particle of typed messages only need not write it.
    fn handle(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        wave: Wave,
    ) -> impl Future<Output = Result<Body, ParticleError>> + Send {
        let _ = (ctx, state);
        async move { Err(format!("no handler for method `{}`", wave.method).into()) }
    }

    /// A child crashed (its restart, or the Star giving up on it, is already
    /// decided: see `notice.gave_up`). The default ignores it; a
    /// supervisor-like particle reacts here.
    fn crash_notice(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        notice: CrashNotice,
    ) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let _ = (ctx, state, notice);
        async { Ok(()) }
    }

    /// A particle this one monitors is down (see [`Ctx::monitor`]). The
    /// default ignores it.
    fn down(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        notice: DownNotice,
    ) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let _ = (ctx, state, notice);
        async { Ok(()) }
    }

    /// A linked particle ended and this one traps exits (see
    /// [`Ctx::trap_exits`]); without trapping, an abnormal exit signal
    /// crashes this particle instead and a normal one is ignored. The
    /// default ignores it.
    fn exit_signal(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        signal: ExitSignal,
    ) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let _ = (ctx, state, signal);
        async { Ok(()) }
    }

    /// Trusted control from in-process Rust code, sent with
    /// [`Machine::control`]: a letter of its own kind, which no wave can
    /// produce, whatever its method. For Drivers whose particles take
    /// orders from their host, such as a WASM module's hot reload.
    ///
    /// `control.from` is stamped by the runtime: [`Point::root`] if the
    /// Machine itself sent it (code outside any handler), otherwise the
    /// particle whose handler did. Decide here what to honour from whom.
    /// The returned body answers the sender; an `Err` (or a panic) is a
    /// crash, as in `handle`, and the sender gets
    /// [`WaveError::Crashed`]. The default ignores the control and answers
    /// with an empty body.
    fn control(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        control: Control,
    ) -> impl Future<Output = Result<Body, ParticleError>> + Send {
        let _ = (ctx, state, control);
        async { Ok(Body::empty()) }
    }

    /// The particle is stopping normally (not after a crash).
    fn stop(&self, ctx: &Ctx, state: Self::State) -> impl Future<Output = ()> + Send {
        let _ = (ctx, state);
        async {}
    }
}

/// A particle's view of the Machine: who it is, and how to send, spawn and stop.
#[derive(Clone)]
pub struct Ctx {
    pub(crate) machine: Machine,
    pub(crate) cell: Arc<ParticleCell>,
}

impl Ctx {
    /// This particle's Point.
    pub fn me(&self) -> &Point {
        self.cell.point()
    }

    /// This particle's parent, if it has one (no lookup, no allocation).
    pub fn parent(&self) -> Option<&Point> {
        self.cell.parent()
    }

    /// The Points outside its own subtree its spawn granted it
    /// ([`SpawnOptions::grants`]), each covering itself and everything
    /// below it; empty unless granted. Kept across restarts. A stopgap
    /// until access rules on Points replace it.
    pub fn grants(&self) -> &[Point] {
        self.cell.grants()
    }

    /// The Star that hosts this particle.
    pub fn star(&self) -> usize {
        self.cell.star()
    }

    /// This particle's Kind.
    pub fn kind(&self) -> &Kind {
        self.cell.kind()
    }

    /// How many times this particle has been restarted.
    pub fn restarts(&self) -> u32 {
        self.cell.restarts()
    }

    /// The Machine it lives on.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Sends `message` one way from this particle to the particle at `to`:
    /// a typed [`crate::Message`] or an untyped `(method, body)` pair.
    ///
    /// # Errors
    ///
    /// As [`Machine::signal`]: the message handed back with
    /// `NoSuchParticle` (or `MachineDown`), `Stopped`, `LaneFull`.
    pub fn signal<S: Sendable>(&self, to: &Point, message: S) -> Result<(), SendError<S::Back>> {
        self.machine.signal_from(self.me().clone(), to, message)
    }

    /// Sends `message` one way, waiting for room if the target's lane is
    /// bounded with [`crate::WhenFull::Wait`]; see
    /// [`ParticleRef::signal_waiting`].
    ///
    /// # Errors
    ///
    /// As [`Ctx::signal`], and the target ending while this waits.
    ///
    /// # Cancel safety
    ///
    /// As [`ParticleRef::signal_waiting`].
    pub fn signal_waiting<S: Sendable>(
        &self,
        to: &Point,
        message: S,
    ) -> impl std::future::Future<Output = Result<(), SendError<S::Back>>> + Send + 'static {
        self.machine.signal_waiting(to, message)
    }

    /// Sends `message` as a request from this particle to the particle at
    /// `to` and returns the [`Ask`] to await for its answer, within the
    /// Machine's request timeout unless [`Ask::within`] says otherwise.
    /// The request is queued when this is called.
    ///
    /// # Errors
    ///
    /// See [`Ask`]; in particular a request to this particle's parent (or
    /// any ancestor) while that parent stops or restarts its children is
    /// refused with [`WaveError::Stopped`], so that neither waits for the
    /// other.
    ///
    /// # Cancel safety
    ///
    /// Dropping the `Ask` does not withdraw a request already queued: the
    /// target still handles it, and the answer is dropped.
    pub fn ask<S: Sendable>(&self, to: &Point, message: S) -> Ask<S::Reply> {
        self.machine.ask_from(self.me().clone(), to, message)
    }

    /// A handle on the particle at `to`, for repeated sends without
    /// lookups.
    ///
    /// # Errors
    ///
    /// As [`Machine::particle`].
    pub fn particle(&self, to: &Point) -> Result<ParticleRef, WaveError> {
        self.machine.particle(to)
    }

    /// Spawns a child named `name` under this particle without waiting for
    /// its `start` (waves sent to it meanwhile wait in its lane). It goes on
    /// this particle's Star, and ends when this particle ends or restarts.
    ///
    /// # Errors
    ///
    /// As [`Machine::spawn`], but for `StartFailed` (this does not wait).
    pub fn spawn_child(
        &self,
        name: &str,
        kind: &Kind,
        args: Body,
    ) -> Result<ParticleRef, SpawnError> {
        self.spawn_child_with(name, kind, args, SpawnOptions::default())
    }

    /// [`Ctx::spawn_child`] with placement and restart options.
    ///
    /// # Errors
    ///
    /// As [`Ctx::spawn_child`].
    pub fn spawn_child_with(
        &self,
        name: &str,
        kind: &Kind,
        args: Body,
        opts: SpawnOptions,
    ) -> Result<ParticleRef, SpawnError> {
        let point = self.me().child(name)?;
        self.machine.launch(
            point,
            Some(self.cell.clone()),
            kind.clone(),
            args,
            opts,
            None,
            false,
        )
    }

    /// Monitors `target`: this particle gets exactly one [`DownNotice`] (in
    /// [`Particle::down`]) when it ends, at once if it already has.
    pub fn monitor(&self, target: &Point) -> MonitorRef {
        self.machine.monitor_cell(&self.cell, target)
    }

    /// Removes a monitor; true if it had not fired yet (it never will now).
    pub fn demonitor(&self, monitor: &MonitorRef) -> bool {
        self.machine.demonitor(monitor)
    }

    /// Links this particle with `other`, both ways (see [`ExitSignal`]): when
    /// either crashes, the other gets an exit signal. A Point with no live
    /// particle is [`WaveError::NoSuchParticle`].
    pub fn link(&self, other: &Point) -> Result<(), WaveError> {
        self.machine.link(&self.cell, other)
    }

    /// Removes a link, both ways.
    pub fn unlink(&self, other: &Point) {
        self.machine.unlink(&self.cell, other)
    }

    /// Makes exit signals from links reach [`Particle::exit_signal`] instead
    /// of crashing this particle (Erlang's `trap_exit`). Reset at every
    /// restart, so set it in `start`.
    pub fn trap_exits(&self, on: bool) {
        self.cell.set_traps_exits(on);
    }

    /// Stops this particle normally once the current wave is handled.
    pub fn stop(&self) {
        self.cell.lane.request_stop();
    }

    /// Records the version of the code this particle runs, shown as
    /// [`crate::Record::code_version`] (0, the default, means not
    /// versioned). For Drivers of versioned code, such as WASM modules: set
    /// it in `start` and again after a hot reload. It is not reset by a
    /// restart; the next `start` sets it again.
    pub fn set_code_version(&self, version: u64) {
        self.cell.set_code_version(version);
    }

    /// The version last recorded with [`Ctx::set_code_version`] (0: none).
    pub fn code_version(&self) -> u64 {
        self.cell.code_version()
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("me", self.me()).finish()
    }
}
