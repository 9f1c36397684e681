//! Three Machines as three processes on loopback: one supervised tree
//! across them, waves and requests between them, a crash whose notice
//! crosses to the parent's Machine, and a Machine killed whose permanent
//! child comes back on its parent's Machine.
//!
//! Run with `cargo run --example cluster`. This process is the Machine
//! `alpha`; it starts `beta` and `gamma` as processes of this same
//! program (`cluster node NAME PORT SEED`), which serve until their stdin
//! closes.

use std::process::Stdio;
use std::time::Duration;

use hyperverse::cluster::{ClusterConfig, ClusteredMachine, Placement};
use hyperverse::*;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The parent: keeps the crash notices its children's Machines send it.
struct Shop;
impl Particle for Shop {
    type State = Vec<String>;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<Vec<String>, ParticleError> {
        Ok(Vec::new())
    }
    async fn handle(
        &self,
        _: &Ctx,
        told: &mut Vec<String>,
        _: Wave,
    ) -> Result<Body, ParticleError> {
        Ok(told.join("\n").into())
    }
    async fn crash_notice(
        &self,
        _: &Ctx,
        told: &mut Vec<String>,
        n: CrashNotice,
    ) -> Result<(), ParticleError> {
        told.push(format!("{} crashed: {}", n.child, n.reason));
        Ok(())
    }
}

/// Counts `add`s; `get` answers the count; `crash` crashes it.
struct Counter;
impl Particle for Counter {
    type State = u64;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }
    async fn handle(&self, _: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "add" => *n += 1,
            "crash" => return Err("asked to crash".into()),
            _ => {}
        }
        Ok(Body::from_u64(*n))
    }
}

async fn machine(
    name: &str,
    port: u16,
    seed: Option<String>,
) -> Result<(Machine, hyperverse::cluster::Cluster), Error> {
    let mut config = ClusterConfig::new(name, format!("127.0.0.1:{port}"), "example-secret")?
        .lost_after(Duration::from_secs(1));
    if let Some(seed) = seed {
        config = config.seed(seed);
    }
    Ok(Machine::clustered(config)
        .kind("shop", Shop)
        .kind("counter", Counter)
        .build()
        .await?)
}

/// `n` distinct free ports on loopback (all held while they are picked: a
/// port released may be handed out again at once).
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "node" {
        // beta or gamma: serve until the parent process closes our stdin.
        let (_machine, _cluster) =
            machine(&args[2], args[3].parse()?, Some(args[4].clone())).await?;
        let mut line = String::new();
        let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
        return Ok(());
    }

    let ports = free_ports(3)?;
    let port = ports[0];
    let (alpha, cluster) = machine("alpha", port, None).await?;
    let mut others = Vec::new();
    for (name, their) in ["beta", "gamma"].into_iter().zip(&ports[1..]) {
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "node",
                name,
                &their.to_string(),
                &format!("127.0.0.1:{port}"),
            ])
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        others.push(child);
    }
    cluster.wait_for_peers(2, Duration::from_secs(20)).await?;
    println!("alpha sees {:?}", cluster.peers());

    // One tree across three Machines: the shop here, a counter on each of
    // the others (children of the shop).
    let shop: Point = "shop".parse()?;
    cluster
        .spawn(shop.clone(), "shop".into(), Body::empty(), Placement::Here)
        .await?;
    for m in ["beta", "gamma"] {
        let at = cluster
            .spawn(
                format!("shop:{m}-counter").parse()?,
                "counter".into(),
                Body::empty(),
                Placement::On(m.into()),
            )
            .await?;
        println!("shop:{m}-counter runs on {at}");
    }

    // Waves across Machines keep their order; a request after them sees
    // them all.
    let (b, g): (Point, Point) = ("shop:beta-counter".parse()?, "shop:gamma-counter".parse()?);
    for _ in 0..1_000 {
        alpha.signal(&b, ("add", Body::empty()))?;
        alpha.signal(&g, ("add", Body::empty()))?;
    }
    let counts = (
        alpha.ask(&b, ("get", Body::empty())).await?.as_u64(),
        alpha.ask(&g, ("get", Body::empty())).await?.as_u64(),
    );
    println!("counts after 1,000 adds each: {counts:?}");
    assert_eq!(counts, (Some(1_000), Some(1_000)));

    // A crash on beta: beta's Star restarts the counter; the notice crosses
    // to the shop, here.
    let crashed = alpha.ask(&b, ("crash", Body::empty())).await;
    println!("asking the beta counter to crash: {crashed:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // gamma dies (SIGKILL). After `lost_after` (1 s here), alpha declares
    // it lost; the shop hears, and its permanent child starts again here.
    others[1].kill().await?;
    let killed = std::time::Instant::now();
    while cluster.locate(&g).as_deref() != Some("alpha") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "shop:gamma-counter is back, on alpha, {:?} after gamma was killed",
        killed.elapsed()
    );
    let fresh = alpha.ask(&g, ("get", Body::empty())).await?.as_u64();
    println!("its count starts again: {fresh:?}");

    let told = alpha.ask(&shop, ("told", Body::empty())).await?;
    println!("the shop was told:\n{}", told.as_str()?);
    assert!(told
        .as_str()?
        .contains("shop:beta-counter crashed: asked to crash"));
    assert!(told
        .as_str()?
        .contains("shop:gamma-counter crashed: machine gamma lost"));
    println!("ok");
    Ok(())
}
