//! Edges of bounded lanes, links, monitors and backoff, found by review:
//! each test failed before its fix.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, on, p};
use hyperverse::supervisors::Backoff;
use hyperverse::*;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// One semaphore gates `start` (if started with "gated") and the "block"
/// method; "block_crash" blocks then crashes; "link" links to the body's
/// Point; "crash" crashes. Records starts, down notices and exit signals.
#[derive(Clone)]
struct Probe {
    gate: Arc<Semaphore>,
    starts: Arc<AtomicUsize>,
    downs: Arc<Mutex<Vec<DownNotice>>>,
    monitor_in_start: Option<&'static str>,
}

impl Particle for Probe {
    type State = ();
    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<(), ParticleError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        if args.as_bytes() == b"gated" {
            self.gate.acquire().await?.forget();
        }
        if let Some(t) = self.monitor_in_start {
            if ctx.me() != &p(t) {
                ctx.monitor(&p(t));
            }
        }
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "block" => self.gate.acquire().await?.forget(),
            "block_crash" => {
                self.gate.acquire().await?.forget();
                return Err("own crash".into());
            }
            "link" => ctx.link(&w.body.as_str()?.parse()?)?,
            "crash" => return Err("boom".into()),
            _ => {}
        }
        Ok(Body::empty())
    }
    async fn down(&self, _: &Ctx, _: &mut (), n: DownNotice) -> Result<(), ParticleError> {
        self.downs.lock().push(n);
        Ok(())
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            gate: Arc::new(Semaphore::new(0)),
            starts: Arc::default(),
            downs: Arc::default(),
            monitor_in_start: None,
        }
    }
}

async fn machine(probe: &Probe) -> Machine {
    Machine::standalone()
        .stars(2)
        .kind("probe", probe.clone())
        .restart_limit(10, Duration::from_secs(60))
        .request_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap()
}

fn bounded(capacity: usize) -> SpawnOptions {
    SpawnOptions {
        lane: Some(LaneLimit {
            capacity,
            when_full: WhenFull::Wait,
            max_bytes: None,
        }),
        ..Default::default()
    }
}

