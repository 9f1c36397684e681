//! The host functions a guest may import, and the buffer they fill.
//!
//! A host function does not act on the runtime (a wave sent mid-call must
//! not be delivered if the call then crashes), so `send`, `reply` and `log`
//! only copy bytes out of guest memory into a [`HandleOutput`] that the
//! caller takes after the call: the runtime delivers the sends and the
//! reply only when the call succeeded, which makes each wave
//! all-or-nothing. Logs are also emitted through `tracing` at once, so a
//! guest that crashes still leaves its logs behind.
//!
//! The one thing a host function asks the runtime is whether the access
//! rules let the particle send to, or ask, an address ([`Judge`], set by
//! the WASM particle): a denied wave is not queued and the guest gets a
//! code (`hv.send` [`SEND_DENIED`], `hv.ask` [`REFUSED_DENIED`]) and runs
//! on, as a Rust particle's denied signal is dropped and its denied
//! request answered `Denied`. An instance with no judge (one called
//! directly, outside a Machine) queues every wave for its caller to judge.
//!
//! Host functions never panic: a bad pointer, a non-UTF-8 method, a second
//! reply or too much output records a fault in the env and returns a
//! `RuntimeError`, which unwinds the guest; the instance then reports the
//! recorded fault as `AbiViolation` or `OutputLimit` rather than a bare trap.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmer::{
    AsStoreMut, AsStoreRef, Extern, Function, FunctionEnv, FunctionEnvMut, Memory, RuntimeError,
};

use hyperverse_runtime::access::Privilege;
use hyperverse_runtime::Point;

use crate::abi::{
    ASK, CRASH, HOST_MODULE, LOG, NOW_MS, PARENT, REPLY, RESTARTS, SELF, SEND, SPAWN, STOP, TIMER,
};
use crate::budget::MAX_SENDS_PER_CALL;

/// What one guest call produced, taken by the caller after the call.
///
/// `init` fills `sends` and `logs`; `handle` may also fill `reply`. On an
/// error the sends and the reply are dropped (the logs went to `tracing`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandleOutput {
    /// The reply body, if the guest called `hv.reply`.
    pub reply: Option<Vec<u8>>,
    /// Signal waves to deliver, in the order the guest sent them.
    pub sends: Vec<GuestSend>,
    /// Log lines, in order.
    pub logs: Vec<GuestLog>,
    /// `hv.send` calls refused because the call had already queued
    /// [`MAX_SENDS_PER_CALL`] waves (each returned 1 and queued nothing).
    /// A WASM particle fails such a call with
    /// [`ModuleError::SendBudget`](crate::ModuleError::SendBudget).
    /// Requests, spawns, stops and timers count against the same limit.
    pub refused_sends: u32,
    /// The ABI v2 effects the guest queued (asks, spawns, stops, timers),
    /// each with how many of `sends` it came after, so that the runtime
    /// carries sends and effects out in the order the guest made them.
    pub effects: Vec<(usize, GuestEffect)>,
}

impl HandleOutput {
    /// True if the runtime has something to carry out: sends, effects, or
    /// refused sends to fail the call for.
    pub(crate) fn has_work(&self) -> bool {
        !self.sends.is_empty() || !self.effects.is_empty() || self.refused_sends != 0
    }
}

