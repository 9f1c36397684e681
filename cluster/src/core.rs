//! The cluster's state on one Machine: its peers and their links, where
//! every Point lives, and the requests waiting for answers from peers.
//!
//! It knows nothing of sockets: a transport hands it each peer's session
//! as a [`Wire`] and the bytes that arrive, and it implements the
//! runtime's [`Remote`] seam. That keeps the numbering, the location map
//! and the loss of a Machine testable without a network.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyperverse_runtime::remote::{Answerer, Remote};
use hyperverse_runtime::{
    Body, CrashNotice, DownNotice, DownReason, ExitSignal, Inbound, MonitorRef, Point, Wave,
    WaveError,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, oneshot, Notify};

use crate::frame::{Envelope, Frame, Item, WireError};
use crate::link::{Accept, Inbox, Outbox};
use crate::ClusterEvent;

/// How long a request from a peer may run here before it is answered
/// `Timeout` (the asker's own deadline is usually shorter).
pub(crate) const REMOTE_ANSWER_WITHIN: Duration = Duration::from_secs(60);
/// The most bytes kept for one peer, unacknowledged, before sends to it
/// are refused (a peer that never acknowledges cannot grow this Machine
/// without bound).
pub(crate) const MAX_UNACKED_BYTES: usize = 256 * 1024 * 1024;
/// With frames unacknowledged this long on a live session, they are sent
/// again (a safety net: in-session loss should not happen).
const RESEND_AFTER: Duration = Duration::from_secs(5);

/// One peer's session: bytes out, in order.
pub(crate) trait Wire: Send + Sync + 'static {
    /// Sends a batch of envelopes (see [`crate::frame::batch_push`]);
    /// false if the session is gone.
    fn send(&self, batch: Vec<u8>) -> bool;
    /// Which session this is (a peer may have had others before).
    fn id(&self) -> u64;
    /// Ends the session (the peer went silent on it).
    fn close(&self);
}

/// How often a live session carries a heartbeat when nothing else goes.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// A frame emitted this long after the last one goes at once, alone; one
/// that follows closer (a burst: one sender streaming) is batched with
/// those that follow, and the batch goes when the writer task runs. One
/// ractor_cluster message costs microseconds whatever it carries: in a
/// burst, a batch carries many frames for the cost of one. Requests and
/// replies, which come tens of microseconds apart, go at once and pay no
/// wake-up of the writer.
const IDLE: Duration = Duration::from_micros(5);
/// The largest batch assembled before it goes at once.
const MAX_BATCH: usize = 256 * 1024;

struct Peer {
    epoch: Option<u64>,
    out: Outbox,
    inbox: Inbox,
    wire: Option<Arc<dyn Wire>>,
    down_since: Option<Instant>,
    points: HashSet<Point>,
    ack_due: bool,
    acked_at: Instant,
    heard_at: Instant,
    said_at: Instant,
    /// Frames waiting for the writer, as one batch.
    batch: Vec<u8>,
    /// When a batch last went.
    emitted_at: Instant,
    /// The token this Machine gave the peer (in its Hello on each
    /// session): its envelopes must carry it.
    issued: u64,
    /// The token the peer gave this Machine: carried in every envelope.
    presented: u64,
    /// The peer's Hello for the current session is still awaited (one is
    /// taken per session, the first).
    awaiting_hello: bool,
}

impl Peer {
    fn new(stream: u64) -> Self {
        Peer {
            epoch: None,
            out: Outbox::new(stream),
            inbox: Inbox::default(),
            wire: None,
            down_since: None,
            points: HashSet::new(),
            ack_due: false,
            acked_at: Instant::now(),
            heard_at: Instant::now(),
            said_at: Instant::now(),
            batch: Vec::new(),
            emitted_at: Instant::now(),
            issued: 0,
            presented: 0,
            awaiting_hello: false,
        }
    }

    /// Puts one envelope on the wire: at once on an idle link, else into
    /// the batch the writer sends (woken through `writer`). Under this
    /// peer's lock, like every send, so frames go in the order emitted.
    fn emit(&mut self, frame: &[u8], writer: &Notify) {
        let Some(wire) = &self.wire else {
            return;
        };
        let now = Instant::now();
        if self.batch.is_empty() && now.duration_since(self.emitted_at) > IDLE {
            let mut one = Vec::with_capacity(frame.len() + 12);
            crate::frame::batch_start(&mut one, self.presented);
            crate::frame::batch_push(&mut one, frame);
            wire.send(one);
            self.emitted_at = now;
            return;
        }
        if self.batch.is_empty() {
            writer.notify_one();
            crate::frame::batch_start(&mut self.batch, self.presented);
        }
        crate::frame::batch_push(&mut self.batch, frame);
        if self.batch.len() >= MAX_BATCH {
            self.flush();
        }
    }

