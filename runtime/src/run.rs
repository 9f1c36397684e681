//! The life of one particle: incarnations on one lane, in one task.
//!
//! The task outlives crashes: after a crash the state is dropped (the old
//! incarnation has fully stopped), the Star decides, and a restart is a
//! fresh `start` on the same lane, so waves queued meanwhile are kept and
//! handled by the new incarnation in order.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::oneshot;
use tracing::Instrument;

use hyperverse_supervisors::ExitReason;

use crate::cell::ParticleCell;
use crate::control::ControlLetter;
use crate::lane::{LaneReceiver, Letter, Next, ReplyTx};
use crate::message::{self, Incoming, Reply};
use crate::star::Decision;
use crate::targets;
use crate::{Body, Ctx, DownReason, InFlight, Particle, ParticleError, Status, Wave, WaveError};

thread_local! {
    /// The particle whose code this thread is running right now.
    static RUNNING: Cell<*const ParticleCell> = const { Cell::new(std::ptr::null()) };
}

/// The cell of the particle whose handler this thread is polling, if any.
pub(crate) fn running_particle() -> *const ParticleCell {
    RUNNING.with(Cell::get)
}

/// The Point of the particle whose handler this thread is polling, if any:
/// the sender of a wave a handler sends through the Machine.
pub(crate) fn running_point() -> Option<crate::Point> {
    let cell = running_particle();
    // SAFETY: RUNNING is set only while a particle's handler is polled on
    // this thread, from a `&ParticleCell` that outlives that poll (its task
    // holds the cell's Arc), and restored when the poll ends; so a non-null
    // value here is a live cell.
    (!cell.is_null()).then(|| unsafe { (*cell).point().clone() })
}

pin_project_lite::pin_project! {
    /// Polls a particle's handler with [`RUNNING`] naming the particle (a
    /// thread-local write per poll, cheaper than asking tokio for the task's
    /// id on every request).
    struct Running<'a, F> {
        cell: &'a ParticleCell,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Running<'_, F> {
    type Output = F::Output;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        // Restores the previous value even if the handler panics.
        struct Restore(*const ParticleCell);
        impl Drop for Restore {
            fn drop(&mut self) {
                RUNNING.with(|r| r.set(self.0));
            }
        }
        let this = self.project();
        let _restore = Restore(RUNNING.with(|r| r.replace(*this.cell as *const ParticleCell)));
        this.fut.poll(cx)
    }
}

/// Runs a handler future as `cell`'s code, turning a panic or an `Err`
/// into an exit reason: an [`ExitReason`] returned as the error is kept as
/// it is (Erlang's `exit(Reason)`), anything else is an `Error` with its text.
///
/// A combinator rather than an `async fn`: an `async fn` would keep its
/// argument and the future it awaits side by side, and this future is part
/// of every particle's task, idle or not.
fn guarded<'a, T>(
    cell: &'a ParticleCell,
    fut: impl Future<Output = Result<T, ParticleError>> + 'a,
) -> impl Future<Output = Result<T, ExitReason>> + 'a {
    AssertUnwindSafe(Running { cell, fut })
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match e.downcast::<ExitReason>() {
                Ok(exit) => *exit,
                Err(e) => ExitReason::Error(e.to_string()),
            }),
            Err(panic) => Err(ExitReason::Error(panic_text(panic))),
        })
}

fn panic_text(panic: Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_string()
    }
}

pub(crate) enum End {
    /// Stop requested (by itself, its supervisor or the Machine).
    Stop,
    /// The incarnation crashed.
    Crash(Crash),
}

pub(crate) struct Crash {
    pub(crate) exit: ExitReason,
    /// The text of `exit`.
    pub(crate) reason: String,
    /// It crashed in `start`: it never served.
    pub(crate) at_start: bool,
    /// The wave in hand, if any.
    pub(crate) in_flight: Option<InFlight>,
    /// If that wave was a request, where its answer goes: the requester is
    /// told only after the Star has decided, so by then the parent has its
    /// crash notice.
    pub(crate) requester: Option<ReplyTx>,
}

