//! WASM modules for Hyperverse: named, versioned modules run by wasmer and
//! hot-reloaded while their particles serve.
//!
//! Placeholder: the module store, guest ABI and hot reload arrive with the
//! WASM issue. The crate exists now so the workspace's shape is final.
