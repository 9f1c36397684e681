;; looper: handle loops forever. Fuel metering must stop it (OutOfFuel);
;; every other export works, so the instance stays usable afterwards.
(module
  (memory (export "memory") 1)
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  ;; One fixed input buffer: enough for the small inputs of tests.
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
  ;; No state: an empty snapshot at offset 0.
  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)
