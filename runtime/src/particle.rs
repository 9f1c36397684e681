//! What a user writes to make a kind of actor: the [`Particle`] trait, a
//! [`Handler`] per typed message, and the [`Messages`] a particle declares.
//! (They refer to each other, so they live together.)

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;

use crate::message::{Answer, Incoming, Reply, Value, Want};
use crate::{Body, CodecError, Control, CrashNotice, Ctx, DownNotice, ExitSignal, Message, Wave};

/// What a handler returns on failure. Any error converts into it with `?`;
/// its text becomes the crash reason. Returning one is a crash, like a panic.
pub type ParticleError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A kind of supervised actor, in the spirit of ractor's `Actor`: the
/// particle value is shared by every particle of its Kind and holds no
/// per-particle data; each particle's data is its explicit `State`.
///
/// Each particle handles one wave at a time, in its own task. A panic or an
/// `Err` from `start`, `handle` or `crash_notice` is a crash: the Star
/// restarts the particle (a fresh `start` with the same spawn arguments,
/// same lane, queued waves kept) and its parent gets a [`CrashNotice`]. A
/// child of a supervisor particle (see [`crate::SupervisorSpec`]) is
/// restarted by that supervisor instead, per its strategy; returning an
/// [`crate::ExitReason`] as the error (`Err(ExitReason::Shutdown.into())`)
/// exits with that reason, as Erlang's `exit/1` does.
///
/// ```
/// use hyperverse_runtime::*;
///
/// /// Counts "add" signals; answers "get" requests with the count.
/// struct Counter;
///
/// impl Particle for Counter {
///     type State = u64;
///
///     async fn start(&self, _ctx: &Ctx, args: &Body) -> Result<u64, ParticleError> {
///         Ok(args.as_u64().unwrap_or(0))
///     }
///
///     async fn handle(&self, _ctx: &Ctx, count: &mut u64, wave: Wave) -> Result<Body, ParticleError> {
///         match &*wave.method {
///             "add" => *count += 1,
///             "get" => return Ok(Body::from_u64(*count)),
///             "crash" => return Err("asked to crash".into()),
///             other => return Err(format!("unknown method {other}").into()),
///         }
///         Ok(Body::empty())
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("counter", Counter).build().await.unwrap();
/// let at: Point = "counter".parse().unwrap();
/// machine.spawn(at.clone(), Kind::new("counter"), Body::from_u64(10)).await.unwrap();
/// machine.signal(&at, ("add", Body::empty())).unwrap();
/// let reply = machine.ask(&at, ("get", Body::empty())).await.unwrap();
/// assert_eq!(reply.as_u64(), Some(11));
/// machine.shutdown().await;
/// # }
/// ```
pub trait Particle: Send + Sync + 'static {
    /// The particle's own data, made by `start` and handed to every handler.
    type State: Send + 'static;

    /// True if its `stop` stops its children itself, in an order of its
    /// own (a supervisor: reverse start order, each within its shutdown);
    /// the runtime then stops whatever is left after `stop` returns. By
    /// default children are stopped before `stop` runs.
    const STOPS_OWN_CHILDREN: bool = false;

    /// Makes a fresh state from the spawn arguments; runs at spawn and at every restart.
    fn start(
        &self,
        ctx: &Ctx,
        args: &Body,
    ) -> impl Future<Output = Result<Self::State, ParticleError>> + Send;

    /// The typed messages this particle handles, each with a
    /// [`crate::Handler`]: `messages.on::<Add>().on::<Get>();`. A typed
    /// message of a declared type goes to its handler as the value itself;
    /// a wave whose method is a declared message's is decoded and goes to
    /// the same handler; everything else goes to [`Particle::handle`]. The
    /// default declares none.
    fn messages(messages: &mut Messages<'_, Self>)
    where
        Self: Sized,
    {
        let _ = messages;
    }

    /// Handles one wave (or a typed message of a type not declared in
    /// [`Particle::messages`], encoded). For a request, the returned body
    /// is the reply; for a signal it is dropped. The default refuses every
    /// wave as a crash, as a `gen_server` does a message it has no clause
    /// for: a particle of typed messages only need not write it.
    fn handle(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        wave: Wave,
    ) -> impl Future<Output = Result<Body, ParticleError>> + Send {
        let _ = (ctx, state);
        async move { Err(format!("no handler for method `{}`", wave.method).into()) }
    }

    /// A child crashed (its restart, or the Star giving up on it, is already
    /// decided: see `notice.gave_up`). The default ignores it; a
    /// supervisor-like particle reacts here.
    fn crash_notice(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        notice: CrashNotice,
    ) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let _ = (ctx, state, notice);
        async { Ok(()) }
    }

    /// A particle this one monitors is down (see [`Ctx::monitor`]). The
    /// default ignores it.
    fn down(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        notice: DownNotice,
    ) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let _ = (ctx, state, notice);
        async { Ok(()) }
    }

    /// A linked particle ended and this one traps exits (see
    /// [`Ctx::trap_exits`]); without trapping, an abnormal exit signal
    /// crashes this particle instead and a normal one is ignored. The
    /// default ignores it.
    fn exit_signal(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        signal: ExitSignal,
    ) -> impl Future<Output = Result<(), ParticleError>> + Send {
        let _ = (ctx, state, signal);
        async { Ok(()) }
    }

    /// Trusted control from in-process Rust code, sent with
    /// [`Machine::control`]: a letter of its own kind, which no wave can
    /// produce, whatever its method. For Drivers whose particles take
    /// orders from their host, such as the reply to a WASM guest's ask.
    ///
    /// `control.from` is stamped by the runtime: [`Point::root`] if the
    /// Machine itself sent it (code outside any handler), otherwise the
    /// particle whose handler did. Decide here what to honour from whom.
    /// The returned body answers the sender; an `Err` (or a panic) is a
    /// crash, as in `handle`, and the sender gets
    /// [`WaveError::Crashed`]. The default ignores the control and answers
    /// with an empty body.
    fn control(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        control: Control,
    ) -> impl Future<Output = Result<Body, ParticleError>> + Send {
        let _ = (ctx, state, control);
        async { Ok(Body::empty()) }
    }

    /// The particle is stopping normally (not after a crash).
    fn stop(&self, ctx: &Ctx, state: Self::State) -> impl Future<Output = ()> + Send {
        let _ = (ctx, state);
        async {}
    }
}

