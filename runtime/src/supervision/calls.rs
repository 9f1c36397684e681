//! What supervisor particles and their callers and children say to each
//! other: the payloads of control letters, all serde types (a cluster will
//! carry them between Machines).

use hyperverse_supervisors::{ChildInfo, ChildSpec, Counts, ExitReason, SupError};
use serde::{Deserialize, Serialize};

use super::start::ChildStart;
use crate::{Body, InFlight, Point};

/// A running child of a supervisor particle: which particle, which
/// incarnation. An exit report for another incarnation is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRef {
    /// Where it lives.
    pub point: Point,
    /// Which particle at that Point (its spawn sequence).
    pub seq: u64,
    /// Which incarnation of it (the first is 1).
    pub incarnation: u64,
}

/// One call of the supervisor API: the payload of a control letter.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SupervisorCall {
    WhichChildren,
    CountChildren,
    StartChild(ChildSpec<ChildStart>),
    AddChild { id: String, args: Body },
    TerminateChild(String),
    RestartChild(String),
    DeleteChild(String),
}

/// A supervisor's answer to a [`SupervisorCall`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SupervisorReply {
    Children(Vec<ChildInfo<ChildRef>>),
    Counts(Counts),
    Started(Result<ChildRef, SupError>),
    Done(Result<(), SupError>),
    /// The caller is neither the Machine nor an ancestor of the supervisor.
    Forbidden,
    /// The particle is not a supervisor.
    NotASupervisor,
}

/// How one incarnation of a supervised child ended: the payload of an
/// exit report, a control letter from the child to its supervisor that
/// only the runtime makes. Serialisable, so that a supervisor and its child
/// can one day live on different Machines.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExitReport {
    /// The child's spawn sequence: which particle at that Point.
    pub seq: u64,
    /// Which of its incarnations ended.
    pub incarnation: u64,
    pub exit: ExitReason,
    pub in_flight: Option<InFlight>,
}
