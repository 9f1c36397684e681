//! Supervisor particles: OTP's supervisor behaviour from
//! `hyperverse_supervisors`, run as a particle whose children are particles.
//!
//! A child of a supervisor particle reports each end of an incarnation to
//! it and waits, its lane open; the supervisor decides per its strategy,
//! restart types and intensity, and resumes the child on the same lane
//! (queued waves kept, in order) or ends it. Past its intensity the
//! supervisor stops its children in reverse start order and dies with
//! reason shutdown, so its own supervisor (or Star) acts: escalation.
//!
//! A supervisor whose incarnation crashes (or is killed) parks its
//! supervised children instead of ending them, and its next incarnation
//! adopts them: beyond OTP, a supervisor's crash loses none of the waves
//! queued for its children. A child whose incarnation is killed in the
//! middle of a handler loses that one wave (its requester gets an error),
//! as a killed Erlang process loses the message in hand.

mod api;
mod calls;
mod child;
mod kids;
mod managed;
mod particle;
mod report;
mod start;

pub use api::{SupervisorError, SupervisorRef};
pub use calls::ChildRef;
pub use particle::SupervisorSpec;
pub use start::{ChildStart, StartFn};

pub(crate) use calls::{ExitReport, SupervisorCall, SupervisorReply};
pub(crate) use child::SupervisorDecides;
pub(crate) use managed::Managed;
pub(crate) use particle::{SupState, SupervisorParticle};
pub(crate) use report::report_exit;
