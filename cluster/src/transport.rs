//! The cluster over ractor_cluster: a NodeServer per Machine, one link
//! actor per Machine that peers send frames to, and the tasks that
//! reconnect dropped sessions and keep the links' clocks.
//!
//! ractor_cluster gives authenticated, ordered TCP (or TLS) sessions
//! between nodes and remote actors found through process groups. It does
//! not reconnect, retransmit or notice a silent peer: this file reconnects
//! (to every seed and every peer it has seen, until they return), and the
//! [`crate::core`] numbers, acknowledges, resends and times peers out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use tokio::sync::mpsc;

use crate::core::Core;
use crate::peer::Wire;
use crate::tls::Tls;
use crate::ClusterError;

/// How often the links' clocks tick (acks, heartbeats, loss).
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// How often dropped sessions are dialled again, at first.
const REDIAL: Duration = Duration::from_millis(250);
/// The longest wait between two dials of an address that stays down.
const MAX_REDIAL: Duration = Duration::from_secs(4);
/// The ractor_cluster variant name of a frame.
const FRAME_VARIANT: &str = "hv";

/// The process group a Machine's link actor joins.
pub(crate) fn link_group(machine: &str) -> String {
    format!("hyperverse.link.{machine}")
}

/// Bytes of one envelope, as a ractor message that may cross nodes.
pub(crate) struct Frames(pub(crate) Vec<u8>);

impl ractor::Message for Frames {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(SerializedMessage::Cast {
            variant: FRAME_VARIANT.into(),
            args: self.0,
            metadata: None,
        })
    }

    fn deserialize(m: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match m {
            SerializedMessage::Cast { variant, args, .. } if variant == FRAME_VARIANT => {
                Ok(Frames(args))
            }
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// The actor peers send this Machine's frames to.
struct LinkActor;

impl Actor for LinkActor {
    type Msg = Frames;
    type State = Arc<Core>;
    type Arguments = Arc<Core>;

    async fn pre_start(
        &self,
        me: ActorRef<Frames>,
        core: Arc<Core>,
    ) -> Result<Arc<Core>, ActorProcessingErr> {
        ractor::pg::join(link_group(&core.me), vec![me.get_cell()]);
        Ok(core)
    }

    async fn handle(
        &self,
        _: ActorRef<Frames>,
        Frames(bytes): Frames,
        core: &mut Arc<Core>,
    ) -> Result<(), ActorProcessingErr> {
        core.receive_batch(&bytes);
        Ok(())
    }
}

/// A peer's link actor, reached over its session.
struct PgWire {
    cell: ActorCell,
    session: ActorCell,
}

impl Wire for PgWire {
    fn send(&self, batch: Vec<u8>) -> bool {
        self.cell
            .send_serialized(SerializedMessage::Cast {
                variant: FRAME_VARIANT.into(),
                args: batch,
                metadata: None,
            })
            .is_ok()
    }

    fn id(&self) -> u64 {
        self.session.get_id().pid()
    }

    fn close(&self) {
        self.session.stop(Some("silent peer".into()));
    }
}

/// What the NodeServer tells: forwarded, never handled in its callback.
enum Session {
    Ready(NodeServerSessionInformation),
    Gone(NodeServerSessionInformation),
}

struct Events(mpsc::UnboundedSender<Session>);

impl NodeEventSubscription for Events {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}
    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {}
    fn node_session_ready(&self, s: NodeServerSessionInformation) {
        let _ = self.0.send(Session::Ready(s));
    }
    fn node_session_disconnected(&self, s: NodeServerSessionInformation) {
        let _ = self.0.send(Session::Gone(s));
    }
}

/// A peer's Machine name from its node name (`name@host`).
fn machine_of(s: &NodeServerSessionInformation) -> Option<String> {
    let name = &s.peer_name.as_ref()?.name;
    Some(name.split('@').next().unwrap_or(name).to_string())
}

/// The running transport of one Machine.
pub(crate) struct Transport {
    pub(crate) node: ActorRef<NodeServerMessage>,
    link: ActorRef<Frames>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Transport {
    /// What can fail before anything is attached: the TLS files, the
    /// listen address (resolved, and bound once to see that it is free).
    pub(crate) async fn check(
        config: &crate::ClusterConfig,
    ) -> Result<(Option<Tls>, std::net::IpAddr), ClusterError> {
        let tls = match &config.tls {
            Some(files) => Some(Tls::load(files)?),
            None => None,
        };
        let listen_error = |reason: String| ClusterError::Listen {
            addr: config.listen.clone(),
            reason,
        };
        let addr = tokio::net::lookup_host(&config.listen)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| listen_error("cannot resolve".into()))?;
        drop(std::net::TcpListener::bind(addr).map_err(|e| listen_error(e.to_string()))?);
        Ok((tls, addr.ip()))
    }

    pub(crate) async fn start(
        core: Arc<Core>,
        config: &crate::ClusterConfig,
        (tls, ip): (Option<Tls>, std::net::IpAddr),
    ) -> Result<Transport, ClusterError> {
        let server = NodeServer::new(
            config.port(),
            config.secret.clone(),
            config.name.clone(),
            config.host().to_string(),
            tls.as_ref().map(|t| t.incoming()),
            None,
        )
        .with_listen_addr(ip)
        // A batch holds at most one frame past its limit: room for the
        // largest frame and a full batch before it.
        .with_max_inbound_frame_size((crate::frame::MAX_FRAME + 512 * 1024) as u64);
        let (node, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| ClusterError::Listen {
                addr: config.listen.clone(),
                reason: e.to_string(),
            })?;
        let (link, _) = Actor::spawn(None, LinkActor, core.clone())
            .await
            .map_err(|e| ClusterError::Listen {
                addr: config.listen.clone(),
                reason: e.to_string(),
            })?;
        let (tx, rx) = mpsc::unbounded_channel();
        node.cast(NodeServerMessage::SubscribeToEvents {
            id: "hyperverse".into(),
            subscription: Box::new(Events(tx)),
        })
        .map_err(|e| ClusterError::Listen {
            addr: config.listen.clone(),
            reason: e.to_string(),
        })?;
        let known = Arc::new(Mutex::new(
            config
                .seeds
                .iter()
                .filter(|s| **s != config.listen)
                .cloned()
                .collect::<HashSet<String>>(),
        ));
        let tasks = vec![
            tokio::spawn(sessions(core.clone(), rx, known.clone(), config.dial_back)),
            tokio::spawn(redial(node.clone(), known, config.listen.clone(), tls)),
            tokio::spawn(writer(core.clone())),
            tokio::spawn(clock(core)),
        ];
        Ok(Transport { node, link, tasks })
    }

    pub(crate) fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.link.stop(None);
        self.node.stop(None);
    }
}

