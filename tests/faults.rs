//! The fault API, one fault at a time: each does what it says, nothing
//! hangs, and a seeded plan replays.

mod common;

use std::time::{Duration, Instant};

use common::p;
use hyperverse::faults::*;
use hyperverse::*;

const SECS5: Duration = Duration::from_secs(5);

async fn probes(n: usize) -> (Machine, EventLog, ProbeLog) {
    let log = EventLog::new();
    let (probe, seen) = Probe::new();
    let m = Machine::standalone()
        .stars(2)
        .kind("probe", probe)
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    m.spawn(p("app"), "probe".into(), Body::empty())
        .await
        .unwrap();
    for i in 0..n {
        m.spawn(p(&format!("app:p{i}")), "probe".into(), Body::empty())
            .await
            .unwrap();
    }
    (m, log, seen)
}

fn request(m: &Machine, to: &Point, n: u64, timeout: Duration) -> Ask<Body> {
    m.ask(to, ("n", Body::from_u64(n))).within(timeout)
}

/// Drop faults make requests fail with a typed timeout error; nothing
/// hangs; healed, the lane answers again. A seeded drop replays exactly.
#[tokio::test]
async fn dropped_requests_time_out_with_a_typed_error() {
    let (m, _, seen) = probes(1).await;
    let at = p("app:p0");
    m.inject(&at, Fault::Drop { probability: 1.0 }).unwrap();
    let t = Instant::now();
    let answers: Vec<_> = (0..20)
        .map(|i| request(&m, &at, i, Duration::from_millis(50)))
        .collect();
    for a in answers {
        assert!(matches!(a.await, Err(WaveError::Timeout { .. })));
    }
    assert!(t.elapsed() < Duration::from_secs(2), "requests hung");
    assert!(seen.waves().is_empty(), "dropped waves were handled");

    m.inject(&at, Fault::Heal).unwrap();
    assert_eq!(request(&m, &at, 7, SECS5).await.unwrap().as_u64(), Some(7));

    // Half dropped, from a seed: the same seed drops the same waves.
    let mut runs = Vec::new();
    for _ in 0..2 {
        m.inject_seeded(&at, Fault::Drop { probability: 0.5 }, 99)
            .unwrap();
        let answers: Vec<_> = (0..40)
            .map(|i| request(&m, &at, i, Duration::from_millis(100)))
            .collect();
        let mut answered = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a.await {
                Ok(_) => answered.push(i),
                Err(WaveError::Timeout { .. }) => {}
                Err(e) => panic!("not a timeout: {e}"),
            }
        }
        runs.push(answered);
    }
    assert_eq!(runs[0], runs[1]);
    assert!((5..35).contains(&runs[0].len()), "{:?}", runs[0]);
    m.shutdown().await;
}

