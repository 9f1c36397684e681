//! WASM particles: what running a guest as a particle costs beside calling
//! it bare, on the reference guest (`modules/wat/counter_v1.wat`).
//!
//! Three shapes, each with its own process per implementation:
//!
//! - `wasm-spawn`: µs to spawn one WASM particle from a cached module
//!   (`Machine::spawn`, which awaits the guest's instantiation and `init` on
//!   its Star's thread, 64 spawns in flight), N kept alive, on a Machine of
//!   one Star: one thread instantiates, as in the baseline.
//!   Baseline: `CompiledModule::instantiate` and `init` on one thread, N
//!   kept alive: the sandbox alone.
//! - `wasm-wave`: ns per wave into a guest. `wasm_wave` is throughput
//!   (signals to many particles, one sender task, until all are handled);
//!   `wasm_request` is latency: a Rust client particle on the guest's Star
//!   thread asks it one request at a time (a particle asking a particle,
//!   as in ping-pong); `rust_request` is the same client asking a Rust
//!   echo on the same thread, the ratio's Rust twin; `wasm_request_outside`
//!   (in the detail) is a task outside the Machine asking, which adds two
//!   thread wake-ups. Baseline: a bare wasmer call of the same guest's
//!   `handle` (the same metered artifact, the method already in guest
//!   memory, no fuel reset per call); the sandbox's own
//!   `GuestInstance::handle` is in the detail.
//! - `wasm-reload`: ms to hot-reload 10,000 live particles (v1 to v2 and
//!   back, each reload a new version, the artifacts already compiled: the
//!   figure is the swap, compile times are in the detail) while 8 sender
//!   tasks send each of their 1,250 particles an `add` every 20 ms (the
//!   BEAM anchor's offered load, 500,000 waves/s); afterwards every
//!   particle's count must be what was sent to it. Baseline: the same
//!   swaps (`snapshot`, instantiate, `restore`) of 10,000 bare instances
//!   in a loop on one thread, without load.
//!
//! The baseline implementation is called `wasmer` in the report.

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::modules::WasmKind;
use hyperverse::modules::{guests, CompiledModule, GuestInstance, Limits, ModuleStore, WasmHost};
use hyperverse::{
    Body, Ctx, Kind, Machine, Particle, ParticleDriver, ParticleError, ParticleRef, Point,
    SpawnOptions, Wave,
};
use wasmer::{imports, Function, Instance, Store, TypedFunction, Value};

use crate::measure::{median, ns_per, us_per, Measured};
use crate::pingpong::Echo;
use crate::Sizes;

/// Particles (and bare instances) in the spawn and reload shapes: the
/// issue's "10,000 live particles".
const PARTICLES: usize = 10_000;
/// Sender tasks loading the particles during a reload.
const SENDERS: usize = 8;
/// Particles the `wasm_wave` signals are spread over.
const WAVE_PARTICLES: usize = 100;
/// Calls between the bare baseline's fuel top-ups (the sandbox resets
/// fuel on every call; a bare call does not have to).
const FUEL_EVERY: u64 = 1_000;

