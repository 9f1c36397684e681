//! A handle on one particle: what `spawn` returns, and what
//! [`crate::Machine::particle`] and [`crate::Ctx::particle`] resolve.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::access::{Access, Privilege};
use crate::ask::{wait_for_room, Ask};
use crate::cell::ParticleCell;
use crate::control::{ControlKind, ControlLetter, ControlReply, ControlRx};
use crate::deadline::Deadlines;
use crate::lane::{deliver, refusal_error, Letter, Refusal};
use crate::machine::{admit, Origin};
use crate::send::{self, sealed::Sealed, SendError, Sendable};
use crate::stamp::sender;
use crate::{Kind, LaneLimit, Point, Status, WaveError};

/// A handle on one particle: send to it without a Registry lookup, and see
/// how it is doing.
///
/// Keep the one [`crate::Machine::spawn`] returns, or resolve one with
/// [`crate::Machine::particle`] (or [`crate::Ctx::particle`]), and send as
/// often as you like: it stays valid across the particle's restarts (its
/// lane, and what waits in it, outlive a crash). It is cheap to clone.
///
/// It speaks the same verbs as the Machine and a particle's [`crate::Ctx`]:
/// [`ParticleRef::signal`] and [`ParticleRef::ask`], with a typed
/// [`crate::Message`] or an untyped `(method, body)` pair. It takes no
/// sender: what is sent through it is from the particle whose handler
/// sends it, or from the Machine ([`Point::root`]) when sent from anywhere
/// else.
///
/// ```
/// # use hyperverse_runtime::*;
/// # struct Echo;
/// # impl Particle for Echo {
/// #     type State = ();
/// #     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
/// #     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
/// #         assert!(w.from.is_root());
/// #         Ok(w.body)
/// #     }
/// # }
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("echo", Echo).build().await.unwrap();
/// let echo = machine.spawn("echo".parse().unwrap(), "echo".into(), Body::empty()).await.unwrap();
/// let reply = echo.ask(("ping", "hello")).await.unwrap();
/// assert_eq!(reply.as_bytes(), b"hello");
/// assert_eq!(echo.status(), Status::Ready);
/// assert_eq!(echo.restarts(), 0);
/// machine.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct ParticleRef {
    pub(crate) cell: Arc<ParticleCell>,
    /// The Machine's deadlines (and its request timeout, for `ask`).
    pub(crate) deadlines: Arc<Deadlines>,
    /// The Machine's access rules, judged as each wave enters the lane.
    pub(crate) access: Arc<Access>,
    /// The CLI user whose handle resolved it ([`crate::Machine::as_user`]):
    /// its waves are judged as that user's.
    pub(crate) user: Option<Arc<str>>,
}

