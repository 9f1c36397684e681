//! OTP supervision for Hyperverse.
//!
//! This crate holds the supervision logic that does not depend on how a child
//! runs: restart intensity today, strategies and child specs as they land.
//! `hyperverse-runtime` uses it for its Stars; it knows nothing of the runtime,
//! so the rules can be tested on their own.

mod intensity;

pub use intensity::{Intensity, IntensityError, RestartVerdict};
