//! The runtime's [`Remote`] seam, on the cluster's state: what a Machine
//! does with a send, a spawn, an end, a monitor or a link that concerns a
//! Point on another Machine.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyperverse_runtime::remote::{Answerer, Remote};
use hyperverse_runtime::{Body, CrashNotice, DownReason, MonitorRef, Point, Wave, WaveError};

use crate::core::{Core, Pending};
use crate::frame::Item;

/// The runtime's seam, on the cluster's state.
pub(crate) struct ClusterRemote(pub(crate) Arc<Core>);

impl ClusterRemote {
    fn route(&self, mut wave: Wave) -> Result<(String, Wave), WaveError> {
        let Some(machine) = self.0.locations.read().get(&wave.to).cloned() else {
            return Err(WaveError::NoSuchParticle { point: wave.to });
        };
        if wave.from.is_root() {
            // This Machine's own voice: its name, on the other side (never
            // the other Machine's root).
            wave.from = self.0.me_point.clone();
        }
        Ok((machine, wave))
    }
}

impl Remote for ClusterRemote {
    fn hosts(&self, point: &Point) -> bool {
        self.0.locations.read().contains_key(point)
    }

    fn signal(&self, wave: Wave) -> Result<(), WaveError> {
        let (machine, wave) = self.route(wave)?;
        self.0.send(&machine, Item::Signal(wave))
    }

    fn control(&self, from: Point, to: Point, body: Body, answer: Answerer) {
        let probe = Wave::request(from, to, "", Body::empty());
        let (machine, probe) = match self.route(probe) {
            Ok(r) => r,
            Err(e) => return answer.answer(Err(e)),
        };
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        self.0.pending.lock().insert(
            id,
            Pending {
                machine: machine.clone(),
                to: probe.to.clone(),
                answer,
            },
        );
        let item = Item::Control {
            id,
            from: probe.from,
            to: probe.to,
            body,
        };
        if let Err(e) = self.0.send(&machine, item) {
            if let Some(p) = self.0.pending.lock().remove(&id) {
                p.answer.answer(Err(e));
            }
        }
    }

    fn ask(&self, wave: Wave, answer: Answerer) {
        let (machine, wave) = match self.route(wave) {
            Ok(r) => r,
            Err(e) => return answer.answer(Err(e)),
        };
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let to = wave.to.clone();
        self.0.pending.lock().insert(
            id,
            Pending {
                machine: machine.clone(),
                to,
                answer,
            },
        );
        if let Err(e) = self.0.send(&machine, Item::Request { id, wave }) {
            if let Some(p) = self.0.pending.lock().remove(&id) {
                p.answer.answer(Err(e));
            }
        }
    }

    fn registered(&self, point: &Point) {
        self.0.broadcast(|| Item::Hosted {
            points: vec![point.clone()],
        });
    }

    fn ended(&self, point: &Point, reason: &DownReason) {
        let me = self.0.me.clone();
        self.0.groups_gone(&me, std::slice::from_ref(point));
        self.0.broadcast(|| Item::Ended {
            point: point.clone(),
            reason: reason.clone(),
        });
    }

    fn monitor(&self, watcher: &Point, monitor: &MonitorRef) -> bool {
        let mut monitors = self.0.monitors.lock();
        if !self.0.locations.read().contains_key(monitor.target()) {
            return false;
        }
        monitors
            .entry(monitor.target().clone())
            .or_default()
            .push((watcher.clone(), monitor.clone()));
        *self.0.watchers.lock().entry(watcher.clone()).or_default() += 1;
        true
    }

    fn crash_notice(&self, parent: &Point, notice: CrashNotice) {
        if let Some(machine) = self.0.locate(parent).filter(|m| *m != self.0.me) {
            let _ = self.0.send(
                &machine,
                Item::Crash {
                    parent: parent.clone(),
                    notice,
                },
            );
        }
    }

    fn link(&self, local: &Point, remote: &Point) -> bool {
        self.0.link(local, remote)
    }

    fn unlink(&self, local: &Point, remote: &Point) {
        self.0.unlink(local, remote);
    }

    fn exited(&self, local: &Point, reason: &str, normal: bool) {
        self.0.exited(local, reason, normal);
        // Its monitors belong to the incarnation that ended, as local
        // ones do: a later particle at its Point never hears of them.
        self.0.forget_watcher(local);
    }

    fn rules_changed(&self, change: &hyperverse_runtime::access::Change) {
        self.0.rules_changed(change);
    }

    fn demonitor(&self, monitor: &MonitorRef) -> bool {
        let mut monitors = self.0.monitors.lock();
        let Some(list) = monitors.get_mut(monitor.target()) else {
            return false;
        };
        let before = list.len();
        list.retain(|(_, r)| r != monitor);
        let removed = list.len() < before;
        if list.is_empty() {
            monitors.remove(monitor.target());
        }
        removed
    }
}
