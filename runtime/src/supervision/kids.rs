//! The children of a supervisor particle: [`Children`] over particles.
//!
//! Starting a child that is parked (after a crash, or stopped for a
//! strategy restart) resumes it on its lane, so waves queued for it are
//! kept; otherwise a new particle is spawned under the supervisor. Stopping
//! one suspends it (its `stop` hook runs) within its shutdown timeout, then
//! kills it. A child the supervisor no longer runs is ended for good by
//! [`Kids::reconcile`].

use std::collections::HashMap;
use std::sync::Arc;

use hyperverse_supervisors::{Children, ExitReason, Shutdown, SupEvent, Supervisor};

use super::calls::ChildRef;
use super::managed::Phase;
use super::ChildStart;
use crate::cell::ParticleCell;
use crate::targets;
use crate::{Ctx, DownReason, Event, Point};

/// The children of one supervisor particle.
pub(crate) struct Kids {
    /// The supervisor's own context.
    ctx: Ctx,
    /// Each child's particle, by id, while it lives.
    live: HashMap<String, Arc<ParticleCell>>,
    /// The sender of the request the supervisor is handling, if any: a
    /// child that is waiting for that answer cannot stop gracefully.
    pub(crate) caller: Option<Point>,
}

/// Refuses a child's requests to its supervisor while the supervisor stops
/// it, and ends that however the stop ends (even if the supervisor's own
/// incarnation is killed meanwhile).
struct Refusing<'a>(&'a Ctx);

impl<'a> Refusing<'a> {
    fn start(ctx: &'a Ctx, child: &Point) -> Self {
        ctx.cell.lane.refuse_requests_from(Some(child), ctx.me());
        Refusing(ctx)
    }
}

impl Drop for Refusing<'_> {
    fn drop(&mut self) {
        self.0.cell.lane.refuse_requests_from(None, self.0.me());
    }
}

/// How a parked child's end reads to its monitors and links.
fn down_reason(exit: ExitReason) -> DownReason {
    match exit {
        ExitReason::Normal => DownReason::Stopped,
        ExitReason::Shutdown | ExitReason::ShutdownWith(_) => DownReason::Shutdown,
        ExitReason::Killed => DownReason::Killed,
        ExitReason::Error(reason) => DownReason::GaveUp(reason),
    }
}

impl Kids {
    pub(crate) fn new(ctx: Ctx) -> Self {
        Kids {
            ctx,
            live: HashMap::new(),
            caller: None,
        }
    }

    /// The particle of child `id`, if it lives.
    pub(crate) fn cell(&self, id: &str) -> Option<&Arc<ParticleCell>> {
        self.live.get(id)
    }

    /// Ends, for good, every child `sup` does not run now (removed,
    /// terminated, not restarted), and waits until they have ended. A child
    /// whose restart waits to be tried again stays parked, its lane and
    /// queued waves kept for the restart.
    pub(crate) async fn reconcile(&mut self, sup: &Supervisor<Kids>) {
        let stale: Vec<String> = self
            .live
            .iter()
            .filter(|(id, cell)| match sup.handle(id) {
                Some(h) => h.seq != cell.spawn_seq(),
                None => !sup.is_restarting(id),
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.end(&id).await;
        }
    }

    /// A child of this supervisor's particle at `id` left by its last
    /// incarnation (parked when it crashed), to be adopted: parked first if
    /// it is somehow still running.
    async fn orphan(&self, id: &str) -> Option<Arc<ParticleCell>> {
        let point = self.ctx.me().child(id).ok()?;
        let cell = self.ctx.machine.cell_at(&point)?;
        let mine = cell
            .parent_cell()
            .is_some_and(|p| Arc::ptr_eq(&p, &self.ctx.cell));
        let m = cell.managed()?;
        if !mine || cell.lane.shutdown_requested() {
            return None;
        }
        if !matches!(m.phase(), Phase::Parked | Phase::Ended) {
            m.kill();
            m.parked().await;
        }
        (m.phase() == Phase::Parked).then_some(cell)
    }

    /// Ends the children parked by a crashed incarnation that this one did
    /// not adopt (a dynamic supervisor's, as OTP does not restore them).
    pub(crate) async fn end_orphans(&mut self) {
        let orphans: Vec<Arc<ParticleCell>> = self
            .ctx
            .cell
            .children()
            .into_iter()
            .filter(|c| c.managed().is_some() && !self.live.values().any(|l| Arc::ptr_eq(l, c)))
            .collect();
        for cell in orphans {
            self.end_cell(&cell).await;
        }
    }

    /// Ends every child for good (the supervisor ends).
    pub(crate) async fn end_all(&mut self) {
        let ids: Vec<String> = self.live.keys().cloned().collect();
        for id in ids {
            self.end(&id).await;
        }
    }

    async fn end(&mut self, id: &str) {
        if let Some(cell) = self.live.remove(id) {
            self.end_cell(&cell).await;
        }
    }

    /// Ends one child for good and waits until it has.
    async fn end_cell(&self, cell: &Arc<ParticleCell>) {
        let m = cell.managed().expect("a supervised particle");
        if !matches!(m.phase(), Phase::Parked | Phase::Ended) {
            // Not stopped by the supervisor first: stop it from outside.
            cell.lane.request_shutdown();
        }
        let why = down_reason(m.last_exit());
        m.end(why.clone());
        cell.ended().await;
        // A child ended after a crash ends as given up, whose record would
        // otherwise stay: the supervisor is done with it.
        self.ctx.machine.forget(cell, &why);
    }
}

impl Children for Kids {
    type Start = ChildStart;
    type Handle = ChildRef;

