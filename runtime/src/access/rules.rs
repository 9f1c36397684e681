//! The rule table: grants and groups, indexed for a check per wave.
//!
//! The grants themselves are a set keyed by (scope, visitors); the index
//! beside them is what a check reads. A check walks the target's Point
//! up to the root (a handful of segments), and at each Point that holds
//! grants looks the visitor up by key: the cost grows with the depth of
//! the two Points, not with the number of rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Grant, Privilege, Privileges, RuleError, Scope, Visit, Visitors, Who};
use crate::Point;

/// What the open policy allows any visitor that is not confined: what
/// every particle could do before access rules (send, ask, spawn, link,
/// read); stopping and reloading stay with owners and grants.
pub const OPEN: Privileges = Privileges::of(&[
    Privilege::Send,
    Privilege::Ask,
    Privilege::Spawn,
    Privilege::Link,
    Privilege::Read,
]);

/// One change to the rules: what the runtime API and the CLI make, and
/// what the cluster replicates, in order, to every Machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Adds the grant's privileges for its (scope, visitors).
    Grant(Grant),
    /// Takes the grant's privileges away from its (scope, visitors).
    Revoke(Grant),
    /// `member` joins `group`.
    Join {
        /// The group.
        group: Arc<str>,
        /// Who joins (not a group).
        member: Visitors,
    },
    /// `member` leaves `group`.
    Leave {
        /// The group.
        group: Arc<str>,
        /// Who leaves.
        member: Visitors,
    },
}

/// The rules: grants on Points for patterns of visitors, and the groups
/// those patterns may name. Every Machine keeps them beside its Registry
/// (read with [`crate::Machine::rules`]), and the cluster replicates them
/// with the Registry's records; changed through [`crate::Machine::grant`]
/// and its siblings.
///
/// ```
/// use hyperverse_runtime::access::{Change, Privilege, Rules, Visit, Who};
/// use hyperverse_runtime::Point;
///
/// let mut rules = Rules::default();
/// rules.apply(&Change::Grant("ask on db:** to web:**".parse().unwrap())).unwrap();
/// let web: Point = "web:front".parse().unwrap();
/// let db: Point = "db:main".parse().unwrap();
/// let visit = Visit::particle(&web);
/// assert!(rules.allows(false, &visit, &db, Privilege::Ask));
/// assert!(!rules.allows(false, &visit, &db, Privilege::Stop));
/// // A particle owns its subtree, and may write to its parent.
/// assert!(rules.allows(false, &visit, &"web:front:cache".parse().unwrap(), Privilege::Stop));
/// assert!(rules.allows(false, &visit, &"web".parse().unwrap(), Privilege::Send));
/// ```
#[derive(Default, Clone)]
pub struct Rules {
    grants: BTreeMap<(Scope, Visitors), Privileges>,
    groups: BTreeMap<Arc<str>, BTreeSet<Visitors>>,
    /// The groups of each member pattern: a check asks only the visitor's.
    members: Keyed<BTreeSet<Arc<str>>>,
    index: HashMap<Box<str>, Node, ahash::RandomState>,
    /// Bumped by every change that changes something.
    generation: u64,
}

/// The grants attached at one Point.
#[derive(Default, Clone)]
struct Node {
    exact: Entries,
    subtree: Entries,
}

/// Grants at one Point for one kind of scope: by visitor pattern, and by
/// group.
#[derive(Default, Clone)]
struct Entries {
    privileges: Keyed<Privileges>,
    groups: HashMap<Arc<str>, Privileges, ahash::RandomState>,
}

/// Values by visitor pattern (groups aside), looked up by visit: a key per
/// pattern (`p` Point, `s` subtree, `k` Kind, `m` Machine, `u` user), so a
/// visit costs a lookup per segment of its Point, whatever the count.
#[derive(Clone)]
struct Keyed<V> {
    anyone: Option<V>,
    keyed: HashMap<Box<str>, V, ahash::RandomState>,
    /// Which tags `keyed` has held: a tag never seen costs no lookup.
    tags: u8,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            anyone: None,
            keyed: HashMap::default(),
            tags: 0,
        }
    }
}

const T_POINT: u8 = b'p';
const T_SUBTREE: u8 = b's';
const T_KIND: u8 = b'k';
const T_MACHINE: u8 = b'm';
const T_USER: u8 = b'u';

fn tag_bit(tag: u8) -> u8 {
    match tag {
        T_POINT => 1,
        T_SUBTREE => 2,
        T_KIND => 4,
        T_MACHINE => 8,
        _ => 16,
    }
}

/// Room for a tag and a name of up to 255 bytes.
const KEY_MAX: usize = 1 + 255;

/// `tag ++ name` in `buf`, without allocating; None if too long to be a
/// key any rule holds.
fn key<'b>(buf: &'b mut [u8; KEY_MAX], tag: u8, name: &str) -> Option<&'b str> {
    if name.len() + 1 > KEY_MAX {
        return None;
    }
    buf[0] = tag;
    buf[1..=name.len()].copy_from_slice(name.as_bytes());
    std::str::from_utf8(&buf[..=name.len()]).ok()
}

