//! One running guest: a wasmer instance in its own `Store`.
//!
//! Each `GuestInstance` owns its `Store`. wasmer frees an instance (its
//! memory, tables, globals) only when the `Store` holding it is dropped,
//! so a Store shared by many incarnations would grow with every restart;
//! one Store per instance means dropping the `GuestInstance` frees it all.
//! The Store is made from the compiled module's own engine, whose tunables
//! give the memory ceiling and the stack size.
//!
//! Every call goes the same way: reset the fuel, clear the host buffer,
//! note this thread's count of memory-ceiling hits, call, then classify.
//! Any failure of the guest comes back as a [`ModuleError`]: fuel spent
//! (`OutOfFuel`), a grow refused at the ceiling (`MemoryLimit`, even if the
//! guest coped with the -1), a rule broken in a host function
//! (`AbiViolation`, `OutputLimit`), the guard page of the stack
//! (`StackOverflow`), or any other trap (`Trap`, with wasmer's message). A
//! guest cannot panic the host: wasmer catches traps, and the host
//! functions return errors instead of panicking.
//!
//! After an error the instance is still safe to call (WebAssembly state is
//! simply where the trap left it, and the next call gets fresh fuel), but
//! the guest's own state may be half-updated: the runtime should count the
//! call as a crash and start a fresh instance.

use std::fmt;
use std::sync::Arc;

use wasmer::sys::vm::TrapCode;
use wasmer::{
    FunctionEnv, Global, Instance, InstantiationError, Memory, RuntimeError, Store, TypedFunction,
    Value,
};

use crate::abi::{self, ABI_VERSION, MEMORY_EXPORT, MIN_ABI_VERSION};
use crate::error::ModuleError;
use crate::host::{self, CallContext, HandleOutput, HostEnv, HostFault, Phase};
use crate::store::CompiledModule;
use crate::tunables::ceiling_hits;
use crate::version::ModuleVersion;

/// A guest call that failed, before it is classified.
enum Failure {
    /// wasmer returned an error from calling `export`.
    Runtime(&'static str, RuntimeError),
    /// The host found `export`'s result unusable (a pointer outside memory).
    Abi(&'static str, String),
}

/// The metering globals of one instance, looked up once: wasmer's
/// `set_remaining_points`/`get_remaining_points` do the same reads and
/// writes but look both globals up by name on every call.
struct Fuel {
    remaining: Global,
    exhausted: Global,
    /// True if the last call ran out, so `exhausted` must be cleared.
    ran_out: bool,
    /// The fuel the last call was given (0 before any).
    budget: u64,
}

/// A running instance of a [`CompiledModule`]; see the module docs.
///
/// ```
/// use hyperverse_modules::{guests, Limits, ModuleError, ModuleStore};
///
/// let store = ModuleStore::new(Limits::default());
/// let v1 = store.load_wat("counter", guests::COUNTER_V1)?;
/// let mut guest = v1.instantiate()?;
/// guest.init(&41u64.to_le_bytes())?; // start at 41
/// guest.handle("add", &[])?;
/// let get = guest.handle("get", &[])?;
/// assert_eq!(get.reply, Some(42u64.to_le_bytes().to_vec()));
///
/// // A hot reload: snapshot in v1, restore in a v2 instance.
/// let v2 = store.load_wat("counter", guests::COUNTER_V2)?;
/// let state = guest.snapshot()?;
/// let mut guest = v2.instantiate()?;
/// guest.restore(&state)?;
/// assert_eq!(guest.handle("version", &[])?.reply, Some(vec![2]));
///
/// // A guest that loops forever is stopped by its fuel.
/// let looper = store.load_wat("looper", guests::LOOPER)?;
/// let err = looper.instantiate()?.handle("spin", &[]).unwrap_err();
/// assert!(matches!(err, ModuleError::OutOfFuel { .. }));
/// # Ok::<(), ModuleError>(())
/// ```
pub struct GuestInstance {
    module: CompiledModule,
    name: Arc<str>,
    store: Store,
    env: FunctionEnv<HostEnv>,
    memory: Memory,
    fuel: Fuel,
    alloc: TypedFunction<i32, i32>,
    init: TypedFunction<(i32, i32), i32>,
    handle: TypedFunction<(i32, i32, i32, i32), i32>,
    snapshot: TypedFunction<(), i64>,
    restore: TypedFunction<(i32, i32), i32>,
    /// ABI v2's optional exports.
    on_reply: Option<TypedFunction<(i64, i32, i32, i32), i32>>,
    #[allow(clippy::type_complexity)]
    on_crash_notice: Option<TypedFunction<(i32, i32, i32, i32, i32, i32, i32), i32>>,
    /// The guest's `hv_inbox` (pointer, length), if it exports one: where
    /// a call's bytes are written when they fit, saving the `alloc` call.
    inbox: Option<(u32, u32)>,
    /// Counters for the next call's context ([`GuestInstance::set_open`]).
    open: Option<(u64, usize, usize)>,
    /// The context's next tag after the last call.
    next_tag: u64,
    // The Store owns the instance itself; this handle (like the exports
    // above, indexes into the Store) is kept for its other exports
    // (`table_size`).
    _instance: Instance,
}

impl fmt::Debug for GuestInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestInstance")
            .field("version", self.module.version())
            .field("last_fuel_budget", &self.fuel.budget)
            .finish_non_exhaustive()
    }
}

