//! Methods: what a wave asks of its target, by name.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A wave's method name. Cheap to clone whether it was written in the code
/// (`"get"`, no allocation) or decoded from bytes (shared, allocated once):
/// the runtime keeps a copy of the method in flight for every wave, to name
/// it in a crash notice.
///
/// ```
/// use hyperverse_runtime::Method;
///
/// let m = Method::from("get");
/// assert_eq!(&*m, "get");
/// assert_eq!(m, Method::from(String::from("get")));
/// match &*m { "get" => {}, _ => unreachable!() }
/// ```
#[derive(Clone)]
pub struct Method(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Method {
    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Method {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Method {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Method {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Method {
    fn from(s: &'static str) -> Self {
        Method(Repr::Static(s))
    }
}

impl From<String> for Method {
    fn from(s: String) -> Self {
        Method(Repr::Shared(Arc::from(s)))
    }
}

impl From<Arc<str>> for Method {
    fn from(s: Arc<str>) -> Self {
        Method(Repr::Shared(s))
    }
}

impl PartialEq for Method {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Method {}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for Method {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Method(Repr::Shared(Arc::from(&*s))))
    }
}
