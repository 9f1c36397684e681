//! [`Inbound`]: how waves from other Machines enter this one, under the
//! senders they carry (see [`crate::remote`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::handle::Shared;
use crate::message::Reply;
use crate::remote::{AttachError, Remote};
use crate::{Ask, Body, DownNotice, Machine, Point, Wave, WaveError};

/// The capability to deliver waves that came from other Machines, under
/// the senders they carry. Made once per Machine, by
/// [`Machine::attach_remote`], for the Remote it attaches; it holds the
/// Machine weakly (the Remote lives inside the Machine).
///
/// ```
/// use std::sync::Arc;
/// use hyperverse_runtime::*;
/// use hyperverse_runtime::remote::{Answerer, Remote};
///
/// struct Nowhere;
/// impl Remote for Nowhere {
///     fn hosts(&self, _: &Point) -> bool { false }
///     fn signal(&self, w: Wave) -> Result<(), WaveError> {
///         Err(WaveError::NoSuchParticle { point: w.to })
///     }
///     fn ask(&self, _: Wave, a: Answerer) { a.answer(Ok(Body::empty())) }
///     fn registered(&self, _: &Point) {}
///     fn ended(&self, _: &Point, _: &DownReason) {}
///     fn monitor(&self, _: &Point, _: &MonitorRef) -> bool { false }
///     fn demonitor(&self, _: &MonitorRef) -> bool { false }
///     fn link(&self, _: &Point, _: &Point) -> bool { false }
///     fn unlink(&self, _: &Point, _: &Point) {}
///     fn exited(&self, _: &Point, _: &str, _: bool) {}
///     fn crash_notice(&self, _: &Point, _: CrashNotice) {}
///     fn control(&self, _: Point, _: Point, _: Body, a: Answerer) { a.answer(Ok(Body::empty())) }
/// }
///
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().build().await.unwrap();
/// let inbound = machine.attach_remote(Arc::new(Nowhere)).unwrap();
/// // Once only: the capability to deliver under a foreign sender is unique.
/// assert!(machine.attach_remote(Arc::new(Nowhere)).is_err());
/// // A wave from another Machine to a Point this one does not host:
/// let w = Wave::signal("peer:x".parse().unwrap(), "here".parse().unwrap(), "m", "b");
/// assert!(inbound.signal("peer", w).is_err());
/// # machine.shutdown().await;
/// # }
/// ```
pub struct Inbound {
    shared: Weak<Shared>,
}

impl Inbound {
    fn machine(&self) -> Result<Machine, WaveError> {
        self.shared
            .upgrade()
            .map(|shared| Machine { shared, user: None })
            .ok_or(WaveError::MachineDown)
    }

    /// Delivers a one-way wave from the Machine `peer` to the particle at
    /// `wave.to` on this one, with `wave.from` as its sender (one of the
    /// peer's particles, or the peer's own voice: the Point named as it).
    /// The rules judge it as from that visitor through that Machine; a
    /// denied one is dropped and counted.
    ///
    /// # Errors
    ///
    /// Why it was refused: [`WaveError::Forbidden`] for a sender that is
    /// this Machine's root (a peer's root must be given a Point of its
    /// own), [`WaveError::NoSuchParticle`], and as [`Machine::signal`].
    ///
    /// # Cancel safety
    ///
    /// Not async: queued or refused before it returns.
    pub fn signal(&self, peer: &str, wave: Wave) -> Result<(), WaveError> {
        let machine = self.machine()?;
        // A peer speaks for its own particles: never as the root, nor as
        // a particle this Machine hosts.
        if wave.from.is_root() || machine.cell_at(&wave.from).is_some() {
            return Err(WaveError::Forbidden {
                caller: wave.from,
                point: wave.to,
            });
        }
        let Some(cell) = machine.cell_at(&wave.to) else {
            return Err(WaveError::NoSuchParticle { point: wave.to });
        };
        let Wave {
            from, method, body, ..
        } = wave;
        let access = &machine.shared.access;
        let origin = crate::machine::Origin::Peer(peer);
        crate::particle_ref::signal_cell(&cell, access, from, origin, (method, body))
            .map_err(WaveError::from)
    }

