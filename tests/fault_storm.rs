//! The storm: a tree of 1,009 particles over 4 Stars, under a seeded plan
//! of crashes (workers and supervisors), Star kills and delays, while 8
//! senders send numbered waves. Afterwards: every accepted wave was handled
//! exactly once, in per-sender order (the invariant), and every supervisor
//! acted per its strategy.
//!
//! `HYPERVERSE_STORM_SECS` sets the storm's length (default 2 s, as in CI);
//! `HYPERVERSE_STORM_SEED` its seed (default fixed). The seed is printed,
//! and printed again if the test fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyperverse::faults::*;
use hyperverse::*;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};

const BRANCHES: usize = 8;
const ACCOUNTS: usize = 125;
const SENDERS: usize = 8;
const STRATEGIES: [Strategy; 4] = [
    Strategy::OneForOne,
    Strategy::RestForOne,
    Strategy::OneForAll,
    Strategy::OneForOne,
];

/// What the accounts handled, per (sender, account), in order: kept
/// outside them, so it survives their crashes.
type Ledger = Arc<Mutex<HashMap<(Point, Point), Vec<u64>>>>;

struct Account(Ledger);

impl Particle for Account {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let n = w.body.as_u64().ok_or("not a number")?;
        self.0
            .lock()
            .entry((w.from, ctx.me().clone()))
            .or_default()
            .push(n);
        Ok(Body::empty())
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn branch_id(b: usize) -> String {
    format!("branch-{b}")
}

fn account_id(a: usize) -> String {
    format!("acct-{a:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storm_loses_nothing_and_every_supervisor_follows_its_strategy() {
    let secs = env("HYPERVERSE_STORM_SECS", 2);
    let seed = env("HYPERVERSE_STORM_SEED", 20_261_126);
    let _seed = SeedGuard::new(seed);
    let ledger = Ledger::default();
    let log = EventLog::new();

    // bank (one_for_one) -> 8 branches (strategies cycling), each on its
    // own Star, each with 125 accounts.
    let intensity = |s: Strategy| SupFlags::new(s).intensity(100_000, Duration::from_secs(1));
    let mut builder = Machine::standalone()
        .stars(4)
        .kind("account", Account(ledger.clone()))
        .observer(log.observer());
    let mut branches = Vec::new();
    for b in 0..BRANCHES {
        let kids = (0..ACCOUNTS)
            .map(|a| ChildSpec::worker(account_id(a), ChildStart::kind("account", Body::empty())))
            .collect();
        let kind = format!("branch-{}", b % STRATEGIES.len());
        if b < STRATEGIES.len() {
            builder = builder.supervisor(
                kind.clone(),
                SupervisorSpec::new(intensity(STRATEGIES[b]), kids),
            );
        }
        branches.push(ChildSpec::supervisor(
            branch_id(b),
            ChildStart::kind(kind, Body::empty()).star(b % 4),
        ));
    }
    let m = builder
        .supervisor(
            "bank",
            SupervisorSpec::new(intensity(Strategy::OneForOne), branches),
        )
        .build()
        .await
        .unwrap();
    let bank: Point = "bank".parse().unwrap();
    m.spawn(bank.clone(), "bank".into(), Body::empty())
        .await
        .unwrap();
    let accounts: Vec<Point> = (0..BRANCHES)
        .flat_map(|b| (0..ACCOUNTS).map(move |a| (b, a)))
        .map(|(b, a)| {
            format!("bank:{}:{}", branch_id(b), account_id(a))
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(m.registry().len(), 1 + BRANCHES + BRANCHES * ACCOUNTS);
    let stars: Vec<usize> = m
        .star_stats()
        .iter()
        .filter(|s| s.spawned > 0)
        .map(|s| s.star)
        .collect();
    assert_eq!(stars.len(), 4, "the tree spans 4 Stars");

    // The senders: numbered signals to random accounts, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (m, stop, accounts) = (m.clone(), stop.clone(), accounts.clone());
        senders.push(tokio::spawn(async move {
            let me: Point = format!("sender-{s}").parse().unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ s as u64);
            let mut next: HashMap<Point, u64> = HashMap::new();
            let (mut accepted, mut refused) = (0u64, 0u64);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let to = &accounts[rng.gen_range(0..accounts.len())];
                let n = next.entry(to.clone()).or_default();
                let wave = Wave::signal(me.clone(), to.clone(), "n", Body::from_u64(*n));
                match m.send(wave) {
                    Ok(()) => {
                        *n += 1;
                        accepted += 1;
                    }
                    // Not accepted (e.g. between two particles at that
                    // Point): not counted, sent again later.
                    Err(_) => refused += 1,
                }
                i += 1;
                if i % 32 == 0 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            (me, next, accepted, refused)
        }));
    }

    // The storm: crashes of accounts and branches, Star kills, delays.
    let plan = FaultPlan::new(seed)
        .duration(Duration::from_secs(secs))
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
            Action::Crash(Target::below(bank.clone()).kind("branch-0")),
        )
        .every(Duration::from_millis(700), Action::KillStar);
    let report = plan.run(&m).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent: HashMap<(Point, Point), u64> = HashMap::new();
    let (mut accepted, mut refused) = (0, 0);
    for s in senders {
        let (me, next, a, r) = s.await.unwrap();
        accepted += a;
        refused += r;
        for (to, n) in next {
            sent.insert((me.clone(), to), n);
        }
    }

    // Every accepted wave is handled: wait for the lanes to drain.
    let handled = || ledger.lock().values().map(|v| v.len() as u64).sum::<u64>();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while handled() < accepted && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    println!("{report}");
    println!(
        "faults: {} crashes, {} Star kills, {} delayed lanes; waves sent {accepted}, delivered {}, not accepted (sent again) {refused}",
        report.count("crash"),
        report.count("kill_star"),
        report.count("delay"),
        handled()
    );
    for s in m.star_stats() {
        println!(
            "  star {}: {} crashes, {} restarts",
            s.star, s.crashes, s.restarts
        );
    }

    // The invariant: every accepted wave handled exactly once, in
    // per-sender order; nothing handled that was not accepted.
    assert_eq!(handled(), accepted, "waves lost or duplicated");
    let ledger = ledger.lock();
    for (key, n) in &sent {
        let got = ledger.get(key).cloned().unwrap_or_default();
        assert_eq!(
            got,
            (0..*n).collect::<Vec<_>>(),
            "{key:?}: lost, duplicated or reordered"
        );
    }
    assert!(report.count("crash") >= 20 * secs as usize, "{report}");
    assert!(report.count("kill_star") >= 1, "{report}");

    // Every supervisor acted per its strategy.
    check_strategies(&log, &bank);
    m.shutdown().await;
}

/// Walks the event log in order. For each supervisor, every restart (from
/// `Restarting{id}` to its next `Exited`/`Restarting`) must stop exactly
/// the children its strategy names, in reverse start order, then start
/// them (the crashed one included) in start order. A restart cut short by
/// the supervisor's own crash is not judged. No supervisor gives up.
fn check_strategies(log: &EventLog, bank: &Point) {
    let ids = |n: usize, f: fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
    let mut strategy: HashMap<Point, (Strategy, Vec<String>)> = HashMap::new();
    strategy.insert(
        bank.clone(),
        (Strategy::OneForOne, ids(BRANCHES, branch_id)),
    );
    for b in 0..BRANCHES {
        let at: Point = format!("{bank}:{}", branch_id(b)).parse().unwrap();
        strategy.insert(
            at,
            (STRATEGIES[b % STRATEGIES.len()], ids(ACCOUNTS, account_id)),
        );
    }
    // Per supervisor: the restart being watched (crashed id, events since).
    let mut open: HashMap<Point, (String, Vec<SupEvent>)> = HashMap::new();
    let mut judged = 0;
    let mut judge = |sup: &Point, id: String, events: Vec<SupEvent>| {
        let (s, order) = &strategy[sup];
        let at = order.iter().position(|x| *x == id).unwrap();
        let affected: Vec<&String> = match s {
            Strategy::OneForAll => order.iter().collect(),
            Strategy::RestForOne => order[at..].iter().collect(),
            _ => vec![&order[at]],
        };
        let stopped: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                SupEvent::Stopped { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        let started: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                SupEvent::Started { id } => Some(id),
                _ => None,
            })
            .collect();
        let mut want_stopped: Vec<&String> =
            affected.iter().copied().filter(|x| **x != id).collect();
        want_stopped.reverse();
        assert_eq!(
            stopped, want_stopped,
            "{sup} ({s:?}) restarting {id}: stops"
        );
        assert_eq!(started, affected, "{sup} ({s:?}) restarting {id}: starts");
        judged += 1;
    };
    for logged in log.events() {
        match logged.event {
            Event::Crashed(n) if strategy.contains_key(&n.child) => {
                // The supervisor itself crashed: its open restart is moot,
                // and so are those of the supervisors below it (their
                // incarnations were killed to be adopted).
                open.retain(|sup, _| !n.child.contains(sup));
            }
            Event::Supervisor { supervisor, event } if strategy.contains_key(&supervisor) => {
                if let SupEvent::Exited { id, .. } = &event {
                    // A supervisor child exited (crashed): its own open
                    // restart is moot, its next incarnation starts afresh.
                    if let Ok(child) = supervisor.child(id) {
                        open.retain(|sup, _| !child.contains(sup));
                    }
                }
                assert!(
                    !matches!(event, SupEvent::GaveUp { .. }),
                    "{supervisor} gave up"
                );
                match event {
                    SupEvent::Exited { .. } | SupEvent::Restarting { .. } => {
                        if let Some((id, events)) = open.remove(&supervisor) {
                            judge(&supervisor, id, events);
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
        judge(&sup, id, events);
    }
    println!("{judged} supervisor restarts checked against their strategies");
    assert!(judged > 0);
}
