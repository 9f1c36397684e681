//! OTP's supervisor semantics on real particles, following OTP's own
//! `supervisor_SUITE` case by case (its case names are in each test's doc).
//!
//! Every test asserts the order of what happened from the recorded event
//! log: the supervisor's own events (`Event::Supervisor`) interleaved with
//! what the workers saw (their `start` and `stop` hooks), not final counts.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, p};
use hyperverse::*;
use parking_lot::Mutex;

/// What the workers do, shared by the test and every worker particle.
#[derive(Default)]
struct Control {
    /// Things in order: "start a", "stop a", and the supervisor's events.
    log: Mutex<Vec<String>>,
    /// Workers (by name) whose `start` fails.
    fail_start: Mutex<HashSet<String>>,
    /// Workers (by name) whose `stop` hook takes this long.
    slow_stop: Mutex<HashMap<String, Duration>>,
}

impl Control {
    fn note(&self, what: String) {
        self.log.lock().push(what);
    }
}

/// A worker: counts "add" waves, answers "get", and exits as asked.
struct Worker(Arc<Control>);

impl Particle for Worker {
    type State = u64;

    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        let name = ctx.me().name().to_string();
        if self.0.fail_start.lock().contains(&name) {
            self.0.note(format!("start {name} failed"));
            return Err(format!("{name} refuses to start").into());
        }
        self.0.note(format!("start {name}"));
        Ok(0)
    }

    async fn handle(&self, ctx: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "add" => *n += 1,
            "get" => return Ok(Body::from_u64(*n)),
            "crash" => return Err("boom".into()),
            "exit_normal" => ctx.stop(),
            "exit_shutdown" => return Err(ExitReason::Shutdown.into()),
            _ => {}
        }
        Ok(Body::empty())
    }

    async fn stop(&self, ctx: &Ctx, _: u64) {
        let name = ctx.me().name().to_string();
        let delay = self.0.slow_stop.lock().get(&name).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.0.note(format!("stop {name}"));
    }
}

/// A Machine with the worker Kind and the given supervisors; an observer
/// writes the supervisors' events into the workers' log as they happen.
struct Rig {
    m: Machine,
    ctl: Arc<Control>,
}

impl Rig {
    async fn new(sups: Vec<(&str, SupervisorSpec)>) -> Rig {
        let ctl = Arc::new(Control::default());
        let seen = ctl.clone();
        let mut b = Machine::standalone()
            .stars(2)
            .kind("w", Worker(ctl.clone()))
            .shutdown_timeout(Duration::from_secs(2))
            .observer(move |e| {
                if let Event::Supervisor { supervisor, event } = e {
                    seen.note(format!("{supervisor}: {}", event));
                }
            });
        for (kind, spec) in sups {
            b = b.supervisor(kind, spec);
        }
        let m = b.build().await.unwrap();
        // The Machine's root supervisor started its Stars.
        let stars = std::mem::take(&mut *ctl.log.lock());
        assert_eq!(stars, ["ROOT: started star-0", "ROOT: started star-1"]);
        Rig { m, ctl }
    }

    /// Spawns a supervisor that may not restart at its Star (a failed start
    /// is reported at once).
    async fn spawn_sup(&self, at: &str, kind: &str) -> Result<ParticleRef, SpawnError> {
        let opts = SpawnOptions {
            restart_limit: Some(RestartLimit {
                max_restarts: 0,
                ..Default::default()
            }),
            ..Default::default()
        };
        self.m
            .spawn_with(p(at), Kind::new(kind), Body::empty(), opts)
            .await
    }

    /// Waits until `last` is logged, then takes the whole log.
    async fn log_until(&self, last: &str) -> Vec<String> {
        eventually(last, || self.ctl.log.lock().iter().any(|l| l == last)).await;
        std::mem::take(&mut *self.ctl.log.lock())
    }

    /// Takes the log as it is now, after letting in-flight work land.
    async fn settled_log(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::mem::take(&mut *self.ctl.log.lock())
    }
}

fn worker(id: &str) -> ChildSpec<ChildStart> {
    ChildSpec::worker(id, ChildStart::kind("w", Body::empty()))
}

fn sup(strategy: Strategy, children: Vec<ChildSpec<ChildStart>>) -> SupervisorSpec {
    SupervisorSpec::new(
        SupFlags::new(strategy).intensity(10, Duration::from_secs(10)),
        children,
    )
}

