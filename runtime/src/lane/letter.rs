//! Letters: what waits in a lane.
//!
//! A letter is a wave (a signal, or a request with its answer channel), a
//! typed message (the value itself, boxed), or one of the runtime's own:
//! a crash notice, a down notice, an exit signal, a control letter.

use tokio::sync::oneshot;

use crate::control::{ControlKind, ControlLetter, ControlTx};
use crate::message::{MessageVt, Reply, Value};
use crate::{CrashNotice, DownNotice, ExitSignal, Point, Wave, WaveError};

/// Where a request's answer goes: its reply (bytes or a typed value) or a
/// typed error.
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, WaveError>>;
pub(crate) type ReplyRx = oneshot::Receiver<Result<Reply, WaveError>>;

/// A typed message in a lane: sender and target stamped by the runtime,
/// the value itself (never encoded in-process), and its answer channel if
/// it was asked for.
pub(crate) struct Typed {
    pub(crate) from: Point,
    pub(crate) to: Point,
    pub(crate) value: Value,
    pub(crate) vt: &'static MessageVt,
    pub(crate) reply: Option<ReplyTx>,
}

impl Typed {
    /// The message as a wave, for a particle with no typed handler of its
    /// type (or, with the cluster, for another Machine): the one place a
    /// typed message is encoded.
    /// The encoding is the sender's code: a panic in it is caught and
    /// becomes an error (the receiver refuses the message, and lives).
    pub(crate) fn into_wave(self) -> Result<(Wave, Option<ReplyTx>), (crate::CodecError, Self)> {
        let encode = self.vt.encode;
        let encoded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encode(self.value.as_any())))
                .unwrap_or_else(|_| Err(crate::CodecError::Encode("its encode panicked".into())));
        match encoded {
            Ok(body) => {
                let mut wave = Wave::signal(self.from, self.to, self.vt.method, body);
                if self.reply.is_some() {
                    wave.kind = crate::WaveKind::Request;
                }
                Ok((wave, self.reply))
            }
            Err(e) => Err((e, self)),
        }
    }
}
/// One item in a lane.
pub(crate) enum Letter {
    /// A signal (or a reply routed as a signal).
    Wave(Wave),
    /// A request and where to send its answer.
    Request(Wave, ReplyTx),
    /// A typed message, signalled or asked for.
    Typed(Typed),
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
            Letter::Request(_, tx)
            | Letter::Typed(Typed {
                reply: Some(tx), ..
            }) => {
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
    pub(super) fn requester(&self) -> Option<(&Point, &Point)> {
        match self {
            Letter::Request(wave, _) => Some((&wave.from, &wave.to)),
            Letter::Typed(t) if t.reply.is_some() => Some((&t.from, &t.to)),
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
    Typed(Typed),
    Stamped(Box<Stamped>),
}

impl Queued {
    /// The letter as it lies in the lane, stamps dropped.
    pub(super) fn into_letter(self) -> Letter {
        match self {
            Queued::Wave(wave) => Letter::Wave(wave),
            Queued::Request(wave, tx) => Letter::Request(wave, tx),
            Queued::Typed(t) => Letter::Typed(t),
            Queued::Stamped(s) => s.letter,
        }
    }

    /// The queued letter's weight against a lane's `max_bytes`.
    pub(super) fn bytes(&self) -> usize {
        match self {
            Queued::Wave(w) | Queued::Request(w, _) => w.method.len() + w.body.len(),
            Queued::Typed(t) => t.weight(),
            Queued::Stamped(s) => s.letter.bytes(),
        }
    }

    /// Whether it is a system letter (see [`Letter::is_system`]).
    pub(super) fn is_system(&self) -> bool {
        match self {
            Queued::Wave(_) | Queued::Request(..) | Queued::Typed(_) => false,
            Queued::Stamped(s) => s.letter.is_system(),
        }
    }
}

/// A letter stamped as it was queued (see [`Queued`]).
pub(crate) struct Stamped {
    pub(super) letter: Letter,
    /// The receiver's incarnation epoch when it was queued: a crash notice,
    /// exit signal or down notice of an earlier one is dropped when taken.
    pub(super) epoch: u32,
    /// Non-zero for a request from a descendant of the lane's particle:
    /// its answer channel waits in [`Below`] under this ticket (the letter
    /// holds a stand-in), so that a crash can answer it without a scan.
    pub(super) ticket: u32,
}

/// Where a waiting letter's answer goes: a request's or a control letter's.
pub(super) enum Answer {
    Wave(ReplyTx),
    Control(ControlTx),
}

impl Answer {
    /// Answers `Stopped`: the letter will not be handled.
    pub(super) fn refuse(self, point: &Point) {
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

impl Letter {
    pub(super) fn is_for_incarnation(&self) -> bool {
        matches!(self, Letter::Notice(_) | Letter::Exit(_) | Letter::Down(_))
    }

    /// System letters (crash and down notices) are never refused for room.
    pub(super) fn is_system(&self) -> bool {
        match self {
            Letter::Notice(_) | Letter::Down(_) | Letter::Exit(_) => true,
            // A supervised child's exit report must reach its supervisor;
            // only the runtime makes one.
            Letter::Control(c) => matches!(c.kind, ControlKind::Exit(_) | ControlKind::Retry),
            Letter::Wave(_) | Letter::Request(..) | Letter::Typed(_) => false,
        }
    }

    /// What a letter weighs against a lane's `max_bytes`: a wave's method
    /// and body, a Driver control's body; nothing for system letters.
    pub(super) fn bytes(&self) -> usize {
        match self {
            Letter::Wave(w) | Letter::Request(w, _) => w.method.len() + w.body.len(),
            Letter::Typed(t) => t.weight(),
            Letter::Control(c) => match &c.kind {
                ControlKind::Driver(body) => body.len(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Injected faults (drops, delays) are for waves: the runtime's own
    /// letters and control traffic pass them.
    pub(super) fn skips_faults(&self) -> bool {
        !matches!(
            self,
            Letter::Wave(_) | Letter::Request(..) | Letter::Typed(_)
        )
    }
}

impl Typed {
    /// What it weighs against a lane's `max_bytes`: its method and the
    /// value's own size (what it holds behind pointers is not counted:
    /// typed messages come from in-process Rust code, not from guests).
    fn weight(&self) -> usize {
        self.vt.method.len() + self.value.size()
    }
}

impl Letter {
    /// The method of a wave or typed message (what tracing shows); the
    /// kind of letter otherwise.
    pub(crate) fn method(&self) -> &str {
        match self {
            Letter::Wave(w) | Letter::Request(w, _) => &w.method,
            Letter::Typed(t) => t.vt.method,
            Letter::Notice(_) => "crash_notice",
            Letter::Down(_) => "down",
            Letter::Exit(_) => "exit",
            Letter::Control(c) => c.kind.label(),
        }
    }
}
