;; bad_import: a complete guest that also imports `env.open`, which is no
;; host function of the ABI. It must be refused at load (UndeclaredImport),
;; never instantiated.
(module
  (import "env" "open" (func $open (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (call $open (local.get 0) (local.get 1)))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)
