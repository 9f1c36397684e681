//! Races and edge cases of supervisor particles (runtime/src/supervision/).
//!
//! Each test was written in review against a bug it demonstrated; its doc
//! comment says what OTP (or the runtime's own contract) expects and what
//! went wrong before the fix. A hang is turned into a failure by a timeout
//! of a few seconds.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::p;
use hyperverse::*;
use parking_lot::Mutex;

#[derive(Default)]
struct Control {
    /// Things in order: "start a", "stop a", and the supervisors' events.
    log: Mutex<Vec<String>>,
    /// Workers (by name) whose `stop` hook takes this long, every time.
    slow_stop: Mutex<HashMap<String, Duration>>,
    /// Workers (by name) whose next `stop` hook takes this long (once).
    slow_stop_once: Mutex<HashMap<String, Duration>>,
    /// Workers (by name) whose `start` takes this long.
    slow_start: Mutex<HashMap<String, Duration>>,
}

impl Control {
    fn note(&self, what: String) {
        self.log.lock().push(what);
    }
    fn has(&self, what: &str) -> bool {
        self.log.lock().iter().any(|l| l == what)
    }
}

struct Worker(Arc<Control>);

impl Particle for Worker {
    type State = u64;

    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        let name = ctx.me().name().to_string();
        let delay = self.0.slow_start.lock().get(&name).copied();
        if let Some(d) = delay {
            self.0.note(format!("starting {name}"));
            tokio::time::sleep(d).await;
        }
        if name.starts_with("selfstop") {
            // Stops itself from its own start (as a gen_server whose init
            // returns ok and that exits right after).
            let _ = ctx.machine().stop(ctx.me()).await;
        }
        self.0.note(format!("start {name}"));
        Ok(0)
    }

    async fn handle(&self, ctx: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        let sup_at = ctx.parent().cloned();
        match &*w.method {
            "add" => *n += 1,
            "get" => return Ok(Body::from_u64(*n)),
            "crash" => return Err("boom".into()),
            // Stops its own supervisor (and so itself) from a handler.
            "stop_sup" => {
                let _ = ctx.machine().stop(&sup_at.unwrap()).await;
            }
            // Asks its supervisor to terminate it (OTP:
            // `supervisor:terminate_child(Sup, self())` from the child).
            "quit" => {
                let sup = ctx.machine().supervisor(&sup_at.unwrap());
                let r = sup.terminate_child(ctx.me().name()).await;
                self.0.note(format!("quit answered: {}", answer(&r)));
            }
            // Reads its supervisor's children a little later.
            "peek_sup_later" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let sup = ctx.machine().supervisor(&sup_at.unwrap());
                let r = sup.which_children().await;
                self.0.note(format!("peek answered: {}", answer(&r)));
            }
            _ => {}
        }
        Ok(Body::empty())
    }

    async fn stop(&self, ctx: &Ctx, _: u64) {
        let name = ctx.me().name().to_string();
        let once = self.0.slow_stop_once.lock().remove(&name);
        let always = self.0.slow_stop.lock().get(&name).copied();
        if let Some(d) = once.or(always) {
            tokio::time::sleep(d).await;
        }
        self.0.note(format!("stop {name}"));
    }
}

/// How a supervisor API call from a worker was answered, for the log.
fn answer<T>(r: &Result<T, SupervisorError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(SupervisorError::Forbidden { .. }) => "forbidden",
        Err(_) => "another error",
    }
}

struct Rig {
    m: Machine,
    ctl: Arc<Control>,
}

impl Rig {
    async fn new(sups: Vec<(&str, SupervisorSpec)>) -> Rig {
        Rig::with_shutdown(sups, Duration::from_secs(10)).await
    }

    async fn with_shutdown(sups: Vec<(&str, SupervisorSpec)>, shutdown: Duration) -> Rig {
        let ctl = Arc::new(Control::default());
        let seen = ctl.clone();
        let mut b = Machine::standalone()
            .stars(2)
            .kind("w", Worker(ctl.clone()))
            .shutdown_timeout(shutdown)
            .request_timeout(Duration::from_secs(30))
            .observer(move |e| {
                if let Event::Supervisor { supervisor, event } = e {
                    if !supervisor.is_root() {
                        seen.note(format!("{supervisor}: {}", event));
                    }
                }
            });
        for (kind, spec) in sups {
            b = b.supervisor(kind, spec);
        }
        let m = b.build().await.unwrap();
        Rig { m, ctl }
    }

