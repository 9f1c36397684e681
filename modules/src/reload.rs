//! What a hot reload did, particle by particle.
//!
//! Each live particle's guest is moved on its Star's thread (`swap.rs`),
//! with an [`Outcome`]; the host gathers the outcomes into a
//! [`ReloadReport`]: which particles now run the new version, which already
//! did, which stay on their old version and why, which ended before
//! their turn, and whether the new version was rolled back.

use std::fmt;
use std::time::Duration;

use hyperverse_runtime::Point;

use crate::version::ModuleVersion;

/// What a reload did to one particle's guest (`swap.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Swapped to the target version, state kept.
    Reloaded { from: u64 },
    /// Already at the target version or a newer one.
    Current { at: u64 },
    /// Still on version `stays_on`, serving.
    Failed { stays_on: u64, reason: String },
}

/// A particle the reload could not move to the new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    /// The particle.
    pub point: Point,
    /// The version it still runs, serving, if its move was tried and
    /// failed; `None` if it was not reached (the reload's time ran out, or
    /// its Star could not run the reload): it stays where it was.
    pub stays_on: Option<u64>,
    /// Why, e.g. the new version's `restore` trapped (the guest's error,
    /// naming module and export).
    pub reason: String,
}

/// What [`WasmHost::reload`](crate::WasmHost::reload) did.
///
/// Every particle that was live when the new version became current is in
/// exactly one list. Those in `reloaded` run the new version with their
/// state; those in `failed` still run their old version (and serve); those
/// in `gone` ended before their turn (a restart or a new spawn starts on
/// the current version anyway).
///
/// # Rollback
///
/// If any particle's move was tried and failed (a `failed` entry with
/// `stays_on: Some(_)`: the old instance's `snapshot`, the new version's
/// instantiation or its `restore` failed), the version that was current
/// before the reload is made current again and `rolled_back` is true: a
/// version that could not take over a live particle's state is not one to
/// start every later spawn and restart on. Whichever of the three steps
/// failed, a version that cannot take over its predecessor's particles
/// needs fixing, so any such failure counts. A particle that was not
/// reached (`stays_on: None`) proves nothing about the new version and
/// does not cause a rollback. Nor is anything rolled back if the reload
/// did not make the version current (it, or a newer one, already was), or
/// if another load made a newer version current meanwhile: that one stays.
///
/// Particles that did move (in `reloaded`, or started on the new version
/// during the reload) stay on it: moving them back would need the old
/// version to `restore` a snapshot the new one wrote, which the ABI does
/// not promise (a new version reads its predecessors' snapshots, not the
/// reverse), and they are running. They move on with the next reload; a
/// restart starts them on the current, rolled-back version.
///
/// ```
/// use hyperverse_modules::{guests, Limits, WasmHost, WasmKind};
/// use hyperverse_runtime::{Body, Kind, Machine, Point};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let host = WasmHost::new(Limits::default());
/// host.load_wat("counter", guests::COUNTER_V1)?;
/// let machine = host.install(Machine::standalone(), "counter").build().await?;
/// let at: Point = "c".parse()?;
/// machine.spawn(at.clone(), Kind::wasm("counter"), Body::from_u64(5)).await?;
///
/// // This "v2" traps in `restore`: the particle stays on v1, count and all.
/// let report = host.reload_wat(&machine, "counter", guests::RESTORE_TRAPS).await?;
/// assert!(!report.is_complete());
/// assert_eq!(report.failed[0].point, at);
/// assert_eq!(report.failed[0].stays_on, Some(1));
/// assert!(report.failed[0].reason.contains("`restore` trapped: unreachable"));
/// let count = machine.ask(&at, ("get", Body::empty())).await?;
/// assert_eq!(count.as_u64(), Some(5));
/// assert_eq!(machine.record(&at).unwrap().code_version, 1);
///
/// // And v1 is current again: new particles do not start on the failure.
/// assert!(report.rolled_back);
/// assert!(report.to_string().contains("rolled back to counter@1"));
/// assert_eq!(host.current("counter").unwrap().version().seq, 1);
/// machine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The version the live particles were before (the module's current
    /// version when the reload began), if there was one.
    pub previous: Option<ModuleVersion>,
    /// The new version: current from now on, for spawns and restarts,
    /// unless `rolled_back`.
    pub version: ModuleVersion,
    /// Moved to the new version, state kept.
    pub reloaded: Vec<Point>,
    /// Already on the new version (or a newer one) when their turn came:
    /// started after it became current.
    pub current: Vec<Point>,
    /// Not moved: still on their old version, serving.
    pub failed: Vec<ReloadFailure>,
    /// Ended before their turn.
    pub gone: Vec<Point>,
    /// True if a particle's move to the new version failed and so
    /// `previous` is current again (see "Rollback" above).
    pub rolled_back: bool,
    /// Compiling (or finding in the cache) and checking the new version.
    pub compile: Duration,
    /// Swapping every live particle, from the new version made current to
    /// the last Star done.
    pub swap: Duration,
}

