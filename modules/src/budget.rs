//! How much a WASM guest may send: the send budget, and the default lane
//! of WASM particles. (Where it may send is the access rules': see
//! below.)
//!
//! A guest is untrusted code, and `hv.send` is its one way to reach the
//! rest of the Machine, so it is bounded three ways (issue 10: a guest
//! sending to itself grew its own lane to 863k letters, +144 MiB in 4 s;
//! another sent supervisor control waves to a stranger's supervisor):
//!
//! - **How many per call.** `hv.send` itself refuses once a call has queued
//!   [`MAX_SENDS_PER_CALL`] waves: it returns 1 and queues nothing, so a
//!   guest cannot make the host buffer more, and the call then fails with
//!   [`ModuleError::SendBudget`](crate::ModuleError::SendBudget) even if
//!   the guest copes with the refusal (as `memory.grow` past the ceiling
//!   does). A lower [`SendBudget::per_call`] is checked when the call
//!   returns, before anything is sent: the same error, nothing sent.
//! - **How many per second.** Each particle has a token bucket of
//!   [`SendBudget::per_second`] tokens, refilled at that rate, full at
//!   start; a call whose sends find too few tokens fails with
//!   `SendBudget`, nothing sent. A failed call is a crash, so a flooding
//!   guest is its supervisor's to restart (a fresh bucket, within its
//!   restart intensity and backoff) or give up on.
//! - **To whom.** The access rules say, judged for the particle as a
//!   confined visitor (`Ctx::confined_may`, the code the receiving side
//!   runs): its own Point and the Points below it, its parent, the Points
//!   its spawn granted ([`SpawnOptions::grants`], each covering itself
//!   and everything below it), and whatever the rules grant it (to its
//!   Point, its Kind, a group...), its module's manifest among them
//!   ([`ModuleGrants`](crate::ModuleGrants)). The Machine's open policy
//!   gives a guest nothing more. A denied `hv.send` returns
//!   [`SEND_DENIED`](crate::SEND_DENIED) and a denied `hv.ask`
//!   [`REFUSED_DENIED`](crate::REFUSED_DENIED): nothing is queued, the
//!   refusal is counted and logged, and the guest runs on (a denial never
//!   crashes the sender). Denied waves count against the per-call limit
//!   as queued ones do.
//!
//! And a WASM particle's lane is bounded unless its spawn says otherwise
//! ([`DEFAULT_WASM_LANE`]), so that no sender at all can grow it without
//! limit.
//!
//! [`SpawnOptions::grants`]: hyperverse_runtime::SpawnOptions::grants

use std::fmt;
use std::time::Instant;

use hyperverse_runtime::{LaneLimit, WhenFull};

/// The most `hv.send` calls one guest call may queue, whatever its budget:
/// the next ones are refused in `hv.send` itself (it returns 1 and queues
/// nothing) and the call fails with `SendBudget`. Also the default
/// [`SendBudget::per_call`], and its largest effective value.
///
/// A thousand waves is far more fan-out than one wave needs (the sample
/// guests send at most one) and bounds what a guest makes the host buffer
/// per call to a few hundred KiB beyond the bytes the output limit counts.
pub const MAX_SENDS_PER_CALL: u32 = 1_000;

/// The default [`SendBudget::per_call`]: [`MAX_SENDS_PER_CALL`].
pub const DEFAULT_SENDS_PER_CALL: u32 = MAX_SENDS_PER_CALL;

/// The default [`SendBudget::per_second`]: 100,000 sends per second per
/// particle, which is also the bucket's size (a full second's burst).
///
/// A WASM particle handles some hundreds of thousands to a few million
/// waves a second (about 0.5 to 1 µs a wave on a busy Star thread), so a guest
/// relaying every wave it gets stays well within it, while one that fans
/// out or feeds itself exhausts it within a second and crashes.
pub const DEFAULT_SENDS_PER_SECOND: u32 = 100_000;

/// The default capacity of a WASM particle's lane: 65,536 waves.
///
/// Large enough that bursts of tens of thousands of waves from Rust
/// senders (e.g. during a hot reload, when the lane holds what arrives
/// meanwhile) are not refused, small enough to bound a lane's memory: an
/// empty-bodied wave costs about 170 bytes queued, so a full lane is about
/// 11 MiB plus the waves' bodies (capped by [`DEFAULT_LANE_BYTES`]).
pub const DEFAULT_LANE_CAPACITY: usize = 65_536;