    async fn spawn_sup_with(&self, at: &str, kind: &str, lane: Option<LaneLimit>) -> ParticleRef {
        let opts = SpawnOptions {
            restart_limit: Some(RestartLimit {
                max_restarts: 0,
                ..Default::default()
            }),
            lane,
            ..Default::default()
        };
        self.m
            .spawn_with(p(at), Kind::new(kind), Body::empty(), opts)
            .await
            .unwrap()
    }

    async fn spawn_sup(&self, at: &str, kind: &str) -> ParticleRef {
        self.spawn_sup_with(at, kind, None).await
    }

    /// Waits up to `limit` for `last` to be logged; false if it never is.
    async fn logged_within(&self, last: &str, limit: Duration) -> bool {
        until(limit, || self.ctl.has(last)).await
    }

    fn log(&self) -> Vec<String> {
        self.ctl.log.lock().clone()
    }

    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.ctl.log.lock())
    }
}

/// Polls `cond` for up to `limit`; true if it came to hold.
async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
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

/// `Machine::stop` is documented not to wait for its caller or the
/// caller's ancestors. A supervised child that stops its own supervisor
/// is waited for anyway: `stop_cells` moves supervised children out of
/// `cells` before it looks for the caller there, so the caller is not
/// found, the supervisor's `stop` suspends the child (which is blocked in
/// that very `Machine::stop`), and the child is killed at its shutdown
/// timeout (5 s; forever with `Shutdown::Infinity`), its `stop` hook never
/// run.
#[tokio::test]
async fn a_supervised_child_can_stop_its_own_supervisor() {
    let r = Rig::new(vec![(
        "s",
        sup(Strategy::OneForOne, vec![worker("a"), worker("b")]),
    )])
    .await;
    r.spawn_sup("sup", "s").await;
    assert!(
        r.logged_within("sup: started b", Duration::from_secs(2))
            .await
    );
    r.m.signal(&p("sup:a"), ("stop_sup", Body::empty()))
        .unwrap();
    let gone = until(Duration::from_secs(3), || r.m.record(&p("sup")).is_none()).await;
    assert!(
        gone,
        "the supervisor did not stop within 3 s: {:?}",
        r.log()
    );
    let log = r.log();
    assert!(
        log.iter().any(|l| l == "sup: stopped a: shutdown") && log.iter().any(|l| l == "stop a"),
        "a was not stopped cleanly: {log:?}"
    );
    r.m.shutdown().await;
}

/// A child calls its own supervisor's API from a handler: OTP's
/// `terminate_child(Sup, self())` ends the (non-trapping) child at once.
/// Here the supervisor suspended the child and waited for it to park, while
/// the child waited for the supervisor's answer: stuck until the child's
/// shutdown timeout, then the child was killed. (`refuse_descendants`, the
/// runtime's guard against exactly this, is not used by supervisors.)
///
/// The supervisor API is now honoured only from the Machine or an ancestor
/// of the supervisor, so the child's call is refused with the typed
/// `Forbidden` at once: still no deadlock and no hang, and the child runs on.
#[tokio::test]
async fn a_child_terminating_itself_through_the_api_is_not_stuck() {
    let r = Rig::new(vec![("s", sup(Strategy::OneForOne, vec![worker("a")]))]).await;
    r.spawn_sup("sup", "s").await;
    assert!(
        r.logged_within("sup: started a", Duration::from_secs(2))
            .await
    );
    r.m.signal(&p("sup:a"), ("quit", Body::empty())).unwrap();
    let done = r
        .logged_within("quit answered: forbidden", Duration::from_secs(3))
        .await;
    assert!(
        done,
        "terminate_child(self) was not refused within 3 s: {:?}",
        r.log()
    );
    // Refused, so not terminated: the child still serves, the supervisor lives.
    let got = tokio::time::timeout(
        Duration::from_secs(3),
        r.m.ask(&p("sup:a"), ("get", Body::empty())),
    )
    .await;
    assert!(matches!(got, Ok(Ok(_))), "{got:?}; log {:?}", r.log());
    assert!(!r.ctl.has("sup: stopped a: shutdown"), "{:?}", r.log());
    r.m.shutdown().await;
}

