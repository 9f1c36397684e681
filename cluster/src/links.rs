//! Links between particles on different Machines (Erlang's `link/1`
//! across nodes): when an incarnation of one ends, the other gets an exit
//! signal, as a local link's; when the Machine of one is lost, the other
//! gets one with reason `machine … lost` (Erlang's `noconnection`).
//!
//! Each side keeps the link in a table of its own: remote Point, then the
//! local particles linked to it. A link is made from one side (`Link`),
//! and taken down by an exit (`Exit`, from the side whose particle
//! ended: the other side delivers it only if it still holds the link, so
//! an exit never reaches a later incarnation that did not link) or an
//! unlink (`Unlink`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hyperverse_runtime::{ExitSignal, Point, WaveError};
use parking_lot::Mutex;

use crate::core::Core;
use crate::frame::Item;

/// The reason of the exit signal a particle gets for a link to another
/// Machine's particle that the rules there refused.
pub const LINK_DENIED: &str = "denied";

/// Both directions of the table, under one lock.
#[derive(Default)]
pub(crate) struct Links {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    /// Remote Point, then its Machine and the local particles linked to
    /// it.
    by_remote: HashMap<Point, (String, HashSet<Point>)>,
    /// Local particle, then the remote Points it is linked to.
    by_local: HashMap<Point, HashSet<Point>>,
}

impl Tables {
    fn add(&mut self, local: &Point, remote: &Point, machine: &str) {
        let entry = self
            .by_remote
            .entry(remote.clone())
            .or_insert_with(|| (machine.to_string(), HashSet::new()));
        entry.0 = machine.to_string();
        entry.1.insert(local.clone());
        self.by_local
            .entry(local.clone())
            .or_default()
            .insert(remote.clone());
    }

    /// Removes one link; true if it was there.
    fn remove(&mut self, local: &Point, remote: &Point) -> bool {
        let had = self
            .by_remote
            .get_mut(remote)
            .is_some_and(|(_, s)| s.remove(local));
        if self
            .by_remote
            .get(remote)
            .is_some_and(|(_, s)| s.is_empty())
        {
            self.by_remote.remove(remote);
        }
        if let Some(s) = self.by_local.get_mut(local) {
            s.remove(remote);
            if s.is_empty() {
                self.by_local.remove(local);
            }
        }
        had
    }
}

impl Core {
    /// Links `local` here with `remote` on another Machine.
    pub(crate) fn link(&self, local: &Point, remote: &Point) -> bool {
        let Some(machine) = self.locate(remote).filter(|m| *m != self.me) else {
            return false;
        };
        self.links.inner.lock().add(local, remote, &machine);
        let _ = self.send(
            &machine,
            Item::Link {
                from: local.clone(),
                to: remote.clone(),
            },
        );
        true
    }

    /// Removes the link of `local` here with `remote`.
    pub(crate) fn unlink(&self, local: &Point, remote: &Point) {
        if self.links.inner.lock().remove(local, remote) {
            if let Some(machine) = self.locate(remote) {
                let _ = self.send(
                    &machine,
                    Item::Unlink {
                        from: local.clone(),
                        to: remote.clone(),
                    },
                );
            }
        }
    }

    /// `from`, on `machine`, linked itself with `to` here.
    pub(crate) fn linked(&self, machine: &str, from: Point, to: Point) {
        let alive = self.inbound.get().is_some_and(|i| i.hosts(&to));
        if alive {
            self.links.inner.lock().add(&to, &from, machine);
        } else {
            // Erlang's `noproc`: linking to a particle that is not there
            // is an exit signal at once.
            let _ = self.send(
                machine,
                Item::Exit {
                    from: to,
                    to: from,
                    reason: "noproc".into(),
                    normal: false,
                },
            );
        }
    }

    /// `from`, on `machine`, may not link itself with `to` here (the
    /// access rules): it hears so as an exit signal from `to` at once, and
    /// its side of the link goes. A normal one: a denial never crashes the
    /// linker (one that traps exits reads `denied`; one that does not
    /// runs on, as after a local link's `WaveError::Denied`).
    pub(crate) fn link_refused(&self, machine: &str, from: Point, to: Point, why: &WaveError) {
        tracing::debug!(target: "hyperverse::access", peer = machine, %from, %to, error = %why, "a link from a peer refused");
        let _ = self.send(
            machine,
            Item::Exit {
                from: to,
                to: from,
                reason: LINK_DENIED.into(),
                normal: true,
            },
        );
    }

    /// `from`, on `machine`, unlinked itself from `to` here.
    pub(crate) fn unlinked(&self, from: &Point, to: &Point) {
        self.links.inner.lock().remove(to, from);
    }

    /// An incarnation of `local` ended: its links across Machines fire.
    pub(crate) fn exited(&self, local: &Point, reason: &str, normal: bool) {
        let remotes = {
            let mut t = self.links.inner.lock();
            let remotes: Vec<Point> = t
                .by_local
                .get(local)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for r in &remotes {
                t.remove(local, r);
            }
            remotes
        };
        for remote in remotes {
            if let Some(machine) = self.locate(&remote) {
                let _ = self.send(
                    &machine,
                    Item::Exit {
                        from: local.clone(),
                        to: remote,
                        reason: reason.to_string(),
                        normal,
                    },
                );
            }
        }
    }

    /// An exit signal from `from` on `machine` for `to` here: delivered
    /// only if the link still stands, and was made with `from` on that
    /// Machine (its record may be gone already: a particle's end is told
    /// before its links fire).
    pub(crate) fn exit_from(&self, machine: &str, signal: ExitSignal, to: &Point) {
        {
            let mut t = self.links.inner.lock();
            let made_there = t
                .by_remote
                .get(&signal.from)
                .is_some_and(|(m, _)| m == machine);
            if !made_there || !t.remove(to, &signal.from) {
                return;
            }
        }
        if let Some(inbound) = self.inbound.get() {
            inbound.exit(to, signal);
        }
    }

    /// `machine` is lost: every link to its `points` fires here.
    pub(crate) fn links_lost(self: &Arc<Self>, machine: &str, points: &[Point]) {
        let mut fired = Vec::new();
        {
            let mut t = self.links.inner.lock();
            for remote in points {
                let locals: Vec<Point> = t
                    .by_remote
                    .get(remote)
                    .filter(|(m, _)| m == machine)
                    .map(|(_, s)| s.iter().cloned().collect())
                    .unwrap_or_default();
                for local in locals {
                    t.remove(&local, remote);
                    fired.push((local, remote.clone()));
                }
            }
        }
        let Some(inbound) = self.inbound.get() else {
            return;
        };
        for (local, remote) in fired {
            inbound.exit(
                &local,
                ExitSignal {
                    from: remote,
                    reason: format!("machine {machine} lost"),
                    normal: false,
                },
            );
        }
    }
}
