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
//! its body a `GuestControl::Reload` naming the target version, and the
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

use std::collections::VecDeque;
use std::future::Future;

use hyperverse_runtime::{Body, Control, CrashNotice, Ctx, Particle, ParticleError, Wave};

use crate::budget::SendMeter;
use crate::effects::{Actor, Open};
use crate::entry::{HostShared, Live, ModuleEntry};
use crate::error::ModuleError;
use crate::guest_control::GuestControl;
use crate::host::{CallContext, HandleOutput};
use crate::instance::GuestInstance;
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
/// budget's meter, and what it has open (asks, timers). Dropping it (a
/// crash, a stop) frees the guest and its Store and aborts what it had
/// open; a restart starts a new meter (a full bucket).
pub(crate) struct WasmState {
    guest: LocalGuest,
    module: CompiledModule,
    _live: Live,
    sends: SendMeter,
    open: Open,
}

impl WasmState {
    /// One call into the guest, with the counters of what is open set
    /// before it and the next tag read back after it.
    fn call(
        &mut self,
        f: impl FnOnce(&mut GuestInstance) -> Result<HandleOutput, ModuleError>,
    ) -> Result<HandleOutput, ModuleError> {
        let (requests, timers) = (self.open.requests(), self.open.timers());
        let open = &mut self.open;
        self.guest.with(|g| {
            g.set_open(open.next_tag, requests, timers);
            let out = f(g);
            open.next_tag = g.context().next_tag;
            out
        })
    }
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
        // (Made in a plain function: a `GuestInstance` is not `Send`, so it
        // must not be a local of this future.)
        let mut state = self.instantiate(ctx, module, live)?;
        let output = state.call(|g| g.init(args.as_bytes()))?;
        self.carry_out(ctx, &mut state, "init", output).await?;
        ctx.set_code_version(state.module.version().seq);
        Ok(state)
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        let Wave { method, body, .. } = wave;
        let mut output = state.call(|g| g.handle(&method, body.as_bytes()))?;
        let reply = output.reply.take();
        self.carry_out(ctx, state, "handle", output).await?;
        Ok(reply.map(Body::from).unwrap_or_default())
    }

    /// A child crashed: the guest's `on_crash_notice`, if it has one (a
    /// guest that supervises its children restarts them from there).
    async fn crash_notice(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        notice: CrashNotice,
    ) -> Result<(), ParticleError> {
        let code = crate::error::crash_code(&notice.reason).unwrap_or(-1);
        let output = state.call(|g| {
            g.on_crash_notice(
                notice.child.as_ref(),
                code,
                &notice.reason,
                notice.restarts,
                notice.gave_up,
            )
        })?;
        self.carry_out(ctx, state, "on_crash_notice", output)
            .await?;
        Ok(())
    }

    /// Trusted control: a hot reload
    /// ([`WasmHost::reload`](crate::WasmHost::reload)), answered with the
    /// encoded [`Outcome`], or the outcome of one of the guest's asks, for
    /// its `on_reply`.
    async fn control(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        control: Control,
    ) -> Result<Body, ParticleError> {
        match GuestControl::decode(control.body.as_bytes()) {
            Some(GuestControl::Reply {
                incarnation,
                tag,
                status,
                body,
            }) => {
                // Only the runtime's own letter, for this incarnation's
                // open ask, once.
                if control.from.is_root() && state.open.close(incarnation, tag) {
                    let output = state.call(|g| g.on_reply(tag, status, &body))?;
                    self.carry_out(ctx, state, "on_reply", output).await?;
                }
                Ok(Body::empty())
            }
            decoded => Ok(self.reload(ctx, state, &control, decoded).await.encode()),
        }
    }
}

