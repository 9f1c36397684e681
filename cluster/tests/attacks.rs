//! A hostile peer against real Machine processes.
//!
//! The Machines run as child processes (see `support`); the attacker is a
//! raw ractor_cluster NodeServer inside this test process that joins with
//! the cluster's secret and casts hand-made frames (`variant "hv"`) to a
//! Machine's link actor, found through its process group. It encodes them
//! with a copy of the wire types of `src/frame.rs` (same fields, same
//! variant order): a version byte 3, then bincode 2 (standard, serde); a
//! batch is a u64 LE token, then repeated `[u32 LE length][envelope]`.
//! The node has a link actor of its own, so a Machine it dials sends it a
//! Hello with the token the node must show: its own voice gets through,
//! a frame claiming another Machine's name does not.
//!
//! Each test says what it attacks and what must hold. Twelve of them
//! failed on the first version of the cluster (a Machine's name in an
//! envelope was trusted, claims on Points were believed, family records
//! were taken from anyone); they are kept as the tests of the fixes.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyperverse_runtime::access::{Change, Privilege, Visitor};
use hyperverse_runtime::{Body, CrashNotice, DownReason, Kind, Point, Restart, Wave};
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use ractor_cluster::{NodeServer, NodeServerMessage};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use support::*;

/// Not a test: the child process the tests below start (see `support`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a Machine process for the cluster tests; they start it themselves"]
async fn machine_process() {
    if let Ok(spec) = std::env::var("HV_NODE") {
        support::machine_process(&spec).await;
    }
}

