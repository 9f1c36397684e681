//! Star threads (`MachineBuilder::star_threads`, `Launch::run_on_star_thread`):
//! a particle that runs on its Star's own thread stays there for its whole
//! life, restarts included, and keeps every guarantee of the shared
//! scheduler: per-sender order, crash notices and restarts, requests
//! between particles (also two of one thread), and its state dropped where
//! it lived when the Machine stops or its runtime goes away.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use hyperverse::*;
use parking_lot::Mutex;

fn thread() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

/// Says where it runs, counts and checks the order of numbered waves per
/// sender, asks its sibling when told, and tells `dropped` where its state
/// was dropped.
#[derive(Clone)]
struct Probe {
    dropped: Arc<Mutex<Option<mpsc::Sender<String>>>>,
}

struct ProbeState {
    started_on: String,
    seen: u64,
    last: HashMap<u64, u64>,
    dropped: Option<mpsc::Sender<String>>,
}

impl Drop for ProbeState {
    fn drop(&mut self) {
        if let Some(tx) = &self.dropped {
            let _ = tx.send(thread());
        }
    }
}

impl Particle for Probe {
    type State = ProbeState;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<ProbeState, ParticleError> {
        Ok(ProbeState {
            started_on: thread(),
            seen: 0,
            last: HashMap::new(),
            dropped: self.dropped.lock().clone(),
        })
    }

    async fn handle(&self, ctx: &Ctx, s: &mut ProbeState, w: Wave) -> Result<Body, ParticleError> {
        s.seen += 1;
        match &*w.method {
            "where" => {
                if thread() != s.started_on {
                    return Err(format!("moved from {} to {}", s.started_on, thread()).into());
                }
                Ok(Body::from(thread().into_bytes()))
            }
            "restarts" => Ok(Body::from_u64(ctx.restarts() as u64)),
            "kids" => Ok(Body::from_u64(ctx.child_count() as u64)),
            "seen" => Ok(Body::from_u64(s.seen)),
            "fail" => Err("told to fail".into()),
            "order" => {
                let b = w.body.as_bytes();
                let sender = u64::from_le_bytes(b[..8].try_into()?);
                let n = u64::from_le_bytes(b[8..16].try_into()?);
                let last = s.last.entry(sender).or_insert(0);
                if n != *last + 1 {
                    return Err(format!("sender {sender}: {n} after {last}").into());
                }
                *last = n;
                Ok(Body::empty())
            }
            // Sends `count` numbered waves to the Point in the body, as sender `id`.
            "flood" => {
                let b = w.body.as_bytes();
                let id = u64::from_le_bytes(b[..8].try_into()?);
                let count = u64::from_le_bytes(b[8..16].try_into()?);
                let to: Point = std::str::from_utf8(&b[16..])?.parse()?;
                for n in 1..=count {
                    let mut body = id.to_le_bytes().to_vec();
                    body.extend_from_slice(&n.to_le_bytes());
                    ctx.signal_waiting(&to, ("order", Body::from(body))).await?;
                }
                Ok(Body::empty())
            }
            // Asks the Point in the body `where` 1,000 times.
            "ask-many" => {
                let to: Point = w.body.as_str()?.parse()?;
                let mut last = Body::empty();
                for _ in 0..1000 {
                    last = ctx.ask(&to, ("where", Body::empty())).await?;
                }
                Ok(last)
            }
            "child" => {
                ctx.spawn_child(w.body.as_str()?, &Kind::new("probe"), Body::empty())?;
                Ok(Body::empty())
            }
            _ => Ok(Body::empty()),
        }
    }
}

fn probe() -> (Probe, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    (
        Probe {
            dropped: Arc::new(Mutex::new(Some(tx))),
        },
        rx,
    )
}

async fn where_is(m: &Machine, at: &Point) -> String {
    let reply = m.ask(at, ("where", Body::empty())).await.unwrap();
    String::from_utf8(reply.as_bytes().to_vec()).unwrap()
}

