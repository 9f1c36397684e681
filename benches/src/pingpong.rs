//! Ping-pong: one driver task sends requests to one echo actor, one at a
//! time, and waits for each reply; the figure is nanoseconds per round trip.
//!
//! This is the latency of the request path: a reply channel per request, the
//! wave through the lane, the handler, the reply back, and two task wake-ups.
//! The driver holds the [`hyperverse::Lane`] that `Machine::spawn` returned,
//! so no Registry lookup is on the path.
//!
//! Two figures: `pingpong` without a timeout (`Lane::call` beside ractor's
//! `call!`) and `pingpong_timeout` with one (`Lane::request` beside ractor's
//! `call_t!`, which uses a tokio timer per call).

use std::error::Error;
use std::future::Future;
use std::time::{Duration, Instant};

use hyperverse::{Body, Ctx, Kind, Machine, Particle, ParticleError, Point, Wave};
use ractor::{call, call_t, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::measure::{ns_per, Measured};
use crate::Sizes;

/// Requests before the timed reps, to warm caches, allocator and scheduler.
const WARM_UP: u64 = 10_000;
/// Far beyond any round trip: a timeout here means something is broken.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every request with how many it has answered, like the baseline.
struct Echo;

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

fn count(reply: Wave) -> Result<u64, Box<dyn Error>> {
    Ok(reply.body.as_u64().ok_or("echo replies a u64")?)
}

/// Hyperverse: `Lane::call` (no timeout, like `call!`) and `Lane::request`
/// (with a timeout, like `call_t!`) from a driver task to an echo particle.
pub async fn hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let machine = Machine::standalone().kind("echo", Echo).build().await?;
    let echo = machine
        .spawn(Point::parse("echo")?, Kind::new("echo"), Body::empty())
        .await?;
    let untimed = timed(s, || async {
        count(echo.call("ping", Body::empty()).await?)
    })
    .await?;
    let echo = machine
        .spawn(Point::parse("echo-t")?, Kind::new("echo"), Body::empty())
        .await?;
    let with_timeout = timed(s, || async {
        count(echo.request("ping", Body::empty(), TIMEOUT).await?)
    })
    .await?;
    Ok(vec![
        Measured::reps("pingpong", "ns/rt", untimed)
            .with("requests", s.pingpong_n)
            .with("call", "Lane::call"),
        Measured::reps("pingpong_timeout", "ns/rt", with_timeout)
            .with("requests", s.pingpong_n)
            .with("call", "Lane::request (10 s timeout)"),
    ])
}

// ------------------------------------------------------------ ractor baseline

struct RactorEcho;

enum EchoMsg {
    Ping(RpcReplyPort<u64>),
}

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
