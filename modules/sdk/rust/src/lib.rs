//! Write a Hyperverse WASM particle in Rust.
//!
//! A guest is a type implementing [`Guest`]; [`export_guest!`] exports the
//! guest ABI's functions for it (`modules/ABI.md`, version 2: `alloc`,
//! `init`, `handle`, `snapshot`, `restore`, `hv_abi_version`, and the
//! callbacks `on_reply` and `on_crash_notice`), and a [`Call`] gives each
//! call the wave (if any) and the host functions: `reply`, `send`, `log`,
//! `now_ms`, and version 2's `ask`, `spawn`, `stop`, `timer`, `me`,
//! `parent`, `restarts` and `crash`. Build the guest crate as a `cdylib`
//! for `wasm32-unknown-unknown`:
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
//! ([`host::take`], scripted with [`host::fake`]), so a guest's logic, and
//! this crate's glue, are tested with plain `cargo test`.
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
//!
//! ## Version 2: asking, children, timers
//!
//! A host function cannot block a guest until another particle answers, so
//! [`Call::ask`], [`Call::spawn`] and [`Call::stop`] only *queue* a request
//! (carried out if the call succeeds) and return a [`Tag`]; the outcome
//! comes later, as a call of its own, to [`Guest::on_reply`] with that
//! tag. Keep what you need to go on in your state, keyed by the tag. A
//! child spawned [`Restart::Temporary`] is the guest's to supervise: its
//! crashes come to [`Guest::on_crash_notice`].
//!
//! ```
//! use hyperverse_guest::{Call, CrashNotice, Guest, Restart, Status};
//!
//! /// Spawns one temporary worker and restarts it whenever it crashes.
//! struct Sup { restarts: u32 }
//!
//! impl Guest for Sup {
//!     fn init(_: &[u8]) -> Result<Self, Status> { Ok(Sup { restarts: 0 }) }
//!     fn started(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
//!         call.spawn("w", "wasm:worker", b"", Restart::Temporary).map_err(|_| Status(2))?;
//!         Ok(())
//!     }
//!     fn handle(&mut self, _: &mut Call<'_>) -> Result<(), Status> { Ok(()) }
//!     fn on_crash_notice(&mut self, call: &mut Call<'_>, _: CrashNotice<'_>) -> Result<(), Status> {
//!         self.restarts += 1;
//!         call.spawn("w", "wasm:worker", b"", Restart::Temporary).map_err(|_| Status(2))?;
//!         Ok(())
//!     }
//!     fn snapshot(&self) -> Vec<u8> { Vec::new() }
//!     fn restore(_: &[u8]) -> Result<Self, Status> { Ok(Sup { restarts: 0 }) }
//! }
//!
//! use hyperverse_guest::{glue, host};
//! let mut state = None;
//! assert_eq!(glue::init::<Sup>(&mut state, b""), 0);
//! assert_eq!(glue::on_crash_notice(&mut state, b"sup:w", 42, b"guest crash 42: bye", 0, true), 0);
//! assert_eq!(state.as_ref().unwrap().restarts, 1);
//! assert_eq!(host::take().len(), 2, "spawned at init, respawned after the crash");
//! ```

pub mod glue;
pub mod host;

/// The ABI version this crate implements (what `hv_abi_version` returns).
/// Version 2 is version 1 plus optional imports and exports, so a guest
/// that uses none of them behaves as a version 1 guest would.
pub const ABI_VERSION: i32 = 2;

/// A call's refusal: a nonzero status the host reports as `GuestStatus`
/// (the particle crashes, and its supervisor restarts it).
///
/// ```
/// use hyperverse_guest::Status;
/// // A guest's handler refusing a wave it cannot parse:
/// fn parse(body: &[u8]) -> Result<u64, Status> {
///     hyperverse_guest::u64_le(body).ok_or(Status(2))
/// }
/// assert_eq!(parse(b"short"), Err(Status(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

/// The tag of a request made with [`Call::ask`], [`Call::spawn`] or
/// [`Call::stop`]: its outcome comes to [`Guest::on_reply`] with the same
/// tag. Tags are positive and never reused within an incarnation (across
/// hot reloads too), so a guest can key what it is waiting for by them.
///
/// ```
/// use std::collections::BTreeMap;
/// use hyperverse_guest::{Call, Tag};
///
/// let mut waiting: BTreeMap<Tag, &str> = BTreeMap::new();
/// let mut call = Call { method: "", body: b"" };
/// let tag = call.ask("app:db", "get", b"k", 0).unwrap();
/// waiting.insert(tag, "k");
/// assert_eq!(tag, Tag(1), "the fake's first fresh tag");
/// /// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u64);

