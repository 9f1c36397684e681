//! Who decides what follows an incarnation's end: one interface for the
//! particle's Star and for its supervisor particle.

use std::future::Future;

use hyperverse_supervisors::ExitReason;

use super::end::{End, ReadyTx};
use crate::lane::LaneReceiver;
use crate::{Body, Ctx, DownReason};

/// What follows an incarnation's end.
pub(crate) enum After {
    /// A new incarnation, on the same lane.
    Again,
    /// The particle ends, so; `report` is told to its supervisor once it
    /// has (a supervised child stopped from outside).
    End {
        why: DownReason,
        report: Option<ExitReason>,
    },
}

impl After {
    pub(crate) fn end(why: DownReason) -> After {
        After::End { why, report: None }
    }
}

/// Who decides what follows an incarnation's end: the particle's Star
/// (`run::star::StarDecides`) or its supervisor particle
/// ([`crate::supervision::SupervisorDecides`]). The life around it is one
/// and the same.
pub(crate) trait Decide: Send + Sync {
    /// The incarnation, raced with whatever else may end it from outside
    /// (a supervisor kills its child's incarnation: `None`).
    fn serving<'a, F: Future<Output = End> + Send + 'a>(
        &'a self,
        incarnation: F,
    ) -> impl Future<Output = Option<End>> + Send + 'a;

    /// What follows `end`: retires the incarnation, then restarts it (with
    /// `args`, which a supervisor may change) or ends the particle.
    fn decide<'a>(
        &'a self,
        ctx: &'a Ctx,
        end: Option<End>,
        ready: &'a mut Option<ReadyTx>,
        lane: &'a mut LaneReceiver,
        args: &'a mut Body,
    ) -> impl Future<Output = After> + Send + 'a;
}
