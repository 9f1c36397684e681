//! The supervisor's rules, case by case after OTP's `supervisor_SUITE`,
//! on fake children: each test asserts the order of events.

mod common;

use std::time::Duration;

use common::{settle, specs, Fake};
use futures::executor::block_on;
use hyperverse_supervisors::*;

fn boom() -> ExitReason {
    ExitReason::Error("boom".into())
}

/// The log as short strings, easy to compare.
fn events(sup: &mut Supervisor<Fake>) -> Vec<String> {
    sup.take_log()
        .into_iter()
        .map(|e| match e {
            SupEvent::Started { id } => format!("started {id}"),
            SupEvent::StartFailed { id, .. } => format!("start-failed {id}"),
            SupEvent::Exited { id, reason } => format!("exited {id} ({reason})"),
            SupEvent::Stopped { id, reason } => format!("stopped {id} ({reason})"),
            SupEvent::Restarting { id } => format!("restarting {id}"),
            SupEvent::Removed { id } => format!("removed {id}"),
            SupEvent::GaveUp { restarts } => format!("gave up after {restarts}"),
            SupEvent::AutoShutdown { id } => format!("auto-shutdown by {id}"),
        })
        .collect()
}

async fn sup(flags: SupFlags, s: Vec<ChildSpec<()>>, kids: &mut Fake) -> Supervisor<Fake> {
    let mut sup = Supervisor::start(flags, s, kids).await.unwrap();
    sup.take_log();
    kids.calls.clear();
    sup
}

async fn crash(
    sup: &mut Supervisor<Fake>,
    kids: &mut Fake,
    id: &str,
    reason: ExitReason,
) -> Outcome {
    let h = sup.handle(id).unwrap();
    // Failed restarts are retried at once, as the owner of the supervisor
    // would (see `try_again.rs` for what happens in between).
    let outcome = sup.child_exited(kids, id, &h, reason).await;
    settle(sup, kids, outcome).await
}

#[test]
fn children_start_in_order_and_a_failed_start_stops_the_started_in_reverse() {
    block_on(async {
        let mut kids = Fake::default();
        let s = Supervisor::start(SupFlags::default(), specs(&["a", "b", "c"]), &mut kids)
            .await
            .unwrap();
        assert_eq!(kids.calls, ["start a", "start b", "start c"]);
        drop(s);

        let mut kids = Fake::default();
        kids.failing.insert("c".into(), 1);
        let err = Supervisor::start(SupFlags::default(), specs(&["a", "b", "c", "d"]), &mut kids)
            .await
            .err()
            .unwrap();
        assert_eq!(
            err,
            SupError::StartFailed {
                id: "c".into(),
                reason: ExitReason::Error("c cannot start".into())
            }
        );
        assert_eq!(
            kids.calls,
            ["start a", "start b", "start c failed", "stop b", "stop a"]
        );
    });
}

#[test]
fn one_for_one_restarts_only_the_crashed_child() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(60));
        let mut s = sup(flags, specs(&["a", "b", "c"]), &mut kids).await;
        assert_eq!(
            crash(&mut s, &mut kids, "b", boom()).await,
            Outcome::Continue
        );
        assert_eq!(
            events(&mut s),
            ["exited b (boom)", "restarting b", "started b"]
        );
        assert_eq!(kids.calls, ["start b"]);
    });
}

#[test]
fn one_for_all_stops_the_others_in_reverse_then_starts_all_in_order() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForAll).intensity(5, Duration::from_secs(60));
        let mut s = sup(flags, specs(&["a", "b", "c"]), &mut kids).await;
        crash(&mut s, &mut kids, "b", boom()).await;
        assert_eq!(
            events(&mut s),
            [
                "exited b (boom)",
                "restarting b",
                "stopped c (shutdown)",
                "stopped a (shutdown)",
                "started a",
                "started b",
                "started c"
            ]
        );
    });
}

#[test]
fn rest_for_one_restarts_the_crashed_child_and_those_after_it() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::RestForOne).intensity(5, Duration::from_secs(60));
        let mut s = sup(flags, specs(&["a", "b", "c", "d"]), &mut kids).await;
        crash(&mut s, &mut kids, "b", boom()).await;
        assert_eq!(
            events(&mut s),
            [
                "exited b (boom)",
                "restarting b",
                "stopped d (shutdown)",
                "stopped c (shutdown)",
                "started b",
                "started c",
                "started d"
            ]
        );
        assert!(s.handle("a").is_some());
    });
}

