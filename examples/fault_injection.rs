//! Fault injection: a supervised tree under a seeded fault plan (crashes,
//! a Star kill, delays and a pause) while a client keeps sending numbered
//! waves; afterwards every wave has arrived, in order, and the log of
//! injected faults replays from the seed.
//!
//! Run it with `cargo run --example fault_injection [seed]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyperverse::faults::*;
use hyperverse::*;
use parking_lot::Mutex;

/// Records the numbers it receives, per sender, outside itself (so the
/// record survives its crashes).
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<HashMap<Point, Vec<u64>>>>);

impl Particle for Counter {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let n = w.body.as_u64().ok_or("not a number")?;
        let key = ctx.me().clone();
        self.0.lock().entry(key).or_default().push(n);
        Ok(Body::empty())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    let _seed = SeedGuard::new(seed);
    let counter = Counter::default();
    let log = EventLog::new();
    let workers: Vec<ChildSpec<ChildStart>> = (0..20)
        .map(|i| {
            ChildSpec::worker(
                format!("w{i:02}"),
                ChildStart::kind("counter", Body::empty()),
            )
        })
        .collect();
    let m = Machine::standalone()
        .stars(4)
        .kind("counter", counter.clone())
        .supervisor(
            "pool",
            SupervisorSpec::new(
                SupFlags::new(Strategy::OneForOne).intensity(1_000, Duration::from_secs(1)),
                workers,
            ),
        )
        .observer(log.observer())
        .build()
        .await?;
    for s in 0..4 {
        m.spawn_with(
            format!("pool-{s}").parse()?,
            "pool".into(),
            Body::empty(),
            SpawnOptions {
                star: Some(s),
                ..Default::default()
            },
        )
        .await?;
    }
    let targets: Vec<Point> = m
        .registry()
        .subtree(&Point::root())
        .into_iter()
        .filter(|r| r.kind == Kind::new("counter"))
        .map(|r| r.point)
        .collect();

    // A client sends numbered waves to every worker while the plan runs.
    let client = {
        let (m, targets) = (m.clone(), targets.clone());
        tokio::spawn(async move {
            for n in 0..200u64 {
                for t in &targets {
                    // From the Machine (ROOT): the runtime stamps the sender.
                    m.signal(t, ("n", Body::from_u64(n)))
                        .expect("every worker's lane stays open");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let plan = FaultPlan::new(seed)
        .duration(Duration::from_millis(600))
        .once(Action::DelayAll {
            target: Target::all().kind("counter"),
            max: Duration::from_millis(10),
            probability: 0.05,
        })
        .every(
            Duration::from_millis(20),
            Action::Crash(Target::all().kind("counter")),
        )
        .every(
            Duration::from_millis(100),
            Action::Pause {
                target: Target::all().kind("counter"),
                pause: Duration::from_millis(30),
            },
        )
        .every(Duration::from_millis(250), Action::KillStar);
    println!("fault plan: {} faults scheduled", plan.schedule().len());
    let report = plan.run(&m).await;
    client.await?;

    // Every wave arrives, in order, at every worker.
    let expected = 200 * targets.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let received = || counter.0.lock().values().map(Vec::len).sum::<usize>();
    while received() < expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_order = counter
        .0
        .lock()
        .values()
        .all(|v| *v == (0..200).collect::<Vec<_>>());

    let shown: Vec<_> = report
        .injected
        .iter()
        .filter(|r| r.action != "delay")
        .collect();
    println!("\nfaults injected (the standing delays left out):");
    for r in &shown {
        println!("  {r}");
    }
    println!(
        "\n{} crashes, {} pauses, {} Star kills, {} lanes delayed",
        report.count("crash"),
        report.count("pause"),
        report.count("kill_star"),
        report.count("delay")
    );
    let crashes = log.count(|e| matches!(e, Event::Crashed(_)));
    let restarts = log.count(|e| matches!(e, Event::Restarted { .. }));
    println!("the runtime saw {crashes} crashes and made {restarts} restarts");
    println!(
        "waves: {expected} sent, {} delivered, per-sender order {}",
        received(),
        if in_order { "kept" } else { "BROKEN" }
    );
    assert_eq!(received(), expected, "waves were lost");
    assert!(in_order);
    m.shutdown().await;
    Ok(())
}
