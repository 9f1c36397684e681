//! The demo's hot-reload step: WASM counters written in C with the guest
//! SDK (`modules/sdk/c/examples/counter.c`, run from its prebuilt module,
//! `guests::C_COUNTER_V1`, so no C compiler is needed) take `add` waves
//! from several sender tasks, and are reloaded to v2 (`counter_v2.c`,
//! `guests::C_COUNTER_V2`) in the middle of it. v2 keeps the count but
//! answers `version` with 2 where v1 answers 1, so the step can check, from
//! the particles themselves, that every one of them ran v1 before and runs
//! v2 after, that the counts add up to the waves sent (none lost in the
//! swap), and that the Registry shows the new version.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::modules::{guests, ReloadReport, WasmHost, WasmKind};
use hyperverse::{Body, Kind, Machine, ParticleRef, Point};
use tokio::task::JoinSet;

use super::particles::REGION;
use super::Error;

/// The WASM module the step runs, as `Kind::wasm(MODULE)`.
pub const MODULE: &str = "counter";
/// The parent of the WASM counters (a region particle, which would hear of
/// any crash).
pub const PARENT: &str = "hot";

/// What the step saw.
#[derive(Debug)]
pub struct HotReload {
    /// WASM counters spawned.
    pub particles: usize,
    /// `add` waves sent in all, and how many of them before the reload began.
    pub sent: u64,
    pub sent_before_reload: u64,
    /// The sum of every counter's count afterwards.
    pub counted: u64,
    /// The reload's report, or why there is none.
    pub report: Result<ReloadReport, String>,
    /// The counters that answered `version` with 1 before the waves began.
    pub on_v1_before: usize,
    /// The counters that answered `version` with 2, and with anything else.
    pub on_v2: usize,
    pub not_on_v2: Vec<String>,
    /// The counters whose Record shows code version 2.
    pub registry_v2: usize,
    /// Anything else that went wrong.
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl HotReload {
    /// The step could not run at all.
    fn failed(particles: usize, why: String, elapsed: Duration) -> Self {
        HotReload {
            particles,
            sent: 0,
            sent_before_reload: 0,
            counted: 0,
            report: Err(why.clone()),
            on_v1_before: 0,
            on_v2: 0,
            not_on_v2: Vec::new(),
            registry_v2: 0,
            failures: vec![why],
            elapsed,
        }
    }
}

/// Runs the step on `machine`, where `host` installed [`MODULE`] (v1,
/// [`guests::C_COUNTER_V1`], loaded).
pub async fn run(
    machine: &Machine,
    host: &WasmHost,
    particles: usize,
    waves: u64,
    senders: usize,
) -> HotReload {
    let started = Instant::now();
    match exercise(machine, host, particles, waves, senders).await {
        Ok(mut seen) => {
            seen.elapsed = started.elapsed();
            seen
        }
        Err(e) => HotReload::failed(particles, e.to_string(), started.elapsed()),
    }
}

async fn exercise(
    machine: &Machine,
    host: &WasmHost,
    particles: usize,
    waves: u64,
    senders: usize,
) -> Result<HotReload, Error> {
    let parent = Point::parse(PARENT)?;
    machine
        .spawn(parent.clone(), Kind::new(REGION), Body::empty())
        .await?;
    let mut lanes = Vec::with_capacity(particles);
    for i in 0..particles {
        let at = parent.child(&format!("counter-{i}"))?;
        lanes.push(machine.spawn(at, Kind::wasm(MODULE), Body::empty()).await?);
    }
    let lanes: Arc<[ParticleRef]> = lanes.into();
    let mut failures = Vec::new();
    let mut on_v1_before = 0;
    for lane in lanes.iter() {
        match machine.ask(lane.point(), ("version", Body::empty())).await {
            Ok(reply) if reply.as_bytes() == [1] => on_v1_before += 1,
            Ok(reply) => failures.push(format!(
                "{}: version {:?} before the reload",
                lane.point(),
                reply
            )),
            Err(e) => failures.push(format!("{}: {e}", lane.point())),
        }
    }

    // The senders, each with its share of the waves, round-robin over the
    // counters; they yield now and then so the stream spans the reload.
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for s in 0..senders {
        let share = waves / senders as u64 + u64::from((s as u64) < waves % senders as u64);
        let (lanes, sent, failed) = (lanes.clone(), sent.clone(), failed.clone());
        tasks.spawn(async move {
            let mut failures = Vec::new();
            for n in 0..share {
                let lane = &lanes[(n as usize * senders + s) % lanes.len()];
                match lane.signal(("add", Body::empty())) {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.push(e.to_string());
                    }
                }
                if n % 100 == 99 {
                    tokio::task::yield_now().await;
                }
            }
            failures
        });
    }

    // Reload once a quarter of the waves are out (sends that failed count
    // as out: they are reported, and must not keep the reload waiting).
    while sent.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < waves / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sent_before_reload = sent.load(Ordering::Relaxed);
    let report = host
        .reload(machine, MODULE, guests::C_COUNTER_V2)
        .await
        .map_err(|e| e.to_string());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(part) => failures.extend(part),
            Err(e) => failures.push(format!("a sender task failed: {e}")),
        }
    }

    // Each answer queues behind that counter's waves: once all are in,
    // every wave has been handled.
    let mut counted = 0;
    let (mut on_v2, mut not_on_v2, mut registry_v2) = (0, Vec::new(), 0);
    for lane in lanes.iter() {
        match machine.ask(lane.point(), ("get", Body::empty())).await {
            Ok(reply) => counted += reply.as_u64().unwrap_or_default(),
            Err(e) => failures.push(e.to_string()),
        }
        match machine.ask(lane.point(), ("version", Body::empty())).await {
            Ok(reply) if reply.as_bytes() == [2] => on_v2 += 1,
            Ok(reply) => not_on_v2.push(format!("{}: version {:?}", lane.point(), reply)),
            Err(e) => not_on_v2.push(format!("{}: {e}", lane.point())),
        }
        if machine
            .record(lane.point())
            .is_some_and(|r| r.code_version == 2)
        {
            registry_v2 += 1;
        }
    }
    Ok(HotReload {
        particles,
        sent: sent.load(Ordering::Relaxed),
        sent_before_reload,
        counted,
        report,
        on_v1_before,
        on_v2,
        not_on_v2,
        registry_v2,
        failures,
        elapsed: Duration::ZERO,
    })
}
