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

    /// The message from bytes made by [`Message::encode`]. The bytes may
    /// be hostile (any guest or sender can name this method): the default
    /// bounds their depth and the memory they claim (see
    /// [`Body::decode`]); an override must bound them too.
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
///
/// Dropping a message runs its `Drop`: user code, in whichever task drops
/// it (the receiver's, at a stop or a crash; a Star's; the last holder of
/// a lane). A panic there is caught and logged, never unwound into the
/// runtime.
pub struct Value(Option<Box<dyn Any + Send>>);

impl Value {
    pub(crate) fn new<T: Any + Send>(value: T) -> Value {
        Value(Some(Box::new(value)))
    }

    fn inner(&self) -> &(dyn Any + Send) {
        self.0
            .as_deref()
            .expect("a value is only emptied as it is taken")
    }

    /// The value's type.
    pub(crate) fn type_id(&self) -> std::any::TypeId {
        self.inner().type_id()
    }

    /// The value, to encode.
    pub(crate) fn as_any(&self) -> &(dyn Any + Send) {
        self.inner()
    }

    /// Its shallow size, for a lane's byte accounting.
    pub(crate) fn size(&self) -> usize {
        std::mem::size_of_val(self.inner())
    }

    /// The value as a `T`, or itself back.
    pub(crate) fn downcast<T: Any>(mut self) -> Result<T, Value> {
        let boxed = self
            .0
            .take()
            .expect("a value is only emptied as it is taken");
        match boxed.downcast::<T>() {
            Ok(value) => Ok(*value),
            Err(boxed) => Err(Value(Some(boxed))),
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        if let Some(boxed) = self.0.take() {
            let dropped =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(boxed)));
            if dropped.is_err() {
                tracing::error!(target: crate::targets::CRASH, "a message panicked as it was dropped");
            }
        }
    }
}

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

/// What the sender of a message waits for: nothing (a signal), bytes (an
/// untyped ask, or a guest) or the value (a typed ask).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Nothing,
    Bytes,
    Value,
}

/// A typed handler's outcome: its reply (as the asker wants it), nothing
/// (for a signal), or an error answered to the sender, never a crash: the
/// message could not be read, or the reply could not be encoded (the
/// handler ran: the sender must not take it for an unread message).
pub(crate) enum Answer {
    Reply(Reply),
    Done,
    Undecodable(CodecError),
    Unencodable(CodecError),
}
