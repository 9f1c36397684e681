//! The storm: a ready-made proof that a supervised tree heals and loses
//! nothing under a seeded fault plan.
//!
//! A `bank` supervisor (one_for_one) has branch supervisors (their
//! strategies cycling one_for_one, rest_for_one, one_for_all), each with
//! account workers, spread over the Stars. While senders send numbered
//! waves to random accounts, a [`FaultPlan`] crashes accounts and branches,
//! kills Stars and delays waves. Afterwards the report says whether every
//! accepted wave was handled exactly once in per-sender order (the
//! invariant), and whether every supervisor restart followed its strategy.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyperverse_runtime::{
    Body, ChildSpec, ChildStart, Ctx, Event, Machine, Particle, ParticleError, Point, StarStats,
    Strategy, SupEvent, SupFlags, SupervisorSpec, Wave,
};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};

use crate::{Action, EventLog, FaultPlan, FaultReport, Target};

/// The branch strategies, in turn.
const STRATEGIES: [Strategy; 3] = [
    Strategy::OneForOne,
    Strategy::RestForOne,
    Strategy::OneForAll,
];

/// What the accounts handled, per (sender, account), in order: kept
/// outside them, so that it survives their crashes. A sender is one of the
/// storm's sending tasks, by number: they all send from outside any
/// particle, so the runtime stamps every wave as the Machine's, and each
/// wave's body names its task.
type Ledger = Arc<Mutex<HashMap<(u64, Point), Vec<u64>>>>;

struct Account(Ledger);

impl Particle for Account {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let (sender, n): (u64, u64) = w.body.decode()?;
        self.0
            .lock()
            .entry((sender, ctx.me().clone()))
            .or_default()
            .push(n);
        Ok(Body::empty())
    }
}

/// A storm's shape and plan. Build one, then [`Storm::run`] it.
///
/// ```
/// use hyperverse_faults::Storm;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
/// let report = Storm::new(7)
///     .branches(3)
///     .accounts(20)
///     .duration(Duration::from_millis(300))
///     .run()
///     .await
///     .unwrap();
/// assert!(report.holds(), "{report}");
/// assert_eq!(report.sent, report.delivered);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Storm {
    seed: u64,
    stars: usize,
    branches: usize,
    accounts: usize,
    senders: usize,
    duration: Duration,
}

/// What a storm did and found.
#[derive(Debug, Clone)]
pub struct StormReport {
    pub seed: u64,
    /// Particles in the tree.
    pub particles: usize,
    /// Stars the tree spans.
    pub stars: usize,
    /// Every fault injected.
    pub faults: FaultReport,
    /// Waves the senders got accepted.
    pub sent: u64,
    /// Waves the accounts handled.
    pub delivered: u64,
    /// Each Star's counters afterwards.
    pub star_stats: Vec<StarStats>,
    /// Supervisor restarts checked against their strategies.
    pub restarts_checked: usize,
    /// What broke: lost, duplicated or reordered waves; a restart that did
    /// not follow its strategy; a supervisor that gave up. Empty if all held.
    pub violations: Vec<String>,
}

impl StormReport {
    /// True if the invariant held and every supervisor followed its strategy.
    pub fn holds(&self) -> bool {
        self.violations.is_empty() && self.sent == self.delivered
    }
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "storm seed {}: {} particles over {} Stars; {} crashes, {} Star kills, {} lanes delayed",
            self.seed,
            self.particles,
            self.stars,
            self.faults.count("crash"),
            self.faults.count("kill_star"),
            self.faults.count("delay"),
        )?;
        writeln!(
            f,
            "waves sent {}, delivered {}; {} supervisor restarts checked against their strategies",
            self.sent, self.delivered, self.restarts_checked
        )?;
        for s in &self.star_stats {
            writeln!(
                f,
                "  star {}: {} crashes, {} restarts",
                s.star, s.crashes, s.restarts
            )?;
        }
        for v in self.violations.iter().take(10) {
            writeln!(f, "  VIOLATION: {v}")?;
        }
        Ok(())
    }
}

fn branch_id(b: usize) -> String {
    format!("branch-{b}")
}

fn account_id(a: usize) -> String {
    format!("acct-{a:03}")
}

impl Storm {
    /// 8 branches of 125 accounts (1,009 particles) over 4 Stars, 8
    /// senders, for 2 s.
    pub fn new(seed: u64) -> Self {
        Storm {
            seed,
            stars: 4,
            branches: 8,
            accounts: 125,
            senders: 8,
            duration: Duration::from_secs(2),
        }
    }