/// The id of a timer set with [`Call::timer`]. Timers fire as a wave (the
/// method and body given) from the particle to itself, not through
/// `on_reply`; the id tells which timer a guest set, e.g. to log it.
///
/// ```
/// use hyperverse_guest::{Call, TimerId};
///
/// let mut call = Call { method: "", body: b"" };
/// assert_eq!(call.timer(1_000, "tick", b""), Ok(TimerId(1)));
/// /// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// Why the host refused a request at once (nothing was queued). The guest
/// runs on; what it does about it is its choice.
///
/// ```
/// use hyperverse_guest::{host, Call, Refused};
///
/// host::fake(|f| f.answers.extend([-1, -2, -3, -9]));
/// let mut call = Call { method: "", body: b"" };
/// assert_eq!(call.ask("p", "m", b"", 0), Err(Refused::PerCall));
/// assert_eq!(call.ask("p", "m", b"", 0), Err(Refused::TooManyOpen));
/// assert_eq!(call.timer(u32::MAX, "m", b""), Err(Refused::DelayTooLong));
/// assert_eq!(call.stop("p:c"), Err(Refused::Other(-9)));
/// assert_eq!(Refused::TooManyOpen.code(), -2);
/// /// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// `-1` (`REFUSED_PER_CALL`): the call already queued as many sends,
    /// asks, spawns, stops and timers as one call may (1,000 at most). The
    /// host also fails the whole call (`SendBudget`), so nothing it queued
    /// leaves: stop queuing and return.
    PerCall,
    /// `-2` (`REFUSED_OPEN`): too many asks awaiting replies, or timers not
    /// yet fired (64 each per particle). Try again once some have come back.
    TooManyOpen,
    /// `-3` (`REFUSED_DELAY`): a timeout or delay above a day.
    DelayTooLong,
    /// `-4` (`REFUSED_DENIED`, asks only): the access rules do not let
    /// this particle ask that Point. Nothing was queued; the guest runs on.
    Denied,
    /// A negative code this crate does not know (a newer host's).
    Other(i64),
}

impl Refused {
    /// The host's code: `-1`, `-2`, `-3`, `-4`, or the unknown one.
    pub fn code(self) -> i64 {
        match self {
            Refused::PerCall => -1,
            Refused::TooManyOpen => -2,
            Refused::DelayTooLong => -3,
            Refused::Denied => -4,
            Refused::Other(code) => code,
        }
    }

    /// A tagged call's result: the positive value, or the refusal. The
    /// host never returns 0; should it, that is no tag either.
    pub fn check(result: i64) -> Result<u64, Refused> {
        match result {
            r if r > 0 => Ok(r as u64),
            -1 => Err(Refused::PerCall),
            -2 => Err(Refused::TooManyOpen),
            -3 => Err(Refused::DelayTooLong),
            -4 => Err(Refused::Denied),
            other => Err(Refused::Other(other)),
        }
    }
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::PerCall => f.write_str("refused: too many sends and requests in one call"),
            Refused::TooManyOpen => f.write_str("refused: too many open asks or timers"),
            Refused::DelayTooLong => f.write_str("refused: a delay or timeout above a day"),
            Refused::Denied => f.write_str("refused: the access rules deny it"),
            Refused::Other(code) => write!(f, "refused with code {code}"),
        }
    }
}

/// Whether the Star restarts a child spawned with [`Call::spawn`] (OTP's
/// restart types, minus `transient`).
///
/// ```
/// use hyperverse_guest::Restart;
/// assert_eq!(Restart::Temporary.flags(), 1);
/// assert_eq!(Restart::Permanent.flags(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restart {
    /// The Star restarts it when it crashes, as any particle; the guest
    /// hears nothing of it unless the Star gives up.
    Permanent,
    /// The Star never restarts it: each crash comes to the guest's
    /// [`Guest::on_crash_notice`] (with `gave_up` set), which restarts it,
    /// or not. This is how a guest is a supervisor.
    Temporary,
}

