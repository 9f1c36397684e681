//! Spawn: the time and memory one idle actor costs. N actors of a trivial
//! kind are spawned and kept alive; the figures are microseconds per actor
//! (until every one has started) and KB of RSS per live idle actor.
//!
//! Hyperverse is measured two ways, each in its own process:
//! - `Machine::spawn` awaits the particle's `start`, as ractor's
//!   `Actor::spawn` awaits `pre_start`: the like-for-like comparison.
//! - `Machine::spawn_nowait` returns at once, as Erlang's `spawn` does; the
//!   clock still runs until every particle has started, so both figures are
//!   "N started actors", only the waiting differs.
//!
//! Baseline: raw ractor `Actor::spawn` of an actor with no state.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyperverse::{Body, Ctx, Kind, Machine, Particle, ParticleError, Point, Wave};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Notify;

use crate::measure::{rss_kb, settle, us_per, Measured};
use crate::Sizes;

/// How the Hyperverse side spawns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Machine::spawn`: awaits each `start`.
    Await,
    /// `Machine::spawn_nowait`: fire and forget.
    NoWait,
}

/// Counts started particles, so that the driver knows when the last
/// `spawn_nowait`-ed one is up.
struct Started {
    count: AtomicUsize,
    target: usize,
    all: Notify,
}

/// An idle particle: it only counts that it started.
struct Idle(Arc<Started>);

impl Particle for Idle {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        let started = &self.0;
        if started.count.fetch_add(1, Ordering::Relaxed) + 1 == started.target {
            // notify_one keeps a permit if the driver is not waiting yet.
            started.all.notify_one();
        }
        Ok(())
    }

    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
}

/// The two spawn figures: µs per actor, and KB of RSS per live actor from
/// the readings before and after (the handles kept are a few bytes of that).
fn figures(n: usize, us: f64, before_kb: u64, after_kb: u64) -> (Measured, Measured) {
    let kb = after_kb.saturating_sub(before_kb) as f64 / n as f64;
    (
        Measured::once("spawn", "us/actor", us).with("actors", n),
        Measured::once("spawn_rss", "KB/actor", kb)
            .with("rss_before_kb", before_kb)
            .with("rss_after_kb", after_kb)
            .with("actors", n),
    )
}

/// Hyperverse: `spawn_n` top-level particles, kept alive until measured.
pub async fn hyperverse(s: &Sizes, mode: Mode) -> Result<Vec<Measured>, Box<dyn Error>> {
    let n = s.spawn_n;
    let started = Arc::new(Started {
        count: AtomicUsize::new(0),
        target: n,
        all: Notify::new(),
    });
    let machine = Machine::standalone()
        .kind("idle", Idle(started.clone()))
        .build()
        .await?;
    let kind = Kind::new("idle");
    settle().await;
    let before = rss_kb();
    let t = Instant::now();
    let mut lanes = Vec::with_capacity(n);
    for i in 0..n {
        // Making the Point is part of spawning a particle: the user must.
        let at = Point::parse(&format!("idle-{i}"))?;
        let lane = match mode {
            Mode::Await => machine.spawn(at, kind.clone(), Body::empty()).await?,
            Mode::NoWait => machine.spawn_nowait(at, kind.clone(), Body::empty())?,
        };
        lanes.push(lane);
    }
    let issued = t.elapsed();
    started.all.notified().await;
    let elapsed = t.elapsed();
    settle().await;
    let after = rss_kb();
    let (time, rss) = figures(n, us_per(elapsed, n as u64), before, after);
    let time = time
        .with(
            "call",
            if mode == Mode::Await {
                "Machine::spawn"
            } else {
                "Machine::spawn_nowait"
            },
        )
        .with(
            "issue_us",
            (us_per(issued, n as u64) * 1000.0).round() / 1000.0,
        );

    let t = Instant::now();
    machine.shutdown().await;
    let time = time.with("stop_all_ms", t.elapsed().as_secs_f64() * 1e3);
    drop(lanes);
    Ok(vec![time, rss])
}

// ------------------------------------------------------------ ractor baseline

struct RactorIdle;

impl Actor for RactorIdle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// Raw ractor: `spawn_n` actors with `Actor::spawn` (awaits `pre_start`).
pub async fn ractor(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let n = s.spawn_n;
    settle().await;
    let before = rss_kb();
    let t = Instant::now();
    let mut actors = Vec::with_capacity(n);
    for _ in 0..n {
        actors.push(Actor::spawn(None, RactorIdle, ()).await?);
    }
    let elapsed = t.elapsed();
    settle().await;
    let after = rss_kb();
    let (time, rss) = figures(n, us_per(elapsed, n as u64), before, after);
    let time = time.with("call", "ractor::Actor::spawn");

    let t = Instant::now();
    for (actor, _) in &actors {
        actor.stop(None);
    }
    for (_, handle) in actors {
        let _ = handle.await;
    }
    let time = time.with("stop_all_ms", t.elapsed().as_secs_f64() * 1e3);
    Ok(vec![time, rss])
}
