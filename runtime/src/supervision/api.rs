//! The supervisor API from outside: OTP's `which_children`,
//! `count_children`, `start_child`, `terminate_child`, `restart_child` and
//! `delete_child`, as requests to a supervisor particle.

use hyperverse_supervisors::{ChildInfo, ChildSpec, Counts, SupError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ChildRef, ChildStart};
use crate::{Body, CodecError, Machine, Point, Wave, WaveError};

pub(crate) const WHICH_CHILDREN: &str = "$sup:which_children";
pub(crate) const COUNT_CHILDREN: &str = "$sup:count_children";
pub(crate) const START_CHILD: &str = "$sup:start_child";
pub(crate) const ADD_CHILD: &str = "$sup:add_child";
pub(crate) const TERMINATE_CHILD: &str = "$sup:terminate_child";
pub(crate) const RESTART_CHILD: &str = "$sup:restart_child";
pub(crate) const DELETE_CHILD: &str = "$sup:delete_child";

/// A supervisor API call that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SupervisorError {
    /// The supervisor refused, with OTP's reason (already present, running,
    /// not found, …).
    #[error(transparent)]
    Refused(#[from] SupError),
    /// The supervisor could not be reached, or did not answer.
    #[error(transparent)]
    Wave(#[from] WaveError),
    /// The call or its answer could not be encoded (a closure
    /// [`ChildStart`] cannot cross a wave).
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A handle to a supervisor particle, for OTP's supervisor API.
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
/// assert_eq!(machine.ask(&"app:a".parse()?, "echo", "hi").await?.body.as_bytes(), b"hi");
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

    async fn call<A: Serialize, T: DeserializeOwned>(
        &self,
        method: &'static str,
        arg: &A,
    ) -> Result<T, SupervisorError> {
        let body = Body::encode(arg)?;
        // From inside a particle, the call is that particle's: a supervisor
        // stopping it then knows not to wait for it.
        let from = crate::run::running_point().unwrap_or_else(Point::root);
        let wave = Wave::request(from, self.point.clone(), method, body);
        let reply = self
            .machine
            .request(wave, self.machine.request_timeout())
            .await?;
        Ok(reply.body.decode()?)
    }

    async fn op<A: Serialize, T: DeserializeOwned>(
        &self,
        method: &'static str,
        arg: &A,
    ) -> Result<T, SupervisorError> {
        let r: Result<T, SupError> = self.call(method, arg).await?;
        Ok(r?)
    }

    /// The children in start order, each with its [`ChildRef`] when running.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo<ChildRef>>, SupervisorError> {
        self.call(WHICH_CHILDREN, &()).await
    }

    /// OTP's `count_children`.
    pub async fn count_children(&self) -> Result<Counts, SupervisorError> {
        self.call(COUNT_CHILDREN, &()).await
    }

    /// Adds a child spec to a static supervisor and starts it.
    pub async fn start_child(
        &self,
        spec: ChildSpec<ChildStart>,
    ) -> Result<ChildRef, SupervisorError> {
        self.op(START_CHILD, &spec).await
    }

    /// Starts a child of a dynamic supervisor from its template, named
    /// `id`, with these arguments.
    pub async fn add_child(
        &self,
        id: impl Into<String>,
        args: impl Into<Body>,
    ) -> Result<ChildRef, SupervisorError> {
        self.op(ADD_CHILD, &(id.into(), args.into())).await
    }

    /// Stops a child; its spec stays (unless it is temporary, or dynamic).
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.op(TERMINATE_CHILD, &id).await
    }

    /// Starts a terminated child again from its spec.
    pub async fn restart_child(&self, id: &str) -> Result<ChildRef, SupervisorError> {
        self.op(RESTART_CHILD, &id).await
    }

    /// Removes a terminated child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.op(DELETE_CHILD, &id).await
    }
}
