//! Races and contract edges of fault injection and supervisor adoption.
//! Each test was written in review against a bug it demonstrated (its
//! comment says what went wrong before the fix); the `guard_` tests pin
//! behaviour that was right and must stay so. Every await is bounded, so a
//! hang fails quickly.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, on, p};
use hyperverse::faults::*;
use hyperverse::*;
use tokio::time::timeout;

const SECS5: Duration = Duration::from_secs(5);

/// A worker that can be kept busy in a handler: "sleep" (body: ms) awaits
/// that long and answers, "fail" (body: ms) awaits that long and crashes;
/// anything else answers its body. `busy` counts handlers entered.
struct Slow {
    busy: Arc<AtomicUsize>,
}

impl Particle for Slow {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let ms = || Duration::from_millis(w.body.as_u64().unwrap_or(0));
        match &*w.method {
            // A request of its own to its parent, waiting up to the body's ms.
            "ask_parent" => {
                let parent = ctx.parent().ok_or("no parent")?.clone();
                ctx.ask(&parent, ("hello", Body::empty()))
                    .within(ms())
                    .await?;
                Ok(Body::empty())
            }
            "sleep" => {
                self.busy.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(ms()).await;
                Ok(Body::empty())
            }
            "fail" => {
                self.busy.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(ms()).await;
                Err("failed by itself".into())
            }
            _ => Ok(w.body),
        }
    }
}

fn one_for_one(children: Vec<ChildSpec<ChildStart>>) -> SupervisorSpec {
    SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(100, Duration::from_secs(5)),
        children,
    )
}

fn exits_of(log: &EventLog, sup: &Point, id: &str) -> usize {
    log.supervisor_events(sup)
        .iter()
        .filter(|e| matches!(e, SupEvent::Exited { id: x, .. } if x == id))
        .count()
}

// ---------------------------------------------------------------------
// Bug 1: an injected crash that was not taken outlives the incarnation it
// was aimed at, and crashes the next one.
// ---------------------------------------------------------------------

