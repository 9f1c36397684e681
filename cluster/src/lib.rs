//! Hyperverse Machines in a cluster, over ractor_cluster.
//!
//! A clustered Machine is an ordinary [`Machine`] with a [`Cluster`]
//! attached: waves to Points on other Machines leave as bytes (bincode 2,
//! behind a version byte), numbered per link, acknowledged, resent on a
//! new session and deduplicated at the receiver, so per-sender order holds
//! end to end and a reconnect neither loses nor doubles an accepted wave.
//!
//! **The cluster Registry** is a replicated map with owners: each Machine
//! is the authority for the particles it hosts, and tells every peer of
//! each spawn and end on the same ordered link as its waves (and all its
//! Points when a session comes up). A peer's view is therefore at most one
//! link latency stale, and never older than the waves it receives from
//! that Machine. When a Machine is lost (its session down longer than
//! [`ClusterConfig::lost_after`], or it restarted), every peer forgets its
//! Points at once, and requests waiting on it are answered
//! [`WaveError::MachineLost`].
//!
//! **Access rules** (the runtime's `access` module) replicate with the
//! Registry: a grant, revoke or group change made on one Machine goes to
//! every peer on the same ordered links, in order, and a Machine that
//! joins learns the rules in force with the Points. Each Machine judges
//! what arrives from a peer: a wave as the runtime does (its visitor is
//! the sending particle, through that Machine, or the Machine's own
//! voice), and the actions beside waves by the same check: a spawn placed
//! here ([`Cluster::spawn`], privilege `spawn` on the new particle's
//! parent, by the particle that asked), a stop ([`Cluster::stop`], `stop`),
//! a link (`link`; a refused one ends in an exit signal
//! [`LINK_DENIED`]), supervisor control (`stop` on the supervisor), and
//! the adoption of a child spawned there under a parent here. A refused
//! request crosses back as [`WaveError::Denied`], with its visitor, Point
//! and privilege.
//!
//! ```no_run
//! use hyperverse_cluster::{ClusterConfig, ClusteredMachine};
//! use hyperverse_runtime::Machine;
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClusterConfig::new("alpha", "127.0.0.1:7101", "s3cret")?
//!     .seed("127.0.0.1:7102");
//! let (machine, cluster) = Machine::clustered(config).build().await?;
//! cluster.wait_for_peers(1, std::time::Duration::from_secs(5)).await?;
//! // A Point on the other Machine is sent to like any other.
//! machine.signal(&"beta-counter".parse()?, ("add", "1"))?;
//! # Ok(()) }
//! ```

mod access;
mod broadcast;
mod config;
mod core;
mod family;
mod frame;
mod groups;
mod link;
mod links;
mod peer;
mod place;
mod receive;
mod seam;
mod tls;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use hyperverse_runtime::access::{Privilege, Visitor};
use hyperverse_runtime::{
    Body, Kind, Machine, MachineBuilder, MachineError, Point, Restart, WaveError,
};

pub use broadcast::{Audience, Collect};
pub use config::{ClusterConfig, ConfigError, TlsFiles, DEFAULT_LOST_AFTER};
pub use frame::FRAME_VERSION;
pub use groups::GroupError;
pub use links::LINK_DENIED;
pub use place::{PlaceError, Placement, SPAWN_TIMEOUT};

/// Why a Machine could not join a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Machine could not be built.
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// The Machine has a Remote attached already.
    #[error("cannot attach the cluster: {0}")]
    Attach(#[from] hyperverse_runtime::remote::AttachError),
    /// The node server could not listen.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The TLS files could not be used.
    #[error("tls: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// Fewer peers came than waited for.
    #[error("{wanted} peers wanted, {connected:?} connected after {after:?}")]
    TooFewPeers {
        /// How many were waited for.
        wanted: usize,
        /// Who came.
        connected: Vec<String>,
        /// How long it waited.
        after: Duration,
    },
}

/// What happens to this Machine's peers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A session with this Machine came up.
    Up(String),
    /// The session dropped; its waves are kept for
    /// [`ClusterConfig::lost_after`].
    Down(String),
    /// The Machine was declared lost: these Points of it are gone.
    Lost {
        /// Which Machine.
        machine: String,
        /// Its Points this Machine knew of.
        points: Vec<Point>,
    },
}

/// A Machine's membership of a cluster. Dropping it does not leave the
/// cluster; [`Cluster::leave`] does.
pub struct Cluster {
    core: Arc<core::Core>,
    transport: transport::Transport,
    machine: Machine,
}