/// An ABI v2 effect a guest queued in one call, carried out by the
/// runtime only if the call succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEffect {
    /// `hv.ask`: a request; its reply (or failure) comes to `on_reply`.
    Ask {
        /// The tag `hv.ask` returned.
        tag: u64,
        /// The address, as written.
        to: String,
        /// The method.
        method: String,
        /// The body.
        body: Vec<u8>,
        /// How long to wait for the reply.
        timeout_ms: u32,
    },
    /// `hv.spawn`: a child of the particle; the outcome comes to `on_reply`.
    Spawn {
        /// The tag `hv.spawn` returned.
        tag: u64,
        /// The child's name (its last Point segment).
        name: String,
        /// Its Kind.
        kind: String,
        /// Its spawn arguments.
        args: Vec<u8>,
        /// True if its Star does not restart it (the guest supervises it).
        temporary: bool,
    },
    /// `hv.stop`: stop a particle of the guest's subtree; the outcome comes
    /// to `on_reply`.
    Stop {
        /// The tag `hv.stop` returned.
        tag: u64,
        /// The Point, as written.
        point: String,
    },
    /// `hv.timer`: a signal wave from the particle to itself after a delay.
    Timer {
        /// The id `hv.timer` returned.
        id: u64,
        /// The delay.
        delay_ms: u32,
        /// The wave's method.
        method: String,
        /// The wave's body.
        body: Vec<u8>,
    },
}

/// What a call may know of its particle (ABI v2's `hv.self`, `hv.parent`,
/// `hv.restarts`) and of what it already has open, which bounds how much
/// more it may open. Set by the runtime before each call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The particle's Point.
    pub me: String,
    /// Its parent's Point (`None` for a particle under ROOT).
    pub parent: Option<String>,
    /// Its restarts so far.
    pub restarts: u32,
    /// The next tag or timer id to hand out (tags are never reused within
    /// an incarnation, across reloads included).
    pub next_tag: u64,
    /// Requests (asks) awaiting their reply.
    pub open_requests: usize,
    /// Timers not yet fired.
    pub open_timers: usize,
}

/// At most this many asks awaiting a reply per particle; `hv.ask` returns
/// [`REFUSED_OPEN`] past it.
pub const MAX_OPEN_REQUESTS: usize = 64;
/// At most this many timers not yet fired per particle; `hv.timer`
/// returns [`REFUSED_OPEN`] past it.
pub const MAX_OPEN_TIMERS: usize = 64;
/// The longest `hv.timer` delay and `hv.ask` timeout: one day.
pub const MAX_DELAY_MS: u32 = 86_400_000;
/// The timeout of an `hv.ask` given 0.
pub const DEFAULT_ASK_TIMEOUT_MS: u32 = 5_000;

/// A v2 tagged call refused because the call already queued
/// [`MAX_SENDS_PER_CALL`] sends and effects (the call then fails, as a
/// refused send does).
pub const REFUSED_PER_CALL: i64 = -1;
/// A v2 call refused because too many asks or timers are open.
pub const REFUSED_OPEN: i64 = -2;
/// A v2 call refused because its delay or timeout is above a day.
pub const REFUSED_DELAY: i64 = -3;
/// An `hv.ask` refused because the access rules do not let the particle
/// ask that Point: nothing queued, the guest runs on.
pub const REFUSED_DENIED: i64 = -4;

/// What `hv.send` returns when the access rules do not let the particle
/// send to that Point: nothing is queued and the guest runs on (a denied
/// signal is dropped, counted and logged, as the runtime does for any
/// particle's).
pub const SEND_DENIED: i32 = 2;

/// Whether the particle a guest runs in may do a [`Privilege`] (`send`,
/// `ask`) to a Point: the access rules, judged for the particle as a
/// confined visitor ([`Ctx::confined_may`]), which counts and logs a
/// refusal. Set on an instance by the WASM particle that runs it.
///
/// [`Ctx::confined_may`]: hyperverse_runtime::Ctx::confined_may
pub(crate) type Judge = Arc<dyn Fn(Privilege, &Point) -> bool + Send + Sync>;

/// A wave the guest asked to send with `hv.send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSend {
    /// The address, as the guest wrote it (a Point such as `space:app:w7`;
    /// the runtime parses and checks it).
    pub to: String,
    /// The method.
    pub method: String,
    /// The body.
    pub body: Vec<u8>,
}

/// A line the guest logged with `hv.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLog {
    /// Its level.
    pub level: LogLevel,
    /// The message (invalid UTF-8 replaced by U+FFFD: logs are diagnostics,
    /// not a reason to crash).
    pub message: String,
}