/// A particle's handler for one message type, in the spirit of kameo's
/// `Message<M>` and actix's `Handler<M>`.
///
/// Implement it for each message type the particle handles, and name each
/// type in [`Particle::messages`]. Like `handle`, it runs one message at a
/// time with the particle's state; an `Err` (or a panic) is a crash.
///
/// ```
/// use hyperverse_runtime::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Add(u64);
/// impl Message for Add { const METHOD: &'static str = "add"; type Reply = u64; }
///
/// #[derive(Serialize, Deserialize)]
/// struct Get;
/// impl Message for Get { const METHOD: &'static str = "get"; type Reply = u64; }
///
/// struct Counter;
///
/// impl Particle for Counter {
///     type State = u64;
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> { Ok(0) }
///     fn messages(m: &mut Messages<'_, Self>) {
///         m.on::<Add>().on::<Get>();
///     }
/// }
///
/// impl Handler<Add> for Counter {
///     async fn handle_message(&self, _: &Ctx, n: &mut u64, Add(k): Add) -> Result<u64, ParticleError> {
///         *n += k;
///         Ok(*n)
///     }
/// }
///
/// impl Handler<Get> for Counter {
///     async fn handle_message(&self, _: &Ctx, n: &mut u64, _: Get) -> Result<u64, ParticleError> {
///         Ok(*n)
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().kind("counter", Counter).build().await.unwrap();
/// let counter = machine.spawn("counter".parse().unwrap(), "counter".into(), Body::empty()).await.unwrap();
/// assert_eq!(counter.ask(Add(5)).await.unwrap(), 5);
/// counter.signal(Add(2)).unwrap();
/// assert_eq!(counter.ask(Get).await.unwrap(), 7);
/// // Untyped code reaches the same handler by method name, in bytes.
/// let reply = counter.ask(("get", Body::encode(&()).unwrap())).await.unwrap();
/// assert_eq!(reply.decode::<u64>().unwrap(), 7);
/// machine.shutdown().await;
/// # }
/// ```
pub trait Handler<M: Message>: Particle {
    /// Handles one `M`; for an ask, the value returned is the reply.
    fn handle_message(
        &self,
        ctx: &Ctx,
        state: &mut Self::State,
        message: M,
    ) -> impl Future<Output = Result<M::Reply, ParticleError>> + Send;
}

