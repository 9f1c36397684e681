//! Errors, as enums with the context a user needs to act on them.

use std::time::Duration;

use crate::{Kind, Point, PointError};

/// Encoding or decoding a wave or body failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No bytes at all.
    #[error("empty input: no version byte")]
    Empty,
    /// A version byte this build does not speak.
    #[error("wave format version {found} is not supported (expected {expected})")]
    Version { found: u8, expected: u8 },
    /// Longer than [`crate::wave::MAX_WAVE_BYTES`].
    #[error("encoded wave is {len} bytes, over the limit")]
    TooLarge { len: usize },
    /// The bytes are not a valid encoding (truncated, bad UTF-8, bad Point, …).
    #[error("malformed bytes: {0}")]
    Decode(String),
    /// A complete value was followed by more bytes.
    #[error("{extra} trailing bytes after a complete value")]
    TrailingBytes { extra: usize },
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Why a wave was not delivered or a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaveError {
    /// Nothing lives at that Point.
    #[error("no particle at {point}")]
    NoSuchParticle { point: Point },
    /// The particle at that Point has stopped (or stopped before answering).
    #[error("particle {point} has stopped")]
    Stopped { point: Point },
    /// The particle crashed while handling this request.
    #[error("particle {point} crashed while handling the request: {reason}")]
    Crashed { point: Point, reason: String },
    /// No reply came in time.
    #[error("request to {point} timed out after {after:?}")]
    Timeout { point: Point, after: Duration },
    /// A bounded lane is full (and its policy, or the caller, cannot wait).
    #[error("the lane of {point} is full ({capacity} waves waiting)")]
    LaneFull { point: Point, capacity: usize },
    /// A particle sent a request to itself: it would wait for itself.
    #[error("particle {point} sent a request to itself")]
    CallingSelf { point: Point },
    /// The Machine is shutting down or gone.
    #[error("the machine is shut down")]
    MachineDown,
    /// The particle could not read the message: its bytes are not the
    /// message type its method names (answered, not a crash: a sender
    /// cannot crash a particle with bad bytes).
    #[error("{point} could not decode the message: {error}")]
    BadMessage { point: Point, error: CodecError },
    /// The reply is not of the type asked for (an untyped handler answered
    /// a typed ask with other bytes).
    #[error("the reply from {point} could not be decoded: {error}")]
    BadReply { point: Point, error: CodecError },
    /// The sender may not do this to that particle: only the Machine, the
    /// particle itself or an ancestor may inject faults into it or monitor
    /// on its behalf, and a particle of another line may not stop it.
    #[error("{caller} may not act on {point} (a particle of another line)")]
    Forbidden { caller: Point, point: Point },
    /// The access rules do not give the visitor this privilege on that
    /// Point (see [`crate::access`]): a denied request's answer.
    #[error("access denied: {visitor} may not {privilege} {point}")]
    Denied {
        visitor: crate::access::Visitor,
        point: Point,
        privilege: crate::access::Privilege,
    },
    /// The Machine hosting that Point was lost (its session dropped and
    /// did not come back in time, or it restarted): what was sent to it
    /// and not answered will not be.
    #[error("the machine {machine} hosting {point} was lost")]
    MachineLost { point: Point, machine: String },
}

impl WaveError {
    /// The Point the error is about, if any.
    pub fn point(&self) -> Option<&Point> {
        match self {
            WaveError::NoSuchParticle { point }
            | WaveError::Stopped { point }
            | WaveError::Crashed { point, .. }
            | WaveError::Timeout { point, .. }
            | WaveError::CallingSelf { point }
            | WaveError::LaneFull { point, .. }
            | WaveError::BadMessage { point, .. }
            | WaveError::BadReply { point, .. }
            | WaveError::Forbidden { point, .. }
            | WaveError::Denied { point, .. }
            | WaveError::MachineLost { point, .. } => Some(point),
            WaveError::MachineDown => None,
        }
    }
}

/// Why a particle could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// No Driver is installed for that Kind.
    #[error("unknown kind `{kind}` (no driver installed) for {point}")]
    UnknownKind { point: Point, kind: Kind },
    /// A particle already lives there.
    #[error("a particle already lives at {point}")]
    AlreadyExists { point: Point },
    /// The root cannot hold a particle: it is the Machine's own.
    #[error("the root point cannot hold a particle")]
    Root,
    /// A bad Point in a tree spec or spawn call.
    #[error("bad point: {0}")]
    Point(#[from] PointError),
    /// The parent Point holds no live particle: a particle is spawned under
    /// its parent (top-level particles, one segment deep, have none).
    #[error("cannot spawn {point}: no live particle at its parent {parent}")]
    NoParent { point: Point, parent: Point },
    /// A restart limit that cannot work (a zero period).
    #[error("bad restart limit for {point}: {reason}")]
    BadRestartLimit { point: Point, reason: String },
    /// A lane of capacity 0 could never take a wave.
    #[error("a lane of capacity 0 for {point} could never take a wave")]
    BadLaneLimit { point: Point },
    /// The requested Star does not exist.
    #[error("no star {star} on this machine ({stars} stars)")]
    NoSuchStar { star: usize, stars: usize },
    /// The access rules do not let the visitor spawn under that parent
    /// (the privilege `spawn` on it; `ROOT` for a top-level particle).
    #[error("access denied: {visitor} may not spawn {point} under {parent}")]
    Denied {
        visitor: crate::access::Visitor,
        point: Point,
        parent: Point,
    },
    /// The particle's `start` failed and its supervisor gave up.
    #[error("particle {point} failed to start: {reason}")]
    StartFailed { point: Point, reason: String },
    /// The Machine is shutting down or gone.
    #[error("the machine is shut down")]
    MachineDown,
}

/// Errors building or running a Machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MachineError {
    /// Two Drivers for one Kind.
    #[error("kind `{kind}` already has a driver")]
    DuplicateKind { kind: Kind },
    /// A Machine needs at least one Star.
    #[error("a machine needs at least one star")]
    NoStars,
    /// A restart limit that cannot work.
    #[error("bad restart limit: {0}")]
    Intensity(#[from] hyperverse_supervisors::IntensityError),
    /// A restart backoff that cannot work.
    #[error("{0}")]
    Backoff(#[from] hyperverse_supervisors::BackoffError),
    /// A supervisor Kind's spec cannot work (bad flags, a bad or duplicate
    /// child spec, a bad backoff): see [`crate::MachineBuilder::supervisor`].
    #[error("supervisor kind `{kind}`: {error}")]
    BadSupervisor {
        kind: Kind,
        error: hyperverse_supervisors::SupError,
    },
    /// A rule given to the builder is refused.
    #[error("bad access rule: {0}")]
    BadRule(#[from] crate::access::RuleError),
    /// A Star (a ractor actor) could not be started.
    #[error("star {star} failed to start: {reason}")]
    StarStart { star: usize, reason: String },
    /// Must be called inside a tokio runtime.
    #[error("no tokio runtime: build the machine inside one")]
    NoRuntime,
}
