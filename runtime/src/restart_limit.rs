//! How often a particle may be restarted, and how long it waits first.

use std::time::Duration;

use hyperverse_supervisors::{Backoff, Intensity, IntensityError};

/// How often a particle may be restarted: `max_restarts` within `period`.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartLimit {
    /// Restarts allowed within one period.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
    /// An optional growing delay before each restart (default: none).
    /// Boxed: every particle keeps its limit, few have a backoff.
    pub backoff: Option<Box<Backoff>>,
}

impl RestartLimit {
    /// The supervision logic for this limit.
    pub fn intensity(&self) -> Result<Intensity, IntensityError> {
        Intensity::new(self.max_restarts, self.period)
    }

    /// Checks that the limit can work: a period above zero, and a sound
    /// backoff if any.
    pub fn check(&self) -> Result<(), String> {
        self.intensity().map_err(|e| e.to_string())?;
        if let Some(b) = &self.backoff {
            b.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Default for RestartLimit {
    /// [`Intensity`]'s default: ten restarts within five seconds.
    fn default() -> Self {
        let d = Intensity::default();
        RestartLimit {
            max_restarts: d.max_restarts(),
            period: d.period(),
            backoff: None,
        }
    }
}