type Handled<'a> = Pin<Box<dyn Future<Output = Result<Answer, ParticleError>> + Send + 'a>>;

/// A typed handler, erased: decodes or unboxes the message, runs the
/// handler, and boxes (for a typed asker) or encodes (for bytes) its reply,
/// or drops it (for a signal).
pub(crate) type Call<P> =
    for<'a> fn(&'a P, &'a Ctx, &'a mut <P as Particle>::State, Incoming, Want) -> Handled<'a>;

pub(crate) fn call<'a, P: Handler<M>, M: Message>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    incoming: Incoming,
    want: Want,
) -> Handled<'a> {
    Box::pin(async move {
        let message: M = match incoming {
            Incoming::Value(v) => match v.downcast::<M>() {
                Ok(m) => m,
                Err(_) => {
                    return Ok(Answer::Undecodable(CodecError::Decode(
                        "a message of another type".into(),
                    )))
                }
            },
            Incoming::Body(body) => match M::decode(&body) {
                Ok(m) => m,
                Err(e) => return Ok(Answer::Undecodable(e)),
            },
        };
        let reply = particle.handle_message(ctx, state, message).await?;
        Ok(match want {
            Want::Nothing => Answer::Done,
            Want::Value => Answer::Reply(Reply::Value(Value::new(reply))),
            Want::Bytes => match M::encode_reply(&reply) {
                Ok(body) => Answer::Reply(Reply::Body(body)),
                Err(e) => Answer::Unencodable(e),
            },
        })
    })
}

/// What a [`Messages`] visit looks for.
pub(crate) enum Key<'k> {
    Type(TypeId),
    Method(&'k str),
}

/// The message types a particle handles, declared in
/// [`Particle::messages`] with [`Messages::on`].
///
/// The declaration is a visit, not a table: the runtime walks it for each
/// typed letter to find the handler (a few comparisons, no allocation and
/// no memory per particle), by type for a typed message, by method for a
/// wave.
pub struct Messages<'k, P: Particle> {
    pub(crate) key: Key<'k>,
    pub(crate) found: Option<Call<P>>,
    pub(crate) methods: Option<&'k mut Vec<&'static str>>,
}

impl<'k, P: Particle> Messages<'k, P> {
    /// Declares that this particle handles `M` (see [`Handler`]). The first
    /// declaration of a type or method wins.
    pub fn on<M: Message>(&mut self) -> &mut Self
    where
        P: Handler<M>,
    {
        if let Some(methods) = self.methods.as_deref_mut() {
            methods.push(M::METHOD);
            return self;
        }
        if self.found.is_none() {
            let hit = match self.key {
                Key::Type(t) => t == TypeId::of::<M>(),
                Key::Method(m) => m == M::METHOD,
            };
            if hit {
                self.found = Some(call::<P, M>);
            }
        }
        self
    }
}

impl<P: Particle> Messages<'_, P> {
    /// The methods of the message types `P` declares, in declaration
    /// order (what a wave must name to reach a typed handler).
    pub fn declared() -> Vec<&'static str> {
        let mut methods = Vec::new();
        let mut visit = Messages::<P> {
            key: Key::Method(""),
            found: None,
            methods: Some(&mut methods),
        };
        P::messages(&mut visit);
        methods
    }
}
