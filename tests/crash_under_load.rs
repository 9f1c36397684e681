//! A particle that crashes by its own logic every 1,000 waves, under load
//! from 4 senders: every wave except the ones that crashed it arrives, in
//! per-sender order, because the lane (and what is queued in it) survives
//! each restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyperverse::*;
use parking_lot::Mutex;

const SENDERS: u64 = 4;
const PER_SENDER: u64 = 2_500;
const CRASH_EVERY: u64 = 1_000;

/// What the counter saw, kept outside it so it survives its restarts.
#[derive(Default)]
struct Seen {
    /// Per sender (a task sending from outside any particle, so every wave
    /// is the Machine's: the body names the task), the sequence numbers
    /// handled, in order.
    by_sender: HashMap<u64, Vec<u64>>,
    /// Waves handled in all (the crashing ones included), across incarnations.
    handled: u64,
    /// The waves it crashed on, as (sender, number).
    crashed_on: Vec<(u64, u64)>,
}

#[derive(Clone, Default)]
struct Fragile {
    seen: Arc<Mutex<Seen>>,
}

impl Particle for Fragile {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let (from, n): (u64, u64) = w.body.decode()?;
        let mut seen = self.seen.lock();
        seen.handled += 1;
        if seen.handled.is_multiple_of(CRASH_EVERY) {
            // Its own logic: every thousandth wave is too much for it.
            seen.crashed_on.push((from, n));
            return Err(format!("wave {n} from sender-{from} was one too many").into());
        }
        seen.by_sender.entry(from).or_default().push(n);
        Ok(Body::empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wave_but_the_crashing_ones_arrives_in_order() {
    let fragile = Fragile::default();
    let m = Machine::standalone()
        .stars(2)
        .kind("fragile", fragile.clone())
        .restart_limit(100, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let target: Point = "fragile".parse().unwrap();
    let lane = m
        .spawn(target.clone(), "fragile".into(), Body::empty())
        .await
        .unwrap();
    load(&m, lane, &fragile).await;
}

/// The same under a supervisor particle (OTP one_for_one), which decides
/// each restart and resumes the child on its lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_holds_under_a_supervisor_particle() {
    let fragile = Fragile::default();
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(100, Duration::from_secs(60)),
        vec![ChildSpec::worker(
            "fragile",
            ChildStart::kind("fragile", Body::empty()),
        )],
    );
    let m = Machine::standalone()
        .stars(2)
        .kind("fragile", fragile.clone())
        .supervisor("sup", spec)
        .build()
        .await
        .unwrap();
    m.spawn("sup".parse().unwrap(), "sup".into(), Body::empty())
        .await
        .unwrap();
    let lane = m.particle(&"sup:fragile".parse().unwrap()).unwrap();
    load(&m, lane, &fragile).await;
}

/// 4 senders, 2,500 numbered waves each, into `lane`; then the checks.
async fn load(m: &Machine, lane: ParticleRef, fragile: &Fragile) {
    let target = lane.point().clone();

    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let lane = lane.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..PER_SENDER {
                let body = Body::encode(&(s, n)).unwrap();
                lane.signal(("n", body)).unwrap();
                if n % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let total = SENDERS * PER_SENDER;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fragile.seen.lock().handled < total {
        assert!(std::time::Instant::now() < deadline, "waves went missing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The last wave crashes it too: wait for that restart to be recorded.
    let crashes = (total / CRASH_EVERY) as u32;
    while m.record(&target).unwrap().restarts < crashes {
        assert!(
            std::time::Instant::now() < deadline,
            "restarts went missing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check(&fragile.seen.lock(), &m.record(&target).unwrap(), total);
    m.shutdown().await;
}

fn check(seen: &Seen, record: &Record, total: u64) {
    let crashes = total / CRASH_EVERY;
    assert_eq!(seen.crashed_on.len() as u64, crashes);
    assert_eq!(record.restarts as u64, crashes);
    for s in 0..SENDERS {
        let from = s;
        let got = seen.by_sender.get(&from).cloned().unwrap_or_default();
        let lost: Vec<u64> = seen
            .crashed_on
            .iter()
            .filter(|(f, _)| f == &from)
            .map(|(_, n)| *n)
            .collect();
        // Exactly the numbers it sent, minus those that crashed the particle, in order.
        let want: Vec<u64> = (0..PER_SENDER).filter(|n| !lost.contains(n)).collect();
        assert_eq!(got, want, "sender-{from}: order or loss");
    }
}
