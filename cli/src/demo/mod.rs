//! `hyperverse demo`: a tour of the runtime on an embedded Machine.
//!
//! It builds a standalone Machine, spawns a tree of regions and workers with
//! `Machine::spawn_tree`, sends waves from several sender tasks while
//! planned crashes happen, then asks the particles, the Registry and the
//! Stars what they saw and checks that it adds up. A fault phase runs a
//! seeded storm on a Machine of its own. Then a hot-reload step:
//! WASM counters written in C with the guest SDK take waves from several
//! senders and are reloaded from v1 to v2 mid-stream, and the counts must
//! still add up. The report is the point: every figure in it is read back
//! from the runtime, never assumed.

mod checks;
mod hot_reload;
mod particles;
mod plan;
mod report;
mod storm;
mod traffic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::modules::{guests, Limits, WasmHost};
use hyperverse::{Body, CrashNotice, Machine, ParticleRef, Point, Record, StarStats};

use hot_reload::HotReload;
use particles::{Region, Tally, Worker, NOTICES, PING, PLANNED_PANIC, REGION, WORKER};
use plan::Plan;
use traffic::Traffic;

/// Any failure that stops the demo before it can report.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Options of `hyperverse demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stars (virtual nodes) on the Machine [default: number of cores].
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub stars: Option<usize>,

    /// Region particles under the `demo` root, spread over the Stars.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub regions: usize,

    /// Worker particles, shared out evenly among the regions.
    #[arg(long, default_value_t = 1_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub particles: usize,

    /// `work` waves to send in all (one in four is a request, the rest signals).
    #[arg(long, default_value_t = 100_000)]
    pub waves: u64,

    /// Concurrent sender tasks sharing the waves.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub senders: usize,

    /// Workers to crash on purpose, mid-traffic (one of them by panicking).
    #[arg(long, default_value_t = 5)]
    pub crashes: usize,

    /// Seed choosing the wave targets and which workers crash, and when.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// WASM counter particles (written in C) in the hot-reload step.
    #[arg(long, default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub wasm_particles: usize,

    /// `add` waves sent to the WASM counters while they are reloaded (by
    /// `--senders` tasks).
    #[arg(long, default_value_t = 20_000)]
    pub wasm_waves: u64,

    /// How long the fault phase's storm runs, in milliseconds (0 skips it).
    #[arg(long, default_value_t = 1_500)]
    pub storm_ms: u64,
}

impl DemoArgs {
    /// Checks that span several options.
    pub fn validate(&self) -> Result<(), String> {
        if self.particles < self.regions {
            return Err(format!(
                "--particles ({}) must be at least --regions ({}): every region needs a worker",
                self.particles, self.regions
            ));
        }
        if self.crashes > self.particles {
            return Err(format!(
                "--crashes ({}) cannot exceed --particles ({}): each crash hits a different worker",
                self.crashes, self.particles
            ));
        }
        Ok(())
    }
}

/// Everything the demo planned and saw, for the checks and the report.
pub struct Findings {
    pub args: DemoArgs,
    pub plan: Plan,
    pub seen: Seen,
    /// Particles still registered after `shutdown`.
    pub left_after_shutdown: usize,
    /// The hot-reload step.
    pub hot: HotReload,
    /// The fault phase (`None` if skipped).
    pub storm: Option<storm::StormPhase>,
    pub timings: Timings,
}

/// What the demo read back from the runtime before shutting it down.
pub struct Seen {
    /// Points `spawn_tree` returned, in all.
    pub spawned: usize,
    /// Particles in the Registry right after spawning.
    pub registered: usize,
    /// Each region's Record, right after spawning.
    pub regions: Vec<Record>,
    pub traffic: Traffic,
    /// `work` waves the workers handled (signals, requests).
    pub handled: (u64, u64),
    /// Each worker's answer to a `ping` after the traffic: its restart count.
    pub pings: Vec<Result<u32, String>>,
    /// The crash notices each region reports having received.
    pub notices: Vec<Result<Vec<CrashNotice>, String>>,
    /// Each worker's Record after the traffic.
    pub records: Vec<Option<Record>>,
    pub star_stats: Vec<StarStats>,
}

/// How long each phase took.
#[derive(Debug, Default)]
pub struct Timings {
    pub spawn: Duration,
    /// Sending the waves, then pinging every worker until all are handled.
    pub waves: Duration,
    /// The hot-reload step, spawning included.
    pub hot_reload: Duration,
    pub shutdown: Duration,
    /// From parsing the plan to the end of shutdown.
    pub total: Duration,
}

