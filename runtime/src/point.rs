//! Points: the hierarchical addresses particles live at.
//!
//! A Point is a path of segments separated by `:`, such as `space:app:worker-7`.
//! The tree of Points is the supervision tree: a particle's parent is the
//! particle at its parent Point. The root of every tree is [`Point::root`],
//! written `ROOT`.
//!
//! Points are cheap to clone (one reference count) because every wave carries
//! two of them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text of the root Point.
pub const ROOT: &str = "ROOT";
/// Longest allowed Point text, in bytes.
pub const MAX_POINT_LEN: usize = 255;
/// Longest allowed segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;
/// Deepest allowed Point, in segments.
pub const MAX_DEPTH: usize = 32;

/// A hierarchical address such as `space:app:worker-7`.
///
/// Segments are 1 to 64 characters from `[A-Za-z0-9_.-]`; `ROOT` is reserved
/// for the root and cannot be a segment.
///
/// ```
/// use hyperverse_runtime::Point;
///
/// let worker: Point = "space:app:worker-7".parse().unwrap();
/// assert_eq!(worker.parent().unwrap().to_string(), "space:app");
/// assert_eq!(worker.name(), "worker-7");
/// assert!(Point::parse("space").unwrap().is_ancestor_of(&worker));
/// assert_eq!(Point::parse("space:app").unwrap().child("db").unwrap().to_string(), "space:app:db");
///
/// // Bad text is a typed error that says where.
/// let err = Point::parse("space::app").unwrap_err();
/// assert_eq!(err.position(), 6);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Point(Arc<str>);

/// Why a text is not a Point. Positions are byte offsets into the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PointError {
    /// The text was empty (the root is written `ROOT`).
    #[error("empty point (the root is written `{ROOT}`)")]
    Empty,
    /// A segment between two separators (or at an end) was empty.
    #[error("empty segment at position {position} in `{text}`")]
    EmptySegment { text: String, position: usize },
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("illegal character {ch:?} at position {position} in `{text}`")]
    IllegalChar {
        text: String,
        ch: char,
        position: usize,
    },
    /// A segment longer than [`MAX_SEGMENT_LEN`].
    #[error("segment at position {position} is {len} bytes long; the limit is {MAX_SEGMENT_LEN}")]
    SegmentTooLong { position: usize, len: usize },
    /// The whole text is longer than [`MAX_POINT_LEN`].
    #[error("point is {len} bytes long; the limit is {MAX_POINT_LEN}")]
    TooLong { len: usize },
    /// More than [`MAX_DEPTH`] segments.
    #[error("point has {depth} segments; the limit is {MAX_DEPTH}")]
    TooDeep { depth: usize },
    /// `ROOT` used as a segment of a longer Point.
    #[error("`{ROOT}` is reserved and cannot be a segment (position {position})")]
    ReservedSegment { position: usize },
}

impl PointError {
    /// The byte offset the error points at (0 for errors about the whole text).
    pub fn position(&self) -> usize {
        match self {
            PointError::EmptySegment { position, .. }
            | PointError::IllegalChar { position, .. }
            | PointError::SegmentTooLong { position, .. }
            | PointError::ReservedSegment { position } => *position,
            PointError::TooLong { .. } => MAX_POINT_LEN,
            PointError::Empty | PointError::TooDeep { .. } => 0,
        }
    }
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks one segment that starts at byte `offset` of the whole text.
fn check_segment(text: &str, seg: &str, offset: usize) -> Result<(), PointError> {
    if seg.is_empty() {
        return Err(PointError::EmptySegment {
            text: text.to_string(),
            position: offset,
        });
    }
    if let Some((i, ch)) = seg.char_indices().find(|&(_, c)| !valid_char(c)) {
        return Err(PointError::IllegalChar {
            text: text.to_string(),
            ch,
            position: offset + i,
        });
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(PointError::SegmentTooLong {
            position: offset,
            len: seg.len(),
        });
    }
    if seg == ROOT {
        return Err(PointError::ReservedSegment { position: offset });
    }
    Ok(())
}

impl Point {
    /// The root of the Point tree, `ROOT`. It has no parent and no segments.
    pub fn root() -> Point {
        static ROOT_POINT: std::sync::OnceLock<Point> = std::sync::OnceLock::new();
        ROOT_POINT.get_or_init(|| Point(Arc::from(ROOT))).clone()
    }

    /// Parses `text` as a Point.
    pub fn parse(text: &str) -> Result<Point, PointError> {
        if text.is_empty() {
            return Err(PointError::Empty);
        }
        if text == ROOT {
            return Ok(Point::root());
        }
        if text.len() > MAX_POINT_LEN {
            return Err(PointError::TooLong { len: text.len() });
        }
        let mut offset = 0;
        let mut depth = 0;
        for seg in text.split(':') {
            check_segment(text, seg, offset)?;
            offset += seg.len() + 1;
            depth += 1;
        }
        if depth > MAX_DEPTH {
            return Err(PointError::TooDeep { depth });
        }
        Ok(Point(Arc::from(text)))
    }

    /// True for `ROOT`.
    pub fn is_root(&self) -> bool {
        &*self.0 == ROOT
    }

    /// The Point's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments from the top down; empty for the root.
    pub fn segments(&self) -> impl Iterator<Item = &str> + '_ {
        let text = if self.is_root() { "" } else { &*self.0 };
        text.split(':').filter(|s| !s.is_empty())
    }

