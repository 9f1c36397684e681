//! Which particle's code this thread is running right now.
//!
//! The runtime stamps a wave's sender with the particle whose handler sends
//! it. A thread-local write per poll of a handler names that particle: much
//! cheaper than asking tokio for the task's id on every send. It holds an
//! opaque address (the particle's cell), compared and read back by
//! [`crate::cell`] alone.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static RUNNING: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// The address of the particle whose code this thread is polling (null if
/// none).
pub(crate) fn current() -> *const () {
    RUNNING.with(Cell::get)
}

pin_project_lite::pin_project! {
    /// Polls `fut` as the code of the particle at address `id`.
    pub(crate) struct Running<F> {
        id: *const (),
        #[pin]
        fut: F,
    }
}

// SAFETY: `id` is only an address, compared and (by `cell`) read back only
// while its particle's task polls this future; it is never dereferenced
// from another thread.
unsafe impl<F: Send> Send for Running<F> {}

impl<F> Running<F> {
    pub(crate) fn new(id: *const (), fut: F) -> Self {
        Running { id, fut }
    }
}

impl<F: Future> Future for Running<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Restores the previous value even if the handler panics.
        struct Restore(*const ());
        impl Drop for Restore {
            fn drop(&mut self) {
                RUNNING.with(|r| r.set(self.0));
            }
        }
        let this = self.project();
        let _restore = Restore(RUNNING.with(|r| r.replace(*this.id)));
        this.fut.poll(cx)
    }
}
