//! Compiled artifacts on disk, so a Machine restart skips compilation.
//!
//! # Why loading one is sound
//!
//! An artifact is native code: `wasmer::Module::deserialize` maps it in and
//! runs it without checking it (in wasmer 7.4 even the "checked" variant
//! skips validation), hence `unsafe`. Loading a cached artifact is running
//! whatever code the file holds, so this cache only hands wasmer bytes that
//! it can prove a holder of the [`CacheSecret`] wrote for exactly the key
//! being loaded:
//!
//! 1. **Named by what shaped them.** The file name is the `ArtifactKey`:
//!    a BLAKE3 over the wasm binary's hash, wasmer's version, the
//!    compiler's id, this crate's version and artifact schema, the target
//!    and the sandbox limits. An artifact is looked up only under the key
//!    of the bytes being loaded.
//! 2. **Bound to that key by a MAC.** Each file is a magic, then a keyed
//!    BLAKE3 MAC over *the key and the payload*, then the payload. The MAC
//!    key is derived from a 32-byte secret that is not in the cache
//!    directory. So a file copied over another key's name fails (the MAC
//!    covers the key: an attacker who swaps v2's artifact in under v1's
//!    name gets a refusal, not v2's code under v1's name), a file written
//!    by someone without the secret fails, and so does a truncated, torn or
//!    bit-rotted one. A plain checksum would stop only the last: anyone who
//!    can write the file can recompute it. A refused file is removed and
//!    the module compiled again.
//! 3. **Checked by wasmer** for what it does check: its own header, and that
//!    the host CPU has every feature the code was compiled for.
//!
//! The MAC is only as good as the secret, so the secret lives outside the
//! cache ([`CacheSecret::load_or_create`] refuses a secret file that is a
//! symlink, that others can read, or that lies inside the cache directory)
//! or comes from the caller ([`CacheSecret::from_bytes`]).
//!
//! The directory is checked too, because a MAC cannot stop someone who can
//! delete or rename files from making the cache useless, and because the
//! files this process writes should not be replaceable between its write
//! and its rename. [`DiskCache::open`] refuses a directory that is a
//! symlink, is not owned by this process's effective user, or is writable
//! by group or others; and one below a directory that others could change
//! (owned by someone other than root or this user, or writable by others
//! without the sticky bit, as `/tmp` has). A missing directory is created
//! `0700`. Files are created `0600` with `O_CREAT | O_EXCL | O_NOFOLLOW`
//! under temporary names derived from the secret (unpredictable to anyone
//! without it), then renamed into place, so a crash mid-write never leaves
//! a half-file under a real name and a planted symlink is never followed;
//! files are opened for reading with `O_NOFOLLOW` too.
//!
//! # Size
//!
//! The cache is bounded by a byte and a file-count cap
//! ([`DiskCacheConfig`]). After each write the least recently used
//! artifacts are removed until both caps hold again. "Used" is the file's
//! modification time, which a load that hits bumps: access times are not
//! reliable (`noatime`, `relatime` mounts). An artifact larger than the
//! byte cap on its own is not cached at all. Temporary files older than an
//! hour (left by a crash mid-write) are removed in the same sweep.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::ArtifactKey;
use crate::error::{CacheRefusal, ModuleError};

/// The first bytes of every artifact file this crate writes. Version 2 is
/// the MAC format: files of version 1 (checksum only) are refused.
const MAGIC: &[u8; 8] = b"HVWASM2\0";
/// The MAC's length, after the magic.
const MAC_LEN: usize = 32;
/// The bytes before the payload.
const HEADER_LEN: usize = MAGIC.len() + MAC_LEN;
/// The file name's extension.
const EXTENSION: &str = "hvart";
/// Temporary files are `.<32 hex>.tmp`.
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file this old was left by a crash, not a write under way.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Domain separation: the MAC key and the temp-name key are both derived
/// from the secret, and must differ.
const MAC_CONTEXT: &str = "hyperverse-modules disk cache v2: artifact MAC";
const NAME_CONTEXT: &str = "hyperverse-modules disk cache v2: temporary file names";

