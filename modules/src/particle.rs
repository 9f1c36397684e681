//! The WASM Kind's particle: the runtime's [`Particle`] trait over a guest.
//!
//! A WASM particle is an ordinary particle (one task, one lane, supervised
//! by its Star) whose code is a guest, run on its Star's own thread (see
//! `local.rs` for why): `start` instantiates the module's current version
//! there and calls `init`; every wave is one direct call of the guest's
//! `handle`; what the guest sends goes out as signals
//! from the particle; its reply becomes the request's reply body. Any
//! failure of the guest (trap, fuel, memory ceiling, stack, ABI) is an
//! `Err` from the handler, so it is a crash like any other: the Star
//! restarts the particle (a fresh instance, a fresh `init`) and the parent
//! gets a crash notice carrying the guest's error.
//!
//! The particle's State holds no guest, only a handle on one in its
//! thread's slab (`local.rs`), plus the version it runs and its place in its
//! module's list of live particles, which is what a hot reload walks.
//!
//! Hot reload is trusted control, not a wave:
//! [`WasmHost::reload`](crate::WasmHost::reload) sends each live particle a
//! control letter with [`Machine::control`](hyperverse_runtime::Machine::control),
//! its body the target version's sequence number (8 bytes LE), and the
//! particle's [`Particle::control`] hook swaps the guest. The particle
//! handles it like any letter, one at a time: while the guest is swapped
//! the lane simply queues what arrives, and delivers it afterwards in
//! per-sender order. That is the whole of "hold the lane"; no wave can be
//! lost or reordered because nothing but the usual one-letter-at-a-time
//! loop is involved. No wave can produce a control letter, whatever its
//! method (a guest's `hv.send` included: a wave named `$wasm:reload` goes
//! to the guest like any other), and the hook honours a reload only from
//! the Machine itself (the runtime stamps the sender: a particle's handler
//! calling `Machine::control` is that particle, not ROOT).

use std::sync::Arc;

use hyperverse_runtime::{Body, Control, Ctx, Particle, ParticleError, Point, Wave};

use crate::budget::{in_scope, SendMeter};
use crate::entry::{HostShared, Live, ModuleEntry};
use crate::error::ModuleError;
use crate::host::HandleOutput;
use crate::local::LocalGuest;
use crate::reload::Outcome;
use crate::store::CompiledModule;

/// The particle value of one WASM Kind (one module).
pub(crate) struct WasmParticle {
    pub(crate) host: Arc<HostShared>,
    pub(crate) entry: Arc<ModuleEntry>,
}

/// A WASM particle's State: a handle on its guest (on this thread), the
/// version that guest runs, its place in the live list, and its send
/// budget's meter. Dropping it (a crash, a stop) frees the guest and its
/// Store; a restart starts a new meter (a full bucket).
pub(crate) struct WasmState {
    guest: LocalGuest,
    module: CompiledModule,
    _live: Live,
    sends: SendMeter,
}

impl Particle for WasmParticle {
    type State = WasmState;

    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<WasmState, ParticleError> {
        let (module, live) = match self.entry.enlist(ctx.me()) {
            // Not loaded yet: look for it in the search path (once; a
            // concurrent first start loads the same bytes, which the store
            // makes the same version).
            Err(ModuleError::NotLoaded { .. }) if !self.host.path.dirs().is_empty() => {
                crate::from_disk::load_on_demand(&self.host, &self.entry).await?;
                self.entry.enlist(ctx.me())?
            }
            enlisted => enlisted?,
        };
        // The guest lives in this thread's slab (its Star's thread).
        let guest = LocalGuest::keep(module.instantiate()?);
        let output = guest.with(|g| g.init(args.as_bytes()))?;
        let mut sends = SendMeter::new(self.host.policy.budget);
        deliver(ctx, &mut sends, module.name(), "init", output)?;
        ctx.set_code_version(module.version().seq);
        Ok(WasmState {
            guest,
            module,
            _live: live,
            sends,
        })
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        let Wave { method, body, .. } = wave;
        let mut output = state.guest.with(|g| g.handle(&method, body.as_bytes()))?;
        let reply = output.reply.take();
        deliver(ctx, &mut state.sends, state.module.name(), "handle", output)?;
        Ok(reply.map(Body::from).unwrap_or_default())
    }

    /// A hot reload ([`WasmHost::reload`](crate::WasmHost::reload)); its
    /// answer is the encoded [`Outcome`].
    async fn control(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        control: Control,
    ) -> Result<Body, ParticleError> {
        Ok(self.reload(ctx, state, &control).await.encode())
    }
}