impl GuestInstance {
    /// Instantiates `module` in a new Store with the host functions, and
    /// checks that it speaks this host's ABI version. Does not call `init`.
    pub fn new(module: &CompiledModule) -> Result<Self, ModuleError> {
        let name: Arc<str> = module.version().name.clone();
        let limits = *module.limits();
        let mut store = Store::new(module.engine().clone());
        let env = FunctionEnv::new(
            &mut store,
            HostEnv::new(name.clone(), limits.max_output_bytes),
        );
        // Only what the guest imports, in its order: no lookup by name.
        let imports = host::host_externs(&mut store, &env, module.host_imports());

        let hits = ceiling_hits();
        let instance = Instance::new_by_index(&mut store, module.wasmer_module(), &imports)
            .map_err(|e| {
                let message = match e {
                    InstantiationError::Start(trap) => {
                        format!("start function: {}", trap.message())
                    }
                    other => other.to_string(),
                };
                ModuleError::Instantiate {
                    module: name.to_string(),
                    message,
                }
            })?;
        if ceiling_hits() != hits {
            return Err(ModuleError::MemoryLimit {
                module: name.to_string(),
                export: "start".into(),
                max_pages: limits.effective_max_pages(),
            });
        }

        // The load validated these, so a failure here is wasmer's surprise,
        // still reported rather than unwrapped.
        let wrong = |export: &str, e: &dyn fmt::Display| ModuleError::Instantiate {
            module: name.to_string(),
            message: format!("export `{export}`: {e}"),
        };
        let exports = &instance.exports;
        let memory = exports
            .get_memory(MEMORY_EXPORT)
            .map_err(|e| wrong(MEMORY_EXPORT, &e))?
            .clone();
        let global = |export: &str| {
            exports
                .get_global(export)
                .cloned()
                .map_err(|e| wrong(export, &e))
        };
        let fuel = Fuel {
            remaining: global(abi::METERING_EXPORTS[0])?,
            exhausted: global(abi::METERING_EXPORTS[1])?,
            ran_out: false,
            budget: 0,
        };
        macro_rules! typed {
            ($spec:expr) => {
                exports
                    .get_typed_function(&store, $spec.name)
                    .map_err(|e| wrong($spec.name, &e))?
            };
        }
        let version: TypedFunction<(), i32> = typed!(abi::HV_ABI_VERSION);
        let on_reply = exports.get_typed_function(&store, abi::ON_REPLY.name).ok();
        let on_crash_notice = exports
            .get_typed_function(&store, abi::ON_CRASH_NOTICE.name)
            .ok();
        let inbox: Option<TypedFunction<(), i64>> =
            exports.get_typed_function(&store, abi::INBOX.name).ok();
        let mut guest = Self {
            alloc: typed!(abi::ALLOC),
            init: typed!(abi::INIT),
            handle: typed!(abi::HANDLE),
            snapshot: typed!(abi::SNAPSHOT),
            restore: typed!(abi::RESTORE),
            on_reply,
            on_crash_notice,
            module: module.clone(),
            name,
            store,
            env,
            memory: memory.clone(),
            fuel,
            inbox: None,
            open: None,
            next_tag: 0,
            _instance: instance,
        };
        guest.env.as_mut(&mut guest.store).memory = Some(memory);

        let (found, _) = guest.run(Phase::Idle, |g| {
            version
                .call(&mut g.store)
                .map_err(|e| Failure::Runtime(abi::HV_ABI_VERSION.name, e))
        })?;
        if !(MIN_ABI_VERSION..=ABI_VERSION).contains(&found) {
            return Err(ModuleError::AbiVersion {
                module: guest.name.to_string(),
                found,
                supported: ABI_VERSION,
            });
        }
        if let Some(inbox) = inbox {
            let (packed, _) = guest.run(Phase::Idle, |g| {
                inbox
                    .call(&mut g.store)
                    .map_err(|e| Failure::Runtime(abi::INBOX.name, e))
            })?;
            let (ptr, len) = unpack(packed);
            let size = guest.memory.view(&guest.store).data_size();
            // An empty inbox is no inbox, wherever it points.
            if len > 0 && u64::from(ptr) + u64::from(len) > size {
                return Err(ModuleError::AbiViolation {
                    module: guest.name.to_string(),
                    export: abi::INBOX.name.to_string(),
                    message: format!(
                        "inbox at {ptr:#x}+{len} lies outside guest memory ({size} bytes)"
                    ),
                });
            }
            guest.inbox = (len > 0).then_some((ptr, len));
        }
        Ok(guest)
    }

