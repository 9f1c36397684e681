//! A model check of the particle mailbox (the lane, [`crate::lane`]): every
//! interleaving of its senders, its receiver, a crash and a stop, explored
//! by a small exhaustive scheduler of our own (not loom: the lane uses
//! `parking_lot` and tokio primitives directly).
//!
//! # What is modelled
//!
//! One particle's lane (a real [`ParticleCell`] with its `LaneQueue` and a
//! [`LaneReceiver`]) and, as separate actors, all on one thread:
//!
//! - two senders, each pushing its own letters in order: a mix of signals
//!   (`Letter::Wave`) and requests (`Letter::Request`, built by
//!   [`request_letter`], the only code that knows the reply channel). One
//!   sender is a descendant of the particle (`t:c` of `t`), whose requests
//!   a crash answers and refuses while it lasts. A sender does what
//!   [`crate::ParticleRef::signal_waiting`] does: a `push`; if that is refused
//!   `Full` and the lane waits when full, a `push_waiting` future polled
//!   until it is done; a letter refused `Closed` is answered with
//!   [`Letter::refuse`], as the runtime does;
//! - in some configurations a link's exit signal (`Letter::Exit`): a letter
//!   for the incarnation, dropped if that incarnation crashes first;
//! - the receiver, as `run.rs` drives it: `recv` polled again and again; a
//!   request it takes is answered (through [`Letter::refuse`]: what is
//!   checked is that the answer reaches its requester, so no code here but
//!   [`request_letter`] depends on the reply channel's type); on `Stop` it
//!   closes the lane (`LaneReceiver::close`) and answers what it hands back;
//! - one crash, with a letter in hand (the model has answered it as it was
//!   taken: the lane has no part in that answer), as `run.rs`'s
//!   `wind_down` does it:
//!   `refuse_descendants(true)`, then (other actors may run in between, as
//!   the crashed particle's children are stopped) `drop_notices` and
//!   `refuse_descendants(false)`; the same receiver then serves the next
//!   incarnation, or (configuration `give_up`) closes the lane;
//! - a stop request (`request_stop`) at any point.
//!
//! Every step is atomic: one `push`, one poll of a `push_waiting` future,
//! one poll of `recv`, the two halves of a crash, a close, a stop request.
//! Futures are polled with a waker that records whether it was woken, and a
//! future that returned `Pending` is polled again only once woken. A
//! schedule ends when no step is left, or (an extra choice, `Step::Quiet`)
//! when only the outside could act (a stop, a link's notice) and it never
//! does: a lost wake-up is then not hidden by a later stop that would wake
//! everyone. At the end, every future still pending is polled once more:
//! one that is then ready was never woken although it could go on (a lost
//! wake-up), and a sender still waiting waits forever; both are failures,
//! as is a letter not accounted for.
//!
//! The scheduler is a depth-first search by replay: each schedule runs from
//! a fresh lane, following the choices of the last one up to its deepest
//! choice that has an untried alternative, so every schedule is explored
//! exactly once, with no randomness.
//!
//! # What is proven, for every schedule
//!
//! 1. Per-sender order: letters from one sender are taken in the order it
//!    pushed them, across the crash (the queued waves are kept for the next
//!    incarnation).
//! 2. No lost letter: every letter queued is taken, or handed back by
//!    `close`; the only ones neither are a notice for a crashed
//!    incarnation and a descendant's request answered `Stopped` at the
//!    crash, and neither of those is ever taken. Nothing is taken or handed
//!    back twice. Every request gets an answer (`Stopped` when refused,
//!    handed back or answered at the crash), except one refused `Full` for
//!    good, whose sender is told so (`WhenFull::Reject`).
//! 3. A refused push hands its letter back (the same letter, its request
//!    still answerable), `Closed` exactly when the lane is closed (or, for
//!    a descendant's request, during the crash), `Full` exactly when the
//!    lane is bounded and full; a `push_waiting` is pending exactly when it
//!    is full, is woken when the receiver takes or the lane closes, and is
//!    never left pending.
//! 4. Liveness of the receiver: it is pending only with nothing to take,
//!    it takes `Stop` (and nothing else) once a stop is requested, and it is
//!    never left pending when it has something to take.
//!
//! # The bound
//!
//! The configurations in [`UNBOUNDED`], [`WAITING`] and [`BOUNDED`]: a
//! plain sender with 2 or 3 letters and a descendant with 1 or 2 (signals
//! and requests mixed), unbounded lanes and lanes of capacity 1 or 2 that
//! wait or reject when full, a batch receiver and a one-at-a-time one (a
//! supervisor's), one crash (then a restart, or a give-up that closes the
//! lane), a stop at any point (or none) and a link notice at any point (or
//! none): 242,506 schedules in all, a few seconds in a debug build. The
//! number of schedules of each is asserted, so the check cannot explore
//! nothing; a change in it means the lane's steps or wake-ups changed
//! (look, then update it).
//!
//! Not covered: what happens inside one step. Each operation runs whole
//! (on one thread, so its lock is never contended), so a race between two
//! points of one operation (say, `push_waiting` registering for room
//! before its push) is beyond this check; so are faults (`recv`'s faulty
//! path), byte limits, control letters and `refuse_requests_from`.
//!
//! The scheduler is shown to fail on purpose: a toy mailbox run through it
//! passes, and the same toy with a lost wake-up (on room, or on a stop) or
//! with its order broken is caught.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::cell::ParticleCell;
use crate::lane::{LaneReceiver, Letter, Next, Refusal};
use crate::{Body, ExitSignal, Kind, LaneLimit, Point, RestartLimit, Wave, WaveError, WhenFull};