impl Crash {
    fn new(exit: ExitReason, in_flight: Option<InFlight>, requester: Option<ReplyTx>) -> Crash {
        Crash {
            reason: exit.to_string(),
            exit,
            at_start: false,
            in_flight,
            requester,
        }
    }
}

impl End {
    fn crash(exit: ExitReason, in_flight: Option<InFlight>, requester: Option<ReplyTx>) -> End {
        End::Crash(Crash::new(exit, in_flight, requester))
    }
}

pub(crate) type ReadyTx = oneshot::Sender<Result<(), String>>;

/// Ends the particle however its task ends: through `run`'s own exits, or
/// any other way (a panic outside a handler, such as in a state's `Drop`;
/// the task aborted after its shutdown timeout; the task dropped before it
/// ever ran). Its lane is closed, its Point freed and its descendants told
/// to stop, so nothing waits for it forever.
pub(crate) struct EndGuard {
    ctx: Ctx,
    armed: bool,
}

impl EndGuard {
    pub(crate) fn new(ctx: Ctx) -> Self {
        EndGuard { ctx, armed: true }
    }

    pub(crate) fn finish(mut self, leftover: VecDeque<Letter>, why: DownReason) {
        self.armed = false;
        self.ctx.machine.finish(&self.ctx.cell, leftover, why);
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.armed {
            for cell in self.ctx.machine.descendants(&self.ctx.cell) {
                cell.lane.request_shutdown();
            }
            self.ctx
                .machine
                .finish(&self.ctx.cell, VecDeque::new(), DownReason::Killed);
            crate::supervision::report_exit(&self.ctx, ExitReason::Killed, None);
        }
    }
}

/// A particle's whole life: incarnations until a stop or a give-up.
///
/// This future is most of what an idle particle costs, so it is kept small:
/// a plain `fn` returning an `async move` block (an `async fn` would keep
/// its arguments twice, as arguments and as locals), and everything but
/// starting and serving (a crash, a stop) runs in boxed futures of its own.
// Not an `async fn`: that would keep its arguments twice in the future.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<P: Particle>(
    particle: Arc<P>,
    args: Body,
    mut ready: Option<ReadyTx>,
    guard: EndGuard,
) -> impl Future<Output = ()> + Send {
    async move {
        if guard.ctx.cell.managed().is_some() {
            // Boxed: few particles are supervised by supervisor particles,
            // and their life takes more room than the rest's.
            let ctx = guard.ctx.clone();
            return Box::pin(crate::supervision::run_managed(particle, ctx, args, guard)).await;
        }
        // The guard's: the task keeps one context, not two.
        let ctx = &guard.ctx;
        let mut lane = LaneReceiver::new(ctx.cell.clone(), P::STOPS_OWN_CHILDREN);
        loop {
            let crash = match incarnation(&*particle, ctx, &args, &mut ready, &mut lane).await {
                End::Stop => {
                    let why = stopped(ctx);
                    return guard.finish(lane.close(), why);
                }
                End::Crash(crash) => crash,
            };
            if let Some(why) = Box::pin(crashed(ctx, crash, &mut ready)).await {
                return guard.finish(lane.close(), why);
            }
        }
    }
}

/// After a crash: the links and monitors of the crashed incarnation go, the
/// Star decides, and `None` means restart. `Some` is how the particle ended
/// (its record already gone from the Registry and its children stopped).
async fn crashed(ctx: &Ctx, crash: Crash, ready: &mut Option<ReadyTx>) -> Option<DownReason> {
    let reason = crash.reason.clone();
    let exit = crash.exit.clone();
    // The crashed incarnation's links end with it (the linked die too),
    // and so do the monitors it set.
    ctx.machine.fire_links(&ctx.cell, &reason, false);
    ctx.machine.drop_monitors(&ctx.cell);
    let why = match after_crash(ctx, crash, ready).await.0 {
        // Told to stop during the backoff: no new incarnation.
        Decision::Restart if ctx.cell.lane.stop_requested() => stopped(ctx),
        Decision::Restart => {
            ctx.cell.set_closing(false);
            return None;
        }
        Decision::Stop => stopped(ctx),
        // Not restarted, per its restart type: it ends as it exited.
        Decision::Exit => match exit {
            ExitReason::Normal => DownReason::Stopped,
            ExitReason::Shutdown | ExitReason::ShutdownWith(_) => DownReason::Shutdown,
            ExitReason::Killed => DownReason::Killed,
            ExitReason::Error(_) => DownReason::GaveUp(reason),
        },
        Decision::GiveUp => DownReason::GaveUp(reason),
    };
    // Given up (or not restarted, per its restart type): its record
    // leaves the Registry now, so that its Point is free (its parent
    // may respawn there at its notice) and nothing of it stays behind.
    // Its children are its own (found by identity), not the new ones'.
    ctx.machine.forget(&ctx.cell);
    // No next incarnation: children parked for it go now.
    stop_children(ctx).await;
    Some(why)
}

