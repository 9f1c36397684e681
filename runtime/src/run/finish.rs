//! The end of a particle, however its task ends.

use std::collections::VecDeque;

use hyperverse_supervisors::ExitReason;

use crate::lane::Letter;
use crate::supervision::report_exit;
use crate::{Ctx, DownReason};

/// Ends the particle however its task ends: through `run`'s own exits, or
/// any other way (a panic outside a handler, such as in a state's `Drop`;
/// the task aborted after its shutdown timeout; the task dropped before it
/// ever ran). Its lane is closed, its Point freed and its descendants told
/// to stop, so nothing waits for it forever.
pub(crate) struct EndGuard {
    pub(super) ctx: Ctx,
    armed: bool,
}

impl EndGuard {
    pub(crate) fn new(ctx: Ctx) -> Self {
        EndGuard { ctx, armed: true }
    }

    pub(crate) fn finish(mut self, leftover: VecDeque<Letter>, why: DownReason) {
        self.armed = false;
        self.ctx.machine.finish(&self.ctx.cell, leftover, why);
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.armed {
            for cell in self.ctx.machine.descendants(&self.ctx.cell) {
                cell.lane.request_shutdown();
            }
            self.ctx
                .machine
                .finish(&self.ctx.cell, VecDeque::new(), DownReason::Killed);
            report_exit(&self.ctx, ExitReason::Killed, None);
        }
    }
}