impl WasmParticle {
    /// A reload: moves the guest to the version the control's body names,
    /// keeping its state; on any failure the guest stays on its version,
    /// serving. Honoured only from the Machine itself (ROOT).
    async fn reload(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        control: &Control,
        decoded: Option<GuestControl>,
    ) -> Outcome {
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
        let Some(GuestControl::Reload { to }) = decoded else {
            return Outcome::Failed {
                stays_on: from,
                reason: "malformed reload (its body must be a version number)".into(),
            };
        };
        if to <= from {
            return Outcome::Current { at: from };
        }
        // Only to the version the host has current now: the Machine as
        // sender is not enough, as any code outside a handler is the
        // Machine, and a letter that waited in the lane past its reload's
        // deadline must not move the particle to a version rolled back (or
        // overtaken) meanwhile.
        let current = self.entry.current().map_or(0, |m| m.version().seq);
        if to != current {
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
            // (The fresh instance was given the old one's context.)
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
    fresh.set_context(guest.context().clone());
    fresh.restore(&state)?;
    // The old instance, and its Store, are dropped here.
    *guest = fresh;
    Ok(())
}

impl WasmParticle {
    /// A fresh guest of `module` in this thread's slab, knowing its particle.
    fn instantiate(
        &self,
        ctx: &Ctx,
        module: CompiledModule,
        live: Live,
    ) -> Result<WasmState, ModuleError> {
        let mut instance = module.instantiate()?;
        instance.set_context(CallContext {
            me: ctx.me().to_string(),
            parent: ctx.parent().map(|p| p.to_string()),
            restarts: ctx.restarts(),
            ..CallContext::default()
        });
        Ok(WasmState {
            guest: LocalGuest::keep(instance),
            module,
            _live: live,
            sends: SendMeter::new(self.host.policy.budget),
            open: Open::new(),
        })
    }

    /// Carries out a call's sends and effects (`effects.rs`), then gives
    /// the outcomes of its spawns and stops to the guest's `on_reply`, and
    /// so on for what those calls queue: each round is bounded by the send
    /// budget, so the rounds are too.
    ///
    /// Most calls queue nothing: that is a ready future, with no
    /// allocation. The rest is boxed, so that the future of every wave's
    /// handler (moved into the particle's loop at each wave) stays a few
    /// words instead of holding room for a stop's and an ask's futures.
    fn carry_out<'a>(
        &'a self,
        ctx: &'a Ctx,
        state: &'a mut WasmState,
        export: &'static str,
        output: HandleOutput,
    ) -> impl Future<Output = Result<(), ModuleError>> + Send + 'a {
        use futures::future::{ready, Either};
        if output.sends.is_empty() && output.effects.is_empty() && output.refused_sends == 0 {
            return Either::Left(ready(Ok(())));
        }
        Either::Right(Box::pin(async move {
            let host = &self.host;
            let loaded = |name: &str| {
                host.modules
                    .lock()
                    .get(name)
                    .is_some_and(|e| e.current().is_some())
            };
            let actor = Actor {
                ctx,
                policy: &host.policy,
                module: &self.entry.name,
                loaded: &loaded,
            };
            // Every round one wave sets off counts against one per-call
            // budget, so the rounds are bounded (a guest whose on_reply
            // spawns or stops again cannot loop), and the particle yields
            // between rounds, so that its Star's other particles run and a
            // kill or a shutdown finds it at an await.
            let per_wave = host.policy.budget.effective_per_call() as usize;
            let mut spent = 0usize;
            let mut rounds = VecDeque::from([(export, output)]);
            while let Some((export, output)) = rounds.pop_front() {
                spent += output.sends.len() + output.effects.len();
                if spent > per_wave {
                    return Err(ModuleError::SendBudget {
                        module: self.entry.name.to_string(),
                        particle: ctx.me().to_string(),
                        export: export.to_string(),
                        budget: crate::BudgetKind::PerCall,
                        limit: per_wave as u32,
                    });
                }
                let outcomes = actor
                    .carry_out(&mut state.sends, &mut state.open, export, output)
                    .await?;
                for o in outcomes {
                    tokio::task::yield_now().await;
                    let output = state.call(|g| g.on_reply(o.tag, o.status, &o.body))?;
                    rounds.push_back(("on_reply", output));
                }
            }
            Ok(())
        }))
    }
}
