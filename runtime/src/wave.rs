//! Waves: the messages particles exchange.
//!
//! A wave is plain data (sender, target, method, body) so that it can be
//! encoded and sent to another Machine. The reply channel of a request is not
//! part of the wave: it travels beside it in the lane (see [`crate::lane`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{error::CodecError, Body, Method, Point};

/// Version byte in front of every encoded wave.
pub const WAVE_FORMAT_VERSION: u8 = 1;
/// The largest encoded wave accepted, so a corrupt length cannot make the decoder allocate gigabytes.
pub const MAX_WAVE_BYTES: usize = crate::codec::MAX_DECODE_BYTES;

/// What a wave asks of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WaveKind {
    /// One-way: no reply is expected.
    Signal,
    /// The sender waits for a reply.
    Request,
    /// The answer to a request, from its target back to its sender.
    Reply,
}

/// A message: sender, target, method and body.
///
/// ```
/// use hyperverse_runtime::{Point, Wave, WaveKind};
///
/// let from = Point::parse("app:client").unwrap();
/// let to = Point::parse("app:counter").unwrap();
/// let wave = Wave::signal(from, to, "add", 5u64.to_le_bytes().to_vec());
/// let bytes = wave.to_bytes().unwrap();
/// let back = Wave::from_bytes(&bytes).unwrap();
/// assert_eq!(back, wave);
/// assert_eq!(back.kind, WaveKind::Signal);
/// assert!(Wave::from_bytes(&bytes[..bytes.len() - 1]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// Signal, request or reply.
    pub kind: WaveKind,
    /// Who sent it. Every wave knows its sender.
    pub from: Point,
    /// Where it goes.
    pub to: Point,
    /// What the sender asks for; the particle dispatches on it.
    pub method: Method,
    /// The payload.
    pub body: Body,
}

impl Wave {
    /// A one-way wave.
    pub fn signal(
        from: Point,
        to: Point,
        method: impl Into<Method>,
        body: impl Into<Body>,
    ) -> Wave {
        Wave {
            kind: WaveKind::Signal,
            from,
            to,
            method: method.into(),
            body: body.into(),
        }
    }

    /// A wave whose sender waits for a reply.
    pub fn request(
        from: Point,
        to: Point,
        method: impl Into<Method>,
        body: impl Into<Body>,
    ) -> Wave {
        Wave {
            kind: WaveKind::Request,
            ..Wave::signal(from, to, method, body)
        }
    }

    /// The reply to this wave: from its target back to its sender, same method.
    pub fn reply(&self, body: impl Into<Body>) -> Wave {
        Wave {
            kind: WaveKind::Reply,
            from: self.to.clone(),
            to: self.from.clone(),
            method: self.method.clone(),
            body: body.into(),
        }
    }

    /// Encodes as `[WAVE_FORMAT_VERSION] ++ bincode(wave)`.
    pub fn to_bytes(&self) -> Result<Bytes, CodecError> {
        let mut out = vec![WAVE_FORMAT_VERSION];
        bincode::serde::encode_into_std_write(self, &mut out, bincode::config::standard())
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(Bytes::from(out))
    }

    /// Decodes bytes made by [`Wave::to_bytes`]. Any malformed input is an
    /// error: a wrong version, truncation, bad Points, trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Wave, CodecError> {
        let (&version, rest) = bytes.split_first().ok_or(CodecError::Empty)?;
        if version != WAVE_FORMAT_VERSION {
            return Err(CodecError::Version {
                found: version,
                expected: WAVE_FORMAT_VERSION,
            });
        }
        if rest.len() > MAX_WAVE_BYTES {
            return Err(CodecError::TooLarge { len: rest.len() });
        }
        crate::codec::decode(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Wave {
        Wave::request(
            Point::parse("a:b").unwrap(),
            Point::parse("c:d:e").unwrap(),
            "get",
            Body::from("payload"),
        )
    }

    #[test]
    fn round_trip_and_reply() {
        let w = sample();
        assert_eq!(Wave::from_bytes(&w.to_bytes().unwrap()).unwrap(), w);
        let r = w.reply("ok");
        assert_eq!(
            (r.from.as_str(), r.to.as_str(), r.kind),
            ("c:d:e", "a:b", WaveKind::Reply)
        );
    }

    #[test]
    fn malformed_bytes_are_typed_errors() {
        assert_eq!(Wave::from_bytes(&[]), Err(CodecError::Empty));
        assert!(matches!(
            Wave::from_bytes(&[9, 0]),
            Err(CodecError::Version { found: 9, .. })
        ));
        let mut bytes = sample().to_bytes().unwrap().to_vec();
        bytes.push(0);
        assert!(matches!(
            Wave::from_bytes(&bytes),
            Err(CodecError::TrailingBytes { extra: 1 })
        ));
        // A Point that does not parse is refused at decode time.
        let mut evil = sample();
        evil.method = "m".into();
        let good = evil.to_bytes().unwrap().to_vec();
        let needle = b"c:d:e";
        let at = good
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        let mut bad = good.clone();
        bad[at + 1] = b' ';
        assert!(
            matches!(Wave::from_bytes(&bad), Err(CodecError::Decode(msg)) if msg.contains("illegal character"))
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9_.-]{1,10}"
    }

    fn point() -> impl Strategy<Value = Point> {
        proptest::collection::vec(segment(), 1..5).prop_map(|s| Point::parse(&s.join(":")).unwrap())
    }

    fn wave() -> impl Strategy<Value = Wave> {
        (
            prop_oneof![
                Just(WaveKind::Signal),
                Just(WaveKind::Request),
                Just(WaveKind::Reply)
            ],
            point(),
            point(),
            ".{0,20}",
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(kind, from, to, method, body)| Wave {
                kind,
                from,
                to,
                method: method.into(),
                body: body.into(),
            })
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // Version, kind 0, then a `from` Point whose length claims ~2^64 bytes.
        let mut bytes = vec![WAVE_FORMAT_VERSION, 0, 253]; // 253: a u64 length follows
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Wave::from_bytes(&bytes),
            Err(CodecError::Decode(_))
        ));
    }

    proptest! {
        #[test]
        fn any_wave_round_trips(w in wave()) {
            prop_assert_eq!(Wave::from_bytes(&w.to_bytes().unwrap()).unwrap(), w);
        }

        #[test]
        fn garbage_after_the_version_byte_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = vec![WAVE_FORMAT_VERSION];
            framed.extend(bytes);
            let _ = Wave::from_bytes(&framed);
        }

        #[test]
        fn mutated_encodings_never_panic(w in wave(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = w.to_bytes().unwrap().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            if let Ok(back) = Wave::from_bytes(&bytes) {
                // Whatever decodes is a valid wave: its Points parse again.
                prop_assert!(Point::parse(back.from.as_str()).is_ok());
                prop_assert!(Point::parse(back.to.as_str()).is_ok());
            }
        }

        #[test]
        fn truncation_is_an_error(cut in 0usize..20) {
            let bytes = sample().to_bytes().unwrap();
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(Wave::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
