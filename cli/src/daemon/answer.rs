//! One request, one answer: what each client command does to the daemon's
//! Machine. (Streams, `events` and a reload's progress, are the server's.)

use std::time::Duration;

use hyperverse::modules::{ModuleError, ModuleInfo, ReloadReport, WasmKind};
use hyperverse::{Fault, Kind, Point};

use super::protocol::{Answer, FaultSpec, ModuleRow, ReloadRow, Request, Row};
use super::state::Daemon;

/// The answer to a one-answer request.
pub async fn answer(d: &Daemon, request: Request) -> Answer {
    let machine = &d.machine;
    match request {
        Request::Spawn { point, kind, args } => {
            match machine.spawn(point, Kind::new(kind), args.into()).await {
                Ok(_) => Answer::Done,
                Err(e) => Answer::Error(e.to_string()),
            }
        }
        Request::Send {
            point,
            method,
            body,
        } => match machine.signal(&point, (method, body)) {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::Ask {
            point,
            method,
            body,
            timeout_ms,
        } => match machine
            .ask(&point, (method, body))
            .within(Duration::from_millis(timeout_ms))
            .await
        {
            Ok(b) => Answer::Reply(b.as_bytes().to_vec()),
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::Tree { under } => Answer::Tree(tree(d, &under)),
        Request::Stats => Answer::Stats(stats(d)),
        Request::Kill { point } => match machine.stop(&point).await {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::ModuleList => Answer::Modules(d.host.modules().iter().map(module_row).collect()),
        Request::ModuleLoad { path } => match d.host.load_file(&path).await {
            Ok(module) => {
                let name = module.name().to_string();
                d.note(
                    "loaded",
                    &name,
                    format!("{} from {}", module.version(), path.display()),
                );
                match d.host.modules().iter().find(|m| m.name == name) {
                    Some(info) => Answer::Loaded(module_row(info)),
                    None => Answer::Error(format!("module `{name}` vanished after its load")),
                }
            }
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::Fault(spec) => fault(d, spec).await,
        // Streams and the stop are the server's; it never sends them here.
        Request::ModuleReload { .. } | Request::Events | Request::Stop => Answer::Done,
    }
}

/// Reloads module `name` from its file, `progress` called as particles
/// answer; the answer lists each particle's outcome.
pub async fn reload(d: &Daemon, name: &str, progress: impl FnMut(usize, usize) + Send) -> Answer {
    match d.host.reload_file(&d.machine, name, progress).await {
        Ok(report) => {
            d.metrics.reloaded(name, &report);
            d.note("reloaded", name, summary(&report));
            reloaded(d, name, &report)
        }
        // No such module: nothing was reloaded, and a name a client made
        // up gets no series (each would be kept, and scraped, for ever).
        Err(e @ ModuleError::NotFound { .. }) => Answer::Error(e.to_string()),
        Err(e) => {
            d.metrics.reload_failed(name);
            Answer::Error(e.to_string())
        }
    }
}

/// One line: versions and counts.
pub fn summary(r: &ReloadReport) -> String {
    format!(
        "{} -> {}: {} reloaded, {} current, {} failed, {} gone{}",
        r.previous.as_ref().map_or(0, |v| v.seq),
        r.version.seq,
        r.reloaded.len(),
        r.current.len(),
        r.failed.len(),
        r.gone.len(),
        if r.rolled_back { ", rolled back" } else { "" }
    )
}

fn reloaded(d: &Daemon, name: &str, r: &ReloadReport) -> Answer {
    let mut particles: Vec<ReloadRow> = Vec::with_capacity(r.particles());
    let row = |p: &Point, outcome: &str, reason: &str| ReloadRow {
        point: p.to_string(),
        outcome: outcome.to_string(),
        reason: reason.to_string(),
    };
    particles.extend(r.reloaded.iter().map(|p| row(p, "reloaded", "")));
    particles.extend(r.current.iter().map(|p| row(p, "current", "")));
    particles.extend(r.failed.iter().map(|f| row(&f.point, "failed", &f.reason)));
    particles.extend(r.gone.iter().map(|p| row(p, "gone", "")));
    particles.sort_by(|a, b| a.point.cmp(&b.point));
    let module = d
        .host
        .modules()
        .iter()
        .find(|m| m.name == name)
        .map(module_row)
        .unwrap_or_else(|| ModuleRow {
            name: name.to_string(),
            seq: r.version.seq,
            hash: r.version.hash.short(),
            label: String::new(),
            file: String::new(),
            live: 0,
        });
    Answer::Reloaded {
        module,
        previous: r.previous.as_ref().map_or(0, |v| v.seq),
        to: r.version.seq,
        rolled_back: r.rolled_back,
        particles,
    }
}

fn module_row(m: &ModuleInfo) -> ModuleRow {
    ModuleRow {
        name: m.name.clone(),
        seq: m.current.as_ref().map_or(0, |v| v.seq),
        hash: m
            .current
            .as_ref()
            .map(|v| v.hash.short())
            .unwrap_or_default(),
        label: m
            .file
            .as_ref()
            .and_then(|f| f.label.clone())
            .unwrap_or_default(),
        file: m
            .file
            .as_ref()
            .map(|f| f.path.display().to_string())
            .unwrap_or_default(),
        live: m.live as u64,
    }
}

/// The particles at or under `under`: this Machine's from its Registry
/// (with their lanes' load), then those the cluster places on other
/// Machines (known by Point and Machine only).
fn tree(d: &Daemon, under: &Point) -> Vec<Row> {
    let mut rows: Vec<Row> = d
        .machine
        .registry()
        .subtree(under)
        .into_iter()
        .map(|r| {
            let load = d
                .machine
                .particle(&r.point)
                .map(|p| p.load())
                .unwrap_or_default();
            Row {
                point: r.point.to_string(),
                kind: r.kind.to_string(),
                machine: d.name.clone(),
                star: r.star,
                status: format!("{:?}", r.status),
                restarts: r.restarts,
                version: r.code_version,
                queued: load.queued as u64,
                taken: load.taken,
            }
        })
        .collect();
    if let Some(cluster) = &d.cluster {
        for point in cluster.subtree(under) {
            if d.machine.registry().contains(&point) {
                continue;
            }
            let Some(machine) = cluster.locate(&point) else {
                continue;
            };
            rows.push(Row {
                point: point.to_string(),
                kind: "-".into(),
                machine,
                star: 0,
                status: "Remote".into(),
                restarts: 0,
                version: 0,
                queued: 0,
                taken: 0,
            });
        }
        rows.sort_by(|a, b| a.point.cmp(&b.point));
    }
    rows
}

fn stats(d: &Daemon) -> Vec<(String, u64)> {
    let m = &d.machine;
    let mut s = vec![
        ("particles".to_string(), m.registry().len() as u64),
        ("stars".to_string(), m.stars() as u64),
    ];
    let wasm = m
        .registry()
        .subtree(&Point::root())
        .iter()
        .filter(|r| r.kind.wasm_module().is_some())
        .count();
    s.push(("wasm_particles".to_string(), wasm as u64));
    s.push(("modules_loaded".to_string(), {
        d.host
            .modules()
            .iter()
            .filter(|m| m.current.is_some())
            .count() as u64
    }));
    for st in m.star_stats() {
        s.push((format!("star{}.spawned", st.star), st.spawned));
        s.push((format!("star{}.crashes", st.star), st.crashes));
        s.push((format!("star{}.restarts", st.star), st.restarts));
        s.push((format!("star{}.gave_up", st.star), st.gave_up));
    }
    if let Some(c) = &d.cluster {
        s.push(("cluster.peers".to_string(), c.peers().len() as u64));
    }
    s
}

async fn fault(d: &Daemon, spec: FaultSpec) -> Answer {
    let m = &d.machine;
    let (point, fault) = match spec {
        FaultSpec::KillStar { star } => {
            return match m.kill_star(star, "killed from the CLI").await {
                Ok(crashed) => {
                    d.note("fault", "", format!("star {star} killed"));
                    Answer::Reply(
                        format!("star {star} killed: {} particles crashed", crashed.len())
                            .into_bytes(),
                    )
                }
                Err(e) => Answer::Error(e.to_string()),
            }
        }
        FaultSpec::Crash { point, reason } => (point, Fault::Crash(reason)),
        FaultSpec::Pause { point } => (point, Fault::Pause),
        FaultSpec::Resume { point } => (point, Fault::Resume),
        FaultSpec::Delay {
            point,
            min_ms,
            max_ms,
            probability,
        } => (
            point,
            Fault::Delay {
                min: Duration::from_millis(min_ms),
                max: Duration::from_millis(max_ms),
                probability,
            },
        ),
        FaultSpec::Drop { point, probability } => (point, Fault::Drop { probability }),
        FaultSpec::FailStart { point, reason } => (point, Fault::FailNextStart(reason)),
        FaultSpec::Heal { point } => (point, Fault::Heal),
    };
    let what = format!("{fault:?}");
    match m.inject(&point, fault) {
        Ok(()) => {
            d.note("fault", point.as_str(), what);
            Answer::Done
        }
        Err(e) => Answer::Error(e.to_string()),
    }
}