impl ParticleRef {
    /// The origin of this handle's waves.
    fn origin(&self) -> Origin<'_> {
        match &self.user {
            Some(u) => Origin::User(u),
            None => Origin::Local,
        }
    }

    /// The Point it lives at.
    pub fn point(&self) -> &Point {
        self.cell.point()
    }

    /// Its Kind.
    pub fn kind(&self) -> &Kind {
        self.cell.kind()
    }

    /// Its parent's Point, if it has a parent.
    pub fn parent(&self) -> Option<&Point> {
        self.cell.parent()
    }

    /// The Star that hosts it.
    pub fn star(&self) -> usize {
        self.cell.star()
    }

    /// Where it is in its life now.
    pub fn status(&self) -> Status {
        self.cell.status()
    }

    /// How many times it has been restarted.
    pub fn restarts(&self) -> u32 {
        self.cell.restarts()
    }

    /// True once it has ended for good (stopped, or given up): this handle
    /// then only gets [`WaveError::Stopped`]. A particle spawned again at
    /// the same Point is another particle, with a handle of its own.
    pub fn has_ended(&self) -> bool {
        self.cell.has_ended()
    }

    /// Which spawn made it: unique on its Machine and increasing, so a
    /// particle spawned again at the same Point has a larger one.
    pub fn spawn_seq(&self) -> u64 {
        self.cell.spawn_seq()
    }

    /// Its restart type (when its Star restarts it).
    pub fn restart_type(&self) -> hyperverse_supervisors::Restart {
        self.cell.restart_type()
    }

    /// The Points outside its subtree its spawn granted it (see
    /// [`crate::SpawnOptions::grants`]).
    pub fn grants(&self) -> &[Point] {
        self.cell.grants()
    }

    /// True while an injected crash waits to be taken (for fault kits).
    #[doc(hidden)]
    pub fn crash_pending(&self) -> bool {
        self.cell.crash_pending()
    }

    /// Letters waiting in its lane (not counting a batch it already took).
    pub fn queued(&self) -> usize {
        self.cell.queued()
    }

    /// Its lane's load: letters waiting and letters taken so far, read at
    /// one instant. Sample `taken` twice for a rate (what `hyperverse top`
    /// shows as waves/s); it counts every letter the particle's task took
    /// off its lane over all its incarnations (waves, requests, notices).
    pub fn load(&self) -> crate::LaneLoad {
        self.cell.load()
    }

    /// Its lane's limit, if the lane is bounded.
    pub fn lane_limit(&self) -> Option<LaneLimit> {
        self.cell.lane_limit()
    }

    /// Monitors, links and watches held for it (for tests that they do not
    /// grow).
    #[doc(hidden)]
    pub fn watch_len(&self) -> usize {
        self.cell.watch_len()
    }

    /// Letters crash handling has looked at (for tests that a restart does
    /// not scan the queue).
    #[doc(hidden)]
    pub fn letters_scanned(&self) -> u64 {
        self.cell.letters_scanned()
    }

    /// Sends `message` one way: a typed [`crate::Message`] or an untyped
    /// `(method, body)` pair. Its sender is stamped by the runtime (the
    /// particle whose handler calls this, else the Machine).
    ///
    /// # Errors
    ///
    /// The message handed back ([`SendError::into_inner`]: the typed message
    /// itself, or the wave made of an untyped one) with
    /// [`WaveError::Stopped`] if the particle has ended, or
    /// [`WaveError::LaneFull`] if its lane is bounded and full, whatever
    /// its policy (a synchronous send cannot wait: see
    /// [`ParticleRef::signal_waiting`]).
    ///
    /// # Cancel safety
    ///
    /// Not async: the message is queued, or handed back, before this
    /// returns.
    pub fn signal<S: Sendable>(&self, message: S) -> Result<(), SendError<S::Back>> {
        signal_cell(&self.cell, &self.access, sender(), self.origin(), message)
    }

    /// Sends `message` one way as [`ParticleRef::signal`] does, waiting for
    /// room if the lane is bounded with [`crate::WhenFull::Wait`]
    /// (backpressure).
    ///
    /// The sender is stamped when this is called, and the message is
    /// queued then if there is room (keeping its place in order with the
    /// sender's other sends); the future waits only for room. A message
    /// that must wait is queued when the future finds room: a later send
    /// from the same sender that finds room first is queued before it.
    ///
    /// # Errors
    ///
    /// The message handed back with [`WaveError::Stopped`] if the particle
    /// has ended, or ends while this waits for room, or
    /// [`WaveError::LaneFull`] if the lane is full and its policy is
    /// [`crate::WhenFull::Reject`], or the lane is the sending particle's
    /// own (it cannot wait for room that only its return makes).
    ///
    /// # Cancel safety
    ///
    /// A message queued when this was called stays queued if the future is
    /// dropped (it will be handled). A message still waiting for room is
    /// dropped with the future and never queued.
    pub fn signal_waiting<S: Sendable>(
        &self,
        message: S,
    ) -> impl Future<Output = Result<(), SendError<S::Back>>> + Send + 'static {
        signal_waiting_cell(
            self.cell.clone(),
            &self.access,
            sender(),
            self.origin(),
            message,
        )
    }

    /// Sends `message` as a request and returns the [`Ask`] to await for
    /// its answer: `M::Reply` for a typed [`crate::Message`], a
    /// [`crate::Body`] for an untyped `(method, body)` pair. Awaiting waits
    /// up to the Machine's request timeout; [`Ask::within`] chooses another,
    /// or none. Its sender is stamped by the runtime.
    ///
    /// The request is queued when this is called, not when the `Ask` is
    /// first polled, so it keeps its place in order with the sender's
    /// signals (unless a bounded lane is full: see [`Ask`]).
    ///
    /// # Errors
    ///
    /// See [`Ask`]: the awaited result is a [`WaveError`] if the request
    /// was refused, timed out, or was not answered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the `Ask` does not withdraw a queued request: the particle
    /// still handles it, and the answer is dropped.
    pub fn ask<S: Sendable>(&self, message: S) -> Ask<S::Reply> {
        ask_cell(
            &self.cell,
            &self.access,
            sender(),
            self.origin(),
            message,
            &self.deadlines,
            self.deadlines.request_timeout,
        )
    }

    /// Sends a control letter from the stamped sender and waits up to
    /// `timeout` for its answer. Queued when this is called; a full lane is
    /// waited on, or refuses, per its policy, as for a request.
    pub(crate) fn control(
        &self,
        kind: ControlKind,
        timeout: Duration,
    ) -> impl Future<Output = Result<ControlReply, WaveError>> + Send + 'static {
        self.control_from(sender(), kind, timeout)
    }

    /// [`ParticleRef::control`] from a sender stamped elsewhere (the
    /// cluster's, for control from another Machine).
    pub(crate) fn control_from(
        &self,
        from: Point,
        kind: ControlKind,
        timeout: Duration,
    ) -> impl Future<Output = Result<ControlReply, WaveError>> + Send + 'static {
        let lane = self.clone();
        let (tx, rx): (_, ControlRx) = oneshot::channel();
        let letter = Letter::Control(Box::new(ControlLetter {
            from,
            to: self.point().clone(),
            kind,
            reply: Some(tx),
        }));
        // `Err(None)`: it would wait for itself; `Err(Some(_))`: no room yet.
        let first = if self.cell.is_current_task() {
            Err(None)
        } else {
            match self.cell.lane.push(letter) {
                Ok(()) => Ok(()),
                Err((letter, Refusal::Full)) => Err(Some(letter)),
                Err((letter, Refusal::Closed)) => {
                    letter.refuse(self.point());
                    Ok(())
                }
            }
        };
        async move {
            let answered = async {
                match first {
                    Ok(()) => {}
                    Err(None) => {
                        return Err(WaveError::CallingSelf {
                            point: lane.point().clone(),
                        })
                    }
                    Err(Some(letter)) => wait_for_room(lane.cell.clone(), letter).await?,
                }
                rx.await.unwrap_or_else(|_| {
                    Err(WaveError::Stopped {
                        point: lane.point().clone(),
                    })
                })
            };
            match lane.deadlines.within(timeout, answered).await {
                Some(answer) => answer,
                None => Err(WaveError::Timeout {
                    point: lane.point().clone(),
                    after: timeout,
                }),
            }
        }
    }
}

