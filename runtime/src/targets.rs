//! Stable `tracing` targets, so users can filter what the runtime reports
//! without depending on its module layout, e.g.
//! `RUST_LOG=warn,hyperverse::crash=error` hides crash warnings but keeps give-ups.

/// Spawns, starts and normal stops (`debug`).
pub const SPAWN: &str = "hyperverse::spawn";
/// Crashes (`warn`) and give-ups (`error`).
pub const CRASH: &str = "hyperverse::crash";
/// Restarts (`info`).
pub const RESTART: &str = "hyperverse::restart";
/// Routing of every wave (`trace`).
pub const ROUTE: &str = "hyperverse::route";
/// Machine and Star life (`info`, `debug`).
pub const MACHINE: &str = "hyperverse::machine";
/// Injected faults (`info`; a killed Star `warn`).
pub const FAULT: &str = "hyperverse::fault";
/// Access rules: denied waves and actions (`warn`), rule changes (`info`).
pub const ACCESS: &str = "hyperverse::access";
