//! How the daemon's answers are printed: aligned text for people (status
//! colours only when stdout is a terminal), one JSON object per answer
//! with `--json` for scripts, and a progress bar on stderr for a reload of
//! many particles.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde_json::json;

use crate::daemon::protocol::{Answer, ModuleRow, Row};

/// The exit code of an access denied.
pub const DENIED: u8 = 4;

/// Prints `answer`; the exit code says whether the daemon refused.
pub fn answer(answer: Answer, json: bool) -> ExitCode {
    match answer {
        Answer::Error(e) => {
            if json {
                println!("{}", json!({ "ok": false, "error": e }));
            } else {
                eprintln!("hyperverse: {e}");
            }
            return ExitCode::FAILURE;
        }
        Answer::Done => {
            if json {
                println!("{}", json!({ "ok": true }));
            } else {
                println!("ok");
            }
        }
        Answer::Reply(b) => match readable(&b) {
            Some(t) if json => println!("{}", json!({ "ok": true, "reply": t })),
            Some(t) => println!("{t}"),
            None if json => println!("{}", json!({ "ok": true, "reply_hex": hex(&b) })),
            None => println!("0x{}", hex(&b)),
        },
        Answer::Tree(rows) => tree(&rows, json),
        Answer::Stats(s) => {
            if json {
                let m: serde_json::Map<String, serde_json::Value> =
                    s.into_iter().map(|(k, v)| (k, json!(v))).collect();
                println!("{}", json!({ "ok": true, "stats": m }));
            } else {
                let w = s.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in s {
                    println!("{k:<w$}  {v:>10}");
                }
            }
        }
        Answer::Modules(rows) => modules(&rows, json),
        Answer::Loaded(m) => {
            if json {
                println!("{}", json!({ "ok": true, "module": module_json(&m) }));
            } else {
                println!("loaded {}@{} ({}) from {}", m.name, m.seq, m.hash, m.file);
            }
        }
        Answer::Reloaded {
            module,
            previous,
            to,
            rolled_back,
            particles,
        } => {
            let count = |o: &str| particles.iter().filter(|p| p.outcome == o).count();
            if json {
                let ps: Vec<_> = particles
                    .iter()
                    .map(|p| json!({ "point": p.point, "outcome": p.outcome, "reason": p.reason }))
                    .collect();
                println!(
                    "{}",
                    json!({ "ok": true, "module": module.name, "from": previous, "to": to, "current": module.seq,
                            "rolled_back": rolled_back, "particles": ps })
                );
            } else {
                let w = particles
                    .iter()
                    .map(|p| p.point.len())
                    .max()
                    .unwrap_or(5)
                    .max(5);
                for p in &particles {
                    let reason = if p.reason.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", p.reason)
                    };
                    println!("{:<w$}  {}{reason}", p.point, p.outcome);
                }
                println!(
                    "{} {previous} -> {to}: {} reloaded, {} current, {} failed, {} gone{}",
                    module.name,
                    count("reloaded"),
                    count("current"),
                    count("failed"),
                    count("gone"),
                    if rolled_back {
                        format!("; rolled back to {previous}")
                    } else {
                        String::new()
                    }
                );
            }
            if count("failed") > 0 {
                return ExitCode::FAILURE;
            }
        }
        Answer::Denied(e) => {
            if json {
                println!("{}", json!({ "ok": false, "denied": true, "error": e }));
            } else {
                eprintln!("hyperverse: {e}");
            }
            return ExitCode::from(DENIED);
        }
        Answer::Rules {
            policy,
            you,
            grants,
            groups,
        } => rules(&policy, &you, &grants, &groups, json),
        // Streams: never the answer to a one-answer command.
        Answer::Event { .. } | Answer::Following | Answer::Progress { .. } => {}
    }
    ExitCode::SUCCESS
}

