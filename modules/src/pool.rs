//! The host threads that own the guests of WASM particles.
//!
//! Why threads of our own: wasmer's `Store` is not `Send` (wasmer 7 keeps
//! thread-bound state in it), while a particle's `State` must be, because
//! a particle is a tokio task that may move between worker threads at any
//! `.await`. An `unsafe impl Send` around the Store would be a promise we
//! cannot check against wasmer's internals, so no guest ever leaves the
//! thread it was made on: each lives, from instantiation to drop, in the
//! slab of one dedicated host thread. A particle's State holds a
//! [`GuestHandle`] (which thread, which slot), which is `Send`; every call
//! into the guest (a wave, `init`, a reload) is a [`Job`] sent to that
//! thread, answered on a oneshot channel the particle awaits.
//!
//! The cost is two thread hand-offs per wave. Measured on a 2-core VM
//! (`hyperverse-bench --only wasm`): about 1 µs per wave when many
//! particles keep the host threads busy (a bare wasmer call of the same
//! `handle` is ~35 ns, the sandbox's `GuestInstance::handle` ~130 ns), and
//! ~10 µs for one request at a time, which is two thread wake-ups. Letting
//! each side spin briefly before it sleeps cut the latter to ~2 µs on an
//! idle machine, but made every figure worse (requests up to ~30 µs) once
//! other processes kept the cores busy, so both sides simply sleep.
//!
//! Alternatives considered: a thread-local slab on the tokio workers is
//! unsound (a particle's task moves between workers); a per-Star
//! current-thread runtime running the whole particle would avoid the hops,
//! but the runtime launches every particle as a `Send` task on the
//! Machine's runtime (`Launch::run`), so that needs runtime support.
//!
//! A thread runs one guest call at a time, so a long call (up to its fuel:
//! 10 million operators by default, some milliseconds) delays the other
//! guests of its thread, as a busy scheduler would; fuel bounds the delay.
//!
//! Order and lifetime: a thread runs its jobs one at a time, in the order
//! they were sent. A particle already makes one call at a time, and the
//! `Free` job its handle sends on drop queues behind its last call, so a
//! slot is never freed under a running call. Dropping the handle (a crash,
//! a stop, a kill) frees the instance and with it its Store: one Store per
//! incarnation, as the issue requires.
//!
//! A guest cannot panic the host (traps and limits come back as
//! [`ModuleError`]s), but a panic in a job (a wasmer bug) is still caught:
//! the slot it touched is dropped, its answer channel closes (the particle
//! sees an error and crashes) and the thread keeps serving its other
//! guests. A thread that is gone anyway (its channel closed) is replaced on
//! the next start.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use hyperverse_runtime::{Body, Method};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::ModuleError;
use crate::host::HandleOutput;
use crate::instance::GuestInstance;
use crate::store::CompiledModule;

/// A guest's place in its host thread's slab. The generation tells a freed
/// and reused slot from the one a stale handle meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotId {
    index: u32,
    generation: u32,
}

type Reply<T> = oneshot::Sender<Result<T, ModuleError>>;

/// One piece of work for a host thread.
pub(crate) enum Job {
    /// Instantiate `module` in a fresh Store and call `init(args)`.
    Start {
        module: CompiledModule,
        args: Body,
        reply: Reply<(SlotId, HandleOutput)>,
    },
    /// Call `handle(method, body)`.
    Handle {
        slot: SlotId,
        method: Method,
        body: Body,
        reply: Reply<HandleOutput>,
    },
    /// Hot reload: `snapshot` in the slot's instance, instantiate `target`,
    /// `restore` there, and swap only if all three succeed.
    Reload {
        slot: SlotId,
        target: CompiledModule,
        reply: Reply<()>,
    },
    /// Drop the instance (and its Store).
    Free { slot: SlotId },
}

impl Job {
    fn slot(&self) -> Option<SlotId> {
        match self {
            Job::Start { .. } => None,
            Job::Handle { slot, .. } | Job::Reload { slot, .. } | Job::Free { slot } => Some(*slot),
        }
    }
}

struct Entry {
    generation: u32,
    guest: Option<GuestInstance>,
}

/// The guests of one host thread. Only that thread ever touches it.
#[derive(Default)]
struct Slab {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

impl Slab {
    fn insert(&mut self, guest: GuestInstance) -> SlotId {
        match self.free.pop() {
            Some(index) => {
                let entry = &mut self.entries[index as usize];
                entry.guest = Some(guest);
                SlotId {
                    index,
                    generation: entry.generation,
                }
            }
            None => {
                let index = self.entries.len() as u32;
                self.entries.push(Entry {
                    generation: 0,
                    guest: Some(guest),
                });
                SlotId {
                    index,
                    generation: 0,
                }
            }
        }
    }