    /// Number of segments (0 for the root).
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.0.bytes().filter(|&b| b == b':').count() + 1
        }
    }

    /// The last segment (`ROOT` for the root).
    pub fn name(&self) -> &str {
        match self.0.rfind(':') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// The parent Point: `None` only for the root; a one-segment Point's parent is the root.
    pub fn parent(&self) -> Option<Point> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind(':') {
            Some(i) => Some(Point(Arc::from(&self.0[..i]))),
            None => Some(Point::root()),
        }
    }

    /// The child Point named `segment`.
    pub fn child(&self, segment: &str) -> Result<Point, PointError> {
        if self.is_root() {
            return Point::parse(segment).and_then(|p| {
                if p.is_root() {
                    Err(PointError::ReservedSegment { position: 0 })
                } else if p.depth() != 1 {
                    let position = segment.find(':').unwrap_or(0);
                    Err(PointError::IllegalChar {
                        text: segment.to_string(),
                        ch: ':',
                        position,
                    })
                } else {
                    Ok(p)
                }
            });
        }
        let text = format!("{}:{}", self.0, segment);
        let offset = self.0.len() + 1;
        if segment.contains(':') {
            let position = offset + segment.find(':').unwrap_or(0);
            return Err(PointError::IllegalChar {
                text,
                ch: ':',
                position,
            });
        }
        check_segment(&text, segment, offset)?;
        if text.len() > MAX_POINT_LEN {
            return Err(PointError::TooLong { len: text.len() });
        }
        if self.depth() + 1 > MAX_DEPTH {
            return Err(PointError::TooDeep {
                depth: self.depth() + 1,
            });
        }
        Ok(Point(Arc::from(text)))
    }

    /// The ancestors from the parent up to and including the root.
    pub fn ancestors(&self) -> impl Iterator<Item = Point> {
        std::iter::successors(self.parent(), |p| p.parent())
    }

    /// True if `self` is a strict ancestor of `other` (the root is everyone's ancestor).
    pub fn is_ancestor_of(&self, other: &Point) -> bool {
        if self.is_root() {
            return !other.is_root();
        }
        other.0.len() > self.0.len()
            && other.0.starts_with(&*self.0)
            && other.0.as_bytes()[self.0.len()] == b':'
    }

    /// True if `other` is `self` or below it.
    pub fn contains(&self, other: &Point) -> bool {
        self == other || self.is_ancestor_of(other)
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Point({})", self.0)
    }
}

impl FromStr for Point {
    type Err = PointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Point::parse(s)
    }
}

impl TryFrom<&str> for Point {
    type Error = PointError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Point::parse(s)
    }
}

impl AsRef<str> for Point {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Point {
    /// Deserialising validates: wave bytes from elsewhere cannot smuggle in a bad Point.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Point::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_navigate() {
        let p = Point::parse("space:app:worker-7").unwrap();
        assert_eq!(p.depth(), 3);
        assert_eq!(
            p.segments().collect::<Vec<_>>(),
            ["space", "app", "worker-7"]
        );
        let anc: Vec<String> = p.ancestors().map(|a| a.to_string()).collect();
        assert_eq!(anc, ["space:app", "space", "ROOT"]);
        assert!(Point::root().is_ancestor_of(&p));
        assert!(!p.is_ancestor_of(&p));
        assert!(!Point::parse("space:ap").unwrap().is_ancestor_of(&p));
        assert_eq!(Point::root().child("space").unwrap().to_string(), "space");
        assert_eq!(Point::root().parent(), None);
        assert_eq!(Point::parse("space").unwrap().parent(), Some(Point::root()));
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(Point::parse(""), Err(PointError::Empty));
        assert_eq!(Point::parse(":a").unwrap_err().position(), 0);
        assert_eq!(Point::parse("a:").unwrap_err().position(), 2);
        let e = Point::parse("space:ap p").unwrap_err();
        assert!(
            matches!(
                e,
                PointError::IllegalChar {
                    ch: ' ',
                    position: 8,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("position 8"));
        let long = "a".repeat(65);
        assert!(matches!(
            Point::parse(&format!("x:{long}")),
            Err(PointError::SegmentTooLong {
                position: 2,
                len: 65
            })
        ));
        assert!(matches!(
            Point::parse(&"ab:".repeat(100)),
            Err(PointError::TooLong { .. })
        ));
        assert!(matches!(
            Point::parse("a:ROOT"),
            Err(PointError::ReservedSegment { position: 2 })
        ));
        assert!(Point::parse("a").unwrap().child("b:c").is_err());
        assert!(Point::parse("a").unwrap().child("").is_err());
        let deep = vec!["a"; 33].join(":");
        assert!(matches!(
            Point::parse(&deep),
            Err(PointError::TooDeep { depth: 33 })
        ));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,12}".prop_filter("reserved", |s| s != ROOT)
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(segs in proptest::collection::vec(segment(), 1..8)) {
            let text = segs.join(":");
            let p = Point::parse(&text).unwrap();
            prop_assert_eq!(p.to_string(), text.clone());
            prop_assert_eq!(Point::parse(p.as_str()).unwrap(), p.clone());
            prop_assert_eq!(p.depth(), segs.len());
            // child/parent are inverses
            let c = p.child("leaf").unwrap();
            prop_assert_eq!(c.parent().unwrap(), p.clone());
            prop_assert!(p.is_ancestor_of(&c));
            // serde (bincode) round trip
            let bytes = bincode::serde::encode_to_vec(&p, bincode::config::standard()).unwrap();
            let (back, _): (Point, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            prop_assert_eq!(back, p);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            if let Ok(p) = Point::parse(&text) {
                prop_assert_eq!(p.to_string(), text);
            }
        }
    }
}
