//! The life of one particle: incarnations on one lane, in one task.
//!
//! The task outlives crashes: after a crash the state is dropped (the old
//! incarnation has fully stopped), its Star or its supervisor particle
//! decides ([`Decide`]), and a restart is a fresh `start` on the same lane,
//! so waves queued meanwhile are kept and handled by the new incarnation in
//! order.
//!
//! The files, bottom up: `guard` (user code run as the particle's), `decide`
//! (who decides what follows an end),
//! `end` (how an incarnation ends, and what every end does), `finish` (the
//! end of the particle, however its task ends), `serve` (letters),
//! `incarnation` (start, serve, stop), `star` (the Star's decision); the
//! supervisor particle's decision is `supervision::child`.

mod decide;
mod end;
mod finish;
mod guard;
mod incarnation;
mod serve;
mod star;

use std::future::Future;
use std::sync::Arc;

pub(crate) use decide::{After, Decide};
pub(crate) use end::{park_children, retire, stop_children, End, ReadyTx};
pub(crate) use finish::EndGuard;
use incarnation::incarnation;
use star::StarDecides;

use crate::lane::LaneReceiver;
use crate::supervision::SupervisorDecides;
use crate::{Body, Particle};

/// A particle's whole life: incarnations until a stop or a give-up.
///
/// This future is most of what an idle particle costs, so it is kept small:
/// plain `fn`s returning `async move` blocks (an `async fn` would keep its
/// arguments twice, as arguments and as locals), and everything but
/// starting and serving (a crash, a stop) runs in boxed futures of its own.
pub(crate) fn run<P: Particle>(
    particle: Arc<P>,
    args: Body,
    ready: Option<ReadyTx>,
    guard: EndGuard,
) -> impl Future<Output = ()> + Send {
    use futures::future::Either;
    // Not an async block: its captures would be kept beside the life they
    // are moved into.
    match guard.ctx.cell.managed() {
        Some(m) => {
            m.begin();
            // Boxed: few particles are supervised by supervisor particles,
            // and their life takes more room than the rest's.
            let decide = SupervisorDecides::new(guard.ctx.cell.clone());
            Either::Left(Box::pin(life(particle, args, ready, guard, decide)))
        }
        None => Either::Right(life(particle, args, ready, guard, StarDecides)),
    }
}

/// The one life, whoever decides.
// Not an `async fn`: that would keep its arguments twice in the future.
#[allow(clippy::manual_async_fn)]
fn life<P: Particle, D: Decide>(
    particle: Arc<P>,
    mut args: Body,
    mut ready: Option<ReadyTx>,
    guard: EndGuard,
    decide: D,
) -> impl Future<Output = ()> + Send {
    async move {
        // The guard's: the task keeps one context, not two.
        let ctx = &guard.ctx;
        let mut lane = LaneReceiver::new(ctx.cell.clone(), P::STOPS_OWN_CHILDREN);
        loop {
            let end = decide
                .serving(incarnation(&*particle, ctx, &args, &mut ready, &mut lane))
                .await;
            match decide
                .decide(ctx, end, &mut ready, &mut lane, &mut args)
                .await
            {
                After::Again => {}
                After::End { why, report } => {
                    let ctx = report.is_some().then(|| ctx.clone());
                    guard.finish(lane.close(), why);
                    if let (Some(ctx), Some(exit)) = (ctx, report) {
                        crate::supervision::report_exit(&ctx, exit, None);
                    }
                    return;
                }
            }
        }
    }
}