    /// Sends the batch, if any.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if let Some(wire) = &self.wire {
            wire.send(batch);
        }
        self.emitted_at = Instant::now();
    }

    fn resend(&mut self, writer: &Notify) {
        let unacked: Vec<Arc<[u8]>> = self.out.unacked().cloned().collect();
        for b in unacked {
            self.emit(&b, writer);
        }
        self.acked_at = Instant::now();
    }
}

type SpawnTx = oneshot::Sender<Result<(), String>>;

/// A peer's Hello, taken when its session is up.
struct Hello {
    #[allow(dead_code)]
    epoch: u64,
    stream: u64,
    upto: u64,
    token: u64,
}

struct Pending {
    machine: String,
    to: Point,
    answer: Answerer,
}

/// The cluster's state on this Machine.
pub(crate) struct Core {
    pub(crate) me: String,
    me_point: Point,
    pub(crate) epoch: u64,
    lost_after: Duration,
    peers: RwLock<HashMap<String, Arc<Mutex<Peer>>>>,
    locations: RwLock<HashMap<Point, String>>,
    pending: Mutex<HashMap<u64, Pending>>,
    /// Parents and children on different Machines.
    pub(crate) family: crate::family::Family,
    /// Claims on Points another Machine still holds, waiting for its end.
    claims: Mutex<HashMap<Point, String>>,
    /// Spawns asked of peers, waiting for their answers.
    spawns: Mutex<HashMap<u64, (String, SpawnTx)>>,
    /// Named groups across Machines.
    pub(crate) groups: crate::groups::Groups,
    /// Links of local particles with remote ones.
    pub(crate) links: crate::links::Links,
    /// Monitors of local particles on remote ones: target, then watchers.
    monitors: Mutex<HashMap<Point, Vec<(Point, MonitorRef)>>>,
    /// How many of those each local watcher set (taken after `monitors`).
    watchers: Mutex<HashMap<Point, usize>>,
    next_id: AtomicU64,
    next_stream: AtomicU64,
    pub(crate) inbound: OnceLock<Inbound>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    /// Wakes the writer task when a batch starts.
    pub(crate) writer: Notify,
    /// Hellos from peers whose sessions this side has not seen up yet.
    early_hellos: Mutex<HashMap<String, Hello>>,
    /// Set once this Machine leaves: nothing more is sent or taken.
    leaving: std::sync::atomic::AtomicBool,
}

