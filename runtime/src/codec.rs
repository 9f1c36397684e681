//! Decoding bytes the runtime did not write: bounded in memory and in depth.
//!
//! bincode 2 with its standard configuration, and two bounds a hostile
//! sender cannot talk past:
//! - **memory**: a length prefix is believed only up to a budget that grows
//!   with the input (a legitimate value decodes to at most a few dozen
//!   times its encoding: a one-byte varint becomes a `u128`, an empty string
//!   a `String`), never past [`MAX_DECODE_BYTES`]: nine bytes cannot make
//!   the decoder allocate sixty megabytes;
//! - **depth**: nesting is counted ([`crate::depth`]), so nested bytes
//!   cannot overflow the stack.

use std::cell::Cell;

use bincode::config::Config;
use bincode::de::read::Reader;
use bincode::error::DecodeError;
use serde::de::DeserializeOwned;

use crate::depth::Depth;
use crate::error::CodecError;

/// The largest budget a decode may claim (re-exported as
/// `wave::MAX_WAVE_BYTES`, the largest encoded wave accepted).
pub(crate) const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// How much more a decoded value may claim than its encoding's length.
const EXPANSION: usize = 32;

/// A reader over a slice that counts what it has read.
struct Counted<'a> {
    rest: &'a [u8],
    used: &'a Cell<usize>,
}

impl Reader for Counted<'_> {
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), DecodeError> {
        if bytes.len() > self.rest.len() {
            return Err(DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.rest.len(),
            });
        }
        let (now, rest) = self.rest.split_at(bytes.len());
        bytes.copy_from_slice(now);
        self.rest = rest;
        self.used.set(self.used.get() + bytes.len());
        Ok(())
    }
}

fn decode_with<T: DeserializeOwned, C: Config>(bytes: &[u8], config: C) -> Result<T, CodecError> {
    let used = Cell::new(0);
    let reader = Counted {
        rest: bytes,
        used: &used,
    };
    let mut decoder = bincode::serde::OwnedSerdeDecoder::from_reader(reader, config);
    let value = T::deserialize(Depth::new(decoder.as_deserializer()))
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used.get() != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - used.get(),
        });
    }
    Ok(value)
}

/// Decodes all of `bytes` as a `T` (bincode 2, standard), within a memory
/// budget that grows with `bytes` and a bounded depth.
///
/// # Errors
///
/// [`CodecError::Decode`] for malformed bytes, a length past the budget or
/// nesting past the limit; [`CodecError::TrailingBytes`] if a complete
/// value is followed by more.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let standard = bincode::config::standard();
    // The limit is a type parameter: a few budgets, the smallest that fits.
    match bytes.len().saturating_mul(EXPANSION) {
        n if n <= 64 << 10 => decode_with(bytes, standard.with_limit::<{ 64 << 10 }>()),
        n if n <= 1 << 20 => decode_with(bytes, standard.with_limit::<{ 1 << 20 }>()),
        n if n <= 16 << 20 => decode_with(bytes, standard.with_limit::<{ 16 << 20 }>()),
        _ => decode_with(bytes, standard.with_limit::<MAX_DECODE_BYTES>()),
    }
}