/// `hv.log` levels: 0 error, 1 warn, 2 info, 3 debug, 4 and above trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0
    Error,
    /// 1
    Warn,
    /// 2
    Info,
    /// 3
    Debug,
    /// 4 (and anything higher)
    Trace,
}

impl LogLevel {
    /// The level a guest's number stands for; negative numbers are errors
    /// and numbers above 4 are trace, so no number is refused.
    pub fn from_guest(level: i32) -> Self {
        match level {
            i32::MIN..=0 => Self::Error,
            1 => Self::Warn,
            2 => Self::Info,
            3 => Self::Debug,
            _ => Self::Trace,
        }
    }
}

/// Which guest export is running, so host functions can refuse what the ABI
/// does not allow there (a reply outside `handle`, a send during `snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Instantiation (a start function) or between calls.
    Idle,
    Init,
    Handle,
    Snapshot,
    Restore,
    /// `on_reply`.
    OnReply,
    /// `on_crash_notice`.
    OnCrashNotice,
}

impl Phase {
    /// The export this phase is the call of.
    pub(crate) fn export(self) -> &'static str {
        match self {
            Self::Idle => "start",
            Self::Init => "init",
            Self::Handle => "handle",
            Self::Snapshot => "snapshot",
            Self::Restore => "restore",
            Self::OnReply => "on_reply",
            Self::OnCrashNotice => "on_crash_notice",
        }
    }

    /// True in the calls that may act: send, ask, spawn, stop, set timers.
    fn acts(self) -> bool {
        matches!(
            self,
            Self::Init | Self::Handle | Self::OnReply | Self::OnCrashNotice
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.export())
    }
}

/// A broken rule a host function noticed; reported instead of the trap it
/// causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostFault {
    /// An ABI rule, with what was wrong.
    Abi(String),
    /// More output in one call than the limit.
    OutputLimit,
    /// The guest called `hv.crash`.
    Crash {
        /// Its code.
        code: i32,
        /// Its message (invalid UTF-8 replaced).
        message: String,
    },
}

/// The host functions' state: one per instance, in its `Store`.
pub(crate) struct HostEnv {
    /// The module's name, for log lines.
    module: Arc<str>,
    /// The guest's exported memory, set right after instantiation.
    pub(crate) memory: Option<Memory>,
    phase: Phase,
    output: HandleOutput,
    output_bytes: usize,
    max_output_bytes: usize,
    fault: Option<HostFault>,
    /// What the call may know and how much it has open (ABI v2).
    pub(crate) context: CallContext,
    /// The access rules for the particle's waves, if it runs in one.
    pub(crate) judge: Option<Judge>,
    /// Waves the judge denied in this call: they count against the
    /// per-call limit as queued ones do, so that a guest cannot have the
    /// host judge (and log) denials without bound.
    denied: usize,
}

impl HostEnv {
    pub(crate) fn new(module: Arc<str>, max_output_bytes: usize) -> Self {
        Self {
            module,
            memory: None,
            phase: Phase::Idle,
            output: HandleOutput::default(),
            output_bytes: 0,
            max_output_bytes,
            fault: None,
            context: CallContext::default(),
            judge: None,
            denied: 0,
        }
    }

    /// Starts a call of `phase` with an empty buffer.
    pub(crate) fn begin(&mut self, phase: Phase) {
        self.phase = phase;
        self.output = HandleOutput::default();
        self.output_bytes = 0;
        self.fault = None;
        self.denied = 0;
    }

    /// Ends the call: what it produced, and the fault a host function
    /// recorded, if any.
    pub(crate) fn end(&mut self) -> (HandleOutput, Option<HostFault>) {
        self.phase = Phase::Idle;
        self.output_bytes = 0;
        (std::mem::take(&mut self.output), self.fault.take())
    }

