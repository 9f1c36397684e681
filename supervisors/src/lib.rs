//! OTP supervision for Hyperverse.
//!
//! This crate holds the supervision logic that does not depend on how a child
//! runs: child specs, strategies, restart intensity, auto-shutdown and the
//! supervisor API, as a [`Supervisor`] over any [`Children`]. The runtime
//! supplies the children (particles); tests supply recorded fakes. It knows
//! nothing of the runtime, so the rules can be tested on their own.

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
