//! Lanes keep per-sender order across Stars, and lose nothing.
//!
//! 8 sender particles on Stars 1..4 send 100,000 numbered signals in all to
//! two sinks on Star 0; each sink checks that every sender's numbers arrive
//! as 0, 1, 2, … with no gap and no repeat.

use std::collections::HashMap;
use std::time::Duration;

use hyperverse::*;

const SENDERS: u64 = 8;
const TOTAL: u64 = 100_000;
const PER_SENDER: u64 = TOTAL / SENDERS;

/// Checks per-sender sequence numbers as they arrive.
struct Sink;

#[derive(Default)]
struct SinkState {
    next: HashMap<Point, u64>,
    received: u64,
    out_of_order: u64,
}

impl Particle for Sink {
    type State = SinkState;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<SinkState, ParticleError> {
        Ok(SinkState::default())
    }
    async fn handle(&self, _: &Ctx, st: &mut SinkState, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "seq" => {
                let n = w.body.as_u64().ok_or("seq body is not a u64")?;
                let expected = st.next.entry(w.from.clone()).or_insert(0);
                if n != *expected {
                    st.out_of_order += 1;
                }
                *expected = n + 1;
                st.received += 1;
                Ok(Body::empty())
            }
            "report" => Ok(Body::encode(&(
                st.received,
                st.out_of_order,
                st.next
                    .iter()
                    .map(|(p, n)| (p.to_string(), *n))
                    .collect::<Vec<_>>(),
            ))?),
            other => Err(format!("unknown method {other}").into()),
        }
    }
}

/// On "go", sends its numbered signals, alternating between routed sends and a cached lane.
struct Sender;

impl Particle for Sender {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let (sinks, count): (Vec<String>, u64) = w.body.decode()?;
        let sinks: Vec<Point> = sinks.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
        let lanes: Vec<ParticleRef> = sinks
            .iter()
            .map(|s| ctx.particle(s))
            .collect::<Result<_, _>>()?;
        for n in 0..count {
            for (sink, lane) in sinks.iter().zip(&lanes) {
                if n % 2 == 0 {
                    ctx.signal(sink, ("seq", Body::from_u64(n)))?;
                } else {
                    lane.signal(("seq", Body::from_u64(n)))?;
                }
            }
            if n % 1024 == 0 {
                // Let the sinks run meanwhile, so sends and receives interleave.
                tokio::task::yield_now().await;
            }
        }
        Ok(Body::empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_sender_order_across_stars_with_no_loss() {
    let machine = Machine::standalone()
        .stars(4)
        .kind("sink", Sink)
        .kind("sender", Sender)
        .build()
        .await
        .unwrap();
    let sinks: Vec<Point> = ["order:sink-a", "order:sink-b"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let on_star = |star| SpawnOptions {
        star: Some(star),
        ..Default::default()
    };
    // The parent of them all (a sink that hears nothing).
    machine
        .spawn("order".parse().unwrap(), "sink".into(), Body::empty())
        .await
        .unwrap();
    for s in &sinks {
        machine
            .spawn_with(s.clone(), "sink".into(), Body::empty(), on_star(0))
            .await
            .unwrap();
    }
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let p: Point = format!("order:sender-{i}").parse().unwrap();
        let star = 1 + (i as usize % 3);
        let lane = machine
            .spawn_with(p, "sender".into(), Body::empty(), on_star(star))
            .await
            .unwrap();
        assert_eq!(lane.star(), star);
        senders.push(lane);
    }
    assert_ne!(
        senders[0].star(),
        machine.particle(&sinks[0]).unwrap().star()
    );

    // Each sender sends PER_SENDER / 2 waves to each of the two sinks: TOTAL in all.
    let names: Vec<String> = sinks.iter().map(|s| s.to_string()).collect();
    let go = Body::encode(&(names, PER_SENDER / 2)).unwrap();
    let mut running = Vec::new();
    for lane in &senders {
        let lane = lane.clone();
        let go = go.clone();
        running.push(tokio::spawn(async move {
            lane.ask(("go", go)).within(Duration::from_secs(60)).await
        }));
    }
    for r in running {
        r.await.unwrap().unwrap();
    }

    // Every sender has returned, so all its waves are already in the sinks'
    // lanes, ahead of this request.
    let mut total = 0;
    for s in &sinks {
        let reply = machine.ask(s, ("report", Body::empty())).await.unwrap();
        let (received, out_of_order, next): (u64, u64, Vec<(String, u64)>) =
            reply.decode().unwrap();
        assert_eq!(out_of_order, 0, "{s}: waves arrived out of order");
        assert_eq!(next.len() as u64, SENDERS, "{s}: every sender is heard");
        for (sender, n) in &next {
            assert_eq!(*n, PER_SENDER / 2, "{s}: {sender} has a gap or extra");
        }
        total += received;
    }
    assert_eq!(total, TOTAL);
    machine.shutdown().await;
}
