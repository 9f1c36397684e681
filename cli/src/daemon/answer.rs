//! One request, one answer: what each client command does to the daemon's
//! Machine. (Streams, `events` and a reload's progress, are the server's.)

use std::time::Duration;

use hyperverse::access::{AccessPolicy, Grant, Privilege, RuleError};
use hyperverse::modules::{ModuleError, ModuleInfo, ReloadReport, WasmKind};
use hyperverse::{Fault, FaultError, Kind, Point, SpawnError, WaveError};

use super::protocol::{Answer, FaultSpec, ModuleRow, ReloadRow, Request, Row, MAX_GRANT};
use super::state::Daemon;

/// An error the runtime may answer with: whether it is the access rules'
/// refusal, which the client is told apart ([`Answer::Denied`]).
trait Refusal: std::fmt::Display {
    fn denied(&self) -> bool;
}

impl Refusal for WaveError {
    fn denied(&self) -> bool {
        matches!(self, WaveError::Denied { .. })
    }
}

impl Refusal for SpawnError {
    fn denied(&self) -> bool {
        matches!(self, SpawnError::Denied { .. })
    }
}

impl Refusal for FaultError {
    fn denied(&self) -> bool {
        matches!(self, FaultError::Denied { .. })
    }
}

impl Refusal for RuleError {
    fn denied(&self) -> bool {
        matches!(self, RuleError::NotOwner { .. })
    }
}

/// The answer to a refusal: [`Answer::Denied`] for the rules', else
/// [`Answer::Error`].
fn refused(e: &impl Refusal) -> Answer {
    if e.denied() {
        // The runtime's text says "access denied" already, except a rule
        // change's.
        let text = e.to_string();
        if text.starts_with("access denied") {
            Answer::Denied(text)
        } else {
            Answer::Denied(format!("access denied: {text}"))
        }
    } else {
        Answer::Error(e.to_string())
    }
}

/// `Ok` if the handle's visitor may do `want` to `point`, else the
/// refusal in the runtime's words. For what the runtime does not refuse
/// itself in a way the client would see: a signal (a denied one is
/// dropped, silently, by design), and the daemon's own reads and
/// actions.
fn must(d: &Daemon, want: Privilege, point: &Point) -> Result<(), Denied> {
    if d.machine.may(want, point) {
        return Ok(());
    }
    tracing::warn!(
        target: hyperverse::targets::ACCESS,
        visitor = %d.machine.visitor(),
        target = %point,
        privilege = %want,
        "control socket: access denied"
    );
    Err(denial(d, want, point))
}

/// `access denied: VISITOR may not PRIVILEGE POINT`, as the runtime says
/// it.
fn denial(d: &Daemon, want: Privilege, point: &Point) -> Denied {
    Denied(format!(
        "access denied: {} may not {want} {point}",
        d.machine.visitor()
    ))
}

/// A refusal of the rules, in the runtime's words: answered
/// [`Answer::Denied`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denied(String);

impl From<Denied> for Answer {
    fn from(d: Denied) -> Answer {
        Answer::Denied(d.0)
    }
}

/// The answer to a one-answer request.
pub async fn answer(d: &Daemon, request: Request) -> Answer {
    let machine = &d.machine;
    match request {
        Request::Spawn { point, kind, args } => {
            match machine.spawn(point, Kind::new(kind), args.into()).await {
                Ok(_) => Answer::Done,
                Err(e) => refused(&e),
            }
        }
        Request::Send {
            point,
            method,
            body,
        } => {
            if let Err(denied) = must(d, Privilege::Send, &point) {
                return denied.into();
            }
            match machine.signal(&point, (method, body)) {
                Ok(()) => Answer::Done,
                Err(e) => refused(e.error()),
            }
        }
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
            Err(e) => refused(&e),
        },
        Request::Tree { under } => Answer::Tree(tree(d, &under)),
        Request::Stats => match must(d, Privilege::Read, &Point::root()) {
            Ok(()) => Answer::Stats(stats(d)),
            Err(denied) => denied.into(),
        },
        Request::Kill { point } => match machine.stop(&point).await {
            Ok(()) => Answer::Done,
            Err(e) => refused(&e),
        },
        Request::ModuleList => match must(d, Privilege::Read, &Point::root()) {
            Ok(()) => Answer::Modules(d.host.modules().iter().map(module_row).collect()),
            Err(denied) => denied.into(),
        },
        Request::ModuleLoad { path } => match must(d, Privilege::Reload, &Point::root()) {
            Ok(()) => load(d, &path).await,
            Err(denied) => denied.into(),
        },
        Request::Fault(spec) => fault(d, spec).await,
        Request::Grant { grant } => change(d, &grant, true),
        Request::Revoke { grant } => change(d, &grant, false),
        Request::Rules => rules(d),
        // Streams and the stop are the server's; it never sends them here.
        Request::ModuleReload { .. } | Request::Events | Request::Stop => Answer::Done,
    }
}