/// Runs the demo and prints its report. `Ok(false)` means it ran but an
/// invariant failed (the report says which).
pub async fn run(args: DemoArgs) -> Result<bool, Error> {
    let started = Instant::now();
    let stars = args
        .stars
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let plan = Plan::new(&args, stars)?;
    silence_planned_panics();

    let tally = Arc::new(Tally::default());
    let host = WasmHost::builder().limits(Limits::default()).build();
    // The C counter, prebuilt (modules/sdk/c/prebuilt/): no C compiler needed.
    host.load(hot_reload::MODULE, guests::C_COUNTER_V1)?;
    let mut builder = Machine::standalone()
        .kind(REGION, Region)
        .kind(WORKER, Worker::new(tally.clone()));
    builder = host.install(builder, hot_reload::MODULE).stars(stars);
    let machine = builder.build().await?;
    report::header(&args, &plan, machine.stars());

    // Past this point the Machine must be shut down whatever happens.
    let mut timings = Timings::default();
    let seen = exercise(&machine, &plan, &tally, &mut timings).await;
    let hot = hot_reload::run(
        &machine,
        &host,
        args.wasm_particles,
        args.wasm_waves,
        args.senders,
    )
    .await;
    timings.hot_reload = hot.elapsed;
    // The fault phase runs on a Machine of its own.
    let storm = match args.storm_ms {
        0 => None,
        ms => Some(storm::run(args.seed, Duration::from_millis(ms)).await),
    };
    let t = Instant::now();
    machine.shutdown().await;
    timings.shutdown = t.elapsed();
    let left_after_shutdown = machine.registry().len();
    timings.total = started.elapsed();
    let findings = Findings {
        args,
        plan,
        seen: seen?,
        left_after_shutdown,
        hot,
        storm,
        timings,
    };
    Ok(report::print(&findings))
}

/// Spawns the tree, runs the traffic and collects what the runtime says.
async fn exercise(
    machine: &Machine,
    plan: &Plan,
    tally: &Tally,
    timings: &mut Timings,
) -> Result<Seen, Error> {
    let t = Instant::now();
    let spawned = spawn_trees(machine, plan).await?;
    timings.spawn = t.elapsed();
    let registered = machine.registry().len();
    let regions = plan
        .layout
        .regions
        .iter()
        .map(|p| {
            machine
                .record(p)
                .ok_or_else(|| format!("{p} is not registered"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Resolve every worker's lane once: senders then skip the Registry.
    let lanes: Arc<[ParticleRef]> = plan
        .layout
        .workers
        .iter()
        .map(|p| machine.particle(p))
        .collect::<Result<Vec<_>, _>>()?
        .into();

    let t = Instant::now();
    let traffic = traffic::run(plan, lanes.clone()).await;
    // A ping queues behind every wave sent before it, so once each worker
    // has answered, every signal has been handled and the tally is final.
    // Its answer is also the worker's restart count: a crashed worker that
    // answers is serving again.
    let mut pings = Vec::with_capacity(lanes.len());
    for lane in lanes.iter() {
        let answer = machine.ask(lane.point(), (PING, Body::empty())).await;
        pings.push(match answer {
            Ok(body) => body
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("bad ping answer {body:?}")),
            Err(e) => Err(e.to_string()),
        });
    }
    timings.waves = t.elapsed();

    // The Star queues a crash notice to the parent before it restarts the
    // child, so after the pings above every notice is in its region's lane,
    // ahead of this request.
    let mut notices = Vec::with_capacity(plan.layout.regions.len());
    for region in &plan.layout.regions {
        let answer = machine.ask(region, (NOTICES, Body::empty())).await;
        notices.push(match answer {
            Ok(body) => body.decode().map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        });
    }

    Ok(Seen {
        spawned,
        registered,
        regions,
        traffic,
        handled: (tally.signals(), tally.requests()),
        pings,
        notices,
        records: plan
            .layout
            .workers
            .iter()
            .map(|p| machine.record(p))
            .collect(),
        star_stats: machine.star_stats(),
    })
}

/// Spawns the whole tree in one call and returns how many particles it holds.
async fn spawn_trees(machine: &Machine, plan: &Plan) -> Result<usize, Error> {
    Ok(machine
        .spawn_tree(&Point::root(), &plan.layout.tree)
        .await?
        .len())
}

/// Keeps stderr tidy: the worker that is told to panic would otherwise print
/// Rust's default panic message in the middle of the report. Only panics
/// whose message starts with [`PLANNED_PANIC`] are silenced; any other panic
/// still goes to the default hook, since it would be a real bug.
fn silence_planned_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if !message.is_some_and(|m| m.starts_with(PLANNED_PANIC)) {
            default(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole demo, small: every invariant must hold.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_demo_passes_every_check() {
        let args = DemoArgs {
            stars: Some(3),
            regions: 4,
            particles: 40,
            waves: 2_000,
            senders: 3,
            crashes: 6,
            seed: 1,
            wasm_particles: 10,
            wasm_waves: 2_000,
            storm_ms: 300,
        };
        args.validate().unwrap();
        assert!(run(args).await.unwrap());
    }

    #[test]
    fn validation_names_the_options() {
        let mut args = DemoArgs {
            stars: None,
            regions: 10,
            particles: 5,
            waves: 0,
            senders: 1,
            crashes: 0,
            seed: 0,
            wasm_particles: 1,
            wasm_waves: 0,
            storm_ms: 0,
        };
        assert!(args.validate().unwrap_err().contains("--regions"));
        args.particles = 10;
        args.crashes = 11;
        assert!(args.validate().unwrap_err().contains("--crashes"));
    }
}
