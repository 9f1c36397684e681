//! A supervised child's exit report: how one incarnation ended, told to
//! its supervisor particle by the runtime.

use hyperverse_supervisors::ExitReason;

use super::calls::ExitReport;
use crate::control::{ControlKind, ControlLetter};
use crate::lane::deliver_control;
use crate::{Ctx, InFlight};

/// Tells `ctx`'s supervisor how its current incarnation ended. Dropped if
/// the supervisor has ended (it stops its children as it ends); never
/// refused for room.
pub(crate) fn report_exit(ctx: &Ctx, exit: ExitReason, in_flight: Option<InFlight>) {
    let (Some(m), Some(sup)) = (ctx.cell.managed(), ctx.cell.parent_cell()) else {
        return;
    };
    let report = ExitReport {
        seq: ctx.cell.spawn_seq(),
        incarnation: m.incarnation(),
        exit,
        in_flight,
    };
    let _ = deliver_control(
        &sup,
        ControlLetter {
            from: ctx.me().clone(),
            to: sup.point().clone(),
            kind: ControlKind::Exit(report),
            reply: None,
        },
    );
}
