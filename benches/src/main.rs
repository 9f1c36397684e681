//! `hyperverse-bench`: Hyperverse on the anchor shapes (ring, skynet, spawn,
//! ping-pong), each beside a same-run baseline on raw ractor.
//!
//! Figures on a shared machine move by tens of percent from run to run, so
//! only side-by-side ratios mean much; that is why every shape is measured
//! against its baseline in the same sitting, and why the sizes match the
//! anchors in `shared/anchors` (BEAM, ractor, kameo).
//!
//! Run without `--one`, the binary is the orchestrator: it re-executes itself
//! once per (shape, implementation) with the hidden `--one SHAPE IMPL`, so
//! each measurement starts in a fresh process (clean RSS and peak RSS, a cold
//! allocator, no leftovers from the previous shape), kills a child that
//! overruns, then pairs the figures and prints them.
//!
//! ```text
//! hyperverse-bench [--quick] [--json] [--only SHAPE[,SHAPE…]]
//!   --quick  small sizes, for a smoke run (seconds, not minutes)
//!   --json   one JSON object per line on stdout and nothing else
//!   --only   shapes to run: ring, skynet, spawn, pingpong, restart, wasm, access
//! ```
//!
//! The `wasm` shapes (`wasm.rs`) compare WASM particles with bare wasmer
//! calls of the same guest, not with ractor. Machines in a cluster have a
//! bench binary of their own (`benches/cluster`, `hyperverse-bench-cluster`):
//! ractor's `cluster` feature slows every ractor actor's spawn, so the
//! baselines here are built without it.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The global allocator every shape and baseline of this build runs on.
pub const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

mod access;
mod measure;
mod pingpong;
mod report;
mod restart;
mod ring;
mod skynet;
mod spawn;
mod wasm;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use measure::Measured;
use report::Row;

/// How big each shape is. The full sizes are the anchors' sizes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Particles in the ring.
    pub ring_particles: u64,
    /// Laps of the token per timed rep.
    pub ring_laps: u64,
    /// Skynet leaves (a power of ten).
    pub skynet_leaves: u64,
    /// Idle actors spawned and kept alive.
    pub spawn_n: usize,
    /// Sequential requests per timed rep.
    pub pingpong_n: u64,
    /// Crashes timed for restart latency.
    pub restart_n: usize,
    /// Timed reps where a rep is cheap (ring, ping-pong); the median is reported.
    pub reps: usize,
    /// Processes per spawn measurement: RSS needs a fresh process per rep,
    /// and one spawn rep is cheap enough to pay for a few.
    pub spawn_processes: usize,
}

impl Sizes {
    /// The anchors' sizes.
    pub const FULL: Sizes = Sizes {
        ring_particles: 1_000,
        ring_laps: 1_000,
        skynet_leaves: 1_000_000,
        spawn_n: 100_000,
        pingpong_n: 200_000,
        restart_n: 2_000,
        reps: 5,
        spawn_processes: 3,
    };

    /// A smoke run: every code path, a few seconds in all.
    pub const QUICK: Sizes = Sizes {
        ring_particles: 1_000,
        ring_laps: 10,
        skynet_leaves: 100_000,
        spawn_n: 10_000,
        pingpong_n: 20_000,
        restart_n: 200,
        reps: 3,
        spawn_processes: 3,
    };

    /// How many child processes measure `shape`; their reps are pooled.
    fn processes(&self, shape: &str) -> usize {
        if family(shape) == "spawn" {
            self.spawn_processes
        } else {
            1
        }
    }

    fn pick(quick: bool) -> Sizes {
        if quick {
            Sizes::QUICK
        } else {
            Sizes::FULL
        }
    }

    /// How long one child may run before it is killed and reported as not measured.
    fn child_limit(quick: bool) -> Duration {
        Duration::from_secs(if quick { 30 } else { 180 })
    }
}