/// How a stopped particle ended: a shutdown if the stop came from outside,
/// a normal exit if it stopped itself.
fn stopped(ctx: &Ctx) -> DownReason {
    if ctx.cell.lane.shutdown_requested() {
        DownReason::Shutdown
    } else {
        DownReason::Stopped
    }
}

/// One incarnation: a fresh state from `start`, then waves until it ends.
///
/// Only starting and serving run in this future; how the incarnation ends
/// (its children stopped or parked, its `stop` called) runs in a boxed one,
/// so that an idle particle's task does not keep room for it.
// Not an `async fn`: that would keep its arguments twice in the future.
#[allow(clippy::manual_async_fn)]
pub(crate) fn incarnation<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    args: &'a Body,
    ready: &'a mut Option<ReadyTx>,
    lane: &'a mut LaneReceiver,
) -> impl Future<Output = End> + Send + 'a {
    async move {
        // Process flags belong to an incarnation, and so does a crash
        // injected into the last one that it did not live to take.
        ctx.cell.set_traps_exits(false);
        ctx.cell.lane.clear_pending_crash();
        let mut state = match begin(particle, ctx, args, lane).await {
            Ok(state) => state,
            Err(end) => return end,
        };
        ctx.cell.set_status(Status::Ready);
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(()));
        }
        if let Some(m) = ctx.cell.managed() {
            m.set_started(Ok(()));
        }
        let end = serve(particle, ctx, &mut state, lane).await;
        Box::pin(ended(particle, ctx, state, lane, end)).await
    }
}

/// Starts an incarnation: its state, or how it ended if `start` failed.
/// (A failed start is awaited here, not in [`incarnation`], whose future
/// would otherwise keep room for the failure beside the serving loop.)
async fn begin<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    args: &Body,
    lane: &mut LaneReceiver,
) -> Result<P::State, End> {
    match start(particle, ctx, args).await {
        Ok(state) => Ok(state),
        Err(exit) => {
            let mut crash = Crash::new(exit, None, None);
            crash.at_start = true;
            Err(Box::pin(wind_down::<P>(ctx, lane, End::Crash(crash))).await)
        }
    }
}

/// Runs the particle's `start` (or fails it, if a start failure was injected).
fn start<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    args: &'a Body,
) -> impl Future<Output = Result<P::State, ExitReason>> + Send + 'a {
    use futures::future::Either;
    match ctx.cell.lane.take_fail_start() {
        // An injected start failure.
        Some(reason) => Either::Left(std::future::ready(Err(ExitReason::Error(reason)))),
        None => {
            let span = tracing::debug_span!(target: targets::SPAWN, "start", point = %ctx.me());
            let starting = futures::future::lazy(|_| particle.start(ctx, args)).flatten();
            Either::Right(guarded(&ctx.cell, starting).instrument(span))
        }
    }
}

