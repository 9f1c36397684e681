//! Restart latency: a child crashes; how long until its restarted
//! incarnation has handled the next wave? Median and p99 over many crashes.
//!
//! Hyperverse: the worker's lane survives the crash, so the driver just
//! signals `crash` and then calls `gen` on the same lane; the call is queued
//! behind the crash and answered by the new incarnation.
//!
//! Baseline: a bare ractor supervisor written here, as ractor has no restart
//! logic of its own: it respawns the child in `handle_supervisor_evt`, and
//! the driver asks it for the new `ActorRef` (counted in the latency), as in
//! the anchors' ractor probe.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::{
    Body, ChildSpec, ChildStart, Ctx, Machine, Particle, ParticleError, ParticleRef, Point,
    Strategy, SupFlags, SupervisorSpec, Wave,
};
use ractor::{call, Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::measure::Measured;
use crate::Sizes;

/// Counts incarnations; crashes on demand; answers `gen` with its incarnation.
struct Worker(Arc<AtomicU64>);

impl Particle for Worker {
    type State = u64;

    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn handle(&self, _: &Ctx, generation: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "crash" => Err("crash requested".into()),
            _ => Ok(Body::from_u64(*generation)),
        }
    }
}

/// The parent: it only hears the crash notices.
struct Parent;

impl Particle for Parent {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
}

/// Median and p99 of the samples, in µs.
fn figures(mut ns: Vec<u64>, what: &str) -> Vec<Measured> {
    ns.sort_unstable();
    let at = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize] as f64 / 1e3;
    vec![
        Measured::once("restart", "us", at(0.5))
            .with("crashes", ns.len())
            .with("how", what),
        Measured::once("restart_p99", "us", at(0.99)).with("crashes", ns.len()),
    ]
}

pub async fn hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let generations = Arc::new(AtomicU64::new(0));
    let machine = Machine::standalone()
        .kind("parent", Parent)
        .kind("worker", Worker(generations))
        .restart_limit(u32::MAX, Duration::from_secs(1))
        .build()
        .await?;
    machine
        .spawn(Point::parse("sup")?, "parent".into(), Body::empty())
        .await?;
    let worker = machine
        .spawn(Point::parse("sup:worker")?, "worker".into(), Body::empty())
        .await?;
    let samples = crash_loop(&worker, s.restart_n).await?;
    machine.shutdown().await;
    Ok(figures(
        samples,
        "ask(..).within(None) after the crash, same lane",
    ))
}

/// Crashes the worker `n` times, timing each crash until the next
/// incarnation has answered a call.
async fn crash_loop(worker: &ParticleRef, n: usize) -> Result<Vec<u64>, Box<dyn Error>> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        worker.signal(("crash", Body::empty()))?;
        let generation = worker.ask(("gen", Body::empty())).within(None).await?;
        samples.push(t.elapsed().as_nanos() as u64);
        if generation.as_u64() != Some(i + 2) {
            return Err(format!("expected incarnation {}, got {:?}", i + 2, generation).into());
        }
    }
    Ok(samples)
}

/// The same, with the worker a child of a supervisor particle (one_for_one):
/// the crash is reported to the supervisor, which resumes the worker on its lane.
pub async fn supervised(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let generations = Arc::new(AtomicU64::new(0));
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(u32::MAX, Duration::from_secs(1)),
        vec![ChildSpec::worker(
            "worker",
            ChildStart::kind("worker", Body::empty()),
        )],
    );
    let machine = Machine::standalone()
        .supervisor("sup", spec)
        .kind("worker", Worker(generations))
        .build()
        .await?;
    machine
        .spawn(Point::parse("sup")?, "sup".into(), Body::empty())
        .await?;
    let worker = machine.particle(&Point::parse("sup:worker")?)?;
    let samples = crash_loop(&worker, s.restart_n).await?;
    machine.shutdown().await;
    Ok(figures(
        samples,
        "ask(..).within(None) after the crash, supervisor particle",
    ))
}

// ------------------------------------------------------------ ractor baseline

struct RactorWorker;

enum WorkerMsg {
    Crash,
    Gen(RpcReplyPort<u64>),
}

// Local only (a clustered build's ractor asks every message type).
hyperverse::local_ractor_message!(WorkerMsg);

impl Actor for RactorWorker {
    type Msg = WorkerMsg;
    type State = u64;
    type Arguments = Arc<AtomicU64>;

    async fn pre_start(
        &self,
        _: ActorRef<WorkerMsg>,
        c: Arc<AtomicU64>,
    ) -> Result<u64, ActorProcessingErr> {
        Ok(c.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn handle(
        &self,
        _: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        generation: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Crash => Err("crash requested".into()),
            WorkerMsg::Gen(r) => {
                let _ = r.send(*generation);
                Ok(())
            }
        }
    }
}

struct RactorSup;

enum SupMsg {
    /// Replies with the child once it is no longer the given (crashed) incarnation.
    AwaitNew(ActorId, RpcReplyPort<ActorRef<WorkerMsg>>),
}

// Local only (a clustered build's ractor asks every message type).
hyperverse::local_ractor_message!(SupMsg);

struct SupState {
    child: ActorRef<WorkerMsg>,
    counter: Arc<AtomicU64>,
    waiting: Vec<RpcReplyPort<ActorRef<WorkerMsg>>>,
}

impl Actor for RactorSup {
    type Msg = SupMsg;
    type State = SupState;
    type Arguments = Arc<AtomicU64>;

    async fn pre_start(
        &self,
        me: ActorRef<SupMsg>,
        counter: Arc<AtomicU64>,
    ) -> Result<SupState, ActorProcessingErr> {
        let (child, _) =
            Actor::spawn_linked(None, RactorWorker, counter.clone(), me.get_cell()).await?;
        Ok(SupState {
            child,
            counter,
            waiting: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<SupMsg>,
        SupMsg::AwaitNew(old, reply): SupMsg,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if st.child.get_id() != old {
            let _ = reply.send(st.child.clone());
        } else {
            st.waiting.push(reply);
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupMsg>,
        evt: SupervisionEvent,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, _) = evt {
            if cell.get_id() == st.child.get_id() {
                let (child, _) =
                    Actor::spawn_linked(None, RactorWorker, st.counter.clone(), me.get_cell())
                        .await?;
                st.child = child;
                for r in st.waiting.drain(..) {
                    let _ = r.send(st.child.clone());
                }
            }
        }
        Ok(())
    }
}

pub async fn ractor(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let counter = Arc::new(AtomicU64::new(0));
    let (sup, _) = Actor::spawn(None, RactorSup, counter.clone()).await?;
    let mut child = call!(sup, SupMsg::AwaitNew, ActorId::Local(u64::MAX))?;
    let mut samples = Vec::with_capacity(s.restart_n);
    for i in 0..s.restart_n as u64 {
        let t = Instant::now();
        let old = child.get_id();
        child.cast(WorkerMsg::Crash)?;
        child = call!(sup, SupMsg::AwaitNew, old)?;
        let generation = call!(child, WorkerMsg::Gen)?;
        samples.push(t.elapsed().as_nanos() as u64);
        if generation != i + 2 {
            return Err(format!("expected incarnation {}, got {generation}", i + 2).into());
        }
    }
    sup.stop(None);
    Ok(figures(
        samples,
        "hand-written ractor supervisor, caller re-fetches the ActorRef",
    ))
}
