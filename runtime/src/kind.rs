//! Kinds: what a particle is, and so which Driver runs it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of a particle type. Each Kind has exactly one Driver on a
/// Machine, which every Star uses to create and run that Kind's particles.
///
/// ```
/// use hyperverse_runtime::Kind;
///
/// let k = Kind::new("counter");
/// assert_eq!(k.as_str(), "counter");
/// assert_eq!(k, Kind::from("counter"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kind(Arc<str>);

impl Kind {
    /// A Kind named `name`.
    pub fn new(name: impl AsRef<str>) -> Kind {
        Kind(Arc::from(name.as_ref()))
    }

    /// The Kind's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.0)
    }
}

impl From<&str> for Kind {
    fn from(s: &str) -> Self {
        Kind::new(s)
    }
}

impl From<String> for Kind {
    fn from(s: String) -> Self {
        Kind(Arc::from(s))
    }
}