/// The default byte cap of a disk cache: 1 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 1 << 30;
/// The default file-count cap of a disk cache.
pub const DEFAULT_CACHE_MAX_FILES: usize = 4096;

/// The 32-byte secret that authenticates a disk cache's artifacts.
///
/// Whoever holds it can make this process run native code of their
/// choosing (by writing an artifact it will trust), so it must be as
/// private as the Machine's own binary and must not be stored in the cache
/// directory. Its `Debug` does not show it.
#[derive(Clone)]
pub struct CacheSecret {
    key: [u8; 32],
    /// The file it was read from, canonical, so a cache can refuse to
    /// live around its own secret.
    origin: Option<PathBuf>,
}

impl fmt::Debug for CacheSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSecret")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl CacheSecret {
    /// A secret the caller keeps (e.g. from a secrets manager). The same
    /// secret must be given after a restart for the cache to be used.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key, origin: None }
    }

    /// A fresh random secret (from the operating system), good for one
    /// process: a cache written with it is useless after a restart.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Cache`] if the system's random source cannot be read.
    pub fn generate() -> Result<Self, ModuleError> {
        let key = os::random_key().map_err(|e| io_error(Path::new(os::RANDOM), e))?;
        Ok(Self::from_bytes(key))
    }

    /// The secret in file `path`, created (32 random bytes, mode `0600`) if
    /// absent. Keep it outside the cache directory: a cache refuses a
    /// secret that lies inside it.
    ///
    /// # Errors
    ///
    /// [`ModuleError::CacheRefused`] if the file is a symlink, not a
    /// regular file, not owned by this process's effective user, readable
    /// or writable by group or others, or not 32 bytes long;
    /// [`ModuleError::Cache`] if it cannot be read or created.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, ModuleError> {
        let path = path.as_ref();
        let key = match read_secret(path)? {
            Some(key) => key,
            None => create_secret(path)?,
        };
        let origin = fs::canonicalize(path).map_err(|e| io_error(path, e))?;
        Ok(Self {
            key,
            origin: Some(origin),
        })
    }
}

/// The secret in `path`, or `None` if there is no file there.
fn read_secret(path: &Path) -> Result<Option<[u8; 32]>, ModuleError> {
    let mut file = match os::open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if os::is_symlink_error(&e) => {
            return Err(refused(path, CacheRefusal::Symlink));
        }
        Err(e) => return Err(io_error(path, e)),
    };
    // Checked on the open file, not the path: nothing can be swapped in
    // between the check and the read.
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    check_secret_file(&meta).map_err(|reason| refused(path, reason))?;
    let mut key = [0; 32];
    file.read_exact(&mut key).map_err(|e| io_error(path, e))?;
    Ok(Some(key))
}

/// A secret file must be ours alone: a regular file of 32 bytes, owned by
/// this user, with no permission for group or others.
fn check_secret_file(meta: &fs::Metadata) -> Result<(), CacheRefusal> {
    if !meta.is_file() {
        return Err(CacheRefusal::WrongType {
            expected: "regular file",
        });
    }
    let (owner, mode) = os::owner_and_mode(meta);
    let euid = os::euid();
    if owner != euid {
        return Err(CacheRefusal::NotOwned { owner, euid });
    }
    if mode & 0o077 != 0 {
        return Err(CacheRefusal::SecretExposed { mode });
    }
    if meta.len() != 32 {
        return Err(CacheRefusal::SecretLength { len: meta.len() });
    }
    Ok(())
}

/// Writes a new random secret to `path` (`0600`, never through a symlink,
/// never over an existing file); if another process created it first, its
/// secret is used.
fn create_secret(path: &Path) -> Result<[u8; 32], ModuleError> {
    let key = os::random_key().map_err(|e| io_error(Path::new(os::RANDOM), e))?;
    let mut file = match os::create_private(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return read_secret(path)?.ok_or_else(|| io_error(path, e));
        }
        Err(e) if os::is_symlink_error(&e) => {
            return Err(refused(path, CacheRefusal::Symlink));
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let written = file.write_all(&key).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        return Err(io_error(path, e));
    }
    Ok(key)
}

