//! A supervised child's life: each end of an incarnation is reported to
//! its supervisor particle, which says what comes next (see
//! [`crate::run::Decide`]: the life around it is every particle's).

use std::future::Future;
use std::sync::Arc;

use hyperverse_supervisors::ExitReason;

use super::managed::{Command, Managed, Wake};
use super::report::report_exit;
use crate::cell::ParticleCell;
use crate::lane::LaneReceiver;
use crate::run::{park_children, retire, stop_children, After, Decide, End, ReadyTx};
use crate::{Body, Ctx, DownReason, Status, WaveError};

/// The decision of a supervised child's supervisor particle.
pub(crate) struct SupervisorDecides {
    cell: Arc<ParticleCell>,
}

impl SupervisorDecides {
    pub(crate) fn new(cell: Arc<ParticleCell>) -> Self {
        debug_assert!(cell.managed().is_some(), "a supervised particle");
        SupervisorDecides { cell }
    }

    fn managed(&self) -> &Managed {
        self.cell.managed().expect("a supervised particle")
    }
}

impl Decide for SupervisorDecides {
    fn serving<'a, F: Future<Output = End> + Send + 'a>(
        &'a self,
        incarnation: F,
    ) -> impl Future<Output = Option<End>> + Send + 'a {
        let m = self.managed();
        async move {
            tokio::select! {
                biased;
                () = m.killed() => None,
                end = incarnation => Some(end),
            }
        }
    }

    fn decide<'a>(
        &'a self,
        ctx: &'a Ctx,
        end: Option<End>,
        _: &'a mut Option<ReadyTx>,
        lane: &'a mut LaneReceiver,
        args: &'a mut Body,
    ) -> impl Future<Output = After> + Send + 'a {
        let m = self.managed();
        async move {
            let (exit, report, in_flight, requester) = match end {
                None => {
                    // Killed by its supervisor: the state went without `stop`;
                    // its children go now, as after a crash.
                    ctx.cell.set_closing(true);
                    lane.refuse_descendants(true);
                    if ctx.cell.stops_own_children() {
                        park_children(ctx).await;
                    } else {
                        stop_children(ctx).await;
                    }
                    lane.drop_notices();
                    lane.refuse_descendants(false);
                    (m.kill_exit(), false, None, None)
                }
                // Stopped from outside: its supervisor hears of it after.
                Some(End::Stop) if ctx.cell.lane.shutdown_requested() => {
                    return After::End {
                        why: DownReason::Shutdown,
                        report: Some(ExitReason::Shutdown),
                    }
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
            retire(ctx, &exit.to_string(), exit == ExitReason::Normal);
            // Parked before the report goes: the supervisor may act on it at once.
            m.park(exit.clone());
            if report {
                report_exit(ctx, exit.clone(), in_flight);
            }
            if let Some(requester) = requester {
                let _ = requester.send(Err(WaveError::Crashed {
                    point: ctx.me().clone(),
                    reason: exit.to_string(),
                }));
            }
            match m.wait(&ctx.cell.lane).await {
                Wake::Command(Command::Resume(new_args)) => {
                    *args = new_args;
                    ctx.cell.lane.clear_stop();
                    ctx.cell.set_closing(false);
                    After::Again
                }
                Wake::Command(Command::End(why)) => {
                    // Children parked for a next incarnation go with it.
                    stop_children(ctx).await;
                    After::end(why)
                }
                Wake::Shutdown => {
                    stop_children(ctx).await;
                    After::end(DownReason::Shutdown)
                }
            }
        }
    }
}
