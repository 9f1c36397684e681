//! The daemon's built-in Rust Kinds, so that a fresh daemon can be tried
//! with no module on disk: `echo` and `counter`.

use hyperverse::{Body, Ctx, Particle, ParticleError, Wave};

/// Answers an ask with its body (built in: `echo`).
pub struct Echo;

impl Particle for Echo {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        Ok(w.body)
    }
}

/// Counts `add`s; `crash` crashes it; any other method answers the count
/// (built in: `counter`).
pub struct Counter;

impl Particle for Counter {
    type State = u64;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }
    async fn handle(&self, _: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "add" => *n += 1,
            "crash" => return Err("asked to crash".into()),
            _ => {}
        }
        Ok(n.to_string().into())
    }
}
