//! What `signal` and `ask` take, and what a refused send hands back.
//!
//! Every handle (the [`crate::Machine`], a particle's [`crate::Ctx`], a
//! [`crate::ParticleRef`]) sends the same two things: a typed
//! [`Message`], or an untyped `(method, body)` pair for dynamic use and
//! WASM particles. [`Sendable`] is that choice, sealed: the runtime alone
//! turns either into a letter, with a sender it stamps itself.

use std::fmt;

use crate::message::{Described, Reply, Value};
use crate::{Body, CodecError, Message, Method, Point, Wave};

/// A letter's content before the runtime addresses and stamps it.
pub struct Parcel {
    pub(crate) method: Method,
    pub(crate) content: Content,
}

impl Parcel {
    /// The parcel's bytes, for a wave that leaves the process: a typed
    /// message is encoded here (only here: in-process it travels as
    /// itself).
    pub(crate) fn encoded(&self) -> Result<Body, CodecError> {
        match &self.content {
            Content::Body(b) => Ok(b.clone()),
            Content::Value(v, vt) => (vt.encode)(v.as_any()),
        }
    }
}

/// A wave's body, or a typed message's value.
pub(crate) enum Content {
    Body(Body),
    Value(Value, &'static crate::message::MessageVt),
}

pub(crate) mod sealed {
    use super::*;

    /// Seals [`Sendable`]: only the runtime's two shapes of message.
    pub trait Sealed: Sized {
        /// The content of the letter to send.
        fn parcel(self) -> Parcel;
        /// What a refused parcel hands back to its sender.
        fn back(parcel: Parcel, from: Point, to: Point) -> <Self as Sendable>::Back
        where
            Self: Sendable;
        /// Opens the answer to an ask.
        fn open(reply: Reply) -> Result<<Self as Sendable>::Reply, CodecError>
        where
            Self: Sendable;
    }
}

/// What `signal` and `ask` send: a typed [`Message`] (its reply is
/// `M::Reply`; refused, it comes back as itself) or an untyped
/// `(method, body)` pair (its reply is a [`Body`]; refused, it comes back as
/// the [`Wave`] the runtime made of it). Sealed: these are the only two.
///
/// ```
/// use hyperverse_runtime::{Body, Sendable};
///
/// fn sendable<S: Sendable>(_: S) {}
/// sendable(("get", Body::empty()));
/// sendable((String::from("put"), vec![1u8, 2, 3]));
/// ```
pub trait Sendable: sealed::Sealed + Send + 'static {
    /// The answer an ask of it returns.
    type Reply: Send + 'static;
    /// What a refused send hands back.
    type Back: Send + 'static;
}

impl<M: Message> sealed::Sealed for M {
    #[inline]
    fn parcel(self) -> Parcel {
        Parcel {
            method: Method::from(M::METHOD),
            content: Content::Value(Value::new(self), &<M as Described>::VT),
        }
    }

    fn back(parcel: Parcel, _: Point, _: Point) -> <Self as Sendable>::Back {
        match parcel.content {
            Content::Value(v, _) => v
                .downcast::<M>()
                .unwrap_or_else(|_| unreachable!("a parcel of M holds an M")),
            Content::Body(_) => unreachable!("a parcel of M holds an M"),
        }
    }

    fn open(reply: Reply) -> Result<<Self as Sendable>::Reply, CodecError> {
        match reply {
            Reply::Value(v) => v
                .downcast::<M::Reply>()
                .map_err(|_| CodecError::Decode("a reply of another type".into())),
            Reply::Body(body) => M::decode_reply(&body),
        }
    }
}

impl<M: Message> Sendable for M {
    type Reply = M::Reply;
    type Back = M;
}

