//! The host functions (imports from `"hv"`), as thin shims over the ABI's
//! raw signatures: slices in, the host's `i32`/`i64` results out. The typed
//! layer (tags, refusals, retrying a buffer that was too small) is
//! [`crate::Call`]'s, so that it is the same code on wasm32 and in tests.
//!
//! On wasm32 these are the host's imports. Anywhere else they are a
//! recording fake: each call is recorded for [`take`], and what the
//! queries and tagged calls answer is scripted with [`fake`]. That is what
//! lets a guest's logic, and this crate's glue, be tested with plain
//! `cargo test` (the wasm32 target need not be installed).
//!
//! `RUSTFLAGS="--cfg hv_wasm_imports" cargo check -p hyperverse-guest`
//! type-checks the wasm32 imports on the host, without the wasm32 target
//! (it cannot link: the imports exist only in a WASM host).

#[cfg(any(target_arch = "wasm32", hv_wasm_imports))]
pub use real::*;

#[cfg(not(any(target_arch = "wasm32", hv_wasm_imports)))]
pub use fake::*;

#[cfg(any(target_arch = "wasm32", hv_wasm_imports))]
mod real {
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
            // `self` is a keyword in Rust: the import keeps the ABI's name.
            #[link_name = "self"]
            pub fn self_point(ptr: *mut u8, cap: i32) -> i32;
            pub fn parent(ptr: *mut u8, cap: i32) -> i32;
            pub fn restarts() -> i32;
            pub fn ask(
                to: *const u8,
                to_len: i32,
                method: *const u8,
                method_len: i32,
                body: *const u8,
                body_len: i32,
                timeout_ms: i32,
            ) -> i64;
            pub fn spawn(
                name: *const u8,
                name_len: i32,
                kind: *const u8,
                kind_len: i32,
                args: *const u8,
                args_len: i32,
                flags: i32,
            ) -> i64;
            pub fn stop(point: *const u8, point_len: i32) -> i64;
            pub fn timer(
                delay_ms: i32,
                method: *const u8,
                method_len: i32,
                body: *const u8,
                body_len: i32,
            ) -> i64;
            pub fn crash(code: i32, msg: *const u8, msg_len: i32);
        }
    }

    // SAFETY (for every call below): each pointer and length is a live
    // slice (or, for `self`/`parent`, a live mutable one whose length is
    // the capacity); the host copies or writes at once and keeps nothing.

    /// `hv.send`: queues a signal to `to` (see [`crate::Call::send`]).
    pub fn send(to: &str, method: &str, body: &[u8]) -> i32 {
        unsafe {
            imports::send(
                to.as_ptr(),
                to.len() as i32,
                method.as_ptr(),
                method.len() as i32,
                body.as_ptr(),
                body.len() as i32,
            )
        }
    }

    /// `hv.reply`: sets the reply (see [`crate::Call::reply`]).
    pub fn reply(body: &[u8]) {
        unsafe { imports::reply(body.as_ptr(), body.len() as i32) }
    }

    /// `hv.log` (see [`crate::Call::log`]).
    pub fn log(level: i32, message: &str) {
        unsafe { imports::log(level, message.as_ptr(), message.len() as i32) }
    }

    /// `hv.now_ms`: wall-clock milliseconds.
    pub fn now_ms() -> i64 {
        unsafe { imports::now_ms() }
    }

    /// `hv.self`: writes the particle's Point into `buf` if it fits;
    /// returns its full length either way.
    pub fn self_point(buf: &mut [u8]) -> i32 {
        unsafe { imports::self_point(buf.as_mut_ptr(), buf.len() as i32) }
    }

    /// `hv.parent`: as [`self_point`] for the parent; -1 if none.
    pub fn parent(buf: &mut [u8]) -> i32 {
        unsafe { imports::parent(buf.as_mut_ptr(), buf.len() as i32) }
    }

    /// `hv.restarts`.
    pub fn restarts() -> i32 {
        unsafe { imports::restarts() }
    }

    /// `hv.ask`: a tag (> 0) or a refusal (< 0).
    pub fn ask(to: &str, method: &str, body: &[u8], timeout_ms: u32) -> i64 {
        unsafe {
            imports::ask(
                to.as_ptr(),
                to.len() as i32,
                method.as_ptr(),
                method.len() as i32,
                body.as_ptr(),
                body.len() as i32,
                timeout_ms as i32,
            )
        }
    }

    /// `hv.spawn`: a tag (> 0) or a refusal (< 0).
    pub fn spawn(name: &str, kind: &str, args: &[u8], flags: i32) -> i64 {
        unsafe {
            imports::spawn(
                name.as_ptr(),
                name.len() as i32,
                kind.as_ptr(),
                kind.len() as i32,
                args.as_ptr(),
                args.len() as i32,
                flags,
            )
        }
    }

    /// `hv.stop`: a tag (> 0) or a refusal (< 0).
    pub fn stop(point: &str) -> i64 {
        unsafe { imports::stop(point.as_ptr(), point.len() as i32) }
    }

    /// `hv.timer`: an id (> 0) or a refusal (< 0).
    pub fn timer(delay_ms: u32, method: &str, body: &[u8]) -> i64 {
        unsafe {
            imports::timer(
                delay_ms as i32,
                method.as_ptr(),
                method.len() as i32,
                body.as_ptr(),
                body.len() as i32,
            )
        }
    }

    /// `hv.crash`: the host ends the call as a crash, so this never
    /// returns; should a host ever return, the guest traps instead of
    /// running on past a crash it asked for.
    pub fn crash(code: i32, message: &str) -> ! {
        unsafe { imports::crash(code, message.as_ptr(), message.len() as i32) };
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        unreachable!("hv.crash returned")
    }
}

