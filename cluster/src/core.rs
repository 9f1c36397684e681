//! The cluster's state on one Machine: its peers and their links, where
//! every Point lives, and the requests waiting for answers from peers.
//!
//! It knows nothing of sockets: a transport hands it each peer's session
//! as a [`Wire`] and the bytes that arrive (taken in [`crate::receive`]);
//! the runtime reaches it through [`crate::seam`]. Here: sending, the
//! sessions' coming and going, the clock, and the loss of a Machine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyperverse_runtime::remote::Answerer;
use hyperverse_runtime::{Body, DownNotice, DownReason, Inbound, MonitorRef, Point, WaveError};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, oneshot, Notify};

use crate::frame::{Envelope, Frame, Item, WireError};
use crate::link::{Inbox, Outbox};
use crate::peer::{Hello, Peer, Wire};
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

/// How often a live session carries a heartbeat when nothing else goes.
const HEARTBEAT: Duration = Duration::from_millis(200);
type SpawnTx = oneshot::Sender<Result<(), String>>;
type StopTx = oneshot::Sender<Result<(), WireError>>;

pub(crate) struct Pending {
    pub(crate) machine: String,
    pub(crate) to: Point,
    pub(crate) answer: Answerer,
}

/// The cluster's state on this Machine.
pub(crate) struct Core {
    pub(crate) me: String,
    pub(crate) me_point: Point,
    pub(crate) epoch: u64,
    pub(crate) lost_after: Duration,
    pub(crate) peers: RwLock<HashMap<String, Arc<Mutex<Peer>>>>,
    pub(crate) locations: RwLock<HashMap<Point, String>>,
    pub(crate) pending: Mutex<HashMap<u64, Pending>>,
    /// Parents and children on different Machines.
    pub(crate) family: crate::family::Family,
    /// Claims on Points another Machine still holds, waiting for its end.
    pub(crate) claims: Mutex<HashMap<Point, String>>,
    /// Spawns asked of peers, waiting for their answers.
    pub(crate) spawns: Mutex<HashMap<u64, (String, Point, SpawnTx)>>,
    /// Stops asked of peers, waiting for their answers.
    pub(crate) stops: Mutex<HashMap<u64, (String, StopTx)>>,
    /// Named groups across Machines.
    pub(crate) groups: crate::groups::Groups,
    /// Links of local particles with remote ones.
    pub(crate) links: crate::links::Links,
    /// Monitors of local particles on remote ones: target, then watchers.
    pub(crate) monitors: Mutex<HashMap<Point, Vec<(Point, MonitorRef)>>>,
    /// How many of those each local watcher set (taken after `monitors`).
    pub(crate) watchers: Mutex<HashMap<Point, usize>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) next_stream: AtomicU64,
    pub(crate) inbound: OnceLock<Inbound>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    /// Wakes the writer task when a batch starts.
    pub(crate) writer: Notify,
    /// Hellos from peers whose sessions this side has not seen up yet.
    pub(crate) early_hellos: Mutex<HashMap<String, Hello>>,
    /// Set once this Machine leaves: nothing more is sent or taken.
    pub(crate) leaving: std::sync::atomic::AtomicBool,
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
            stops: Mutex::new(HashMap::new()),
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

    pub(crate) fn stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// The peer `name`, if a session with it ever came up: no record is
    /// made for a name only written in an envelope.
    pub(crate) fn known(&self, name: &str) -> Option<Arc<Mutex<Peer>>> {
        self.peers.read().get(name).cloned()
    }

    /// The peer `name`, made if new: only for a session that came up.
    pub(crate) fn peer(&self, name: &str) -> Arc<Mutex<Peer>> {
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

    /// A spawn of `point` asked of `machine`: its id, and where its
    /// answer comes.
    pub(crate) fn expect_spawn(
        &self,
        machine: &str,
        point: &Point,
    ) -> (u64, oneshot::Receiver<Result<(), String>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.spawns
            .lock()
            .insert(id, (machine.to_string(), point.clone(), tx));
        (id, rx)
    }

    /// Whether this Machine asked `machine` to spawn `point` and waits for
    /// its answer.
    pub(crate) fn asked_spawn(&self, machine: &str, point: &Point) -> bool {
        self.spawns
            .lock()
            .values()
            .any(|(m, p, _)| m == machine && p == point)
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
    pub(crate) fn send_to(&self, p: &mut Peer, machine: &str, item: Item) -> Result<(), WaveError> {
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

    /// Sends `machine` this Machine's Points, groups and access rules, as
    /// they are: read and numbered under the peer's lock, so that an end
    /// (or a rule change) told meanwhile goes after the snapshot that
    /// still lists it, never before.
    pub(crate) fn send_snapshot(&self, machine: &str) {
        let Some(peer) = self.known(machine) else {
            return;
        };
        let mut p = peer.lock();
        let points = self.inbound.get().map(|i| i.hosted()).unwrap_or_default();
        let _ = self.send_to(&mut p, machine, Item::Hosted { points });
        let groups = self.local_memberships();
        let _ = self.send_to(&mut p, machine, Item::Groups(groups));
        self.send_rules(&mut p, machine);
    }

    /// Emits an unnumbered frame (an ack, a hello, a heartbeat): lost
    /// with its session, and sent again by the next tick if need be.
    pub(crate) fn send_control(&self, p: &mut Peer, frame: Frame) {
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
    pub(crate) fn reply(&self, machine: &str, id: u64, result: Result<Body, WireError>) {
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
    pub(crate) fn silent_after(&self) -> Duration {
        (self.lost_after / 2).max(HEARTBEAT * 5)
    }

    /// `machine`'s `points` are gone: forgotten, and the monitors on them
    /// fire with `reason`. Under the monitors' lock, so a monitor set at
    /// the same time either sees the Point still there (and fires here) or
    /// not (and fires at once, `NoSuchParticle`).
    pub(crate) fn gone(
        &self,
        machine: &str,
        points: &[Point],
        reason: impl Fn(&str) -> DownReason,
    ) {
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
        self.spawns.lock().retain(|_, (m, _, _)| m != machine);
        // Stops waiting on it are answered `MachineLost` (their senders
        // dropped).
        self.stops.lock().retain(|_, (m, _)| m != machine);
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