/// A bounded (capacity 1, Wait) particle busy in "block", its lane full.
async fn full_lane(probe: &Probe, m: &Machine) -> ParticleRef {
    let lane = m
        .spawn_with(p("g"), "probe".into(), Body::empty(), bounded(1))
        .await
        .unwrap();
    lane.signal(("block", Body::empty())).unwrap();
    eventually("blocked", || lane.queued() == 0).await;
    lane.signal(("filler", Body::empty())).unwrap();
    let _ = probe;
    lane
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_covers_the_wait_for_room() {
    let probe = Probe::default();
    let m = machine(&probe).await;
    let lane = full_lane(&probe, &m).await;
    // 100 ms timeouts; give them 2 s.
    let via_lane = tokio::time::timeout(
        Duration::from_secs(2),
        lane.ask(("q", Body::empty()))
            .within(Duration::from_millis(100)),
    )
    .await;
    let via_ask = tokio::time::timeout(Duration::from_secs(2), m.ask(&p("g"), ("q", ""))).await;
    probe.gate.add_permits(100);
    assert!(
        matches!(via_lane, Ok(Err(WaveError::Timeout { .. })))
            && matches!(via_ask, Ok(Err(WaveError::Timeout { .. }))),
        "100 ms requests still pending after 2 s: lane={via_lane:?} ask={via_ask:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_waiting_for_room_are_released_when_the_particle_stops() {
    let probe = Probe::default();
    let m = machine(&probe).await;
    let lane = full_lane(&probe, &m).await;
    let waiting_signal = {
        let lane = lane.clone();
        tokio::spawn(async move { lane.signal_waiting(("w", Body::empty())).await })
    };
    let waiting_call = {
        let lane = lane.clone();
        tokio::spawn(async move {
            lane.ask(("c", Body::empty()))
                .within(None)
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopper = {
        let m = m.clone();
        tokio::spawn(async move { m.stop(&p("g")).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    probe.gate.add_permits(1); // lets "block" return; the particle then stops
    stopper.await.unwrap().unwrap();
    assert!(lane.has_ended());
    let s = tokio::time::timeout(Duration::from_secs(1), waiting_signal).await;
    let c = tokio::time::timeout(Duration::from_secs(1), waiting_call).await;
    assert!(
        s.is_ok() && c.is_ok(),
        "the particle has ended, yet signal_waiting pending={} call pending={}",
        s.is_err(),
        c.is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_capacity_lane_is_refused_at_spawn() {
    let probe = Probe::default();
    let m = machine(&probe).await;
    let spawned = m
        .spawn_with(p("z"), "probe".into(), Body::empty(), bounded(0))
        .await;
    if let Ok(lane) = spawned {
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            lane.signal_waiting(("x", Body::empty())),
        )
        .await;
        panic!("capacity 0 accepted at spawn; signal_waiting after 300 ms: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_signal_for_a_crashed_incarnation_spares_the_next_one() {
    let probe = Probe::default();
    let m = machine(&probe).await;
    m.spawn_with(p("a"), "probe".into(), Body::empty(), on(0))
        .await
        .unwrap();
    m.spawn_with(p("b"), "probe".into(), Body::empty(), on(1))
        .await
        .unwrap();
    m.ask(&p("a"), ("link", "b")).await.unwrap();
    // b is busy (and will crash on its own); a crashes meanwhile, so the
    // exit signal waits in b's lane behind b's own crash.
    m.signal(&p("b"), ("block_crash", Body::empty())).unwrap();
    eventually("b busy", || m.record(&p("b")).is_some()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    m.signal(&p("a"), ("crash", Body::empty())).unwrap();
    eventually("a restarted", || m.record(&p("a")).unwrap().restarts == 1).await;
    probe.gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // b's incarnation 1 crashed once (its own crash; the link belonged to
    // it). Its incarnation 2 was never linked to a, yet it gets a's signal.
    assert_eq!(
        m.record(&p("b")).unwrap().restarts,
        1,
        "the restarted b was crashed by an exit signal meant for its previous incarnation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_link_does_nothing() {
    let probe = Probe::default();
    let m = machine(&probe).await;
    m.spawn(p("s"), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.ask(&p("s"), ("link", "s")).await.unwrap(); // Erlang: link(self()) is a no-op
    m.signal(&p("s"), ("crash", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        m.record(&p("s")).unwrap().restarts,
        1,
        "one crash, one restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_belong_to_the_watchers_incarnation() {
    let probe = Probe {
        monitor_in_start: Some("t"),
        ..Default::default()
    };
    let m = machine(&probe).await;
    m.spawn(p("t"), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.spawn(p("w"), "probe".into(), Body::empty())
        .await
        .unwrap();
    for n in 1..=2 {
        m.signal(&p("w"), ("crash", Body::empty())).unwrap();
        eventually("w restarted", || m.record(&p("w")).unwrap().restarts == n).await;
    }
    m.stop(&p("t")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let downs = probe.downs.lock().clone();
    assert_eq!(
        downs.len(),
        1,
        "the live incarnation set one monitor; monitors of dead incarnations fired too: {downs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_backoff_starts_nothing_more() {
    let probe = Probe::default();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe.clone())
        .restart_limit(10, Duration::from_secs(60))
        .restart_backoff(Backoff::new(
            Duration::from_secs(30),
            Duration::from_secs(30),
        ))
        .build()
        .await
        .unwrap();
    m.spawn(p("b"), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.signal(&p("b"), ("crash", Body::empty())).unwrap();
    eventually("backing off", || m.record(&p("b")).unwrap().restarts == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(2), m.stop(&p("b")))
        .await
        .expect("stop cuts the backoff short")
        .unwrap();
    assert_eq!(
        probe.starts.load(Ordering::SeqCst),
        1,
        "stopped while backing off, yet `start` ran again (against the sick dependency)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_jitter_does_not_kill_the_star() {
    let probe = Probe::default();
    let m = Machine::standalone()
        .stars(1)
        .kind("probe", probe.clone())
        .restart_limit(10, Duration::from_secs(60))
        // `jitter` says "clamped to 0..=1"; NaN.clamp(0, 1) is NaN.
        .restart_backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).jitter(f64::NAN),
        )
        .build()
        .await
        .unwrap();
    m.spawn(p("n"), "probe".into(), Body::empty())
        .await
        .unwrap();
    m.signal(&p("n"), ("crash", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = m.record(&p("n")).unwrap();
    assert_eq!(
        (r.restarts, r.status),
        (1, Status::Ready),
        "one crash within a 10/60s limit should be restarted"
    );
}
