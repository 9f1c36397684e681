//! `hyperverse-bench-cluster`: two clustered Machines as two processes on
//! loopback — a request round trip, and one-way waves (order checked) —
//! beside raw ractor_cluster remote actors on the same shapes, in the same
//! run. The BEAM's own distribution on these shapes is
//! `shared/anchors/erlang/dist`.
//!
//! A binary of its own: ractor's `cluster` feature, which the cluster
//! needs, slows every ractor actor's spawn, so `hyperverse-bench` (whose
//! baselines are ractor actors) is built without it.
//!
//! ```text
//! hyperverse-bench-cluster [--quick] [--json]
//! ```
//!
//! Each side runs in a process of its own (this binary with the hidden
//! `--one IMPL`), which starts its peer (`--cluster-peer IMPL PORT`): two
//! NodeServers in one process would share ractor's global registries.

#[path = "../../src/measure.rs"]
#[allow(dead_code)]
mod measure;
#[path = "../../src/report.rs"]
#[allow(dead_code)]
mod report;

mod cluster;

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};

use measure::Measured;
use report::Row;

/// The global allocator every shape and baseline of this build runs on.
pub const ALLOCATOR: &str = "system";
const HYPERVERSE: &str = "hyperverse";
const RACTOR_CLUSTER: &str = "ractor_cluster";

/// How big the shapes are.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Sequential requests per timed rep.
    pub cluster_round_trips: u64,
    /// One-way waves.
    pub cluster_casts: u64,
    /// Timed reps of the round trip; the median is reported.
    pub reps: usize,
}

const FULL: Sizes = Sizes {
    cluster_round_trips: 20_000,
    cluster_casts: 200_000,
    reps: 5,
};
const QUICK: Sizes = Sizes {
    cluster_round_trips: 2_000,
    cluster_casts: 20_000,
    reps: 3,
};

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--cluster-peer" {
        return match args[3].parse() {
            Ok(port) => cluster::peer(&args[2], port),
            Err(_) => ExitCode::from(2),
        };
    }
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().any(|a| a == "--json");
    let sizes = if quick { QUICK } else { FULL };
    if let Some(i) = args.iter().position(|a| a == "--one") {
        let Some(imp) = args.get(i + 1) else {
            return ExitCode::from(2);
        };
        return one(imp, sizes);
    }
    let mut results = Vec::new();
    for imp in [HYPERVERSE, RACTOR_CLUSTER] {
        eprint!("[hyperverse-bench-cluster] {imp} ... ");
        let r = child(imp, quick);
        match &r {
            Ok(_) => eprintln!("done"),
            Err(e) => eprintln!("not measured: {e}"),
        }
        results.push(r);
    }
    let pick = |i: usize, metric: &str| -> Result<Measured, String> {
        match &results[i] {
            Ok(figures) => figures
                .iter()
                .find(|m| m.metric == metric)
                .cloned()
                .ok_or_else(|| format!("no {metric}")),
            Err(e) => Err(e.clone()),
        }
    };
    let rows: Vec<Row> = ["cluster_round_trip", "cluster_one_way"]
        .into_iter()
        .map(|bench| Row {
            bench,
            baseline_name: RACTOR_CLUSTER,
            hyperverse: pick(0, bench),
            baseline: pick(1, bench),
        })
        .collect();
    if json {
        report::print_json(&rows);
    } else {
        report::print_table(
            &rows,
            &format!(
                "hyperverse-bench-cluster: two Machines as two processes on loopback; {} round trips x {} reps (median), {} one-way waves; baseline = raw ractor_cluster remote actors, same run.",
                sizes.cluster_round_trips, sizes.reps, sizes.cluster_casts
            ),
        );
    }
    if rows
        .iter()
        .all(|r| r.hyperverse.is_ok() && r.baseline.is_ok())
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one side in a child process and reads its figures.
fn child(imp: &str, quick: bool) -> Result<Vec<Measured>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--one", imp])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if quick {
        cmd.arg("--quick");
    }
    let mut c = cmd.spawn().map_err(|e| e.to_string())?;
    let mut text = String::new();
    if let Some(mut out) = c.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    let status = c.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("child exited with {status}"));
    }
    let figures: Vec<Measured> = text.lines().filter_map(Measured::parse).collect();
    if figures.is_empty() {
        return Err("child printed no figures".into());
    }
    Ok(figures)
}

/// Measures one side and prints its figures.
fn one(imp: &str, sizes: Sizes) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let imp = imp.to_string();
    let result = rt.block_on(async move {
        tokio::spawn(async move {
            match imp.as_str() {
                HYPERVERSE => cluster::hyperverse(&sizes).await,
                _ => cluster::ractor(&sizes).await,
            }
        })
        .await
    });
    match result {
        Ok(Ok(figures)) => {
            for m in &figures {
                println!("{}", m.to_line());
            }
            std::process::exit(0)
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("the bench task panicked: {e}");
            std::process::exit(1)
        }
    }
}
