//! The supervisor API from outside: OTP's `which_children`,
//! `count_children`, `start_child`, `terminate_child`, `restart_child` and
//! `delete_child`, as control letters to a supervisor particle.
//!
//! A call is a typed control letter ([`SupervisorCall`]), never a wave: no
//! wave, whatever its method, reaches the supervisor's API. It is honoured
//! only from the Machine itself or from an ancestor of the supervisor (the
//! caller is stamped by the runtime); anyone else gets
//! [`SupervisorError::Forbidden`].

use hyperverse_supervisors::{ChildInfo, ChildSpec, Counts, SupError};

use super::calls::{SupervisorCall, SupervisorReply};
use super::{ChildRef, ChildStart};
use crate::control::{ControlKind, ControlReply};
use crate::stamp::sender;
use crate::{Body, CodecError, Machine, Point, WaveError};

/// True if `caller` may use the API of the supervisor at `supervisor`: the
/// Machine itself, or an ancestor of the supervisor.
pub(crate) fn may_call(caller: &Point, supervisor: &Point) -> bool {
    caller.is_root() || caller.is_ancestor_of(supervisor)
}

/// A supervisor API call that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The supervisor refused, with OTP's reason (already present, running,
    /// not found, …).
    #[error(transparent)]
    Refused(#[from] SupError),
    /// The supervisor could not be reached, or did not answer.
    #[error(transparent)]
    Wave(#[from] WaveError),
    /// The call could not be encoded (a closure [`ChildStart`] cannot be
    /// sent: it could never cross to another Machine).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The caller may not use this supervisor's API: only the Machine
    /// itself (code outside any handler) and the supervisor's ancestors
    /// may. A supervisor's own children are refused, as any other particle.
    #[error("{caller} may not use the supervisor API of {supervisor} (only the Machine and its ancestors may)")]
    Forbidden {
        /// Who called, as the runtime stamped it.
        caller: Point,
        /// The supervisor.
        supervisor: Point,
    },
    /// The particle at that Point is not a supervisor particle.
    #[error("{point} is not a supervisor")]
    NotASupervisor {
        /// Where the call went.
        point: Point,
    },
}

/// A handle to a supervisor particle, for OTP's supervisor API.
///
/// Only the Machine itself (code outside any particle's handler) and the
/// supervisor's ancestors may use it: the caller is stamped by the runtime,
/// and a call from any other particle, the supervisor's own children
/// included, is refused with [`SupervisorError::Forbidden`]. (OTP lets a
/// child call its supervisor; here that would let any particle under a
/// supervisor stop or start its siblings.)
///
/// ```
/// use hyperverse_runtime::*;
///
/// struct Worker;
/// impl Particle for Worker {
///     type State = ();
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
///     async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> { Ok(w.body) }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spec = SupervisorSpec::new(
///     SupFlags::new(Strategy::OneForOne),
///     vec![ChildSpec::worker("a", ChildStart::kind("worker", Body::empty()))],
/// );
/// let machine = Machine::standalone()
///     .kind("worker", Worker)
///     .supervisor("app_sup", spec)
///     .build()
///     .await?;
/// let sup_at: Point = "app".parse()?;
/// machine.spawn(sup_at.clone(), Kind::new("app_sup"), Body::empty()).await?;
/// let sup = machine.supervisor(&sup_at);
///
/// // Its child runs at `app:a`.
/// assert_eq!(sup.count_children().await?.active, 1);
/// assert_eq!(machine.ask(&"app:a".parse()?, ("echo", "hi")).await?.as_bytes(), b"hi");
///
/// // OTP's error cases are typed.
/// let again = ChildSpec::worker("a", ChildStart::kind("worker", Body::empty()));
/// assert_eq!(
///     sup.start_child(again).await.unwrap_err(),
///     SupervisorError::Refused(SupError::AlreadyStarted { id: "a".into() })
/// );
/// sup.terminate_child("a").await?;
/// sup.delete_child("a").await?;
/// assert_eq!(sup.count_children().await?.specs, 0);
/// machine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SupervisorRef {
    machine: Machine,
    point: Point,
}

impl SupervisorRef {
    pub(crate) fn new(machine: Machine, point: Point) -> Self {
        SupervisorRef { machine, point }
    }

    /// The supervisor's Point.
    pub fn point(&self) -> &Point {
        &self.point
    }

