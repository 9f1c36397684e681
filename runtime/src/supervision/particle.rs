//! Supervisor particles: OTP's `supervisor` as a particle, its children
//! particles under it.

use hyperverse_supervisors::{
    Backoff, ChildSpec, ExitReason, Outcome, SupError, SupFlags, Supervisor,
};

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::api;
use super::calls::{ChildRef, ExitReport, SupervisorCall, SupervisorReply};
use super::kids::Kids;
use super::ChildStart;
use crate::control::{ControlKind, ControlLetter, ControlReply};
use crate::lane::Letter;
use crate::targets;
use crate::{Body, CrashNotice, Ctx, Event, Particle, ParticleError, Point, Wave};

/// What a supervisor particle supervises: OTP's `init/1` result, flags and
/// child specs. Register it as a Kind with
/// [`crate::MachineBuilder::supervisor`]; every particle of that Kind is a
/// supervisor with these children.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    /// Strategy, intensity, auto-shutdown.
    pub flags: SupFlags,
    /// The children, in start order (a dynamic supervisor: its one template).
    pub children: Vec<ChildSpec<ChildStart>>,
    /// Beyond OTP: a growing delay before each restart of a child (default:
    /// the Machine's [`crate::MachineBuilder::restart_backoff`], if any).
    /// The supervisor keeps answering calls while it waits.
    pub backoff: Option<Backoff>,
}

impl SupervisorSpec {
    /// A supervisor with these flags and children.
    pub fn new(flags: SupFlags, children: Vec<ChildSpec<ChildStart>>) -> Self {
        SupervisorSpec {
            flags,
            children,
            backoff: None,
        }
    }

    /// Delays each restart of a child by this backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Checks the spec as the supervisor's start would (OTP's check of
    /// `init/1`'s result), and its backoff.
    pub fn validate(&self) -> Result<(), SupError> {
        hyperverse_supervisors::check_spec(&self.flags, &self.children)?;
        if let Some(b) = &self.backoff {
            b.validate().map_err(SupError::Backoff)?;
        }
        Ok(())
    }
}

/// The Particle behind every supervisor Kind.
pub(crate) struct SupervisorParticle {
    pub(crate) spec: SupervisorSpec,
}

pub(crate) struct SupState {
    sup: Supervisor<Kids>,
    kids: Kids,
    /// The restarts it owes itself (OTP's `try_again_restart`).
    retries: Arc<Retries>,
}

/// The restarts a supervisor particle owes itself: a child whose restart
/// failed (or waits for its backoff) is put here when its delay is over,
/// and the supervisor is woken by a [`ControlKind::Retry`] letter (made
/// only here, never refused for room) to try it again. The letter carries
/// nothing: which children are due stays in this incarnation's own list.
/// The supervisor answers calls meanwhile (OTP's supervisor sends itself
/// `{try_again_restart, Id}` for the same reason).
#[derive(Default)]
pub(crate) struct Retries {
    due: Mutex<Vec<String>>,
    /// The timers of retries not yet due: stopped with the incarnation
    /// that owes them.
    timers: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for SupState {
    fn drop(&mut self) {
        for timer in self.retries.timers.lock().drain(..) {
            timer.abort();
        }
    }
}

impl Retries {
    /// Tries `id` again after `after`: marks it due then, and wakes the
    /// supervisor.
    fn schedule(self: &Arc<Self>, ctx: &Ctx, id: String, after: Duration) {
        let retries = Arc::downgrade(self);
        let cell = Arc::downgrade(&ctx.cell);
        let wake = async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            let (Some(retries), Some(cell)) = (retries.upgrade(), cell.upgrade()) else {
                return;
            };
            retries.due.lock().push(id);
            // A closed lane means the supervisor has ended: nothing to do.
            let _ = cell.lane.push(Letter::Control(Box::new(ControlLetter {
                from: cell.point().clone(),
                to: cell.point().clone(),
                kind: ControlKind::Retry,
                reply: None,
            })));
        };
        let timer = ctx.machine.runtime().spawn(wake).abort_handle();
        let mut timers = self.timers.lock();
        timers.retain(|t| !t.is_finished());
        timers.push(timer);
    }

