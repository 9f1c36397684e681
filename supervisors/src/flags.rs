//! Supervisor flags: strategy, restart intensity, auto-shutdown.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::IntensityError;

/// What a supervisor restarts when one child must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Only that child.
    OneForOne,
    /// All children: the others are stopped (reverse start order), then
    /// all are started again in start order.
    OneForAll,
    /// That child and those started after it: they are stopped in reverse
    /// order, then started again in start order.
    RestForOne,
    /// OTP's `simple_one_for_one`: one spec, children added at run time,
    /// each restarted on its own.
    Dynamic,
}

/// When the end of significant children ends the supervisor (OTP 24+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AutoShutdown {
    /// Never.
    Never,
    /// When any significant child ends (and is not restarted).
    AnySignificant,
    /// When every significant child has ended.
    AllSignificant,
}

/// A supervisor's flags.
///
/// ```
/// use hyperverse_supervisors::{Strategy, SupFlags};
/// use std::time::Duration;
///
/// let flags = SupFlags::new(Strategy::OneForAll).intensity(3, Duration::from_secs(10));
/// assert!(flags.validate().is_ok());
/// // OTP's defaults: one restart in five seconds.
/// assert_eq!(SupFlags::default().max_restarts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupFlags {
    /// What to restart.
    pub strategy: Strategy,
    /// At most this many restarts…
    pub max_restarts: u32,
    /// …within any window of this length, or the supervisor gives up.
    pub period: Duration,
    /// Whether significant children can end the supervisor.
    pub auto_shutdown: AutoShutdown,
}

impl SupFlags {
    /// The strategy with OTP's default intensity (1 in 5 s) and no auto-shutdown.
    pub fn new(strategy: Strategy) -> Self {
        SupFlags {
            strategy,
            ..SupFlags::default()
        }
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Sets auto-shutdown.
    pub fn auto_shutdown(mut self, auto: AutoShutdown) -> Self {
        self.auto_shutdown = auto;
        self
    }

    /// Checks the flags.
    pub fn validate(&self) -> Result<(), IntensityError> {
        crate::Intensity::new(self.max_restarts, self.period).map(|_| ())
    }
}

impl Default for SupFlags {
    fn default() -> Self {
        SupFlags {
            strategy: Strategy::OneForOne,
            max_restarts: 1,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
        }
    }
}
