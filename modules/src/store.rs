//! The module store: named, versioned modules and their compiled artifacts.
//!
//! Loading is: hash the bytes; if they are those of the name's current
//! (newest) version, that version is the answer. Otherwise find the
//! artifact in memory, else on disk, else compile it (with a fresh engine
//! and metering middleware, see `engine.rs`) and check it against the guest
//! ABI; then record a new [`ModuleVersion`] with the next sequence number
//! for that name.
//!
//! # Bounded growth
//!
//! A store serves a long-lived Machine, and whoever can load modules could
//! otherwise grow it without end (the review of issue 10 made 1,000
//! versions by loading the same bytes 1,000 times). So:
//!
//! - Loading the current version's bytes again makes no new version.
//! - Each name keeps its newest N versions ([`DEFAULT_KEEP_VERSIONS`],
//!   see [`ModuleStore::keep_versions`]) plus every older one still in use:
//!   a [`CompiledModule`] is reference-counted, and a version anyone holds
//!   (a running instance, a WASM particle, a host's current version, a
//!   caller) is in use. Older versions no one holds are dropped at the next
//!   load of that name; [`ModuleStore::version`] then returns `None` for
//!   them. Sequence numbers are never reused.
//! - An artifact in memory is dropped with the last version kept that
//!   uses it (instances of it hold their own reference).
//!
//! In memory, artifacts are keyed by the wasm's hash alone: the other parts
//! of the key (wasmer's version, the limits) are fixed for one store. On
//! disk the key is the full [`ArtifactKey`](crate::engine::ArtifactKey),
//! because a cache directory outlives the process; see `disk_cache.rs` for
//! why loading one is sound.
//!
//! Compilation runs outside the store's lock, so loads of different modules
//! (and instance creation) do not wait for each other; two concurrent loads
//! of the same new bytes may both compile, and the first to finish wins.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use wasmer::{Engine, Module};

use crate::abi;
use crate::disk_cache::{CacheSecret, DiskCache, DiskCacheConfig, Lookup, Written};
use crate::engine::{fresh_engine, ArtifactKey};
use crate::error::ModuleError;
use crate::host::HostImport;
use crate::instance::GuestInstance;
use crate::limits::Limits;
use crate::version::{ContentHash, ModuleVersion};

/// A compiled module and the engine it belongs to (its Stores are made from
/// that engine).
#[derive(Clone)]
struct Artifact {
    module: Module,
    engine: Engine,
}

/// One version of a module, compiled and checked, ready to instantiate.
/// Cheap to clone (one reference count); keeps its artifact alive while
/// any clone or instance of it lives, even after newer versions load.
#[derive(Clone)]
pub struct CompiledModule {
    inner: Arc<CompiledInner>,
}

struct CompiledInner {
    version: ModuleVersion,
    artifact: Artifact,
    limits: Limits,
    /// What the module imports, in order (see `HostImport::of`).
    imports: Box<[HostImport]>,
}

impl fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledModule")
            .field("version", &self.inner.version)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl CompiledModule {
    /// Which load of which module this is.
    pub fn version(&self) -> &ModuleVersion {
        &self.inner.version
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.inner.version.name
    }

    /// The limits its instances run under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The engine its Stores must be made from.
    pub fn engine(&self) -> &Engine {
        &self.inner.artifact.engine
    }

    /// wasmer's compiled module.
    pub fn wasmer_module(&self) -> &Module {
        &self.inner.artifact.module
    }

    /// The host functions the module imports, in its import order.
    pub(crate) fn host_imports(&self) -> &[HostImport] {
        &self.inner.imports
    }

    /// A new running instance (not yet `init`ed); see [`GuestInstance::new`].
    pub fn instantiate(&self) -> Result<GuestInstance, ModuleError> {
        GuestInstance::new(self)
    }

    /// Whether anyone but the store holds this version. Sound as the store
    /// uses it: under the store's lock, so no one can get a new clone from
    /// the store meanwhile, and any other clone is already counted.
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.inner) > 1
    }
}

/// How a store's loads were served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Loads that compiled (successfully or not).
    pub compiles: u64,
    /// Loads served by an artifact already in memory (including loads of
    /// the current version's bytes, which return that version).
    pub memory_hits: u64,
    /// Loads served by an artifact from the disk cache.
    pub disk_hits: u64,
    /// Artifacts written to the disk cache.
    pub disk_writes: u64,
    /// Files in the disk cache refused and removed: a wrong MAC (written
    /// with another secret, under another key, or damaged), or not a plain
    /// file.
    pub disk_refused: u64,
    /// Artifacts the disk cache evicted to stay within its caps.
    pub disk_evictions: u64,
    /// Versions dropped because they were neither among the newest kept
    /// nor in use.
    pub versions_dropped: u64,
}

