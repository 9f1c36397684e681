//! Privileges: what a visitor may do to a Point.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing a visitor may do to a particle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Privilege {
    /// Send it a signal (a one-way wave).
    Send = 1 << 0,
    /// Send it a request and wait for the answer.
    Ask = 1 << 1,
    /// Spawn a particle as its child (checked on the parent Point; `ROOT`
    /// for a top-level particle).
    Spawn = 1 << 2,
    /// Stop or kill it, or inject a fault into it.
    Stop = 1 << 3,
    /// Hot-reload its code (a WASM module's particles).
    Reload = 1 << 4,
    /// Link to it or monitor it.
    Link = 1 << 5,
    /// Read its record in the Registry (the CLI's `tree`, `events`).
    Read = 1 << 6,
}

impl Privilege {
    /// Every privilege, in declaration order.
    pub const ALL: [Privilege; 7] = [
        Privilege::Send,
        Privilege::Ask,
        Privilege::Spawn,
        Privilege::Stop,
        Privilege::Reload,
        Privilege::Link,
        Privilege::Read,
    ];

    /// Its name, as rules write it.
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Send => "send",
            Privilege::Ask => "ask",
            Privilege::Spawn => "spawn",
            Privilege::Stop => "stop",
            Privilege::Reload => "reload",
            Privilege::Link => "link",
            Privilege::Read => "read",
        }
    }

    /// The privilege named `name`.
    pub fn from_name(name: &str) -> Option<Privilege> {
        Privilege::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Privilege`]s, one bit each: a grant's, or what a visitor
/// holds on a Point.
///
/// ```
/// use hyperverse_runtime::access::{Privilege, Privileges};
///
/// let p: Privileges = "send,ask".parse().unwrap();
/// assert!(p.has(Privilege::Ask) && !p.has(Privilege::Stop));
/// assert_eq!(p.to_string(), "send,ask");
/// assert_eq!("all".parse::<Privileges>().unwrap(), Privileges::ALL);
/// assert!("sned".parse::<Privileges>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
pub struct Privileges(u8);

impl Privileges {
    /// No privilege.
    pub const NONE: Privileges = Privileges(0);
    /// Every privilege.
    pub const ALL: Privileges = Privileges(0x7f);

    /// The set holding `ps`.
    pub const fn of(ps: &[Privilege]) -> Privileges {
        let mut bits = 0;
        let mut i = 0;
        while i < ps.len() {
            bits |= ps[i] as u8;
            i += 1;
        }
        Privileges(bits)
    }

    /// Whether it holds `p`.
    #[inline]
    pub const fn has(self, p: Privilege) -> bool {
        self.0 & p as u8 != 0
    }

    /// Both sets together.
    #[inline]
    #[must_use]
    pub const fn union(self, other: Privileges) -> Privileges {
        Privileges(self.0 | other.0)
    }

    /// This set without `other`'s.
    #[inline]
    #[must_use]
    pub const fn without(self, other: Privileges) -> Privileges {
        Privileges(self.0 & !other.0)
    }

    /// True if it holds none.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Its privileges, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        Privilege::ALL.into_iter().filter(move |p| self.has(*p))
    }

    /// The raw bits, for a check's fast path.
    pub(crate) const fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits, dropping unknown ones (a peer's rules).
    pub(crate) const fn from_bits(bits: u8) -> Privileges {
        Privileges(bits & Privileges::ALL.0)
    }
}

impl From<Privilege> for Privileges {
    fn from(p: Privilege) -> Self {
        Privileges(p as u8)
    }
}

impl fmt::Display for Privileges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Privileges::ALL {
            return f.write_str("all");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for p in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(p.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Privileges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Privileges({self})")
    }
}

impl std::str::FromStr for Privileges {
    type Err = super::RuleError;

    /// `all`, or names joined by `,` (`send,ask`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "all" {
            return Ok(Privileges::ALL);
        }
        let mut set = Privileges::NONE;
        for name in text.split(',') {
            let p =
                Privilege::from_name(name.trim()).ok_or_else(|| super::RuleError::Privilege {
                    text: name.to_string(),
                })?;
            set = set.union(p.into());
        }
        Ok(set)
    }
}

/// On the wire a set is its bits; an unknown bit (a newer peer's
/// privilege) is dropped, not an error.
impl From<u8> for Privileges {
    fn from(bits: u8) -> Self {
        Privileges::from_bits(bits)
    }
}

impl From<Privileges> for u8 {
    fn from(p: Privileges) -> Self {
        p.bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_parse_print_and_combine() {
        let sa = Privileges::of(&[Privilege::Send, Privilege::Ask]);
        assert_eq!("ask, send".parse::<Privileges>().unwrap(), sa);
        assert_eq!(
            sa.union(Privilege::Stop.into()).without(sa),
            Privilege::Stop.into()
        );
        assert_eq!(Privileges::NONE.to_string(), "none");
        assert_eq!(Privileges::from_bits(0xff), Privileges::ALL);
        for p in Privilege::ALL {
            assert_eq!(Privilege::from_name(p.name()), Some(p));
            assert_eq!(p.to_string().parse::<Privileges>().unwrap(), p.into());
        }
        assert!("".parse::<Privileges>().is_err());
    }
}
