//! The host functions (imports from `"hv"`). On wasm32 they are the
//! host's; anywhere else they record what a guest called, for tests
//! ([`take`]).

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "hv")]
    extern "C" {
        pub fn send(
            to: *const u8,
            to_len: i32,
            method: *const u8,
            method_len: i32,
            body: *const u8,
            body_len: i32,
        ) -> i32;
        pub fn reply(ptr: *const u8, len: i32);
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn now_ms() -> i64;
    }
}

/// Queues a signal to `to` (see [`crate::Call::send`]).
#[cfg(target_arch = "wasm32")]
pub fn send(to: &str, method: &str, body: &[u8]) {
    // SAFETY: each pointer and length is a live slice; the host copies at once.
    unsafe {
        imports::send(
            to.as_ptr(),
            to.len() as i32,
            method.as_ptr(),
            method.len() as i32,
            body.as_ptr(),
            body.len() as i32,
        );
    }
}

/// Sets the reply (see [`crate::Call::reply`]).
#[cfg(target_arch = "wasm32")]
pub fn reply(body: &[u8]) {
    // SAFETY: a live slice; the host copies at once.
    unsafe { imports::reply(body.as_ptr(), body.len() as i32) }
}

/// Logs (see [`crate::Call::log`]).
#[cfg(target_arch = "wasm32")]
pub fn log(level: i32, message: &str) {
    // SAFETY: a live slice; the host copies at once.
    unsafe { imports::log(level, message.as_ptr(), message.len() as i32) }
}

/// Wall-clock milliseconds.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> i64 {
    // SAFETY: no arguments.
    unsafe { imports::now_ms() }
}

/// A host function call, as recorded off wasm32.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    /// `hv.reply`.
    Reply(Vec<u8>),
    /// `hv.send`.
    Send {
        /// The address.
        to: String,
        /// The method.
        method: String,
        /// The body.
        body: Vec<u8>,
    },
    /// `hv.log`.
    Log {
        /// The level.
        level: i32,
        /// The message.
        message: String,
    },
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static CALLS: std::cell::RefCell<Vec<HostCall>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The calls recorded on this thread since the last `take`.
#[cfg(not(target_arch = "wasm32"))]
pub fn take() -> Vec<HostCall> {
    CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

#[cfg(not(target_arch = "wasm32"))]
fn record(call: HostCall) {
    CALLS.with(|c| c.borrow_mut().push(call));
}

/// Queues a signal to `to` (recorded).
#[cfg(not(target_arch = "wasm32"))]
pub fn send(to: &str, method: &str, body: &[u8]) {
    record(HostCall::Send {
        to: to.into(),
        method: method.into(),
        body: body.to_vec(),
    });
}

/// Sets the reply (recorded).
#[cfg(not(target_arch = "wasm32"))]
pub fn reply(body: &[u8]) {
    record(HostCall::Reply(body.to_vec()));
}

/// Logs (recorded).
#[cfg(not(target_arch = "wasm32"))]
pub fn log(level: i32, message: &str) {
    record(HostCall::Log {
        level,
        message: message.into(),
    });
}

/// Wall-clock milliseconds (the host's clock).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