#[derive(Default)]
struct Counters {
    compiles: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_writes: AtomicU64,
    disk_refused: AtomicU64,
    disk_evictions: AtomicU64,
    versions_dropped: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How many versions of each name a store keeps unless told otherwise
/// (plus those still in use): the current one, the one a reload replaced,
/// and a little room for reloads in flight.
pub const DEFAULT_KEEP_VERSIONS: usize = 4;

#[derive(Default)]
struct State {
    /// The artifacts of the versions kept, by the wasm's hash.
    artifacts: HashMap<ContentHash, Artifact>,
    versions: HashMap<Arc<str>, Versions>,
}

/// The versions of one name.
struct Versions {
    /// The next version's sequence number: seqs are never reused, even
    /// after the versions that had them are dropped.
    next_seq: u64,
    /// The versions kept, oldest first (ascending seq); the last is the
    /// current one.
    kept: Vec<CompiledModule>,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            next_seq: 1,
            kept: Vec::new(),
        }
    }
}

impl Versions {
    fn current(&self) -> Option<&CompiledModule> {
        self.kept.last()
    }

    fn get(&self, seq: u64) -> Option<&CompiledModule> {
        let index = self
            .kept
            .binary_search_by_key(&seq, |m| m.version().seq)
            .ok()?;
        self.kept.get(index)
    }

    /// Drops every version but the newest `keep` and those in use;
    /// returns how many it dropped.
    fn trim(&mut self, keep: usize) -> usize {
        let newest_from = self.kept.len().saturating_sub(keep);
        let before = self.kept.len();
        let mut index = 0;
        self.kept.retain(|module| {
            let newest = index >= newest_from;
            index += 1;
            newest || module.in_use()
        });
        before - self.kept.len()
    }
}

/// Named, versioned modules, compiled once per distinct binary, with a
/// bounded number of versions kept (see the module docs).
///
/// Shareable across threads (`Send + Sync`); instances are not made here
/// but from the [`CompiledModule`] a load returns.
///
/// ```
/// use hyperverse_modules::{guests, Limits, ModuleStore};
///
/// let store = ModuleStore::new(Limits::default().with_fuel(1_000_000));
/// let first = store.load_wat("counter", guests::COUNTER_V1)?;
/// let again = store.load_wat("counter", guests::COUNTER_V1)?;
/// // The current version's bytes again: the same version, no new one.
/// assert_eq!((first.version().seq, again.version().seq), (1, 1));
/// let second = store.load_wat("counter", guests::COUNTER_V2)?;
/// assert_eq!(second.version().seq, 2);
/// // Older bytes after newer ones are a new version (a reload back).
/// let back = store.load_wat("counter", guests::COUNTER_V1)?;
/// assert_eq!(back.version().seq, 3);
/// assert_eq!(store.stats().compiles, 2); // v1's artifact was reused
/// assert_eq!(store.current("counter").unwrap().version().seq, 3);
///
/// let err = store.load("broken", b"not wasm").unwrap_err();
/// assert_eq!(err.module(), Some("broken"));
/// # Ok::<(), hyperverse_modules::ModuleError>(())
/// ```
pub struct ModuleStore {
    limits: Limits,
    keep_versions: usize,
    disk: Option<DiskCache>,
    state: Mutex<State>,
    counters: Counters,
}

