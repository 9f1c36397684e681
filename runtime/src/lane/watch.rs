//! Monitors and links, kept beside a particle's lane (under its lock, so
//! that they fire exactly once as the lane closes): who watches it, whom it
//! is linked to, and whom it watches.
//!
//! Generic over the particle type `C` it points at (the runtime's cell,
//! which holds the lane): the lane knows nothing of cells.

use std::sync::{Arc, Weak};

/// A monitor, by its number ([`crate::MonitorRef::id`]): the lists keep
/// no Points.
pub(crate) type MonitorId = u64;

/// The three lists (boxed in [`Watched`]: most particles have none).
struct Watch<C> {
    /// Who monitors this particle.
    monitors: Vec<(MonitorId, Weak<C>)>,
    /// The particles this incarnation is linked to.
    links: Vec<Weak<C>>,
    /// The monitors this incarnation set on others (removed when it ends).
    watching: Vec<(Weak<C>, MonitorId)>,
}

impl<C> Default for Watch<C> {
    fn default() -> Self {
        Watch {
            monitors: Vec::new(),
            links: Vec::new(),
            watching: Vec::new(),
        }
    }
}

/// A lane's monitors and links (whether its monitors have fired is the
/// lane's own flag, beside its others: see `LaneState`).
pub(crate) struct Watched<C> {
    watch: Option<Box<Watch<C>>>,
}

impl<C> Default for Watched<C> {
    fn default() -> Self {
        Watched { watch: None }
    }
}

impl<C> Watched<C> {
    fn watch(&mut self) -> &mut Watch<C> {
        self.watch.get_or_insert_with(Box::default)
    }

    /// Frees the lists once they are all empty: a particle that monitored
    /// or was linked once pays nothing for it afterwards.
    fn prune(&mut self) {
        if self
            .watch
            .as_ref()
            .is_some_and(|w| w.monitors.is_empty() && w.links.is_empty() && w.watching.is_empty())
        {
            self.watch = None;
        }
    }

    /// Adds a monitor.
    pub(super) fn add_monitor(&mut self, r: MonitorId, watcher: Weak<C>) {
        self.watch().monitors.push((r, watcher));
    }

    /// The watcher of a monitor, if it is there (nothing removed).
    pub(super) fn monitor_watcher(&self, r: MonitorId) -> Option<Weak<C>> {
        let watch = self.watch.as_ref()?;
        watch
            .monitors
            .iter()
            .find(|(m, _)| *m == r)
            .map(|(_, w)| w.clone())
    }

    /// Removes a monitor; its watcher if it was there (it will never fire).
    pub(super) fn remove_monitor(&mut self, r: MonitorId) -> Option<Weak<C>> {
        let watch = self.watch.as_mut()?;
        let at = watch.monitors.iter().position(|(m, _)| *m == r)?;
        let (_, watcher) = watch.monitors.swap_remove(at);
        self.prune();
        Some(watcher)
    }

    /// Forgets a monitor this particle set (demonitored, or fired).
    pub(super) fn forget_watching(&mut self, r: MonitorId) {
        if let Some(watch) = self.watch.as_mut() {
            if let Some(at) = watch.watching.iter().position(|(_, m)| *m == r) {
                watch.watching.swap_remove(at);
                self.prune();
            }
        }
    }

    /// How many entries the lists hold.
    pub(super) fn len(&self) -> usize {
        self.watch
            .as_ref()
            .map_or(0, |w| w.monitors.len() + w.links.len() + w.watching.len())
    }

    /// Adds a link to `other` (once).
    pub(super) fn add_link(&mut self, other: &Arc<C>) {
        let links = &mut self.watch().links;
        if !links
            .iter()
            .any(|l| std::ptr::eq(l.as_ptr(), Arc::as_ptr(other)))
        {
            links.push(Arc::downgrade(other));
        }
    }

    /// Removes the link to `other`, if any.
    pub(super) fn remove_link(&mut self, other: &C) {
        if let Some(watch) = self.watch.as_mut() {
            watch.links.retain(|l| !std::ptr::eq(l.as_ptr(), other));
            self.prune();
        }
    }

    /// Records a monitor this particle set on `target`.
    pub(super) fn note_watching(&mut self, target: &Arc<C>, r: MonitorId) {
        self.watch().watching.push((Arc::downgrade(target), r));
    }

    /// Takes the monitors this particle set, to remove them.
    pub(super) fn take_watching(&mut self) -> Vec<(Weak<C>, MonitorId)> {
        self.watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.watching))
            .unwrap_or_default()
    }

    /// Takes every link, to fire them.
    pub(super) fn take_links(&mut self) -> Vec<Weak<C>> {
        self.watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.links))
            .unwrap_or_default()
    }

    /// Takes the monitors to fire them.
    pub(super) fn take_monitors(&mut self) -> Vec<(MonitorId, Weak<C>)> {
        self.watch
            .as_mut()
            .map(|w| std::mem::take(&mut w.monitors))
            .unwrap_or_default()
    }
}
