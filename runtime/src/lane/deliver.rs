//! The one place a letter is queued in a lane from outside its particle.

use super::letter::Letter;
use super::queue::Refusal;
use crate::cell::ParticleCell;
use crate::control::ControlLetter;
use crate::{targets, WaveError};

/// The error a refused letter's sender gets.
pub(crate) fn refusal_error(cell: &ParticleCell, refusal: Refusal) -> WaveError {
    match refusal {
        Refusal::Closed => WaveError::Stopped {
            point: cell.point().clone(),
        },
        Refusal::Full => WaveError::LaneFull {
            point: cell.point().clone(),
            capacity: cell.lane.limit().map_or(0, |l| l.capacity),
        },
    }
}

/// Queues a control letter that wants no answer (an exit report) in
/// `cell`'s lane.
pub(crate) fn deliver_control(cell: &ParticleCell, letter: ControlLetter) -> Result<(), WaveError> {
    cell.lane
        .push(Letter::Control(Box::new(letter)))
        .map_err(|(_, refusal)| refusal_error(cell, refusal))
}

/// Queues a signal (a wave or a typed message) in `cell`'s lane: the one
/// place every signal passes. A refused letter is handed back, with why
/// (see [`refusal_error`]).
#[inline]
pub(crate) fn deliver(cell: &ParticleCell, letter: Letter) -> Result<(), (Letter, Refusal)> {
    let _span = tracing::trace_span!(target: targets::ROUTE, "route", to = %cell.point(), method = %letter.method())
        .entered();
    cell.lane.push(letter)
}