// ---------------------------------------------------------------------
// The wire, copied from src/frame.rs and src/family.rs (field and variant
// order matter: bincode encodes variants by index).
// ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Envelope {
    machine: String,
    epoch: u64,
    frame: Frame,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Frame {
    Data { stream: u64, seq: u64, item: Item },
    Ack { stream: u64, upto: u64 },
    Hello { stream: u64, upto: u64, token: u64 },
    Ping,
    Bye,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Item {
    Signal(Wave),
    Request {
        id: u64,
        wave: Wave,
    },
    Reply {
        id: u64,
        result: Result<Body, WireError>,
    },
    Hosted {
        points: Vec<Point>,
    },
    Ended {
        point: Point,
        reason: DownReason,
    },
    Spawn {
        id: u64,
        from: Point,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
    },
    Spawned {
        id: u64,
        result: Result<(), String>,
    },
    Adopted(Adoption),
    Crash {
        parent: Point,
        notice: CrashNotice,
    },
    Control {
        id: u64,
        from: Point,
        to: Point,
        body: Body,
    },
    Group {
        group: String,
        point: Point,
        joined: bool,
    },
    Groups(Vec<(String, Point)>),
    Link {
        from: Point,
        to: Point,
    },
    Unlink {
        from: Point,
        to: Point,
    },
    Exit {
        from: Point,
        to: Point,
        reason: String,
        normal: bool,
    },
    Rules(RulesPayload),
    Stop {
        id: u64,
        from: Point,
        point: Point,
    },
    Stopped {
        id: u64,
        result: Result<(), WireError>,
    },
}

/// What an `Item::Rules` carries: rule changes, or (to attack with) any
/// bytes at all in their place.
#[derive(Debug, Clone, PartialEq)]
enum RulesPayload {
    Changes(Vec<Change>),
    Raw(Vec<u8>),
}

impl Serialize for RulesPayload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        match self {
            RulesPayload::Changes(c) => c.serialize(s),
            // A tuple of bytes: bincode writes them as they are.
            RulesPayload::Raw(bytes) => {
                let mut t = s.serialize_tuple(bytes.len())?;
                for b in bytes {
                    t.serialize_element(b)?;
                }
                t.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for RulesPayload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Change>::deserialize(d).map(RulesPayload::Changes)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Adoption {
    parent: Point,
    child: Point,
    kind: Kind,
    args: Body,
    restart: Restart,
    by: Point,
}

#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum WireError {
    NoSuchParticle,
    Stopped,
    Crashed(String),
    Timeout(u64),
    LaneFull(u64),
    CallingSelf,
    MachineDown,
    BadMessage(String),
    BadReply(String),
    Forbidden(Point),
    MachineLost(String),
    Other(String),
    Denied {
        visitor: Visitor,
        privilege: Privilege,
    },
}

/// An envelope's bytes: the version byte, then bincode 2.
fn envelope(machine: &str, epoch: u64, frame: Frame) -> Vec<u8> {
    let env = Envelope {
        machine: machine.to_string(),
        epoch,
        frame,
    };
    let mut out = vec![3u8];
    out.extend(bincode::serde::encode_to_vec(&env, bincode::config::standard()).unwrap());
    out
}

fn decode_envelope(bytes: &[u8]) -> Option<Envelope> {
    let (&3, rest) = bytes.split_first()? else {
        return None;
    };
    let (env, used) =
        bincode::serde::decode_from_slice::<Envelope, _>(rest, bincode::config::standard()).ok()?;
    (used == rest.len()).then_some(env)
}

/// The token the Machine under attack gave the hostile node (one hostile
/// node at a time: see `one_at_a_time`).
static TOKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A batch under the hostile node's token: each envelope behind its u32
/// LE length.
fn batch(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = TOKEN
        .load(std::sync::atomic::Ordering::SeqCst)
        .to_le_bytes()
        .to_vec();
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

fn signal(from: &str, to: &str, method: &str, body: &str) -> Item {
    Item::Signal(Wave::signal(
        p(from),
        p(to),
        method.to_string(),
        body.to_string(),
    ))
}

fn notice(child: &str, reason: &str) -> CrashNotice {
    CrashNotice {
        child: p(child),
        kind: "watcher".into(),
        reason: reason.into(),
        restarts: 0,
        in_period: 0,
        star: 0,
        supervisor: None,
        gave_up: true,
        in_flight: None,
    }
}

// ---------------------------------------------------------------------
// The hostile node.
// ---------------------------------------------------------------------

/// A batch of bytes as a ractor message that crosses nodes ("hv").
struct Frames(Vec<u8>);

impl ractor::Message for Frames {
    fn serializable() -> bool {
        true
    }
    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(SerializedMessage::Cast {
            variant: "hv".into(),
            args: self.0,
            metadata: None,
        })
    }
    fn deserialize(m: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match m {
            SerializedMessage::Cast { variant, args, .. } if variant == "hv" => Ok(Frames(args)),
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// The hostile node's own link actor: what Machines send it, decoded.
struct Ear;

impl Actor for Ear {
    type Msg = Frames;
    type State = mpsc::UnboundedSender<Envelope>;
    type Arguments = (String, mpsc::UnboundedSender<Envelope>);

    async fn pre_start(
        &self,
        me: ActorRef<Frames>,
        (group, tx): (String, mpsc::UnboundedSender<Envelope>),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(group, vec![me.get_cell()]);
        Ok(tx)
    }

    async fn handle(
        &self,
        _: ActorRef<Frames>,
        Frames(bytes): Frames,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some((_token, mut rest)) = bytes.split_first_chunk::<8>() else {
            return Ok(());
        };
        while let Some((len, after)) = rest.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            if len > after.len() {
                break;
            }
            let (frame, next) = after.split_at(len);
            if let Some(env) = decode_envelope(frame) {
                let _ = tx.send(env);
            }
            rest = next;
        }
        Ok(())
    }
}

/// One hostile node at a time in this process: each NodeServer numbers
/// its sessions from 0, and the Machines (fresh processes alike) give
/// their link actors the same pids, so two live hostile nodes would
/// register remote actors under the same ids in ractor's global
/// registries and process groups. The tests run in parallel up to their
/// attack; the attacks take turns.
fn one_at_a_time() -> Arc<tokio::sync::Mutex<()>> {
    static LOCK: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
    LOCK.get_or_init(Arc::default).clone()
}

/// A raw ractor_cluster node with the cluster's secret.
struct Hostile {
    name: String,
    epoch: u64,
    stream: u64,
    /// The next sequence number per Machine (each counts our stream).
    seq: HashMap<String, u64>,
    node: ActorRef<NodeServerMessage>,
    links: HashMap<String, ActorCell>,
    heard: Option<mpsc::UnboundedReceiver<Envelope>>,
    ear: Option<ActorRef<Frames>>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Hostile {
    /// Starts the node named `name` with a link actor of its own (so that
    /// the Machines it dials give it its token); the second argument is
    /// kept for the tests' calls.
    async fn start_eared(name: &str, _ear: bool) -> Hostile {
        Self::start(name, true).await
    }

    /// Starts the node named `name`; with `ear`, it has a link actor of
    /// its own, so Machines open a wire to it and it hears their frames.
    async fn start(name: &str, ear: bool) -> Hostile {
        TOKEN.store(0, std::sync::atomic::Ordering::SeqCst);
        let turn = one_at_a_time().lock_owned().await;
        // What the last one left (a test that panicked kills its node
        // without waiting) has time to leave the registries.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let server = NodeServer::new(
            free_port(),
            "test-secret".into(),
            name.into(),
            "127.0.0.1".into(),
            None,
            None,
        )
        .with_listen_addr("127.0.0.1".parse().unwrap());
        let (node, _) = Actor::spawn(None, server, ()).await.unwrap();
        let (heard, ear) = if ear {
            let (tx, rx) = mpsc::unbounded_channel();
            let (ear, _) = Actor::spawn(None, Ear, (format!("hyperverse.link.{name}"), tx))
                .await
                .unwrap();
            (Some(rx), Some(ear))
        } else {
            (None, None)
        };
        let mut rng =
            Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64 ^ u64::from(std::process::id()));
        Hostile {
            name: name.into(),
            epoch: rng.next() >> 8,
            stream: rng.next() >> 8,
            seq: HashMap::new(),
            node,
            links: HashMap::new(),
            heard,
            ear,
            _turn: turn,
        }
    }

    /// Dials the Machine `machine` at `addr` and finds its link actor.
    async fn connect(&mut self, machine: &str, addr: &str) {
        ractor_cluster::client_connect(&self.node, addr)
            .await
            .unwrap_or_else(|e| panic!("dial {addr}: {e}"));
        let group = format!("hyperverse.link.{machine}");
        let start = Instant::now();
        loop {
            if let Some(cell) = ractor::pg::get_members(&group)
                .into_iter()
                .find(|c| !c.get_id().is_local())
            {
                self.links.insert(machine.into(), cell);
                // The Machine's Hello carries the token to show it.
                let m = machine.to_string();
                let token = self
                    .hear(Duration::from_secs(10), |env| match env.frame {
                        Frame::Hello { token, .. } if env.machine == m => Some(token),
                        _ => None,
                    })
                    .await
                    .unwrap_or_else(|| panic!("no Hello from {machine}"));
                TOKEN.store(token, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no link actor of {machine} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Casts raw bytes to `machine`'s link actor, as variant `variant`.
    fn cast_as(&self, machine: &str, variant: &str, args: Vec<u8>) {
        self.links[machine]
            .send_serialized(SerializedMessage::Cast {
                variant: variant.into(),
                args,
                metadata: None,
            })
            .unwrap_or_else(|_| panic!("the session to {machine} is gone"));
    }

    /// Casts one batch's bytes to `machine`.
    fn raw(&self, machine: &str, bytes: Vec<u8>) {
        self.cast_as(machine, "hv", bytes);
    }

    /// Numbered data frames of our own stream, under our own name.
    fn data(&mut self, machine: &str, items: Vec<Item>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for item in items {
            let seq = self.seq.entry(machine.into()).or_insert(0);
            *seq += 1;
            out.push(envelope(
                &self.name,
                self.epoch,
                Frame::Data {
                    stream: self.stream,
                    seq: *seq,
                    item,
                },
            ));
        }
        out
    }

    /// Sends `items` to `machine` as one batch, under our own name.
    fn send(&mut self, machine: &str, items: Vec<Item>) {
        let frames = self.data(machine, items);
        self.raw(machine, batch(&frames));
    }

    /// Waits for a frame from a Machine that `want` picks.
    async fn hear<T>(
        &mut self,
        within: Duration,
        mut want: impl FnMut(&Envelope) -> Option<T>,
    ) -> Option<T> {
        let rx = self.heard.as_mut().expect("a hostile node with an ear");
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(env)) => {
                    if let Some(t) = want(&env) {
                        return Some(t);
                    }
                }
                _ => return None,
            }
        }
    }

    /// Kills the node, its sessions and their remote actors, and waits.
    async fn stop(self) {
        if let Some(ear) = &self.ear {
            let _ = ear.kill_and_wait(Some(Duration::from_secs(5))).await;
        }
        let _ = self.node.kill_and_wait(Some(Duration::from_secs(5))).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // After `stop`, a no-op; after a panic, the node goes.
        if let Some(ear) = &self.ear {
            ear.kill();
        }
        self.node.kill();
    }
}

// ---------------------------------------------------------------------
// Honest Machines.
// ---------------------------------------------------------------------

/// Two honest Machines `<tag>-alpha` and `<tag>-beta` (beta dials
/// alpha); neither dials back whoever dials it (the hostile node listens,
/// but a second session to it would only add noise).
async fn pair(tag: &str) -> (Node, Node) {
    let mut a = NodeSpec::new(&format!("{tag}-alpha"));
    a.dial_back = false;
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut b = NodeSpec::new(&format!("{tag}-beta"));
    b.dial_back = false;
    b.seeds = vec![a_addr];
    let mut b = Node::start(b).await;
    assert_eq!(b.cmd("wait-peers 1 10000").await, "ok");
    assert_eq!(a.cmd("wait-peers 1 10000").await, "ok");
    (a, b)
}

/// One honest Machine `<tag>-alpha`.
async fn single(tag: &str) -> Node {
    let mut a = NodeSpec::new(&format!("{tag}-alpha"));
    a.dial_back = false;
    Node::start(a).await
}

/// Asks the sink at `sink` for its report until it has `want` waves (or
/// `within` passes).
async fn drain(node: &mut Node, sink: &str, want: u64, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let r = node.cmd(&format!("ask {sink} report -")).await;
        if report_counts(&r).0 >= want || start.elapsed() > within {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `node` `cmd` until its answer contains `want` (or `within`).
async fn until(node: &mut Node, cmd: &str, want: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let r = node.cmd(cmd).await;
        if r.contains(want) || start.elapsed() > within {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The resident memory of the Machine process listening on `addr`, in
/// KiB (found through its `HV_NODE` environment).
fn rss_kib(addr: &str) -> u64 {
    let needle = format!("listen={addr};");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let found = env
            .split(|b| *b == 0)
            .any(|kv| kv.starts_with(b"HV_NODE=") && String::from_utf8_lossy(kv).contains(&needle));
        if !found {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        return line.split_whitespace().nth(1).unwrap().parse().unwrap();
    }
    panic!("no Machine process listening on {addr}");
}

// ---------------------------------------------------------------------
// Attacks that must fail against the current code.
// ---------------------------------------------------------------------

/// Garbage on the link: empty casts, batches cut inside a length, lengths
/// past the end (u32::MAX among them), another version byte, an envelope
/// with trailing bytes, a string claiming 2 GiB, a big blob, another
/// variant name, and a thousand random blobs and mutated envelopes —
/// while an honest Machine streams 2,000 waves through the same link
/// actor. Nothing is lost or doubled, the Machine answers, and a valid
/// frame after all that is still handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_link_is_dropped_and_honest_traffic_is_untouched() {
    let (mut a, mut b) = pair("garb").await;
    let (alpha, beta) = ("garb-alpha", "garb-beta");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, format!("at {alpha}"));
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    let mut evil = Hostile::start_eared("garb-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    // The honest stream runs through the whole storm.
    assert_eq!(b.cmd("signal s0 go 2000 sink 5").await, "ok");

    let valid = envelope(
        "garb-evil",
        evil.epoch,
        Frame::Data {
            stream: evil.stream ^ 0xff,
            seq: 7,
            item: signal("garb-evil", "nowhere", "n", "1"),
        },
    );
    let mut casts: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2, 3],
        {
            let mut v = u32::MAX.to_le_bytes().to_vec();
            v.push(1);
            v
        },
        {
            let mut v = 10u32.to_le_bytes().to_vec();
            v.extend_from_slice(&[1, 2, 3]);
            v
        },
        batch(&[{
            let mut v = valid.clone();
            v[0] = 2;
            v
        }]),
        batch(&[{
            let mut v = valid.clone();
            v.push(0);
            v
        }]),
        batch(&[vec![]]),
        batch(&[vec![1]]),
        batch(&[vec![1, 0xfc, 0xff, 0xff, 0xff, 0x7f, b'x']]),
        // A Frame tag past the last variant.
        batch(&[{
            let mut v = envelope("garb-evil", evil.epoch, Frame::Ping);
            let n = v.len();
            v[n - 1] = 0x7f;
            v
        }]),
        // 4 MiB of noise behind a plausible length.
        batch(&[{
            let mut r = Rng(77);
            let mut v = vec![1u8];
            v.extend((0..4 << 20).map(|_| r.next() as u8));
            v
        }]),
    ];
    let mut r = Rng(0x5eed);
    for i in 0..1000 {
        if i % 2 == 0 {
            let len = (r.next() % 300) as usize;
            casts.push((0..len).map(|_| r.next() as u8).collect());
        } else {
            let mut v = valid.clone();
            for _ in 0..(1 + r.next() % 3) {
                let at = (r.next() as usize) % v.len();
                v[at] = r.next() as u8;
            }
            casts.push(batch(&[v]));
        }
    }
    for c in casts {
        evil.raw(alpha, c);
    }
    evil.cast_as(alpha, "not-hv", batch(std::slice::from_ref(&valid)));
    // A Call, not a Cast, of the right variant.
    let (tx, _rx) = ractor::concurrency::oneshot();
    let _ = evil.links[alpha].send_serialized(SerializedMessage::Call {
        variant: "hv".into(),
        args: batch(&[valid]),
        reply: tx.into(),
        metadata: None,
    });

    // A valid frame after the storm is handled (on a stream of its own).
    evil.stream ^= 0xabcd;
    evil.seq.clear();
    evil.send(
        alpha,
        vec![Item::Hosted {
            points: vec![p("garb-evil-thing")],
        }],
    );
    assert_eq!(
        a.cmd("wait-point garb-evil-thing 5000").await,
        "at garb-evil",
        "the link actor stopped handling frames"
    );
    let report = drain(&mut a, "sink", 2000, Duration::from_secs(20)).await;
    assert_eq!(report_counts(&report), (2000, 0), "{report}");
    assert!(report.contains("senders=s0=2000 "), "{report}");
    assert_eq!(b.cmd("ask echo-a ping still").await, "reply still");
    let peers = a.cmd("peers").await;
    assert!(peers.contains(beta), "{peers}");
    evil.stop().await;
}

/// Waves whose sender the hostile node does not host: one of beta's
/// particles, ROOT, alpha's own particle, alpha's and beta's names (their
/// root voices). All are dropped; a forged request is answered
/// `Forbidden`; the node's own voice goes through (the frames are right).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_senders_are_dropped_and_forged_requests_forbidden() {
    let (mut a, mut b) = pair("forge").await;
    let (alpha, beta, me) = ("forge-alpha", "forge-beta", "forge-evil");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    assert_eq!(a.cmd("wait-point s0 5000").await, format!("at {beta}"));
    let mut evil = Hostile::start(me, true).await;
    evil.connect(alpha, &a.addr).await;
    evil.send(
        alpha,
        vec![
            signal("s0", "sink", "n", "1"),
            signal("ROOT", "sink", "n", "1"),
            signal("echo-a", "sink", "n", "1"),
            signal(alpha, "sink", "n", "1"),
            signal(beta, "sink", "n", "1"),
            Item::Request {
                id: 77,
                wave: Wave::request(p("s0"), p("echo-a"), "ping", "forged".to_string()),
            },
            Item::Request {
                id: 78,
                wave: Wave::request(p(me), p("echo-a"), "ping", "mine".to_string()),
            },
            signal(me, "sink", "n", "1"),
        ],
    );
    let mut replies = HashMap::new();
    let heard = evil
        .hear(Duration::from_secs(10), |env| {
            if let Frame::Data {
                item: Item::Reply { id, result },
                ..
            } = &env.frame
            {
                replies.insert(*id, result.clone());
            }
            (replies.len() == 2).then_some(())
        })
        .await;
    assert!(heard.is_some(), "replies heard: {replies:?}");
    assert_eq!(replies[&77], Err(WireError::Forbidden(p("s0"))));
    assert_eq!(replies[&78], Ok(Body::from("mine")));
    // The honest signal came in the same frame as the requests, but its
    // delivery races the replies heard above: wait for it (a hang
    // detector), then check that it is all the sink got.
    let mut report = a.cmd("ask sink report -").await;
    let started = tokio::time::Instant::now();
    while report.starts_with("reply total=0") && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        report = a.cmd("ask sink report -").await;
    }
    assert_eq!(
        report,
        format!("reply total=1 bad=0 senders={me}=1 "),
        "a forged sender got through"
    );
    evil.stop().await;
}

/// Answers to request ids the hostile node never got, spawn results for
/// spawns it was never asked, acknowledgements of everything, and Ended
/// notices for Points it does not host (with a watcher on beta monitoring
/// alpha's particle): none touch the honest Machines' requests, records
/// or monitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_spawn_results_and_ends_it_does_not_own_are_ignored() {
    let (mut a, mut b) = pair("own").await;
    let (alpha, beta) = ("own-alpha", "own-beta");
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-b 5000").await, format!("at {beta}"));
    assert_eq!(b.cmd("wait-point echo-a 5000").await, format!("at {alpha}"));
    assert_eq!(b.cmd("spawn w watcher").await, "ok");
    assert_eq!(b.cmd("monitor w echo-a").await, "ok");
    let mut evil = Hostile::start_eared("own-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.connect(beta, &b.addr).await;
    // Requests in flight both ways.
    assert_eq!(a.cmd("ask-bg 1 echo-b sleep 1200").await, "ok");
    assert_eq!(b.cmd("ask-bg 2 echo-a sleep 1200").await, "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for m in [alpha, beta] {
        let mut items = Vec::new();
        for id in 0..=64 {
            items.push(Item::Reply {
                id,
                result: Ok(Body::from("forged")),
            });
            items.push(Item::Spawned { id, result: Ok(()) });
        }
        for point in ["echo-a", "echo-b", "w"] {
            items.push(Item::Ended {
                point: p(point),
                reason: DownReason::Killed,
            });
        }
        let mut frames = evil.data(m, items);
        frames.push(envelope(
            "own-evil",
            evil.epoch,
            Frame::Ack {
                stream: 1,
                upto: u64::MAX,
            },
        ));
        frames.push(envelope(
            "own-evil",
            evil.epoch,
            Frame::Hello {
                stream: u64::MAX,
                upto: u64::MAX,
                token: u64::MAX,
            },
        ));
        evil.raw(m, batch(&frames));
    }
    assert_eq!(a.cmd("result 1").await, "reply 1200");
    assert_eq!(b.cmd("result 2").await, "reply 1200");
    assert_eq!(b.cmd("ask w told -").await, "reply ", "a monitor fired");
    assert_eq!(
        b.cmd("locate echo-a").await,
        format!("at Some(\"{alpha}\")")
    );
    assert_eq!(a.cmd("locate echo-b").await, format!("at Some(\"{beta}\")"));
    assert_eq!(a.cmd("ask echo-b ping x").await, "reply x");
    // The monitor still fires for the real end.
    assert_eq!(a.cmd("stop echo-a").await, "ok");
    let told = until(&mut b, "ask w told -", "echo-a", Duration::from_secs(5)).await;
    assert_eq!(told, "reply echo-a Shutdown");
    evil.stop().await;
}

/// Crash notices from a node that hosts no child of the parent: for a
/// child that lives on beta, and for a child nobody hosts. Both are
/// dropped; the real child's notice still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_notices_for_children_it_does_not_host_are_dropped() {
    let (mut a, mut b) = pair("crash").await;
    let alpha = "crash-alpha";
    assert_eq!(a.cmd("place app watcher here").await, format!("at {alpha}"));
    assert_eq!(
        a.cmd("place app:b watcher on:crash-beta").await,
        "at crash-beta"
    );
    assert_eq!(b.cmd("wait-point app 5000").await, format!("at {alpha}"));
    let mut evil = Hostile::start_eared("crash-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.send(
        alpha,
        vec![
            Item::Crash {
                parent: p("app"),
                notice: notice("app:b", "forged-b"),
            },
            Item::Crash {
                parent: p("app"),
                notice: notice("app:ghost", "forged-ghost"),
            },
        ],
    );
    // The honest notice, after the forged ones on the same link actor.
    assert!(a.cmd("ask app:b crash -").await.contains("Crashed"));
    let told = until(
        &mut a,
        "ask app told -",
        "crash app:b",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(told, "reply crash app:b asked to crash gave_up=false");
    evil.stop().await;
}

/// An epoch-flip storm under the node's own name (3,000 "restarts", each
/// a loss of it and, as it has a wire, a fresh stream and a Hosted to
/// it), during 1,000 waves between the honest Machines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_flip_storm_of_its_own_disturbs_nobody_else() {
    let (mut a, mut b) = pair("storm").await;
    let alpha = "storm-alpha";
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, format!("at {alpha}"));
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    let mut evil = Hostile::start_eared("storm-evil", true).await;
    evil.connect(alpha, &a.addr).await;
    assert_eq!(b.cmd("signal s0 go 1000 sink 5").await, "ok");
    let started = Instant::now();
    for round in 0..6u64 {
        let frames: Vec<Vec<u8>> = (0..500u64)
            .map(|i| envelope("storm-evil", round * 1000 + i + 1, Frame::Ping))
            .collect();
        evil.raw(alpha, batch(&frames));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ask = Instant::now();
    assert_eq!(b.cmd("ask echo-a ping calm").await, "reply calm");
    println!(
        "storm sent in {:?}; an ask took {:?}",
        started.elapsed(),
        ask.elapsed()
    );
    let report = drain(&mut a, "sink", 1000, Duration::from_secs(20)).await;
    assert_eq!(report_counts(&report), (1000, 0), "{report}");
    // The node itself is still served once it settles on one epoch.
    evil.epoch = 424_242;
    evil.stream ^= 1;
    evil.seq.clear();
    evil.send(
        alpha,
        vec![Item::Hosted {
            points: vec![p("storm-evil-thing")],
        }],
    );
    assert_eq!(
        a.cmd("wait-point storm-evil-thing 5000").await,
        "at storm-evil"
    );
    evil.stop().await;
}

/// Collects `Spawned` answers heard into `got` until it has `want`.
async fn spawn_answers(
    evil: &mut Hostile,
    got: &mut HashMap<u64, Result<(), String>>,
    want: usize,
) {
    let heard = evil
        .hear(Duration::from_secs(10), |env| {
            if let Frame::Data {
                item: Item::Spawned { id, result },
                ..
            } = &env.frame
            {
                got.insert(*id, result.clone());
            }
            (got.len() == want).then_some(())
        })
        .await;
    assert!(heard.is_some(), "spawn answers: {got:?}");
}

/// A peer holding the secret is trusted to spawn: its `Spawn` items are
/// obeyed (reported, not a failure); a root Point or an unknown kind is
/// refused with a typed answer, and nothing breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_items_from_a_peer_are_obeyed_and_bad_ones_refused() {
    let mut a = single("spawn").await;
    let alpha = "spawn-alpha";
    let mut evil = Hostile::start_eared("spawn-evil", true).await;
    evil.connect(alpha, &a.addr).await;
    let spawn = |id, point: &str, kind: &str| Item::Spawn {
        id,
        from: p("spawn-evil"),
        point: p(point),
        kind: kind.into(),
        args: Body::empty(),
        restart: Restart::Permanent,
    };
    evil.send(
        alpha,
        vec![
            spawn(1, "made-by-evil", "echo"),
            spawn(2, "ROOT", "echo"),
            spawn(3, "other", "no-such-kind"),
            spawn(4, "orphan:child", "echo"),
        ],
    );
    let mut got = HashMap::new();
    spawn_answers(&mut evil, &mut got, 4).await;
    // Each Spawn item runs in a task of its own (no order among them):
    // the same Point again only once the first has started.
    evil.send(alpha, vec![spawn(5, "made-by-evil", "echo")]);
    spawn_answers(&mut evil, &mut got, 5).await;
    println!("spawn answers: {got:?}");
    assert_eq!(got[&1], Ok(()));
    for id in 2..=5 {
        assert!(got[&id].is_err(), "spawn {id}: {:?}", got[&id]);
    }
    assert_eq!(a.cmd("ask made-by-evil ping obeyed").await, "reply obeyed");
    evil.stop().await;
}

// ---------------------------------------------------------------------
// Bugs: these fail on the current code.
// ---------------------------------------------------------------------

/// Registry poisoning: the hostile node tells beta that it hosts `sink`,
/// which lives on alpha. The claim must wait (another live Machine holds
/// the Point): beta's waves still reach alpha's sink, and an `Ended` from
/// the claimant neither erases the Point nor fires beta's monitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_a_point_that_lives_elsewhere_does_not_divert_its_waves() {
    let (mut a, mut b) = pair("poison").await;
    let (alpha, beta) = ("poison-alpha", "poison-beta");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, format!("at {alpha}"));
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    assert_eq!(b.cmd("spawn w watcher").await, "ok");
    assert_eq!(b.cmd("monitor w sink").await, "ok");
    let mut evil = Hostile::start_eared("poison-evil", false).await;
    evil.connect(beta, &b.addr).await;
    evil.send(
        beta,
        vec![Item::Hosted {
            points: vec![p("sink")],
        }],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let located = b.cmd("locate sink").await;
    assert_eq!(b.cmd("signal s0 go 100 sink").await, "ok");
    let report = drain(&mut a, "sink", 100, Duration::from_secs(5)).await;
    evil.send(
        beta,
        vec![Item::Ended {
            point: p("sink"),
            reason: DownReason::Killed,
        }],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told = b.cmd("ask w told -").await;
    let after = b.cmd("locate sink").await;
    assert_eq!(
        (
            located.as_str(),
            report_counts(&report),
            told.as_str(),
            after.as_str()
        ),
        (
            format!("at Some(\"{alpha}\")").as_str(),
            (100, 0),
            "reply ",
            format!("at Some(\"{alpha}\")").as_str()
        ),
        "beta's view of alpha's sink was poisoned: {report}"
    );
    evil.stop().await;
}

/// A forged sender through a claim: the hostile node claims beta's
/// particle `s0` at alpha (`Hosted`), then sends a wave "from" it. The
/// claim must not be taken (beta holds s0), so the wave is dropped and
/// s0's real waves keep the sink's per-sender order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_another_machines_particle_does_not_let_a_peer_speak_as_it() {
    let (mut a, mut b) = pair("claim").await;
    let (alpha, beta) = ("claim-alpha", "claim-beta");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, format!("at {alpha}"));
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    assert_eq!(a.cmd("wait-point s0 5000").await, format!("at {beta}"));
    let mut evil = Hostile::start_eared("claim-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.send(
        alpha,
        vec![
            Item::Hosted {
                points: vec![p("s0")],
            },
            signal("s0", "sink", "n", "5"),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.cmd("signal s0 go 3 sink").await, "ok");
    let report = drain(&mut a, "sink", 3, Duration::from_secs(5)).await;
    assert_eq!(
        report_counts(&report),
        (3, 0),
        "a wave forged as s0 reached the sink: {report}"
    );
    evil.stop().await;
}

