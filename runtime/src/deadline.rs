//! Request deadlines on a coarse, shared clock.
//!
//! `tokio::time::timeout` registers a timer per request, and registering one
//! often has to wake the parked timer driver with a syscall: measured here,
//! that tripled the cost of a request round trip. Requests instead share one
//! timer per [`TICK`]: every request due within the same tick waits on the
//! same slot, and one task per slot fires it. A timeout therefore fires
//! between `timeout` and `timeout + TICK` after the request was sent, which
//! is well within what a request timeout means (OTP's timers are in
//! milliseconds too).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The granularity of request deadlines.
pub const TICK: Duration = Duration::from_millis(2);

/// One shared deadline.
#[derive(Default)]
struct Slot {
    fired: AtomicBool,
    notify: Notify,
}

impl Slot {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// A Machine's deadline slots, by tick.
pub(crate) struct Deadlines {
    /// Unique per `Deadlines`, for the per-thread cache (an address could be reused).
    id: u64,
    origin: Instant,
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The slot this thread used last: requests sent in a burst share a
    /// tick, so most find their slot here without taking the map's lock.
    /// A cached slot cannot have fired yet: its tick is still in the future
    /// for any request that computes the same tick.
    static LAST: RefCell<Option<(u64, u64, Arc<Slot>)>> = const { RefCell::new(None) };
}

/// Fires its slot when the slot's task ends, however it ends: at the
/// deadline, or dropped with its runtime (so no waiter is left hanging).
struct FireOnDrop {
    tick: u64,
    slot: Arc<Slot>,
    deadlines: Weak<Deadlines>,
}

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        if let Some(d) = self.deadlines.upgrade() {
            d.slots.lock().remove(&self.tick);
        }
        self.slot.fire();
    }
}

impl Deadlines {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Deadlines {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            origin: Instant::now(),
            slots: Mutex::new(BTreeMap::new()),
        })
    }

    /// The slot that fires at the first tick at or after `now + timeout`.
    fn slot(self: &Arc<Self>, timeout: Duration) -> Arc<Slot> {
        let due = Instant::now() + timeout;
        let tick = (due.duration_since(self.origin).as_nanos() / TICK.as_nanos()) as u64 + 1;
        let cached = LAST.with_borrow(|last| match last {
            Some((id, t, slot)) if *id == self.id && *t == tick => Some(slot.clone()),
            _ => None,
        });
        if let Some(slot) = cached {
            return slot;
        }
        let slot = self.slot_at(tick);
        LAST.set(Some((self.id, tick, slot.clone())));
        slot
    }

    /// The slot for `tick`, made (and its firing task spawned) if new.
    fn slot_at(self: &Arc<Self>, tick: u64) -> Arc<Slot> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(&tick) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        slots.insert(tick, slot.clone());
        drop(slots);
        let at = self.origin + TICK * (tick as u32);
        let guard = FireOnDrop {
            tick,
            slot: slot.clone(),
            deadlines: Arc::downgrade(self),
        };
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            drop(guard);
        });
        slot
    }

    /// Awaits `fut` until it completes or `timeout` passes (`None` then).
    pub(crate) async fn within<F: Future>(
        self: &Arc<Self>,
        timeout: Duration,
        fut: F,
    ) -> Option<F::Output> {
        let slot = self.slot(timeout);
        let mut fut = pin!(fut);
        let mut notified = pin!(slot.notify.notified());
        // Registered before `fired` is checked: a fire in between is not missed.
        notified.as_mut().enable();
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if slot.fired.load(Ordering::SeqCst) || notified.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_after_the_timeout_and_not_before() {
        let d = Deadlines::new();
        let t = std::time::Instant::now();
        let out = d
            .within(Duration::from_millis(30), std::future::pending::<()>())
            .await;
        let waited = t.elapsed();
        assert!(out.is_none());
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(d.slots.lock().is_empty(), "fired slots are removed");
    }

    #[tokio::test]
    async fn a_ready_future_wins() {
        let d = Deadlines::new();
        assert_eq!(
            d.within(Duration::from_millis(1), async { 7 }).await,
            Some(7)
        );
    }

    #[tokio::test]
    async fn requests_due_in_one_tick_share_a_slot() {
        let d = Deadlines::new();
        let a = d.slot(Duration::from_secs(10));
        let b = d.slot(Duration::from_secs(10));
        // Almost always the same tick; at worst the neighbouring one.
        assert!(Arc::ptr_eq(&a, &b) || d.slots.lock().len() == 2);
    }
}
