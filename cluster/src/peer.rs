//! One peer as this Machine sees it: its session (the [`Wire`]), the two
//! directions of its link, what this Machine knows of it, and how frames
//! go out to it (at once on an idle link, batched under load).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse_runtime::Point;
use tokio::sync::Notify;

use crate::link::{Inbox, Outbox};

/// One peer's session: bytes out, in order.
pub(crate) trait Wire: Send + Sync + 'static {
    /// Sends a batch of envelopes (see [`crate::frame::batch_push`]);
    /// false if the session is gone.
    fn send(&self, batch: Vec<u8>) -> bool;
    /// Which session this is (a peer may have had others before).
    fn id(&self) -> u64;
    /// Ends the session (the peer went silent on it).
    fn close(&self);
}

/// A frame emitted this long after the last one goes at once, alone; one
/// that follows closer (a burst: one sender streaming) is batched with
/// those that follow, and the batch goes when the writer task runs. One
/// ractor_cluster message costs microseconds whatever it carries: in a
/// burst, a batch carries many frames for the cost of one. Requests and
/// replies, which come tens of microseconds apart, go at once and pay no
/// wake-up of the writer.
pub(crate) const IDLE: Duration = Duration::from_micros(5);
/// The largest batch assembled before it goes at once.
pub(crate) const MAX_BATCH: usize = 256 * 1024;

pub(crate) struct Peer {
    pub(crate) epoch: Option<u64>,
    pub(crate) out: Outbox,
    pub(crate) inbox: Inbox,
    pub(crate) wire: Option<Arc<dyn Wire>>,
    pub(crate) down_since: Option<Instant>,
    pub(crate) points: HashSet<Point>,
    pub(crate) ack_due: bool,
    pub(crate) acked_at: Instant,
    pub(crate) heard_at: Instant,
    pub(crate) said_at: Instant,
    /// Frames waiting for the writer, as one batch.
    pub(crate) batch: Vec<u8>,
    /// When a batch last went.
    pub(crate) emitted_at: Instant,
    /// The token this Machine gave the peer (in its Hello on each
    /// session): its envelopes must carry it.
    pub(crate) issued: u64,
    /// The token the peer gave this Machine: carried in every envelope.
    pub(crate) presented: u64,
    /// The peer's Hello for the current session is still awaited (one is
    /// taken per session, the first).
    pub(crate) awaiting_hello: bool,
}

impl Peer {
    pub(crate) fn new(stream: u64) -> Self {
        Peer {
            epoch: None,
            out: Outbox::new(stream),
            inbox: Inbox::default(),
            wire: None,
            down_since: None,
            points: HashSet::new(),
            ack_due: false,
            acked_at: Instant::now(),
            heard_at: Instant::now(),
            said_at: Instant::now(),
            batch: Vec::new(),
            emitted_at: Instant::now(),
            issued: 0,
            presented: 0,
            awaiting_hello: false,
        }
    }

    /// Puts one envelope on the wire: at once on an idle link, else into
    /// the batch the writer sends (woken through `writer`). Under this
    /// peer's lock, like every send, so frames go in the order emitted.
    pub(crate) fn emit(&mut self, frame: &[u8], writer: &Notify) {
        let Some(wire) = &self.wire else {
            return;
        };
        let now = Instant::now();
        if self.batch.is_empty() && now.duration_since(self.emitted_at) > IDLE {
            let mut one = Vec::with_capacity(frame.len() + 12);
            crate::frame::batch_start(&mut one, self.presented);
            crate::frame::batch_push(&mut one, frame);
            wire.send(one);
            self.emitted_at = now;
            return;
        }
        if self.batch.is_empty() {
            writer.notify_one();
            crate::frame::batch_start(&mut self.batch, self.presented);
        }
        crate::frame::batch_push(&mut self.batch, frame);
        if self.batch.len() >= MAX_BATCH {
            self.flush();
        }
    }

    /// Sends the batch, if any.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if let Some(wire) = &self.wire {
            wire.send(batch);
        }
        self.emitted_at = Instant::now();
    }

    pub(crate) fn resend(&mut self, writer: &Notify) {
        let unacked: Vec<Arc<[u8]>> = self.out.unacked().cloned().collect();
        for b in unacked {
            self.emit(&b, writer);
        }
        self.acked_at = Instant::now();
    }
}

/// A peer's Hello, taken when its session is up.
pub(crate) struct Hello {
    #[allow(dead_code)]
    pub(crate) epoch: u64,
    pub(crate) stream: u64,
    pub(crate) upto: u64,
    pub(crate) token: u64,
}
