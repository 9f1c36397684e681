//! Two Machines on loopback, as two processes: a request round trip, and
//! one-way waves per second (per-sender order checked on arrival), beside
//! the same shapes on raw ractor_cluster remote actors in the same run, and
//! on the BEAM's own distribution (`shared/anchors/erlang/dist`).
//!
//! The measuring process starts its peer itself (this binary, with the
//! hidden `--cluster-peer IMPL PORT`), connects, measures, and kills it.
//! Two NodeServers in one process would share ractor's global process
//! groups and actor ids: a second process is the honest setup.

use std::error::Error;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hyperverse_cluster::{ClusterConfig, ClusteredMachine};
use hyperverse_runtime::{Body, Ctx, Machine, Particle, ParticleError, Point, Wave};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::measure::{ns_per, Measured};
use crate::Sizes;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Round trips before the timed ones.
const WARM_UP: u64 = 2_000;
/// The cluster's shared secret in the bench.
const SECRET: &str = "hyperverse-bench";

/// Two free ports on loopback, distinct (both held while picked: a port
/// released may be handed out again at once).
fn two_free_ports() -> Res<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Starts the peer process and waits for its "ready".
async fn start_peer(imp: &str, port: u16) -> Res<tokio::process::Child> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--cluster-peer", imp, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
        Ok(Ok(Some(l))) if l == "ready" => Ok(child),
        other => Err(format!("the peer did not start: {other:?}").into()),
    }
}

/// The peer side: serves until its stdin closes.
pub fn peer(imp: &str, port: u16) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::cores())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return std::process::ExitCode::FAILURE,
    };
    let imp = imp.to_string();
    let result: Res<()> = rt.block_on(async move {
        match imp.as_str() {
            crate::HYPERVERSE => peer_hyperverse(port).await,
            _ => peer_ractor(port).await,
        }
    });
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("cluster peer: {e}");
            std::process::exit(1)
        }
    }
}

async fn until_stdin_closes() {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}

// ------------------------------------------------------------ hyperverse

/// Answers a request with its body.
struct Echo;
impl Particle for Echo {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        Ok(w.body)
    }
}

/// Counts `n` waves, checking they come 1, 2, 3, …; `count` answers how
/// many came, and whether in order.
struct Sink;
impl Particle for Sink {
    type State = (u64, bool);
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(u64, bool), ParticleError> {
        Ok((0, true))
    }
    async fn handle(
        &self,
        _: &Ctx,
        (last, ok): &mut (u64, bool),
        w: Wave,
    ) -> Result<Body, ParticleError> {
        if w.method.as_str() == "n" {
            let n = w.body.as_u64().unwrap_or(0);
            *ok &= n == *last + 1;
            *last = n;
            Ok(Body::empty())
        } else {
            Ok(Body::from(format!("{last} {ok}")))
        }
    }
}

async fn peer_hyperverse(port: u16) -> Res<()> {
    let config = ClusterConfig::new("bench-b", format!("127.0.0.1:{port}"), SECRET)?;
    let (machine, _cluster) = Machine::clustered(config)
        .kind("echo", Echo)
        .kind("sink", Sink)
        .build()
        .await?;
    machine
        .spawn("echo".parse()?, "echo".into(), Body::empty())
        .await?;
    machine
        .spawn("sink".parse()?, "sink".into(), Body::empty())
        .await?;
    println!("ready");
    until_stdin_closes().await;
    Ok(())
}

pub async fn hyperverse(s: &Sizes) -> Res<Vec<Measured>> {
    let (peer_port, my_port) = two_free_ports()?;
    let _peer = start_peer(crate::HYPERVERSE, peer_port).await?;
    let config = ClusterConfig::new("bench-a", format!("127.0.0.1:{my_port}"), SECRET)?
        .seed(format!("127.0.0.1:{peer_port}"));
    let (machine, cluster) = Machine::clustered(config).build().await?;
    cluster.wait_for_peers(1, Duration::from_secs(10)).await?;
    let (echo, sink): (Point, Point) = ("echo".parse()?, "sink".parse()?);
    for p in [&echo, &sink] {
        cluster
            .wait_for_point(p, Duration::from_secs(10))
            .await
            .map_err(|p| format!("{p} not located"))?;
    }
    for _ in 0..WARM_UP {
        machine.ask(&echo, ("ping", Body::empty())).await?;
    }
    let mut rt = Vec::new();
    for _ in 0..s.reps {
        let t = Instant::now();
        for _ in 0..s.cluster_round_trips {
            machine.ask(&echo, ("ping", Body::empty())).await?;
        }
        rt.push(ns_per(t.elapsed(), s.cluster_round_trips));
    }
    let n = s.cluster_casts;
    let t = Instant::now();
    for i in 1..=n {
        machine
            .signal(&sink, ("n", Body::from_u64(i)))
            .map_err(|e| e.to_string())?;
    }
    // Asked after the last wave from the same sender: answered after it.
    let answer = machine
        .ask(&sink, ("count", Body::empty()))
        .within(Duration::from_secs(120))
        .await?;
    let took = t.elapsed();
    let text = answer.as_str()?.to_string();
    if text != format!("{n} true") {
        return Err(format!("the sink saw `{text}`, not {n} in order").into());
    }
    Ok(vec![
        Measured::reps("cluster_round_trip", "ns", rt).with("n", s.cluster_round_trips),
        Measured::once("cluster_one_way", "ns", ns_per(took, n))
            .with("n", n)
            .with("per_second", (n as f64 / took.as_secs_f64()).round()),
    ])
}

// ------------------------------------------------------------ ractor_cluster

