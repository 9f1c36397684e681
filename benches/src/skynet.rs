//! Skynet: a 10-ary tree of actors whose leaves are the numbers 0..L; each
//! parent sums its ten children's results and reports up. With L = 1,000,000
//! that is 1,111,111 actors, each spawned, run once and stopped, so this is
//! the cost of a particle's whole life (spawn, start, one or ten waves, stop,
//! unregister) at scale, plus the peak memory of a million live particles.
//!
//! Each particle spawns its own children from its own task (in `start`, with
//! `Ctx::spawn_child`, which does not wait), so the tree fans out across the
//! worker threads instead of being built by one driver.
//!
//! Baseline: the same tree on raw ractor actors, children spawned in
//! `post_start` (the actor's own task), as the rust-peers anchor does.

use std::error::Error;
use std::time::Instant;

use hyperverse::{Body, Ctx, Kind, Machine, Particle, ParticleError, Point, Wave};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, oneshot};

use crate::measure::{peak_rss_kb, Measured};
use crate::Sizes;

/// Children's names: one segment each, made once rather than per spawn.
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Actors in a skynet tree with `leaves` leaves (a power of ten).
pub fn actors(leaves: u64) -> u64 {
    let mut total = 0;
    let mut level = leaves;
    while level >= 1 {
        total += level;
        level /= 10;
    }
    total
}

/// The sum skynet must arrive at: 0 + 1 + … + (leaves − 1).
pub fn expected_sum(leaves: u64) -> u64 {
    leaves * (leaves.saturating_sub(1)) / 2
}

/// Spawn arguments: the first leaf number below this particle and how many
/// leaves it covers, as 16 little-endian bytes (cheaper than a codec here,
/// and this runs 1.1 million times).
fn sky_args(num: u64, size: u64) -> Body {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&num.to_le_bytes());
    bytes.extend_from_slice(&size.to_le_bytes());
    Body::from(bytes)
}

fn read_args(body: &Body) -> Option<(u64, u64)> {
    let b = body.as_bytes();
    let num = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let size = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    Some((num, size))
}

/// One skynet node. The value is shared by every node: its own Kind (to
/// spawn children of the same Kind) and where the top node reports.
struct Sky {
    kind: Kind,
    done: mpsc::UnboundedSender<u64>,
}

struct SkyState {
    sum: u64,
    pending: u32,
}

impl Sky {
    /// Sends `value` to the parent particle, or to the driver from the top.
    fn report(&self, ctx: &Ctx, value: u64) -> Result<(), ParticleError> {
        match ctx.me().parent() {
            Some(parent) if !parent.is_root() => {
                ctx.signal(&parent, ("sum", Body::from_u64(value)))?;
            }
            _ => self.done.send(value)?,
        }
        ctx.stop();
        Ok(())
    }
}

impl Particle for Sky {
    type State = SkyState;

    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<SkyState, ParticleError> {
        let (num, size) = read_args(args).ok_or("skynet args are (num, size)")?;
        if size <= 1 {
            self.report(ctx, num)?;
            return Ok(SkyState { sum: 0, pending: 0 });
        }
        let child = size / 10;
        for (i, name) in (0u64..).zip(DIGITS) {
            ctx.spawn_child(name, &self.kind, sky_args(num + i * child, child))?;
        }
        Ok(SkyState {
            sum: 0,
            pending: 10,
        })
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        st: &mut SkyState,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        st.sum += wave.body.as_u64().ok_or("a sum is one u64")?;
        st.pending -= 1;
        if st.pending == 0 {
            self.report(ctx, st.sum)?;
        }
        Ok(Body::empty())
    }
}

fn figures(ms: f64, sum: u64, leaves: u64) -> Result<Vec<Measured>, Box<dyn Error>> {
    let expected = expected_sum(leaves);
    if sum != expected {
        return Err(format!("skynet sum is {sum}, expected {expected}").into());
    }
    let peak_mb = peak_rss_kb() as f64 / 1024.0;
    Ok(vec![
        Measured::once("skynet", "ms", ms)
            .with("sum", sum)
            .with("actors", actors(leaves)),
        Measured::once("skynet_peak_rss", "MB", peak_mb).with("source", "VmHWM"),
    ])
}

