//! The demo's fault phase: a seeded storm on a Machine of its own (a
//! supervised tree of 1,009 particles over 4 Stars, crashes, Star kills
//! and delays under load), and what it proved.

use std::time::{Duration, Instant};

use hyperverse::faults::{Storm, StormReport};

/// What the fault phase saw.
pub struct StormPhase {
    pub report: Result<StormReport, String>,
    pub elapsed: Duration,
}

/// Runs the storm for `duration` with `seed`.
pub async fn run(seed: u64, duration: Duration) -> StormPhase {
    let t = Instant::now();
    let report = Storm::new(seed)
        .duration(duration)
        .run()
        .await
        .map_err(|e| e.to_string());
    StormPhase {
        report,
        elapsed: t.elapsed(),
    }
}
