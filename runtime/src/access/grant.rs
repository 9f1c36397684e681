//! Grants: privileges on a Point or subtree, for a pattern of visitors.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Privileges, RuleError, Visitors};
use crate::Point;

/// Where a grant applies: one Point, or a Point and everything below it.
///
/// Written `a:b` (that Point only) or `a:b:**` (the subtree); `**` is
/// every Point, `ROOT` the root alone (spawning a top-level particle is
/// spawning a child of `ROOT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    /// The Point.
    pub point: Point,
    /// Whether it covers the Points below `point` too.
    pub subtree: bool,
}

impl Scope {
    /// The Point alone.
    pub fn point(point: Point) -> Scope {
        Scope {
            point,
            subtree: false,
        }
    }

    /// The Point and everything below it.
    pub fn subtree(point: Point) -> Scope {
        Scope {
            point,
            subtree: true,
        }
    }

    /// Whether it covers `target`.
    pub fn covers(&self, target: &Point) -> bool {
        if self.subtree {
            self.point.contains(target)
        } else {
            self.point == *target
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.subtree, self.point.is_root()) {
            (true, true) => f.write_str("**"),
            (true, false) => write!(f, "{}:**", self.point),
            (false, _) => write!(f, "{}", self.point),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (point, subtree) = super::scope_text(text.trim())?;
        Ok(Scope { point, subtree })
    }
}

/// Privileges on a [`Scope`] for the [`Visitors`] a pattern matches.
/// Grants only add: a visitor holds on a Point what any grant covering it
/// gives, beside what it owns (its own subtree).
///
/// ```
/// use hyperverse_runtime::access::{Grant, Privilege};
///
/// let g: Grant = "send,ask on app:db:** to app:web:**".parse().unwrap();
/// assert!(g.privileges.has(Privilege::Ask));
/// assert_eq!(g.to_string(), "send,ask on app:db:** to app:web:**");
/// assert!("send on app to".parse::<Grant>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Where it applies.
    pub on: Scope,
    /// For whom.
    pub to: Visitors,
    /// What it allows.
    pub privileges: Privileges,
}

impl Grant {
    /// `privileges` on `on` for `to`.
    pub fn new(privileges: impl Into<Privileges>, on: Scope, to: Visitors) -> Grant {
        Grant {
            on,
            to,
            privileges: privileges.into(),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} to {}", self.privileges, self.on, self.to)
    }
}

impl std::str::FromStr for Grant {
    type Err = RuleError;

    /// `PRIVILEGES on SCOPE to VISITORS`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || RuleError::Grant {
            text: text.to_string(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [privileges, "on", on, "to", to] => Ok(Grant {
                privileges: privileges.parse()?,
                on: on.parse()?,
                to: to.parse()?,
            }),
            _ => Err(bad()),
        }
    }
}
