//! Making wasmer engines, and the key that says which artifacts fit one.
//!
//! A compile gets a fresh engine: wasmer's `Metering` middleware records the
//! indexes of the fuel globals it adds to the module it instruments and
//! panics if asked to instrument a second module, and a middleware lives in
//! the engine's compiler config. So each compile (each load of new bytes,
//! each reload) builds its own Cranelift config, `Metering` and engine, and
//! the compiled module keeps that engine: every `Store` an instance of it
//! runs in is made from it (`Store::new(engine.clone())`), because the store's
//! engine supplies the tunables (memory ceiling, stack size) at
//! instantiation and call time, and the module's code was registered with
//! that engine. Engines are reference-counted, so this costs a pointer copy.

use std::sync::Arc;

use wasmer::sys::{CompilerConfig, Cranelift, NativeEngineExt};
use wasmer::wasmparser::Operator;
use wasmer::Engine;
use wasmer_middlewares::Metering;

use crate::limits::Limits;
use crate::tunables::SandboxTunables;
use crate::version::ContentHash;

/// The fuel one operator costs: one each. Simple and predictable for guest
/// authors ("10 million operators per wave"); wasmer's metering adds the
/// accounting itself at branches.
fn operator_cost(_: &Operator<'_>) -> u64 {
    1
}

/// Bumped whenever what this crate puts into an artifact changes (the
/// middleware chain, the cost function, the tunables' memory style), so
/// artifacts cached on disk by an older build are never loaded.
const ARTIFACT_SCHEMA: u32 = 1;

/// A fresh engine that compiles with Cranelift and a fresh `Metering`
/// middleware, with [`SandboxTunables`] for `limits`. Use it for exactly one
/// compile (see the module docs).
pub(crate) fn fresh_engine(limits: &Limits) -> Engine {
    let mut compiler = Cranelift::default();
    compiler.push_middleware(Arc::new(Metering::new(
        limits.effective_fuel(),
        operator_cost,
    )));
    let mut engine: Engine = compiler.into();
    engine.set_tunables(SandboxTunables::new(limits));
    engine
}

/// The key of a compiled artifact: the BLAKE3 of everything that shapes it
/// (the wasm's hash, wasmer's version, the compiler's own id, this crate's
/// schema and version, the target, and the limits). Two compiles with the
/// same key produce interchangeable artifacts; the on-disk cache only
/// loads an artifact under the key it was stored with.
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
        field(limits.fingerprint().as_bytes());
        Self(*hasher.finalize().as_bytes())
    }

    pub(crate) fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}
