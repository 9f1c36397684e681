//! Stars: virtual nodes, each a supervisor (a ractor actor) for the particles it hosts.
//!
//! Particles are light tasks with Hyperverse's own lanes, not ractor actors:
//! a ractor actor per particle costs several microseconds and kilobytes to
//! spawn. The Star is the ractor actor: it is told of every crash of its
//! particles, keeps each one's restart intensity, decides restart or give-up,
//! and tells the parent. The Stars are supervised by the Machine's root
//! actor (see `crate::stars`), which restarts a Star that fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Duration;

use hyperverse_supervisors::{BackoffState, Intensity, Restart, RestartVerdict};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::cell::ParticleCell;
use crate::event::EventSink;
use crate::lane::Letter;
use crate::targets;
use crate::{CrashNotice, Event, InFlight, Status};

/// What the Star decided about a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Restart,
    /// It was being stopped when it crashed: it ends (normally), no restart.
    Stop,
    /// Its restart type says no restart after this exit (a temporary
    /// particle, or a transient one that exited normally): it ends with
    /// its exit reason.
    Exit,
    GiveUp,
}

/// Messages to a Star.
pub(crate) enum StarMsg {
    /// A particle crashed; the reply says what to do.
    Crashed {
        cell: Arc<ParticleCell>,
        reason: String,
        in_flight: Option<InFlight>,
        /// A stop was requested before or while it crashed.
        stopping: bool,
        /// Its exit reason is a normal one (OTP's normal or shutdown): a
        /// transient particle is not restarted after it.
        normal: bool,
        /// The decision, and how long to wait before a restart.
        reply: oneshot::Sender<(Decision, Duration)>,
    },
    /// A particle (by spawn sequence) has stopped for good: drop its restart history.
    Forget(u64),
    /// Fault injection: the Star's actor fails with this reason.
    Fail(String),
}

// Local only: ractor's `cluster` feature (on in a clustered build) asks
// every actor message type to say whether it crosses nodes; this does not.
#[cfg(feature = "cluster")]
impl ractor::Message for StarMsg {}

/// Counters a Star keeps, readable without a message round trip.
#[derive(Debug, Default)]
pub struct StarCounters {
    pub(crate) spawned: AtomicU64,
    pub(crate) crashes: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) gave_up: AtomicU64,
}

/// A snapshot of one Star's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StarStats {
    /// The Star's index on its Machine.
    pub star: usize,
    /// Particles spawned on it.
    pub spawned: u64,
    /// Crashes of its particles.
    pub crashes: u64,
    /// Restarts it performed.
    pub restarts: u64,
    /// Particles it gave up on.
    pub gave_up: u64,
}

impl StarCounters {
    pub(crate) fn snapshot(&self, star: usize) -> StarStats {
        StarStats {
            star,
            spawned: self.spawned.load(Ordering::Relaxed),
            crashes: self.crashes.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Star;

pub(crate) struct StarArgs {
    pub id: usize,
    pub events: Arc<EventSink>,
    pub counters: Arc<StarCounters>,
    /// The cluster, for crash notices to parents on other Machines.
    pub remote: crate::remote::RemoteSlot,
}

pub(crate) struct StarState {
    args: StarArgs,
    /// Restart histories by spawn sequence, not Point: a new particle at a
    /// Point does not inherit (or lose) another's history.
    histories: HashMap<u64, History>,
    /// Picks backoff jitter (xorshift; quality is not the point).
    random: u64,
}

/// One particle's restart history.
struct History {
    intensity: Intensity,
    backoff: Option<BackoffState>,
}

impl Actor for Star {
    type Msg = StarMsg;
    type State = StarState;
    type Arguments = StarArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<StarMsg>,
        args: StarArgs,
    ) -> Result<StarState, ActorProcessingErr> {
        tracing::debug!(target: targets::MACHINE, star = args.id, "star started");
        let random = 0x9E37_79B9_7F4A_7C15 ^ (args.id as u64 + 1);
        Ok(StarState {
            args,
            histories: HashMap::new(),
            random,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<StarMsg>,
        msg: StarMsg,
        st: &mut StarState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StarMsg::Crashed {
                cell,
                reason,
                in_flight,
                stopping,
                normal,
                reply,
            } => {
                // A bad report must not kill the Star: it would be resent to
                // the next Star, which would die of it too, and so on until
                // the Machine stops restarting Stars. A report whose
                // handling panics ends its particle (given up) instead.
                let seq = cell.spawn_seq();
                let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    st.crashed(&cell, reason, in_flight, stopping, normal)
                }));
                let decision = decided.unwrap_or_else(|panic| {
                    st.histories.remove(&seq);
                    tracing::error!(
                        target: targets::CRASH,
                        star = st.args.id,
                        point = %cell.point(),
                        panic = %crate::event::panic_text(&*panic),
                        "handling a crash report panicked: the particle is given up"
                    );
                    (Decision::GiveUp, Duration::ZERO)
                });
                let _ = reply.send(decision);
            }
            StarMsg::Forget(seq) => {
                st.histories.remove(&seq);
            }
            StarMsg::Fail(reason) => return Err(reason.into()),
        }
        Ok(())
    }
}

