//! A particle's cell: what the Registry, the Star and the particle's own task
//! share about one particle, across all its incarnations.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use hyperverse_supervisors::Restart;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use tokio::sync::Notify;

use crate::lane::{LaneLimit, LaneQueue};
use crate::running;
use crate::supervision::Managed;
use crate::{Kind, Point, RestartLimit, Status};

/// The live facts about one particle, shared by its lane, its Star and the Registry.
///
/// Status and restart count are atomics here rather than Registry writes, so
/// that spawning and restarting do not take a Registry lock twice.
pub struct ParticleCell {
    point: Point,
    kind: Kind,
    star: usize,
    /// The exact parent particle (not whoever holds its Point later): crash
    /// notices go there.
    parent: Option<(Point, Weak<ParticleCell>)>,
    /// Its parent lives on another Machine (the `Weak` above is empty).
    remote_parent: bool,
    limit: RestartLimit,
    /// When its Star restarts it (OTP's restart type).
    restart: Restart,
    seq: u64,
    status: AtomicU8,
    restarts: AtomicU32,
    /// The version of the code it runs, for Kinds whose code is versioned
    /// (a WASM module's load sequence); 0 for plain Rust particles. Set by
    /// the particle's Driver through [`crate::Ctx::set_code_version`], read
    /// by the Registry's [`crate::Record`]: an atomic here, so a hot reload
    /// is visible without a Registry write.
    code_version: AtomicU64,
    pub(crate) lane: LaneQueue<ParticleCell>,
    /// Set (then `ending`'s waiters woken) once the task's end is fully
    /// recorded.
    ended: AtomicBool,
    /// The task's abort handle and those waiting for its end.
    ending: Mutex<Ending>,
    /// Set while the particle ends or restarts: no child may join it then.
    closing: AtomicBool,
    /// Set if its Driver dropped its `Launch`: it never ran.
    never_ran: AtomicBool,
    /// Exit signals from links reach its `exit_signal` hook instead of
    /// crashing it.
    traps_exits: AtomicBool,
    /// Set for a child of a supervisor particle, which decides its
    /// restarts (not the Star). Boxed: most particles have none.
    managed: Option<Box<Managed>>,
    /// Its code stops its own children in its `stop` (a supervisor): the
    /// Machine's shutdown timeout does not cut that short.
    stops_own_children: AtomicBool,
    /// Its children, by spawn sequence (start order): this particle's own,
    /// not whoever lives at its Point later, so that its end never touches
    /// a newer particle at its Point or that one's children. Boxed and
    /// made on the first child: most particles never have one.
    children: Mutex<Option<Box<Children>>>,
    /// The Points its spawn granted it ([`crate::SpawnOptions::grants`]).
    /// Boxed and optional: a particle without grants pays one pointer.
    grants: Option<Box<Grants>>,
}

/// A particle's grants, behind one thin pointer in its cell.
struct Grants(Box<[Point]>);

/// What a cell keeps for its task's end: one lock and two pointers, as
/// every particle pays for them and few are ever killed or waited for.
#[derive(Default)]
struct Ending {
    /// Kills the task when it does not stop within the shutdown timeout.
    abort: Option<tokio::task::AbortHandle>,
    /// Woken when the end is recorded: made by the first to wait.
    waiters: Option<Arc<Notify>>,
}

/// A particle's children by spawn sequence.
type Children = BTreeMap<u64, Arc<ParticleCell>>;