impl Restart {
    /// The ABI's `hv.spawn` flags (bit 0: temporary).
    pub fn flags(self) -> i32 {
        match self {
            Restart::Permanent => 0,
            Restart::Temporary => 1,
        }
    }
}

/// A child of the guest crashed: what [`Guest::on_crash_notice`] is told.
///
/// ```
/// use hyperverse_guest::CrashNotice;
///
/// let n = CrashNotice {
///     child: "sup:w",
///     code: Some(42),
///     reason: "guest crash 42: asked to die",
///     restarts: 0,
///     gave_up: true,
/// };
/// // A supervisor respawns a temporary child unless it crashed on purpose.
/// let respawn = n.gave_up && n.code != Some(0);
/// assert!(respawn);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashNotice<'a> {
    /// The child's Point.
    pub child: &'a str,
    /// The code it gave [`Call::crash`] (`hv.crash`); `None` if it crashed
    /// otherwise (a trap, out of fuel, a refused call, a Rust error). The
    /// ABI spells `None` as -1, so a child crashing with code -1 reads as
    /// `None` too.
    pub code: Option<i32>,
    /// The crash's text (for a `hv.crash`, it starts `guest crash CODE:`).
    pub reason: &'a str,
    /// How many times it had been restarted before.
    pub restarts: u32,
    /// True if it is not restarted (temporary, or given up on): if the
    /// guest wants it back, it spawns it again.
    pub gave_up: bool,
}

/// A particle's code.
///
/// Only `init`, `handle`, `snapshot` and `restore` are required (version
/// 1); the version 2 methods have defaults that do nothing, so a guest
/// implements only those it uses.
///
/// ```
/// use hyperverse_guest::{Call, Guest, Status, Tag};
///
/// /// Asks `app:db` for a key when told, and keeps the answer.
/// #[derive(Default)]
/// struct Cache { pending: Option<Tag>, value: Option<Vec<u8>> }
///
/// impl Guest for Cache {
///     fn init(_: &[u8]) -> Result<Self, Status> { Ok(Cache::default()) }
///     fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
///         if call.method == "fetch" {
///             let body = call.body;
///             self.pending = call.ask("app:db", "get", body, 0).ok();
///         }
///         Ok(())
///     }
///     fn on_reply(&mut self, _: &mut Call<'_>, tag: Tag, outcome: Result<&[u8], &str>) -> Result<(), Status> {
///         if self.pending == Some(tag) {
///             self.pending = None;
///             self.value = outcome.ok().map(<[u8]>::to_vec);
///         }
///         Ok(())
///     }
///     fn snapshot(&self) -> Vec<u8> { self.value.clone().unwrap_or_default() }
///     fn restore(s: &[u8]) -> Result<Self, Status> {
///         Ok(Cache { pending: None, value: Some(s.to_vec()) })
///     }
/// }
///
/// use hyperverse_guest::glue;
/// let mut state = None;
/// glue::init::<Cache>(&mut state, b"");
/// glue::handle(&mut state, b"fetch", b"k");
/// glue::on_reply(&mut state, 1, 0, b"v");
/// assert_eq!(state.unwrap().value.as_deref(), Some(&b"v"[..]));
/// /// ```
pub trait Guest: Sized {
    /// A new incarnation, from its spawn arguments (at spawn and at every
    /// restart).
    ///
    /// # Errors
    ///
    /// A [`Status`]: the start fails.
    fn init(args: &[u8]) -> Result<Self, Status>;

    /// Runs right after [`Guest::init`], in the same `init` call, with a
    /// [`Call`] that has no wave: where a new incarnation spawns its
    /// children, asks, or sets its first timers (`init` only builds the
    /// state, so that its signature stays version 1's). Not run after
    /// [`Guest::restore`]: a reload keeps the children the old version
    /// made, and the ABI allows no requests in `restore`.
    ///
    /// # Errors
    ///
    /// A [`Status`]: the start fails, and nothing it queued is done.
    fn started(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
        let _ = call;
        Ok(())
    }

    /// Handles one wave.
    ///
    /// # Errors
    ///
    /// A [`Status`]: the call fails, nothing it sent or replied leaves, and
    /// the particle crashes.
    fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status>;