/// Where a disk cache lives, what authenticates it, and how big it may grow.
///
/// ```no_run
/// use hyperverse_modules::{CacheSecret, DiskCacheConfig, Limits, ModuleStore};
///
/// let secret = CacheSecret::load_or_create("/var/lib/hyperverse/cache.key")?;
/// let config = DiskCacheConfig::new("/var/cache/hyperverse", secret)
///     .max_bytes(256 << 20)
///     .max_files(1000);
/// let store = ModuleStore::with_disk_cache_config(Limits::default(), config)?;
/// # Ok::<(), hyperverse_modules::ModuleError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DiskCacheConfig {
    dir: PathBuf,
    secret: CacheSecret,
    max_bytes: u64,
    max_files: usize,
}

impl DiskCacheConfig {
    /// A cache in `dir` (created `0700` if absent) authenticated by
    /// `secret`, with the default caps ([`DEFAULT_CACHE_MAX_BYTES`],
    /// [`DEFAULT_CACHE_MAX_FILES`]).
    pub fn new(dir: impl Into<PathBuf>, secret: CacheSecret) -> Self {
        Self {
            dir: dir.into(),
            secret,
            max_bytes: DEFAULT_CACHE_MAX_BYTES,
            max_files: DEFAULT_CACHE_MAX_FILES,
        }
    }

    /// The most bytes of artifact files the cache keeps.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The most artifact files the cache keeps (at least 1).
    pub fn max_files(mut self, files: usize) -> Self {
        self.max_files = files.max(1);
        self
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// An artifact this cache wrote for this key: its payload.
    Hit(Vec<u8>),
    /// No file for this key.
    Miss,
    /// A file that failed the checks (wrong MAC, damaged, a symlink, not a
    /// file); it was removed.
    Refused,
}

/// What a store did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Written; this many least recently used artifacts were evicted.
    Stored { evicted: u64 },
    /// Larger than the byte cap on its own: not cached.
    TooLarge,
}

/// A directory of artifacts, one file per [`ArtifactKey`], authenticated
/// with a key derived from a [`CacheSecret`].
pub(crate) struct DiskCache {
    dir: PathBuf,
    mac_key: [u8; 32],
    name_key: [u8; 32],
    max_bytes: u64,
    max_files: usize,
}

impl fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("max_files", &self.max_files)
            .finish_non_exhaustive()
    }
}

impl DiskCache {
    /// The cache `config` describes, its directory created if absent and
    /// checked (see the module docs).
    pub(crate) fn open(config: DiskCacheConfig) -> Result<Self, ModuleError> {
        let dir = trusted_dir(&config.dir)?;
        if let Some(origin) = &config.secret.origin {
            if origin.starts_with(&dir) {
                let secret = origin.display().to_string();
                return Err(refused(&dir, CacheRefusal::SecretInsideCache { secret }));
            }
        }
        Ok(Self {
            dir,
            mac_key: blake3::derive_key(MAC_CONTEXT, &config.secret.key),
            name_key: blake3::derive_key(NAME_CONTEXT, &config.secret.key),
            max_bytes: config.max_bytes,
            max_files: config.max_files,
        })
    }

