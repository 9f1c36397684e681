//! Child specs: how a supervisor starts, restarts and stops one child.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a child is restarted (OTP's default: permanent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Restart {
    /// Always.
    #[default]
    Permanent,
    /// Only after an abnormal exit.
    Transient,
    /// Never; its spec is removed when it ends.
    Temporary,
}

/// How a child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shutdown {
    /// Killed at once, with no chance to clean up.
    BrutalKill,
    /// Asked to stop, and killed if it has not within this time.
    Timeout(Duration),
    /// Asked to stop, and waited for as long as it takes (for supervisors,
    /// which must stop their own children first).
    Infinity,
}

/// What a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChildType {
    /// Does the work.
    Worker,
    /// Supervises children of its own.
    Supervisor,
}

/// How a supervisor starts, restarts and stops one child. `S` is how to
/// start it: whatever the [`crate::Children`] implementation needs (a Kind
/// and arguments, a closure, …).
///
/// ```
/// use hyperverse_supervisors::{ChildSpec, ChildType, Restart, Shutdown};
/// use std::time::Duration;
///
/// let spec = ChildSpec::worker("db", "start the db")
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
/// assert_eq!(spec.child_type, ChildType::Worker);
/// assert!(spec.validate().is_ok());
/// // OTP: a supervisor child defaults to waiting for its whole subtree.
/// assert_eq!(ChildSpec::supervisor("sub", ()).shutdown, Shutdown::Infinity);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSpec<S> {
    /// Unique among its supervisor's children.
    pub id: String,
    /// How to start it.
    pub start: S,
    /// When to restart it.
    pub restart: Restart,
    /// How to stop it.
    pub shutdown: Shutdown,
    /// Worker or supervisor.
    pub child_type: ChildType,
    /// Whether its end may end its supervisor (see [`crate::AutoShutdown`]).
    pub significant: bool,
}

/// OTP's default shutdown timeout for workers.
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

/// A child spec that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SpecError {
    /// Ids name children in the API and the logs.
    #[error("a child spec needs a non-empty id")]
    EmptyId,
    /// Two children with one id.
    #[error("two child specs have the id `{id}`")]
    DuplicateId { id: String },
    /// OTP: a significant child must be transient or temporary, or its
    /// supervisor could never shut down by itself.
    #[error("child `{id}` is significant, so it must be transient or temporary")]
    SignificantPermanent { id: String },
    /// A zero timeout is a brutal kill; say so.
    #[error("child `{id}` has a zero shutdown timeout: use BrutalKill")]
    ZeroShutdown { id: String },
}

impl<S> ChildSpec<S> {
    /// A permanent worker with OTP's default 5 s shutdown.
    pub fn worker(id: impl Into<String>, start: S) -> Self {
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(DEFAULT_SHUTDOWN),
            child_type: ChildType::Worker,
            significant: false,
        }
    }

    /// A permanent supervisor child, stopped with `Infinity`.
    pub fn supervisor(id: impl Into<String>, start: S) -> Self {
        ChildSpec {
            child_type: ChildType::Supervisor,
            shutdown: Shutdown::Infinity,
            ..ChildSpec::worker(id, start)
        }
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how it is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Marks it significant for auto-shutdown.
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Checks the spec on its own.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.id.is_empty() {
            return Err(SpecError::EmptyId);
        }
        if self.significant && self.restart == Restart::Permanent {
            return Err(SpecError::SignificantPermanent {
                id: self.id.clone(),
            });
        }
        if self.shutdown == Shutdown::Timeout(Duration::ZERO) {
            return Err(SpecError::ZeroShutdown {
                id: self.id.clone(),
            });
        }
        Ok(())
    }
}