/// A Machine's own voice is the Point of its name. A node that joins
/// under the name of a particle (here `victim`, on alpha) must not speak
/// as that particle: the voice holds only while no particle lives at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_named_like_a_particle_does_not_speak_as_it() {
    let mut a = single("named").await;
    let alpha = "named-alpha";
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(a.cmd("spawn victim echo").await, "ok");
    // "victim" is also the hostile node's name (unique in this binary).
    let mut evil = Hostile::start_eared("victim", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.send(alpha, vec![signal("victim", "sink", "n", "1")]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = a.cmd("ask sink report -").await;
    assert_eq!(
        report_counts(&report),
        (0, 0),
        "a wave from node `victim` reached the sink as the particle victim: {report}"
    );
    evil.stop().await;
}

/// Impersonation: one data frame that *claims* to come from beta, on a
/// stream beta never used, with seq 1 (which would make alpha count a
/// new stream for beta and take every real frame of beta's as a gap).
/// It lacks the token alpha gave beta: dropped; the beta→alpha link
/// flows on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_claiming_another_machines_name_does_not_wedge_its_link() {
    let (mut a, mut b) = pair("wedge").await;
    let (alpha, beta) = ("wedge-alpha", "wedge-beta");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, format!("at {alpha}"));
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    assert_eq!(b.cmd("signal s0 go 50 sink").await, "ok");
    let report = drain(&mut a, "sink", 50, Duration::from_secs(5)).await;
    assert_eq!(report_counts(&report), (50, 0), "{report}");
    let mut evil = Hostile::start_eared("wedge-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.raw(
        alpha,
        batch(&[envelope(
            beta,
            42,
            Frame::Data {
                stream: 4242,
                seq: 1,
                item: Item::Hosted { points: vec![] },
            },
        )]),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.cmd("signal s0 go 50 sink").await, "ok");
    let report = drain(&mut a, "sink", 100, Duration::from_secs(5)).await;
    assert_eq!(
        report_counts(&report).0,
        100,
        "beta's waves no longer reach alpha after one forged frame: {report}"
    );
    evil.stop().await;
}

