//! Injecting faults into a running Machine (see [`crate::Fault`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::star::StarMsg;
use crate::stars::KILLED;
use crate::targets;
use crate::Machine;
use crate::{Fault, FaultError, Point};

/// How long `kill_star` waits for the Machine to restart the Star.
const STAR_RESTART_WAIT: Duration = Duration::from_secs(5);

impl Machine {
    /// Injects `fault` into the particle at `point` (see [`Fault`]).
    pub fn inject(&self, point: &Point, fault: Fault) -> Result<(), FaultError> {
        self.inject_seeded(point, fault, 0)
    }

    /// [`Machine::inject`], seeding the lane's random choices (delays,
    /// drops) with `seed` so that a run replays; 0 keeps the lane's seed.
    ///
    /// # Errors
    ///
    /// [`FaultError::Forbidden`] from a handler of a particle that is not
    /// `point` or one of its ancestors (faults are the Machine's, or a
    /// supervisor's, to inject); [`FaultError::NoSuchParticle`], or the
    /// fault's own validation error.
    pub fn inject_seeded(&self, point: &Point, fault: Fault, seed: u64) -> Result<(), FaultError> {
        self.check_action(crate::access::Privilege::Stop, point)
            .map_err(|visitor| FaultError::Denied {
                visitor,
                point: point.clone(),
            })?;
        // `stop` reaches a particle's own line (it may end its parent, as
        // an Erlang process may exit its supervisor); a fault does not: a
        // child may not pause or crash its ancestors.
        let caller = self.stamp();
        if self.user.is_none() && !caller.is_root() && point.is_ancestor_of(&caller) {
            return Err(FaultError::Forbidden {
                caller,
                target: point.to_string(),
            });
        }
        fault.validate()?;
        let cell = self
            .shared
            .registry
            .cell(point)
            .filter(|c| !c.has_ended())
            .ok_or_else(|| FaultError::NoSuchParticle {
                point: point.clone(),
            })?;
        tracing::info!(target: targets::FAULT, %point, ?fault, "fault injected");
        cell.lane.inject(fault, seed);
        Ok(())
    }

    /// The live particles hosted by Star `star`, in Point order.
    pub fn particles_on(&self, star: usize) -> Vec<Point> {
        let mut points: Vec<Point> = self
            .shared
            .registry
            .cells_under(&Point::root())
            .into_iter()
            .filter(|c| c.star() == star && !c.has_ended())
            .filter(|c| self.may(crate::access::Privilege::Read, c.point()))
            .map(|c| c.point().clone())
            .collect();
        points.sort();
        points
    }

    /// Kills Star `star` abruptly: its actor fails (the Machine's root
    /// supervisor restarts it, with fresh restart histories) and every
    /// particle it hosts crashes with it, to be restarted by its supervisor
    /// (its Star, or its supervisor particle). Returns the particles crashed.
    ///
    /// # Errors
    ///
    /// [`FaultError::Forbidden`] from inside any particle's handler: a Star
    /// hosts particles of every subtree, so only the Machine may kill one.
    pub async fn kill_star(&self, star: usize, reason: &str) -> Result<Vec<Point>, FaultError> {
        let caller = crate::stamp::sender();
        // A user needs `stop` on every particle: on `ROOT`'s subtree.
        if !caller.is_root()
            || (self.user.is_some() && !self.may(crate::access::Privilege::Stop, &Point::root()))
        {
            return Err(FaultError::Forbidden {
                caller,
                target: format!("star {star}"),
            });
        }
        let span = tracing::warn_span!(target: targets::FAULT, "kill_star", star);
        self.kill_star_now(star, reason).instrument(span).await
    }

    async fn kill_star_now(&self, star: usize, reason: &str) -> Result<Vec<Point>, FaultError> {
        let stars = self.shared.stars.len();
        let slot = self
            .shared
            .stars
            .get(star)
            .ok_or(FaultError::NoSuchStar { star, stars })?;
        let down = || self.shared.down.load(Ordering::Acquire);
        let before = slot.actor_id();
        if down() || !slot.send(StarMsg::Fail(format!("{KILLED}{reason}"))) {
            return Err(FaultError::MachineDown);
        }
        // The particles' crashes go to the new Star: wait for it.
        let t = Instant::now();
        while slot.actor_id() == before {
            if down() {
                return Err(FaultError::MachineDown);
            }
            if t.elapsed() > STAR_RESTART_WAIT {
                return Err(FaultError::StarNotRestarted {
                    star,
                    waited: STAR_RESTART_WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let crashed = self.particles_on(star);
        for point in &crashed {
            // One that ended meanwhile is simply gone.
            let _ = self.inject(
                point,
                Fault::Crash(format!("Star {star} was killed: {reason}")),
            );
        }
        tracing::warn!(target: targets::FAULT, star, particles = crashed.len(), "star killed");
        Ok(crashed)
    }
}
