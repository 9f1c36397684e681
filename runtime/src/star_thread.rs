//! Star threads: a Star as a scheduler, one OS thread of its own.
//!
//! By default a particle's task runs on the Machine's tokio runtime and
//! may move between its worker threads at any `.await`; that is why a
//! particle's `State` must be `Send`. Some particles want the opposite: to
//! stay on one thread for their whole life. A WASM guest's wasmer `Store`
//! is not `Send`, so without that it must live on a host thread of its own
//! and every wave costs two thread hand-offs; and particles that talk a
//! lot to each other pay a cross-thread wake-up per wave when tokio puts
//! them on different workers.
//!
//! A Star thread is a current-thread tokio runtime on a thread of its own
//! (`hv-star-N`), started the first time a particle of Star N needs it. A
//! task spawned there is only ever polled by that thread, so a particle
//! launched with [`crate::Launch::run_on_star_thread`] (or every particle,
//! with [`crate::MachineBuilder::star_threads`]) runs its whole life,
//! restarts included, on its Star's thread: whatever it keeps in that
//! thread's thread-locals is there at every wave, and waves between
//! particles of one Star never wake another thread. Spreading particles
//! over Stars is then spreading them over threads, as Erlang spreads
//! processes over schedulers (without the BEAM's work stealing: a Star's
//! particles share its thread, and a long handler delays the others).
//!
//! Nothing else changes: the lane, the ordering per sender, the Star's
//! supervision and restarts are the same code on either scheduler.
//!
//! A Star thread stops when the Machine shuts down (told to, not waited
//! for: what is left on it is dropped there right after), or when the
//! runtime the Machine was built on is dropped (a watcher task there holds
//! the thread's keep-alive). Its runtime is dropped on the thread itself,
//! so whatever particle state is left is dropped where it was made.

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::targets;

/// Why work cannot run on a Star's thread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StarThreadError {
    /// The Machine has no such Star.
    #[error("no Star {star} (the Machine has {stars})")]
    NoSuchStar {
        /// The Star asked for.
        star: usize,
        /// How many the Machine has.
        stars: usize,
    },
    /// Its thread could not be started, or the Machine has stopped its
    /// threads (it is shutting down).
    #[error("Star {star}'s thread is unavailable: {reason}")]
    Unavailable {
        /// The Star.
        star: usize,
        /// Why.
        reason: String,
    },
}

/// One started Star thread: a handle on its runtime, and the signal that
/// stops it (dropping the sender stops it too).
struct StarThread {
    handle: Handle,
    stop: oneshot::Sender<()>,
}

/// The Star threads of one Machine, each started on first use.
///
/// Each slot is behind a lock of its own, taken to start its thread and
/// to stop it, so a thread started while the Machine stops is either
/// stopped with the others or never started; a failed start is not kept
/// (the next launch tries again).
pub(crate) struct StarThreads {
    threads: Box<[parking_lot::Mutex<Option<StarThread>>]>,
    /// True if their runtimes have tokio's IO driver (see [`StarThreads::new`]).
    io: bool,
    /// Set once the Machine has stopped them: no thread starts after that.
    stopped: std::sync::atomic::AtomicBool,
}

impl StarThreads {
    /// Threads for `stars` Stars. With `io`, their runtimes have tokio's IO
    /// driver as well as its timers (for a Machine whose every particle
    /// runs there, some may use sockets). Without it, they have timers
    /// only, and waking one from another thread is an atomic and, if it
    /// sleeps, a futex, instead of a write to the IO driver's eventfd for
    /// every wake: a third of the cost of a wave sent from another thread.
    pub(crate) fn new(stars: usize, io: bool) -> Self {
        StarThreads {
            threads: (0..stars).map(|_| parking_lot::Mutex::new(None)).collect(),
            io,
            stopped: Default::default(),
        }
    }

    /// The runtime of Star `star`'s thread, starting the thread if need be.
    /// `machine` is the Machine's own runtime, where the watcher that stops
    /// the thread with it lives.
    ///
    /// # Errors
    ///
    /// Why the thread is not there: no such Star, the Machine has stopped
    /// its threads, or the OS refused a thread or a runtime.
    pub(crate) fn handle(&self, star: usize, machine: &Handle) -> Result<Handle, StarThreadError> {
        let Some(slot) = self.threads.get(star) else {
            return Err(StarThreadError::NoSuchStar {
                star,
                stars: self.threads.len(),
            });
        };
        let mut slot = slot.lock();
        // Checked under the slot's lock, which `stop` takes too.
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StarThreadError::Unavailable {
                star,
                reason: "the Machine is shutting down: its Star threads are stopped".into(),
            });
        }
        if let Some(t) = &*slot {
            return Ok(t.handle.clone());
        }
        let started = start(star, machine, self.io)
            .map_err(|reason| StarThreadError::Unavailable { star, reason })?;
        let handle = started.handle.clone();
        *slot = Some(started);
        Ok(handle)
    }

    /// How many Star threads are running.
    pub(crate) fn started(&self) -> usize {
        self.threads.iter().filter(|t| t.lock().is_some()).count()
    }

    /// Stops every Star thread (at Machine shutdown, once its particles
    /// have ended). Tasks still on them are dropped there, soon after: the
    /// threads are told to stop, not waited for.
    pub(crate) fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        for t in self.threads.iter() {
            if let Some(t) = t.lock().take() {
                let _ = t.stop.send(());
            }
        }
    }
}

/// Starts Star `star`'s thread and waits for its runtime's handle (the
/// runtime is built on the thread itself, so that it is also dropped
/// there whatever happens).
fn start(star: usize, machine: &Handle, io: bool) -> Result<StarThread, String> {
    // The Machine's stop goes to a watcher on the Machine's runtime, which
    // holds the thread's keep-alive: the thread ends when the Machine stops
    // it, or when the Machine's runtime is dropped. (Not while a particle
    // lives: each holds the Machine, which holds the stop signal.)
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (keep, thread_rx) = oneshot::channel::<()>();
    let (made, handle) = std::sync::mpsc::sync_channel::<Result<Handle, String>>(1);
    std::thread::Builder::new()
        .name(format!("hv-star-{star}"))
        .spawn(move || {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            if io {
                builder.enable_all();
            } else {
                builder.enable_time();
            }
            let runtime = match builder.build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = made.send(Err(format!("cannot build Star {star}'s runtime: {e}")));
                    return;
                }
            };
            let _ = made.send(Ok(runtime.handle().clone()));
            runtime.block_on(async move {
                let _ = thread_rx.await;
            });
            // Dropped here: the tasks left, and their states, end on the
            // thread they lived on.
            drop(runtime);
            tracing::debug!(target: targets::MACHINE, star, "star thread stopped");
        })
        .map_err(|e| format!("cannot start Star {star}'s thread: {e}"))?;
    let handle = handle
        .recv()
        .map_err(|_| format!("Star {star}'s thread ended as it started"))??;
    machine.spawn(async move {
        let _keep = keep;
        let _ = stop_rx.await;
    });
    tracing::debug!(target: targets::MACHINE, star, "star thread started");
    Ok(StarThread { handle, stop })
}
