//! [`WasmHost`]: WASM modules as Kinds of a Machine, and their hot reload.
//!
//! The host owns a [`ModuleStore`]; its guests run on their Stars' own
//! threads (see `local.rs`). Each module it runs is a Kind, `Kind::wasm(name)`, installed
//! on a [`MachineBuilder`] with [`WasmHost::install`]; the Driver is the
//! runtime's ordinary [`ParticleDriver`], because a WASM particle is an
//! ordinary particle whose State is a handle on its guest (`particle.rs`).
//!
//! The host does not keep the Machine: a Machine holds its Drivers, so a
//! host holding the Machine would keep both alive forever. The calls that
//! need it ([`WasmHost::reload`]) take it as an argument.
//!
//! Access rules: a reload needs the `reload` privilege on every live
//! particle it would move, judged for the visitor of the handle it is
//! given ([`Machine::may`]): the Machine itself (a handle used outside
//! every handler) may reload anything; a particle calling from its
//! handler, what it owns or was granted; a CLI user (a handle of
//! [`Machine::as_user`]), what the rules grant that user. A daemon acting
//! for a user passes the Machine's own handle to do the work and the
//! user's to be judged ([`WasmHost::reload_as`],
//! [`WasmHost::reload_file_as`]). Its guests' own waves are judged by the
//! same rules (`host.rs`, `effects.rs`), and its modules' grants
//! manifests are put in force by the host as the Machine (`manifest.rs`).
//!
//! A reload runs in two steps. First the new version is compiled (on a
//! blocking thread, so no runtime worker stalls) and checked; a module that
//! fails is refused and nothing changes. Then, under the module's lock, it
//! becomes current (every incarnation that starts from now on runs it) and
//! the live incarnations are listed: any incarnation is either in that list
//! or started on the new version. Each Star that hosts listed particles
//! gets a task on its own thread, where their guests live, which moves
//! each guest of the module between two of its calls (`swap.rs`: no letter,
//! so nothing any wave or particle sends can ask for a reload); the Stars
//! work in parallel and their outcomes are gathered into a
//! [`ReloadReport`]. If a particle's move to the new version failed, the
//! version that was current before becomes current again (see
//! [`ReloadReport::rolled_back`] for the rule), so that spawns and restarts
//! do not start on a version that could not take over a live particle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse_runtime::access::Privilege;
use hyperverse_runtime::{
    Driver, Kind, KindResolver, LaneLimit, Machine, MachineBuilder, ParticleDriver, Point,
};
use parking_lot::Mutex;
use tracing::Instrument;

use crate::budget::{GuestPolicy, SendBudget};
use crate::entry::{HostShared, ModuleEntry, Promotion};
use crate::error::ModuleError;
use crate::from_disk::compile;
use crate::limits::Limits;
use crate::manifest::ModuleGrants;
use crate::particle::WasmParticle;
use crate::reload::{ReloadFailure, ReloadReport};
use crate::search::{ModuleFile, ModulePath};
use crate::store::{CompiledModule, ModuleStore};
use crate::WasmKind;

