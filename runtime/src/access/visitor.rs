//! Visitors: who acts, and the patterns grants name them by.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Kind, Point};

/// Who acts on a Point, as the runtime knows it: never a value a caller
/// chooses for itself.
///
/// - A particle, by its Point, on this Machine or another one; the
///   Machine itself is [`Point::root`].
/// - A CLI user: the name the daemon bound to the control socket's peer
///   credentials ([`crate::Machine::as_user`]).
/// - Another Machine speaking for itself (not for one of its particles):
///   the name the cluster authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Visitor {
    /// A particle; `ROOT` is the Machine.
    Particle(Point),
    /// A CLI user.
    User(Arc<str>),
    /// Another Machine's own voice.
    Machine(Arc<str>),
}

impl fmt::Display for Visitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Visitor::Particle(p) => write!(f, "{p}"),
            Visitor::User(u) => write!(f, "user={u}"),
            Visitor::Machine(m) => write!(f, "machine={m}"),
        }
    }
}

/// Whom a grant is for: a pattern over visitors.
///
/// Written as rules print it: `a:b` (that particle), `a:b:**` (it and its
/// subtree), `kind=NAME`, `group=NAME`, `machine=NAME` (that Machine's own
/// voice and every particle whose waves come from it), `user=NAME`, `*`
/// (anyone).
///
/// ```
/// use hyperverse_runtime::access::Visitors;
///
/// let v: Visitors = "app:workers:**".parse().unwrap();
/// assert_eq!(v.to_string(), "app:workers:**");
/// assert!(matches!("kind=counter".parse().unwrap(), Visitors::Kind(_)));
/// assert!("kind=".parse::<Visitors>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Visitors {
    /// Anyone at all.
    Anyone,
    /// The particle at this Point.
    Point(Point),
    /// The particle at this Point and every one below it.
    Subtree(Point),
    /// Every particle of this Kind.
    Kind(Kind),
    /// Every member of this group (see [`super::Rules::join`]).
    Group(Arc<str>),
    /// That Machine's voice and its particles' waves.
    Machine(Arc<str>),
    /// That CLI user.
    User(Arc<str>),
}

impl fmt::Display for Visitors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Visitors::Anyone => f.write_str("*"),
            Visitors::Point(p) => write!(f, "{p}"),
            Visitors::Subtree(p) if p.is_root() => f.write_str("**"),
            Visitors::Subtree(p) => write!(f, "{p}:**"),
            Visitors::Kind(k) => write!(f, "kind={k}"),
            Visitors::Group(g) => write!(f, "group={g}"),
            Visitors::Machine(m) => write!(f, "machine={m}"),
            Visitors::User(u) => write!(f, "user={u}"),
        }
    }
}

impl std::str::FromStr for Visitors {
    type Err = super::RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "*" {
            return Ok(Visitors::Anyone);
        }
        if let Some((tag, name)) = text.split_once('=') {
            let name = super::name(name)?;
            return match tag {
                "kind" => Ok(Visitors::Kind(Kind::new(&*name))),
                "group" => Ok(Visitors::Group(name)),
                "machine" => Ok(Visitors::Machine(name)),
                "user" => Ok(Visitors::User(name)),
                _ => Err(super::RuleError::Visitors {
                    text: text.to_string(),
                }),
            };
        }
        match super::scope_text(text)? {
            (point, true) => Ok(Visitors::Subtree(point)),
            (point, false) => Ok(Visitors::Point(point)),
        }
    }
}
