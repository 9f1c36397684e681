//! Ping-pong: one driver task sends requests to one echo actor, one at a
//! time, and waits for each reply; the figure is nanoseconds per round trip.
//!
//! This is the latency of the request path: a reply channel per request, the
//! wave through the lane, the handler, the reply back, and two task wake-ups.
//! The driver holds the [`hyperverse::ParticleRef`] that `Machine::spawn`
//! returned, so no Registry lookup is on the path.
//!
//! Figures: `pingpong` without a timeout (`ask(..).within(None)` beside
//! ractor's `call!`) and `pingpong_timeout` with one (`ask` with a 10 s
//! timeout beside ractor's `call_t!`, which uses a tokio timer per call),
//! each untyped (a method and a body, the echo's `handle`) and typed
//! (`pingpong_typed*`: a `Message` value carried as itself, the echo's
//! `Handler<Ping>`, the reply a `u64` value; no encoding on the way).

use std::error::Error;
use std::future::Future;
use std::time::{Duration, Instant};

use hyperverse::{
    Body, Ctx, Handler, Kind, Machine, Message, Messages, Particle, ParticleError, Point, Wave,
};
use ractor::{call, call_t, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::measure::{ns_per, Measured};
use crate::Sizes;

/// Requests before the timed reps, to warm caches, allocator and scheduler.
const WARM_UP: u64 = 10_000;
/// Far beyond any round trip: a timeout here means something is broken.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every request with how many it has answered, like the baseline
/// (also the echo of the `wasm` shapes' lone request).
pub(crate) struct Echo;

impl Particle for Echo {
    type State = u64;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }

    async fn handle(&self, _: &Ctx, n: &mut u64, _: Wave) -> Result<Body, ParticleError> {
        *n += 1;
        Ok(Body::from_u64(*n))
    }
}

/// The typed ping: its reply is the echo's count.
#[derive(Serialize, Deserialize)]
struct Ping;

impl Message for Ping {
    const METHOD: &'static str = "ping";
    type Reply = u64;
}

/// The same echo, answering typed pings with a typed handler.
struct TypedEcho;

impl Particle for TypedEcho {
    type State = u64;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }

    fn messages(m: &mut Messages<'_, Self>) {
        m.on::<Ping>();
    }
}

impl Handler<Ping> for TypedEcho {
    async fn handle_message(&self, _: &Ctx, n: &mut u64, _: Ping) -> Result<u64, ParticleError> {
        *n += 1;
        Ok(*n)
    }
}

/// Checks the echo's count after a batch, so a lost or duplicated request
/// shows up as an error rather than as a fast figure.
fn check(got: u64, want: u64) -> Result<(), Box<dyn Error>> {
    if got == want {
        Ok(())
    } else {
        Err(format!("echo counted {got} requests, expected {want}").into())
    }
}

/// Warms up, then times `s.reps` reps of `s.pingpong_n` sequential round
/// trips; `ping` returns the echo's count, checked after every rep.
async fn timed<F, Fut>(s: &Sizes, mut ping: F) -> Result<Vec<f64>, Box<dyn Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, Box<dyn Error>>>,
{
    for _ in 0..WARM_UP {
        ping().await?;
    }
    let mut reps = Vec::with_capacity(s.reps);
    let mut sent = WARM_UP;
    for _ in 0..s.reps {
        let t = Instant::now();
        let mut last = 0;
        for _ in 0..s.pingpong_n {
            last = ping().await?;
        }
        reps.push(ns_per(t.elapsed(), s.pingpong_n));
        sent += s.pingpong_n;
        check(last, sent)?;
    }
    Ok(reps)
}

fn count(reply: Body) -> Result<u64, Box<dyn Error>> {
    Ok(reply.as_u64().ok_or("echo replies a u64")?)
}

/// Hyperverse: `ask(..).within(None)` (no timeout, like `call!`) and `ask`
/// with a timeout (like `call_t!`) from a driver task to an echo particle,
/// untyped and typed, each on an echo of its own.
pub async fn hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let machine = Machine::standalone()
        .kind("echo", Echo)
        .kind("typed", TypedEcho)
        .build()
        .await?;
    let spawn = |name: &'static str, kind: &'static str| {
        let machine = machine.clone();
        async move {
            machine
                .spawn(Point::parse(name)?, Kind::new(kind), Body::empty())
                .await
                .map_err(Box::<dyn Error>::from)
        }
    };
    let echo = spawn("echo", "echo").await?;
    let untimed = timed(s, || async {
        count(echo.ask(("ping", Body::empty())).within(None).await?)
    })
    .await?;
    let typed = spawn("typed", "typed").await?;
    let typed_untimed = timed(s, || async { Ok(typed.ask(Ping).within(None).await?) }).await?;
    let echo = spawn("echo-t", "echo").await?;
    let with_timeout = timed(s, || async {
        count(echo.ask(("ping", Body::empty())).within(TIMEOUT).await?)
    })
    .await?;
    let typed = spawn("typed-t", "typed").await?;
    let typed_timeout = timed(s, || async { Ok(typed.ask(Ping).within(TIMEOUT).await?) }).await?;
    Ok(vec![
        Measured::reps("pingpong", "ns/rt", untimed)
            .with("requests", s.pingpong_n)
            .with("call", "ask((method, body)).within(None)"),
        Measured::reps("pingpong_typed", "ns/rt", typed_untimed)
            .with("requests", s.pingpong_n)
            .with("call", "ask(Ping).within(None)"),
        Measured::reps("pingpong_timeout", "ns/rt", with_timeout)
            .with("requests", s.pingpong_n)
            .with("call", "ask((method, body)) (10 s timeout)"),
        Measured::reps("pingpong_typed_timeout", "ns/rt", typed_timeout)
            .with("requests", s.pingpong_n)
            .with("call", "ask(Ping) (10 s timeout)"),
    ])
}

// ------------------------------------------------------------ ractor baseline

struct RactorEcho;

enum EchoMsg {
    Ping(RpcReplyPort<u64>),
}

// Local only (a clustered build's ractor asks every message type).
hyperverse::local_ractor_message!(EchoMsg);

impl Actor for RactorEcho {
    type Msg = EchoMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        EchoMsg::Ping(reply): EchoMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *n += 1;
        let _ = reply.send(*n);
        Ok(())
    }
}

/// Raw ractor: `call!` (no timeout) and `call_t!` (a tokio timeout) from a
/// driver task, same sizes and reps.
pub async fn ractor(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let (echo, _) = Actor::spawn(None, RactorEcho, ()).await?;
    let untimed = timed(s, || async { Ok(call!(echo, EchoMsg::Ping)?) }).await?;
    echo.stop(None);
    let (echo, _) = Actor::spawn(None, RactorEcho, ()).await?;
    let ms = TIMEOUT.as_millis() as u64;
    let with_timeout = timed(s, || async { Ok(call_t!(echo, EchoMsg::Ping, ms)?) }).await?;
    echo.stop(None);
    Ok(vec![
        Measured::reps("pingpong", "ns/rt", untimed)
            .with("requests", s.pingpong_n)
            .with("call", "ractor::call!"),
        Measured::reps("pingpong_timeout", "ns/rt", with_timeout)
            .with("requests", s.pingpong_n)
            .with("call", "ractor::call_t! (10 s timeout)"),
    ])
}
