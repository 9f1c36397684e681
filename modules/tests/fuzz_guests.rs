//! Fuzzing the sandbox with wasm-smith: random modules, with every
//! WebAssembly feature the generator knows switched on (threads, many
//! tables and memories, bulk memory, exceptions, SIMD and relaxed SIMD,
//! reference types, tail calls, memory64, GC, custom page sizes...), each
//! loaded into a `ModuleStore`. Most are refused: that must be a typed
//! error naming the module, never a panic. The generator is told to import
//! only the `hv` host functions and to export the ABI's functions and
//! memory, so many get past validation; those are instantiated and their
//! exports called. For every call: no panic or abort, no call longer than
//! its fuel-derived budget (with slack: the machine is shared), and memory
//! within the ceiling.
//!
//! The seed is fixed and printed first (and again on failure). More cases,
//! or another seed: `HYPERVERSE_FUZZ_CASES=5000 HYPERVERSE_FUZZ_SEED=0x1234
//! cargo test -p hyperverse-modules --test fuzz_guests -- --nocapture`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use hyperverse_modules::{GuestInstance, Limits, ModuleError, ModuleStore};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{CodeSection, Function, Instruction};
use wasm_smith::Config;
use wasmer::wasmparser::{ExternalKind, FunctionBody, Parser, Payload, TypeRef};

/// Cases run by default: 10 to 30 s in a debug build on the 2-core machine
/// (more when it is shared).
const DEFAULT_CASES: u64 = 250;
/// The default seed.
const DEFAULT_SEED: u64 = 0x4856_5f53_414e_4442;

/// The time one fuel unit may take, in nanoseconds: the ~1 ns the prices
/// are measured for (see ABI.md, "Time"), times 10 for a shared machine.
const NS_PER_FUEL_WITH_SLACK: u64 = 10;
/// Added to every call's budget: the first touch of the memory (at most
/// the fuzz ceiling, 4 MiB, ~2 ms) and the scheduler of a shared machine.
const CALL_OVERHEAD: Duration = Duration::from_millis(500);

/// The ABI's exports, for wasm-smith to reproduce (bodies are its own).
const ABI_EXPORTS: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) unreachable)
  (func (export "alloc") (param i32) (result i32) unreachable)
  (func (export "init") (param i32 i32) (result i32) unreachable)
  (func (export "handle") (param i32 i32 i32 i32) (result i32) unreachable)
  (func (export "snapshot") (result i64) unreachable)
  (func (export "restore") (param i32 i32) (result i32) unreachable)
  (func (export "on_reply") (param i64 i32 i32 i32) (result i32) unreachable)
  (func (export "on_crash_notice") (param i32 i32 i32 i32 i32 i32 i32) (result i32) unreachable)
)"#;

