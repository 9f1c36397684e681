//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test crate uses its own subset

use std::time::{Duration, Instant};

use hyperverse::{Point, SpawnOptions};

/// Parses a Point that the test knows to be valid.
pub fn p(s: &str) -> Point {
    s.parse().unwrap()
}

/// Waits until `cond` holds, polling; fails the test after 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Spawn options that pin a particle to `star`.
pub fn on(star: usize) -> SpawnOptions {
    SpawnOptions {
        star: Some(star),
        ..Default::default()
    }
}
