//! User code run as a particle's: named as the running particle (so what
//! it sends is stamped with it), a panic or an `Err` turned into an exit
//! reason, never unwound into the runtime.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use hyperverse_supervisors::ExitReason;

use crate::cell::ParticleCell;
use crate::running::Running;
use crate::targets;
use crate::{Ctx, ParticleError};

/// Runs a handler future as `cell`'s code, turning a panic or an `Err`
/// into an exit reason: an [`ExitReason`] returned as the error is kept as
/// it is (Erlang's `exit(Reason)`), anything else is an `Error` with its text.
///
/// A combinator rather than an `async fn`: an `async fn` would keep its
/// argument and the future it awaits side by side, and this future is part
/// of every particle's task, idle or not.
pub(crate) fn guarded<'a, T>(
    cell: &'a ParticleCell,
    fut: impl Future<Output = Result<T, ParticleError>> + 'a,
) -> impl Future<Output = Result<T, ExitReason>> + 'a {
    AssertUnwindSafe(Running::new(cell.id(), fut))
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match e.downcast::<ExitReason>() {
                Ok(exit) => *exit,
                Err(e) => ExitReason::Error(e.to_string()),
            }),
            Err(panic) => Err(ExitReason::Error(panic_text(panic))),
        })
}

pub(crate) fn panic_text(panic: Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_string()
    }
}

/// Drops a crashed incarnation's state, catching a panic in its `Drop`.
pub(crate) fn drop_state<S>(ctx: &Ctx, state: S) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(state))) {
        tracing::error!(target: targets::CRASH, point = %ctx.me(), reason = %panic_text(panic), "a crashed particle's state panicked as it was dropped");
    }
}