    async fn start(&mut self, id: &str, start: &ChildStart) -> Result<ChildRef, ExitReason> {
        let (kind, args) = start.resolve().map_err(ExitReason::Error)?;
        if !self.live.contains_key(id) {
            if let Some(cell) = self.orphan(id).await {
                // Parked when this supervisor's last incarnation crashed:
                // adopted, and resumed on its lane below.
                self.live.insert(id.to_string(), cell);
            }
        }
        if let Some(cell) = self.live.get(id).cloned() {
            let m = cell.managed().expect("a supervised particle");
            if m.phase() == Phase::Parked && cell.kind() == &kind && !cell.lane.shutdown_requested()
            {
                let restarts = cell.add_restart();
                self.ctx.machine.count_restart(cell.star());
                tracing::info!(target: targets::RESTART, point = %cell.point(), restarts, "restarting supervised particle");
                self.ctx.machine.emit(|| Event::Restarted {
                    point: cell.point().clone(),
                    restarts,
                });
                let n = m.resume(args);
                m.started(n).await.map_err(ExitReason::Error)?;
                return Ok(ChildRef {
                    point: cell.point().clone(),
                    seq: cell.spawn_seq(),
                    incarnation: n,
                });
            }
            self.end(id).await;
        }
        let point = self
            .ctx
            .me()
            .child(id)
            .map_err(|e| ExitReason::Error(format!("bad child id `{id}`: {e}")))?;
        let lane = self
            .ctx
            .machine
            .launch_supervised(point, &self.ctx.cell, kind, args, start.options())
            .map_err(|e| ExitReason::Error(e.to_string()))?;
        let cell = lane.cell;
        self.live.insert(id.to_string(), cell.clone());
        let m = cell.managed().expect("a supervised particle");
        m.started(1).await.map_err(ExitReason::Error)?;
        Ok(ChildRef {
            point: cell.point().clone(),
            seq: cell.spawn_seq(),
            incarnation: 1,
        })
    }

    fn stopping(&self) -> bool {
        self.ctx.cell.lane.stop_requested()
    }

    fn event(&mut self, event: &SupEvent) {
        let me = self.ctx.me();
        match event {
            SupEvent::Restarting { id } => {
                tracing::info!(target: targets::RESTART, supervisor = %me, %id, "supervisor restarts")
            }
            SupEvent::GaveUp { restarts } => {
                tracing::error!(target: targets::CRASH, supervisor = %me, restarts, "supervisor gives up: restart intensity exceeded")
            }
            other => {
                tracing::debug!(target: targets::RESTART, supervisor = %me, event = ?other, "supervisor")
            }
        }
        self.ctx.machine.emit(|| Event::Supervisor {
            supervisor: me.clone(),
            event: event.clone(),
        });
    }

    async fn stop(&mut self, id: &str, handle: &ChildRef, shutdown: Shutdown) -> ExitReason {
        let Some(cell) = self.live.get(id).cloned() else {
            return ExitReason::Shutdown;
        };
        if cell.spawn_seq() != handle.seq {
            return ExitReason::Shutdown;
        }
        let m = cell.managed().expect("a supervised particle");
        match m.phase() {
            // It ended by itself; its report is on its way.
            Phase::Parked => return m.last_exit(),
            Phase::Ended => return ExitReason::Shutdown,
            Phase::Starting | Phase::Running => {}
        }
        // A child waiting on its supervisor's answer (an API call from its
        // handler) would keep the supervisor waiting for it: its requests
        // are refused until it has stopped.
        let _refusing = Refusing::start(&self.ctx, cell.point());
        // The child (or one below it) is waiting for the answer to the very
        // request being handled (`terminate_child` of itself): it cannot
        // stop before that answer, so it goes at once, as a non-trapping
        // Erlang process does on `exit(Pid, shutdown)`.
        let waiting_on_us = self
            .caller
            .as_ref()
            .is_some_and(|c| cell.point().contains(c));
        match shutdown {
            _ if waiting_on_us => m.kill_as(ExitReason::Shutdown),
            Shutdown::BrutalKill => m.kill(),
            Shutdown::Infinity => m.suspend(&cell.lane),
            Shutdown::Timeout(limit) => {
                m.suspend(&cell.lane);
                if tokio::time::timeout(limit, m.parked()).await.is_err() {
                    tracing::warn!(target: targets::MACHINE, point = %cell.point(), ?limit, "supervised particle did not stop in time: killing it");
                    m.kill();
                }
            }
        }
        m.parked().await;
        if m.phase() == Phase::Ended {
            return ExitReason::Shutdown;
        }
        m.last_exit()
    }
}