/// Impersonation, the quieter way: a heartbeat (`Ping`) claiming beta's
/// name with another epoch (which, believed, would declare beta
/// restarted: requests failed, app:b moved). Without beta's token it is
/// dropped: nothing of beta's is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_claiming_another_machines_name_does_not_lose_it() {
    let (mut a, mut b) = pair("flip").await;
    let (alpha, beta) = ("flip-alpha", "flip-beta");
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-b 5000").await, format!("at {beta}"));
    assert_eq!(a.cmd("place app watcher here").await, format!("at {alpha}"));
    assert_eq!(
        a.cmd("place app:b echo on:flip-beta").await,
        format!("at {beta}")
    );
    let mut evil = Hostile::start_eared("flip-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    assert_eq!(a.cmd("ask-bg 1 echo-b sleep 1500").await, "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    evil.raw(alpha, batch(&[envelope(beta, 42, Frame::Ping)]));
    let answer = a.cmd("result 1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let told = a.cmd("ask app told -").await;
    let located = a.cmd("locate app:b").await;
    assert_eq!(
        (answer.as_str(), told.as_str(), located.as_str()),
        (
            "reply 1500",
            "reply ",
            format!("at Some(\"{beta}\")").as_str()
        ),
        "one forged Ping made alpha lose beta"
    );
    evil.stop().await;
}

/// Impersonation with knowledge any peer has: beta's epoch is in every
/// frame it sends, and its streams are numbered consecutively, so beta's
/// stream to alpha can be guessed. Data frames claiming beta on it, seq
/// 1..=400, each a `Reply` to a small request id (which, believed, would
/// answer alpha's pending request with a forged body and make beta's own
/// frames duplicates). Without beta's token they are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_claiming_another_machines_name_are_not_taken() {
    let (mut a, mut b) = pair("reply").await;
    let (alpha, beta) = ("reply-alpha", "reply-beta");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, format!("at {alpha}"));
    assert_eq!(a.cmd("wait-point echo-b 5000").await, format!("at {beta}"));
    let mut evil = Hostile::start_eared("reply-evil", true).await;
    evil.connect(beta, &b.addr).await;
    // Heard before the next connect, whose wait for alpha's Hello passes
    // over other frames.
    let (epoch, stream) = evil
        .hear(Duration::from_secs(5), |env| match env.frame {
            Frame::Data { stream, .. } if env.machine == beta => Some((env.epoch, stream)),
            _ => None,
        })
        .await
        .expect("beta never spoke to the hostile node");
    evil.connect(alpha, &a.addr).await;
    assert_eq!(a.cmd("ask-bg 1 echo-b sleep 1500").await, "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frames: Vec<Vec<u8>> = (1..=400u64)
        .map(|seq| {
            envelope(
                beta,
                epoch,
                Frame::Data {
                    stream: stream - 1,
                    seq,
                    item: Item::Reply {
                        id: (seq - 1) % 64 + 1,
                        result: Ok(Body::from("forged")),
                    },
                },
            )
        })
        .collect();
    evil.raw(alpha, batch(&frames));
    let answer = a.cmd("result 1").await;
    assert_eq!(b.cmd("signal s0 go 20 sink").await, "ok");
    let report = drain(&mut a, "sink", 20, Duration::from_secs(4)).await;
    assert_eq!(
        (answer.as_str(), report_counts(&report)),
        ("reply 1500", (20, 0)),
        "frames forged as beta's were taken: {report}"
    );
    evil.stop().await;
}

