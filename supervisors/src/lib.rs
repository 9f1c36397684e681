//! OTP supervision for Hyperverse.
//!
//! This crate holds the supervision logic that does not depend on how a child
//! runs: child specs, strategies, restart intensity, auto-shutdown and the
//! supervisor API, as a [`Supervisor`] over any [`Children`], and restart
//! [`Backoff`]. The runtime supplies the children (particles); tests supply
//! recorded fakes. It knows nothing of the runtime, so the rules can be
//! tested on their own.
//!
//! The runtime uses all of it: each Star restarts the particles it hosts
//! with an [`Intensity`] (and optional [`Backoff`]) per particle; a
//! supervisor particle runs a [`Supervisor`] whose [`Children`] are
//! particles (a child reports each exit to it and waits with its lane open;
//! `start` resumes it on that lane or spawns it, `stop` suspends or kills
//! it); and the Machine's root actor runs a [`Supervisor`] over its Stars.
//! An [`Outcome::Shutdown`] makes a supervisor particle die with reason
//! shutdown, so its own supervisor acts (escalation).

mod backoff;
mod flags;
mod intensity;
mod reason;
mod spec;
mod supervisor;

pub use backoff::{Backoff, BackoffError, BackoffState};
pub use flags::{AutoShutdown, Strategy, SupFlags};
pub use intensity::{Intensity, IntensityError, RestartVerdict};
pub use reason::ExitReason;
pub use spec::{ChildSpec, ChildType, Restart, Shutdown, SpecError, DEFAULT_SHUTDOWN};
pub use supervisor::{
    check_spec, ChildInfo, Children, Counts, Outcome, SupError, SupEvent, Supervisor,
};
