//! Making wasmer engines, and the key that says which artifacts fit one.
//!
//! A compile gets a fresh engine: wasmer's `Metering` middleware records the
//! indexes of the fuel globals it adds to the module it instruments and
//! panics if asked to instrument a second module, and a middleware lives in
//! the engine's compiler config. So each compile (each load of new bytes,
//! each reload) builds its own Cranelift config, middlewares and engine, and
//! the compiled module keeps that engine: every `Store` an instance of it
//! runs in is made from it (`Store::new(engine.clone())`), because the store's
//! engine supplies the tunables (memory ceiling, table cap, stack size) at
//! instantiation and call time, and the module's code was registered with
//! that engine. Engines are reference-counted, so this costs a pointer copy.
//!
//! The engine is where the sandbox is rooted:
//!
//! - its [`sandbox_features`] are the WebAssembly features a guest may use;
//!   anything else (threads, multi-memory, memory64, exceptions, tail
//!   calls...) fails validation before a line is compiled. `modules/ABI.md`
//!   ("Features") says why each is on or off.
//! - two middlewares make fuel bound a call's time: wasmer's `Metering`
//!   charges each operator a fixed [`operator_cost`] at the end of its basic
//!   block, and [`Charges`] charges, *before* the operator runs, each
//!   operator whose work grows with an operand (`memory.fill` of 16 MiB is
//!   one operator) by that operand.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use wasmer::sys::{
    CompilerConfig, Cranelift, EngineBuilder, Features, FunctionMiddleware, MiddlewareError,
    MiddlewareReaderState, ModuleMiddleware, NativeEngineExt,
};
use wasmer::wasmparser::{BlockType, Operator};
use wasmer::{
    Engine, ExportIndex, ExternType, GlobalInit, GlobalType, LocalFunctionIndex, ModuleInfo,
    Mutability, Type,
};
use wasmer_middlewares::Metering;

use crate::abi::{self, HOST_MODULE};
use crate::limits::Limits;
use crate::tunables::SandboxTunables;
use crate::version::ContentHash;

/// The WebAssembly features a guest may use; everything else is refused by
/// the validator. See `modules/ABI.md`, "Features", for each choice.
///
/// On: the MVP, multi-value, sign extension, saturating float-to-int and
/// mutable globals (the MVP-era proposals every toolchain emits), bulk
/// memory and reference types (emitted by default by current Rust and
/// LLVM; their operand-sized operators are charged by [`Charges`], tables
/// are capped), SIMD (fixed-width, each operator O(1)) and extended
/// constant expressions (only in initializers).
///
/// Off: threads (a shared memory's `atomic.wait` blocks the host thread),
/// multi-memory (one ceiling per memory), memory64 (a 64-bit memory is
/// outside the page accounting), exceptions, tail calls, relaxed SIMD
/// (results differ between hosts), wide arithmetic and module linking
/// (not needed by guests; every feature is attack surface in the
/// compiler).
pub(crate) fn sandbox_features() -> Features {
    let mut features = Features::none();
    features
        .multi_value(true)
        // `reference_types(true)` also turns bulk memory on, as wasmer
        // requires; both explicitly, for the reader.
        .bulk_memory(true)
        .reference_types(true)
        .simd(true)
        .extended_const(true);
    features
}

/// The fixed fuel one operator costs, charged by wasmer's metering at the
/// end of its basic block. One each, simple and predictable for guest
/// authors ("10 million operators per call"; wasmer's metering adds the
/// accounting itself at branches), except the few operators wasmer runs as
/// a call into the host, which cost [`price::LIBCALL`] or
/// [`price::SEGMENT_DROP`]. The operators whose
/// work depends on an operand pay more through [`Charges`], before they
/// run.
fn operator_cost(operator: &Operator<'_>) -> u64 {
    match operator {
        Operator::MemorySize { .. }
        | Operator::TableGet { .. }
        | Operator::TableSet { .. }
        | Operator::TableSize { .. }
        | Operator::RefFunc { .. } => price::LIBCALL,
        Operator::DataDrop { .. } | Operator::ElemDrop { .. } => price::SEGMENT_DROP,
        _ => 1,
    }
}

