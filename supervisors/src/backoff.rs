//! Restart backoff: beyond OTP, an optional growing delay before each
//! restart, so a child that keeps failing against a sick dependency does not
//! hammer it (and use up its restart intensity) in a tight loop.

use std::time::{Duration, Instant};

/// Exponential backoff with jitter and a reset after a quiet period.
///
/// The n-th restart in a row waits `initial × multiplier^(n-1)`, at most
/// `max`, plus up to `jitter` of that at random (so restarts of many
/// children spread out). A crash more than `reset_after` after the previous
/// one starts again from `initial`.
///
/// ```
/// use hyperverse_supervisors::Backoff;
/// use std::time::{Duration, Instant};
///
/// let policy = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
/// let mut state = policy.start();
/// let t = Instant::now();
/// let ms = |d: Duration| d.as_millis();
/// // No jitter by default: 10, 20, 40, then capped at 50.
/// assert_eq!(ms(state.next_delay(t, 0)), 10);
/// assert_eq!(ms(state.next_delay(t, 0)), 20);
/// assert_eq!(ms(state.next_delay(t, 0)), 40);
/// assert_eq!(ms(state.next_delay(t, 0)), 50);
/// // After a quiet period it starts over.
/// assert_eq!(ms(state.next_delay(t + Duration::from_secs(60), 0)), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Growth per restart in a row (2 doubles).
    pub multiplier: f64,
    /// Up to this fraction of the delay is added at random (0 to 1).
    pub jitter: f64,
    /// A crash this long after the previous one starts from `initial` again.
    pub reset_after: Duration,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, no jitter, reset after 30 s quiet.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(30),
        }
    }

    /// Sets the jitter fraction (clamped to 0..=1; NaN means none).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// The longest delay a backoff may ask for (a day): longer is surely a
    /// mistake, and a delay near `Duration::MAX` overflows every clock.
    pub const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

    /// Checks a backoff set field by field: finite, growing, `initial` at
    /// most `max`, `max` at most [`Backoff::MAX_DELAY`], jitter within 0..=1.
    ///
    /// ```
    /// use hyperverse_supervisors::Backoff;
    /// use std::time::Duration;
    ///
    /// assert!(Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).validate().is_ok());
    /// assert!(Backoff::new(Duration::MAX, Duration::MAX).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), BackoffError> {
        let ok = self.initial <= self.max
            && self.max <= Self::MAX_DELAY
            && self.multiplier.is_finite()
            && self.multiplier >= 1.0
            && (0.0..=1.0).contains(&self.jitter);
        if ok {
            Ok(())
        } else {
            Err(BackoffError(format!("{self:?}")))
        }
    }

    /// Sets the quiet period after which the delay starts over.
    pub fn reset_after(mut self, quiet: Duration) -> Self {
        self.reset_after = quiet;
        self
    }

    /// A fresh per-child state.
    pub fn start(&self) -> BackoffState {
        BackoffState {
            policy: *self,
            in_a_row: 0,
            last: None,
        }
    }
}

/// One child's place in its backoff.
#[derive(Debug, Clone)]
pub struct BackoffState {
    policy: Backoff,
    in_a_row: u32,
    last: Option<Instant>,
}

impl BackoffState {
    /// The delay before the restart for a crash at `now`; `random` is any
    /// random number (it picks the jitter), passed in so tests can replay.
    /// It saturates: whatever the policy's numbers (even unvalidated ones),
    /// the delay is at most [`Backoff::MAX_DELAY`] and nothing overflows.
    pub fn next_delay(&mut self, now: Instant, random: u64) -> Duration {
        let p = &self.policy;
        // Quiet is measured from the last restart, not the last crash: a
        // long delay is not a quiet period.
        if self
            .last
            .is_some_and(|restarted| now.saturating_duration_since(restarted) >= p.reset_after)
        {
            self.in_a_row = 0;
        }
        self.in_a_row = self.in_a_row.saturating_add(1);
        let grown = p.initial.as_secs_f64() * p.multiplier.powi(self.in_a_row as i32 - 1);
        let base = grown.min(p.max.as_secs_f64()).max(0.0);
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
        let jitter = if p.jitter.is_finite() {
            p.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = Duration::try_from_secs_f64(base * (1.0 + jitter * unit))
            .unwrap_or(p.max)
            .min(Backoff::MAX_DELAY);
        // A clock near its end saturates rather than overflows.
        self.last = Some(now.checked_add(delay).unwrap_or(now));
        delay
    }
}

/// A backoff whose numbers cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("bad restart backoff: {0}")]
pub struct BackoffError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_adds_at_most_its_fraction() {
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.5);
        let t = Instant::now();
        let low = policy.start().next_delay(t, 0);
        let high = policy.start().next_delay(t, u64::MAX);
        assert_eq!(low, Duration::from_millis(100));
        assert!(
            high > Duration::from_millis(149) && high <= Duration::from_millis(150),
            "{high:?}"
        );
    }

    #[test]
    fn huge_numbers_saturate_instead_of_overflowing() {
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(huge.validate().is_err());
        let mut s = huge.jitter(1.0).start();
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(s.next_delay(t, u64::MAX), Backoff::MAX_DELAY);
        }
    }

    #[test]
    fn a_long_run_of_crashes_stays_at_the_cap() {
        let mut s = Backoff::new(Duration::from_millis(1), Duration::from_millis(8)).start();
        let t = Instant::now();
        let last = (0..100).map(|_| s.next_delay(t, 0)).last().unwrap();
        assert_eq!(last, Duration::from_millis(8));
    }
}
