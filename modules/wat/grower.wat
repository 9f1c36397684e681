;; grower: handle grows memory one page at a time until the grow is refused,
;; then returns success as if nothing happened. The sandbox still reports
;; MemoryLimit: hitting the ceiling is a crash even when the guest copes.
;; The memory declares no maximum, so only the host's ceiling stops it.
(module
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (i32.const 0))
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)