/// A fresh random-enough number: a process's epoch, a stream's start.
pub(crate) fn fresh_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Core {
    pub(crate) fn new(me: &str, lost_after: Duration, runtime: tokio::runtime::Handle) -> Self {
        Core {
            me: me.to_string(),
            me_point: Point::parse(me).unwrap_or_else(|_| Point::root()),
            epoch: fresh_u64(),
            lost_after,
            peers: RwLock::new(HashMap::new()),
            locations: RwLock::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            monitors: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            family: crate::family::Family::default(),
            claims: Mutex::new(HashMap::new()),
            links: crate::links::Links::default(),
            groups: crate::groups::Groups::default(),
            spawns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_stream: AtomicU64::new(fresh_u64() >> 16),
            inbound: OnceLock::new(),
            runtime,
            events: broadcast::channel(1024).0,
            writer: Notify::new(),
            leaving: std::sync::atomic::AtomicBool::new(false),
            early_hellos: Mutex::new(HashMap::new()),
        }
    }

    fn stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// The peer `name`, if a session with it ever came up: no record is
    /// made for a name only written in an envelope.
    fn known(&self, name: &str) -> Option<Arc<Mutex<Peer>>> {
        self.peers.read().get(name).cloned()
    }

    /// The peer `name`, made if new: only for a session that came up.
    fn peer(&self, name: &str) -> Arc<Mutex<Peer>> {
        if let Some(p) = self.peers.read().get(name) {
            return p.clone();
        }
        self.peers
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Peer::new(self.stream()))))
            .clone()
    }

    /// The Machines this one has a live session with, sorted.
    pub(crate) fn connected(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .peers
            .read()
            .iter()
            .filter(|(_, p)| p.lock().wire.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// A spawn asked of `machine`: its id, and where its answer comes.
    pub(crate) fn expect_spawn(
        &self,
        machine: &str,
    ) -> (u64, oneshot::Receiver<Result<(), String>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.spawns.lock().insert(id, (machine.to_string(), tx));
        (id, rx)
    }

    /// A spawn no longer waited for.
    pub(crate) fn forget_spawn(&self, id: u64) {
        self.spawns.lock().remove(&id);
    }

    /// How many particles `machine` hosts, as far as this one knows.
    pub(crate) fn load(&self, machine: &str) -> usize {
        if machine == self.me {
            return self.inbound.get().map_or(0, |i| i.particles());
        }
        self.peers
            .read()
            .get(machine)
            .map_or(usize::MAX, |p| p.lock().points.len())
    }

    /// Every Point at or under `root`, here and on the peers, sorted.
    pub(crate) fn subtree(&self, root: &Point) -> Vec<Point> {
        let mut all: Vec<Point> = self
            .inbound
            .get()
            .map(|i| i.hosted())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| root.contains(p))
            .collect();
        all.extend(
            self.locations
                .read()
                .keys()
                .filter(|p| root.contains(p))
                .cloned(),
        );
        all.sort();
        all.dedup();
        all
    }

    /// Which Machine hosts `point`, as far as this one knows.
    pub(crate) fn locate(&self, point: &Point) -> Option<String> {
        if self.inbound.get().is_some_and(|i| i.hosts(point)) {
            return Some(self.me.clone());
        }
        self.locations.read().get(point).cloned()
    }

    /// Numbers `item`, keeps it and sends it to `machine`.
    pub(crate) fn send(&self, machine: &str, item: Item) -> Result<(), WaveError> {
        if self.leaving.load(Ordering::Acquire) {
            return Err(WaveError::NoSuchParticle {
                point: Point::parse(machine).unwrap_or_else(|_| Point::root()),
            });
        }
        let Some(peer) = self.known(machine) else {
            return Err(WaveError::NoSuchParticle {
                point: Point::parse(machine).unwrap_or_else(|_| Point::root()),
            });
        };
        let mut p = peer.lock();
        self.send_to(&mut p, machine, item)
    }

    /// [`Core::send`] under the peer's lock (held by the caller, so that
    /// what it read to make `item` cannot change before `item` is
    /// numbered).
    fn send_to(&self, p: &mut Peer, machine: &str, item: Item) -> Result<(), WaveError> {
        if p.out.bytes() > MAX_UNACKED_BYTES {
            return Err(WaveError::LaneFull {
                point: Point::parse(machine).unwrap_or_else(|_| Point::root()),
                capacity: p.out.len(),
            });
        }
        let seq = p.out.next_seq();
        let env = Envelope {
            machine: self.me.clone(),
            epoch: self.epoch,
            frame: Frame::Data {
                stream: p.out.stream,
                seq,
                item,
            },
        };
        let bytes: Arc<[u8]> = match env.encode() {
            Ok(b) => b.into(),
            Err(e) => {
                p.out.unnumber(seq);
                return Err(WaveError::BadMessage {
                    point: Point::root(),
                    error: e,
                });
            }
        };
        if bytes.len() > crate::frame::MAX_FRAME {
            // It would end the session at the peer (and again at each
            // resend): refused here, with its number given back.
            p.out.unnumber(seq);
            return Err(WaveError::BadMessage {
                point: Point::root(),
                error: hyperverse_runtime::CodecError::Encode(format!(
                    "a frame of {} bytes (the most is {})",
                    bytes.len(),
                    crate::frame::MAX_FRAME
                )),
            });
        }
        if p.out.len() == 0 {
            // The resend clock starts with the oldest frame unacknowledged,
            // not at the last ack (which may be long ago on an idle link).
            p.acked_at = Instant::now();
        }
        p.emit(&bytes, &self.writer);
        p.out.keep(seq, bytes);
        Ok(())
    }

    /// Sends `machine` this Machine's Points and groups, as they are:
    /// read and numbered under the peer's lock, so that an end told
    /// meanwhile goes after the snapshot that still lists it, never
    /// before.
    fn send_snapshot(&self, machine: &str) {
        let Some(peer) = self.known(machine) else {
            return;
        };
        let mut p = peer.lock();
        let points = self.inbound.get().map(|i| i.hosted()).unwrap_or_default();
        let _ = self.send_to(&mut p, machine, Item::Hosted { points });
        let groups = self.local_memberships();
        let _ = self.send_to(&mut p, machine, Item::Groups(groups));
    }

    /// Emits an unnumbered frame (an ack, a hello, a heartbeat): lost
    /// with its session, and sent again by the next tick if need be.
    fn send_control(&self, p: &mut Peer, frame: Frame) {
        let env = Envelope {
            machine: self.me.clone(),
            epoch: self.epoch,
            frame,
        };
        if let Ok(b) = env.encode() {
            p.emit(&b, &self.writer);
        }
    }

    /// This Machine leaves: every peer is told (and its batch sent), then
    /// declared lost here, so that nothing more is sent to it.
    pub(crate) fn leave(self: &Arc<Self>) {
        self.leaving.store(true, Ordering::Release);
        let peers: Vec<(String, Arc<Mutex<Peer>>)> = self
            .peers
            .read()
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        for (_, peer) in &peers {
            let mut p = peer.lock();
            self.send_control(&mut p, Frame::Bye);
            p.flush();
            p.wire = None;
        }
        for (name, _) in peers {
            self.lose(&name, Loss::Left);
        }
    }

    /// Answers request `id` of `machine`; a reply that cannot go (too
    /// large, the link full) is answered with why, so that its asker does
    /// not wait for ever.
    fn reply(&self, machine: &str, id: u64, result: Result<Body, WireError>) {
        if let Err(e) = self.send(machine, Item::Reply { id, result }) {
            let why = WireError::BadReply(format!("the reply could not be sent: {e}"));
            let _ = self.send(
                machine,
                Item::Reply {
                    id,
                    result: Err(why),
                },
            );
        }
    }

    /// Sends every peer's batch: the writer task's work.
    pub(crate) fn flush(&self) {
        for peer in self.peers.read().values() {
            peer.lock().flush();
        }
    }

    /// Sends an item to every peer (a record of this Machine's).
    pub(crate) fn broadcast(&self, item: impl Fn() -> Item) {
        let peers: Vec<String> = self.peers.read().keys().cloned().collect();
        for machine in peers {
            let _ = self.send(&machine, item());
        }
    }

    /// A session with `machine` is up: tell it what we have of its
    /// stream, send again what it may lack of ours, and all our Points.
    pub(crate) fn connected_to(&self, machine: &str, wire: Arc<dyn Wire>) {
        if machine == self.me {
            return;
        }
        let peer = self.peer(machine);
        {
            let mut p = peer.lock();
            // What was batched for the old session goes with it (its data
            // frames are resent below).
            p.batch.clear();
            p.wire = Some(wire);
            p.down_since = None;
            p.heard_at = Instant::now();
            // The token this peer must show: made once (kept across its
            // sessions and incarnations, so that two sessions up at once,
            // as ractor_cluster's election may bring, agree), and given
            // over the session, which nobody else reads.
            if p.issued == 0 {
                p.issued = fresh_u64() | 1;
            }
            p.awaiting_hello = true;
            let hello = Frame::Hello {
                stream: p.inbox.stream,
                upto: p.inbox.upto,
                token: p.issued,
            };
            self.send_control(&mut p, hello);
            if let Some(early) = self.early_hellos.lock().remove(machine) {
                // Its Hello came before this side saw the session.
                self.take_hello(&mut p, early);
            }
        }
        self.send_snapshot(machine);
        tracing::info!(target: "hyperverse::cluster", peer = machine, "session up");
        let _ = self.events.send(ClusterEvent::Up(machine.to_string()));
    }

    /// The session with `machine` dropped: keep what it has not
    /// acknowledged, and wait `lost_after` for it to come back.
    /// `session` names the session that ended: another, newer one of the
    /// same peer stays up (ractor_cluster elects one of two simultaneous
    /// connections and drops the other).
    pub(crate) fn disconnected_from(&self, machine: &str, session: Option<u64>) {
        let Some(peer) = self.peers.read().get(machine).cloned() else {
            return;
        };
        let mut p = peer.lock();
        if session.is_some_and(|id| p.wire.as_ref().is_some_and(|w| w.id() != id)) {
            return;
        }
        if let Some(wire) = p.wire.take() {
            wire.close();
            p.down_since = Some(Instant::now());
            tracing::warn!(target: "hyperverse::cluster", peer = machine, "session down");
            let _ = self.events.send(ClusterEvent::Down(machine.to_string()));
        }
    }

    /// A batch from a peer's session: its frames, in order. Bytes that do
    /// not split into frames end the batch (what came before stands).
    pub(crate) fn receive_batch(self: &Arc<Self>, batch: &[u8]) {
        let Some((token, frames)) = crate::frame::batch_open(batch) else {
            return;
        };
        for frame in frames {
            match frame {
                Ok(f) => self.receive(f, token),
                Err(e) => {
                    tracing::warn!(target: "hyperverse::cluster", error = %e, "a malformed batch: the rest dropped");
                    return;
                }
            }
        }
    }

    /// One envelope's bytes from a peer's session.
    pub(crate) fn receive(self: &Arc<Self>, bytes: &[u8], token: u64) {
        let env = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "hyperverse::cluster", error = %e, "undecodable frame dropped");
                return;
            }
        };
        if env.machine == self.me || self.leaving.load(Ordering::Acquire) {
            return;
        }
        let Some(peer) = self.known(&env.machine) else {
            if let Frame::Hello {
                stream,
                upto,
                token,
            } = env.frame
            {
                // A peer whose session this side has not seen up yet: its
                // Hello waits (a few, the first per name).
                let mut early = self.early_hellos.lock();
                if early.len() < 64 {
                    early.entry(env.machine).or_insert(Hello {
                        epoch: env.epoch,
                        stream,
                        upto,
                        token,
                    });
                }
            }
            return;
        };
        if let Frame::Hello {
            stream,
            upto,
            token,
        } = env.frame
        {
            let hello = Hello {
                epoch: env.epoch,
                stream,
                upto,
                token,
            };
            let mut p = peer.lock();
            if p.awaiting_hello {
                self.take_hello(&mut p, hello);
            } else {
                // A new session's Hello that came before this side saw the
                // session: kept (the latest) for when it does.
                drop(p);
                self.early_hellos.lock().insert(env.machine, hello);
            }
            return;
        }
        {
            let p = peer.lock();
            if p.issued == 0 || token != p.issued {
                drop(p);
                tracing::debug!(target: "hyperverse::cluster", peer = %env.machine, "an envelope without its session's token: dropped");
                return;
            }
        }
        let item = {
            let mut p = peer.lock();
            let mut restarted = false;
            if let Some(old) = p.epoch.filter(|e| *e != env.epoch) {
                // The peer restarted: its old particles are gone.
                drop(p);
                tracing::warn!(target: "hyperverse::cluster", peer = %env.machine, old, new = env.epoch, "peer restarted");
                self.lose(&env.machine, Loss::Restarted);
                p = peer.lock();
                restarted = true;
            }
            p.epoch = Some(env.epoch);
            p.heard_at = Instant::now();
            if let Frame::Data { stream, seq, .. } = &env.frame {
                if !restarted && p.inbox.restarts(*stream, *seq) {
                    // The same incarnation began a new stream to us: it
                    // declared this Machine lost. Its view holds: our
                    // records of it go too (it dropped what it kept for
                    // us, and restarts the children we hosted for it).
                    drop(p);
                    tracing::warn!(target: "hyperverse::cluster", peer = %env.machine, "the peer declared this machine lost");
                    self.lose(&env.machine, Loss::DeclaredUs);
                    p = peer.lock();
                }
            }
            match env.frame {
                Frame::Ping => return,
                Frame::Bye => {
                    drop(p);
                    self.lose(&env.machine, Loss::Left);
                    return;
                }
                Frame::Data { stream, seq, item } => match p.inbox.take(stream, seq) {
                    Accept::Deliver => {
                        p.ack_due = true;
                        item
                    }
                    Accept::Duplicate | Accept::Gap => return,
                },
                Frame::Ack { stream, upto } => {
                    if stream == p.out.stream {
                        p.out.ack(upto);
                        p.acked_at = Instant::now();
                    }
                    return;
                }
                Frame::Hello { .. } => return,
            }
        };
        self.handle(&env.machine, item);
    }

    /// Takes the peer's Hello for this session: the token to present,
    /// what it has of our stream (the rest is sent again). An epoch other
    /// than the one known is a restart, handled when its data comes.
    fn take_hello(&self, p: &mut Peer, hello: Hello) {
        p.awaiting_hello = false;
        p.presented = hello.token;
        // A batch begun under the old token would be dropped: its data
        // frames are sent again below, under the new one.
        p.batch.clear();
        if hello.stream == p.out.stream {
            p.out.ack(hello.upto);
        }
        p.resend(&self.writer);
    }

    /// Drops the monitors the local particle at `watcher` set on remote
    /// ones (its incarnation ended).
    pub(crate) fn forget_watcher(&self, watcher: &Point) {
        let mut monitors = self.monitors.lock();
        if self.watchers.lock().remove(watcher).is_none() {
            return;
        }
        monitors.retain(|_, list| {
            list.retain(|(w, _)| w != watcher);
            !list.is_empty()
        });
    }

    /// `point` is free again: a claim that waited for it takes it.
    fn promote_claim(&self, point: &Point) {
        let Some(claimant) = self.claims.lock().remove(point) else {
            return;
        };
        if let Some(peer) = self.known(&claimant) {
            let mut p = peer.lock();
            if p.wire.is_some() {
                self.locations
                    .write()
                    .insert(point.clone(), claimant.clone());
                p.points.insert(point.clone());
            }
        }
    }

    /// Whether `machine` may send as `from`: its own name, or a Point it
    /// hosts (its records arrive on the same ordered link before any wave
    /// its particles send, so this is exact, not stale).
    fn may_send_as(&self, machine: &str, from: &Point) -> bool {
        // Its own voice is its name, unless a particle lives at that Point
        // (it would speak as that particle).
        (from.to_string() == machine && self.locate(from).is_none())
            || self
                .locations
                .read()
                .get(from)
                .is_some_and(|m| m == machine)
    }

    fn handle(self: &Arc<Self>, machine: &str, item: Item) {
        let Some(inbound) = self.inbound.get() else {
            return;
        };
        match item {
            Item::Signal(w) => {
                if !self.may_send_as(machine, &w.from) {
                    tracing::warn!(target: "hyperverse::cluster", peer = machine, from = %w.from, "forged sender: wave dropped");
                    return;
                }
                if let Err(e) = inbound.signal(w) {
                    tracing::debug!(target: "hyperverse::cluster", peer = machine, error = %e, "remote signal refused");
                }
            }
            Item::Request { id, wave } => {
                if !self.may_send_as(machine, &wave.from) {
                    let e = WireError::Forbidden(wave.from.clone());
                    let _ = self.send(machine, Item::Reply { id, result: Err(e) });
                    return;
                }
                let ask = inbound.ask(wave, Some(REMOTE_ANSWER_WITHIN));
                let core = self.clone();
                let machine = machine.to_string();
                self.runtime.spawn(async move {
                    let result = ask.await.map_err(|e| WireError::from_wave(&e));
                    core.reply(&machine, id, result);
                });
            }
            Item::Control { id, from, to, body } => {
                if !self.may_send_as(machine, &from) {
                    let e = WireError::Forbidden(from);
                    let _ = self.send(machine, Item::Reply { id, result: Err(e) });
                    return;
                }
                let answer = inbound.control(from, &to, body);
                let core = self.clone();
                let machine = machine.to_string();
                self.runtime.spawn(async move {
                    let result = answer.await.map_err(|e| WireError::from_wave(&e));
                    core.reply(&machine, id, result);
                });
            }
            Item::Reply { id, result } => {
                let mut pending = self.pending.lock();
                if pending.get(&id).is_some_and(|p| p.machine == machine) {
                    let p = pending.remove(&id).expect("checked");
                    drop(pending);
                    p.answer.answer(result.map_err(|e| e.into_wave(p.to)));
                }
            }
            Item::Hosted { points } => {
                let peer = self.peer(machine);
                let mut p = peer.lock();
                let mut loc = self.locations.write();
                for point in points {
                    if inbound.hosts(&point) {
                        tracing::warn!(target: "hyperverse::cluster", peer = machine, %point, "a claim on a point of this machine: refused");
                        continue;
                    }
                    match loc.get(&point) {
                        Some(holder) if holder != machine => {
                            // Another Machine holds it: the claim waits for
                            // its end (a particle that moved is told on two
                            // links, in no order between them).
                            tracing::debug!(target: "hyperverse::cluster", peer = machine, %point, %holder, "a claim on a point held elsewhere: waits");
                            self.claims.lock().insert(point, machine.to_string());
                        }
                        _ => {
                            loc.insert(point.clone(), machine.to_string());
                            p.points.insert(point);
                        }
                    }
                }
            }
            Item::Ended { point, reason } => {
                let peer = self.peer(machine);
                let owned = peer.lock().points.remove(&point);
                if !owned {
                    // Not its to end (or a waiting claim withdrawn).
                    self.claims
                        .lock()
                        .retain(|p, m| !(p == &point && m == machine));
                    return;
                }
                self.gone(machine, std::slice::from_ref(&point), |_| reason.clone());
                self.family_ended(machine, &point);
                self.groups_gone(machine, std::slice::from_ref(&point));
                self.promote_claim(&point);
            }
            Item::Spawn {
                id,
                point,
                kind,
                args,
                restart,
            } => {
                let core = self.clone();
                let machine = machine.to_string();
                self.runtime.spawn(async move {
                    let result = core.spawn_here(point, kind, args, restart).await;
                    let _ = core.send(&machine, Item::Spawned { id, result });
                });
            }
            Item::Spawned { id, result } => {
                let mut spawns = self.spawns.lock();
                if spawns.get(&id).is_some_and(|(m, _)| m == machine) {
                    if let Some((_, tx)) = spawns.remove(&id) {
                        let _ = tx.send(result);
                    }
                }
            }
            Item::Adopted(adoption) => self.adopted(machine, adoption),
            Item::Group {
                group,
                point,
                joined,
            } => {
                // A Machine speaks for its own particles only.
                if group.is_empty() || group.len() > 255 {
                    return;
                }
                if !joined || self.may_send_as(machine, &point) {
                    self.groups_set(&group, &point, machine, joined);
                }
            }
            Item::Groups(entries) => {
                for (group, point) in entries {
                    if group.is_empty() || group.len() > 255 {
                        continue;
                    }
                    if self.may_send_as(machine, &point) {
                        self.groups_set(&group, &point, machine, true);
                    }
                }
            }
            Item::Link { from, to } => {
                if self.may_send_as(machine, &from) {
                    self.linked(machine, from, to);
                }
            }
            Item::Unlink { from, to } => {
                if self.may_send_as(machine, &from) {
                    self.unlinked(&from, &to);
                }
            }
            Item::Exit {
                from,
                to,
                reason,
                normal,
            } => {
                // Checked against the link table: only the Machine the
                // link was made with can fire it.
                self.exit_from(
                    machine,
                    ExitSignal {
                        from,
                        reason,
                        normal,
                    },
                    &to,
                );
            }
            Item::Crash { parent, notice } => {
                // Only for a child that Machine told us it hosts for that
                // parent.
                if self.is_abroad(machine, &notice.child, &parent) {
                    self.child_crashed(&parent, notice);
                }
            }
        }
    }

    /// Acknowledges what arrived, resends what is overdue, and declares
    /// lost the peers gone longer than `lost_after`. Called every few
    /// milliseconds by the transport.
    pub(crate) fn tick(self: &Arc<Self>) {
        let now = Instant::now();
        let mut lost = Vec::new();
        let mut silent = Vec::new();
        for (name, peer) in self.peers.read().iter() {
            let mut p = peer.lock();
            if p.wire.is_some() {
                if now.duration_since(p.heard_at) > self.silent_after() {
                    silent.push(name.clone());
                    continue;
                }
                if now.duration_since(p.said_at) > HEARTBEAT {
                    p.said_at = now;
                    self.send_control(&mut p, Frame::Ping);
                }
                if p.ack_due {
                    p.ack_due = false;
                    let ack = Frame::Ack {
                        stream: p.inbox.stream,
                        upto: p.inbox.upto,
                    };
                    self.send_control(&mut p, ack);
                }
                if p.out.len() > 0 && now.duration_since(p.acked_at) > RESEND_AFTER {
                    p.resend(&self.writer);
                }
            } else if p
                .down_since
                .is_some_and(|t| now.duration_since(t) > self.lost_after)
            {
                lost.push(name.clone());
            }
        }
        for name in silent {
            tracing::warn!(target: "hyperverse::cluster", peer = %name, "peer silent: session dropped");
            self.disconnected_from(&name, None);
        }
        for name in lost {
            self.lose(&name, Loss::TimedOut);
        }
    }

    /// How long a live session may stay silent (no frame, not even a
    /// heartbeat) before it is taken for dead: ractor_cluster does not
    /// notice a peer that stops answering without closing its socket.
    fn silent_after(&self) -> Duration {
        (self.lost_after / 2).max(HEARTBEAT * 5)
    }

    /// `machine`'s `points` are gone: forgotten, and the monitors on them
    /// fire with `reason`. Under the monitors' lock, so a monitor set at
    /// the same time either sees the Point still there (and fires here) or
    /// not (and fires at once, `NoSuchParticle`).
    fn gone(&self, machine: &str, points: &[Point], reason: impl Fn(&str) -> DownReason) {
        let mut fired = Vec::new();
        {
            let mut monitors = self.monitors.lock();
            let mut loc = self.locations.write();
            for point in points {
                if loc.get(point).is_some_and(|m| m == machine) {
                    loc.remove(point);
                }
                if let Some(list) = monitors.remove(point) {
                    fired.extend(list.into_iter().map(|(w, r)| (w, r, point.clone())));
                }
            }
        }
        let Some(inbound) = self.inbound.get() else {
            return;
        };
        for (watcher, monitor, target) in fired {
            inbound.down(
                &watcher,
                DownNotice {
                    target,
                    reason: reason(machine),
                    monitor,
                },
            );
        }
    }

    /// Declares `machine` (this incarnation of it) lost: its Points are
    /// forgotten, requests waiting on it are answered `MachineLost`, and
    /// what was kept for it is dropped (a new stream starts if it
    /// returns).
    pub(crate) fn lose(self: &Arc<Self>, machine: &str, why: Loss) {
        let Some(peer) = self.peers.read().get(machine).cloned() else {
            return;
        };
        let (points, wire) = {
            let mut p = peer.lock();
            p.down_since = None;
            if why != Loss::DeclaredUs {
                // What was kept for it is dropped; a new stream begins, so
                // that its inbox counts afresh instead of waiting.
                p.out = Outbox::new(self.stream());
            }
            if why == Loss::Restarted {
                // The new incarnation's streams are new: its first is no
                // sign that it declared us lost.
                p.inbox = Inbox::default();
            }
            if why == Loss::Left {
                // It said goodbye: its session goes too.
                if let Some(w) = p.wire.take() {
                    w.close();
                }
            }
            (p.points.drain().collect::<Vec<Point>>(), p.wire.clone())
        };
        self.gone(machine, &points, |m| DownReason::MachineLost(m.to_string()));
        self.claims.lock().retain(|_, m| m != machine);
        for point in &points {
            self.promote_claim(point);
        }
        self.spawns.lock().retain(|_, (m, _)| m != machine);
        let failed: Vec<Pending> = {
            let mut pending = self.pending.lock();
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.machine == machine)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id))
                .collect()
        };
        for p in failed {
            p.answer.answer(Err(WaveError::MachineLost {
                point: p.to,
                machine: machine.to_string(),
            }));
        }
        tracing::warn!(target: "hyperverse::cluster", peer = machine, particles = points.len(), ?why, "machine lost");
        self.family_lost(machine, &points);
        self.links_lost(machine, &points);
        self.groups_gone(machine, &points);
        if wire.is_some() && why != Loss::Left && !self.leaving.load(Ordering::Acquire) {
            // Still (or again) connected: it learns this Machine's Points
            // afresh on the new stream.
            self.send_snapshot(machine);
        }
        let _ = self.events.send(ClusterEvent::Lost {
            machine: machine.to_string(),
            points,
        });
    }
}

