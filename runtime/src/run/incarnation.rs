//! One incarnation: a fresh state from `start`, waves until it ends, and
//! how it ends (its `stop`, or its state dropped after a crash; its
//! children stopped or parked).

use std::future::Future;

use futures::FutureExt;
use hyperverse_supervisors::ExitReason;
use tracing::Instrument;

use super::end::{park_children, stop_children, Crash, End, ReadyTx};
use super::guard::{drop_state, guarded};
use super::serve::serve;
use crate::lane::LaneReceiver;
use crate::targets;
use crate::{Body, Ctx, Particle, Status};

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
