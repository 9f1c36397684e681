//! Crashes: one notice at the parent per crash, restart on the same lane,
//! restart counts in the Registry, and giving up after the restart limit.

use std::sync::Arc;
use std::time::Duration;

mod common;

use common::eventually;
use hyperverse::*;
use parking_lot::Mutex;

/// Records every crash notice it gets, for the test to read.
#[derive(Clone, Default)]
struct Parent {
    notices: Arc<Mutex<Vec<CrashNotice>>>,
}

impl Particle for Parent {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        // Passes a wave on to the child named in the body: from this particle.
        let child = ctx.me().child(w.body.as_str()?)?;
        ctx.signal(&child, (w.method, Body::empty()))?;
        Ok(Body::empty())
    }
    async fn crash_notice(&self, _: &Ctx, _: &mut (), n: CrashNotice) -> Result<(), ParticleError> {
        self.notices.lock().push(n);
        Ok(())
    }
}

/// Counts waves since its (re)start; crashes on demand.
struct Worker;

impl Particle for Worker {
    type State = u64;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }
    async fn handle(&self, ctx: &Ctx, seen: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        *seen += 1;
        match &*w.method {
            "fail" => Err("worker was told to fail".into()),
            "panic" => panic!("worker was told to panic"),
            "seen" => Ok(Body::from_u64(*seen)),
            "restarts" => Ok(Body::from_u64(ctx.restarts() as u64)),
            _ => Ok(Body::empty()),
        }
    }
}