    /// Sets what the next calls may know of their particle and how much
    /// they have open (ABI v2: `hv.self`, `hv.parent`, `hv.restarts`, and
    /// the bounds on asks and timers). Kept until set again.
    pub fn set_context(&mut self, context: CallContext) {
        self.open = None;
        self.next_tag = context.next_tag;
        self.env.as_mut(&mut self.store).context = context;
    }

    /// Has the access rules judge each wave the guest sends or asks for
    /// (`None`: every wave is queued for the caller to judge). Kept until
    /// set again.
    pub(crate) fn set_judge(&mut self, judge: Option<host::Judge>) {
        self.env.as_mut(&mut self.store).judge = judge;
    }

    /// The judge set with [`GuestInstance::set_judge`], for the instance
    /// that takes this one's place in a reload.
    pub(crate) fn judge(&self) -> Option<host::Judge> {
        self.env.as_ref(&self.store).judge.clone()
    }

    /// The context as the last call left it: its `next_tag` is past every
    /// tag and timer id handed out so far.
    pub fn context(&self) -> &CallContext {
        &self.env.as_ref(&self.store).context
    }

    /// Updates only the counters of the context, for the next call (cheap,
    /// per call: applied as that call begins).
    pub fn set_open(&mut self, next_tag: u64, open_requests: usize, open_timers: usize) {
        self.open = Some((next_tag, open_requests, open_timers));
    }

    /// The context's next tag as the last call left it (what
    /// `context().next_tag` says, without reaching into the Store).
    pub fn next_tag(&self) -> u64 {
        self.next_tag
    }

    /// True if the guest exports `on_crash_notice` (ABI v2).
    pub fn takes_crash_notices(&self) -> bool {
        self.on_crash_notice.is_some()
    }

    /// Calls the guest's `on_reply` with the outcome of a tagged request;
    /// a guest without it (v1) ignores the outcome.
    pub fn on_reply(
        &mut self,
        tag: u64,
        status: i32,
        body: &[u8],
    ) -> Result<HandleOutput, ModuleError> {
        let Some(f) = self.on_reply.clone() else {
            return Ok(HandleOutput::default());
        };
        let (status, output) = self.run(Phase::OnReply, |g| {
            let ptr = g.pass_in(body)?;
            f.call(&mut g.store, tag as i64, status, ptr, body.len() as i32)
                .map_err(|e| Failure::Runtime(abi::ON_REPLY.name, e))
        })?;
        self.check_status(abi::ON_REPLY.name, status)?;
        Ok(output)
    }

