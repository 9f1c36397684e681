//! What every connection of the daemon shares: the Machine, its WASM
//! host, its metrics, and the daemon's own notes (module loads and
//! reloads, which are not runtime events) for `hyperverse events`.

use std::sync::Arc;

use hyperverse::modules::WasmHost;
use hyperverse::Machine;
use tokio::sync::{broadcast, Notify};

use super::metrics::Metrics;

/// One note for followers: what, about which Point or module, a detail.
#[derive(Debug, Clone)]
pub struct Note {
    pub what: String,
    pub point: String,
    pub detail: String,
}

/// The daemon's shared state (cheap to clone).
#[derive(Clone)]
pub struct Daemon {
    pub machine: Machine,
    pub host: WasmHost,
    pub metrics: Arc<Metrics>,
    /// The cluster this daemon's Machine joined, if any.
    pub cluster: Option<Arc<hyperverse::cluster::Cluster>>,
    /// This Machine's name in `tree` rows (`local` when standalone).
    pub name: String,
    pub notes: broadcast::Sender<Note>,
    /// Notified once a client asks the daemon to stop.
    pub stop: Arc<Notify>,
}

impl Daemon {
    /// Tells followers of `events` (none listening is fine).
    pub fn note(&self, what: &str, point: &str, detail: String) {
        let _ = self.notes.send(Note {
            what: what.to_string(),
            point: point.to_string(),
            detail,
        });
    }
}
