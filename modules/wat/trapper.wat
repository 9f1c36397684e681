;; trapper: handle executes `unreachable`, a trap; the host reports it as a
;; Trap with wasmer's message, and keeps serving.
(module
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    unreachable)
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)
