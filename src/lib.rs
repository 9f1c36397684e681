//! # Hyperverse
//!
//! An Erlang/OTP-style actor runtime in Rust: supervised particles living at
//! hierarchical Points, exchanging waves over ordered lanes, hosted by Stars
//! on a Machine.
//!
//! This facade re-exports the member crates:
//! - [`runtime`] (also re-exported at the top level): points, waves, lanes,
//!   particles, stars, machines, the registry.
//! - [`supervisors`]: OTP supervision logic.
//! - [`modules`]: WASM modules: store, guest ABI, sandbox, WASM particles,
//!   hot reload.
//! - [`cluster`]: Machines in a cluster over ractor_cluster: waves across
//!   processes, numbered and acknowledged per link.
//! - [`faults`]: fault injection: seeded fault plans and a test kit.
//!
//! ```
//! use hyperverse::*;
//!
//! struct Echo;
//! impl Particle for Echo {
//!     type State = ();
//!     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
//!     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let machine = Machine::standalone().kind("echo", Echo).build().await.unwrap();
//! let at: Point = "echo".parse().unwrap();
//! machine.spawn(at.clone(), "echo".into(), Body::empty()).await.unwrap();
//! assert_eq!(machine.ask(&at, ("say", "hi")).await.unwrap().as_bytes(), b"hi");
//! machine.shutdown().await;
//! # }
//! ```

#[cfg(feature = "cluster")]
pub use hyperverse_cluster as cluster;
pub use hyperverse_faults as faults;
pub use hyperverse_modules as modules;
pub use hyperverse_runtime as runtime;
pub use hyperverse_runtime::*;
pub use hyperverse_supervisors as supervisors;

/// The README's Rust examples run as doc tests, so the README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
