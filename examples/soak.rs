//! A soak: hostile guests beside well-behaved ones, on one Machine.
//!
//! 100 WASM counters serve a steady load of `add` signals and `get`
//! requests while 20 hostile guests, one of each class the sandbox and the
//! runtime must contain, attack for the whole run: 16 are spawned and
//! restarted as they crash (with a backoff, as a supervisor would), and 4
//! are modules the sandbox must refuse at load, tried again and again.
//! At the end it prints the p50/p99/max latency of the counters' requests,
//! the process's RSS at the start, its peak and at the end, each hostile
//! class's crashes, and checks that every counter counted every `add` it
//! was sent (no wave lost) and that no hostile module was ever accepted.
//!
//! ```text
//! cargo run --release --example soak              # 60 s
//! HYPERVERSE_SOAK_SECS=10 cargo run --release --example soak
//! ```
//!
//! It exits 0 only if every check holds: a process that lived, counters
//! exact, hostile modules refused, memory bounded (the end RSS within
//! 256 MiB of the start).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::modules::{guests, Limits, WasmHost, WasmKind};
use hyperverse::supervisors::Backoff;
use hyperverse::*;
use parking_lot::Mutex;

const COUNTERS: usize = 100;
const CLIENTS: usize = 4;
/// `add` signals a client sends a counter before asking for its count.
const ADDS_PER_ASK: u64 = 10;

/// A complete ABI-1 guest around `handle_body` (params `$m $mlen $b $blen`,
/// leaving an i32 status), with extra imports, memory and functions.
fn guest(imports: &str, memory: &str, funcs: &str, init: &str, handle_body: &str) -> String {
    format!(
        r#"(module
  {imports}
  {memory}
  (global $heap (mut i32) (i32.const 1024))
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (if (i32.gt_u (i32.add (local.get $p) (local.get $len)) (i32.const 60000)) (then unreachable))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) {init})
  (func (export "handle") (param $m i32) (param $mlen i32) (param $b i32) (param $blen i32)
                          (result i32)
    (global.set $heap (i32.const 1024))
    {handle_body})
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
  {funcs}
)"#
    )
}

const SEND: &str =
    r#"(import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))"#;
const REPLY: &str = r#"(import "hv" "reply" (func $reply (param i32 i32)))"#;
const LOG: &str = r#"(import "hv" "log" (func $log (param i32 i32 i32)))"#;
const PAGE: &str = r#"(memory (export "memory") 1)"#;

/// One hostile class: how it attacks and what must contain it.
struct Hostile {
    name: &'static str,
    /// What stops it.
    contained_by: &'static str,
    wat: String,
    /// How it is poked: a method, and whether the body names a target
    /// (its own Point, or a counter's).
    poke: Poke,
}

#[derive(Clone, Copy)]
enum Poke {
    /// Any wave.
    Plain,
    /// The body is its own Point (it sends there).
    ToSelf,
    /// The body is a counter's Point (outside its subtree).
    ToCounter,
    /// The body is its parent's Point, the method `$sup:exit`.
    ForgeExitToParent,
}

