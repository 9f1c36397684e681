//! What travels between two Machines: envelopes of numbered frames, in
//! bincode 2 behind a version byte.
//!
//! Every frame names its sending Machine and that Machine's epoch (one
//! per process start), so a receiver can tell a resend from a new
//! incarnation of its peer. Bytes from a peer are hostile: they are
//! decoded with the runtime's bounded decoder, and any that do not decode
//! are dropped with a typed error, never a panic.

use std::time::Duration;

use hyperverse_runtime::access::{Change, Privilege, Visitor};
use hyperverse_runtime::{
    Body, CodecError, CrashNotice, DownReason, Kind, Point, Restart, Wave, WaveError,
};
use serde::{Deserialize, Serialize};

/// The version byte in front of every envelope (3: spawns name their
/// spawner, stops cross, rules replicate, denials keep their kind).
pub const FRAME_VERSION: u8 = 3;

/// The most rule changes one [`Item::Rules`] carries: a snapshot of many
/// rules goes in several, and a peer's item with more is refused whole.
pub(crate) const MAX_RULE_CHANGES: usize = 1024;

/// The largest envelope sent (a wave of the runtime's largest, and room
/// for its addressing); each Machine's node server accepts a message of a
/// batch this large.
pub(crate) const MAX_FRAME: usize = hyperverse_runtime::wave::MAX_WAVE_BYTES + 64 * 1024;

/// One frame from one Machine to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The sending Machine's name.
    pub(crate) machine: String,
    /// The sending Machine's epoch: a new one each time it starts.
    pub(crate) epoch: u64,
    pub(crate) frame: Frame,
}

/// Numbered data, or the acknowledgement of it.
///
/// Numbers run per stream: a link's sender starts a new stream (from 1)
/// when it starts, and again each time it declares its peer lost (what it
/// kept for the peer is dropped then), so a receiver that sees another
/// stream starts counting afresh instead of waiting for frames that will
/// never come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// The `seq`th item of `stream` (from 1), kept by its sender until
    /// acknowledged and resent on a new session.
    Data { stream: u64, seq: u64, item: Item },
    /// Every item of `stream` up to `upto` arrived.
    Ack { stream: u64, upto: u64 },
    /// A new session: "I have `stream` up to `upto`; send again what
    /// follows; and put `token` in every envelope you send me on it".
    Hello { stream: u64, upto: u64, token: u64 },
    /// A heartbeat: the session is alive.
    Ping,
    /// The sending Machine leaves the cluster: declare it lost now.
    Bye,
}

/// What a data frame carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Item {
    /// A one-way wave.
    Signal(Wave),
    /// A request; its answer comes back as a [`Item::Reply`] with `id`.
    Request { id: u64, wave: Wave },
    /// The answer to request `id`.
    Reply {
        id: u64,
        result: Result<Body, WireError>,
    },
    /// Particles registered on the sending Machine.
    Hosted { points: Vec<Point> },
    /// A particle of the sending Machine ended.
    Ended { point: Point, reason: DownReason },
    /// Spawn this particle here (a placement chose this Machine), as
    /// `from` on the sending Machine asks (one of its particles, or its
    /// own voice): judged as its spawn of a child under the Point's
    /// parent. The answer comes back as [`Item::Spawned`] with `id`.
    Spawn {
        id: u64,
        from: Point,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
    },
    /// How spawn `id` went.
    Spawned { id: u64, result: Result<(), String> },
    /// The sending Machine hosts a child of a parent on this one.
    Adopted(crate::family::Adoption),
    /// A crash notice for `parent`, on this Machine, from its child on
    /// the sending one.
    Crash { parent: Point, notice: CrashNotice },
    /// Control (the supervisor API) from `from` on the sending Machine to
    /// `to` here, in the runtime's encoding; answered as a
    /// [`Item::Reply`] with `id`.
    Control {
        id: u64,
        from: Point,
        to: Point,
        body: Body,
    },
    /// `point`, on the sending Machine, joined (or left) `group`.
    Group {
        group: String,
        point: Point,
        joined: bool,
    },
    /// The groups the sending Machine's particles belong to (on a new
    /// session).
    Groups(Vec<(String, Point)>),
    /// `from`, on the sending Machine, links itself with `to` here.
    Link { from: Point, to: Point },
    /// `from` removes its link with `to`.
    Unlink { from: Point, to: Point },
    /// An incarnation of `from`, linked with `to` here, ended.
    Exit {
        from: Point,
        to: Point,
        reason: String,
        normal: bool,
    },
    /// Changes to the access rules, in order: one made on the sending
    /// Machine, or (on a new session) a part of the rules it holds. At
    /// most [`MAX_RULE_CHANGES`].
    Rules(Vec<Change>),
    /// `from`, on the sending Machine, stops the particle at `point` here
    /// and its subtree; the answer comes back as [`Item::Stopped`] with
    /// `id`.
    Stop { id: u64, from: Point, point: Point },
    /// How stop `id` went.
    Stopped {
        id: u64,
        result: Result<(), WireError>,
    },
}