fn ms_of(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quick(s: &Sizes) -> bool {
    s.spawn_n < Sizes::FULL.spawn_n
}

/// Reload reps: a reload of 10,000 particles is a few hundred ms.
fn reload_reps(s: &Sizes) -> usize {
    if quick(s) {
        2
    } else {
        s.reps
    }
}

fn host() -> Result<WasmHost, Box<dyn Error>> {
    let host = WasmHost::new(Limits::default());
    host.load_wat("counter", guests::COUNTER_V1)?;
    Ok(host)
}

fn store() -> ModuleStore {
    ModuleStore::new(Limits::default())
}

async fn spawn_all(
    machine: &Machine,
    n: usize,
    prefix: &str,
) -> Result<Vec<ParticleRef>, Box<dyn Error>> {
    let kind = Kind::wasm("counter");
    let mut lanes = Vec::with_capacity(n);
    for i in 0..n {
        let at = Point::parse(&format!("{prefix}-{i}"))?;
        lanes.push(machine.spawn(at, kind.clone(), Body::empty()).await?);
    }
    Ok(lanes)
}

/// `n` counters spawned with `Machine::spawn`, `IN_FLIGHT` at a time.
async fn spawn_many(
    machine: &Machine,
    n: usize,
    prefix: &str,
) -> Result<Vec<ParticleRef>, Box<dyn Error>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    const IN_FLIGHT: usize = 64;
    let kind = Kind::wasm("counter");
    stream::iter(0..n)
        .map(|i| {
            let kind = kind.clone();
            async move {
                let at = Point::parse(&format!("{prefix}-{i}")).map_err(|e| e.to_string())?;
                machine
                    .spawn(at, kind, Body::empty())
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
        .map_err(Into::into)
}

// ------------------------------------------------------------ spawn

/// Hyperverse: `PARTICLES` WASM counters with `Machine::spawn`.
pub async fn spawn_hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let host = host()?;
    let machine = host
        .install(Machine::standalone().stars(1), "counter")
        .build()
        .await?;
    // Warm: the Star thread starts, the allocator grows.
    drop(spawn_many(&machine, 100, "warm").await?);
    let mut reps = Vec::new();
    for rep in 0..s.reps.min(3) {
        let t = Instant::now();
        let lanes = spawn_many(&machine, PARTICLES, &format!("r{rep}")).await?;
        reps.push(us_per(t.elapsed(), PARTICLES as u64));
        // Gone before the next rep, which then starts from the same place.
        for lane in &lanes {
            machine.stop(lane.point()).await?;
        }
    }
    machine.shutdown().await;
    Ok(vec![Measured::reps("wasm_spawn", "us/particle", reps)
        .with("particles", PARTICLES)
        .with(
            "call",
            "Machine::spawn (awaits instantiate + init), 64 in flight, 1 Star",
        )])
}

/// Baseline: `PARTICLES` instances of the same compiled module, each
/// `init`ed, on one thread.
pub async fn spawn_wasmer(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let store = store();
    let counter = store.load_wat("counter", guests::COUNTER_V1)?;
    let mut reps = Vec::new();
    for _ in 0..s.reps.min(3) {
        let t = Instant::now();
        let mut kept = Vec::with_capacity(PARTICLES);
        for _ in 0..PARTICLES {
            let mut guest = counter.instantiate()?;
            guest.init(&[])?;
            kept.push(guest);
        }
        reps.push(us_per(t.elapsed(), PARTICLES as u64));
        drop(kept);
    }
    Ok(vec![Measured::reps("wasm_spawn", "us/particle", reps)
        .with("instances", PARTICLES)
        .with(
            "call",
            "CompiledModule::instantiate + init, one thread",
        )])
}

// ------------------------------------------------------------ waves

/// Hyperverse: `wasm_wave` (signals spread over particles, until handled)
/// and `wasm_request` (sequential requests to one particle).
pub async fn wave_hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let host = host()?;
    let machine = host
        .install(Machine::standalone(), "counter")
        .driver(
            "client",
            Arc::new(ParticleDriver::new(Client).on_star_thread()),
        )
        .driver("echo", Arc::new(ParticleDriver::new(Echo).on_star_thread()))
        .driver(
            "feeder",
            Arc::new(ParticleDriver::new(Feeder).on_star_thread()),
        )
        .build()
        .await?;
    let lanes = spawn_all(&machine, WAVE_PARTICLES, "w").await?;
    let n = s.pingpong_n;

    // Many particles busy: on each Star, a feeder particle signals the
    // counters of its Star round robin, then asks each for its count (each
    // `get` queues behind that counter's waves), all Stars at once.
    let stars = machine.stars();
    let mut feeders = Vec::new();
    for star in 0..stars {
        let at = Point::parse(&format!("feeder{star}"))?;
        machine
            .spawn_with(
                at.clone(),
                Kind::new("feeder"),
                Body::empty(),
                SpawnOptions {
                    star: Some(star),
                    ..Default::default()
                },
            )
            .await?;
        let mine: Vec<String> = lanes
            .iter()
            .filter(|l| machine.record(l.point()).is_some_and(|r| r.star == star))
            .map(|l| l.point().to_string())
            .collect();
        feeders.push((at, mine));
    }
    let mut busy = Vec::new();
    let mut fed = 0u64;
    for rep in 0..=s.reps {
        let t = Instant::now();
        let rounds: Vec<_> = feeders
            .iter()
            .map(|(at, mine)| {
                let mut order = (n / stars as u64).to_le_bytes().to_vec();
                order.extend_from_slice(mine.join(",").as_bytes());
                machine.ask(at, ("feed", Body::from(order))).within(None)
            })
            .collect();
        let mut total = 0;
        for round in rounds {
            total += round.await?.as_u64().ok_or("a feeder replies its total")?;
        }
        let elapsed = t.elapsed();
        fed += (n / stars as u64) * stars as u64;
        if total != fed {
            return Err(format!("counted {total} adds, {fed} fed").into());
        }
        if rep > 0 {
            busy.push(ns_per(elapsed, (n / stars as u64) * stars as u64));
        }
    }

    // The same from one task outside the Machine (cross-thread wake-ups).
    let mut signals = Vec::new();
    let mut sent = 0u64;
    for _ in 0..=s.reps {
        // The first round warms up and is not kept.
        let t = Instant::now();
        for i in 0..n {
            lanes[i as usize % lanes.len()].signal(("add", Body::empty()))?;
        }
        // Each `get` queues behind that particle's waves.
        let mut total = 0;
        for lane in &lanes {
            let got = lane.ask(("get", Body::empty())).within(None).await?;
            total += got.as_u64().ok_or("get replies a u64")?;
        }
        let elapsed = t.elapsed();
        sent += n;
        let total = total - fed;
        if total != sent {
            return Err(format!("counted {total} adds, {sent} sent").into());
        }
        if sent > n {
            signals.push(ns_per(elapsed, n));
        }
    }

    // The lone request: a client particle on Star 0's thread asks a guest
    // there, then a Rust echo there, one request at a time.
    let on0 = || SpawnOptions {
        star: Some(0),
        ..Default::default()
    };
    let (client, guest, echo) = (
        Point::parse("client")?,
        Point::parse("lone")?,
        Point::parse("echo")?,
    );
    machine
        .spawn_with(client.clone(), Kind::new("client"), Body::empty(), on0())
        .await?;
    machine
        .spawn_with(guest.clone(), Kind::wasm("counter"), Body::empty(), on0())
        .await?;
    machine
        .spawn_with(echo.clone(), Kind::new("echo"), Body::empty(), on0())
        .await?;
    // The same echo behind a WASM particle's default lane (bounded).
    let bounded = Point::parse("echo-bounded")?;
    machine
        .spawn_with(
            bounded.clone(),
            Kind::new("echo"),
            Body::empty(),
            SpawnOptions {
                lane: Some(hyperverse::modules::DEFAULT_WASM_LANE),
                ..on0()
            },
        )
        .await?;
    let requests = n / 4;
    let mut rust_bounded = Vec::new();
    let mut latency = Vec::new();
    let mut rust = Vec::new();
    for rep in 0..=s.reps {
        for (to, out) in [
            (&guest, &mut latency),
            (&echo, &mut rust),
            (&bounded, &mut rust_bounded),
        ] {
            let mut order = requests.to_le_bytes().to_vec();
            order.extend_from_slice(to.to_string().as_bytes());
            let took = machine
                .ask(&client, ("run", Body::from(order)))
                .within(None)
                .await?
                .as_u64()
                .ok_or("the client replies its time")?;
            if rep > 0 {
                out.push(took as f64 / requests as f64);
            }
        }
    }
    // The same requests from a task outside the Machine.
    let one = machine.particle(&guest)?;
    let mut outside = Vec::new();
    for rep in 0..=s.reps {
        let t = Instant::now();
        for _ in 0..requests {
            one.ask(("get", Body::empty())).within(None).await?;
        }
        if rep > 0 {
            outside.push(ns_per(t.elapsed(), requests));
        }
    }
    machine.shutdown().await;
    Ok(vec![
        Measured::reps("wasm_wave", "ns/wave", busy)
            .with("waves", n)
            .with("particles", WAVE_PARTICLES)
            .with(
                "call",
                "per Star, a feeder particle's ctx.signal `add` round robin over its Star's counters, then a `get` each",
            )
            .with("wasm_wave_outside_ns", median(&signals).round())
            .with("stars", machine.stars()),
        Measured::reps("wasm_request", "ns/wave", latency)
            .with("requests", requests)
            .with(
                "call",
                "a Rust particle's ctx.ask(..).within(None) `get`, one at a time, same Star thread",
            )
            .with("wasm_request_outside_ns", median(&outside).round())
            .with("rust_request_bounded_lane_ns", median(&rust_bounded).round()),
        Measured::reps("rust_request", "ns/wave", rust)
            .with("requests", requests)
            .with(
                "call",
                "the same client asking a Rust echo particle on the same Star thread",
            ),
    ])
}

/// Asks the Point in its order, `n` times one at a time, and replies the
/// nanoseconds it took. Runs on its Star's thread.
struct Client;

impl Particle for Client {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Ctx, _: &mut (), wave: Wave) -> Result<Body, ParticleError> {
        let order = wave.body.as_bytes();
        let n = u64::from_le_bytes(order[..8].try_into()?);
        let to = Point::parse(std::str::from_utf8(&order[8..])?)?;
        let t = Instant::now();
        for _ in 0..n {
            ctx.ask(&to, ("get", Body::empty())).within(None).await?;
        }
        Ok(Body::from_u64(t.elapsed().as_nanos() as u64))
    }
}