    /// Records `fault` and makes the error that unwinds the guest.
    fn fail(&mut self, fault: HostFault) -> RuntimeError {
        let message = match &fault {
            HostFault::Abi(message) => message.clone(),
            HostFault::OutputLimit => format!(
                "more than {} bytes of output in one call",
                self.max_output_bytes
            ),
            HostFault::Crash { code, message } => format!("hv.crash({code}): {message}"),
        };
        self.fault = Some(fault);
        RuntimeError::new(message)
    }

    /// Counts `lens` bytes against the call's output limit, before any is
    /// copied (so a huge length is refused without allocating it).
    fn charge(&mut self, lens: &[i32]) -> Result<(), HostFault> {
        let total: u64 = lens.iter().map(|&len| u64::from(len as u32)).sum();
        let after = (self.output_bytes as u64).saturating_add(total);
        if after > self.max_output_bytes as u64 {
            return Err(HostFault::OutputLimit);
        }
        self.output_bytes = after as usize;
        Ok(())
    }

    /// Copies `len` bytes at `ptr` out of guest memory; `what` names them
    /// in the error.
    fn read(
        &self,
        store: &impl AsStoreRef,
        ptr: i32,
        len: i32,
        what: &str,
    ) -> Result<Vec<u8>, HostFault> {
        let memory = self
            .memory
            .as_ref()
            .ok_or_else(|| HostFault::Abi(format!("{what}: guest memory is not set up yet")))?;
        read_guest(memory, store, ptr, len).ok_or_else(|| {
            HostFault::Abi(format!(
                "{what} at {ptr:#x}+{len} lies outside guest memory",
                ptr = ptr as u32,
                len = len as u32
            ))
        })
    }

    fn read_utf8(
        &self,
        store: &impl AsStoreRef,
        ptr: i32,
        len: i32,
        what: &str,
    ) -> Result<String, HostFault> {
        String::from_utf8(self.read(store, ptr, len, what)?)
            .map_err(|_| HostFault::Abi(format!("{what} is not UTF-8")))
    }
}

/// Copies `len` bytes at `ptr` (both read as unsigned) out of `memory`, or
/// `None` if any of them lies outside it. The bounds are checked before
/// anything is allocated.
pub(crate) fn read_guest(
    memory: &Memory,
    store: &impl AsStoreRef,
    ptr: i32,
    len: i32,
) -> Option<Vec<u8>> {
    let view = memory.view(store);
    let (ptr, len) = (u64::from(ptr as u32), u64::from(len as u32));
    if ptr + len > view.data_size() {
        return None;
    }
    let mut bytes = vec![0; len as usize];
    view.read(ptr, &mut bytes).ok()?;
    Some(bytes)
}

/// The `hv` functions `imports` lists, bound to `env`, in its order.
pub(crate) fn host_externs(
    store: &mut impl AsStoreMut,
    env: &FunctionEnv<HostEnv>,
    imports: &[HostImport],
) -> Vec<Extern> {
    imports
        .iter()
        .map(|import| {
            let f = match import {
                HostImport::Send => Function::new_typed_with_env(store, env, hv_send),
                HostImport::Reply => Function::new_typed_with_env(store, env, hv_reply),
                HostImport::Log => Function::new_typed_with_env(store, env, hv_log),
                HostImport::NowMs => Function::new_typed(store, hv_now_ms),
                HostImport::SelfPoint => Function::new_typed_with_env(store, env, hv_self),
                HostImport::Parent => Function::new_typed_with_env(store, env, hv_parent),
                HostImport::Restarts => Function::new_typed_with_env(store, env, hv_restarts),
                HostImport::Ask => Function::new_typed_with_env(store, env, hv_ask),
                HostImport::Spawn => Function::new_typed_with_env(store, env, hv_spawn),
                HostImport::Stop => Function::new_typed_with_env(store, env, hv_stop),
                HostImport::Timer => Function::new_typed_with_env(store, env, hv_timer),
                HostImport::Crash => Function::new_typed_with_env(store, env, hv_crash),
            };
            Extern::Function(f)
        })
        .collect()
}

