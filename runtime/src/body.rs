//! Wave bodies: bytes, so that any wave can cross a process boundary.

use std::fmt;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::CodecError;

/// The payload of a wave: immutable bytes, cheap to clone.
///
/// Rust particles usually carry typed values with [`Body::encode`] and
/// [`Body::decode`] (bincode 2), so the same wave works locally and, later,
/// across Machines.
///
/// ```
/// use hyperverse_runtime::Body;
///
/// let body = Body::encode(&(7u64, "seven")).unwrap();
/// let (n, s): (u64, String) = body.decode().unwrap();
/// assert_eq!((n, s.as_str()), (7, "seven"));
/// assert_eq!(Body::from("hi").as_bytes(), b"hi");
/// assert_eq!(Body::from("hi").as_str().unwrap(), "hi");
/// assert!(Body::empty().is_empty());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Body(Bytes);

impl Body {
    /// A body with no bytes.
    pub const fn empty() -> Body {
        Body(Bytes::new())
    }

    /// Encodes `value` with bincode 2 (standard config).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Body, CodecError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map(|v| Body(Bytes::from(v)))
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    /// Decodes the whole body as a `T`; trailing bytes are an error. The
    /// bytes may be hostile: a length prefix is believed only within a
    /// budget proportional to the body's size, and nesting deeper than 128
    /// levels is an error, not a stack overflow.
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] for bytes that are not a `T` (or past those
    /// bounds), [`CodecError::TrailingBytes`] for bytes left over.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        crate::codec::decode(&self.0)
    }

    /// A body holding one `u64`, little-endian (8 bytes, no framing).
    pub fn from_u64(n: u64) -> Body {
        Body(Bytes::copy_from_slice(&n.to_le_bytes()))
    }

    /// Reads a body made by [`Body::from_u64`].
    pub fn as_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(&self.0[..])
            .ok()
            .map(u64::from_le_bytes)
    }

    /// The body as UTF-8 text.
    pub fn as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The body as `bytes::Bytes` (no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "Body({s:?})"),
            _ => write!(f, "Body({} bytes)", self.0.len()),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body(b)
    }
}
impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body(Bytes::from(v))
    }
}
impl From<&'static [u8]> for Body {
    fn from(v: &'static [u8]) -> Self {
        Body(Bytes::from_static(v))
    }
}
impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body(Bytes::from_static(s.as_bytes()))
    }
}
impl From<String> for Body {
    fn from(s: String) -> Self {
        Body(Bytes::from(s))
    }
}