/// Signals `n` `add`s round robin over the Points in its order, then asks
/// each for its count, and replies the sum. Runs on its Star's thread.
struct Feeder;

impl Particle for Feeder {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Ctx, _: &mut (), wave: Wave) -> Result<Body, ParticleError> {
        let order = wave.body.as_bytes();
        let n = u64::from_le_bytes(order[..8].try_into()?);
        let to = std::str::from_utf8(&order[8..])?
            .split(',')
            .map(|p| ctx.particle(&Point::parse(p)?).map_err(ParticleError::from))
            .collect::<Result<Vec<_>, ParticleError>>()?;
        for i in 0..n {
            to[i as usize % to.len()].signal(("add", Body::empty()))?;
        }
        let mut total = 0;
        for lane in &to {
            let got = lane.ask(("get", Body::empty())).within(None).await?;
            total += got.as_u64().ok_or("get replies a u64")?;
        }
        Ok(Body::from_u64(total))
    }
}

/// Baseline: the guest's `handle` called bare with wasmer; the sandbox's
/// `GuestInstance::handle` in the detail.
pub async fn wave_wasmer(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let store = store();
    let counter = store.load_wat("counter", guests::COUNTER_V1)?;
    let n = s.pingpong_n;
    let bare = bare_calls(&counter, n, s.reps)?;

    let mut guest: GuestInstance = counter.instantiate()?;
    guest.init(&[])?;
    let mut sandboxed = Vec::new();
    for rep in 0..=s.reps {
        let t = Instant::now();
        for _ in 0..n {
            guest.handle("add", &[])?;
        }
        if rep > 0 {
            sandboxed.push(ns_per(t.elapsed(), n));
        }
    }
    let sandboxed = median(&sandboxed);
    Ok(vec![Measured::reps("wasm_call", "ns/wave", bare)
        .with("calls", n)
        .with("call", "wasmer TypedFunction::call of `handle(\"add\")`")
        .with(
            "guest_instance_handle_ns",
            (sandboxed * 10.0).round() / 10.0,
        )])
}