/// One host function a module imports: what [`host_externs`] makes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostImport {
    Send,
    Reply,
    Log,
    NowMs,
    SelfPoint,
    Parent,
    Restarts,
    Ask,
    Spawn,
    Stop,
    Timer,
    Crash,
}

impl HostImport {
    /// The host function named `name` (of [`HOST_MODULE`]), if the ABI has
    /// one.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Some(match name {
            n if n == SEND.name => Self::Send,
            n if n == REPLY.name => Self::Reply,
            n if n == LOG.name => Self::Log,
            n if n == NOW_MS.name => Self::NowMs,
            n if n == SELF.name => Self::SelfPoint,
            n if n == PARENT.name => Self::Parent,
            n if n == RESTARTS.name => Self::Restarts,
            n if n == ASK.name => Self::Ask,
            n if n == SPAWN.name => Self::Spawn,
            n if n == STOP.name => Self::Stop,
            n if n == TIMER.name => Self::Timer,
            n if n == CRASH.name => Self::Crash,
            _ => return None,
        })
    }

    /// What `module` imports, in its import order (what
    /// `Instance::new_by_index` takes), or the first import the host does
    /// not have. Computed once per loaded version: an instance then makes
    /// only the functions its guest imports, with no lookup by name.
    pub(crate) fn of(module: &wasmer::Module) -> Result<Vec<Self>, String> {
        module
            .imports()
            .map(|i| {
                (i.module() == HOST_MODULE)
                    .then(|| Self::named(i.name()))
                    .flatten()
                    .ok_or_else(|| format!("{}.{}", i.module(), i.name()))
            })
            .collect()
    }
}

/// What one `hv.send` costs against the output limit beyond its bytes:
/// about the host's own bookkeeping for a wave.
const SEND_OVERHEAD: i32 = 64;

/// What `hv.send` returns when it refuses a wave because the call already
/// queued [`MAX_SENDS_PER_CALL`]: nothing is queued.
const SEND_REFUSED: i32 = 1;

/// `hv.send`: queue a signal wave (allowed in `init`, `handle` and the v2
/// callbacks), unless
/// the call already queued [`MAX_SENDS_PER_CALL`]: then it is counted as
/// refused and nothing is read or buffered (the guest runs on, but the
/// runtime fails the call; a direct caller sees `refused_sends`); or
/// unless the access rules deny it: then it returns [`SEND_DENIED`],
/// queues nothing, and the guest runs on.
fn hv_send(
    mut env: FunctionEnvMut<HostEnv>,
    to_ptr: i32,
    to_len: i32,
    method_ptr: i32,
    method_len: i32,
    body_ptr: i32,
    body_len: i32,
) -> Result<i32, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let queued = (|| {
        if !data.phase.acts() {
            return Err(HostFault::Abi(format!(
                "hv.send is allowed in init, handle and the callbacks, not in {}",
                data.phase
            )));
        }
        // Counted before anything is charged or copied: the guest cannot
        // make the host hold more than this many waves per call.
        if data.queued() >= MAX_SENDS_PER_CALL as usize {
            data.output.refused_sends = data.output.refused_sends.saturating_add(1);
            return Ok(SEND_REFUSED);
        }
        let (to, method, body) = data.read_wave(
            &store,
            ["hv.send address", "hv.send method", "hv.send body"],
            (to_ptr, to_len),
            (method_ptr, method_len),
            (body_ptr, body_len),
        )?;
        if !data.allows(Privilege::Send, &to) {
            return Ok(SEND_DENIED);
        }
        data.output.sends.push(GuestSend { to, method, body });
        Ok(0)
    })();
    queued.map_err(|fault| data.fail(fault))
}