/// The host functions, for wasm-smith to import from.
const HV_IMPORTS: &str = r#"(module
  (import "hv" "send" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "hv" "reply" (func (param i32 i32)))
  (import "hv" "log" (func (param i32 i32 i32)))
  (import "hv" "now_ms" (func (result i64)))
  (import "hv" "self" (func (param i32 i32) (result i32)))
  (import "hv" "parent" (func (param i32 i32) (result i32)))
  (import "hv" "restarts" (func (result i32)))
  (import "hv" "ask" (func (param i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "spawn" (func (param i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "stop" (func (param i32 i32) (result i64)))
  (import "hv" "timer" (func (param i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "crash" (func (param i32 i32 i32)))
)"#;

/// splitmix64: a tiny deterministic generator, so a seed means the same
/// cases on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number"))
}

fn wasm(wat: &str) -> Vec<u8> {
    wasmer::wat2wasm(wat.as_bytes())
        .expect("valid WAT")
        .into_owned()
}

/// The generator's settings for one case: every feature on in even cases,
/// each on with a chance of 1 in 4 in odd ones (so that some modules avoid
/// every refused feature and get to run).
fn config(rng: &mut Rng, all_on: bool) -> Config {
    let mut on = || all_on || rng.next().is_multiple_of(4);
    let mut config = Config {
        available_imports: Some(wasm(HV_IMPORTS)),
        exports: Some(wasm(ABI_EXPORTS)),
        ..Config::default()
    };
    config.threads_enabled = on();
    config.exceptions_enabled = on();
    config.tail_call_enabled = on();
    config.simd_enabled = on();
    config.relaxed_simd_enabled = config.simd_enabled && on();
    config.reference_types_enabled = on();
    config.bulk_memory_enabled = config.reference_types_enabled || on();
    config.memory64_enabled = on();
    config.gc_enabled = config.reference_types_enabled && on();
    config.custom_page_sizes_enabled = on();
    config.wide_arithmetic_enabled = on();
    config.extended_const_enabled = on();
    config.multi_value_enabled = true;
    // The exported `memory` comes on top of these.
    config.max_memories = if on() { 4 } else { 0 };
    config.max_tables = if on() { 4 } else { 1 };
    config.max_table_elements = 1 << 20;
    config.max_memory32_bytes = 64 << 20;
    config.max_funcs = 20;
    config.max_instructions = 200;
    config.max_data_segments = 8;
    config.max_element_segments = 8;
    config
}

/// Rewrites the function exported as `hv_abi_version` to return 2 (the
/// newest version), so that instances get past the ABI version check and
/// their other exports are called.
struct AbiVersionTwo {
    imported_functions: u32,
    target: u32,
    next: u32,
}

impl Reencode for AbiVersionTwo {
    type Error = Infallible;

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: FunctionBody<'_>,
    ) -> Result<(), reencode::Error<Infallible>> {
        let index = self.imported_functions + self.next;
        self.next += 1;
        if index != self.target {
            return reencode::utils::parse_function_body(self, code, func);
        }
        let mut body = Function::new([]);
        body.instruction(&Instruction::I32Const(2));
        body.instruction(&Instruction::End);
        code.function(&body);
        Ok(())
    }
}

/// `wasm` with `hv_abi_version` returning 2, or `None` if it cannot be
/// parsed that far (the load will say why).
fn with_abi_version_two(wasm: &[u8]) -> Option<Vec<u8>> {
    let mut imported_functions = 0;
    let mut target = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.ok()?.ty, TypeRef::Func(_)) {
                        imported_functions += 1;
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.ok()?;
                    if export.name == "hv_abi_version" && export.kind == ExternalKind::Func {
                        target = Some(export.index);
                    }
                }
            }
            _ => {}
        }
    }
    let mut fixer = AbiVersionTwo {
        imported_functions,
        target: target?,
        next: 0,
    };
    let mut module = wasm_encoder::Module::new();
    fixer
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .ok()?;
    Some(module.finish())
}

/// What the run saw, by outcome.
#[derive(Default, Debug)]
struct Stats {
    outcomes: BTreeMap<String, u64>,
    calls: u64,
    longest_call: Duration,
}

impl Stats {
    fn count(&mut self, outcome: impl Into<String>) {
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }
}

