//! The Star decides: what follows a crash of a particle that no
//! supervisor particle supervises (restart, with backoff, or give up).

use std::future::Future;
use std::time::Duration;

use hyperverse_supervisors::ExitReason;

use super::decide::{After, Decide};
use super::end::{retire, stop_children, stopped, Crash, End, ReadyTx};
use crate::lane::LaneReceiver;
use crate::star::Decision;
use crate::{Body, Ctx, DownReason, Status, WaveError};

/// The decision of a particle's Star (see [`Decide`]).
pub(crate) struct StarDecides;

impl Decide for StarDecides {
    fn serving<'a, F: Future<Output = End> + Send + 'a>(
        &'a self,
        incarnation: F,
    ) -> impl Future<Output = Option<End>> + Send + 'a {
        futures::FutureExt::map(incarnation, Some)
    }

    async fn decide(
        &self,
        ctx: &Ctx,
        end: Option<End>,
        ready: &mut Option<ReadyTx>,
        _: &mut LaneReceiver,
        _: &mut Body,
    ) -> After {
        match end {
            // Nothing but the task's abort ends a Star's particle from
            // outside, and that drops this future.
            None | Some(End::Stop) => After::end(stopped(ctx)),
            Some(End::Crash(crash)) => match Box::pin(crashed(ctx, crash, ready)).await {
                None => After::Again,
                Some(why) => After::end(why),
            },
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
    retire(ctx, &reason, false);
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
    ctx.machine.forget(&ctx.cell, &why);
    // No next incarnation: children parked for it go now.
    stop_children(ctx).await;
    Some(why)
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
