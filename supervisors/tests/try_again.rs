//! OTP's `{try_again_restart, Id}`: a restart that fails to start is not
//! retried in a loop inside the exit's handling (the supervisor would
//! answer nothing meanwhile, and nothing could break the loop); it is an
//! `Outcome::TryAgain` the owner acts on later through `try_again`, and
//! the supervisor answers calls in between.

mod common;

use std::time::Duration;

use common::{specs, Fake};
use futures::executor::block_on;
use hyperverse_supervisors::*;

fn boom() -> ExitReason {
    ExitReason::Error("boom".into())
}

async fn started(flags: SupFlags, ids: &[&str], kids: &mut Fake) -> Supervisor<Fake> {
    let mut sup = Supervisor::start(flags, specs(ids), kids).await.unwrap();
    sup.take_log();
    kids.calls.clear();
    sup
}

async fn crash(sup: &mut Supervisor<Fake>, kids: &mut Fake, id: &str) -> Outcome {
    let h = sup.handle(id).unwrap();
    kids.alive.retain(|(_, x)| *x != h);
    sup.child_exited(kids, id, &h, boom()).await
}

fn again(id: &str) -> Outcome {
    Outcome::TryAgain {
        id: id.into(),
        after: Duration::ZERO,
    }
}

#[test]
fn a_failed_restart_is_a_try_again_and_the_child_shows_restarting() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(60));
        let mut s = started(flags, &["a", "b"], &mut kids).await;
        kids.failing.insert("b".into(), 2);
        assert_eq!(crash(&mut s, &mut kids, "b").await, again("b"));
        // In between, the supervisor answers, and says so.
        let b = &s.which_children()[1];
        assert!(b.restarting && b.handle.is_none(), "{b:?}");
        assert_eq!(s.count_children().active, 1);
        assert_eq!(s.restarts_in_period(), 1);
        // Each retry counts against the intensity, as OTP's do.
        assert_eq!(s.try_again(&mut kids, "b").await, again("b"));
        assert_eq!(s.restarts_in_period(), 2);
        assert_eq!(s.try_again(&mut kids, "b").await, Outcome::Continue);
        assert_eq!(s.restarts_in_period(), 3);
        assert!(s.handle("b").is_some());
        let log: Vec<String> = s.take_log().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            log,
            [
                "exited b: boom",
                "restarting b",
                "start_failed b: b cannot start",
                "restarting b",
                "start_failed b: b cannot start",
                "restarting b",
                "started b"
            ]
        );
        // A stale retry (the child runs again) does nothing.
        assert_eq!(s.try_again(&mut kids, "b").await, Outcome::Continue);
        assert_eq!(s.restarts_in_period(), 3);
    });
}

#[test]
fn retries_past_the_intensity_give_up() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(2, Duration::from_secs(60));
        let mut s = started(flags, &["a", "b"], &mut kids).await;
        kids.failing.insert("b".into(), u32::MAX);
        assert_eq!(crash(&mut s, &mut kids, "b").await, again("b"));
        assert_eq!(s.try_again(&mut kids, "b").await, again("b"));
        assert_eq!(
            s.try_again(&mut kids, "b").await,
            Outcome::Shutdown(ExitReason::Shutdown)
        );
        assert!(kids.alive.is_empty(), "{:?}", kids.alive);
    });
}

#[test]
fn terminate_child_cancels_a_pending_retry_as_in_otp() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(60));
        let mut s = started(flags, &["a", "b"], &mut kids).await;
        kids.failing.insert("b".into(), u32::MAX);
        assert_eq!(crash(&mut s, &mut kids, "b").await, again("b"));
        // OTP: restart_child and delete_child of a restarting child are
        // `{error, restarting}`; they change nothing.
        assert_eq!(
            s.restart_child(&mut kids, "b").await.unwrap_err(),
            SupError::Restarting { id: "b".into() }
        );
        assert_eq!(
            s.delete_child(&mut kids, "b").unwrap_err(),
            SupError::Restarting { id: "b".into() }
        );
        // terminate_child ends the restarting: the retry finds nothing to do.
        s.terminate_child(&mut kids, "b").await.unwrap();
        assert!(!s.which_children()[1].restarting);
        let before = s.restarts_in_period();
        kids.calls.clear();
        assert_eq!(s.try_again(&mut kids, "b").await, Outcome::Continue);
        assert!(kids.calls.is_empty(), "{:?}", kids.calls);
        assert_eq!(s.restarts_in_period(), before);
        // The child is now a stopped one: restart_child and delete_child work.
        kids.failing.clear();
        s.restart_child(&mut kids, "b").await.unwrap();
        s.terminate_child(&mut kids, "b").await.unwrap();
        s.delete_child(&mut kids, "b").unwrap();
        assert_eq!(s.try_again(&mut kids, "b").await, Outcome::Continue);
    });
}

#[test]
fn one_for_all_tries_again_with_the_child_that_failed() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForAll).intensity(10, Duration::from_secs(60));
        let mut s = started(flags, &["a", "b", "c"], &mut kids).await;
        kids.failing.insert("b".into(), 1);
        assert_eq!(crash(&mut s, &mut kids, "a").await, again("b"));
        assert!(s.which_children()[1].restarting);
        assert_eq!(s.try_again(&mut kids, "b").await, Outcome::Continue);
        let running: Vec<bool> = s
            .which_children()
            .iter()
            .map(|c| c.handle.is_some())
            .collect();
        assert_eq!(running, [true, true, true]);
        assert_eq!(kids.alive.len(), 3, "{:?}", kids.alive);
    });
}

#[test]
fn a_backoff_delays_restarts_through_try_again() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(60));
        let mut s = started(flags, &["a"], &mut kids).await;
        s.set_backoff(Some(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(40),
        )));
        let after = |o: Outcome| match o {
            Outcome::TryAgain { id, after } if id == "a" => after.as_millis(),
            other => panic!("{other:?}"),
        };
        // The restart waits; nothing is started or counted until then.
        assert_eq!(after(crash(&mut s, &mut kids, "a").await), 10);
        assert!(kids.calls.is_empty(), "{:?}", kids.calls);
        assert_eq!(s.restarts_in_period(), 0);
        assert!(s.which_children()[0].restarting);
        assert_eq!(s.try_again(&mut kids, "a").await, Outcome::Continue);
        assert_eq!(s.restarts_in_period(), 1);
        // The next delays grow, a failed start waits its own delay too.
        assert_eq!(after(crash(&mut s, &mut kids, "a").await), 20);
        kids.failing.insert("a".into(), 1);
        assert_eq!(after(s.try_again(&mut kids, "a").await), 40);
        assert_eq!(s.try_again(&mut kids, "a").await, Outcome::Continue);
        assert!(s.handle("a").is_some());
    });
}
