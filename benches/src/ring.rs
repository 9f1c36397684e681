//! Ring: N particles in a circle pass one token around L times; the figure is
//! nanoseconds per hop (one signal from a particle to its neighbour).
//!
//! This is the cost of one wave through a lane when nothing else is going on:
//! build the wave, push it, wake the receiver, hand it to `handle`. Each
//! particle caches a [`ParticleRef`] to its neighbour, as a real particle talking to
//! the same peer over and over would, so no Registry lookup is on the path.
//!
//! Baseline: the same ring of raw ractor actors using `ActorRef::cast`.

use std::error::Error;
use std::time::Instant;

use hyperverse::{Body, Ctx, Kind, Machine, Particle, ParticleError, ParticleRef, Point, Wave};
use ractor::{call, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use crate::measure::{ns_per, Measured};
use crate::Sizes;

/// The token's count: hops still to go. The particle that receives 0 reports
/// the lap is over.
const TOKEN: &str = "token";

fn node_point(i: u64) -> Result<Point, hyperverse::PointError> {
    Point::parse(&format!("ring-{i}"))
}

/// One ring node. The value is shared by every node; `n` tells each which
/// neighbour to look up, `done` tells the driver the token has stopped.
struct RingNode {
    n: u64,
    done: mpsc::UnboundedSender<()>,
}

struct NodeState {
    next_at: Point,
    /// Resolved on the first token rather than in `start`, because node `i`'s
    /// neighbour may not have been spawned yet when `i` starts.
    next: Option<ParticleRef>,
}

impl Particle for RingNode {
    type State = NodeState;

    async fn start(&self, _: &Ctx, args: &Body) -> Result<NodeState, ParticleError> {
        let i = args.as_u64().ok_or("a ring node needs its index")?;
        Ok(NodeState {
            next_at: node_point((i + 1) % self.n)?,
            next: None,
        })
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        st: &mut NodeState,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        let left = wave.body.as_u64().ok_or("a token carries its count")?;
        if left == 0 {
            let _ = self.done.send(());
            return Ok(Body::empty());
        }
        if st.next.is_none() {
            st.next = Some(ctx.particle(&st.next_at)?);
        }
        let next = st.next.as_ref().expect("resolved just above");
        next.signal((TOKEN, Body::from_u64(left - 1)))?;
        Ok(Body::empty())
    }
}

/// Hyperverse: `ring_particles` particles spawned with `Machine::spawn`, one
/// warm-up lap (which also resolves every neighbour's lane), then `reps`
/// timed runs of `ring_laps` laps.
pub async fn hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let n = s.ring_particles;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let machine = Machine::standalone()
        .kind("ring", RingNode { n, done: done_tx })
        .build()
        .await?;
    let kind = Kind::new("ring");
    let mut first = None;
    for i in 0..n {
        let lane = machine
            .spawn(node_point(i)?, kind.clone(), Body::from_u64(i))
            .await?;
        first.get_or_insert(lane);
    }
    let first = first.ok_or("the ring is empty")?;
    let lap = |hops: u64| -> Result<(), hyperverse::WaveError> {
        first
            .signal((TOKEN, Body::from_u64(hops - 1)))
            .map_err(hyperverse::WaveError::from)
    };

    lap(n)?;
    done_rx.recv().await.ok_or("ring stopped")?;
    let hops = n * s.ring_laps;
    let mut reps = Vec::with_capacity(s.reps);
    for _ in 0..s.reps {
        let t = Instant::now();
        lap(hops)?;
        done_rx.recv().await.ok_or("ring stopped")?;
        reps.push(ns_per(t.elapsed(), hops));
    }
    Ok(vec![Measured::reps("ring", "ns/wave", reps)
        .with("particles", n)
        .with("laps", s.ring_laps)])
}

// ------------------------------------------------------------ ractor baseline

struct RactorNode;

enum RingMsg {
    SetNext(ActorRef<RingMsg>, RpcReplyPort<()>),
    Token(u64),
}

// Local only (a clustered build's ractor asks every message type).
hyperverse::local_ractor_message!(RingMsg);

struct RactorState {
    next: Option<ActorRef<RingMsg>>,
    done: mpsc::UnboundedSender<()>,
}

impl Actor for RactorNode {
    type Msg = RingMsg;
    type State = RactorState;
    type Arguments = mpsc::UnboundedSender<()>;

    async fn pre_start(
        &self,
        _: ActorRef<RingMsg>,
        done: Self::Arguments,
    ) -> Result<RactorState, ActorProcessingErr> {
        Ok(RactorState { next: None, done })
    }

    async fn handle(
        &self,
        _: ActorRef<RingMsg>,
        msg: RingMsg,
        st: &mut RactorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RingMsg::SetNext(next, reply) => {
                st.next = Some(next);
                let _ = reply.send(());
            }
            RingMsg::Token(0) => {
                let _ = st.done.send(());
            }
            RingMsg::Token(left) => {
                let next = st.next.as_ref().ok_or("ring node has no neighbour")?;
                next.cast(RingMsg::Token(left - 1))?;
            }
        }
        Ok(())
    }
}

/// Raw ractor: the same ring, sizes and reps.
pub async fn ractor(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let n = s.ring_particles;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut nodes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (node, _) = Actor::spawn(None, RactorNode, done_tx.clone()).await?;
        nodes.push(node);
    }
    for (i, node) in nodes.iter().enumerate() {
        let next = nodes[(i + 1) % nodes.len()].clone();
        call!(node, RingMsg::SetNext, next)?;
    }
    nodes[0].cast(RingMsg::Token(n - 1))?;
    done_rx.recv().await.ok_or("ring stopped")?;
    let hops = n * s.ring_laps;
    let mut reps = Vec::with_capacity(s.reps);
    for _ in 0..s.reps {
        let t = Instant::now();
        nodes[0].cast(RingMsg::Token(hops - 1))?;
        done_rx.recv().await.ok_or("ring stopped")?;
        reps.push(ns_per(t.elapsed(), hops));
    }
    for node in &nodes {
        node.stop(None);
    }
    Ok(vec![Measured::reps("ring", "ns/wave", reps)
        .with("particles", n)
        .with("laps", s.ring_laps)])
}