    /// The outcome of a request made with [`Call::ask`], [`Call::spawn`] or
    /// [`Call::stop`], as a call of its own (with a [`Call`] that has no
    /// wave: it may send, ask, spawn, but not reply). `Ok` carries the
    /// reply's body (for a spawn, the child's Point; for a stop, nothing);
    /// `Err` the reason it failed (nobody there, a timeout, the target
    /// crashed, a spawn or stop the host refused). The default ignores it.
    ///
    /// # Errors
    ///
    /// A [`Status`]: the particle crashes, as for [`Guest::handle`].
    fn on_reply(
        &mut self,
        call: &mut Call<'_>,
        tag: Tag,
        outcome: Result<&[u8], &str>,
    ) -> Result<(), Status> {
        let _ = (call, tag, outcome);
        Ok(())
    }

    /// A child crashed (see [`CrashNotice`]), as a call of its own with a
    /// [`Call`] that has no wave. The default does nothing: a
    /// [`Restart::Temporary`] child then stays down.
    ///
    /// # Errors
    ///
    /// A [`Status`]: the particle crashes, as for [`Guest::handle`].
    fn on_crash_notice(
        &mut self,
        call: &mut Call<'_>,
        notice: CrashNotice<'_>,
    ) -> Result<(), Status> {
        let _ = (call, notice);
        Ok(())
    }

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

/// One call into the guest: the wave being handled, and the host functions
/// the call may use.
///
/// In [`Guest::handle`] `method` and `body` are the wave's. The other
/// calls ([`Guest::started`], [`Guest::on_reply`],
/// [`Guest::on_crash_notice`]) have no wave: both are empty, and
/// [`Call::reply`] is not allowed there (the host fails the call).
///
/// ```
/// use hyperverse_guest::{host::{self, HostCall}, Call, Restart};
///
/// host::fake(|f| f.me = "app:sup".into());
/// let mut call = Call { method: "grow", body: b"" };
/// let me = call.me();
/// let tag = call.spawn("w1", "wasm:worker", me.as_bytes(), Restart::Temporary).unwrap();
/// assert_eq!(tag.0, 1);
/// assert_eq!(host::take().last(), Some(&HostCall::Spawn {
///     name: "w1".into(), kind: "wasm:worker".into(), args: b"app:sup".to_vec(), flags: 1,
/// }));
/// /// ```
#[derive(Debug)]
pub struct Call<'a> {
    /// The wave's method (empty outside `handle`).
    pub method: &'a str,
    /// The wave's body (empty outside `handle`).
    pub body: &'a [u8],
}

/// The first buffer [`Call::me`] and [`Call::parent`] offer the host: most
/// Points fit, so most calls cross to the host once; a longer one is read
/// again into a buffer of its length.
pub const TEXT_BUFFER: usize = 64;