/// `hv.reply`: set the reply of the wave being handled (once, in `handle`).
fn hv_reply(mut env: FunctionEnvMut<HostEnv>, ptr: i32, len: i32) -> Result<(), RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let replied = (|| {
        if data.phase != Phase::Handle {
            return Err(HostFault::Abi(format!(
                "hv.reply is allowed in handle, not in {}",
                data.phase
            )));
        }
        if data.output.reply.is_some() {
            return Err(HostFault::Abi("hv.reply called twice for one wave".into()));
        }
        data.charge(&[len])?;
        data.output.reply = Some(data.read(&store, ptr, len, "hv.reply body")?);
        Ok(())
    })();
    replied.map_err(|fault| data.fail(fault))
}

/// `hv.log`: log a line (allowed anywhere).
fn hv_log(
    mut env: FunctionEnvMut<HostEnv>,
    level: i32,
    ptr: i32,
    len: i32,
) -> Result<(), RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let logged = (|| {
        data.charge(&[len])?;
        let bytes = data.read(&store, ptr, len, "hv.log message")?;
        let line = GuestLog {
            level: LogLevel::from_guest(level),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        };
        emit(&data.module, &line);
        data.output.logs.push(line);
        Ok(())
    })();
    logged.map_err(|fault| data.fail(fault))
}

/// `hv.now_ms`: wall-clock milliseconds since the Unix epoch (0 if the
/// clock is before it).
fn hv_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

impl HostEnv {
    /// Whether the access rules let the particle do `want` to the address
    /// `to` (always, with no judge set). An address that is no Point is
    /// let through here: the runtime refuses it when it carries the call
    /// out (`AbiViolation`), as before any judge looked at it.
    fn allows(&mut self, want: Privilege, to: &str) -> bool {
        let Some(judge) = &self.judge else {
            return true;
        };
        let allowed = match Point::parse(to) {
            Ok(point) => judge(want, &point),
            Err(_) => true,
        };
        self.denied += usize::from(!allowed);
        allowed
    }

    /// Sends and effects queued in this call, and waves denied.
    fn queued(&self) -> usize {
        self.output.sends.len() + self.output.effects.len() + self.denied
    }

    /// Checks that a v2 effect may be queued now: `Ok(None)` if so, a
    /// refusal code for the guest, or a fault for a call in a phase that
    /// may not act.
    fn may_queue(&mut self, what: &str) -> Result<Option<i64>, HostFault> {
        if !self.phase.acts() {
            return Err(HostFault::Abi(format!(
                "{what} is allowed in init, handle and the callbacks, not in {}",
                self.phase
            )));
        }
        if self.queued() >= MAX_SENDS_PER_CALL as usize {
            self.output.refused_sends = self.output.refused_sends.saturating_add(1);
            return Ok(Some(REFUSED_PER_CALL));
        }
        Ok(None)
    }

    /// Charges and copies out what `hv.send` and `hv.ask` address: the
    /// address and method (UTF-8) and the body, each a `(ptr, len)`;
    /// `what` names the three in errors.
    fn read_wave(
        &mut self,
        store: &impl AsStoreRef,
        what: [&str; 3],
        to: (i32, i32),
        method: (i32, i32),
        body: (i32, i32),
    ) -> Result<(String, String, Vec<u8>), HostFault> {
        // Each wave also costs its overhead, so that empty ones cannot
        // queue without bound.
        self.charge(&[to.1, method.1, body.1, SEND_OVERHEAD])?;
        Ok((
            self.read_utf8(store, to.0, to.1, what[0])?,
            self.read_utf8(store, method.0, method.1, what[1])?,
            self.read(store, body.0, body.1, what[2])?,
        ))
    }

    /// Hands out the next tag (never 0: tags are positive).
    fn tag(&mut self) -> u64 {
        self.context.next_tag = self.context.next_tag.max(1);
        let tag = self.context.next_tag;
        self.context.next_tag += 1;
        tag
    }

    /// Queues `effect` after the sends so far.
    fn queue(&mut self, effect: GuestEffect) {
        let at = self.output.sends.len();
        self.output.effects.push((at, effect));
    }

