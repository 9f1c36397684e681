;; recurser: handle recurses without end. The stack limit stops it
;; (StackOverflow) long before its fuel runs out.
(module
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func $down (param $depth i64) (result i64)
    (i64.add (call $down (i64.add (local.get $depth) (i64.const 1))) (i64.const 1)))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (drop (call $down (i64.const 0)))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)