    fn take_due(&self) -> Vec<String> {
        std::mem::take(&mut *self.due.lock())
    }
}

impl Particle for SupervisorParticle {
    type State = SupState;
    const STOPS_OWN_CHILDREN: bool = true;

    async fn start(&self, ctx: &Ctx, _args: &Body) -> Result<SupState, ParticleError> {
        let mut kids = Kids::new(ctx.clone());
        let flags = self.spec.flags;
        match Supervisor::try_start(flags, self.spec.children.clone(), &mut kids).await {
            Ok(mut sup) => {
                // Its events went out as they happened (`Kids::event`).
                sup.take_log();
                sup.set_backoff(self.spec.backoff.or_else(|| ctx.machine.default_backoff()));
                kids.reconcile(&sup).await;
                kids.end_orphans().await;
                Ok(SupState {
                    sup,
                    kids,
                    retries: Arc::default(),
                })
            }
            Err((e, _)) => {
                // Its children stay parked (the started ones were stopped,
                // in reverse order): a next incarnation adopts them, and
                // if there is none they end with it.
                Err(Box::new(e))
            }
        }
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        _st: &mut SupState,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        // The API and exit reports are control letters (`control` below);
        // a wave is never one, whatever its method. OTP's supervisor logs
        // what it does not expect and goes on.
        tracing::warn!(target: targets::ROUTE, supervisor = %ctx.me(), method = %wave.method, from = %wave.from, "a supervisor ignores a wave (its API is not waves)");
        Ok(Body::empty())
    }

    async fn stop(&self, _ctx: &Ctx, mut st: SupState) {
        // Reverse start order, each child within its shutdown.
        st.sup.shutdown(&mut st.kids).await;
        st.kids.end_all().await;
    }
}

impl SupervisorParticle {
    /// A control letter: an API call, answered, or a child's exit report.
    /// An error is the supervisor's own exit (escalation).
    pub(crate) async fn control(
        &self,
        ctx: &Ctx,
        st: &mut SupState,
        from: Point,
        kind: ControlKind,
    ) -> Result<Option<ControlReply>, ExitReason> {
        match kind {
            ControlKind::Exit(report) => {
                st.child_exit(ctx, from, report).await?;
                Ok(None)
            }
            ControlKind::Retry => {
                st.retry_due(ctx).await?;
                Ok(None)
            }
            ControlKind::Supervisor(call) => {
                // The caller checked too; the rule is the supervisor's own.
                if !api::may_call(&from, ctx.me()) {
                    tracing::warn!(target: targets::ROUTE, supervisor = %ctx.me(), %from, "a supervisor refuses an API call from a particle that is not its ancestor");
                    return Ok(Some(ControlReply::Supervisor(SupervisorReply::Forbidden)));
                }
                st.kids.caller = Some(from);
                let reply = st.call(call).await;
                st.kids.caller = None;
                Ok(Some(ControlReply::Supervisor(reply)))
            }
            // Not addressed to a supervisor's API: the default answer.
            ControlKind::Driver(_) => Ok(Some(ControlReply::Driver(Body::empty()))),
        }
    }
}

