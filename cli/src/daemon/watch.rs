//! `[modules] watch = true`: a loaded module whose file changes is
//! reloaded, as `hyperverse module reload NAME` would.
//!
//! Polled (every [`EVERY`]) rather than told by inotify: a handful of
//! files' metadata twice a second costs nothing, works on every file
//! system (network mounts and editors that replace files included), and
//! needs no platform-specific crate. Only loaded modules are looked at (no
//! folder is listed), and one reload at a time: a slow reload delays the
//! next module's, which a watcher of files edited by hand can afford. A
//! change is a new modification time or length; a file that stops
//! changing for one poll is then read, so a half-written file is not
//! loaded in the middle of its write.

use std::collections::HashMap;
use std::time::Duration;

use hyperverse::modules::FileStamp;

use super::state::Daemon;

/// How often the files are looked at.
pub const EVERY: Duration = Duration::from_millis(500);

/// Watches until the task is aborted.
///
/// A module's file has changed when its stamp now differs from its stamp
/// when the module last read it (kept by the host, so a change made before
/// the watcher first looked still counts). A change is reloaded once the
/// file has held still for one poll; a file that fails to load is not
/// tried again until it changes again.
pub async fn watch(d: Daemon) {
    // Per module: a change seen on the last poll, and a stamp that failed.
    let mut settling: HashMap<String, FileStamp> = HashMap::new();
    let mut failed: HashMap<String, FileStamp> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for m in d.host.loaded() {
            let (Some(_), Some(file), Some(read)) = (&m.current, &m.file, m.stamp) else {
                continue;
            };
            let Some(now) = file.stamp() else {
                continue;
            };
            if now == read || failed.get(&m.name) == Some(&now) {
                settling.remove(&m.name);
                continue;
            }
            if settling.get(&m.name) != Some(&now) {
                // Changed: wait one poll for it to hold still.
                settling.insert(m.name.clone(), now);
                continue;
            }
            settling.remove(&m.name);
            tracing::info!(module = %m.name, file = %file.path.display(), "module file changed: reloading");
            match super::answer::reload(&d, &m.name, |_, _| {}).await {
                super::protocol::Answer::Error(e) => {
                    tracing::warn!(module = %m.name, error = %e, "the changed file was not loaded");
                    failed.insert(m.name.clone(), now);
                    d.note("reload-failed", &m.name, e);
                }
                _ => {
                    failed.remove(&m.name);
                }
            }
        }
    }
}
