//! How particles end: parents take their children with them, stopping from
//! inside a particle does not deadlock, and the edges of spawning and
//! requesting give typed answers.

use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{eventually, p};
use hyperverse::*;
use parking_lot::Mutex;

/// Logs what happens to it; spawns `args` children named `c0`, `c1`, … in
/// `start`; obeys a few commands.
#[derive(Clone, Default)]
struct Node {
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn log(&self) -> Vec<String> {
        self.log.lock().clone()
    }
}

impl Particle for Node {
    type State = Vec<String>;

    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<Vec<String>, ParticleError> {
        self.log.lock().push(format!("start {}", ctx.me()));
        for i in 0..args.as_u64().unwrap_or(0) {
            ctx.spawn_child(&format!("c{i}"), ctx.kind(), Body::empty())?;
        }
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        seen: &mut Vec<String>,
        w: Wave,
    ) -> Result<Body, ParticleError> {
        seen.push(w.method.to_string());
        match &*w.method {
            "stop-me" => ctx.machine().stop(ctx.me()).await?,
            "stop-parent" => ctx.machine().stop(ctx.parent().ok_or("no parent")?).await?,
            "shutdown" => ctx.machine().shutdown().await,
            "quit" => ctx.stop(),
            "crash" => return Err("told to crash".into()),
            "call-me" => {
                let me = ctx.particle(ctx.me())?;
                let err = me.ask(("x", Body::empty())).within(None).await.unwrap_err();
                return Ok(Body::from(err.to_string()));
            }
            "seen" => return Ok(Body::encode(seen)?),
            _ => {}
        }
        Ok(Body::empty())
    }

    async fn stop(&self, ctx: &Ctx, _: Vec<String>) {
        self.log.lock().push(format!("stop {}", ctx.me()));
    }
}

async fn machine(node: &Node) -> Machine {
    Machine::standalone()
        .stars(2)
        .kind("node", node.clone())
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_can_stop_itself_its_parent_or_the_machine_without_deadlock() {
    let node = Node::default();
    let m = machine(&node).await;
    m.spawn(p("a"), "node".into(), Body::from_u64(2))
        .await
        .unwrap();
    eventually("children up", || m.registry().len() == 3).await;

    // Stopping itself from its own handler: the reply still comes back.
    m.ask(&p("a:c0"), ("stop-me", Body::empty())).await.unwrap();
    eventually("a:c0 gone", || m.record(&p("a:c0")).is_none()).await;

    // Stopping its parent (and so itself) from inside.
    m.ask(&p("a:c1"), ("stop-parent", Body::empty()))
        .await
        .unwrap();
    eventually("all gone", || m.registry().is_empty()).await;
    let log = node.log();
    let pos = |s: &str| {
        log.iter()
            .position(|l| l == s)
            .unwrap_or_else(|| panic!("{s} in {log:?}"))
    };
    assert!(
        pos("stop a:c1") < pos("stop a"),
        "children before parents: {log:?}"
    );

    // Shutting the whole Machine down from inside a particle.
    m.spawn(p("b"), "node".into(), Body::from_u64(3))
        .await
        .unwrap();
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        m.ask(&p("b:c2"), ("shutdown", Body::empty())),
    )
    .await
    .expect("no deadlock");
    asked.unwrap();
    m.shutdown().await; // returns once the first shutdown is done…
                        // …which could not wait for the caller and its parent: they end next.
    eventually("all gone", || m.registry().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_takes_its_children_with_it() {
    let node = Node::default();
    let m = machine(&node).await;
    m.spawn(p("a"), "node".into(), Body::from_u64(3))
        .await
        .unwrap();
    eventually("children up", || m.registry().len() == 4).await;

    // A crash restarts the parent; its children were stopped first, and its
    // new `start` spawns them afresh (no `AlreadyExists` loop).
    m.signal(&p("a"), ("crash", Body::empty())).unwrap();
    eventually("restarted", || {
        m.record(&p("a"))
            .is_some_and(|r| r.restarts == 1 && r.status == Status::Ready && r.children.len() == 3)
    })
    .await;
    let log = node.log();
    assert_eq!(
        log.iter().filter(|l| *l == "start a:c0").count(),
        2,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| *l == "stop a:c0").count(),
        1,
        "{log:?}"
    );

    // A parent that stops itself stops its children first.
    m.signal(&p("a"), ("quit", Body::empty())).unwrap();
    eventually("all gone", || m.registry().is_empty()).await;
    let log = node.log();
    let last = log.len() - 1;
    assert_eq!(log[last], "stop a", "{log:?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_needs_a_live_parent() {
    let node = Node::default();
    let m = machine(&node).await;
    let err = m
        .spawn(p("x:y"), "node".into(), Body::empty())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SpawnError::NoParent {
            point: p("x:y"),
            parent: p("x")
        }
    );
    let tight = SpawnOptions {
        restart_limit: Some(RestartLimit {
            max_restarts: 0,
            period: Duration::from_secs(1),
            backoff: None,
        }),
        ..Default::default()
    };
    m.spawn_with(p("x"), "node".into(), Body::empty(), tight)
        .await
        .unwrap();
    m.signal(&p("x"), ("crash", Body::empty())).unwrap();
    // A given-up particle leaves the Registry (its record used to stay).
    eventually("given up", || m.record(&p("x")).is_none()).await;
    let err = m
        .spawn(p("x:y"), "node".into(), Body::empty())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SpawnError::NoParent { .. }),
        "a given-up parent is no parent: {err:?}"
    );

    let bad = SpawnOptions {
        restart_limit: Some(RestartLimit {
            max_restarts: 1,
            period: Duration::ZERO,
            backoff: None,
        }),
        ..Default::default()
    };
    let err = m
        .spawn_with(p("z"), "node".into(), Body::empty(), bad)
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::BadRestartLimit { .. }), "{err:?}");
    assert!(m.record(&p("z")).is_none());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_queued_when_made_and_edge_timeouts_behave() {
    let node = Node::default();
    let m = machine(&node).await;
    let lane = m.spawn(p("a"), "node".into(), Body::empty()).await.unwrap();

    // The request is queued at the call, ahead of the signal sent after it.
    let asked = lane
        .ask(("first", Body::empty()))
        .within(Duration::from_secs(5));
    lane.signal(("second", Body::empty())).unwrap();
    asked.await.unwrap();
    let seen = lane
        .ask(("seen", Body::empty()))
        .within(None)
        .await
        .unwrap();
    let seen: Vec<String> = seen.decode().unwrap();
    assert_eq!(seen, ["first", "second", "seen"]);

    // A timeout too large for the clock means no deadline, not a panic.
    let r = lane.ask(("x", Body::empty())).within(Duration::MAX).await;
    assert!(r.is_ok());

    // A particle calling itself gets an error at once instead of waiting forever.
    let reply = m.ask(&p("a"), ("call-me", Body::empty())).await.unwrap();
    assert_eq!(
        String::from_utf8(reply.as_bytes().to_vec()).unwrap(),
        WaveError::CallingSelf { point: p("a") }.to_string()
    );
    m.shutdown().await;
}

