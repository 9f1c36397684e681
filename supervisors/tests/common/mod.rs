//! Fake children shared by the supervisor tests.

#![allow(dead_code)] // each test crate uses its own subset

use std::collections::HashMap;

use hyperverse_supervisors::*;

/// Fake children: handles count incarnations; starts of ids in `failing`
/// fail (a count of how many times, `u32::MAX` for always). `calls` records
/// every start and stop in order; `alive` holds the incarnations running now.
#[derive(Default)]
pub struct Fake {
    pub next: u64,
    pub failing: HashMap<String, u32>,
    pub calls: Vec<String>,
    pub alive: Vec<(String, u64)>,
}

impl Children for Fake {
    type Start = ();
    type Handle = u64;

    async fn start(&mut self, id: &str, _: &()) -> Result<u64, ExitReason> {
        if let Some(left) = self.failing.get_mut(id) {
            if *left > 0 {
                *left -= 1;
                self.calls.push(format!("start {id} failed"));
                return Err(ExitReason::Error(format!("{id} cannot start")));
            }
        }
        self.next += 1;
        self.calls.push(format!("start {id}"));
        self.alive.push((id.to_string(), self.next));
        Ok(self.next)
    }

    async fn stop(&mut self, id: &str, h: &u64, shutdown: Shutdown) -> ExitReason {
        self.calls.push(format!("stop {id}"));
        self.alive.retain(|(i, x)| !(i == id && x == h));
        match shutdown {
            Shutdown::BrutalKill => ExitReason::Killed,
            _ => ExitReason::Shutdown,
        }
    }
}

/// Permanent workers with these ids, in order.
pub fn specs(ids: &[&str]) -> Vec<ChildSpec<()>> {
    ids.iter().map(|id| ChildSpec::worker(*id, ())).collect()
}

/// Drives a supervisor's retries as its owner would, with no delay: while
/// an exit's outcome is `TryAgain`, try again.
pub async fn settle<C: Children>(
    sup: &mut Supervisor<C>,
    kids: &mut C,
    mut outcome: Outcome,
) -> Outcome {
    while let Outcome::TryAgain { id, .. } = outcome {
        outcome = sup.try_again(kids, &id).await;
    }
    outcome
}