impl Cluster {
    /// Joins `machine` to the cluster `config` describes: listens, dials
    /// the seeds, and carries waves to and from the Machines it meets.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Attach`] if the Machine is clustered already (or
    /// from a particle's handler), `Listen`, `Tls`.
    pub async fn join(machine: &Machine, config: ClusterConfig) -> Result<Cluster, ClusterError> {
        config.check()?;
        let core = Arc::new(core::Core::new(
            &config.name,
            config.lost_after,
            tokio::runtime::Handle::current(),
        ));
        // What can fail is tried before the Machine is changed: a Machine
        // that fails to join is left as it was (a Remote, once attached,
        // is for life).
        let checked = transport::Transport::check(&config).await?;
        let inbound = machine.attach_remote(Arc::new(seam::ClusterRemote(core.clone())))?;
        let _ = core.inbound.set(inbound);
        let transport = transport::Transport::start(core.clone(), &config, checked).await?;
        tracing::info!(target: "hyperverse::cluster", machine = %config.name, listen = %config.listen, "joined");
        Ok(Cluster {
            core,
            transport,
            machine: machine.clone(),
        })
    }

    /// This Machine's name in the cluster.
    pub fn name(&self) -> &str {
        &self.core.me
    }

    /// The Machines with a live session, sorted.
    pub fn peers(&self) -> Vec<String> {
        self.core.connected()
    }

    /// Which Machine hosts `point`, as far as this one knows.
    pub fn locate(&self, point: &Point) -> Option<String> {
        self.core.locate(point)
    }

