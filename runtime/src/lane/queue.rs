//! The shared half of a lane: the queue senders push to, and everything
//! that acts on it from outside the particle's task (stop, close, faults,
//! the supervisor's refuse windows).

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use super::bound::Bound;
use super::fault::LaneFault;
use super::letter::{Answer, Letter, Queued, Stamped};
use super::limit::{LaneLimit, WhenFull};
use super::watch::{MonitorId, Watched};
use crate::Fault;
use crate::{Point, WaveError};

/// The answer channels of the requests from a particle's descendants that
/// wait in its lane (boxed in the lane: most particles never get one). A
/// crash answers them all (`Stopped`) at once, so a child blocked on its
/// crashing parent can stop: the cost is theirs, never the other waves'.
#[derive(Default)]
pub(super) struct Below {
    pub(super) next: u32,
    pub(super) replies: HashMap<u32, (Point, Answer)>,
    /// Letters looked at by crash handling (for tests that a restart does
    /// not scan the queue).
    pub(super) scanned: u64,
}

pub(super) struct LaneState<C> {
    pub(super) queue: VecDeque<Queued>,
    /// The receiver's incarnation epoch (see [`Stamped::epoch`]).
    pub(super) epoch: u32,
    /// Requests from descendants waiting here (see [`Below`]).
    pub(super) below: Option<Box<Below>>,
    pub(super) waker: Option<Waker>,
    pub(super) closed: bool,
    /// While the particle stops its children (to end or restart), requests
    /// from below its Point are refused: a child waiting on its parent's
    /// answer would otherwise keep the parent waiting for the child. (A
    /// flag: a letter's target is the lane's Point, so "below" is read off
    /// the letter, as [`LaneState::stamp`] does.)
    pub(super) refuse_below: bool,
    /// While a supervisor stops this child, requests from it (and below it)
    /// are refused for the same reason: boxed, as only supervisors use it.
    pub(super) refuse_from: Option<Box<Point>>,
    /// Injected faults (boxed: only a faulty lane pays for them).
    pub(super) fault: Option<Box<LaneFault>>,
    /// Monitors and links (see [`Watched`]).
    pub(super) watched: Watched<C>,
    /// Set once the monitors have fired: later ones fire at once.
    pub(super) monitors_fired: bool,
    /// Letters the receiver has taken off the queue, over every
    /// incarnation: counted where it takes them, under the lock it holds
    /// anyway, so the hot path pays no atomic for it. (Tools sample it for
    /// a rate: `hyperverse top`, the daemon's metrics.)
    pub(super) taken: u64,
}

impl<C> LaneState<C> {
    /// Files `answer` from `from` in [`Below`]; returns its ticket.
    fn file_below(&mut self, from: &Point, answer: Answer) -> u32 {
        let below = self.below.get_or_insert_with(Box::default);
        below.next = below.next.wrapping_add(1).max(1);
        let ticket = below.next;
        below.replies.insert(ticket, (from.clone(), answer));
        ticket
    }

    /// Stamps a letter being queued. A request (or control letter waiting
    /// for an answer) from a descendant leaves its answer channel in
    /// [`Below`] (the queued letter holds a stand-in).
    pub(super) fn stamp(&mut self, letter: Letter) -> Queued {
        let (letter, ticket) = match letter {
            Letter::Wave(wave) => return Queued::Wave(wave),
            Letter::Request(wave, tx) if !wave.to.is_ancestor_of(&wave.from) => {
                return Queued::Request(wave, tx)
            }
            Letter::Typed(t) if t.reply.is_none() || !t.to.is_ancestor_of(&t.from) => {
                return Queued::Typed(t)
            }
            Letter::Typed(mut t) => {
                let tx = t.reply.take().expect("checked above");
                let ticket = self.file_below(&t.from, Answer::Wave(tx));
                t.reply = Some(oneshot::channel().0);
                (Letter::Typed(t), ticket)
            }
            Letter::Request(wave, tx) => {
                let ticket = self.file_below(&wave.from, Answer::Wave(tx));
                (Letter::Request(wave, oneshot::channel().0), ticket)
            }
            Letter::Control(mut c) if c.reply.is_some() && c.to.is_ancestor_of(&c.from) => {
                let tx = c.reply.take().expect("checked above");
                let ticket = self.file_below(&c.from, Answer::Control(tx));
                (Letter::Control(c), ticket)
            }
            other => (other, 0),
        };
        Queued::Stamped(Box::new(Stamped {
            letter,
            epoch: self.epoch,
            ticket,
        }))
    }

