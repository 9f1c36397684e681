//! Fault plans: a schedule of faults driven by a seed, and its run.

use std::fmt;
use std::time::Duration;

use hyperverse_runtime::{Fault, Machine, Point};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tracing::Instrument;

use crate::Target;

/// What one rule of a plan does each time it fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Crash one particle picked from the target.
    Crash(Target),
    /// Kill one Star picked at random ([`Machine::kill_star`]): its
    /// particles crash with it.
    KillStar,
    /// Delay waves on one particle's lane (each with `probability`, by up
    /// to `max`), picked from the target.
    Delay {
        target: Target,
        max: Duration,
        probability: f64,
    },
    /// Delay waves on every targeted lane at once (a standing fault).
    DelayAll {
        target: Target,
        max: Duration,
        probability: f64,
    },
    /// Drop waves on one particle's lane with `probability`.
    Drop { target: Target, probability: f64 },
    /// Pause one particle for a while, then resume it.
    Pause { target: Target, pause: Duration },
    /// Make one particle's next start fail, then crash it.
    FailRestart(Target),
}

/// One fault in a schedule: when, which rule, and the random pick that
/// chooses among the rule's targets at that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// Since the plan started.
    pub at: Duration,
    /// The rule's index in the plan.
    pub rule: usize,
    /// Picks the target (modulo the number of candidates then).
    pub pick: u64,
}

/// A fault that was injected.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    /// When, since the plan started (as scheduled).
    pub at: Duration,
    /// What was done.
    pub action: String,
    /// To which particle (for a Star kill, the Star as `star-N`).
    pub target: Point,
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>8.1} ms  {} {}",
            self.at.as_secs_f64() * 1e3,
            self.action,
            self.target
        )
    }
}

/// What a plan's run did.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultReport {
    /// The plan's seed: run it again with this seed to replay.
    pub seed: u64,
    /// Every fault injected, in order.
    pub injected: Vec<FaultRecord>,
    /// Scheduled faults that found no target (nothing matched then).
    pub missed: usize,
}

impl FaultReport {
    /// How many injected faults were of this action (`"crash"`, `"kill_star"`, …).
    pub fn count(&self, action: &str) -> usize {
        self.injected.iter().filter(|r| r.action == action).count()
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fault plan seed {}: {} faults injected, {} missed",
            self.seed,
            self.injected.len(),
            self.missed
        )?;
        for r in &self.injected {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

/// A rule: an action, and how often it fires.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// Mean time between firings (`None`: once, at the start).
    every: Option<Duration>,
    action: Action,
}

/// A schedule of faults driven by a seed: "for 10 s, every ~50 ms crash a
/// random particle under `app`, every ~2 s kill a random Star, delay 5% of
/// waves by up to 20 ms". The same seed makes the same schedule (times,
/// rules and picks); run against the same tree it injects the same faults.
///
/// ```
/// use hyperverse_faults::{Action, FaultPlan, Target};
/// use hyperverse_runtime::Point;
/// use std::time::Duration;
///
/// let app: Point = "app".parse().unwrap();
/// let plan = |seed| {
///     FaultPlan::new(seed)
///         .duration(Duration::from_secs(10))
///         .every(Duration::from_millis(50), Action::Crash(Target::subtree(app.clone())))
///         .every(Duration::from_secs(2), Action::KillStar)
///         .once(Action::DelayAll {
///             target: Target::subtree(app.clone()),
///             max: Duration::from_millis(20),
///             probability: 0.05,
///         })
/// };
/// assert_eq!(plan(42).schedule(), plan(42).schedule());
/// assert_ne!(plan(42).schedule(), plan(43).schedule());
/// // About 200 crashes and 5 Star kills in 10 s, plus the standing delay.
/// let n = plan(42).schedule().len();
/// assert!((150..260).contains(&n), "{n}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    seed: u64,
    duration: Duration,
    rules: Vec<Rule>,
}

impl FaultPlan {
    /// An empty plan (one second long) with this seed.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            seed,
            duration: Duration::from_secs(1),
            rules: Vec::new(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How long the plan runs.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Fires `action` about every `mean` (each gap drawn from half to one
    /// and a half times it).
    pub fn every(mut self, mean: Duration, action: Action) -> Self {
        self.rules.push(Rule {
            every: Some(mean.max(Duration::from_micros(100))),
            action,
        });
        self
    }

    /// Fires `action` once, at the start.
    pub fn once(mut self, action: Action) -> Self {
        self.rules.push(Rule {
            every: None,
            action,
        });
        self
    }

    /// The schedule, in time order: a pure function of the seed and the rules.
    pub fn schedule(&self) -> Vec<Scheduled> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            // One stream per rule: adding a rule does not move the others.
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(i as u64);
            let Some(mean) = rule.every else {
                out.push(Scheduled {
                    at: Duration::ZERO,
                    rule: i,
                    pick: rng.gen(),
                });
                continue;
            };
            let mut at = Duration::ZERO;
            loop {
                at += mean.mul_f64(rng.gen_range(0.5..1.5));
                if at >= self.duration {
                    break;
                }
                out.push(Scheduled {
                    at,
                    rule: i,
                    pick: rng.gen(),
                });
            }
        }
        out.sort_by_key(|s| (s.at, s.rule));
        out
    }

