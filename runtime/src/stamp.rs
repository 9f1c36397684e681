//! Senders are the runtime's to stamp: who is sending now, and what that
//! sender may do to another particle's life.

use crate::Point;

/// The sender of a wave or control letter sent now, from this thread: the
/// particle whose handler is running here, or the Machine (ROOT) outside
/// every handler. The Machine's and a `ParticleRef`'s sends stamp this; a
/// `Ctx` stamps its own particle. (Code a handler hands to a task of its
/// own runs outside every handler, so it sends as the Machine: in-process
/// Rust code is trusted, as a program trusts its own threads.)
pub(crate) fn sender() -> Point {
    crate::cell::running_point().unwrap_or_else(Point::root)
}

/// Whether the stamped sender may act on the life of the particle at
/// `target` (stop it, inject a fault into it, monitor for it): the
/// Machine itself, that particle, or one of its ancestors, as the
/// supervisor API's rule (kept for acting on another particle's behalf,
/// beside the access rules). `Err` carries the refused sender.
pub(crate) fn may_act_on(target: &Point) -> Result<(), Point> {
    let caller = sender();
    if caller.is_root() || caller.contains(target) {
        Ok(())
    } else {
        Err(caller)
    }
}
