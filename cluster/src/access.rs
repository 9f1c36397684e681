//! The access rules across the cluster: rule changes ride the same ordered
//! links as the Registry's records (so a peer applies them in the order
//! they were made, before any wave sent after them), a Machine that joins
//! learns the rules with the Points, and the actions a peer asks for
//! beside waves (spawning, stopping, linking, supervisor control) are
//! judged by the runtime's check, on the receiving Machine, as waves are.
//!
//! A monitor is not registered on the target's Machine (the watcher's
//! Machine hears of the target's end with every peer): it is judged where
//! it is set, by the runtime, with the rules replicated there.
//!
//! Replication is a union: a snapshot adds what the receiver lacks and
//! takes nothing away, so two Machines that made changes while apart keep
//! both sides' grants (a revoke made during a partition is not undone
//! elsewhere until it is made again).

use std::sync::Arc;

use hyperverse_runtime::access::{Change, Privilege, RuleError};
use hyperverse_runtime::{Point, WaveError};

use crate::core::Core;
use crate::frame::{Item, WireError, MAX_RULE_CHANGES};
use crate::peer::Peer;

/// Why rule changes from a peer were refused, in whole or in part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RulesRefused {
    /// More changes in one item than a Machine ever sends in one.
    #[error("{count} rule changes in one frame (the most is {MAX_RULE_CHANGES})")]
    TooMany {
        /// How many it carried.
        count: usize,
    },
    /// Some changes were not rules (the others were applied).
    #[error("{refused} of {count} rule changes refused, the first: {first}")]
    Bad {
        /// How many were refused.
        refused: usize,
        /// How many the item carried.
        count: usize,
        /// Why the first was.
        first: RuleError,
    },
}

/// The Point a spawn is judged on: the new particle's parent, `ROOT` for a
/// top-level one (as the runtime judges a local spawn).
pub(crate) fn spawn_target(point: &Point) -> Point {
    point.parent().unwrap_or_else(Point::root)
}

impl Core {
    /// A rule change made on this Machine: to every peer, after what was
    /// sent to it before (not sent on by those who receive it).
    pub(crate) fn rules_changed(&self, change: &Change) {
        tracing::debug!(target: "hyperverse::access", ?change, "rule change sent to the cluster");
        self.broadcast(|| Item::Rules(vec![change.clone()]));
    }

    /// Sends `machine` the rules in force here, in items of at most
    /// [`MAX_RULE_CHANGES`], under the peer's lock (held by the caller, so
    /// that a change made meanwhile goes after the snapshot).
    pub(crate) fn send_rules(&self, p: &mut Peer, machine: &str) {
        let changes = self.inbound.get().map(|i| i.rules()).unwrap_or_default();
        for part in changes.chunks(MAX_RULE_CHANGES) {
            if let Err(e) = self.send_to(p, machine, Item::Rules(part.to_vec())) {
                tracing::warn!(target: "hyperverse::access", peer = machine, error = %e, "the rules could not be sent to a peer");
                return;
            }
        }
    }

    /// Applies rule changes from `machine`, in order: each is checked by
    /// the runtime as a local one is (names, groups); one that is refused
    /// is logged and skipped, and an item with more changes than a Machine
    /// sends in one is refused whole.
    ///
    /// # Errors
    ///
    /// [`RulesRefused::TooMany`] (nothing applied); [`RulesRefused::Bad`]
    /// (the rest applied).
    pub(crate) fn rules_from(&self, machine: &str, changes: &[Change]) -> Result<(), RulesRefused> {
        if changes.len() > MAX_RULE_CHANGES {
            return Err(RulesRefused::TooMany {
                count: changes.len(),
            });
        }
        let Some(inbound) = self.inbound.get() else {
            return Ok(());
        };
        let mut refused = 0;
        let mut first = None;
        for change in changes {
            if let Err(e) = inbound.rules_changed(change) {
                tracing::warn!(target: "hyperverse::access", peer = machine, ?change, error = %e, "a peer's rule change refused");
                refused += 1;
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(RulesRefused::Bad {
                refused,
                count: changes.len(),
                first,
            }),
        }
    }

    /// Whether `from`, on `machine`, may do `want` to `target` here: a
    /// sender it may not speak as is refused `Forbidden` (never judged as
    /// someone else), the rest judged by the rules (a refusal is counted
    /// and logged by the runtime).
    pub(crate) fn judge_peer(
        &self,
        machine: &str,
        from: &Point,
        target: &Point,
        want: Privilege,
    ) -> Result<(), WaveError> {
        if !self.may_send_as(machine, from) {
            tracing::warn!(target: "hyperverse::access", peer = machine, from = %from, %target, privilege = %want, "forged visitor: refused");
            return Err(WaveError::Forbidden {
                caller: from.clone(),
                point: target.clone(),
            });
        }
        match self.inbound.get() {
            Some(inbound) => inbound.check(machine, from, target, want),
            None => Err(WaveError::MachineDown),
        }
    }

    /// `from`, on `machine`, asks to stop `point` here: judged (privilege
    /// `stop`), then stopped as the Machine stops it, and answered.
    pub(crate) fn stop_asked(self: &Arc<Self>, machine: &str, id: u64, from: &Point, point: Point) {
        if let Err(e) = self.judge_peer(machine, from, &point, Privilege::Stop) {
            let result = Err(WireError::from_wave(&e));
            let _ = self.send(machine, Item::Stopped { id, result });
            return;
        }
        let core = self.clone();
        let machine = machine.to_string();
        self.runtime.spawn(async move {
            let result = match core.inbound.get() {
                Some(inbound) => inbound.stop(&point).await,
                None => Err(WaveError::MachineDown),
            };
            let result = result.map_err(|e| WireError::from_wave(&e));
            let _ = core.send(&machine, Item::Stopped { id, result });
        });
    }

    /// Stops `point`, on `machine`, as `from` here; waits for the answer.
    pub(crate) async fn stop_there(
        &self,
        machine: String,
        from: Point,
        point: Point,
    ) -> Result<(), WaveError> {
        let (id, rx) = self.expect_stop(&machine);
        let item = Item::Stop {
            id,
            from,
            point: point.clone(),
        };
        if let Err(e) = self.send(&machine, item) {
            self.stops.lock().remove(&id);
            return Err(e);
        }
        let lost = |machine: String, point: Point| WaveError::MachineLost { point, machine };
        match tokio::time::timeout(crate::place::SPAWN_TIMEOUT, rx).await {
            Ok(Ok(result)) => result.map_err(|e| e.into_wave(point)),
            Ok(Err(_)) => Err(lost(machine, point)),
            Err(_) => {
                self.stops.lock().remove(&id);
                Err(WaveError::Timeout {
                    point,
                    after: crate::place::SPAWN_TIMEOUT,
                })
            }
        }
    }

    /// A stop asked of `machine`: its id, and where its answer comes.
    fn expect_stop(
        &self,
        machine: &str,
    ) -> (u64, tokio::sync::oneshot::Receiver<Result<(), WireError>>) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stops.lock().insert(id, (machine.to_string(), tx));
        (id, rx)
    }