const ECHO_GROUP: &str = "bench.echo";
const SINK_GROUP: &str = "bench.sink";
const BACK_GROUP: &str = "bench.back";

/// A remote actor found in `group` (waits for the peer's groups).
async fn remote_in(group: &str) -> Res<ractor::ActorCell> {
    for _ in 0..1000 {
        if let Some(c) = ractor::pg::get_members(&group.to_string())
            .into_iter()
            .find(|c| !c.get_id().is_local())
        {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("no remote member in {group}").into())
}

/// Joins its group; echoes each message to the remote `back` actor.
struct RawEcho;
impl Actor for RawEcho {
    type Msg = Vec<u8>;
    type State = Option<ActorRef<Vec<u8>>>;
    type Arguments = ();
    async fn pre_start(
        &self,
        me: ActorRef<Vec<u8>>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(ECHO_GROUP.to_string(), vec![me.get_cell()]);
        Ok(None)
    }
    async fn handle(
        &self,
        _: ActorRef<Vec<u8>>,
        msg: Vec<u8>,
        back: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if back.is_none() {
            *back = Some(
                remote_in(BACK_GROUP)
                    .await
                    .map_err(|e| e.to_string())?
                    .into(),
            );
        }
        if let Some(b) = back {
            b.cast(msg)?;
        }
        Ok(())
    }
}

/// Counts 8-byte numbers, checking order; an empty message is the end: it
/// answers `[count, in_order]` to the remote `back` actor.
struct RawSink;
impl Actor for RawSink {
    type Msg = Vec<u8>;
    type State = (u64, bool);
    type Arguments = ();
    async fn pre_start(
        &self,
        me: ActorRef<Vec<u8>>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(SINK_GROUP.to_string(), vec![me.get_cell()]);
        Ok((0, true))
    }
    async fn handle(
        &self,
        _: ActorRef<Vec<u8>>,
        msg: Vec<u8>,
        (last, ok): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if msg.is_empty() {
            let back: ActorRef<Vec<u8>> = remote_in(BACK_GROUP)
                .await
                .map_err(|e| e.to_string())?
                .into();
            let mut answer = last.to_le_bytes().to_vec();
            answer.push(u8::from(*ok));
            back.cast(answer)?;
        } else {
            let n = u64::from_le_bytes(msg[..8].try_into()?);
            *ok &= n == *last + 1;
            *last = n;
        }
        Ok(())
    }
}

/// Hands what arrives to the measuring task.
struct Back;
impl Actor for Back {
    type Msg = Vec<u8>;
    type State = mpsc::UnboundedSender<Vec<u8>>;
    type Arguments = mpsc::UnboundedSender<Vec<u8>>;
    async fn pre_start(
        &self,
        me: ActorRef<Vec<u8>>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(BACK_GROUP.to_string(), vec![me.get_cell()]);
        Ok(tx)
    }
    async fn handle(
        &self,
        _: ActorRef<Vec<u8>>,
        msg: Vec<u8>,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = tx.send(msg);
        Ok(())
    }
}

async fn node(name: &str, port: u16) -> Res<ActorRef<NodeServerMessage>> {
    let server = NodeServer::new(
        port,
        SECRET.to_string(),
        name.to_string(),
        "127.0.0.1".to_string(),
        None,
        None,
    );
    Ok(Actor::spawn(None, server, ()).await?.0)
}

async fn peer_ractor(port: u16) -> Res<()> {
    let _node = node("raw-b", port).await?;
    Actor::spawn(None, RawEcho, ()).await?;
    Actor::spawn(None, RawSink, ()).await?;
    println!("ready");
    until_stdin_closes().await;
    Ok(())
}

pub async fn ractor(s: &Sizes) -> Res<Vec<Measured>> {
    let (peer_port, my_port) = two_free_ports()?;
    let _peer = start_peer("ractor_cluster", peer_port).await?;
    let node = node("raw-a", my_port).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    Actor::spawn(None, Back, tx).await?;
    ractor_cluster::client_connect(&node, format!("127.0.0.1:{peer_port}")).await?;
    let echo: ActorRef<Vec<u8>> = remote_in(ECHO_GROUP).await?.into();
    let sink: ActorRef<Vec<u8>> = remote_in(SINK_GROUP).await?.into();
    let round_trip = |echo: &ActorRef<Vec<u8>>| echo.cast(Vec::new());
    for _ in 0..WARM_UP {
        round_trip(&echo)?;
        rx.recv().await.ok_or("back closed")?;
    }
    let mut rt = Vec::new();
    for _ in 0..s.reps {
        let t = Instant::now();
        for _ in 0..s.cluster_round_trips {
            round_trip(&echo)?;
            rx.recv().await.ok_or("back closed")?;
        }
        rt.push(ns_per(t.elapsed(), s.cluster_round_trips));
    }
    let n = s.cluster_casts;
    let t = Instant::now();
    for i in 1..=n {
        sink.cast(i.to_le_bytes().to_vec())?;
    }
    sink.cast(Vec::new())?;
    let answer = tokio::time::timeout(Duration::from_secs(120), rx.recv())
        .await?
        .ok_or("back closed")?;
    let took = t.elapsed();
    let count = u64::from_le_bytes(answer[..8].try_into()?);
    if count != n || answer[8] != 1 {
        return Err(format!("the raw sink saw {count} (in order: {})", answer[8]).into());
    }
    Ok(vec![
        Measured::reps("cluster_round_trip", "ns", rt).with("n", s.cluster_round_trips),
        Measured::once("cluster_one_way", "ns", ns_per(took, n))
            .with("n", n)
            .with("per_second", (n as f64 / took.as_secs_f64()).round()),
    ])
}