#[test]
fn restart_types_with_normal_and_abnormal_exits() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(60));
        let s_ = vec![
            ChildSpec::worker("perm", ()),
            ChildSpec::worker("trans", ()).restart(Restart::Transient),
            ChildSpec::worker("temp", ()).restart(Restart::Temporary),
        ];
        let mut s = sup(flags, s_, &mut kids).await;

        // Permanent: restarted even after a normal exit.
        crash(&mut s, &mut kids, "perm", ExitReason::Normal).await;
        assert_eq!(
            events(&mut s),
            ["exited perm (normal)", "restarting perm", "started perm"]
        );

        // Transient: not restarted after shutdown-with-detail (normal), spec kept.
        crash(
            &mut s,
            &mut kids,
            "trans",
            ExitReason::ShutdownWith("done".into()),
        )
        .await;
        assert_eq!(events(&mut s), ["exited trans (shutdown: done)"]);
        let trans = s
            .which_children()
            .into_iter()
            .find(|c| c.id == "trans")
            .unwrap();
        assert_eq!(trans.handle, None);
        // …and restarted after an abnormal exit.
        s.restart_child(&mut kids, "trans").await.unwrap();
        crash(&mut s, &mut kids, "trans", boom()).await;
        assert_eq!(
            events(&mut s),
            [
                "started trans",
                "exited trans (boom)",
                "restarting trans",
                "started trans"
            ]
        );

        // Temporary: never restarted, and its spec is removed.
        crash(&mut s, &mut kids, "temp", boom()).await;
        assert_eq!(events(&mut s), ["exited temp (boom)", "removed temp"]);
        assert_eq!(
            s.count_children(),
            Counts {
                specs: 2,
                active: 2,
                supervisors: 0,
                workers: 2
            }
        );
    });
}

#[test]
fn a_temporary_bystander_of_one_for_all_is_removed_not_restarted() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForAll).intensity(5, Duration::from_secs(60));
        let s_ = vec![
            ChildSpec::worker("a", ()),
            ChildSpec::worker("t", ()).restart(Restart::Temporary),
            ChildSpec::worker("c", ()),
        ];
        let mut s = sup(flags, s_, &mut kids).await;
        crash(&mut s, &mut kids, "a", boom()).await;
        assert_eq!(
            events(&mut s),
            [
                "exited a (boom)",
                "restarting a",
                "stopped c (shutdown)",
                "stopped t (shutdown)",
                "removed t",
                "started a",
                "started c"
            ]
        );
    });
}

#[test]
fn exceeding_the_intensity_stops_everything_in_reverse_and_escalates() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(1, Duration::from_secs(60));
        let mut s = sup(flags, specs(&["a", "b", "c"]), &mut kids).await;
        assert_eq!(
            crash(&mut s, &mut kids, "b", boom()).await,
            Outcome::Continue
        );
        events(&mut s);
        // The second restart within the period is one too many.
        assert_eq!(
            crash(&mut s, &mut kids, "a", boom()).await,
            Outcome::Shutdown(ExitReason::Shutdown)
        );
        assert_eq!(
            events(&mut s),
            [
                "exited a (boom)",
                "gave up after 2",
                "stopped c (shutdown)",
                "stopped b (shutdown)"
            ]
        );
    });
}

#[test]
fn a_restart_that_keeps_failing_is_retried_within_the_intensity() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(3, Duration::from_secs(60));
        let mut s = sup(flags, specs(&["a", "b"]), &mut kids).await;
        kids.failing.insert("b".into(), 2);
        assert_eq!(
            crash(&mut s, &mut kids, "b", boom()).await,
            Outcome::Continue
        );
        assert_eq!(
            events(&mut s),
            [
                "exited b (boom)",
                "restarting b",
                "start-failed b",
                "restarting b",
                "start-failed b",
                "restarting b",
                "started b"
            ]
        );
        // Three restarts are used up: the next crash exceeds the intensity,
        // and the supervisor gives up without trying (and still shuts down).
        kids.failing.insert("a".into(), u32::MAX);
        let outcome = crash(&mut s, &mut kids, "a", boom()).await;
        assert_eq!(outcome, Outcome::Shutdown(ExitReason::Shutdown));
        let log = events(&mut s);
        assert_eq!(log.last().unwrap(), "stopped b (shutdown)");
        assert!(log.contains(&"gave up after 4".to_string()), "{log:?}");
    });
}

