//! What [`crate::export_guest!`]'s exports call: the ABI's calls turned
//! into [`Guest`] calls and status codes, independent of wasm32 so that
//! they are tested on the host.

use crate::{Call, Guest};

/// The status of a `handle` before any `init` (the host never does this).
pub const NOT_STARTED: i32 = 3;
/// The status of a wave whose method is not UTF-8 (the host never sends
/// one).
pub const BAD_METHOD: i32 = 4;

/// The bytes the host hands in (through `alloc`) and the last snapshot:
/// each allocation its own boxed slice, so a pointer stays valid until
/// [`Arena::reset`], which the exports call at the end of each call.
#[derive(Debug, Default)]
pub struct Arena {
    chunks: Vec<Box<[u8]>>,
    snapshot: Vec<u8>,
}

impl Arena {
    /// An empty arena.
    pub const fn new() -> Self {
        Arena {
            chunks: Vec::new(),
            snapshot: Vec::new(),
        }
    }

    /// `len` writable bytes, valid until the next [`Arena::reset`].
    pub fn alloc(&mut self, len: usize) -> *mut u8 {
        let mut chunk = vec![0u8; len].into_boxed_slice();
        let at = chunk.as_mut_ptr();
        self.chunks.push(chunk);
        at
    }

    /// Frees what was allocated (the snapshot stays until the next one).
    pub fn reset(&mut self) {
        self.chunks.clear();
    }

    /// How many allocations are live.
    pub fn live(&self) -> usize {
        self.chunks.len()
    }
}

/// The bytes at `ptr..ptr + len` of the guest's memory.
///
/// # Safety
///
/// Only on wasm32, for a range the host wrote (it checks ranges against
/// the memory before calling).
pub unsafe fn bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if len <= 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as u32 as usize) }
}

/// A status that is a refusal: never 0, whatever the guest gave.
fn refusal(status: i32) -> i32 {
    if status == 0 {
        1
    } else {
        status
    }
}

/// `init`: a new incarnation in `state`.
pub fn init<G: Guest>(state: &mut Option<G>, args: &[u8]) -> i32 {
    match G::init(args) {
        Ok(g) => {
            *state = Some(g);
            0
        }
        Err(s) => refusal(s.0),
    }
}

/// `handle`: one wave.
pub fn handle<G: Guest>(state: &mut Option<G>, method: &[u8], body: &[u8]) -> i32 {
    let Some(guest) = state.as_mut() else {
        return NOT_STARTED;
    };
    let Ok(method) = core::str::from_utf8(method) else {
        return BAD_METHOD;
    };
    match guest.handle(&mut Call { method, body }) {
        Ok(()) => 0,
        Err(s) => refusal(s.0),
    }
}

/// `snapshot`: the state's bytes, kept in `arena` until the next snapshot,
/// as the packed `(ptr << 32) | len` the ABI returns.
pub fn snapshot<G: Guest>(state: &mut Option<G>, arena: &mut Arena) -> i64 {
    arena.snapshot = state.as_ref().map(G::snapshot).unwrap_or_default();
    pack(
        arena.snapshot.as_ptr() as usize as u32,
        arena.snapshot.len() as u32,
    )
}

/// `restore`: a new incarnation from a snapshot, in `state`.
pub fn restore<G: Guest>(state: &mut Option<G>, bytes: &[u8]) -> i32 {
    match G::restore(bytes) {
        Ok(g) => {
            *state = Some(g);
            0
        }
        Err(s) => refusal(s.0),
    }
}

/// The ABI's packed pointer and length.
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{self, HostCall};
    use crate::Status;

    /// Echoes, sends to its parent, refuses `fail`.
    #[derive(Debug, PartialEq)]
    struct Echo(u32);

    impl Guest for Echo {
        fn init(args: &[u8]) -> Result<Self, Status> {
            if args == b"refuse" {
                return Err(Status(0)); // a refusal, however it is spelled
            }
            Ok(Echo(0))
        }
        fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
            self.0 += 1;
            match call.method {
                "fail" => Err(Status(7)),
                "tell" => {
                    call.send("parent", "told", call.body);
                    call.log(2, "told");
                    Ok(())
                }
                _ => {
                    let body = call.body.to_vec();
                    call.reply(&body);
                    Ok(())
                }
            }
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.to_le_bytes().to_vec()
        }
        fn restore(state: &[u8]) -> Result<Self, Status> {
            let b: [u8; 4] = state.try_into().map_err(|_| Status(9))?;
            Ok(Echo(u32::from_le_bytes(b)))
        }
    }

    #[test]
    fn calls_become_guest_calls_and_statuses() {
        host::take();
        let mut state: Option<Echo> = None;
        assert_eq!(handle(&mut state, b"x", b""), NOT_STARTED);
        assert_eq!(
            init(&mut state, b"refuse"),
            1,
            "status 0 is still a refusal"
        );
        assert_eq!(init(&mut state, b""), 0);
        assert_eq!(handle(&mut state, b"ping", b"hi"), 0);
        assert_eq!(handle(&mut state, b"tell", b"x"), 0);
        assert_eq!(handle(&mut state, b"fail", b""), 7);
        assert_eq!(handle(&mut state, &[0xff, 0xfe], b""), BAD_METHOD);
        assert_eq!(
            host::take(),
            vec![
                HostCall::Reply(b"hi".to_vec()),
                HostCall::Send {
                    to: "parent".into(),
                    method: "told".into(),
                    body: b"x".to_vec()
                },
                HostCall::Log {
                    level: 2,
                    message: "told".into()
                },
            ]
        );
        assert_eq!(state, Some(Echo(3)));
    }

    #[test]
    fn snapshots_and_restores_carry_the_state() {
        let mut state = Some(Echo(41));
        let mut arena = Arena::new();
        let packed = snapshot(&mut state, &mut arena);
        assert_eq!(packed & 0xffff_ffff, 4, "the length");
        assert_eq!(arena.snapshot, 41u32.to_le_bytes());
        let mut next: Option<Echo> = None;
        assert_eq!(restore(&mut next, &arena.snapshot.clone()), 0);
        assert_eq!(next, Some(Echo(41)));
        assert_eq!(restore(&mut next, b"bad"), 9);
        assert_eq!(next, Some(Echo(41)), "a failed restore changes nothing");
        assert_eq!(pack(0x1234, 5), 0x1234_0000_0005);
    }

    #[test]
    fn the_arena_keeps_each_allocation_until_reset() {
        let mut a = Arena::new();
        let p = a.alloc(16);
        let q = a.alloc(0);
        // SAFETY: 16 bytes were allocated at p.
        unsafe { p.write_bytes(0xab, 16) };
        assert_ne!(p, q);
        assert_eq!(a.live(), 2);
        // SAFETY: still live.
        assert_eq!(unsafe { *p.add(15) }, 0xab);
        a.reset();
        assert_eq!(a.live(), 0);
    }
}