/// Bumped whenever what this crate puts into an artifact changes (the
/// middleware chain, the cost function, the features, the tunables'
/// memory or table style), so artifacts cached on disk by an older build
/// are never loaded.
///
/// 2: explicit features, the `Charges` middleware, capped tables.
const ARTIFACT_SCHEMA: u32 = 2;

/// A fresh engine that compiles with Cranelift, [`sandbox_features`], a
/// fresh `Metering` and [`Charges`] middleware, with [`SandboxTunables`]
/// for `limits`. Use it for exactly one compile (see the module docs).
pub(crate) fn fresh_engine(limits: &Limits) -> Engine {
    let mut compiler = Cranelift::default();
    // Metering first: `Charges` finds its fuel globals by their export
    // names, which Metering adds to the module before `Charges` runs.
    compiler.push_middleware(Arc::new(Metering::new(
        limits.effective_fuel(),
        operator_cost,
    )));
    compiler.push_middleware(Arc::new(Charges::new(limits)));
    let mut engine: Engine = EngineBuilder::new(compiler)
        .set_features(Some(sandbox_features()))
        .into();
    engine.set_tunables(SandboxTunables::new(limits));
    engine
}

/// How [`Charges`] charges one operator: `base + min(units, clamp) *
/// per_unit_x64 / 64` fuel, where `units` is the operator's `i32` operand
/// on top of the stack (bytes, entries or pages, read as unsigned).
///
/// `clamp` is the most work the operator can do under the sandbox's caps
/// (a fill cannot touch more than the memory ceiling, a grow cannot pass
/// it), so a request beyond the caps costs the worst case, not more: a
/// `table.grow` by `u32::MAX` costs as much as growing to the cap, and then
/// returns -1 as WebAssembly says it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charge {
    /// Whether the operator has the `i32` operand charged on top of the
    /// stack (a host function without parameters has not).
    pub operand: bool,
    /// Fuel charged whatever the operand (beyond what `Metering` charges).
    pub base: u64,
    /// Fuel per 64 units of the operand.
    pub per_unit_x64: u64,
    /// The most units charged.
    pub clamp: u64,
}

impl Charge {
    /// What this charge costs for `units` (the same formula the inserted
    /// code computes; for tests and the docs).
    #[cfg(test)]
    pub(crate) fn cost(&self, units: u32) -> u64 {
        let units = if self.operand { u64::from(units) } else { 0 };
        self.base + units.min(self.clamp) * self.per_unit_x64 / 64
    }

    /// A charge of `base + min(n, clamp) * per_unit_x64 / 64` for the
    /// operand `n` on top of the stack.
    const fn per_unit(base: u64, per_unit_x64: u64, clamp: u64) -> Self {
        Self {
            operand: true,
            base,
            per_unit_x64,
            clamp,
        }
    }

    /// A fixed charge, whatever the stack holds.
    const fn fixed(base: u64) -> Self {
        Self {
            operand: false,
            base,
            per_unit_x64: 0,
            clamp: 0,
        }
    }
}

