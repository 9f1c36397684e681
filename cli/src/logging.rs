//! Logging: `tracing` output on stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset.
///
/// Warnings and errors only, except that the per-crash warnings (target
/// `hyperverse::crash`, stable whatever the runtime's module layout) are
/// hidden: the CLI's own output already reports every crash, and the demo
/// crashes workers on purpose, so those lines would only be noise. Errors
/// from the Stars (a give-up, a failed Star) still show: they are never
/// planned. The same goes for injected faults (target `hyperverse::fault`:
/// the demo's storm kills Stars on purpose). `RUST_LOG=warn` brings both
/// back.
const DEFAULT_FILTER: &str = "warn,hyperverse::crash=error,hyperverse::fault=error";

/// Installs the global subscriber. A `RUST_LOG` that does not parse is
/// reported and replaced by the default, rather than silently ignored or
/// fatal: a typo in a log filter should not stop the command.
pub fn init() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("hyperverse: ignoring RUST_LOG={spec:?} ({e}); using {DEFAULT_FILTER:?}");
            EnvFilter::new(DEFAULT_FILTER)
        }),
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a human at a terminal; in a file or a pipe
        // they are garbage.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
