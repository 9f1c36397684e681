//! How an incarnation ends, and what every end does: the links and
//! monitors of the incarnation go with it, and its children with it.

use hyperverse_supervisors::ExitReason;
use tokio::sync::oneshot;

use crate::lane::ReplyTx;
use crate::{Ctx, DownReason, InFlight};

pub(crate) enum End {
    /// Stop requested (by itself, its supervisor or the Machine).
    Stop,
    /// The incarnation crashed.
    Crash(Crash),
}

pub(crate) struct Crash {
    pub(crate) exit: ExitReason,
    /// The text of `exit`.
    pub(crate) reason: String,
    /// It crashed in `start`: it never served.
    pub(crate) at_start: bool,
    /// The wave in hand, if any.
    pub(crate) in_flight: Option<InFlight>,
    /// If that wave was a request, where its answer goes: the requester is
    /// told only after the Star has decided, so by then the parent has its
    /// crash notice.
    pub(crate) requester: Option<ReplyTx>,
}

impl Crash {
    pub(crate) fn new(
        exit: ExitReason,
        in_flight: Option<InFlight>,
        requester: Option<ReplyTx>,
    ) -> Crash {
        Crash {
            reason: exit.to_string(),
            exit,
            at_start: false,
            in_flight,
            requester,
        }
    }
}

impl End {
    pub(crate) fn crash(
        exit: ExitReason,
        in_flight: Option<InFlight>,
        requester: Option<ReplyTx>,
    ) -> End {
        End::Crash(Crash::new(exit, in_flight, requester))
    }
}

pub(crate) type ReadyTx = oneshot::Sender<Result<(), String>>;

/// What every ended incarnation leaves: its links fire (the linked die
/// too, unless trapping exits; a normal exit only tells those that trap),
/// and the monitors it set on others go. The same for a particle whose Star
/// decides and for a supervised child: one retire sequence.
pub(crate) fn retire(ctx: &Ctx, reason: &str, normal: bool) {
    ctx.machine.fire_links(&ctx.cell, reason, normal);
    ctx.machine.drop_monitors(&ctx.cell);
}

/// How a stopped particle ended: a shutdown if the stop came from outside,
/// a normal exit if it stopped itself.
pub(crate) fn stopped(ctx: &Ctx) -> DownReason {
    if ctx.cell.lane.shutdown_requested() {
        DownReason::Shutdown
    } else {
        DownReason::Stopped
    }
}

/// Parks a crashed supervisor's supervised children (their incarnations
/// killed, their lanes kept) and stops its other descendants.
pub(crate) async fn park_children(ctx: &Ctx) {
    if ctx.machine.has_children(&ctx.cell) {
        Box::pin(ctx.machine.park_children(&ctx.cell)).await;
    }
}

/// Stops the particle's children, if it has any. Boxed and behind a check:
/// most particles have none, and the future would otherwise take room in
/// every particle's task.
pub(crate) async fn stop_children(ctx: &Ctx) {
    if ctx.machine.has_children(&ctx.cell) {
        Box::pin(ctx.machine.stop_children(&ctx.cell)).await;
    }
}