    /// The directory (canonical).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!("{}.{EXTENSION}", key.to_hex()))
    }

    /// The artifact stored under `key`, if there is one that passes the
    /// MAC. A file that does not is removed (and reported) so that it is
    /// rewritten; a hit marks the file as recently used.
    pub(crate) fn load(&self, key: &ArtifactKey) -> Lookup {
        let path = self.path(key);
        let file = match os::open_no_follow(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) if os::is_symlink_error(&e) => {
                return self.refuse(&path, "a symlink at an artifact's name");
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached wasm artifact");
                return Lookup::Miss;
            }
        };
        match self.read_verified(key, file) {
            Ok(Some(payload)) => Lookup::Hit(payload),
            Ok(None) => self.refuse(&path, "an artifact that fails its MAC"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached wasm artifact");
                Lookup::Miss
            }
        }
    }

    /// The payload of `file` if it is a regular file of a plausible size
    /// whose MAC is right for `key`; the file is then marked as used.
    fn read_verified(&self, key: &ArtifactKey, mut file: File) -> io::Result<Option<Vec<u8>>> {
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() > self.max_bytes {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        let Some(payload_at) = self.verify(key, &bytes) else {
            return Ok(None);
        };
        if let Err(e) = file.set_modified(SystemTime::now()) {
            tracing::debug!(error = %e, "cannot mark a cached wasm artifact as used");
        }
        bytes.drain(..payload_at);
        Ok(Some(bytes))
    }

    /// Removes a file that failed the checks.
    fn refuse(&self, path: &Path, what: &str) -> Lookup {
        tracing::warn!(path = %path.display(), "refusing {what} in the wasm cache, removing it");
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a refused wasm artifact");
        }
        Lookup::Refused
    }

    /// The MAC of `payload` stored under `key`. The key is a fixed 32
    /// bytes, so key and payload cannot be re-split to forge another pair.
    fn mac(&self, key: &ArtifactKey, payload: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.mac_key);
        hasher.update(&key.0);
        hasher.update(payload);
        hasher.finalize()
    }

    /// Where the payload of `file` starts, if its magic and MAC are right
    /// for `key`. (`blake3::Hash` compares in constant time.)
    fn verify(&self, key: &ArtifactKey, file: &[u8]) -> Option<usize> {
        let rest = file.strip_prefix(MAGIC.as_slice())?;
        let mac: [u8; MAC_LEN] = rest.get(..MAC_LEN)?.try_into().ok()?;
        let payload = &rest[MAC_LEN..];
        (self.mac(key, payload) == blake3::Hash::from_bytes(mac)).then_some(HEADER_LEN)
    }

    /// Stores `artifact` under `key`, atomically (a new private temporary
    /// file, then rename), then evicts past the caps.
    pub(crate) fn store(&self, key: &ArtifactKey, artifact: &[u8]) -> io::Result<Written> {
        if (HEADER_LEN + artifact.len()) as u64 > self.max_bytes {
            return Ok(Written::TooLarge);
        }
        let final_path = self.path(key);
        let temp_path = self.temp_path(key);
        self.write_new(&temp_path, key, artifact)?;
        if let Err(e) = fs::rename(&temp_path, &final_path) {
            let _ = fs::remove_file(&temp_path);
            return Err(e);
        }
        Ok(Written::Stored {
            evicted: self.evict(&final_path),
        })
    }

    /// A temporary name no one without the secret can predict, so none
    /// can be planted ahead of a write (and `O_EXCL` would refuse it
    /// anyway).
    fn temp_path(&self, key: &ArtifactKey) -> PathBuf {
        static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut hasher = blake3::Hasher::new_keyed(&self.name_key);
        hasher.update(&key.0);
        hasher.update(&std::process::id().to_le_bytes());
        hasher.update(&TEMP_SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        hasher.update(&nanos.to_le_bytes());
        let mut name = hasher.finalize().to_hex().to_string();
        name.truncate(32);
        self.dir.join(format!(".{name}{TEMP_SUFFIX}"))
    }

    /// Creates `path` (it must not exist, and is never a symlink followed)
    /// with mode `0600` and writes the artifact file into it; on an error
    /// after creating it, removes it.
    fn write_new(&self, path: &Path, key: &ArtifactKey, artifact: &[u8]) -> io::Result<()> {
        let mut file = os::create_private(path)?;
        let written = (|| {
            file.write_all(MAGIC)?;
            file.write_all(self.mac(key, artifact).as_bytes())?;
            file.write_all(artifact)?;
            file.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(path);
        }
        written
    }

    /// Removes the least recently used artifacts (oldest modification time
    /// first, never `keep`) until the caps hold, and stale temporary files;
    /// returns how many artifacts it removed.
    fn evict(&self, keep: &Path) -> u64 {
        let mut artifacts = self.scan();
        artifacts.sort();
        let mut bytes: u64 = artifacts.iter().map(|a| a.1).sum();
        let mut files = artifacts.len();
        let mut evicted = 0;
        for (_, len, path) in artifacts {
            if bytes <= self.max_bytes && files <= self.max_files {
                break;
            }
            if path == keep {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => evicted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot evict a cached wasm artifact");
                    continue;
                }
            }
            bytes -= len;
            files -= 1;
        }
        evicted
    }

    /// The artifact files in the directory as (modified, length, path),
    /// removing stale temporary files on the way.
    fn scan(&self) -> Vec<(SystemTime, u64, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut artifacts = Vec::new();
        for entry in entries.flatten() {
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            let path = entry.path();
            if is_temp_name(&path) {
                if now
                    .duration_since(modified)
                    .is_ok_and(|age| age > STALE_TEMP)
                {
                    let _ = fs::remove_file(&path);
                }
            } else if path.extension().is_some_and(|ext| ext == EXTENSION) {
                artifacts.push((modified, meta.len(), path));
            }
        }
        artifacts
    }
}