    /// Sends `call` as a control letter from the caller the runtime
    /// stamps, queued when the API method is called (not when its future
    /// is first polled), and waits for the answer.
    fn call(
        &self,
        call: Result<SupervisorCall, CodecError>,
    ) -> impl std::future::Future<Output = Result<SupervisorReply, SupervisorError>> + Send + 'static
    {
        let caller = sender();
        let point = self.point.clone();
        // Refused before anything is sent: a child calling its supervisor
        // could otherwise keep the supervisor waiting for it while it stops
        // that child. The supervisor checks again (the rule is its own).
        // A CLI user's handle calls as the Machine, once the rules give
        // the user `stop` on the supervisor (its calls end and start its
        // children's lives).
        let user_denied = self.machine.user().is_some()
            && self
                .machine
                .check_action(crate::access::Privilege::Stop, &point)
                .is_err();
        let sent = match call {
            Err(e) => Err(SupervisorError::from(e)),
            Ok(_) if user_denied || !may_call(&caller, &point) => Err(SupervisorError::Forbidden {
                caller: caller.clone(),
                supervisor: point.clone(),
            }),
            Ok(call) => match self.machine.particle(&point) {
                Ok(lane) => Ok(futures::future::Either::Left(lane.control(
                    ControlKind::Supervisor(call),
                    self.machine.request_timeout(),
                ))),
                // A supervisor on another Machine: the cluster carries it.
                Err(e) => match self.machine.remote_for(&point) {
                    Some(remote) => Ok(futures::future::Either::Right(remote_call(
                        &**remote,
                        caller.clone(),
                        point.clone(),
                        ControlKind::Supervisor(call),
                        self.machine.request_timeout(),
                    ))),
                    None => Err(SupervisorError::from(e)),
                },
            },
        };
        async move {
            match sent?.await? {
                ControlReply::Supervisor(SupervisorReply::Forbidden) => {
                    Err(SupervisorError::Forbidden {
                        caller,
                        supervisor: point,
                    })
                }
                ControlReply::Supervisor(SupervisorReply::NotASupervisor)
                | ControlReply::Driver(_) => Err(SupervisorError::NotASupervisor { point }),
                ControlReply::Supervisor(reply) => Ok(reply),
            }
        }
    }

    /// The children in start order, each with its [`ChildRef`] when running.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Forbidden`] unless called by the Machine or an
    /// ancestor of the supervisor; [`SupervisorError::NotASupervisor`];
    /// [`SupervisorError::Wave`] if the supervisor cannot be reached or
    /// does not answer within the Machine's request timeout.
    ///
    /// # Cancel safety
    ///
    /// Every call here is queued when the method is called; dropping the
    /// future does not withdraw it: the supervisor still performs it, and
    /// its answer is dropped.
    pub fn which_children(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<ChildInfo<ChildRef>>, SupervisorError>>
           + Send
           + 'static {
        let reply = self.call(Ok(SupervisorCall::WhichChildren));
        async move {
            match reply.await? {
                SupervisorReply::Children(c) => Ok(c),
                other => Err(unexpected(other)),
            }
        }
    }

