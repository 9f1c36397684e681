//! Restart intensity: OTP's `intensity` and `period`.
//!
//! A supervisor may restart its children at most `max_restarts` times within
//! any sliding window of `period`. One more restart than that means the fault
//! is not transient, and the supervisor gives up instead of looping forever.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A sliding-window restart counter.
///
/// ```
/// use hyperverse_supervisors::{Intensity, RestartVerdict};
/// use std::time::{Duration, Instant};
///
/// let mut limit = Intensity::new(2, Duration::from_secs(5)).unwrap();
/// let t = Instant::now();
/// assert_eq!(limit.record_at(t), RestartVerdict::Restart { in_period: 1 });
/// assert_eq!(limit.record_at(t), RestartVerdict::Restart { in_period: 2 });
/// assert_eq!(limit.record_at(t), RestartVerdict::GiveUp { in_period: 3 });
/// // Once the window has passed, restarts are allowed again.
/// let later = t + Duration::from_secs(6);
/// assert_eq!(limit.record_at(later), RestartVerdict::Restart { in_period: 1 });
/// ```
#[derive(Debug, Clone)]
pub struct Intensity {
    max_restarts: u32,
    period: Duration,
    recent: VecDeque<Instant>,
}

/// What a supervisor should do about one more crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartVerdict {
    /// Restart the child; `in_period` restarts (this one included) fall in the window.
    Restart { in_period: u32 },
    /// The limit is exceeded: stop restarting.
    GiveUp { in_period: u32 },
}

/// An intensity that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IntensityError {
    /// OTP requires a period of at least one unit; a zero window counts nothing.
    #[error("restart period must be greater than zero")]
    ZeroPeriod,
}

impl Intensity {
    /// `max_restarts` restarts are allowed within any window of `period`.
    pub fn new(max_restarts: u32, period: Duration) -> Result<Self, IntensityError> {
        if period.is_zero() {
            return Err(IntensityError::ZeroPeriod);
        }
        Ok(Self {
            max_restarts,
            period,
            recent: VecDeque::new(),
        })
    }

    /// The allowed number of restarts per period.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The sliding window.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts recorded within the window that ends now. O(log n): the
    /// record is in time order, so the expired ones are a prefix.
    pub fn in_period(&self) -> u32 {
        let now = Instant::now();
        let expired = self
            .recent
            .partition_point(|&t| now.saturating_duration_since(t) >= self.period);
        (self.recent.len() - expired) as u32
    }

    /// Records a crash now and says whether a restart is still allowed.
    pub fn record(&mut self) -> RestartVerdict {
        self.record_at(Instant::now())
    }

    /// Records a crash at `now` (for tests and replay).
    pub fn record_at(&mut self, now: Instant) -> RestartVerdict {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        let in_period = self.recent.len() as u32;
        if in_period > self.max_restarts {
            RestartVerdict::GiveUp { in_period }
        } else {
            RestartVerdict::Restart { in_period }
        }
    }
}

impl Default for Intensity {
    /// Ten restarts in five seconds: generous enough for a particle that
    /// crashes now and then, strict enough to stop a crash loop quickly.
    fn default() -> Self {
        Self {
            max_restarts: 10,
            period: Duration::from_secs(5),
            recent: VecDeque::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_max_gives_up_on_first_crash() {
        let mut i = Intensity::new(0, Duration::from_secs(1)).unwrap();
        assert_eq!(i.record(), RestartVerdict::GiveUp { in_period: 1 });
    }

    #[test]
    fn in_period_counts_only_the_window() {
        let mut i = Intensity::new(100, Duration::from_secs(10)).unwrap();
        let Some(old) = Instant::now().checked_sub(Duration::from_secs(11)) else {
            return; // a clock younger than the window: nothing to test
        };
        // 9 s apart: recording the second keeps the first...
        i.record_at(old);
        i.record_at(old + Duration::from_secs(9));
        i.record_at(old + Duration::from_secs(9));
        // ...but now, 11 s after it, only the other two are in the window.
        assert_eq!(i.in_period(), 2);
    }

    #[test]
    fn zero_period_is_rejected() {
        assert_eq!(
            Intensity::new(1, Duration::ZERO).unwrap_err(),
            IntensityError::ZeroPeriod
        );
    }

    #[test]
    fn window_slides() {
        let mut i = Intensity::new(1, Duration::from_millis(100)).unwrap();
        let t = Instant::now();
        assert!(matches!(i.record_at(t), RestartVerdict::Restart { .. }));
        assert!(matches!(
            i.record_at(t + Duration::from_millis(50)),
            RestartVerdict::GiveUp { in_period: 2 }
        ));
        assert!(matches!(
            i.record_at(t + Duration::from_millis(200)),
            RestartVerdict::Restart { .. }
        ));
    }
}
