//! How a supervisor particle starts a child: a Kind with arguments, or a
//! Rust closure that picks them at each start.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spawn_options::SpawnOptions;
use crate::{Body, Kind, LaneLimit};

/// Picks a child's Kind and arguments at each start; an `Err` is a failed
/// start (the supervisor counts it and tries again within its intensity).
pub type StartFn = Arc<dyn Fn(&Body) -> Result<(Kind, Body), String> + Send + Sync>;

#[derive(Clone)]
enum How {
    Kind(Kind),
    Fn(StartFn),
}

/// The `start` of a [`hyperverse_supervisors::ChildSpec`] in a supervisor
/// particle: what to spawn, with which arguments, where.
///
/// ```
/// use hyperverse_runtime::{Body, ChildStart, Kind};
///
/// let plain = ChildStart::kind("worker", Body::from_u64(7));
/// assert_eq!(plain.resolve().unwrap(), (Kind::new("worker"), Body::from_u64(7)));
///
/// // A closure decides at each start (and may refuse).
/// let picky = ChildStart::with(|args| match args.as_u64() {
///     Some(n) if n > 0 => Ok((Kind::new("worker"), Body::from_u64(n * 2))),
///     _ => Err("needs a positive number".to_string()),
/// })
/// .args(Body::from_u64(4));
/// assert_eq!(picky.resolve().unwrap().1.as_u64(), Some(8));
/// ```
#[derive(Clone)]
pub struct ChildStart {
    how: How,
    args: Body,
    star: Option<usize>,
    lane: Option<LaneLimit>,
}

impl ChildStart {
    /// Spawns a particle of `kind` with `args`.
    pub fn kind(kind: impl Into<Kind>, args: impl Into<Body>) -> Self {
        ChildStart {
            how: How::Kind(kind.into()),
            args: args.into(),
            star: None,
            lane: None,
        }
    }

    /// Runs `f` on the arguments at each start to pick the Kind and the
    /// arguments to spawn with. A closure cannot cross a wave: give it in
    /// the supervisor's spec (see [`crate::MachineBuilder::supervisor`]).
    pub fn with(f: impl Fn(&Body) -> Result<(Kind, Body), String> + Send + Sync + 'static) -> Self {
        ChildStart {
            how: How::Fn(Arc::new(f)),
            args: Body::empty(),
            star: None,
            lane: None,
        }
    }

    /// Sets the arguments (a dynamic supervisor's `add_child` sets them per child).
    pub fn args(mut self, args: impl Into<Body>) -> Self {
        self.args = args.into();
        self
    }

    /// Pins the child to a Star (default: its supervisor's).
    pub fn star(mut self, star: usize) -> Self {
        self.star = Some(star);
        self
    }

    /// Bounds the child's lane.
    pub fn lane(mut self, limit: LaneLimit) -> Self {
        self.lane = Some(limit);
        self
    }

    /// The Kind and arguments to spawn with now.
    pub fn resolve(&self) -> Result<(Kind, Body), String> {
        match &self.how {
            How::Kind(kind) => Ok((kind.clone(), self.args.clone())),
            How::Fn(f) => f(&self.args),
        }
    }

    /// True if a closure picks the Kind: such a start cannot be sent.
    pub(crate) fn is_closure(&self) -> bool {
        matches!(self.how, How::Fn(_))
    }

    pub(crate) fn options(&self) -> SpawnOptions {
        SpawnOptions {
            star: self.star,
            lane: self.lane,
            ..SpawnOptions::default()
        }
    }
}

impl fmt::Debug for ChildStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ChildStart");
        match &self.how {
            How::Kind(k) => d.field("kind", k),
            How::Fn(_) => d.field("kind", &"<closure>"),
        };
        d.field("args", &self.args.len()).finish()
    }
}

/// What crosses a wave: a Kind start.
#[derive(Serialize, Deserialize)]
struct WireStart {
    kind: Kind,
    args: Body,
    star: Option<usize>,
    lane: Option<LaneLimit>,
}

impl Serialize for ChildStart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let How::Kind(kind) = &self.how else {
            return Err(serde::ser::Error::custom(
                "a closure start cannot be sent in a wave; put it in the supervisor's spec",
            ));
        };
        WireStart {
            kind: kind.clone(),
            args: self.args.clone(),
            star: self.star,
            lane: self.lane,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChildStart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireStart::deserialize(d)?;
        Ok(ChildStart {
            how: How::Kind(w.kind),
            args: w.args,
            star: w.star,
            lane: w.lane,
        })
    }
}
