//! Broadcast to a group or a subtree, collecting replies by a policy, as
//! OTP's `multi_call` and Starlane's ripple do.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use hyperverse_runtime::{Machine, Point, Sendable, WaveError};

/// Who a broadcast goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Audience {
    /// The members of a group (see [`crate::Cluster::join_group`]).
    Group(String),
    /// Every particle at or under a Point, on every Machine.
    Subtree(Point),
}

/// Which replies a broadcast waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Collect {
    /// None: the message goes as a signal; the result lists the sends
    /// refused.
    Nothing,
    /// The first reply (the others are not waited for).
    First,
    /// Every reply, or why there is none, within the timeout.
    All,
    /// The first `n` replies.
    Count(usize),
}

/// Sends `message` to each of `to` from the caller (stamped as any send),
/// and gathers what `collect` asks for within `within`.
pub(crate) async fn broadcast<S: Sendable + Clone>(
    machine: &Machine,
    to: Vec<Point>,
    message: S,
    collect: Collect,
    within: Duration,
) -> Vec<(Point, Result<S::Reply, WaveError>)> {
    if collect == Collect::Nothing {
        return to
            .into_iter()
            .filter_map(|p| {
                machine
                    .signal(&p, message.clone())
                    .err()
                    .map(|e| (p, Err(e.into())))
            })
            .collect();
    }
    let want = match collect {
        Collect::First => 1,
        Collect::Count(n) => n,
        _ => usize::MAX,
    };
    let mut asks: FuturesUnordered<_> = to
        .into_iter()
        .map(|p| {
            let ask = machine.ask(&p, message.clone()).within(within);
            async move { (p, ask.await) }
        })
        .collect();
    let mut out = Vec::new();
    let mut replies = 0;
    while let Some((p, r)) = asks.next().await {
        replies += usize::from(r.is_ok());
        out.push((p, r));
        if replies >= want {
            break;
        }
    }
    if collect == Collect::First {
        // The first reply alone, or every failure if none came.
        if let Some(i) = out.iter().position(|(_, r)| r.is_ok()) {
            return vec![out.swap_remove(i)];
        }
    }
    out
}