/// How long a reload waits for its Stars to move their particles unless
/// told otherwise: a Star's thread takes its turn between its particles'
/// waves, which under load can take a while.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs WASM modules as particles of a Machine, and reloads them live.
///
/// Cheap to clone (one reference count); every clone is the same host.
/// Install a host on one Machine: a reload moves the live particles it
/// finds on the Machine it is given.
///
/// ```
/// use hyperverse_modules::{guests, Limits, WasmHost, WasmKind};
/// use hyperverse_runtime::{Body, Kind, Machine, Point};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let host = WasmHost::new(Limits::default());
/// host.load_wat("counter", guests::COUNTER_V1)?;
/// let machine = host.install(Machine::standalone(), "counter").build().await?;
///
/// let at: Point = "counter".parse()?;
/// machine.spawn(at.clone(), Kind::wasm("counter"), Body::from_u64(41)).await?;
/// machine.signal(&at, ("add", Body::empty()))?;
/// let got = machine.ask(&at, ("get", Body::empty())).await?;
/// assert_eq!(got.as_u64(), Some(42));
/// assert_eq!(machine.record(&at).unwrap().code_version, 1);
///
/// // Version 2, live: the count is kept, the behaviour changes.
/// let report = host.reload_wat(&machine, "counter", guests::COUNTER_V2).await?;
/// assert!(report.is_complete());
/// assert_eq!(report.reloaded, vec![at.clone()]);
/// let add = machine.ask(&at, ("add", Body::empty())).await?; // v2 replies to add
/// assert_eq!(add.as_u64(), Some(43));
/// assert_eq!(machine.record(&at).unwrap().code_version, 2);
/// machine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WasmHost {
    shared: Arc<HostShared>,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut modules: Vec<String> = self
            .shared
            .modules
            .lock()
            .keys()
            .map(|name| name.to_string())
            .collect();
        modules.sort();
        f.debug_struct("WasmHost")
            .field("modules", &modules)
            .field("store", &self.shared.store)
            .finish()
    }
}

/// Builds a [`WasmHost`]: `WasmHost::builder().limits(limits).build()`.
#[derive(Debug)]
pub struct WasmHostBuilder {
    store: Option<ModuleStore>,
    limits: Limits,
    reload_timeout: Duration,
    policy: GuestPolicy,
    path: ModulePath,
}

impl WasmHostBuilder {
    /// Where a module that is not loaded is looked for the first time a
    /// particle of it starts (default: nowhere). See [`ModulePath`] for
    /// how files are named and picked.
    pub fn search_path(mut self, path: ModulePath) -> Self {
        self.path = path;
        self
    }

    /// The sandbox limits of every module (default: [`Limits::default`]);
    /// ignored if [`WasmHostBuilder::store`] is given.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Uses `store` (e.g. one with a disk cache) instead of a new one.
    pub fn store(mut self, store: ModuleStore) -> Self {
        self.store = Some(store);
        self
    }

    /// How long a reload waits for its Stars to move their particles
    /// (default [`DEFAULT_RELOAD_TIMEOUT`]); those not reached by then are
    /// reported as not moved, and are not moved later.
    pub fn reload_timeout(mut self, timeout: Duration) -> Self {
        self.reload_timeout = timeout;
        self
    }

    /// How much each guest may send, per call and per second (default:
    /// [`SendBudget::default`]). See [`SendBudget`] for what happens past
    /// it: the call fails and nothing it sent leaves.
    pub fn send_budget(mut self, budget: SendBudget) -> Self {
        self.policy.budget = budget;
        self
    }

    /// Lets guests spawn children of `kind` (`hv.spawn`), a Rust Kind.
    /// Guests may always spawn WASM modules' Kinds, which run in the same
    /// sandbox; a Rust Kind runs with the Machine's full powers, so none is
    /// spawnable unless granted here.
    pub fn guest_may_spawn(mut self, kind: impl Into<Kind>) -> Self {
        self.policy.spawn_kinds.push(kind.into());
        self
    }

    /// The lane limit of WASM particles whose spawn options give none
    /// (default: [`DEFAULT_WASM_LANE`](crate::DEFAULT_WASM_LANE), 65,536
    /// waves with backpressure for async senders); `None` leaves their
    /// lanes unbounded. An explicit [`SpawnOptions::lane`] always wins. A
    /// capacity of 0 makes their spawns fail with `BadLaneLimit`.
    ///
    /// [`SpawnOptions::lane`]: hyperverse_runtime::SpawnOptions::lane
    pub fn lane_limit(mut self, lane: Option<LaneLimit>) -> Self {
        self.policy.lane = lane;
        self
    }

    /// The host.
    pub fn build(self) -> WasmHost {
        let store = self.store.unwrap_or_else(|| ModuleStore::new(self.limits));
        WasmHost {
            shared: Arc::new(HostShared {
                store: Arc::new(store),
                modules: Mutex::new(HashMap::new()),
                reload_timeout: self.reload_timeout,
                policy: self.policy,
                path: self.path,
            }),
        }
    }
}