    /// OTP's `count_children`.
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::which_children`].
    ///
    /// # Cancel safety
    ///
    /// As [`SupervisorRef::which_children`]: queued when called, not
    /// withdrawn by dropping the future.
    pub fn count_children(
        &self,
    ) -> impl std::future::Future<Output = Result<Counts, SupervisorError>> + Send + 'static {
        let reply = self.call(Ok(SupervisorCall::CountChildren));
        async move {
            match reply.await? {
                SupervisorReply::Counts(c) => Ok(c),
                other => Err(unexpected(other)),
            }
        }
    }

    /// Adds a child spec to a static supervisor and starts it.
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::which_children`]; [`SupervisorError::Refused`]
    /// with OTP's reason; [`SupervisorError::Codec`] for a closure
    /// [`ChildStart`] (give it in the supervisor's spec instead).
    ///
    /// # Cancel safety
    ///
    /// As [`SupervisorRef::which_children`]: queued when called, not
    /// withdrawn by dropping the future.
    pub fn start_child(
        &self,
        spec: ChildSpec<ChildStart>,
    ) -> impl std::future::Future<Output = Result<ChildRef, SupervisorError>> + Send + 'static {
        let call = if spec.start.is_closure() {
            Err(CodecError::Encode(
                "a closure start cannot be sent to a supervisor; put it in the supervisor's spec"
                    .into(),
            ))
        } else {
            Ok(SupervisorCall::StartChild(spec))
        };
        started(self.call(call))
    }

    /// Starts a child of a dynamic supervisor from its template, named
    /// `id`, with these arguments.
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::which_children`]; [`SupervisorError::Refused`]
    /// with OTP's reason.
    ///
    /// # Cancel safety
    ///
    /// As [`SupervisorRef::which_children`]: queued when called, not
    /// withdrawn by dropping the future.
    pub fn add_child(
        &self,
        id: impl Into<String>,
        args: impl Into<Body>,
    ) -> impl std::future::Future<Output = Result<ChildRef, SupervisorError>> + Send + 'static {
        started(self.call(Ok(SupervisorCall::AddChild {
            id: id.into(),
            args: args.into(),
        })))
    }

    /// Stops a child; its spec stays (unless it is temporary, or dynamic).
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::which_children`]; [`SupervisorError::Refused`]
    /// with OTP's reason.
    ///
    /// # Cancel safety
    ///
    /// As [`SupervisorRef::which_children`]: queued when called, not
    /// withdrawn by dropping the future.
    pub fn terminate_child(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<(), SupervisorError>> + Send + 'static {
        done(self.call(Ok(SupervisorCall::TerminateChild(id.to_string()))))
    }

    /// Starts a terminated child again from its spec.
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::which_children`]; [`SupervisorError::Refused`]
    /// with OTP's reason.
    ///
    /// # Cancel safety
    ///
    /// As [`SupervisorRef::which_children`]: queued when called, not
    /// withdrawn by dropping the future.
    pub fn restart_child(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<ChildRef, SupervisorError>> + Send + 'static {
        started(self.call(Ok(SupervisorCall::RestartChild(id.to_string()))))
    }

    /// Removes a terminated child's spec.
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::which_children`]; [`SupervisorError::Refused`]
    /// with OTP's reason.
    ///
    /// # Cancel safety
    ///
    /// As [`SupervisorRef::which_children`]: queued when called, not
    /// withdrawn by dropping the future.
    pub fn delete_child(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<(), SupervisorError>> + Send + 'static {
        done(self.call(Ok(SupervisorCall::DeleteChild(id.to_string()))))
    }
}

/// An answer that does not fit the call: only a supervisor of another
/// build could send one.
/// Sends control to `to` on another Machine through `remote`, and waits
/// up to `timeout` for its answer.
fn remote_call(
    remote: &dyn crate::remote::Remote,
    from: Point,
    to: Point,
    kind: ControlKind,
    timeout: std::time::Duration,
) -> impl std::future::Future<Output = Result<ControlReply, WaveError>> + Send + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = Body::encode(&kind).map(|body| {
        remote.control(from, to.clone(), body, crate::remote::Answerer(tx));
    });
    async move {
        if let Err(error) = sent {
            return Err(WaveError::BadMessage { point: to, error });
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) => return Err(WaveError::Stopped { point: to }),
            Err(_) => {
                return Err(WaveError::Timeout {
                    point: to,
                    after: timeout,
                })
            }
        };
        match answer {
            crate::message::Reply::Body(b) => b
                .decode::<ControlReply>()
                .map_err(|error| WaveError::BadReply { point: to, error }),
            crate::message::Reply::Value(_) => Err(WaveError::BadReply {
                point: to,
                error: CodecError::Decode("a typed reply to control".into()),
            }),
        }
    }
}

fn unexpected(reply: SupervisorReply) -> SupervisorError {
    SupervisorError::Codec(CodecError::Decode(format!(
        "unexpected supervisor answer {reply:?}"
    )))
}

async fn started(
    reply: impl std::future::Future<Output = Result<SupervisorReply, SupervisorError>>,
) -> Result<ChildRef, SupervisorError> {
    match reply.await? {
        SupervisorReply::Started(r) => Ok(r?),
        other => Err(unexpected(other)),
    }
}

async fn done(
    reply: impl std::future::Future<Output = Result<SupervisorReply, SupervisorError>>,
) -> Result<(), SupervisorError> {
    match reply.await? {
        SupervisorReply::Done(r) => Ok(r?),
        other => Err(unexpected(other)),
    }
}