    /// The letter as it was sent, its answer channel back in place; `None`
    /// if it was answered meanwhile (refused at a crash).
    pub(super) fn unstamp(&mut self, stamped: Stamped) -> Option<Letter> {
        if stamped.ticket == 0 {
            return Some(stamped.letter);
        }
        let (_, answer) = self.below.as_mut()?.replies.remove(&stamped.ticket)?;
        match (stamped.letter, answer) {
            (Letter::Request(wave, _), Answer::Wave(tx)) => Some(Letter::Request(wave, tx)),
            (Letter::Typed(mut t), Answer::Wave(tx)) => {
                t.reply = Some(tx);
                Some(Letter::Typed(t))
            }
            (Letter::Control(mut c), Answer::Control(tx)) => {
                c.reply = Some(tx);
                Some(Letter::Control(c))
            }
            (other, _) => Some(other),
        }
    }

    /// Takes the answer channels of the waiting letters from descendants
    /// that `refused` picks (by sender), to answer them `Stopped`.
    pub(super) fn take_below(&mut self, refused: impl Fn(&Point) -> bool) -> Vec<Answer> {
        let Some(below) = self.below.as_mut() else {
            return Vec::new();
        };
        below.scanned += below.replies.len() as u64;
        let tickets: Vec<u32> = below
            .replies
            .iter()
            .filter(|(_, (from, _))| refused(from))
            .map(|(t, _)| *t)
            .collect();
        tickets
            .into_iter()
            .filter_map(|t| below.replies.remove(&t).map(|(_, tx)| tx))
            .collect()
    }

    pub(super) fn refuses(&self, letter: &Letter) -> bool {
        // Most lanes refuse no one: two field reads, before the letter.
        if !self.refuse_below && self.refuse_from.is_none() {
            return false;
        }
        let Some((from, to)) = letter.requester() else {
            return false;
        };
        (self.refuse_below && to.is_ancestor_of(from))
            || self
                .refuse_from
                .as_ref()
                .is_some_and(|child| child.contains(from))
    }
}

/// Why a letter was not queued.
pub(crate) enum Refusal {
    /// The lane is closed (or refuses this sender for now).
    Closed,
    /// The lane is at capacity.
    Full,
}

/// The shared half of a lane, kept in the particle's cell.
pub(crate) struct LaneQueue<C> {
    pub(super) state: Mutex<LaneState<C>>,
    /// Outside the lock: the receiver checks it before every letter.
    pub(super) stop: AtomicBool,
    /// Set with `stop` when the stop comes from outside (a parent ending,
    /// `Machine::stop`): the end is then a shutdown, not a normal exit.
    pub(super) shutdown: AtomicBool,
    /// Set once a fault was injected: the receiver then takes the slow path.
    pub(super) faulted: AtomicBool,
    /// Boxed: most lanes are unbounded and pay one pointer for it.
    pub(super) bound: Option<Box<Bound>>,
}

/// What the receiver gets next.
pub(crate) enum Next {
    Letter(Letter),
    /// Stop was requested: finish now, before anything still queued.
    Stop,
    /// An injected crash, with its reason.
    Crash(String),
    /// A fault changed while waiting: look again.
    Interrupted,
}

impl<C> LaneQueue<C> {
    pub(crate) fn new(limit: Option<LaneLimit>) -> Self {
        LaneQueue {
            bound: limit.map(|limit| {
                Box::new(Bound {
                    limit,
                    room: Notify::new(),
                    bytes: AtomicUsize::new(0),
                })
            }),
            state: Mutex::new(LaneState {
                queue: VecDeque::new(),
                epoch: 0,
                below: None,
                waker: None,
                closed: false,
                refuse_below: false,
                refuse_from: None,
                fault: None,
                watched: Watched::default(),
                monitors_fired: false,
                taken: 0,
            }),
            stop: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            faulted: AtomicBool::new(false),
        }
    }

    /// The lane's limit, if it is bounded.
    pub(crate) fn limit(&self) -> Option<LaneLimit> {
        self.bound.as_ref().map(|b| b.limit)
    }

