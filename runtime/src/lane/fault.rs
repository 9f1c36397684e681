//! The faults in force on one lane, and the seeded choices they make.

use std::time::Duration;

use super::letter::ReplyTx;
use crate::Fault;

/// The faults in force on one lane.
#[derive(Default)]
pub(crate) struct LaneFault {
    pub(crate) crash: Option<String>,
    pub(crate) paused: bool,
    pub(crate) fail_start: Option<String>,
    delay: Option<(Duration, Duration, f64)>,
    drop: f64,
    /// SplitMix64 state: a tiny, seedable generator, so that a lane's
    /// choices replay with its seed.
    rng: u64,
    /// Requests dropped: their answers never come (the requesters time out).
    swallowed: Vec<ReplyTx>,
}

/// What to do with one wave taken from a faulty lane.
pub(crate) enum Fate {
    Handle,
    Delay(Duration),
    Drop,
}

impl LaneFault {
    pub(crate) fn apply(&mut self, fault: Fault, seed: u64) {
        if seed != 0 {
            self.rng = seed;
        }
        match fault {
            Fault::Crash(reason) => self.crash = Some(reason),
            Fault::Pause => self.paused = true,
            Fault::Resume => self.paused = false,
            Fault::FailNextStart(reason) => self.fail_start = Some(reason),
            Fault::Delay {
                min,
                max,
                probability,
            } => self.delay = Some((min, max, probability)),
            Fault::Drop { probability } => self.drop = probability,
            // Requests already dropped stay unanswered (their requesters
            // time out, as a drop promises) until the lane closes.
            Fault::Heal => {
                self.paused = false;
                self.delay = None;
                self.drop = 0.0;
            }
        }
    }

    /// True when nothing is in force or waiting.
    pub(crate) fn is_idle(&self) -> bool {
        self.crash.is_none()
            && !self.paused
            && self.fail_start.is_none()
            && self.delay.is_none()
            && self.drop == 0.0
            && self.swallowed.is_empty()
    }

    /// The answer channels of the requests dropped so far.
    pub(crate) fn take_swallowed(&mut self) -> Vec<ReplyTx> {
        std::mem::take(&mut self.swallowed)
    }

    /// True while something interrupts the receiver (a crash, a pause).
    pub(crate) fn interrupts(&self) -> bool {
        self.crash.is_some() || self.paused
    }

    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Decides one wave's fate.
    pub(crate) fn fate(&mut self) -> Fate {
        if self.drop > 0.0 && self.next_f64() < self.drop {
            return Fate::Drop;
        }
        if let Some((min, max, p)) = self.delay {
            if self.next_f64() < p {
                let span = max.saturating_sub(min).as_nanos() as f64;
                return Fate::Delay(min + Duration::from_nanos((span * self.next_f64()) as u64));
            }
        }
        Fate::Handle
    }

    /// Keeps a dropped request's answer channel, unanswered.
    pub(crate) fn swallow(&mut self, reply: ReplyTx) {
        self.swallowed.push(reply);
    }
}