/// A paused particle holds its waves; resumed, it handles them in order.
#[tokio::test]
async fn pause_holds_waves_and_resume_releases_them_in_order() {
    let (m, _, seen) = probes(1).await;
    let at = p("app:p0");
    m.inject(&at, Fault::Pause).unwrap();
    for i in 0..100 {
        m.signal(&at, ("n", Body::from_u64(i))).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(seen.waves().is_empty(), "a paused particle handled waves");
    m.inject(&at, Fault::Resume).unwrap();
    seen.await_waves(100, SECS5).await.unwrap();
    let got: Vec<u64> = seen
        .waves()
        .iter()
        .map(|w| w.body.as_u64().unwrap())
        .collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    m.shutdown().await;
}

/// Delayed waves arrive late but in per-sender order.
#[tokio::test]
async fn delays_keep_per_sender_order() {
    let (m, _, seen) = probes(1).await;
    let at = p("app:p0");
    m.inject_seeded(
        &at,
        Fault::Delay {
            min: Duration::from_millis(1),
            max: Duration::from_millis(4),
            probability: 0.5,
        },
        5,
    )
    .unwrap();
    let t = Instant::now();
    for i in 0..60 {
        m.signal(&at, ("n", Body::from_u64(i))).unwrap();
    }
    seen.await_waves(60, SECS5).await.unwrap();
    // About 30 delays of 1-4 ms each.
    assert!(
        t.elapsed() >= Duration::from_millis(20),
        "{:?}",
        t.elapsed()
    );
    let got: Vec<u64> = seen
        .waves()
        .iter()
        .map(|w| w.body.as_u64().unwrap())
        .collect();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    m.shutdown().await;
}

/// A crash acts as a panic would: the Star restarts the particle, its
/// parent gets a notice; a failed next start is one more crash before it
/// serves again.
#[tokio::test]
async fn crashes_and_failed_starts_are_restarted() {
    let (m, log, _) = probes(1).await;
    let at = p("app:p0");
    m.inject(&at, Fault::FailNextStart("no start for you".into()))
        .unwrap();
    m.inject(&at, Fault::Crash("injected".into())).unwrap();
    log.await_count(
        2,
        SECS5,
        |e| matches!(e, Event::Crashed(n) if n.child == at),
    )
    .await
    .unwrap();
    log.await_ready(&m, &at, SECS5).await.unwrap();
    let reasons: Vec<String> = log
        .events()
        .into_iter()
        .filter_map(|l| match l.event {
            Event::Crashed(n) if n.child == at => Some(n.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["injected", "no start for you"]);
    assert_eq!(m.record(&at).unwrap().restarts, 2);
    assert_eq!(request(&m, &at, 3, SECS5).await.unwrap().as_u64(), Some(3));
    assert!(matches!(
        m.inject(&p("nobody"), Fault::Pause),
        Err(FaultError::NoSuchParticle { .. })
    ));
    m.shutdown().await;
}

/// A worker under a supervisor particle on a Star that is killed: the
/// Star is restarted by the Machine, its particles crash, the supervisor
/// (crashed too) adopts its parked children on its next incarnation, and
/// no wave queued for them is lost.
#[tokio::test]
async fn a_killed_star_loses_no_queued_wave() {
    let log = EventLog::new();
    let (probe, seen) = Probe::new();
    let kids = (0..5)
        .map(|i| ChildSpec::worker(format!("w{i}"), ChildStart::kind("probe", Body::empty())))
        .collect();
    let m = Machine::standalone()
        .stars(2)
        .kind("probe", probe)
        .supervisor(
            "sup",
            SupervisorSpec::new(
                SupFlags::new(Strategy::OneForOne).intensity(100, Duration::from_secs(1)),
                kids,
            ),
        )
        .observer(log.observer())
        .build()
        .await
        .unwrap();
    m.spawn_with(p("sup"), "sup".into(), Body::empty(), common::on(1))
        .await
        .unwrap();
    let workers: Vec<Point> = (0..5).map(|i| p(&format!("sup:w{i}"))).collect();
    for w in &workers {
        m.inject(w, Fault::Pause).unwrap();
        for n in 0..50 {
            m.signal(w, ("n", Body::from_u64(n))).unwrap();
        }
    }
    let crashed = m.kill_star(1, "test").await.unwrap();
    assert_eq!(crashed.len(), 6, "{crashed:?}");
    for w in &workers {
        m.inject(w, Fault::Resume).unwrap();
    }
    seen.await_waves(250, SECS5).await.unwrap();
    for w in &workers {
        let got: Vec<u64> = seen
            .waves()
            .iter()
            .filter(|r| &r.at == w)
            .map(|r| r.body.as_u64().unwrap())
            .collect();
        assert_eq!(got, (0..50).collect::<Vec<_>>(), "{w}");
    }
    // The Star was restarted by the Machine's root supervisor.
    assert!(log
        .supervisor_events(&Point::root())
        .contains(&SupEvent::Restarting {
            id: "star-1".into()
        }));
    // The supervisor crashed and was restarted by its Star, adopting its
    // children (same particles, next incarnation).
    log.await_ready(&m, &p("sup"), SECS5).await.unwrap();
    assert!(m.record(&p("sup")).unwrap().restarts >= 1);
    for w in &workers {
        log.await_ready(&m, w, SECS5).await.unwrap();
    }
    m.shutdown().await;
}

/// The same seed produces the same fault schedule and, on the same tree,
/// the same faults on the same particles (compare logs).
#[tokio::test]
async fn the_same_seed_replays_the_same_faults() {
    let plan = |seed| {
        FaultPlan::new(seed)
            .duration(Duration::from_millis(150))
            .every(
                Duration::from_millis(10),
                Action::Crash(Target::below(p("app")).kind("probe")),
            )
            .every(
                Duration::from_millis(40),
                Action::Pause {
                    target: Target::below(p("app")),
                    pause: Duration::from_millis(5),
                },
            )
            .every(Duration::from_millis(60), Action::KillStar)
    };
    let mut logs = Vec::new();
    for seed in [11, 11, 12] {
        let (m, _, _) = probes(8).await;
        let _seed = SeedGuard::new(seed);
        let report = plan(seed).run(&m).await;
        let log: Vec<(Duration, String, Point)> = report
            .injected
            .into_iter()
            .map(|r| (r.at, r.action, r.target))
            .collect();
        logs.push(log);
        m.shutdown().await;
    }
    assert!(logs[0].len() >= 10, "{:?}", logs[0]);
    assert_eq!(logs[0], logs[1], "same seed, different faults");
    assert_ne!(logs[0], logs[2], "another seed, the same faults");
}
