//! Carrying out what a guest's call queued: its sends and its ABI v2
//! effects (asks, spawns, stops, timers), in the order it made them.
//!
//! Everything is checked before anything is done, so a call that breaks a
//! rule does nothing (and, failing, crashes its particle):
//!
//! 1. the per-call budget: `hv.send` and the v2 calls refused for being
//!    past [`SendBudget::per_call`](crate::SendBudget::per_call), or more
//!    sends and effects than it: `SendBudget`;
//! 2. every address a send or an ask goes to: one that is not a Point is
//!    the guest breaking the ABI (`AbiViolation`). (Whether the particle
//!    may send to or ask it was judged when the guest asked for it, in
//!    `hv.send` and `hv.ask`, by the access rules: a denied wave was never
//!    queued, and the guest got a code; see `host.rs`.)
//! 3. the per-second bucket, for all the call's sends and effects at once:
//!    `SendBudget`.
//!
//! Then, in order: a send is a signal from the particle; an ask is sent at
//! once and its reply awaited by a task of its own, which hands the
//! outcome back as a control letter (so the guest's `on_reply` runs in the
//! particle's lane, one letter at a time, like any other call); a spawn
//! and a stop are done at once (a stop is awaited) and their outcomes
//! returned, for `on_reply` right after; a timer is a task that sends the
//! particle its wave when it fires. A spawn of a Kind the host did not
//! grant, or a spawn or a stop the access rules deny (judged for the
//! particle as a confined visitor, `Ctx::confined_may`: `spawn` on the
//! particle's own Point, `stop` on the target, which the particle owns if
//! it is below it), fails with a reason for `on_reply` rather than a
//! crash: the guest asked, the answer is no. A guest never stops its own
//! line (itself or an ancestor): its lane would wait on its own end. A
//! wave that cannot be delivered (nobody there, a full lane) is dropped
//! and logged, as a send to a dead process is in Erlang.
//!
//! The asks and timers an incarnation opened are aborted when it ends
//! ([`Open`]'s drop), so none outlives the guest that asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyperverse_runtime::access::Privilege;
use hyperverse_runtime::{Body, Ctx, Kind, Point, Restart, SpawnOptions};
use tokio::task::AbortHandle;

use crate::budget::{GuestPolicy, SendMeter};
use crate::error::ModuleError;
use crate::guest_control::GuestControl;
use crate::host::{GuestEffect, GuestSend, HandleOutput};

/// How long the letter carrying an ask's outcome may wait in the lane.
const REPLY_LETTER_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts incarnations, for their nonces.
static INCARNATIONS: AtomicU64 = AtomicU64::new(1);

/// At most this many children per particle spawned by its guest: past it,
/// `hv.spawn` fails with a reason (each child is a whole instance).
pub(crate) const MAX_CHILDREN: usize = 1_000;

/// The largest reply an ask hands back to its guest; a larger one is a
/// failed outcome (the guest's own output limit bounds what it sends, this
/// bounds what it is given back while the outcome waits in its lane).
pub(crate) const MAX_ASK_REPLY: usize = 1 << 20;

/// An incarnation's nonce: unguessable (hashed with a per-process random
/// key), so that no code that can send the Machine's control letters can
/// aim one at an ask it did not make without reading the particle's state.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(INCARNATIONS.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// What an incarnation has open: asks awaiting replies, timers not yet
/// fired, and the next tag. Dropping it aborts them all.
#[derive(Debug)]
pub(crate) struct Open {
    pub(crate) incarnation: u64,
    pub(crate) next_tag: u64,
    asks: HashMap<u64, AbortHandle>,
    timers: Vec<AbortHandle>,
}

impl Open {
    pub(crate) fn new() -> Self {
        Open {
            incarnation: nonce(),
            next_tag: 1,
            asks: HashMap::new(),
            timers: Vec::new(),
        }
    }

    /// Asks awaiting a reply. An ask whose task ended without its outcome
    /// reaching the lane (the lane stayed full past the letter's timeout)
    /// frees its slot here: that outcome is lost, as a message to a
    /// process whose mailbox cannot take it would be.
    pub(crate) fn requests(&mut self) -> usize {
        self.asks.retain(|_, task| !task.is_finished());
        self.asks.len()
    }

    /// Timers not yet fired.
    pub(crate) fn timers(&mut self) -> usize {
        self.timers.retain(|t| !t.is_finished());
        self.timers.len()
    }

    /// Takes ask `tag`'s outcome: true if it is this incarnation's and
    /// still open (an outcome comes once).
    pub(crate) fn close(&mut self, incarnation: u64, tag: u64) -> bool {
        incarnation == self.incarnation && self.asks.remove(&tag).is_some()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        for (_, ask) in self.asks.drain() {
            ask.abort();
        }
        for timer in self.timers.drain(..) {
            timer.abort();
        }
    }
}

