//! Access rules on Points: who may send to, ask, spawn under, stop,
//! reload, link to and read which particle.
//!
//! Every wave and every management action has a visitor ([`Visitor`]):
//! the particle whose code acts (stamped by the runtime, never chosen by
//! the caller), the Machine itself (`ROOT`), a CLI user the daemon bound
//! to its socket's peer, or another Machine the cluster authenticated.
//! The Registry keeps [`Rules`] beside where each particle lives: grants
//! of [`Privileges`] on a Point or a subtree ([`Scope`]) to a pattern of
//! visitors ([`Visitors`]). A particle owns its subtree; the Machine and
//! the daemon's owner are superusers.
//!
//! A Machine's [`AccessPolicy`] says what everyone else gets: `Open` (the
//! default) lets any visitor but a confined one (a WASM guest) send, ask,
//! spawn, link and read as before rules existed, so rules only add;
//! `Enforced` gives nothing but ownership and grants.
//!
//! Rules are checked in one place, on the receiving Machine, before the
//! particle sees the wave: a denied request is answered
//! [`crate::WaveError::Denied`], a denied signal is dropped and counted
//! ([`crate::Machine::access_stats`]), both logged on the
//! `hyperverse::access` target with visitor, target and privilege.

mod grant;
mod privilege;
mod rules;
mod visitor;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

pub use grant::{Grant, Scope};
pub use privilege::{Privilege, Privileges};
pub use rules::{Change, Rules, OPEN};
pub use visitor::{Visitor, Visitors};

use crate::{Kind, Point, PointError};

/// What visitors without an owner's claim or a grant may do on a Machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AccessPolicy {
    /// Anyone not confined may send, ask, spawn, link and read anywhere
    /// ([`OPEN`]); stopping and reloading take ownership or a grant. What
    /// a Machine did before rules, so a program that sets none runs as
    /// before.
    #[default]
    Open,
    /// Nothing but ownership, superusers and grants.
    Enforced,
}

/// Who acts, borrowed for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    /// A particle (`ROOT`: the Machine).
    Particle(&'a Point),
    /// A CLI user.
    User(&'a str),
    /// Another Machine's own voice.
    Machine(&'a str),
}

/// One visit to judge: who, of what Kind, through which Machine.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    /// Who acts.
    pub who: Who<'a>,
    /// The visiting particle's Kind, when known (Kind patterns need it).
    pub kind: Option<&'a Kind>,
    /// The Machine the visit came from, if not this one.
    pub via: Option<&'a str>,
    /// A confined visitor (a WASM guest) gets nothing from the open
    /// policy: only ownership and grants.
    pub confined: bool,
    /// The Points the visiting particle's spawn granted it
    /// ([`crate::SpawnOptions::grants`]), when known: it may send to and
    /// ask each, and everything below.
    pub grants: &'a [Point],
}

impl<'a> Visit<'a> {
    /// A particle of this Machine, of unknown Kind, not confined.
    pub fn particle(point: &'a Point) -> Visit<'a> {
        Visit {
            who: Who::Particle(point),
            kind: None,
            via: None,
            confined: false,
            grants: &[],
        }
    }

    /// The visitor, owned, for an error or a log.
    pub fn visitor(&self) -> Visitor {
        match self.who {
            Who::Particle(p) => Visitor::Particle(p.clone()),
            Who::User(u) => Visitor::User(u.into()),
            Who::Machine(m) => Visitor::Machine(m.into()),
        }
    }
}

/// Why a rule or a rule change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// Not a privilege's name.
    #[error("`{text}` is not a privilege (send, ask, spawn, stop, reload, link, read, all)")]
    Privilege {
        /// The text.
        text: String,
    },
    /// Not a visitor pattern.
    #[error(
        "`{text}` is not a visitor pattern (a:b, a:b:**, kind=K, group=G, machine=M, user=U, *)"
    )]
    Visitors {
        /// The text.
        text: String,
    },
    /// Not a Point or subtree.
    #[error("`{text}` is not a scope (a:b, a:b:**, **): {error}")]
    Scope {
        /// The text.
        text: String,
        /// What is wrong with its Point.
        error: PointError,
    },
    /// Not `PRIVILEGES on SCOPE to VISITORS`.
    #[error("`{text}` is not a grant: PRIVILEGES on SCOPE to VISITORS")]
    Grant {
        /// The text.
        text: String,
    },
    /// A name (Kind, group, Machine, user) is 1 to 255 bytes.
    #[error("a name is 1 to 255 bytes, not {len}")]
    Name {
        /// Its length.
        len: usize,
    },
    /// A group's members are visitors, not groups.
    #[error("group {group} cannot hold a group")]
    GroupInGroup {
        /// The group.
        group: Arc<str>,
    },
    /// The visitor may not change rules there: only a superuser, or the
    /// particle that owns the scope's Point (groups and the policy are the
    /// superusers' alone).
    #[error("{visitor} may not change the rules on {scope}")]
    NotOwner {
        /// Who tried.
        visitor: Visitor,
        /// Where.
        scope: String,
    },
    /// The Machine is shut down.
    #[error("the machine is shut down")]
    MachineDown,
}