/// The most bytes (methods and bodies) that may wait in a WASM particle's
/// lane by default: 16 MiB, one output limit's worth. The count alone let a
/// guest park 65,536 waves of 4 KiB (256 MiB) in its own lane within every
/// budget.
pub const DEFAULT_LANE_BYTES: usize = 16 << 20;

/// The lane limit of a WASM particle whose spawn options give none
/// (configurable with [`WasmHostBuilder::lane_limit`]): capacity
/// [`DEFAULT_LANE_CAPACITY`] waves and at most [`DEFAULT_LANE_BYTES`] of
/// them, policy [`WhenFull::Wait`], so that Rust async
/// senders (requests, `signal_waiting`) get backpressure, while a
/// synchronous send into a full lane, a guest's `hv.send` included, gets
/// `LaneFull` and is dropped (a guest's send is logged at `debug` under
/// `hyperverse::wasm`, as any undeliverable guest wave is).
///
/// [`WasmHostBuilder::lane_limit`]: crate::WasmHostBuilder::lane_limit
pub const DEFAULT_WASM_LANE: LaneLimit =
    LaneLimit::new(DEFAULT_LANE_CAPACITY, WhenFull::Wait).max_bytes(DEFAULT_LANE_BYTES);

/// How much a guest may send: per call and per second, for every particle
/// of a [`WasmHost`](crate::WasmHost) (set with
/// [`WasmHostBuilder::send_budget`](crate::WasmHostBuilder::send_budget)).
/// See the module docs of `budget.rs` (and `ABI.md`) for what happens past
/// each.
///
/// ```
/// use hyperverse_modules::{SendBudget, WasmHost, DEFAULT_SENDS_PER_SECOND};
///
/// let budget = SendBudget::default().with_per_call(10).with_per_second(1_000);
/// assert_eq!((budget.per_call, budget.per_second), (10, 1_000));
/// assert_eq!(SendBudget::default().per_second, DEFAULT_SENDS_PER_SECOND);
/// let host = WasmHost::builder().send_budget(budget).build();
/// # drop(host);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendBudget {
    /// Waves one call (one `init`, one wave's `handle`) may send; at most
    /// [`MAX_SENDS_PER_CALL`] (a larger value acts as that). 0 forbids
    /// sending.
    pub per_call: u32,
    /// Waves one particle may send per second, on average; also how many it
    /// may send at once after a quiet second. 0 forbids sending.
    pub per_second: u32,
}

impl Default for SendBudget {
    /// [`DEFAULT_SENDS_PER_CALL`] per call, [`DEFAULT_SENDS_PER_SECOND`]
    /// per second.
    fn default() -> Self {
        Self {
            per_call: DEFAULT_SENDS_PER_CALL,
            per_second: DEFAULT_SENDS_PER_SECOND,
        }
    }
}

impl SendBudget {
    /// This budget with `sends` per call, capped at [`MAX_SENDS_PER_CALL`].
    pub fn with_per_call(mut self, sends: u32) -> Self {
        self.per_call = sends.min(MAX_SENDS_PER_CALL);
        self
    }

    /// This budget with `sends` per second.
    pub fn with_per_second(mut self, sends: u32) -> Self {
        self.per_second = sends;
        self
    }

    /// The per-call budget actually applied.
    pub fn effective_per_call(&self) -> u32 {
        self.per_call.min(MAX_SENDS_PER_CALL)
    }
}

/// Which of a [`SendBudget`]'s two limits a guest went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// [`SendBudget::per_call`] (or [`MAX_SENDS_PER_CALL`]).
    PerCall,
    /// [`SendBudget::per_second`].
    PerSecond,
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerCall => "sends per call",
            Self::PerSecond => "sends per second",
        })
    }
}

/// What a host applies to the sends of all its guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuestPolicy {
    pub(crate) budget: SendBudget,
    /// The lane of a WASM particle whose spawn options give none.
    pub(crate) lane: Option<LaneLimit>,
    /// The Kinds besides its host's loaded modules' a guest may spawn
    /// (`hv.spawn`): none by default, since a Rust Kind may do what no
    /// guest may.
    pub(crate) spawn_kinds: Vec<hyperverse_runtime::Kind>,
}