impl WasmHost {
    /// A host whose modules run under `limits`, with the defaults.
    pub fn new(limits: Limits) -> Self {
        Self::builder().limits(limits).build()
    }

    /// A builder, for a store of your own, the reload timeout, the
    /// guests' send budget or their default lane.
    pub fn builder() -> WasmHostBuilder {
        WasmHostBuilder {
            store: None,
            limits: Limits::default(),
            reload_timeout: DEFAULT_RELOAD_TIMEOUT,
            policy: GuestPolicy::default(),
            path: ModulePath::default(),
        }
    }

    /// The module store (the versions of every module it keeps, compiled
    /// once; the version each particle runs is kept while it runs).
    /// Load through the host ([`WasmHost::load`], [`WasmHost::reload`]):
    /// a version loaded into the store directly is not what new particles
    /// start on.
    pub fn store(&self) -> &ModuleStore {
        &self.shared.store
    }

    /// Loads a WebAssembly binary as the next version of `name` and makes it
    /// the version new particles of `Kind::wasm(name)` start on. Live
    /// particles keep theirs: use [`WasmHost::reload`] to move them.
    ///
    /// # Errors
    ///
    /// As [`ModuleStore::load`]: the bytes do not compile or break the
    /// ABI; then nothing changed.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<CompiledModule, ModuleError> {
        let module = self.shared.store.load(name, wasm)?;
        self.shared.entry(name).promote(&module);
        Ok(module)
    }

    /// [`WasmHost::load`] from WebAssembly text.
    ///
    /// # Errors
    ///
    /// As [`ModuleStore::load_wat`].
    pub fn load_wat(&self, name: &str, wat: &str) -> Result<CompiledModule, ModuleError> {
        let module = self.shared.store.load_wat(name, wat)?;
        self.shared.entry(name).promote(&module);
        Ok(module)
    }

    /// The version new particles of module `name` start on.
    pub fn current(&self, name: &str) -> Option<CompiledModule> {
        self.shared.modules.lock().get(name)?.current()
    }

    /// The live particles of module `name` (those with a running guest),
    /// sorted by Point.
    pub fn live(&self, name: &str) -> Vec<Point> {
        match self.shared.modules.lock().get(name) {
            Some(entry) => entry.live(),
            None => Vec::new(),
        }
    }

    /// The Driver of `Kind::wasm(name)`, for [`MachineBuilder::driver`].
    /// The module may be loaded later; until it is, spawns of it fail with
    /// [`ModuleError::NotLoaded`]. Its particles get the host's default
    /// lane ([`WasmHostBuilder::lane_limit`]) unless their spawn options
    /// give one.
    pub fn driver(&self, name: &str) -> Arc<dyn Driver> {
        let particle = WasmParticle {
            host: self.shared.clone(),
            entry: self.shared.entry(name),
        };
        Arc::new(
            ParticleDriver::new(particle)
                .with_default_lane(self.shared.policy.lane)
                .on_star_thread(),
        )
    }

    /// Installs module `name` on `builder` as `Kind::wasm(name)`.
    pub fn install(&self, builder: MachineBuilder, name: &str) -> MachineBuilder {
        builder.driver(Kind::wasm(name), self.driver(name))
    }

    /// Hot reload: loads `wasm` as the next version of `name`, then moves
    /// every live particle of `Kind::wasm(name)` on `machine` to it, each
    /// keeping its state (`snapshot` in the old instance, `restore` in a new
    /// one). Waves sent meanwhile wait in the particles' lanes and are
    /// handled afterwards, in order, by the new version (as an Erlang
    /// release upgrade: suspend, change code, resume). The move happens on
    /// each particle's Star thread, between two of its guest's calls: a
    /// particle waiting in the middle of a wave (for room in a full lane,
    /// say) makes its next call on the new version. A particle whose move fails stays on
    /// its old version, serving; the report names it. Particles spawned (or
    /// restarted) from now on start on the new version, unless a particle's
    /// move failed: then the version current before the reload is current
    /// again ([`ReloadReport::rolled_back`] says when, and why the
    /// particles that did move stay moved).
    ///
    /// Bytes equal to the current version's are that version (see
    /// [`ModuleStore::load`]): the report then finds every particle
    /// already current.
    ///
    /// The reload is judged for `machine`'s visitor (see
    /// [`WasmHost::reload_as`]): the Machine's own handle, used outside
    /// every handler, may reload anything.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Denied`] if `machine`'s visitor lacks the `reload`
    /// privilege on a live particle of the module; else only if the new
    /// bytes are refused (they do not compile, or break the ABI). Nothing
    /// changed then.
    pub async fn reload(
        &self,
        machine: &Machine,
        name: &str,
        wasm: &[u8],
    ) -> Result<ReloadReport, ModuleError> {
        self.reload_with_progress(machine, name, wasm, |_, _| {})
            .await
    }

    /// [`WasmHost::reload`] from WebAssembly text.
    ///
    /// # Errors
    ///
    /// As [`WasmHost::reload`], and if the text does not parse.
    pub async fn reload_wat(
        &self,
        machine: &Machine,
        name: &str,
        wat: &str,
    ) -> Result<ReloadReport, ModuleError> {
        self.may_reload(machine, name)?;
        let started = Instant::now();
        let (store, owned_name, text) =
            (self.shared.store.clone(), name.to_string(), wat.to_string());
        let module = compile(name, move || store.load_wat(&owned_name, &text)).await?;
        Ok(self
            .upgrade(machine, module, started.elapsed(), &mut |_, _| {})
            .await)
    }

    /// [`WasmHost::reload`], calling `progress(done, total)` as the Stars
    /// deal with their particles (first with `done` 0, last with `total`),
    /// for a user watching a large reload.
    ///
    /// # Errors
    ///
    /// As [`WasmHost::reload`].
    pub async fn reload_with_progress(
        &self,
        machine: &Machine,
        name: &str,
        wasm: &[u8],
        progress: impl FnMut(usize, usize) + Send,
    ) -> Result<ReloadReport, ModuleError> {
        self.reload_as(machine, machine, name, wasm, progress).await
    }

    /// [`WasmHost::reload_with_progress`] on behalf of `caller`, done
    /// through `machine`: the reload is refused unless `caller`'s visitor
    /// ([`Machine::visitor`]: a CLI user for a handle of
    /// [`Machine::as_user`]) has the `reload` privilege on every live
    /// particle of the module ([`Machine::may`]); the work (moving the
    /// guests, reading their records for the report) is done through
    /// `machine`, which should be the Machine's own handle, so that the
    /// report does not depend on what else `caller` may read. For a daemon
    /// that reloads for a CLI user.
    ///
    /// Judged before anything is compiled; a particle that starts during
    /// the reload starts on the new version or is moved with the others.
    ///
    /// ```
    /// use hyperverse_modules::{guests, Limits, ModuleError, WasmHost, WasmKind};
    /// use hyperverse_runtime::{Body, Kind, Machine};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let host = WasmHost::new(Limits::default());
    /// host.load_wat("counter", guests::COUNTER_V1)?;
    /// let machine = host.install(Machine::standalone(), "counter").build().await?;
    /// machine.spawn("c".parse()?, Kind::wasm("counter"), Body::empty()).await?;
    /// let alice = machine.as_user("alice")?;
    /// let v2 = guests::COUNTER_V2;
    /// let bytes = wasmer::wat2wasm(v2.as_bytes())?.into_owned();
    /// let denied = host.reload_as(&machine, &alice, "counter", &bytes, |_, _| {}).await;
    /// assert!(matches!(denied, Err(ModuleError::Denied { .. })));
    /// machine.grant("reload on c to user=alice".parse()?)?;
    /// let report = host.reload_as(&machine, &alice, "counter", &bytes, |_, _| {}).await?;
    /// assert!(report.is_complete());
    /// # machine.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ModuleError::Denied`], naming the first live particle `caller`
    /// may not reload; else as [`WasmHost::reload`]. Nothing changed then.
    pub async fn reload_as(
        &self,
        machine: &Machine,
        caller: &Machine,
        name: &str,
        wasm: &[u8],
        mut progress: impl FnMut(usize, usize) + Send,
    ) -> Result<ReloadReport, ModuleError> {
        self.may_reload(caller, name)?;
        let started = Instant::now();
        let (store, owned_name, bytes) =
            (self.shared.store.clone(), name.to_string(), wasm.to_vec());
        let module = compile(name, move || store.load(&owned_name, &bytes)).await?;
        Ok(self
            .upgrade(machine, module, started.elapsed(), &mut progress)
            .await)
    }

    /// Whether `caller` may reload module `name`'s live particles.
    fn may_reload(&self, caller: &Machine, name: &str) -> Result<(), ModuleError> {
        let entry = self.shared.modules.lock().get(name).cloned();
        match entry {
            Some(entry) => may_reload(caller, &entry),
            None => Ok(()),
        }
    }

    /// The folders searched for modules not loaded.
    pub fn search_path(&self) -> &ModulePath {
        &self.shared.path
    }

    /// Loads a module file (`NAME.wasm` or `NAME.wat`, see [`ModuleFile`])
    /// as the next version of its module, and makes it the version new
    /// particles start on, as [`WasmHost::load`]; the host remembers the
    /// file for [`WasmHost::reload_file`]. The grants manifest beside it
    /// (`NAME.grants`, see [`ModuleGrants`]) becomes the module's grants
    /// (none if there is none), in force from its next particle's start.
    /// Read and compiled on a blocking thread.
    ///
    /// # Errors
    ///
    /// [`ModuleError::File`] if the path is not a module file's or cannot
    /// be read; [`ModuleError::Manifest`] if its manifest is not one; else
    /// as [`WasmHost::load`]. Nothing changed then.
    pub async fn load_file(&self, path: &std::path::Path) -> Result<CompiledModule, ModuleError> {
        let file = module_file(path)?;
        // The entry is made only for a module that loaded: a path that
        // fails leaves nothing behind (names come from clients).
        let read = crate::from_disk::read_and_compile(&self.shared, &file).await?;
        let entry = self.shared.entry(&file.name);
        read.keep(&entry, &file);
        entry.promote(&read.module);
        Ok(read.module)
    }

    /// Reads module `name`'s file again (the one it was last loaded from,
    /// else the one the search path finds) and its grants manifest, and
    /// reloads its live particles to it, as
    /// [`WasmHost::reload_with_progress`]; the manifest's grants replace
    /// the module's (see [`ModuleGrants`]). A file whose bytes did not
    /// change gives a report where every particle is current.
    ///
    /// # Errors
    ///
    /// As [`WasmHost::reload_file_as`], judged for `machine`'s visitor.
    pub async fn reload_file(
        &self,
        machine: &Machine,
        name: &str,
        progress: impl FnMut(usize, usize) + Send,
    ) -> Result<ReloadReport, ModuleError> {
        self.reload_file_as(machine, machine, name, progress).await
    }

    /// [`WasmHost::reload_file`] for `caller`, done through `machine` (the
    /// Machine's own handle), as [`WasmHost::reload_as`].
    ///
    /// # Errors
    ///
    /// [`ModuleError::Denied`] if `caller`'s visitor may not reload a live
    /// particle of the module; [`ModuleError::NotFound`] if no file is
    /// known or found for it; [`ModuleError::File`] if it cannot be read;
    /// [`ModuleError::Manifest`] if its manifest is not one; else as
    /// [`WasmHost::reload`]. Nothing changed then.
    pub async fn reload_file_as(
        &self,
        machine: &Machine,
        caller: &Machine,
        name: &str,
        mut progress: impl FnMut(usize, usize) + Send,
    ) -> Result<ReloadReport, ModuleError> {
        let started = Instant::now();
        // No entry is made for a name that has neither a module nor a file:
        // a client's names, each different, would be kept for ever.
        let known = self.shared.modules.lock().get(name).cloned();
        if let Some(entry) = &known {
            may_reload(caller, entry)?;
        }
        let file = known
            .as_ref()
            .and_then(|entry| entry.source())
            .map(|(file, _)| file)
            .or_else(|| self.shared.path.find(name))
            .ok_or_else(|| self.shared.path.not_found(name))?;
        let read = crate::from_disk::read_and_compile(&self.shared, &file).await?;
        let entry = known.unwrap_or_else(|| self.shared.entry(name));
        read.keep(&entry, &file);
        Ok(self
            .upgrade(machine, read.module, started.elapsed(), &mut progress)
            .await)
    }

    /// Sets module `name`'s grants, as its manifest would (see
    /// [`ModuleGrants`]): what its particles may do beyond what they own,
    /// as rules to `kind=wasm:NAME`, replacing the grants it had. In force
    /// from the next start of one of its particles, or the next reload.
    /// For a module loaded from bytes; a module file's manifest is read
    /// with it.
    ///
    /// ```
    /// use hyperverse_modules::{guests, Limits, ModuleGrants, WasmHost};
    ///
    /// let host = WasmHost::new(Limits::default());
    /// host.load_wat("counter", guests::COUNTER_V1)?;
    /// host.set_grants("counter", ModuleGrants::parse("counter", "send,ask on db:**")?);
    /// assert!(!host.grants("counter").is_empty());
    /// # Ok::<(), hyperverse_modules::ModuleError>(())
    /// ```
    pub fn set_grants(&self, name: &str, grants: ModuleGrants) {
        self.shared.entry(name).set_grants(grants);
    }

    /// Module `name`'s grants (none for a module the host does not know).
    pub fn grants(&self, name: &str) -> ModuleGrants {
        match self.shared.modules.lock().get(name) {
            Some(entry) => (*entry.grants()).clone(),
            None => ModuleGrants::none(),
        }
    }

    /// Every module the host has loaded or its search path offers, sorted
    /// by name: its current version (if loaded), its file (if it has one)
    /// and how many particles run it now.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        let mut out = self.loaded();
        for file in self.shared.path.list() {
            if !out.iter().any(|m| m.name == file.name) {
                out.push(ModuleInfo {
                    name: file.name.clone(),
                    current: None,
                    file: Some(file),
                    stamp: None,
                    live: 0,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The modules the host has loaded (or read a file of), sorted by
    /// name: [`WasmHost::modules`] without listing the search path's
    /// folders, for a watcher that looks often.
    pub fn loaded(&self) -> Vec<ModuleInfo> {
        let entries: Vec<Arc<ModuleEntry>> = self.shared.modules.lock().values().cloned().collect();
        let mut out: Vec<ModuleInfo> = entries
            .iter()
            .filter_map(|e| {
                let current = e.current().map(|m| m.version().clone());
                let (file, stamp) = match e.source() {
                    Some((file, stamp)) => (Some(file), stamp),
                    None => (None, None),
                };
                // An entry made by a lookup that found nothing is no module.
                (current.is_some() || file.is_some()).then(|| ModuleInfo {
                    name: e.name.to_string(),
                    current,
                    file,
                    stamp,
                    live: e.live_count(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A [`KindResolver`] for [`MachineBuilder::resolver`]: a Kind
    /// `wasm:NAME` gets this host's Driver for module `NAME` the first time
    /// it is spawned, if the module is loaded or the search path has a
    /// file of it. That is a listing of each search folder (no file is
    /// read), on the spawning thread, at each spawn of a Kind not found
    /// yet: keep the path to local folders of modules. Its first particle then
    /// loads the file ([`WasmHostBuilder::search_path`]).
    pub fn resolver(&self) -> Arc<dyn KindResolver> {
        Arc::new(Resolver(self.clone()))
    }

    /// The second step of a reload: `module` (a version already in the
    /// store) becomes current and every live particle is moved to it; if a
    /// move failed, the previous version becomes current again.
    async fn upgrade(
        &self,
        machine: &Machine,
        module: CompiledModule,
        compile: Duration,
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> ReloadReport {
        let entry = self.shared.entry(module.name());
        let version = module.version().clone();
        let span = tracing::info_span!(
            target: crate::TARGET_RELOAD,
            "reload",
            module = %version.name,
            to = version.seq,
            particles = tracing::field::Empty,
        );
        let serial = entry.reloads.lock().instrument(span.clone()).await;
        // The module's grants, in force before its live particles run the
        // new version (which may need them at once). Refused (`machine` is
        // no handle of the Machine's own), they stay pending, for the
        // module's next start.
        if let Err(e) = entry.grants_in_force(machine).await {
            tracing::warn!(
                target: crate::TARGET_RELOAD,
                module = %version.name,
                error = %e,
                "the module's grants could not be put in force"
            );
        }
        let started = Instant::now();
        let Promotion {
            previous,
            promoted,
            live,
            stars,
        } = entry.promote(&module);
        span.record("particles", live.len());

        // Each Star's guests are moved by a task on that Star's own thread,
        // where they live, directly in its slab between their calls
        // (`swap.rs`); the Stars work in parallel, and their outcomes
        // stream back here a chunk at a time.
        let timeout = self.shared.reload_timeout;
        let total = live.len();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let tally = Arc::new(crate::swap::Tally::default());
        let mut report = ReloadReport::new(previous.as_ref().map(|m| m.version().clone()), version);
        progress(0, total);
        // A Star task that cannot start leaves its particles where they
        // are; the tally (`swap.rs`) makes sure no guest moves once the
        // host stops waiting, even in the middle of a Star's chunk.
        let mut tasks = Vec::new();
        for star in stars {
            let (tx, module, tally) = (tx.clone(), module.clone(), tally.clone());
            let work = async move {
                crate::swap::reload_this_thread(&module, &tally, |met| {
                    let _ = tx.send(met);
                })
                .await;
            };
            match machine.spawn_on_star(star, work) {
                Ok(task) => tasks.push(task),
                Err(e) => tracing::warn!(
                    target: crate::TARGET_RELOAD,
                    star,
                    error = %e,
                    "cannot reload a Star's particles"
                ),
            }
        }
        drop(tx);
        // The timeout bounds the whole wait from here, whatever keeps a
        // Star's thread busy. Progress counts the guests the Stars dealt
        // with (the listed ones, and any incarnation started meanwhile).
        let deadline = tokio::time::Instant::now() + timeout;
        let mut timed_out = false;
        let (mut met, mut shown) = (0, 0);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv())
                .instrument(span.clone())
                .await
            {
                Ok(Some(n)) => {
                    met += n;
                    if met.min(total) > shown {
                        shown = met.min(total);
                        progress(shown, total);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
        let outcomes = tally.close();
        for task in &tasks {
            task.abort();
        }
        let mut pending: std::collections::HashSet<Point> = live.into_iter().collect();
        for (point, outcome) in outcomes {
            // Listed before the promotion (a newer incarnation met on the
            // walk started on this version anyway).
            if pending.remove(&point) {
                report.record_outcome(point, outcome);
            }
        }
        // Not met by the walks. A guest is in its Star's slab from the
        // moment its incarnation is listed until it ends, so in time that
        // is a particle gone, or restarted since on the version current now
        // (its record says which version it runs); anything else (out of
        // time, or a Star whose task could not run) was not reached and
        // stays where it was.
        let to = report.version.seq;
        for point in pending {
            let record = machine.record(&point);
            if record.is_none() && !timed_out {
                report.gone.push(point);
            } else if record.is_some_and(|r| r.code_version == to) {
                report.current.push(point);
            } else {
                let reason = if timed_out {
                    hyperverse_runtime::WaveError::Timeout {
                        point: point.clone(),
                        after: timeout,
                    }
                    .to_string()
                } else {
                    "not reached: its Star could not run the reload".to_string()
                };
                report.failed.push(ReloadFailure {
                    stays_on: None,
                    reason,
                    point,
                });
            }
        }
        // Every listed particle is accounted for now.
        if shown < total {
            progress(total, total);
        }
        // Outcomes come in any order; the report lists Points in order.
        report.sort();
        if promoted {
            report.rolled_back = roll_back_if_refused(&entry, &module, previous.as_ref(), &report);
        }
        // Held until the current version is settled, so that the next
        // reload of this module starts from it.
        drop(serial);
        report.compile = compile;
        report.swap = started.elapsed();
        span.in_scope(|| {
            tracing::info!(
                target: crate::TARGET_RELOAD,
                reloaded = report.reloaded.len(),
                current = report.current.len(),
                failed = report.failed.len(),
                gone = report.gone.len(),
                rolled_back = report.rolled_back,
                swap_ms = report.swap.as_secs_f64() * 1e3,
                "reload done"
            );
            for failure in &report.failed {
                tracing::warn!(
                    target: crate::TARGET_RELOAD,
                    point = %failure.point,
                    reason = %failure.reason,
                    "particle stays on its old version"
                );
            }
        });
        report
    }
}

/// Whether `caller`'s visitor has the `reload` privilege on every live
/// particle of `entry`; the first it lacks it on is the error (logged).
fn may_reload(caller: &Machine, entry: &ModuleEntry) -> Result<(), ModuleError> {
    let denied = entry
        .live()
        .into_iter()
        .find(|point| !caller.may(Privilege::Reload, point));
    let Some(point) = denied else {
        return Ok(());
    };
    let visitor = caller.visitor();
    tracing::warn!(
        target: crate::TARGET_RELOAD,
        module = %entry.name,
        %visitor,
        %point,
        "reload denied"
    );
    Err(ModuleError::Denied {
        module: entry.name.to_string(),
        visitor,
        point,
        privilege: Privilege::Reload,
    })
}

/// After the swaps: if a particle refused `module` (see
/// [`ReloadReport::rolled_back`]), makes `previous` current again, unless
/// a newer version became current meanwhile. Returns whether it did.
fn roll_back_if_refused(
    entry: &ModuleEntry,
    module: &CompiledModule,
    previous: Option<&CompiledModule>,
    report: &ReloadReport,
) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    if !report.refused_by_a_particle() {
        return false;
    }
    let rolled_back = entry.roll_back(module, previous);
    if rolled_back {
        tracing::warn!(
            target: crate::TARGET_RELOAD,
            module = %entry.name,
            failed = module.version().seq,
            current = previous.version().seq,
            "a particle could not move to the new version: rolled back"
        );
    }
    rolled_back
}

/// A module as [`WasmHost::modules`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Its name.
    pub name: String,
    /// The version new particles start on, if loaded.
    pub current: Option<crate::ModuleVersion>,
    /// The file it was last read from, or that the search path offers.
    pub file: Option<ModuleFile>,
    /// That file's stamp when it was last read (`None` if never read):
    /// compare with [`ModuleFile::stamp`] to see whether it changed since.
    pub stamp: Option<crate::FileStamp>,
    /// Particles running it now.
    pub live: usize,
}

/// See [`WasmHost::resolver`].
struct Resolver(WasmHost);

impl KindResolver for Resolver {
    fn resolve(&self, kind: &Kind) -> Option<Arc<dyn Driver>> {
        let name = kind.wasm_module()?;
        let known = self.0.current(name).is_some() || self.0.shared.path.find(name).is_some();
        known.then(|| self.0.driver(name))
    }
}

/// `path` as a module file, or the error that it is not one.
fn module_file(path: &std::path::Path) -> Result<ModuleFile, ModuleError> {
    ModuleFile::parse(path).ok_or_else(|| ModuleError::File {
        module: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.display().to_string(),
        message: "not a module file: its name must be NAME.wasm, NAME.wat or NAME@VERSION.wasm (letters, digits, - and _)".into(),
    })
}