/// The implementation every baseline figure comes from.
const BASELINE: &str = "ractor";
const HYPERVERSE: &str = "hyperverse";
/// The baseline of the `wasm` shapes: the same guest called bare.
const WASMER: &str = "wasmer";

/// The implementation `shape`'s baseline figure comes from.
fn baseline_of(shape: &str) -> &'static str {
    match family(shape) {
        "wasm" => WASMER,
        _ => BASELINE,
    }
}

/// The child processes, in order: each shape's Hyperverse run next to its
/// baseline run, so that the two see the machine in the same mood.
const JOBS: [(&str, &str); 19] = [
    ("ring", HYPERVERSE),
    ("ring", BASELINE),
    ("skynet", HYPERVERSE),
    ("skynet", BASELINE),
    ("spawn", HYPERVERSE),
    ("spawn-nowait", HYPERVERSE),
    ("spawn", BASELINE),
    ("pingpong", HYPERVERSE),
    ("pingpong", BASELINE),
    ("restart", HYPERVERSE),
    ("restart-sup", HYPERVERSE),
    ("restart", BASELINE),
    ("wasm-spawn", HYPERVERSE),
    ("wasm-spawn", WASMER),
    ("wasm-wave", HYPERVERSE),
    ("wasm-wave", WASMER),
    ("wasm-reload", HYPERVERSE),
    ("wasm-reload", WASMER),
    ("access", HYPERVERSE),
];

/// One report row: its name, where its Hyperverse figure comes from and where
/// its baseline figure comes from, each as (child shape, metric).
struct RowSpec {
    bench: &'static str,
    hyperverse: (&'static str, &'static str),
    baseline: (&'static str, &'static str),
    /// The implementation the baseline comes from, if not the shape's
    /// usual one (a WASM figure beside a Rust particle's, both Hyperverse).
    baseline_from: Option<&'static str>,
}

