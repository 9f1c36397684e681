//! Supervision against hostile or careless user code, and growth that must
//! not happen (issue 10). Each test names what it proves; each failed
//! before its fix. Hangs are turned into failures by timeouts of a few
//! seconds; no assertion is on how long something took.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, p};
use hyperverse::supervisors::Backoff;
use hyperverse::*;
use parking_lot::Mutex;
use tokio::time::timeout;

const SECS5: Duration = Duration::from_secs(5);

/// Answers "ping", crashes on "crash", counts what it handled.
#[derive(Default)]
struct Probe {
    handled: AtomicUsize,
    downs: AtomicUsize,
}

struct P(Arc<Probe>);

impl Particle for P {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "crash" => Err("asked to crash".into()),
            "exit_normal" => Err(ExitReason::Shutdown.into()),
            "stop" => {
                ctx.stop();
                Ok(Body::empty())
            }
            _ => {
                self.0.handled.fetch_add(1, Ordering::SeqCst);
                Ok(w.body)
            }
        }
    }
    async fn down(&self, _: &Ctx, _: &mut (), _: DownNotice) -> Result<(), ParticleError> {
        self.0.downs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn probe() -> (P, Arc<Probe>) {
    let shared = Arc::new(Probe::default());
    (P(shared.clone()), shared)
}

fn limit(max_restarts: u32) -> SpawnOptions {
    SpawnOptions {
        restart_limit: Some(RestartLimit {
            max_restarts,
            period: Duration::from_secs(60),
            backoff: None,
        }),
        ..Default::default()
    }
}

/// Records the root supervisor's events (Stars failing and restarted).
fn star_watch(log: &Arc<Mutex<Vec<String>>>) -> impl Fn(&Event) + Send + Sync + 'static {
    let log = log.clone();
    move |e| {
        if let Event::Supervisor { supervisor, event } = e {
            if supervisor.is_root() {
                log.lock().push(event.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// User callbacks never unwind into the runtime.

/// An observer that panics on every crash event ran inside the Star's
/// crash handling: the Star died, the report was resent to its successor,
/// which died too, and after 11 the Machine stopped every Star.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_observer_does_not_take_down_a_star() {
    let stars = Arc::new(Mutex::new(Vec::new()));
    let (particle, seen) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .observer(star_watch(&stars))
        .observer(|e| {
            if matches!(e, Event::Crashed(_) | Event::Restarted { .. }) {
                panic!("observer bug");
            }
        })
        .build()
        .await
        .unwrap();
    let lane = m
        .spawn_with(p("a"), "p".into(), Body::empty(), limit(100))
        .await
        .unwrap();
    for i in 0..20 {
        lane.signal(("crash", Body::empty())).unwrap();
        let reply = timeout(SECS5, m.ask(&p("a"), ("ping", Body::from_u64(i))))
            .await
            .expect("the particle answers after each restart");
        assert_eq!(reply.unwrap().as_u64(), Some(i));
    }
    assert_eq!(lane.restarts(), 20);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 20);
    assert_eq!(m.star_stats()[0].restarts, 20);
    assert!(
        !stars.lock().iter().any(|e| e.starts_with("exited")),
        "no Star failed: {:?}",
        stars.lock()
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A panic in an observer on `Stopped` came before the particle's end was
/// recorded: `Machine::stop` waited for it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_observer_on_stopped_does_not_hang_machine_stop() {
    let (particle, _) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .observer(|e| {
            if matches!(e, Event::Stopped { .. }) {
                panic!("observer bug on stopped");
            }
        })
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        m.spawn(p("a"), "p".into(), Body::empty()).await.unwrap();
        timeout(SECS5, m.stop(&p("a")))
            .await
            .expect("stop returns")
            .unwrap();
        assert!(m.record(&p("a")).is_none());
    }
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A panic in an observer on `Spawned` unwound out of the spawn after the
/// particle was registered and before it was launched: a zombie Point that
/// refused every later spawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_observer_on_spawned_leaves_no_zombie_point() {
    let (particle, _) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .observer(|e| {
            if matches!(e, Event::Spawned { .. }) {
                panic!("observer bug on spawned");
            }
        })
        .build()
        .await
        .unwrap();
    for i in 0..3 {
        let lane = m.spawn(p("a"), "p".into(), Body::empty()).await.unwrap();
        let reply = m.ask(&p("a"), ("ping", Body::from_u64(i))).await.unwrap();
        assert_eq!(reply.as_u64(), Some(i));
        assert_eq!(lane.status(), Status::Ready);
        timeout(SECS5, m.stop(&p("a"))).await.unwrap().unwrap();
    }
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// `Backoff::new(Duration::MAX, Duration::MAX)` passed `check()`, then
/// overflowed an `Instant` in the Star's `next_delay`: a panicking Star.
/// Now it is refused wherever it is given, `next_delay` saturates for a
/// policy that was never validated, and a backoff at the largest allowed
/// delay restarts particles with the Stars alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_backoff_is_refused_or_saturated_and_stars_survive() {
    let huge = Backoff::new(Duration::MAX, Duration::MAX);
    // Refused by the builder...
    let (particle, _) = probe();
    let err = Machine::standalone()
        .kind("p", particle)
        .restart_backoff(huge)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, MachineError::Backoff(_)), "{err}");
    // ...by a spawn...
    let stars = Arc::new(Mutex::new(Vec::new()));
    let (particle, _) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .observer(star_watch(&stars))
        .build()
        .await
        .unwrap();
    let opts = SpawnOptions {
        restart_limit: Some(RestartLimit {
            backoff: Some(Box::new(huge)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = m
        .spawn_with(p("a"), "p".into(), Body::empty(), opts)
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::BadRestartLimit { .. }), "{err}");
    // ...and saturated where it was never checked.
    let mut state = huge.jitter(1.0).start();
    let now = std::time::Instant::now();
    assert_eq!(state.next_delay(now, u64::MAX), Backoff::MAX_DELAY);
    assert_eq!(state.next_delay(now, u64::MAX), Backoff::MAX_DELAY);
    // The largest allowed cap works, and the Star lives.
    let capped = Backoff::new(Duration::from_millis(1), Backoff::MAX_DELAY);
    let opts = SpawnOptions {
        restart_limit: Some(RestartLimit {
            max_restarts: 100,
            period: Duration::from_secs(60),
            backoff: Some(Box::new(capped)),
        }),
        ..Default::default()
    };
    let lane = m
        .spawn_with(p("a"), "p".into(), Body::empty(), opts)
        .await
        .unwrap();
    for _ in 0..3 {
        lane.signal(("crash", Body::empty())).unwrap();
    }
    let reply = timeout(SECS5, m.ask(&p("a"), ("ping", Body::from_u64(7))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.as_u64(), Some(7));
    assert_eq!(lane.restarts(), 3);
    assert!(
        !stars.lock().iter().any(|e| e.starts_with("exited")),
        "no Star failed: {:?}",
        stars.lock()
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------------
// An ended particle touches only its own children.

/// Spawns a leaf child named after its own spawn sequence (so that a new
/// incarnation's child never meets an old one's at its Point).
struct Node;
impl Particle for Node {
    type State = ();
    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<(), ParticleError> {
        let seq = ctx.machine().particle(ctx.me())?.spawn_seq();
        ctx.spawn_child(&format!("g{seq}"), &Kind::new("leaf"), Body::empty())?;
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "crash" => Err("asked to crash".into()),
            _ => Ok(w.body),
        }
    }
}

/// Respawns its child `c` at once when the child is given up.
struct Respawner;
fn fragile() -> SpawnOptions {
    SpawnOptions {
        restart_limit: Some(RestartLimit {
            max_restarts: 0,
            ..Default::default()
        }),
        ..Default::default()
    }
}
impl Particle for Respawner {
    type State = ();
    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<(), ParticleError> {
        ctx.spawn_child_with("c", &Kind::new("node"), Body::empty(), fragile())?;
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        Ok(w.body)
    }
    async fn crash_notice(
        &self,
        ctx: &Ctx,
        _: &mut (),
        n: CrashNotice,
    ) -> Result<(), ParticleError> {
        if n.gave_up {
            ctx.spawn_child_with("c", &Kind::new("node"), Body::empty(), fragile())?;
        }
        Ok(())
    }
}

/// The end of a given-up particle stopped its descendants by Point
/// (`registry.cells_under(point)`): when its parent respawned it at once,
/// the old task's end stopped the new particle (14 rounds in 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_up_particle_respawned_at_once_is_never_stopped_by_the_old_end() {
    let (leaf, _) = probe();
    let m = Machine::standalone()
        .stars(2)
        .kind("leaf", leaf)
        .kind("node", Node)
        .kind("respawner", Respawner)
        .build()
        .await
        .unwrap();
    m.spawn(p("r"), "respawner".into(), Body::empty())
        .await
        .unwrap();
    let c = p("r:c");
    eventually("c", || m.particle(&c).is_ok()).await;
    for round in 0..200 {
        let old = m.particle(&c).unwrap();
        let old_kids = old.spawn_seq();
        old.signal(("crash", Body::empty())).unwrap();
        eventually("the old one ended", || old.has_ended()).await;
        eventually("a new one", || {
            m.particle(&c)
                .is_ok_and(|l| l.spawn_seq() != old_kids && l.status() == Status::Ready)
        })
        .await;
        let new = m.particle(&c).unwrap();
        // Settled: the old one's grandchild is gone, the new one's lives.
        eventually("the old grandchild gone", || {
            m.record(&p(&format!("r:c:g{old_kids}"))).is_none()
        })
        .await;
        assert!(!new.has_ended(), "round {round}: the new c was stopped");
        let reply = timeout(SECS5, m.ask(&c, ("ping", Body::from_u64(round))))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(reply.as_u64(), Some(round));
        // The new grandchild lives: spawned without waiting by c's start,
        // it may still be starting when c answers.
        let g = p(&format!("r:c:g{}", new.spawn_seq()));
        eventually("the new grandchild ready", || {
            m.record(&g).is_some_and(|r| r.status == Status::Ready)
        })
        .await;
        assert_eq!(m.record(&c).unwrap().children, [g]);
    }
    // r, c and its grandchild: nothing else is left.
    assert_eq!(m.registry().len(), 3);
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A given-up particle's record stayed in the Registry (status Stopped),
/// with its cell, until its Point was stopped or taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_up_particles_leave_the_registry() {
    let (particle, _) = probe();
    let m = Machine::standalone()
        .stars(2)
        .kind("p", particle)
        .build()
        .await
        .unwrap();
    m.spawn(p("app"), "p".into(), Body::empty()).await.unwrap();
    let mut lanes = Vec::new();
    for i in 0..100 {
        let at = p(&format!("app:w{i}"));
        lanes.push(
            m.spawn_with(at, "p".into(), Body::empty(), limit(0))
                .await
                .unwrap(),
        );
    }
    assert_eq!(m.registry().len(), 101);
    for lane in &lanes {
        lane.signal(("crash", Body::empty())).unwrap();
    }
    eventually("all given up", || lanes.iter().all(|l| l.has_ended())).await;
    assert_eq!(
        m.registry().len(),
        1,
        "{:?}",
        m.registry().subtree(&Point::root())
    );
    assert!(m.record(&p("app")).unwrap().children.is_empty());
    assert!(m.record(&p("app:w0")).is_none());
    // The Points are free.
    m.spawn(p("app:w0"), "p".into(), Body::empty())
        .await
        .unwrap();
    // A top-level one too.
    let top = m
        .spawn_with(p("top"), "p".into(), Body::empty(), limit(0))
        .await
        .unwrap();
    top.signal(("crash", Body::empty())).unwrap();
    eventually("top gone", || m.record(&p("top")).is_none()).await;
    m.spawn(p("top"), "p".into(), Body::empty()).await.unwrap();
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------------
// A restart's cost does not grow with the queue.

/// On "ask_parent", asks its parent and notes how that went.
struct Asker(Arc<Mutex<Vec<String>>>);
impl Particle for Asker {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if &*w.method == "ask_parent" {
            let parent = ctx.parent().unwrap().clone();
            let r = ctx
                .ask(&parent, ("ping", Body::empty()))
                .within(Duration::from_secs(30))
                .await;
            self.0.lock().push(match r {
                Ok(_) => "answered".to_string(),
                Err(e) => e.to_string(),
            });
        }
        Ok(Body::empty())
    }
}

/// After every crash the whole queue was split and filtered twice under the
/// lane's lock (refusing descendants' requests, dropping old notices): 200
/// restarts took 0.9 ms with an empty lane and 9 s with 400,000 waves
/// queued, and senders waited on the lock meanwhile. Now old notices are
/// dropped as they are taken (by epoch) and only the requests from
/// descendants are answered at a crash: the lane counts every letter crash
/// handling looks at, and 200 restarts with 400,000 waves queued look at
/// just the one request a child had waiting. Every wave is still handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_costs_the_same_with_400k_waves_queued() {
    const WAVES: u64 = 400_000;
    const RESTARTS: u32 = 200;
    let (particle, seen) = probe();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .kind("asker", Asker(asked.clone()))
        .build()
        .await
        .unwrap();
    let a = m
        .spawn_with(p("a"), "p".into(), Body::empty(), limit(10_000))
        .await
        .unwrap();
    m.inject(&p("a"), Fault::Pause).unwrap();
    for i in 0..WAVES {
        a.signal(("add", Body::from_u64(i))).unwrap();
    }
    // A child waits on its parent: its request is queued behind them all.
    m.spawn(p("a:c"), "asker".into(), Body::empty())
        .await
        .unwrap();
    m.signal(&p("a:c"), ("ask_parent", Body::empty())).unwrap();
    eventually("the child's request queued", || {
        a.queued() as u64 == WAVES + 1
    })
    .await;
    assert_eq!(a.letters_scanned(), 0);
    for n in 1..=RESTARTS {
        m.inject(&p("a"), Fault::Crash(format!("crash {n}")))
            .unwrap();
        eventually("restarted", || {
            a.restarts() == n && a.status() == Status::Ready
        })
        .await;
        if n == 1 {
            // The child's request was answered at once, so it could stop.
            eventually("the child answered", || !asked.lock().is_empty()).await;
            assert_eq!(*asked.lock(), ["particle a has stopped"]);
            eventually("the child stopped", || m.record(&p("a:c")).is_none()).await;
        }
    }
    // 200 restarts looked at one letter: the child's request.
    assert_eq!(a.letters_scanned(), 1);
    assert_eq!(a.queued() as u64, WAVES + 1);
    // Nothing was lost: every wave is handled, in order.
    m.inject(&p("a"), Fault::Resume).unwrap();
    eventually("all handled", || {
        seen.handled.load(Ordering::SeqCst) as u64 == WAVES
    })
    .await;
    let reply = m.ask(&p("a"), ("ping", Body::from_u64(1))).await.unwrap();
    assert_eq!(reply.as_u64(), Some(1));
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------------
// A supervisor particle retries by a message to itself, and answers.

/// Its `start` fails while `failing` is set; counts its starts.
#[derive(Default)]
struct Flaky {
    failing: AtomicBool,
    starts: AtomicUsize,
}
struct F(Arc<Flaky>);
impl Particle for F {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        self.0.starts.fetch_add(1, Ordering::SeqCst);
        if self.0.failing.load(Ordering::SeqCst) {
            return Err("cannot start now".into());
        }
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "crash" => Err("asked to crash".into()),
            _ => Ok(w.body),
        }
    }
}

fn flaky_sup(backoff: Option<Backoff>) -> SupervisorSpec {
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(100_000, Duration::from_secs(60)),
        vec![ChildSpec::worker(
            "w",
            ChildStart::kind("flaky", Body::empty()),
        )],
    );
    match backoff {
        Some(b) => spec.backoff(b),
        None => spec,
    }
}

async fn flaky_machine(sups: Vec<(&str, SupervisorSpec)>) -> (Machine, Arc<Flaky>) {
    let flaky = Arc::new(Flaky::default());
    let mut b = Machine::standalone()
        .stars(2)
        .kind("flaky", F(flaky.clone()))
        .request_timeout(Duration::from_secs(2));
    for (kind, spec) in sups {
        b = b.supervisor(kind, spec);
    }
    (b.build().await.unwrap(), flaky)
}

/// The child's state as `which_children` reports it: (running, restarting).
async fn child_w(sup: &SupervisorRef) -> (bool, bool) {
    let kids = timeout(SECS5, sup.which_children())
        .await
        .expect("no hang")
        .expect("the supervisor answers");
    (kids[0].handle.is_some(), kids[0].restarting)
}

/// A supervisor particle retried a failing child start in a loop inside
/// the handling of the exit report: it answered nothing meanwhile
/// (`which_children` timed out), and the `restarting` state it keeps could
/// never be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_retrying_a_failing_child_still_answers_which_children() {
    // Retried at once (no backoff): between tries, calls are answered.
    let (m, flaky) = flaky_machine(vec![("s", flaky_sup(None))]).await;
    m.spawn(p("sup"), "s".into(), Body::empty()).await.unwrap();
    let sup = m.supervisor(&p("sup"));
    assert_eq!(child_w(&sup).await, (true, false));
    flaky.failing.store(true, Ordering::SeqCst);
    m.signal(&p("sup:w"), ("crash", Body::empty())).unwrap();
    // Answered while it retries: it shows the child restarting.
    let mut seen_restarting = false;
    for _ in 0..1000 {
        if child_w(&sup).await == (false, true) {
            seen_restarting = true;
            break;
        }
    }
    assert!(seen_restarting);
    // Many calls answered while it keeps trying.
    for _ in 0..20 {
        assert_eq!(child_w(&sup).await, (false, true));
        assert_eq!(sup.count_children().await.unwrap().active, 0);
    }
    flaky.failing.store(false, Ordering::SeqCst);
    eventually("w restarted", || {
        m.particle(&p("sup:w"))
            .is_ok_and(|l| l.status() == Status::Ready)
    })
    .await;
    assert_eq!(child_w(&sup).await, (true, false));
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// Nothing could stop a retry loop (OTP's `terminate_child` of a
/// restarting child cancels its retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_child_breaks_a_retry_loop() {
    let (m, flaky) = flaky_machine(vec![("s", flaky_sup(None))]).await;
    m.spawn(p("sup"), "s".into(), Body::empty()).await.unwrap();
    let sup = m.supervisor(&p("sup"));
    flaky.failing.store(true, Ordering::SeqCst);
    m.signal(&p("sup:w"), ("crash", Body::empty())).unwrap();
    eventually("retrying", || flaky.starts.load(Ordering::SeqCst) > 5).await;
    // OTP: restart_child and delete_child of a restarting child refuse.
    assert_eq!(
        sup.restart_child("w").await.unwrap_err(),
        SupervisorError::Refused(SupError::Restarting { id: "w".into() })
    );
    assert_eq!(
        sup.delete_child("w").await.unwrap_err(),
        SupervisorError::Refused(SupError::Restarting { id: "w".into() })
    );
    timeout(SECS5, sup.terminate_child("w"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child_w(&sup).await, (false, false));
    // No attempt after the retry in flight (if any): the loop is broken.
    let after = flaky.starts.load(Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(child_w(&sup).await, (false, false));
    }
    assert!(flaky.starts.load(Ordering::SeqCst) <= after + 1);
    assert!(m.record(&p("sup:w")).is_none());
    // It is a stopped child now: restart_child starts it.
    flaky.failing.store(false, Ordering::SeqCst);
    sup.restart_child("w").await.unwrap();
    assert_eq!(child_w(&sup).await, (true, false));
    assert_eq!(
        m.ask(&p("sup:w"), ("ping", Body::from_u64(3)))
            .await
            .unwrap()
            .as_u64(),
        Some(3)
    );
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// Only the Star's restarts backed off; a supervisor particle restarted a
/// crashing child at once, every time. Its spec's backoff (or the
/// Machine's `restart_backoff`) now delays each restart, while the
/// supervisor keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_particle_restarts_back_off() {
    let hour = Duration::from_secs(3600);
    let short = Backoff::new(Duration::from_millis(20), Duration::from_millis(20));
    let (m, flaky) = flaky_machine(vec![
        ("slow", flaky_sup(Some(Backoff::new(hour, hour)))),
        ("quick", flaky_sup(Some(short))),
    ])
    .await;
    m.spawn(p("slow"), "slow".into(), Body::empty())
        .await
        .unwrap();
    let slow = m.supervisor(&p("slow"));
    let starts = flaky.starts.load(Ordering::SeqCst);
    m.signal(&p("slow:w"), ("crash", Body::empty())).unwrap();
    eventually("w restarting", || {
        m.particle(&p("slow:w"))
            .is_ok_and(|l| l.status() == Status::Restarting)
    })
    .await;
    // An hour's backoff: it waits, restarting, answering all along.
    for _ in 0..20 {
        assert_eq!(child_w(&slow).await, (false, true));
    }
    assert_eq!(flaky.starts.load(Ordering::SeqCst), starts);
    // A short one: it restarts after its delay.
    m.spawn(p("quick"), "quick".into(), Body::empty())
        .await
        .unwrap();
    let quick = m.supervisor(&p("quick"));
    let lane = m.particle(&p("quick:w")).unwrap();
    for n in 1..=3 {
        lane.signal(("crash", Body::empty())).unwrap();
        eventually("quick:w restarted", || {
            lane.restarts() == n && lane.status() == Status::Ready
        })
        .await;
    }
    assert_eq!(child_w(&quick).await, (true, false));
    // A delayed restart is cancelled by terminate_child.
    slow.terminate_child("w").await.unwrap();
    assert_eq!(child_w(&slow).await, (false, false));
    timeout(SECS5, m.shutdown()).await.unwrap();

    // The Machine's restart_backoff applies when the spec has none.
    let flaky = Arc::new(Flaky::default());
    let m = Machine::standalone()
        .kind("flaky", F(flaky.clone()))
        .supervisor("s", flaky_sup(None))
        .restart_backoff(Backoff::new(hour, hour))
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), "s".into(), Body::empty()).await.unwrap();
    let sup = m.supervisor(&p("sup"));
    m.signal(&p("sup:w"), ("crash", Body::empty())).unwrap();
    eventually("w restarting", || {
        m.particle(&p("sup:w"))
            .is_ok_and(|l| l.status() == Status::Restarting)
    })
    .await;
    assert_eq!(child_w(&sup).await, (false, true));
    timeout(SECS5, m.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Restart types for top-level particles; specs checked at build.

fn crashing_child_sup(max_restarts: u32) -> SupervisorSpec {
    SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(max_restarts, Duration::from_secs(60)),
        vec![ChildSpec::worker("w", ChildStart::kind("p", Body::empty()))],
    )
}