    /// Stars on the Machine.
    pub fn stars(mut self, n: usize) -> Self {
        self.stars = n.max(1);
        self
    }

    /// Branch supervisors.
    pub fn branches(mut self, n: usize) -> Self {
        self.branches = n.max(1);
        self
    }

    /// Accounts per branch.
    pub fn accounts(mut self, n: usize) -> Self {
        self.accounts = n.max(1);
        self
    }

    /// Sender tasks.
    pub fn senders(mut self, n: usize) -> Self {
        self.senders = n.max(1);
        self
    }

    /// How long the fault plan runs.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// The fault plan: crashes of accounts (~every 10 ms) and of branches
    /// (~every 250 ms), Star kills (~every 700 ms), 5% of waves delayed by
    /// up to 20 ms. No drops: the invariant is that nothing is lost.
    pub fn plan(&self) -> FaultPlan {
        let bank: Point = "bank".parse().expect("a valid Point");
        FaultPlan::new(self.seed)
            .duration(self.duration)
            .once(Action::DelayAll {
                target: Target::subtree(bank.clone()).kind("account"),
                max: Duration::from_millis(20),
                probability: 0.05,
            })
            .every(
                Duration::from_millis(10),
                Action::Crash(Target::subtree(bank.clone()).kind("account")),
            )
            .every(
                Duration::from_millis(250),
                Action::Crash(Target::below(bank).kind("branch-0")),
            )
            .every(Duration::from_millis(700), Action::KillStar)
    }

    /// Builds the tree on a Machine of its own, runs the plan under load,
    /// waits for the lanes to drain (up to a minute), checks, shuts down.
    pub async fn run(&self) -> Result<StormReport, Box<dyn std::error::Error + Send + Sync>> {
        let ledger = Ledger::default();
        let log = EventLog::new();
        let flags = |s: Strategy| SupFlags::new(s).intensity(1_000_000, Duration::from_secs(1));
        let mut builder = Machine::standalone()
            .stars(self.stars)
            .kind("account", Account(ledger.clone()))
            .observer(log.observer());
        let accounts = || {
            (0..self.accounts)
                .map(|a| {
                    ChildSpec::worker(account_id(a), ChildStart::kind("account", Body::empty()))
                })
                .collect()
        };
        for (i, s) in STRATEGIES.iter().enumerate() {
            let spec = SupervisorSpec::new(flags(*s), accounts());
            builder = builder.supervisor(format!("branch-{i}"), spec);
        }
        let mut branches = Vec::new();
        for b in 0..self.branches {
            let kind = format!("branch-{}", b % STRATEGIES.len());
            branches.push(ChildSpec::supervisor(
                branch_id(b),
                ChildStart::kind(kind, Body::empty()).star(b % self.stars),
            ));
        }
        let machine = builder
            .supervisor(
                "bank",
                SupervisorSpec::new(flags(Strategy::OneForOne), branches),
            )
            .build()
            .await?;
        let bank: Point = "bank".parse()?;
        machine
            .spawn(bank.clone(), "bank".into(), Body::empty())
            .await?;
        let accounts: Vec<Point> = Target::subtree(bank.clone())
            .kind("account")
            .resolve(&machine);
        let particles = machine.registry().len();
        let stars = machine
            .star_stats()
            .iter()
            .filter(|s| s.spawned > 0)
            .count();

        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..self.senders)
            .map(|s| {
                tokio::spawn(send(
                    machine.clone(),
                    stop.clone(),
                    accounts.clone(),
                    self.seed,
                    s,
                ))
            })
            .collect();
        let faults = self.plan().run(&machine).await;
        stop.store(true, Ordering::Relaxed);
        let mut sent: HashMap<(u64, Point), u64> = HashMap::new();
        for s in senders {
            sent.extend(s.await?);
        }
        let sent_total: u64 = sent.values().sum();
        let handled = || ledger.lock().values().map(|v| v.len() as u64).sum::<u64>();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while handled() < sent_total && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let late restarts land in the log.
        tokio::time::sleep(Duration::from_millis(100)).await;