impl<A, B> sealed::Sealed for (A, B)
where
    A: Into<Method> + Send + 'static,
    B: Into<Body> + Send + 'static,
{
    #[inline]
    fn parcel(self) -> Parcel {
        Parcel {
            method: self.0.into(),
            content: Content::Body(self.1.into()),
        }
    }

    fn back(parcel: Parcel, from: Point, to: Point) -> <Self as Sendable>::Back {
        let body = match parcel.content {
            Content::Body(b) => b,
            Content::Value(..) => unreachable!("a parcel of a (method, body) pair holds a body"),
        };
        Wave::signal(from, to, parcel.method, body)
    }

    fn open(reply: Reply) -> Result<<Self as Sendable>::Reply, CodecError> {
        match reply {
            Reply::Body(body) => Ok(body),
            Reply::Value(_) => Err(CodecError::Decode("a typed reply to an untyped ask".into())),
        }
    }
}

impl<A, B> Sendable for (A, B)
where
    A: Into<Method> + Send + 'static,
    B: Into<Body> + Send + 'static,
{
    type Reply = Body;
    type Back = Wave;
}

/// A send the runtime refused, with what was sent handed back (as tokio's
/// `SendError<T>`): the typed message itself, or the wave made of an
/// untyped one.
///
/// ```
/// use hyperverse_runtime::*;
/// # #[tokio::main] async fn main() {
/// let machine = Machine::standalone().build().await.unwrap();
/// let nowhere: Point = "nowhere".parse().unwrap();
/// let refused = machine.signal(&nowhere, ("ping", "hello")).unwrap_err();
/// assert!(matches!(refused.error(), WaveError::NoSuchParticle { .. }));
/// assert_eq!(refused.into_inner().body.as_bytes(), b"hello");
/// # }
/// ```
pub struct SendError<T> {
    error: crate::WaveError,
    back: T,
}

impl<T> SendError<T> {
    pub(crate) fn new(error: crate::WaveError, back: T) -> Self {
        SendError { error, back }
    }

    /// Why it was refused.
    pub fn error(&self) -> &crate::WaveError {
        &self.error
    }

    /// What was sent, handed back.
    pub fn into_inner(self) -> T {
        self.back
    }

    /// Both parts.
    pub fn into_parts(self) -> (crate::WaveError, T) {
        (self.error, self.back)
    }
}

impl<T> From<SendError<T>> for crate::WaveError {
    fn from(e: SendError<T>) -> Self {
        e.error
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The letter that carries `parcel` from `from` to `to`; a request if it
/// has an answer channel.
#[inline]
pub(crate) fn letter(
    parcel: Parcel,
    from: Point,
    to: Point,
    reply: Option<crate::lane::ReplyTx>,
) -> crate::lane::Letter {
    use crate::lane::{Letter, Typed};
    match parcel.content {
        Content::Body(body) => match reply {
            None => Letter::Wave(Wave::signal(from, to, parcel.method, body)),
            Some(tx) => Letter::Request(Wave::request(from, to, parcel.method, body), tx),
        },
        Content::Value(value, vt) => Letter::Typed(Typed {
            from,
            to,
            value,
            vt,
            reply,
        }),
    }
}

/// A refused letter made by [`letter`], back as what was sent: its parcel,
/// sender and target.
pub(crate) fn unletter(letter: crate::lane::Letter) -> (Parcel, Point, Point) {
    use crate::lane::Letter;
    match letter {
        Letter::Wave(w) | Letter::Request(w, _) => (
            Parcel {
                method: w.method,
                content: Content::Body(w.body),
            },
            w.from,
            w.to,
        ),
        Letter::Typed(t) => (
            Parcel {
                method: Method::from(t.vt.method),
                content: Content::Value(t.value, t.vt),
            },
            t.from,
            t.to,
        ),
        _ => unreachable!("only waves and typed messages are sent as parcels"),
    }
}

/// What a refused `S` hands back.
pub(crate) fn refused<S: Sendable>(
    error: crate::WaveError,
    letter: crate::lane::Letter,
) -> SendError<S::Back> {
    let (parcel, from, to) = unletter(letter);
    SendError::new(error, <S as sealed::Sealed>::back(parcel, from, to))
}