    fn get(&mut self, slot: SlotId) -> Option<&mut GuestInstance> {
        let entry = self.entries.get_mut(slot.index as usize)?;
        if entry.generation != slot.generation {
            return None;
        }
        entry.guest.as_mut()
    }

    fn remove(&mut self, slot: SlotId) -> Option<GuestInstance> {
        let entry = self.entries.get_mut(slot.index as usize)?;
        if entry.generation != slot.generation || entry.guest.is_none() {
            return None;
        }
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot.index);
        entry.guest.take()
    }
}

/// The error a particle sees when its guest is not where its handle says
/// (its thread failed under it).
fn lost(module: &str, why: &str) -> ModuleError {
    ModuleError::Host {
        module: module.to_string(),
        message: why.to_string(),
    }
}

/// Runs one job against the slab.
fn run(slab: &mut Slab, job: Job) {
    match job {
        Job::Start {
            module,
            args,
            reply,
        } => {
            let started = module.instantiate().and_then(|mut guest| {
                let output = guest.init(args.as_bytes())?;
                Ok((slab.insert(guest), output))
            });
            // Nobody waits any more (the particle was stopped or killed
            // while starting): no handle will ever free it, so free it now.
            if let Err(Ok((slot, _))) = reply.send(started) {
                drop(slab.remove(slot));
            }
        }
        Job::Handle {
            slot,
            method,
            body,
            reply,
        } => {
            let answer = match slab.get(slot) {
                Some(guest) => guest.handle(&method, body.as_bytes()),
                None => Err(lost("?", "no guest in this slot")),
            };
            let _ = reply.send(answer);
        }
        Job::Reload {
            slot,
            target,
            reply,
        } => {
            let answer = match slab.get(slot) {
                Some(guest) => swap(guest, &target),
                None => Err(lost(target.name(), "no guest in this slot")),
            };
            let _ = reply.send(answer);
        }
        Job::Free { slot } => {
            // Dropped here, on its own thread, with its Store.
            drop(slab.remove(slot));
        }
    }
}

/// Moves `guest`'s state into a fresh instance of `target`; `guest` is left
/// untouched (still serving its old version) unless every step succeeds.
fn swap(guest: &mut GuestInstance, target: &CompiledModule) -> Result<(), ModuleError> {
    let state = guest.snapshot()?;
    let mut fresh = target.instantiate()?;
    fresh.restore(&state)?;
    // The old instance, and its Store, are dropped here.
    *guest = fresh;
    Ok(())
}

/// A host thread's loop: jobs until every sender is gone.
fn serve(jobs: mpsc::Receiver<Job>) {
    let mut slab = Slab::default();
    for job in jobs {
        let touched = job.slot();
        // The job (and its reply channel) is dropped while unwinding, so
        // the caller learns of a panic as a closed channel.
        if catch_unwind(AssertUnwindSafe(|| run(&mut slab, job))).is_err() {
            if let Some(slot) = touched {
                // Whatever the panic left of it is not trusted again.
                let _ = catch_unwind(AssertUnwindSafe(|| drop(slab.remove(slot))));
            }
            tracing::error!(
                target: crate::TARGET_WASM,
                "a guest call panicked in the host; that guest is dropped"
            );
        }
    }
}

/// A handle on one guest: its thread's queue and its slot. `Send`, so it
/// can live in a particle's State; dropping it frees the guest.
pub(crate) struct GuestHandle {
    thread: mpsc::Sender<Job>,
    slot: SlotId,
    /// The module's name, for errors about a lost guest.
    module: std::sync::Arc<str>,
}

impl std::fmt::Debug for GuestHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestHandle")
            .field("module", &self.module)
            .field("slot", &self.slot)
            .finish()
    }
}

impl Drop for GuestHandle {
    fn drop(&mut self) {
        // A closed channel means the thread, and the guest with it, is gone.
        let _ = self.thread.send(Job::Free { slot: self.slot });
    }
}

