//! Links across Stars: an abnormal end takes the linked particle with it
//! (its supervisor then restarts it), unless it traps exits; a normal end
//! reaches only those that trap; links belong to an incarnation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, on, p};
use hyperverse::*;
use parking_lot::Mutex;

/// Links on "link", traps exits when started with a body "trap", records
/// exit signals, crashes on "crash", stops on "quit".
#[derive(Clone, Default)]
struct Peer {
    signals: Arc<Mutex<Vec<(String, ExitSignal)>>>,
}

impl Particle for Peer {
    type State = ();
    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<(), ParticleError> {
        ctx.trap_exits(args.as_bytes() == b"trap");
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "link" => ctx.link(&w.body.as_str()?.parse()?)?,
            "unlink" => ctx.unlink(&w.body.as_str()?.parse()?),
            "crash" => return Err("peer crashed".into()),
            "quit" => ctx.stop(),
            _ => {}
        }
        Ok(Body::empty())
    }
    async fn exit_signal(&self, ctx: &Ctx, _: &mut (), s: ExitSignal) -> Result<(), ParticleError> {
        self.signals.lock().push((ctx.me().to_string(), s));
        Ok(())
    }
}

async fn pair(b_args: &'static str) -> (Machine, Peer) {
    let peer = Peer::default();
    let m = Machine::standalone()
        .stars(2)
        .kind("peer", peer.clone())
        .restart_limit(10, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    m.spawn_with(p("a"), "peer".into(), Body::empty(), on(0))
        .await
        .unwrap();
    m.spawn_with(p("b"), "peer".into(), Body::from(b_args), on(1))
        .await
        .unwrap();
    m.ask(&p("a"), ("link", "b")).await.unwrap();
    (m, peer)
}

fn restarts(m: &Machine, at: &str) -> u32 {
    m.record(&p(at)).unwrap().restarts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_takes_the_linked_particle_with_it_both_ways() {
    let (m, _) = pair("").await;
    assert_ne!(
        m.record(&p("a")).unwrap().star,
        m.record(&p("b")).unwrap().star
    );
    let mut events = m.events();
    m.signal(&p("b"), ("crash", Body::empty())).unwrap();
    eventually("both restarted", || {
        restarts(&m, "a") == 1 && restarts(&m, "b") == 1
    })
    .await;
    let mut a_reason = None;
    while let Ok(e) = events.try_recv() {
        if let Event::Crashed(n) = e {
            if n.child.as_str() == "a" {
                a_reason = Some(n.reason);
            }
        }
    }
    assert_eq!(a_reason.as_deref(), Some("linked b crashed: peer crashed"));

    // The links went with the crashed incarnations: another crash is b's alone.
    m.signal(&p("b"), ("crash", Body::empty())).unwrap();
    eventually("b restarted again", || restarts(&m, "b") == 2).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(restarts(&m, "a"), 1);

    // Linked again, the other way round.
    m.ask(&p("b"), ("link", "a")).await.unwrap();
    m.signal(&p("a"), ("crash", Body::empty())).unwrap();
    eventually("b follows a", || restarts(&m, "b") == 3).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_that_traps_exits_gets_a_signal_instead() {
    let (m, peer) = pair("trap").await;
    m.signal(&p("a"), ("crash", Body::empty())).unwrap();
    eventually("a signal", || !peer.signals.lock().is_empty()).await;
    let (to, signal) = peer.signals.lock()[0].clone();
    assert_eq!(
        (to.as_str(), signal.from.as_str(), signal.normal),
        ("b", "a", false)
    );
    assert_eq!(signal.reason, "peer crashed");
    assert_eq!(restarts(&m, "b"), 0, "b lives on");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_end_reaches_only_particles_that_trap() {
    let (m, peer) = pair("trap").await;
    // b traps: a's normal end reaches it as a normal signal.
    m.signal(&p("a"), ("quit", Body::empty())).unwrap();
    eventually("a normal signal", || !peer.signals.lock().is_empty()).await;
    assert!(peer.signals.lock()[0].1.normal);

    // Without trapping, a normal end changes nothing.
    let (m2, _) = pair("").await;
    m2.signal(&p("b"), ("quit", Body::empty())).unwrap();
    eventually("b gone", || m2.record(&p("b")).is_none()).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(restarts(&m2, "a"), 0);
    m.shutdown().await;
    m2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_pair_is_independent_and_linking_to_nothing_fails() {
    let (m, _) = pair("").await;
    m.ask(&p("a"), ("unlink", "b")).await.unwrap();
    m.signal(&p("b"), ("crash", Body::empty())).unwrap();
    eventually("b restarted", || restarts(&m, "b") == 1).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(restarts(&m, "a"), 0, "unlinked: b's crash is b's alone");

    // Linking to a Point with no particle is a typed error (here it
    // crashes the handler that asked, which propagated it with `?`).
    let err = m.ask(&p("a"), ("link", "nobody")).await.unwrap_err();
    assert!(
        matches!(&err, WaveError::Crashed { reason, .. } if reason.contains("no particle at nobody")),
        "{err:?}"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_stopped_from_outside_ends_with_shutdown_which_links_carry() {
    // OTP: a child its supervisor terminates exits with `shutdown`, which
    // is not normal: a linked process that does not trap exits dies too.
    let (m, _) = pair("").await;
    m.stop(&p("b")).await.unwrap();
    eventually("a restarted", || restarts(&m, "a") == 1).await;

    let (m2, peer) = pair("trap").await;
    m2.stop(&p("a")).await.unwrap();
    eventually("a signal", || !peer.signals.lock().is_empty()).await;
    let signal = peer.signals.lock()[0].1.clone();
    assert_eq!((signal.reason.as_str(), signal.normal), ("shutdown", false));
    assert_eq!(restarts(&m2, "b"), 0, "b traps: it lives on");
    m.shutdown().await;
    m2.shutdown().await;
}
