//! A three-level supervision tree using all four strategies. Crashes are
//! injected and the supervisors' event log is printed as it happens.
//!
//! ```text
//! app            one_for_one
//! ├── db         rest_for_one  conn, cache, index
//! ├── web        one_for_all   listener, router   (at most 2 restarts in 10 s)
//! ├── jobs       dynamic       job-1, job-2, job-3 (added at run time)
//! └── metrics    a worker
//! ```
//!
//! Run it with `cargo run --example supervision`.

use std::time::Duration;

use hyperverse::*;

/// A worker: counts waves and crashes when told to.
struct Worker;

impl Particle for Worker {
    type State = u64;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }

    async fn handle(&self, _: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "crash" => Err("injected crash".into()),
            _ => {
                *n += 1;
                Ok(Body::from_u64(*n))
            }
        }
    }
}

fn worker(id: &str) -> ChildSpec<ChildStart> {
    ChildSpec::worker(id, ChildStart::kind("worker", Body::empty()))
}

fn sub(id: &str, kind: &str) -> ChildSpec<ChildStart> {
    ChildSpec::supervisor(id, ChildStart::kind(kind, Body::empty()))
}

/// One line per thing the runtime did.
fn describe(e: &Event) -> Option<String> {
    match e {
        Event::Supervisor { supervisor, event } => Some(format!("  [{supervisor}] {event}")),
        Event::Crashed(n) => Some(format!(
            "  CRASH {} ({}), wave in hand: {:?}, restarts in period: {}",
            n.child,
            n.reason,
            n.in_flight.as_ref().map(|f| &*f.method),
            n.in_period
        )),
        _ => None,
    }
}

async fn inject(m: &Machine, at: &str, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n>> {what}: crash {at}");
    m.signal(&at.parse()?, ("crash", Body::empty()))?;
    // Let the supervisors act before the next injection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = |s: Strategy| SupFlags::new(s).intensity(5, Duration::from_secs(10));
    let m = Machine::standalone()
        .kind("worker", Worker)
        .supervisor(
            "app_sup",
            SupervisorSpec::new(
                flags(Strategy::OneForOne),
                vec![
                    sub("db", "db_sup"),
                    sub("web", "web_sup"),
                    sub("jobs", "jobs_sup"),
                    worker("metrics"),
                ],
            ),
        )
        .supervisor(
            "db_sup",
            SupervisorSpec::new(
                flags(Strategy::RestForOne),
                vec![worker("conn"), worker("cache"), worker("index")],
            ),
        )
        .supervisor(
            "web_sup",
            SupervisorSpec::new(
                SupFlags::new(Strategy::OneForAll).intensity(2, Duration::from_secs(10)),
                vec![worker("listener"), worker("router")],
            ),
        )
        .supervisor(
            "jobs_sup",
            SupervisorSpec::new(flags(Strategy::Dynamic), vec![worker("job")]),
        )
        .observer(|e| {
            if let Some(line) = describe(e) {
                println!("{line}");
            }
        })
        .build()
        .await?;

    println!(">> start the tree");
    let app: Point = "app".parse()?;
    m.spawn(app.clone(), Kind::new("app_sup"), Body::empty())
        .await?;
    let jobs = m.supervisor(&"app:jobs".parse()?);
    for i in 1..=3 {
        jobs.add_child(format!("job-{i}"), Body::empty()).await?;
    }

    inject(&m, "app:db:cache", "rest_for_one restarts cache and index").await?;
    inject(
        &m,
        "app:web:router",
        "one_for_all restarts listener and router",
    )
    .await?;
    inject(&m, "app:jobs:job-2", "dynamic restarts job-2 alone").await?;
    inject(&m, "app:metrics", "one_for_one restarts metrics alone").await?;
    inject(&m, "app:web:listener", "web's second restart in 10 s").await?;
    inject(
        &m,
        "app:web:listener",
        "a third: web gives up, dies with reason shutdown, app restarts it",
    )
    .await?;

    println!("\n>> the tree now");
    for sup in ["app", "app:db", "app:web", "app:jobs"] {
        let kids = m.supervisor(&sup.parse()?).which_children().await?;
        let line: Vec<String> = kids
            .iter()
            .map(|c| match &c.handle {
                Some(h) => format!("{} (#{})", c.id, h.incarnation),
                None => format!("{} (not running)", c.id),
            })
            .collect();
        println!("  {sup}: {}", line.join(", "));
    }
    let stats = m.star_stats();
    let crashes: u64 = stats.iter().map(|s| s.crashes).sum();
    let restarts: u64 = stats.iter().map(|s| s.restarts).sum();
    println!(
        "  {crashes} crashes, {restarts} restarts over {} Stars",
        stats.len()
    );

    println!("\n>> shut down: children in reverse start order");
    m.shutdown().await;
    Ok(())
}