impl GuestHandle {
    /// One wave into the guest.
    pub(crate) async fn handle(
        &self,
        method: Method,
        body: Body,
    ) -> Result<HandleOutput, ModuleError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Handle {
            slot: self.slot,
            method,
            body,
            reply,
        };
        self.call(job, answer).await
    }

    /// Moves the guest to `target`, keeping its state (see [`Job::Reload`]).
    pub(crate) async fn reload(&self, target: CompiledModule) -> Result<(), ModuleError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Reload {
            slot: self.slot,
            target,
            reply,
        };
        self.call(job, answer).await
    }

    async fn call<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, ModuleError>>,
    ) -> Result<T, ModuleError> {
        if self.thread.send(job).is_err() {
            return Err(lost(&self.module, "its host thread is gone"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(lost(&self.module, "its host thread dropped the call")))
    }
}

/// A running host thread: a number telling its incarnations apart, and
/// its queue.
type Running = (u64, mpsc::Sender<Job>);

/// The host threads of one [`crate::WasmHost`], started on first use.
pub(crate) struct Pool {
    /// Each thread's queue, if it runs.
    threads: Mutex<Vec<Option<Running>>>,
    started: std::sync::atomic::AtomicU64,
}

impl Pool {
    /// A pool of `threads` threads (at least one), none started yet.
    pub(crate) fn new(threads: usize) -> Self {
        Pool {
            threads: Mutex::new(vec![None; threads.max(1)]),
            started: Default::default(),
        }
    }

    /// How many threads the pool has (started or not).
    pub(crate) fn size(&self) -> usize {
        self.threads.lock().len()
    }

    /// How many threads are running.
    pub(crate) fn started(&self) -> usize {
        self.threads.lock().iter().flatten().count()
    }

    /// The queue of thread `index` (modulo the pool's size), starting the
    /// thread if it is not running.
    fn queue(&self, index: usize) -> Result<Running, ModuleError> {
        let mut threads = self.threads.lock();
        let at = index % threads.len();
        if let Some(running) = &threads[at] {
            return Ok(running.clone());
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("hv-wasm-{at}"))
            .spawn(move || serve(rx))
            .map_err(|e| lost("?", &format!("cannot start a host thread: {e}")))?;
        let id = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        threads[at] = Some((id, tx.clone()));
        Ok((id, tx))
    }

    /// Forgets thread `index` if it is still incarnation `id`, whose queue
    /// was found closed (it died), so the next start makes a new one.
    fn forget(&self, index: usize, id: u64) {
        let mut threads = self.threads.lock();
        let at = index % threads.len();
        if threads[at]
            .as_ref()
            .is_some_and(|(running, _)| *running == id)
        {
            threads[at] = None;
        }
    }

    /// Instantiates `module` on thread `index` and calls its `init`.
    pub(crate) async fn start(
        &self,
        index: usize,
        module: CompiledModule,
        args: Body,
    ) -> Result<(GuestHandle, HandleOutput), ModuleError> {
        let name = module.version().name.clone();
        let (id, thread) = self.queue(index)?;
        let (reply, answer) = oneshot::channel();
        if thread
            .send(Job::Start {
                module,
                args,
                reply,
            })
            .is_err()
        {
            self.forget(index, id);
            return Err(lost(
                &name,
                "its host thread is gone (a new one starts next time)",
            ));
        }
        let mut pending = PendingStart {
            answer: Some(answer),
            thread: thread.clone(),
        };
        let answer = pending.answer.as_mut().expect("just set");
        let got = answer.await;
        pending.answer = None;
        let (slot, output) =
            got.unwrap_or_else(|_| Err(lost(&name, "its host thread dropped the call")))?;
        let handle = GuestHandle {
            thread,
            slot,
            module: name,
        };
        Ok((handle, output))
    }
}

/// A start still waiting for its answer. Dropped before it (the particle
/// stopped or killed while starting), it frees an instance that was made
/// anyway: no handle will ever exist to free it. (An answer sent after the
/// drop finds the channel closed, and the host thread frees it there.)
struct PendingStart {
    answer: Option<oneshot::Receiver<Result<(SlotId, HandleOutput), ModuleError>>>,
    thread: mpsc::Sender<Job>,
}

impl Drop for PendingStart {
    fn drop(&mut self) {
        if let Some(mut answer) = self.answer.take() {
            answer.close();
            if let Ok(Ok((slot, _))) = answer.try_recv() {
                let _ = self.thread.send(Job::Free { slot });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_slots_are_reused_with_a_new_generation() {
        const fn send<T: Send>() {}
        send::<GuestHandle>();
        send::<Job>();

        let store = crate::ModuleStore::new(crate::Limits::default());
        let counter = store
            .load_wat("counter", crate::guests::COUNTER_V1)
            .unwrap();
        let mut slab = Slab::default();
        let a = slab.insert(counter.instantiate().unwrap());
        assert!(slab.remove(a).is_some());
        assert!(slab.remove(a).is_none(), "only once");
        let b = slab.insert(counter.instantiate().unwrap());
        assert_eq!(b.index, a.index);
        assert_ne!(b.generation, a.generation);
        assert!(slab.get(a).is_none(), "a stale handle finds nothing");
        assert!(slab.get(b).is_some());
    }
}
