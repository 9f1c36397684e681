//! The host functions a guest may import, and the buffer they fill.
//!
//! A host function cannot reach the runtime (this crate has no runtime
//! dependency, and a wave sent mid-call must not be delivered if the call
//! then crashes), so `send`, `reply` and `log` only copy bytes out of guest
//! memory into a [`HandleOutput`] that the caller takes after the call: the
//! runtime delivers the sends and the reply only when the call succeeded,
//! which makes each wave all-or-nothing. Logs are also emitted through
//! `tracing` at once, so a guest that crashes still leaves its logs behind.
//!
//! Host functions never panic: a bad pointer, a non-UTF-8 method, a second
//! reply or too much output records a fault in the env and returns a
//! `RuntimeError`, which unwinds the guest; the instance then reports the
//! recorded fault as `AbiViolation` or `OutputLimit` rather than a bare trap.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmer::{
    imports, AsStoreMut, AsStoreRef, Function, FunctionEnv, FunctionEnvMut, Imports, Memory,
    RuntimeError,
};

use crate::abi::{HOST_MODULE, LOG, NOW_MS, REPLY, SEND};
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
    pub refused_sends: u32,
}

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
        }
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
        }
    }

    /// Starts a call of `phase` with an empty buffer.
    pub(crate) fn begin(&mut self, phase: Phase) {
        self.phase = phase;
        self.output = HandleOutput::default();
        self.output_bytes = 0;
        self.fault = None;
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

/// The `hv` imports, bound to `env`.
pub(crate) fn host_imports(store: &mut impl AsStoreMut, env: &FunctionEnv<HostEnv>) -> Imports {
    imports! {
        HOST_MODULE => {
            SEND.name => Function::new_typed_with_env(store, env, hv_send),
            REPLY.name => Function::new_typed_with_env(store, env, hv_reply),
            LOG.name => Function::new_typed_with_env(store, env, hv_log),
            NOW_MS.name => Function::new_typed(store, hv_now_ms),
        }
    }
}

/// What one `hv.send` costs against the output limit beyond its bytes:
/// about the host's own bookkeeping for a wave.
const SEND_OVERHEAD: i32 = 64;

/// What `hv.send` returns when it refuses a wave because the call already
/// queued [`MAX_SENDS_PER_CALL`]: nothing is queued.
const SEND_REFUSED: i32 = 1;

/// `hv.send`: queue a signal wave (allowed in `init` and `handle`), unless
/// the call already queued [`MAX_SENDS_PER_CALL`]: then it is counted as
/// refused and nothing is read or buffered (the guest runs on, but the
/// runtime fails the call; a direct caller sees `refused_sends`).
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
        if !matches!(data.phase, Phase::Init | Phase::Handle) {
            return Err(HostFault::Abi(format!(
                "hv.send is allowed in init and handle, not in {}",
                data.phase
            )));
        }
        // Counted before anything is charged or copied: the guest cannot
        // make the host hold more than this many waves per call.
        if data.output.sends.len() >= MAX_SENDS_PER_CALL as usize {
            data.output.refused_sends = data.output.refused_sends.saturating_add(1);
            return Ok(SEND_REFUSED);
        }
        // Each send also costs its overhead, so that empty sends cannot
        // queue without bound.
        data.charge(&[to_len, method_len, body_len, SEND_OVERHEAD])?;
        let to = data.read_utf8(&store, to_ptr, to_len, "hv.send address")?;
        let method = data.read_utf8(&store, method_ptr, method_len, "hv.send method")?;
        let body = data.read(&store, body_ptr, body_len, "hv.send body")?;
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
