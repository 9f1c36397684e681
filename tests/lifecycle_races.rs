//! Races at the edges of a particle's life, found by review: each test
//! asserts the intended behaviour, and each failed before it was fixed.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::p;
use hyperverse::*;
use parking_lot::Mutex;

const HANG: Duration = Duration::from_secs(3);

#[derive(Clone, Default)]
struct R {
    log: Arc<Mutex<Vec<String>>>,
}

impl Particle for R {
    type State = ();

    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<(), ParticleError> {
        for i in 0..args.as_u64().unwrap_or(0) {
            ctx.spawn_child(&format!("c{i}"), ctx.kind(), Body::empty())?;
        }
        Ok(())
    }

    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "quit-slow" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ctx.stop();
            }
            "crash-slow" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err("crash".into());
            }
            "call-parent" => {
                let parent = ctx.particle(ctx.parent().unwrap())?;
                parent.ask(("hi", Body::empty())).within(None).await?;
            }
            "call-self-as-root" => {
                let me = ctx.particle(ctx.me())?;
                me.ask(("x", Body::empty())).within(None).await?;
            }
            "shutdown-slow" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ctx.machine().shutdown().await;
            }
            "crash" => return Err("crash".into()),
            "quit-and-crash" => {
                ctx.stop();
                return Err("crash while stopping".into());
            }
            _ => {}
        }
        Ok(Body::empty())
    }

    async fn crash_notice(&self, _: &Ctx, _: &mut (), n: CrashNotice) -> Result<(), ParticleError> {
        self.log
            .lock()
            .push(format!("notice {} gave_up={}", n.child, n.gave_up));
        Ok(())
    }

    async fn stop(&self, ctx: &Ctx, _: ()) {
        if ctx.me().name() == "late-parent" {
            // A stop hook that spawns a child (after stop_children has run).
            let _ = ctx.spawn_child("late", ctx.kind(), Body::empty());
        }
    }
}

async fn machine() -> Machine {
    Machine::standalone()
        .stars(2)
        .kind("r", R::default())
        .build()
        .await
        .unwrap()
}

/// A one-Star Machine running `r`.
async fn one_star(r: &R) -> Machine {
    Machine::standalone()
        .stars(1)
        .kind("r", r.clone())
        .build()
        .await
        .unwrap()
}

async fn no_hang<T>(what: &str, f: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("HANG: {what}"))
}

/// A child mid-`ask(..).within(None)` (no deadline) to its parent while the
/// parent stops itself: the parent's stop_children waits for the child, the
/// child waits for the parent's reply, which never comes (the parent's lane
/// is only closed in finish, after stop_children).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_calling_its_stopping_parent_does_not_deadlock() {
    let m = machine().await;
    m.spawn(p("p"), "r".into(), Body::from_u64(1))
        .await
        .unwrap();
    m.signal(&p("p"), ("quit-slow", Body::empty())).unwrap();
    m.signal(&p("p:c0"), ("call-parent", Body::empty()))
        .unwrap();
    no_hang("p never ends", async {
        while m.record(&p("p")).is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Same with a crash: the restart path's stop_children deadlocks too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_calling_its_crashing_parent_does_not_deadlock() {
    let m = machine().await;
    m.spawn(p("p"), "r".into(), Body::from_u64(1))
        .await
        .unwrap();
    m.signal(&p("p"), ("crash-slow", Body::empty())).unwrap();
    m.signal(&p("p:c0"), ("call-parent", Body::empty()))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    no_hang(
        "ask p after its crash",
        m.ask(&p("p"), ("x", Body::empty())),
    )
    .await
    .unwrap();
}

/// A child spawned by the parent's stop hook (or by anyone while the parent
/// is stopping) outlives its parent, and Machine::stop(parent) returns Ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_hook_cannot_leave_an_orphan() {
    let m = machine().await;
    m.spawn(p("late-parent"), "r".into(), Body::empty())
        .await
        .unwrap();
    m.stop(&p("late-parent")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let orphan = m.record(&p("late-parent:late"));
    assert!(orphan.is_none(), "orphan still registered: {orphan:?}");
}

/// CallingSelf was decided by the caller-supplied `from`, not by who is
/// calling: a particle calling itself with another `from` hung forever.
/// (No send takes a sender any more; the self-call through a ParticleRef
/// from the particle's own handler must still fail at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_oneself_fails_whatever_the_from() {
    let m = machine().await;
    m.spawn(p("s"), "r".into(), Body::empty()).await.unwrap();
    let lane = m.particle(&p("s")).unwrap();
    let _ = no_hang(
        "self-call via ParticleRef::ask(..).within(None)",
        lane.ask(("call-self-as-root", Body::empty())).within(None),
    )
    .await;
}