/// The name of `err`'s variant, e.g. `Compile`.
fn variant(err: &ModuleError) -> String {
    let debug = format!("{err:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or("?")
        .to_string()
}

/// One fuzz run: its settings and where it is, for failure messages.
struct Fuzz {
    seed: u64,
    case: u64,
    limits: Limits,
    store: ModuleStore,
    stats: Stats,
}

impl Fuzz {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "fuzz_guests: seed {:#x}, case {}: {what} \
             (rerun with HYPERVERSE_FUZZ_SEED={:#x} HYPERVERSE_FUZZ_CASES={})",
            self.seed,
            self.case,
            self.seed,
            self.case + 1
        )
    }

    /// A call's fuel-derived budget, with slack.
    fn budget(&self) -> Duration {
        Duration::from_nanos(self.limits.effective_fuel() * NS_PER_FUEL_WITH_SLACK) + CALL_OVERHEAD
    }

    fn run_case(&mut self, rng: &mut Rng) {
        let config = config(rng, self.case.is_multiple_of(2));
        let len = 64 + (rng.next() % 16_384) as usize;
        let bytes = rng.bytes(len);
        let Ok(module) = wasm_smith::Module::new(config, &mut Unstructured::new(&bytes)) else {
            self.stats.count("not generated");
            return;
        };
        let wasm = module.to_bytes();
        let wasm = with_abi_version_two(&wasm).unwrap_or(wasm);

        let name = format!("case-{}", self.case);
        let store = &self.store;
        let loaded = catch_unwind(AssertUnwindSafe(|| store.load(&name, &wasm)));
        let module = match loaded {
            Err(_) => self.fail("loading panicked"),
            Ok(Err(err)) => {
                if err.module() != Some(name.as_str()) {
                    self.fail(&format!("the error does not name the module: {err}"));
                }
                self.stats.count(format!("refused: {}", variant(&err)));
                return;
            }
            Ok(Ok(module)) => module,
        };
        let instance = catch_unwind(AssertUnwindSafe(|| module.instantiate()));
        match instance {
            Err(_) => self.fail("instantiation panicked"),
            Ok(Err(err)) => self
                .stats
                .count(format!("not instantiated: {}", variant(&err))),
            Ok(Ok(mut guest)) => {
                self.stats.count("ran");
                self.exercise(&mut guest, rng);
            }
        }
    }

    /// Calls every export of an accepted guest, checking each call.
    fn exercise(&mut self, guest: &mut GuestInstance, rng: &mut Rng) {
        let len = (rng.next() % 64) as usize;
        let args = rng.bytes(len);
        guest.set_context(hyperverse_modules::CallContext {
            me: "fuzz:me".into(),
            parent: Some("fuzz".into()),
            restarts: rng.next() as u32,
            next_tag: 1,
            open_requests: (rng.next() % 80) as usize,
            open_timers: (rng.next() % 80) as usize,
        });
        self.call(guest, "init", |g| g.init(&args).map(drop));
        self.call(guest, "on_reply", |g| {
            g.on_reply(rng.next(), rng.next() as i32, &args).map(drop)
        });
        self.call(guest, "on_crash_notice", |g| {
            g.on_crash_notice("fuzz:me:kid", -1, "guest crash 3: x", 2, true)
                .map(drop)
        });
        self.call(guest, "handle", |g| g.handle("fuzz", &args).map(drop));
        let mut state = Vec::new();
        self.call(guest, "snapshot", |g| {
            state = g.snapshot()?;
            Ok(())
        });
        self.call(guest, "restore", |g| g.restore(&state));
        self.call(guest, "handle", |g| g.handle("again", &[]).map(drop));
    }

    fn call(
        &mut self,
        guest: &mut GuestInstance,
        export: &str,
        call: impl FnOnce(&mut GuestInstance) -> Result<(), ModuleError>,
    ) {
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| call(guest)));
        let took = start.elapsed();
        self.stats.calls += 1;
        self.stats.longest_call = self.stats.longest_call.max(took);
        match result {
            Err(_) => self.fail(&format!("`{export}` panicked")),
            Ok(Err(err)) if err.module().is_none() => {
                self.fail(&format!("`{export}`'s error names no module: {err}"))
            }
            Ok(_) => {}
        }
        if took > self.budget() {
            self.fail(&format!(
                "`{export}` took {took:?}, over its fuel-derived budget of {:?}",
                self.budget()
            ));
        }
        let pages = guest.memory_pages();
        if pages > self.limits.effective_max_pages() {
            self.fail(&format!("memory of {pages} pages is over the ceiling"));
        }
    }
}

#[test]
fn random_modules_are_refused_with_typed_errors_or_run_within_their_limits() {
    let seed = env_u64("HYPERVERSE_FUZZ_SEED", DEFAULT_SEED);
    let cases = env_u64("HYPERVERSE_FUZZ_CASES", DEFAULT_CASES);
    eprintln!("fuzz_guests: seed {seed:#x}, {cases} cases");
    // A small ceiling and fuel keep each case quick; the caps are the same
    // code paths as the defaults.
    let limits = Limits::default()
        .with_fuel(1_000_000)
        .with_max_memory_pages(64)
        .with_max_table_elements(10_000);
    let mut fuzz = Fuzz {
        seed,
        case: 0,
        limits,
        store: ModuleStore::new(limits),
        stats: Stats::default(),
    };
    for case in 0..cases {
        fuzz.case = case;
        let mut rng = Rng(seed ^ case.wrapping_mul(0x2545_f491_4f6c_dd1d));
        fuzz.run_case(&mut rng);
    }
    eprintln!("fuzz_guests: {:#?}", fuzz.stats);
    if cases >= 50 {
        let ran = fuzz.stats.outcomes.get("ran").copied().unwrap_or(0);
        assert!(
            ran > 0,
            "seed {seed:#x}: no module got to run; the fuzz tests nothing"
        );
    }
}