    /// The answer to stop `id`, from `machine`: taken only from the
    /// Machine it was asked of.
    pub(crate) fn stopped(&self, machine: &str, id: u64, result: Result<(), WireError>) {
        let mut stops = self.stops.lock();
        if stops.get(&id).is_some_and(|(m, _)| m == machine) {
            if let Some((_, tx)) = stops.remove(&id) {
                let _ = tx.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperverse_runtime::access::{AccessPolicy, Grant, Visitors};
    use hyperverse_runtime::Machine;

    async fn attached() -> (Machine, Arc<Core>) {
        let machine = Machine::standalone()
            .access(AccessPolicy::Enforced)
            .build()
            .await
            .unwrap();
        let core = Arc::new(Core::new(
            "alpha",
            std::time::Duration::from_secs(1),
            tokio::runtime::Handle::current(),
        ));
        let inbound = machine
            .attach_remote(Arc::new(crate::seam::ClusterRemote(core.clone())))
            .unwrap();
        let _ = core.inbound.set(inbound);
        (machine, core)
    }

    fn grant(text: &str) -> Change {
        Change::Grant(text.parse::<Grant>().unwrap())
    }

    #[tokio::test]
    async fn a_peers_changes_apply_in_order_and_bad_ones_are_refused_alone() {
        let (machine, core) = attached().await;
        let changes = vec![
            grant("send on app:** to machine=beta"),
            Change::Join {
                group: "ops".into(),
                member: Visitors::Group("ops".into()),
            },
            Change::Join {
                group: "ops".into(),
                member: Visitors::User("".into()),
            },
            Change::Revoke("send on app:** to machine=beta".parse().unwrap()),
            grant("ask on app:** to machine=beta"),
        ];
        let refused = core.rules_from("beta", &changes).unwrap_err();
        assert!(
            matches!(
                refused,
                RulesRefused::Bad {
                    refused: 2,
                    count: 5,
                    first: RuleError::GroupInGroup { .. }
                }
            ),
            "{refused:?}"
        );
        let grants: Vec<String> = machine.rules().grants().map(|g| g.to_string()).collect();
        assert_eq!(grants, ["ask on app:** to machine=beta"]);
        assert_eq!(machine.rules().groups().count(), 0);
        machine.shutdown().await;
    }

    #[tokio::test]
    async fn an_item_with_too_many_changes_is_refused_whole() {
        let (machine, core) = attached().await;
        let one = grant("send on app to machine=beta");
        let many = vec![one.clone(); MAX_RULE_CHANGES + 1];
        assert_eq!(
            core.rules_from("beta", &many),
            Err(RulesRefused::TooMany {
                count: MAX_RULE_CHANGES + 1
            })
        );
        assert!(machine.rules().is_empty());
        assert_eq!(core.rules_from("beta", &many[..MAX_RULE_CHANGES]), Ok(()));
        assert_eq!(machine.rules().len(), 1);
        machine.shutdown().await;
    }

    #[tokio::test]
    async fn a_grant_made_here_is_broadcast_and_the_rules_go_in_bounded_items() {
        let (machine, core) = attached().await;
        for i in 0..(MAX_RULE_CHANGES + 3) {
            let g: Grant = format!("send on app:p{i} to machine=beta").parse().unwrap();
            machine.grant(g).unwrap();
        }
        let peer = core.peer("beta");
        let before = {
            let mut p = peer.lock();
            let before = p.out.len();
            core.send_rules(&mut p, "beta");
            // Two items: 1024 changes, then 3.
            assert_eq!(p.out.len() - before, 2);
            before
        };
        // A change made now goes to the peer too.
        machine
            .grant("ask on app to machine=beta".parse().unwrap())
            .unwrap();
        assert_eq!(peer.lock().out.len() - before, 3);
        machine.shutdown().await;
    }
}
