//! Hostile bytes at every decoder a peer, a socket or a guest can reach:
//! Points from text, waves from bytes, bodies decoded as typed values.
//!
//! Whatever the input, the answer is a value or a typed error: never a
//! panic, never an allocation sized by a length the input merely claims.
//! proptest picks the cases; a failure prints the minimal input, and
//! `PROPTEST_CASES` runs more of them.

use hyperverse::wave::{MAX_WAVE_BYTES, WAVE_FORMAT_VERSION};
use hyperverse::{Body, CodecError, Method, Point, PointError, Wave, WaveKind};
use proptest::prelude::*;

/// Any text: unicode, control characters, separators, long runs.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        "[a-z:]{0,300}",
        "[\\x00-\\x1f:ROT\u{202e}\u{0}a]{0,64}",
        proptest::collection::vec(any::<char>(), 0..80).prop_map(|c| c.into_iter().collect()),
    ]
}

/// A valid Point, for well-formed waves to mutate.
fn point() -> impl Strategy<Value = Point> {
    proptest::collection::vec("[a-z0-9_-]{1,8}", 1..5)
        .prop_map(|segs| Point::parse(&segs.join(":")).expect("a valid point"))
}

fn wave() -> impl Strategy<Value = Wave> {
    (
        point(),
        point(),
        "[a-z$:]{0,12}",
        proptest::collection::vec(any::<u8>(), 0..64),
        0u8..3,
    )
        .prop_map(|(from, to, method, body, kind)| Wave {
            kind: match kind {
                0 => WaveKind::Signal,
                1 => WaveKind::Request,
                _ => WaveKind::Reply,
            },
            from,
            to,
            method: Method::from(method),
            body: Body::from(body),
        })
}

/// A LEB-style varint as bincode 2's standard config writes a length
/// prefix of `n` (0xfd = u64 follows).
fn claimed_len(n: u64) -> Vec<u8> {
    let mut out = vec![0xfd];
    out.extend_from_slice(&n.to_le_bytes());
    out
}

proptest! {
    #[test]
    fn any_text_parses_to_a_valid_point_or_a_typed_error(text in hostile_text()) {
        match Point::parse(&text) {
            Ok(p) => {
                // What parses is canonical: it prints as it was written
                // and parses again to itself.
                prop_assert_eq!(p.to_string(), text.clone());
                prop_assert_eq!(Point::parse(p.as_str()), Ok(p.clone()));
                prop_assert!(p.depth() <= hyperverse::point::MAX_DEPTH);
            }
            Err(e) => {
                // Errors that name a byte position name one inside the text.
                let _: PointError = e.clone();
                prop_assert!(e.position() <= text.len(), "{e:?} for {text:?}");
            }
        }
    }

    #[test]
    fn points_decoded_from_any_bytes_are_valid(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        // A Point reaches a Machine inside waves and bodies from peers:
        // decoding must refuse what `Point::parse` refuses. (Through the
        // runtime's own decoder: bincode with no size limit would allocate
        // whatever length the bytes claim, up to aborting the process.)
        if let Ok(p) = Body::from(bytes).decode::<Point>() {
            prop_assert_eq!(Point::parse(p.as_str()), Ok(p.clone()));
        }
    }

    #[test]
    fn any_framed_bytes_decode_to_a_valid_wave_or_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        version in prop_oneof![Just(WAVE_FORMAT_VERSION), any::<u8>()],
    ) {
        let mut framed = vec![version];
        framed.extend(bytes);
        match Wave::from_bytes(&framed) {
            Ok(w) => {
                prop_assert_eq!(version, WAVE_FORMAT_VERSION);
                // A decoded wave encodes back to exactly the same bytes.
                prop_assert_eq!(&w.to_bytes().unwrap()[..], &framed[..]);
            }
            Err(CodecError::Version { found, .. }) => prop_assert_eq!(found, version),
            Err(_) => {}
        }
    }

    #[test]
    fn spliced_and_mutated_waves_never_panic(
        a in wave(),
        b in wave(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        // Half of one wave followed by half of another, then bytes flipped.
        let (a, b) = (a.to_bytes().unwrap(), b.to_bytes().unwrap());
        let mut bytes = a[..cut.index(a.len())].to_vec();
        bytes.extend_from_slice(&b[cut.index(b.len())..]);
        for (at, byte) in flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        if let Ok(w) = Wave::from_bytes(&bytes) {
            prop_assert!(Point::parse(w.from.as_str()).is_ok());
            prop_assert!(Point::parse(w.to.as_str()).is_ok());
        }
    }

    #[test]
    fn bodies_decode_any_bytes_as_typed_values_or_typed_errors(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let body = Body::from(bytes);
        // The shapes Rust particles and the runtime decode bodies as.
        let _ = body.decode::<u64>();
        let _ = body.decode::<String>();
        let _ = body.decode::<Vec<u64>>();
        let _ = body.decode::<(String, Body)>();
        let _ = body.decode::<Option<Vec<(Point, String)>>>();
        let _ = body.decode::<std::collections::HashMap<String, Vec<u8>>>();
        let _ = body.as_u64();
        let _ = body.as_str();
    }

    #[test]
    fn a_claimed_length_is_never_allocated_before_it_is_read(
        claim in prop_oneof![Just(u64::MAX), Just(1u64 << 40), Just(MAX_WAVE_BYTES as u64 + 1), any::<u64>()],
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        // A few bytes that claim a huge string, vector or map must fail
        // fast, without the host reserving what they claim.
        let mut bytes = claimed_len(claim);
        bytes.extend(tail);
        let body = Body::from(bytes.clone());
        prop_assert!(body.decode::<String>().is_err());
        prop_assert!(body.decode::<Vec<u64>>().is_err());
        prop_assert!(body.decode::<std::collections::HashMap<u64, u64>>().is_err());
        let mut framed = vec![WAVE_FORMAT_VERSION, 0];
        framed.extend(bytes);
        prop_assert!(Wave::from_bytes(&framed).is_err());
    }
}

#[test]
fn an_oversized_wave_is_refused_before_decoding() {
    let mut bytes = vec![WAVE_FORMAT_VERSION];
    bytes.resize(MAX_WAVE_BYTES + 2, 0);
    assert!(matches!(
        Wave::from_bytes(&bytes),
        Err(CodecError::TooLarge { .. })
    ));
}
