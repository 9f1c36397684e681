//! An ask: a request already queued, and the wait for its answer.
//!
//! `ask` queues the request when it is called (so it keeps its place in
//! order with the sender's signals) and returns an [`Ask`]; awaiting the
//! `Ask` waits for the answer, up to the Machine's request timeout unless
//! [`Ask::within`] chooses another, or none.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::futures::OwnedNotified;

use crate::cell::ParticleCell;
use crate::deadline::{Deadlines, Slot};
use crate::lane::{refusal_error, Letter, Refusal, ReplyRx};
use crate::message::Reply;
use crate::{CodecError, Point, WaveError};

type Open<R> = fn(Reply) -> Result<R, CodecError>;
type Room = Pin<Box<dyn Future<Output = Result<(), WaveError>> + Send>>;

/// Where an ask stands when it is made.
enum Stage {
    /// Queued (or answered already, if the lane was closed): its answer
    /// will come on this channel.
    Reply(ReplyRx),
    /// The lane was full and its policy is to wait: the letter waits for
    /// room (boxed: the rare case), then its answer.
    Room(Room, ReplyRx),
    /// Refused before it was queued.
    Failed(Option<WaveError>),
}

/// A request queued by `ask`, to await for its answer: the reply (typed,
/// or a [`crate::Body`] for an untyped ask) or a [`WaveError`].
///
/// Awaiting it waits up to the Machine's request timeout
/// ([`crate::MachineBuilder::request_timeout`]); [`Ask::within`] chooses
/// another timeout, or none.
///
/// # Errors
///
/// The awaited result is an error if the request could not be queued
/// ([`WaveError::NoSuchParticle`], [`WaveError::Stopped`],
/// [`WaveError::CallingSelf`], [`WaveError::LaneFull`] for a full lane that
/// refuses) or was not answered: [`WaveError::Timeout`],
/// [`WaveError::Crashed`] (the handler crashed), [`WaveError::Stopped`]
/// (the particle ended first, or refuses this sender for now: a parent
/// stopping or restarting its children refuses their requests, so that
/// neither waits for the other), [`WaveError::BadMessage`] (the handler
/// could not decode it) or [`WaveError::BadReply`] (the reply is not of
/// the type asked for).
///
/// # Cancel safety
///
/// The request is queued when `ask` is called, not when the `Ask` is
/// first polled. Dropping the `Ask` (or its future) does not withdraw a
/// queued request: the particle still handles it, and the answer is
/// dropped. A request that finds a bounded lane full
/// ([`crate::WhenFull::Wait`]) waits for room when the `Ask` is polled
/// (a later send from the same sender that finds room first is queued
/// before it), and is dropped with the `Ask` if it never got in.
///
/// ```
/// # use hyperverse_runtime::*;
/// # use std::time::Duration;
/// # struct Echo;
/// # impl Particle for Echo {
/// #     type State = ();
/// #     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
/// #     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// # }
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("echo", Echo).build().await.unwrap();
/// let echo = machine.spawn("echo".parse().unwrap(), "echo".into(), Body::empty()).await.unwrap();
/// // The Machine's default timeout:
/// assert_eq!(echo.ask(("ping", "a")).await.unwrap().as_bytes(), b"a");
/// // Another one, or none at all:
/// let b = echo.ask(("ping", "b")).within(Duration::from_millis(50)).await.unwrap();
/// let c = echo.ask(("ping", "c")).within(None).await.unwrap();
/// assert_eq!((b.as_bytes(), c.as_bytes()), (&b"b"[..], &b"c"[..]));
/// machine.shutdown().await;
/// # }
/// ```
#[must_use = "the request is queued already; await the `Ask` for its answer"]
pub struct Ask<R> {
    stage: Stage,
    point: Point,
    timeout: Option<Duration>,
    deadlines: Option<Arc<Deadlines>>,
    open: Open<R>,
}

impl<R> Ask<R> {
    /// An ask refused before it was queued.
    pub(crate) fn failed(error: WaveError, open: Open<R>) -> Self {
        Ask {
            point: error.point().cloned().unwrap_or_else(Point::root),
            stage: Stage::Failed(Some(error)),
            timeout: None,
            deadlines: None,
            open,
        }
    }

    /// A request sent on elsewhere (to another Machine): its answer comes
    /// on `rx`.
    pub(crate) fn sent(
        point: Point,
        rx: ReplyRx,
        deadlines: &Arc<Deadlines>,
        timeout: Duration,
        open: Open<R>,
    ) -> Self {
        Ask {
            stage: Stage::Reply(rx),
            point,
            timeout: Some(timeout),
            deadlines: Some(deadlines.clone()),
            open,
        }
    }

