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
//! A particle handles a message type by implementing [`crate::Handler`] for
//! it and naming it in [`crate::Particle::messages`] (see `handler`). A wave whose method is a
//! registered message's (from a WASM guest, from untyped code, later from
//! another Machine) is decoded and handled by the same typed handler; any
//! other wave goes to [`crate::Particle::handle`], so both kinds of handler
//! live in one particle.

use std::any::Any;

use serde::{de::DeserializeOwned, Serialize};

use crate::{Body, CodecError};

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

/// A typed handler's outcome: its reply (as the asker wants it), or the
/// message could not be read (answered with an error; no crash).
pub(crate) enum Answer {
    Reply(Reply),
    Undecodable(CodecError),
}