/// Loads a module file: its version becomes the one new particles start
/// on.
async fn load(d: &Daemon, path: &std::path::Path) -> Answer {
    match d.host.load_file(path).await {
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
    }
}

/// A grant's text, parsed here too: the client's parse is a courtesy, the
/// daemon's the check.
fn parse_grant(text: &str) -> Result<Grant, String> {
    if text.len() > MAX_GRANT {
        return Err(format!(
            "a grant of {} bytes: the most is {MAX_GRANT}",
            text.len()
        ));
    }
    let grant = text
        .parse::<Grant>()
        .map_err(|e| format!("bad grant: {e}"))?;
    crate::access_config::check_grant_names(&grant).map_err(|e| format!("bad grant: {e}"))?;
    Ok(grant)
}

/// `grant` (or, `!add`, `revoke`): the handle's visitor must be a
/// superuser (the runtime checks it).
fn change(d: &Daemon, text: &str, add: bool) -> Answer {
    let grant = match parse_grant(text) {
        Ok(g) => g,
        Err(bad) => return Answer::Error(bad),
    };
    let scope = grant.on.to_string();
    let (done, what) = if add {
        (d.machine.grant(grant.clone()), "granted")
    } else {
        (d.machine.revoke(grant.clone()), "revoked")
    };
    match done {
        Ok(()) => {
            d.note(what, &scope, format!("{grant} by {}", d.machine.visitor()));
            Answer::Done
        }
        Err(e) => refused(&e),
    }
}

/// The rules in force, and who the asking connection is: any user may
/// read them (what may I do, and who may act on mine?).
fn rules(d: &Daemon) -> Answer {
    let rules = d.machine.rules();
    let policy = match d.machine.access_policy() {
        AccessPolicy::Enforced => "enforced",
        _ => "open",
    };
    let you = format!(
        "{}{}",
        d.machine.visitor(),
        if d.superuser { " (superuser)" } else { "" }
    );
    Answer::Rules {
        policy: policy.to_string(),
        you,
        grants: rules.grants().map(|g| g.to_string()).collect(),
        groups: rules
            .groups()
            .map(|(g, members)| {
                (
                    g.to_string(),
                    members.iter().map(|m| m.to_string()).collect(),
                )
            })
            .collect(),
    }
}

/// Reloads module `name` from its file, `progress` called as particles
/// answer; the answer lists each particle's outcome.
pub async fn reload(d: &Daemon, name: &str, progress: impl FnMut(usize, usize) + Send) -> Answer {
    if let Err(denied) = may_reload(d, name) {
        return denied.into();
    }
    // Judged above as the user; done as the Machine, whose handle may
    // steer every particle the move touches.
    match d.host.reload_file(&d.owner, name, progress).await {
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

/// Whether the handle's visitor may reload module `name`: a reload makes
/// a new version current (`reload` on `ROOT`, as a load) and moves every
/// live particle of it (`reload` on each). The particles are listed by
/// the Machine's own handle, so that one the user may not read is not
/// skipped; the first refused is named. (A particle spawned between this
/// check and the move is moved unchecked: spawning it took its parent's
/// `spawn`.)
fn may_reload(d: &Daemon, name: &str) -> Result<(), Denied> {
    must(d, Privilege::Reload, &Point::root())?;
    let mut points = d.host.live(name);
    points.extend(
        d.owner
            .registry()
            .by_kind(&Kind::wasm(name))
            .into_iter()
            .map(|r| r.point),
    );
    points.sort();
    points.dedup();
    match points.iter().find(|p| !d.machine.may(Privilege::Reload, p)) {
        Some(p) => must(d, Privilege::Reload, p),
        None => Ok(()),
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
        let registry = d.machine.registry();
        for point in cluster.subtree(under) {
            if registry.contains(&point) || !d.machine.may(Privilege::Read, &point) {
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
            // Killing a Star stops whatever it hosts: the runtime asks a
            // user for `stop` on ROOT, and would say only "forbidden".
            if let Err(denied) = must(d, Privilege::Stop, &Point::root()) {
                return denied.into();
            }
            return match m.kill_star(star, "killed from the CLI").await {
                Ok(crashed) => {
                    d.note("fault", "", format!("star {star} killed"));
                    Answer::Reply(
                        format!("star {star} killed: {} particles crashed", crashed.len())
                            .into_bytes(),
                    )
                }
                Err(e) => refused(&e),
            };
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
        Err(e) => refused(&e),
    }
}