    /// What happens to peers from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<ClusterEvent> {
        self.core.events.subscribe()
    }

    /// Spawns `point` on the Machine `placement` chooses, as permanent,
    /// and waits until its `start` has succeeded; returns that Machine's
    /// name. Its parent may live on another Machine: its crash notices go
    /// there, and if its Machine is lost, the parent's Machine starts it
    /// again (see the crate docs).
    ///
    /// # Errors
    ///
    /// [`PlaceError`]: no such Machine, the spawn refused there (its
    /// `SpawnError`), or no answer.
    pub async fn spawn(
        &self,
        point: Point,
        kind: Kind,
        args: Body,
        placement: Placement,
    ) -> Result<String, PlaceError> {
        self.spawn_with(point, kind, args, Restart::Permanent, placement)
            .await
    }

    /// [`Cluster::spawn`] with a restart type.
    ///
    /// # Errors
    ///
    /// As [`Cluster::spawn`].
    pub async fn spawn_with(
        &self,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
        placement: Placement,
    ) -> Result<String, PlaceError> {
        let spawner = self.spawner(&point);
        self.core
            .place(point, kind, args, restart, placement, spawner)
            .await
    }

    /// Who spawns `point`: the caller (the particle whose handler runs
    /// now, else this Machine), judged on the Machine the spawn is placed
    /// on as the spawn of a child under `point`'s parent; here, by this
    /// Machine's rules now.
    fn spawner(&self, point: &Point) -> place::Spawner {
        let parent = access::spawn_target(point);
        let denied_here = (!self.machine.may(Privilege::Spawn, &parent)).then(|| {
            hyperverse_runtime::SpawnError::Denied {
                visitor: self.machine.visitor(),
                point: point.clone(),
                parent,
            }
        });
        place::Spawner {
            from: self.voice(),
            denied_here,
        }
    }

    /// The sender a peer judges this caller's actions by: the particle
    /// whose handler runs now, else this Machine's own voice (the Point
    /// named as it: a peer never takes another Machine's root for its
    /// own).
    fn voice(&self) -> Point {
        match self.machine.visitor() {
            Visitor::Particle(p) if !p.is_root() => p,
            _ => self.core.me_point.clone(),
        }
    }

    /// Stops the particle at `point` and its subtree, on whichever Machine
    /// hosts it, as the caller (see [`Machine::stop`]). On another
    /// Machine, the rules there judge the caller (a particle of this
    /// Machine, or this Machine's voice) for the privilege `stop` on
    /// `point`.
    ///
    /// # Errors
    ///
    /// As [`Machine::stop`]; [`WaveError::Denied`] if the rules refuse;
    /// [`WaveError::MachineLost`] if that Machine is lost before it
    /// answers, [`WaveError::Timeout`] after [`SPAWN_TIMEOUT`].
    pub async fn stop(&self, point: &Point) -> Result<(), WaveError> {
        match self.core.locate(point) {
            Some(m) if m != self.core.me => {
                let from = self.voice();
                self.core.stop_there(m, from, point.clone()).await
            }
            _ => self.machine.stop(point).await,
        }
    }

    /// The particle at `point`, on this Machine, joins `group`; every
    /// Machine learns of it. It leaves when it ends or its Machine is
    /// lost.
    ///
    /// # Errors
    ///
    /// [`GroupError::NotHere`] if no particle lives at `point` here;
    /// [`GroupError::BadName`].
    pub fn join_group(&self, group: &str, point: &Point) -> Result<(), GroupError> {
        self.core.join_group(group, point)
    }

    /// The particle at `point`, on this Machine, leaves `group`.
    pub fn leave_group(&self, group: &str, point: &Point) {
        self.core.leave_group(group, point);
    }

    /// The members of `group`, on every Machine, as this one knows them
    /// (one link latency stale at most), sorted.
    pub fn members(&self, group: &str) -> Vec<Point> {
        self.core.members(group)
    }

    /// Every group with its member count.
    pub fn groups(&self) -> Vec<(String, usize)> {
        self.core.group_names()
    }

    /// Every particle at or under `root`, on every Machine, as this one
    /// knows them, sorted.
    pub fn subtree(&self, root: &Point) -> Vec<Point> {
        self.core.subtree(root)
    }

    /// Sends `message` to everyone in `to` and gathers replies by
    /// `collect` within `within` (OTP's `multi_call`): each target's
    /// reply, or why there is none (a timeout, a lost Machine). Sent from
    /// the caller, stamped as any send.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the waiting; what was sent stays sent.
    pub async fn broadcast<S: hyperverse_runtime::Sendable + Clone>(
        &self,
        to: &Audience,
        message: S,
        collect: Collect,
        within: Duration,
    ) -> Vec<(Point, Result<S::Reply, hyperverse_runtime::WaveError>)> {
        let targets = match to {
            Audience::Group(g) => self.members(g),
            Audience::Subtree(root) => self.subtree(root),
        };
        crate::broadcast::broadcast(&self.machine, targets, message, collect, within).await
    }

    /// Waits until at least `n` peers have live sessions.
    ///
    /// # Errors
    ///
    /// [`ClusterError::TooFewPeers`] after `timeout`.
    pub async fn wait_for_peers(&self, n: usize, timeout: Duration) -> Result<(), ClusterError> {
        let start = std::time::Instant::now();
        loop {
            let peers = self.peers();
            if peers.len() >= n {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(ClusterError::TooFewPeers {
                    wanted: n,
                    connected: peers,
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until this Machine knows where `point` lives.
    ///
    /// # Errors
    ///
    /// The Point back, if it was not located within `timeout`.
    pub async fn wait_for_point(&self, point: &Point, timeout: Duration) -> Result<String, Point> {
        let start = std::time::Instant::now();
        loop {
            if let Some(m) = self.locate(point) {
                return Ok(m);
            }
            if start.elapsed() > timeout {
                return Err(point.clone());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Leaves the cluster: every peer is told, and declares this Machine
    /// lost at once (its Points forgotten, monitors on them fired, their
    /// children elsewhere started again); this Machine forgets its peers
    /// (sends to their Points get `NoSuchParticle`), and its sessions
    /// close. Its particles go on, standalone.
    pub async fn leave(self) {
        self.core.leave();
        // ractor_cluster writes in the background: let the goodbyes go.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.transport.stop();
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.core.me)
            .field("peers", &self.peers())
            .finish()
    }
}

/// `Machine::clustered(config)`: a Machine built to join a cluster.
pub trait ClusteredMachine {
    /// A builder for a Machine that joins the cluster `config` describes.
    fn clustered(config: ClusterConfig) -> ClusteredBuilder;
}

impl ClusteredMachine for Machine {
    fn clustered(config: ClusterConfig) -> ClusteredBuilder {
        ClusteredBuilder {
            builder: Machine::standalone(),
            config,
        }
    }
}

/// Builds a clustered Machine: the Machine's own builder, and the
/// cluster's config.
pub struct ClusteredBuilder {
    builder: MachineBuilder,
    config: ClusterConfig,
}

impl ClusteredBuilder {
    /// Sets up the Machine as [`MachineBuilder`] does (kinds, stars,
    /// limits).
    pub fn machine(mut self, f: impl FnOnce(MachineBuilder) -> MachineBuilder) -> Self {
        self.builder = f(self.builder);
        self
    }

    /// Installs a particle Kind (as [`MachineBuilder::kind`]).
    pub fn kind<P: hyperverse_runtime::Particle>(
        self,
        kind: impl Into<hyperverse_runtime::Kind>,
        particle: P,
    ) -> Self {
        self.machine(|b| b.kind(kind, particle))
    }

    /// Builds the Machine and joins the cluster.
    ///
    /// # Errors
    ///
    /// As [`MachineBuilder::build`] and [`Cluster::join`].
    pub async fn build(self) -> Result<(Machine, Cluster), ClusterError> {
        let machine = self.builder.build().await?;
        let cluster = Cluster::join(&machine, self.config).await?;
        Ok((machine, cluster))
    }
}