/// A temporary file of this cache: `.<hex>.tmp`.
fn is_temp_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.ends_with(TEMP_SUFFIX))
}

/// The cache directory `dir`, canonical, created `0700` if absent; refused
/// if others could change it (see the module docs).
fn trusted_dir(dir: &Path) -> Result<PathBuf, ModuleError> {
    if !os::SUPPORTED {
        return Err(refused(dir, CacheRefusal::Unsupported));
    }
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(refused(dir, CacheRefusal::Symlink));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            os::create_private_dir(dir).map_err(|e| io_error(dir, e))?;
        }
        Err(e) => return Err(io_error(dir, e)),
    }
    let canonical = fs::canonicalize(dir).map_err(|e| io_error(dir, e))?;
    let meta = fs::symlink_metadata(&canonical).map_err(|e| io_error(&canonical, e))?;
    check_cache_dir(&meta).map_err(|reason| refused(&canonical, reason))?;
    for ancestor in canonical.ancestors().skip(1) {
        let meta = fs::metadata(ancestor).map_err(|e| io_error(ancestor, e))?;
        check_ancestor(ancestor, &meta).map_err(|reason| refused(&canonical, reason))?;
    }
    Ok(canonical)
}

/// The cache directory itself: a directory, ours, writable by no one else.
fn check_cache_dir(meta: &fs::Metadata) -> Result<(), CacheRefusal> {
    if !meta.is_dir() {
        return Err(CacheRefusal::WrongType {
            expected: "directory",
        });
    }
    let (owner, mode) = os::owner_and_mode(meta);
    let euid = os::euid();
    if owner != euid {
        return Err(CacheRefusal::NotOwned { owner, euid });
    }
    if mode & 0o022 != 0 {
        return Err(CacheRefusal::WritableByOthers { mode });
    }
    Ok(())
}

/// A directory above the cache: whoever can rename entries in it can swap
/// the cache directory for their own. Owned by root or us, and writable by
/// others only with the sticky bit (which stops them renaming our entries).
fn check_ancestor(path: &Path, meta: &fs::Metadata) -> Result<(), CacheRefusal> {
    let (owner, mode) = os::owner_and_mode(meta);
    let unsafe_because = |why: String| CacheRefusal::UnsafeAncestor {
        ancestor: path.display().to_string(),
        why,
    };
    if owner != 0 && owner != os::euid() {
        return Err(unsafe_because(format!("owned by uid {owner}")));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(unsafe_because(format!(
            "writable by others without the sticky bit, mode {mode:o}"
        )));
    }
    Ok(())
}

fn refused(path: &Path, reason: CacheRefusal) -> ModuleError {
    ModuleError::CacheRefused {
        path: path.display().to_string(),
        reason,
    }
}