/// What a requester sees of its request's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Nothing yet; the answer channel is still held.
    Waiting,
    /// Answered `Stopped`.
    Stopped,
    /// Answered something else.
    Other,
    /// The answer channel was dropped without an answer.
    Dropped,
}

type Probe = Box<dyn FnMut() -> Answer>;

/// A request letter for `wave`, and a probe of its answer. The one place
/// that knows the reply channel of `Letter::Request` (its type is about to
/// change): nothing else here names it.
fn request_letter(wave: Wave) -> (Letter, Probe) {
    let (tx, mut rx) = oneshot::channel();
    let mut seen = None;
    let probe = move || {
        if let Some(seen) = seen {
            return seen;
        }
        let answer = match rx.try_recv() {
            Ok(Err(WaveError::Stopped { .. })) => Answer::Stopped,
            Ok(_) => Answer::Other,
            Err(oneshot::error::TryRecvError::Empty) => return Answer::Waiting,
            Err(oneshot::error::TryRecvError::Closed) => return Answer::Dropped,
        };
        seen = Some(answer);
        answer
    };
    (Letter::Request(wave, tx), Box::new(probe))
}

// ---------------------------------------------------------------------------
// Configurations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Signal,
    Request,
}

struct SenderSpec {
    point: &'static str,
    letters: &'static [Sort],
}

struct Config {
    name: &'static str,
    limit: Option<LaneLimit>,
    /// The receiver takes one letter at a time (a supervisor's).
    single: bool,
    senders: &'static [SenderSpec],
    /// A link's exit signal is sent at some point.
    notice: bool,
    /// The receiver may crash once (with a letter in hand).
    crash: bool,
    /// After the crash the particle is given up: its lane is closed.
    give_up: bool,
    /// A stop is requested at some point.
    stop: bool,
    /// The number of schedules it has.
    schedules: u64,
}

/// The particle's Point.
const TARGET: &str = "t";

use Sort::{Request as R, Signal as S};

/// Two letters from a plain sender, one request from one of the
/// particle's descendants.
const TWO_ONE: &[SenderSpec] = &[
    SenderSpec {
        point: "a",
        letters: &[S, R],
    },
    SenderSpec {
        point: "t:c",
        letters: &[R],
    },
];

/// Two letters each from a plain sender and a descendant.
const TWO_TWO: &[SenderSpec] = &[
    SenderSpec {
        point: "a",
        letters: &[S, R],
    },
    SenderSpec {
        point: "t:c",
        letters: &[R, S],
    },
];

/// Three letters from a plain sender, one request from a descendant.
const THREE_ONE: &[SenderSpec] = &[
    SenderSpec {
        point: "a",
        letters: &[S, R, S],
    },
    SenderSpec {
        point: "t:c",
        letters: &[R],
    },
];

const WAIT1: Option<LaneLimit> = Some(LaneLimit::new(1, WhenFull::Wait));
const WAIT2: Option<LaneLimit> = Some(LaneLimit::new(2, WhenFull::Wait));
const REJECT1: Option<LaneLimit> = Some(LaneLimit::new(1, WhenFull::Reject));

const BASE: Config = Config {
    name: "",
    limit: None,
    single: false,
    senders: TWO_TWO,
    notice: false,
    crash: true,
    give_up: false,
    stop: false,
    schedules: 0,
};

/// The real lane's configurations, unbounded.
const UNBOUNDED: &[Config] = &[
    Config {
        name: "unbounded, batch, 2+2 letters, crash + restart, stop",
        stop: true,
        schedules: 24632,
        ..BASE
    },
    Config {
        name: "unbounded, batch, 3+1 letters, crash + restart, stop",
        senders: THREE_ONE,
        stop: true,
        schedules: 16286,
        ..BASE
    },
    Config {
        name: "unbounded, batch, 2+1 letters, link notice, crash + restart",
        senders: TWO_ONE,
        notice: true,
        schedules: 6624,
        ..BASE
    },
    Config {
        name: "unbounded, batch, 2+1 letters, link notice, crash + give up",
        senders: TWO_ONE,
        notice: true,
        give_up: true,
        schedules: 5370,
        ..BASE
    },
];

/// The real lane's configurations, of capacity 1, waiting when full.
const WAITING: &[Config] = &[
    Config {
        name: "capacity 1 wait, batch, 2+1 letters, crash + restart, stop",
        limit: WAIT1,
        senders: TWO_ONE,
        stop: true,
        schedules: 35112,
        ..BASE
    },
    Config {
        name: "capacity 1 wait, batch, 3+1 letters, crash + give up",
        limit: WAIT1,
        senders: THREE_ONE,
        give_up: true,
        schedules: 93656,
        ..BASE
    },
];