/// Why a peer is declared lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loss {
    /// Its session stayed down longer than `lost_after`.
    TimedOut,
    /// A new incarnation of it spoke: the old one is gone.
    Restarted,
    /// It declared this Machine lost (it began a new stream to us).
    DeclaredUs,
    /// It said it leaves the cluster, or this Machine leaves.
    Left,
}

/// The runtime's seam, on the cluster's state.
pub(crate) struct ClusterRemote(pub(crate) Arc<Core>);

impl ClusterRemote {
    fn route(&self, mut wave: Wave) -> Result<(String, Wave), WaveError> {
        let Some(machine) = self.0.locations.read().get(&wave.to).cloned() else {
            return Err(WaveError::NoSuchParticle { point: wave.to });
        };
        if wave.from.is_root() {
            // This Machine's own voice: its name, on the other side (never
            // the other Machine's root).
            wave.from = self.0.me_point.clone();
        }
        Ok((machine, wave))
    }
}

impl Remote for ClusterRemote {
    fn hosts(&self, point: &Point) -> bool {
        self.0.locations.read().contains_key(point)
    }

    fn signal(&self, wave: Wave) -> Result<(), WaveError> {
        let (machine, wave) = self.route(wave)?;
        self.0.send(&machine, Item::Signal(wave))
    }

