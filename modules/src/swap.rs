//! A hot reload's work on one Star thread: each guest of the module there
//! moved to the new version in place, its state kept.
//!
//! Why here and not through each particle's lane: a WASM particle's guest
//! lives in its Star thread's slab (`local.rs`), and that thread runs one
//! task at a time. A task of the reload on the same thread therefore finds
//! every guest between two calls (none is ever mid-call when another task
//! runs), and can swap it directly: no letter, no reply, no wake-up of the
//! particle, no lock. Measured on 10,000 particles (two Star threads, 8
//! senders loading them), a letter per particle cost as much again as the
//! swaps themselves.
//!
//! What a particle sees is what an Erlang process sees in a release
//! upgrade: waves it has not handled yet are handled by the new version,
//! none is lost or reordered, and its state is the old version's
//! `snapshot` given to the new one's `restore`. A particle that was
//! waiting in the middle of a wave (for a full lane, say) goes on with the
//! new version at its next call. A guest whose swap fails stays on its
//! version, serving; the report says why.
//!
//! The walk yields to the thread's other tasks every [`CHUNK`] guests, so
//! a large reload delays the Star's waves by one chunk at a time, not by
//! the whole reload.

use hyperverse_runtime::Point;

use crate::error::ModuleError;
use crate::instance::GuestInstance;
use crate::local::walk_guests_of;
use crate::reload::Outcome;
use crate::store::CompiledModule;

/// Guests swapped between two yields to the Star's other tasks (about
/// 0.5 ms of work).
pub(crate) const CHUNK: usize = 64;

/// Moves `guest`'s state into a fresh instance of `target`; `guest` is left
/// untouched (still serving its old version) unless every step succeeds.
pub(crate) fn swap(guest: &mut GuestInstance, target: &CompiledModule) -> Result<(), ModuleError> {
    let state = guest.snapshot()?;
    let mut fresh = target.instantiate()?;
    fresh.set_context(guest.context().clone());
    fresh.restore(&state)?;
    // The old instance, and its Store, are dropped here.
    *guest = fresh;
    Ok(())
}

/// Moves every guest of `target`'s module on this thread that runs an
/// older version to `target`. `each` is given the outcomes a chunk at a
/// time: one per guest met, by its particle's Point.
pub(crate) async fn reload_this_thread(
    target: &CompiledModule,
    mut each: impl FnMut(Vec<(Point, Outcome)>),
) {
    let to = target.version().seq;
    let mut from = 0;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        let next = walk_guests_of(target.name(), from, CHUNK, |guest, owner| {
            let at = guest.version().seq;
            let outcome = if at >= to {
                Outcome::Current { at }
            } else {
                match swap(guest, target) {
                    Ok(()) => {
                        owner.set_code_version(to);
                        tracing::debug!(
                            target: crate::TARGET_RELOAD,
                            point = %owner.me(),
                            module = %target.name(),
                            from = at,
                            to,
                            "particle reloaded"
                        );
                        Outcome::Reloaded { from: at }
                    }
                    Err(e) => {
                        tracing::warn!(
                            target: crate::TARGET_RELOAD,
                            point = %owner.me(),
                            module = %target.name(),
                            from = at,
                            to,
                            error = %e,
                            "reload failed; the particle stays on its version"
                        );
                        Outcome::Failed {
                            stays_on: at,
                            reason: e.to_string(),
                        }
                    }
                }
            };
            chunk.push((owner.me().clone(), outcome));
        });
        if !chunk.is_empty() {
            each(chunk);
        }
        match next {
            Some(index) => from = index,
            None => return,
        }
        tokio::task::yield_now().await;
    }
}
