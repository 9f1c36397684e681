//! Where a particle is in its life.

/// Where a particle is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Its `start` is running.
    Starting = 0,
    /// Serving waves.
    Ready = 1,
    /// Crashed; its supervisor is restarting it.
    Restarting = 2,
    /// Stopped, or given up by its supervisor.
    Stopped = 3,
}

impl Status {
    pub(crate) fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Starting,
            1 => Status::Ready,
            2 => Status::Restarting,
            _ => Status::Stopped,
        }
    }
}