/// A key to store.
fn owned_key(tag: u8, name: &str) -> Box<str> {
    let mut s = String::with_capacity(1 + name.len());
    s.push(tag as char);
    s.push_str(name);
    s.into_boxed_str()
}

/// `point`'s text, then each ancestor's, then `ROOT`'s.
fn self_and_ancestors(point: &Point) -> impl Iterator<Item = &str> {
    let text = point.as_str();
    let root = point.is_root();
    let mut next = (!root).then_some(text.len());
    std::iter::from_fn(move || {
        let end = next?;
        next = text[..end].rfind(':');
        Some(&text[..end])
    })
    .chain(std::iter::once(crate::point::ROOT))
}

/// The key of a pattern (None: `Anyone`; groups have none).
fn pattern_key(visitors: &Visitors) -> Option<(u8, &str)> {
    match visitors {
        Visitors::Anyone | Visitors::Group(_) => None,
        Visitors::Point(p) => Some((T_POINT, p.as_str())),
        Visitors::Subtree(p) => Some((T_SUBTREE, p.as_str())),
        Visitors::Kind(k) => Some((T_KIND, k.as_str())),
        Visitors::Machine(m) => Some((T_MACHINE, m)),
        Visitors::User(u) => Some((T_USER, u)),
    }
}

impl<V> Keyed<V> {
    /// The value of a pattern, made with `make` if new.
    fn entry(&mut self, visitors: &Visitors, make: impl FnOnce() -> V) -> &mut V {
        match pattern_key(visitors) {
            None => self.anyone.get_or_insert_with(make),
            Some((tag, name)) => {
                self.tags |= tag_bit(tag);
                self.keyed.entry(owned_key(tag, name)).or_insert_with(make)
            }
        }
    }