/// `reps` timed rounds of `n` bare `handle("add")` calls (after one warm-up
/// round), in ns per call.
fn bare_calls(counter: &CompiledModule, n: u64, reps: usize) -> Result<Vec<f64>, Box<dyn Error>> {
    let mut store = Store::new(counter.engine().clone());
    let reply = Function::new_typed(&mut store, |_: i32, _: i32| {});
    let imports = imports! { "hv" => { "reply" => reply } };
    let instance = Instance::new(&mut store, counter.wasmer_module(), &imports)?;
    let memory = instance.exports.get_memory("memory")?.clone();
    let fuel = instance
        .exports
        .get_global("wasmer_metering_remaining_points")?
        .clone();
    let handle: TypedFunction<(i32, i32, i32, i32), i32> =
        instance.exports.get_typed_function(&store, "handle")?;
    // "add" at the heap's start, where `alloc` would put it.
    memory.view(&store).write(1024, b"add")?;
    let mut out = Vec::new();
    for rep in 0..=reps {
        let t = Instant::now();
        for i in 0..n {
            if i % FUEL_EVERY == 0 {
                fuel.set(&mut store, Value::I64(i64::MAX))?;
            }
            if handle.call(&mut store, 1024, 3, 1027, 0)? != 0 {
                return Err("handle refused add".into());
            }
        }
        if rep > 0 {
            out.push(ns_per(t.elapsed(), n));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------ reload

/// Hyperverse: `PARTICLES` live counters, each with some state, reloaded
/// v1 -> v2 -> v1 ... by `WasmHost::reload_wat`.
pub async fn reload_hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let host = host()?;
    // Both artifacts compiled up front: the figure is the swap.
    host.store().load_wat("warm-v2", guests::COUNTER_V2)?;
    let machine = host
        .install(Machine::standalone(), "counter")
        .build()
        .await?;
    let lanes: Arc<[ParticleRef]> = spawn_many(&machine, PARTICLES, "c").await?.into();
    for lane in lanes.iter() {
        lane.signal(("add", Body::empty()))?;
    }
    // First without load (v1 -> v2 -> v1), for the detail: what the load
    // adds.
    let mut quiet = Vec::new();
    for wat in [guests::COUNTER_V2, guests::COUNTER_V1] {
        let t = Instant::now();
        let report = host.reload_wat(&machine, "counter", wat).await?;
        if !report.is_complete() || report.reloaded.len() != PARTICLES {
            return Err(format!("reload incomplete: {report}").into());
        }
        quiet.push(ms_of(t.elapsed()));
    }
    // The load: 8 senders, each sending its 1,250 particles an `add` every
    // 20 ms, until told to stop; each returns its rounds.
    let stop = Arc::new(AtomicBool::new(false));
    let chunk = PARTICLES / SENDERS;
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let (lanes, stop) = (lanes.clone(), stop.clone());
            tokio::spawn(async move {
                let mut rounds = 0u64;
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    for lane in &lanes[i * chunk..(i + 1) * chunk] {
                        lane.signal_waiting(("add", Body::empty()))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    rounds += 1;
                }
                Ok::<u64, String>(rounds)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut reps = Vec::new();
    let mut compile = Vec::new();
    for rep in 0..reload_reps(s) {
        let wat = if rep % 2 == 0 {
            guests::COUNTER_V2
        } else {
            guests::COUNTER_V1
        };
        let t = Instant::now();
        let report = host.reload_wat(&machine, "counter", wat).await?;
        let elapsed = t.elapsed();
        if !report.is_complete() || report.reloaded.len() != PARTICLES {
            return Err(format!("reload incomplete: {report}").into());
        }
        reps.push(ms_of(elapsed));
        compile.push(ms_of(report.compile));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut min_rounds = u64::MAX;
    // Every particle kept its count through every reload, and got every wave.
    for (i, sender) in senders.into_iter().enumerate() {
        let rounds = sender.await??;
        min_rounds = min_rounds.min(rounds);
        for lane in &lanes[i * chunk..(i + 1) * chunk] {
            let got = lane.ask(("get", Body::empty())).within(None).await?;
            if got.as_u64() != Some(1 + rounds) {
                return Err(format!(
                    "{} counted {:?}, {} were sent",
                    lane.point(),
                    got.as_u64(),
                    1 + rounds
                )
                .into());
            }
        }
    }
    machine.shutdown().await;
    Ok(vec![Measured::reps("wasm_reload", "ms", reps)
        .with("particles", PARTICLES)
        .with(
            "call",
            "WasmHost::reload_wat (artifact cached), 8 senders, an add per particle per 20 ms",
        )
        .with("compile_ms", median(&compile))
        .with("no_load_ms", median(&quiet))
        .with("stars", machine.stars())
        .with("lost", 0)
        .with("rounds_per_sender_at_least", min_rounds)])
}

/// Baseline: the same swaps of `PARTICLES` bare instances, one thread.
pub async fn reload_wasmer(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let store = store();
    let v1 = store.load_wat("counter", guests::COUNTER_V1)?;
    let v2 = store.load_wat("counter", guests::COUNTER_V2)?;
    let mut guests = Vec::with_capacity(PARTICLES);
    for _ in 0..PARTICLES {
        let mut guest = v1.instantiate()?;
        guest.init(&[])?;
        guest.handle("add", &[])?;
        guests.push(guest);
    }
    let mut reps = Vec::new();
    for rep in 0..reload_reps(s) {
        let target = if rep % 2 == 0 { &v2 } else { &v1 };
        let t = Instant::now();
        for guest in &mut guests {
            let state = guest.snapshot()?;
            let mut fresh = target.instantiate()?;
            fresh.restore(&state)?;
            *guest = fresh;
        }
        reps.push(ms_of(t.elapsed()));
    }
    Ok(vec![Measured::reps("wasm_reload", "ms", reps)
        .with("instances", PARTICLES)
        .with(
            "call",
            "snapshot + instantiate + restore, one thread",
        )])
}