fn on(star: usize) -> SpawnOptions {
    SpawnOptions {
        star: Some(star),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_stays_on_its_stars_thread_through_waves_restarts_and_children() {
    let (probe, _drops) = probe();
    let m = Machine::standalone()
        .stars(2)
        .star_threads(true)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    assert_eq!(m.running_star_threads(), 0, "started on first use");
    m.spawn_with(p("a"), Kind::new("probe"), Body::empty(), on(0))
        .await
        .unwrap();
    m.spawn_with(p("b"), Kind::new("probe"), Body::empty(), on(1))
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(where_is(&m, &p("a")).await, "hv-star-0");
        assert_eq!(where_is(&m, &p("b")).await, "hv-star-1");
    }
    assert_eq!(m.running_star_threads(), 2);

    // A crash: the restart runs on the same thread.
    m.signal(&p("a"), ("fail", Body::empty())).unwrap();
    let restarts = m.ask(&p("a"), ("restarts", Body::empty())).await.unwrap();
    assert_eq!(restarts.as_u64(), Some(1));
    assert_eq!(where_is(&m, &p("a")).await, "hv-star-0");

    // A child goes on its parent's Star, so on its thread.
    assert_eq!(
        m.ask(&p("b"), ("kids", Body::empty()))
            .await
            .unwrap()
            .as_u64(),
        Some(0)
    );
    m.ask(&p("b"), ("child", "kid")).await.unwrap();
    assert_eq!(where_is(&m, &p("b:kid")).await, "hv-star-1");
    assert_eq!(
        m.ask(&p("b"), ("kids", Body::empty()))
            .await
            .unwrap()
            .as_u64(),
        Some(1)
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_from_many_senders_on_both_schedulers_arrive_in_order() {
    const PER: u64 = 5_000;
    let (probe, _drops) = probe();
    let m = Machine::standalone()
        .stars(2)
        .star_threads(true)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    let sink = p("sink");
    m.spawn_with(sink.clone(), Kind::new("probe"), Body::empty(), on(1))
        .await
        .unwrap();
    // Two sender particles, one on each Star's thread...
    let mut floods = Vec::new();
    for (id, star) in [(1u64, 0usize), (2, 1)] {
        let at = p(&format!("sender{id}"));
        m.spawn_with(at.clone(), Kind::new("probe"), Body::empty(), on(star))
            .await
            .unwrap();
        let mut body = id.to_le_bytes().to_vec();
        body.extend_from_slice(&PER.to_le_bytes());
        body.extend_from_slice(b"sink");
        let m = m.clone();
        floods.push(tokio::spawn(async move {
            m.ask(&at, ("flood", Body::from(body)))
                .within(Duration::from_secs(60))
                .await
                .unwrap();
        }));
    }
    // ...and four tasks on the Machine's tokio runtime.
    for id in 3u64..=6 {
        let m = m.clone();
        let sink = sink.clone();
        floods.push(tokio::spawn(async move {
            for n in 1..=PER {
                let mut body = id.to_le_bytes().to_vec();
                body.extend_from_slice(&n.to_le_bytes());
                m.signal_waiting(&sink, ("order", Body::from(body)))
                    .await
                    .unwrap();
            }
        }));
    }
    for f in floods {
        f.await.unwrap();
    }
    let seen = m.ask(&sink, ("seen", Body::empty())).await.unwrap();
    assert_eq!(seen.as_u64(), Some(6 * PER + 1), "every wave, and this ask");
    assert_eq!(
        m.record(&sink).unwrap().restarts,
        0,
        "no wave out of order (it would have crashed the sink)"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_between_two_particles_of_one_thread_do_not_wait_on_each_other() {
    let (probe, _drops) = probe();
    let m = Machine::standalone()
        .stars(1)
        .star_threads(true)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    for at in ["asker", "answerer"] {
        m.spawn(p(at), Kind::new("probe"), Body::empty())
            .await
            .unwrap();
    }
    let reply = m
        .ask(&p("asker"), ("ask-many", "answerer"))
        .within(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.as_bytes(), b"hv-star-0");
    let seen = m
        .ask(&p("answerer"), ("seen", Body::empty()))
        .await
        .unwrap();
    assert_eq!(seen.as_u64(), Some(1001));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_may_put_its_kind_alone_on_star_threads() {
    let (probe, _drops) = probe();
    let m = Machine::standalone()
        .stars(2)
        .kind("probe", probe.clone())
        .driver(
            "pinned",
            Arc::new(ParticleDriver::new(probe).on_star_thread()),
        )
        .build()
        .await
        .unwrap();
    m.spawn_with(p("free"), Kind::new("probe"), Body::empty(), on(1))
        .await
        .unwrap();
    m.spawn_with(p("pinned"), Kind::new("pinned"), Body::empty(), on(1))
        .await
        .unwrap();
    assert_eq!(where_is(&m, &p("pinned")).await, "hv-star-1");
    assert!(
        !where_is(&m, &p("free")).await.starts_with("hv-star"),
        "the shared scheduler runs the others"
    );
    assert_eq!(m.running_star_threads(), 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_are_dropped_on_their_thread_at_shutdown() {
    let (probe, drops) = probe();
    let m = Machine::standalone()
        .stars(1)
        .star_threads(true)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    m.spawn(p("a"), Kind::new("probe"), Body::empty())
        .await
        .unwrap();
    m.shutdown().await;
    let dropped_on =
        tokio::task::spawn_blocking(move || drops.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("the state is dropped");
    assert_eq!(dropped_on, "hv-star-0");
}

/// A Machine never shut down, whose runtime is dropped: its Star thread
/// ends too, dropping what it still held there.
#[test]
fn a_star_thread_ends_with_the_runtime_its_machine_was_built_on() {
    let (probe, drops) = probe();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = Machine::standalone()
            .stars(1)
            .star_threads(true)
            .kind("probe", probe)
            .build()
            .await
            .unwrap();
        m.spawn(p("a"), Kind::new("probe"), Body::empty())
            .await
            .unwrap();
        assert_eq!(where_is(&m, &p("a")).await, "hv-star-0");
    });
    drop(rt);
    let dropped_on = drops
        .recv_timeout(Duration::from_secs(10))
        .expect("the Star thread ended and dropped the state");
    assert_eq!(dropped_on, "hv-star-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_runs_on_a_stars_thread_until_the_machine_stops_them() {
    let (probe, _drops) = probe();
    let m = Machine::standalone()
        .stars(2)
        .kind("probe", probe)
        .build()
        .await
        .unwrap();
    let on = m
        .spawn_on_star(1, async { thread() })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(on, "hv-star-1");
    assert!(matches!(
        m.spawn_on_star(2, async {}),
        Err(StarThreadError::NoSuchStar { star: 2, stars: 2 })
    ));
    assert_eq!(m.running_star_threads(), 1);
    m.shutdown().await;
    assert_eq!(m.running_star_threads(), 0, "stopped at shutdown");
    assert!(matches!(
        m.spawn_on_star(0, async {}),
        Err(StarThreadError::Unavailable { .. })
    ));
}
