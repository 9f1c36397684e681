//! Where a spawn goes in the cluster: a Machine named, the parent's
//! Machine (the default, as a child lives beside its parent), the Machine
//! with the fewest particles, or one chosen by hashing the Point.

use std::sync::Arc;
use std::time::Duration;

use hyperverse_runtime::{Body, Kind, Point, Restart};

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

    /// Spawns `point` where `placement` says and waits for its start.
    pub(crate) async fn place(
        self: &Arc<Self>,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
        placement: Placement,
    ) -> Result<String, PlaceError> {
        let machine = self.choose(&point, &placement)?;
        let _span = tracing::info_span!(target: "hyperverse::cluster", "place", point = %point, machine = %machine).entered();
        if machine == self.me {
            return self
                .spawn_here(point.clone(), kind, args, restart)
                .await
                .map(|()| machine.clone())
                .map_err(|reason| PlaceError::Refused {
                    machine,
                    point,
                    reason,
                });
        }
        let (id, rx) = self.expect_spawn(&machine);
        let sent = self.send(
            &machine,
            Item::Spawn {
                id,
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
