//! A bounded lane's admission: counts and bytes of the letters waiting,
//! and the room senders wait for.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::letter::{Letter, Queued};
use super::limit::LaneLimit;

pub(crate) struct Bound {
    pub(crate) limit: LaneLimit,
    /// Woken whenever the particle takes waves out of the lane.
    pub(crate) room: Notify,
    /// Bytes of the waves waiting, kept only if `limit.max_bytes` is set;
    /// changed under the lane's lock (an atomic only so that `Bound` needs
    /// no lock of its own).
    pub(crate) bytes: AtomicUsize,
}

impl Bound {
    /// Whether `letter` fits, counting it in if so.
    pub(super) fn admit(&self, letter: &Letter, waiting: usize) -> bool {
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
    pub(super) fn release(&self, letter: &Queued) {
        if self.limit.max_bytes.is_some() && !letter.is_system() {
            let held = self.bytes.load(Ordering::Relaxed);
            self.bytes
                .store(held.saturating_sub(letter.bytes()), Ordering::Relaxed);
        }
    }

    /// Every waiting letter left the lane at once.
    pub(super) fn release_all(&self) {
        self.bytes.store(0, Ordering::Relaxed);
    }
}
