//! The storm: a tree of 1,009 particles over 4 Stars (a `bank` supervisor,
//! 8 branch supervisors of three strategies, 1,000 accounts), under a
//! seeded plan of crashes (accounts and supervisors), Star kills and
//! delays, while 8 senders send numbered waves. Afterwards every accepted
//! wave was handled exactly once, in per-sender order, and every
//! supervisor restart followed its strategy (see `hyperverse::faults::Storm`).
//!
//! `HYPERVERSE_STORM_SECS` sets its length (default 2 s, as in CI) and
//! `HYPERVERSE_STORM_SEED` its seed (default fixed). The seed is printed,
//! and printed again if the test fails.

use std::time::Duration;

use hyperverse::faults::{SeedGuard, Storm};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storm_loses_nothing_and_every_supervisor_follows_its_strategy() {
    let secs = env("HYPERVERSE_STORM_SECS", 2);
    let seed = env("HYPERVERSE_STORM_SEED", 20_261_126);
    let _seed = SeedGuard::new(seed);
    let report = Storm::new(seed)
        .duration(Duration::from_secs(secs))
        .run()
        .await
        .unwrap();
    println!("{}", report.faults);
    println!("{report}");
    assert!(report.particles >= 1_000, "{report}");
    assert_eq!(report.stars, 4, "the tree spans 4 Stars");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.sent, report.delivered, "waves lost or duplicated");
    assert!(report.sent > 10_000, "{report}");
    assert!(
        report.faults.count("crash") >= 20 * secs as usize,
        "{report}"
    );
    assert!(report.faults.count("kill_star") >= 1, "{report}");
    assert!(report.restarts_checked > 0, "{report}");
}
