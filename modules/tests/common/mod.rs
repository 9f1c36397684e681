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

/// The C guest SDK: `hyperverse.h` and `examples/`.
pub const C_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/c");

/// The first line of `clang --version`, or `None` if there is no clang to
/// run.
pub fn clang_version() -> Option<String> {
    let out = std::process::Command::new("clang")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or_default().to_string())
}

/// Compiles `sdk/c/examples/NAME.c` to wasm32 with clang, with the flags of
/// the header's recipe and of `sdk/c/build.sh` (which are the same, plus
/// `-Wall -Werror`, which change no byte of the output). Panics, saying
/// why, if clang is missing or fails.
pub fn compile_c(name: &str) -> Vec<u8> {
    let source = std::path::Path::new(C_SDK)
        .join("examples")
        .join(format!("{name}.c"));
    clang(&source, &[]).unwrap_or_else(|e| panic!("clang failed on {}:\n{e}", source.display()))
}

/// Compiles C `source` with the header's recipe (as [`compile_c`]) plus
/// `-D` for each of `defines`: the module's bytes, or clang's error output.
/// Panics if clang cannot be run at all.
pub fn clang(source: &std::path::Path, defines: &[&str]) -> Result<Vec<u8>, String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A folder per compile: the tests compile in parallel.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stem = source.file_stem().unwrap_or_default().to_string_lossy();
    let out_dir =
        std::env::temp_dir().join(format!("hv-c-guest-{}-{stem}-{n}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{stem}.wasm"));
    let run = std::process::Command::new("clang")
        .args([
            "--target=wasm32",
            "-mcpu=mvp",
            "-O2",
            "-nostdlib",
            "-ffreestanding",
            "-Wall",
            "-Werror",
            "-Wl,--no-entry",
            "-Wl,-z,stack-size=65536",
            "-I",
            C_SDK,
        ])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg("-o")
        .arg(&out)
        .arg(source)
        .output()
        .unwrap_or_else(|e| {
            panic!("clang is needed to build the C guest ({e}); .ci/run installs clang and lld")
        });
    let result = if run.status.success() {
        Ok(std::fs::read(&out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&run.stderr).into_owned())
    };
    let _ = std::fs::remove_dir_all(&out_dir);
    result
}