/// Outside shutdown wins the OnceCell and waits for particle A; A's handler
/// awaits the same OnceCell: deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_from_inside_and_outside_at_once() {
    let m = machine().await;
    m.spawn(p("a"), "r".into(), Body::empty()).await.unwrap();
    m.signal(&p("a"), ("shutdown-slow", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    no_hang("outside shutdown", m.shutdown()).await;
}

/// A panic in the synchronous part of `handle` (before its future is built)
/// escapes `guarded`: no crash, no restart, no notice; children orphaned.
struct SyncPanic;
impl Particle for SyncPanic {
    type State = ();
    fn start(&self, ctx: &Ctx, _: &Body) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let r = if ctx.me().depth() == 1 {
            ctx.spawn_child("kid", ctx.kind(), Body::empty())
                .map(|_| ())
        } else {
            Ok(())
        };
        async move { r.map_err(Into::into) }
    }
    fn handle(
        &self,
        _: &Ctx,
        _: &mut (),
        w: Wave,
    ) -> impl Future<Output = Result<Body, ParticleError>> + Send {
        if &*w.method == "boom" {
            panic!("sync part of handle");
        }
        async { Ok(Body::empty()) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_before_the_handler_future_is_a_crash() {
    let m = Machine::standalone()
        .stars(1)
        .kind("sp", SyncPanic)
        .build()
        .await
        .unwrap();
    m.spawn(p("sp"), "sp".into(), Body::empty()).await.unwrap();
    let r = m.ask(&p("sp"), ("boom", Body::empty())).await;
    println!("ask -> {r:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let crashes: u64 = m.star_stats().iter().map(|s| s.crashes).sum();
    println!(
        "crashes={crashes} parent={:?} kid={:?}",
        m.record(&p("sp")).map(|r| r.status),
        m.record(&p("sp:kid")).map(|r| (r.status, r.parent))
    );
    assert_eq!(crashes, 1, "a panic in handle should be a crash");
    assert!(
        m.record(&p("sp")).is_some(),
        "it should have been restarted"
    );
}

/// spawn_nowait from a thread without a tokio runtime: tokio::spawn panics
/// after `launched = true`, leaving a registered particle that never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_from_a_plain_thread_works() {
    let m = machine().await;
    let m2 = m.clone();
    let joined = std::thread::spawn(move || {
        m2.spawn_nowait(p("z"), "r".into(), Body::empty())
            .map(|_| ())
    })
    .join();
    println!("spawn_nowait from std thread: {joined:?}");
    assert!(
        matches!(joined, Ok(Ok(()))),
        "spawned from a thread with no runtime"
    );
    println!("record z: {:?}", m.record(&p("z")));
    no_hang("stop z", m.stop(&p("z"))).await.unwrap();
}

/// A child that crashes while a stop is pending is not restarted, yet the
/// Star counts a restart and the parent is told it was restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_stopping_is_no_restart() {
    let r = R::default();
    let m = one_star(&r).await;
    m.spawn(p("q"), "r".into(), Body::from_u64(1))
        .await
        .unwrap();
    m.signal(&p("q:c0"), ("quit-and-crash", Body::empty()))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = m.star_stats()[0];
    println!(
        "stats={st:?} log={:?} c0={:?}",
        r.log.lock(),
        m.record(&p("q:c0"))
    );
    assert!(m.record(&p("q:c0")).is_none(), "c0 stopped");
    assert_eq!(st.restarts, 0, "no restart happened");
}

static STASH: Mutex<Option<Ctx>> = Mutex::new(None);

struct Stasher;
impl Particle for Stasher {
    type State = ();
    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<(), ParticleError> {
        *STASH.lock() = Some(ctx.clone());
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
}

/// A Ctx kept past its particle's end can still spawn children under the
/// dead particle: `launch` skips every parent check when given a cell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_ctx_cannot_spawn_under_a_dead_parent() {
    let m = Machine::standalone()
        .stars(1)
        .kind("st", Stasher)
        .build()
        .await
        .unwrap();
    m.spawn(p("dead"), "st".into(), Body::empty())
        .await
        .unwrap();
    m.stop(&p("dead")).await.unwrap();
    let ctx = STASH.lock().take().unwrap();
    let r = ctx.spawn_child("ghost", &"st".into(), Body::empty());
    tokio::time::sleep(Duration::from_millis(20)).await;
    println!(
        "spawn_child under dead parent -> {:?}; record {:?}; stop(dead) -> {:?}",
        r.as_ref().map(|l| l.point().clone()),
        m.record(&p("dead:ghost")),
        m.stop(&p("dead")).await
    );
    assert!(r.is_err(), "NoParent expected");
}

/// Notices about the crashed incarnation's children reach the new incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_notices_do_not_reach_the_new_incarnation() {
    let r = R::default();
    let m = one_star(&r).await;
    m.spawn(p("q"), "r".into(), Body::from_u64(1))
        .await
        .unwrap();
    m.signal(&p("q:c0"), ("crash-slow", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    m.signal(&p("q"), ("crash", Body::empty())).unwrap();
    m.signal(&p("q"), ("x", Body::empty())).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rec = m.record(&p("q:c0")).unwrap();
    println!(
        "log={:?} q.restarts={} new c0.restarts={}",
        r.log.lock(),
        m.record(&p("q")).unwrap().restarts,
        rec.restarts
    );
    assert!(
        r.log.lock().is_empty(),
        "new incarnation told about a child it never had"
    );
}

struct Dropper;
impl Driver for Dropper {
    fn launch(&self, _l: Launch) {}
}

/// A dropped Launch: spawn_nowait says Ok for a particle that never existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_launch_fails_the_spawn() {
    let m = Machine::standalone()
        .stars(1)
        .driver("d", Arc::new(Dropper))
        .build()
        .await
        .unwrap();
    let r = m.spawn_nowait(p("d"), "d".into(), Body::empty());
    println!(
        "spawn_nowait -> {:?}",
        r.as_ref().map(|l| l.point().clone())
    );
    assert!(r.is_err());
}

/// Never returns from its handler.
struct Stuck;
impl Particle for Stuck {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        std::future::pending::<()>().await;
        Ok(Body::empty())
    }
}

/// OTP's shutdown timeout, then `brutal_kill`: a particle that does not stop
/// in time is killed, and its waiting requests are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_that_will_not_stop_is_killed_after_the_shutdown_timeout() {
    let m = Machine::standalone()
        .stars(1)
        .kind("stuck", Stuck)
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let lane = m
        .spawn(p("s"), "stuck".into(), Body::empty())
        .await
        .unwrap();
    lane.signal(("hang", Body::empty())).unwrap();
    let waiting = lane.ask(("behind", Body::empty())).within(None);
    no_hang("stop of a stuck particle", m.stop(&p("s")))
        .await
        .unwrap();
    assert!(m.record(&p("s")).is_none());
    assert_eq!(
        no_hang("the queued call", waiting).await.unwrap_err(),
        WaveError::Stopped { point: p("s") }
    );
    m.shutdown().await;
}
