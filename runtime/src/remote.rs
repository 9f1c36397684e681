//! The hook through which a Machine reaches Points it does not host.
//!
//! A standalone Machine routes every wave by its own Registry. A clustered
//! one also hosts a [`Remote`]: a wave to a Point that no local particle
//! holds goes to the Remote when it says another Machine hosts that Point,
//! as bytes (a typed message is encoded there, and only there). The
//! Remote gives waves from other Machines back through [`Inbound`], the
//! one capability that may deliver a wave under a sender the runtime did
//! not stamp; a Machine hands it out once, to the Remote it attaches, so
//! no particle or user code can forge a sender through it.
//!
//! The runtime knows nothing of sockets, peers or the cluster Registry:
//! those are the cluster crate's. This file is only the seam.

use crate::lane::ReplyTx;
use crate::message::Reply;
use std::sync::{Arc, OnceLock};

use crate::{Body, CrashNotice, DownReason, MonitorRef, Point, Wave, WaveError};

/// Where a Machine keeps its Remote, once attached: shared with its Stars,
/// which send crash notices to parents on other Machines.
pub(crate) type RemoteSlot = Arc<OnceLock<Arc<dyn Remote>>>;

/// What a Machine does with waves for Points on other Machines: the
/// cluster's side of the seam (see the module docs).
///
/// Every method is called on the sender's thread, inside the send: it
/// must queue and return, never block.
pub trait Remote: Send + Sync + 'static {
    /// Whether another Machine hosts `point`, as far as this Machine
    /// knows (a cluster Registry's view may be a link's latency stale).
    fn hosts(&self, point: &Point) -> bool;

    /// Carries a one-way wave to the Machine hosting `wave.to`.
    ///
    /// # Errors
    ///
    /// Why it was not sent: no Machine hosts it any more, or the link to
    /// the Machine hosting it is full. (The sender keeps what it sent, to
    /// hand back: the wave need not come back.)
    fn signal(&self, wave: Wave) -> Result<(), WaveError>;

    /// Carries a request; its answer (or why there is none) goes to
    /// `answer`. Dropping `answer` answers `Stopped`.
    fn ask(&self, wave: Wave, answer: Answerer);

    /// A particle of this Machine was registered at `point`, so the
    /// cluster Registry can follow.
    fn registered(&self, point: &Point);

    /// The particle at `point` on this Machine ended, for `reason` (its
    /// record went): peers forget it, and their monitors on it fire.
    fn ended(&self, point: &Point, reason: &DownReason);

    /// Monitors `monitor.target()`, on another Machine, for the local
    /// particle at `watcher`: a [`crate::DownNotice`] comes through
    /// [`crate::Inbound::down`] when it ends or its Machine is lost. False
    /// if no Machine is known to host it (the caller notifies at once).
    fn monitor(&self, watcher: &Point, monitor: &MonitorRef) -> bool;

    /// Removes a monitor set by [`Remote::monitor`]; true if it had not
    /// fired.
    fn demonitor(&self, monitor: &MonitorRef) -> bool;

    /// Links the local particle at `local` with `remote`, on another
    /// Machine (both ways, as [`crate::Ctx::link`]); false if no Machine
    /// is known to host it.
    fn link(&self, local: &Point, remote: &Point) -> bool;

    /// Removes a link made by [`Remote::link`].
    fn unlink(&self, local: &Point, remote: &Point);

    /// An incarnation of the local particle at `local` ended (`reason`,
    /// `normal`): its links to particles on other Machines fire and go,
    /// and the monitors it set on them go, as its local ones do.
    fn exited(&self, local: &Point, reason: &str, normal: bool);

    /// Carries control (the supervisor API) from `from` here to `to` on
    /// another Machine; `control` is the runtime's own encoding of it,
    /// and so is the answer's body. Control is no wave: the cluster
    /// carries it as a kind of its own, and the other Machine hands it to
    /// [`crate::Inbound::control`], which takes only the kinds a peer may
    /// send.
    fn control(&self, from: Point, to: Point, control: Body, answer: Answerer);

    /// The rules changed on this Machine (see [`crate::access`]): every
    /// other Machine should apply `change`, in the order made, through
    /// [`crate::Inbound::rules_changed`]. Nothing by default (a Remote
    /// that does not replicate rules leaves each Machine its own).
    fn rules_changed(&self, change: &crate::access::Change) {
        let _ = change;
    }

    /// A particle of this Machine whose parent lives on another Machine
    /// (spawned through [`crate::Inbound::spawn_child`]) crashed: the
    /// notice goes to that parent.
    fn crash_notice(&self, parent: &Point, notice: CrashNotice);
}

/// Where the answer to a remote request goes: once.
pub struct Answerer(pub(crate) ReplyTx);

impl Answerer {
    /// Answers the request: a reply's bytes, or why there is none.
    pub fn answer(self, result: Result<Body, WaveError>) {
        let _ = self.0.send(result.map(Reply::Body));
    }

    /// Whether the asker still waits (it may have dropped its `Ask`).
    pub fn is_waiting(&self) -> bool {
        !self.0.is_closed()
    }
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer")
            .field("waiting", &self.is_waiting())
            .finish()
    }
}

/// Why a Remote could not be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// A Machine hosts one Remote, for its whole life.
    #[error("this machine has a remote already")]
    Attached,
    /// Only the Machine itself (not a particle's handler) may attach one.
    #[error("{caller} may not attach a remote (only the machine may)")]
    Forbidden {
        /// Who tried.
        caller: Point,
    },
}