    /// Writes `text` at `ptr` if it fits in `cap` bytes; its length either way.
    fn write_text(
        &self,
        store: &impl AsStoreRef,
        text: &str,
        ptr: i32,
        cap: i32,
        what: &str,
    ) -> Result<i32, HostFault> {
        let len = text.len();
        if len <= cap as u32 as usize {
            let memory = self
                .memory
                .as_ref()
                .ok_or_else(|| HostFault::Abi(format!("{what}: guest memory is not set up yet")))?;
            let view = memory.view(store);
            let start = u64::from(ptr as u32);
            if start + len as u64 > view.data_size() || view.write(start, text.as_bytes()).is_err()
            {
                return Err(HostFault::Abi(format!(
                    "{what} buffer at {start:#x}+{len} lies outside guest memory"
                )));
            }
        }
        Ok(len as i32)
    }
}

/// `hv.self(ptr, cap) -> len`: the particle's own Point.
fn hv_self(mut env: FunctionEnvMut<HostEnv>, ptr: i32, cap: i32) -> Result<i32, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let me = data.context.me.clone();
    data.write_text(&store, &me, ptr, cap, "hv.self")
        .map_err(|fault| data.fail(fault))
}

/// `hv.parent(ptr, cap) -> len`: the parent's Point, -1 if none.
fn hv_parent(mut env: FunctionEnvMut<HostEnv>, ptr: i32, cap: i32) -> Result<i32, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let Some(parent) = data.context.parent.clone() else {
        return Ok(-1);
    };
    data.write_text(&store, &parent, ptr, cap, "hv.parent")
        .map_err(|fault| data.fail(fault))
}

/// `hv.restarts() -> i32`.
fn hv_restarts(env: FunctionEnvMut<HostEnv>) -> i32 {
    env.data().context.restarts.min(i32::MAX as u32) as i32
}

/// `hv.ask(...) -> tag`: queue a request.
#[allow(clippy::too_many_arguments)]
fn hv_ask(
    mut env: FunctionEnvMut<HostEnv>,
    to_ptr: i32,
    to_len: i32,
    method_ptr: i32,
    method_len: i32,
    body_ptr: i32,
    body_len: i32,
    timeout_ms: i32,
) -> Result<i64, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let queued = (|| {
        if let Some(refused) = data.may_queue("hv.ask")? {
            return Ok(refused);
        }
        let open = data
            .output
            .effects
            .iter()
            .filter(|(_, e)| matches!(e, GuestEffect::Ask { .. }))
            .count();
        if data.context.open_requests + open >= MAX_OPEN_REQUESTS {
            return Ok(REFUSED_OPEN);
        }
        let timeout_ms = match timeout_ms as u32 {
            0 => DEFAULT_ASK_TIMEOUT_MS,
            t if t > MAX_DELAY_MS => return Ok(REFUSED_DELAY),
            t => t,
        };
        let (to, method, body) = data.read_wave(
            &store,
            ["hv.ask address", "hv.ask method", "hv.ask body"],
            (to_ptr, to_len),
            (method_ptr, method_len),
            (body_ptr, body_len),
        )?;
        if !data.allows(Privilege::Ask, &to) {
            return Ok(REFUSED_DENIED);
        }
        let tag = data.tag();
        data.queue(GuestEffect::Ask {
            tag,
            to,
            method,
            body,
            timeout_ms,
        });
        Ok(tag as i64)
    })();
    queued.map_err(|fault| data.fail(fault))
}