impl SupState {
    /// One call of the supervisor API.
    async fn call(&mut self, call: SupervisorCall) -> SupervisorReply {
        match call {
            SupervisorCall::WhichChildren => SupervisorReply::Children(self.sup.which_children()),
            SupervisorCall::CountChildren => SupervisorReply::Counts(self.sup.count_children()),
            SupervisorCall::StartChild(spec) => {
                let r = self.sup.start_child(&mut self.kids, spec).await;
                self.settle().await;
                SupervisorReply::Started(r)
            }
            SupervisorCall::AddChild { id, args } => {
                let r = match self.sup.template() {
                    Some(t) => {
                        let start = t.start.clone().args(args);
                        self.sup.add_child(&mut self.kids, id, start).await
                    }
                    None => Err(SupError::Unsupported {
                        op: "add_child".into(),
                        strategy: self.sup.flags().strategy,
                    }),
                };
                self.settle().await;
                SupervisorReply::Started(r)
            }
            SupervisorCall::TerminateChild(id) => {
                let r = self.sup.terminate_child(&mut self.kids, &id).await;
                self.settle().await;
                SupervisorReply::Done(r)
            }
            SupervisorCall::RestartChild(id) => {
                let r = self.sup.restart_child(&mut self.kids, &id).await;
                self.settle().await;
                SupervisorReply::Started(r)
            }
            SupervisorCall::DeleteChild(id) => {
                let r = self.sup.delete_child(&mut self.kids, &id);
                self.settle().await;
                SupervisorReply::Done(r)
            }
        }
    }

    /// Ends the children no longer run. (The log's events went out as
    /// they happened, through `Kids::event`.)
    async fn settle(&mut self) {
        self.sup.take_log();
        self.kids.reconcile(&self.sup).await;
    }

    /// A child's incarnation ended: the supervisor acts per its strategy.
    /// An error is the supervisor's own exit (escalation).
    async fn child_exit(
        &mut self,
        ctx: &Ctx,
        child: Point,
        report: ExitReport,
    ) -> Result<(), ExitReason> {
        if child.parent().as_ref() != Some(ctx.me()) {
            return Ok(());
        }
        let id = child.name().to_string();
        let handle = ChildRef {
            point: child.clone(),
            seq: report.seq,
            incarnation: report.incarnation,
        };
        let current = self.sup.handle(&id).as_ref() == Some(&handle);
        let outcome = self
            .sup
            .child_exited(&mut self.kids, &id, &handle, report.exit.clone())
            .await;
        if current && !report.exit.is_normal() {
            let (kind, restarts, star) = match self.kids.cell(&id) {
                Some(c) => (c.kind().clone(), c.restarts(), c.star()),
                None => (crate::Kind::new("unknown"), 0, ctx.cell.star()),
            };
            let notice = CrashNotice {
                child: child.clone(),
                kind,
                reason: report.exit.to_string(),
                restarts,
                in_period: self.sup.restarts_in_period(),
                star,
                supervisor: Some(ctx.me().clone()),
                gave_up: self.sup.handle(&id).is_none() && !self.sup.is_restarting(&id),
                in_flight: report.in_flight,
            };
            tracing::warn!(target: targets::CRASH, point = %child, reason = %notice.reason, supervisor = %ctx.me(), "supervised particle crashed");
            ctx.machine.emit(|| Event::Crashed(notice));
        }
        self.settle().await;
        self.follow(ctx, outcome)
    }

    /// Acts on a supervisor outcome: a retry is scheduled (the supervisor
    /// keeps answering meanwhile); an error is its own exit (escalation).
    fn follow(&mut self, ctx: &Ctx, outcome: Outcome) -> Result<(), ExitReason> {
        match outcome {
            Outcome::Continue => Ok(()),
            Outcome::TryAgain { id, after } => {
                tracing::info!(target: targets::RESTART, supervisor = %ctx.me(), %id, ?after, "supervisor will try the restart again");
                self.retries.schedule(ctx, id, after);
                Ok(())
            }
            // Escalation: it dies with reason shutdown, and its own
            // supervisor (or Star) acts.
            Outcome::Shutdown(reason) => Err(reason),
        }
    }

    /// Tries again the restarts that are due (OTP's `try_again_restart`).
    async fn retry_due(&mut self, ctx: &Ctx) -> Result<(), ExitReason> {
        for id in self.retries.take_due() {
            let outcome = self.sup.try_again(&mut self.kids, &id).await;
            self.settle().await;
            self.follow(ctx, outcome)?;
        }
        Ok(())
    }
}
