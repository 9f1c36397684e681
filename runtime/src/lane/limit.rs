//! Bounded lanes: a capacity, a byte cap, and what a sender meets when
//! the lane is full (backpressure or a typed refusal).

/// A lane's capacity, and what a sender meets when it is full.
///
/// Lanes are unbounded unless a spawn asks for a limit
/// ([`crate::SpawnOptions::lane`]). The capacity counts waves waiting in
/// the lane; the particle takes what waits in one batch, so up to twice the
/// capacity can be outstanding at once. System letters (crash notices, down
/// notices, exit signals) are never refused. A capacity of 0 is refused at
/// spawn.
///
/// A count alone does not bound memory when waves can be large (a guest
/// may send itself thousands of 4 KiB waves within every budget), so a
/// limit may also cap the bytes of the waves waiting (`max_bytes`: their
/// methods and bodies): a wave that would take the lane past it meets the
/// same policy as one past the capacity. A lane with nothing waiting takes
/// any one wave, however large, so that no wave is refused for ever.
///
/// ```
/// use hyperverse_runtime::{LaneLimit, WhenFull};
///
/// let limit = LaneLimit::new(1_000, WhenFull::Wait).max_bytes(16 << 20);
/// assert_eq!((limit.capacity, limit.max_bytes), (1_000, Some(16 << 20)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaneLimit {
    /// Waves that may wait in the lane.
    pub capacity: usize,
    /// What a sender meets when that many wait (or that many bytes).
    pub when_full: WhenFull,
    /// Bytes (methods and bodies) that may wait in the lane (default: no
    /// cap beyond the capacity).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

impl LaneLimit {
    /// A limit of `capacity` waves, and no cap on their bytes.
    pub const fn new(capacity: usize, when_full: WhenFull) -> Self {
        LaneLimit {
            capacity,
            when_full,
            max_bytes: None,
        }
    }

    /// This limit, with at most `bytes` of waves waiting.
    pub const fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = Some(bytes);
        self
    }
}

/// A full lane's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WhenFull {
    /// Backpressure: async senders ([`crate::ParticleRef::signal_waiting`], requests) wait
    /// for room; a synchronous send cannot wait and gets
    /// [`WaveError::LaneFull`].
    Wait,
    /// Every sender gets [`WaveError::LaneFull`] at once.
    Reject,
}
