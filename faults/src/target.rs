//! Where a fault may land: particles selected by Point pattern and Kind.

use hyperverse_runtime::{Kind, Machine, Point};

/// A selection of live particles: everything under a Point (the Point
/// included), optionally only those of one Kind.
///
/// ```
/// use hyperverse_faults::Target;
/// use hyperverse_runtime::Point;
///
/// let workers = Target::subtree("app".parse::<Point>().unwrap()).kind("worker");
/// assert_eq!(workers.to_string(), "app/** of kind worker");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    under: Point,
    kind: Option<Kind>,
    /// Leave out the Point itself (only what is below it).
    strict: bool,
}

impl Target {
    /// The particle at `point` and everything below it.
    pub fn subtree(point: Point) -> Self {
        Target {
            under: point,
            kind: None,
            strict: false,
        }
    }

    /// Only what is below `point`, not the particle at `point`.
    pub fn below(point: Point) -> Self {
        Target {
            strict: true,
            ..Target::subtree(point)
        }
    }

    /// Every particle on the Machine.
    pub fn all() -> Self {
        Target::subtree(Point::root())
    }

    /// Only particles of this Kind.
    pub fn kind(mut self, kind: impl Into<Kind>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// The live particles it selects now, in Point order (so that a seeded
    /// pick among them replays on the same tree).
    pub fn resolve(&self, machine: &Machine) -> Vec<Point> {
        let mut points: Vec<Point> = machine
            .registry()
            .subtree(&self.under)
            .into_iter()
            .filter(|r| !(self.strict && r.point == self.under))
            .filter(|r| self.kind.as_ref().is_none_or(|k| &r.kind == k))
            .filter(|r| r.status != hyperverse_runtime::Status::Stopped)
            .map(|r| r.point)
            .collect();
        points.sort();
        points
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let under = if self.under.is_root() {
            "ROOT".to_string()
        } else {
            self.under.to_string()
        };
        write!(f, "{under}/{}", if self.strict { "*" } else { "**" })?;
        if let Some(k) = &self.kind {
            write!(f, " of kind {k}")?;
        }
        Ok(())
    }
}
