//! The sender tasks: `work` waves to random workers, with the planned crash
//! waves slipped into the stream so that workers crash while traffic flows.

use std::sync::Arc;

use hyperverse::{Body, ParticleRef, WaveError, DEFAULT_REQUEST_TIMEOUT};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::particles::{CRASH, PANIC, WORK};
use super::plan::{Crash, How, Plan, SenderPlan};

/// One in this many `work` waves is a request; the rest are signals.
const REQUEST_ONE_IN: u32 = 4;

/// What the senders saw.
#[derive(Debug, Default)]
pub struct Traffic {
    /// `work` signals sent (accepted by a lane).
    pub signals: u64,
    /// `work` requests sent.
    pub requests: u64,
    /// Requests answered with their own body echoed back.
    pub acked: u64,
    /// For each planned crash (by index): the reason in the sender's
    /// `Crashed` error, or why the crash did not happen as planned.
    pub crashes: Vec<Result<String, String>>,
    /// Anything else that went wrong, for the report.
    pub failures: Vec<String>,
}

/// Runs every sender in its own task and adds up what they saw.
pub async fn run(plan: &Plan, lanes: Arc<[ParticleRef]>) -> Traffic {
    let crashes: Arc<[Crash]> = plan.crashes.clone().into();
    let mut tasks = JoinSet::new();
    for sender in &plan.senders {
        tasks.spawn(send(sender.clone(), lanes.clone(), crashes.clone()));
    }
    let mut total = Traffic {
        crashes: vec![Err("crash wave never sent".into()); plan.crashes.len()],
        ..Traffic::default()
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(part) => {
                total.signals += part.signals;
                total.requests += part.requests;
                total.acked += part.acked;
                total.failures.extend(part.failures);
                for (i, outcome) in part.crashed {
                    total.crashes[i] = outcome;
                }
            }
            Err(e) => total.failures.push(format!("a sender task failed: {e}")),
        }
    }
    total
}

/// One sender's tally.
#[derive(Default)]
struct Part {
    signals: u64,
    requests: u64,
    acked: u64,
    crashed: Vec<(usize, Result<String, String>)>,
    failures: Vec<String>,
}

async fn send(plan: SenderPlan, lanes: Arc<[ParticleRef]>, crashes: Arc<[Crash]>) -> Part {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut part = Part::default();
    let mut due = plan.crashes.iter().copied().peekable();
    for n in 0..=plan.waves {
        while let Some(i) = due.next_if(|&i| crashes[i].at == n) {
            let outcome = crash(&lanes, &crashes[i]).await;
            part.crashed.push((i, outcome));
        }
        if n == plan.waves {
            break;
        }
        let lane = &lanes[rng.gen_range(0..lanes.len())];
        if rng.gen_ratio(1, REQUEST_ONE_IN) {
            part.requests += 1;
            let reply = lane
                .ask((WORK, Body::from_u64(n)))
                .within(DEFAULT_REQUEST_TIMEOUT)
                .await;
            match reply {
                Ok(body) if body.as_u64() == Some(n) => part.acked += 1,
                Ok(body) => part.failures.push(format!(
                    "{} answered work #{n} with {:?}",
                    lane.point(),
                    body
                )),
                Err(e) => part.failures.push(e.to_string()),
            }
        } else {
            part.signals += 1;
            if let Err(e) = lane.signal((WORK, Body::from_u64(n))) {
                part.failures.push(e.to_string());
            }
        }
    }
    part
}

/// Sends one crash wave as a request, so the sender learns that the worker
/// really crashed on it (a `Crashed` error carrying the reason).
async fn crash(lanes: &[ParticleRef], crash: &Crash) -> Result<String, String> {
    let lane = &lanes[crash.worker];
    let method = match crash.how {
        How::Error => CRASH,
        How::Panic => PANIC,
    };
    let answer = lane
        .ask((method, crash.reason.clone()))
        .within(DEFAULT_REQUEST_TIMEOUT)
        .await;
    match answer {
        Err(WaveError::Crashed { reason, .. }) => Ok(reason),
        Err(e) => Err(e.to_string()),
        Ok(_) => Err(format!("{} answered instead of crashing", lane.point())),
    }
}