/// A top-level supervisor that gives up exits with reason shutdown (its
/// escalation); its Star restarted it anyway, 10 times in 5 s by default.
/// A transient top-level particle is not restarted after a normal exit,
/// and a temporary one never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_level_transient_supervisor_that_escalates_is_not_restarted() {
    let restarted = Arc::new(Mutex::new(Vec::new()));
    let seen = restarted.clone();
    let (particle, _) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .supervisor("sup", crashing_child_sup(1))
        .observer(move |e| {
            if let Event::Restarted { point, .. } = e {
                seen.lock().push(point.to_string());
            }
        })
        .build()
        .await
        .unwrap();
    let transient = SpawnOptions {
        restart: Restart::Transient,
        ..Default::default()
    };
    let sup = m
        .spawn_with(p("top"), "sup".into(), Body::empty(), transient.clone())
        .await
        .unwrap();
    assert_eq!(sup.restart_type(), Restart::Transient);
    // Two crashes of its child: past its intensity of 1, it escalates.
    let mut events = m.events();
    m.signal(&p("top:w"), ("crash", Body::empty())).unwrap();
    eventually("w restarted", || {
        m.particle(&p("top:w")).is_ok_and(|l| l.restarts() == 1)
    })
    .await;
    m.signal(&p("top:w"), ("crash", Body::empty())).unwrap();
    eventually("the supervisor gone", || m.record(&p("top")).is_none()).await;
    let mut crashed = None;
    while let Ok(Ok(e)) = timeout(Duration::from_millis(500), events.recv()).await {
        if let Event::Crashed(n) = e {
            if n.child == p("top") {
                crashed = Some(n);
            }
        }
    }
    let notice = crashed.expect("the Star saw the supervisor exit");
    assert!(notice.gave_up, "not restarted: {notice:?}");
    assert_eq!(notice.reason, "shutdown");
    assert!(
        !restarted.lock().contains(&"top".to_string()),
        "restarted: {:?}",
        restarted.lock()
    );
    // A permanent one is restarted after the same exit (the old default).
    m.spawn(p("perm"), "sup".into(), Body::empty())
        .await
        .unwrap();
    m.signal(&p("perm:w"), ("crash", Body::empty())).unwrap();
    eventually("perm:w restarted", || {
        m.particle(&p("perm:w")).is_ok_and(|l| l.restarts() == 1)
    })
    .await;
    m.signal(&p("perm:w"), ("crash", Body::empty())).unwrap();
    eventually("perm restarted", || {
        restarted.lock().contains(&"perm".to_string())
    })
    .await;
    // Transient particles are restarted after a crash, not a normal exit.
    let t = m
        .spawn_with(p("t"), "p".into(), Body::empty(), transient)
        .await
        .unwrap();
    t.signal(("crash", Body::empty())).unwrap();
    eventually("t restarted", || t.restarts() == 1).await;
    t.signal(("exit_normal", Body::empty())).unwrap();
    eventually("t gone", || m.record(&p("t")).is_none()).await;
    assert_eq!(t.restarts(), 1);
    // Temporary ones never.
    let temporary = SpawnOptions {
        restart: Restart::Temporary,
        ..Default::default()
    };
    let tmp = m
        .spawn_with(p("tmp"), "p".into(), Body::empty(), temporary)
        .await
        .unwrap();
    tmp.signal(("crash", Body::empty())).unwrap();
    eventually("tmp gone", || m.record(&p("tmp")).is_none()).await;
    assert_eq!(tmp.restarts(), 0);
    // Their Points are free again.
    m.spawn(p("t"), "p".into(), Body::empty()).await.unwrap();
    m.spawn(p("tmp"), "p".into(), Body::empty()).await.unwrap();
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A supervisor Kind with a bad spec was accepted by the builder and failed
/// at the first spawn of it; it is now an error from `build`.
#[tokio::test]
async fn a_bad_supervisor_spec_fails_build() {
    let (particle, _) = probe();
    let twice = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne),
        vec![
            ChildSpec::worker("a", ChildStart::kind("p", Body::empty())),
            ChildSpec::worker("a", ChildStart::kind("p", Body::empty())),
        ],
    );
    let err = Machine::standalone()
        .kind("p", particle)
        .supervisor("good", crashing_child_sup(1))
        .supervisor("twice", twice)
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MachineError::BadSupervisor {
            kind: Kind::new("twice"),
            error: SupError::Spec(supervisors::SpecError::DuplicateId { id: "a".into() }),
        }
    );
    let (particle, _) = probe();
    let bad_backoff = crashing_child_sup(1).backoff(Backoff::new(Duration::MAX, Duration::MAX));
    let err = Machine::standalone()
        .kind("p", particle)
        .supervisor("s", bad_backoff)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            MachineError::BadSupervisor {
                error: SupError::Backoff(_),
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Growth that never ends.

/// Each monitor/demonitor cycle left an entry in the watcher's list of
/// monitors it set (27 B a cycle, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_demonitor_cycles_do_not_grow_the_watcher() {
    let (particle, _) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .build()
        .await
        .unwrap();
    let watcher = m.spawn(p("w"), "p".into(), Body::empty()).await.unwrap();
    let target = m.spawn(p("t"), "p".into(), Body::empty()).await.unwrap();
    for _ in 0..10_000 {
        let r = m.monitor(&p("w"), &p("t")).unwrap();
        assert!(m.demonitor(&r));
    }
    assert_eq!(watcher.watch_len(), 0);
    assert_eq!(target.watch_len(), 0);
    // One left set is one entry on each side.
    let r = m.monitor(&p("w"), &p("t")).unwrap();
    assert_eq!(watcher.watch_len(), 1);
    assert_eq!(target.watch_len(), 1);
    assert!(m.demonitor(&r));
    assert!(!m.demonitor(&r), "only once");
    assert_eq!(watcher.watch_len(), 0);
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A watcher kept an entry (and, through its `Weak`, the whole cell
/// allocation, 344 B) for every target it monitored that has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_targets_are_pruned_from_watchers() {
    let (particle, seen) = probe();
    let m = Machine::standalone()
        .stars(1)
        .kind("p", particle)
        .build()
        .await
        .unwrap();
    let watcher = m.spawn(p("w"), "p".into(), Body::empty()).await.unwrap();
    const N: usize = 1_000;
    for i in 0..N {
        let at = p(&format!("t{i}"));
        let t = m
            .spawn(at.clone(), "p".into(), Body::empty())
            .await
            .unwrap();
        m.monitor(&p("w"), &at).unwrap();
        m.stop(&at).await.unwrap();
        assert!(t.has_ended());
    }
    eventually("every down notice", || {
        seen.downs.load(Ordering::SeqCst) == N
    })
    .await;
    assert_eq!(watcher.watch_len(), 0);
    timeout(SECS5, m.shutdown()).await.unwrap();
}

/// A hook whose code panics before it even returns its future (a
/// hand-written `fn down(..) -> impl Future`, not an `async fn`) is caught
/// as any handler's panic: that particle crashes and restarts, the Machine
/// and its neighbours go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_panicking_before_its_future_crashes_only_its_particle() {
    struct Eager;
    impl Particle for Eager {
        type State = ();
        async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
            Ok(())
        }
        async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
            Ok(w.body)
        }
        #[allow(clippy::manual_async_fn)]
        fn down(
            &self,
            _: &Ctx,
            _: &mut (),
            _: DownNotice,
        ) -> impl std::future::Future<Output = Result<(), ParticleError>> + Send {
            if true {
                panic!("down hook panicked before its future");
            }
            async { Ok(()) }
        }
    }
    let m = Machine::standalone()
        .stars(1)
        .kind("eager", Eager)
        .build()
        .await
        .unwrap();
    let watcher = m
        .spawn(p("w"), "eager".into(), Body::empty())
        .await
        .unwrap();
    let neighbour = m
        .spawn(p("n"), "eager".into(), Body::empty())
        .await
        .unwrap();
    m.spawn(p("t"), "eager".into(), Body::empty())
        .await
        .unwrap();
    m.monitor(&p("w"), &p("t")).unwrap();
    m.stop(&p("t")).await.unwrap();
    eventually("the watcher crashed in its down hook and restarted", || {
        m.record(&p("w"))
            .is_some_and(|r| r.restarts == 1 && r.status == Status::Ready)
    })
    .await;
    let echo = timeout(SECS5, watcher.ask(("ping", Body::from_u64(7))).within(None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo.as_u64(), Some(7));
    let echo = timeout(
        SECS5,
        neighbour.ask(("ping", Body::from_u64(8))).within(None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(echo.as_u64(), Some(8));
    assert_eq!(m.record(&p("n")).unwrap().restarts, 0);
    timeout(SECS5, m.shutdown()).await.unwrap();
}
