//! Helpers shared by the test files (each includes it with `mod common;`).
#![allow(dead_code)] // each test file uses a different part

use hyperverse_modules::{Limits, ModuleStore};

/// Limits small enough to make failures quick: 1M fuel, 32 pages (2 MiB).
pub fn small_limits() -> Limits {
    Limits::default()
        .with_fuel(1_000_000)
        .with_max_memory_pages(32)
}

pub fn store() -> ModuleStore {
    ModuleStore::new(small_limits())
}

/// A complete ABI-1 guest with extra `imports`, extra `funcs`, and `handle`'s
/// body (params: $m $mlen $body $blen; must leave an i32 status).
pub fn guest_wat(imports: &str, funcs: &str, handle_body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param $m i32) (param $mlen i32) (param $body i32) (param $blen i32)
                          (result i32)
    {handle_body})
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
  {funcs}
)"#
    )
}

pub fn le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}
