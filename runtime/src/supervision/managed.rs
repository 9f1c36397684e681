//! The handshake between a supervisor particle and one of its children.
//!
//! A supervised ("managed") child does not ask its Star what to do when an
//! incarnation ends: it tells its supervisor (an exit report in the
//! supervisor's lane) and parks, its lane open, until the supervisor says
//! `Resume` (a new incarnation on the same lane: queued waves are kept) or
//! `End` (the lane closes, waiting requests get a typed error). The
//! supervisor stops a running child for a strategy restart by suspending it
//! (its incarnation ends, its `stop` hook runs, the lane stays) or killing
//! it (the incarnation's future is dropped); the task itself lives on.

use std::future::{poll_fn, Future};
use std::task::Poll;

use hyperverse_supervisors::ExitReason;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::lane::LaneQueue;
use crate::{Body, DownReason};

/// Where a managed child's current incarnation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its `start` runs.
    Starting,
    /// It serves its lane.
    Running,
    /// Its incarnation has ended; it waits for its supervisor.
    Parked,
    /// Its task has ended for good.
    Ended,
}

/// What the supervisor tells a parked child.
pub(crate) enum Command {
    /// Start a new incarnation with these arguments.
    Resume(Body),
    /// End for good, with this reason for monitors and links.
    End(DownReason),
}

/// What a parked child was woken by.
pub(crate) enum Wake {
    Command(Command),
    /// Stopped from outside (its supervisor ending, `Machine::stop`).
    Shutdown,
}

struct State {
    /// Counts incarnations: the first is 1.
    incarnation: u64,
    phase: Phase,
    command: Option<Command>,
    /// The supervisor is stopping the running incarnation.
    suspend: bool,
    /// The supervisor is killing the running incarnation.
    kill: bool,
    /// What the kill ends it with.
    kill_exit: ExitReason,
    /// How the current incarnation's `start` went (`None` while it runs).
    started: Option<Result<(), String>>,
    /// How the last incarnation ended.
    last_exit: ExitReason,
}

impl State {
    /// A new incarnation begins.
    fn begin(&mut self) {
        self.incarnation += 1;
        self.phase = Phase::Starting;
        self.suspend = false;
        self.kill = false;
        self.kill_exit = ExitReason::Killed;
        self.started = None;
    }
}

/// Shared by a managed child's task and its supervisor.
pub(crate) struct Managed {
    state: Mutex<State>,
    /// Wakes whoever waits on the other side of a change.
    changed: Notify,
}

