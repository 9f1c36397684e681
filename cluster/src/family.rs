//! Parents and children on different Machines.
//!
//! A child spawned for the cluster on Machine B whose parent lives on A
//! runs under B's Star (B restarts it within its restart limit) and its
//! crash notices cross to A. B tells A of it when it starts (`Adopted`),
//! so that A knows what to do if B is lost: the parent gets a crash notice
//! (`machine B lost`), and a permanent or transient child is started again
//! on A, under its parent, which survived. The other way round, B stops
//! the children whose parent ended, or whose parent's Machine is lost (A
//! starts them again on itself, so none runs twice once both sides agree
//! the link is gone).

use std::collections::HashMap;
use std::sync::Arc;

use hyperverse_runtime::{Body, CrashNotice, Kind, Point, Restart, SpawnOptions};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::core::Core;
use crate::frame::Item;

/// A child on another Machine whose parent lives here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Adoption {
    pub(crate) parent: Point,
    pub(crate) child: Point,
    pub(crate) kind: Kind,
    pub(crate) args: Body,
    pub(crate) restart: Restart,
    /// Who spawned it, as the hosting Machine knows: one of its particles
    /// or its voice (judged for `spawn` on the parent before the parent's
    /// Machine takes the child on), or a particle or the voice of the
    /// parent's Machine, which asked for the spawn itself.
    pub(crate) by: Point,
}

/// Both sides' records.
#[derive(Default)]
pub(crate) struct Family {
    /// Children on other Machines of parents here, by child, with the
    /// Machine hosting each.
    abroad: Mutex<HashMap<Point, (String, Adoption)>>,
    /// Children here of parents elsewhere: parent, then children.
    here: Mutex<HashMap<Point, Vec<Point>>>,
}

impl Core {
    /// Spawns `point` here for the cluster (a peer asked, or a placement
    /// chose this Machine), as `by` asked (already judged), and tells its
    /// parent's Machine if that is another.
    pub(crate) async fn spawn_here(
        self: &Arc<Self>,
        point: Point,
        kind: Kind,
        args: Body,
        restart: Restart,
        by: Point,
    ) -> Result<(), String> {
        let inbound = self.inbound.get().ok_or("not attached")?;
        if let Some(m) = self.locate(&point).filter(|m| *m != self.me) {
            // One particle per Point in the cluster, as Erlang's `global`.
            return Err(format!("a particle already lives at {point}, on {m}"));
        }
        let opts = SpawnOptions {
            restart,
            ..SpawnOptions::default()
        };
        inbound
            .spawn_child(point.clone(), kind.clone(), args.clone(), opts)
            .await
            .map_err(|e| e.to_string())?;
        let Some(parent) = point.parent().filter(|p| !p.is_root()) else {
            return Ok(());
        };
        if inbound.hosts(&parent) {
            return Ok(());
        }
        let Some(machine) = self.locate(&parent) else {
            return Ok(());
        };
        self.family
            .here
            .lock()
            .entry(parent.clone())
            .or_default()
            .push(point.clone());
        let _ = self.send(
            &machine,
            Item::Adopted(Adoption {
                parent,
                child: point,
                kind,
                args,
                restart,
                by,
            }),
        );
        Ok(())
    }

    /// `machine` hosts `adoption.child`, a child of a parent here: taken
    /// only if the parent is here, the child is directly under it and
    /// lives on that Machine, no other Machine has a record of it, and
    /// this Machine asked for the spawn or the rules let its spawner spawn
    /// under the parent.
    pub(crate) fn adopted(&self, machine: &str, adoption: Adoption) {
        let parent_here = self
            .inbound
            .get()
            .is_some_and(|i| i.hosts(&adoption.parent));
        let under = adoption.child.parent().as_ref() == Some(&adoption.parent);
        let there = self.locate(&adoption.child).as_deref() == Some(machine);
        let other = || {
            self.family
                .abroad
                .lock()
                .get(&adoption.child)
                .is_some_and(|(m, _)| m != machine)
        };
        if !(parent_here && under && there) || other() {
            tracing::warn!(target: "hyperverse::cluster", peer = machine, child = %adoption.child, "an adoption refused");
            return;
        }
        // Judged without the family's lock (the check reads the Registry
        // and the spawns asked); the record is then made only if no other
        // Machine's came meanwhile.
        if !self.may_adopt(machine, &adoption) {
            return;
        }
        let mut abroad = self.family.abroad.lock();
        if abroad
            .get(&adoption.child)
            .is_none_or(|(m, _)| m == machine)
        {
            abroad.insert(adoption.child.clone(), (machine.to_string(), adoption));
        }
    }