    /// Runs the plan against `machine` in real time and reports every
    /// fault injected. Faults that find nothing to hit are counted as missed.
    pub async fn run(&self, machine: &Machine) -> FaultReport {
        let span = tracing::info_span!(target: "hyperverse::fault", "fault_plan", seed = self.seed);
        self.run_now(machine).instrument(span).await
    }

    async fn run_now(&self, machine: &Machine) -> FaultReport {
        tracing::info!(target: "hyperverse::fault", seed = self.seed, "fault plan starts");
        let start = Instant::now();
        let mut report = FaultReport {
            seed: self.seed,
            injected: Vec::new(),
            missed: 0,
        };
        for s in self.schedule() {
            tokio::time::sleep_until(start + s.at).await;
            let records = self.fire(machine, &self.rules[s.rule].action, s).await;
            if records.is_empty() {
                report.missed += 1;
            }
            report.injected.extend(records);
        }
        tokio::time::sleep_until(start + self.duration).await;
        report
    }

    async fn fire(&self, machine: &Machine, action: &Action, s: Scheduled) -> Vec<FaultRecord> {
        let record = |action: &str, target: Point| FaultRecord {
            at: s.at,
            action: action.to_string(),
            target,
        };
        let pick = |target: &Target| {
            let points = target.resolve(machine);
            (!points.is_empty()).then(|| points[(s.pick % points.len() as u64) as usize].clone())
        };
        // A lane's own choices (delays, drops) are seeded from the plan.
        let lane_seed = self.seed ^ s.pick.rotate_left(17) ^ 1;
        // Each lane its own stream: seeded from the plan and its Point.
        let injected = |point: &Point, fault: Fault| {
            let seed = lane_seed ^ fnv1a(point.to_string().as_bytes());
            machine.inject_seeded(point, fault, seed).is_ok()
        };
        match action {
            Action::Crash(target) => pick(target)
                .filter(|p| injected(p, Fault::Crash(format!("fault plan {} crash", self.seed))))
                .map(|p| record("crash", p))
                .into_iter()
                .collect(),
            Action::KillStar => {
                let star = (s.pick % machine.stars() as u64) as usize;
                match machine
                    .kill_star(star, &format!("fault plan {}", self.seed))
                    .await
                {
                    Ok(_) => vec![record(
                        "kill_star",
                        format!("star-{star}").parse().expect("a valid Point"),
                    )],
                    Err(e) => {
                        tracing::warn!(target: "hyperverse::fault", star, error = %e, "star kill failed");
                        Vec::new()
                    }
                }
            }
            Action::Delay {
                target,
                max,
                probability,
            } => pick(target)
                .filter(|p| injected(p, delay(*max, *probability)))
                .map(|p| record("delay", p))
                .into_iter()
                .collect(),
            Action::DelayAll {
                target,
                max,
                probability,
            } => target
                .resolve(machine)
                .into_iter()
                .filter(|p| injected(p, delay(*max, *probability)))
                .map(|p| record("delay", p))
                .collect(),
            Action::Drop {
                target,
                probability,
            } => pick(target)
                .filter(|p| {
                    injected(
                        p,
                        Fault::Drop {
                            probability: *probability,
                        },
                    )
                })
                .map(|p| record("drop", p))
                .into_iter()
                .collect(),
            Action::Pause { target, pause } => {
                let Some(p) = pick(target).filter(|p| injected(p, Fault::Pause)) else {
                    return Vec::new();
                };
                let (m, at, d) = (machine.clone(), p.clone(), *pause);
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = m.inject(&at, Fault::Resume);
                });
                vec![record("pause", p)]
            }
            Action::FailRestart(target) => pick(target)
                .filter(|p| {
                    injected(p, Fault::FailNextStart(format!("fault plan {}", self.seed)))
                        && injected(p, Fault::Crash(format!("fault plan {} crash", self.seed)))
                })
                .map(|p| record("fail_restart", p))
                .into_iter()
                .collect(),
        }
    }
}

fn delay(max: Duration, probability: f64) -> Fault {
    Fault::Delay {
        min: Duration::ZERO,
        max,
        probability,
    }
}

/// FNV-1a: a fixed, dependency-free hash, so lane seeds replay everywhere.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