/// The classes spawned as particles: each crashes (or hogs) in its own way.
fn runtime_classes() -> Vec<Hostile> {
    let h = |name, contained_by, wat: String, poke| Hostile {
        name,
        contained_by,
        wat,
        poke,
    };
    vec![
        h("looper", "fuel", guests::LOOPER.into(), Poke::Plain),
        h(
            "grower",
            "memory ceiling",
            guests::GROWER.into(),
            Poke::Plain,
        ),
        h("trapper", "trap", guests::TRAPPER.into(), Poke::Plain),
        h(
            "recurser",
            "stack limit",
            guests::RECURSER.into(),
            Poke::Plain,
        ),
        h(
            "table-grower",
            "table cap (grow returns -1), then its own trap",
            guest(
                "",
                PAGE,
                r#"(table $t 1 funcref)"#,
                "(i32.const 0)",
                r#"(loop $more
                     (br_if $more (i32.ne (table.grow $t (ref.null func) (i32.const 4096)) (i32.const -1))))
                   unreachable"#,
            ),
            Poke::Plain,
        ),
        h(
            "fill-bomb",
            "bulk operators charged by length (4 fills of 16 MiB: out of fuel before they run)",
            guest(
                "",
                r#"(memory (export "memory") 256)"#,
                "",
                "(i32.const 0)",
                r#"(memory.fill (i32.const 0) (i32.const 7) (i32.const 16777216))
                   (memory.fill (i32.const 0) (i32.const 9) (i32.const 16777216))
                   (memory.fill (i32.const 0) (i32.const 7) (i32.const 16777216))
                   (memory.fill (i32.const 0) (i32.const 9) (i32.const 16777216))
                   (i32.const 0)"#,
            ),
            Poke::Plain,
        ),
        h(
            "self-doubler",
            "bounded lane (its waves past the bound are dropped) and send budget",
            guest(
                SEND,
                PAGE,
                "",
                "(i32.const 0)",
                r#"(drop (call $send (local.get $b) (local.get $blen) (local.get $m) (local.get $mlen) (local.get $b) (local.get $blen)))
                   (drop (call $send (local.get $b) (local.get $blen) (local.get $m) (local.get $mlen) (local.get $b) (local.get $blen)))
                   (i32.const 0)"#,
            ),
            Poke::ToSelf,
        ),
        h(
            "send-storm",
            "per-call send budget",
            guest(
                SEND,
                PAGE,
                "",
                "(i32.const 0)",
                r#"(local.set $mlen (i32.const 0))
                   (loop $more
                     (drop (call $send (local.get $b) (local.get $blen) (local.get $m) (i32.const 1) (i32.const 0) (i32.const 0)))
                     (local.set $mlen (i32.add (local.get $mlen) (i32.const 1)))
                     (br_if $more (i32.lt_u (local.get $mlen) (i32.const 100000))))
                   (i32.const 0)"#,
            ),
            Poke::ToSelf,
        ),
        h(
            "trespasser",
            "send scope (a counter is outside its subtree)",
            guests::RELAY.into(),
            Poke::ToCounter,
        ),
        h(
            "control-forger",
            "typed control (`$sup:exit` to its supervisor is an ordinary wave)",
            guests::RELAY.into(),
            Poke::ForgeExitToParent,
        ),
        h(
            "log-flood",
            "output limit",
            guest(
                LOG,
                r#"(memory (export "memory") 256)"#,
                "",
                "(i32.const 0)",
                r#"(loop $more
                     (call $log (i32.const 2) (i32.const 0) (i32.const 8388608))
                     (br $more))
                   (i32.const 0)"#,
            ),
            Poke::Plain,
        ),
        h(
            "wild-pointer",
            "ABI checks (a send from outside its memory)",
            guest(
                SEND,
                PAGE,
                "",
                "(i32.const 0)",
                r#"(drop (call $send (i32.const -16) (i32.const 64) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))
                   (i32.const 0)"#,
            ),
            Poke::Plain,
        ),
        h(
            "double-reply",
            "ABI checks (one reply per wave)",
            guest(
                REPLY,
                PAGE,
                "",
                "(i32.const 0)",
                r#"(call $reply (i32.const 0) (i32.const 4))
                   (call $reply (i32.const 0) (i32.const 4))
                   (i32.const 0)"#,
            ),
            Poke::Plain,
        ),
        h(
            "bad-init",
            "start failures are crashes (restarted with backoff)",
            guest("", PAGE, "", "(i32.const 7)", "(i32.const 0)"),
            Poke::Plain,
        ),
        h(
            "fuel-hog",
            "fuel (legal: about 8 M of its 10 M fuel, every wave)",
            guest(
                "",
                PAGE,
                "",
                "(i32.const 0)",
                r#"(local.set $mlen (i32.const 0))
                   (loop $more
                     (local.set $mlen (i32.add (local.get $mlen) (i32.const 1)))
                     (br_if $more (i32.lt_u (local.get $mlen) (i32.const 1000000))))
                   (i32.const 0)"#,
            ),
            Poke::Plain,
        ),
        h(
            "memory-hog",
            "memory ceiling (legal: fills all of it, every wave)",
            guest(
                "",
                PAGE,
                "",
                "(i32.const 0)",
                r#"(drop (memory.grow (i32.sub (i32.const 256) (memory.size))))
                   (memory.fill (i32.const 0) (i32.const 1) (i32.const 1048576))
                   (i32.const 0)"#,
            ),
            Poke::Plain,
        ),
    ]
}

/// The classes the sandbox must refuse at load.
fn load_classes() -> Vec<(&'static str, String)> {
    vec![
        (
            "shared-memory-waiter",
            guest(
                "",
                r#"(memory (export "memory") 1 1 shared)"#,
                "",
                "(i32.const 0)",
                r#"(drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
                   (i32.const 0)"#,
            ),
        ),
        (
            "many-memories",
            guest(
                "",
                &(0..20)
                    .map(|i| {
                        if i == 0 {
                            r#"(memory (export "memory") 1)"#.to_string()
                        } else {
                            format!("(memory $m{i} 256)")
                        }
                    })
                    .collect::<String>(),
                "",
                "(i32.const 0)",
                "(i32.const 0)",
            ),
        ),
        (
            "huge-table",
            guest(
                "",
                PAGE,
                "(table 67108864 funcref)",
                "(i32.const 0)",
                "(i32.const 0)",
            ),
        ),
        ("bad-import", guests::BAD_IMPORT.into()),
    ]
}