/// Hyperverse: the top particle is spawned with `spawn_nowait`; the clock
/// stops when its sum reaches the driver.
pub async fn hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let kind = Kind::new("sky");
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let machine = Machine::standalone()
        .kind(
            kind.clone(),
            Sky {
                kind: kind.clone(),
                done: done_tx,
            },
        )
        .build()
        .await?;
    let t = Instant::now();
    machine.spawn_nowait(Point::parse("sky")?, kind, sky_args(0, s.skynet_leaves))?;
    let sum = done_rx.recv().await.ok_or("skynet stopped")?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let out = figures(ms, sum, s.skynet_leaves)?;
    Ok(out)
}

// ------------------------------------------------------------ ractor baseline

struct RactorSky;

enum Parent {
    Driver(oneshot::Sender<u64>),
    Node(ActorRef<SkyMsg>),
}

impl Parent {
    fn report(self, value: u64) -> Result<(), ActorProcessingErr> {
        match self {
            Parent::Driver(tx) => {
                let _ = tx.send(value);
            }
            Parent::Node(p) => p.cast(SkyMsg(value))?,
        }
        Ok(())
    }
}

struct SkyMsg(u64);

// Local only (a clustered build's ractor asks every message type).
hyperverse::local_ractor_message!(SkyMsg);

struct RactorArgs {
    num: u64,
    size: u64,
    parent: Parent,
}

struct RactorState {
    num: u64,
    size: u64,
    parent: Option<Parent>,
    sum: u64,
    pending: u32,
}

impl Actor for RactorSky {
    type Msg = SkyMsg;
    type State = RactorState;
    type Arguments = RactorArgs;

    async fn pre_start(
        &self,
        _: ActorRef<SkyMsg>,
        a: RactorArgs,
    ) -> Result<RactorState, ActorProcessingErr> {
        Ok(RactorState {
            num: a.num,
            size: a.size,
            parent: Some(a.parent),
            sum: 0,
            pending: 0,
        })
    }

    // Children are spawned here, in the actor's own task, rather than in
    // pre_start (which runs inside the parent's `spawn().await`), so the tree
    // fans out across tasks as the Hyperverse one does.
    async fn post_start(
        &self,
        me: ActorRef<SkyMsg>,
        st: &mut RactorState,
    ) -> Result<(), ActorProcessingErr> {
        if st.size <= 1 {
            if let Some(parent) = st.parent.take() {
                parent.report(st.num)?;
            }
            me.stop(None);
            return Ok(());
        }
        let child = st.size / 10;
        st.pending = 10;
        for i in 0..10 {
            let args = RactorArgs {
                num: st.num + i * child,
                size: child,
                parent: Parent::Node(me.clone()),
            };
            Actor::spawn(None, RactorSky, args).await?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SkyMsg>,
        SkyMsg(v): SkyMsg,
        st: &mut RactorState,
    ) -> Result<(), ActorProcessingErr> {
        st.sum += v;
        st.pending -= 1;
        if st.pending == 0 {
            if let Some(parent) = st.parent.take() {
                parent.report(st.sum)?;
            }
            me.stop(None);
        }
        Ok(())
    }
}

/// Raw ractor: the same tree; the clock stops when the top actor's sum
/// reaches the driver.
pub async fn ractor(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let (tx, rx) = oneshot::channel();
    let t = Instant::now();
    let args = RactorArgs {
        num: 0,
        size: s.skynet_leaves,
        parent: Parent::Driver(tx),
    };
    let (_top, _) = Actor::spawn(None, RactorSky, args).await?;
    let sum = rx.await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    figures(ms, sum, s.skynet_leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_arithmetic() {
        assert_eq!(actors(1_000_000), 1_111_111);
        assert_eq!(actors(10), 11);
        assert_eq!(expected_sum(1_000_000), 499_999_500_000);
        assert_eq!(read_args(&sky_args(7, 1000)), Some((7, 1000)));
        assert_eq!(read_args(&Body::from_u64(7)), None);
    }
}
