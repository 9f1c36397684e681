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

/// The outcomes of one reload, shared by its per-Star tasks and the host.
///
/// Why a lock and not only a channel: the host stops waiting at the
/// reload's deadline, while a Star thread may be in the middle of a swap
/// (a task cannot be aborted mid-chunk: the chunk is synchronous). A guest
/// is replaced by its new instance only under this lock, and only while
/// the tally is open; the host closes it when it stops waiting and takes
/// the outcomes under the same lock. So every move the report counts
/// happened, and no move happens after the report: a particle reported
/// as not reached stays where it was (and a rollback never leaves a
/// particle on the version rolled back).
#[derive(Default)]
pub(crate) struct Tally {
    inner: parking_lot::Mutex<TallyInner>,
}

#[derive(Default)]
struct TallyInner {
    closed: bool,
    outcomes: Vec<(Point, Outcome)>,
}

impl Tally {
    /// Closes the tally (no guest moves from now on) and takes what it
    /// holds.
    pub(crate) fn close(&self) -> Vec<(Point, Outcome)> {
        let mut inner = self.inner.lock();
        inner.closed = true;
        std::mem::take(&mut inner.outcomes)
    }

    /// Files `outcome`, running `commit` first, if the tally is open;
    /// false if it is closed (then `commit` does not run).
    fn file(&self, point: &Point, outcome: Outcome, commit: impl FnOnce()) -> bool {
        let mut inner = self.inner.lock();
        if inner.closed {
            return false;
        }
        commit();
        inner.outcomes.push((point.clone(), outcome));
        true
    }
}

/// A fresh instance of `target` holding `guest`'s state; `guest` is left
/// untouched (still serving its old version).
fn prepare(
    guest: &mut GuestInstance,
    target: &CompiledModule,
) -> Result<GuestInstance, ModuleError> {
    let state = guest.snapshot()?;
    let mut fresh = target.instantiate()?;
    fresh.set_context(guest.context().clone());
    fresh.set_judge(guest.judge());
    fresh.restore(&state)?;
    Ok(fresh)
}

/// Moves every guest of `target`'s module on this thread that runs an
/// older version to `target`, filing each outcome in `tally` (a guest met
/// once the tally is closed is left as it is, and the walk stops). `moved`
/// is told how many guests each chunk dealt with, for progress.
///
/// Guests are found by module name: a Star thread belongs to one Machine,
/// on which one Driver (one host) runs a module's Kind.
pub(crate) async fn reload_this_thread(
    target: &CompiledModule,
    tally: &Tally,
    mut moved: impl FnMut(usize),
) {
    let to = target.version().seq;
    let mut from = 0;
    let mut open = true;
    while open {
        let mut met = 0;
        let next = walk_guests_of(target.name(), from, CHUNK, |guest, owner| {
            if !open {
                return;
            }
            met += 1;
            let at = guest.version().seq;
            if at >= to {
                open = tally.file(owner.me(), Outcome::Current { at }, || {});
                return;
            }
            match prepare(guest, target) {
                Ok(fresh) => {
                    let mut old = None;
                    open = tally.file(owner.me(), Outcome::Reloaded { from: at }, || {
                        old = Some(std::mem::replace(guest, fresh));
                        owner.set_code_version(to);
                    });
                    if open {
                        tracing::debug!(target: crate::TARGET_RELOAD, point = %owner.me(), module = %target.name(), from = at, to, "particle reloaded");
                    }
                    // The old instance (or the unused fresh one), and its
                    // Store, are dropped here, outside the tally's lock.
                    drop(old);
                }
                Err(e) => {
                    tracing::warn!(target: crate::TARGET_RELOAD, point = %owner.me(), module = %target.name(), from = at, to, error = %e, "reload failed; the particle stays on its version");
                    let failed = Outcome::Failed {
                        stays_on: at,
                        reason: e.to_string(),
                    };
                    open = tally.file(owner.me(), failed, || {});
                }
            }
        });
        if met > 0 {
            moved(met);
        }
        match next {
            Some(index) => from = index,
            None => return,
        }
        tokio::task::yield_now().await;
    }
}