/// The same deadlock without any self-reference: a child merely reads
/// `which_children` while a sibling's crash makes a one_for_all supervisor
/// stop it. The restart stalled for the child's whole shutdown timeout and
/// the child was killed (its `stop` hook skipped). A child may no longer
/// use its supervisor's API (it gets the typed `Forbidden` at once); the
/// restart must still not stall.
#[tokio::test]
async fn a_child_reading_its_supervisor_does_not_stall_a_sibling_restart() {
    let r = Rig::new(vec![(
        "s",
        sup(Strategy::OneForAll, vec![worker("a"), worker("b")]),
    )])
    .await;
    r.spawn_sup("sup", "s").await;
    assert!(
        r.logged_within("sup: started b", Duration::from_secs(2))
            .await
    );
    r.take_log();
    r.m.signal(&p("sup:b"), ("peek_sup_later", Body::empty()))
        .unwrap();
    r.m.signal(&p("sup:a"), ("crash", Body::empty())).unwrap();
    let restarted = r
        .logged_within("sup: started b", Duration::from_secs(3))
        .await;
    assert!(
        restarted,
        "the one_for_all restart did not finish within 3 s: {:?}",
        r.log()
    );
    assert!(r.ctl.has("sup: stopped b: shutdown"), "{:?}", r.log());
    assert!(r.ctl.has("peek answered: forbidden"), "{:?}", r.log());
    r.m.shutdown().await;
}

/// Exit reports are ordinary waves: a supervisor with a bounded lane that
/// is full when a child crashes refuses the report (`report_exit` ignores
/// the error), and the child stays parked for ever: never restarted, its
/// lane never served, requests to it never answered, while
/// `which_children` still lists it as running.
#[tokio::test]
async fn a_crash_report_is_not_lost_when_the_supervisor_lane_is_full() {
    let r = Rig::new(vec![("s", sup(Strategy::OneForOne, vec![worker("a")]))]).await;
    r.ctl
        .slow_start
        .lock()
        .insert("slow".into(), Duration::from_millis(300));
    let lane = LaneLimit {
        capacity: 1,
        when_full: WhenFull::Reject,
        max_bytes: None,
    };
    r.spawn_sup_with("sup", "s", Some(lane)).await;
    assert!(
        r.logged_within("sup: started a", Duration::from_secs(2))
            .await
    );
    // Keep the supervisor busy in a handler...
    let s = r.m.supervisor(&p("sup"));
    let busy = tokio::spawn(async move { s.start_child(worker("slow")).await });
    assert!(
        r.logged_within("starting slow", Duration::from_secs(2))
            .await
    );
    // ...with one wave waiting in its lane (the capacity)...
    r.m.signal(&p("sup"), ("noise", Body::empty())).unwrap();
    // ...when `a` crashes.
    r.m.signal(&p("sup:a"), ("crash", Body::empty())).unwrap();
    busy.await.unwrap().unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(3),
        r.m.ask(&p("sup:a"), ("get", Body::empty())),
    )
    .await;
    assert!(
        matches!(answer, Ok(Ok(_))),
        "a was never restarted: {answer:?}; log {:?}",
        r.log()
    );
    r.m.shutdown().await;
}

/// A temporary child that crashes is removed from its supervisor (OTP:
/// its spec goes, and nothing of it is left). `Kids::end` ends it with
/// `DownReason::GaveUp`, and `Machine::finish` keeps the record of a
/// given-up particle: a `Stopped` record (and its cell) stays in the
/// Registry for as long as the supervisor lives: one per crashed
/// temporary child of a dynamic pool.
#[tokio::test]
async fn a_crashed_temporary_child_leaves_no_record() {
    let template = worker("tmpl").restart(Restart::Temporary);
    let r = Rig::new(vec![("d", sup(Strategy::Dynamic, vec![template]))]).await;
    r.spawn_sup("pool", "d").await;
    let s = r.m.supervisor(&p("pool"));
    for i in 0..3 {
        s.add_child(format!("w{i}"), Body::empty()).await.unwrap();
        r.m.signal(&p(&format!("pool:w{i}")), ("crash", Body::empty()))
            .unwrap();
        assert!(
            r.logged_within(&format!("pool: removed w{i}"), Duration::from_secs(2))
                .await
        );
    }
    assert_eq!(s.count_children().await.unwrap().specs, 0);
    let gone = until(Duration::from_secs(2), || r.m.registry().len() == 1).await;
    let left: Vec<_> =
        r.m.registry()
            .subtree(&p("pool"))
            .into_iter()
            .map(|rec| (rec.point.to_string(), rec.status))
            .collect();
    assert!(gone, "records left behind: {left:?}");
    r.m.shutdown().await;
}