fn abc(strategy: Strategy) -> SupervisorSpec {
    sup(strategy, vec![worker("a"), worker("b"), worker("c")])
}

/// `sup_start_normal`: children start in spec order, each started before
/// the next; `which_children` lists them in that order.
#[tokio::test]
async fn children_start_in_spec_order() {
    let r = Rig::new(vec![("s", abc(Strategy::OneForOne))]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    let log = r.log_until("sup: started c").await;
    assert_eq!(
        log,
        [
            "start a",
            "sup: started a",
            "start b",
            "sup: started b",
            "start c",
            "sup: started c"
        ]
    );
    let kids = r.m.supervisor(&p("sup")).which_children().await.unwrap();
    let ids: Vec<_> = kids.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(kids.iter().all(|c| c.handle.is_some() && !c.restarting));
    assert_eq!(kids[1].handle.as_ref().unwrap().point, p("sup:b"));
    r.m.shutdown().await;
}

/// `sup_start_fail`: a child that fails to start fails the supervisor's
/// start, after the children already started are stopped in reverse order.
#[tokio::test]
async fn a_child_failing_to_start_fails_the_supervisor_start() {
    let spec = sup(
        Strategy::OneForOne,
        vec![worker("a"), worker("b"), worker("c"), worker("d")],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.ctl.fail_start.lock().insert("c".into());
    let err = r.spawn_sup("sup", "s").await.unwrap_err();
    assert!(
        matches!(&err, SpawnError::StartFailed { reason, .. } if reason.contains("child `c` failed to start")),
        "{err}"
    );
    let log = r.log_until("sup: stopped a: shutdown").await;
    assert_eq!(
        log,
        [
            "start a",
            "sup: started a",
            "start b",
            "sup: started b",
            "start c failed",
            "sup: start_failed c: c refuses to start",
            "stop b",
            "sup: stopped b: shutdown",
            "stop a",
            "sup: stopped a: shutdown",
        ]
    );
    // No child is left behind, nor the given-up supervisor's own record
    // (it used to stay, Stopped), and `d` never started.
    eventually("children gone", || !r.m.registry().has_children(&p("sup"))).await;
    eventually("record gone", || r.m.record(&p("sup")).is_none()).await;
    r.m.shutdown().await;
}

/// `sup_flags`, `child_specs`: bad flags and specs are typed errors, at
/// build (`MachineError::BadSupervisor`) when the spec alone shows it; a
/// child id that is no Point segment fails the start.
#[tokio::test]
async fn bad_flags_and_specs_fail_the_build_or_the_start() {
    let zero_period = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(1, Duration::ZERO),
        vec![worker("a")],
    );
    let significant_permanent = sup(Strategy::OneForOne, vec![worker("a").significant(true)]);
    let dynamic_two = sup(Strategy::Dynamic, vec![worker("a"), worker("b")]);
    let duplicate = sup(Strategy::OneForOne, vec![worker("a"), worker("a")]);
    let bad_id = sup(Strategy::OneForOne, vec![worker("not:one")]);
    let cases = [
        (
            "zero_period",
            zero_period,
            "restart period must be greater than zero",
        ),
        (
            "significant_permanent",
            significant_permanent,
            "significant, so it must be transient or temporary",
        ),
        ("dynamic_two", dynamic_two, "exactly one child spec, got 2"),
        ("duplicate", duplicate, "two child specs have the id `a`"),
        ("bad_id", bad_id, "bad child id `not:one`"),
    ];
    let (at_start, at_build) = cases.split_last().unwrap();
    for (kind, spec, expected) in at_build {
        let err = Machine::standalone()
            .supervisor(*kind, spec.clone())
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MachineError::BadSupervisor { kind: k, .. } if k.as_str() == *kind),
            "{kind}: {err}"
        );
        assert!(err.to_string().contains(expected), "{kind}: {err}");
    }
    let (kind, spec, expected) = at_start;
    let r = Rig::new(vec![(*kind, spec.clone())]).await;
    let err = r.spawn_sup("sup0", kind).await.unwrap_err();
    assert!(err.to_string().contains(expected), "{kind}: {err}");
    // Nothing was started but `bad_id`'s failed attempt.
    let log = r.settled_log().await;
    assert!(log.iter().all(|l| !l.starts_with("start ")), "{log:?}");
    r.m.shutdown().await;
}