    /// Calls the guest's `on_crash_notice` about a child's crash; a guest
    /// without it ignores the notice.
    pub fn on_crash_notice(
        &mut self,
        child: &str,
        code: i32,
        reason: &str,
        restarts: u32,
        gave_up: bool,
    ) -> Result<HandleOutput, ModuleError> {
        let Some(f) = self.on_crash_notice.clone() else {
            return Ok(HandleOutput::default());
        };
        let (status, output) = self.run(Phase::OnCrashNotice, |g| {
            let ptr = g.pass_in_two(child.as_bytes(), reason.as_bytes())?;
            let reason_ptr = (ptr as u32).wrapping_add(child.len() as u32) as i32;
            f.call(
                &mut g.store,
                ptr,
                child.len() as i32,
                code,
                reason_ptr,
                reason.len() as i32,
                restarts.min(i32::MAX as u32) as i32,
                gave_up as i32,
            )
            .map_err(|e| Failure::Runtime(abi::ON_CRASH_NOTICE.name, e))
        })?;
        self.check_status(abi::ON_CRASH_NOTICE.name, status)?;
        Ok(output)
    }

    /// The compiled module (and so the version) this instance runs.
    pub fn module(&self) -> &CompiledModule {
        &self.module
    }

    /// The version this instance runs.
    pub fn version(&self) -> &ModuleVersion {
        self.module.version()
    }

    /// The fuel the last call used (all of it if it ran out).
    ///
    /// `&mut`: it reads the guest's fuel global, which wasmer reads through
    /// the Store mutably; a call does not read it for nothing.
    pub fn last_fuel_used(&mut self) -> u64 {
        if self.fuel.ran_out {
            return self.fuel.budget;
        }
        match self.fuel.remaining.get(&mut self.store) {
            Value::I64(left) => self.fuel.budget.saturating_sub(left as u64),
            _ => 0,
        }
    }

    /// The guest memory's current size in 64 KiB pages.
    pub fn memory_pages(&self) -> u32 {
        self.memory.view(&self.store).size().0
    }

    /// The current size of the table the guest exports as `export`, in
    /// entries, if it exports one by that name. For diagnostics and the
    /// sandbox's tests: every table, exported or not, is capped by
    /// [`Limits::max_table_elements`](crate::Limits::max_table_elements).
    pub fn table_size(&self, export: &str) -> Option<u32> {
        let table = self._instance.exports.get_table(export).ok()?;
        Some(table.size(&self.store))
    }

    /// Calls the guest's `init` with the spawn arguments. Its sends and logs
    /// come back in the output (`reply` is always `None`).
    pub fn init(&mut self, args: &[u8]) -> Result<HandleOutput, ModuleError> {
        let (status, output) = self.run(Phase::Init, |g| {
            let ptr = g.pass_in(args)?;
            g.init
                .call(&mut g.store, ptr, args.len() as i32)
                .map_err(|e| Failure::Runtime(abi::INIT.name, e))
        })?;
        self.check_status(abi::INIT.name, status)?;
        Ok(output)
    }

    /// Calls the guest's `handle` with one wave: its reply, sends and logs.
    pub fn handle(&mut self, method: &str, body: &[u8]) -> Result<HandleOutput, ModuleError> {
        let (status, output) = self.run(Phase::Handle, |g| {
            // One guest allocation for both: the method first, the body
            // right after it (written in two copies, no host allocation).
            let ptr = g.pass_in_two(method.as_bytes(), body)?;
            let body_ptr = (ptr as u32).wrapping_add(method.len() as u32) as i32;
            g.handle
                .call(
                    &mut g.store,
                    ptr,
                    method.len() as i32,
                    body_ptr,
                    body.len() as i32,
                )
                .map_err(|e| Failure::Runtime(abi::HANDLE.name, e))
        })?;
        self.check_status(abi::HANDLE.name, status)?;
        Ok(output)
    }

