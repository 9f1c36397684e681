//! Hyperverse's runtime core.
//!
//! - [`Point`]: hierarchical addresses (`space:app:worker-7`).
//! - [`Wave`]: messages, signals or requests, serialisable with a version byte.
//! - [`Particle`]: the trait a user implements; [`Ctx`] is its view of the world.
//! - [`Kind`] and [`Driver`]: what a particle is, and what runs it.
//! - [`ParticleRef`]: a handle on one particle, what `spawn` returns; its
//!   lane (mailbox) keeps per-sender order and outlives restarts.
//! - One messaging surface: the Machine, a particle's [`Ctx`] and a
//!   [`ParticleRef`] all `signal` and `ask` ([`Ask::within`] for another
//!   timeout, or none), with a typed [`Message`] (handled by a
//!   [`Handler`], carried in-process as the value itself) or an untyped
//!   `(method, body)` pair (a [`Wave`], for WASM particles and dynamic use).
//! - Stars: supervisors (ractor actors) that restart crashed particles and
//!   send [`CrashNotice`]s to their parents; the Machine's root actor
//!   supervises the Stars.
//! - [`Registry`]: where each particle lives and how it is doing.
//! - [`Machine`]: hosts the Stars, places particles, routes waves, shuts down
//!   children before parents.
//! - [`Ctx::monitor`] and [`Ctx::link`]: Erlang's monitors (one
//!   [`DownNotice`] when a particle ends) and links (die together unless
//!   trapping exits).
//! - [`LaneLimit`]: bounded lanes, with backpressure or a typed refusal.
//! - [`SupervisorSpec`]: OTP supervisors as particles (strategies, restart
//!   types, intensity, shutdown order), driven through [`SupervisorRef`].
//! - [`Fault`]: fault injection ([`Machine::inject`], [`Machine::kill_star`]);
//!   seeded fault plans and a test kit are in the `hyperverse-faults` crate.
//! - [`Observer`]: see every [`Event`] in order as it happens
//!   ([`MachineBuilder::observer`]); a panic in one is caught and logged,
//!   never unwound into the runtime.
//! - [`access`]: access rules on Points. Every wave and management action
//!   has a visitor (the sending particle, the Machine, a CLI user, another
//!   Machine); grants in the Registry give privileges (send, ask, spawn,
//!   stop, reload, link, read) on a Point or subtree; a particle owns its
//!   subtree. Judged on the receiving side as a wave enters its lane.
//! - Senders and control: every wave's sender is stamped by the runtime
//!   (the particle whose handler sends it, else the Machine, [`Point::root`]);
//!   no send API takes one. Control traffic (the supervisor API, exit
//!   reports, [`Machine::control`] for a Driver's particles) is a typed
//!   letter that no wave can produce (see [`Control`]).
//!
//! Most users depend on the `hyperverse` facade crate, which re-exports this one.

pub mod access;
mod ask;
mod body;
mod cell;
mod codec;
mod control;
mod ctx;
mod deadline;
mod depth;
mod driver;
mod drivers;
mod error;
mod event;
mod fault;
mod handle;
mod inbound;
mod kind;
mod lane;
#[cfg(test)]
mod lane_model;
mod link;
mod machine;
mod message;
mod method;
mod monitor;
mod notice;
mod particle;
mod particle_ref;
pub mod point;
mod registry;
pub mod remote;

/// Says that a ractor actor's message type stays in its process, when
/// ractor's `cluster` feature is on (it turns off ractor's blanket
/// `Message` impl); nothing otherwise. The runtime's `cluster` feature
/// turns ractor's on, so a crate that defines ractor actors beside
/// Hyperverse compiles either way:
///
/// ```
/// enum Ping { Once }
/// hyperverse_runtime::local_ractor_message!(Ping);
/// ```
#[cfg(feature = "cluster")]
#[macro_export]
macro_rules! local_ractor_message {
    ($t:ty) => {
        impl ::ractor::Message for $t {}
    };
}

/// Says that a ractor actor's message type stays in its process (see the
/// `cluster` build's doc): nothing to say without ractor's `cluster`
/// feature.
#[cfg(not(feature = "cluster"))]
#[macro_export]
macro_rules! local_ractor_message {
    ($t:ty) => {};
}
mod restart_limit;
mod run;
mod running;
mod send;
mod spawn_options;
mod stamp;
mod star;
mod star_thread;
mod stars;
mod status;
mod supervision;
pub mod targets;
mod tree;
pub mod wave;

pub use ask::{Ask, Asking};
pub use body::Body;
pub use control::Control;
pub use driver::ParticleDriver;
pub use error::{CodecError, MachineError, SpawnError, WaveError};
pub use event::{Event, Observer};
pub use fault::{Fault, FaultError};
pub use handle::{Ctx, Driver, KindResolver, Launch, Machine};
pub use inbound::Inbound;
pub use kind::Kind;
pub use lane::{LaneLimit, LaneLoad, WhenFull};
pub use link::ExitSignal;
pub use machine::{
    MachineBuilder, DEFAULT_EVENT_CAPACITY, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use message::Message;
pub use method::Method;
pub use monitor::{DownNotice, DownReason, MonitorRef};
pub use notice::{CrashNotice, InFlight};
pub use particle::{Handler, Messages, Particle, ParticleError};
pub use particle_ref::ParticleRef;
pub use point::{Point, PointError};
pub use registry::{Record, Registry};
pub use restart_limit::RestartLimit;
pub use send::{SendError, Sendable};
pub use spawn_options::SpawnOptions;
pub use star::StarStats;
pub use star_thread::StarThreadError;
pub use status::Status;
pub use supervision::{
    ChildRef, ChildStart, StartFn, SupervisorError, SupervisorRef, SupervisorSpec,
};
pub use tree::TreeSpec;
pub use wave::{Wave, WaveKind};

// The supervision vocabulary, so that `use hyperverse_runtime::*` is enough
// to write a supervisor spec.
pub use hyperverse_supervisors::{
    AutoShutdown, ChildInfo, ChildSpec, ChildType, Counts, ExitReason, Restart, Shutdown, Strategy,
    SupError, SupEvent, SupFlags,
};