/// The prices behind [`Charges`] and [`operator_cost`], measured on the
/// 2-core build machine in a debug build (the slower: wasmer's libcalls and
/// the host functions are unoptimised there) so that no operator runs
/// longer than about 1 ns per fuel unit it pays (the slowest ordinary
/// operator measured, `i64.div_u`, takes ~0.7 ns). See
/// `modules/ABI.md`, "Time", for the measurements.
pub(crate) mod price {
    /// Fixed fuel of an operator wasmer runs as a call into the host
    /// (`memory.size`, `table.get`/`set`/`size`, `ref.func`): up to ~130 ns
    /// in a debug build.
    pub const LIBCALL: u64 = 128;
    /// Fixed fuel of `data.drop` and `elem.drop` (the host removes the
    /// segment from a map: ~380 ns in a debug build).
    pub const SEGMENT_DROP: u64 = 512;
    /// Fixed fuel of `memory.fill`/`copy` (the call into the host: ~150 ns
    /// for a 1-byte copy).
    pub const MEMORY_BULK_BASE: u64 = 256;
    /// Fuel per 64 bytes filled or copied (~0.1 ns a byte).
    pub const MEMORY_BYTES_X64: u64 = 12;
    /// Fixed fuel of `memory.init` (the host looks the segment up: ~350 ns).
    pub const MEMORY_INIT_BASE: u64 = 512;
    /// Fuel per 64 table entries filled, copied or initialised (~120 ns an
    /// entry in a debug build, where wasmer copies them one by one).
    pub const TABLE_ENTRIES_X64: u64 = 64 * 128;
    /// Fixed fuel of `table.fill`/`copy`/`init`.
    pub const TABLE_BULK_BASE: u64 = 512;
    /// Fuel per entry of a funcref table of fixed size (minimum = maximum)
    /// that `table.fill`/`copy`/`init` on it cost whatever their length:
    /// wasmer then rewrites the whole table's function records in the
    /// instance (~30 ns an entry in a debug build).
    pub const FIXED_TABLE_SYNC_PER_ENTRY: u64 = 32;
    /// Fuel per 64 table entries grown (an allocation and a copy, ~5 ns).
    pub const TABLE_GROW_ENTRIES_X64: u64 = 64 * 8;
    /// Fixed fuel of a `memory.grow` or `table.grow` (a call into the host
    /// and, for memory, a system call: ~1-3 µs on a loaded machine).
    pub const GROW_BASE: u64 = 4_096;
    /// Fuel per 64 pages of `memory.grow` (the grow itself; the pages'
    /// first touch is the instance's one-time cost, see ABI.md "Time").
    pub const MEMORY_GROW_PAGES_X64: u64 = 64 * 64;
    /// Fixed fuel of a call to a host function (the trampoline and the
    /// host's bookkeeping; a log line through `tracing`: ~700 ns).
    pub const HOST_CALL_BASE: u64 = 1_024;
    /// Fuel per 64 bytes `hv.log` copies, decodes and emits (~4.5 ns a
    /// byte in a debug build).
    pub const LOG_BYTES_X64: u64 = 64 * 5;
    /// Fuel per 64 bytes `hv.reply` or `hv.send` copies (~1.6 ns a byte in
    /// a debug build).
    pub const OUTPUT_BYTES_X64: u64 = 64 * 2;
}

/// The charges for one module, by operator; see [`Charge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prices {
    /// `memory.fill`, `memory.copy`: per byte.
    pub memory_bulk: Charge,
    /// `memory.init`: per byte.
    pub memory_init: Charge,
    /// `table.fill`, `table.copy`, `table.init`: per entry.
    pub table_bulk: Charge,
    /// `table.grow`: per entry.
    pub table_grow: Charge,
    /// `memory.grow`: per page.
    pub memory_grow: Charge,
    /// A call of `hv.log`: per byte of its message.
    pub host_log: Charge,
    /// A call of `hv.reply` or `hv.send`: per byte of the reply or body
    /// (the address and method of a send are bounded by the output limit).
    pub host_output: Charge,
    /// A call of any other host function.
    pub host_call: Charge,
}

impl Prices {
    /// The prices under `limits` (the clamps follow its caps).
    pub(crate) fn new(limits: &Limits) -> Self {
        use price::*;
        let pages = u64::from(limits.effective_max_pages());
        let bytes = pages * wasmer::WASM_PAGE_SIZE as u64;
        let entries = u64::from(limits.effective_max_table_elements());
        let output = limits.max_output_bytes as u64;
        Self {
            memory_bulk: Charge::per_unit(MEMORY_BULK_BASE, MEMORY_BYTES_X64, bytes),
            memory_init: Charge::per_unit(MEMORY_INIT_BASE, MEMORY_BYTES_X64, bytes),
            table_bulk: Charge::per_unit(TABLE_BULK_BASE, TABLE_ENTRIES_X64, entries),
            table_grow: Charge::per_unit(GROW_BASE, TABLE_GROW_ENTRIES_X64, entries),
            memory_grow: Charge::per_unit(GROW_BASE, MEMORY_GROW_PAGES_X64, pages),
            host_log: Charge::per_unit(HOST_CALL_BASE, LOG_BYTES_X64, output),
            host_output: Charge::per_unit(HOST_CALL_BASE, OUTPUT_BYTES_X64, output),
            host_call: Charge::fixed(HOST_CALL_BASE),
        }
    }

