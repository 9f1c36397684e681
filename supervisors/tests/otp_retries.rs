//! More of OTP's cases: a one_for_all / rest_for_one restart that fails
//! part-way, the flag combinations OTP refuses, and backoff in a crash loop.
//! (Each failed before it was fixed.)

mod common;

use std::time::Duration;

use common::{settle, specs, Fake};
use hyperverse_supervisors::*;

async fn leaks(
    strategy: Strategy,
    ids: &[&str],
    crashed: &str,
    failing: &str,
) -> Vec<(String, u64)> {
    let mut kids = Fake::default();
    let flags = SupFlags::new(strategy).intensity(5, Duration::from_secs(60));
    let mut sup = Supervisor::start(flags, specs(ids), &mut kids)
        .await
        .unwrap();
    let h = sup.handle(crashed).unwrap();
    kids.alive.retain(|(_, x)| *x != h); // it died
    kids.failing.insert(failing.into(), 1); // its first restart fails
    let out = sup
        .child_exited(&mut kids, crashed, &h, ExitReason::Error("boom".into()))
        .await;
    assert!(matches!(out, Outcome::TryAgain { .. }), "{out:?}");
    let out = settle(&mut sup, &mut kids, out).await;
    assert_eq!(out, Outcome::Continue);
    // Alive incarnations the supervisor does not know about.
    let known: Vec<u64> = sup
        .which_children()
        .iter()
        .filter_map(|c| c.handle)
        .collect();
    kids.alive
        .iter()
        .filter(|(_, x)| !known.contains(x))
        .cloned()
        .collect()
}

#[test]
fn a_failed_one_for_all_retry_leaves_no_unsupervised_child() {
    futures::executor::block_on(async {
        let orphans = leaks(Strategy::OneForAll, &["a", "b"], "a", "b").await;
        assert!(orphans.is_empty(), "running but unsupervised: {orphans:?}");
    });
}

#[test]
fn a_failed_rest_for_one_retry_leaves_no_unsupervised_child() {
    futures::executor::block_on(async {
        let orphans = leaks(Strategy::RestForOne, &["a", "b", "c"], "b", "c").await;
        assert!(orphans.is_empty(), "running but unsupervised: {orphans:?}");
    });
}

#[test]
fn a_significant_child_needs_auto_shutdown_as_in_otp() {
    futures::executor::block_on(async {
        let mut kids = Fake::default();
        let spec = ChildSpec::worker("s", ())
            .restart(Restart::Transient)
            .significant(true);
        let r = Supervisor::start(SupFlags::default(), vec![spec.clone()], &mut kids).await;
        assert!(
            r.is_err(),
            "OTP: with auto_shutdown never, significant child specs are invalid"
        );
    });
}

#[test]
fn a_dynamic_supervisor_cannot_auto_shutdown_as_in_otp() {
    futures::executor::block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::Dynamic).auto_shutdown(AutoShutdown::AnySignificant);
        let r = Supervisor::start(flags, specs(&["t"]), &mut kids).await;
        assert!(
            r.is_err(),
            "OTP 27: auto_shutdown is not allowed for simple_one_for_one"
        );
    });
}

#[test]
fn backoff_reaches_its_max_in_a_crash_loop() {
    // 10 s doubling up to 120 s, reset after 30 s quiet (the default).
    let mut s = Backoff::new(Duration::from_secs(10), Duration::from_secs(120)).start();
    let mut now = std::time::Instant::now();
    let mut delays = Vec::new();
    for _ in 0..6 {
        // The child crashes the moment it is restarted: never quiet at all.
        let d = s.next_delay(now, 0);
        delays.push(d.as_secs());
        now += d + Duration::from_millis(1);
    }
    assert_eq!(delays, [10, 20, 40, 80, 120, 120], "a crash loop's delays");
}
