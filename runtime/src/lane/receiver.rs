//! The receiving half of a lane: the particle's task takes its letters
//! here, in order, across all its incarnations.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use super::fault::Fate;
use super::letter::{Letter, Queued, Stamped};
use super::queue::{refuse_replies, LaneQueue, Next};
use crate::cell::ParticleCell;
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
                paused_lane(lane).await;
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
                    let reply = match letter {
                        Letter::Request(_, reply)
                        | Letter::Typed(super::Typed {
                            reply: Some(reply), ..
                        }) => Some(reply),
                        _ => None,
                    };
                    if let Some(reply) = reply {
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
                        st.taken += 1;
                        drop(st);
                        if let Some(b) = &lane.bound {
                            b.release(&queued);
                            b.room.notify_waiters();
                        }
                        queued
                    } else {
                        std::mem::swap(&mut st.queue, batch);
                        st.taken += batch.len() as u64;
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
fn open(lane: &LaneQueue<ParticleCell>, epoch: u32, queued: Queued) -> Option<Letter> {
    match queued {
        Queued::Wave(wave) => Some(Letter::Wave(wave)),
        Queued::Request(wave, tx) => Some(Letter::Request(wave, tx)),
        Queued::Typed(t) => Some(Letter::Typed(t)),
        Queued::Stamped(stamped) => open_stamped(lane, epoch, *stamped),
    }
}

/// [`open`] for a stamped letter.
fn open_stamped(lane: &LaneQueue<ParticleCell>, epoch: u32, stamped: Stamped) -> Option<Letter> {
    if stamped.epoch != epoch && stamped.letter.is_for_incarnation() {
        return None;
    }
    if stamped.ticket == 0 {
        return Some(stamped.letter);
    }
    lane.state.lock().unstamp(stamped)
}

/// Waits while the lane is paused (or until a stop).
async fn paused_lane<C>(lane: &LaneQueue<C>) {
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