        let mut violations = Vec::new();
        {
            let ledger = ledger.lock();
            for (key, n) in &sent {
                let got = ledger.get(key).map(Vec::as_slice).unwrap_or_default();
                if !got.iter().copied().eq(0..*n) {
                    violations.push(format!(
                        "sender-{} -> {}: sent 0..{n}, handled {} waves (lost, duplicated or reordered)",
                        key.0,
                        key.1,
                        got.len()
                    ));
                }
            }
        }
        let restarts_checked = self.check_strategies(&log, &bank, &mut violations);
        let report = StormReport {
            seed: self.seed,
            particles,
            stars,
            faults,
            sent: sent_total,
            delivered: handled(),
            star_stats: machine.star_stats(),
            restarts_checked,
            violations,
        };
        machine.shutdown().await;
        Ok(report)
    }

    /// Walks the event log in order. For each supervisor, every restart
    /// (from `Restarting{id}` to its next `Exited`/`Restarting`) must stop
    /// exactly the children its strategy names, in reverse start order,
    /// then start them (the crashed one included) in start order. A
    /// restart cut short by the supervisor's own crash is not judged.
    fn check_strategies(&self, log: &EventLog, bank: &Point, out: &mut Vec<String>) -> usize {
        let ids = |n: usize, f: fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
        let mut strategy: HashMap<Point, (Strategy, Vec<String>)> = HashMap::new();
        strategy.insert(
            bank.clone(),
            (Strategy::OneForOne, ids(self.branches, branch_id)),
        );
        for b in 0..self.branches {
            if let Ok(at) = bank.child(&branch_id(b)) {
                let s = STRATEGIES[b % STRATEGIES.len()];
                strategy.insert(at, (s, ids(self.accounts, account_id)));
            }
        }
        let mut open: HashMap<Point, (String, Vec<SupEvent>)> = HashMap::new();
        let mut judged = 0;
        let mut judge = |sup: &Point, id: String, events: Vec<SupEvent>, out: &mut Vec<String>| {
            let (s, order) = &strategy[sup];
            let Some(at) = order.iter().position(|x| *x == id) else {
                return;
            };
            let affected: Vec<&String> = match s {
                Strategy::OneForAll => order.iter().collect(),
                Strategy::RestForOne => order[at..].iter().collect(),
                _ => vec![&order[at]],
            };
            let of = |pick: fn(&SupEvent) -> Option<&String>| {
                events.iter().filter_map(pick).collect::<Vec<_>>()
            };
            let stopped = of(|e| match e {
                SupEvent::Stopped { id, .. } => Some(id),
                _ => None,
            });
            let started = of(|e| match e {
                SupEvent::Started { id } => Some(id),
                _ => None,
            });
            let mut want_stopped: Vec<&String> =
                affected.iter().copied().filter(|x| **x != id).collect();
            want_stopped.reverse();
            if stopped != want_stopped || started != affected {
                out.push(format!(
                    "{sup} ({s:?}) restarting {id}: stopped {stopped:?}, started {started:?}"
                ));
            }
            judged += 1;
        };
        for logged in log.events() {
            match logged.event {
                // A supervisor crashed: its open restart is moot, and so are
                // those below it (their incarnations were killed to be adopted).
                Event::Crashed(n) if strategy.contains_key(&n.child) => {
                    open.retain(|sup, _| !n.child.contains(sup));
                }
                Event::Supervisor { supervisor, event } if strategy.contains_key(&supervisor) => {
                    if let SupEvent::Exited { id, .. } = &event {
                        if let Ok(child) = supervisor.child(id) {
                            open.retain(|sup, _| !child.contains(sup));
                        }
                    }
                    match event {
                        SupEvent::GaveUp { restarts } => {
                            out.push(format!("{supervisor} gave up after {restarts} restarts"));
                        }
                        SupEvent::Exited { .. } | SupEvent::Restarting { .. } => {
                            if let Some((id, events)) = open.remove(&supervisor) {
                                judge(&supervisor, id, events, out);
                            }
                            if let SupEvent::Restarting { id } = event {
                                open.insert(supervisor, (id, Vec::new()));
                            }
                        }
                        other => {
                            if let Some((_, events)) = open.get_mut(&supervisor) {
                                events.push(other);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for (sup, (id, events)) in open {
            judge(&sup, id, events, out);
        }
        judged
    }
}

/// One sender: numbered signals to random accounts until told to stop;
/// returns how many each account accepted from it.
async fn send(
    machine: Machine,
    stop: Arc<AtomicBool>,
    accounts: Vec<Point>,
    seed: u64,
    s: usize,
) -> HashMap<(u64, Point), u64> {
    let me = s as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ me);
    let mut next: HashMap<(u64, Point), u64> = HashMap::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let to = &accounts[rng.gen_range(0..accounts.len())];
        let n = next.entry((me, to.clone())).or_default();
        let body = Body::encode(&(me, *n)).expect("two numbers encode");
        // Not accepted (between two particles at that Point): sent again
        // later under the same number.
        if machine.signal(to, ("n", body)).is_ok() {
            *n += 1;
        }
        i += 1;
        if i.is_multiple_of(32) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    next
}
