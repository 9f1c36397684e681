//! Exit reasons: why a child ended, and whether that was normal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a child (or a supervisor) ended.
///
/// As in OTP, `Normal`, `Shutdown` and `ShutdownWith` are normal exits: a
/// transient child is not restarted after one. Anything else is abnormal.
///
/// ```
/// use hyperverse_supervisors::ExitReason;
///
/// assert!(ExitReason::Shutdown.is_normal());
/// assert!(ExitReason::ShutdownWith("maintenance".into()).is_normal());
/// assert!(!ExitReason::Error("boom".into()).is_normal());
/// assert!(!ExitReason::Killed.is_normal());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitReason {
    /// It finished its work.
    Normal,
    /// It was told to stop (by its supervisor, or an escalation).
    Shutdown,
    /// It was told to stop, with a detail (OTP's `{shutdown, Term}`).
    ShutdownWith(String),
    /// It was killed without a chance to clean up (brutal kill, or a
    /// shutdown timeout that ran out).
    Killed,
    /// It crashed: a panic, an error, a failed start.
    Error(String),
}

impl ExitReason {
    /// `Normal`, `Shutdown` and `ShutdownWith` are normal; the rest are not.
    pub fn is_normal(&self) -> bool {
        matches!(
            self,
            ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
        )
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::ShutdownWith(d) => write!(f, "shutdown: {d}"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Error(e) => f.write_str(e),
        }
    }
}

/// A handler may end with an exit reason as its error (Erlang's
/// `exit(Reason)`): a supervised particle returning
/// `Err(ExitReason::Shutdown.into())` exits with reason shutdown, which a
/// transient child's supervisor does not restart.
impl std::error::Error for ExitReason {}
