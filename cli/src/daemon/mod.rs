//! The `hyperverse` daemon: a Machine run as a service for one user on one
//! host, steered over a control socket by the CLI's client commands.

pub mod answer;
pub mod client;
pub mod detach;
pub mod kinds;
pub mod metrics;
pub mod paths;
pub mod protocol;
pub mod server;
pub mod state;
pub mod users;
pub mod watch;