/// A [`WaveError`] on the wire: its Point is the request's target, which
/// the asker knows already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireError {
    NoSuchParticle,
    Stopped,
    Crashed(String),
    Timeout(u64),
    LaneFull(u64),
    CallingSelf,
    MachineDown,
    BadMessage(String),
    BadReply(String),
    Forbidden(Point),
    MachineLost(String),
    Other(String),
    /// The access rules refused the visitor the privilege on the target.
    Denied {
        visitor: Visitor,
        privilege: Privilege,
    },
}

impl WireError {
    pub(crate) fn from_wave(e: &WaveError) -> Self {
        match e {
            WaveError::NoSuchParticle { .. } => WireError::NoSuchParticle,
            WaveError::Stopped { .. } => WireError::Stopped,
            WaveError::Crashed { reason, .. } => WireError::Crashed(reason.clone()),
            WaveError::Timeout { after, .. } => {
                WireError::Timeout(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
            }
            WaveError::LaneFull { capacity, .. } => WireError::LaneFull(*capacity as u64),
            WaveError::CallingSelf { .. } => WireError::CallingSelf,
            WaveError::MachineDown => WireError::MachineDown,
            WaveError::BadMessage { error, .. } => WireError::BadMessage(error.to_string()),
            WaveError::BadReply { error, .. } => WireError::BadReply(error.to_string()),
            WaveError::Forbidden { caller, .. } => WireError::Forbidden(caller.clone()),
            WaveError::MachineLost { machine, .. } => WireError::MachineLost(machine.clone()),
            WaveError::Denied {
                visitor, privilege, ..
            } => WireError::Denied {
                visitor: visitor.clone(),
                privilege: *privilege,
            },
            other => WireError::Other(other.to_string()),
        }
    }

    pub(crate) fn into_wave(self, point: Point) -> WaveError {
        match self {
            WireError::NoSuchParticle => WaveError::NoSuchParticle { point },
            WireError::Stopped => WaveError::Stopped { point },
            WireError::Crashed(reason) => WaveError::Crashed { point, reason },
            WireError::Timeout(ms) => WaveError::Timeout {
                point,
                after: Duration::from_millis(ms),
            },
            WireError::LaneFull(c) => WaveError::LaneFull {
                point,
                capacity: usize::try_from(c).unwrap_or(usize::MAX),
            },
            WireError::CallingSelf => WaveError::CallingSelf { point },
            WireError::MachineDown => WaveError::MachineDown,
            WireError::BadMessage(e) => WaveError::BadMessage {
                point,
                error: CodecError::Decode(e),
            },
            WireError::BadReply(e) => WaveError::BadReply {
                point,
                error: CodecError::Decode(e),
            },
            WireError::Forbidden(caller) => WaveError::Forbidden { caller, point },
            WireError::MachineLost(machine) => WaveError::MachineLost { point, machine },
            WireError::Other(reason) => WaveError::Crashed { point, reason },
            WireError::Denied { visitor, privilege } => WaveError::Denied {
                visitor,
                point,
                privilege,
            },
        }
    }
}

impl Envelope {
    /// The envelope's bytes: the version byte, then bincode 2.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let body = Body::encode(self)?;
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(FRAME_VERSION);
        out.extend_from_slice(body.as_bytes());
        Ok(out)
    }

    /// Decodes bytes from a peer.
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] for an empty input, another version, or
    /// bytes that are not an envelope (bounded: see the runtime's codec).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        match bytes.split_first() {
            Some((&FRAME_VERSION, rest)) => Body::from(rest.to_vec()).decode(),
            Some((v, _)) => Err(CodecError::Decode(format!(
                "frame version {v}, this Machine reads {FRAME_VERSION}"
            ))),
            None => Err(CodecError::Decode("an empty frame".into())),
        }
    }
}

/// Starts a batch: the token the receiver gave the sender (u64,
/// little-endian; 0 before it is known). An envelope in a batch whose
/// token is not the one its receiver gave the Machine it names is
/// dropped: a Machine's name in an envelope is a claim, the token the
/// proof (it went to that Machine alone, over its own session).
pub(crate) fn batch_start(batch: &mut Vec<u8>, token: u64) {
    batch.extend_from_slice(&token.to_le_bytes());
}

/// Appends one envelope to a batch: its length (u32, little-endian),
/// then its bytes. One ractor_cluster message carries a batch.
pub(crate) fn batch_push(batch: &mut Vec<u8>, frame: &[u8]) {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    batch.extend_from_slice(&len.to_le_bytes());
    batch.extend_from_slice(frame);
}