impl fmt::Debug for ModuleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleStore")
            .field("limits", &self.limits)
            .field("keep_versions", &self.keep_versions)
            .field("disk_cache", &self.disk.as_ref().map(DiskCache::dir))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ModuleStore {
    /// A store whose modules run under `limits`, caching artifacts in
    /// memory only, keeping [`DEFAULT_KEEP_VERSIONS`] versions per name.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            keep_versions: DEFAULT_KEEP_VERSIONS,
            disk: None,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
        }
    }

    /// A store that also caches artifacts in `dir` (created `0700` if
    /// absent), authenticated with `secret`, with the default caps, so a
    /// restarted Machine (given the same secret) skips compiling modules
    /// it has seen. See [`DiskCacheConfig`] for caps, and the crate's
    /// `disk_cache` docs for why a cached artifact is trusted.
    ///
    /// # Errors
    ///
    /// [`ModuleError::CacheRefused`] if `dir` is a symlink, is not owned by
    /// this process's effective user, is writable by group or others, lies
    /// below a directory others can change, or holds `secret`'s file;
    /// [`ModuleError::Cache`] if it cannot be created or inspected.
    pub fn with_disk_cache(
        limits: Limits,
        dir: impl AsRef<Path>,
        secret: CacheSecret,
    ) -> Result<Self, ModuleError> {
        let config = DiskCacheConfig::new(dir.as_ref(), secret);
        Self::with_disk_cache_config(limits, config)
    }

    /// [`ModuleStore::with_disk_cache`] with the cache's caps chosen.
    ///
    /// # Errors
    ///
    /// As [`ModuleStore::with_disk_cache`].
    pub fn with_disk_cache_config(
        limits: Limits,
        config: DiskCacheConfig,
    ) -> Result<Self, ModuleError> {
        Ok(Self {
            disk: Some(DiskCache::open(config)?),
            ..Self::new(limits)
        })
    }

    /// Keeps the newest `versions` versions of each name (at least 1),
    /// plus any older one still in use; see the module docs.
    pub fn keep_versions(mut self, versions: usize) -> Self {
        self.keep_versions = versions.max(1);
        self
    }

    /// The limits this store's modules run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How loads were served so far.
    pub fn stats(&self) -> StoreStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreStats {
            compiles: get(&self.counters.compiles),
            memory_hits: get(&self.counters.memory_hits),
            disk_hits: get(&self.counters.disk_hits),
            disk_writes: get(&self.counters.disk_writes),
            disk_refused: get(&self.counters.disk_refused),
            disk_evictions: get(&self.counters.disk_evictions),
            versions_dropped: get(&self.counters.versions_dropped),
        }
    }

    /// Loads WebAssembly text as the next version of `name`; see
    /// [`ModuleStore::load`].
    ///
    /// # Errors
    ///
    /// [`ModuleError::Compile`] if the text does not parse; else as
    /// [`ModuleStore::load`].
    pub fn load_wat(&self, name: &str, wat: &str) -> Result<CompiledModule, ModuleError> {
        let wasm = wasmer::wat2wasm(wat.as_bytes()).map_err(|e| ModuleError::Compile {
            module: name.to_string(),
            message: format!("invalid WAT: {e}"),
        })?;
        self.load(name, &wasm)
    }

    /// Loads a WebAssembly binary as the next version of `name`: compiled
    /// (or taken from a cache) and checked against the guest ABI. If
    /// `wasm` is the current version's binary, that version is returned and
    /// no new one is made. Older versions no one uses may be dropped (see
    /// the module docs). On error no version is made and the current one
    /// stays current.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Compile`] if the bytes are not a module the compiler
    /// accepts; the ABI errors ([`ModuleError::MissingExport`],
    /// [`ModuleError::WrongSignature`], [`ModuleError::UndeclaredImport`],
    /// [`ModuleError::WrongImportSignature`], [`ModuleError::MemoryLimit`])
    /// if it breaks the guest ABI.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<CompiledModule, ModuleError> {
        let hash = ContentHash::of(wasm);
        let cached = {
            let state = self.state.lock();
            if let Some(current) = state.current_with(name, &hash) {
                Counters::add(&self.counters.memory_hits, 1);
                return Ok(current);
            }
            state.artifacts.get(&hash).cloned()
        };
        let artifact = match cached {
            Some(artifact) => {
                Counters::add(&self.counters.memory_hits, 1);
                artifact
            }
            None => self.build(name, wasm, &hash)?,
        };
        // The ABI check already refused any other import.
        let imports =
            HostImport::of(&artifact.module).map_err(|import| ModuleError::UndeclaredImport {
                module: name.to_string(),
                import,
            })?;
        Ok(self.record(name, hash, artifact, imports.into()))
    }

    /// Makes `artifact` the next version of `name`, unless a concurrent
    /// load of the same bytes already did, and trims the older versions.
    fn record(
        &self,
        name: &str,
        hash: ContentHash,
        artifact: Artifact,
        imports: Box<[HostImport]>,
    ) -> CompiledModule {
        let mut state = self.state.lock();
        if let Some(current) = state.current_with(name, &hash) {
            return current;
        }
        let artifact = state.artifacts.entry(hash).or_insert(artifact).clone();
        let name: Arc<str> = state
            .versions
            .get_key_value(name)
            .map_or_else(|| Arc::from(name), |(key, _)| key.clone());
        let versions = state.versions.entry(name.clone()).or_default();
        let version = ModuleVersion {
            name,
            seq: versions.next_seq,
            hash,
        };
        versions.next_seq += 1;
        tracing::debug!(%version, "module loaded");
        let compiled = CompiledModule {
            inner: Arc::new(CompiledInner {
                version,
                artifact,
                limits: self.limits,
                imports,
            }),
        };
        versions.kept.push(compiled.clone());
        let dropped = versions.trim(self.keep_versions);
        if dropped > 0 {
            Counters::add(&self.counters.versions_dropped, dropped as u64);
            state.drop_unused_artifacts();
        }
        compiled
    }

    /// The current (newest) version of `name`. A [`WasmHost`]'s current
    /// version, the one new particles start on, can be an older one: after
    /// a reload that was rolled back (see [`ReloadReport`]).
    ///
    /// [`WasmHost`]: crate::WasmHost
    /// [`ReloadReport`]: crate::ReloadReport
    pub fn current(&self, name: &str) -> Option<CompiledModule> {
        self.state.lock().versions.get(name)?.current().cloned()
    }

    /// Version `seq` of `name`, if the store still keeps it: `None` for a
    /// version never made, and for one dropped because it was neither
    /// among the newest kept nor in use (see the module docs).
    pub fn version(&self, name: &str, seq: u64) -> Option<CompiledModule> {
        self.state.lock().versions.get(name)?.get(seq).cloned()
    }

    /// The versions of `name` the store keeps, oldest first.
    pub fn versions(&self, name: &str) -> Vec<ModuleVersion> {
        self.state
            .lock()
            .versions
            .get(name)
            .map(|all| all.kept.iter().map(|m| m.version().clone()).collect())
            .unwrap_or_default()
    }

    /// The artifact for `wasm`: from the disk cache if it has it, else
    /// compiled (and then written to the disk cache). Either way checked
    /// against the ABI.
    fn build(&self, name: &str, wasm: &[u8], hash: &ContentHash) -> Result<Artifact, ModuleError> {
        let engine = fresh_engine(&self.limits);
        let key = ArtifactKey::new(hash, &self.limits, &engine);

        if let Some(artifact) = self.load_from_disk(&key, &engine) {
            abi::validate(name, &artifact.module, &self.limits)?;
            Counters::add(&self.counters.disk_hits, 1);
            return Ok(artifact);
        }

        Counters::add(&self.counters.compiles, 1);
        let compile_error = |message: String| ModuleError::Compile {
            module: name.to_string(),
            message,
        };
        // A compiler panic must not take the Machine down with it.
        let module = catch_unwind(AssertUnwindSafe(|| Module::from_binary(&engine, wasm)))
            .map_err(|_| compile_error("the compiler panicked".into()))?
            .map_err(|e| compile_error(e.to_string()))?;
        abi::validate(name, &module, &self.limits)?;
        self.save_to_disk(name, &key, &module);
        Ok(Artifact { module, engine })
    }

    /// Writes a freshly compiled `module` to the disk cache, if there is
    /// one; a failure costs only a later compile, so it is logged.
    fn save_to_disk(&self, name: &str, key: &ArtifactKey, module: &Module) {
        let Some(disk) = &self.disk else { return };
        let bytes = match module.serialize() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(module = name, error = %e, "cannot serialize wasm artifact");
                return;
            }
        };
        match disk.store(key, &bytes) {
            Ok(Written::Stored { evicted }) => {
                Counters::add(&self.counters.disk_writes, 1);
                Counters::add(&self.counters.disk_evictions, evicted);
            }
            Ok(Written::TooLarge) => {
                tracing::info!(
                    module = name,
                    bytes = bytes.len(),
                    "wasm artifact larger than the disk cache's cap, not cached"
                );
            }
            Err(e) => tracing::warn!(module = name, error = %e, "cannot cache wasm artifact"),
        }
    }

    /// The artifact stored on disk under `key`, loaded into `engine`.
    fn load_from_disk(&self, key: &ArtifactKey, engine: &Engine) -> Option<Artifact> {
        let bytes = match self.disk.as_ref()?.load(key) {
            Lookup::Hit(bytes) => bytes,
            Lookup::Miss => return None,
            Lookup::Refused => {
                Counters::add(&self.counters.disk_refused, 1);
                return None;
            }
        };
        // SAFETY: `bytes` passed `DiskCache::load`'s MAC, whose key is
        // derived from a secret outside the cache and which covers this
        // exact `ArtifactKey` (wasm hash, wasmer version, compiler, limits,
        // target): only a holder of the secret wrote them, for this key.
        // See the `disk_cache` module docs for the full argument.
        match unsafe { Module::deserialize(engine, bytes) } {
            Ok(module) => Some(Artifact {
                module,
                engine: engine.clone(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cached wasm artifact not loadable, recompiling");
                None
            }
        }
    }
}

impl State {
    /// The current version of `name` if its binary hashes to `hash`.
    fn current_with(&self, name: &str, hash: &ContentHash) -> Option<CompiledModule> {
        let current = self.versions.get(name)?.current()?;
        (current.version().hash == *hash).then(|| current.clone())
    }

    /// Drops the artifacts no kept version uses (instances of dropped
    /// versions keep theirs alive through their own reference).
    fn drop_unused_artifacts(&mut self) {
        let used: HashSet<ContentHash> = self
            .versions
            .values()
            .flat_map(|v| v.kept.iter().map(|m| m.version().hash))
            .collect();
        self.artifacts.retain(|hash, _| used.contains(hash));
    }
}

/// The store and compiled modules are shared across the runtime's threads;
/// a wasmer upgrade that broke this must fail to build, not the runtime.
/// (`GuestInstance` is not `Send`: wasmer 7's `Store` is not.)
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<ModuleStore>();
    shareable::<CompiledModule>();
};
