//! Where a spawn goes in the cluster: a Machine named, the parent's
//! Machine (the default, as a child lives beside its parent), the Machine
//! with the fewest particles, or one chosen by hashing the Point.

use std::sync::Arc;
use std::time::Duration;

use hyperverse_runtime::{Body, Kind, Point, Restart};
use tracing::Instrument;

use crate::core::Core;
use crate::frame::Item;

/// How long a spawn on another Machine may take before it is given up.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where [`crate::Cluster::spawn`] places a particle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Placement {
    /// Beside its parent, on the parent's Machine (this Machine for a
    /// top-level particle, or a parent nobody knows of).
    #[default]
    Parent,
    /// On this Machine.
    Here,
    /// On the Machine with this name.
    On(String),
    /// On the Machine hosting the fewest particles, as far as this one
    /// knows (its own count, and each peer's records).
    LeastLoaded,
    /// On a Machine chosen by hashing the Point (FNV-1a) over the live
    /// Machines, sorted by name (the same Point goes to the same Machine
    /// while they stay the same; not consistent hashing: a Machine that
    /// joins or leaves moves most Points).
    Hash,
}

/// Why a cluster spawn failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceError {
    /// No live Machine has that name.
    #[error("no machine {machine} in the cluster")]
    NoMachine {
        /// The name.
        machine: String,
    },
    /// The Machine chosen refused or failed the spawn.
    #[error("{machine} could not spawn {point}: {reason}")]
    Refused {
        /// Where.
        machine: String,
        /// What.
        point: Point,
        /// Why (its `SpawnError`, as text when it crossed).
        reason: String,
    },
    /// The Machine chosen was lost, or did not answer in time.
    #[error("{machine} did not answer the spawn of {point}")]
    NoAnswer {
        /// Where.
        machine: String,
        /// What.
        point: Point,
    },
}

/// Who asks for a cluster spawn, as the Machine it is asked on knows:
/// what it is judged by there.
#[derive(Debug, Clone)]
pub(crate) struct Spawner {
    /// The particle that asks, or this Machine's voice (the Point named as
    /// it): what a peer judges the spawn by.
    pub(crate) from: Point,
    /// Why this Machine's rules refuse it, if they do: for a spawn placed
    /// here (the runtime judges the caller as it would a local spawn).
    pub(crate) denied_here: Option<hyperverse_runtime::SpawnError>,
}

/// FNV-1a: a hash that is the same on every Machine and every Rust
/// version, so that every Machine hashes a Point alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Core {
    /// The Machine `placement` chooses for `point`.
    pub(crate) fn choose(
        &self,
        point: &Point,
        placement: &Placement,
    ) -> Result<String, PlaceError> {
        let me = self.me.clone();
        let live = || {
            let mut all = self.connected();
            all.push(me.clone());
            all.sort();
            all
        };
        match placement {
            Placement::Here => Ok(me),
            Placement::On(m) if *m == me || self.connected().contains(m) => Ok(m.clone()),
            Placement::On(m) => Err(PlaceError::NoMachine { machine: m.clone() }),
            Placement::Parent => Ok(point
                .parent()
                .filter(|p| !p.is_root())
                .and_then(|p| self.locate(&p))
                .unwrap_or(me)),
            Placement::LeastLoaded => Ok(live()
                .into_iter()
                .min_by_key(|m| (self.load(m), m.clone()))
                .unwrap_or(me)),
            Placement::Hash => {
                let all = live();
                let i = (fnv1a(point.to_string().as_bytes()) % all.len() as u64) as usize;
                Ok(all[i].clone())
            }
        }
    }

    /// Spawns `point` where `placement` says, for `spawner`, and waits for
    /// its start. (Its span is attached to the future, not entered: an
    /// entered span held across an await would make the future not `Send`,
    /// and a particle's handler could not spawn through the cluster.)
    pub(crate) async fn place(
        self: &Arc<Self>,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
        placement: Placement,
        spawner: Spawner,
    ) -> Result<String, PlaceError> {
        let machine = self.choose(&point, &placement)?;
        let span = tracing::info_span!(target: "hyperverse::cluster", "place", point = %point, machine = %machine);
        let placed = async {
            if machine == self.me {
                self.place_here(point, kind, args, restart, spawner).await
            } else {
                self.place_there(machine, point, kind, args, restart, spawner.from)
                    .await
            }
        };
        placed.instrument(span).await
    }

    /// Spawns `point` on this Machine, if its rules let `spawner` spawn it.
    async fn place_here(
        self: &Arc<Self>,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
        spawner: Spawner,
    ) -> Result<String, PlaceError> {
        let machine = self.me.clone();
        if let Some(denied) = spawner.denied_here {
            tracing::warn!(target: "hyperverse::access", %point, error = %denied, "a spawn placed here refused");
            return Err(PlaceError::Refused {
                machine,
                point,
                reason: denied.to_string(),
            });
        }
        self.spawn_here(point.clone(), kind, args, restart, spawner.from)
            .await
            .map(|()| machine.clone())
            .map_err(|reason| PlaceError::Refused {
                machine,
                point,
                reason,
            })
    }

    /// Asks `machine` to spawn `point` as `from` (it judges the spawner),
    /// and waits for its answer.
    async fn place_there(
        self: &Arc<Self>,
        machine: String,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
        from: Point,
    ) -> Result<String, PlaceError> {
        let (id, rx) = self.expect_spawn(&machine, &point);
        let sent = self.send(
            &machine,
            Item::Spawn {
                id,
                from,
                point: point.clone(),
                kind,
                args,
                restart,
            },
        );
        if sent.is_err() {
            self.forget_spawn(id);
            return Err(PlaceError::NoAnswer { machine, point });
        }
        match tokio::time::timeout(SPAWN_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(machine),
            Ok(Ok(Err(reason))) => Err(PlaceError::Refused {
                machine,
                point,
                reason,
            }),
            Ok(Err(_)) | Err(_) => {
                self.forget_spawn(id);
                Err(PlaceError::NoAnswer { machine, point })
            }
        }
    }
}