/// Signals `message` from `from` to `cell`'s particle: every `signal`
/// passes here.
#[inline]
pub(crate) fn signal_cell<S: Sendable>(
    cell: &ParticleCell,
    access: &Access,
    from: Point,
    origin: Origin<'_>,
    message: S,
) -> Result<(), SendError<S::Back>> {
    if admit(access, &from, origin, cell.point(), Privilege::Send).is_err() {
        // Denied: dropped (counted and logged by `admit`), as a signal
        // to another Machine would be; the sender is not told.
        return Ok(());
    }
    let letter = send::letter(message.parcel(), from, cell.point().clone(), None);
    deliver(cell, letter).map_err(|(letter, refusal)| refused::<S>(cell, refusal, letter))
}

/// Signals `message` from `from` to `cell`'s particle, waiting for room:
/// every `signal_waiting` passes here. The particle's own handler cannot
/// wait for room in its own lane (only its return makes room): it is
/// refused `LaneFull` at once, as a request to itself is refused
/// `CallingSelf`.
pub(crate) fn signal_waiting_cell<S: Sendable>(
    cell: Arc<ParticleCell>,
    access: &Access,
    from: Point,
    origin: Origin<'_>,
    message: S,
) -> impl Future<Output = Result<(), SendError<S::Back>>> + Send + 'static {
    let denied = admit(access, &from, origin, cell.point(), Privilege::Send).is_err();
    let letter = send::letter(message.parcel(), from, cell.point().clone(), None);
    // Denied: dropped, as `signal_cell` drops it.
    let first = if denied {
        Ok(())
    } else {
        cell.lane.push(letter)
    };
    // Judged where it is called: the particle's own handler cannot wait.
    let own = cell.is_current_task();
    async move {
        let refused = match first {
            Ok(()) => return Ok(()),
            Err((letter, Refusal::Full)) if !own => match cell.lane.push_waiting(letter).await {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            },
            Err(refused) => refused,
        };
        let (letter, refusal) = refused;
        Err(send::refused::<S>(refusal_error(&cell, refusal), letter))
    }
}

/// A refused signal, handed back (kept out of the hot path).
#[cold]
#[inline(never)]
fn refused<S: Sendable>(
    cell: &ParticleCell,
    refusal: Refusal,
    letter: Letter,
) -> SendError<S::Back> {
    send::refused::<S>(refusal_error(cell, refusal), letter)
}

/// Asks `message` from `from` of `cell`'s particle: every `ask` passes here.
#[inline]
pub(crate) fn ask_cell<S: Sendable>(
    cell: &Arc<ParticleCell>,
    access: &Access,
    from: Point,
    origin: Origin<'_>,
    message: S,
    deadlines: &Arc<Deadlines>,
    timeout: Duration,
) -> Ask<S::Reply> {
    if let Err(denied) = admit(access, &from, origin, cell.point(), Privilege::Ask) {
        return Ask::failed(denied, <S as Sealed>::open);
    }
    let (tx, rx) = oneshot::channel();
    let letter = send::letter(message.parcel(), from, cell.point().clone(), Some(tx));
    Ask::queue(cell, letter, rx, deadlines, timeout, <S as Sealed>::open)
}

impl std::fmt::Debug for ParticleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticleRef")
            .field("point", self.point())
            .finish()
    }
}
