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
//! Access rules: each guest's `hv.send` and `hv.ask` are judged as they
//! are made, for the particle as a confined visitor ([`Ctx::confined_may`],
//! through the instance's judge, `host.rs`), and its module's grants
//! manifest is put in force in the Machine's rules before its first start
//! on a manifest (`manifest.rs`).
//!
//! The particle's State holds no guest, only a handle on one in its
//! thread's slab (`local.rs`), plus its place in its module's list of live
//! particles, which is what a hot reload reports on.
//!
//! Hot reload is not a wave, nor a letter: [`WasmHost::reload`](crate::WasmHost::reload)
//! moves each guest in its Star thread's slab, between two of its calls
//! (`swap.rs`), so no wave can ask for one, whatever its method or sender.
//! Waves queue in the lane as usual meanwhile and none is lost or
//! reordered. The only control a WASM particle takes is the outcome of its
//! guest's asks (`guest_control.rs`), honoured only from the Machine
//! itself (the runtime stamps the sender: a particle's handler calling
//! `Machine::control` is that particle, not ROOT).

use std::sync::Arc;

use std::collections::VecDeque;
use std::future::Future;

use hyperverse_runtime::access::Privilege;
use hyperverse_runtime::{Body, Control, CrashNotice, Ctx, Particle, ParticleError, Point, Wave};

use crate::budget::SendMeter;
use crate::effects::{Actor, Open};
use crate::entry::{HostShared, Live, ModuleEntry};
use crate::error::ModuleError;
use crate::guest_control::GuestControl;
use crate::host::{CallContext, HandleOutput, Judge};
use crate::instance::GuestInstance;
use crate::local::LocalGuest;
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
            open.next_tag = g.next_tag();
            out
        })
    }
}

impl Particle for WasmParticle {
    type State = WasmState;

    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<WasmState, ParticleError> {
        let (module, live) = match self.entry.enlist(ctx.me(), ctx.star()) {
            // Not loaded yet: look for it in the search path (once; a
            // concurrent first start loads the same bytes, which the store
            // makes the same version).
            Err(ModuleError::NotLoaded { .. }) if !self.host.path.dirs().is_empty() => {
                crate::from_disk::load_on_demand(&self.host, &self.entry).await?;
                self.entry.enlist(ctx.me(), ctx.star())?
            }
            enlisted => enlisted?,
        };
        // Its module's manifest grants, in force before its guest's first
        // wave (once per manifest, not per start).
        self.entry
            .grants_in_force(ctx.machine())
            .await
            .map_err(|e| ModuleError::Host {
                module: self.entry.name.to_string(),
                message: format!("its manifest's grants could not be put in force: {e}"),
            })?;
        // The guest lives in this thread's slab (its Star's thread).
        // (Made in a plain function: a `GuestInstance` is not `Send`, so it
        // must not be a local of this future.)
        let mut state = self.instantiate(ctx, module, live)?;
        let output = state.call(|g| g.init(args.as_bytes()))?;
        self.carry_out(ctx, &mut state, "init", output).await?;
        ctx.set_code_version(state.guest.with(|g| Ok(g.version().seq))?);
        Ok(state)
    }

    /// The guest is called when the future is made, not when it is first
    /// polled (the runtime makes it inside its crash guard, so a panic is
    /// still a crash): a wave whose call queues nothing, the common case,
    /// is then a ready future of a few words, which the runtime moves
    /// around for nothing, instead of a state machine with room for every
    /// local of the call. (Measured: the move of that room was a quarter
    /// of a wave's cost.)
    fn handle(
        &self,
        ctx: &Ctx,
        state: &mut WasmState,
        wave: Wave,
    ) -> impl std::future::Future<Output = Result<Body, ParticleError>> + Send {
        use futures::future::{ready, Either};
        let called = state.call(|g| g.handle(&wave.method, wave.body.as_bytes()));
        drop(wave);
        let mut output = match called {
            Ok(output) => output,
            Err(e) => return Either::Left(ready(Err(e.into()))),
        };
        let reply = output.reply.take().map(Body::from).unwrap_or_default();
        if !output.has_work() {
            return Either::Left(ready(Ok(reply)));
        }
        Either::Right(Box::pin(async move {
            self.carry_out(ctx, state, "handle", output).await?;
            Ok(reply)
        }))
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

    /// Trusted control: the outcome of one of the guest's asks, for its
    /// `on_reply`. (A hot reload is not control: the host moves guests on
    /// their Star's thread, `swap.rs`.)
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
            }
            // Not a letter of ours: refused, and the particle goes on (a
            // crash here would let any code that can send control crash
            // the particle).
            None => tracing::warn!(
                target: hyperverse_runtime::targets::ROUTE,
                point = %ctx.me(),
                sender = %control.from,
                "unknown control refused"
            ),
        }
        Ok(Body::empty())
    }
}

/// The access rules for a guest's waves: its particle judged as a confined
/// visitor, by the code the receiving side runs.
fn judge(ctx: &Ctx) -> Judge {
    let ctx = ctx.clone();
    Arc::new(move |want: Privilege, to: &Point| ctx.confined_may(want, to))
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
        instance.set_judge(Some(judge(ctx)));
        Ok(WasmState {
            guest: LocalGuest::keep(instance, Some(ctx.clone())),
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
        if !output.has_work() {
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
