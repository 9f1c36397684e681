//! Monitors and links, kept beside a particle's lane: who watches it,
//! whom it is linked to, and whom it watches.

use std::sync::{Arc, Weak};

use super::queue::{LaneQueue, LaneState};
use crate::cell::ParticleCell;
/// A monitor, by its number ([`crate::MonitorId::id`]): the lists keep
/// no Points.
pub(crate) type MonitorId = u64;
#[derive(Default)]
pub(crate) struct Watch {
    /// Who monitors this particle.
    pub(super) monitors: Vec<(MonitorId, Weak<ParticleCell>)>,
    /// The particles this incarnation is linked to.
    pub(super) links: Vec<Weak<ParticleCell>>,
    /// The monitors this incarnation set on others (removed when it ends).
    pub(super) watching: Vec<(Weak<ParticleCell>, MonitorId)>,
}

impl LaneState {
    pub(super) fn watch(&mut self) -> &mut Watch {
        self.watch.get_or_insert_with(Box::default)
    }

    /// Frees the watch lists once they are all empty: a particle that
    /// monitored or was linked once pays nothing for it afterwards.
    pub(super) fn prune_watch(&mut self) {
        if self
            .watch
            .as_ref()
            .is_some_and(|w| w.monitors.is_empty() && w.links.is_empty() && w.watching.is_empty())
        {
            self.watch = None;
        }
    }
}

impl LaneQueue {
    /// Adds a monitor; false if the particle's monitors already fired (it
    /// has ended), so the caller delivers the notice itself.
    pub(crate) fn add_monitor(&self, r: MonitorId, watcher: Weak<ParticleCell>) -> bool {
        let mut st = self.state.lock();
        if st.monitors_fired {
            return false;
        }
        st.watch().monitors.push((r, watcher));
        true
    }

    /// Removes a monitor; its watcher if it was there (it will never fire).
    pub(crate) fn remove_monitor(&self, r: MonitorId) -> Option<Weak<ParticleCell>> {
        let mut st = self.state.lock();
        let watch = st.watch.as_mut()?;
        let at = watch.monitors.iter().position(|(m, _)| *m == r)?;
        let (_, watcher) = watch.monitors.swap_remove(at);
        st.prune_watch();
        Some(watcher)
    }

    /// Forgets a monitor this particle set (demonitored, or fired): the
    /// watcher keeps nothing of a target it no longer watches.
    pub(crate) fn forget_watching(&self, r: MonitorId) {
        let mut st = self.state.lock();
        if let Some(watch) = st.watch.as_mut() {
            if let Some(at) = watch.watching.iter().position(|(_, m)| *m == r) {
                watch.watching.swap_remove(at);
                st.prune_watch();
            }
        }
    }

    /// Monitors on this particle, links, and monitors it set: what its
    /// watch lists hold (for tests of their growth).
    pub(crate) fn watch_len(&self) -> usize {
        self.state
            .lock()
            .watch
            .as_ref()
            .map_or(0, |w| w.monitors.len() + w.links.len() + w.watching.len())
    }

    /// Adds a link to `other` (once); false if this lane is closed.
    pub(crate) fn add_link(&self, other: &Arc<ParticleCell>) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        let links = &mut st.watch().links;
        if !links
            .iter()
            .any(|l| std::ptr::eq(l.as_ptr(), Arc::as_ptr(other)))
        {
            links.push(Arc::downgrade(other));
        }
        true
    }

    /// Removes the link to `other`, if any.
    pub(crate) fn remove_link(&self, other: &ParticleCell) {
        let mut st = self.state.lock();
        if let Some(watch) = st.watch.as_mut() {
            watch.links.retain(|l| !std::ptr::eq(l.as_ptr(), other));
            st.prune_watch();
        }
    }

    /// Records a monitor this particle set on `target`.
    pub(crate) fn note_watching(&self, target: &Arc<ParticleCell>, r: MonitorId) {
        self.state
            .lock()
            .watch()
            .watching
            .push((Arc::downgrade(target), r));
    }

    /// Takes the monitors this particle set, to remove them.
    pub(crate) fn take_watching(&self) -> Vec<(Weak<ParticleCell>, MonitorId)> {
        self.state
            .lock()
            .watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.watching))
            .unwrap_or_default()
    }

    /// Takes every link, to fire them.
    pub(crate) fn take_links(&self) -> Vec<Weak<ParticleCell>> {
        self.state
            .lock()
            .watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.links))
            .unwrap_or_default()
    }

    /// Takes the monitors to fire them, once.
    pub(crate) fn take_monitors(&self) -> Vec<(MonitorId, Weak<ParticleCell>)> {
        let mut st = self.state.lock();
        st.monitors_fired = true;
        st.watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.monitors))
            .unwrap_or_default()
    }
}
