//! Bounded lanes: a full lane either makes senders wait (backpressure) or
//! refuses them with a typed error, as its policy says.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, p};
use hyperverse::*;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// Blocks on "block" until the test adds a permit; records what it handled.
#[derive(Clone)]
struct Gate {
    open: Arc<Semaphore>,
    handled: Arc<Mutex<Vec<String>>>,
}

impl Particle for Gate {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if &*w.method == "block" {
            self.open.acquire().await?.forget();
        }
        self.handled.lock().push(w.method.to_string());
        Ok(Body::empty())
    }
}

/// The error of a refused signal, after checking that the refused wave came
/// back whole: its method, body and target, from the Machine.
fn refusal(sent: Result<(), SendError<Wave>>, method: &str, body: &[u8]) -> WaveError {
    let (error, back) = sent.expect_err("the signal was refused").into_parts();
    assert_eq!(back.method.as_str(), method, "the refused wave's method");
    assert_eq!(back.body.as_bytes(), body, "the refused wave's body");
    assert_eq!(back.to, p("g"), "the refused wave's target");
    assert!(back.from.is_root(), "the refused wave's sender");
    error
}

async fn gated(when_full: WhenFull) -> (Machine, Gate, ParticleRef) {
    gated_with(LaneLimit::new(2, when_full)).await
}

async fn gated_with(limit: LaneLimit) -> (Machine, Gate, ParticleRef) {
    let gate = Gate {
        open: Arc::new(Semaphore::new(0)),
        handled: Arc::default(),
    };
    let m = Machine::standalone()
        .stars(1)
        .kind("gate", gate.clone())
        .build()
        .await
        .unwrap();
    let opts = SpawnOptions {
        lane: Some(limit),
        ..Default::default()
    };
    let lane = m
        .spawn_with(p("g"), "gate".into(), Body::empty(), opts)
        .await
        .unwrap();
    // The particle takes "block" and waits in it; what follows queues up.
    lane.signal(("block", Body::empty())).unwrap();
    eventually("blocked", || lane.queued() == 0).await;
    (m, gate, lane)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rejecting_lane_refuses_with_a_typed_error() {
    let (m, gate, lane) = gated(WhenFull::Reject).await;
    lane.signal(("a", Body::empty())).unwrap();
    lane.signal(("b", Body::empty())).unwrap();
    let full = WaveError::LaneFull {
        point: p("g"),
        capacity: 2,
    };
    assert_eq!(refusal(lane.signal(("c", Body::empty())), "c", b""), full);
    assert_eq!(
        refusal(m.signal(&p("g"), ("c", "from m")), "c", b"from m"),
        full
    );
    assert_eq!(
        refusal(lane.signal_waiting(("c", vec![7u8; 3])).await, "c", &[7; 3]),
        full
    );
    assert_eq!(
        lane.ask(("c", Body::empty()))
            .within(None)
            .await
            .unwrap_err(),
        full
    );
    gate.open.add_permits(1);
    eventually("drained", || gate.handled.lock().len() == 3).await;
    assert_eq!(*gate.handled.lock(), ["block", "a", "b"]);
    // Room again.
    lane.ask(("d", Body::empty())).within(None).await.unwrap();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_waiting_lane_makes_senders_wait_and_loses_nothing() {
    let (m, gate, lane) = gated(WhenFull::Wait).await;
    lane.signal(("a", Body::empty())).unwrap();
    lane.signal(("b", Body::empty())).unwrap();
    // A synchronous send cannot wait: it is told the lane is full.
    assert!(matches!(
        lane.signal(("x", Body::empty())).map_err(WaveError::from),
        Err(WaveError::LaneFull { .. })
    ));
    // Async senders wait for room: a signal and a request.
    let waiting_signal = {
        let lane = lane.clone();
        tokio::spawn(async move { lane.signal_waiting(("c", Body::empty())).await })
    };
    let waiting_call = {
        let lane = lane.clone();
        tokio::spawn(async move {
            lane.ask(("d", Body::empty()))
                .within(None)
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting_signal.is_finished() && !waiting_call.is_finished(),
        "they wait for room"
    );
    assert_eq!(gate.handled.lock().len(), 0);
    gate.open.add_permits(1);
    waiting_signal.await.unwrap().unwrap();
    waiting_call.await.unwrap().unwrap();
    eventually("all handled", || gate.handled.lock().len() == 5).await;
    let handled = gate.handled.lock().clone();
    assert_eq!(&handled[..3], ["block", "a", "b"]);
    assert!(handled.contains(&"c".to_string()) && handled.contains(&"d".to_string()));
    m.shutdown().await;
}

/// A lane capped by bytes refuses a wave that would take it past the cap,
/// however few waves wait; once the particle takes them, there is room
/// again. A lane with nothing waiting takes any one wave, however large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_capped_by_bytes_refuses_past_its_bytes_and_never_starves_a_large_wave() {
    let limit = LaneLimit::new(1_000, WhenFull::Reject).max_bytes(100);
    let (m, gate, lane) = gated_with(limit).await;
    // "a" + 40 bytes, twice: 82 bytes waiting.
    lane.signal(("a", vec![0u8; 40])).unwrap();
    lane.signal(("a", vec![0u8; 40])).unwrap();
    let full = WaveError::LaneFull {
        point: p("g"),
        capacity: 1_000,
    };
    assert_eq!(
        refusal(lane.signal(("b", vec![0u8; 40])), "b", &[0; 40]),
        full
    );
    // Small enough to fit still.
    lane.signal(("c", vec![0u8; 10])).unwrap();
    gate.open.add_permits(1);
    eventually("the lane drained", || gate.handled.lock().len() == 4).await;
    // Empty, it takes one wave over the cap, and refuses a second.
    lane.signal(("block", Body::empty())).unwrap();
    eventually("blocked again", || lane.queued() == 0).await;
    lane.signal(("big", vec![0u8; 500])).unwrap();
    assert_eq!(refusal(lane.signal(("d", Body::empty())), "d", b""), full);
    gate.open.add_permits(1);
    eventually("the big one handled", || {
        gate.handled.lock().last().map(String::as_str) == Some("big")
    })
    .await;
    assert_eq!(
        *gate.handled.lock(),
        ["block", "a", "a", "c", "block", "big"]
    );
    m.shutdown().await;
}
