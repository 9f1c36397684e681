//! Fault injection: what a test (or a fault plan) can do to a running
//! particle (the lane's state that carries it out is `lane::fault`).
//!
//! Faults act at the particle's own letter boundaries, in its own task: a
//! crash is taken before its next letter (as a panic in its next handler
//! would be), a pause holds its letters in the lane, a delay holds each
//! chosen letter before it is handled (so per-sender order is kept, as on
//! a slow link), a drop discards a chosen wave (a dropped request is never
//! answered, so its requester times out with a typed error). Random
//! choices come from a seeded generator per lane, so a fault plan replays.

use std::time::Duration;

/// A fault to inject into one particle with [`crate::Machine::inject`].
///
/// ```
/// use hyperverse_runtime::*;
/// use std::time::Duration;
///
/// struct Echo;
/// impl Particle for Echo {
///     type State = ();
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
///     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let m = Machine::standalone().kind("echo", Echo).build().await?;
/// let at: Point = "echo".parse()?;
/// m.spawn(at.clone(), "echo".into(), Body::empty()).await?;
///
/// // Every wave is dropped: a request times out with a typed error.
/// m.inject(&at, Fault::Drop { probability: 1.0 })?;
/// let lost = m.ask(&at, ("hi", "x")).within(Duration::from_millis(50));
/// let lost = lost.await;
/// assert!(matches!(lost, Err(WaveError::Timeout { .. })), "{lost:?}");
///
/// // Healed, then crashed as if it had panicked: its Star restarts it.
/// m.inject(&at, Fault::Heal)?;
/// m.inject(&at, Fault::Crash("injected".into()))?;
/// assert_eq!(m.ask(&at, ("hi", "again")).await?.as_bytes(), b"again");
/// assert_eq!(m.record(&at).unwrap().restarts, 1);
///
/// // Bad parameters are typed errors.
/// assert!(matches!(
///     m.inject(&at, Fault::Drop { probability: 2.0 }),
///     Err(FaultError::BadProbability { .. })
/// ));
/// m.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Crash it before its next letter, as if its handler had panicked
    /// with this reason (no wave is in hand, so none is lost). A crash not
    /// taken before the incarnation ends (it crashed by itself first, or
    /// was stopped) is dropped: it was meant for that incarnation.
    Crash(String),
    /// Stop taking letters until [`Fault::Resume`]; they queue meanwhile.
    Pause,
    /// Take letters again after a [`Fault::Pause`].
    Resume,
    /// Its next `start` fails with this reason (a crash at start).
    FailNextStart(String),
    /// Hold each wave taken from its lane, with this probability, for a
    /// time drawn from `min..=max` before it is handled. (Waves only:
    /// notices and control letters, such as the supervisor API and exit
    /// reports, pass delays and drops.)
    Delay {
        min: Duration,
        max: Duration,
        probability: f64,
    },
    /// Discard each wave taken from its lane with this probability. A
    /// dropped request is not answered: its requester times out (a
    /// an ask `within(None)` (no timeout) gets `Stopped` when the particle
    /// ends). The answer channels are kept until then.
    Drop { probability: f64 },
    /// Removes delays, drops and a pause.
    Heal,
}

/// A fault that cannot be injected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// No live particle there.
    #[error("no particle at {point}")]
    NoSuchParticle { point: crate::Point },
    /// A probability outside `0.0..=1.0`.
    #[error("probability {probability} is not within 0..=1")]
    BadProbability { probability: f64 },
    /// A delay whose `min` exceeds its `max`.
    #[error("delay min {min:?} is above max {max:?}")]
    BadDelay { min: Duration, max: Duration },
    /// No such Star.
    #[error("no Star {star} (the Machine has {stars})")]
    NoSuchStar { star: usize, stars: usize },
    /// The Machine is shutting down.
    #[error("the Machine is shutting down")]
    MachineDown,
    /// Faults are injected only by the Machine (code outside any handler)
    /// or by an ancestor of the target (Stars: only by the Machine).
    #[error("{caller} may not inject faults into {target}")]
    Forbidden {
        caller: crate::Point,
        target: String,
    },
    /// The access rules do not give the visitor `stop` on that particle
    /// (injecting a fault is acting on its life).
    #[error("access denied: {visitor} may not inject faults into {point}")]
    Denied {
        visitor: crate::access::Visitor,
        point: crate::Point,
    },
    /// The Star was not restarted in time after a kill.
    #[error("Star {star} was not restarted within {waited:?}")]
    StarNotRestarted { star: usize, waited: Duration },
}

impl Fault {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), FaultError> {
        let probability = match self {
            Fault::Delay {
                min,
                max,
                probability,
            } => {
                if min > max {
                    return Err(FaultError::BadDelay {
                        min: *min,
                        max: *max,
                    });
                }
                *probability
            }
            Fault::Drop { probability } => *probability,
            _ => return Ok(()),
        };
        if (0.0..=1.0).contains(&probability) {
            Ok(())
        } else {
            Err(FaultError::BadProbability { probability })
        }
    }
}
