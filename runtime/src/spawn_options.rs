//! Where and how to spawn one particle.

use crate::{LaneLimit, Point, Restart, RestartLimit};

/// Where and how to spawn one particle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpawnOptions {
    /// Pin it to this Star (default: its parent's Star, or round-robin for top-level particles).
    pub star: Option<usize>,
    /// Its restart limit (default: the Machine's). A zero period is refused
    /// with [`SpawnError::BadRestartLimit`].
    pub restart_limit: Option<RestartLimit>,
    /// Bounds its lane (default: its Kind's, [`Driver::default_lane`]:
    /// unbounded for Rust Kinds, bounded for WASM modules). A capacity of 0
    /// is refused with [`SpawnError::BadLaneLimit`].
    pub lane: Option<LaneLimit>,
    /// When its Star restarts it, as OTP's restart types (default
    /// permanent): `Permanent` after every crash (within its restart
    /// limit), `Transient` only after an abnormal exit (a supervisor that
    /// escalates exits with reason shutdown, a normal exit, and is not
    /// restarted), `Temporary` never. A particle not restarted ends with
    /// its exit reason, and its parent's crash notice says `gave_up`. (A
    /// child of a supervisor particle follows its child spec instead.)
    pub restart: Restart,
    /// Points outside its own subtree that it may send to and ask, each
    /// covering itself and everything below it (default: none), kept for
    /// its whole life and readable from [`Ctx::grants`]. The access rules
    /// honour them wherever its waves are judged on its own Machine (see
    /// [`crate::access`]): they matter to a confined particle (a WASM
    /// guest, which the open policy gives nothing) and under the enforced
    /// policy. Grants for every particle of a Kind, or across Machines,
    /// are rules: [`crate::Machine::grant`].
    pub grants: Vec<Point>,
}
