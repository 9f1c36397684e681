//! Monitors across Stars: exactly one down notice, with the reason, when the
//! watched particle ends, at once if it already has; none for a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, on, p};
use hyperverse::*;
use parking_lot::Mutex;

/// Watches on request; records its down notices.
#[derive(Clone, Default)]
struct Watcher {
    downs: Arc<Mutex<Vec<DownNotice>>>,
}

impl Particle for Watcher {
    type State = Vec<MonitorRef>;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<Vec<MonitorRef>, ParticleError> {
        Ok(Vec::new())
    }
    async fn handle(
        &self,
        ctx: &Ctx,
        refs: &mut Vec<MonitorRef>,
        w: Wave,
    ) -> Result<Body, ParticleError> {
        let target: Point = w.body.as_str()?.parse()?;
        match &*w.method {
            "watch" => refs.push(ctx.monitor(&target)),
            "unwatch" => {
                let r = refs.pop().ok_or("nothing watched")?;
                // A MonitorRef carries its target now.
                if r.target() != &target {
                    return Err(format!("{r} watches {}, not {target}", r.target()).into());
                }
                return Ok(Body::from_u64(u64::from(ctx.demonitor(&r))));
            }
            _ => {}
        }
        Ok(Body::empty())
    }
    async fn down(
        &self,
        _: &Ctx,
        _: &mut Vec<MonitorRef>,
        n: DownNotice,
    ) -> Result<(), ParticleError> {
        self.downs.lock().push(n);
        Ok(())
    }
}

/// Crashes on "crash", stops on "quit".
struct Target;

impl Particle for Target {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "crash" => Err("target crashed".into()),
            "quit" => {
                ctx.stop();
                Ok(Body::empty())
            }
            _ => Ok(Body::empty()),
        }
    }
}

async fn setup() -> (Machine, Watcher) {
    let watcher = Watcher::default();
    let m = Machine::standalone()
        .stars(2)
        .kind("watcher", watcher.clone())
        .kind("target", Target)
        .restart_limit(1, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    m.spawn_with(p("w"), "watcher".into(), Body::empty(), on(0))
        .await
        .unwrap();
    m.spawn_with(p("t"), "target".into(), Body::empty(), on(1))
        .await
        .unwrap();
    (m, watcher)
}

fn reasons(w: &Watcher) -> Vec<(String, DownReason)> {
    w.downs
        .lock()
        .iter()
        .map(|n| (n.target.to_string(), n.reason.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_one_down_notice_across_stars_and_a_restart_is_none() {
    let (m, watcher) = setup().await;
    assert_ne!(
        m.record(&p("w")).unwrap().star,
        m.record(&p("t")).unwrap().star
    );
    m.ask(&p("w"), ("watch", "t")).await.unwrap();
    // A crash that is restarted: the particle lives on, no down notice.
    m.signal(&p("t"), ("crash", Body::empty())).unwrap();
    eventually("restart", || m.record(&p("t")).unwrap().restarts == 1).await;
    m.ask(&p("t"), ("ping", Body::empty())).await.unwrap();
    assert!(reasons(&watcher).is_empty());
    // Its end: exactly one notice.
    m.signal(&p("t"), ("quit", Body::empty())).unwrap();
    eventually("down", || !watcher.downs.lock().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(reasons(&watcher), [("t".to_string(), DownReason::Stopped)]);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_on_a_dead_or_absent_particle_fires_at_once() {
    let (m, watcher) = setup().await;
    m.stop(&p("t")).await.unwrap();
    m.ask(&p("w"), ("watch", "t")).await.unwrap();
    m.ask(&p("w"), ("watch", "never-was")).await.unwrap();
    eventually("two downs", || watcher.downs.lock().len() == 2).await;
    assert_eq!(
        reasons(&watcher),
        [
            ("t".to_string(), DownReason::NoSuchParticle),
            ("never-was".to_string(), DownReason::NoSuchParticle)
        ]
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_up_particle_is_down_with_its_last_crash() {
    let (m, watcher) = setup().await;
    m.ask(&p("w"), ("watch", "t")).await.unwrap();
    // The limit is one restart: the second crash is given up.
    m.signal(&p("t"), ("crash", Body::empty())).unwrap();
    m.signal(&p("t"), ("crash", Body::empty())).unwrap();
    eventually("down", || !watcher.downs.lock().is_empty()).await;
    assert_eq!(
        reasons(&watcher),
        [("t".to_string(), DownReason::GaveUp("target crashed".into()))]
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_monitor_never_fires() {
    let (m, watcher) = setup().await;
    m.ask(&p("w"), ("watch", "t")).await.unwrap();
    let removed = m.ask(&p("w"), ("unwatch", "t")).await.unwrap();
    assert_eq!(removed.as_u64(), Some(1));
    m.stop(&p("t")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(reasons(&watcher).is_empty());
    // A monitor set from outside a particle works the same.
    m.spawn(p("t"), "target".into(), Body::empty())
        .await
        .unwrap();
    m.monitor(&p("w"), &p("t")).unwrap();
    m.stop(&p("t")).await.unwrap();
    eventually("down", || watcher.downs.lock().len() == 1).await;
    // Stopped from outside: a shutdown, not a normal exit.
    assert_eq!(reasons(&watcher), [("t".to_string(), DownReason::Shutdown)]);
    m.shutdown().await;
}