    /// The price of a call of the host function `name`.
    fn host(&self, name: &str) -> Charge {
        if name == abi::LOG.name {
            self.host_log
        } else if name == abi::REPLY.name || name == abi::SEND.name {
            self.host_output
        } else {
            self.host_call
        }
    }
}

/// The globals [`Charges`] reads and writes in one module.
#[derive(Debug, Clone, Copy)]
struct ChargeGlobals {
    /// Metering's remaining fuel (i64).
    remaining: u32,
    /// Metering's "exhausted" flag (i32).
    exhausted: u32,
    /// Scratch: the operand while its charge is computed (i32).
    operand: u32,
    /// Scratch: the charge (i64).
    cost: u32,
}

/// What [`Charges`] learns about a module before its functions compile.
#[derive(Debug, Clone)]
struct ModuleCharges {
    globals: ChargeGlobals,
    /// The charge of a call of each imported function (imports come first
    /// in the function index space).
    host_calls: Vec<Charge>,
    /// The extra fixed fuel of a bulk operator on each table: the size of
    /// a funcref table of fixed size times
    /// [`price::FIXED_TABLE_SYNC_PER_ENTRY`], else 0.
    table_sync: Vec<u64>,
}

/// The middleware that charges operand-sized operators by their operand,
/// before they run; see the module docs and [`Charge`].
///
/// It runs after wasmer's `Metering` in the chain: it finds Metering's
/// fuel globals by their export names and adds two scratch globals of its
/// own. Before each charged operator it inserts (with `n` the operand):
///
/// ```text
/// operand = n; cost = base + min(n, clamp) * per_unit_x64 >> 6
/// if remaining < cost { exhausted = 1; unreachable }
/// remaining -= cost; push operand
/// ```
///
/// so a call that cannot pay traps as out of fuel before the work starts,
/// as Metering's own checks do. Like `Metering`, one instance serves one
/// module (a fresh engine per compile).
pub(crate) struct Charges {
    prices: Prices,
    module: Mutex<Option<ModuleCharges>>,
}

impl fmt::Debug for Charges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Charges")
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

impl Charges {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            prices: Prices::new(limits),
            module: Mutex::new(None),
        }
    }
}

/// The global a module exports as `name`, as Metering added it.
fn exported_global(info: &ModuleInfo, name: &str) -> Result<u32, MiddlewareError> {
    match info.exports.get(name) {
        Some(ExportIndex::Global(index)) => Ok(index.as_u32()),
        _ => Err(MiddlewareError::new(
            "hyperverse charges",
            format!("the metering global `{name}` is missing"),
        )),
    }
}

impl ModuleMiddleware for Charges {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        // `transform_module_info` runs first for every module compiled; a
        // module without it has no charged operators to instrument.
        let module = self.module.lock().clone();
        Box::new(FunctionCharges {
            prices: self.prices,
            module,
        })
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        let remaining = exported_global(info, abi::METERING_EXPORTS[0])?;
        let exhausted = exported_global(info, abi::METERING_EXPORTS[1])?;
        let operand = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var))
            .as_u32();
        info.global_initializers.push(GlobalInit::I32Const(0));
        let cost = info
            .globals
            .push(GlobalType::new(Type::I64, Mutability::Var))
            .as_u32();
        info.global_initializers.push(GlobalInit::I64Const(0));

        // Imported functions take the first indexes, in import order. Only
        // `hv` functions pass validation; anything else is priced as a
        // plain host call in the meantime.
        let host_calls = info
            .imports()
            .filter(|import| matches!(import.ty(), ExternType::Function(_)))
            .map(|import| match import.module() {
                HOST_MODULE => self.prices.host(import.name()),
                _ => self.prices.host_call,
            })
            .collect();
        let table_sync = info
            .tables
            .values()
            .map(|table| {
                if table.is_fixed_funcref_table() {
                    u64::from(table.minimum) * price::FIXED_TABLE_SYNC_PER_ENTRY
                } else {
                    0
                }
            })
            .collect();
        *self.module.lock() = Some(ModuleCharges {
            globals: ChargeGlobals {
                remaining,
                exhausted,
                operand,
                cost,
            },
            host_calls,
            table_sync,
        });
        Ok(())
    }
}

