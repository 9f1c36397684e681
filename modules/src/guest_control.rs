//! The control letter a WASM particle takes: the outcome of one of its
//! guest's requests.
//!
//! It is trusted control ([`Machine::control`]): no wave can produce
//! one, whatever its method, and the particle honours them only from the
//! Machine itself (ROOT). They never leave the process, so the encoding is
//! a plain tagged layout, decoded strictly (a wrong length is `None`).
//!
//! [`Machine::control`]: hyperverse_runtime::Machine::control

/// A control letter for a WASM particle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuestControl {
    /// The outcome of the guest's request `tag`, made by incarnation
    /// `incarnation` (a later one ignores it): for the guest's `on_reply`.
    Reply {
        incarnation: u64,
        tag: u64,
        status: i32,
        body: Vec<u8>,
    },
}

/// (Tag 1 was a hot reload, which is no longer a letter.)
const REPLY: u8 = 2;

impl GuestControl {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            GuestControl::Reply {
                incarnation,
                tag,
                status,
                body,
            } => {
                let mut out = Vec::with_capacity(21 + body.len());
                out.push(REPLY);
                out.extend_from_slice(&incarnation.to_le_bytes());
                out.extend_from_slice(&tag.to_le_bytes());
                out.extend_from_slice(&status.to_le_bytes());
                out.extend_from_slice(body);
                out
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let (&kind, rest) = bytes.split_first()?;
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?))
        };
        match kind {
            REPLY if rest.len() >= 20 => Some(GuestControl::Reply {
                incarnation: u64_at(0)?,
                tag: u64_at(8)?,
                status: i32::from_le_bytes(rest[16..20].try_into().ok()?),
                body: rest[20..].to_vec(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip_and_anything_else_is_refused() {
        let c = GuestControl::Reply {
            incarnation: 3,
            tag: 9,
            status: -1,
            body: b"why".to_vec(),
        };
        assert_eq!(GuestControl::decode(&c.encode()), Some(c));
        assert_eq!(GuestControl::decode(&[]), None);
        assert_eq!(
            GuestControl::decode(&7u64.to_le_bytes()),
            None,
            "a bare number"
        );
        assert_eq!(
            GuestControl::decode(&[1, 1, 2, 3, 4, 5, 6, 7, 8]),
            None,
            "the old reload"
        );
        assert_eq!(GuestControl::decode(&[REPLY; 20]), None, "too short");
        assert_eq!(GuestControl::decode(&[9; 30]), None);
    }
}