/// A name in a rule: 1 to 255 bytes.
pub(crate) fn name(text: &str) -> Result<Arc<str>, RuleError> {
    if text.is_empty() || text.len() > 255 {
        return Err(RuleError::Name { len: text.len() });
    }
    Ok(Arc::from(text))
}

/// `a:b` → (a:b, false); `a:b:**` → (a:b, true); `**` → (ROOT, true).
pub(crate) fn scope_text(text: &str) -> Result<(Point, bool), RuleError> {
    let bad = |error| RuleError::Scope {
        text: text.to_string(),
        error,
    };
    if text == "**" {
        return Ok((Point::root(), true));
    }
    match text.strip_suffix(":**") {
        Some(point) => Ok((Point::parse(point).map_err(bad)?, true)),
        None => Ok((Point::parse(text).map_err(bad)?, false)),
    }
}

/// Counts of what the rules refused, since the Machine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessStats {
    /// Signals dropped.
    pub denied_signals: u64,
    /// Requests answered [`crate::WaveError::Denied`].
    pub denied_requests: u64,
    /// Management actions refused (spawn, stop, fault, reload, link,
    /// monitor, registry reads).
    pub denied_actions: u64,
    /// Rule changes applied (this Machine's and its peers').
    pub changes: u64,
}

/// A Machine's access state: its policy, rules and superusers, and what
/// they refused. One per Machine, shared by its handles.
pub(crate) struct Access {
    enforced: AtomicBool,
    /// Rules and superusers under one lock: a check takes it once.
    state: RwLock<State>,
    /// Held while a change is applied and sent to the peers.
    pub(crate) changing: parking_lot::Mutex<()>,
    denied_signals: AtomicU64,
    denied_requests: AtomicU64,
    denied_actions: AtomicU64,
}

/// What a check reads under the lock.
struct State {
    rules: Rules,
    superusers: Vec<Arc<str>>,
}

impl State {
    fn is_superuser(&self, visit: &Visit<'_>) -> bool {
        match visit.who {
            Who::Particle(p) => p.is_root() && visit.via.is_none(),
            Who::User(u) => self.superusers.iter().any(|s| &**s == u),
            Who::Machine(_) => false,
        }
    }
}

/// What was judged, for the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judged {
    Signal,
    Request,
    Action,
}

impl Judged {
    /// What a check of `want` judges: a signal, a request, or an action.
    pub(crate) fn of(want: Privilege) -> Judged {
        match want {
            Privilege::Send => Judged::Signal,
            Privilege::Ask => Judged::Request,
            _ => Judged::Action,
        }
    }
}