/// A reply as text, if it is text (UTF-8 with no control characters but
/// newlines and tabs); binary replies (a WASM counter's 8-byte count) are
/// shown in hex instead of as garbage on the terminal.
fn readable(b: &[u8]) -> Option<&str> {
    let t = std::str::from_utf8(b).ok()?;
    t.chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\t')
        .then_some(t)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// ANSI colour for a status, when stdout is a terminal.
fn coloured(status: &str, width: usize) -> String {
    let padded = format!("{status:<width$}");
    if !std::io::stdout().is_terminal() {
        return padded;
    }
    let code = match status {
        "Ready" => "32",
        "Starting" | "Restarting" => "33",
        "Stopped" => "31",
        _ => return padded,
    };
    format!("\x1b[{code}m{padded}\x1b[0m")
}

fn tree(rows: &[Row], json: bool) {
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"point": r.point, "kind": r.kind, "machine": r.machine, "star": r.star,
                       "status": r.status, "restarts": r.restarts, "version": r.version,
                       "queued": r.queued, "taken": r.taken})
            })
            .collect();
        println!("{}", json!({ "ok": true, "tree": rows }));
        return;
    }
    let w =
        |f: &dyn Fn(&Row) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(min).max(min);
    let (wp, wk, wm) = (
        w(&|r| r.point.len(), 5),
        w(&|r| r.kind.len(), 4),
        w(&|r| r.machine.len(), 7),
    );
    println!(
        "{:<wp$}  {:<wk$}  {:<wm$}  {:>4}  {:<9}  {:>8}  {:>7}",
        "point", "kind", "machine", "star", "status", "restarts", "version"
    );
    for r in rows {
        let version = if r.version == 0 {
            "-".to_string()
        } else {
            r.version.to_string()
        };
        println!(
            "{:<wp$}  {:<wk$}  {:<wm$}  {:>4}  {}  {:>8}  {:>7}",
            r.point,
            r.kind,
            r.machine,
            r.star,
            coloured(&r.status, 9),
            r.restarts,
            version
        );
    }
}

/// `hyperverse rules`: the policy and who you are, then a grant a line,
/// then a group a line.
fn rules(policy: &str, you: &str, grants: &[String], groups: &[(String, Vec<String>)], json: bool) {
    if json {
        let groups: serde_json::Map<String, serde_json::Value> = groups
            .iter()
            .map(|(g, members)| (g.clone(), json!(members)))
            .collect();
        println!(
            "{}",
            json!({ "ok": true, "policy": policy, "you": you, "grants": grants, "groups": groups })
        );
        return;
    }
    println!("policy  {policy}");
    println!("you     {you}");
    println!("grants  {}", grants.len());
    for g in grants {
        println!("  {g}");
    }
    println!("groups  {}", groups.len());
    for (g, members) in groups {
        println!("  {g}: {}", members.join(", "));
    }
}

fn module_json(m: &ModuleRow) -> serde_json::Value {
    json!({ "name": m.name, "version": m.seq, "hash": m.hash, "label": m.label,
            "file": m.file, "live": m.live })
}

fn modules(rows: &[ModuleRow], json: bool) {
    if json {
        let rows: Vec<_> = rows.iter().map(module_json).collect();
        println!("{}", json!({ "ok": true, "modules": rows }));
        return;
    }
    let wn = rows.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<wn$}  {:>7}  {:<12}  {:<5}  {:>4}  file",
        "name", "version", "hash", "label", "live"
    );
    for m in rows {
        let (seq, hash) = if m.seq == 0 {
            ("-".to_string(), "(not loaded)".to_string())
        } else {
            (m.seq.to_string(), m.hash.clone())
        };
        let label = if m.label.is_empty() { "-" } else { &m.label };
        println!(
            "{:<wn$}  {seq:>7}  {hash:<12}  {label:<5}  {:>4}  {}",
            m.name, m.live, m.file
        );
    }
}

/// A reload's progress on stderr: a bar redrawn in place, shown only for a
/// reload of many particles, on a terminal, without `--json`.
pub struct Progress {
    shown: bool,
    enabled: bool,
}

/// Fewer particles than this reload too fast for a bar to help.
const BAR_FROM: u64 = 100;

impl Progress {
    pub fn new(json: bool) -> Self {
        Progress {
            shown: false,
            enabled: !json && std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled || total < BAR_FROM {
            return;
        }
        const WIDTH: u64 = 40;
        let filled = (done * WIDTH / total.max(1)) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rreloading [{}{}] {done}/{total}",
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled)
        );
        let _ = err.flush();
        self.shown = true;
    }

    pub fn finish(&mut self) {
        if self.shown {
            eprintln!();
        }
    }
}