    fn control(&self, from: Point, to: Point, body: Body, answer: Answerer) {
        let probe = Wave::request(from, to, "", Body::empty());
        let (machine, probe) = match self.route(probe) {
            Ok(r) => r,
            Err(e) => return answer.answer(Err(e)),
        };
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        self.0.pending.lock().insert(
            id,
            Pending {
                machine: machine.clone(),
                to: probe.to.clone(),
                answer,
            },
        );
        let item = Item::Control {
            id,
            from: probe.from,
            to: probe.to,
            body,
        };
        if let Err(e) = self.0.send(&machine, item) {
            if let Some(p) = self.0.pending.lock().remove(&id) {
                p.answer.answer(Err(e));
            }
        }
    }

    fn ask(&self, wave: Wave, answer: Answerer) {
        let (machine, wave) = match self.route(wave) {
            Ok(r) => r,
            Err(e) => return answer.answer(Err(e)),
        };
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let to = wave.to.clone();
        self.0.pending.lock().insert(
            id,
            Pending {
                machine: machine.clone(),
                to,
                answer,
            },
        );
        if let Err(e) = self.0.send(&machine, Item::Request { id, wave }) {
            if let Some(p) = self.0.pending.lock().remove(&id) {
                p.answer.answer(Err(e));
            }
        }
    }