impl Access {
    pub(crate) fn new(policy: AccessPolicy, rules: Rules, superusers: Vec<Arc<str>>) -> Access {
        Access {
            enforced: AtomicBool::new(policy == AccessPolicy::Enforced),
            state: RwLock::new(State { rules, superusers }),
            changing: parking_lot::Mutex::new(()),
            denied_signals: AtomicU64::new(0),
            denied_requests: AtomicU64::new(0),
            denied_actions: AtomicU64::new(0),
        }
    }

    pub(crate) fn policy(&self) -> AccessPolicy {
        if self.enforced.load(Ordering::Relaxed) {
            AccessPolicy::Enforced
        } else {
            AccessPolicy::Open
        }
    }

    pub(crate) fn set_policy(&self, policy: AccessPolicy) {
        self.enforced
            .store(policy == AccessPolicy::Enforced, Ordering::Relaxed);
    }

    /// Whether `visit` is a superuser here: the Machine itself (not a
    /// peer's), or a user named a superuser.
    pub(crate) fn is_superuser(&self, visit: &Visit<'_>) -> bool {
        self.state.read().is_superuser(visit)
    }

    /// Whether `visit` may do `want` to `target`.
    #[cfg(test)]
    pub(crate) fn allows(&self, visit: &Visit<'_>, target: &Point, want: Privilege) -> bool {
        self.fast(visit, target, want) || self.slow(visit, target, want)
    }

    /// The checks that need neither a lock nor the visitor's Kind and
    /// grants: the open policy's privileges, the Machine, a particle in
    /// its own subtree. What most waves pass by.
    #[inline]
    pub(crate) fn fast(&self, visit: &Visit<'_>, target: &Point, want: Privilege) -> bool {
        if !self.enforced.load(Ordering::Relaxed) && !visit.confined && OPEN.has(want) {
            return true;
        }
        match visit.who {
            // The Machine itself (a peer's root is never let through).
            Who::Particle(p) if p.is_root() => visit.via.is_none(),
            Who::Particle(p) => p.contains(target),
            _ => false,
        }
    }

    /// The rest of the check: superusers, then the rules, under their
    /// read lock. `visit` carries the visitor's Kind and spawn grants if
    /// it has any.
    #[inline(never)]
    pub(crate) fn slow(&self, visit: &Visit<'_>, target: &Point, want: Privilege) -> bool {
        let state = self.state.read();
        if state.is_superuser(visit) {
            return true;
        }
        let open = !self.enforced.load(Ordering::Relaxed);
        state.rules.allows(open, visit, target, want)
    }

    /// Counts and logs a refusal.
    #[cold]
    pub(crate) fn denied(&self, visit: &Visit<'_>, target: &Point, want: Privilege, what: Judged) {
        let counter = match what {
            Judged::Signal => &self.denied_signals,
            Judged::Request => &self.denied_requests,
            Judged::Action => &self.denied_actions,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: crate::targets::ACCESS,
            visitor = %visit.visitor(),
            target = %target,
            privilege = %want,
            what = ?what,
            "access denied"
        );
    }

    /// A copy of the rules.
    pub(crate) fn rules(&self) -> Rules {
        self.state.read().rules.clone()
    }

    pub(crate) fn apply(&self, change: &Change) -> Result<(), RuleError> {
        self.state.write().rules.apply(change)
    }

    pub(crate) fn set_superusers(&self, users: Vec<Arc<str>>) {
        self.state.write().superusers = users;
    }

    pub(crate) fn stats(&self) -> AccessStats {
        AccessStats {
            denied_signals: self.denied_signals.load(Ordering::Relaxed),
            denied_requests: self.denied_requests.load(Ordering::Relaxed),
            denied_actions: self.denied_actions.load(Ordering::Relaxed),
            changes: self.state.read().rules.generation(),
        }
    }
}

#[cfg(test)]
mod model;
