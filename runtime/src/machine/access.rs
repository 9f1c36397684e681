//! The Machine's side of access rules: who its handle acts as, the checks
//! of management actions, and the rule changes it takes and replicates.

use std::sync::Arc;

use crate::access::{
    Access, AccessPolicy, AccessStats, Change, Grant, Judged, Privilege, RuleError, Rules, Visit,
    Visitor, Visitors, Who,
};
use crate::{Machine, Point};

/// Where a wave's visitor comes from, beside its sender's Point: what the
/// receiving side needs to judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin<'a> {
    /// Code of this Machine: the sender Point is the running particle's,
    /// or `ROOT`.
    Local,
    /// A CLI user, through a handle of [`Machine::as_user`] (the sender
    /// Point is `ROOT`: the Machine relays for it).
    User(&'a str),
    /// Another Machine: the sender is one of its particles, or its own
    /// voice (the Point named as it).
    Peer(&'a str),
}

impl<'a> Origin<'a> {
    /// The visit of a wave from `from`.
    #[inline]
    pub(crate) fn visit(self, from: &'a Point) -> Visit<'a> {
        let (who, via) = match self {
            Origin::Local => (Who::Particle(from), None),
            Origin::User(u) => (Who::User(u), None),
            Origin::Peer(m) if from.as_str() == m => (Who::Machine(m), Some(m)),
            Origin::Peer(m) => (Who::Particle(from), Some(m)),
        };
        Visit {
            who,
            kind: None,
            via,
            confined: false,
            grants: &[],
        }
    }
}

/// Whether `visit` may do `want` to `target`: the fast paths first; then,
/// for a sender of this Machine running on this thread (`local`), its Kind
/// and spawn grants, read from its cell only now.
#[inline]
pub(crate) fn judge(
    access: &Access,
    visit: &Visit<'_>,
    local: bool,
    target: &Point,
    want: Privilege,
) -> bool {
    if access.fast(visit, target, want) {
        return true;
    }
    match visit.who {
        Who::Particle(from) if local => crate::cell::with_running(from, |cell| {
            let visit = Visit {
                kind: cell.map(|c| c.kind()),
                grants: cell.map_or(&[], |c| c.grants()),
                ..*visit
            };
            access.slow(&visit, target, want)
        }),
        _ => access.slow(visit, target, want),
    }
}

/// Judges a wave at the receiving side: `Err` is the refusal to answer a
/// request with (a denied signal is dropped by the caller), already
/// counted and logged.
#[inline]
pub(crate) fn admit(
    access: &Access,
    from: &Point,
    origin: Origin<'_>,
    target: &Point,
    want: Privilege,
) -> Result<(), crate::WaveError> {
    let visit = origin.visit(from);
    if judge(access, &visit, origin == Origin::Local, target, want) {
        return Ok(());
    }
    Err(refuse(access, &visit, target, want))
}

#[cold]
#[inline(never)]
fn refuse(access: &Access, visit: &Visit<'_>, target: &Point, want: Privilege) -> crate::WaveError {
    access.denied(visit, target, want, Judged::of(want));
    crate::WaveError::Denied {
        visitor: visit.visitor(),
        point: target.clone(),
        privilege: want,
    }
}

impl Machine {
    /// A handle on this Machine that acts as the CLI user `user`: every
    /// wave it sends and every action it takes is judged as that user's
    /// (its waves reach particles from `ROOT`, the Machine relaying them).
    /// For the daemon, which binds a user to its control socket's peer
    /// credentials.
    ///
    /// # Errors
    ///
    /// [`RuleError::NotOwner`] unless called by the Machine itself (code
    /// outside every handler, through a handle that is not a user's);
    /// [`RuleError::Name`] for an empty name or one over 255 bytes.
    ///
    /// ```
    /// use hyperverse_runtime::access::Privilege;
    /// use hyperverse_runtime::*;
    /// # #[tokio::main] async fn main() {
    /// let machine = Machine::standalone()
    ///     .access(access::AccessPolicy::Enforced)
    ///     .superuser("root-user")
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// let alice = machine.as_user("alice").unwrap();
    /// let app: Point = "app".parse().unwrap();
    /// assert!(!alice.may(Privilege::Spawn, &Point::root()));
    /// machine.grant("spawn on ROOT to user=alice".parse().unwrap()).unwrap();
    /// assert!(alice.may(Privilege::Spawn, &Point::root()));
    /// assert!(!alice.may(Privilege::Stop, &app));
    /// assert!(machine.as_user("root-user").unwrap().may(Privilege::Stop, &app));
    /// # machine.shutdown().await;
    /// # }
    /// ```
    pub fn as_user(&self, user: &str) -> Result<Machine, RuleError> {
        self.must_be_superuser("users")?;
        let user = crate::access::name(user)?;
        Ok(Machine {
            shared: self.shared.clone(),
            user: Some(user),
        })
    }

    /// The sender this handle stamps on a wave: `ROOT` for a user's (the
    /// Machine relays it), else the running particle, else `ROOT`.
    pub(crate) fn stamp(&self) -> Point {
        match self.user {
            Some(_) => Point::root(),
            None => crate::stamp::sender(),
        }
    }

    /// A handle of the Machine's own (no user's).
    pub(crate) fn own(&self) -> Machine {
        Machine {
            shared: self.shared.clone(),
            user: None,
        }
    }

    /// The CLI user this handle acts as, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Who acts through this handle now: its user, else the particle whose
    /// handler runs on this thread, else the Machine (`ROOT`).
    pub fn visitor(&self) -> Visitor {
        match &self.user {
            Some(u) => Visitor::User(u.clone()),
            None => Visitor::Particle(crate::stamp::sender()),
        }
    }

    /// Whether this handle's visitor ([`Machine::visitor`]) may do `want`
    /// to `target` now. What the runtime checks itself before each action;
    /// for a Driver or a daemon that asks before acting.
    pub fn may(&self, want: Privilege, target: &Point) -> bool {
        let from = self.stamp();
        let visit = self.visit_of(&from);
        judge(
            &self.shared.access,
            &visit,
            self.user.is_none(),
            target,
            want,
        )
    }

    /// The visit of this handle's actions, with `from` its stamped sender.
    pub(crate) fn visit_of<'a>(&'a self, from: &'a Point) -> Visit<'a> {
        match &self.user {
            Some(u) => Origin::User(u).visit(from),
            None => Origin::Local.visit(from),
        }
    }

    /// The origin of this handle's waves.
    pub(crate) fn origin(&self) -> Origin<'_> {
        match &self.user {
            Some(u) => Origin::User(u),
            None => Origin::Local,
        }
    }

    /// Checks a management action of this handle's visitor: `Err` is the
    /// refused visitor, counted and logged.
    pub(crate) fn check_action(&self, want: Privilege, target: &Point) -> Result<(), Visitor> {
        let from = self.stamp();
        let visit = self.visit_of(&from);
        if judge(
            &self.shared.access,
            &visit,
            self.user.is_none(),
            target,
            want,
        ) {
            return Ok(());
        }
        self.shared
            .access
            .denied(&visit, target, want, Judged::Action);
        Err(visit.visitor())
    }

    /// Whether this handle's visitor may give a particle it spawns these
    /// spawn grants: a superuser any; a particle only what it holds
    /// itself (its own subtree, its own spawn grants), so that no spawn
    /// launders rights; a user none.
    pub(crate) fn may_give(&self, grants: &[Point]) -> bool {
        if self.may_as_superuser() {
            return true;
        }
        if self.user.is_some() {
            return false;
        }
        let me = crate::stamp::sender();
        crate::cell::with_running(&me, |cell| {
            grants.iter().all(|g| {
                me.contains(g) || cell.is_some_and(|c| c.grants().iter().any(|x| x.contains(g)))
            })
        })
    }

    /// Whether this handle's visitor is a superuser.
    pub(crate) fn may_as_superuser(&self) -> bool {
        let from = self.stamp();
        self.shared.access.is_superuser(&self.visit_of(&from))
    }

    fn must_be_superuser(&self, what: &str) -> Result<(), RuleError> {
        let from = self.stamp();
        let visit = self.visit_of(&from);
        if self.shared.access.is_superuser(&visit) {
            Ok(())
        } else {
            Err(RuleError::NotOwner {
                visitor: visit.visitor(),
                scope: what.to_string(),
            })
        }
    }

    /// Adds `grant`'s privileges for its visitors on its scope; in force
    /// for the next wave, and sent to every Machine of the cluster.
    ///
    /// # Errors
    ///
    /// [`RuleError::NotOwner`] unless this handle's visitor is a superuser
    /// or the particle owning the scope's Point (a particle grants on its
    /// own subtree); [`RuleError::Name`] for a bad name in it.
    pub fn grant(&self, grant: Grant) -> Result<(), RuleError> {
        self.must_own(&grant.on.point, &grant.on.to_string())?;
        self.change(Change::Grant(grant))
    }

    /// Takes `grant`'s privileges away from its visitors on its scope (what
    /// other grants give them stays); as [`Machine::grant`].
    ///
    /// # Errors
    ///
    /// As [`Machine::grant`].
    pub fn revoke(&self, grant: Grant) -> Result<(), RuleError> {
        self.must_own(&grant.on.point, &grant.on.to_string())?;
        self.change(Change::Revoke(grant))
    }

    /// `member` joins `group`, for grants to `group=NAME`.
    ///
    /// # Errors
    ///
    /// [`RuleError::NotOwner`] unless a superuser;
    /// [`RuleError::GroupInGroup`], [`RuleError::Name`].
    pub fn join_group(&self, group: &str, member: Visitors) -> Result<(), RuleError> {
        self.must_be_superuser("groups")?;
        let group = crate::access::name(group)?;
        self.change(Change::Join { group, member })
    }

    /// `member` leaves `group`.
    ///
    /// # Errors
    ///
    /// As [`Machine::join_group`].
    pub fn leave_group(&self, group: &str, member: Visitors) -> Result<(), RuleError> {
        self.must_be_superuser("groups")?;
        let group = crate::access::name(group)?;
        self.change(Change::Leave { group, member })
    }

    fn must_own(&self, point: &Point, scope: &str) -> Result<(), RuleError> {
        let from = self.stamp();
        let visit = self.visit_of(&from);
        let owns = match visit.who {
            Who::Particle(p) => !p.is_root() && p.contains(point),
            _ => false,
        };
        if owns || self.shared.access.is_superuser(&visit) {
            Ok(())
        } else {
            Err(RuleError::NotOwner {
                visitor: visit.visitor(),
                scope: scope.to_string(),
            })
        }
    }

    fn change(&self, change: Change) -> Result<(), RuleError> {
        if self.shared.down.load(std::sync::atomic::Ordering::Acquire) {
            return Err(RuleError::MachineDown);
        }
        // Applied and sent on as one step: two changes made at once reach
        // the peers in the order they were applied here.
        let _order = self.shared.access.changing.lock();
        self.shared.access.apply(&change)?;
        tracing::info!(target: crate::targets::ACCESS, ?change, "rules changed");
        if let Some(remote) = self.shared.remote.get() {
            remote.rules_changed(&change);
        }
        Ok(())
    }

    /// Applies a rule change a peer Machine made (the cluster calls this
    /// through [`crate::Inbound::rules_changed`]): not sent on again.
    pub(crate) fn apply_peer_change(&self, change: &Change) -> Result<(), RuleError> {
        self.shared.access.apply(change)
    }

    /// A copy of the rules in force.
    pub fn rules(&self) -> Rules {
        self.shared.access.rules()
    }

    /// The Machine's [`AccessPolicy`].
    pub fn access_policy(&self) -> AccessPolicy {
        self.shared.access.policy()
    }

    /// Sets the Machine's [`AccessPolicy`]: in force for the next wave. A
    /// Machine's own (not replicated: each Machine of a cluster chooses).
    ///
    /// # Errors
    ///
    /// [`RuleError::NotOwner`] unless a superuser.
    pub fn set_access_policy(&self, policy: AccessPolicy) -> Result<(), RuleError> {
        self.must_be_superuser("the access policy")?;
        tracing::info!(target: crate::targets::ACCESS, ?policy, "access policy set");
        self.shared.access.set_policy(policy);
        Ok(())
    }

    /// Names the CLI users who are superusers here (the daemon's owner),
    /// replacing those named before.
    ///
    /// # Errors
    ///
    /// [`RuleError::NotOwner`] unless a superuser; [`RuleError::Name`].
    pub fn set_superusers(&self, users: &[&str]) -> Result<(), RuleError> {
        self.must_be_superuser("superusers")?;
        let users = users
            .iter()
            .map(|u| crate::access::name(u))
            .collect::<Result<Vec<Arc<str>>, _>>()?;
        self.shared.access.set_superusers(users);
        Ok(())
    }

    /// What the rules refused so far.
    pub fn access_stats(&self) -> AccessStats {
        self.shared.access.stats()
    }
}
