//! What every connection of the daemon shares: the Machine, its WASM
//! host, its metrics, and the daemon's own notes (module loads and
//! reloads, which are not runtime events) for `hyperverse events`; and,
//! in each connection's copy, the user it acts as.

use std::sync::Arc;

use hyperverse::modules::WasmHost;
use hyperverse::Machine;
use tokio::sync::{broadcast, Notify};

use super::metrics::Metrics;
use super::users::{Unknown, Users};

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
    /// The handle requests act through: the Machine's own in the shared
    /// state (the module watcher's), a CLI user's ([`Machine::as_user`])
    /// in a connection's copy ([`Daemon::for_peer`]), so that every
    /// action a client asks for is judged as that user's.
    pub machine: Machine,
    /// The Machine's own handle, which sees every particle: for checks
    /// that must not miss the ones a user may not read (a reload's).
    pub owner: Machine,
    /// Whether `machine`'s visitor is a superuser (the owner, or one the
    /// config names): who may stop the daemon.
    pub superuser: bool,
    /// The users the control socket serves, by uid.
    pub users: Arc<Users>,
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

    /// The copy a connection from a peer of uid `uid` acts through: its
    /// user's handle.
    ///
    /// # Errors
    ///
    /// [`Unknown`] if the uid is no user's (and there is no default user).
    pub fn for_uid(&self, uid: u32) -> Result<Daemon, Unknown> {
        let who = self.users.identify(uid)?;
        // The shared state's handle is the Machine's own, which may make
        // user handles; a name `Users` gave is a valid one.
        let machine = self
            .owner
            .as_user(&who.name)
            .map_err(|e| Unknown::Refused {
                name: who.name.clone(),
                why: e.to_string(),
            })?;
        Ok(Daemon {
            machine,
            superuser: who.superuser,
            ..self.clone()
        })
    }
}