impl WasmParticle {
    /// A reload: moves the guest to the version the control's body names,
    /// keeping its state; on any failure the guest stays on its version,
    /// serving. Honoured only from the Machine itself (ROOT).
    async fn reload(&self, ctx: &Ctx, state: &mut WasmState, control: &Control) -> Outcome {
        let from = state.module.version().seq;
        if !control.from.is_root() {
            tracing::warn!(
                target: crate::TARGET_RELOAD,
                point = %ctx.me(),
                sender = %control.from,
                "a reload from a particle is refused (only the Machine may reload)"
            );
            return Outcome::Failed {
                stays_on: from,
                reason: format!(
                    "a reload is honoured only from the Machine, not from {}",
                    control.from
                ),
            };
        }
        let Some(to) = control.body.as_u64() else {
            return Outcome::Failed {
                stays_on: from,
                reason: "malformed reload (its body must be a version number)".into(),
            };
        };
        if to <= from {
            return Outcome::Current { at: from };
        }
        // Only as far as the host has made current: the Machine as sender
        // is not enough, as any code outside a handler is the Machine.
        let current = self.entry.current().map_or(0, |m| m.version().seq);
        if to > current {
            return Outcome::Failed {
                stays_on: from,
                reason: format!(
                    "version {to} of `{}` is not current (the host's is {current})",
                    self.entry.name
                ),
            };
        }
        let Some(target) = self.host.store.version(&self.entry.name, to) else {
            return Outcome::Failed {
                stays_on: from,
                reason: format!("module `{}` has no version {to}", self.entry.name),
            };
        };
        match state.guest.with(|guest| swap(guest, &target)) {
            Ok(()) => {
                state.module = target;
                ctx.set_code_version(to);
                tracing::debug!(
                    target: crate::TARGET_RELOAD,
                    point = %ctx.me(),
                    module = %self.entry.name,
                    from,
                    to,
                    "particle reloaded"
                );
                Outcome::Reloaded { from }
            }
            Err(e) => {
                tracing::warn!(
                    target: crate::TARGET_RELOAD,
                    point = %ctx.me(),
                    module = %self.entry.name,
                    from,
                    to,
                    error = %e,
                    "reload failed; the particle stays on its version"
                );
                Outcome::Failed {
                    stays_on: from,
                    reason: e.to_string(),
                }
            }
        }
    }
}

/// Moves `guest`'s state into a fresh instance of `target`; `guest` is left
/// untouched (still serving its old version) unless every step succeeds.
fn swap(
    guest: &mut crate::instance::GuestInstance,
    target: &CompiledModule,
) -> Result<(), ModuleError> {
    let state = guest.snapshot()?;
    let mut fresh = target.instantiate()?;
    fresh.restore(&state)?;
    // The old instance, and its Store, are dropped here.
    *guest = fresh;
    Ok(())
}

/// Sends what the guest queued in one successful call, in order, as
/// signals from the particle, if the call kept to its budget and scope.
/// Everything is checked before anything is sent, so a call that breaks a
/// rule sends nothing (and, failing, crashes the particle):
///
/// 1. the per-call budget (`hv.send` refusals, or more sends than
///    [`SendBudget::per_call`](crate::SendBudget::per_call)):
///    `SendBudget`;
/// 2. every address: one that is not a Point is the guest breaking the ABI
///    (`AbiViolation`), one outside the particle's own subtree, its parent
///    and its grants is `SendOutOfScope`;
/// 3. the per-second bucket, all the call's sends at once: `SendBudget`.
///
/// A wave that then cannot be delivered (nobody there, a full lane) is
/// dropped and logged, as a send to a dead process is in Erlang.
fn deliver(
    ctx: &Ctx,
    meter: &mut SendMeter,
    module: &str,
    export: &str,
    output: HandleOutput,
) -> Result<(), ModuleError> {
    let HandleOutput {
        sends,
        refused_sends,
        ..
    } = output;
    let over = |(budget, limit)| ModuleError::SendBudget {
        module: module.to_string(),
        particle: ctx.me().to_string(),
        export: export.to_string(),
        budget,
        limit,
    };
    meter.check_call(sends.len(), refused_sends).map_err(over)?;
    if sends.is_empty() {
        return Ok(());
    }
    let (me, parent, grants) = (ctx.me(), ctx.parent(), ctx.grants());
    let mut waves = Vec::with_capacity(sends.len());
    for send in sends {
        let to = Point::parse(&send.to).map_err(|e| ModuleError::AbiViolation {
            module: module.to_string(),
            export: export.to_string(),
            message: format!("hv.send to `{}`: {e}", send.to),
        })?;
        if !in_scope(me, parent, grants, &to) {
            return Err(ModuleError::SendOutOfScope {
                module: module.to_string(),
                particle: me.to_string(),
                export: export.to_string(),
                to: send.to,
            });
        }
        waves.push((to, send.method, send.body));
    }
    meter.take(waves.len()).map_err(over)?;
    for (to, method, body) in waves {
        if let Err(e) = ctx.signal(&to, (method, body)) {
            tracing::debug!(
                target: crate::TARGET_WASM,
                from = %ctx.me(),
                %to,
                error = %e,
                "a guest's wave was not delivered"
            );
        }
    }
    Ok(())
}
