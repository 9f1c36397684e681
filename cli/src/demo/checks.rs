//! The invariants the demo checks: what must hold if the runtime keeps its
//! promises (no lost waves, one notice per crash, restarts that count and
//! serve, a shutdown that leaves nothing behind).

use hyperverse::{CrashNotice, Status};

use super::particles::PLANNED_PANIC;
use super::plan::{Crash, How};
use super::report::num;
use super::Findings;

/// One invariant and what broke it (nothing, if it holds).
pub struct Check {
    pub name: String,
    pub problems: Vec<String>,
}

impl Check {
    fn new(name: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            problems: Vec::new(),
        }
    }

    fn expect(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The reason a crash should be reported with: the runtime prefixes panic
/// messages with `panic: `.
pub fn expected_reason(crash: &Crash) -> String {
    match crash.how {
        How::Error => crash.reason.clone(),
        How::Panic => format!("panic: {PLANNED_PANIC} ({})", crash.reason),
    }
}

/// Every check, in report order.
pub fn all(f: &Findings) -> Vec<Check> {
    let mut checks = vec![
        spawned(f),
        delivered(f),
        crash_waves(f),
        notices(f),
        star_counters(f),
        registry(f),
        serving(f),
        hot_reload(f),
    ];
    checks.extend(storm(f));
    checks.push(shutdown(f));
    checks
}

/// The fault phase: the storm's invariant held and every supervisor
/// followed its strategy.
fn storm(f: &Findings) -> Option<Check> {
    let phase = f.storm.as_ref()?;
    let mut c = Check::new(
        "fault storm: every accepted wave handled once, in order; every restart per strategy",
    );
    match &phase.report {
        Ok(r) => {
            c.expect(r.sent == r.delivered, || {
                format!("{} waves sent, {} delivered", num(r.sent), num(r.delivered))
            });
            c.problems.extend(r.violations.iter().take(5).cloned());
            c.expect(r.faults.count("crash") > 0, || {
                "no fault was injected".into()
            });
        }
        Err(e) => c.problems.push(format!("the storm could not run: {e}")),
    }
    Some(c)
}

fn spawned(f: &Findings) -> Check {
    let want = f.plan.layout.len();
    let mut c = Check::new(format!(
        "{} particles spawned, each worker on its region's Star",
        num(want)
    ));
    c.expect(f.seen.spawned == want, || {
        format!("spawn_tree returned {} points", num(f.seen.spawned))
    });
    c.expect(f.seen.registered == want, || {
        format!("the Registry held {} particles", num(f.seen.registered))
    });
    let counted: u64 = f.seen.star_stats.iter().map(|s| s.spawned).sum();
    c.expect(counted == want as u64, || {
        format!("the Stars counted {} spawns", num(counted))
    });
    for (w, record) in f.seen.records.iter().enumerate() {
        let region = &f.seen.regions[f.plan.layout.region_of[w]];
        if let Some(r) = record {
            c.expect(r.star == region.star, || {
                format!(
                    "{} is on star {}, its parent on star {}",
                    r.point, r.star, region.star
                )
            });
        }
    }
    c
}

fn delivered(f: &Findings) -> Check {
    let t = &f.seen.traffic;
    let (signals, requests) = f.seen.handled;
    let mut c = Check::new(format!(
        "waves delivered = waves sent ({})",
        num(t.signals + t.requests)
    ));
    c.expect(signals == t.signals, || {
        format!("{} signals sent, {} handled", num(t.signals), num(signals))
    });
    c.expect(requests == t.requests, || {
        format!(
            "{} requests sent, {} handled",
            num(t.requests),
            num(requests)
        )
    });
    c.expect(t.acked == t.requests, || {
        format!(
            "{} requests sent, {} acknowledged",
            num(t.requests),
            num(t.acked)
        )
    });
    c.problems.extend(t.failures.iter().cloned());
    c
}

fn crash_waves(f: &Findings) -> Check {
    let mut c = Check::new("every crash wave crashed its worker, with its reason");
    for (crash, outcome) in f.plan.crashes.iter().zip(&f.seen.traffic.crashes) {
        let point = &f.plan.layout.workers[crash.worker];
        let want = expected_reason(crash);
        match outcome {
            Ok(reason) => c.expect(*reason == want, || {
                format!("{point} crashed with {reason:?}, expected {want:?}")
            }),
            Err(e) => c.problems.push(format!("{point}: {e}")),
        }
    }
    c
}

fn notices(f: &Findings) -> Check {
    let mut c = Check::new("each parent got exactly one notice per crash");
    let layout = &f.plan.layout;
    let mut received: Vec<(usize, &CrashNotice)> = Vec::new();
    for (r, answer) in f.seen.notices.iter().enumerate() {
        match answer {
            Ok(list) => received.extend(list.iter().map(|n| (r, n))),
            Err(e) => c
                .problems
                .push(format!("{} did not report: {e}", layout.regions[r])),
        }
    }
    for crash in &f.plan.crashes {
        let point = &layout.workers[crash.worker];
        let parent = layout.region_of[crash.worker];
        let got: Vec<_> = received.iter().filter(|(_, n)| n.child == *point).collect();
        let [(r, n)] = got.as_slice() else {
            c.problems
                .push(format!("{} notices for {point}, expected 1", got.len()));
            continue;
        };
        let want = expected_reason(crash);
        c.expect(*r == parent, || {
            format!("the notice for {point} went to {}", layout.regions[*r])
        });
        c.expect(n.reason == want, || {
            format!("notice for {point} says {:?}, expected {want:?}", n.reason)
        });
        c.expect(n.restarts == 1 && !n.gave_up, || {
            format!(
                "notice for {point}: restarts {}, gave up {}",
                n.restarts, n.gave_up
            )
        });
    }
    let planned = |n: &CrashNotice| {
        f.plan
            .crashes
            .iter()
            .any(|c| layout.workers[c.worker] == n.child)
    };
    for (_, n) in received.iter().filter(|(_, n)| !planned(n)) {
        c.problems
            .push(format!("unplanned crash of {}: {}", n.child, n.reason));
    }
    c
}

fn star_counters(f: &Findings) -> Check {
    let planned = f.plan.crashes.len() as u64;
    let sum = |field: fn(&hyperverse::StarStats) -> u64| f.seen.star_stats.iter().map(field).sum();
    let (crashes, restarts, gave_up): (u64, u64, u64) =
        (sum(|s| s.crashes), sum(|s| s.restarts), sum(|s| s.gave_up));
    let mut c = Check::new(format!(
        "Stars counted {} crashes, {} restarts, 0 given up",
        num(planned),
        num(planned)
    ));
    c.expect(crashes == planned, || format!("{} crashes", num(crashes)));
    c.expect(restarts == planned, || {
        format!("{} restarts", num(restarts))
    });
    c.expect(gave_up == 0, || format!("{} given up", num(gave_up)));
    c
}

/// How many restarts each worker should show: one per planned crash.
fn planned_restarts(f: &Findings) -> Vec<u32> {
    let mut want = vec![0u32; f.plan.layout.workers.len()];
    for crash in &f.plan.crashes {
        want[crash.worker] += 1;
    }
    want
}

fn registry(f: &Findings) -> Check {
    let mut c =
        Check::new("Registry: 1 restart for each crashed worker, 0 for the rest, all Ready");
    for ((point, record), want) in f
        .plan
        .layout
        .workers
        .iter()
        .zip(&f.seen.records)
        .zip(planned_restarts(f))
    {
        match record {
            Some(r) => c.expect(r.restarts == want && r.status == Status::Ready, || {
                format!(
                    "{point}: {} restarts (expected {want}), {:?}",
                    r.restarts, r.status
                )
            }),
            None => c.problems.push(format!("{point} is not registered")),
        }
    }
    c
}

fn serving(f: &Findings) -> Check {
    let mut c = Check::new("every worker answers after the traffic, crashed ones included");
    for ((point, ping), want) in f
        .plan
        .layout
        .workers
        .iter()
        .zip(&f.seen.pings)
        .zip(planned_restarts(f))
    {
        match ping {
            Ok(restarts) => c.expect(*restarts == want, || {
                format!("{point} says it restarted {restarts} times, expected {want}")
            }),
            Err(e) => c.problems.push(format!("{point}: {e}")),
        }
    }
    c
}

fn hot_reload(f: &Findings) -> Check {
    let h = &f.hot;
    let mut c = Check::new(format!(
        "hot reload under load: {} WASM counters in C v1 -> v2, {} waves, none lost",
        num(h.particles),
        num(h.sent)
    ));
    match &h.report {
        Ok(report) => {
            c.expect(report.is_complete(), || report.to_string());
            let moved = report.reloaded.len() + report.current.len();
            c.expect(moved == h.particles, || {
                format!(
                    "{} of {} counters moved to v2",
                    num(moved),
                    num(h.particles)
                )
            });
        }
        Err(e) => c.problems.push(format!("the reload failed: {e}")),
    }
    c.expect(h.counted == h.sent, || {
        format!(
            "{} waves sent, the counters counted {}",
            num(h.sent),
            num(h.counted)
        )
    });
    c.expect(h.on_v1_before == h.particles, || {
        format!(
            "{} of {} counters answered as v1 before the reload",
            num(h.on_v1_before),
            num(h.particles)
        )
    });
    c.expect(h.on_v2 == h.particles, || {
        format!(
            "{} of {} counters answer as v2",
            num(h.on_v2),
            num(h.particles)
        )
    });
    c.problems.extend(h.not_on_v2.iter().cloned());
    c.expect(h.registry_v2 == h.particles, || {
        format!(
            "the Registry shows version 2 for {} of {} counters",
            num(h.registry_v2),
            num(h.particles)
        )
    });
    c.problems.extend(h.failures.iter().cloned());
    c
}

fn shutdown(f: &Findings) -> Check {
    let mut c = Check::new("shutdown left no particle behind");
    c.expect(f.left_after_shutdown == 0, || {
        format!("{} particles still registered", num(f.left_after_shutdown))
    });
    c
}
