//! Typed messages: several message types on one particle, typed replies,
//! the value carried as itself in-process (never encoded), the encoding
//! round trip a message owns, untyped and typed handlers side by side, and
//! refused sends handing the message back.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyperverse_runtime::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add(u64);
impl Message for Add {
    const METHOD: &'static str = "add";
    type Reply = u64;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Get;
impl Message for Get {
    const METHOD: &'static str = "get";
    type Reply = u64;
}

/// A message with a reply of a richer type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Describe {
    prefix: String,
}
impl Message for Describe {
    const METHOD: &'static str = "describe";
    type Reply = (String, Vec<u64>);
}

/// Counts how often it is encoded: a typed message must not be, in-process.
static PROBE_ENCODES: AtomicUsize = AtomicUsize::new(0);

/// A message with an encoding of its own (a fixed 8-byte frame, not
/// bincode), which counts its encodings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Probe(u64);
impl Message for Probe {
    const METHOD: &'static str = "probe";
    type Reply = u64;
    fn encode(&self) -> Result<Body, CodecError> {
        PROBE_ENCODES.fetch_add(1, Ordering::SeqCst);
        Ok(Body::from_u64(self.0 ^ 0xA5A5))
    }
    fn decode(body: &Body) -> Result<Self, CodecError> {
        body.as_u64()
            .map(|n| Probe(n ^ 0xA5A5))
            .ok_or_else(|| CodecError::Decode("a probe is 8 bytes".into()))
    }
}

/// Counter: typed `Add`, `Get`, `Describe`, `Probe`, and untyped `handle`
/// for everything else (`"double"`, `"history"`).
struct Counter;

#[derive(Default)]
struct Count {
    n: u64,
    history: Vec<u64>,
}

impl Particle for Counter {
    type State = Count;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<Count, ParticleError> {
        Ok(Count::default())
    }

    fn messages(m: &mut Messages<'_, Self>) {
        m.on::<Add>().on::<Get>().on::<Describe>().on::<Probe>();
    }

    async fn handle(&self, _: &Ctx, c: &mut Count, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "double" => {
                c.n *= 2;
                Ok(Body::encode(&c.n)?)
            }
            "garbage" => Ok(Body::from("not a u64 in bincode, far too long")),
            other => Err(format!("no handler for {other}").into()),
        }
    }
}

impl Handler<Add> for Counter {
    async fn handle_message(
        &self,
        _: &Ctx,
        c: &mut Count,
        Add(k): Add,
    ) -> Result<u64, ParticleError> {
        if k == 13 {
            return Err("unlucky".into());
        }
        c.n += k;
        c.history.push(k);
        Ok(c.n)
    }
}

impl Handler<Get> for Counter {
    async fn handle_message(&self, _: &Ctx, c: &mut Count, _: Get) -> Result<u64, ParticleError> {
        Ok(c.n)
    }
}

impl Handler<Describe> for Counter {
    async fn handle_message(
        &self,
        _: &Ctx,
        c: &mut Count,
        d: Describe,
    ) -> Result<(String, Vec<u64>), ParticleError> {
        Ok((format!("{}{}", d.prefix, c.n), c.history.clone()))
    }
}

impl Handler<Probe> for Counter {
    async fn handle_message(
        &self,
        _: &Ctx,
        _: &mut Count,
        Probe(n): Probe,
    ) -> Result<u64, ParticleError> {
        Ok(n + 1)
    }
}

/// Untyped only: answers "add" waves with bincode, like a guest would.
struct Untyped;

impl Particle for Untyped {
    type State = u64;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }
    async fn handle(&self, _: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "add" => {
                *n += w.body.decode::<u64>()?;
                Ok(Body::encode(n)?)
            }
            "get" => Ok(Body::from("four bytes")),
            _ => Ok(Body::empty()),
        }
    }
}

/// Holds each `Add` until a permit is released, and records what it
/// handled: keeps its lane full, and shows what was handled.
#[derive(Clone)]
struct Gate {
    permits: Arc<Semaphore>,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Gate {
    fn new() -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(0)),
            seen: Arc::default(),
        }
    }
}

impl Particle for Gate {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    fn messages(m: &mut Messages<'_, Self>) {
        m.on::<Add>();
    }
}

impl Handler<Add> for Gate {
    async fn handle_message(&self, _: &Ctx, _: &mut (), Add(k): Add) -> Result<u64, ParticleError> {
        self.permits.acquire().await?.forget();
        self.seen.lock().push(k);
        Ok(k)
    }
}

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