impl ParticleCell {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        point: Point,
        kind: Kind,
        star: usize,
        parent: Option<&Arc<ParticleCell>>,
        limit: RestartLimit,
        restart: Restart,
        seq: u64,
        lane: Option<LaneLimit>,
        managed: bool,
    ) -> Self {
        ParticleCell {
            point,
            kind,
            star,
            parent: parent.map(|p| (p.point().clone(), Arc::downgrade(p))),
            remote_parent: false,
            limit,
            restart,
            seq,
            status: AtomicU8::new(Status::Starting as u8),
            restarts: AtomicU32::new(0),
            code_version: AtomicU64::new(0),
            lane: LaneQueue::new(lane),
            ended: AtomicBool::new(false),
            ending: Mutex::default(),
            closing: AtomicBool::new(false),
            never_ran: AtomicBool::new(false),
            traps_exits: AtomicBool::new(false),
            managed: managed.then(|| Box::new(Managed::new())),
            stops_own_children: AtomicBool::new(false),
            children: Mutex::new(None),
            grants: None,
        }
    }

    /// This cell as the child of `parent`, a particle on another Machine.
    pub(crate) fn with_remote_parent(mut self, parent: Point) -> Self {
        self.parent = Some((parent, Weak::new()));
        self.remote_parent = true;
        self
    }

    /// Whether its parent lives on another Machine.
    pub(crate) fn remote_parent(&self) -> bool {
        self.remote_parent
    }

    /// This cell with the Points its spawn granted it (none: nothing kept).
    pub(crate) fn with_grants(mut self, grants: Vec<Point>) -> Self {
        self.grants = (!grants.is_empty()).then(|| Box::new(Grants(grants.into_boxed_slice())));
        self
    }

    /// The Points its spawn granted it (see [`crate::SpawnOptions::grants`]).
    pub fn grants(&self) -> &[Point] {
        self.grants.as_deref().map_or(&[], |g| &g.0)
    }

    /// Whether its code stops its own children (see `Particle::STOPS_OWN_CHILDREN`).
    pub(crate) fn stops_own_children(&self) -> bool {
        self.stops_own_children.load(Ordering::Relaxed)
    }

    pub(crate) fn set_stops_own_children(&self, on: bool) {
        self.stops_own_children.store(on, Ordering::Relaxed);
    }

    /// Its handshake with its supervisor particle, if it has one.
    pub(crate) fn managed(&self) -> Option<&Managed> {
        self.managed.as_deref()
    }

    /// Its parent's cell, if the parent is still alive.
    pub(crate) fn parent_cell(&self) -> Option<Arc<ParticleCell>> {
        self.parent.as_ref().and_then(|(_, p)| p.upgrade())
    }

    /// Admits `child` among its children, unless it takes no children now
    /// (ending, between incarnations): checked under the same lock a parent
    /// that starts ending reads its children with, so it either sees the
    /// child or has refused it.
    pub(crate) fn adopt(&self, child: &Arc<ParticleCell>) -> bool {
        let mut children = self.children.lock();
        if !self.accepts_children() {
            return false;
        }
        children
            .get_or_insert_with(Box::default)
            .insert(child.spawn_seq(), child.clone());
        true
    }

    /// Removes `child` from its children (it has ended, or been replaced
    /// at its Point).
    pub(crate) fn disown(&self, child: &ParticleCell) {
        let mut guard = self.children.lock();
        let Some(children) = guard.as_mut() else {
            return;
        };
        if children
            .get(&child.spawn_seq())
            .is_some_and(|c| std::ptr::eq(&**c, child))
        {
            children.remove(&child.spawn_seq());
            if children.is_empty() {
                // The last child gone: the map goes too.
                *guard = None;
            }
        }
    }

    /// Its children, in start order.
    /// How many children it has (no copy of them).
    pub(crate) fn child_count(&self) -> usize {
        self.children.lock().as_ref().map_or(0, |c| c.len())
    }

    pub(crate) fn children(&self) -> Vec<Arc<ParticleCell>> {
        self.children
            .lock()
            .as_ref()
            .map_or_else(Vec::new, |c| c.values().cloned().collect())
    }

    /// True if it has children.
    pub(crate) fn has_children(&self) -> bool {
        self.children.lock().is_some()
    }

    /// Its descendants (not itself), found through its own children lists:
    /// by depth, siblings in start order.
    pub(crate) fn descendants(&self) -> Vec<Arc<ParticleCell>> {
        let mut out = self.children();
        let mut i = 0;
        while i < out.len() {
            let more = out[i].children();
            out.extend(more);
            i += 1;
        }
        out
    }

    /// True when called from this particle's own code (one of its
    /// handlers, on this thread, right now): so that a particle stopping
    /// itself or an ancestor, or calling itself, does not wait for itself.
    pub(crate) fn is_current_task(&self) -> bool {
        std::ptr::eq(running::current(), self.id())
    }

    /// Records the task's abort handle (for a kill after the shutdown timeout).
    pub(crate) fn set_abort(&self, handle: tokio::task::AbortHandle) {
        self.ending.lock().abort.get_or_insert(handle);
    }

    /// Kills the task (its end guard then finishes the particle).
    pub(crate) fn kill(&self) {
        // Out of the lock: the task's end guard takes it to mark the end.
        let handle = self.ending.lock().abort.clone();
        if let Some(h) = handle {
            h.abort();
        }
    }

    /// Its task has ended and its end is recorded: nothing will ever handle
    /// its lane again.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Marks the task as ended (its lane closed, its end recorded) and
    /// wakes those waiting for it.
    pub(crate) fn mark_ended(&self) {
        self.ended.store(true, Ordering::SeqCst);
        let waiters = self.ending.lock().waiters.take();
        if let Some(w) = waiters {
            w.notify_waiters();
        }
    }

    /// Waits until the particle's task has ended.
    pub(crate) async fn ended(&self) {
        let waiters = {
            let mut ending = self.ending.lock();
            // Under the lock `mark_ended` takes the waiters with: it either
            // has stored `ended` already, or will find these waiters.
            if self.has_ended() {
                return;
            }
            ending
                .waiters
                .get_or_insert_with(|| Arc::new(Notify::new()))
                .clone()
        };
        let notified = waiters.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so an end in between is not missed
        // (a `notify_waiters` before it is seen by the check).
        notified.as_mut().enable();
        if self.has_ended() {
            return;
        }
        notified.await;
    }

    /// Whether it traps exit signals.
    pub fn traps_exits(&self) -> bool {
        self.traps_exits.load(Ordering::SeqCst)
    }

    pub(crate) fn set_traps_exits(&self, on: bool) {
        self.traps_exits.store(on, Ordering::SeqCst);
    }

    /// Records that its Driver dropped its `Launch` unrun.
    pub(crate) fn set_never_ran(&self) {
        self.never_ran.store(true, Ordering::SeqCst);
    }

    /// True if its Driver dropped its `Launch` unrun.
    pub(crate) fn never_ran(&self) -> bool {
        self.never_ran.load(Ordering::SeqCst)
    }

    /// Marks the particle as ending or restarting (no child may join it).
    pub(crate) fn set_closing(&self, closing: bool) {
        self.closing.store(closing, Ordering::SeqCst);
    }

    /// Whether a new child may be registered under it now: it is alive, not
    /// stopping, not between incarnations.
    pub(crate) fn accepts_children(&self) -> bool {
        !self.closing.load(Ordering::SeqCst)
            && !self.lane.stop_requested()
            && !self.has_ended()
            && self.status() != Status::Stopped
    }

    /// Where the particle lives.
    pub fn point(&self) -> &Point {
        &self.point
    }

    /// What it is.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The Star that hosts and supervises it.
    pub fn star(&self) -> usize {
        self.star
    }

    /// Its parent particle's Point (`None` for a top-level particle).
    pub fn parent(&self) -> Option<&Point> {
        self.parent.as_ref().map(|(p, _)| p)
    }

    /// Its place in the Machine's spawn order: children are listed, and
    /// will be stopped, by it.
    pub fn spawn_seq(&self) -> u64 {
        self.seq
    }

    /// Its restart limit.
    pub fn restart_limit(&self) -> &RestartLimit {
        &self.limit
    }

    /// Its restart type: when its Star restarts it (see
    /// [`crate::SpawnOptions::restart`]; a supervisor particle's child
    /// follows its child spec instead).
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// Where it is in its life.
    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    pub(crate) fn set_status(&self, status: Status) {
        self.status.store(status as u8, Ordering::Release);
    }

    /// How many times it has been restarted, in all.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Acquire)
    }

    pub(crate) fn add_restart(&self) -> u32 {
        self.restarts.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The version of the code it runs (0: not versioned, as for a Rust
    /// particle); see [`crate::Ctx::set_code_version`].
    pub fn code_version(&self) -> u64 {
        self.code_version.load(Ordering::Acquire)
    }

    pub(crate) fn set_code_version(&self, version: u64) {
        self.code_version.store(version, Ordering::Release);
    }

    /// True while a crash injected into it (see [`crate::Fault::Crash`])
    /// waits to be taken at its next letter.
    pub fn crash_pending(&self) -> bool {
        self.lane.crash_pending()
    }

    /// Waves waiting in its lane that its task has not yet taken (the task
    /// takes them in batches).
    pub fn queued(&self) -> usize {
        self.lane.len()
    }

    /// See [`crate::ParticleRef::load`].
    pub fn load(&self) -> crate::LaneLoad {
        let (queued, taken) = self.lane.load();
        crate::LaneLoad { queued, taken }
    }

    /// Its lane's limit: its spawn options', else its Kind's default
    /// (see [`crate::Driver::default_lane`]); `None` if unbounded.
    pub fn lane_limit(&self) -> Option<LaneLimit> {
        self.lane.limit()
    }

    /// Letters its lane's crash handling has looked at, in all: only
    /// requests from its descendants waiting in its lane, never the rest of
    /// the queue (for tests that a restart's cost does not grow with it).
    #[doc(hidden)]
    pub fn letters_scanned(&self) -> u64 {
        self.lane.scanned()
    }

    /// Entries in its monitor and link lists (monitors on it, links, and
    /// monitors it set on others): for tests that they do not grow.
    #[doc(hidden)]
    pub fn watch_len(&self) -> usize {
        self.lane.watch_len()
    }
}

impl ParticleCell {
    /// Its address, naming it as the particle a thread is running (see
    /// [`crate::running`]).
    pub(crate) fn id(&self) -> *const () {
        (self as *const ParticleCell).cast()
    }
}

/// The Point of the particle whose handler this thread is polling, if any:
/// the sender the runtime stamps on what a handler sends.
/// Calls `f` with the cell of the particle running on this thread if it
/// lives at `from` (the sender of a local wave), for its Kind and grants.
pub(crate) fn with_running<R>(from: &Point, f: impl FnOnce(Option<&ParticleCell>) -> R) -> R {
    let cell = running::current().cast::<ParticleCell>();
    // SAFETY: as `running_point`'s; the reference does not outlive `f`,
    // which runs within the poll that named the cell.
    let cell = (!cell.is_null())
        .then(|| unsafe { &*cell })
        .filter(|c| c.point() == from);
    f(cell)
}

/// The Point of the particle whose handler runs on this thread, if any.
pub(crate) fn running_point() -> Option<Point> {
    let cell = running::current().cast::<ParticleCell>();
    // SAFETY: `running` names a particle only while its handler is polled
    // on this thread, from a `&ParticleCell` that outlives that poll (its
    // task holds the cell's Arc), and restores the name when the poll
    // ends; so a non-null address here is a live cell.
    (!cell.is_null()).then(|| unsafe { (*cell).point().clone() })
}

impl std::fmt::Debug for ParticleCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticleCell")
            .field("point", &self.point)
            .field("kind", &self.kind)
            .field("star", &self.star)
            .field("status", &self.status())
            .field("restarts", &self.restarts())
            .finish()
    }
}