fn io_error(path: &Path, e: io::Error) -> ModuleError {
    ModuleError::Cache {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// What the checks need from the operating system.
#[cfg(unix)]
mod os {
    use std::fs::{self, File, OpenOptions};
    use std::io::{self, Read};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::path::Path;

    pub(super) const SUPPORTED: bool = true;
    pub(super) const RANDOM: &str = "/dev/urandom";

    pub(super) fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    pub(super) fn owner_and_mode(meta: &fs::Metadata) -> (u32, u32) {
        (meta.uid(), meta.mode() & 0o7777)
    }

    /// `O_CREAT | O_EXCL | O_NOFOLLOW`, mode `0600` (the umask can only
    /// narrow it).
    pub(super) fn create_private(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }

    pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }

    /// `O_NOFOLLOW` met a symlink.
    pub(super) fn is_symlink_error(e: &io::Error) -> bool {
        e.raw_os_error() == Some(libc::ELOOP)
    }

    pub(super) fn create_private_dir(path: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }

    pub(super) fn random_key() -> io::Result<[u8; 32]> {
        let mut key = [0; 32];
        File::open(RANDOM)?.read_exact(&mut key)?;
        Ok(key)
    }
}

/// Without Unix permissions nothing can be checked: disk caches are
/// refused (`SUPPORTED`), and the rest only has to compile.
#[cfg(not(unix))]
mod os {
    use std::fs::{self, File};
    use std::io;
    use std::path::Path;

    pub(super) const SUPPORTED: bool = false;
    pub(super) const RANDOM: &str = "the system's random source";

    fn unsupported<T>() -> io::Result<T> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn euid() -> u32 {
        u32::MAX
    }

    pub(super) fn owner_and_mode(_: &fs::Metadata) -> (u32, u32) {
        (0, 0o777)
    }

    pub(super) fn create_private(_: &Path) -> io::Result<File> {
        unsupported()
    }

    pub(super) fn open_no_follow(_: &Path) -> io::Result<File> {
        unsupported()
    }

    pub(super) fn is_symlink_error(_: &io::Error) -> bool {
        false
    }

    pub(super) fn create_private_dir(_: &Path) -> io::Result<()> {
        unsupported()
    }

    pub(super) fn random_key() -> io::Result<[u8; 32]> {
        unsupported()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> DiskCache {
        let config = DiskCacheConfig::new(dir, CacheSecret::from_bytes([7; 32]));
        DiskCache::open(config).unwrap()
    }

    #[test]
    fn a_planted_symlink_at_the_temp_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(&dir.path().join("cache"));
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let temp = cache.temp_path(&ArtifactKey([1; 32]));
        std::os::unix::fs::symlink(&victim, &temp).unwrap();

        let err = cache
            .write_new(&temp, &ArtifactKey([1; 32]), b"native code")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&temp).unwrap().is_symlink());
    }

    #[test]
    fn temp_names_are_fresh_each_time_and_keyed_by_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let one = cache(dir.path());
        let other = DiskCache::open(DiskCacheConfig::new(
            dir.path(),
            CacheSecret::from_bytes([8; 32]),
        ))
        .unwrap();
        let key = ArtifactKey([3; 32]);
        let names: Vec<PathBuf> = (0..3).map(|_| one.temp_path(&key)).collect();
        assert!(names[0] != names[1] && names[1] != names[2]);
        assert!(names.iter().all(|n| is_temp_name(n)));
        let pid = std::process::id().to_string();
        assert!(!names[0].to_string_lossy().contains(&format!(".{pid}.")));
        assert_ne!(one.name_key, other.name_key);
        assert_ne!(one.name_key, one.mac_key);
    }

    #[test]
    fn the_mac_binds_the_payload_to_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let (a, b) = (ArtifactKey([1; 32]), ArtifactKey([2; 32]));
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(cache.mac(&a, b"code").as_bytes());
        file.extend_from_slice(b"code");
        assert_eq!(cache.verify(&a, &file), Some(HEADER_LEN));
        assert_eq!(cache.verify(&b, &file), None, "another key's file");
        assert_eq!(cache.verify(&a, &file[..file.len() - 1]), None, "torn");
        assert_eq!(cache.verify(&a, &file[..20]), None, "truncated");
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let secret = CacheSecret::from_bytes([0xab; 32]);
        let shown = format!("{secret:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
    }
}
