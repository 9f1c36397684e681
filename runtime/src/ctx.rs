//! What a particle can do, through its [`Ctx`]: who it is; send, spawn,
//! monitor, link and stop.

use crate::{
    Ask, Body, Ctx, Kind, Machine, MonitorRef, ParticleRef, Point, SendError, Sendable, SpawnError,
    SpawnOptions, WaveError,
};

impl Ctx {
    /// Whether this particle, judged as a confined visitor (one the open
    /// policy gives nothing: a WASM guest), may do `want` to `target`:
    /// what it owns, its parent and spawn grants for waves, and the rules'
    /// grants. For a Driver running untrusted code, which checks its
    /// guest's effects with the same rules the receiving side applies; a
    /// refusal is counted and logged as one.
    pub fn confined_may(&self, want: crate::access::Privilege, target: &Point) -> bool {
        let access = &self.machine.shared.access;
        let visit = crate::access::Visit {
            who: crate::access::Who::Particle(self.cell.point()),
            kind: Some(self.cell.kind()),
            via: None,
            confined: true,
            grants: self.cell.grants(),
        };
        if access.fast(&visit, target, want) || access.slow(&visit, target, want) {
            return true;
        }
        access.denied(&visit, target, want, crate::access::Judged::of(want));
        false
    }

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
    /// below it; empty unless granted. Kept across restarts. The access
    /// rules let it send to and ask them (see [`crate::access`]).
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
    /// `NoSuchParticle` (or `MachineDown`), `Stopped`, `LaneFull`; and
    /// [`WaveError::Stopped`] naming this particle if it has ended (a `Ctx`
    /// kept past its particle's end cannot send as its Point, which may
    /// be another particle's by then).
    ///
    /// # Cancel safety
    ///
    /// Not async: the message is queued, or handed back, before this
    /// returns.
    pub fn signal<S: Sendable>(&self, to: &Point, message: S) -> Result<(), SendError<S::Back>> {
        if self.cell.has_ended() {
            return Err(self.ended::<S>(to, message));
        }
        self.machine.signal_from(self.me().clone(), to, message)
    }

    /// A send from a particle that has ended, refused with the message.
    #[cold]
    fn ended<S: Sendable>(&self, to: &Point, message: S) -> SendError<S::Back> {
        let stopped = WaveError::Stopped {
            point: self.me().clone(),
        };
        SendError::new(
            stopped,
            S::back(message.parcel(), self.me().clone(), to.clone()),
        )
    }

    /// Sends `message` one way, waiting for room if the target's lane is
    /// bounded with [`crate::WhenFull::Wait`]; see
    /// [`ParticleRef::signal_waiting`].
    ///
    /// # Errors
    ///
    /// As [`Ctx::signal`], and the target ending while this waits. A
    /// particle cannot wait for room in its own lane (only its return
    /// makes room): a full own lane is `LaneFull` at once.
    ///
    /// # Cancel safety
    ///
    /// As [`ParticleRef::signal_waiting`].
    pub fn signal_waiting<S: Sendable>(
        &self,
        to: &Point,
        message: S,
    ) -> impl std::future::Future<Output = Result<(), SendError<S::Back>>> + Send + 'static {
        let sent = if self.cell.has_ended() {
            Err(self.ended::<S>(to, message))
        } else {
            Ok(self
                .machine
                .signal_waiting_from(self.me().clone(), to, message))
        };
        async move { sent?.await }
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
    /// other; and `Stopped` naming this particle if it has ended (see
    /// [`Ctx::signal`]).
    ///
    /// # Cancel safety
    ///
    /// Dropping the `Ask` does not withdraw a request already queued: the
    /// target still handles it, and the answer is dropped.
    pub fn ask<S: Sendable>(&self, to: &Point, message: S) -> Ask<S::Reply> {
        if self.cell.has_ended() {
            let stopped = WaveError::Stopped {
                point: self.me().clone(),
            };
            return Ask::failed(stopped, <S as crate::send::sealed::Sealed>::open);
        }
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

    /// How many children this particle has now (a count, not a copy of
    /// the list: for a particle that bounds how many it spawns).
    pub fn child_count(&self) -> usize {
        self.cell.child_count()
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
