//! Lanes: a particle's mailbox, and the path a wave takes to it.
//!
//! A lane is Hyperverse's own queue rather than a channel per particle:
//! it costs nothing until the first wave (an empty `VecDeque` does not
//! allocate), it outlives a crash (waves queued for a particle are kept for
//! its next incarnation), and it can be asked to stop, or closed with what is
//! left in it handed back so that waiting requests get an answer.
//!
//! Order: every push takes the lane's lock, so waves from one sender are
//! queued in the order that sender pushed them, whichever Star either side
//! lives on. The receiver takes the whole queue at once (one lock per batch,
//! not per wave) and hands it out front to back.
//!
//! Senders: every wave's sender is stamped by the runtime, never given by
//! the caller. `signal` and `ask` (on the Machine, a `Ctx` or a
//! [`crate::ParticleRef`]) take no sender: a wave sent inside a particle's handler is from that particle,
//! and one sent from anywhere else is from the Machine itself
//! ([`Point::root`]). The runtime's own guards key on the sender (a parent
//! stopping its children refuses their requests, so that neither waits for
//! the other), and so will what is coming: a cluster carries the sender to
//! other Machines, and access rules on Points judge a wave by it. A sender
//! the caller could write would let any code slip past all three.
//!
//! Control traffic (supervisor API calls, a supervised child's exit report,
//! a Driver's trusted control such as a WASM guest's ask reply) travels in the
//! same lanes as letters of its own kind, not as waves: no wave, whatever
//! its method, can produce one (see [`crate::Control`]).
//!
//! The files, bottom up: [`letter`] (what waits in a lane), [`limit`]
//! (bounds and backpressure), [`queue`] (the shared mailbox: push, stop,
//! close, faults), [`watch`] (the monitors and links kept beside it),
//! [`receiver`] (the particle's end: takes letters in order, across
//! crashes) and [`deliver`] (the one place a letter is queued from outside).

pub(crate) mod bound;
pub(crate) mod deliver;
pub(crate) mod fault;
pub(crate) mod letter;
pub(crate) mod limit;
pub(crate) mod load;
pub(crate) mod queue;
pub(crate) mod receiver;
pub(crate) mod watch;

pub(crate) use deliver::{deliver, deliver_control, refusal_error};
pub(crate) use letter::{Letter, ReplyRx, ReplyTx, Typed};
pub use limit::{LaneLimit, WhenFull};
pub use load::LaneLoad;
pub(crate) use queue::{LaneQueue, Next, Refusal};
pub(crate) use receiver::LaneReceiver;
