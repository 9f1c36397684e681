//! Crash notices: what a parent is told when a child dies abnormally.

use serde::{Deserialize, Serialize};

use crate::{Kind, Method, Point};

/// The wave a particle was handling when it crashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// Its method.
    pub method: Method,
    /// Its sender.
    pub from: Point,
}

/// A child died abnormally (a panic, or an error returned from a handler).
///
/// Delivered to the parent particle's [`crate::Particle::crash_notice`], in
/// its lane, in order with its waves; also published as an [`crate::Event`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashNotice {
    /// Who crashed.
    pub child: Point,
    /// What it is.
    pub kind: Kind,
    /// Why: the panic message or the error's text.
    pub reason: String,
    /// Restarts of the child so far: counting the restart this crash causes,
    /// or, when the Star gives up, the restarts it had.
    pub restarts: u32,
    /// Crashes within the current restart period (its intensity window),
    /// this one included: how close the child is to being given up.
    pub in_period: u32,
    /// The Star the child lives on (which decided, unless `supervisor` did).
    pub star: usize,
    /// The supervisor particle that decided, for a child of one; `None`
    /// when its Star did.
    pub supervisor: Option<Point>,
    /// True if the child was not restarted: the Star gave up on it, or it
    /// crashed while it was being stopped.
    pub gave_up: bool,
    /// The wave in hand at the crash, if any (it is not redelivered).
    pub in_flight: Option<InFlight>,
}