    /// Whether this Machine takes on a child `machine` hosts for a parent
    /// here (and so would start it again here if `machine` were lost): if
    /// this Machine asked `machine` for that spawn, or if its spawner there
    /// may spawn under the parent by the rules (judged as its waves are).
    /// A spawner `machine` may not speak as (a third Machine's particle,
    /// for which it spawned) is judged as `machine`'s own voice: what it
    /// vouches for is its own.
    fn may_adopt(&self, machine: &str, adoption: &Adoption) -> bool {
        if self.asked_spawn(machine, &adoption.child) {
            return true;
        }
        let by = if self.may_send_as(machine, &adoption.by) {
            adoption.by.clone()
        } else {
            Point::parse(machine).unwrap_or_else(|_| Point::root())
        };
        match self.judge_peer(
            machine,
            &by,
            &adoption.parent,
            hyperverse_runtime::access::Privilege::Spawn,
        ) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(target: "hyperverse::access", peer = machine, child = %adoption.child, error = %e, "an adoption refused");
                false
            }
        }
    }

    /// Whether `machine` told us it hosts `child` for `parent`, here.
    pub(crate) fn is_abroad(&self, machine: &str, child: &Point, parent: &Point) -> bool {
        self.family
            .abroad
            .lock()
            .get(child)
            .is_some_and(|(m, a)| m == machine && a.parent == *parent)
    }

    /// A crash notice for a parent here from its child on `machine`.
    pub(crate) fn child_crashed(&self, parent: &Point, notice: CrashNotice) {
        if let Some(inbound) = self.inbound.get() {
            inbound.notice(parent, notice);
        }
    }

    /// `point`, on `machine`, ended: if it was a child of a parent here,
    /// it is forgotten; if it was the parent of children here, they stop.
    pub(crate) fn family_ended(self: &Arc<Self>, machine: &str, point: &Point) {
        {
            let mut abroad = self.family.abroad.lock();
            if abroad.get(point).is_some_and(|(m, _)| m == machine) {
                abroad.remove(point);
            }
        }
        let orphans = self.family.here.lock().remove(point);
        self.stop_orphans(orphans.unwrap_or_default());
    }

    /// `machine` is lost: the children it hosted for parents here get
    /// their parents a notice and, if permanent or transient, start again
    /// here; the children here of its particles stop.
    pub(crate) fn family_lost(self: &Arc<Self>, machine: &str, points: &[Point]) {
        let lost: Vec<Adoption> = {
            let mut abroad = self.family.abroad.lock();
            let children: Vec<Point> = abroad
                .iter()
                .filter(|(_, (m, _))| m == machine)
                .map(|(c, _)| c.clone())
                .collect();
            children
                .into_iter()
                .filter_map(|c| abroad.remove(&c).map(|(_, a)| a))
                .collect()
        };
        for a in lost {
            let again = a.restart != Restart::Temporary;
            let Some(inbound) = self.inbound.get() else {
                return;
            };
            if !inbound.hosts(&a.parent) {
                continue;
            }
            inbound.notice(
                &a.parent,
                CrashNotice {
                    child: a.child.clone(),
                    kind: a.kind.clone(),
                    reason: format!("machine {machine} lost"),
                    restarts: 0,
                    in_period: 0,
                    star: 0,
                    supervisor: None,
                    gave_up: !again,
                    in_flight: None,
                },
            );
            if again {
                let core = self.clone();
                self.runtime.spawn(async move {
                    let child = a.child.clone();
                    let me = core.me_point.clone();
                    match core
                        .spawn_here(a.child, a.kind, a.args, a.restart, me)
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(target: "hyperverse::cluster", point = %child, "restarted here: its machine was lost")
                        }
                        Err(e) => {
                            tracing::warn!(target: "hyperverse::cluster", point = %child, error = %e, "could not restart a child of a lost machine")
                        }
                    }
                });
            }
        }
        let mut orphans = Vec::new();
        {
            let mut here = self.family.here.lock();
            for p in points {
                if let Some(children) = here.remove(p) {
                    orphans.extend(children);
                }
            }
        }
        self.stop_orphans(orphans);
    }

    fn stop_orphans(self: &Arc<Self>, orphans: Vec<Point>) {
        if orphans.is_empty() {
            return;
        }
        let core = self.clone();
        self.runtime.spawn(async move {
            let Some(inbound) = core.inbound.get() else {
                return;
            };
            for child in orphans {
                tracing::info!(target: "hyperverse::cluster", point = %child, "stopping: its parent is gone");
                let _ = inbound.stop(&child).await;
            }
        });
    }
}
