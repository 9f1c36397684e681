//! Lanes: a particle's mailbox, and the path a wave takes to it.
//!
//! A lane is Hyperverse's own queue rather than a channel per particle:
//! it costs nothing until the first wave (an empty `VecDeque` does not
//! allocate), it outlives a crash (waves queued for a particle are kept for
//! its next incarnation), and it can be asked to stop, or closed with what is
//! left in it handed back so that waiting requests get an answer.
//!
//! Order: every push takes the lane's lock, so waves from one sender are
//! queued in the order that sender pushed them, whichever Star either side
//! lives on. The receiver takes the whole queue at once (one lock per batch,
//! not per wave) and hands it out front to back.
//!
//! Senders: every wave's sender is stamped by the runtime, never given by
//! the caller. [`Lane::signal`], [`Lane::request`] and the rest take no
//! sender: a wave sent inside a particle's handler is from that particle,
//! and one sent from anywhere else is from the Machine itself
//! ([`Point::root`]). The runtime's own guards key on the sender (a parent
//! stopping its children refuses their requests, so that neither waits for
//! the other), and so will what is coming: a cluster carries the sender to
//! other Machines, and access rules on Points judge a wave by it. A sender
//! the caller could write would let any code slip past all three.
//!
//! Control traffic (supervisor API calls, a supervised child's exit report,
//! a Driver's trusted control such as a WASM hot reload) travels in the
//! same lanes as letters of its own kind, not as waves: no wave, whatever
//! its method, can produce one (see [`crate::Control`]).

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::cell::ParticleCell;
use crate::control::{sender, ControlKind, ControlLetter, ControlReply, ControlRx, ControlTx};
use crate::deadline::Deadlines;
use crate::fault::{Fate, Fault, LaneFault};
use crate::targets;
use crate::{
    Body, CrashNotice, DownNotice, ExitSignal, Method, MonitorRef, Point, Wave, WaveError, WaveKind,
};

/// Where a request's answer goes: a reply wave or a typed error.
pub(crate) type ReplyTx = oneshot::Sender<Result<Wave, WaveError>>;
pub(crate) type ReplyRx = oneshot::Receiver<Result<Wave, WaveError>>;

/// One item in a lane.
pub(crate) enum Letter {
    /// A signal (or a reply routed as a signal).
    Wave(Wave),
    /// A request and where to send its answer.
    Request(Wave, ReplyTx),
    /// A child of this particle crashed (boxed: rare, and large).
    Notice(Box<CrashNotice>),
    /// A particle this one monitors is down.
    Down(DownNotice),
    /// A linked particle ended.
    Exit(ExitSignal),
    /// Control traffic, made only by the runtime (boxed: rare).
    Control(Box<ControlLetter>),
}

impl Letter {
    /// Answers a letter that will never be handled: a waiting request gets
    /// `Stopped` instead of hanging.
    pub(crate) fn refuse(self, point: &Point) {
        let stopped = || WaveError::Stopped {
            point: point.clone(),
        };
        match self {
            Letter::Request(_, tx) => {
                let _ = tx.send(Err(stopped()));
            }
            Letter::Control(c) => {
                if let Some(tx) = c.reply {
                    let _ = tx.send(Err(stopped()));
                }
            }
            _ => {}
        }
    }

    /// The sender of a letter that waits for an answer (a request, or a
    /// control letter with a reply channel): the guards against a parent
    /// and its child waiting for each other key on it.
    /// Given with the letter's target (the lane's Point).
    fn requester(&self) -> Option<(&Point, &Point)> {
        match self {
            Letter::Request(wave, _) => Some((&wave.from, &wave.to)),
            Letter::Control(c) if c.reply.is_some() => Some((&c.from, &c.to)),
            _ => None,
        }
    }
}

/// A letter as it waits in a lane. A wave, or a request from anyone but a
/// descendant, waits as it was sent (nearly every letter: the queue's slots
/// stay the size of a letter); the rest are stamped, under the lane's lock,
/// with what a restart needs to know of them without looking through the
/// queue (boxed: they are rare).
pub(crate) enum Queued {
    Wave(Wave),
    Request(Wave, ReplyTx),
    Stamped(Box<Stamped>),
}

impl Queued {
    /// The letter as it lies in the lane, stamps dropped.
    fn into_letter(self) -> Letter {
        match self {
            Queued::Wave(wave) => Letter::Wave(wave),
            Queued::Request(wave, tx) => Letter::Request(wave, tx),
            Queued::Stamped(s) => s.letter,
        }
    }

    /// The queued letter's weight against a lane's `max_bytes`.
    fn bytes(&self) -> usize {
        match self {
            Queued::Wave(w) | Queued::Request(w, _) => w.method.len() + w.body.len(),
            Queued::Stamped(s) => s.letter.bytes(),
        }
    }

    /// Whether it is a system letter (see [`Letter::is_system`]).
    fn is_system(&self) -> bool {
        match self {
            Queued::Wave(_) | Queued::Request(..) => false,
            Queued::Stamped(s) => s.letter.is_system(),
        }
    }
}