    /// Delivers a request from the Machine `peer`: the returned [`Ask`]
    /// answers it (within `timeout`, if any); a denied one is answered
    /// [`WaveError::Denied`].
    ///
    /// # Errors
    ///
    /// As [`Machine::ask`], and `Forbidden` for a root sender.
    ///
    /// # Cancel safety
    ///
    /// As [`Machine::ask`]: queued when called.
    pub fn ask(&self, peer: &str, wave: Wave, timeout: Option<Duration>) -> Ask<Body> {
        let open = |r: Reply| match r {
            Reply::Body(b) => Ok(b),
            Reply::Value(_) => Err(crate::CodecError::Decode(
                "a typed reply to an untyped ask".into(),
            )),
        };
        let machine = match self.machine() {
            Ok(m) => m,
            Err(e) => return Ask::failed(e, open),
        };
        if wave.from.is_root() || machine.cell_at(&wave.from).is_some() {
            return Ask::failed(
                WaveError::Forbidden {
                    caller: wave.from,
                    point: wave.to,
                },
                open,
            );
        }
        let Some(cell) = machine.cell_at(&wave.to) else {
            return Ask::failed(WaveError::NoSuchParticle { point: wave.to }, open);
        };
        let Wave {
            from, method, body, ..
        } = wave;
        crate::particle_ref::ask_cell(
            &cell,
            &machine.shared.access,
            from,
            crate::machine::Origin::Peer(peer),
            (method, body),
            &machine.shared.deadlines,
            machine.shared.request_timeout,
        )
        .within(timeout)
    }

    /// Delivers a down notice from the cluster to the local particle at
    /// `watcher` (one that monitored a particle on another Machine); false
    /// if no particle lives there any more.
    pub fn down(&self, watcher: &Point, notice: DownNotice) -> bool {
        match self.machine().ok().and_then(|m| m.cell_at(watcher)) {
            Some(cell) => {
                crate::machine::send_down(&cell, notice);
                true
            }
            None => false,
        }
    }

