//! The Drivers of a Machine: those installed when it was built, and those
//! a [`KindResolver`] finds the first time a Kind is asked for.
//!
//! Erlang's code server loads a module the first time a call needs it; a
//! daemon that finds WASM modules in a search path wants the same of
//! Kinds. The installed map is fixed at build and read with no lock (the
//! spawn path of every Rust Kind); only a miss takes the resolved map's
//! lock and, the first time, asks the resolver. A Kind keeps the first
//! Driver found for it for the Machine's life: "one Driver per Kind"
//! holds for resolved Kinds too.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::{Driver, Kind};

/// Finds a Driver for a Kind no Driver was installed for.
///
/// Asked at most until it answers `Some` for a Kind (that Driver is then
/// kept), on the spawning caller's thread: it must be quick and must not
/// block (a Driver that loads code should load it when its particle
/// starts, which is async). A panic in it is a `None`.
///
/// ```
/// use std::sync::Arc;
/// use hyperverse_runtime::*;
///
/// struct Echo;
/// impl Particle for Echo {
///     type State = ();
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
///     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// }
///
/// /// Every Kind named `echo:…` is an echo.
/// struct Echoes;
/// impl KindResolver for Echoes {
///     fn resolve(&self, kind: &Kind) -> Option<Arc<dyn Driver>> {
///         kind.as_str().starts_with("echo:").then(|| Arc::new(ParticleDriver::new(Echo)) as _)
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let m = Machine::standalone().resolver(Arc::new(Echoes)).build().await?;
/// m.spawn("a".parse()?, "echo:one".into(), Body::empty()).await?;
/// assert_eq!(m.ask(&"a".parse()?, ("say", "hi")).await?.as_bytes(), b"hi");
/// assert!(matches!(
///     m.spawn("b".parse()?, "other".into(), Body::empty()).await,
///     Err(SpawnError::UnknownKind { .. })
/// ));
/// assert_eq!(m.kinds(), vec![Kind::from("echo:one")]);
/// m.shutdown().await;
/// # Ok(()) }
/// ```
pub trait KindResolver: Send + Sync + 'static {
    /// The Driver for `kind`, if this resolver knows it.
    fn resolve(&self, kind: &Kind) -> Option<Arc<dyn Driver>>;
}

type Map = HashMap<Kind, Arc<dyn Driver>, ahash::RandomState>;

/// Installed Drivers, then resolved ones.
pub(crate) struct Drivers {
    installed: Map,
    resolver: Option<Arc<dyn KindResolver>>,
    resolved: RwLock<Map>,
}

impl Drivers {
    pub(crate) fn new(installed: Map, resolver: Option<Arc<dyn KindResolver>>) -> Self {
        Drivers {
            installed,
            resolver,
            resolved: RwLock::new(HashMap::with_hasher(ahash::RandomState::new())),
        }
    }

    /// The Driver of `kind`, resolving it the first time.
    pub(crate) fn get(&self, kind: &Kind) -> Option<Arc<dyn Driver>> {
        if let Some(d) = self.installed.get(kind) {
            return Some(d.clone());
        }
        let resolver = self.resolver.as_ref()?;
        if let Some(d) = self.resolved.read().get(kind) {
            return Some(d.clone());
        }
        // Outside the lock: a resolver is user code.
        let found =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| resolver.resolve(kind)))
                .ok()
                .flatten()?;
        // Two callers may resolve the same Kind at once: the first kept wins.
        Some(
            self.resolved
                .write()
                .entry(kind.clone())
                .or_insert(found)
                .clone(),
        )
    }

    /// Every Kind with a Driver so far, sorted.
    pub(crate) fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.installed.keys().cloned().collect();
        kinds.extend(self.resolved.read().keys().cloned());
        kinds.sort();
        kinds
    }
}
