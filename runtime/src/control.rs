//! Control traffic: typed letters that no user wave can produce.
//!
//! A wave's method is whatever its sender writes, so a method name can
//! never be a credential: before this module, `$sup:exit`, the
//! `$sup:*` supervisor API and `$wasm:reload` were ordinary waves trusted
//! by their name (or by a sender any code could claim), and any particle
//! could send them. Control traffic is a letter of its own kind
//! ([`crate::lane`]'s `Letter::Control`), made only by the runtime:
//!
//! - [`ControlKind::Supervisor`]: OTP's supervisor API ([`crate::SupervisorRef`]),
//!   honoured only from the Machine or an ancestor of the supervisor;
//! - [`ControlKind::Exit`]: a supervised child's exit report to its
//!   supervisor, made only by the runtime when an incarnation ends, and
//!   never refused for room;
//! - [`ControlKind::Driver`]: trusted control for a Driver's particles
//!   from in-process Rust code ([`crate::Machine::control`], received by
//!   [`crate::Particle::control`]), such as the reply to a WASM guest's ask.
//!
//! A wave whose method merely looks like one of these is an ordinary
//! wave, handed to the particle's `handle` like any other.
//!
//! Every control letter carries its sender, stamped by the runtime like a
//! wave's, and its payloads are serde types: a cluster can carry a control
//! letter (sender and payload) to another Machine, and access rules can
//! judge it by its sender.

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::supervision::{ExitReport, SupervisorCall, SupervisorReply};
use crate::{Body, Point, WaveError};

/// What a control letter says. Serialisable, so that a cluster can carry
/// it between Machines; constructed only inside the runtime.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ControlKind {
    /// A call of the supervisor API, to a supervisor particle.
    Supervisor(SupervisorCall),
    /// A supervised child's incarnation ended: to its supervisor.
    Exit(ExitReport),
    /// For the particle's [`crate::Particle::control`] hook.
    Driver(Body),
    /// A supervisor particle wakes itself to try a child's restart again
    /// (OTP's `try_again_restart`): made only by the supervisor for its
    /// own lane, never refused for room.
    Retry,
}

impl ControlKind {
    /// A short name, for crash notices and logs.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            ControlKind::Supervisor(_) => "control:supervisor",
            ControlKind::Exit(_) => "control:exit",
            ControlKind::Driver(_) => "control:driver",
            ControlKind::Retry => "control:retry",
        }
    }
}

/// The answer to a control letter that asked for one.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ControlReply {
    /// A supervisor's answer to an API call.
    Supervisor(SupervisorReply),
    /// What a [`crate::Particle::control`] hook returned.
    Driver(Body),
}

/// Where a control letter's answer goes.
pub(crate) type ControlTx = oneshot::Sender<Result<ControlReply, WaveError>>;
pub(crate) type ControlRx = oneshot::Receiver<Result<ControlReply, WaveError>>;

/// One control letter in a lane: its sender (stamped by the runtime), what
/// it says, and where its answer goes, if it wants one.
#[derive(Debug)]
pub(crate) struct ControlLetter {
    pub(crate) from: Point,
    /// Its addressee (a cluster routes by it; the lane's guards compare it
    /// with the sender).
    pub(crate) to: Point,
    pub(crate) kind: ControlKind,
    pub(crate) reply: Option<ControlTx>,
}

/// Trusted control for a Driver's particle, as its
/// [`crate::Particle::control`] hook receives it: sent with
/// [`crate::Machine::control`], never by a wave.
///
/// ```
/// use hyperverse_runtime::{Body, Control, Point};
///
/// let c = Control { from: Point::root(), body: Body::from_u64(2) };
/// assert!(c.from.is_root()); // sent by the Machine, outside any handler
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Who sent it, stamped by the runtime: [`Point::root`] for code
    /// outside any particle's handler (the Machine itself), otherwise the
    /// particle whose handler sent it.
    pub from: Point,
    /// What it says, in the Driver's own encoding.
    pub body: Body,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyperverse_supervisors::{ChildSpec, Strategy, SupFlags};

    use super::*;
    use crate::lane::Letter;
    use crate::{ChildStart, Kind, Machine, SupervisorSpec, Wave};
    use crate::{Ctx, Particle, ParticleError};

    struct Idle;
    impl Particle for Idle {
        type State = ();
        async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
            Ok(())
        }
        async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
            Ok(Body::empty())
        }
    }

    /// Every control payload crosses bytes (a cluster will carry them):
    /// encoded and decoded, each says the same.
    #[test]
    fn control_payloads_round_trip_through_bytes() {
        let spec = ChildSpec::worker("w", ChildStart::kind("idle", Body::from_u64(3)));
        let kinds = [
            ControlKind::Supervisor(SupervisorCall::StartChild(spec)),
            ControlKind::Supervisor(SupervisorCall::AddChild {
                id: "x".into(),
                args: Body::from("a"),
            }),
            ControlKind::Exit(ExitReport {
                seq: 7,
                incarnation: 2,
                exit: hyperverse_supervisors::ExitReason::Error("boom".into()),
                in_flight: Some(crate::InFlight {
                    method: "m".into(),
                    from: "a:b".parse().unwrap(),
                }),
            }),
            ControlKind::Driver(Body::from_u64(2)),
            ControlKind::Retry,
        ];
        for kind in kinds {
            let bytes = Body::encode(&kind).unwrap();
            let back: ControlKind = bytes.decode().unwrap();
            assert_eq!(format!("{back:?}"), format!("{kind:?}"));
        }
        let reply = ControlReply::Supervisor(SupervisorReply::Forbidden);
        let back: ControlReply = Body::encode(&reply).unwrap().decode().unwrap();
        assert_eq!(format!("{back:?}"), format!("{reply:?}"));
    }

    /// The supervisor checks the rule itself, whatever the caller's side
    /// did (as a letter from another Machine would not have passed through
    /// `SupervisorRef`): an API call from a particle that is no ancestor is
    /// answered `Forbidden`, and nothing is done.
    #[tokio::test]
    async fn a_supervisor_refuses_an_api_call_from_a_non_ancestor_itself() {
        let spec = SupervisorSpec::new(
            SupFlags::new(Strategy::OneForOne),
            vec![ChildSpec::worker(
                "a",
                ChildStart::kind("idle", Body::empty()),
            )],
        );
        let m = Machine::standalone()
            .kind("idle", Idle)
            .supervisor("s", spec)
            .build()
            .await
            .unwrap();
        let sup: Point = "sup".parse().unwrap();
        m.spawn(sup.clone(), Kind::new("s"), Body::empty())
            .await
            .unwrap();
        let a: Point = "sup:a".parse().unwrap();
        let seq = m.particle(&a).unwrap().spawn_seq();
        for from in ["intruder", "sup:a"] {
            let (tx, rx) = oneshot::channel();
            let letter = ControlLetter {
                from: from.parse().unwrap(),
                to: sup.clone(),
                kind: ControlKind::Supervisor(SupervisorCall::TerminateChild("a".into())),
                reply: Some(tx),
            };
            let pushed = m
                .particle(&sup)
                .unwrap()
                .cell
                .lane
                .push(Letter::Control(Box::new(letter)));
            assert!(pushed.is_ok());
            let answer = tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(
                    answer,
                    Ok(ControlReply::Supervisor(SupervisorReply::Forbidden))
                ),
                "{from}: {answer:?}"
            );
        }
        let lane = m.particle(&a).unwrap();
        assert_eq!((lane.spawn_seq(), lane.restarts()), (seq, 0));
        m.shutdown().await;
    }
}