/// [`Charges`] for one function.
struct FunctionCharges {
    prices: Prices,
    module: Option<ModuleCharges>,
}

impl fmt::Debug for FunctionCharges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionCharges").finish_non_exhaustive()
    }
}

impl FunctionCharges {
    /// The charge of `operator`, if it is one [`Charges`] prices.
    fn charge_of(&self, module: &ModuleCharges, operator: &Operator<'_>) -> Option<Charge> {
        let prices = &self.prices;
        match operator {
            Operator::MemoryFill { .. } | Operator::MemoryCopy { .. } => Some(prices.memory_bulk),
            Operator::MemoryInit { .. } => Some(prices.memory_init),
            Operator::TableFill { table }
            | Operator::TableCopy {
                dst_table: table, ..
            }
            | Operator::TableInit { table, .. } => {
                let sync = module.table_sync.get(*table as usize).copied();
                let mut charge = prices.table_bulk;
                charge.base += sync.unwrap_or(0);
                Some(charge)
            }
            Operator::TableGrow { .. } => Some(prices.table_grow),
            Operator::MemoryGrow { .. } => Some(prices.memory_grow),
            // Imported functions come first, so an index within the list
            // is a host call.
            Operator::Call { function_index } => {
                module.host_calls.get(*function_index as usize).copied()
            }
            _ => None,
        }
    }
}

/// The operators that charge `charge` for the `i32` operand on top of the
/// stack and leave the stack as it was (see [`Charges`]).
fn charge_operators<'a>(charge: Charge, globals: ChargeGlobals) -> Vec<Operator<'a>> {
    let mut ops = if charge.operand {
        operand_cost(charge, globals)
    } else {
        vec![
            Operator::I64Const {
                value: charge.base as i64,
            },
            Operator::GlobalSet {
                global_index: globals.cost,
            },
        ]
    };
    ops.extend(pay(globals));
    if charge.operand {
        // The operand back for the operator.
        ops.push(Operator::GlobalGet {
            global_index: globals.operand,
        });
    }
    ops
}

/// Pops the operand into its scratch global and sets the cost global to
/// `base + min(operand, clamp) * per_unit_x64 >> 6`.
fn operand_cost<'a>(charge: Charge, globals: ChargeGlobals) -> Vec<Operator<'a>> {
    let clamp = charge.clamp as i64;
    vec![
        // operand = n; cost = zero-extended n
        Operator::GlobalSet {
            global_index: globals.operand,
        },
        Operator::GlobalGet {
            global_index: globals.operand,
        },
        Operator::I64ExtendI32U,
        Operator::GlobalSet {
            global_index: globals.cost,
        },
        // min(cost, clamp)
        Operator::GlobalGet {
            global_index: globals.cost,
        },
        Operator::I64Const { value: clamp },
        Operator::GlobalGet {
            global_index: globals.cost,
        },
        Operator::I64Const { value: clamp },
        Operator::I64LtU,
        Operator::Select,
        // * per_unit_x64 >> 6 + base
        Operator::I64Const {
            value: charge.per_unit_x64 as i64,
        },
        Operator::I64Mul,
        Operator::I64Const { value: 6 },
        Operator::I64ShrU,
        Operator::I64Const {
            value: charge.base as i64,
        },
        Operator::I64Add,
        Operator::GlobalSet {
            global_index: globals.cost,
        },
    ]
}