async fn machine(parent: Parent, max_restarts: u32) -> Machine {
    Machine::standalone()
        .stars(2)
        .kind("parent", parent)
        .kind("worker", Worker)
        .restart_limit(max_restarts, Duration::from_secs(60))
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_sends_exactly_one_notice_and_the_child_serves_again() {
    let parent = Parent::default();
    let m = machine(parent.clone(), 10).await;
    let app: Point = "app".parse().unwrap();
    let child: Point = "app:worker".parse().unwrap();
    m.spawn(app.clone(), "parent".into(), Body::empty())
        .await
        .unwrap();
    m.spawn(child.clone(), "worker".into(), Body::empty())
        .await
        .unwrap();
    assert_eq!(m.record(&child).unwrap().parent, Some(app.clone()));
    assert_eq!(m.record(&app).unwrap().children, vec![child.clone()]);

    // A crash by error return, with a signal from the parent in flight.
    m.signal(&app, ("fail", "worker")).unwrap();
    eventually("the first notice", || parent.notices.lock().len() == 1).await;
    // The child serves again: a fresh incarnation (its count restarted).
    let seen = m.ask(&child, ("seen", Body::empty())).await.unwrap();
    assert_eq!(seen.as_u64(), Some(1), "a fresh state after the restart");
    {
        let notices = parent.notices.lock();
        let n = &notices[0];
        assert_eq!(n.child, child);
        assert_eq!(n.kind, Kind::new("worker"));
        assert_eq!(n.reason, "worker was told to fail");
        assert_eq!(n.restarts, 1);
        assert_eq!(n.in_period, 1);
        assert_eq!(n.star, m.record(&child).unwrap().star);
        assert!(!n.gave_up);
        let in_flight = n.in_flight.as_ref().unwrap();
        assert_eq!((&*in_flight.method, &in_flight.from), ("fail", &app));
    }
    let rec = m.record(&child).unwrap();
    assert_eq!((rec.restarts, rec.status), (1, Status::Ready));

    // A crash by panic, while a request is in flight: the requester gets a typed error.
    let err = m.ask(&child, ("panic", Body::empty())).await.unwrap_err();
    assert!(
        matches!(&err, WaveError::Crashed { point, reason } if point == &child && reason.contains("worker was told to panic")),
        "{err:?}"
    );
    eventually("the second notice", || parent.notices.lock().len() == 2).await;
    let restarts = m.ask(&child, ("restarts", Body::empty())).await.unwrap();
    assert_eq!(restarts.as_u64(), Some(2));
    assert_eq!(m.record(&child).unwrap().restarts, 2);
    assert!(parent.notices.lock()[1]
        .reason
        .contains("worker was told to panic"));

    // Exactly one notice per crash: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(parent.notices.lock().len(), 2);
    let stats: u64 = m.star_stats().iter().map(|s| s.restarts).sum();
    assert_eq!(stats, 2);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_queued_behind_a_crash_reach_the_next_incarnation() {
    let parent = Parent::default();
    let m = machine(parent.clone(), 10).await;
    let child: Point = "w".parse().unwrap();
    let lane = m
        .spawn(child.clone(), "worker".into(), Body::empty())
        .await
        .unwrap();
    lane.signal(("fail", Body::empty())).unwrap();
    for _ in 0..100 {
        lane.signal(("tick", Body::empty())).unwrap();
    }
    let seen = lane
        .ask(("seen", Body::empty()))
        .within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        seen.as_u64(),
        Some(101),
        "100 ticks + this request, none lost"
    );
    assert_eq!(m.record(&child).unwrap().restarts, 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_restart_limit_the_child_is_given_up() {
    let parent = Parent::default();
    let m = machine(parent.clone(), 2).await;
    let app: Point = "app".parse().unwrap();
    let child: Point = "app:fragile".parse().unwrap();
    m.spawn(app.clone(), "parent".into(), Body::empty())
        .await
        .unwrap();
    let lane = m
        .spawn(child.clone(), "worker".into(), Body::empty())
        .await
        .unwrap();
    for _ in 0..3 {
        lane.signal(("fail", Body::empty())).unwrap();
    }
    eventually("three notices", || parent.notices.lock().len() == 3).await;
    let notices = parent.notices.lock().clone();
    assert_eq!(
        notices
            .iter()
            .map(|n| (n.restarts, n.gave_up))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, false), (2, true)]
    );
    // A given-up particle leaves the Registry (it used to stay, Stopped).
    eventually("record gone", || m.record(&child).is_none()).await;
    // Requests to a given-up particle fail at once, typed: through a lane
    // kept from before, `Stopped`; by its Point, nothing lives there.
    let started = std::time::Instant::now();
    let err = lane
        .ask(("seen", Body::empty()))
        .within(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WaveError::Stopped {
            point: child.clone()
        }
    );
    let err = m.ask(&child, ("seen", Body::empty())).await.unwrap_err();
    assert_eq!(
        err,
        WaveError::NoSuchParticle {
            point: child.clone()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // The Point can be taken again.
    m.spawn(child.clone(), "worker".into(), Body::empty())
        .await
        .unwrap();
    assert_eq!(
        m.ask(&child, ("seen", Body::empty()))
            .await
            .unwrap()
            .as_u64(),
        Some(1)
    );
    m.shutdown().await;
}

/// Fails in `start` a given number of times (shared across incarnations).
struct FlakyStart {
    failures_left: Arc<Mutex<u32>>,
}

impl Particle for FlakyStart {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        let mut left = self.failures_left.lock();
        if *left > 0 {
            *left -= 1;
            return Err("not yet".into());
        }
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::from("up"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_start_is_restarted_then_reported() {
    let m = Machine::standalone()
        .stars(1)
        .kind(
            "flaky",
            FlakyStart {
                failures_left: Arc::new(Mutex::new(2)),
            },
        )
        .kind(
            "hopeless",
            FlakyStart {
                failures_left: Arc::new(Mutex::new(u32::MAX)),
            },
        )
        .restart_limit(3, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let flaky: Point = "flaky".parse().unwrap();
    m.spawn(flaky.clone(), "flaky".into(), Body::empty())
        .await
        .unwrap();
    assert_eq!(m.record(&flaky).unwrap().restarts, 2);
    assert_eq!(
        m.ask(&flaky, ("x", Body::empty()))
            .await
            .unwrap()
            .as_bytes(),
        b"up"
    );

    let err = m
        .spawn(
            "hopeless".parse().unwrap(),
            "hopeless".into(),
            Body::empty(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SpawnError::StartFailed { reason, .. } if reason == "not yet"),
        "{err:?}"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_backoff_delays_restarts_and_keeps_the_waves() {
    let parent = Parent::default();
    let m = Machine::standalone()
        .stars(1)
        .kind("parent", parent.clone())
        .kind("worker", Worker)
        .restart_limit(10, Duration::from_secs(60))
        .restart_backoff(hyperverse::supervisors::Backoff::new(
            Duration::from_millis(40),
            Duration::from_secs(1),
        ))
        .build()
        .await
        .unwrap();
    let lane = m
        .spawn("w".parse().unwrap(), "worker".into(), Body::empty())
        .await
        .unwrap();
    let t = std::time::Instant::now();
    // Two crashes in a row: 40 ms, then 80 ms before the restarts.
    lane.signal(("fail", Body::empty())).unwrap();
    lane.signal(("fail", Body::empty())).unwrap();
    lane.signal(("tick", Body::empty())).unwrap();
    let seen = lane
        .ask(("seen", Body::empty()))
        .within(None)
        .await
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(
        seen.as_u64(),
        Some(2),
        "the tick and this call, after two restarts"
    );
    assert!(
        waited >= Duration::from_millis(120),
        "backoff 40 + 80 ms, waited {waited:?}"
    );
    assert_eq!(m.record(&"w".parse().unwrap()).unwrap().restarts, 2);
    m.shutdown().await;
}