#[test]
fn an_exit_of_an_old_incarnation_is_ignored() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(60));
        let mut s = sup(flags, specs(&["a"]), &mut kids).await;
        let old = s.handle("a").unwrap();
        s.child_exited(&mut kids, "a", &old, boom()).await;
        events(&mut s);
        assert_eq!(
            s.child_exited(&mut kids, "a", &old, boom()).await,
            Outcome::Continue
        );
        assert!(events(&mut s).is_empty());
        assert_ne!(s.handle("a").unwrap(), old);
    });
}

#[test]
fn shutdown_stops_children_in_reverse_start_order() {
    block_on(async {
        let mut kids = Fake::default();
        let mut s = sup(SupFlags::default(), specs(&["a", "b", "c"]), &mut kids).await;
        s.shutdown(&mut kids).await;
        assert_eq!(kids.calls, ["stop c", "stop b", "stop a"]);
        assert_eq!(s.count_children().active, 0);
    });
}

#[test]
fn the_api_gives_otps_error_cases() {
    block_on(async {
        let mut kids = Fake::default();
        let mut s = sup(SupFlags::default(), specs(&["a"]), &mut kids).await;
        assert_eq!(
            s.start_child(&mut kids, ChildSpec::worker("a", ()))
                .await
                .unwrap_err(),
            SupError::AlreadyStarted { id: "a".into() }
        );
        assert_eq!(
            s.delete_child(&mut kids, "a").unwrap_err(),
            SupError::Running { id: "a".into() }
        );
        assert_eq!(
            s.restart_child(&mut kids, "a").await.unwrap_err(),
            SupError::Running { id: "a".into() }
        );
        s.terminate_child(&mut kids, "a").await.unwrap();
        assert_eq!(
            s.start_child(&mut kids, ChildSpec::worker("a", ()))
                .await
                .unwrap_err(),
            SupError::AlreadyPresent { id: "a".into() }
        );
        s.restart_child(&mut kids, "a").await.unwrap();
        s.terminate_child(&mut kids, "a").await.unwrap();
        s.delete_child(&mut kids, "a").unwrap();
        assert_eq!(
            s.delete_child(&mut kids, "a").unwrap_err(),
            SupError::NotFound { id: "a".into() }
        );
        assert_eq!(
            s.terminate_child(&mut kids, "zz").await.unwrap_err(),
            SupError::NotFound { id: "zz".into() }
        );
        // A child added at run time whose start fails leaves no spec behind.
        kids.failing.insert("b".into(), 1);
        assert!(matches!(
            s.start_child(&mut kids, ChildSpec::worker("b", ())).await,
            Err(SupError::StartFailed { .. })
        ));
        assert_eq!(s.count_children().specs, 0);
        s.start_child(&mut kids, ChildSpec::supervisor("sub", ()))
            .await
            .unwrap();
        assert_eq!(
            s.count_children(),
            Counts {
                specs: 1,
                active: 1,
                supervisors: 1,
                workers: 0
            }
        );
    });
}

#[test]
fn bad_specs_and_flags_are_typed_errors_at_start() {
    block_on(async {
        let mut kids = Fake::default();
        let zero_period = SupFlags::default().intensity(1, Duration::ZERO);
        assert!(matches!(
            Supervisor::start(zero_period, specs(&["a"]), &mut kids)
                .await
                .err(),
            Some(SupError::Flags(_))
        ));
        let dup = specs(&["a", "a"]);
        assert_eq!(
            Supervisor::start(SupFlags::default(), dup, &mut kids)
                .await
                .err(),
            Some(SupError::Spec(SpecError::DuplicateId { id: "a".into() }))
        );
        let sig = vec![ChildSpec::worker("s", ()).significant(true)];
        assert_eq!(
            Supervisor::start(SupFlags::default(), sig, &mut kids)
                .await
                .err(),
            Some(SupError::Spec(SpecError::SignificantPermanent {
                id: "s".into()
            }))
        );
        let zero = vec![ChildSpec::worker("z", ()).shutdown(Shutdown::Timeout(Duration::ZERO))];
        assert!(matches!(
            Supervisor::start(SupFlags::default(), zero, &mut kids)
                .await
                .err(),
            Some(SupError::Spec(SpecError::ZeroShutdown { .. }))
        ));
        assert_eq!(
            Supervisor::start(
                SupFlags::new(Strategy::Dynamic),
                specs(&["a", "b"]),
                &mut kids
            )
            .await
            .err(),
            Some(SupError::DynamicTemplate { specs: 2 })
        );
        assert!(kids.calls.is_empty(), "nothing started: {:?}", kids.calls);
    });
}