/// Fails every `start`.
struct Hopeless;

impl Particle for Hopeless {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Err("cannot start".into())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
}

/// Drops its `Launch`: a faulty Driver.
struct Forgetful;

impl Driver for Forgetful {
    fn launch(&self, _launch: Launch) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_starts_roll_trees_back_and_faulty_drivers_leave_no_zombie() {
    let node = Node::default();
    let m = Machine::standalone()
        .stars(2)
        .kind("node", node.clone())
        .kind("hopeless", Hopeless)
        .driver("forgetful", Arc::new(Forgetful))
        .restart_limit(1, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let spec = TreeSpec::new("t", "node")
        .child(TreeSpec::new("ok", "node"))
        .child(TreeSpec::new("bad", "hopeless"));
    let err = m.spawn_tree(&Point::root(), &spec).await.unwrap_err();
    assert!(
        matches!(&err, SpawnError::StartFailed { point, .. } if point.as_str() == "t:bad"),
        "{err:?}"
    );
    assert!(
        m.registry().is_empty(),
        "{:?}",
        m.registry().subtree(&Point::root())
    );

    let err = m
        .spawn(p("f"), "forgetful".into(), Body::empty())
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::StartFailed { .. }), "{err:?}");
    assert!(m.record(&p("f")).is_none(), "the Point is free again");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_what_the_runtime_did_in_order() {
    let node = Node::default();
    let m = machine(&node).await;
    let mut events = m.events();
    m.spawn(p("e"), "node".into(), Body::empty()).await.unwrap();
    m.signal(&p("e"), ("crash", Body::empty())).unwrap();
    eventually("restart", || {
        m.record(&p("e")).is_some_and(|r| r.restarts == 1)
    })
    .await;
    m.stop(&p("e")).await.unwrap();
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(match e {
            Event::Spawned { point, .. } => format!("spawned {point}"),
            Event::Crashed(n) => format!("crashed {} ({})", n.child, n.reason),
            Event::Restarted { point, restarts } => format!("restarted {point} #{restarts}"),
            Event::Stopped { point } => format!("stopped {point}"),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            "spawned e",
            "crashed e (told to crash)",
            "restarted e #1",
            "stopped e"
        ]
    );
    m.shutdown().await;
}
