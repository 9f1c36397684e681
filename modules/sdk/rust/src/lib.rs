//! Write a Hyperverse WASM particle in Rust.
//!
//! A guest is a type implementing [`Guest`]; [`export_guest!`] exports the
//! guest ABI's functions (`modules/ABI.md`, version 1: `alloc`, `init`,
//! `handle`, `snapshot`, `restore`, `hv_abi_version`) for it, and a
//! [`Call`] gives `handle` its wave and the host functions (`reply`,
//! `send`, `log`, `now_ms`). Build the guest crate as a `cdylib` for
//! `wasm32-unknown-unknown`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//! [dependencies]
//! hyperverse-guest = { path = "…/modules/sdk/rust" }
//! ```
//!
//! ```sh
//! cargo build --release --target wasm32-unknown-unknown
//! ```
//!
//! On any other target the host functions are a recording fake
//! ([`host::take`]), so a guest's logic, and this crate's glue, are tested
//! with plain `cargo test`.
//!
//! ```
//! use hyperverse_guest::{Call, Guest, Status};
//!
//! /// Counts `add`s; `get` replies the count (8 bytes LE).
//! struct Counter(u64);
//!
//! impl Guest for Counter {
//!     fn init(args: &[u8]) -> Result<Self, Status> {
//!         Ok(Counter(hyperverse_guest::u64_le(args).unwrap_or(0)))
//!     }
//!     fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
//!         match call.method {
//!             "add" => self.0 += 1,
//!             "get" => call.reply(&self.0.to_le_bytes()),
//!             _ => return Err(Status(2)),
//!         }
//!         Ok(())
//!     }
//!     fn snapshot(&self) -> Vec<u8> {
//!         self.0.to_le_bytes().to_vec()
//!     }
//!     fn restore(state: &[u8]) -> Result<Self, Status> {
//!         hyperverse_guest::u64_le(state).map(Counter).ok_or(Status(1))
//!     }
//! }
//!
//! // In the guest crate: hyperverse_guest::export_guest!(Counter);
//! // Here, the glue the macro calls, run on the host:
//! let mut state = None;
//! assert_eq!(hyperverse_guest::glue::init::<Counter>(&mut state, &5u64.to_le_bytes()), 0);
//! assert_eq!(hyperverse_guest::glue::handle(&mut state, b"add", b""), 0);
//! assert_eq!(hyperverse_guest::glue::handle(&mut state, b"get", b""), 0);
//! let calls = hyperverse_guest::host::take();
//! assert_eq!(calls, vec![hyperverse_guest::host::HostCall::Reply(6u64.to_le_bytes().to_vec())]);
//! ```

pub mod glue;
pub mod host;

/// The ABI version this crate implements.
pub const ABI_VERSION: i32 = 1;

/// A call's refusal: a nonzero status the host reports as `GuestStatus`
/// (the particle crashes, and its Star restarts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

/// A particle's code.
pub trait Guest: Sized {
    /// A new incarnation, from its spawn arguments (at spawn and at every
    /// restart).
    ///
    /// # Errors
    ///
    /// A [`Status`]: the start fails.
    fn init(args: &[u8]) -> Result<Self, Status>;

    /// Handles one wave.
    ///
    /// # Errors
    ///
    /// A [`Status`]: the call fails, nothing it sent or replied leaves, and
    /// the particle crashes.
    fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status>;

    /// The state, for a hot reload (the new version's [`Guest::restore`]
    /// gets these bytes).
    fn snapshot(&self) -> Vec<u8>;

    /// A new incarnation from a predecessor's snapshot, instead of `init`.
    ///
    /// # Errors
    ///
    /// A [`Status`]: the particle stays on its old version.
    fn restore(state: &[u8]) -> Result<Self, Status>;
}

/// The wave being handled, and the host functions a handler may call.
#[derive(Debug)]
pub struct Call<'a> {
    /// The wave's method.
    pub method: &'a str,
    /// The wave's body.
    pub body: &'a [u8],
}

impl Call<'_> {
    /// Sets the reply (once per wave; a second is an `AbiViolation`).
    pub fn reply(&mut self, body: &[u8]) {
        host::reply(body);
    }

    /// Queues a signal to Point `to`, sent after the call succeeds (only
    /// to the guest's own subtree, its parent and its grants).
    pub fn send(&mut self, to: &str, method: &str, body: &[u8]) {
        host::send(to, method, body);
    }

    /// Logs a message (0 error … 3 debug).
    pub fn log(&mut self, level: i32, message: &str) {
        host::log(level, message);
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        host::now_ms()
    }
}

/// A little-endian u64 from the first 8 bytes, if there are 8.
pub fn u64_le(bytes: &[u8]) -> Option<u64> {
    bytes.get(..8).map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    })
}

/// Exports the guest ABI's functions for `$guest` (a type implementing
/// [`Guest`]). Use it once, in the guest crate's root.
#[macro_export]
macro_rules! export_guest {
    ($guest:ty) => {
        mod __hyperverse_guest_exports {
            use super::*;

            static mut STATE: Option<$guest> = None;
            static mut ARENA: $crate::glue::Arena = $crate::glue::Arena::new();

            // SAFETY (for every `static mut` access below): a wasm32 guest
            // is single-threaded and the host makes one call at a time.
            #[allow(static_mut_refs)]
            fn state() -> &'static mut Option<$guest> {
                unsafe { &mut STATE }
            }
            #[allow(static_mut_refs)]
            fn arena() -> &'static mut $crate::glue::Arena {
                unsafe { &mut ARENA }
            }

            #[no_mangle]
            pub extern "C" fn hv_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[no_mangle]
            pub extern "C" fn alloc(len: i32) -> i32 {
                arena().alloc(len as u32 as usize) as usize as i32
            }

            #[no_mangle]
            pub unsafe extern "C" fn init(ptr: i32, len: i32) -> i32 {
                let args = unsafe { $crate::glue::bytes(ptr, len) };
                let status = $crate::glue::init::<$guest>(state(), args);
                arena().reset();
                status
            }

            #[no_mangle]
            pub unsafe extern "C" fn handle(
                method_ptr: i32,
                method_len: i32,
                body_ptr: i32,
                body_len: i32,
            ) -> i32 {
                let method = unsafe { $crate::glue::bytes(method_ptr, method_len) };
                let body = unsafe { $crate::glue::bytes(body_ptr, body_len) };
                let status = $crate::glue::handle(state(), method, body);
                arena().reset();
                status
            }

            #[no_mangle]
            pub extern "C" fn snapshot() -> i64 {
                $crate::glue::snapshot(state(), arena())
            }

            #[no_mangle]
            pub unsafe extern "C" fn restore(ptr: i32, len: i32) -> i32 {
                let bytes = unsafe { $crate::glue::bytes(ptr, len) };
                let status = $crate::glue::restore::<$guest>(state(), bytes);
                arena().reset();
                status
            }
        }
    };
}