async fn machine() -> Machine {
    Machine::standalone()
        .kind("counter", Counter)
        .kind("untyped", Untyped)
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn several_message_types_on_one_particle_with_typed_replies() {
    let m = machine().await;
    let c = m
        .spawn(p("c"), Kind::new("counter"), Body::empty())
        .await
        .unwrap();
    assert_eq!(c.ask(Add(5)).await.unwrap(), 5);
    c.signal(Add(2)).unwrap();
    assert_eq!(c.ask(Get).await.unwrap(), 7);
    let (text, history) = c
        .ask(Describe {
            prefix: "n=".into(),
        })
        .await
        .unwrap();
    assert_eq!((text.as_str(), history), ("n=7", vec![5, 2]));
    // The Machine and the handle speak the same verbs.
    assert_eq!(m.ask(&p("c"), Add(1)).await.unwrap(), 8);
    m.signal(&p("c"), Add(1)).unwrap();
    assert_eq!(m.ask(&p("c"), Get).within(None).await.unwrap(), 9);
    assert_eq!(
        Messages::<Counter>::declared(),
        ["add", "get", "describe", "probe"]
    );
    m.shutdown().await;
}

#[tokio::test]
async fn typed_and_untyped_handlers_live_in_one_particle() {
    let m = machine().await;
    let c = m
        .spawn(p("c"), Kind::new("counter"), Body::empty())
        .await
        .unwrap();
    c.signal(Add(3)).unwrap();
    // An untyped method no typed handler declares goes to `handle`.
    let doubled = c.ask(("double", Body::empty())).await.unwrap();
    assert_eq!(doubled.decode::<u64>().unwrap(), 6);
    // An untyped wave whose method a typed handler declares is decoded and
    // handled by it; its reply comes back encoded.
    let added = c.ask(("add", Body::encode(&4u64).unwrap())).await.unwrap();
    assert_eq!(added.decode::<u64>().unwrap(), 10);
    assert_eq!(c.ask(Get).await.unwrap(), 10);
    m.shutdown().await;
}

#[tokio::test]
async fn a_typed_message_is_never_encoded_in_process_but_round_trips_through_its_encoding() {
    // Its own encoding round-trips (the property the cluster will rely on).
    for n in [0u64, 1, 42, u64::MAX] {
        let body = Probe(n).encode().unwrap();
        assert_eq!(body.len(), 8, "the probe's own frame, not bincode");
        assert_eq!(Probe::decode(&body).unwrap(), Probe(n));
    }
    let d = Describe {
        prefix: "é\u{0}x".into(),
    };
    assert_eq!(Describe::decode(&d.encode().unwrap()).unwrap(), d);
    let reply = ("s".to_string(), vec![1u64, u64::MAX]);
    let back = Describe::decode_reply(&Describe::encode_reply(&reply).unwrap()).unwrap();
    assert_eq!(back, reply);
    assert!(Describe::decode(&Body::from("\u{ff}")).is_err());

    let m = machine().await;
    let c = m
        .spawn(p("c"), Kind::new("counter"), Body::empty())
        .await
        .unwrap();
    let before = PROBE_ENCODES.load(Ordering::SeqCst);
    for n in 0..1_000u64 {
        assert_eq!(c.ask(Probe(n)).await.unwrap(), n + 1);
        c.signal(Probe(n)).unwrap();
    }
    assert_eq!(
        PROBE_ENCODES.load(Ordering::SeqCst) - before,
        0,
        "a typed message to a particle that declares it travels as the value"
    );
    // A particle that does not declare it gets it as a wave: encoded once,
    // with the message's own encoding, and decoded by an untyped handler.
    let u = m
        .spawn(p("u"), Kind::new("untyped"), Body::empty())
        .await
        .unwrap();
    let before = PROBE_ENCODES.load(Ordering::SeqCst);
    let reply = u.ask(("add", Body::encode(&2u64).unwrap())).await.unwrap();
    assert_eq!(reply.decode::<u64>().unwrap(), 2);
    // Typed ask of an untyped particle: the message is encoded (bincode by
    // default for Add) and the bytes reply decoded as `Add::Reply`.
    assert_eq!(u.ask(Add(5)).await.unwrap(), 7);
    u.signal(Probe(1)).unwrap();
    assert_eq!(u.ask(Get).await.ok(), None, "\"four bytes\" is no u64");
    assert_eq!(PROBE_ENCODES.load(Ordering::SeqCst) - before, 1);
    m.shutdown().await;
}

#[tokio::test]
async fn bad_bytes_for_a_typed_handler_are_refused_without_a_crash() {
    let m = machine().await;
    let c = m
        .spawn(p("c"), Kind::new("counter"), Body::empty())
        .await
        .unwrap();
    let bad = c.ask(("add", "three")).await.unwrap_err();
    assert!(
        matches!(&bad, WaveError::BadMessage { point, .. } if point == &p("c")),
        "{bad:?}"
    );
    // A signal of bad bytes is dropped the same way.
    c.signal(("probe", "x")).unwrap();
    assert_eq!(c.ask(Add(1)).await.unwrap(), 1);
    assert_eq!(c.restarts(), 0, "bad bytes never crash the particle");
    // A typed reply that is not of the reply type is a typed error too.
    let u = m
        .spawn(p("u"), Kind::new("untyped"), Body::empty())
        .await
        .unwrap();
    let err = u.ask(Get).await.unwrap_err();
    assert!(matches!(err, WaveError::BadReply { .. }), "{err:?}");
    // A typed handler's own error is a crash, as `handle`'s is: the asker
    // is told, and the particle restarts with a fresh state.
    let crashed = c.ask(Add(13)).await.unwrap_err();
    assert!(matches!(crashed, WaveError::Crashed { .. }), "{crashed:?}");
    assert_eq!(c.ask(Get).await.unwrap(), 0);
    assert_eq!(c.restarts(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn a_refused_send_hands_the_message_back() {
    let gate = Gate::new();
    let m = Machine::standalone()
        .kind("gate", gate.clone())
        .build()
        .await
        .unwrap();
    let opts = SpawnOptions {
        lane: Some(LaneLimit::new(1, WhenFull::Reject)),
        ..SpawnOptions::default()
    };
    let g = m
        .spawn_with(p("g"), Kind::new("gate"), Body::empty(), opts)
        .await
        .unwrap();
    // The first is taken and blocks the handler; the second fills the lane.
    let first = g.ask(Add(1));
    while g.queued() > 0 {
        tokio::task::yield_now().await;
    }
    g.signal(Add(2)).unwrap();
    let refused = g.signal(Add(3)).unwrap_err();
    assert!(
        matches!(refused.error(), WaveError::LaneFull { capacity: 1, .. }),
        "{refused}"
    );
    assert_eq!(refused.into_inner(), Add(3), "the typed message comes back");
    // Untyped: the wave the runtime made of it comes back, sender stamped.
    let wave = g
        .signal(("add", Body::from_u64(4)))
        .unwrap_err()
        .into_inner();
    assert_eq!((&*wave.method, wave.body.as_u64()), ("add", Some(4)));
    assert!(wave.from.is_root() && wave.to == p("g"));
    // A full lane that refuses fails an ask at once.
    let full = g.ask(Add(5)).await.unwrap_err();
    assert!(matches!(full, WaveError::LaneFull { .. }), "{full:?}");
    // Nowhere to go: the message comes back too.
    let lost = m.signal(&p("nobody"), Add(6)).unwrap_err();
    assert!(matches!(lost.error(), WaveError::NoSuchParticle { .. }));
    assert_eq!(lost.into_inner(), Add(6));
    gate.permits.add_permits(2);
    assert_eq!(first.await.unwrap(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn an_ask_is_queued_when_made_and_its_timeout_is_chosen_per_ask() {
    let gate = Gate::new();
    let m = Machine::standalone()
        .kind("gate", gate.clone())
        .request_timeout(Duration::from_millis(40))
        .build()
        .await
        .unwrap();
    let g = m
        .spawn(p("g"), Kind::new("gate"), Body::empty())
        .await
        .unwrap();
    // The Machine's default: 40 ms.
    let t = tokio::time::Instant::now();
    let late = g.ask(Add(1)).await.unwrap_err();
    assert!(matches!(late, WaveError::Timeout { after, .. } if after == Duration::from_millis(40)));
    assert!(t.elapsed() >= Duration::from_millis(40));
    // Another timeout, per ask.
    let late = g
        .ask(Add(2))
        .within(Duration::from_millis(5))
        .await
        .unwrap_err();
    assert!(matches!(late, WaveError::Timeout { after, .. } if after == Duration::from_millis(5)));
    // None: waits as long as it takes (the handler is held for longer than
    // the default timeout).
    let patient = tokio::spawn(g.ask(Add(3)).within(None).into_future());
    // An ask dropped unawaited was queued all the same (cancel safety).
    drop(g.ask(Add(4)));
    // Held well past the default timeout before it is answered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.permits.add_permits(5);
    assert_eq!(patient.await.unwrap().unwrap(), 3);
    assert_eq!(g.ask(Add(5)).await.unwrap(), 5);
    assert_eq!(
        *gate.seen.lock(),
        [1, 2, 3, 4, 5],
        "timed-out and dropped asks were still handled, in order"
    );
    m.shutdown().await;
}