/// `one_for_one`: only the crashed child is restarted.
#[tokio::test]
async fn one_for_one_restarts_only_the_crashed_child() {
    let r = Rig::new(vec![("s", abc(Strategy::OneForOne))]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started c").await;
    r.m.signal(&p("sup:b"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started b").await;
    assert_eq!(
        log,
        [
            "sup: exited b: boom",
            "sup: restarting b",
            "start b",
            "sup: started b"
        ]
    );
    r.m.shutdown().await;
}

/// `one_for_all`: the others are stopped in reverse start order, then all
/// are started again in start order.
#[tokio::test]
async fn one_for_all_stops_the_others_then_restarts_all_in_order() {
    let r = Rig::new(vec![("s", abc(Strategy::OneForAll))]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started c").await;
    r.m.signal(&p("sup:b"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started c").await;
    assert_eq!(
        log,
        [
            "sup: exited b: boom",
            "sup: restarting b",
            "stop c",
            "sup: stopped c: shutdown",
            "stop a",
            "sup: stopped a: shutdown",
            "start a",
            "sup: started a",
            "start b",
            "sup: started b",
            "start c",
            "sup: started c",
        ]
    );
    r.m.shutdown().await;
}

/// `rest_for_one`: the children after the crashed one are stopped in
/// reverse order, then it and they start again in order.
#[tokio::test]
async fn rest_for_one_restarts_the_crashed_child_and_those_after_it() {
    let spec = sup(
        Strategy::RestForOne,
        vec![worker("a"), worker("b"), worker("c"), worker("d")],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started d").await;
    r.m.signal(&p("sup:b"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started d").await;
    assert_eq!(
        log,
        [
            "sup: exited b: boom",
            "sup: restarting b",
            "stop d",
            "sup: stopped d: shutdown",
            "stop c",
            "sup: stopped c: shutdown",
            "start b",
            "sup: started b",
            "start c",
            "sup: started c",
            "start d",
            "sup: started d",
        ]
    );
    r.m.shutdown().await;
}

/// `temporary_normal`, `temporary_abnormal`: a temporary child is never
/// restarted and its spec goes; also as a bystander of a one_for_all restart.
#[tokio::test]
async fn temporary_children_are_never_restarted_and_their_specs_go() {
    let spec = sup(
        Strategy::OneForAll,
        vec![
            worker("a"),
            worker("t1").restart(Restart::Temporary),
            worker("t2").restart(Restart::Temporary),
        ],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started t2").await;
    let s = r.m.supervisor(&p("sup"));

    // Abnormal exit: not restarted, removed.
    r.m.signal(&p("sup:t1"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: removed t1").await;
    assert_eq!(log, ["sup: exited t1: boom", "sup: removed t1"]);
    assert_eq!(s.count_children().await.unwrap().specs, 2);

    // A one_for_all restart removes the temporary bystander.
    r.m.signal(&p("sup:a"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started a").await;
    assert_eq!(
        log,
        [
            "sup: exited a: boom",
            "sup: restarting a",
            "stop t2",
            "sup: stopped t2: shutdown",
            "sup: removed t2",
            "start a",
            "sup: started a",
        ]
    );
    let ids: Vec<String> = s
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["a"]);
    // The temporary children are gone from the Machine too.
    eventually("t2 gone", || r.m.record(&p("sup:t2")).is_none()).await;
    r.m.shutdown().await;
}

/// `permanent_normal`, `permanent_abnormal`: a permanent child is restarted
/// after any exit, normal or not.
#[tokio::test]
async fn permanent_children_are_restarted_after_any_exit() {
    let r = Rig::new(vec![("s", sup(Strategy::OneForOne, vec![worker("a")]))]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started a").await;
    r.m.signal(&p("sup:a"), ("exit_normal", Body::empty()))
        .unwrap();
    let log = r.log_until("sup: started a").await;
    assert_eq!(
        log,
        [
            "stop a",
            "sup: exited a: normal",
            "sup: restarting a",
            "start a",
            "sup: started a"
        ]
    );
    r.m.signal(&p("sup:a"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started a").await;
    assert_eq!(
        log,
        [
            "sup: exited a: boom",
            "sup: restarting a",
            "start a",
            "sup: started a"
        ]
    );
    r.m.shutdown().await;
}

/// `transient_normal`, `transient_shutdown`, `transient_abnormal`: a
/// transient child is restarted only after an abnormal exit; after a normal
/// one (normal, shutdown) it keeps its spec, not running.
#[tokio::test]
async fn transient_children_are_restarted_only_after_abnormal_exits() {
    let spec = sup(
        Strategy::OneForOne,
        vec![
            worker("n").restart(Restart::Transient),
            worker("s").restart(Restart::Transient),
            worker("x").restart(Restart::Transient),
        ],
    );
    let r = Rig::new(vec![("k", spec)]).await;
    r.spawn_sup("sup", "k").await.unwrap();
    r.log_until("sup: started x").await;
    let s = r.m.supervisor(&p("sup"));

    r.m.signal(&p("sup:x"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started x").await;
    assert_eq!(
        log,
        [
            "sup: exited x: boom",
            "sup: restarting x",
            "start x",
            "sup: started x"
        ]
    );

    r.m.signal(&p("sup:n"), ("exit_normal", Body::empty()))
        .unwrap();
    r.m.signal(&p("sup:s"), ("exit_shutdown", Body::empty()))
        .unwrap();
    let log = r.log_until("sup: exited s: shutdown").await;
    assert_eq!(
        log,
        ["stop n", "sup: exited n: normal", "sup: exited s: shutdown"]
    );
    let kids = s.which_children().await.unwrap();
    let running: Vec<(&str, bool)> = kids
        .iter()
        .map(|c| (c.id.as_str(), c.handle.is_some()))
        .collect();
    assert_eq!(running, [("n", false), ("s", false), ("x", true)]);
    // Not running means gone from the Machine, lane closed.
    eventually("n gone", || r.m.record(&p("sup:n")).is_none()).await;
    assert!(matches!(
        r.m.ask(&p("sup:n"), ("get", Body::empty())).await,
        Err(WaveError::NoSuchParticle { .. })
    ));
    // `restart_child` brings it back from its spec.
    s.restart_child("n").await.unwrap();
    assert_eq!(
        r.m.ask(&p("sup:n"), ("get", Body::empty()))
            .await
            .unwrap()
            .as_u64(),
        Some(0)
    );
    r.m.shutdown().await;
}

/// `restart_one_for_one`, `sup_stop_*` (intensity): more restarts than
/// the intensity allows makes the supervisor stop its children in reverse
/// start order and die with reason shutdown; its parent is told.
#[tokio::test]
async fn exceeding_the_intensity_stops_all_children_and_escalates() {
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(2, Duration::from_secs(60)),
        vec![worker("a"), worker("b"), worker("c")],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started c").await;
    let mut events = r.m.events();
    for _ in 0..2 {
        r.m.signal(&p("sup:b"), ("crash", Body::empty())).unwrap();
        r.log_until("sup: started b").await;
    }
    r.m.signal(&p("sup:b"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: stopped a: shutdown").await;
    assert_eq!(
        log,
        [
            "sup: exited b: boom",
            "sup: gave_up after 3",
            "stop c",
            "sup: stopped c: shutdown",
            "stop a",
            "sup: stopped a: shutdown",
        ]
    );
    // The supervisor itself died with reason shutdown: its Star (it is
    // top-level, and may not restart) reports the crash.
    let notice = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Ok(Event::Crashed(n))) if n.child == p("sup") => break n,
            Ok(Ok(_)) => continue,
            other => panic!("no crash notice for the supervisor: {other:?}"),
        }
    };
    assert_eq!(notice.reason, "shutdown");
    assert!(notice.gave_up);
    eventually("children gone", || !r.m.registry().has_children(&p("sup"))).await;
    r.m.shutdown().await;
}

/// `sup_stop_infinity`, `sup_stop_timeout`, `sup_stop_brutal_kill`:
/// stopping a supervisor stops its children in reverse start order, each
/// as its shutdown says: a `stop` hook slower than its timeout is killed,
/// a brutal kill runs no hook at all.
#[tokio::test]
async fn shutdown_stops_children_in_reverse_order_honouring_timeouts() {
    let spec = sup(
        Strategy::OneForOne,
        vec![
            worker("a"),
            worker("slow").shutdown(Shutdown::Timeout(Duration::from_millis(50))),
            worker("brutal").shutdown(Shutdown::BrutalKill),
            worker("patient").shutdown(Shutdown::Infinity),
        ],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.ctl
        .slow_stop
        .lock()
        .insert("slow".into(), Duration::from_secs(10));
    r.ctl
        .slow_stop
        .lock()
        .insert("patient".into(), Duration::from_millis(100));
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started patient").await;
    let t = std::time::Instant::now();
    r.m.stop(&p("sup")).await.unwrap();
    let log = r.settled_log().await;
    assert_eq!(
        log,
        [
            "stop patient",
            "sup: stopped patient: shutdown",
            "sup: stopped brutal: killed",
            "sup: stopped slow: killed",
            "stop a",
            "sup: stopped a: shutdown",
        ]
    );
    // The slow one was killed at its timeout, not waited for.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(r.m.registry().len(), 0);
    r.m.shutdown().await;
}

/// `child_adm`: the API on a static supervisor, with OTP's error cases.
#[tokio::test]
async fn the_supervisor_api_and_its_error_cases() {
    let r = Rig::new(vec![("s", sup(Strategy::OneForOne, vec![worker("a")]))]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    let s = r.m.supervisor(&p("sup"));
    let refused = |e: SupervisorError| match e {
        SupervisorError::Refused(e) => e,
        other => panic!("not a refusal: {other}"),
    };
    let id = |s: &str| s.to_string();

    let b = s.start_child(worker("b")).await.unwrap();
    assert_eq!((b.point.clone(), b.incarnation), (p("sup:b"), 1));
    assert_eq!(
        refused(s.start_child(worker("b")).await.unwrap_err()),
        SupError::AlreadyStarted { id: id("b") }
    );
    assert_eq!(
        refused(s.restart_child("b").await.unwrap_err()),
        SupError::Running { id: id("b") }
    );
    assert_eq!(
        refused(s.delete_child("b").await.unwrap_err()),
        SupError::Running { id: id("b") }
    );
    assert_eq!(
        s.count_children().await.unwrap(),
        Counts {
            specs: 2,
            active: 2,
            supervisors: 0,
            workers: 2
        }
    );
    s.terminate_child("b").await.unwrap();
    assert_eq!(
        refused(s.start_child(worker("b")).await.unwrap_err()),
        SupError::AlreadyPresent { id: id("b") }
    );
    assert_eq!(s.count_children().await.unwrap().active, 1);
    let b2 = s.restart_child("b").await.unwrap();
    assert_ne!(b2.seq, b.seq, "a terminated child starts as a new particle");
    s.terminate_child("b").await.unwrap();
    s.delete_child("b").await.unwrap();
    assert_eq!(
        refused(s.delete_child("b").await.unwrap_err()),
        SupError::NotFound { id: id("b") }
    );
    assert_eq!(
        refused(s.terminate_child("nope").await.unwrap_err()),
        SupError::NotFound { id: id("nope") }
    );
    assert_eq!(
        refused(s.restart_child("nope").await.unwrap_err()),
        SupError::NotFound { id: id("nope") }
    );
    r.ctl.fail_start.lock().insert("c".into());
    assert!(matches!(
        refused(s.start_child(worker("c")).await.unwrap_err()),
        SupError::StartFailed { id, .. } if id == "c"
    ));
    // A dynamic-only call on a static supervisor.
    assert!(matches!(
        refused(s.add_child("x", Body::empty()).await.unwrap_err()),
        SupError::Unsupported { .. }
    ));
    let log = r.settled_log().await;
    assert_eq!(
        log,
        [
            "start a",
            "sup: started a",
            "start b",
            "sup: started b",
            "stop b",
            "sup: stopped b: shutdown",
            "start b",
            "sup: started b",
            "stop b",
            "sup: stopped b: shutdown",
            "sup: removed b",
            "start c failed",
            "sup: start_failed c: c refuses to start",
        ]
    );
    r.m.shutdown().await;
}

/// `child_adm_simple`, `simple_one_for_one`: a dynamic supervisor starts
/// children from its template at run time and restarts each on its own;
/// the static-only calls are refused.
#[tokio::test]
async fn dynamic_supervisors_add_children_from_a_template() {
    let template = ChildSpec::worker("tmpl", ChildStart::kind("w", Body::empty()));
    let r = Rig::new(vec![("d", sup(Strategy::Dynamic, vec![template]))]).await;
    r.spawn_sup("pool", "d").await.unwrap();
    let s = r.m.supervisor(&p("pool"));
    for i in 0..3 {
        s.add_child(format!("w{i}"), Body::from_u64(i))
            .await
            .unwrap();
    }
    assert!(matches!(
        s.add_child("w1", Body::empty()).await,
        Err(SupervisorError::Refused(SupError::AlreadyStarted { .. }))
    ));
    for call in [
        s.restart_child("w1").await.map(|_| ()),
        s.delete_child("w1").await,
    ] {
        assert!(matches!(
            call,
            Err(SupervisorError::Refused(SupError::Unsupported { .. }))
        ));
    }
    let log = r.log_until("pool: started w2").await;
    assert_eq!(
        log,
        [
            "start w0",
            "pool: started w0",
            "start w1",
            "pool: started w1",
            "start w2",
            "pool: started w2"
        ]
    );
    r.m.signal(&p("pool:w1"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("pool: started w1").await;
    assert_eq!(
        log,
        [
            "pool: exited w1: boom",
            "pool: restarting w1",
            "start w1",
            "pool: started w1"
        ]
    );
    // Terminating a dynamic child removes it.
    s.terminate_child("w0").await.unwrap();
    let ids: Vec<String> = s
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["w1", "w2"]);
    let log = r.settled_log().await;
    assert_eq!(
        log,
        ["stop w0", "pool: stopped w0: shutdown", "pool: removed w0"]
    );
    r.m.shutdown().await;
}

/// `auto_shutdown_any_significant`: a significant transient child ending
/// normally ends its supervisor (others stopped in reverse order), with
/// reason shutdown; a transient parent supervisor then does not restart it.
#[tokio::test]
async fn auto_shutdown_any_significant() {
    let inner = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).auto_shutdown(AutoShutdown::AnySignificant),
        vec![
            worker("a"),
            worker("sig").restart(Restart::Transient).significant(true),
            worker("c"),
        ],
    );
    let outer = sup(
        Strategy::OneForOne,
        vec![
            ChildSpec::supervisor("inner", ChildStart::kind("inner", Body::empty()))
                .restart(Restart::Transient),
        ],
    );
    let r = Rig::new(vec![("inner", inner), ("outer", outer)]).await;
    r.spawn_sup("top", "outer").await.unwrap();
    r.log_until("top: started inner").await;
    r.m.signal(&p("top:inner:sig"), ("exit_normal", Body::empty()))
        .unwrap();
    let log = r.log_until("top: exited inner: shutdown").await;
    assert_eq!(
        log,
        [
            "stop sig",
            "top:inner: exited sig: normal",
            "top:inner: auto_shutdown by sig",
            "stop c",
            "top:inner: stopped c: shutdown",
            "stop a",
            "top:inner: stopped a: shutdown",
            "top: exited inner: shutdown",
        ]
    );
    assert_eq!(r.settled_log().await, Vec::<String>::new(), "no restart");
    r.m.shutdown().await;
}

/// `auto_shutdown_all_significant`: the supervisor ends only once every
/// significant child has ended.
#[tokio::test]
async fn auto_shutdown_all_significant() {
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).auto_shutdown(AutoShutdown::AllSignificant),
        vec![
            worker("s1").restart(Restart::Temporary).significant(true),
            worker("s2").restart(Restart::Transient).significant(true),
            worker("plain"),
        ],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started plain").await;
    r.m.signal(&p("sup:s1"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: removed s1").await;
    assert_eq!(log, ["sup: exited s1: boom", "sup: removed s1"]);
    assert_eq!(r.settled_log().await, Vec::<String>::new(), "s2 still runs");
    r.m.signal(&p("sup:s2"), ("exit_normal", Body::empty()))
        .unwrap();
    let log = r.log_until("sup: stopped plain: shutdown").await;
    assert_eq!(
        log,
        [
            "stop s2",
            "sup: exited s2: normal",
            "sup: auto_shutdown by s2",
            "stop plain",
            "sup: stopped plain: shutdown",
        ]
    );
    r.m.shutdown().await;
}

/// `restart_one_for_all` across levels (escalation): an inner supervisor
/// past its intensity dies with reason shutdown; its one_for_all parent
/// restarts it and its sibling, and the inner dynamic supervisor's
/// children are not restored.
#[tokio::test]
async fn escalation_restarts_sub_supervisors_and_drops_dynamic_children() {
    let inner = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(1, Duration::from_secs(60)),
        vec![worker("x")],
    );
    let pool = sup(
        Strategy::Dynamic,
        vec![ChildSpec::worker(
            "tmpl",
            ChildStart::kind("w", Body::empty()),
        )],
    );
    let top = sup(
        Strategy::OneForAll,
        vec![
            ChildSpec::supervisor("inner", ChildStart::kind("inner", Body::empty())),
            ChildSpec::supervisor("pool", ChildStart::kind("pool", Body::empty())),
        ],
    );
    let r = Rig::new(vec![("inner", inner), ("pool", pool), ("top", top)]).await;
    r.spawn_sup("top", "top").await.unwrap();
    let pool_sup = r.m.supervisor(&p("top:pool"));
    pool_sup.add_child("d1", Body::empty()).await.unwrap();
    r.log_until("top:pool: started d1").await;

    r.m.signal(&p("top:inner:x"), ("crash", Body::empty()))
        .unwrap();
    r.log_until("top:inner: started x").await;
    r.m.signal(&p("top:inner:x"), ("crash", Body::empty()))
        .unwrap();
    let log = r.log_until("top: started pool").await;
    assert_eq!(
        log,
        [
            "top:inner: exited x: boom",
            "top:inner: gave_up after 2",
            "top: exited inner: shutdown",
            "top: restarting inner",
            // one_for_all: the sibling supervisor and its subtree stop...
            "stop d1",
            "top:pool: stopped d1: shutdown",
            "top:pool: removed d1",
            "top: stopped pool: shutdown",
            // ...then both start again, in order, with their static children.
            "start x",
            "top:inner: started x",
            "top: started inner",
            "top: started pool",
        ]
    );
    assert_eq!(pool_sup.count_children().await.unwrap().specs, 0);
    assert!(r.m.record(&p("top:pool:d1")).is_none());
    r.m.shutdown().await;
}

/// A child whose restart keeps failing is retried within the intensity,
/// then the supervisor gives up and still shuts down cleanly.
#[tokio::test]
async fn a_restart_that_keeps_failing_ends_in_give_up() {
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(3, Duration::from_secs(60)),
        vec![worker("a"), worker("b")],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started b").await;
    r.ctl.fail_start.lock().insert("b".into());
    r.m.signal(&p("sup:b"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: stopped a: shutdown").await;
    let failed = [
        "sup: restarting b",
        "start b failed",
        "sup: start_failed b: b refuses to start",
    ];
    let mut expected = vec!["sup: exited b: boom"];
    for _ in 0..3 {
        expected.extend(failed);
    }
    expected.extend(["sup: gave_up after 4", "stop a", "sup: stopped a: shutdown"]);
    assert_eq!(log, expected);
    eventually("children gone", || !r.m.registry().has_children(&p("sup"))).await;
    r.m.shutdown().await;
}

/// A particle that answers "get" with the numbers it saw, per sender.
struct Tally;

impl Particle for Tally {
    type State = Vec<u64>;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<Vec<u64>, ParticleError> {
        Ok(Vec::new())
    }
    async fn handle(&self, _: &Ctx, seen: &mut Vec<u64>, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "n" => seen.push(w.body.as_u64().unwrap()),
            "slow_crash" => {
                tokio::time::sleep(Duration::from_millis(30)).await;
                return Err("crashed on purpose".into());
            }
            "get" => return Ok(Body::encode(seen)?),
            _ => {}
        }
        Ok(Body::empty())
    }
}

/// Beyond OTP: a supervised child's lane survives its restart. Waves
/// queued at the crash and sent during the restart reach the new
/// incarnation in order; a request waiting at the crash is answered by the
/// new incarnation; the wave in hand is named in the crash notice.
#[tokio::test]
async fn the_lane_survives_a_supervised_restart() {
    let spec = sup(
        Strategy::OneForOne,
        vec![ChildSpec::worker(
            "t",
            ChildStart::kind("tally", Body::empty()),
        )],
    );
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = notices.clone();
    let m = Machine::standalone()
        .stars(2)
        .kind("tally", Tally)
        .supervisor("s", spec)
        .observer(move |e| {
            if let Event::Crashed(n) = e {
                seen.lock().push(n.clone());
            }
        })
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), Kind::new("s"), Body::empty())
        .await
        .unwrap();
    let t = m.particle(&p("sup:t")).unwrap();
    // Sent from outside any handler: from the Machine (ROOT).
    let me = Point::root();
    for i in 0..50 {
        t.signal(("n", Body::from_u64(i))).unwrap();
    }
    t.signal(("slow_crash", Body::empty())).unwrap();
    // Queued behind the crash: answered by the next incarnation.
    let waiting = m.ask(&p("sup:t"), ("get", Body::empty()));
    for i in 50..100 {
        t.signal(("n", Body::from_u64(i))).unwrap();
    }
    let first: Vec<u64> = waiting.await.unwrap().decode().unwrap();
    assert!(first.is_empty(), "a fresh incarnation answered: {first:?}");
    let after: Vec<u64> = m
        .ask(&p("sup:t"), ("get", Body::empty()))
        .await
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(after, (50..100).collect::<Vec<_>>());
    let n = notices.lock().clone();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].child, p("sup:t"));
    assert_eq!(n[0].supervisor, Some(p("sup")));
    assert_eq!(n[0].reason, "crashed on purpose");
    assert_eq!(n[0].in_period, 1);
    let in_flight = n[0].in_flight.as_ref().unwrap();
    assert_eq!((&*in_flight.method, &in_flight.from), ("slow_crash", &me));
    assert_eq!(m.record(&p("sup:t")).unwrap().restarts, 1);
    m.shutdown().await;
}

/// A closure start picks the Kind and arguments at each start, and a
/// failing closure is a failed start.
#[tokio::test]
async fn closure_starts_run_at_each_start() {
    let starts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = starts.clone();
    let start = ChildStart::with(move |_| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 2 {
            return Err("third time unlucky".into());
        }
        Ok((Kind::new("w"), Body::from_u64(n)))
    });
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(60)),
        vec![ChildSpec::worker("c", start)],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started c").await;
    r.m.signal(&p("sup:c"), ("crash", Body::empty())).unwrap();
    r.log_until("sup: started c").await;
    r.m.signal(&p("sup:c"), ("crash", Body::empty())).unwrap();
    let log = r.log_until("sup: started c").await;
    assert_eq!(
        log,
        [
            "sup: exited c: boom",
            "sup: restarting c",
            "sup: start_failed c: third time unlucky",
            "sup: restarting c",
            "start c",
            "sup: started c",
        ]
    );
    assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 4);
    r.m.shutdown().await;
}

/// The Machine supervises its Stars with the same supervisor: a Star that
/// fails is restarted (one_for_one), and its particles' crashes are
/// handled by the new Star.
#[tokio::test]
async fn the_machine_restarts_a_failed_star() {
    let r = Rig::new(vec![]).await;
    let at = p("lonely");
    r.m.spawn_with(at.clone(), Kind::new("w"), Body::empty(), common::on(1))
        .await
        .unwrap();
    r.log_until("start lonely").await;
    r.m.crash_star(1, "injected star failure").unwrap();
    let log = r.log_until("ROOT: started star-1").await;
    assert_eq!(
        log,
        [
            "ROOT: exited star-1: injected star failure",
            "ROOT: restarting star-1",
            "ROOT: started star-1"
        ]
    );
    // The particle lives on, and the new Star restarts it when it crashes.
    r.m.signal(&at, ("crash", Body::empty())).unwrap();
    eventually("restarted by the new Star", || {
        r.m.record(&at)
            .is_some_and(|rec| rec.restarts == 1 && rec.status == Status::Ready)
    })
    .await;
    assert!(matches!(
        r.m.crash_star(9, "x"),
        Err(FaultError::NoSuchStar { .. })
    ));
    r.m.shutdown().await;
    // Stars stopped at shutdown end normally and are not restarted.
    let log = r.settled_log().await;
    assert!(log.iter().all(|l| !l.contains("restarting")), "{log:?}");
}

/// `exit(Pid, shutdown)` from outside: a permanent child stopped by
/// `Machine::stop` is restarted by its supervisor (as a new particle), a
/// transient one is not.
#[tokio::test]
async fn a_child_stopped_from_outside_is_restarted_per_its_restart_type() {
    let spec = sup(
        Strategy::OneForOne,
        vec![worker("perm"), worker("trans").restart(Restart::Transient)],
    );
    let r = Rig::new(vec![("s", spec)]).await;
    r.spawn_sup("sup", "s").await.unwrap();
    r.log_until("sup: started trans").await;
    let before = r.m.particle(&p("sup:perm")).unwrap().spawn_seq();
    r.m.stop(&p("sup:perm")).await.unwrap();
    let log = r.log_until("sup: started perm").await;
    assert_eq!(
        log,
        [
            "stop perm",
            "sup: exited perm: shutdown",
            "sup: restarting perm",
            "start perm",
            "sup: started perm"
        ]
    );
    let after = r.m.particle(&p("sup:perm")).unwrap().spawn_seq();
    assert_ne!(before, after);
    r.m.stop(&p("sup:trans")).await.unwrap();
    let log = r.log_until("sup: exited trans: shutdown").await;
    assert_eq!(log, ["stop trans", "sup: exited trans: shutdown"]);
    assert_eq!(r.settled_log().await, Vec::<String>::new());
    assert!(r.m.record(&p("sup:trans")).is_none());
    r.m.shutdown().await;
}
