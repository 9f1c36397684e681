//! Sends to Points on other Machines, through the attached
//! [`Remote`]: the parcel becomes a wave of bytes here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::deadline::Deadlines;
use crate::remote::{Answerer, Remote};
use crate::send::Parcel;
use crate::{Ask, Point, SendError, Sendable, Wave, WaveError};

/// The parcel's bytes, or why it has none (a typed message that does not
/// encode is refused here, before anything leaves).
fn encoded(parcel: &Parcel, to: &Point) -> Result<crate::Body, WaveError> {
    parcel.encoded().map_err(|error| WaveError::BadMessage {
        point: to.clone(),
        error,
    })
}

/// Signals `message` to `to` on another Machine.
pub(super) fn signal<S: Sendable>(
    remote: &dyn Remote,
    from: Point,
    to: &Point,
    message: S,
) -> Result<(), SendError<S::Back>> {
    let parcel = message.parcel();
    let body = match encoded(&parcel, to) {
        Ok(b) => b,
        Err(e) => return Err(SendError::new(e, S::back(parcel, from, to.clone()))),
    };
    let wave = Wave::signal(from.clone(), to.clone(), parcel.method.clone(), body);
    remote
        .signal(wave)
        .map_err(|e| SendError::new(e, S::back(parcel, from, to.clone())))
}

/// Asks `message` of `to` on another Machine.
pub(super) fn ask<S: Sendable>(
    remote: &dyn Remote,
    from: Point,
    to: &Point,
    message: S,
    deadlines: &Arc<Deadlines>,
    timeout: Duration,
) -> Ask<S::Reply> {
    let parcel = message.parcel();
    let body = match encoded(&parcel, to) {
        Ok(b) => b,
        Err(e) => return Ask::failed(e, S::open),
    };
    let (tx, rx) = oneshot::channel();
    remote.ask(
        Wave::request(from, to.clone(), parcel.method, body),
        Answerer(tx),
    );
    Ask::sent(to.clone(), rx, deadlines, timeout, S::open)
}
