//! The module store: named, versioned modules and their compiled artifacts.
//!
//! Loading is: hash the bytes; find the artifact in memory, else on disk,
//! else compile it (with a fresh engine and metering middleware, see
//! `engine.rs`) and check it against the guest ABI; then record a new
//! [`ModuleVersion`] with the next sequence number for that name.
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

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use wasmer::{Engine, Module};

use crate::abi;
use crate::disk_cache::DiskCache;
use crate::engine::{fresh_engine, ArtifactKey};
use crate::error::ModuleError;
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

    /// A new running instance (not yet `init`ed); see [`GuestInstance::new`].
    pub fn instantiate(&self) -> Result<GuestInstance, ModuleError> {
        GuestInstance::new(self)
    }
}

/// How a store's loads were served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Loads that compiled (successfully or not).
    pub compiles: u64,
    /// Loads served by an artifact already in memory.
    pub memory_hits: u64,
    /// Loads served by an artifact from the disk cache.
    pub disk_hits: u64,
    /// Artifacts written to the disk cache.
    pub disk_writes: u64,
}

#[derive(Default)]
struct Counters {
    compiles: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_writes: AtomicU64,
}

#[derive(Default)]
struct State {
    artifacts: HashMap<ContentHash, Artifact>,
    /// Every version of every name, in load order (index = seq - 1).
    versions: HashMap<Arc<str>, Vec<CompiledModule>>,
}

/// Named, versioned modules, compiled once per distinct binary.
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
/// assert_eq!((first.version().seq, again.version().seq), (1, 2));
/// assert_eq!(first.version().hash, again.version().hash);
/// assert_eq!(store.stats().compiles, 1); // the second load reused the artifact
/// assert_eq!(store.current("counter").unwrap().version().seq, 2);
///
/// let err = store.load("broken", b"not wasm").unwrap_err();
/// assert_eq!(err.module(), Some("broken"));
/// # Ok::<(), hyperverse_modules::ModuleError>(())
/// ```
pub struct ModuleStore {
    limits: Limits,
    disk: Option<DiskCache>,
    state: Mutex<State>,
    counters: Counters,
}

impl fmt::Debug for ModuleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleStore")
            .field("limits", &self.limits)
            .field("disk_cache", &self.disk.as_ref().map(DiskCache::dir))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ModuleStore {
    /// A store whose modules run under `limits`, caching artifacts in
    /// memory only.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            disk: None,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
        }
    }

    /// A store that also caches artifacts in `dir` (created if absent), so
    /// a restarted Machine skips compiling modules it has seen. The
    /// directory must be private to the Machine: see the crate's
    /// `disk_cache` docs for the trust it needs.
    pub fn with_disk_cache(limits: Limits, dir: impl AsRef<Path>) -> Result<Self, ModuleError> {
        let dir = dir.as_ref();
        let disk = DiskCache::open(dir).map_err(|e| ModuleError::Cache {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            disk: Some(disk),
            ..Self::new(limits)
        })
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
        }
    }

    /// Loads WebAssembly text as the next version of `name`.
    pub fn load_wat(&self, name: &str, wat: &str) -> Result<CompiledModule, ModuleError> {
        let wasm = wasmer::wat2wasm(wat.as_bytes()).map_err(|e| ModuleError::Compile {
            module: name.to_string(),
            message: format!("invalid WAT: {e}"),
        })?;
        self.load(name, &wasm)
    }

    /// Loads a WebAssembly binary as the next version of `name`: compiled
    /// (or taken from a cache) and checked against the guest ABI. On error
    /// no version is made and the current one stays current.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<CompiledModule, ModuleError> {
        let hash = ContentHash::of(wasm);
        let cached = self.state.lock().artifacts.get(&hash).cloned();
        let artifact = match cached {
            Some(artifact) => {
                self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
                artifact
            }
            None => {
                let artifact = self.build(name, wasm, &hash)?;
                self.state
                    .lock()
                    .artifacts
                    .entry(hash)
                    .or_insert(artifact)
                    .clone()
            }
        };

        let mut state = self.state.lock();
        let name: Arc<str> = state
            .versions
            .get_key_value(name)
            .map_or_else(|| Arc::from(name), |(key, _)| key.clone());
        let versions = state.versions.entry(name.clone()).or_default();
        let version = ModuleVersion {
            name,
            seq: versions.len() as u64 + 1,
            hash,
        };
        tracing::debug!(%version, "module loaded");
        let compiled = CompiledModule {
            inner: Arc::new(CompiledInner {
                version,
                artifact,
                limits: self.limits,
            }),
        };
        versions.push(compiled.clone());
        Ok(compiled)
    }

    /// The latest version of `name`.
    pub fn current(&self, name: &str) -> Option<CompiledModule> {
        self.state.lock().versions.get(name)?.last().cloned()
    }

    /// Version `seq` of `name`.
    pub fn version(&self, name: &str, seq: u64) -> Option<CompiledModule> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.state.lock().versions.get(name)?.get(index).cloned()
    }

    /// Every version of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<ModuleVersion> {
        self.state
            .lock()
            .versions
            .get(name)
            .map(|all| all.iter().map(|m| m.version().clone()).collect())
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
            self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(artifact);
        }

        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        let compile_error = |message: String| ModuleError::Compile {
            module: name.to_string(),
            message,
        };
        // A compiler panic must not take the Machine down with it.
        let module = catch_unwind(AssertUnwindSafe(|| Module::from_binary(&engine, wasm)))
            .map_err(|_| compile_error("the compiler panicked".into()))?
            .map_err(|e| compile_error(e.to_string()))?;
        abi::validate(name, &module, &self.limits)?;

        if let Some(disk) = &self.disk {
            match module.serialize() {
                Ok(bytes) => match disk.store(&key, &bytes) {
                    Ok(()) => {
                        self.counters.disk_writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(module = name, error = %e, "cannot cache wasm artifact")
                    }
                },
                Err(e) => {
                    tracing::warn!(module = name, error = %e, "cannot serialize wasm artifact")
                }
            }
        }
        Ok(Artifact { module, engine })
    }

    /// The artifact stored on disk under `key`, loaded into `engine`.
    fn load_from_disk(&self, key: &ArtifactKey, engine: &Engine) -> Option<Artifact> {
        let bytes = self.disk.as_ref()?.load(key)?;
        // SAFETY: `bytes` were written by `DiskCache::store` for this exact
        // key (wasm hash, wasmer version, compiler, limits, target) and
        // passed its checksum; see the `disk_cache` module docs for the
        // full argument and its trust assumption about the directory.
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

/// The store and compiled modules are shared across the runtime's threads;
/// a wasmer upgrade that broke this must fail to build, not the runtime.
/// (`GuestInstance` is not `Send`: wasmer 7's `Store` is not.)
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<ModuleStore>();
    shareable::<CompiledModule>();
};