/// Follows sessions: a ready one becomes the peer's wire once its link
/// actor shows in the process groups; a gone one is marked down.
async fn sessions(
    core: Arc<Core>,
    mut rx: mpsc::UnboundedReceiver<Session>,
    known: Arc<Mutex<HashSet<String>>>,
    dial_back: bool,
) {
    while let Some(ev) = rx.recv().await {
        match ev {
            Session::Ready(s) => {
                let Some(machine) = machine_of(&s) else {
                    continue;
                };
                if let Some(n) = s.peer_name.as_ref().filter(|_| dial_back) {
                    if !n.connection_string.is_empty() {
                        known.lock().insert(n.connection_string.clone());
                    }
                }
                let node_id = s.node_id;
                // The peer's groups are exchanged before "ready", but look
                // a little longer in case of a race.
                let mut found = None;
                for _ in 0..50 {
                    found = ractor::pg::get_members(&link_group(&machine))
                        .into_iter()
                        .find(|c| c.get_id().node() == node_id && !c.get_id().is_local());
                    if found.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                match found {
                    Some(cell) => core.connected_to(
                        &machine,
                        Arc::new(PgWire {
                            cell,
                            session: s.actor.get_cell(),
                        }),
                    ),
                    None => {
                        tracing::warn!(target: "hyperverse::cluster", peer = %machine, "a session without a link actor");
                    }
                }
            }
            Session::Gone(s) => {
                if let Some(machine) = machine_of(&s) {
                    core.disconnected_from(&machine, Some(s.actor.get_id().pid()));
                } else {
                    tracing::info!(target: "hyperverse::cluster", addr = %s.peer_addr, "a session ended before it authenticated (a wrong secret?)");
                }
            }
        }
    }
}

/// Dials every known address that has no session, backing off (up to
/// [`MAX_REDIAL`]) from an address that does not come up: a peer that
/// refuses this Machine (a wrong secret, a bad certificate) is not
/// hammered every quarter second.
async fn redial(
    node: ActorRef<NodeServerMessage>,
    known: Arc<Mutex<HashSet<String>>>,
    me: String,
    tls: Option<Tls>,
) {
    let mut backoff: HashMap<String, (Instant, Duration)> = HashMap::new();
    loop {
        let sessions: HashMap<u64, NodeServerSessionInformation> =
            match ractor::call_t!(node, NodeServerMessage::GetSessions, 1000) {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(REDIAL).await;
                    continue;
                }
            };
        let up: HashSet<String> = sessions
            .values()
            .filter_map(|s| s.peer_name.as_ref().map(|n| n.connection_string.clone()))
            .collect();
        let now = Instant::now();
        backoff.retain(|addr, _| !up.contains(addr));
        let targets: Vec<String> = known
            .lock()
            .iter()
            .filter(|a| !up.contains(*a) && **a != me)
            .filter(|a| backoff.get(*a).is_none_or(|(at, _)| *at <= now))
            .cloned()
            .collect();
        for addr in targets {
            let delay = backoff
                .get(&addr)
                .map_or(REDIAL, |(_, d)| (*d * 2).min(MAX_REDIAL));
            backoff.insert(addr.clone(), (now + delay, delay));
            let dial = async {
                match &tls {
                    Some(t) => {
                        let (connector, name) = t.connector(&addr)?;
                        ractor_cluster::client_connect_enc(&node, addr.as_str(), connector, name)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    None => ractor_cluster::client_connect(&node, addr.as_str())
                        .await
                        .map_err(|e| e.to_string()),
                }
            };
            match tokio::time::timeout(Duration::from_secs(2), dial).await {
                Ok(Ok(())) => {
                    tracing::debug!(target: "hyperverse::cluster", %addr, "dialled")
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: "hyperverse::cluster", %addr, error = %e, "dial failed")
                }
                Err(_) => tracing::debug!(target: "hyperverse::cluster", %addr, "dial timed out"),
            }
        }
        tokio::time::sleep(REDIAL).await;
    }
}

/// Sends the batches frames gathered while links were busy.
async fn writer(core: Arc<Core>) {
    loop {
        core.writer.notified().await;
        // Let the emitters that woke this add to the batch first.
        tokio::task::yield_now().await;
        core.flush();
    }
}

/// The links' clock.
async fn clock(core: Arc<Core>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        core.tick();
    }
}