#[test]
fn auto_shutdown_any_and_all_significant() {
    block_on(async {
        let mut kids = Fake::default();
        let sig = |id: &str| {
            ChildSpec::worker(id, ())
                .restart(Restart::Transient)
                .significant(true)
        };
        let flags = SupFlags::default().auto_shutdown(AutoShutdown::AnySignificant);
        let mut s = sup(
            flags,
            vec![ChildSpec::worker("w", ()), sig("s1"), sig("s2")],
            &mut kids,
        )
        .await;
        let outcome = crash(&mut s, &mut kids, "s1", ExitReason::Normal).await;
        assert_eq!(outcome, Outcome::Shutdown(ExitReason::Shutdown));
        assert_eq!(
            events(&mut s),
            [
                "exited s1 (normal)",
                "auto-shutdown by s1",
                "stopped s2 (shutdown)",
                "stopped w (shutdown)"
            ]
        );

        let mut kids = Fake::default();
        let flags = SupFlags::default().auto_shutdown(AutoShutdown::AllSignificant);
        let mut s = sup(
            flags,
            vec![ChildSpec::worker("w", ()), sig("s1"), sig("s2")],
            &mut kids,
        )
        .await;
        assert_eq!(
            crash(&mut s, &mut kids, "s1", ExitReason::Normal).await,
            Outcome::Continue
        );
        assert_eq!(
            crash(&mut s, &mut kids, "s2", ExitReason::Shutdown).await,
            Outcome::Shutdown(ExitReason::Shutdown)
        );
        // A significant child that crashes is restarted instead (transient).
        let mut kids = Fake::default();
        let flags = SupFlags::default().auto_shutdown(AutoShutdown::AnySignificant);
        let mut s = sup(flags, vec![sig("s")], &mut kids).await;
        assert_eq!(
            crash(&mut s, &mut kids, "s", boom()).await,
            Outcome::Continue
        );
    });
}

#[test]
fn dynamic_children_are_added_at_run_time_and_restarted_alone() {
    block_on(async {
        let mut kids = Fake::default();
        let flags = SupFlags::new(Strategy::Dynamic).intensity(5, Duration::from_secs(60));
        let template = vec![ChildSpec::worker("conn", ()).restart(Restart::Transient)];
        let mut s = sup(flags, template, &mut kids).await;
        for i in 0..3 {
            s.add_child(&mut kids, format!("conn-{i}"), ())
                .await
                .unwrap();
        }
        assert_eq!(s.count_children().active, 3);
        crash(&mut s, &mut kids, "conn-1", boom()).await;
        crash(&mut s, &mut kids, "conn-2", ExitReason::Normal).await;
        assert_eq!(
            events(&mut s),
            [
                "started conn-0",
                "started conn-1",
                "started conn-2",
                "exited conn-1 (boom)",
                "restarting conn-1",
                "started conn-1",
                "exited conn-2 (normal)",
                "removed conn-2"
            ]
        );
        s.terminate_child(&mut kids, "conn-0").await.unwrap();
        assert_eq!(
            s.which_children().len(),
            1,
            "a terminated dynamic child is gone"
        );
        assert!(matches!(
            s.restart_child(&mut kids, "conn-1").await,
            Err(SupError::Unsupported { .. })
        ));
        assert!(matches!(
            s.start_child(&mut kids, ChildSpec::worker("x", ())).await,
            Err(SupError::Unsupported { .. })
        ));
    });
}