    /// Spawns a particle here for the cluster, and waits until its `start`
    /// has succeeded: as [`Machine::spawn_with`], except that its parent
    /// may live on another Machine (its crash notices then go there,
    /// through [`crate::remote::Remote::crash_notice`]).
    ///
    /// # Errors
    ///
    /// As [`Machine::spawn_with`]; `NoParent` if its parent is neither
    /// here nor known to the cluster.
    pub async fn spawn_child(
        &self,
        point: Point,
        kind: crate::Kind,
        args: Body,
        opts: crate::SpawnOptions,
    ) -> Result<(), crate::SpawnError> {
        let machine = self.machine().map_err(|_| crate::SpawnError::MachineDown)?;
        // Spawn grants would give the child rights its spawner, on
        // another Machine, may not hold: across Machines rights are rules.
        if !opts.grants.is_empty() {
            return Err(crate::SpawnError::Denied {
                visitor: crate::access::Visitor::Machine(Arc::from("peer")),
                parent: point.parent().unwrap_or_else(Point::root),
                point,
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let child = machine.launch_as(point, None, kind, args, opts, Some(tx), false, true)?;
        crate::machine::wait_ready(child.point(), rx).await
    }

    /// Delivers control from `from`, on another Machine, to the particle
    /// at `to` here, and answers it (the runtime's encoding, as
    /// [`crate::remote::Remote::control`] carries it). Only the
    /// supervisor API comes this way: an exit report is the runtime's own,
    /// made where the child ran, and Driver control (a WASM guest's ask reply) is for
    /// in-process code: bytes of either are refused. The receiving particle judges the sender as it would a
    /// local one (a supervisor answers only its ancestors).
    ///
    /// # Errors
    ///
    /// [`WaveError::BadMessage`] for bytes that are not such control; as
    /// [`Machine::control`] otherwise.
    pub fn control(
        &self,
        from: Point,
        to: &Point,
        control: Body,
    ) -> impl std::future::Future<Output = Result<Body, WaveError>> + Send + 'static {
        use crate::control::ControlKind;
        let sent = (|| {
            let machine = self.machine()?;
            if from.is_root() || machine.cell_at(&from).is_some() {
                return Err(WaveError::Forbidden {
                    caller: from,
                    point: to.clone(),
                });
            }
            let kind: ControlKind = control.decode().map_err(|error| WaveError::BadMessage {
                point: to.clone(),
                error,
            })?;
            if !matches!(kind, ControlKind::Supervisor(_)) {
                return Err(WaveError::BadMessage {
                    point: to.clone(),
                    error: crate::CodecError::Decode(format!(
                        "{} is not control a peer may send",
                        kind.label()
                    )),
                });
            }
            let particle = machine.particle(to)?;
            Ok(particle.control_from(from, kind, machine.request_timeout()))
        })();
        let to = to.clone();
        async move {
            let reply = sent?.await?;
            Body::encode(&reply).map_err(|error| WaveError::BadReply { point: to, error })
        }
    }

    /// Delivers an exit signal from a linked particle on another Machine
    /// to the particle at `to` here (as a local link's: it crashes a
    /// particle that does not trap exits, unless normal); false if no
    /// particle lives there.
    pub fn exit(&self, to: &Point, signal: crate::ExitSignal) -> bool {
        match self.machine().ok().and_then(|m| m.cell_at(to)) {
            Some(cell) => {
                let _ = cell.lane.push(crate::lane::Letter::Exit(signal));
                true
            }
            None => false,
        }
    }

    /// Delivers a crash notice from a child on another Machine to its
    /// parent here; false if the parent is gone.
    pub fn notice(&self, parent: &Point, notice: crate::CrashNotice) -> bool {
        match self.machine().ok().and_then(|m| m.cell_at(parent)) {
            Some(cell) => {
                if let Err((letter, _)) = cell
                    .lane
                    .push(crate::lane::Letter::Notice(Box::new(notice)))
                {
                    letter.refuse(cell.point());
                }
                true
            }
            None => false,
        }
    }

    /// Stops the particle at `point` and its subtree (as
    /// [`Machine::stop`]), for the cluster: its parent on another Machine
    /// ended or was lost.
    ///
    /// # Errors
    ///
    /// As [`Machine::stop`].
    pub async fn stop(&self, point: &Point) -> Result<(), WaveError> {
        self.machine()?.stop(point).await
    }

    /// Whether `from`, on the Machine `peer` (one of its particles, or its
    /// own voice), may do `want` to `target` here: for what the cluster
    /// carries beside waves (spawning, stopping, linking, monitoring), judged
    /// by the rules as a wave is. A refusal is counted and logged.
    ///
    /// # Errors
    ///
    /// [`WaveError::Denied`]; `MachineDown`.
    pub fn check(
        &self,
        peer: &str,
        from: &Point,
        target: &Point,
        want: crate::access::Privilege,
    ) -> Result<(), WaveError> {
        let machine = self.machine()?;
        if from.is_root() || machine.cell_at(from).is_some() {
            return Err(WaveError::Forbidden {
                caller: from.clone(),
                point: target.clone(),
            });
        }
        let access = &machine.shared.access;
        let visit = crate::machine::Origin::Peer(peer).visit(from);
        if access.fast(&visit, target, want) || access.slow(&visit, target, want) {
            return Ok(());
        }
        access.denied(&visit, target, want, crate::access::Judged::of(want));
        Err(WaveError::Denied {
            visitor: visit.visitor(),
            point: target.clone(),
            privilege: want,
        })
    }

    /// Applies a rule change made on another Machine (see
    /// [`crate::remote::Remote::rules_changed`]): not sent on again.
    ///
    /// # Errors
    ///
    /// As [`crate::access::Rules::apply`]; `MachineDown`.
    pub fn rules_changed(
        &self,
        change: &crate::access::Change,
    ) -> Result<(), crate::access::RuleError> {
        self.machine()
            .map_err(|_| crate::access::RuleError::MachineDown)?
            .apply_peer_change(change)
    }

    /// The rules in force here, as the changes that rebuild them (for a
    /// Machine that joins).
    pub fn rules(&self) -> Vec<crate::access::Change> {
        self.machine()
            .map(|m| m.rules().changes())
            .unwrap_or_default()
    }

    /// How many particles this Machine hosts.
    pub fn particles(&self) -> usize {
        self.machine().map_or(0, |m| m.registry().len())
    }

    /// Whether a particle of this Machine lives at `point`.
    pub fn hosts(&self, point: &Point) -> bool {
        self.machine()
            .map(|m| m.cell_at(point).is_some())
            .unwrap_or(false)
    }

    /// The Points this Machine hosts, for a peer that joins and must learn
    /// them all.
    pub fn hosted(&self) -> Vec<Point> {
        match self.machine() {
            Ok(m) => m
                .registry()
                .subtree(&Point::root())
                .into_iter()
                .map(|r| r.point)
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("machine_up", &(self.shared.strong_count() > 0))
            .finish()
    }
}

impl Machine {
    /// Attaches the Remote that carries waves to other Machines, and
    /// returns the one [`Inbound`] through which it delivers theirs.
    ///
    /// # Errors
    ///
    /// [`AttachError::Attached`] if one is attached already;
    /// [`AttachError::Forbidden`] from a particle's handler.
    pub fn attach_remote(&self, remote: Arc<dyn Remote>) -> Result<Inbound, AttachError> {
        let caller = crate::stamp::sender();
        // The Machine's own handle only: a user's stamps `ROOT` too.
        if !caller.is_root() || self.user.is_some() {
            return Err(AttachError::Forbidden { caller });
        }
        self.shared
            .remote
            .set(remote)
            .map_err(|_| AttachError::Attached)?;
        Ok(Inbound {
            shared: Arc::downgrade(&self.shared),
        })
    }
}
