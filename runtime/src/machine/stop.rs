//! Ending particles: stopping subtrees children first, crashes reported to
//! Stars, and the bookkeeping when a particle's task ends.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::cell::ParticleCell;
use crate::lane::Letter;
use crate::star::{Decision, StarMsg};
use crate::targets;
use crate::Machine;
use crate::{DownNotice, DownReason, Event, InFlight, Point, Status, WaveError};

/// Rounds of "stop what is there, then look again" before `stop` returns:
/// particles may spawn children while their subtree is being stopped.
const STOP_ROUNDS: usize = 8;

/// How long a crash waits for its Star to be back before it gives up.
const STAR_DOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Machine {
    /// Stops the particle at `point` and everything below it (every particle
    /// for the root), children before parents, and waits until they have
    /// ended. Requests waiting in their lanes get [`WaveError::Stopped`].
    ///
    /// Called from inside a particle of that subtree, it does not wait for
    /// the caller or the caller's ancestors (they end once the caller's
    /// handler returns): waiting would be waiting for itself.
    ///
    /// A child of a supervisor particle stopped this way has exited with
    /// reason shutdown, as after Erlang's `exit(Pid, shutdown)`: its
    /// supervisor restarts it if its restart type says so (permanent). Use
    /// [`crate::SupervisorRef::terminate_child`] to stop one for good.
    ///
    /// # Errors
    ///
    /// [`WaveError::Forbidden`] from a handler of a particle of another line
    /// (neither in `point`'s subtree nor one of its ancestors: a stranger
    /// may not end another's subtree, as the supervisor API's rule); a
    /// particle may stop itself, its descendants and its ancestors.
    /// [`WaveError::NoSuchParticle`] if nothing lives there.
    pub async fn stop(&self, point: &Point) -> Result<(), WaveError> {
        self.check_action(crate::access::Privilege::Stop, point)
            .map_err(|visitor| WaveError::Denied {
                visitor,
                point: point.clone(),
                privilege: crate::access::Privilege::Stop,
            })?;
        let mut seen = HashSet::new();
        for round in 0..STOP_ROUNDS {
            let mut cells = self.shared.registry.cells_under(point);
            if round == 0 && cells.is_empty() && !point.is_root() {
                return Err(WaveError::NoSuchParticle {
                    point: point.clone(),
                });
            }
            cells.retain(|c| seen.insert(c.spawn_seq()));
            if cells.is_empty() {
                break;
            }
            // A supervised particle at `point` itself is restarted by its
            // supervisor (outside the subtree), as OTP's would be after an
            // exit: what appears at `point` afterwards is not ours to stop.
            let supervised = cells
                .iter()
                .any(|c| c.managed().is_some() && c.point() == point);
            self.stop_cells(cells).await;
            if supervised {
                break;
            }
        }
        Ok(())
    }

    /// Stops these particles, deepest first, one depth at a time. The
    /// children of a supervisor particle among them are left to it: it
    /// stops them in reverse start order, each within its shutdown.
    pub(crate) async fn stop_cells(&self, cells: Vec<Arc<ParticleCell>>) {
        // The particle whose task is calling, if it is among them: neither it
        // nor its ancestors can be waited for from here.
        let caller = cells
            .iter()
            .find(|c| c.is_current_task())
            .map(|c| c.point().clone());
        let seqs: HashSet<u64> = cells.iter().map(|c| c.spawn_seq()).collect();
        let (supervised, mut cells): (Vec<_>, Vec<_>) = cells.into_iter().partition(|c| {
            c.managed().is_some()
                && c.parent_cell()
                    .is_some_and(|p| seqs.contains(&p.spawn_seq()))
        });
        cells.sort_by_key(|c| (c.point().depth(), c.spawn_seq()));
        let mut rest = &cells[..];
        while let Some(last) = rest.last() {
            let depth = last.point().depth();
            let split = rest.partition_point(|c| c.point().depth() < depth);
            let (shallower, level) = rest.split_at(split);
            rest = shallower;
            for cell in level {
                cell.lane.request_shutdown();
            }
            for cell in level {
                if caller.as_ref().is_some_and(|me| cell.point().contains(me)) {
                    continue;
                }
                self.await_end(cell).await;
                self.forget(cell, &DownReason::Shutdown);
            }
        }
        // Whatever their supervisors left (one killed mid-way). A supervisor
        // still alive (the caller's own, not waited for) stops its children
        // itself, in its order.
        let left: Vec<_> = supervised
            .into_iter()
            .filter(|c| c.parent_cell().is_none_or(|p| p.has_ended()))
            .collect();
        for cell in &left {
            cell.lane.request_shutdown();
        }
        for cell in &left {
            if caller.as_ref().is_some_and(|me| cell.point().contains(me)) {
                continue;
            }
            self.await_end(cell).await;
            self.forget(cell, &DownReason::Shutdown);
        }
    }

    /// Removes `cell`'s record, if it is still the one at its Point (and
    /// tells the cluster, if there is one).
    pub(crate) fn forget(&self, cell: &Arc<ParticleCell>, why: &DownReason) {
        if self.shared.registry.unregister(cell) {
            if let Some(r) = self.shared.remote.get() {
                r.ended(cell.point(), why);
            }
        }
    }

    /// True if `cell`'s particle (that one, not whoever holds its Point
    /// now) has children.
    pub(crate) fn has_children(&self, cell: &ParticleCell) -> bool {
        cell.has_children()
    }

    /// Waits for a particle told to stop to end; past the shutdown timeout
    /// it is killed (OTP's shutdown timeout, then `brutal_kill`). A
    /// supervisor is waited for as long as its children's shutdowns take
    /// (OTP's `infinity` for supervisor children).
    async fn await_end(&self, cell: &Arc<ParticleCell>) {
        if cell.stops_own_children() {
            cell.ended().await;
            return;
        }
        if tokio::time::timeout(self.shared.shutdown_timeout, cell.ended())
            .await
            .is_err()
        {
            tracing::warn!(
                target: targets::MACHINE,
                point = %cell.point(),
                timeout = ?self.shared.shutdown_timeout,
                "particle did not stop in time: killing it"
            );
            cell.kill();
            cell.ended().await;
        }
    }

    /// `cell`'s descendants (not itself), by identity: an ended particle's
    /// own, never those of a newer particle at its Point.
    pub(crate) fn descendants(&self, cell: &Arc<ParticleCell>) -> Vec<Arc<ParticleCell>> {
        cell.descendants()
    }

    /// Parks the supervised children of `cell`, a supervisor whose
    /// incarnation crashed: each one's incarnation is killed and it waits,
    /// lane open, for the supervisor's next incarnation to adopt it (or to
    /// be stopped when there is none). Other descendants are stopped.
    pub(crate) async fn park_children(&self, cell: &Arc<ParticleCell>) {
        let all = self.descendants(cell);
        let mine: Vec<Arc<ParticleCell>> = all
            .iter()
            .filter(|c| {
                c.managed().is_some() && c.parent_cell().is_some_and(|p| Arc::ptr_eq(&p, cell))
            })
            .cloned()
            .collect();
        for c in &mine {
            if let Some(m) = c.managed() {
                m.kill();
            }
        }
        for c in &mine {
            if let Some(m) = c.managed() {
                m.parked().await;
            }
        }
        let rest: Vec<Arc<ParticleCell>> = all
            .into_iter()
            .filter(|c| !mine.iter().any(|m| m.point().contains(c.point())))
            .collect();
        if !rest.is_empty() {
            self.stop_cells(rest).await;
        }
    }

    /// Stops `cell`'s children (and theirs), as its own end or restart
    /// requires: a particle's children do not outlive it, as in OTP.
    pub(crate) async fn stop_children(&self, cell: &Arc<ParticleCell>) {
        let cells = self.descendants(cell);
        if !cells.is_empty() {
            self.stop_cells(cells).await;
        }
    }

    /// Stops every particle (children first), then the Stars. Concurrent
    /// callers all return once it is done; later calls return at once.
    ///
    /// Called from inside a particle, it starts the shutdown in a task of
    /// its own and returns at once: the shutdown must wait for the caller,
    /// which is waiting for the shutdown.
    ///
    /// Through a CLI user's handle ([`Machine::as_user`]), or from a
    /// particle under the enforced policy, it takes the privilege `stop`
    /// on `ROOT` (a superuser, or a grant): refused, it does nothing (the
    /// refusal is counted and logged). Under the open policy a particle
    /// may, as before rules.
    pub async fn shutdown(&self) {
        if (self.user.is_some() || self.access_policy() == crate::access::AccessPolicy::Enforced)
            && self
                .check_action(crate::access::Privilege::Stop, &Point::root())
                .is_err()
        {
            return;
        }
        self.shared.down.store(true, Ordering::Release);
        // Rare enough to look through every particle rather than tag every
        // particle's task (which would cost on every poll).
        let in_particle = self
            .shared
            .registry
            .cells_under(&Point::root())
            .iter()
            .any(|c| c.is_current_task());
        if in_particle {
            let me = self.clone();
            self.shared
                .runtime
                .spawn(async move { me.shutdown_now().await });
            return;
        }
        self.shutdown_now().await;
    }

    async fn shutdown_now(&self) {
        let span = tracing::info_span!(target: targets::MACHINE, "shutdown");
        self.shared
            .shutdown
            .get_or_init(|| {
                async {
                    let _ = self.stop(&Point::root()).await;
                    for star in self.shared.stars.iter() {
                        star.stop();
                    }
                    self.shared.root.stop(None);
                    self.shared.star_threads.stop();
                    tracing::info!(target: targets::MACHINE, "machine stopped");
                }
                .instrument(span)
            })
            .await;
    }

    /// Asks the particle's Star what to do about a crash. A Star that is
    /// down (failed, being restarted by the Machine) is asked again once it
    /// is back; only a Machine shutting down gives up on the particle.
    pub(crate) async fn report_crash(
        &self,
        cell: &Arc<ParticleCell>,
        reason: String,
        in_flight: Option<InFlight>,
        stopping: bool,
        normal: bool,
    ) -> (Decision, std::time::Duration) {
        let give_up = (Decision::GiveUp, std::time::Duration::ZERO);
        let t = std::time::Instant::now();
        loop {
            let (reply, rx) = oneshot::channel();
            let msg = StarMsg::Crashed {
                cell: cell.clone(),
                reason: reason.clone(),
                in_flight: in_flight.clone(),
                stopping,
                normal,
                reply,
            };
            if self.shared.stars[cell.star()].send(msg) {
                if let Ok(decision) = rx.await {
                    return decision;
                }
            }
            if self.shared.down.load(Ordering::Acquire) || t.elapsed() > STAR_DOWN_WAIT {
                return give_up;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// A particle's task is ending: close its lane, answer what is left in
    /// it, and unregister it (a given-up particle too: its record left when
    /// it was given up, unless its Point was taken meanwhile).
    pub(crate) fn finish(
        &self,
        cell: &Arc<ParticleCell>,
        leftover: VecDeque<Letter>,
        why: DownReason,
    ) {
        let gave_up = matches!(why, DownReason::GaveUp(_));
        let leftover = leftover.into_iter().chain(cell.lane.close(cell.point()));
        for letter in leftover {
            letter.refuse(cell.point());
        }
        // The name is released before anyone is told (as in Erlang), so a
        // watcher that respawns at this Point on the news finds it free.
        cell.set_status(Status::Stopped);
        if cell.restarts() > 0 && !gave_up {
            self.shared.stars[cell.star()].send(StarMsg::Forget(cell.spawn_seq()));
        }
        self.forget(cell, &why);
        if !gave_up {
            tracing::debug!(target: targets::SPAWN, point = %cell.point(), "particle stopped");
            self.emit(|| Event::Stopped {
                point: cell.point().clone(),
            });
        }
        match &why {
            DownReason::Stopped => self.fire_links(cell, "normal", true),
            DownReason::Shutdown => self.fire_links(cell, "shutdown", false),
            DownReason::GaveUp(reason) => self.fire_links(cell, reason, false),
            DownReason::Killed => self.fire_links(cell, "killed", false),
            DownReason::MachineLost(machine) => {
                self.fire_links(cell, &format!("machine {machine} lost"), false)
            }
            DownReason::NoSuchParticle | DownReason::Denied => {}
        }
        self.drop_monitors(cell);
        for (monitor, watcher) in cell.lane.take_monitors() {
            if let Some(watcher) = watcher.upgrade() {
                // The monitor has fired: the watcher keeps nothing of this
                // particle (its `Weak` would keep the cell's memory).
                watcher.lane.forget_watching(monitor);
                super::send_down(
                    &watcher,
                    DownNotice {
                        target: cell.point().clone(),
                        reason: why.clone(),
                        monitor: crate::MonitorRef::new(monitor, cell.point().clone()),
                    },
                );
            }
        }
        if let Some(m) = cell.managed() {
            m.set_ended();
        }
        cell.mark_ended();
    }
}