impl GuestPolicy {
    /// True if the host granted its guests Kind `kind` (a Rust Kind; WASM
    /// Kinds are judged by whether the host has the module loaded).
    pub(crate) fn may_spawn(&self, kind: &hyperverse_runtime::Kind) -> bool {
        self.spawn_kinds.contains(kind)
    }
}

impl Default for GuestPolicy {
    fn default() -> Self {
        Self {
            budget: SendBudget::default(),
            lane: Some(DEFAULT_WASM_LANE),
            spawn_kinds: Vec::new(),
        }
    }
}

/// A particle's side of its budget: the per-call check and its token
/// bucket. Lives in the particle's State, so a restart starts it afresh.
#[derive(Debug)]
pub(crate) struct SendMeter {
    budget: SendBudget,
    /// Tokens left; at most `per_second`.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl SendMeter {
    /// A full bucket.
    pub(crate) fn new(budget: SendBudget) -> Self {
        Self {
            budget,
            tokens: f64::from(budget.per_second),
            at: Instant::now(),
        }
    }

    /// Checks one call's count: `queued` waves it queued and `refused`
    /// more that `hv.send` refused. `Err` carries the limit went past.
    pub(crate) fn check_call(&self, queued: usize, refused: u32) -> Result<(), (BudgetKind, u32)> {
        let limit = self.budget.effective_per_call();
        if refused > 0 || queued > limit as usize {
            return Err((BudgetKind::PerCall, limit));
        }
        Ok(())
    }

    /// Takes `sends` tokens, all or none: `Err` if the bucket has fewer.
    pub(crate) fn take(&mut self, sends: usize) -> Result<(), (BudgetKind, u32)> {
        self.take_at(sends, Instant::now())
    }

    fn take_at(&mut self, sends: usize, now: Instant) -> Result<(), (BudgetKind, u32)> {
        let rate = f64::from(self.budget.per_second);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        let wanted = sends as f64;
        if wanted > self.tokens {
            return Err((BudgetKind::PerSecond, self.budget.per_second));
        }
        self.tokens -= wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_per_call_budget_counts_refusals_and_is_capped() {
        let meter = SendMeter::new(SendBudget::default().with_per_call(3));
        assert_eq!(meter.check_call(3, 0), Ok(()));
        assert_eq!(meter.check_call(4, 0), Err((BudgetKind::PerCall, 3)));
        assert_eq!(meter.check_call(0, 1), Err((BudgetKind::PerCall, 3)));
        let huge = SendBudget {
            per_call: u32::MAX,
            ..SendBudget::default()
        };
        assert_eq!(huge.effective_per_call(), MAX_SENDS_PER_CALL);
        assert_eq!(
            SendBudget::default().with_per_call(u32::MAX).per_call,
            MAX_SENDS_PER_CALL
        );
    }

    #[test]
    fn the_bucket_takes_all_or_nothing_and_refills_at_its_rate() {
        let mut meter = SendMeter::new(SendBudget::default().with_per_second(10));
        let start = meter.at;
        assert_eq!(meter.take_at(8, start), Ok(()));
        assert_eq!(meter.take_at(3, start), Err((BudgetKind::PerSecond, 10)));
        // The refused take took nothing.
        assert_eq!(meter.take_at(2, start), Ok(()));
        assert_eq!(meter.take_at(1, start), Err((BudgetKind::PerSecond, 10)));
        // 0.5 s refills 5 tokens; a long pause refills no more than 10.
        let later = start + Duration::from_millis(500);
        assert_eq!(meter.take_at(5, later), Ok(()));
        assert!(meter.take_at(1, later).is_err());
        let much_later = later + Duration::from_secs(60);
        assert_eq!(meter.take_at(10, much_later), Ok(()));
        assert!(meter.take_at(1, much_later).is_err());
        // A zero budget forbids sending; sending nothing is always fine.
        let mut none = SendMeter::new(SendBudget::default().with_per_second(0));
        assert!(none.take(1).is_err());
        assert_eq!(none.take(0), Ok(()));
    }
}