/// Resident memory of this process in MiB.
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // On a worker thread, where particles run: see the README.
    match tokio::spawn(run()).await {
        Ok(Ok(true)) => std::process::ExitCode::SUCCESS,
        Ok(Ok(false)) => std::process::ExitCode::FAILURE,
        Ok(Err(e)) => {
            eprintln!("soak failed: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak panicked: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let secs: u64 = std::env::var("HYPERVERSE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // Planned crashes print nothing: the crash log below is the point.
    std::panic::set_hook(Box::new(|_| {}));
    let rss_start = rss_mib();
    let started = Instant::now();

    let host = WasmHost::new(Limits::default());
    host.load_wat("counter", guests::COUNTER_V1)?;
    let classes = runtime_classes();
    for class in &classes {
        host.load_wat(class.name, &class.wat)
            .map_err(|e| format!("hostile class {} did not load: {e}", class.name))?;
    }

    // Crashes per Point, seen by a synchronous observer.
    let crashes: Arc<Mutex<HashMap<Point, u64>>> = Arc::default();
    let seen = crashes.clone();
    let mut builder = Machine::standalone().observer(move |event| {
        if let Event::Crashed(notice) = event {
            *seen.lock().entry(notice.child.clone()).or_default() += 1;
        }
    });
    builder = host.install(builder, "counter");
    for class in &classes {
        builder = host.install(builder, class.name);
    }
    // The control forger lives under a supervisor, whose `$sup:exit` it forges.
    let forger_sup = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(1_000_000, Duration::from_secs(1)),
        vec![ChildSpec::worker(
            "control-forger",
            ChildStart::kind(Kind::wasm("control-forger"), Body::empty()),
        )],
    );
    let machine = builder.supervisor("forger-sup", forger_sup).build().await?;

    let counters: Vec<Point> = (0..COUNTERS)
        .map(|i| format!("counter-{i}").parse())
        .collect::<Result<_, _>>()?;
    for at in &counters {
        machine
            .spawn(at.clone(), Kind::wasm("counter"), Body::empty())
            .await?;
    }

    // Hostile particles: restarted after every crash, with a backoff so a
    // crash loop costs little.
    let restart = RestartLimit {
        max_restarts: 1_000_000,
        period: Duration::from_secs(1),
        backoff: Some(Box::new(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(200),
        ))),
    };
    let sup_at: Point = "forger-sup".parse()?;
    machine
        .spawn(sup_at.clone(), Kind::new("forger-sup"), Body::empty())
        .await?;
    let mut hostile = Vec::new();
    for class in &classes {
        let at: Point = if matches!(class.poke, Poke::ForgeExitToParent) {
            sup_at.child(class.name)?
        } else {
            format!("hostile-{}", class.name).parse()?
        };
        if !matches!(class.poke, Poke::ForgeExitToParent) {
            let opts = SpawnOptions {
                restart_limit: Some(restart.clone()),
                ..Default::default()
            };
            // A start that fails (bad-init) is restarted like any crash.
            machine.spawn_nowait_with(at.clone(), Kind::wasm(class.name), Body::empty(), opts)?;
        }
        hostile.push((class.name, class.contained_by, class.poke, at));
    }
    let sup_children_before = machine.supervisor(&sup_at).count_children().await?;

    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();

    // Pokers: each hostile particle gets a wave every few milliseconds.
    for (_, _, poke, at) in hostile.clone() {
        let (m, running, target) = (machine.clone(), running.clone(), counters[0].clone());
        tasks.push(tokio::spawn(async move {
            let (method, body) = match poke {
                Poke::Plain => ("go", Body::empty()),
                Poke::ToSelf => ("flood", Body::from(at.as_str().to_string())),
                Poke::ToCounter => ("add", Body::from(target.as_str().to_string())),
                Poke::ForgeExitToParent => (
                    "$sup:exit",
                    Body::from(at.parent().unwrap_or_else(Point::root).as_str().to_string()),
                ),
            };
            while running.load(Ordering::Relaxed) {
                let _ = m.signal(&at, (method, body.clone()));
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }

    // Modules that must never load, tried again and again.
    let refused = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (host, running, refused, accepted) = (
            host.clone(),
            running.clone(),
            refused.clone(),
            accepted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                for (name, wat) in load_classes() {
                    match host.load_wat(name, &wat) {
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => accepted.lock().push(name.to_string()),
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }

    // Clients: `add` signals and a timed `get` request, counter by counter.
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..COUNTERS).map(|_| AtomicU64::new(0)).collect());
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    for client in 0..CLIENTS {
        let (m, running, sent, latencies, failures, counters) = (
            machine.clone(),
            running.clone(),
            sent.clone(),
            latencies.clone(),
            failures.clone(),
            counters.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (client..COUNTERS).step_by(CLIENTS).collect();
            let mut local = Vec::new();
            while running.load(Ordering::Relaxed) {
                for &i in &mine {
                    if !running.load(Ordering::Relaxed) {
                        break;
                    }
                    for _ in 0..ADDS_PER_ASK {
                        match m.signal(&counters[i], ("add", Body::empty())) {
                            Ok(()) => {
                                sent[i].fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.lock().push(format!("{}: add: {e}", counters[i])),
                        }
                    }
                    let asked = Instant::now();
                    match m.ask(&counters[i], ("get", Body::empty())).await {
                        Ok(_) => local.push(asked.elapsed().as_micros() as u64),
                        Err(e) => failures.lock().push(format!("{}: get: {e}", counters[i])),
                    }
                }
            }
            latencies.lock().extend(local);
        }));
    }

    // Watch RSS while it runs.
    let mut rss_peak = rss_start;
    let deadline = started + Duration::from_secs(secs);
    let mut next_report = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss_peak = rss_peak.max(rss_mib());
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(10);
            let total: u64 = crashes.lock().values().sum();
            println!(
                "t={:>3}s  rss {:.0} MiB  hostile crashes so far {total}  refused loads {}",
                started.elapsed().as_secs(),
                rss_mib(),
                refused.load(Ordering::Relaxed)
            );
        }
    }
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }

    // Every `add` a counter was sent is counted: nothing lost.
    let mut lost = Vec::new();
    for (i, at) in counters.iter().enumerate() {
        let got = machine
            .ask(at, ("get", Body::empty()))
            .await?
            .as_u64()
            .unwrap_or(u64::MAX);
        let want = sent[i].load(Ordering::Relaxed);
        if got != want {
            lost.push(format!("{at}: counted {got}, sent {want}"));
        }
    }
    let sup_children_after = machine.supervisor(&sup_at).count_children().await?;
    let rss_end = rss_mib();

    let mut lat = std::mem::take(&mut *latencies.lock());
    lat.sort_unstable();
    let adds: u64 = sent.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    println!();
    println!(
        "soak: {secs} s, {COUNTERS} counters, {} hostile classes spawned, {} refused at load",
        hostile.len(),
        load_classes().len()
    );
    println!(
        "counters: {adds} adds, {} gets; get latency p50 {} µs, p99 {} µs, max {} µs",
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    println!("rss: start {rss_start:.0} MiB, peak {rss_peak:.0} MiB, end {rss_end:.0} MiB");
    println!("hostile classes (crashes, what contains it):");
    let crashes = crashes.lock().clone();
    for (name, contained_by, _, at) in &hostile {
        println!(
            "  {name:<16} {:>7}  {contained_by}",
            crashes.get(at).copied().unwrap_or(0)
        );
    }
    println!(
        "  refused at load: {} attempts ({} classes), accepted: {:?}",
        refused.load(Ordering::Relaxed),
        load_classes().len(),
        accepted.lock()
    );
    println!(
        "the forger's supervisor: {} children before, {} after (its forged `$sup:exit` waves changed nothing)",
        sup_children_before.active, sup_children_after.active
    );

    let failures = failures.lock().clone();
    let checks = [
        ("the process lived and the Machine answers", true),
        ("every add counted (no wave lost)", lost.is_empty()),
        ("every counter request answered", failures.is_empty()),
        ("no hostile module accepted", accepted.lock().is_empty()),
        (
            "the forger's supervisor kept its child",
            sup_children_after.active == sup_children_before.active,
        ),
        (
            "memory bounded (end RSS within 256 MiB of start)",
            rss_end < rss_start + 256.0,
        ),
    ];
    let mut ok = true;
    for (what, held) in checks {
        println!("  [{}] {what}", if held { "ok" } else { "FAILED" });
        ok &= held;
    }
    for l in lost.iter().chain(failures.iter()).take(10) {
        println!("    {l}");
    }
    machine.shutdown().await;
    Ok(ok)
}