const ROWS: [RowSpec; 29] = [
    RowSpec {
        bench: "ring",
        hyperverse: ("ring", "ring"),
        baseline: ("ring", "ring"),
        baseline_from: None,
    },
    RowSpec {
        bench: "skynet",
        hyperverse: ("skynet", "skynet"),
        baseline: ("skynet", "skynet"),
        baseline_from: None,
    },
    RowSpec {
        bench: "skynet_peak_rss",
        hyperverse: ("skynet", "skynet_peak_rss"),
        baseline: ("skynet", "skynet_peak_rss"),
        baseline_from: None,
    },
    RowSpec {
        bench: "spawn",
        hyperverse: ("spawn", "spawn"),
        baseline: ("spawn", "spawn"),
        baseline_from: None,
    },
    RowSpec {
        bench: "spawn_rss",
        hyperverse: ("spawn", "spawn_rss"),
        baseline: ("spawn", "spawn_rss"),
        baseline_from: None,
    },
    // Both spawn modes are compared with the same ractor run: ractor has no
    // spawn that does not await pre_start.
    RowSpec {
        bench: "spawn_nowait",
        hyperverse: ("spawn-nowait", "spawn"),
        baseline: ("spawn", "spawn"),
        baseline_from: None,
    },
    RowSpec {
        bench: "spawn_nowait_rss",
        hyperverse: ("spawn-nowait", "spawn_rss"),
        baseline: ("spawn", "spawn_rss"),
        baseline_from: None,
    },
    RowSpec {
        bench: "pingpong",
        hyperverse: ("pingpong", "pingpong"),
        baseline: ("pingpong", "pingpong"),
        baseline_from: None,
    },
    RowSpec {
        bench: "pingpong_timeout",
        hyperverse: ("pingpong", "pingpong_timeout"),
        baseline: ("pingpong", "pingpong_timeout"),
        baseline_from: None,
    },
    // Typed messages (a `Message` value and a `Handler`) beside the same
    // ractor baselines: their ratio to the untyped rows above is the cost
    // of typing.
    RowSpec {
        bench: "pingpong_typed",
        hyperverse: ("pingpong", "pingpong_typed"),
        baseline: ("pingpong", "pingpong"),
        baseline_from: None,
    },
    RowSpec {
        bench: "pingpong_typed_timeout",
        hyperverse: ("pingpong", "pingpong_typed_timeout"),
        baseline: ("pingpong", "pingpong_timeout"),
        baseline_from: None,
    },
    RowSpec {
        bench: "restart",
        hyperverse: ("restart", "restart"),
        baseline: ("restart", "restart"),
        baseline_from: None,
    },
    RowSpec {
        bench: "restart_p99",
        hyperverse: ("restart", "restart_p99"),
        baseline: ("restart", "restart_p99"),
        baseline_from: None,
    },
    // The same crash, decided by a supervisor particle (OTP one_for_one)
    // instead of the child's Star.
    RowSpec {
        bench: "restart_supervisor",
        hyperverse: ("restart-sup", "restart"),
        baseline: ("restart", "restart"),
        baseline_from: None,
    },
    RowSpec {
        bench: "restart_supervisor_p99",
        hyperverse: ("restart-sup", "restart_p99"),
        baseline: ("restart", "restart_p99"),
        baseline_from: None,
    },
    // WASM particles beside bare wasmer (see wasm.rs).
    RowSpec {
        bench: "wasm_spawn",
        hyperverse: ("wasm-spawn", "wasm_spawn"),
        baseline: ("wasm-spawn", "wasm_spawn"),
        baseline_from: None,
    },
    RowSpec {
        bench: "wasm_wave",
        hyperverse: ("wasm-wave", "wasm_wave"),
        baseline: ("wasm-wave", "wasm_call"),
        baseline_from: None,
    },
    RowSpec {
        bench: "wasm_request",
        hyperverse: ("wasm-wave", "wasm_request"),
        baseline: ("wasm-wave", "wasm_call"),
        baseline_from: None,
    },
    // The lone request beside a Rust particle's, both Hyperverse: the
    // same client particle asking a Rust echo on the same Star thread, and
    // the ping-pong shape's driver task asking a Rust echo.
    RowSpec {
        bench: "wasm_request/rust_request",
        hyperverse: ("wasm-wave", "wasm_request"),
        baseline: ("wasm-wave", "rust_request"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "wasm_request/pingpong",
        hyperverse: ("wasm-wave", "wasm_request"),
        baseline: ("pingpong", "pingpong"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "wasm_reload",
        hyperverse: ("wasm-reload", "wasm_reload"),
        baseline: ("wasm-reload", "wasm_reload"),
        baseline_from: None,
    },
    // Access rules (see access.rs): a check beside a ping-pong round
    // trip with rules off (both Hyperverse, same process), and ping-pong
    // with rules on beside rules off.
    RowSpec {
        bench: "access_check_10",
        hyperverse: ("access", "check_10"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "access_check_denied_10",
        hyperverse: ("access", "check_denied_10"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "access_check_1000",
        hyperverse: ("access", "check_1000"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "access_check_denied_1000",
        hyperverse: ("access", "check_denied_1000"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "access_check_100000",
        hyperverse: ("access", "check_100000"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "access_check_denied_100000",
        hyperverse: ("access", "check_denied_100000"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
    RowSpec {
        bench: "pingpong_rules_off",
        hyperverse: ("access", "pingpong_rules_off"),
        baseline: ("pingpong", "pingpong"),
        baseline_from: None,
    },
    RowSpec {
        bench: "pingpong_rules_on/off",
        hyperverse: ("access", "pingpong_rules_on"),
        baseline: ("access", "pingpong_rules_off"),
        baseline_from: Some(HYPERVERSE),
    },
];

/// The shape a child shape belongs to, for `--only` (`spawn-nowait` is spawn).
fn family(shape: &str) -> &str {
    shape.split('-').next().unwrap_or(shape)
}

struct Options {
    quick: bool,
    json: bool,
    only: Option<Vec<String>>,
    /// Set in a child: the one (shape, implementation) to measure.
    one: Option<(String, String)>,
}

const USAGE: &str =
    "usage: hyperverse-bench [--quick] [--json] [--only ring,skynet,spawn,pingpong,restart,wasm,access]";

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        quick: false,
        json: false,
        only: None,
        one: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--json" => opts.json = true,
            "--only" => {
                let list = args.next().ok_or("--only needs a list of shapes")?;
                let shapes: Vec<String> = list.split(',').map(str::to_string).collect();
                if let Some(bad) = shapes
                    .iter()
                    .find(|s| !JOBS.iter().any(|(shape, _)| family(shape) == s.as_str()))
                {
                    return Err(format!("unknown shape `{bad}`"));
                }
                opts.only = Some(shapes);
            }
            "--one" => {
                let shape = args.next().ok_or("--one needs a shape")?;
                let imp = args.next().ok_or("--one needs an implementation")?;
                opts.one = Some((shape, imp));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match &opts.one {
        Some((shape, imp)) => run_child(shape, imp, Sizes::pick(opts.quick)),
        None => orchestrate(&opts),
    }
}

// ------------------------------------------------------------ child side

/// Measures one (shape, implementation) and prints its figures as JSON lines.
///
/// The body runs in a spawned task on a multi-thread runtime with one worker
/// per core, not on the `block_on` thread: that is where application code
/// runs, and spawns and sends from a worker use its local run queue.
fn run_child(shape: &str, imp: &str, sizes: Sizes) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot build the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (shape, imp) = (shape.to_string(), imp.to_string());
    let outcome = rt.block_on(async move { tokio::spawn(measure(shape, imp, sizes)).await });
    let code = match outcome {
        Ok(Ok(figures)) => {
            let mut out = std::io::stdout().lock();
            for m in &figures {
                let _ = writeln!(out, "{}", m.to_line());
            }
            let _ = out.flush();
            0
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            1
        }
        Err(e) => {
            eprintln!("the bench task panicked: {e}");
            1
        }
    };
    // Leave at once: lingering actors and runtime teardown are not measured
    // and may take a while after a million spawns.
    std::process::exit(code);
}

async fn measure(shape: String, imp: String, s: Sizes) -> Result<Vec<Measured>, String> {
    use spawn::Mode;
    let result = match (shape.as_str(), imp.as_str()) {
        ("ring", HYPERVERSE) => ring::hyperverse(&s).await,
        ("ring", BASELINE) => ring::ractor(&s).await,
        ("skynet", HYPERVERSE) => skynet::hyperverse(&s).await,
        ("skynet", BASELINE) => skynet::ractor(&s).await,
        ("spawn", HYPERVERSE) => spawn::hyperverse(&s, Mode::Await).await,
        ("spawn-nowait", HYPERVERSE) => spawn::hyperverse(&s, Mode::NoWait).await,
        ("spawn", BASELINE) => spawn::ractor(&s).await,
        ("pingpong", HYPERVERSE) => pingpong::hyperverse(&s).await,
        ("pingpong", BASELINE) => pingpong::ractor(&s).await,
        ("restart", HYPERVERSE) => restart::hyperverse(&s).await,
        ("restart-sup", HYPERVERSE) => restart::supervised(&s).await,
        ("restart", BASELINE) => restart::ractor(&s).await,
        ("wasm-spawn", HYPERVERSE) => wasm::spawn_hyperverse(&s).await,
        ("wasm-spawn", WASMER) => wasm::spawn_wasmer(&s).await,
        ("wasm-wave", HYPERVERSE) => wasm::wave_hyperverse(&s).await,
        ("wasm-wave", WASMER) => wasm::wave_wasmer(&s).await,
        ("wasm-reload", HYPERVERSE) => wasm::reload_hyperverse(&s).await,
        ("wasm-reload", WASMER) => wasm::reload_wasmer(&s).await,
        ("access", HYPERVERSE) => access::hyperverse(&s).await,
        _ => return Err(format!("no such bench: {shape} on {imp}")),
    };
    result.map_err(|e| e.to_string())
}

// ------------------------------------------------------------ orchestrator

/// Runs one child and collects its figures, or says why there are none.
fn run_job(shape: &str, imp: &str, quick: bool) -> Result<Vec<Measured>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--one", shape, imp])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // The child's diagnostics go straight to our stderr.
        .stderr(Stdio::inherit());
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    // Drained on a thread so that a chatty child can never block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let limit = Sizes::child_limit(quick);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after the {}s limit", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait: {e}")),
        }
    };
    let text = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("child exited with {status} (its stderr is above)"));
    }
    let figures: Vec<Measured> = text.lines().filter_map(Measured::parse).collect();
    if figures.is_empty() {
        return Err("child printed no figures".into());
    }
    Ok(figures)
}

fn orchestrate(opts: &Options) -> ExitCode {
    let wanted = |shape: &str| {
        opts.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == family(shape)))
    };
    let sizes = Sizes::pick(opts.quick);
    let mut results: HashMap<(&str, &str), Result<Vec<Measured>, String>> = HashMap::new();
    for (shape, imp) in JOBS.into_iter().filter(|(shape, _)| wanted(shape)) {
        let processes = sizes.processes(shape);
        let times = if processes > 1 {
            format!(" x{processes}")
        } else {
            String::new()
        };
        eprint!("[hyperverse-bench] {shape} on {imp}{times} ... ");
        let t = Instant::now();
        let result = (0..processes)
            .map(|_| run_job(shape, imp, opts.quick))
            .collect::<Result<Vec<_>, _>>()
            .map(measure::merge);
        match &result {
            Ok(_) => eprintln!("{:.1}s", t.elapsed().as_secs_f64()),
            Err(why) => eprintln!("not measured: {why}"),
        }
        results.insert((shape, imp), result);
    }

    let pick = |(shape, metric): (&str, &str), imp: &str| -> Result<Measured, String> {
        match results.get(&(shape, imp)) {
            Some(Ok(figures)) => figures
                .iter()
                .find(|m| m.metric == metric)
                .cloned()
                .ok_or_else(|| format!("{shape} on {imp} did not report {metric}")),
            Some(Err(why)) => Err(why.clone()),
            None => Err("not run".into()),
        }
    };
    let rows: Vec<Row> = ROWS
        .iter()
        // A row needs both of its shapes run (`--only wasm` has no ping-pong).
        .filter(|r| wanted(r.hyperverse.0) && wanted(r.baseline.0))
        .map(|r| Row {
            bench: r.bench,
            baseline_name: r.baseline_from.unwrap_or(baseline_of(r.baseline.0)),
            hyperverse: pick(r.hyperverse, HYPERVERSE),
            baseline: pick(
                r.baseline,
                r.baseline_from.unwrap_or(baseline_of(r.baseline.0)),
            ),
        })
        .collect();

    if opts.json {
        report::print_json(&rows);
    } else {
        report::print_table(&rows, &heading(opts.quick));
    }
    let all_measured = rows
        .iter()
        .all(|r| r.hyperverse.is_ok() && r.baseline.is_ok());
    if all_measured {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn heading(quick: bool) -> String {
    let s = Sizes::pick(quick);
    format!(
        "hyperverse-bench ({} sizes): ring {}x{} laps, skynet {} leaves, spawn {} actors, \
         pingpong {} requests, restart {} crashes; median of {} reps (ring, pingpong) or of {} processes (spawn); skynet one run.\n\
         Each (shape, implementation) in its own process; tokio multi-thread, {} workers = cores; \
         {} allocator; baseline = raw ractor 0.16 in the same sitting (wasm rows: the same guest called bare with wasmer).",
        if quick { "quick" } else { "full" },
        s.ring_particles,
        s.ring_laps,
        s.skynet_leaves,
        s.spawn_n,
        s.pingpong_n,
        s.restart_n,
        s.reps,
        s.spawn_processes,
        cores(),
        ALLOCATOR,
    )
}
