//! Hot reload under load: WASM counters reloaded from v1 to v2 while four
//! senders keep sending, and the counts before and after proving that no
//! wave was lost.
//!
//! The counters are written in C with the guest SDK
//! (`modules/sdk/c/examples/counter.c` and `counter_v2.c`, on
//! `modules/sdk/c/hyperverse.h`) and run from their prebuilt modules
//! (`guests::C_COUNTER_V1`, `C_COUNTER_V2`: `modules/sdk/c/prebuilt/`,
//! rebuilt by `modules/sdk/c/build.sh`), so no C compiler is needed here.
//! v1 and v2 keep the same state, a count, but behave differently: v2
//! answers `add` with the new count and `version` with 2. Each particle
//! swaps in its own lane, so waves sent during the swap wait and are
//! handled by v2, in order.
//!
//! Run it with `cargo run --release --example hot_reload`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::modules::{guests, Limits, WasmHost, WasmKind};
use hyperverse::*;

const PARTICLES: usize = 100;
const SENDERS: usize = 4;
/// `add` waves per sender before the reload, and again during it.
const PER_SENDER: u64 = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // On a worker thread, where particles run: see the README.
    tokio::spawn(run()).await?
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let host = WasmHost::new(Limits::default());
    let v1 = host.load("counter", guests::C_COUNTER_V1)?;
    let machine = host
        .install(Machine::standalone(), "counter")
        .build()
        .await?;
    println!(
        "loaded {}: modules/sdk/c/examples/counter.c, prebuilt",
        v1.version()
    );

    let mut lanes = Vec::with_capacity(PARTICLES);
    for i in 0..PARTICLES {
        let at: Point = format!("counter-{i}").parse()?;
        lanes.push(
            machine
                .spawn(at, Kind::wasm("counter"), Body::empty())
                .await?,
        );
    }
    let lanes: Arc<[ParticleRef]> = lanes.into();
    let first = lanes[0].point().clone();
    println!(
        "spawned {PARTICLES} counters; the Registry says {} runs version {}",
        first,
        machine.record(&first).map_or(0, |r| r.code_version)
    );
    let add = machine.ask(&first, ("add", Body::empty())).await?;
    let version = machine.ask(&first, ("version", Body::empty())).await?;
    println!(
        "v1: a request `add` is answered with {} bytes, `version` with {:?}",
        add.len(),
        version.as_bytes()
    );

    // A load of waves on v1.
    let sent = Arc::new(AtomicU64::new(1)); // the `add` above
    send(&lanes, &sent).await?;
    let before = total(&machine, &lanes).await?;
    println!(
        "before the reload: {} waves sent, counts add up to {before}",
        sent.load(Ordering::Relaxed)
    );

    // The same again, with the reload in the middle of it.
    let traffic = {
        let (lanes, sent) = (lanes.clone(), sent.clone());
        tokio::spawn(async move { send(&lanes, &sent).await })
    };
    while sent.load(Ordering::Relaxed) < before + PER_SENDER {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    let at_start = sent.load(Ordering::Relaxed);
    let report = host
        .reload(&machine, "counter", guests::C_COUNTER_V2)
        .await?;
    println!(
        "reloaded in {:.1} ms, begun with {at_start} waves sent, ended with {}: {report}",
        t.elapsed().as_secs_f64() * 1e3,
        sent.load(Ordering::Relaxed)
    );
    traffic.await??;

    let after = total(&machine, &lanes).await?;
    let sent = sent.load(Ordering::Relaxed);
    println!("after the reload: {sent} waves sent, counts add up to {after}");
    let count = machine.ask(&first, ("get", Body::empty())).await?;
    let add = machine.ask(&first, ("add", Body::empty())).await?;
    let version = machine.ask(&first, ("version", Body::empty())).await?;
    let registry = machine.record(&first).map_or(0, |r| r.code_version);
    println!(
        "v2: a request `add` is answered with the new count, {}, `version` with {:?}; the Registry says version {registry}",
        add.as_u64().unwrap_or_default(),
        version.as_bytes(),
    );
    machine.shutdown().await;

    if after != sent || !report.is_complete() {
        return Err(format!("{} waves lost", sent.saturating_sub(after)).into());
    }
    if add.as_u64() != count.as_u64().map(|n| n + 1) || version.as_bytes() != [2] || registry != 2 {
        return Err("the counters are not running v2".into());
    }
    println!("no wave lost");
    Ok(())
}

/// `PER_SENDER` `add` signals from each of `SENDERS` tasks, round-robin
/// over the counters; yields now and then so the traffic spans the reload.
async fn send(lanes: &Arc<[ParticleRef]>, sent: &Arc<AtomicU64>) -> Result<(), WaveError> {
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..SENDERS {
        let (lanes, sent) = (lanes.clone(), sent.clone());
        tasks.spawn(async move {
            for n in 0..PER_SENDER {
                let lane = &lanes[(n as usize + s) % lanes.len()];
                lane.signal(("add", Body::empty()))?;
                sent.fetch_add(1, Ordering::Relaxed);
                if n % 500 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, WaveError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a sender task panicked")?;
    }
    Ok(())
}

/// The sum of every counter's `get` (each queued behind the waves sent to
/// it, so this waits until they are all handled).
async fn total(machine: &Machine, lanes: &[ParticleRef]) -> Result<u64, WaveError> {
    let mut sum = 0;
    for lane in lanes {
        let got = machine.ask(lane.point(), ("get", Body::empty())).await?;
        sum += got.as_u64().unwrap_or_default();
    }
    Ok(sum)
}