    /// Drops a pattern's value.
    fn remove(&mut self, visitors: &Visitors) {
        match pattern_key(visitors) {
            None => self.anyone = None,
            Some((tag, name)) => {
                self.keyed.remove(&*owned_key(tag, name));
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.anyone.is_none() && self.keyed.is_empty()
    }

    fn get(&self, tag: u8, name: &str) -> Option<&V> {
        if self.tags & tag_bit(tag) == 0 {
            return None;
        }
        let mut buf = [0u8; KEY_MAX];
        key(&mut buf, tag, name).and_then(|k| self.keyed.get(k))
    }

    /// Whether `f` holds for the value of any pattern matching `visit`.
    fn any(&self, visit: &Visit<'_>, mut f: impl FnMut(&V) -> bool) -> bool {
        if self.anyone.as_ref().is_some_and(&mut f) {
            return true;
        }
        if self.tags == 0 {
            return false;
        }
        let mut at = |tag: u8, name: &str| self.get(tag, name).is_some_and(&mut f);
        let found = match visit.who {
            Who::Particle(p) => {
                at(T_POINT, p.as_str())
                    || (self.tags & tag_bit(T_SUBTREE) != 0
                        && self_and_ancestors(p).any(|a| at(T_SUBTREE, a)))
                    || visit.kind.is_some_and(|k| at(T_KIND, k.as_str()))
            }
            Who::User(u) => at(T_USER, u),
            Who::Machine(m) => at(T_MACHINE, m),
        };
        // A Machine's own voice comes through itself: asked once above.
        found
            || visit
                .via
                .is_some_and(|m| visit.who != Who::Machine(m) && at(T_MACHINE, m))
    }
}

impl Entries {
    fn set(&mut self, visitors: &Visitors, privileges: Privileges) {
        match visitors {
            Visitors::Group(g) if privileges.is_empty() => {
                self.groups.remove(g);
            }
            Visitors::Group(g) => {
                self.groups.insert(g.clone(), privileges);
            }
            _ if privileges.is_empty() => self.privileges.remove(visitors),
            _ => *self.privileges.entry(visitors, Privileges::default) = privileges,
        }
    }

    fn is_empty(&self) -> bool {
        self.privileges.is_empty() && self.groups.is_empty()
    }

    /// Whether these grants give `visit` the privilege `want`.
    fn gives(&self, rules: &Rules, visit: &Visit<'_>, want: Privilege) -> bool {
        self.privileges.any(visit, |p| p.has(want))
            || (!self.groups.is_empty()
                && rules.members.any(visit, |groups| {
                    groups
                        .iter()
                        .any(|g| self.groups.get(g).is_some_and(|p| p.has(want)))
                }))
    }
}

impl Rules {
    /// Applies one change.
    ///
    /// # Errors
    ///
    /// [`RuleError::GroupInGroup`] for a group joining a group;
    /// [`RuleError::Name`] for a name over 255 bytes or empty.
    pub fn apply(&mut self, change: &Change) -> Result<(), RuleError> {
        match change {
            Change::Grant(g) | Change::Revoke(g) => {
                check_visitors(&g.to)?;
                let key = (g.on.clone(), g.to.clone());
                let old = self.grants.get(&key).copied().unwrap_or_default();
                let new = match change {
                    Change::Grant(_) => old.union(g.privileges),
                    _ => old.without(g.privileges),
                };
                if new == old {
                    return Ok(());
                }
                if new.is_empty() {
                    self.grants.remove(&key);
                } else {
                    self.grants.insert(key, new);
                }
                let at: Box<str> = g.on.point.as_str().into();
                let node = self.index.entry(at.clone()).or_default();
                let entries = if g.on.subtree {
                    &mut node.subtree
                } else {
                    &mut node.exact
                };
                entries.set(&g.to, new);
                if node.exact.is_empty() && node.subtree.is_empty() {
                    self.index.remove(&at);
                }
            }
            Change::Join { group, member } => {
                super::name(group)?;
                check_visitors(member)?;
                if matches!(member, Visitors::Group(_)) {
                    return Err(RuleError::GroupInGroup {
                        group: group.clone(),
                    });
                }
                self.groups
                    .entry(group.clone())
                    .or_default()
                    .insert(member.clone());
                self.members
                    .entry(member, BTreeSet::new)
                    .insert(group.clone());
            }
            Change::Leave { group, member } => {
                if let Some(members) = self.groups.get_mut(group) {
                    members.remove(member);
                    if members.is_empty() {
                        self.groups.remove(group);
                    }
                }
                let groups = self.members.entry(member, BTreeSet::new);
                groups.remove(group);
                if groups.is_empty() {
                    self.members.remove(member);
                }
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// Whether `visit` may do `want` to `target` under these rules:
    ///
    /// 1. with the open policy (`open`), anything in [`OPEN`], unless the
    ///    visitor is confined (a WASM guest);
    /// 2. a particle owns its subtree: anything there;
    /// 3. a particle may stop its own line (its ancestors but `ROOT`, as
    ///    an Erlang process may exit its supervisor), and send to and ask its parent
    ///    and the subtrees its spawn granted it ([`Visit::grants`]);
    /// 4. what a grant covering `target` gives a pattern matching `visit`.
    ///
    /// Superusers (the Machine and the daemon's owner) are not judged here:
    /// the Machine's check lets them through first.
    pub fn allows(&self, open: bool, visit: &Visit<'_>, target: &Point, want: Privilege) -> bool {
        if open && !visit.confined && OPEN.has(want) {
            return true;
        }
        match visit.who {
            Who::Particle(p) if !p.is_root() => {
                if p.contains(target) {
                    return true;
                }
                match want {
                    // Its own line, not `ROOT`: stopping the root ends
                    // every line.
                    Privilege::Stop if !target.is_root() && target.contains(p) => return true,
                    Privilege::Send | Privilege::Ask
                        if p.parent().as_ref() == Some(target)
                            || visit.grants.iter().any(|g| g.contains(target)) =>
                    {
                        return true
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        self.granted(visit, target, want)
    }

    /// Whether a grant gives `visit` the privilege `want` on `target`.
    fn granted(&self, visit: &Visit<'_>, target: &Point, want: Privilege) -> bool {
        if self.index.is_empty() {
            return false;
        }
        let mut first = true;
        for at in self_and_ancestors(target) {
            if let Some(node) = self.index.get(at) {
                if first && node.exact.gives(self, visit, want) {
                    return true;
                }
                if node.subtree.gives(self, visit, want) {
                    return true;
                }
            }
            first = false;
        }
        false
    }

    /// Every grant, in order of scope then visitors.
    pub fn grants(&self) -> impl Iterator<Item = Grant> + '_ {
        self.grants.iter().map(|((on, to), p)| Grant {
            on: on.clone(),
            to: to.clone(),
            privileges: *p,
        })
    }

    /// Every group and its members.
    pub fn groups(&self) -> impl Iterator<Item = (&Arc<str>, &BTreeSet<Visitors>)> {
        self.groups.iter()
    }

    /// How many grants there are.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// True if there is no grant.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Counts the changes applied.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The changes that rebuild these rules elsewhere (a Machine joining a
    /// cluster learns them so).
    pub fn changes(&self) -> Vec<Change> {
        let mut out: Vec<Change> = self.grants().map(Change::Grant).collect();
        for (group, members) in &self.groups {
            out.extend(members.iter().map(|m| Change::Join {
                group: group.clone(),
                member: m.clone(),
            }));
        }
        out
    }
}

fn check_visitors(v: &Visitors) -> Result<(), RuleError> {
    match v {
        Visitors::Kind(k) => super::name(k.as_str()).map(drop),
        Visitors::Group(n) | Visitors::Machine(n) | Visitors::User(n) => super::name(n).map(drop),
        _ => Ok(()),
    }
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("grants", &self.grants.len())
            .field("groups", &self.groups.len())
            .field("generation", &self.generation)
            .finish()
    }
}