/// `Ended` for a Point the sender does not host: beta hosts `app:b`, a
/// child of alpha's `app`; a hostile node tells beta "app ended". Only
/// its owner's end counts: beta keeps app:b.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_claimed_for_a_parent_it_does_not_host_stops_no_child() {
    let (mut a, mut b) = pair("orphan").await;
    let (alpha, beta) = ("orphan-alpha", "orphan-beta");
    assert_eq!(a.cmd("place app watcher here").await, format!("at {alpha}"));
    assert_eq!(
        a.cmd("place app:b watcher on:orphan-beta").await,
        format!("at {beta}")
    );
    let mut evil = Hostile::start_eared("orphan-evil", false).await;
    evil.connect(beta, &b.addr).await;
    evil.send(
        beta,
        vec![Item::Ended {
            point: p("app"),
            reason: DownReason::Shutdown,
        }],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.cmd("ask app:b told -").await,
        "reply ",
        "app:b was stopped on a forged end of its parent"
    );
    assert_eq!(a.cmd("ask app:b told -").await, "reply ");
    evil.stop().await;
}

/// A crash notice from a child the parent does not have: the hostile
/// node claims `app:fake`, then sends `app` a crash notice for it. A
/// notice is taken only for a child its Machine told us it hosts for
/// that parent: dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_notice_for_a_child_the_parent_does_not_have_is_dropped() {
    let mut a = single("fake").await;
    let alpha = "fake-alpha";
    assert_eq!(a.cmd("place app watcher here").await, format!("at {alpha}"));
    let mut evil = Hostile::start_eared("fake-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.send(
        alpha,
        vec![
            Item::Hosted {
                points: vec![p("app:fake")],
            },
            Item::Crash {
                parent: p("app"),
                notice: notice("app:fake", "forged"),
            },
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.cmd("ask app told -").await,
        "reply ",
        "app heard of a crash of a child it never had"
    );
    evil.stop().await;
}