impl Managed {
    pub(crate) fn new() -> Self {
        Managed {
            state: Mutex::new(State {
                incarnation: 0,
                phase: Phase::Starting,
                command: None,
                suspend: false,
                kill: false,
                kill_exit: ExitReason::Killed,
                started: None,
                last_exit: ExitReason::Normal,
            }),
            changed: Notify::new(),
        }
    }

    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock());
        self.changed.notify_waiters();
        out
    }

    /// Waits until `ready` says so; `ready` is checked after every change.
    async fn wait_for<T>(&self, mut ready: impl FnMut(&mut State) -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a change in between is not missed.
            notified.as_mut().enable();
            if let Some(out) = ready(&mut self.state.lock()) {
                return out;
            }
            notified.await;
        }
    }

    // The child's side.

    /// The first incarnation begins (later ones begin as they take their
    /// `Resume`, under the same lock, so that no kill falls between).
    pub(crate) fn begin(&self) {
        self.change(State::begin);
    }

    /// The incarnation's `start` went this way.
    pub(crate) fn set_started(&self, outcome: Result<(), String>) {
        self.change(|st| {
            if outcome.is_ok() {
                st.phase = Phase::Running;
            }
            st.started = Some(outcome);
        });
    }

    /// Resolves once the supervisor kills the running incarnation.
    pub(crate) async fn killed(&self) {
        self.wait_for(|st| st.kill.then_some(())).await
    }

    /// True if the supervisor asked the running incarnation to stop.
    pub(crate) fn suspending(&self) -> bool {
        let st = self.state.lock();
        st.suspend || st.kill
    }

    /// The incarnation has ended this way; the child now waits.
    pub(crate) fn park(&self, exit: ExitReason) {
        self.change(|st| {
            st.phase = Phase::Parked;
            st.last_exit = exit;
        });
    }

    /// Waits for the supervisor's word, or a stop from outside.
    pub(crate) async fn wait<C>(&self, lane: &LaneQueue<C>) -> Wake {
        let notified = self.changed.notified();
        let mut notified = std::pin::pin!(notified);
        poll_fn(|cx| loop {
            if lane.shutdown_requested() {
                return Poll::Ready(Wake::Shutdown);
            }
            {
                let mut st = self.state.lock();
                if let Some(c) = st.command.take() {
                    if matches!(c, Command::Resume(_)) {
                        st.begin();
                    }
                    drop(st);
                    self.changed.notify_waiters();
                    return Poll::Ready(Wake::Command(c));
                }
            }
            lane.wake_on_stop(cx.waker());
            if notified.as_mut().poll(cx).is_pending() {
                // Checked again after registering: nothing is missed.
                if lane.shutdown_requested() || self.state.lock().command.is_some() {
                    continue;
                }
                return Poll::Pending;
            }
            notified.set(self.changed.notified());
        })
        .await
    }

    /// The task has ended for good.
    pub(crate) fn set_ended(&self) {
        self.change(|st| st.phase = Phase::Ended);
    }

    // The supervisor's side.

    pub(crate) fn phase(&self) -> Phase {
        self.state.lock().phase
    }

    pub(crate) fn incarnation(&self) -> u64 {
        self.state.lock().incarnation
    }

    pub(crate) fn last_exit(&self) -> ExitReason {
        self.state.lock().last_exit.clone()
    }

    /// Starts a new incarnation of a parked child; returns its number.
    pub(crate) fn resume(&self, args: Body) -> u64 {
        self.change(|st| {
            st.command = Some(Command::Resume(args));
            st.incarnation + 1
        })
    }

    /// Ends a parked child for good.
    pub(crate) fn end(&self, why: DownReason) {
        self.change(|st| st.command = Some(Command::End(why)));
    }

    /// Asks the running incarnation to stop (its lane is kept).
    pub(crate) fn suspend<C>(&self, lane: &LaneQueue<C>) {
        self.change(|st| st.suspend = true);
        lane.request_stop();
    }

    /// Drops the running incarnation at once.
    pub(crate) fn kill(&self) {
        self.kill_as(ExitReason::Killed);
    }

    /// Drops the running incarnation at once; it ends with `exit`.
    pub(crate) fn kill_as(&self, exit: ExitReason) {
        self.change(|st| {
            st.kill = true;
            st.kill_exit = exit;
            // A resume not yet taken is withdrawn: the child stays parked
            // (its supervisor's incarnation that resumed it is gone).
            if matches!(st.command, Some(Command::Resume(_))) {
                st.command = None;
            }
        });
    }

    /// The reason a killed incarnation ends with.
    pub(crate) fn kill_exit(&self) -> ExitReason {
        self.state.lock().kill_exit.clone()
    }

    /// Waits for incarnation `n`'s `start` to finish.
    pub(crate) async fn started(&self, n: u64) -> Result<(), String> {
        self.wait_for(|st| {
            // A start that went well counts, even if it has ended since.
            if st.incarnation == n && st.started.is_some() {
                return st.started.clone();
            }
            if st.phase == Phase::Ended {
                return Some(Err("it ended before it started".to_string()));
            }
            None
        })
        .await
    }

    /// Waits until the incarnation has ended (or the task has).
    pub(crate) async fn parked(&self) {
        self.wait_for(|st| matches!(st.phase, Phase::Parked | Phase::Ended).then_some(()))
            .await
    }
}