/// The outcome of a spawn or a stop, for the guest's `on_reply`.
pub(crate) struct Outcome {
    pub(crate) tag: u64,
    pub(crate) status: i32,
    pub(crate) body: Vec<u8>,
}

impl Outcome {
    fn done(tag: u64, body: Vec<u8>) -> Self {
        Outcome {
            tag,
            status: 0,
            body,
        }
    }

    fn failed(tag: u64, why: impl ToString) -> Self {
        Outcome {
            tag,
            status: 1,
            body: why.to_string().into_bytes(),
        }
    }
}

/// One checked step of a call's output, in order.
enum Step {
    Send(Point, String, Vec<u8>),
    Effect(GuestEffect, Option<Point>),
}

/// Who is carrying out: the particle's context and rules.
pub(crate) struct Actor<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) policy: &'a GuestPolicy,
    pub(crate) module: &'a str,
    /// True if this host has module `name` loaded (a guest may spawn only
    /// those WASM Kinds: no search of the module path on its behalf).
    pub(crate) loaded: &'a (dyn Fn(&str) -> bool + Sync),
}

impl Actor<'_> {
    fn abi(&self, export: &str, message: String) -> ModuleError {
        ModuleError::AbiViolation {
            module: self.module.to_string(),
            export: export.to_string(),
            message,
        }
    }

    /// Parses an address a send or an ask goes to (the access rules let
    /// it through when the guest queued it).
    fn address(&self, export: &str, call: &str, to: &str) -> Result<Point, ModuleError> {
        Point::parse(to).map_err(|e| self.abi(export, format!("{call} to `{to}`: {e}")))
    }

    /// Carries out one call's sends and effects (see the module docs);
    /// returns the outcomes of its spawns and stops, for `on_reply`.
    pub(crate) async fn carry_out(
        &self,
        meter: &mut SendMeter,
        open: &mut Open,
        export: &str,
        output: HandleOutput,
    ) -> Result<Vec<Outcome>, ModuleError> {
        let HandleOutput {
            sends,
            refused_sends,
            effects,
            ..
        } = output;
        let over = |(budget, limit)| ModuleError::SendBudget {
            module: self.module.to_string(),
            particle: self.ctx.me().to_string(),
            export: export.to_string(),
            budget,
            limit,
        };
        let total = sends.len() + effects.len();
        meter.check_call(total, refused_sends).map_err(over)?;
        if total == 0 {
            return Ok(Vec::new());
        }
        // Checked, in order.
        let mut steps = Vec::with_capacity(total);
        let mut effects = effects.into_iter().peekable();
        for (i, send) in sends.into_iter().enumerate() {
            while let Some((_, e)) = effects.next_if(|(at, _)| *at <= i) {
                steps.push(self.check(export, e)?);
            }
            let GuestSend { to, method, body } = send;
            let to = self.address(export, "hv.send", &to)?;
            steps.push(Step::Send(to, method, body));
        }
        for (_, e) in effects {
            steps.push(self.check(export, e)?);
        }
        meter.take(steps.len()).map_err(over)?;

        let mut outcomes = Vec::new();
        let mut stops = Vec::new();
        for step in steps {
            match step {
                Step::Send(to, method, body) => self.signal(&to, method, body),
                Step::Effect(GuestEffect::Stop { tag, point }, _) => stops.push((tag, point)),
                Step::Effect(effect, to) => {
                    if let Some(outcome) = self.effect(open, effect, to) {
                        outcomes.push(outcome);
                    }
                }
            }
        }
        // A call's stops run together, after its other effects: each may
        // take its child's shutdown timeout, and the particle's lane waits.
        let stopped =
            futures::future::join_all(stops.into_iter().map(|(tag, point)| self.stop(tag, point)))
                .await;
        outcomes.extend(stopped);
        Ok(outcomes)
    }

    /// Checks an effect; asks get their address parsed and checked here.
    fn check(&self, export: &str, effect: GuestEffect) -> Result<Step, ModuleError> {
        let to = match &effect {
            GuestEffect::Ask { to, .. } => Some(self.address(export, "hv.ask", to)?),
            _ => None,
        };
        Ok(Step::Effect(effect, to))
    }

    fn signal(&self, to: &Point, method: String, body: Vec<u8>) {
        if let Err(e) = self.ctx.signal(to, (method, Body::from(body))) {
            tracing::debug!(
                target: crate::TARGET_WASM,
                from = %self.ctx.me(),
                %to,
                error = %e,
                "a guest's wave was not delivered"
            );
        }
    }

    /// Stops a particle the access rules let the guest stop (its own
    /// subtree, or a grant's), never its own line; the outcome.
    async fn stop(&self, tag: u64, point: String) -> Outcome {
        let ctx = self.ctx;
        let point = match Point::parse(&point) {
            Ok(p) if p.contains(ctx.me()) => {
                return Outcome::failed(tag, format!("{p} is {}'s own line", ctx.me()))
            }
            Ok(p) if !ctx.confined_may(Privilege::Stop, &p) => {
                return Outcome::failed(tag, format!("{} may not stop {p}", ctx.me()))
            }
            Ok(p) => p,
            Err(e) => return Outcome::failed(tag, e),
        };
        match ctx.machine().stop(&point).await {
            Ok(()) => Outcome::done(tag, Vec::new()),
            Err(e) => Outcome::failed(tag, e),
        }
    }

    /// Carries out one effect (a stop is [`Actor::stop`]); the outcome of
    /// a spawn.
    fn effect(&self, open: &mut Open, effect: GuestEffect, to: Option<Point>) -> Option<Outcome> {
        let ctx = self.ctx;
        match effect {
            GuestEffect::Ask {
                tag,
                method,
                body,
                timeout_ms,
                ..
            } => {
                let to = to.expect("checked with its address");
                let ctx = ctx.clone();
                let incarnation = open.incarnation;
                // Sent now, from the particle, so in order with its sends
                // (unless the target's lane is full and makes senders wait:
                // then it waits for room in its task, and the call's later
                // sends may overtake it);
                // the reply is awaited by a task of its own.
                let ask = ctx
                    .ask(&to, (method, Body::from(body)))
                    .within(Duration::from_millis(u64::from(timeout_ms)));
                let task = tokio::spawn(async move {
                    // Encoded at once: only the letter is kept while it waits.
                    let letter = match ask.await {
                        Ok(reply) if reply.len() > MAX_ASK_REPLY => GuestControl::Reply {
                            incarnation,
                            tag,
                            status: 1,
                            body: format!(
                                "the reply of {} bytes is over the {MAX_ASK_REPLY} a guest is given",
                                reply.len()
                            )
                            .into_bytes(),
                        },
                        Ok(reply) => GuestControl::Reply {
                            incarnation,
                            tag,
                            status: 0,
                            body: reply.as_bytes().to_vec(),
                        },
                        Err(e) => GuestControl::Reply {
                            incarnation,
                            tag,
                            status: 1,
                            body: e.to_string().into_bytes(),
                        },
                    }
                    .encode();
                    let _ = ctx
                        .machine()
                        .control(ctx.me(), letter, REPLY_LETTER_TIMEOUT)
                        .await;
                });
                open.asks.insert(tag, task.abort_handle());
                None
            }
            GuestEffect::Spawn {
                tag,
                name,
                kind,
                args,
                temporary,
            } => {
                let kind = Kind::new(kind);
                let granted = match kind.as_str().strip_prefix(crate::WASM_KIND_PREFIX) {
                    Some(module) => (self.loaded)(module),
                    None => self.policy.may_spawn(&kind),
                };
                if !granted {
                    return Some(Outcome::failed(
                        tag,
                        format!(
                            "a guest may not spawn Kind `{kind}` (not a module its host has loaded, \
                             nor a Kind its host granted)"
                        ),
                    ));
                }
                if !ctx.confined_may(Privilege::Spawn, ctx.me()) {
                    return Some(Outcome::failed(
                        tag,
                        format!("{} may not spawn children", ctx.me()),
                    ));
                }
                let children = ctx.child_count();
                if children >= MAX_CHILDREN {
                    return Some(Outcome::failed(
                        tag,
                        format!(
                            "{} has {children} children, the most a guest may spawn",
                            ctx.me()
                        ),
                    ));
                }
                let opts = SpawnOptions {
                    restart: if temporary {
                        Restart::Temporary
                    } else {
                        Restart::default()
                    },
                    ..Default::default()
                };
                Some(
                    match ctx.spawn_child_with(&name, &kind, Body::from(args), opts) {
                        Ok(child) => Outcome::done(tag, child.point().to_string().into_bytes()),
                        Err(e) => Outcome::failed(tag, e),
                    },
                )
            }
            GuestEffect::Stop { tag, .. } => Some(Outcome::failed(tag, "not carried out here")),
            GuestEffect::Timer {
                delay_ms,
                method,
                body,
                ..
            } => {
                let ctx = ctx.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(delay_ms))).await;
                    let me = ctx.me().clone();
                    if let Err(e) = ctx.signal(&me, (method, Body::from(body))) {
                        tracing::debug!(target: crate::TARGET_WASM, point = %me, error = %e, "a guest's timer wave was not delivered");
                    }
                });
                open.timers.push(task.abort_handle());
                None
            }
        }
    }
}