/// The real lane's other bounded configurations.
const BOUNDED: &[Config] = &[
    Config {
        name: "capacity 2 wait, one at a time, 2+2 letters, crash + restart",
        limit: WAIT2,
        single: true,
        schedules: 20454,
        ..BASE
    },
    Config {
        name: "capacity 2 wait, one at a time, 2+1 letters, link notice, crash + restart",
        limit: WAIT2,
        single: true,
        senders: TWO_ONE,
        notice: true,
        schedules: 26108,
        ..BASE
    },
    Config {
        name: "capacity 2 wait, one at a time, 2+1 letters, crash + restart, stop",
        limit: WAIT2,
        single: true,
        senders: TWO_ONE,
        stop: true,
        schedules: 3554,
        ..BASE
    },
    Config {
        name: "capacity 1 reject, batch, 3+1 letters, crash + restart, stop",
        limit: REJECT1,
        senders: THREE_ONE,
        stop: true,
        schedules: 10710,
        ..BASE
    },
];

// ---------------------------------------------------------------------------
// Mailboxes: the real lane, and a toy one that can be broken on purpose

type Pushing = Pin<Box<dyn Future<Output = Result<(), (Letter, Refusal)>>>>;
type Receiving<R> = Pin<Box<dyn Future<Output = (R, Next)>>>;

/// What the scheduler drives: a lane's operations, one atomic step each.
trait Mailbox {
    /// The receiving half.
    type Rx;
    fn push(&self, letter: Letter) -> Result<(), (Letter, Refusal)>;
    fn push_waiting(&self, letter: Letter) -> Pushing;
    /// The receiver's next letter (the future owns the receiver, and gives
    /// it back with the letter).
    fn recv(&self, rx: Self::Rx) -> Receiving<Self::Rx>;
    fn len(&self) -> usize;
    fn request_stop(&self);
    /// The start of a crash's wind-down.
    fn crash_begin(&self, rx: &mut Self::Rx);
    /// Its end: the next incarnation's epoch.
    fn crash_end(&self, rx: &mut Self::Rx);
    fn close(&self, rx: &mut Self::Rx) -> VecDeque<Letter>;
}

/// The real lane, in a real cell.
struct RealLane(Arc<ParticleCell>);

fn real(cfg: &Config) -> (RealLane, LaneReceiver) {
    let cell = Arc::new(ParticleCell::new(
        point(TARGET),
        Kind::new("model"),
        0,
        None,
        RestartLimit::default(),
        Default::default(),
        0,
        cfg.limit,
        false,
    ));
    let rx = LaneReceiver::new(cell.clone(), cfg.single);
    (RealLane(cell), rx)
}

impl Mailbox for RealLane {
    type Rx = LaneReceiver;

    fn push(&self, letter: Letter) -> Result<(), (Letter, Refusal)> {
        self.0.lane.push(letter)
    }

    fn push_waiting(&self, letter: Letter) -> Pushing {
        let cell = self.0.clone();
        Box::pin(async move { cell.lane.push_waiting(letter).await })
    }

    fn recv(&self, mut rx: LaneReceiver) -> Receiving<LaneReceiver> {
        Box::pin(async move {
            let next = rx.recv().await;
            (rx, next)
        })
    }

    fn len(&self) -> usize {
        self.0.lane.len()
    }

    fn request_stop(&self) {
        self.0.lane.request_stop();
    }

    fn crash_begin(&self, rx: &mut LaneReceiver) {
        rx.refuse_descendants(true);
    }

    fn crash_end(&self, rx: &mut LaneReceiver) {
        rx.drop_notices();
        rx.refuse_descendants(false);
    }

    fn close(&self, rx: &mut LaneReceiver) -> VecDeque<Letter> {
        rx.close()
    }
}

/// A deliberate bug in the toy mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// Taking letters does not wake the senders waiting for room.
    RoomWake,
    /// A stop request does not wake the receiver.
    StopWake,
    /// Letters are taken newest first.
    Lifo,
}

/// A toy mailbox: a queue, a receiver's waker and the wakers of senders
/// waiting for room. Only for configurations without a crash, notices or
/// descendants (it has no epochs and refuses no one).
struct Toy {
    st: Rc<RefCell<ToyState>>,
    limit: Option<LaneLimit>,
    single: bool,
    bug: Bug,
}

#[derive(Default)]
struct ToyState {
    queue: VecDeque<Letter>,
    waker: Option<Waker>,
    room: Vec<Waker>,
    closed: bool,
    stop: bool,
}

struct ToyRx {
    batch: VecDeque<Letter>,
}

fn toy(bug: Bug) -> impl Fn(&Config) -> (Toy, ToyRx) {
    move |cfg| {
        assert!(!cfg.crash && !cfg.notice, "the toy has no epochs");
        let toy = Toy {
            st: Rc::default(),
            limit: cfg.limit,
            single: cfg.single,
            bug,
        };
        (
            toy,
            ToyRx {
                batch: VecDeque::new(),
            },
        )
    }
}