/// A letter stamped as it was queued (see [`Queued`]).
pub(crate) struct Stamped {
    letter: Letter,
    /// The receiver's incarnation epoch when it was queued: a crash notice,
    /// exit signal or down notice of an earlier one is dropped when taken.
    epoch: u32,
    /// Non-zero for a request from a descendant of the lane's particle:
    /// its answer channel waits in [`Below`] under this ticket (the letter
    /// holds a stand-in), so that a crash can answer it without a scan.
    ticket: u32,
}

/// The answer channels of the requests from a particle's descendants that
/// wait in its lane (boxed in the lane: most particles never get one). A
/// crash answers them all (`Stopped`) at once, so a child blocked on its
/// crashing parent can stop: the cost is theirs, never the other waves'.
#[derive(Default)]
struct Below {
    next: u32,
    replies: HashMap<u32, (Point, Answer)>,
    /// Letters looked at by crash handling (for tests that a restart does
    /// not scan the queue).
    scanned: u64,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Queued>,
    /// The receiver's incarnation epoch (see [`Stamped::epoch`]).
    epoch: u32,
    /// Requests from descendants waiting here (see [`Below`]).
    below: Option<Box<Below>>,
    waker: Option<Waker>,
    closed: bool,
    /// While the particle stops its children (to end or restart), requests
    /// from below its Point are refused: a child waiting on its parent's
    /// answer would otherwise keep the parent waiting for the child. (A
    /// flag: a letter's target is the lane's Point, so "below" is read off
    /// the letter, as [`LaneState::stamp`] does.)
    refuse_below: bool,
    /// While a supervisor stops this child, requests from it (and below it)
    /// are refused for the same reason: boxed, as only supervisors use it.
    refuse_from: Option<Box<Point>>,
    /// Injected faults (boxed: only a faulty lane pays for them).
    fault: Option<Box<LaneFault>>,
    /// Monitors and links: boxed, as most particles have neither and every
    /// particle pays for this field.
    watch: Option<Box<Watch>>,
    /// Set once the monitors have fired: later ones fire at once.
    monitors_fired: bool,
}

#[derive(Default)]
struct Watch {
    /// Who monitors this particle.
    monitors: Vec<(MonitorRef, Weak<ParticleCell>)>,
    /// The particles this incarnation is linked to.
    links: Vec<Weak<ParticleCell>>,
    /// The monitors this incarnation set on others (removed when it ends).
    watching: Vec<(Weak<ParticleCell>, MonitorRef)>,
}

impl LaneState {
    fn watch(&mut self) -> &mut Watch {
        self.watch.get_or_insert_with(Box::default)
    }

    /// Frees the watch lists once they are all empty: a particle that
    /// monitored or was linked once pays nothing for it afterwards.
    fn prune_watch(&mut self) {
        if self
            .watch
            .as_ref()
            .is_some_and(|w| w.monitors.is_empty() && w.links.is_empty() && w.watching.is_empty())
        {
            self.watch = None;
        }
    }
}

/// Where a waiting letter's answer goes: a request's or a control letter's.
enum Answer {
    Wave(ReplyTx),
    Control(ControlTx),
}

impl Answer {
    /// Answers `Stopped`: the letter will not be handled.
    fn refuse(self, point: &Point) {
        let stopped = WaveError::Stopped {
            point: point.clone(),
        };
        match self {
            Answer::Wave(tx) => {
                let _ = tx.send(Err(stopped));
            }
            Answer::Control(tx) => {
                let _ = tx.send(Err(stopped));
            }
        }
    }
}