    /// Queues `letter` (a request whose answer comes on `rx`) in `cell`'s
    /// lane: a closed lane answers it at once (`Stopped`), a full one that
    /// waits for room keeps it to push when polled, a full one that refuses
    /// fails it.
    pub(crate) fn queue(
        cell: &Arc<ParticleCell>,
        letter: Letter,
        rx: ReplyRx,
        deadlines: &Arc<Deadlines>,
        timeout: Duration,
        open: Open<R>,
    ) -> Self {
        let point = cell.point().clone();
        if cell.is_current_task() {
            // It would wait for itself: gen_server's `calling_self`.
            return Ask::failed(WaveError::CallingSelf { point }, open);
        }
        let stage = match cell.lane.push(letter) {
            Ok(()) => Stage::Reply(rx),
            Err((letter, Refusal::Closed)) => {
                letter.refuse(&point);
                Stage::Reply(rx)
            }
            Err((letter, Refusal::Full)) => {
                if cell
                    .lane
                    .limit()
                    .is_some_and(|l| l.when_full == crate::WhenFull::Wait)
                {
                    Stage::Room(Box::pin(wait_for_room(cell.clone(), letter)), rx)
                } else {
                    Stage::Failed(Some(refusal_error(cell, Refusal::Full)))
                }
            }
        };
        Ask {
            stage,
            point,
            timeout: Some(timeout),
            deadlines: Some(deadlines.clone()),
            open,
        }
    }

    /// Waits up to `timeout` for the answer instead of the Machine's
    /// request timeout; `None` waits as long as the particle takes, like
    /// `gen_server:call(…, infinity)` (a particle that stops or is given up
    /// still answers every waiting request with [`WaveError::Stopped`]).
    /// A timeout too large for the clock is no timeout.
    pub fn within(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }
}

impl<R> std::fmt::Debug for Ask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("to", &self.point)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Queues a letter that waits for an answer (a request, a control letter)
/// once a full lane has room: closed meanwhile, it is answered `Stopped`
/// like any letter the particle will never handle; full for good (the
/// lane refuses), it is `LaneFull`.
pub(crate) async fn wait_for_room(
    cell: Arc<ParticleCell>,
    letter: Letter,
) -> Result<(), WaveError> {
    match cell.lane.push_waiting(letter).await {
        Ok(()) => Ok(()),
        // Closed meanwhile: answered like any request it will never handle.
        Err((back, Refusal::Closed)) => {
            back.refuse(cell.point());
            Ok(())
        }
        Err((_, Refusal::Full)) => Err(refusal_error(&cell, Refusal::Full)),
    }
}

impl<R> IntoFuture for Ask<R> {
    type Output = Result<R, WaveError>;
    type IntoFuture = Asking<R>;

    fn into_future(self) -> Asking<R> {
        Asking {
            stage: self.stage,
            point: self.point,
            timeout: self.timeout,
            deadlines: self.deadlines,
            slot: None,
            fired: None,
            open: self.open,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an [`Ask`]: its answer, or a [`WaveError`].
    ///
    /// # Cancel safety
    ///
    /// As [`Ask`]: dropping it does not withdraw a queued request.
    #[must_use = "futures do nothing unless polled"]
    pub struct Asking<R> {
        stage: Stage,
        point: Point,
        timeout: Option<Duration>,
        deadlines: Option<Arc<Deadlines>>,
        slot: Option<Arc<Slot>>,
        #[pin]
        fired: Option<OwnedNotified>,
        open: Open<R>,
    }
}

impl<R> Future for Asking<R> {
    type Output = Result<R, WaveError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The deadline starts at the first poll, on the Machine's shared
        // clock (see `deadline`): no timer of its own.
        if let Some(deadlines) = this.deadlines.take() {
            if let Some(slot) = this.timeout.and_then(|t| deadlines.slot(t)) {
                this.fired.set(Some(slot.fired_owned()));
                if let Some(fired) = this.fired.as_mut().as_pin_mut() {
                    // Registered before `has_fired` is checked below.
                    fired.enable();
                }
                *this.slot = Some(slot);
            }
        }
        loop {
            match this.stage {
                Stage::Failed(e) => {
                    return Poll::Ready(Err(e.take().unwrap_or(WaveError::Stopped {
                        point: this.point.clone(),
                    })))
                }
                Stage::Room(room, _) => match room.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => {
                        let Stage::Room(_, rx) = std::mem::replace(this.stage, Stage::Failed(None))
                        else {
                            unreachable!("matched above")
                        };
                        *this.stage = Stage::Reply(rx);
                    }
                    Poll::Ready(Err(e)) => {
                        *this.stage = Stage::Failed(None);
                        return Poll::Ready(Err(e));
                    }
                    Poll::Pending => break,
                },
                Stage::Reply(rx) => {
                    if let Poll::Ready(answer) = Pin::new(rx).poll(cx) {
                        *this.stage = Stage::Failed(None);
                        return Poll::Ready(match answer {
                            Ok(Ok(reply)) => {
                                (this.open)(reply).map_err(|error| WaveError::BadReply {
                                    point: this.point.clone(),
                                    error,
                                })
                            }
                            Ok(Err(e)) => Err(e),
                            // A dropped answer channel: it stopped unanswered.
                            Err(_) => Err(WaveError::Stopped {
                                point: this.point.clone(),
                            }),
                        });
                    }
                    break;
                }
            }
        }
        if let Some(slot) = this.slot.as_ref() {
            let fired = slot.has_fired()
                || this
                    .fired
                    .as_pin_mut()
                    .is_some_and(|f| f.poll(cx).is_ready());
            if fired {
                *this.stage = Stage::Failed(None);
                return Poll::Ready(Err(WaveError::Timeout {
                    point: this.point.clone(),
                    after: this.timeout.unwrap_or_default(),
                }));
            }
        }
        Poll::Pending
    }
}
