//! What identifies one loaded version of a module.
//!
//! The name says which module, the sequence number says which load of it
//! (so the Registry can show "counter@3" and a reload can be told from the
//! version it replaces even when its bytes are those of an older one), and
//! the content hash says which code. The hash is BLAKE3 of the WebAssembly
//! binary: a cryptographic hash, because it keys the compiled-artifact
//! caches and an artifact is executable code (two different modules must
//! never share one); BLAKE3 rather than SHA-256 because it is several times
//! faster on large modules and needs no extra crates for hex or keyed
//! hashing (the disk cache's MAC is keyed BLAKE3).

use std::fmt;
use std::sync::Arc;

/// The BLAKE3 hash of a module's WebAssembly binary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `wasm`.
    pub fn of(wasm: &[u8]) -> Self {
        Self(*blake3::hash(wasm).as_bytes())
    }

    /// The full hash in lowercase hex (64 characters).
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first 12 hex characters, for logs and displays.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(12);
        hex
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One load of a module: `name@seq`, with the hash of its code.
///
/// A load makes a new version, with the next `seq` for that name (starting
/// at 1), unless its bytes are those of the name's current version: then
/// it *is* that version. Bytes of an older version make a new version (a
/// reload back to old code is still a move forward), sharing the artifact
/// rather than recompiling. Sequence numbers are never reused, even after
/// the store drops old versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleVersion {
    /// The module's name.
    pub name: Arc<str>,
    /// Which load of this name it is: 1, 2, 3...
    pub seq: u64,
    /// The hash of the WebAssembly binary.
    pub hash: ContentHash,
}

impl fmt::Display for ModuleVersion {
    /// `counter@3 (blake3 1a2b3c4d5e6f)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (blake3 {})",
            self.name,
            self.seq,
            self.hash.short()
        )
    }
}