impl LaneState {
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
    fn stamp(&mut self, letter: Letter) -> Queued {
        let (letter, ticket) = match letter {
            Letter::Wave(wave) => return Queued::Wave(wave),
            Letter::Request(wave, tx) if !wave.to.is_ancestor_of(&wave.from) => {
                return Queued::Request(wave, tx)
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
    fn unstamp(&mut self, stamped: Stamped) -> Option<Letter> {
        if stamped.ticket == 0 {
            return Some(stamped.letter);
        }
        let (_, answer) = self.below.as_mut()?.replies.remove(&stamped.ticket)?;
        match (stamped.letter, answer) {
            (Letter::Request(wave, _), Answer::Wave(tx)) => Some(Letter::Request(wave, tx)),
            (Letter::Control(mut c), Answer::Control(tx)) => {
                c.reply = Some(tx);
                Some(Letter::Control(c))
            }
            (other, _) => Some(other),
        }
    }

    /// Takes the answer channels of the waiting letters from descendants
    /// that `refused` picks (by sender), to answer them `Stopped`.
    fn take_below(&mut self, refused: impl Fn(&Point) -> bool) -> Vec<Answer> {
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

    fn refuses(&self, letter: &Letter) -> bool {
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

/// A lane's capacity, and what a sender meets when it is full.
///
/// Lanes are unbounded unless a spawn asks for a limit
/// ([`crate::SpawnOptions::lane`]). The capacity counts waves waiting in
/// the lane; the particle takes what waits in one batch, so up to twice the
/// capacity can be outstanding at once. System letters (crash notices, down
/// notices, exit signals) are never refused. A capacity of 0 is refused at
/// spawn.
///
/// A count alone does not bound memory when waves can be large (a guest
/// may send itself thousands of 4 KiB waves within every budget), so a
/// limit may also cap the bytes of the waves waiting (`max_bytes`: their
/// methods and bodies): a wave that would take the lane past it meets the
/// same policy as one past the capacity. A lane with nothing waiting takes
/// any one wave, however large, so that no wave is refused for ever.
///
/// ```
/// use hyperverse_runtime::{LaneLimit, WhenFull};
///
/// let limit = LaneLimit::new(1_000, WhenFull::Wait).max_bytes(16 << 20);
/// assert_eq!((limit.capacity, limit.max_bytes), (1_000, Some(16 << 20)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaneLimit {
    /// Waves that may wait in the lane.
    pub capacity: usize,
    /// What a sender meets when that many wait (or that many bytes).
    pub when_full: WhenFull,
    /// Bytes (methods and bodies) that may wait in the lane (default: no
    /// cap beyond the capacity).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

impl LaneLimit {
    /// A limit of `capacity` waves, and no cap on their bytes.
    pub const fn new(capacity: usize, when_full: WhenFull) -> Self {
        LaneLimit {
            capacity,
            when_full,
            max_bytes: None,
        }
    }

    /// This limit, with at most `bytes` of waves waiting.
    pub const fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = Some(bytes);
        self
    }
}

/// A full lane's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WhenFull {
    /// Backpressure: async senders ([`Lane::signal_waiting`], requests) wait
    /// for room; a synchronous send cannot wait and gets
    /// [`WaveError::LaneFull`].
    Wait,
    /// Every sender gets [`WaveError::LaneFull`] at once.
    Reject,
}

struct Bound {
    limit: LaneLimit,
    /// Woken whenever the particle takes waves out of the lane.
    room: Notify,
    /// Bytes of the waves waiting, kept only if `limit.max_bytes` is set;
    /// changed under the lane's lock (an atomic only so that `Bound` needs
    /// no lock of its own).
    bytes: AtomicUsize,
}

impl Bound {
    /// Whether `letter` fits, counting it in if so.
    fn admit(&self, letter: &Letter, waiting: usize) -> bool {
        if letter.is_system() {
            return true;
        }
        if waiting >= self.limit.capacity {
            return false;
        }
        let Some(max) = self.limit.max_bytes else {
            return true;
        };
        let (held, size) = (self.bytes.load(Ordering::Relaxed), letter.bytes());
        if waiting > 0 && held.saturating_add(size) > max {
            return false;
        }
        self.bytes
            .store(held.saturating_add(size), Ordering::Relaxed);
        true
    }

    /// `letter` left the lane.
    fn release(&self, letter: &Queued) {
        if self.limit.max_bytes.is_some() && !letter.is_system() {
            let held = self.bytes.load(Ordering::Relaxed);
            self.bytes
                .store(held.saturating_sub(letter.bytes()), Ordering::Relaxed);
        }
    }

    /// Every waiting letter left the lane at once.
    fn release_all(&self) {
        self.bytes.store(0, Ordering::Relaxed);
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
#[derive(Default)]
pub(crate) struct LaneQueue {
    state: Mutex<LaneState>,
    /// Outside the lock: the receiver checks it before every letter.
    stop: AtomicBool,
    /// Set with `stop` when the stop comes from outside (a parent ending,
    /// `Machine::stop`): the end is then a shutdown, not a normal exit.
    shutdown: AtomicBool,
    /// Set once a fault was injected: the receiver then takes the slow path.
    faulted: AtomicBool,
    /// Boxed: most lanes are unbounded and pay one pointer for it.
    bound: Option<Box<Bound>>,
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

impl LaneQueue {
    pub(crate) fn new(limit: Option<LaneLimit>) -> Self {
        LaneQueue {
            bound: limit.map(|limit| {
                Box::new(Bound {
                    limit,
                    room: Notify::new(),
                    bytes: AtomicUsize::new(0),
                })
            }),
            ..LaneQueue::default()
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
}

/// Answers requests that will never be handled with `Stopped`.
fn refuse_replies(replies: impl IntoIterator<Item = Answer>, point: &Point) {
    for answer in replies {
        answer.refuse(point);
    }
}

impl Letter {
    fn is_for_incarnation(&self) -> bool {
        matches!(self, Letter::Notice(_) | Letter::Exit(_) | Letter::Down(_))
    }

    /// System letters (crash and down notices) are never refused for room.
    fn is_system(&self) -> bool {
        match self {
            Letter::Notice(_) | Letter::Down(_) | Letter::Exit(_) => true,
            // A supervised child's exit report must reach its supervisor;
            // only the runtime makes one.
            Letter::Control(c) => matches!(c.kind, ControlKind::Exit(_) | ControlKind::Retry),
            Letter::Wave(_) | Letter::Request(..) => false,
        }
    }

    /// What a letter weighs against a lane's `max_bytes`: a wave's method
    /// and body, a Driver control's body; nothing for system letters.
    fn bytes(&self) -> usize {
        match self {
            Letter::Wave(w) | Letter::Request(w, _) => w.method.len() + w.body.len(),
            Letter::Control(c) => match &c.kind {
                ControlKind::Driver(body) => body.len(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Injected faults (drops, delays) are for waves: the runtime's own
    /// letters and control traffic pass them.
    fn skips_faults(&self) -> bool {
        !matches!(self, Letter::Wave(_) | Letter::Request(..))
    }
}

impl LaneQueue {
    /// Adds a monitor; false if the particle's monitors already fired (it
    /// has ended), so the caller delivers the notice itself.
    pub(crate) fn add_monitor(&self, r: MonitorRef, watcher: Weak<ParticleCell>) -> bool {
        let mut st = self.state.lock();
        if st.monitors_fired {
            return false;
        }
        st.watch().monitors.push((r, watcher));
        true
    }

    /// Removes a monitor; its watcher if it was there (it will never fire).
    pub(crate) fn remove_monitor(&self, r: MonitorRef) -> Option<Weak<ParticleCell>> {
        let mut st = self.state.lock();
        let watch = st.watch.as_mut()?;
        let at = watch.monitors.iter().position(|(m, _)| *m == r)?;
        let (_, watcher) = watch.monitors.swap_remove(at);
        st.prune_watch();
        Some(watcher)
    }

    /// Forgets a monitor this particle set (demonitored, or fired): the
    /// watcher keeps nothing of a target it no longer watches.
    pub(crate) fn forget_watching(&self, r: MonitorRef) {
        let mut st = self.state.lock();
        if let Some(watch) = st.watch.as_mut() {
            if let Some(at) = watch.watching.iter().position(|(_, m)| *m == r) {
                watch.watching.swap_remove(at);
                st.prune_watch();
            }
        }
    }

    /// Monitors on this particle, links, and monitors it set: what its
    /// watch lists hold (for tests of their growth).
    pub(crate) fn watch_len(&self) -> usize {
        self.state
            .lock()
            .watch
            .as_ref()
            .map_or(0, |w| w.monitors.len() + w.links.len() + w.watching.len())
    }

    /// Adds a link to `other` (once); false if this lane is closed.
    pub(crate) fn add_link(&self, other: &Arc<ParticleCell>) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        let links = &mut st.watch().links;
        if !links
            .iter()
            .any(|l| std::ptr::eq(l.as_ptr(), Arc::as_ptr(other)))
        {
            links.push(Arc::downgrade(other));
        }
        true
    }

    /// Removes the link to `other`, if any.
    pub(crate) fn remove_link(&self, other: &ParticleCell) {
        let mut st = self.state.lock();
        if let Some(watch) = st.watch.as_mut() {
            watch.links.retain(|l| !std::ptr::eq(l.as_ptr(), other));
            st.prune_watch();
        }
    }

    /// Records a monitor this particle set on `target`.
    pub(crate) fn note_watching(&self, target: &Arc<ParticleCell>, r: MonitorRef) {
        self.state
            .lock()
            .watch()
            .watching
            .push((Arc::downgrade(target), r));
    }

    /// Takes the monitors this particle set, to remove them.
    pub(crate) fn take_watching(&self) -> Vec<(Weak<ParticleCell>, MonitorRef)> {
        self.state
            .lock()
            .watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.watching))
            .unwrap_or_default()
    }

    /// Takes every link, to fire them.
    pub(crate) fn take_links(&self) -> Vec<Weak<ParticleCell>> {
        self.state
            .lock()
            .watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.links))
            .unwrap_or_default()
    }

    /// Takes the monitors to fire them, once.
    pub(crate) fn take_monitors(&self) -> Vec<(MonitorRef, Weak<ParticleCell>)> {
        let mut st = self.state.lock();
        st.monitors_fired = true;
        st.watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.monitors))
            .unwrap_or_default()
    }
}

/// The receiving half: owned by the particle's task for all its incarnations.
pub(crate) struct LaneReceiver {
    cell: Arc<ParticleCell>,
    batch: VecDeque<Queued>,
    /// The lane's incarnation epoch (only this receiver changes it).
    epoch: u32,
    /// Takes one letter at a time instead of a batch, so that what is not
    /// yet handled stays in the shared queue (supervisors: see
    /// [`LaneQueue::refuse_requests_from`]).
    single: bool,
}

impl LaneReceiver {
    pub(crate) fn new(cell: Arc<ParticleCell>, single: bool) -> Self {
        LaneReceiver {
            cell,
            batch: VecDeque::new(),
            epoch: 0,
            single,
        }
    }

    /// The next letter, in order; `Stop` once a stop is requested.
    pub(crate) async fn recv(&mut self) -> Next {
        loop {
            if self.cell.lane.faulted.load(Ordering::Acquire) {
                // Boxed: the slow path takes no room in a healthy task.
                return Box::pin(self.recv_faulty()).await;
            }
            match self.take(false).await {
                Next::Interrupted => continue,
                next => return next,
            }
        }
    }

    /// [`LaneReceiver::recv`] on a lane with faults injected: a pending
    /// crash comes first, a pause holds letters, and each wave taken may be
    /// dropped or delayed.
    async fn recv_faulty(&mut self) -> Next {
        let cell = self.cell.clone();
        let lane = &cell.lane;
        loop {
            if lane.stop.load(Ordering::Acquire) {
                return Next::Stop;
            }
            let paused = {
                let mut st = lane.state.lock();
                match st.fault.as_mut() {
                    Some(f) => {
                        if let Some(reason) = f.crash.take() {
                            return Next::Crash(reason);
                        }
                        f.paused
                    }
                    // Healed meanwhile.
                    None => false,
                }
            };
            if paused {
                self.paused().await;
                continue;
            }
            let letter = match self.take(true).await {
                Next::Letter(letter) => letter,
                Next::Interrupted => continue,
                other => return other,
            };
            if letter.skips_faults() {
                return Next::Letter(letter);
            }
            let fate = lane
                .state
                .lock()
                .fault
                .as_mut()
                .map_or(Fate::Handle, |f| f.fate());
            match fate {
                Fate::Handle => return Next::Letter(letter),
                Fate::Delay(d) => {
                    // Held at the front of the batch, not in hand: if the
                    // incarnation is dropped meanwhile (killed), the letter
                    // stays for the next one.
                    let queued = lane.state.lock().stamp(letter);
                    self.batch.push_front(queued);
                    lane.sleep_unless_stopped(d).await;
                    if lane.stop.load(Ordering::Acquire) {
                        return Next::Stop;
                    }
                    if let Some(queued) = self.batch.pop_front() {
                        if let Some(letter) = self.open(queued) {
                            return Next::Letter(letter);
                        }
                    }
                }
                Fate::Drop => {
                    if let Letter::Request(_, reply) = letter {
                        let mut st = lane.state.lock();
                        match st.fault.as_mut() {
                            Some(f) => f.swallow(reply),
                            // Healed meanwhile: the drop was decided, the
                            // answer channel goes (the requester times out
                            // or gets an error, never a hang).
                            None => drop(reply),
                        }
                    }
                }
            }
        }
    }

    /// Waits while the lane is paused (or until a stop).
    async fn paused(&self) {
        let lane = &self.cell.lane;
        poll_fn(|cx| {
            let mut st = lane.state.lock();
            let paused = st
                .fault
                .as_ref()
                .is_some_and(|f| f.paused && f.crash.is_none());
            if !paused || lane.stop.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The next letter as it lies in the lane. On the healthy path
    /// (`faulty` false), a fault injected while waiting interrupts it, so
    /// that the next letter takes the faulty path.
    ///
    /// One `poll_fn` from the lane to the letter, opened where it is
    /// taken: every wave passes here, and each hand-off of a letter by
    /// value is a copy of it.
    async fn take(&mut self, faulty: bool) -> Next {
        let LaneReceiver {
            cell,
            batch,
            epoch,
            single,
        } = self;
        let lane = &cell.lane;
        poll_fn(|cx| loop {
            if lane.stop.load(Ordering::Acquire) {
                return Poll::Ready(Next::Stop);
            }
            let queued = match batch.pop_front() {
                Some(queued) => queued,
                None => {
                    let mut st = lane.state.lock();
                    if lane.stop.load(Ordering::Acquire) {
                        return Poll::Ready(Next::Stop);
                    }
                    // Healthy: a fault injected since sends it the slow way.
                    // Faulty: a crash or a pause comes before the next letter.
                    let interrupted = if faulty {
                        st.fault.as_ref().is_some_and(|f| f.interrupts())
                    } else {
                        lane.faulted.load(Ordering::Acquire)
                    };
                    if interrupted {
                        return Poll::Ready(Next::Interrupted);
                    }
                    if st.queue.is_empty() {
                        match &st.waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => st.waker = Some(cx.waker().clone()),
                        }
                        return Poll::Pending;
                    }
                    if *single {
                        let queued = st.queue.pop_front().expect("queue is not empty");
                        drop(st);
                        if let Some(b) = &lane.bound {
                            b.release(&queued);
                            b.room.notify_waiters();
                        }
                        queued
                    } else {
                        std::mem::swap(&mut st.queue, batch);
                        if let Some(b) = &lane.bound {
                            b.release_all();
                        }
                        drop(st);
                        if let Some(b) = &lane.bound {
                            b.room.notify_waiters();
                        }
                        batch.pop_front().expect("batch is not empty")
                    }
                }
            };
            if let Some(letter) = open(lane, *epoch, queued) {
                return Poll::Ready(Next::Letter(letter));
            }
        })
        .await
    }

    /// See [`open`].
    fn open(&mut self, queued: Queued) -> Option<Letter> {
        open(&self.cell.lane, self.epoch, queued)
    }

    /// Closes the lane and returns every letter never handled, batch first.
    pub(crate) fn close(&mut self) -> VecDeque<Letter> {
        let mut rest: VecDeque<Letter> = std::mem::take(&mut self.batch)
            .into_iter()
            .map(Queued::into_letter)
            .collect();
        rest.extend(self.cell.lane.close(self.cell.point()));
        rest
    }

    /// Starts refusing requests from the particle's descendants (and
    /// answers those already queued with `Stopped`, so that a child waiting
    /// on this particle can stop), or ends that window. Only those requests
    /// are looked at (see [`Below`]): the cost does not grow with the queue.
    pub(crate) fn refuse_descendants(&mut self, refuse: bool) {
        let me = self.cell.point();
        let refused = {
            let mut st = self.cell.lane.state.lock();
            st.refuse_below = refuse;
            if !refuse {
                return;
            }
            st.take_below(|_| true)
        };
        refuse_replies(refused, me);
    }

    /// Drops the letters that were for the incarnation that crashed: crash
    /// notices about its children (gone), exit signals from its links and
    /// down notices from its monitors (both belonged to it). A new epoch:
    /// those queued before are dropped as they are taken, not looked for now.
    pub(crate) fn drop_notices(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.cell.lane.state.lock().epoch = self.epoch;
    }
}

/// The letter as it was sent; `None` if it is not to be handled: a notice,
/// exit signal or down notice for an incarnation that has ended (`epoch` is
/// the receiver's), or a request from a descendant answered at a crash.
/// Looked at as it is taken, so a restart never goes through the queue.
#[inline]
fn open(lane: &LaneQueue, epoch: u32, queued: Queued) -> Option<Letter> {
    match queued {
        Queued::Wave(wave) => Some(Letter::Wave(wave)),
        Queued::Request(wave, tx) => Some(Letter::Request(wave, tx)),
        Queued::Stamped(stamped) => open_stamped(lane, epoch, *stamped),
    }
}

/// [`open`] for a stamped letter.
fn open_stamped(lane: &LaneQueue, epoch: u32, stamped: Stamped) -> Option<Letter> {
    if stamped.epoch != epoch && stamped.letter.is_for_incarnation() {
        return None;
    }
    if stamped.ticket == 0 {
        return Some(stamped.letter);
    }
    lane.state.lock().unstamp(stamped)
}

/// A handle to one particle's lane: send to it without a Registry lookup.
///
/// Resolve it once with [`crate::Machine::lane`] (or keep the one
/// [`crate::Machine::spawn`] returns) and send as often as you like; it
/// stays valid across the particle's restarts, because the lane does.
///
/// A lane takes no sender: what is sent through it is from the particle
/// whose handler sends it, or from the Machine ([`Point::root`]) when sent
/// from anywhere else (see the [module docs](crate::lane)).
///
/// ```
/// # use hyperverse_runtime::*;
/// # struct Echo;
/// # impl Particle for Echo {
/// #     type State = ();
/// #     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
/// #     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// # }
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("echo", Echo).build().await.unwrap();
/// let echo = machine.spawn("echo".parse().unwrap(), "echo".into(), Body::empty()).await.unwrap();
/// let reply = echo.request("ping", "hello", std::time::Duration::from_secs(1)).await.unwrap();
/// assert_eq!(reply.body.as_bytes(), b"hello");
/// // Sent from outside any handler: from the Machine, so the reply goes to ROOT.
/// assert!(reply.to.is_root());
/// machine.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Lane {
    pub(crate) cell: Arc<ParticleCell>,
    pub(crate) deadlines: Arc<Deadlines>,
}

impl Lane {
    /// The Point this lane leads to.
    pub fn point(&self) -> &Point {
        self.cell.point()
    }

    pub(crate) fn cell_arc(&self) -> Arc<ParticleCell> {
        self.cell.clone()
    }

    /// The particle's cell (status, restarts, kind).
    pub fn cell(&self) -> &ParticleCell {
        &self.cell
    }

    /// Sends a signal; its sender is stamped by the runtime (the particle
    /// whose handler calls this, else the Machine).
    ///
    /// # Errors
    ///
    /// [`WaveError::Stopped`] if the particle has ended.
    /// [`WaveError::LaneFull`] if the lane is bounded and full, whatever its
    /// policy: a synchronous send cannot wait (see [`Lane::signal_waiting`]).
    pub fn signal(
        &self,
        method: impl Into<Method>,
        body: impl Into<Body>,
    ) -> Result<(), WaveError> {
        deliver(
            &self.cell,
            Wave::signal(sender(), self.point().clone(), method, body),
        )
    }

    /// Sends a signal, waiting for room if the lane is bounded with
    /// [`WhenFull::Wait`] (backpressure); otherwise as [`Lane::signal`].
    ///
    /// The sender is stamped when this is called, and the signal is queued
    /// then if there is room (keeping its place in order with the sender's
    /// other waves); the future waits only for room.
    ///
    /// # Errors
    ///
    /// [`WaveError::Stopped`] if the particle has ended, or ends while this
    /// waits for room. [`WaveError::LaneFull`] if the lane is full and its
    /// policy is [`WhenFull::Reject`].
    ///
    /// # Cancel safety
    ///
    /// A signal queued when this was called stays queued if the future is
    /// dropped (it will be handled). A signal still waiting for room is
    /// dropped with the future and never queued.
    pub fn signal_waiting(
        &self,
        method: impl Into<Method>,
        body: impl Into<Body>,
    ) -> impl Future<Output = Result<(), WaveError>> + Send + '_ {
        let wave = Wave::signal(sender(), self.point().clone(), method, body);
        let first = self.cell.lane.push(Letter::Wave(wave));
        async move {
            match first {
                Ok(()) => Ok(()),
                Err((letter, Refusal::Full)) => self
                    .cell
                    .lane
                    .push_waiting(letter)
                    .await
                    .map_err(|(_, refusal)| refusal_error(&self.cell, refusal)),
                Err((_, refusal)) => Err(refusal_error(&self.cell, refusal)),
            }
        }
    }

    /// Why a request cannot be queued (kept out of the hot path).
    #[cold]
    #[inline(never)]
    fn unsendable(&self, wave: &Wave) -> WaveError {
        if &wave.to != self.point() {
            return WaveError::Misaddressed {
                lane: self.point().clone(),
                to: wave.to.clone(),
            };
        }
        // It would wait for itself: gen_server's `calling_self`.
        WaveError::CallingSelf {
            point: wave.to.clone(),
        }
    }

    /// Sends a request and waits up to `timeout` for the reply (a `timeout`
    /// too large for the clock means no deadline). Its sender is stamped by
    /// the runtime (the particle whose handler calls this, else the
    /// Machine).
    ///
    /// The request is queued when this is called, not when the future is
    /// first polled, so it keeps its place in order with the sender's
    /// signals.
    ///
    /// # Errors
    ///
    /// [`WaveError::Timeout`] if no answer came in time (the deadline
    /// covers any wait for room in a full lane).
    /// [`WaveError::Crashed`] if the particle crashed handling it.
    /// [`WaveError::Stopped`] if the particle ended before answering, or
    /// refuses this sender for now: a parent stopping or restarting its
    /// children refuses their requests, so that neither waits for the other.
    /// [`WaveError::CallingSelf`] if a particle asks itself.
    /// [`WaveError::LaneFull`] if the lane is full and its policy is
    /// [`WhenFull::Reject`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw a request already queued: the
    /// particle still handles it, and the reply is dropped. A request still
    /// waiting for room in a full lane ([`WhenFull::Wait`]) is dropped with
    /// the future and never queued.
    pub fn request(
        &self,
        method: impl Into<Method>,
        body: impl Into<Body>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Wave, WaveError>> + Send + '_ {
        let queued = self.enqueue(Wave::request(sender(), self.point().clone(), method, body));
        async move { self.answer_within(queued, timeout).await }
    }

    /// Sends a request and waits for its reply with no timeout, like
    /// `gen_server:call(…, infinity)` or ractor's `call!`; its sender is
    /// stamped as for [`Lane::request`].
    ///
    /// A particle that stops or is given up answers every waiting request
    /// with [`WaveError::Stopped`], and a particle calling itself gets
    /// [`WaveError::CallingSelf`] at once; otherwise it waits as long as the
    /// particle takes. It skips the deadline, so it is the cheapest request;
    /// prefer [`Lane::request`] unless the target is trusted to answer.
    ///
    /// # Errors
    ///
    /// As [`Lane::request`], without [`WaveError::Timeout`].
    ///
    /// # Cancel safety
    ///
    /// As [`Lane::request`]: a queued request is not withdrawn.
    pub fn call(
        &self,
        method: impl Into<Method>,
        body: impl Into<Body>,
    ) -> impl Future<Output = Result<Wave, WaveError>> + Send + '_ {
        let queued = self.enqueue(Wave::request(sender(), self.point().clone(), method, body));
        // No deadline machinery here: this future stays small.
        async move { self.settle(self.queued(queued).await?.await) }
    }

    /// Sends a control letter from the stamped sender and waits up to
    /// `timeout` for its answer. Queued when this is called; a full lane is
    /// waited on, or refuses, per its policy, as for a request.
    pub(crate) fn control(
        &self,
        kind: ControlKind,
        timeout: Duration,
    ) -> impl Future<Output = Result<ControlReply, WaveError>> + Send + 'static {
        let lane = self.clone();
        let (tx, rx): (_, ControlRx) = oneshot::channel();
        let letter = Letter::Control(Box::new(ControlLetter {
            from: sender(),
            to: self.point().clone(),
            kind,
            reply: Some(tx),
        }));
        // `Err(None)`: it would wait for itself; `Err(Some(_))`: no room yet.
        let first = if self.cell.is_current_task() {
            Err(None)
        } else {
            match self.cell.lane.push(letter) {
                Ok(()) => Ok(()),
                Err((letter, Refusal::Full)) => Err(Some(letter)),
                Err((letter, Refusal::Closed)) => {
                    letter.refuse(self.point());
                    Ok(())
                }
            }
        };
        async move {
            let answered = async {
                match first {
                    Ok(()) => {}
                    Err(None) => {
                        return Err(WaveError::CallingSelf {
                            point: lane.point().clone(),
                        })
                    }
                    Err(Some(letter)) => match lane.cell.lane.push_waiting(letter).await {
                        Ok(()) => {}
                        Err((back, Refusal::Closed)) => back.refuse(lane.point()),
                        Err((_, Refusal::Full)) => {
                            return Err(refusal_error(&lane.cell, Refusal::Full))
                        }
                    },
                }
                rx.await.unwrap_or_else(|_| {
                    Err(WaveError::Stopped {
                        point: lane.point().clone(),
                    })
                })
            };
            match lane.deadlines.within(timeout, answered).await {
                Some(answer) => answer,
                None => Err(WaveError::Timeout {
                    point: lane.point().clone(),
                    after: timeout,
                }),
            }
        }
    }

    /// Queues `wave` as a request; a closed lane answers it at once, a full
    /// one hands it back (to wait for room, or to refuse, per its policy).
    pub(crate) fn enqueue(&self, mut wave: Wave) -> Result<ReplyRx, Unqueued> {
        wave.kind = WaveKind::Request;
        if &wave.to != self.point() || self.cell.is_current_task() {
            return Err(Unqueued::Error(self.unsendable(&wave)));
        }
        let (tx, rx) = oneshot::channel();
        match self.cell.lane.push(Letter::Request(wave, tx)) {
            Ok(()) => {}
            Err((Letter::Request(wave, _), Refusal::Full)) => return Err(Unqueued::Full(wave)),
            Err((letter, _)) => letter.refuse(self.point()),
        }
        Ok(rx)
    }

    /// The reply channel of a request `enqueue` queued, or refused: a full
    /// lane whose policy is to wait is waited on (boxed: the rare case).
    pub(crate) async fn queued(
        &self,
        queued: Result<ReplyRx, Unqueued>,
    ) -> Result<ReplyRx, WaveError> {
        match queued {
            Ok(rx) => Ok(rx),
            Err(Unqueued::Error(e)) => Err(e),
            Err(Unqueued::Full(wave)) => Box::pin(self.enqueue_when_room(wave)).await,
        }
    }

    async fn enqueue_when_room(&self, wave: Wave) -> Result<ReplyRx, WaveError> {
        let (tx, rx) = oneshot::channel();
        match self.cell.lane.push_waiting(Letter::Request(wave, tx)).await {
            Ok(()) => Ok(rx),
            Err((_, Refusal::Full)) => Err(refusal_error(&self.cell, Refusal::Full)),
            // Closed meanwhile: answered like any request it will never handle.
            Err((back, Refusal::Closed)) => {
                back.refuse(self.point());
                Ok(rx)
            }
        }
    }

    /// Waits up to `timeout` for the answer to a request `enqueue` handled:
    /// the deadline covers any wait for room in a full lane too.
    pub(crate) async fn answer_within(
        &self,
        queued: Result<ReplyRx, Unqueued>,
        timeout: Duration,
    ) -> Result<Wave, WaveError> {
        let answered = async {
            let rx = self.queued(queued).await?;
            self.settle(rx.await)
        };
        match self.deadlines.within(timeout, answered).await {
            Some(answer) => answer,
            None => Err(WaveError::Timeout {
                point: self.point().clone(),
                after: timeout,
            }),
        }
    }

    /// The answer to a request, once its reply channel has spoken.
    fn settle(
        &self,
        answer: Result<Result<Wave, WaveError>, oneshot::error::RecvError>,
    ) -> Result<Wave, WaveError> {
        // A dropped reply channel means the particle stopped without answering.
        answer.unwrap_or_else(|_| {
            Err(WaveError::Stopped {
                point: self.point().clone(),
            })
        })
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("point", self.point()).finish()
    }
}

/// A request `enqueue` could not queue.
pub(crate) enum Unqueued {
    /// It never will be: this error says why.
    Error(WaveError),
    /// The lane is full; here is the wave back.
    Full(Wave),
}

fn refusal_error(cell: &ParticleCell, refusal: Refusal) -> WaveError {
    match refusal {
        Refusal::Closed => WaveError::Stopped {
            point: cell.point().clone(),
        },
        Refusal::Full => WaveError::LaneFull {
            point: cell.point().clone(),
            capacity: cell.lane.limit().map_or(0, |l| l.capacity),
        },
    }
}

/// Queues a control letter that wants no answer (an exit report) in
/// `cell`'s lane.
pub(crate) fn deliver_control(cell: &ParticleCell, letter: ControlLetter) -> Result<(), WaveError> {
    cell.lane
        .push(Letter::Control(Box::new(letter)))
        .map_err(|(_, refusal)| refusal_error(cell, refusal))
}

/// Queues a signal in `cell`'s lane: the one place every signal passes.
pub(crate) fn deliver(cell: &ParticleCell, wave: Wave) -> Result<(), WaveError> {
    let _span = tracing::trace_span!(target: targets::ROUTE, "route", to = %cell.point(), method = %wave.method)
        .entered();
    cell.lane
        .push(Letter::Wave(wave))
        .map_err(|(_, refusal)| refusal_error(cell, refusal))
}
