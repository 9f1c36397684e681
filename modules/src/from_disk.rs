//! Loading a module from its file, off the runtime's worker threads: the
//! first start of a module found in the host's search path, `load_file`
//! and `reload_file` all come here.

use crate::entry::{HostShared, ModuleEntry};
use crate::error::ModuleError;
use crate::manifest::ModuleGrants;
use crate::search::{FileStamp, ModuleFile};
use crate::store::CompiledModule;

/// Runs a load (a compile, unless cached) on a blocking thread when inside a
/// multi-thread runtime, so that no runtime worker stalls on Cranelift;
/// inline otherwise.
pub(crate) async fn compile(
    name: &str,
    load: impl FnOnce() -> Result<CompiledModule, ModuleError> + Send + 'static,
) -> Result<CompiledModule, ModuleError> {
    compile_with(name, load).await
}

/// [`compile`] for a load that gives back more than the module.
async fn compile_with<T: Send + 'static>(
    name: &str,
    load: impl FnOnce() -> Result<T, ModuleError> + Send + 'static,
) -> Result<T, ModuleError> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            match tokio::task::spawn_blocking(load).await {
                Ok(loaded) => loaded,
                Err(e) => Err(ModuleError::Host {
                    module: name.to_string(),
                    message: format!("the compile task failed: {e}"),
                }),
            }
        }
        _ => load(),
    }
}

/// A module read from its file: the version compiled, the file's stamp,
/// and the grants of the manifest beside it.
pub(crate) struct FromDisk {
    pub(crate) module: CompiledModule,
    pub(crate) stamp: Option<FileStamp>,
    pub(crate) grants: ModuleGrants,
}

impl FromDisk {
    /// Keeps what was read for module `entry`: its file, then its grants
    /// (put in force by its next start or reload).
    pub(crate) fn keep(&self, entry: &ModuleEntry, file: &ModuleFile) {
        entry.set_source(file.clone(), self.stamp);
        entry.set_grants(self.grants.clone());
    }
}

/// Reads and compiles `file` as the next version of its module (not yet
/// current: the caller promotes it, or reloads to it), with the file's
/// stamp taken before the read (a write during the read then shows as a
/// change still to load, never the reverse), and reads the grants manifest
/// beside it (`manifest.rs`) first: a manifest that does not parse refuses
/// the load before anything is compiled. The caller records what it read
/// ([`FromDisk::keep`]) once it keeps the module: a file that fails leaves
/// no trace. Reading happens on the blocking thread too: a file may be
/// large, or on a slow disk.
pub(crate) async fn read_and_compile(
    shared: &HostShared,
    file: &ModuleFile,
) -> Result<FromDisk, ModuleError> {
    let store = shared.store.clone();
    let owned = file.clone();
    compile_with(&file.name, move || {
        let grants = ModuleGrants::beside(&owned)?;
        let stamp = owned.stamp();
        let wasm = owned.read()?;
        Ok(FromDisk {
            module: store.load(&owned.name, &wasm)?,
            stamp,
            grants,
        })
    })
    .await
}

/// The first start of a module that is not loaded: finds it in the search
/// path, loads it and makes it current (unless another load made a version
/// current meanwhile: that one stays, as with any load).
///
/// One at a time per module: the particles that start together on a
/// module not yet loaded wait for the first one's load, rather than each
/// reading and compiling the file.
pub(crate) async fn load_on_demand(
    shared: &HostShared,
    entry: &ModuleEntry,
) -> Result<(), ModuleError> {
    let _first = entry.loading.lock().await;
    if entry.current().is_some() {
        return Ok(());
    }
    let file = shared
        .path
        .find(&entry.name)
        .ok_or_else(|| shared.path.not_found(&entry.name))?;
    let read = read_and_compile(shared, &file).await?;
    read.keep(entry, &file);
    let module = read.module;
    tracing::info!(
        target: crate::TARGET_WASM,
        module = %module.version(),
        file = %file.path.display(),
        "loaded on first use"
    );
    entry.promote(&module);
    Ok(())
}
