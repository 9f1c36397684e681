//! `hyperverse top`: a live terminal view of the daemon's particles.
//! (Being built: see issue 13.)

pub mod model;
pub mod view;

use std::path::Path;

/// Runs the live view against the daemon in `dir` until the user quits.
///
/// # Errors
///
/// Readable text: no daemon, or the terminal could not be set up.
pub async fn run(_dir: &Path) -> Result<(), String> {
    Err("`hyperverse top` is not built yet".into())
}
