//! The life of one particle: incarnations on one lane, in one task.
//!
//! The task outlives crashes: after a crash the state is dropped (the old
//! incarnation has fully stopped), the Star decides, and a restart is a
//! fresh `start` on the same lane, so waves queued meanwhile are kept and
//! handled by the new incarnation in order.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::lane::{LaneReceiver, Letter, Next, ReplyTx};
use crate::star::Decision;
use crate::targets;
use crate::{Body, Ctx, InFlight, Particle, ParticleError, Status, Wave, WaveError, WaveKind};

/// Runs a handler future, turning a panic or an `Err` into a crash reason.
async fn guarded<T>(fut: impl Future<Output = Result<T, ParticleError>>) -> Result<T, String> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic_text(panic)),
    }
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

enum End {
    /// Stop requested (by itself, its supervisor or the Machine).
    Stop,
    /// A crash with its reason, the wave in hand and, if that wave was a
    /// request, where its answer goes: the requester is told only after the
    /// Star has decided, so by then the parent has its crash notice.
    Crash(String, Option<InFlight>, Option<ReplyTx>),
}

pub(crate) async fn run<P: Particle>(
    particle: Arc<P>,
    ctx: Ctx,
    args: Body,
    mut ready: Option<oneshot::Sender<Result<(), String>>>,
) {
    let cell = ctx.cell.clone();
    let mut lane = LaneReceiver::new(cell.clone());
    loop {
        let started = guarded(particle.start(&ctx, &args))
            .instrument(
                tracing::debug_span!(target: targets::SPAWN, "start", point = %cell.point()),
            )
            .await;
        let end = match started {
            Err(reason) => End::Crash(reason, None, None),
            Ok(mut state) => {
                cell.set_status(Status::Ready);
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                let end = serve(&*particle, &ctx, &mut state, &mut lane).await;
                match end {
                    End::Stop => {
                        let _ = guarded(async {
                            particle.stop(&ctx, state).await;
                            Ok(())
                        })
                        .await;
                    }
                    End::Crash(..) => drop(state),
                }
                end
            }
        };
        let (reason, in_flight, requester) = match end {
            End::Stop => {
                ctx.machine.finish(&cell, lane.close(), false);
                return;
            }
            End::Crash(reason, in_flight, requester) => (reason, in_flight, requester),
        };
        cell.set_status(Status::Restarting);
        let decision = ctx
            .machine
            .report_crash(&cell, reason.clone(), in_flight)
            .await;
        if let Some(requester) = requester {
            let _ = requester.send(Err(WaveError::Crashed {
                point: cell.point().clone(),
                reason: reason.clone(),
            }));
        }
        if decision == Decision::GiveUp {
            if let Some(r) = ready.take() {
                let _ = r.send(Err(reason));
            }
            ctx.machine.finish(&cell, lane.close(), true);
            return;
        }
    }
}

/// Handles letters until a stop or a crash.
async fn serve<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: &mut P::State,
    lane: &mut LaneReceiver,
) -> End {
    loop {
        match lane.recv().await {
            Next::Stop => return End::Stop,
            Next::Letter(Letter::Wave(wave)) => {
                let in_flight = InFlight {
                    method: wave.method.clone(),
                    from: wave.from.clone(),
                };
                if let Err(reason) = guarded(particle.handle(ctx, state, wave)).await {
                    return End::Crash(reason, Some(in_flight), None);
                }
            }
            Next::Letter(Letter::Request(wave, reply)) => {
                let in_flight = InFlight {
                    method: wave.method.clone(),
                    from: wave.from.clone(),
                };
                let to = wave.to.clone();
                match guarded(particle.handle(ctx, state, wave)).await {
                    Ok(body) => {
                        let _ = reply.send(Ok(Wave {
                            kind: WaveKind::Reply,
                            from: to,
                            to: in_flight.from,
                            method: in_flight.method,
                            body,
                        }));
                    }
                    Err(reason) => return End::Crash(reason, Some(in_flight), Some(reply)),
                }
            }
            Next::Letter(Letter::Notice(notice)) => {
                let in_flight = InFlight {
                    method: "crash_notice".into(),
                    from: notice.child.clone(),
                };
                if let Err(reason) = guarded(particle.crash_notice(ctx, state, notice)).await {
                    return End::Crash(reason, Some(in_flight), None);
                }
            }
        }
    }
}
