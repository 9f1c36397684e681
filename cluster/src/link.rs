//! The numbering of one link (this Machine to one peer, one way): what is
//! sent but not yet acknowledged, and which numbers have arrived.
//!
//! ractor_cluster keeps order within one TCP session, and a new session
//! loses what was in flight on the old one. So each data frame gets the
//! next number on its link and is kept until the peer acknowledges it; on
//! a new session everything unacknowledged is sent again, in order, before
//! anything new; the receiver takes only the number it expects next, so a
//! resent frame it already has is dropped, never handled twice.

use std::collections::VecDeque;
use std::sync::Arc;

/// The sending side of a link.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// The stream its numbers belong to.
    pub(crate) stream: u64,
    next: u64,
    unacked: VecDeque<(u64, Arc<[u8]>)>,
    bytes: usize,
}

impl Outbox {
    /// An empty outbox numbering `stream` from 1.
    pub(crate) fn new(stream: u64) -> Self {
        Outbox {
            stream,
            ..Outbox::default()
        }
    }

    /// The number the next frame gets (from 1).
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Takes back number `seq`, the last given, for a frame never sent.
    pub(crate) fn unnumber(&mut self, seq: u64) {
        if seq == self.next {
            self.next -= 1;
        }
    }

    /// Keeps frame `seq`'s bytes until they are acknowledged.
    pub(crate) fn keep(&mut self, seq: u64, bytes: Arc<[u8]>) {
        self.bytes += bytes.len();
        self.unacked.push_back((seq, bytes));
    }

    /// The peer has every frame up to `upto`: forget them.
    pub(crate) fn ack(&mut self, upto: u64) {
        while let Some((seq, b)) = self.unacked.front() {
            if *seq > upto {
                break;
            }
            self.bytes -= b.len();
            self.unacked.pop_front();
        }
    }

    /// The frames to send again on a new session, oldest first.
    pub(crate) fn unacked(&self) -> impl Iterator<Item = &Arc<[u8]>> {
        self.unacked.iter().map(|(_, b)| b)
    }

    /// How many frames wait for their acknowledgement.
    pub(crate) fn len(&self) -> usize {
        self.unacked.len()
    }

    /// Their bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What a receiver does with a numbered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// The next in order: handle it.
    Deliver,
    /// Had already: drop it.
    Duplicate,
    /// A number past the next: one before it was lost; drop it and wait
    /// for the resend (which comes in order).
    Gap,
}

/// The receiving side of a link.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Inbox {
    /// The sender's stream being counted.
    pub(crate) stream: u64,
    /// The last number delivered.
    pub(crate) upto: u64,
}

impl Inbox {
    /// Takes frame `seq` of `stream`. Another stream than the one counted
    /// is a new one (its sender started afresh), counted from its first
    /// frame: a frame of it past the first is a gap until the first comes
    /// (its sender resends from there), and frames of a stream that is not
    /// started here never move this inbox off the one it counts.
    pub(crate) fn take(&mut self, stream: u64, seq: u64) -> Accept {
        if stream != self.stream {
            if seq != 1 {
                return Accept::Gap;
            }
            self.stream = stream;
            self.upto = 0;
        }
        self.accept(seq)
    }

    /// Whether `stream` would replace a stream this inbox has counted
    /// frames of (not its first contact).
    pub(crate) fn restarts(&self, stream: u64, seq: u64) -> bool {
        self.stream != 0 && stream != self.stream && seq == 1
    }

    pub(crate) fn accept(&mut self, seq: u64) -> Accept {
        if seq <= self.upto {
            Accept::Duplicate
        } else if seq == self.upto + 1 {
            self.upto = seq;
            Accept::Deliver
        } else {
            Accept::Gap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link where sessions drop at random points: every frame arrives
    /// once, in order (a replayable seed, printed).
    #[test]
    fn resends_over_lossy_sessions_deliver_each_frame_once_in_order() {
        let seed = 0x5eed_u64;
        println!("seed {seed:#x}");
        let mut rng = seed;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut out = Outbox::default();
        let mut inbox = Inbox::default();
        let mut delivered = Vec::new();
        let mut wire: VecDeque<u64> = VecDeque::new();
        for n in 0..5_000u64 {
            let seq = out.next_seq();
            out.keep(seq, Arc::from(n.to_le_bytes().as_slice()));
            wire.push_back(seq);
            match next() % 10 {
                // The session drops: what is on the wire is lost, a new one
                // sends every unacknowledged frame again.
                0 => {
                    wire.clear();
                    wire.extend(
                        out.unacked()
                            .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()) + 1),
                    );
                }
                // Some frames arrive; the receiver acknowledges.
                1..=6 => {
                    for _ in 0..(next() % 4) {
                        if let Some(s) = wire.pop_front() {
                            if inbox.accept(s) == Accept::Deliver {
                                delivered.push(s);
                            }
                        }
                    }
                    out.ack(inbox.upto);
                }
                _ => {}
            }
        }
        while let Some(s) = wire.pop_front() {
            if inbox.accept(s) == Accept::Deliver {
                delivered.push(s);
            }
        }
        out.ack(inbox.upto);
        assert_eq!(delivered, (1..=5_000).collect::<Vec<_>>());
        assert_eq!((out.len(), out.bytes()), (0, 0));
    }

    #[test]
    fn a_new_stream_starts_only_at_its_first_frame() {
        let mut i = Inbox::default();
        // Resent frames of a stream begun before this inbox: gaps, and
        // the inbox stays free for the stream that starts at 1.
        assert_eq!(i.take(7, 500), Accept::Gap);
        assert!(!i.restarts(9, 1), "a first contact is no restart");
        assert_eq!(i.take(9, 1), Accept::Deliver);
        assert_eq!(i.take(9, 2), Accept::Deliver);
        // The sender declared this side lost and began again.
        assert!(i.restarts(11, 1));
        assert!(!i.restarts(11, 4));
        assert_eq!(i.take(11, 4), Accept::Gap);
        assert_eq!(i.take(11, 1), Accept::Deliver);
        assert_eq!((i.stream, i.upto), (11, 1));
    }

    #[test]
    fn duplicates_and_gaps_are_told_apart() {
        let mut i = Inbox::default();
        assert_eq!(i.accept(2), Accept::Gap);
        assert_eq!(i.accept(1), Accept::Deliver);
        assert_eq!(i.accept(1), Accept::Duplicate);
        assert_eq!(i.accept(2), Accept::Deliver);
    }
}