/// `hv.spawn(...) -> tag`: queue spawning a child.
#[allow(clippy::too_many_arguments)]
fn hv_spawn(
    mut env: FunctionEnvMut<HostEnv>,
    name_ptr: i32,
    name_len: i32,
    kind_ptr: i32,
    kind_len: i32,
    args_ptr: i32,
    args_len: i32,
    flags: i32,
) -> Result<i64, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let queued = (|| {
        if let Some(refused) = data.may_queue("hv.spawn")? {
            return Ok(refused);
        }
        data.charge(&[name_len, kind_len, args_len, SEND_OVERHEAD])?;
        let name = data.read_utf8(&store, name_ptr, name_len, "hv.spawn name")?;
        let kind = data.read_utf8(&store, kind_ptr, kind_len, "hv.spawn kind")?;
        let args = data.read(&store, args_ptr, args_len, "hv.spawn args")?;
        let tag = data.tag();
        data.queue(GuestEffect::Spawn {
            tag,
            name,
            kind,
            args,
            temporary: flags & 1 != 0,
        });
        Ok(tag as i64)
    })();
    queued.map_err(|fault| data.fail(fault))
}

/// `hv.stop(ptr, len) -> tag`: queue stopping a particle of the subtree.
fn hv_stop(mut env: FunctionEnvMut<HostEnv>, ptr: i32, len: i32) -> Result<i64, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let queued = (|| {
        if let Some(refused) = data.may_queue("hv.stop")? {
            return Ok(refused);
        }
        data.charge(&[len, SEND_OVERHEAD])?;
        let point = data.read_utf8(&store, ptr, len, "hv.stop point")?;
        let tag = data.tag();
        data.queue(GuestEffect::Stop { tag, point });
        Ok(tag as i64)
    })();
    queued.map_err(|fault| data.fail(fault))
}

/// `hv.timer(delay_ms, ...) -> id`: a wave to itself after a delay.
fn hv_timer(
    mut env: FunctionEnvMut<HostEnv>,
    delay_ms: i32,
    method_ptr: i32,
    method_len: i32,
    body_ptr: i32,
    body_len: i32,
) -> Result<i64, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let queued = (|| {
        if let Some(refused) = data.may_queue("hv.timer")? {
            return Ok(refused);
        }
        if delay_ms as u32 > MAX_DELAY_MS {
            return Ok(REFUSED_DELAY);
        }
        let open = data
            .output
            .effects
            .iter()
            .filter(|(_, e)| matches!(e, GuestEffect::Timer { .. }))
            .count();
        if data.context.open_timers + open >= MAX_OPEN_TIMERS {
            return Ok(REFUSED_OPEN);
        }
        data.charge(&[method_len, body_len, SEND_OVERHEAD])?;
        let method = data.read_utf8(&store, method_ptr, method_len, "hv.timer method")?;
        let body = data.read(&store, body_ptr, body_len, "hv.timer body")?;
        let id = data.tag();
        data.queue(GuestEffect::Timer {
            id,
            delay_ms: delay_ms as u32,
            method,
            body,
        });
        Ok(id as i64)
    })();
    queued.map_err(|fault| data.fail(fault))
}

/// The longest `hv.crash` message kept.
const MAX_CRASH_MESSAGE: i32 = 4096;

/// `hv.crash(code, ptr, len)`: ends the call as a crash with a structured
/// reason. Never returns to the guest.
fn hv_crash(
    mut env: FunctionEnvMut<HostEnv>,
    code: i32,
    ptr: i32,
    len: i32,
) -> Result<(), RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let len = (len as u32).min(MAX_CRASH_MESSAGE as u32) as i32;
    let fault = match data.read(&store, ptr, len, "hv.crash message") {
        Ok(bytes) => HostFault::Crash {
            code,
            message: String::from_utf8_lossy(&bytes).into_owned(),
        },
        Err(fault) => fault,
    };
    Err(data.fail(fault))
}

/// Sends a guest's log line to `tracing`, under this crate's target.
fn emit(module: &str, line: &GuestLog) {
    let message = line.message.as_str();
    match line.level {
        LogLevel::Error => tracing::error!(module, "{message}"),
        LogLevel::Warn => tracing::warn!(module, "{message}"),
        LogLevel::Info => tracing::info!(module, "{message}"),
        LogLevel::Debug => tracing::debug!(module, "{message}"),
        LogLevel::Trace => tracing::trace!(module, "{message}"),
    }
}