#[cfg(not(any(target_arch = "wasm32", hv_wasm_imports)))]
mod fake {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A host function call, as recorded off wasm32.
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
        /// `hv.self`, with the room the guest gave (recorded so that a
        /// test sees a too-small buffer being retried).
        SelfPoint {
            /// The buffer's capacity.
            cap: usize,
        },
        /// `hv.parent`, with the room the guest gave.
        Parent {
            /// The buffer's capacity.
            cap: usize,
        },
        /// `hv.restarts`.
        Restarts,
        /// `hv.ask`.
        Ask {
            /// The address.
            to: String,
            /// The method.
            method: String,
            /// The body.
            body: Vec<u8>,
            /// The timeout (0: the host's default).
            timeout_ms: u32,
        },
        /// `hv.spawn`.
        Spawn {
            /// The child's name.
            name: String,
            /// Its Kind.
            kind: String,
            /// Its spawn arguments.
            args: Vec<u8>,
            /// The ABI's flags (bit 0: temporary).
            flags: i32,
        },
        /// `hv.stop`.
        Stop {
            /// The Point to stop.
            point: String,
        },
        /// `hv.timer`.
        Timer {
            /// The delay.
            delay_ms: u32,
            /// The wave's method.
            method: String,
            /// The wave's body.
            body: Vec<u8>,
        },
        /// `hv.crash`.
        Crash {
            /// The code.
            code: i32,
            /// The message.
            message: String,
        },
    }

    /// What the fake host answers, per thread: a test scripts it with
    /// [`fake`] before driving a guest.
    ///
    /// ```
    /// use hyperverse_guest::host::{self, HostCall};
    ///
    /// host::fake(|f| {
    ///     f.me = "app:sup".into();
    ///     f.answers.push_back(-2); // the next tagged call is refused
    /// });
    /// let mut buf = [0u8; 16];
    /// assert_eq!(host::self_point(&mut buf), 7);
    /// assert_eq!(&buf[..7], b"app:sup");
    /// assert_eq!(host::ask("app:sup:w", "get", b"", 0), -2);
    /// assert_eq!(host::ask("app:sup:w", "get", b"", 0), 1, "then fresh tags");
    /// assert_eq!(host::take().len(), 3);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Fake {
        /// What `hv.self` writes.
        pub me: String,
        /// What `hv.parent` writes (`None`: it returns -1).
        pub parent: Option<String>,
        /// What `hv.restarts` returns.
        pub restarts: i32,
        /// What the next tagged calls (`ask`, `spawn`, `stop`, `timer`)
        /// return, in order, whichever they are: a tag, or a refusal code
        /// such as -2. When it is empty they get fresh tags.
        pub answers: VecDeque<i64>,
        /// The next fresh tag (tags and timer ids share one counter, as on
        /// the host).
        pub next_tag: i64,
    }

    impl Default for Fake {
        fn default() -> Self {
            Fake {
                me: String::new(),
                parent: None,
                restarts: 0,
                answers: VecDeque::new(),
                next_tag: 1,
            }
        }
    }

    impl Fake {
        fn answer(&mut self) -> i64 {
            self.answers.pop_front().unwrap_or_else(|| {
                let tag = self.next_tag;
                self.next_tag += 1;
                tag
            })
        }
    }

    /// What the guest asked to crash with: the payload of the panic the
    /// fake `hv.crash` raises, since on the host there is no host to end
    /// the call. [`catch_crash`] turns it back into a value.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Crashed {
        /// The code.
        pub code: i32,
        /// The message.
        pub message: String,
    }

    thread_local! {
        static CALLS: RefCell<Vec<HostCall>> = const { RefCell::new(Vec::new()) };
        static FAKE: RefCell<Fake> = RefCell::new(Fake::default());
    }

    /// The calls recorded on this thread since the last `take`.
    pub fn take() -> Vec<HostCall> {
        CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }

    /// Scripts (or reads) this thread's fake host; see [`Fake`].
    pub fn fake<R>(f: impl FnOnce(&mut Fake) -> R) -> R {
        FAKE.with(|fake| f(&mut fake.borrow_mut()))
    }

    /// Forgets the recorded calls and the script (back to [`Fake::default`]).
    pub fn reset() {
        take();
        fake(|f| *f = Fake::default());
    }

    /// Runs `f`, turning a fake `hv.crash` inside it into `Err`; any other
    /// panic goes on unwinding.
    ///
    /// ```
    /// use hyperverse_guest::host::{self, Crashed};
    ///
    /// let out = host::catch_crash(|| host::crash(42, "asked to die"));
    /// assert_eq!(out, Err(Crashed { code: 42, message: "asked to die".into() }));
    /// assert_eq!(host::catch_crash(|| 7), Ok(7));
    /// ```
    ///
    /// # Errors
    ///
    /// The [`Crashed`] that `f` crashed with.
    pub fn catch_crash<R>(f: impl FnOnce() -> R) -> Result<R, Crashed> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => Ok(r),
            Err(payload) => match payload.downcast::<Crashed>() {
                Ok(crashed) => Err(*crashed),
                Err(other) => std::panic::resume_unwind(other),
            },
        }
    }

    fn record(call: HostCall) {
        CALLS.with(|c| c.borrow_mut().push(call));
    }

    /// The host's `write if it fits, return the length` rule.
    fn write_text(text: &str, buf: &mut [u8]) -> i32 {
        if let Some(room) = buf.get_mut(..text.len()) {
            room.copy_from_slice(text.as_bytes());
        }
        text.len() as i32
    }

    /// `hv.send` (recorded; returns 0).
    pub fn send(to: &str, method: &str, body: &[u8]) -> i32 {
        record(HostCall::Send {
            to: to.into(),
            method: method.into(),
            body: body.to_vec(),
        });
        0
    }

    /// `hv.reply` (recorded).
    pub fn reply(body: &[u8]) {
        record(HostCall::Reply(body.to_vec()));
    }

    /// `hv.log` (recorded).
    pub fn log(level: i32, message: &str) {
        record(HostCall::Log {
            level,
            message: message.into(),
        });
    }

    /// `hv.now_ms`: the host's clock (not recorded).
    pub fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// `hv.self`: [`Fake::me`], written if it fits; its length.
    pub fn self_point(buf: &mut [u8]) -> i32 {
        record(HostCall::SelfPoint { cap: buf.len() });
        fake(|f| write_text(&f.me, buf))
    }

    /// `hv.parent`: [`Fake::parent`], written if it fits; its length, or
    /// -1 if none.
    pub fn parent(buf: &mut [u8]) -> i32 {
        record(HostCall::Parent { cap: buf.len() });
        fake(|f| f.parent.as_deref().map_or(-1, |p| write_text(p, buf)))
    }

    /// `hv.restarts`: [`Fake::restarts`].
    pub fn restarts() -> i32 {
        record(HostCall::Restarts);
        fake(|f| f.restarts)
    }

    /// `hv.ask` (recorded): the next answer.
    pub fn ask(to: &str, method: &str, body: &[u8], timeout_ms: u32) -> i64 {
        record(HostCall::Ask {
            to: to.into(),
            method: method.into(),
            body: body.to_vec(),
            timeout_ms,
        });
        fake(Fake::answer)
    }

    /// `hv.spawn` (recorded): the next answer.
    pub fn spawn(name: &str, kind: &str, args: &[u8], flags: i32) -> i64 {
        record(HostCall::Spawn {
            name: name.into(),
            kind: kind.into(),
            args: args.to_vec(),
            flags,
        });
        fake(Fake::answer)
    }

    /// `hv.stop` (recorded): the next answer.
    pub fn stop(point: &str) -> i64 {
        record(HostCall::Stop {
            point: point.into(),
        });
        fake(Fake::answer)
    }

    /// `hv.timer` (recorded): the next answer.
    pub fn timer(delay_ms: u32, method: &str, body: &[u8]) -> i64 {
        record(HostCall::Timer {
            delay_ms,
            method: method.into(),
            body: body.to_vec(),
        });
        fake(Fake::answer)
    }

    /// `hv.crash` (recorded), then a panic whose payload is [`Crashed`]:
    /// like the host, it never returns to the guest; [`catch_crash`]
    /// catches it.
    pub fn crash(code: i32, message: &str) -> ! {
        record(HostCall::Crash {
            code,
            message: message.into(),
        });
        std::panic::panic_any(Crashed {
            code,
            message: message.into(),
        })
    }
}
