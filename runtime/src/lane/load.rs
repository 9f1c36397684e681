//! [`LaneLoad`]: how busy a lane is, for the tools that watch a Machine.

/// A lane's load at one instant: what waits in it and what its particle
/// has taken off it so far.
///
/// Sample it twice for a rate: `taken` only grows, over every incarnation
/// of the particle (its lane outlives a crash). `hyperverse top` shows the
/// difference as waves per second, and the daemon's metrics the spread of
/// `queued` over particles.
///
/// ```
/// # use hyperverse_runtime::*;
/// # struct Echo;
/// # impl Particle for Echo {
/// #     type State = ();
/// #     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
/// #     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// # }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let m = Machine::standalone().kind("echo", Echo).build().await?;
/// let echo = m.spawn("echo".parse()?, "echo".into(), Body::empty()).await?;
/// for _ in 0..3 {
///     echo.ask(("hi", "x")).await?;
/// }
/// let load = echo.load();
/// assert_eq!((load.queued, load.taken), (0, 3));
/// m.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LaneLoad {
    /// Letters waiting, not counting those the particle's task already
    /// took in its current batch (it takes the queue whole).
    pub queued: usize,
    /// Letters the particle's task took off the lane, in all.
    pub taken: u64,
}