/// A batch's token and its envelopes, in order; a length past the end is
/// an error (and the end of the batch).
pub(crate) fn batch_open(
    batch: &[u8],
) -> Option<(u64, impl Iterator<Item = Result<&[u8], CodecError>>)> {
    let (token, rest) = batch.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*token), batch_frames(rest)))
}

/// The envelopes after a batch's token, in order; a length past the end
/// is an error (and the end of the batch).
pub(crate) fn batch_frames(batch: &[u8]) -> impl Iterator<Item = Result<&[u8], CodecError>> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len, after)) = rest.split_first_chunk::<4>() else {
            rest = &[];
            return Some(Err(CodecError::Decode(
                "a batch cut inside a length".into(),
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > after.len() {
            rest = &[];
            return Some(Err(CodecError::Decode(format!(
                "a frame of {len} bytes in {} left",
                after.len()
            ))));
        }
        let (frame, next) = after.split_at(len);
        rest = next;
        Some(Ok(frame))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(frame: Frame) -> Envelope {
        Envelope {
            machine: "a".into(),
            epoch: 7,
            frame,
        }
    }

    #[test]
    fn envelopes_round_trip_and_bad_bytes_are_errors() {
        let w = Wave::request(
            "a:x".parse().unwrap(),
            "b:y".parse().unwrap(),
            "m",
            vec![1u8, 2],
        );
        for f in [
            Frame::Data {
                stream: 5,
                seq: 1,
                item: Item::Request { id: 3, wave: w },
            },
            Frame::Data {
                stream: 5,
                seq: 2,
                item: Item::Reply {
                    id: 3,
                    result: Err(WireError::Crashed("boom".into())),
                },
            },
            Frame::Ack { stream: 5, upto: 9 },
            Frame::Data {
                stream: 5,
                seq: 3,
                item: Item::Rules(vec![
                    Change::Grant("send,ask on b:** to machine=a".parse().unwrap()),
                    Change::Revoke("stop on b:y to kind=k".parse().unwrap()),
                ]),
            },
            Frame::Data {
                stream: 5,
                seq: 4,
                item: Item::Stop {
                    id: 4,
                    from: "a:x".parse().unwrap(),
                    point: "b:y".parse().unwrap(),
                },
            },
            Frame::Data {
                stream: 5,
                seq: 5,
                item: Item::Stopped {
                    id: 4,
                    result: Err(WireError::Denied {
                        visitor: Visitor::User("u".into()),
                        privilege: Privilege::Stop,
                    }),
                },
            },
        ] {
            let e = env(f);
            let bytes = e.encode().unwrap();
            assert_eq!(Envelope::decode(&bytes).unwrap(), e);
            for cut in 0..bytes.len() {
                assert!(Envelope::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        let mut other = env(Frame::Ack { stream: 1, upto: 1 }).encode().unwrap();
        other[0] = 9;
        assert!(Envelope::decode(&other).is_err());
        // A huge claimed length does not allocate: it is refused.
        let mut huge = vec![FRAME_VERSION, 0xfc, 0xff, 0xff, 0xff, 0x7f];
        huge.extend_from_slice(b"x");
        assert!(Envelope::decode(&huge).is_err());
    }

    #[test]
    fn batches_split_back_into_their_frames_and_cut_ones_end() {
        let mut b = Vec::new();
        for f in [&b"one"[..], b"", b"three"] {
            batch_push(&mut b, f);
        }
        let frames: Vec<&[u8]> = batch_frames(&b).map(Result::unwrap).collect();
        assert_eq!(frames, [&b"one"[..], b"", b"three"]);
        for cut in 1..b.len() {
            let got: Vec<_> = batch_frames(&b[..cut]).collect();
            assert!(
                got.iter().any(Result::is_err) || got.len() < 3,
                "cut at {cut}"
            );
        }
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.push(1);
        assert!(batch_frames(&huge).next().unwrap().is_err());
    }

    #[test]
    fn wave_errors_cross_and_keep_their_kind() {
        let p: Point = "b:y".parse().unwrap();
        let errs = [
            WaveError::Stopped { point: p.clone() },
            WaveError::Crashed {
                point: p.clone(),
                reason: "r".into(),
            },
            WaveError::Timeout {
                point: p.clone(),
                after: Duration::from_millis(40),
            },
            WaveError::MachineLost {
                point: p.clone(),
                machine: "b".into(),
            },
            WaveError::Denied {
                visitor: Visitor::Particle("a:x".parse().unwrap()),
                point: p.clone(),
                privilege: Privilege::Ask,
            },
            WaveError::Denied {
                visitor: Visitor::Machine("a".into()),
                point: p.clone(),
                privilege: Privilege::Send,
            },
        ];
        for e in errs {
            assert_eq!(WireError::from_wave(&e).into_wave(p.clone()), e);
        }
    }
}