/// OTP's supervisor logs and ignores a message it does not understand.
/// Here any particle (or `Machine::signal`) sending `$sup:exit` with a body
/// that does not decode crashed the supervisor (`wave.body.decode()?` in
/// `child_exit`, before the sender was checked), and with it every child.
/// (Exit reports are control letters now; a `$sup:exit` wave is an
/// ordinary wave, which the supervisor ignores.)
#[tokio::test]
async fn a_malformed_exit_report_does_not_crash_the_supervisor() {
    let r = Rig::new(vec![("s", sup(Strategy::OneForOne, vec![worker("a")]))]).await;
    r.spawn_sup("sup", "s").await;
    assert!(
        r.logged_within("sup: started a", Duration::from_secs(2))
            .await
    );
    let before = r.m.particle(&p("sup:a")).unwrap().spawn_seq();
    r.m.signal(&p("sup"), ("$sup:exit", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sup_status = r.m.record(&p("sup")).map(|rec| rec.status);
    assert_eq!(sup_status, Some(Status::Ready), "log {:?}", r.log());
    let after = r.m.particle(&p("sup:a")).ok().map(|l| l.spawn_seq());
    assert_eq!(after, Some(before), "log {:?}", r.log());
    r.m.shutdown().await;
}

/// A supervisor stops its children in reverse start order, each within its
/// own shutdown (OTP: a supervisor's own shutdown defaults to infinity for
/// this reason). `Machine::stop` waits for the supervisor only for the
/// Machine's shutdown timeout and then aborts it; its `EndGuard` then tells
/// every remaining child to stop at once, so earlier children stop before
/// (or while) later ones, and a child in a slow but in-time `stop` is
/// killed.
#[tokio::test]
async fn the_machine_timeout_does_not_break_the_reverse_stop_order() {
    let spec = sup(
        Strategy::OneForOne,
        vec![worker("a"), worker("b"), worker("c")],
    );
    let r = Rig::with_shutdown(vec![("s", spec)], Duration::from_millis(300)).await;
    r.ctl
        .slow_stop
        .lock()
        .insert("c".into(), Duration::from_millis(800));
    r.spawn_sup("sup", "s").await;
    assert!(
        r.logged_within("sup: started c", Duration::from_secs(2))
            .await
    );
    r.take_log();
    tokio::time::timeout(Duration::from_secs(5), r.m.stop(&p("sup")))
        .await
        .expect("stop hung")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let log = r.take_log();
    assert_eq!(
        log,
        [
            "stop c",
            "sup: stopped c: shutdown",
            "stop b",
            "sup: stopped b: shutdown",
            "stop a",
            "sup: stopped a: shutdown",
        ]
    );
    r.m.shutdown().await;
}

/// A supervisor told to stop while it is in a restart that must spawn a
/// fresh particle (here: the child was stopped from outside, so its task
/// has ended) cannot spawn it: the supervisor no longer accepts children
/// once its stop is requested, `launch_supervised` fails with `NoParent`,
/// and the restart loop counts every failed attempt against the intensity
/// until it gives up: a plain stop turns into GaveUp (restarting the
/// sibling every round) and an escalation.
#[tokio::test]
async fn stopping_a_supervisor_mid_restart_does_not_burn_its_intensity() {
    let r = Rig::new(vec![(
        "s",
        sup(Strategy::OneForAll, vec![worker("a"), worker("b")]),
    )])
    .await;
    r.spawn_sup("sup", "s").await;
    assert!(
        r.logged_within("sup: started b", Duration::from_secs(2))
            .await
    );
    r.ctl
        .slow_stop_once
        .lock()
        .insert("a".into(), Duration::from_millis(300));
    r.take_log();
    // `b` is stopped from outside: the supervisor restarts both (one_for_all),
    // stopping `a` first, which takes a while...
    r.m.stop(&p("sup:b")).await.unwrap();
    assert!(
        r.logged_within("sup: restarting b", Duration::from_secs(2))
            .await
    );
    // ...and meanwhile the supervisor itself is told to stop.
    let m = r.m.clone();
    let stopping = tokio::spawn(async move { m.stop(&p("sup")).await });
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("stop hung")
        .unwrap()
        .unwrap();
    let log = r.take_log();
    let failed = log.iter().filter(|l| l.contains("start_failed b")).count();
    assert!(
        failed <= 1 && !log.iter().any(|l| l.contains("gave_up")),
        "{failed} failed starts: {log:?}"
    );
    r.m.shutdown().await;
}

/// A child whose `start` returned Ok has started (OTP: `start_link`
/// returned `{ok, Pid}`), even if it ends right after. `Managed::started`
/// checks `Phase::Ended` before the incarnation's outcome, so a child that
/// ends before the supervisor's task looks reads as a failed start:
/// `start_child` returns `StartFailed` ("it ended before it started").
#[tokio::test]
async fn a_child_that_ends_right_after_starting_counts_as_started() {
    let r = Rig::new(vec![("s", sup(Strategy::OneForOne, vec![]))]).await;
    r.spawn_sup("sup", "s").await;
    let s = r.m.supervisor(&p("sup"));
    let mut wrong = Vec::new();
    for i in 0..20 {
        let id = format!("selfstop{i}");
        let spec = worker(&id).restart(Restart::Temporary);
        let res = tokio::time::timeout(Duration::from_secs(3), s.start_child(spec))
            .await
            .expect("start_child hung");
        if let Err(e) = res {
            wrong.push(format!("{id}: {e}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 20 read as failed: {wrong:?}",
        wrong.len()
    );
    r.m.shutdown().await;
}

/// A particle that spawns a plain child `g` in its `start`.
struct Parent;

impl Particle for Parent {
    type State = ();
    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<(), ParticleError> {
        ctx.spawn_child("g", &Kind::new("w"), Body::empty())?;
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
}

/// `Machine::stop(sup:perm)` of a permanent supervised child: its
/// supervisor starts a new particle there, and `Machine::stop`'s later
/// rounds skip the new particle at `point` itself but not its children:
/// if the restart wins the race, the new incarnation's children (spawned
/// in its `start`) are stopped by a `Machine::stop` that was about the old
/// one.
#[tokio::test]
async fn stopping_a_supervised_child_spares_its_successor_s_children() {
    let spec = sup(
        Strategy::OneForOne,
        vec![ChildSpec::worker(
            "perm",
            ChildStart::kind("parent", Body::empty()),
        )],
    );
    let ctl = Arc::new(Control::default());
    let m = Machine::standalone()
        .stars(2)
        .kind("w", Worker(ctl.clone()))
        .kind("parent", Parent)
        .supervisor("s", spec)
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), Kind::new("s"), Body::empty())
        .await
        .unwrap();
    for round in 0..10 {
        assert!(
            until(Duration::from_secs(2), || m
                .record(&p("sup:perm:g"))
                .is_some())
            .await
        );
        let old = m.particle(&p("sup:perm")).unwrap().spawn_seq();
        m.stop(&p("sup:perm")).await.unwrap();
        let restarted = until(Duration::from_secs(2), || {
            m.particle(&p("sup:perm"))
                .is_ok_and(|l| l.spawn_seq() != old && l.status() == Status::Ready)
        })
        .await;
        assert!(restarted, "round {round}: perm was not restarted");
        let kept = until(Duration::from_secs(1), || {
            m.record(&p("sup:perm:g")).is_some()
        })
        .await;
        assert!(
            kept,
            "round {round}: the new sup:perm lost its child: {:?}; g's life: {:?}",
            m.registry().subtree(&p("sup")),
            ctl.log.lock()
        );
    }
    m.shutdown().await;
}
