//! The demo's report: plain text on stdout, one section per phase, every
//! figure read back from the runtime.

use std::fmt::Write as _;
use std::time::Duration;

use super::checks::{self, Check};
use super::plan::{How, Plan};
use super::{DemoArgs, Findings};

/// Rows shown in the crash tables before the rest are only counted (all of
/// them are still checked).
const MAX_ROWS: usize = 20;
/// Problems shown per failed check.
const MAX_PROBLEMS: usize = 5;

/// `1234567` as `1,234,567`.
pub fn num(n: impl TryInto<u64>) -> String {
    let digits = n.try_into().unwrap_or(u64::MAX).to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `n` and the noun in `one` or `many` form: `1 star`, `2 stars`.
fn count(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    format!("{} {}", num(n), if n == 1 { one } else { many })
}

/// What is about to run, printed before the Machine does anything, so that
/// a slow or failing run still says what it was.
pub fn header(args: &DemoArgs, plan: &Plan, stars: usize) {
    println!(
        "hyperverse demo: {}, {} (1 root, {}, {}), {} from {} sender tasks, {}, seed {}; then {} hot-reloaded under {}",
        count(stars, "star", "stars"),
        count(plan.layout.len(), "particle", "particles"),
        count(args.regions, "region", "regions"),
        count(args.particles, "worker", "workers"),
        count(args.waves, "wave", "waves"),
        args.senders,
        count(args.crashes, "crash", "crashes"),
        args.seed,
        count(args.wasm_particles, "WASM counter in C", "WASM counters in C"),
        count(args.wasm_waves, "wave", "waves"),
    );
    println!();
}

/// Prints the report; returns whether every check passed.
pub fn print(f: &Findings) -> bool {
    let mut out = String::new();
    tree(&mut out, f);
    waves(&mut out, f);
    crashes(&mut out, f);
    stars(&mut out, f);
    hot_reload(&mut out, f);
    storm(&mut out, f);
    let checks = checks::all(f);
    summary(&mut out, f, &checks);
    print!("{out}");
    checks.iter().all(Check::passed)
}

/// A duration in the unit that reads best: `42.1 ms`, `3.25 s`.
fn dur(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn tree(out: &mut String, f: &Findings) {
    let _ = writeln!(
        out,
        "Tree      demo:region-N:worker-M in {} (one spawn_tree; region R on Star R mod S, its workers with it)",
        dur(f.timings.spawn)
    );
    let mut rows = Vec::new();
    for s in &f.seen.star_stats {
        let here: Vec<&str> = f
            .seen
            .regions
            .iter()
            .filter(|r| r.star == s.star)
            .map(|r| r.point.name())
            .collect();
        let regions = match here.len() {
            0 => "no region".to_string(),
            n if n <= 6 => here.join(" "),
            n => format!("{n} regions"),
        };
        rows.push(vec![
            format!("star {}", s.star),
            format!("{} particles", num(s.spawned)),
            regions,
        ]);
    }
    table(out, &rows);
    out.push('\n');
}

fn waves(out: &mut String, f: &Findings) {
    let t = &f.seen.traffic;
    let (signals, requests) = f.seen.handled;
    let _ = writeln!(
        out,
        "Waves     {} from {}{}",
        dur(f.timings.waves),
        count(f.args.senders, "sender", "senders"),
        if f.plan.crashes.is_empty() {
            ""
        } else {
            ", crash waves slipped in mid-stream"
        }
    );
    let rows = vec![
        vec![
            "sent".into(),
            num(t.signals + t.requests),
            format!(
                "= {} signals + {} requests",
                num(t.signals),
                num(t.requests)
            ),
        ],
        vec![
            "delivered".into(),
            num(signals + requests),
            format!(
                "= {} signals + {} requests handled by workers",
                num(signals),
                num(requests)
            ),
        ],
        vec![
            "acknowledged".into(),
            num(t.acked),
            "requests answered (each echoing its own body)".into(),
        ],
    ];
    table(out, &rows);
    out.push('\n');
}

fn crashes(out: &mut String, f: &Findings) {
    let layout = &f.plan.layout;
    let panics = f
        .plan
        .crashes
        .iter()
        .filter(|c| c.how == How::Panic)
        .count();
    if f.plan.crashes.is_empty() {
        out.push_str("Crashes   none planned (--crashes 0)\n\n");
        return;
    }
    let _ = writeln!(
        out,
        "Crashes   {} planned: {} returned Err, {} panicked",
        num(f.plan.crashes.len()),
        num(f.plan.crashes.len() - panics),
        num(panics)
    );

    out.push_str("  crash notices received by the parents:\n");
    let mut rows = Vec::new();
    for (r, answer) in f.seen.notices.iter().enumerate() {
        match answer {
            Ok(list) => rows.extend(list.iter().map(|n| {
                vec![
                    layout.regions[r].to_string(),
                    format!("<- {}", n.child),
                    format!("restarts {}", n.restarts),
                    match &n.in_flight {
                        Some(w) => format!("on `{}` from {}", w.method, w.from),
                        None => "while starting".into(),
                    },
                    format!("{:?}", n.reason),
                ]
            })),
            Err(e) => rows.push(vec![
                layout.regions[r].to_string(),
                format!("(no answer: {e})"),
            ]),
        }
    }
    capped_table(out, rows);

    out.push_str("  crashed workers afterwards:\n");
    let rows = f
        .plan
        .crashes
        .iter()
        .map(|c| {
            let point = &layout.workers[c.worker];
            let how = match c.how {
                How::Error => "Err",
                How::Panic => "panic",
            };
            let registry = match &f.seen.records[c.worker] {
                Some(r) => format!("registry: {:?}, restarts {}", r.status, r.restarts),
                None => "registry: missing".into(),
            };
            let ping = match &f.seen.pings[c.worker] {
                Ok(n) => format!("serves again (ping says restarts {n})"),
                Err(e) => format!("no answer: {e}"),
            };
            vec![point.to_string(), how.into(), registry, ping]
        })
        .collect();
    capped_table(out, rows);
    out.push('\n');
}

fn stars(out: &mut String, f: &Findings) {
    out.push_str("Stars\n");
    let mut rows = vec![["star", "spawned", "crashes", "restarts", "gave up"]
        .map(String::from)
        .to_vec()];
    rows.extend(f.seen.star_stats.iter().map(|s| {
        vec![
            s.star.to_string(),
            num(s.spawned),
            num(s.crashes),
            num(s.restarts),
            num(s.gave_up),
        ]
    }));
    table(out, &rows);
    out.push('\n');
}

fn storm(out: &mut String, f: &Findings) {
    let Some(phase) = &f.storm else {
        return;
    };
    match &phase.report {
        Ok(r) => {
            let _ = writeln!(
                out,
                "Faults    a seeded storm (seed {}) on its own Machine: {} particles over {} Stars, in {}",
                r.seed,
                num(r.particles),
                r.stars,
                dur(phase.elapsed)
            );
            let mut rows = vec![
                vec![
                    "injected".into(),
                    num(r.faults.injected.len()),
                    format!(
                        "{} crashes (accounts and supervisors), {} Star kills, {} lanes delaying 5% of waves",
                        num(r.faults.count("crash")),
                        num(r.faults.count("kill_star")),
                        num(r.faults.count("delay"))
                    ),
                ],
                vec!["sent".into(), num(r.sent), "numbered waves accepted from 8 senders".into()],
                vec![
                    "delivered".into(),
                    num(r.delivered),
                    "handled exactly once, in per-sender order".into(),
                ],
                vec![
                    "checked".into(),
                    num(r.restarts_checked),
                    "supervisor restarts, each against its strategy".into(),
                ],
            ];
            for s in &r.star_stats {
                rows.push(vec![
                    format!("star {}", s.star),
                    num(s.restarts),
                    format!("restarts ({} crashes)", num(s.crashes)),
                ]);
            }
            table(out, &rows);
        }
        Err(e) => {
            let _ = writeln!(out, "Faults    the storm could not run: {e}");
        }
    }
    out.push('\n');
}

fn hot_reload(out: &mut String, f: &Findings) {
    let h = &f.hot;
    let _ = writeln!(
        out,
        "Reload    {} WASM counters in C (`{}`, v1: modules/sdk/c/examples/counter.c) under load from {}, reloaded to v2 (counter_v2.c) mid-stream, in {}",
        num(h.particles),
        super::hot_reload::MODULE,
        count(f.args.senders, "sender", "senders"),
        dur(h.elapsed)
    );
    let mut rows = vec![
        vec![
            "sent".into(),
            num(h.sent),
            format!(
                "`add` waves ({} before the reload began)",
                num(h.sent_before_reload)
            ),
        ],
        vec![
            "counted".into(),
            num(h.counted),
            "the counters' counts added up afterwards".into(),
        ],
    ];
    match &h.report {
        Ok(r) => {
            rows.push(vec![
                "reloaded".into(),
                num(r.reloaded.len() + r.current.len()),
                format!(
                    "{} -> {}@{}: swap {}, compile {}; {} failed, {} gone",
                    r.previous
                        .as_ref()
                        .map_or("-".to_string(), |p| format!("{}@{}", p.name, p.seq)),
                    r.version.name,
                    r.version.seq,
                    dur(r.swap),
                    dur(r.compile),
                    num(r.failed.len()),
                    num(r.gone.len())
                ),
            ]);
        }
        Err(e) => rows.push(vec!["reloaded".into(), "0".into(), format!("failed: {e}")]),
    }
    rows.push(vec![
        "on v1".into(),
        num(h.on_v1_before),
        "answered `version` with 1 before the waves".into(),
    ]);
    rows.push(vec![
        "on v2".into(),
        num(h.on_v2),
        format!(
            "answer `version` with 2; the Registry shows version 2 for {}",
            num(h.registry_v2)
        ),
    ]);
    table(out, &rows);
    out.push('\n');
}

fn summary(out: &mut String, f: &Findings, checks: &[Check]) {
    let _ = writeln!(
        out,
        "Shutdown  {} particles left, {}",
        num(f.left_after_shutdown),
        dur(f.timings.shutdown)
    );
    out.push('\n');
    out.push_str("Checks\n");
    for c in checks {
        let mark = if c.passed() { "ok    " } else { "FAILED" };
        let _ = writeln!(out, "  {mark}  {}", c.name);
        for p in c.problems.iter().take(MAX_PROBLEMS) {
            let _ = writeln!(out, "            {p}");
        }
        if c.problems.len() > MAX_PROBLEMS {
            let _ = writeln!(
                out,
                "            ... and {} more",
                num(c.problems.len() - MAX_PROBLEMS)
            );
        }
    }
    out.push('\n');
    let passed = checks.iter().filter(|c| c.passed()).count();
    let verdict = if passed == checks.len() {
        format!("all {} checks passed", checks.len())
    } else {
        format!(
            "{} of {} checks FAILED",
            checks.len() - passed,
            checks.len()
        )
    };
    let _ = writeln!(out, "{verdict}; elapsed {}", dur(f.timings.total));
}

/// [`table`] with at most [`MAX_ROWS`] rows, then a count of the rest;
/// indented one level deeper, as the body of a sub-heading.
fn capped_table(out: &mut String, mut rows: Vec<Vec<String>>) {
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    rows.truncate(MAX_ROWS);
    table_at(out, &rows, 4);
    if hidden > 0 {
        let _ = writeln!(out, "    ... and {} more (all checked)", num(hidden));
    }
}

/// Writes rows as aligned columns, indented by two spaces.
fn table(out: &mut String, rows: &[Vec<String>]) {
    table_at(out, rows, 2);
}

/// Writes rows as aligned columns two spaces apart, indented by `indent`.
/// Columns whose cells (a header row aside) all look like numbers are
/// right-aligned.
fn table_at(out: &mut String, rows: &[Vec<String>], indent: usize) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
    };
    let numeric = |c: usize| {
        rows.iter()
            .skip(1)
            .filter_map(|r| r.get(c))
            .all(|s| !s.is_empty() && s.chars().all(|ch| ch.is_ascii_digit() || ch == ','))
    };
    let layout: Vec<(usize, bool)> = (0..cols).map(|c| (width(c), numeric(c))).collect();
    for row in rows {
        let mut line = " ".repeat(indent);
        for (i, (cell, &(w, right))) in row.iter().zip(&layout).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if right {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(num(0u64), "0");
        assert_eq!(num(999u64), "999");
        assert_eq!(num(1_000u64), "1,000");
        assert_eq!(num(1_234_567usize), "1,234,567");
        assert_eq!(count(1u64, "star", "stars"), "1 star");
        assert_eq!(count(2u64, "star", "stars"), "2 stars");
    }

    #[test]
    fn tables_align_numbers_right() {
        let mut out = String::new();
        let rows = vec![
            vec!["star".to_string(), "spawned".to_string()],
            vec!["0".to_string(), "1,010".to_string()],
        ];
        table(&mut out, &rows);
        assert_eq!(out, "  star  spawned\n     0    1,010\n");
    }
}