/// How an incarnation that served ends: a stop runs its `stop` and stops
/// its children (in the order its Kind wants); a crash drops its state.
async fn ended<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: P::State,
    lane: &mut LaneReceiver,
    end: End,
) -> End {
    if let End::Stop = end {
        // A supervised child stopped by its supervisor, or by itself, keeps
        // its lane: the supervisor may start it again.
        let keep = ctx.cell.managed().is_some() && !ctx.cell.lane.shutdown_requested();
        if !keep {
            // No letter will be handled any more: waiting requests get
            // `Stopped` now, not after the children are gone (a child
            // waiting on this particle would otherwise wait forever).
            for letter in lane.close() {
                letter.refuse(ctx.me());
            }
        }
        ctx.cell.set_closing(true);
        let stop = |state| {
            guarded(&ctx.cell, async move {
                particle.stop(ctx, state).await;
                Ok(())
            })
        };
        if P::STOPS_OWN_CHILDREN {
            // A supervisor stops its children itself, in its order;
            // whatever is left goes after.
            let _ = stop(state).await;
            stop_children(ctx).await;
        } else {
            // Children end before their parent's `stop` runs (OTP: a
            // supervisor terminates its children, then itself).
            stop_children(ctx).await;
            let _ = stop(state).await;
        }
        return end;
    }
    // After a crash the state is dropped here: the old incarnation has fully
    // stopped before the Star is asked about a new one. A `Drop` that panics
    // is user code failing outside any handler: caught, so the crash in hand
    // (and its requester's answer) goes on as any crash does, instead of
    // unwinding the task.
    drop_state(ctx, state);
    wind_down::<P>(ctx, lane, end).await
}

/// The end of a crashed incarnation. Its children do not outlive it (OTP:
/// they are linked to it); the restart starts afresh. A supervisor's
/// supervised children are parked instead, lanes open, for its next
/// incarnation to adopt (beyond OTP: no wave queued for them is lost). The
/// lane is kept for the next incarnation, but its descendants' requests are
/// refused meanwhile, and notices about the old children are dropped.
async fn wind_down<P: Particle>(ctx: &Ctx, lane: &mut LaneReceiver, end: End) -> End {
    ctx.cell.set_closing(true);
    lane.refuse_descendants(true);
    if P::STOPS_OWN_CHILDREN {
        park_children(ctx).await;
    } else {
        stop_children(ctx).await;
    }
    lane.drop_notices();
    lane.refuse_descendants(false);
    end
}

/// Drops a crashed incarnation's state, catching a panic in its `Drop`.
fn drop_state<S>(ctx: &Ctx, state: S) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(state))) {
        tracing::error!(target: targets::CRASH, point = %ctx.me(), reason = %panic_text(panic), "a crashed particle's state panicked as it was dropped");
    }
}

/// Parks a crashed supervisor's supervised children (their incarnations
/// killed, their lanes kept) and stops its other descendants.
pub(crate) async fn park_children(ctx: &Ctx) {
    if ctx.machine.has_children(&ctx.cell) {
        Box::pin(ctx.machine.park_children(&ctx.cell)).await;
    }
}

/// Stops the particle's children, if it has any. Boxed and behind a check:
/// most particles have none, and the future would otherwise take room in
/// every particle's task.
pub(crate) async fn stop_children(ctx: &Ctx) {
    if ctx.machine.has_children(&ctx.cell) {
        Box::pin(ctx.machine.stop_children(&ctx.cell)).await;
    }
}

/// Asks the Star what to do about a crash, then answers the request that
/// was in hand. A give-up also fails a spawn still waiting for `start`.
async fn after_crash(ctx: &Ctx, crash: Crash, ready: &mut Option<ReadyTx>) -> (Decision, Duration) {
    ctx.cell.set_status(Status::Restarting);
    let stopping = ctx.cell.lane.stop_requested();
    let (decision, delay) = ctx
        .machine
        .report_crash(
            &ctx.cell,
            crash.reason.clone(),
            crash.in_flight,
            stopping,
            crash.exit.is_normal(),
        )
        .await;
    if let Some(requester) = crash.requester {
        let _ = requester.send(Err(WaveError::Crashed {
            point: ctx.me().clone(),
            reason: crash.reason.clone(),
        }));
    }
    if decision != Decision::Restart {
        if let Some(r) = ready.take() {
            let _ = r.send(Err(crash.reason));
        }
    }
    if decision == Decision::Restart && !delay.is_zero() {
        // Backoff: waves keep queueing meanwhile; a stop cuts it short.
        ctx.cell.lane.sleep_unless_stopped(delay).await;
    }
    (decision, delay)
}