    fn registered(&self, point: &Point) {
        self.0.broadcast(|| Item::Hosted {
            points: vec![point.clone()],
        });
    }

    fn ended(&self, point: &Point, reason: &DownReason) {
        let me = self.0.me.clone();
        self.0.groups_gone(&me, std::slice::from_ref(point));
        self.0.broadcast(|| Item::Ended {
            point: point.clone(),
            reason: reason.clone(),
        });
    }

    fn monitor(&self, watcher: &Point, monitor: &MonitorRef) -> bool {
        let mut monitors = self.0.monitors.lock();
        if !self.0.locations.read().contains_key(monitor.target()) {
            return false;
        }
        monitors
            .entry(monitor.target().clone())
            .or_default()
            .push((watcher.clone(), monitor.clone()));
        *self.0.watchers.lock().entry(watcher.clone()).or_default() += 1;
        true
    }

    fn crash_notice(&self, parent: &Point, notice: CrashNotice) {
        if let Some(machine) = self.0.locate(parent).filter(|m| *m != self.0.me) {
            let _ = self.0.send(
                &machine,
                Item::Crash {
                    parent: parent.clone(),
                    notice,
                },
            );
        }
    }

    fn link(&self, local: &Point, remote: &Point) -> bool {
        self.0.link(local, remote)
    }

    fn unlink(&self, local: &Point, remote: &Point) {
        self.0.unlink(local, remote);
    }

    fn exited(&self, local: &Point, reason: &str, normal: bool) {
        self.0.exited(local, reason, normal);
        // Its monitors belong to the incarnation that ended, as local
        // ones do: a later particle at its Point never hears of them.
        self.0.forget_watcher(local);
    }

    fn demonitor(&self, monitor: &MonitorRef) -> bool {
        let mut monitors = self.0.monitors.lock();
        let Some(list) = monitors.get_mut(monitor.target()) else {
            return false;
        };
        let before = list.len();
        list.retain(|(_, r)| r != monitor);
        let removed = list.len() < before;
        if list.is_empty() {
            monitors.remove(monitor.target());
        }
        removed
    }
}