/// Pays the cost global out of the remaining fuel, or traps as out of fuel
/// if it cannot.
fn pay<'a>(globals: ChargeGlobals) -> [Operator<'a>; 12] {
    [
        // if remaining < cost { exhausted = 1; unreachable }
        Operator::GlobalGet {
            global_index: globals.remaining,
        },
        Operator::GlobalGet {
            global_index: globals.cost,
        },
        Operator::I64LtU,
        Operator::If {
            blockty: BlockType::Empty,
        },
        Operator::I32Const { value: 1 },
        Operator::GlobalSet {
            global_index: globals.exhausted,
        },
        Operator::Unreachable,
        Operator::End,
        // remaining -= cost
        Operator::GlobalGet {
            global_index: globals.remaining,
        },
        Operator::GlobalGet {
            global_index: globals.cost,
        },
        Operator::I64Sub,
        Operator::GlobalSet {
            global_index: globals.remaining,
        },
    ]
}

impl<'a> FunctionMiddleware<'a> for FunctionCharges {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        if let Some(module) = &self.module {
            if let Some(charge) = self.charge_of(module, &operator) {
                state.extend(charge_operators(charge, module.globals));
            }
        }
        state.push_operator(operator);
        Ok(())
    }
}

/// The key of a compiled artifact: the BLAKE3 of everything that shapes it
/// (the wasm's hash, wasmer's version, the compiler's own id, this crate's
/// schema and version, the target, the features, and the limits). Two
/// compiles with the same key produce interchangeable artifacts; the
/// on-disk cache only loads an artifact under the key it was stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ArtifactKey(pub [u8; 32]);

impl ArtifactKey {
    pub(crate) fn new(wasm: &ContentHash, limits: &Limits, engine: &Engine) -> Self {
        let mut hasher = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            // Length-prefixed so no two field lists hash the same.
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"hyperverse-modules artifact");
        field(&ARTIFACT_SCHEMA.to_le_bytes());
        field(env!("CARGO_PKG_VERSION").as_bytes());
        field(&wasm.0);
        field(wasmer::sys::vm::VERSION.as_bytes());
        field(engine.deterministic_id().as_bytes());
        field(std::env::consts::ARCH.as_bytes());
        field(std::env::consts::OS.as_bytes());
        field(format!("{:?}", sandbox_features()).as_bytes());
        field(format!("{:?}", Prices::new(limits)).as_bytes());
        field(limits.fingerprint().as_bytes());
        Self(*hasher.finalize().as_bytes())
    }

    pub(crate) fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_features_are_the_documented_ones() {
        let f = sandbox_features();
        assert!(f.multi_value && f.bulk_memory && f.reference_types && f.simd);
        assert!(f.extended_const);
        assert!(!f.threads, "a shared memory's wait blocks the host thread");
        assert!(!f.multi_memory, "one memory under the ceiling");
        assert!(!f.memory64 && !f.exceptions && !f.tail_call);
        assert!(!f.relaxed_simd && !f.wide_arithmetic && !f.module_linking);
    }

    #[test]
    fn a_charge_beyond_the_caps_costs_the_worst_case() {
        let prices = Prices::new(&Limits::default());
        let grow = prices.table_grow;
        assert_eq!(grow.cost(u32::MAX), grow.cost(65_536));
        assert_eq!(prices.host_call.cost(u32::MAX), price::HOST_CALL_BASE);
        let fill = prices.memory_bulk;
        assert_eq!(fill.cost(u32::MAX), fill.cost(16 * 1024 * 1024));
        assert_eq!(fill.cost(0), price::MEMORY_BULK_BASE);
        assert!(fill.cost(16 * 1024 * 1024) > 1_000_000);
    }

    #[test]
    fn keys_differ_by_limits() {
        let wasm = ContentHash::of(b"");
        let limits = Limits::default();
        let engine = fresh_engine(&limits);
        let other = limits.with_max_table_elements(1);
        assert_ne!(
            ArtifactKey::new(&wasm, &limits, &engine),
            ArtifactKey::new(&wasm, &other, &engine)
        );
    }
}