/// Handles letters until a stop or a crash.
///
/// The loop every wave takes: it holds the wave only inside the handler's
/// future (see [`handling`]) and sends everything else out of line.
// Not an `async fn`: that would keep its arguments twice in the future.
#[allow(clippy::manual_async_fn)]
fn serve<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    lane: &'a mut LaneReceiver,
) -> impl Future<Output = End> + Send + 'a {
    async move {
        loop {
            // The letter is matched where it is taken (no copy of it by
            // value), and its room is free before the handler runs.
            let (wave, reply) = match lane.recv().await {
                Next::Letter(Letter::Wave(wave)) => (wave, None),
                Next::Letter(Letter::Request(wave, reply)) => (wave, Some(reply)),
                Next::Letter(Letter::Typed(typed)) => {
                    // A declared type goes to its handler as the value
                    // itself; any other becomes a wave, by its method.
                    let type_id = (*typed.value).type_id();
                    let Some(call) = message::by_type::<P>(type_id) else {
                        match typed.into_wave() {
                            Ok((wave, reply)) => {
                                if let Some(end) =
                                    serve_wave(particle, ctx, &mut *state, wave, reply).await
                                {
                                    return end;
                                }
                            }
                            Err((error, typed)) => refuse_unreadable(ctx, typed.reply, error),
                        }
                        continue;
                    };
                    let in_flight = InFlight {
                        method: typed.vt.method.into(),
                        from: typed.from,
                    };
                    let incoming = Incoming::Value(typed.value);
                    let handled = call(particle, ctx, &mut *state, incoming, typed.reply.is_some());
                    if let Some(end) =
                        answer_typed(ctx, guarded(&ctx.cell, handled), in_flight, typed.reply).await
                    {
                        return end;
                    }
                    continue;
                }
                Next::Stop => return End::Stop,
                // An injected crash: as a panic in the next handler, with
                // no wave in hand.
                Next::Crash(reason) => return End::crash(ExitReason::Error(reason), None, None),
                Next::Interrupted => continue,
                // Everything but a wave is rare: handled out of line, in one
                // boxed future, so that the loop every wave takes stays
                // small.
                Next::Letter(other) => {
                    if let Some(end) = Box::pin(system_letter(particle, ctx, state, other)).await {
                        return end;
                    }
                    continue;
                }
            };
            if let Some(end) = serve_wave(particle, ctx, &mut *state, wave, reply).await {
                return end;
            }
        }
    }
}

/// Handles one wave: by the typed handler its method names, if the
/// particle declares one, else by `handle`. `Some` ends the incarnation.
// Not an `async fn`: that would keep its arguments twice in the future.
#[allow(clippy::manual_async_fn)]
fn serve_wave<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    wave: Wave,
    reply: Option<ReplyTx>,
) -> impl Future<Output = Option<End>> + Send + 'a {
    async move {
        if let Some(call) = message::by_method::<P>(&wave.method) {
            let in_flight = InFlight {
                method: wave.method,
                from: wave.from,
            };
            let handled = call(particle, ctx, state, Incoming::Body(wave.body), false);
            return answer_typed(ctx, guarded(&ctx.cell, handled), in_flight, reply).await;
        }
        let (in_flight, handled) = handling(particle, ctx, state, wave);
        match handled.await {
            Ok(body) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(Reply::Body(body)));
                }
                None
            }
            Err(reason) => Some(End::crash(reason, Some(in_flight), reply)),
        }
    }
}

/// Answers a typed handler's outcome: its reply, an unreadable message
/// refused (no crash), or the crash. `Some` ends the incarnation.
async fn answer_typed(
    ctx: &Ctx,
    handled: impl Future<Output = Result<message::Answer, ExitReason>>,
    in_flight: InFlight,
    reply: Option<ReplyTx>,
) -> Option<End> {
    match handled.await {
        Ok(message::Answer::Reply(answer)) => {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(answer));
            }
            None
        }
        Ok(message::Answer::Undecodable(error)) => {
            tracing::debug!(target: targets::ROUTE, point = %ctx.me(), method = %in_flight.method, from = %in_flight.from, %error, "unreadable message refused");
            refuse_unreadable(ctx, reply, error);
            None
        }
        Err(reason) => Some(End::crash(reason, Some(in_flight), reply)),
    }
}

