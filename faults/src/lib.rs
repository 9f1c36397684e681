//! Fault injection for Hyperverse: faults as a first-class, replayable tool.
//!
//! - The faults themselves are the runtime's: [`Machine::inject`] (crash,
//!   pause/resume, fail the next start, delay or drop waves on a lane) and
//!   [`Machine::kill_star`]. This crate selects where they land and when.
//! - [`Target`]: which particles a fault may hit (a subtree, a Kind, both).
//! - [`FaultPlan`]: a schedule of faults driven by a seed. The same seed
//!   makes the same schedule; [`FaultPlan::run`] carries it out against a
//!   Machine and logs every fault injected with its time ([`FaultReport`]).
//! - The test kit: [`EventLog`] (every spawn, crash, restart, stop and
//!   supervisor event, in order, with awaits such as "ready again" or "N
//!   crash notices seen"), [`Probe`] (a particle that records the waves it
//!   gets) and [`SeedGuard`] (prints the seed if the test fails).
//! - [`Storm`]: a ready-made storm over a supervised tree that checks
//!   nothing is lost and every supervisor follows its strategy.
//!
//! ```
//! use hyperverse_faults::*;
//! use hyperverse_runtime::*;
//! use std::time::Duration;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let log = EventLog::new();
//! let (probe, seen) = Probe::new();
//! let machine = Machine::standalone()
//!     .stars(2)
//!     .kind("probe", probe)
//!     .observer(log.observer())
//!     .build()
//!     .await?;
//! machine.spawn("app".parse()?, "probe".into(), Body::empty()).await?;
//! for i in 0..4 {
//!     machine.spawn(format!("app:p{i}").parse()?, "probe".into(), Body::empty()).await?;
//! }
//!
//! // For 100 ms, every ~20 ms, crash one probe below `app`.
//! let plan = |seed| {
//!     FaultPlan::new(seed).duration(Duration::from_millis(100)).every(
//!         Duration::from_millis(20),
//!         Action::Crash(Target::below("app".parse().unwrap()).kind("probe")),
//!     )
//! };
//! let _seed = SeedGuard::new(7); // printed again if the test fails
//! assert_eq!(plan(7).schedule(), plan(7).schedule()); // the same seed replays
//! let report = plan(7).run(&machine).await;
//! assert!(report.injected.len() >= 3, "{report}");
//!
//! // Every crash was seen, and every crashed probe serves again.
//! let crashes = report.count("crash");
//! log.await_count(crashes, Duration::from_secs(5), |e| matches!(e, Event::Crashed(_))).await?;
//! for fault in &report.injected {
//!     log.await_ready(&machine, &fault.target, Duration::from_secs(5)).await?;
//! }
//! machine.signal(&"app:p0".parse()?, ("hello", Body::empty()))?;
//! seen.await_waves(1, Duration::from_secs(5)).await?;
//! machine.shutdown().await;
//! # Ok(()) }
//! ```

mod kit;
mod plan;
mod probe;
mod storm;
mod target;

pub use kit::{EventLog, Logged, SeedGuard, TimedOut};
pub use plan::{Action, FaultPlan, FaultRecord, FaultReport, Scheduled};
pub use probe::{Probe, ProbeLog, Received};
pub use storm::{Storm, StormReport};
pub use target::Target;

#[doc(no_inline)]
pub use hyperverse_runtime::{Fault, FaultError, Machine};
