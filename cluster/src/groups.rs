//! Named groups of particles across Machines (OTP's `pg`): a particle
//! joins on its own Machine, and every Machine learns of it on the same
//! ordered links as the Registry's records, so a group's members are read
//! locally, with no round trip. A member leaves when it asks, when it
//! ends, or when its Machine is lost.
//!
//! ractor_cluster has process groups of its own, but they hold ractor
//! actors, and a particle is not one: Hyperverse's groups ride its links.

use std::collections::{BTreeMap, BTreeSet};

use hyperverse_runtime::Point;
use parking_lot::Mutex;

use crate::core::Core;
use crate::frame::Item;

/// Group, then member, then the Machine hosting it.
#[derive(Default)]
pub(crate) struct Groups {
    inner: Mutex<BTreeMap<String, BTreeMap<Point, String>>>,
}

/// Why a particle could not join a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// A particle joins on its own Machine: none lives at that Point here.
    #[error("no particle at {point} on this machine")]
    NotHere {
        /// The Point.
        point: Point,
    },
    /// A group's name is 1 to 255 bytes.
    #[error("a group name is 1 to 255 bytes, not {len}")]
    BadName {
        /// Its length.
        len: usize,
    },
}

impl Core {
    /// The local particle at `point` joins `group`.
    pub(crate) fn join_group(&self, group: &str, point: &Point) -> Result<(), GroupError> {
        if group.is_empty() || group.len() > 255 {
            return Err(GroupError::BadName { len: group.len() });
        }
        if !self.inbound.get().is_some_and(|i| i.hosts(point)) {
            return Err(GroupError::NotHere {
                point: point.clone(),
            });
        }
        self.groups_set(group, point, &self.me.clone(), true);
        self.broadcast(|| Item::Group {
            group: group.to_string(),
            point: point.clone(),
            joined: true,
        });
        Ok(())
    }

    /// The local particle at `point` leaves `group`.
    pub(crate) fn leave_group(&self, group: &str, point: &Point) {
        if self.groups_set(group, point, &self.me.clone(), false) {
            self.broadcast(|| Item::Group {
                group: group.to_string(),
                point: point.clone(),
                joined: false,
            });
        }
    }

    /// Records a membership; true if it changed anything.
    pub(crate) fn groups_set(
        &self,
        group: &str,
        point: &Point,
        machine: &str,
        joined: bool,
    ) -> bool {
        let mut g = self.groups.inner.lock();
        if joined {
            g.entry(group.to_string())
                .or_default()
                .insert(point.clone(), machine.to_string())
                .is_none()
        } else {
            let Some(members) = g.get_mut(group) else {
                return false;
            };
            let removed =
                members.get(point).is_some_and(|m| m == machine) && members.remove(point).is_some();
            if members.is_empty() {
                g.remove(group);
            }
            removed
        }
    }

    /// A group's members, sorted.
    pub(crate) fn members(&self, group: &str) -> Vec<Point> {
        self.groups
            .inner
            .lock()
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The groups, with their member counts.
    pub(crate) fn group_names(&self) -> Vec<(String, usize)> {
        self.groups
            .inner
            .lock()
            .iter()
            .map(|(g, m)| (g.clone(), m.len()))
            .collect()
    }

    /// The groups the local particles belong to, for a peer that connects.
    pub(crate) fn local_memberships(&self) -> Vec<(String, Point)> {
        let mut out = Vec::new();
        for (g, members) in self.groups.inner.lock().iter() {
            for (p, m) in members {
                if *m == self.me {
                    out.push((g.clone(), p.clone()));
                }
            }
        }
        out
    }

    /// `points` of `machine` ended or were lost: they leave every group.
    pub(crate) fn groups_gone(&self, machine: &str, points: &[Point]) {
        let gone: BTreeSet<&Point> = points.iter().collect();
        let mut g = self.groups.inner.lock();
        g.retain(|_, members| {
            members.retain(|p, m| !(m == machine && gone.contains(p)));
            !members.is_empty()
        });
    }
}