    /// Queues a letter; hands it back if the lane is closed or full.
    pub(crate) fn push(&self, letter: Letter) -> Result<(), (Letter, Refusal)> {
        let waker = {
            let mut st = self.state.lock();
            if st.closed || st.refuses(&letter) {
                return Err((letter, Refusal::Closed));
            }
            if let Some(b) = &self.bound {
                if !b.admit(&letter, st.queue.len()) {
                    return Err((letter, Refusal::Full));
                }
            }
            let queued = st.stamp(letter);
            st.queue.push_back(queued);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// True once a stop was requested.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps for `d`, or less if a stop is requested meanwhile. Only the
    /// lane's own task may call it (it borrows the receiver's waker slot).
    pub(crate) async fn sleep_unless_stopped(&self, d: Duration) {
        let sleep = tokio::time::sleep(d);
        let mut sleep = std::pin::pin!(sleep);
        poll_fn(|cx| {
            if self.stop_requested() || sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            self.state.lock().waker = Some(cx.waker().clone());
            if self.stop_requested() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Stops the particle from outside: as `request_stop`, and its end is a
    /// shutdown (OTP's `shutdown` reason: linked particles die of it).
    pub(crate) fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.request_stop();
    }

    /// True if the stop came from outside.
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Asks the receiver to stop before its next letter.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let waker = self.state.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Refuses requests from `child` and below (answering those queued with
    /// `Stopped`) while a supervisor stops that child, or ends that window
    /// (`None`). Only the requests from descendants waiting here are looked
    /// at (see [`Below`]), never the rest of the queue.
    pub(crate) fn refuse_requests_from(&self, child: Option<&Point>, me: &Point) {
        let refused = {
            let mut st = self.state.lock();
            st.refuse_from = child.map(|c| Box::new(c.clone()));
            let Some(child) = child else {
                return;
            };
            st.take_below(|from| child.contains(from))
        };
        refuse_replies(refused, me);
    }

    /// Letters crash handling has looked at, in all (see [`Below`]).
    pub(crate) fn scanned(&self) -> u64 {
        self.state.lock().below.as_ref().map_or(0, |b| b.scanned)
    }

    /// Injects a fault (its random choices seeded by `seed`, unless 0).
    pub(crate) fn inject(&self, fault: Fault, seed: u64) {
        let waker = {
            let mut st = self.state.lock();
            let f = st.fault.get_or_insert_with(Box::default);
            f.apply(fault, seed);
            // A fully healed lane goes back to the fast path.
            let idle = f.is_idle();
            if idle {
                st.fault = None;
            }
            self.faulted.store(!idle, Ordering::SeqCst);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Drops an injected crash not taken yet: it was meant for an
    /// incarnation that has ended.
    pub(crate) fn clear_pending_crash(&self) {
        if self.faulted.load(Ordering::Acquire) {
            if let Some(f) = self.state.lock().fault.as_mut() {
                f.crash = None;
            }
        }
    }

    /// True while an injected crash waits to be taken.
    pub(crate) fn crash_pending(&self) -> bool {
        self.faulted.load(Ordering::Acquire)
            && self
                .state
                .lock()
                .fault
                .as_ref()
                .is_some_and(|f| f.crash.is_some())
    }

    /// Takes an injected start failure, if any.
    pub(crate) fn take_fail_start(&self) -> Option<String> {
        if !self.faulted.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().fault.as_mut()?.fail_start.take()
    }

    /// Withdraws a stop request (a supervised child resuming after its
    /// supervisor stopped it), unless the stop came from outside.
    pub(crate) fn clear_stop(&self) {
        self.stop.store(false, Ordering::SeqCst);
        // `request_shutdown` sets `shutdown` before `stop`: a shutdown that
        // raced with the store above is seen here, and its stop restored.
        if self.shutdown.load(Ordering::SeqCst) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Makes a stop request wake `waker` (a parked supervised child, which
    /// is not receiving).
    pub(crate) fn wake_on_stop(&self, waker: &std::task::Waker) {
        self.state.lock().waker = Some(waker.clone());
    }

    /// Closes the lane for good and returns what was still queued.
    pub(crate) fn close(&self, point: &Point) -> VecDeque<Letter> {
        let (rest, swallowed, below) = {
            let mut st = self.state.lock();
            st.closed = true;
            st.waker = None;
            let swallowed = st.fault.as_mut().map(|f| f.take_swallowed());
            let below = st.below.take();
            if let Some(b) = &self.bound {
                b.release_all();
            }
            (std::mem::take(&mut st.queue), swallowed, below)
        };
        // Requests from descendants: answered here (their letters hold
        // stand-ins).
        if let Some(below) = below {
            refuse_replies(below.replies.into_values().map(|(_, tx)| tx), point);
        }
        let rest = rest.into_iter().map(Queued::into_letter).collect();
        // Requests a drop fault swallowed: their particle is gone now.
        for reply in swallowed.into_iter().flatten() {
            let _ = reply.send(Err(WaveError::Stopped {
                point: point.clone(),
            }));
        }
        // Senders waiting for room try again, find the lane closed, and
        // get `Stopped`.
        self.wake_room();
        rest
    }

    fn wake_room(&self) {
        if let Some(b) = &self.bound {
            b.room.notify_waiters();
        }
    }

    /// Queues a letter, waiting for room while the lane is full and its
    /// policy is to wait; hands it back if it is refused for good.
    pub(crate) async fn push_waiting(&self, mut letter: Letter) -> Result<(), (Letter, Refusal)> {
        let Some(bound) = &self.bound else {
            return self.push(letter);
        };
        loop {
            let room = bound.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before the push, so room made in between is not missed.
            room.as_mut().enable();
            match self.push(letter) {
                Err((back, Refusal::Full)) if bound.limit.when_full == WhenFull::Wait => {
                    letter = back;
                    room.await;
                }
                done => return done,
            }
        }
    }

    /// Letters waiting (not counting a batch the receiver already took).
    pub(crate) fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Letters waiting, and letters taken by the receiver so far, read
    /// together.
    pub(crate) fn load(&self) -> (usize, u64) {
        let st = self.state.lock();
        (st.queue.len(), st.taken)
    }
}

/// Answers requests that will never be handled with `Stopped`.
pub(super) fn refuse_replies(replies: impl IntoIterator<Item = Answer>, point: &Point) {
    for answer in replies {
        answer.refuse(point);
    }
}

/// Monitors and links (see [`super::watch`]): each under the lane's lock.
impl<C> LaneQueue<C> {
    /// Adds a monitor; false if the particle's monitors already fired (it
    /// has ended), so the caller delivers the notice itself.
    pub(crate) fn add_monitor(&self, r: MonitorId, watcher: Weak<C>) -> bool {
        let mut st = self.state.lock();
        if st.monitors_fired {
            return false;
        }
        st.watched.add_monitor(r, watcher);
        true
    }

    /// The watcher of a monitor on this particle, if it is there.
    pub(crate) fn monitor_watcher(&self, r: MonitorId) -> Option<Weak<C>> {
        self.state.lock().watched.monitor_watcher(r)
    }

    /// Removes a monitor; its watcher if it was there (it will never fire).
    pub(crate) fn remove_monitor(&self, r: MonitorId) -> Option<Weak<C>> {
        self.state.lock().watched.remove_monitor(r)
    }

    /// Forgets a monitor this particle set (demonitored, or fired): the
    /// watcher keeps nothing of a target it no longer watches.
    pub(crate) fn forget_watching(&self, r: MonitorId) {
        self.state.lock().watched.forget_watching(r)
    }

    /// Monitors on this particle, links, and monitors it set: what its
    /// watch lists hold (for tests of their growth).
    pub(crate) fn watch_len(&self) -> usize {
        self.state.lock().watched.len()
    }

    /// Adds a link to `other` (once); false if this lane is closed.
    pub(crate) fn add_link(&self, other: &Arc<C>) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.watched.add_link(other);
        true
    }

    /// Removes the link to `other`, if any.
    pub(crate) fn remove_link(&self, other: &C) {
        self.state.lock().watched.remove_link(other)
    }

    /// Records a monitor this particle set on `target`.
    pub(crate) fn note_watching(&self, target: &Arc<C>, r: MonitorId) {
        self.state.lock().watched.note_watching(target, r)
    }

    /// Takes the monitors this particle set, to remove them.
    pub(crate) fn take_watching(&self) -> Vec<(Weak<C>, MonitorId)> {
        self.state.lock().watched.take_watching()
    }

    /// Takes every link, to fire them.
    pub(crate) fn take_links(&self) -> Vec<Weak<C>> {
        self.state.lock().watched.take_links()
    }

    /// Takes the monitors to fire them, once.
    pub(crate) fn take_monitors(&self) -> Vec<(MonitorId, Weak<C>)> {
        let mut st = self.state.lock();
        st.monitors_fired = true;
        st.watched.take_monitors()
    }
}
