//! Supervisor particles: OTP's `supervisor` as a particle, its children
//! particles under it.

use hyperverse_supervisors::{ChildSpec, ExitReason, Outcome, SupError, SupFlags, Supervisor};

use super::api::{self, SupervisorCall, SupervisorReply};
use super::child::ExitReport;
use super::kids::{ChildRef, Kids};
use super::ChildStart;
use crate::control::{ControlKind, ControlReply};
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
}

impl SupervisorSpec {
    /// A supervisor with these flags and children.
    pub fn new(flags: SupFlags, children: Vec<ChildSpec<ChildStart>>) -> Self {
        SupervisorSpec { flags, children }
    }
}

/// The Particle behind every supervisor Kind.
pub(crate) struct SupervisorParticle {
    pub(crate) spec: SupervisorSpec,
}

pub(crate) struct SupState {
    sup: Supervisor<Kids>,
    kids: Kids,
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
                kids.reconcile(&sup).await;
                kids.end_orphans().await;
                Ok(SupState { sup, kids })
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
                gave_up: self.sup.handle(&id).is_none(),
                in_flight: report.in_flight,
            };
            tracing::warn!(target: targets::CRASH, point = %child, reason = %notice.reason, supervisor = %ctx.me(), "supervised particle crashed");
            ctx.machine.emit(|| Event::Crashed(notice));
        }
        self.settle().await;
        match outcome {
            Outcome::Continue => Ok(()),
            // Escalation: it dies with reason shutdown, and its own
            // supervisor (or Star) acts.
            Outcome::Shutdown(reason) => Err(reason),
        }
    }
}