    /// Calls the guest's `snapshot`: its state as bytes, for a `restore` in
    /// this or a newer version.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, ModuleError> {
        let (bytes, _) = self.run(Phase::Snapshot, |g| {
            let packed = g
                .snapshot
                .call(&mut g.store)
                .map_err(|e| Failure::Runtime(abi::SNAPSHOT.name, e))?;
            let (ptr, len) = unpack(packed);
            let (ptr, len) = (ptr as i32, len as i32);
            host::read_guest(&g.memory, &g.store, ptr, len).ok_or_else(|| {
                Failure::Abi(
                    abi::SNAPSHOT.name,
                    format!(
                        "snapshot at {:#x}+{} lies outside guest memory",
                        ptr as u32, len as u32
                    ),
                )
            })
        })?;
        Ok(bytes)
    }

    /// Calls the guest's `restore` with a snapshot's bytes.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), ModuleError> {
        let (status, _) = self.run(Phase::Restore, |g| {
            let ptr = g.pass_in(state)?;
            g.restore
                .call(&mut g.store, ptr, state.len() as i32)
                .map_err(|e| Failure::Runtime(abi::RESTORE.name, e))
        })?;
        self.check_status(abi::RESTORE.name, status)
    }

    /// Copies `first` and `second`, one after the other, into one guest
    /// allocation; the pointer to `first`.
    fn pass_in_two(&mut self, first: &[u8], second: &[u8]) -> Result<i32, Failure> {
        let total = first.len() + second.len();
        let len = i32::try_from(total)
            .map_err(|_| Failure::Abi(abi::ALLOC.name, format!("{total} bytes do not fit i32")))?;
        let ptr = self.room_for(len)?;
        let view = self.memory.view(&self.store);
        let start = u64::from(ptr as u32);
        if start + total as u64 > view.data_size()
            || view.write(start, first).is_err()
            || view.write(start + first.len() as u64, second).is_err()
        {
            return Err(Failure::Abi(
                abi::ALLOC.name,
                format!("alloc({len}) returned {start:#x}, outside guest memory"),
            ));
        }
        Ok(ptr)
    }

    /// Where `len` bytes in go: the guest's inbox if they fit, else what
    /// its `alloc` returns. (The caller checks the range either way: a
    /// guest's memory only grows, but its `alloc` may lie.)
    fn room_for(&mut self, len: i32) -> Result<i32, Failure> {
        match self.inbox {
            Some((ptr, room)) if len as u32 <= room => Ok(ptr as i32),
            _ => self
                .alloc
                .call(&mut self.store, len)
                .map_err(|e| Failure::Runtime(abi::ALLOC.name, e)),
        }
    }

    /// Copies `bytes` into guest memory through the guest's inbox or its
    /// `alloc`.
    fn pass_in(&mut self, bytes: &[u8]) -> Result<i32, Failure> {
        let len = i32::try_from(bytes.len()).map_err(|_| {
            Failure::Abi(
                abi::ALLOC.name,
                format!("{} bytes do not fit i32", bytes.len()),
            )
        })?;
        let ptr = self.room_for(len)?;
        let view = self.memory.view(&self.store);
        let start = u64::from(ptr as u32);
        if start + bytes.len() as u64 > view.data_size() || view.write(start, bytes).is_err() {
            return Err(Failure::Abi(
                abi::ALLOC.name,
                format!("alloc({len}) returned {start:#x}, outside guest memory"),
            ));
        }
        Ok(ptr)
    }

    fn check_status(&self, export: &str, status: i32) -> Result<(), ModuleError> {
        if status == 0 {
            Ok(())
        } else {
            Err(ModuleError::GuestStatus {
                module: self.name.to_string(),
                export: export.to_string(),
                status,
            })
        }
    }

    /// Runs one call of `phase`: fresh fuel and buffer, then `body`, then
    /// the classification of what happened (see the module docs).
    fn run<T>(
        &mut self,
        phase: Phase,
        body: impl FnOnce(&mut Self) -> Result<T, Failure>,
    ) -> Result<(T, HandleOutput), ModuleError> {
        let fuel = self.module.limits().effective_fuel();
        let reset = self
            .fuel
            .remaining
            .set(&mut self.store, Value::I64(fuel as i64))
            .and_then(|()| {
                // Set only by a call that ran out (the guest's code cannot
                // reach the metering globals): cleared only then.
                if self.fuel.ran_out {
                    self.fuel.exhausted.set(&mut self.store, Value::I32(0))
                } else {
                    Ok(())
                }
            });
        if let Err(e) = reset {
            return Err(self.trap(phase.export(), e.message()));
        }
        let env = self.env.as_mut(&mut self.store);
        if let Some((next_tag, requests, timers)) = self.open.take() {
            let c = &mut env.context;
            c.next_tag = next_tag;
            c.open_requests = requests;
            c.open_timers = timers;
        }
        env.begin(phase);
        let hits = ceiling_hits();

        let result = body(self);

        // Running out traps, so a call that succeeded did not: the flag is
        // read only for a failure. What the call used is read from the
        // remaining fuel when asked (`last_fuel_used`), not on every call.
        let exhausted =
            result.is_err() && !matches!(self.fuel.exhausted.get(&mut self.store), Value::I32(0));
        self.fuel.ran_out = exhausted;
        self.fuel.budget = fuel;
        let env = self.env.as_mut(&mut self.store);
        self.next_tag = env.context.next_tag;
        let (output, fault) = env.end();
        let hit_ceiling = ceiling_hits() != hits;

        // Named only on failure: a call that succeeds allocates nothing here.
        let module = || self.name.to_string();
        match result {
            Ok(value) if !hit_ceiling => Ok((value, output)),
            Ok(_) => Err(ModuleError::MemoryLimit {
                module: module(),
                export: phase.export().into(),
                max_pages: self.module.limits().effective_max_pages(),
            }),
            Err(Failure::Abi(export, message)) => Err(ModuleError::AbiViolation {
                module: module(),
                export: export.into(),
                message,
            }),
            Err(Failure::Runtime(export, error)) => {
                let export = export.to_string();
                if exhausted {
                    return Err(ModuleError::OutOfFuel {
                        module: module(),
                        export,
                        fuel,
                    });
                }
                if hit_ceiling {
                    return Err(ModuleError::MemoryLimit {
                        module: module(),
                        export,
                        max_pages: self.module.limits().effective_max_pages(),
                    });
                }
                match fault {
                    Some(HostFault::Abi(message)) => {
                        return Err(ModuleError::AbiViolation {
                            module: module(),
                            export,
                            message,
                        })
                    }
                    Some(HostFault::OutputLimit) => {
                        return Err(ModuleError::OutputLimit {
                            module: module(),
                            export,
                            limit_bytes: self.module.limits().max_output_bytes,
                        })
                    }
                    Some(HostFault::Crash { code, message }) => {
                        return Err(ModuleError::GuestCrash {
                            module: module(),
                            export,
                            code,
                            message,
                        })
                    }
                    None => {}
                }
                let message = error.message();
                if error.to_trap() == Some(TrapCode::StackOverflow) {
                    return Err(ModuleError::StackOverflow {
                        module: module(),
                        export,
                        stack_bytes: self.module.limits().effective_stack_bytes(),
                    });
                }
                Err(ModuleError::Trap {
                    module: module(),
                    export,
                    message,
                })
            }
        }
    }

    fn trap(&self, export: &str, message: String) -> ModuleError {
        ModuleError::Trap {
            module: self.name.to_string(),
            export: export.to_string(),
            message,
        }
    }
}

/// `(ptr, len)` from the ABI's packed `(ptr << 32) | len` (`snapshot`,
/// `hv_inbox`), both read as unsigned.
fn unpack(packed: i64) -> (u32, u32) {
    ((packed as u64 >> 32) as u32, packed as u64 as u32)
}
