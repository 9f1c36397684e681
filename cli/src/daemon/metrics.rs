//! The daemon's Prometheus metrics. (Being built: see issue 13.)

use std::net::SocketAddr;
use std::sync::Arc;

use hyperverse::modules::ReloadReport;
use hyperverse::{Event, Machine};

/// What the daemon counts as it runs (fed by the Machine's observer and by
/// reloads), beside what it samples from the Machine at each scrape.
#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    /// Counters at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Counts one runtime event (called for every event, synchronously:
    /// must be quick).
    pub fn observe(&self, _event: &Event) {}

    /// Counts one reload of `module`.
    pub fn reloaded(&self, _module: &str, _report: &ReloadReport) {}
}

/// Serves the metrics over HTTP at `addr` (Prometheus text format at
/// `/metrics`) until the task is aborted.
///
/// # Errors
///
/// The address cannot be bound.
pub async fn serve(
    _addr: SocketAddr,
    _machine: Machine,
    _metrics: Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    Ok(tokio::spawn(async {}))
}
