//! Links: two particles that die together.
//!
//! As in Erlang, a link is both ways. When one incarnation of a linked
//! particle crashes (or its particle is given up, or killed), the other
//! gets an exit signal and crashes too, so its own supervisor acts, unless
//! it traps exits ([`crate::Ctx::trap_exits`]): then the signal is handed to
//! its [`crate::Particle::exit_signal`] instead. A particle stopped from
//! outside (its parent ending, `Machine::stop`) ends with reason `shutdown`,
//! which is not normal: its links carry it. A normal end (the particle
//! stopped itself) reaches only particles that trap exits. Links belong to an incarnation: a crash
//! removes them, and a restarted particle starts unlinked.
//!
//! Exit signals travel in the lane, in order with waves, so a particle busy
//! in a handler sees one once that handler returns.

use serde::{Deserialize, Serialize};

use crate::Point;

/// The signal a linked particle's end sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitSignal {
    /// The particle that ended.
    pub from: Point,
    /// Why (the crash reason, or `normal`).
    pub reason: String,
    /// True for a normal end, which only exit-trapping particles see.
    pub normal: bool,
}