/// A forged adoption: the hostile node says it hosts `app:b` (which
/// lives on beta) for alpha's `app`, then "restarts". Believed, alpha
/// would start a twin app:b; the adoption must be refused (app:b lives
/// on beta, which has the record), so nothing is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_claimed_for_another_machines_child_is_refused() {
    let (mut a, mut b) = pair("adopt").await;
    let (alpha, beta) = ("adopt-alpha", "adopt-beta");
    assert_eq!(a.cmd("place app watcher here").await, format!("at {alpha}"));
    assert_eq!(
        a.cmd("place app:b echo on:adopt-beta").await,
        format!("at {beta}")
    );
    let mut evil = Hostile::start_eared("adopt-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    evil.send(
        alpha,
        vec![Item::Adopted(Adoption {
            parent: p("app"),
            child: p("app:b"),
            kind: "echo".into(),
            args: Body::empty(),
            restart: Restart::Permanent,
            by: p("adopt-evil"),
        })],
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    evil.raw(
        alpha,
        batch(&[envelope("adopt-evil", evil.epoch + 1, Frame::Ping)]),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let located = a.cmd("locate app:b").await;
    let told = a.cmd("ask app told -").await;
    assert_eq!(b.cmd("ask app:b ping here").await, "reply here");
    assert_eq!(
        (located.as_str(), told.as_str()),
        (format!("at Some(\"{beta}\")").as_str(), "reply "),
        "a forged adoption put a twin of app:b on alpha"
    );
    evil.stop().await;
}

/// Phantom Machines: 100,000 heartbeats under 100,000 names no node has
/// a session under, then 5 spawns on alpha. No peer record is made for a
/// name written in an envelope, so nothing is kept for the phantoms and
/// alpha's memory stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phantom_machine_names_do_not_grow_a_machine_without_bound() {
    let mut a = single("phantom").await;
    let alpha = "phantom-alpha";
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    let mut evil = Hostile::start_eared("phantom-evil", false).await;
    evil.connect(alpha, &a.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(&a.addr);
    for chunk in 0..20u64 {
        let frames: Vec<Vec<u8>> = (0..5_000u64)
            .map(|i| envelope(&format!("ghost-{}", chunk * 5_000 + i), 1, Frame::Ping))
            .collect();
        evil.raw(alpha, batch(&frames));
    }
    assert_eq!(a.cmd("ask echo-a ping after").await, "reply after");
    for i in 0..5 {
        assert_eq!(a.cmd(&format!("spawn extra-{i} echo")).await, "ok");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(&a.addr);
    let grown = after.saturating_sub(before) / 1024;
    println!("alpha: {before} KiB before, {after} KiB after ({grown} MiB more)");
    // Only the node that has a session is a peer.
    assert_eq!(a.cmd("peers").await, "peers phantom-evil");
    assert!(
        grown < 24,
        "alpha grew by {grown} MiB for names that never connected"
    );
    evil.stop().await;
}

/// Registry integrity (honest path, and the one a peer's `Spawn` takes):
/// a Point that lives on beta may not be spawned again on alpha (one
/// particle per Point in the cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_that_lives_elsewhere_is_not_spawned_twice() {
    let (mut a, mut b) = pair("twin").await;
    let beta = "twin-beta";
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-b 5000").await, format!("at {beta}"));
    let placed = a.cmd("place echo-b echo here").await;
    assert!(
        placed.starts_with("err"),
        "echo-b, on {beta}, was spawned again: {placed}"
    );
}

/// Rule changes from a peer (which replicate the access rules): bytes in
/// their place that are not rule changes (none, a length that is not
/// one, a count of 2^64, a variant past the last, a Point that is not
/// one) are dropped; an item with more changes than a Machine ever sends
/// in one is refused whole; changes the rules refuse (a group in a group,
/// an empty group name) are refused alone, and the valid one beside them
/// applies. Nothing crashes and the link goes on. A stop it asks as a
/// particle it does not host is `Forbidden`; as itself, judged by the
/// rules (`Denied`: stopping takes a grant, even with the open policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_rule_changes_are_refused_and_the_machine_goes_on() {
    let mut a = single("rulz").await;
    let alpha = "rulz-alpha";
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    let mut evil = Hostile::start_eared("rulz-evil", true).await;
    evil.connect(alpha, &a.addr).await;

    // Frames that do not decode take no number: each goes as the next.
    let next = evil.seq.get(alpha).copied().unwrap_or(0) + 1;
    let raw = |bytes: Vec<u8>| {
        envelope(
            "rulz-evil",
            evil.epoch,
            Frame::Data {
                stream: evil.stream,
                seq: next,
                item: Item::Rules(RulesPayload::Raw(bytes)),
            },
        )
    };
    let garbage = vec![
        raw(vec![]),
        raw(vec![0xff; 16]),
        raw({
            let mut v = vec![253];
            v.extend(u64::MAX.to_le_bytes());
            v
        }),
        raw(vec![1, 9]),
        raw(vec![1, 0, 3, b'a', b':', b':']),
    ];
    evil.raw(alpha, batch(&garbage));

    let grant = |text: &str| Change::Grant(text.parse().unwrap());
    let too_many = vec![grant("send on too-many to machine=rulz-evil"); 1025];
    let mixed = vec![
        Change::Join {
            group: "g".into(),
            member: hyperverse_runtime::access::Visitors::Group("g".into()),
        },
        Change::Join {
            group: "".into(),
            member: hyperverse_runtime::access::Visitors::Anyone,
        },
        grant("ask on echo-a to machine=rulz-evil"),
    ];
    evil.send(
        alpha,
        vec![
            Item::Rules(RulesPayload::Changes(too_many)),
            Item::Rules(RulesPayload::Changes(mixed)),
            Item::Stop {
                id: 1,
                from: p("echo-a"),
                point: p("echo-a"),
            },
            Item::Stop {
                id: 2,
                from: p("rulz-evil"),
                point: p("echo-a"),
            },
        ],
    );
    let mut got = HashMap::new();
    let heard = evil
        .hear(Duration::from_secs(10), |env| {
            if let Frame::Data {
                item: Item::Stopped { id, result },
                ..
            } = &env.frame
            {
                got.insert(*id, result.clone());
            }
            (got.len() == 2).then_some(())
        })
        .await;
    assert!(heard.is_some(), "stop answers: {got:?}");
    assert_eq!(got[&1], Err(WireError::Forbidden(p("echo-a"))));
    assert_eq!(
        got[&2],
        Err(WireError::Denied {
            visitor: Visitor::Machine("rulz-evil".into()),
            privilege: Privilege::Stop,
        })
    );
    assert_eq!(
        a.cmd("rules").await,
        "rules ask on echo-a to machine=rulz-evil"
    );
    assert_eq!(a.cmd("ask echo-a ping still").await, "reply still");
    let stats = a.cmd("access-stats").await;
    assert_eq!(stat(&stats, "actions"), 1, "{stats}");
    evil.stop().await;
}