/// A message the particle could not read is answered with the error, not
/// handled: a sender cannot crash a particle with bad bytes.
fn refuse_unreadable(ctx: &Ctx, reply: Option<ReplyTx>, error: crate::CodecError) {
    if let Some(reply) = reply {
        let _ = reply.send(Err(WaveError::BadMessage {
            point: ctx.me().clone(),
            error,
        }));
    }
}

/// What a crash in the handler would have in hand, and the handler's
/// future with the wave moved into it. A plain `fn`: the wave is borrowed
/// here, not in `serve`, whose future would otherwise keep room for it
/// beside the handler's.
fn handling<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    wave: Wave,
) -> (
    InFlight,
    impl Future<Output = Result<Body, ExitReason>> + Send + 'a,
) {
    let in_flight = InFlight {
        method: wave.method.clone(),
        from: wave.from.clone(),
    };
    // `lazy` rather than an async block: the wave is held once, not twice.
    let handled = futures::future::lazy(move |_| particle.handle(ctx, state, wave)).flatten();
    (in_flight, guarded(&ctx.cell, handled))
}

/// Runs one of the particle's hooks (exit signal, down or crash notice) as
/// its code: `None` if it succeeded, else the crash, with `in_flight` as
/// what it had in hand. The hook is called inside the guard, so that a
/// panic before its future exists is caught too.
async fn hook<F: Future<Output = Result<(), ParticleError>>>(
    ctx: &Ctx,
    in_flight: InFlight,
    hook: impl FnOnce() -> F,
) -> Option<End> {
    let hooked = futures::future::lazy(|_| hook()).flatten();
    match guarded(&ctx.cell, hooked).await {
        Ok(()) => None,
        Err(reason) => Some(End::crash(reason, Some(in_flight), None)),
    }
}

/// A letter other than a wave, in `serve`: a link's exit signal, a
/// monitor's down notice, a child's crash notice or a control letter.
/// `Some` ends the incarnation; `None` goes on to the next letter.
async fn system_letter<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: &mut P::State,
    letter: Letter,
) -> Option<End> {
    match letter {
        Letter::Exit(signal) => {
            let in_flight = InFlight {
                method: "exit".into(),
                from: signal.from.clone(),
            };
            if !ctx.cell.traps_exits() {
                if signal.normal {
                    return None;
                }
                let reason = format!("linked {} crashed: {}", signal.from, signal.reason);
                return Some(End::crash(ExitReason::Error(reason), Some(in_flight), None));
            }
            hook(ctx, in_flight, || particle.exit_signal(ctx, state, signal)).await
        }
        Letter::Down(notice) => {
            let in_flight = InFlight {
                method: "down".into(),
                from: notice.target.clone(),
            };
            hook(ctx, in_flight, || particle.down(ctx, state, notice)).await
        }
        Letter::Notice(notice) => {
            let in_flight = InFlight {
                method: "crash_notice".into(),
                from: notice.child.clone(),
            };
            hook(ctx, in_flight, || {
                particle.crash_notice(ctx, state, *notice)
            })
            .await
        }
        Letter::Control(letter) => {
            let ControlLetter {
                from, kind, reply, ..
            } = *letter;
            let in_flight = InFlight {
                method: kind.label().into(),
                from: from.clone(),
            };
            let handled = guarded(
                &ctx.cell,
                crate::control::handle(particle, ctx, state, from, kind),
            );
            match handled.await {
                Ok(answer) => {
                    if let (Some(reply), Some(answer)) = (reply, answer) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Err(reason) => {
                    // Told at once (not after the Star decides, as a
                    // request's sender is): control has no reply wave.
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(WaveError::Crashed {
                            point: ctx.me().clone(),
                            reason: reason.to_string(),
                        }));
                    }
                    return Some(End::crash(reason, Some(in_flight), None));
                }
            }
            None
        }
        Letter::Wave(_) | Letter::Request(..) | Letter::Typed(_) => {
            unreachable!("waves are served in `serve`")
        }
    }
}