/// kill_star crashes the supervisor and its busy child. The supervisor's
/// crash parks (kills) the child's incarnation before the child reaches a
/// letter boundary; the crash flag stays in the lane, so the adopted
/// incarnation crashes at once: one Star kill, two deaths for the child,
/// one extra restart counted against the supervisor's intensity.
#[tokio::test]
async fn kill_star_kills_a_busy_supervised_child_only_once() {
    let log = EventLog::new();
    let busy = Arc::new(AtomicUsize::new(0));
    let m = Machine::standalone()
        .stars(2)
        .kind("slow", Slow { busy: busy.clone() })
        .supervisor(
            "sup",
            one_for_one(vec![ChildSpec::worker(
                "w0",
                ChildStart::kind("slow", Body::empty()),
            )]),
        )
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let (sup, w0) = (p("sup"), p("sup:w0"));
    m.spawn_with(sup.clone(), "sup".into(), Body::empty(), on(1))
        .await
        .unwrap();
    m.signal(&w0, ("sleep", Body::from_u64(400))).unwrap();
    eventually("w0 busy in its handler", || {
        busy.load(Ordering::SeqCst) == 1
    })
    .await;

    let crashed = timeout(SECS5, m.kill_star(1, "test"))
        .await
        .expect("kill_star hung")
        .unwrap();
    assert_eq!(crashed, vec![sup.clone(), w0.clone()]);
    timeout(SECS5, log.await_ready(&m, &sup, SECS5))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(
        exits_of(&log, &sup, "w0"),
        0,
        "w0 was killed by its supervisor's park, then crashed again by the \
         stale injected crash in its adopted incarnation: {:?}",
        log.supervisor_events(&sup)
    );
    assert_eq!(
        m.record(&w0).unwrap().restarts,
        1,
        "one Star kill, one restart"
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// Same root cause, Star-supervised: a crash injected while the particle
/// is in a handler that crashes by itself is carried into the restarted
/// incarnation (exit(Pid) targets a pid; the restarted particle is not it).
#[tokio::test]
async fn an_injected_crash_is_not_carried_into_the_next_incarnation() {
    let log = EventLog::new();
    let busy = Arc::new(AtomicUsize::new(0));
    let m = Machine::standalone()
        .stars(1)
        .kind("slow", Slow { busy: busy.clone() })
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let at = p("slow");
    m.spawn(at.clone(), "slow".into(), Body::empty())
        .await
        .unwrap();
    m.signal(&at, ("fail", Body::from_u64(150))).unwrap();
    eventually("in its handler", || busy.load(Ordering::SeqCst) == 1).await;
    m.inject(&at, Fault::Crash("injected".into())).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reasons: Vec<String> = log
        .events()
        .into_iter()
        .filter_map(|l| match l.event {
            Event::Crashed(n) if n.child == at => Some(n.reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        ["failed by itself"],
        "the injected crash hit the restarted incarnation too"
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------
// Bug 2: a dropped request's reply channel is kept in the lane's fault
// state for as long as the cell lives, even after the particle ends: a
// `ParticleRef::ask(..).within(None)` (no deadline) never returns.
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_dropped_call_is_answered_when_its_particle_stops() {
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    let at = p("probe");
    let lane = m
        .spawn(at.clone(), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.inject(&at, Fault::Drop { probability: 1.0 }).unwrap();
    let call = lane.ask(("hi", Body::from_u64(1))).within(None);
    tokio::time::sleep(Duration::from_millis(50)).await; // taken and dropped
    timeout(SECS5, m.stop(&at)).await.unwrap().unwrap();
    let answer = timeout(Duration::from_secs(2), call).await;
    assert!(
        matches!(answer, Ok(Err(WaveError::Stopped { .. }))),
        "ParticleRef::ask(..).within(None) documents Stopped when the particle stops; got {answer:?} \
         (Err(Elapsed) = still waiting after the particle ended)"
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------
// Bug 3: Heal drops the swallowed reply channels: every requester whose
// request was dropped gets WaveError::Stopped at once, from a live
// particle, instead of timing out as Fault::Drop documents.
// ---------------------------------------------------------------------

#[tokio::test]
async fn heal_does_not_answer_dropped_requests_with_stopped() {
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    let at = p("probe");
    m.spawn(at.clone(), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.inject(&at, Fault::Drop { probability: 1.0 }).unwrap();
    let t = Instant::now();
    let req = m
        .ask(&at, ("hi", Body::from_u64(1)))
        .within(Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(50)).await;
    m.inject(&at, Fault::Heal).unwrap();
    let answer = timeout(SECS5, req).await.unwrap();
    assert_eq!(m.record(&at).unwrap().status, Status::Ready);
    assert!(
        matches!(answer, Err(WaveError::Timeout { .. })),
        "a dropped request must time out; got {answer:?} after {:?} from a live particle",
        t.elapsed()
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------
// Bug 4: kill_star on a Machine that is shut down (or shutting down) waits
// the full STAR_RESTART_WAIT (5 s) for a restart that cannot come.
// ---------------------------------------------------------------------

#[tokio::test]
async fn kill_star_after_shutdown_returns_promptly() {
    let m = Machine::standalone().stars(2).build().await.unwrap();
    timeout(SECS5, m.shutdown()).await.unwrap();
    let t = Instant::now();
    let r = timeout(Duration::from_secs(2), m.kill_star(0, "late")).await;
    assert!(
        r.is_ok(),
        "kill_star on a shut-down Machine still waiting after {:?}",
        t.elapsed()
    );
}

// ---------------------------------------------------------------------
// Bug 5: Star kills count against the Machine's Star intensity (10 in
// 5 s). The 11th kill makes the root supervisor give up: it stops EVERY
// Star, for good, silently; from then on every crash anywhere waits 5 s
// in report_crash and is given up. A FaultPlan with KillStar about every
// 400 ms or faster does this.
// ---------------------------------------------------------------------

#[tokio::test]
async fn star_kills_do_not_take_down_every_star() {
    let log = EventLog::new();
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(2)
        .kind("probe", probe)
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let b = p("b");
    m.spawn_with(b.clone(), "probe".into(), Body::empty(), on(1))
        .await
        .unwrap();
    for i in 0..10 {
        timeout(SECS5, m.kill_star(0, "storm"))
            .await
            .unwrap_or_else(|_| panic!("kill {i} hung"))
            .unwrap();
    }
    // The 11th: the root supervisor gives up on the Stars.
    let _ = timeout(Duration::from_millis(300), m.kill_star(0, "storm")).await;
    // Star 1 was never killed; its particle crashes once.
    m.inject(&b, Fault::Crash("once".into())).unwrap();
    let restarted = log
        .await_count(
            1,
            Duration::from_secs(2),
            |e| matches!(e, Event::Restarted { point, .. } if *point == b),
        )
        .await;
    assert!(
        restarted.is_ok(),
        "a particle on a Star that was never killed is not restarted: {:?}",
        log.supervisor_events(&Point::root())
    );
    let _ = timeout(Duration::from_secs(10), m.shutdown()).await;
}

// ---------------------------------------------------------------------
// Bug 6 (adoption vs. FailNextStart): a supervisor adopting its parked
// children fails its whole start when one adopted child's start fails
// (Supervisor::try_start), and then ends every adopted child: the waves
// queued in the siblings' lanes are lost, against the commit's "no wave
// queued for them is lost".
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_failed_adoption_start_does_not_lose_siblings_queued_waves() {
    let log = EventLog::new();
    let (probe, seen) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .supervisor(
            "sup",
            one_for_one(vec![
                ChildSpec::worker("w0", ChildStart::kind("probe", Body::empty())),
                ChildSpec::worker("w1", ChildStart::kind("probe", Body::empty())),
            ]),
        )
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let (sup, w0, w1) = (p("sup"), p("sup:w0"), p("sup:w1"));
    m.spawn(sup.clone(), "sup".into(), Body::empty())
        .await
        .unwrap();
    m.inject(&w1, Fault::Pause).unwrap();
    for n in 0..20 {
        m.signal(&w1, ("n", Body::from_u64(n))).unwrap();
    }
    m.inject(&w0, Fault::FailNextStart("no start".into()))
        .unwrap();
    m.inject(&sup, Fault::Crash("sup crash".into())).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    timeout(SECS5, log.await_ready(&m, &sup, SECS5))
        .await
        .unwrap()
        .unwrap();
    let _ = m.inject(&w1, Fault::Resume); // the same w1 if it was adopted
    let got = seen.await_waves(20, Duration::from_secs(2)).await;
    assert!(
        got.is_ok(),
        "w1's 20 queued waves were lost ({} handled); sup events: {:?}",
        seen.waves().len(),
        log.supervisor_events(&sup)
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------
// Suspicion (race): Managed::begin() resets `kill`. A kill landing between
// a parked child taking its Resume (Managed::wait) and begin() is lost;
// park_children's parked() then sees Starting and waits for an
// incarnation nobody will kill (a hang of the whole subtree), or sees
// Parked and returns while the child runs on. Nested supervisors make the
// window reachable: the outer one's crash kills the inner one while the
// inner one resumes a crashed worker. A stress loop; each hang fails.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_a_kill_racing_a_taken_resume_never_hangs_the_park() {
    let log = EventLog::new();
    let (probe, _) = Probe::new();
    let big = |s| SupFlags::new(s).intensity(1_000_000, Duration::from_secs(1));
    let m = Machine::standalone()
        .stars(1)
        .restart_limit(1_000_000, Duration::from_secs(1))
        .kind("probe", probe)
        .supervisor(
            "inner",
            SupervisorSpec::new(
                big(Strategy::OneForOne),
                vec![ChildSpec::worker(
                    "w",
                    ChildStart::kind("probe", Body::empty()),
                )],
            ),
        )
        .supervisor(
            "outer",
            SupervisorSpec::new(
                big(Strategy::OneForOne),
                vec![ChildSpec::supervisor(
                    "s2",
                    ChildStart::kind("inner", Body::empty()),
                )],
            ),
        )
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let (s1, w) = (p("s1"), p("s1:s2:w"));
    m.spawn(s1.clone(), "outer".into(), Body::empty())
        .await
        .unwrap();
    let restarted_s1 =
        |log: &EventLog| log.count(|e| matches!(e, Event::Restarted { point, .. } if *point == s1));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let before = restarted_s1(&log);
        let _ = m.signal(&w, ("crash", Body::empty()));
        // Vary the gap so that the outer crash meets the inner resume.
        let spin = Instant::now() + Duration::from_nanos((i * 7_919) % 60_000);
        while Instant::now() < spin {
            std::hint::spin_loop();
        }
        m.inject(&s1, Fault::Crash("outer".into())).unwrap();
        let ok = log
            .await_count(
                before + 1,
                Duration::from_secs(3),
                |e| matches!(e, Event::Restarted { point, .. } if *point == s1),
            )
            .await;
        assert!(
            ok.is_ok(),
            "iteration {i}: s1 never restarted (its park hangs): {:?}",
            m.record(&p("s1:s2:w")).map(|r| r.status)
        );
        // And the tree serves again.
        let answer = timeout(
            SECS5,
            m.ask(&w, ("n", Body::from_u64(i)))
                .within(Duration::from_secs(3)),
        )
        .await
        .expect("request hung");
        if let Err(e) = answer {
            // Refused while restarting is fine; a timeout is not.
            assert!(
                !matches!(e, WaveError::Timeout { .. }),
                "iteration {i}: {e}"
            );
        }
        i += 1;
    }
    println!("{i} iterations");
    let _ = timeout(Duration::from_secs(10), m.shutdown()).await;
}

// ---------------------------------------------------------------------
// Guards for suspicions that hold now (they pass): kept so that a fix
// for the bugs above does not break them.
// ---------------------------------------------------------------------

/// A delayed letter held while its (supervised) receiver is killed by its
/// supervisor's crash is handled once, in order, by the adopted incarnation.
#[tokio::test]
async fn guard_a_delayed_letter_survives_a_park_once_and_in_order() {
    let (probe, seen) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .supervisor(
            "sup",
            one_for_one(vec![ChildSpec::worker(
                "w0",
                ChildStart::kind("probe", Body::empty()),
            )]),
        )
        .build()
        .await
        .unwrap();
    let (sup, w0) = (p("sup"), p("sup:w0"));
    m.spawn(sup.clone(), "sup".into(), Body::empty())
        .await
        .unwrap();
    let d = Duration::from_millis(100);
    m.inject_seeded(
        &w0,
        Fault::Delay {
            min: d,
            max: d,
            probability: 1.0,
        },
        3,
    )
    .unwrap();
    for n in 0..3 {
        m.signal(&w0, ("n", Body::from_u64(n))).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(30)).await; // holding wave 0
    m.inject(&sup, Fault::Crash("sup".into())).unwrap();
    seen.await_waves(3, SECS5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<u64> = seen
        .waves()
        .iter()
        .map(|w| w.body.as_u64().unwrap())
        .collect();
    assert_eq!(got, [0, 1, 2]);
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A paused supervisor whose child crashed (the exit report held in its
/// paused lane) does not hang Machine::shutdown.
#[tokio::test]
async fn guard_a_paused_supervisor_with_a_crashed_child_shuts_down() {
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .supervisor(
            "sup",
            one_for_one(vec![ChildSpec::worker(
                "w0",
                ChildStart::kind("probe", Body::empty()),
            )]),
        )
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), "sup".into(), Body::empty())
        .await
        .unwrap();
    m.inject(&p("sup"), Fault::Pause).unwrap();
    m.signal(&p("sup:w0"), ("crash", Body::empty())).unwrap();
    m.inject(&p("sup:w0"), Fault::Pause).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    timeout(SECS5, m.shutdown()).await.expect("shutdown hung");
}

/// A supervisor its Star gives up on ends the children it parked.
#[tokio::test]
async fn guard_a_given_up_supervisor_ends_its_parked_children() {
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .restart_limit(0, Duration::from_secs(5))
        .kind("probe", probe)
        .supervisor(
            "sup",
            one_for_one(vec![ChildSpec::worker(
                "w0",
                ChildStart::kind("probe", Body::empty()),
            )]),
        )
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), "sup".into(), Body::empty())
        .await
        .unwrap();
    m.inject(&p("sup"), Fault::Crash("give up".into())).unwrap();
    eventually("w0 ended", || {
        m.record(&p("sup:w0"))
            .is_none_or(|r| r.status == Status::Stopped)
    })
    .await;
    assert!(m.particle(&p("sup:w0")).is_err());
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// Nested adoption across a Star kill: bank -> branch -> accounts, all on
/// the killed Star; waves queued in the paused accounts are all handled.
#[tokio::test]
async fn guard_nested_adoption_across_a_star_kill_loses_nothing() {
    let (probe, seen) = Probe::new();
    let accts = (0..3)
        .map(|i| ChildSpec::worker(format!("a{i}"), ChildStart::kind("probe", Body::empty())))
        .collect();
    let m = Machine::standalone()
        .stars(2)
        .kind("probe", probe)
        .supervisor("branch", one_for_one(accts))
        .supervisor(
            "bank",
            one_for_one(vec![ChildSpec::supervisor(
                "b",
                ChildStart::kind("branch", Body::empty()),
            )]),
        )
        .build()
        .await
        .unwrap();
    m.spawn_with(p("bank"), "bank".into(), Body::empty(), on(1))
        .await
        .unwrap();
    let accts: Vec<Point> = (0..3).map(|i| p(&format!("bank:b:a{i}"))).collect();
    for a in &accts {
        m.inject(a, Fault::Pause).unwrap();
        for n in 0..10 {
            m.signal(a, ("n", Body::from_u64(n))).unwrap();
        }
    }
    timeout(SECS5, m.kill_star(1, "nested"))
        .await
        .unwrap()
        .unwrap();
    for a in &accts {
        m.inject(a, Fault::Resume).unwrap();
    }
    seen.await_waves(30, SECS5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for a in &accts {
        let got: Vec<u64> = seen
            .waves()
            .iter()
            .filter(|r| &r.at == a)
            .map(|r| r.body.as_u64().unwrap())
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "{a}");
    }
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// FailNextStart on a supervised child during an ordinary restart: the
/// supervisor tries again within its intensity and the child serves.
#[tokio::test]
async fn guard_fail_next_start_on_a_supervised_child_is_retried() {
    let log = EventLog::new();
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .supervisor(
            "sup",
            one_for_one(vec![ChildSpec::worker(
                "w0",
                ChildStart::kind("probe", Body::empty()),
            )]),
        )
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), "sup".into(), Body::empty())
        .await
        .unwrap();
    let w0 = p("sup:w0");
    m.inject(&w0, Fault::FailNextStart("no".into())).unwrap();
    m.inject(&w0, Fault::Crash("crash".into())).unwrap();
    log.await_count(1, SECS5, |e| {
        matches!(
            e,
            Event::Supervisor {
                event: SupEvent::StartFailed { .. },
                ..
            }
        )
    })
    .await
    .unwrap();
    let answer = timeout(SECS5, m.ask(&w0, ("n", Body::from_u64(5))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.as_u64(), Some(5));
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------
// Bug 7: a supervisor incarnation killed inside Kids::stop (between
// refuse_requests_from(Some(child)) and refuse_requests_from(None)) leaves
// `refuse_from` set on its lane for good: after adoption, every request
// from that child (and below it) to its supervisor is refused with
// Stopped. park_children now kills nested supervisors at any await, so
// an outer crash (or a Star kill) during an inner strategy restart does it.
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_killed_supervisor_does_not_keep_refusing_its_childs_requests() {
    let log = EventLog::new();
    let busy = Arc::new(AtomicUsize::new(0));
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("slow", Slow { busy: busy.clone() })
        .kind("probe", probe)
        .supervisor(
            "inner",
            SupervisorSpec::new(
                SupFlags::new(Strategy::OneForAll).intensity(100, Duration::from_secs(5)),
                vec![
                    ChildSpec::worker("x", ChildStart::kind("slow", Body::empty())),
                    ChildSpec::worker("y", ChildStart::kind("probe", Body::empty())),
                ],
            ),
        )
        .supervisor(
            "outer",
            one_for_one(vec![ChildSpec::supervisor(
                "s2",
                ChildStart::kind("inner", Body::empty()),
            )]),
        )
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let (s1, s2, x, y) = (p("s1"), p("s1:s2"), p("s1:s2:x"), p("s1:s2:y"));
    m.spawn(s1.clone(), "outer".into(), Body::empty())
        .await
        .unwrap();
    // x busy: a one_for_all restart of s2 waits in Kids::stop(x) for it.
    m.signal(&x, ("sleep", Body::from_u64(1_000))).unwrap();
    eventually("x busy", || busy.load(Ordering::SeqCst) == 1).await;
    m.signal(&y, ("crash", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // s2 in Kids::stop(x)
    m.inject(&s1, Fault::Crash("outer".into())).unwrap();
    log.await_count(
        1,
        SECS5,
        |e| matches!(e, Event::Restarted { point, .. } if *point == s1),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    timeout(SECS5, log.await_ready(&m, &s2, SECS5))
        .await
        .unwrap()
        .unwrap();
    // Control: s2 serves requests from others.
    let control = timeout(
        SECS5,
        m.ask(&s2, ("hello", Body::empty()))
            .within(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    assert!(control.is_ok(), "{control:?}");
    // A request from x to its supervisor (any method: a supervisor answers
    // an unknown one with an empty body), sent from x's own handler: the
    // runtime stamps x as its sender.
    let answer = timeout(
        SECS5,
        m.ask(&x, ("ask_parent", Body::from_u64(2_000)))
            .within(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert!(
        answer.is_ok(),
        "s2's lane still refuses x's requests after s2 was restarted: {answer:?}"
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------
// Bug 8 (test kit): EventLog::await_ready documents that "a crash just
// injected may not have been taken yet, so it also waits for the Registry
// to show no crash in hand for a moment"; it returns as soon as the
// status reads Ready, i.e. at once, before the injected crash.
// ---------------------------------------------------------------------

#[tokio::test]
async fn await_ready_does_not_return_before_an_injected_crash() {
    let log = EventLog::new();
    let (probe, _) = Probe::new();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe)
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    let at = p("probe");
    m.spawn(at.clone(), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.inject(&at, Fault::Crash("injected".into())).unwrap();
    timeout(SECS5, log.await_ready(&m, &at, SECS5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.record(&at).unwrap().restarts,
        1,
        "await_ready returned before the injected crash was taken"
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}
