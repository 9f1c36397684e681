//! Typed messages: what Rust particles send each other instead of a method
//! name and bytes.
//!
//! A [`Message`] is a serde type that names its method and its reply type.
//! Inside one process it travels as the value itself, boxed: no encoding on
//! the way. It is encoded only when it must become bytes (a wave for a
//! particle with no handler of that type, and, with the cluster, a wave
//! leaving the process), with the message's own encoding: bincode 2 unless
//! the type says otherwise.
//!
//! A particle handles a message type by implementing [`Handler`] for it and
//! naming it in [`crate::Particle::messages`]. A wave whose method is a
//! registered message's (from a WASM guest, from untyped code, later from
//! another Machine) is decoded and handled by the same typed handler; any
//! other wave goes to [`crate::Particle::handle`], so both kinds of handler
//! live in one particle.

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;

use serde::{de::DeserializeOwned, Serialize};

use crate::{Body, CodecError, Ctx, Particle, ParticleError};

/// A typed message: its method name, its reply type and its encoding.
///
/// The encoding defaults to bincode 2 for the message and its reply; a
/// type with a wire format of its own overrides the four methods (they
/// must round-trip: `decode(encode(m)) == m`).
///
/// ```
/// use hyperverse_runtime::{Message, Body};
/// use serde::{Deserialize, Serialize};
///
/// /// Adds to a counter; the reply is the new count.
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Add(u64);
///
/// impl Message for Add {
///     const METHOD: &'static str = "add";
///     type Reply = u64;
/// }
///
/// let body = Add(5).encode().unwrap();
/// assert_eq!(Add::decode(&body).unwrap(), Add(5));
/// assert_eq!(Add::decode_reply(&Add::encode_reply(&7).unwrap()).unwrap(), 7);
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// The method it travels under as a wave, and by which a wave from
    /// untyped code (or a guest) finds this message's handler.
    const METHOD: &'static str;
    /// What a handler answers when the message is asked for.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// The message as bytes (bincode 2 by default).
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] if the value cannot be encoded.
    fn encode(&self) -> Result<Body, CodecError> {
        Body::encode(self)
    }

    /// The message from bytes made by [`Message::encode`].
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not a message of this type.
    fn decode(body: &Body) -> Result<Self, CodecError> {
        body.decode()
    }

    /// A reply as bytes.
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] if the value cannot be encoded.
    fn encode_reply(reply: &Self::Reply) -> Result<Body, CodecError> {
        Body::encode(reply)
    }

    /// A reply from bytes made by [`Message::encode_reply`].
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not a reply of this type.
    fn decode_reply(body: &Body) -> Result<Self::Reply, CodecError> {
        body.decode()
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

/// A message value in flight, boxed (its type is known only to its sender
/// and its handler).
pub(crate) type Value = Box<dyn Any + Send>;

/// What a typed letter needs besides its value: its method, and how to
/// encode it if it must become a wave. One static per message type.
pub(crate) struct MessageVt {
    pub(crate) method: &'static str,
    pub(crate) encode: fn(&(dyn Any + Send)) -> Result<Body, CodecError>,
}

fn encode_erased<M: Message>(value: &(dyn Any + Send)) -> Result<Body, CodecError> {
    match value.downcast_ref::<M>() {
        Some(m) => m.encode(),
        None => Err(CodecError::Encode("a message of another type".into())),
    }
}

/// The static description of `M`.
pub(crate) trait Described: Message {
    const VT: MessageVt = MessageVt {
        method: Self::METHOD,
        encode: encode_erased::<Self>,
    };
}

impl<M: Message> Described for M {}

/// A request's answer, as its handler gave it: bytes from an untyped
/// handler (or a guest), the value itself from a typed one.
pub enum Reply {
    /// An encoded reply.
    Body(Body),
    /// A typed handler's reply value, boxed.
    Value(Value),
}

/// What a message arrives as: the value, or bytes to decode.
pub(crate) enum Incoming {
    Value(Value),
    Body(Body),
}

type Handled<'a> = Pin<Box<dyn Future<Output = Result<Answer, ParticleError>> + Send + 'a>>;

/// A typed handler's outcome: its reply (as the asker wants it), or the
/// message could not be read (answered with an error; no crash).
pub(crate) enum Answer {
    Reply(Reply),
    Undecodable(CodecError),
}

/// A typed handler, erased: decodes or unboxes the message, runs the
/// handler, and boxes (for a typed asker) or encodes its reply.
pub(crate) type Call<P> =
    for<'a> fn(&'a P, &'a Ctx, &'a mut <P as Particle>::State, Incoming, bool) -> Handled<'a>;

fn call<'a, P: Handler<M>, M: Message>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    incoming: Incoming,
    boxed_reply: bool,
) -> Handled<'a> {
    Box::pin(async move {
        let message: M = match incoming {
            Incoming::Value(v) => match v.downcast::<M>() {
                Ok(m) => *m,
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
        if boxed_reply {
            Ok(Answer::Reply(Reply::Value(Box::new(reply))))
        } else {
            Ok(match M::encode_reply(&reply) {
                Ok(body) => Answer::Reply(Reply::Body(body)),
                Err(e) => Answer::Undecodable(e),
            })
        }
    })
}

/// What a [`Messages`] visit looks for.
enum Key<'k> {
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
    key: Key<'k>,
    found: Option<Call<P>>,
    methods: Option<&'k mut Vec<&'static str>>,
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

/// The handler `P` declares for a value of type `type_id`.
pub(crate) fn by_type<P: Particle>(type_id: TypeId) -> Option<Call<P>> {
    let mut visit = Messages {
        key: Key::Type(type_id),
        found: None,
        methods: None,
    };
    P::messages(&mut visit);
    visit.found
}

/// The handler `P` declares for waves of `method`.
pub(crate) fn by_method<P: Particle>(method: &str) -> Option<Call<P>> {
    let mut visit = Messages {
        key: Key::Method(method),
        found: None,
        methods: None,
    };
    P::messages(&mut visit);
    visit.found
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