impl ReloadReport {
    pub(crate) fn new(previous: Option<ModuleVersion>, version: ModuleVersion) -> Self {
        ReloadReport {
            previous,
            version,
            reloaded: Vec::new(),
            current: Vec::new(),
            failed: Vec::new(),
            gone: Vec::new(),
            rolled_back: false,
            compile: Duration::ZERO,
            swap: Duration::ZERO,
        }
    }

    /// True if no particle failed: every live one runs the new version
    /// (or has ended).
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// True if a particle's move to the new version was tried and
    /// failed: the rule for rolling back (see "Rollback" above).
    pub(crate) fn refused_by_a_particle(&self) -> bool {
        self.failed.iter().any(|f| f.stays_on.is_some())
    }

    /// Sorts each list by Point (outcomes come in any order).
    pub(crate) fn sort(&mut self) {
        self.reloaded.sort_unstable();
        self.current.sort_unstable();
        self.gone.sort_unstable();
        self.failed.sort_unstable_by(|a, b| a.point.cmp(&b.point));
    }

    /// How many particles the reload dealt with.
    pub fn particles(&self) -> usize {
        self.reloaded.len() + self.current.len() + self.failed.len() + self.gone.len()
    }

    /// Files what the reload did to one particle's guest.
    pub(crate) fn record_outcome(&mut self, point: Point, outcome: Outcome) {
        match outcome {
            Outcome::Reloaded { .. } => self.reloaded.push(point),
            Outcome::Current { .. } => self.current.push(point),
            Outcome::Failed { stays_on, reason } => self.failed.push(ReloadFailure {
                point,
                stays_on: Some(stays_on),
                reason,
            }),
        }
    }
}

impl fmt::Display for ReloadReport {
    /// `counter@1 -> counter@2: 3 reloaded, 0 already current, 1 failed,
    /// 0 gone (compile 1.2 ms, swap 0.4 ms)`, then `; rolled back to
    /// counter@1` if it was, then one line per failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = format!("{}@{}", self.version.name, self.version.seq);
        match &self.previous {
            Some(p) => write!(f, "{}@{} -> {to}", p.name, p.seq)?,
            None => write!(f, "{to}")?,
        }
        write!(
            f,
            ": {} reloaded, {} already current, {} failed, {} gone (compile {:.1} ms, swap {:.1} ms)",
            self.reloaded.len(),
            self.current.len(),
            self.failed.len(),
            self.gone.len(),
            self.compile.as_secs_f64() * 1e3,
            self.swap.as_secs_f64() * 1e3,
        )?;
        if let (true, Some(p)) = (self.rolled_back, &self.previous) {
            write!(f, "; rolled back to {}@{}", p.name, p.seq)?;
        }
        for failure in &self.failed {
            write!(f, "\n  {}: {}", failure.point, failure.reason)?;
            if let Some(v) = failure.stays_on {
                write!(f, " (stays on {}@{v})", self.version.name)?;
            }
        }
        Ok(())
    }
}
