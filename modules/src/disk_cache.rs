//! Compiled artifacts on disk, so a Machine restart skips compilation.
//!
//! # Why loading one is sound
//!
//! An artifact is native code: `wasmer::Module::deserialize` maps it in and
//! runs it without checking it (in wasmer 7.4 even the "checked" variant
//! skips validation), hence `unsafe`. This cache only ever hands wasmer
//! bytes that this crate wrote itself, for exactly the same input:
//!
//! 1. **Named by what shaped them.** The file name is the [`ArtifactKey`]:
//!    a BLAKE3 over the wasm binary's hash, wasmer's version, the
//!    compiler's id, this crate's version and artifact schema, the target
//!    and the sandbox limits. An artifact is looked up only under the key
//!    of the bytes being loaded, so it is never one built from other code,
//!    by another wasmer, or with other middleware (an artifact compiled
//!    without metering would run a loop forever).
//! 2. **Checked whole.** Each file starts with a magic and the BLAKE3 of the
//!    payload; a file that is truncated, torn or bit-rotted fails the check,
//!    is removed, and the module is compiled again. Files are written to a
//!    temporary name and renamed, so a crash mid-write never leaves a
//!    half-file under a real name.
//! 3. **Checked by wasmer** for what it does check: its own header, and that
//!    the host CPU has every feature the code was compiled for.
//!
//! What this does *not* defend against is someone who can write to the
//! cache directory on purpose: they could write a matching checksum. The
//! directory must be as trusted as the Machine's own binary (owned by the
//! Machine's user, not shared with guests or other tenants).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::ArtifactKey;

/// The first bytes of every artifact file this crate writes.
const MAGIC: &[u8; 8] = b"HVWASM1\0";
/// The file name's extension.
const EXTENSION: &str = "hvart";

/// A directory of artifacts, one file per [`ArtifactKey`].
#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// A cache in `dir`, created if absent.
    pub(crate) fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!("{}.{EXTENSION}", key.to_hex()))
    }

    /// The artifact stored under `key`, if there is one and it is whole.
    /// A damaged file is removed (and reported) so it is rewritten.
    pub(crate) fn load(&self, key: &ArtifactKey) -> Option<Vec<u8>> {
        let path = self.path(key);
        let file = match fs::read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached wasm artifact");
                return None;
            }
        };
        match Self::unwrap_checked(&file) {
            Some(payload) => Some(payload.to_vec()),
            None => {
                tracing::warn!(path = %path.display(), "damaged wasm artifact in cache, removing it");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// The payload of `file` if its magic and checksum are right.
    fn unwrap_checked(file: &[u8]) -> Option<&[u8]> {
        let rest = file.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < 32 {
            return None;
        }
        let (sum, payload) = rest.split_at(32);
        (blake3::hash(payload).as_bytes() == sum).then_some(payload)
    }

    /// Stores `artifact` under `key`, atomically (temp file, then rename).
    pub(crate) fn store(&self, key: &ArtifactKey, artifact: &[u8]) -> io::Result<()> {
        static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
        let final_path = self.path(key);
        let temp_path = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            key.to_hex(),
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = fs::File::create(&temp_path)?;
            file.write_all(MAGIC)?;
            file.write_all(blake3::hash(artifact).as_bytes())?;
            file.write_all(artifact)?;
            file.sync_all()?;
            fs::rename(&temp_path, &final_path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp_path);
        }
        written
    }
}
