//! OTP supervision for Hyperverse.
//!
//! This crate holds the supervision logic that does not depend on how a child
//! runs: child specs, strategies, restart intensity, auto-shutdown and the
//! supervisor API, as a [`Supervisor`] over any [`Children`], and restart
//! [`Backoff`]. The runtime supplies the children (particles); tests supply
//! recorded fakes. It knows nothing of the runtime, so the rules can be
//! tested on their own.
//!
//! The runtime uses [`Intensity`] and [`Backoff`] today (each Star restarts
//! its crashed particles). The [`Supervisor`] is wired in as supervisor
//! particles next: a child of one reports its crash to it (not to its Star)
//! and parks with its lane open; `Children::start` resumes a parked child
//! on the same lane (or spawns a new one), `Children::stop` suspends it for
//! a strategy restart; monitors report normal exits; an `Outcome::Shutdown`
//! makes the supervisor particle itself crash with reason shutdown, so its
//! own supervisor acts.

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
pub use supervisor::{ChildInfo, Children, Counts, Outcome, SupError, SupEvent, Supervisor};
