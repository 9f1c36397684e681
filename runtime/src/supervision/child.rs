//! A supervised child's life: incarnations on one lane, each end reported
//! to its supervisor particle, which says what comes next.

use std::sync::Arc;

use hyperverse_supervisors::ExitReason;
use serde::{Deserialize, Serialize};

use super::managed::{Command, Wake};
use crate::control::{ControlKind, ControlLetter};
use crate::lane::{deliver_control, LaneReceiver};
use crate::run::{incarnation, park_children, stop_children, End, EndGuard};
use crate::{Body, Ctx, DownReason, InFlight, Particle, Status, WaveError};

/// How one incarnation of a supervised child ended: the payload of an
/// exit report, a control letter from the child to its supervisor that
/// only the runtime makes. Serialisable, so that a supervisor and its child
/// can one day live on different Machines.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExitReport {
    /// The child's spawn sequence: which particle at that Point.
    pub seq: u64,
    /// Which of its incarnations ended.
    pub incarnation: u64,
    pub exit: ExitReason,
    pub in_flight: Option<InFlight>,
}

/// Tells `ctx`'s supervisor how its current incarnation ended. Dropped if
/// the supervisor has ended (it stops its children as it ends); never
/// refused for room.
pub(crate) fn report_exit(ctx: &Ctx, exit: ExitReason, in_flight: Option<InFlight>) {
    let (Some(m), Some(sup)) = (ctx.cell.managed(), ctx.cell.parent_cell()) else {
        return;
    };
    let report = ExitReport {
        seq: ctx.cell.spawn_seq(),
        incarnation: m.incarnation(),
        exit,
        in_flight,
    };
    let _ = deliver_control(
        &sup,
        ControlLetter {
            from: ctx.me().clone(),
            to: sup.point().clone(),
            kind: ControlKind::Exit(report),
            reply: None,
        },
    );
}

/// A supervised particle's whole life (see [`super::managed`]).
pub(crate) async fn run_managed<P: Particle>(
    particle: Arc<P>,
    ctx: Ctx,
    mut args: Body,
    guard: EndGuard,
) {
    let m = ctx.cell.managed().expect("a supervised particle");
    let mut lane = LaneReceiver::new(ctx.cell.clone(), P::STOPS_OWN_CHILDREN);
    let mut ready = None;
    m.begin();
    loop {
        let end = {
            let inc = incarnation(&*particle, &ctx, &args, &mut ready, &mut lane);
            tokio::select! {
                biased;
                () = m.killed() => None,
                end = inc => Some(end),
            }
        };
        let (exit, report, in_flight, requester) = match end {
            None => {
                // Killed by its supervisor: the state went without `stop`;
                // its children go now, as after a crash.
                ctx.cell.set_closing(true);
                lane.refuse_descendants(true);
                if P::STOPS_OWN_CHILDREN {
                    park_children(&ctx).await;
                } else {
                    stop_children(&ctx).await;
                }
                lane.drop_notices();
                lane.refuse_descendants(false);
                (m.kill_exit(), false, None, None)
            }
            Some(End::Stop) if ctx.cell.lane.shutdown_requested() => {
                // Stopped from outside: its supervisor hears of it after.
                guard.finish(lane.close(), DownReason::Shutdown);
                report_exit(&ctx, ExitReason::Shutdown, None);
                return;
            }
            Some(End::Stop) if m.suspending() => (ExitReason::Shutdown, false, None, None),
            Some(End::Stop) => (ExitReason::Normal, true, None, None),
            Some(End::Crash(crash)) => {
                ctx.cell.set_status(Status::Restarting);
                if crash.at_start {
                    m.set_started(Err(crash.reason.clone()));
                } else {
                    ctx.machine.count_crash(ctx.cell.star());
                }
                let report = !crash.at_start && !m.suspending();
                (crash.exit, report, crash.in_flight, crash.requester)
            }
        };
        // The incarnation's links and the monitors it set end with it.
        ctx.machine
            .fire_links(&ctx.cell, &exit.to_string(), exit == ExitReason::Normal);
        ctx.machine.drop_monitors(&ctx.cell);
        // Parked before the report goes: the supervisor may act on it at once.
        m.park(exit.clone());
        if report {
            report_exit(&ctx, exit.clone(), in_flight);
        }
        if let Some(requester) = requester {
            let _ = requester.send(Err(WaveError::Crashed {
                point: ctx.me().clone(),
                reason: exit.to_string(),
            }));
        }
        match m.wait(&ctx.cell.lane).await {
            Wake::Command(Command::Resume(new_args)) => {
                args = new_args;
                ctx.cell.lane.clear_stop();
                ctx.cell.set_closing(false);
            }
            Wake::Command(Command::End(why)) => {
                // Children parked for a next incarnation go with it.
                stop_children(&ctx).await;
                return guard.finish(lane.close(), why);
            }
            Wake::Shutdown => {
                stop_children(&ctx).await;
                return guard.finish(lane.close(), DownReason::Shutdown);
            }
        }
    }
}