impl StarState {
    fn crashed(
        &mut self,
        cell: &Arc<ParticleCell>,
        reason: String,
        in_flight: Option<InFlight>,
        stopping: bool,
        normal: bool,
    ) -> (Decision, Duration) {
        let point = cell.point();
        let span = tracing::warn_span!(target: targets::CRASH, "crash", star = self.args.id, point = %point, kind = %cell.kind());
        let _enter = span.enter();
        self.args.counters.crashes.fetch_add(1, Ordering::Relaxed);
        let limit = cell.restart_limit();
        // The limit was checked at spawn.
        let history = self
            .histories
            .entry(cell.spawn_seq())
            .or_insert_with(|| History {
                intensity: limit.intensity().unwrap_or_default(),
                backoff: limit.backoff.as_ref().map(|b| b.start()),
            });
        // OTP's restart types, for a top-level particle as for a child.
        let wanted = match cell.restart_type() {
            Restart::Permanent => true,
            Restart::Transient => !normal,
            Restart::Temporary => false,
        };
        let verdict = if stopping || !wanted {
            // Told to stop, or not to be restarted after this exit: not
            // restarted, and not counted as a restart.
            None
        } else {
            Some(history.intensity.record())
        };
        let in_period = match verdict {
            Some(RestartVerdict::Restart { in_period } | RestartVerdict::GiveUp { in_period }) => {
                in_period
            }
            None => 0,
        };
        let mut delay = Duration::ZERO;
        if let (Some(RestartVerdict::Restart { .. }), Some(backoff)) =
            (&verdict, &mut history.backoff)
        {
            self.random ^= self.random << 13;
            self.random ^= self.random >> 7;
            self.random ^= self.random << 17;
            delay = backoff.next_delay(std::time::Instant::now(), self.random);
        }
        let (decision, restarts) = match verdict {
            None if stopping => {
                self.histories.remove(&cell.spawn_seq());
                (Decision::Stop, cell.restarts())
            }
            None => {
                self.histories.remove(&cell.spawn_seq());
                // Its Point is free as soon as its parent hears of it.
                cell.set_status(Status::Stopped);
                tracing::info!(
                    target: targets::CRASH,
                    restart = ?cell.restart_type(),
                    "not restarted (its restart type)"
                );
                (Decision::Exit, cell.restarts())
            }
            Some(verdict) => match verdict {
                RestartVerdict::Restart { .. } => {
                    self.args.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    (Decision::Restart, cell.add_restart())
                }
                RestartVerdict::GiveUp { in_period } => {
                    self.histories.remove(&cell.spawn_seq());
                    self.args.counters.gave_up.fetch_add(1, Ordering::Relaxed);
                    cell.set_status(Status::Stopped);
                    tracing::error!(
                        target: targets::CRASH,
                        in_period,
                        max = limit.max_restarts,
                        "restart limit exceeded: giving up"
                    );
                    (Decision::GiveUp, cell.restarts())
                }
            },
        };
        tracing::warn!(target: targets::CRASH, %reason, restarts, "particle crashed");
        let notice = CrashNotice {
            child: point.clone(),
            kind: cell.kind().clone(),
            reason,
            restarts,
            in_period,
            star: self.args.id,
            supervisor: None,
            gave_up: decision != Decision::Restart,
            in_flight,
        };
        self.args.events.emit(|| Event::Crashed(notice.clone()));
        if decision == Decision::Restart {
            self.args.events.emit(|| Event::Restarted {
                point: point.clone(),
                restarts,
            });
        }
        if decision == Decision::Restart {
            tracing::info_span!(target: targets::RESTART, "restart", point = %point, restarts)
                .in_scope(|| {
                    tracing::info!(target: targets::RESTART, "restarting particle");
                });
        }
        if let Some(parent) = cell.parent_cell() {
            if let Err((letter, _)) = parent.lane.push(Letter::Notice(Box::new(notice))) {
                letter.refuse(parent.point());
            }
        } else if let (true, Some(parent), Some(remote)) =
            (cell.remote_parent(), cell.parent(), self.args.remote.get())
        {
            // Its parent lives on another Machine: the cluster carries it.
            remote.crash_notice(parent, notice);
        }
        (decision, delay)
    }
}
