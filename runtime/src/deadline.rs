//! Request deadlines on a coarse, shared clock.
//!
//! `tokio::time::timeout` registers a timer per request, and registering one
//! often has to wake the parked timer driver with a syscall: measured here,
//! that more than doubled the cost of a request round trip. Requests instead
//! share a slot per [`TICK`]: every request due within the same tick waits on
//! the same slot, and one driver task per Machine fires the slots in order.
//! A timeout therefore fires between `timeout` and `timeout + TICK` after the
//! request was sent, which is what a request timeout needs (OTP's timers are
//! in milliseconds too).

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
const TICK_NANOS: u128 = TICK.as_nanos();

/// One shared deadline.
#[derive(Default)]
pub(crate) struct Slot {
    fired: AtomicBool,
    notify: Arc<Notify>,
}

impl Slot {
    /// True once the deadline has passed.
    pub(crate) fn has_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// A wait for the deadline that owns its slot, for a future that
    /// cannot borrow one; `enable` it before checking [`Slot::has_fired`].
    pub(crate) fn fired_owned(&self) -> tokio::sync::futures::OwnedNotified {
        self.notify.clone().notified_owned()
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// A Machine's deadline slots, by tick, and the driver that fires them.
pub(crate) struct Deadlines {
    /// Unique per `Deadlines`, for the per-thread cache (an address could be reused).
    id: u64,
    origin: Instant,
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    /// Wakes the driver when a slot earlier than all others is added (shared
    /// with the driver, which holds the `Deadlines` only weakly).
    earlier: Arc<Notify>,
    /// The Machine's request timeout: what an `ask` waits unless told
    /// otherwise (kept here, so that a particle's handle stays two
    /// pointers).
    pub(crate) request_timeout: Duration,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The slot this thread used last: requests sent in a burst share a
    /// tick, so most find their slot here without taking the map's lock.
    static LAST: RefCell<Option<(u64, u64, Arc<Slot>)>> = const { RefCell::new(None) };
}

/// Fires every slot left when the driver ends, however it ends (the
/// Machine dropped, or its runtime shutting down), so no waiter hangs.
struct FireAllOnDrop(Weak<Deadlines>);

impl Drop for FireAllOnDrop {
    fn drop(&mut self) {
        if let Some(d) = self.0.upgrade() {
            let slots = std::mem::take(&mut *d.slots.lock());
            for slot in slots.values() {
                slot.fire();
            }
        }
    }
}

impl Deadlines {
    /// New deadlines, with their driver task spawned on the current runtime.
    pub(crate) fn start(request_timeout: Duration) -> Arc<Self> {
        let d = Arc::new(Deadlines {
            request_timeout,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            origin: Instant::now(),
            slots: Mutex::new(BTreeMap::new()),
            earlier: Arc::new(Notify::new()),
        });
        tokio::spawn(drive(Arc::downgrade(&d), d.earlier.clone()));
        d
    }

    fn at(&self, tick: u64) -> Instant {
        self.origin + Duration::from_nanos(tick.saturating_mul(TICK_NANOS as u64))
    }

    /// The slot that fires at the first tick at or after `now + timeout`;
    /// `None` when that is beyond any clock (the request waits forever).
    pub(crate) fn slot(&self, timeout: Duration) -> Option<Arc<Slot>> {
        let due = Instant::now().checked_add(timeout)?;
        let tick = u64::try_from(due.duration_since(self.origin).as_nanos() / TICK_NANOS)
            .ok()?
            .checked_add(1)?;
        let cached = LAST.with_borrow(|last| match last {
            Some((id, t, slot))
                if *id == self.id && *t == tick && !slot.fired.load(Ordering::Relaxed) =>
            {
                Some(slot.clone())
            }
            _ => None,
        });
        if cached.is_some() {
            return cached;
        }
        let slot = self.slot_for_tick(tick);
        LAST.set(Some((self.id, tick, slot.clone())));
        Some(slot)
    }

    /// The slot for `tick`, made if new (waking the driver if it is the earliest).
    fn slot_for_tick(&self, tick: u64) -> Arc<Slot> {
        let mut slots = self.slots.lock();
        let first = slots.first_key_value().map(|(t, _)| *t);
        let slot = slots.entry(tick).or_default().clone();
        if first.is_none_or(|f| tick < f) {
            self.earlier.notify_one();
        }
        slot
    }

    /// Awaits `fut` until it completes or `timeout` passes (`None` then).
    pub(crate) async fn within<F: Future>(&self, timeout: Duration, fut: F) -> Option<F::Output> {
        let Some(slot) = self.slot(timeout) else {
            return Some(fut.await);
        };
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

impl Drop for Deadlines {
    fn drop(&mut self) {
        for slot in std::mem::take(&mut *self.slots.lock()).values() {
            slot.fire();
        }
        // Lets the driver notice that it has nothing left to drive.
        self.earlier.notify_one();
    }
}

/// Fires slots as their ticks come, earliest first; ends with the Machine.
async fn drive(deadlines: Weak<Deadlines>, wake: Arc<Notify>) {
    let _fire_rest = FireAllOnDrop(deadlines.clone());
    loop {
        let Some(d) = deadlines.upgrade() else { return };
        let next = d.slots.lock().first_key_value().map(|(t, _)| *t);
        let earlier = wake.notified();
        match next {
            Some(tick) => {
                let at = d.at(tick);
                drop(d);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = earlier => continue,
                }
                let Some(d) = deadlines.upgrade() else { return };
                let now = Instant::now();
                let due: Vec<Arc<Slot>> = {
                    let mut slots = d.slots.lock();
                    let later = slots.split_off(&(tick + 1));
                    let mut due = std::mem::replace(&mut *slots, later);
                    // Ticks that came due while we slept.
                    while let Some(entry) = slots.first_entry() {
                        if d.at(*entry.key()) > now {
                            break;
                        }
                        due.insert(*entry.key(), entry.remove());
                    }
                    due.into_values().collect()
                };
                for slot in due {
                    slot.fire();
                }
            }
            None => {
                drop(d);
                // Woken by a new slot, or by the Deadlines being dropped.
                earlier.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_after_the_timeout_and_not_before() {
        let d = Deadlines::start(Duration::from_secs(5));
        let t = std::time::Instant::now();
        let out = d
            .within(Duration::from_millis(30), std::future::pending::<()>())
            .await;
        let waited = t.elapsed();
        assert!(out.is_none());
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        tokio::task::yield_now().await;
        assert!(d.slots.lock().is_empty(), "fired slots are removed");
    }

    #[tokio::test]
    async fn an_earlier_deadline_added_later_still_fires_on_time() {
        let d = Deadlines::start(Duration::from_secs(5));
        let late = d.within(Duration::from_secs(60), std::future::pending::<()>());
        let early = d.within(Duration::from_millis(20), std::future::pending::<()>());
        tokio::select! {
            _ = late => panic!("the 60 s deadline fired first"),
            out = early => assert!(out.is_none()),
        }
    }

    #[tokio::test]
    async fn a_ready_future_wins_and_huge_timeouts_mean_no_deadline() {
        let d = Deadlines::start(Duration::from_secs(5));
        assert_eq!(
            d.within(Duration::from_millis(1), async { 7 }).await,
            Some(7)
        );
        assert_eq!(d.within(Duration::MAX, async { 8 }).await, Some(8));
        assert!(d.slot(Duration::MAX).is_none());
    }

    #[tokio::test]
    async fn requests_due_in_one_tick_share_a_slot() {
        let d = Deadlines::start(Duration::from_secs(5));
        let a = d.slot_for_tick(1_000_000);
        let b = d.slot_for_tick(1_000_000);
        let c = d.slot_for_tick(1_000_001);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(d.slots.lock().len(), 2);
    }

    #[tokio::test]
    async fn dropping_the_deadlines_releases_waiters() {
        let d = Deadlines::start(Duration::from_secs(5));
        let slot = d.slot(Duration::from_secs(3600)).unwrap();
        drop(d);
        assert!(slot.fired.load(Ordering::SeqCst));
    }
}