impl Call<'_> {
    /// Sets the reply (once per wave, in `handle` only: elsewhere, or a
    /// second time, the host fails the call with `AbiViolation`).
    pub fn reply(&mut self, body: &[u8]) {
        host::reply(body);
    }

    /// Queues a signal to Point `to`, sent after the call succeeds, where
    /// the access rules allow (the guest's own subtree, its parent, its
    /// spawn's grants and what the rules grant it, its module's manifest
    /// among them); a denied one is dropped (`hv.send` returns 2) and the
    /// guest runs on. [`host::send`] gives the code.
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

    /// The particle's own Point (e.g. `app:sup`): where its children live
    /// (`ME:name`), and what to give a child that should send back.
    pub fn me(&self) -> String {
        glue::read_text(host::self_point).unwrap_or_default()
    }

    /// Its parent's Point; `None` for a particle directly under the
    /// Machine's root.
    pub fn parent(&self) -> Option<String> {
        glue::read_text(host::parent)
    }

    /// How many times this particle has been restarted (0 in its first
    /// incarnation): e.g. to back off, or to give up on itself.
    pub fn restarts(&self) -> u32 {
        host::restarts().max(0) as u32
    }

    /// Queues a request to the Point `to` (sent if the call succeeds); its
    /// reply, or why it failed, comes to [`Guest::on_reply`] with the
    /// returned tag. `timeout_ms` 0 is the host's default (5 s). Only to
    /// where [`Call::send`] may send: any other address fails the call.
    ///
    /// # Errors
    ///
    /// [`Refused`] if the host would not queue it (too many in this call or
    /// open, or a timeout above a day).
    pub fn ask(
        &mut self,
        to: &str,
        method: &str,
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<Tag, Refused> {
        Refused::check(host::ask(to, method, body, timeout_ms)).map(Tag)
    }

    /// Queues spawning the child `ME:name` of Kind `kind` (e.g.
    /// `wasm:worker`) with `args` for its `init`. The outcome comes to
    /// [`Guest::on_reply`]: the child's Point, or why not (a Rust Kind
    /// the host did not grant, a name taken).
    ///
    /// # Errors
    ///
    /// [`Refused`] if the host would not queue it.
    pub fn spawn(
        &mut self,
        name: &str,
        kind: &str,
        args: &[u8],
        restart: Restart,
    ) -> Result<Tag, Refused> {
        Refused::check(host::spawn(name, kind, args, restart.flags())).map(Tag)
    }

    /// Queues stopping the particle at `point` (with its subtree). Only a
    /// strict descendant: anything else comes back to
    /// [`Guest::on_reply`] as a failure, not a crash.
    ///
    /// # Errors
    ///
    /// [`Refused`] if the host would not queue it.
    pub fn stop(&mut self, point: &str) -> Result<Tag, Refused> {
        Refused::check(host::stop(point)).map(Tag)
    }

    /// After `delay_ms`, a signal wave with `method` and `body` from the
    /// particle to itself, to [`Guest::handle`]. It dies with the
    /// incarnation: a crash before it fires cancels it.
    ///
    /// # Errors
    ///
    /// [`Refused`] if the host would not set it (too many open, or a delay
    /// above a day).
    pub fn timer(&mut self, delay_ms: u32, method: &str, body: &[u8]) -> Result<TimerId, Refused> {
        Refused::check(host::timer(delay_ms, method, body)).map(TimerId)
    }

    /// Crashes the particle with `code` and `message`: nothing the call
    /// queued leaves, the supervisor restarts it (or not), and the parent's
    /// crash notice carries the code. Unlike a [`Status`] refusal, the code
    /// reaches a WASM parent as [`CrashNotice::code`] and a Rust parent
    /// through `hyperverse_modules::crash_code`. Never returns (off wasm32
    /// the fake panics: see [`host::catch_crash`]).
    pub fn crash(&mut self, code: i32, message: &str) -> ! {
        host::crash(code, message)
    }
}

/// A little-endian u64 from the first 8 bytes, if there are 8.
///
/// ```
/// assert_eq!(hyperverse_guest::u64_le(&7u64.to_le_bytes()), Some(7));
/// assert_eq!(hyperverse_guest::u64_le(b"short"), None);
/// ```
pub fn u64_le(bytes: &[u8]) -> Option<u64> {
    bytes.get(..8).map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    })
}

/// Exports the guest ABI's functions for `$guest` (a type implementing
/// [`Guest`]). Use it once, in the guest crate's root.
///
/// It always exports `on_reply` and `on_crash_notice` (the host requires
/// `on_reply` of a module importing `hv.ask`, `hv.spawn` or `hv.stop`, and
/// the trait's defaults make both harmless for a guest that uses neither),
/// and `hv_abi_version` returns [`ABI_VERSION`], 2.
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

            static INBOX: $crate::glue::Inbox = $crate::glue::Inbox::new();

            #[no_mangle]
            pub extern "C" fn hv_inbox() -> i64 {
                INBOX.packed()
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
            pub unsafe extern "C" fn on_reply(tag: i64, status: i32, ptr: i32, len: i32) -> i32 {
                let body = unsafe { $crate::glue::bytes(ptr, len) };
                let status = $crate::glue::on_reply(state(), tag, status, body);
                arena().reset();
                status
            }

            #[no_mangle]
            pub unsafe extern "C" fn on_crash_notice(
                child_ptr: i32,
                child_len: i32,
                code: i32,
                reason_ptr: i32,
                reason_len: i32,
                restarts: i32,
                gave_up: i32,
            ) -> i32 {
                let child = unsafe { $crate::glue::bytes(child_ptr, child_len) };
                let reason = unsafe { $crate::glue::bytes(reason_ptr, reason_len) };
                let status = $crate::glue::on_crash_notice(
                    state(),
                    child,
                    code,
                    reason,
                    restarts,
                    gave_up != 0,
                );
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