fn toy_push(
    st: &RefCell<ToyState>,
    limit: Option<LaneLimit>,
    letter: Letter,
) -> Result<(), (Letter, Refusal)> {
    let waker = {
        let mut st = st.borrow_mut();
        if st.closed {
            return Err((letter, Refusal::Closed));
        }
        if limit.is_some_and(|l| st.queue.len() >= l.capacity) {
            return Err((letter, Refusal::Full));
        }
        st.queue.push_back(letter);
        st.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
    Ok(())
}

impl Toy {
    fn wake_room(st: &RefCell<ToyState>) {
        let room = std::mem::take(&mut st.borrow_mut().room);
        for w in room {
            w.wake();
        }
    }
}

impl Mailbox for Toy {
    type Rx = ToyRx;

    fn push(&self, letter: Letter) -> Result<(), (Letter, Refusal)> {
        toy_push(&self.st, self.limit, letter)
    }

    fn push_waiting(&self, letter: Letter) -> Pushing {
        let (st, limit) = (self.st.clone(), self.limit);
        let mut letter = Some(letter);
        Box::pin(poll_fn(move |cx| {
            let l = letter.take().expect("polled after it was done");
            match toy_push(&st, limit, l) {
                Err((back, Refusal::Full))
                    if limit.is_some_and(|l| l.when_full == WhenFull::Wait) =>
                {
                    st.borrow_mut().room.push(cx.waker().clone());
                    letter = Some(back);
                    Poll::Pending
                }
                done => Poll::Ready(done),
            }
        }))
    }

    fn recv(&self, mut rx: ToyRx) -> Receiving<ToyRx> {
        let (st, single, bug) = (self.st.clone(), self.single, self.bug);
        let pop = move |q: &mut VecDeque<Letter>| {
            if bug == Bug::Lifo {
                q.pop_back()
            } else {
                q.pop_front()
            }
        };
        Box::pin(async move {
            let next = poll_fn(|cx| {
                if st.borrow().stop {
                    return Poll::Ready(Next::Stop);
                }
                if let Some(letter) = pop(&mut rx.batch) {
                    return Poll::Ready(Next::Letter(letter));
                }
                let letter = {
                    let mut s = st.borrow_mut();
                    if s.queue.is_empty() {
                        s.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    if single {
                        pop(&mut s.queue)
                    } else {
                        std::mem::swap(&mut s.queue, &mut rx.batch);
                        pop(&mut rx.batch)
                    }
                };
                if bug != Bug::RoomWake {
                    Toy::wake_room(&st);
                }
                Poll::Ready(Next::Letter(letter.expect("not empty")))
            })
            .await;
            (rx, next)
        })
    }

    fn len(&self) -> usize {
        self.st.borrow().queue.len()
    }

    fn request_stop(&self) {
        let waker = {
            let mut st = self.st.borrow_mut();
            st.stop = true;
            st.waker.take()
        };
        if let (Some(w), false) = (waker, self.bug == Bug::StopWake) {
            w.wake();
        }
    }

    fn crash_begin(&self, _: &mut ToyRx) {
        unreachable!("the toy is not crashed");
    }

    fn crash_end(&self, _: &mut ToyRx) {
        unreachable!("the toy is not crashed");
    }

    fn close(&self, rx: &mut ToyRx) -> VecDeque<Letter> {
        let mut rest = std::mem::take(&mut rx.batch);
        {
            let mut st = self.st.borrow_mut();
            st.closed = true;
            rest.extend(st.queue.drain(..));
        }
        Toy::wake_room(&self.st);
        rest
    }
}

// ---------------------------------------------------------------------------
// The scheduler

/// A task's waker: records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One actor's task: the waker its futures are polled with.
struct Task {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Task {
    fn new() -> Task {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        Task {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    fn woken(&self) -> bool {
        self.flag.0.load(Ordering::SeqCst)
    }

    fn poll<F: Future + ?Sized>(&self, fut: Pin<&mut F>) -> Poll<F::Output> {
        self.flag.0.store(false, Ordering::SeqCst);
        fut.poll(&mut Context::from_waker(&self.waker))
    }
}

/// One atomic step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Sender `n`: a push, or a poll of its `push_waiting`.
    Send(usize),
    /// The link's exit signal is pushed.
    Link,
    /// A stop is requested.
    Stop,
    /// A poll of the receiver's `recv`.
    Recv,
    CrashBegin,
    CrashEnd,
    /// The lane is closed after the crash.
    GiveUp,
    /// Offered when only the outside (a stop, a link's notice) could act:
    /// it never does, and the schedule ends here. So a future left pending
    /// is found even when a later stop would have rescued it.
    Quiet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Queued,
    Closed,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Closed,
    Full,
}

/// What became of one letter.
struct Record {
    request: bool,
    notice: bool,
    /// From a descendant of the particle.
    below: bool,
    probe: Option<Probe>,
    /// The epoch it was queued in.
    queued: Option<u32>,
    refused: Option<Refused>,
    taken: bool,
    handed_back: bool,
    /// A descendant's request answered at the crash.
    voided: bool,
}

impl Record {
    fn answer(&mut self) -> Option<Answer> {
        self.probe.as_mut().map(|p| p())
    }
}

enum SendState {
    /// The next letter is to be pushed (if any is left).
    Idle,
    /// Refused `Full`: it goes to `push_waiting`.
    Backoff(Letter),
    Waiting(Pushing),
}

struct Sender {
    letters: VecDeque<Letter>,
    next: usize,
    state: SendState,
    task: Task,
}

enum RxState<R> {
    Idle(R),
    Waiting(Receiving<R>),
    Crashing(R),
    Closed,
    Gone,
}

/// One schedule in progress.
struct Run<'c, M: Mailbox> {
    cfg: &'c Config,
    target: Point,
    lane: M,
    rx: RxState<M::Rx>,
    rx_task: Task,
    senders: Vec<Sender>,
    /// By sender, then letter; the link's notice is the last "sender".
    records: Vec<Vec<Record>>,
    last_taken: Vec<Option<usize>>,
    notice_sent: bool,
    stop_sent: bool,
    closed: bool,
    crash_window: bool,
    crashed: bool,
    give_up_next: bool,
    /// The receiver has just taken a letter (a crash may come in its handler).
    in_hand: bool,
    epoch: u32,
}

fn point(text: &str) -> Point {
    text.parse().expect("a valid Point")
}

/// The letter's sender and index, read off it.
fn id_of(letter: &Letter) -> (usize, usize) {
    let text: &str = match letter {
        Letter::Wave(w) | Letter::Request(w, _) => w.method.as_str(),
        Letter::Exit(e) => &e.reason,
        _ => panic!("the model sends no other letter"),
    };
    let (s, i) = text.split_once('.').expect("a model letter");
    (s.parse().expect("sender"), i.parse().expect("index"))
}

fn want(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

const MAX_STEPS: usize = 200;

impl<'c, M: Mailbox> Run<'c, M> {
    fn new(cfg: &'c Config, lane: M, rx: M::Rx) -> Self {
        let target = point(TARGET);
        let mut senders = Vec::new();
        let mut records = Vec::new();
        for (s, spec) in cfg.senders.iter().enumerate() {
            let from = point(spec.point);
            let below = target.is_ancestor_of(&from);
            let mut letters = VecDeque::new();
            let mut recs = Vec::new();
            for (i, sort) in spec.letters.iter().enumerate() {
                let method = format!("{s}.{i}");
                let (letter, probe) = match sort {
                    Sort::Signal => (
                        Letter::Wave(Wave::signal(
                            from.clone(),
                            target.clone(),
                            method,
                            Body::empty(),
                        )),
                        None,
                    ),
                    Sort::Request => {
                        let wave =
                            Wave::request(from.clone(), target.clone(), method, Body::empty());
                        let (letter, probe) = request_letter(wave);
                        (letter, Some(probe))
                    }
                };
                letters.push_back(letter);
                recs.push(Record {
                    request: *sort == Sort::Request,
                    notice: false,
                    below,
                    probe,
                    queued: None,
                    refused: None,
                    taken: false,
                    handed_back: false,
                    voided: false,
                });
            }
            senders.push(Sender {
                letters,
                next: 0,
                state: SendState::Idle,
                task: Task::new(),
            });
            records.push(recs);
        }
        // The link's notice.
        records.push(vec![Record {
            request: false,
            notice: true,
            below: false,
            probe: None,
            queued: None,
            refused: None,
            taken: false,
            handed_back: false,
            voided: false,
        }]);
        Run {
            cfg,
            target,
            lane,
            rx: RxState::Idle(rx),
            rx_task: Task::new(),
            last_taken: vec![None; records.len()],
            senders,
            records,
            notice_sent: false,
            stop_sent: false,
            closed: false,
            crash_window: false,
            crashed: false,
            give_up_next: false,
            in_hand: false,
            epoch: 0,
        }
    }

    /// The steps that can be taken now, in a fixed order.
    fn enabled(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for (s, sender) in self.senders.iter().enumerate() {
            let can = match &sender.state {
                SendState::Idle => !sender.letters.is_empty(),
                SendState::Backoff(_) => true,
                SendState::Waiting(_) => sender.task.woken(),
            };
            if can {
                steps.push(Step::Send(s));
            }
        }
        if self.cfg.notice && !self.notice_sent {
            steps.push(Step::Link);
        }
        if self.cfg.stop && !self.stop_sent {
            steps.push(Step::Stop);
        }
        match &self.rx {
            RxState::Idle(_) if self.give_up_next => steps.push(Step::GiveUp),
            RxState::Idle(_) => {
                steps.push(Step::Recv);
                if self.cfg.crash && !self.crashed && self.in_hand {
                    steps.push(Step::CrashBegin);
                }
            }
            RxState::Waiting(_) if self.rx_task.woken() => steps.push(Step::Recv),
            RxState::Crashing(_) => steps.push(Step::CrashEnd),
            _ => {}
        }
        if !steps.is_empty() && steps.iter().all(|s| matches!(s, Step::Stop | Step::Link)) {
            steps.push(Step::Quiet);
        }
        steps
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        match step {
            Step::Send(s) => self.send(s),
            Step::Link => self.link(),
            Step::Stop => {
                self.lane.request_stop();
                self.stop_sent = true;
                Ok(())
            }
            Step::Recv => self.recv(),
            Step::Quiet => unreachable!("ends the schedule"),
            Step::CrashBegin => self.crash_begin(),
            Step::CrashEnd => {
                let RxState::Crashing(mut rx) = std::mem::replace(&mut self.rx, RxState::Gone)
                else {
                    unreachable!("enabled only while crashing")
                };
                self.lane.crash_end(&mut rx);
                self.rx = RxState::Idle(rx);
                self.crash_window = false;
                self.epoch += 1;
                self.give_up_next = self.cfg.give_up;
                Ok(())
            }
            Step::GiveUp => {
                let RxState::Idle(mut rx) = std::mem::replace(&mut self.rx, RxState::Gone) else {
                    unreachable!("enabled only when idle")
                };
                let rest = self.lane.close(&mut rx);
                self.rx = RxState::Closed;
                self.hand_back(rest)
            }
        }
    }

    /// What a push of letter `i` of sender `s` must meet now.
    fn expect(&self, s: usize, i: usize) -> Expect {
        let r = &self.records[s][i];
        if self.closed || (self.crash_window && r.request && r.below) {
            Expect::Closed
        } else if !r.notice
            && self
                .cfg
                .limit
                .is_some_and(|l| self.lane.len() >= l.capacity)
        {
            Expect::Full
        } else {
            Expect::Queued
        }
    }

    fn send(&mut self, s: usize) -> Result<(), String> {
        let i = self.senders[s].next;
        let expect = self.expect(s, i);
        match std::mem::replace(&mut self.senders[s].state, SendState::Idle) {
            SendState::Idle => {
                let letter = self.senders[s].letters.pop_front().expect("enabled");
                match self.lane.push(letter) {
                    Ok(()) => self.queued(s, i, expect),
                    Err((back, refusal)) => {
                        self.check_back(s, i, &back)?;
                        match refusal {
                            Refusal::Closed => self.refused_closed(s, i, back, expect),
                            Refusal::Full => {
                                want(expect == Expect::Full, || {
                                    format!("push of {s}.{i} refused Full, expected {expect:?}")
                                })?;
                                let limit = self.cfg.limit.expect("bounded");
                                if limit.when_full == WhenFull::Wait {
                                    self.senders[s].state = SendState::Backoff(back);
                                } else {
                                    // The sender is told `LaneFull`; the
                                    // letter goes with the error.
                                    drop(back);
                                    self.records[s][i].refused = Some(Refused::Full);
                                    self.senders[s].next += 1;
                                }
                                Ok(())
                            }
                        }
                    }
                }
            }
            SendState::Backoff(letter) => {
                let fut = self.lane.push_waiting(letter);
                self.poll_pushing(s, i, fut, expect)
            }
            SendState::Waiting(fut) => self.poll_pushing(s, i, fut, expect),
        }
    }

    fn poll_pushing(
        &mut self,
        s: usize,
        i: usize,
        mut fut: Pushing,
        expect: Expect,
    ) -> Result<(), String> {
        match self.senders[s].task.poll(fut.as_mut()) {
            Poll::Pending => {
                want(expect == Expect::Full, || {
                    format!("push_waiting of {s}.{i} pending, expected {expect:?}")
                })?;
                self.senders[s].state = SendState::Waiting(fut);
                Ok(())
            }
            Poll::Ready(Ok(())) => self.queued(s, i, expect),
            Poll::Ready(Err((back, Refusal::Closed))) => {
                self.check_back(s, i, &back)?;
                self.refused_closed(s, i, back, expect)
            }
            Poll::Ready(Err((_, Refusal::Full))) => Err(format!(
                "push_waiting of {s}.{i} refused Full although the lane waits when full"
            )),
        }
    }

    fn queued(&mut self, s: usize, i: usize, expect: Expect) -> Result<(), String> {
        want(expect == Expect::Queued, || {
            format!("{s}.{i} was queued, expected {expect:?}")
        })?;
        self.records[s][i].queued = Some(self.epoch);
        if s < self.senders.len() {
            self.senders[s].next += 1;
        }
        Ok(())
    }

    /// A refused letter is the one that was pushed.
    fn check_back(&self, s: usize, i: usize, back: &Letter) -> Result<(), String> {
        let r = &self.records[s][i];
        let sort_ok = match back {
            Letter::Request(..) => r.request,
            Letter::Exit(_) => r.notice,
            Letter::Wave(_) => !r.request && !r.notice,
            _ => false,
        };
        want(id_of(back) == (s, i) && sort_ok, || {
            format!("a push of {s}.{i} handed back {:?}", id_of(back))
        })
    }

    fn refused_closed(
        &mut self,
        s: usize,
        i: usize,
        back: Letter,
        expect: Expect,
    ) -> Result<(), String> {
        want(expect == Expect::Closed, || {
            format!("push of {s}.{i} refused Closed, expected {expect:?}")
        })?;
        // As the runtime does: a request it will never handle is answered.
        back.refuse(&self.target);
        let r = &mut self.records[s][i];
        r.refused = Some(Refused::Closed);
        if r.request {
            let answer = r.answer();
            want(answer == Some(Answer::Stopped), || {
                format!("request {s}.{i} refused Closed, answered {answer:?}")
            })?;
        }
        if s < self.senders.len() {
            self.senders[s].next += 1;
        }
        Ok(())
    }

    fn link(&mut self) -> Result<(), String> {
        self.notice_sent = true;
        let s = self.senders.len();
        let expect = self.expect(s, 0);
        let letter = Letter::Exit(ExitSignal {
            from: point("link"),
            reason: format!("{s}.0"),
            normal: false,
        });
        match self.lane.push(letter) {
            Ok(()) => self.queued(s, 0, expect),
            Err((back, Refusal::Closed)) => {
                self.check_back(s, 0, &back)?;
                self.refused_closed(s, 0, back, expect)
            }
            Err((_, Refusal::Full)) => Err("a notice was refused Full".into()),
        }
    }

    fn recv(&mut self) -> Result<(), String> {
        let mut fut = match std::mem::replace(&mut self.rx, RxState::Gone) {
            RxState::Idle(rx) => self.lane.recv(rx),
            RxState::Waiting(fut) => fut,
            _ => unreachable!("enabled only when idle or woken"),
        };
        self.in_hand = false;
        match self.rx_task.poll(fut.as_mut()) {
            Poll::Pending => {
                want(!self.stop_sent, || {
                    "recv pending although a stop was requested".into()
                })?;
                let len = self.lane.len();
                want(len == 0, || {
                    format!("recv pending with {len} letters waiting")
                })?;
                self.rx = RxState::Waiting(fut);
                Ok(())
            }
            Poll::Ready((rx, Next::Letter(letter))) => {
                self.rx = RxState::Idle(rx);
                want(!self.stop_sent, || {
                    format!("took {:?} after a stop was requested", id_of(&letter))
                })?;
                self.take(letter)?;
                self.in_hand = true;
                Ok(())
            }
            Poll::Ready((mut rx, Next::Stop)) => {
                want(self.stop_sent, || "Stop with no stop requested".into())?;
                let rest = self.lane.close(&mut rx);
                self.rx = RxState::Closed;
                self.hand_back(rest)
            }
            Poll::Ready((_, Next::Crash(_) | Next::Interrupted)) => {
                Err("a fault's path with no fault injected".into())
            }
        }
    }

    fn take(&mut self, letter: Letter) -> Result<(), String> {
        let (s, i) = id_of(&letter);
        let epoch = self.epoch;
        let last = self.last_taken[s];
        let r = &mut self.records[s][i];
        want(r.queued.is_some(), || format!("took {s}.{i}, never queued"))?;
        want(!r.taken && !r.handed_back, || format!("took {s}.{i} twice"))?;
        want(!r.voided, || {
            format!("took {s}.{i}, a request already answered at the crash")
        })?;
        if r.notice {
            want(r.queued == Some(epoch), || {
                format!("took notice {s}.{i} for an incarnation that crashed")
            })?;
        }
        want(last.is_none_or(|last| i > last), || {
            format!(
                "per-sender order: took {s}.{i} after {s}.{}",
                last.unwrap_or(0)
            )
        })?;
        self.last_taken[s] = Some(i);
        r.taken = true;
        if r.request {
            let before = r.answer();
            want(before == Some(Answer::Waiting), || {
                format!("took request {s}.{i}, its requester already {before:?}")
            })?;
            // The handler's answer (see the module docs).
            letter.refuse(&self.target);
            let after = r.answer();
            want(after == Some(Answer::Stopped), || {
                format!(
                    "the answer to taken request {s}.{i} did not reach its requester: {after:?}"
                )
            })?;
        }
        Ok(())
    }

    fn crash_begin(&mut self) -> Result<(), String> {
        let RxState::Idle(mut rx) = std::mem::replace(&mut self.rx, RxState::Gone) else {
            unreachable!("enabled only when idle")
        };
        self.lane.crash_begin(&mut rx);
        self.rx = RxState::Crashing(rx);
        self.crash_window = true;
        self.crashed = true;
        self.in_hand = false;
        for (s, recs) in self.records.iter_mut().enumerate() {
            for (i, r) in recs.iter_mut().enumerate() {
                if r.request && r.below && r.queued.is_some() && !r.taken {
                    let answer = r.answer();
                    want(answer == Some(Answer::Stopped), || {
                        format!("descendant's request {s}.{i} waiting at the crash: {answer:?}")
                    })?;
                    r.voided = true;
                }
            }
        }
        Ok(())
    }

    /// What `close` handed back: each answered as the runtime does.
    fn hand_back(&mut self, rest: VecDeque<Letter>) -> Result<(), String> {
        self.closed = true;
        for letter in rest {
            let (s, i) = id_of(&letter);
            let r = &mut self.records[s][i];
            want(r.queued.is_some(), || {
                format!("close handed back {s}.{i}, never queued")
            })?;
            want(!r.taken && !r.handed_back, || {
                format!("close handed back {s}.{i}, already taken or handed back")
            })?;
            r.handed_back = true;
            letter.refuse(&self.target);
            if r.request && !r.voided {
                let answer = r.answer();
                want(answer == Some(Answer::Stopped), || {
                    format!("request {s}.{i} handed back, answered {answer:?}")
                })?;
            }
        }
        Ok(())
    }

    /// Nothing can step: every future left pending is polled once more
    /// (ready now means it was never woken: a lost wake-up), and every
    /// letter is accounted for.
    fn finish(&mut self) -> Result<(), String> {
        match std::mem::replace(&mut self.rx, RxState::Gone) {
            RxState::Closed => {}
            RxState::Waiting(mut fut) => match self.rx_task.poll(fut.as_mut()) {
                Poll::Ready(_) => {
                    return Err("lost wake-up: the receiver was left pending, never woken, \
                                with a letter or a stop to take"
                        .into())
                }
                Poll::Pending => {
                    want(!self.stop_sent && self.lane.len() == 0, || {
                        "the receiver is stuck".into()
                    })?;
                }
            },
            _ => return Err("the receiver is not at rest".into()),
        }
        for (s, sender) in self.senders.iter_mut().enumerate() {
            match std::mem::replace(&mut sender.state, SendState::Idle) {
                SendState::Idle if sender.letters.is_empty() => {}
                SendState::Waiting(mut fut) => {
                    let why = if self.closed {
                        "the lane is closed"
                    } else if self.cfg.limit.is_some_and(|l| self.lane.len() < l.capacity) {
                        "the lane has room"
                    } else {
                        "the lane stays full"
                    };
                    return Err(match sender.task.poll(fut.as_mut()) {
                        Poll::Ready(_) => format!(
                            "lost wake-up: sender {s}'s push_waiting was left pending, \
                             never woken, though it could go on ({why})"
                        ),
                        Poll::Pending => format!(
                            "sender {s}'s push_waiting is left pending forever, never woken \
                             ({why})"
                        ),
                    });
                }
                _ => return Err(format!("sender {s} did not finish")),
            }
        }
        let epoch = self.epoch;
        let notice = self.senders.len();
        for (s, recs) in self.records.iter_mut().enumerate() {
            if s == notice && !self.notice_sent {
                continue;
            }
            for (i, r) in recs.iter_mut().enumerate() {
                match r.queued {
                    Some(at) => {
                        let stale = r.notice && at < epoch;
                        want(r.taken || r.handed_back || r.voided || stale, || {
                            format!("lost letter: {s}.{i} was queued, never taken nor handed back")
                        })?;
                    }
                    None => want(r.refused.is_some(), || format!("{s}.{i} never sent"))?,
                }
                if r.request && r.refused != Some(Refused::Full) {
                    let answer = r.answer();
                    want(answer == Some(Answer::Stopped), || {
                        format!("request {s}.{i} left without an answer: {answer:?}")
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Explores every schedule of `cfg` on the mailboxes `open` makes; the
/// number of schedules, or the first failure with its schedule.
fn explore<M: Mailbox>(cfg: &Config, open: &dyn Fn(&Config) -> (M, M::Rx)) -> Result<u64, String> {
    // The choice made at each depth of the current schedule, and how many
    // there were.
    let mut path: Vec<(usize, usize)> = Vec::new();
    let mut schedules = 0u64;
    loop {
        let (lane, rx) = open(cfg);
        let mut run = Run::new(cfg, lane, rx);
        let mut trace = Vec::new();
        let failed =
            |trace: &[Step], e: String| format!("{}: {e}\n  schedule: {trace:?}", cfg.name);
        loop {
            let steps = run.enabled();
            if steps.is_empty() {
                break;
            }
            let depth = trace.len();
            if depth >= MAX_STEPS {
                return Err(failed(&trace, "no end in sight (livelock?)".into()));
            }
            let pick = match path.get(depth) {
                Some(&(pick, n)) => {
                    assert_eq!(n, steps.len(), "the replay diverged: not deterministic");
                    pick
                }
                None => {
                    path.push((0, steps.len()));
                    0
                }
            };
            trace.push(steps[pick]);
            if steps[pick] == Step::Quiet {
                break;
            }
            run.step(steps[pick]).map_err(|e| failed(&trace, e))?;
        }
        assert_eq!(trace.len(), path.len(), "the replay diverged");
        run.finish().map_err(|e| failed(&trace, e))?;
        schedules += 1;
        // The deepest choice with an alternative left takes it.
        while let Some((pick, n)) = path.pop() {
            if pick + 1 < n {
                path.push((pick + 1, n));
                break;
            }
        }
        if path.is_empty() {
            return Ok(schedules);
        }
    }
}

fn check_real(configs: &[Config]) {
    let mut wrong = Vec::new();
    for cfg in configs {
        let started = Instant::now();
        let schedules = explore(cfg, &real).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "lane model: {:>8} schedules in {:>6.2?}: {}",
            schedules,
            started.elapsed(),
            cfg.name
        );
        if schedules != cfg.schedules {
            wrong.push(format!(
                "{}: {schedules} schedules, expected {}",
                cfg.name, cfg.schedules
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn unbounded_lanes() {
    check_real(UNBOUNDED);
}

#[test]
fn lanes_of_capacity_1_that_wait() {
    check_real(WAITING);
}

#[test]
fn other_bounded_lanes() {
    check_real(BOUNDED);
}

/// The toy's configuration: a lane of capacity 2 that waits (so that a
/// sender waits for room, and a sender's letters can wait side by side),
/// two plain senders, a stop.
const TOY: Config = Config {
    name: "toy: capacity 2 wait, batch, 2+1 letters, stop",
    limit: WAIT2,
    senders: &[
        SenderSpec {
            point: "a",
            letters: &[S, R],
        },
        SenderSpec {
            point: "b",
            letters: &[R],
        },
    ],
    crash: false,
    stop: true,
    schedules: 696,
    ..BASE
};

#[test]
fn the_checker_catches_broken_mailboxes() {
    let ok = explore(&TOY, &toy(Bug::None)).unwrap_or_else(|e| panic!("the toy: {e}"));
    println!("lane model: the correct toy passes, {ok} schedules");
    assert_eq!(ok, TOY.schedules);
    // The real lane passes the toy's configuration too.
    let real_ok = explore(&TOY, &real).unwrap_or_else(|e| panic!("the real lane: {e}"));
    println!("lane model: the real lane passes the toy's configuration, {real_ok} schedules");
    for (bug, caught) in [
        (Bug::RoomWake, "lost wake-up: sender"),
        (Bug::StopWake, "lost wake-up: the receiver"),
        (Bug::Lifo, "per-sender order"),
    ] {
        let Err(e) = explore(&TOY, &toy(bug)) else {
            panic!("{bug:?} was not caught");
        };
        println!("lane model: {bug:?} caught: {e}");
        assert!(e.contains(caught), "{bug:?}: {e}");
    }
}
