;; relay: sends waves with hv.send, for the tests of guest sends.
;;
;;   init(args)   args empty: nothing; else sends "hello" (empty body) to the
;;                Point named by args, from init
;;   handle       sends a wave with the same method and an empty body to the
;;                Point named by the wave's body; replies "sent"
;; No state: snapshot is empty and restore accepts anything.
(module
  (import "hv" "send" (func $send (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "hv" "reply" (func $reply (param i32 i32)))

  ;; Layout: [16, 32) constant strings; [1024, ...) the bump heap.
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (data (i32.const 24) "sent")

  (global $heap (mut i32) (i32.const 1024))

  (func (export "hv_abi_version") (result i32) (i32.const 1))

  ;; Bump allocation within the first page (inputs here are small); a
  ;; larger input is refused by trapping.
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (if (i32.gt_u (i32.add (local.get $ptr) (local.get $len)) (i32.const 65536))
      (then unreachable))
    (global.set $heap (i32.add (local.get $ptr) (local.get $len)))
    (local.get $ptr))

  (func (export "init") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (if (i32.eqz (local.get $len)) (then (return (i32.const 0))))
    (drop (call $send (local.get $ptr) (local.get $len)
                      (i32.const 16) (i32.const 5)
                      (i32.const 0) (i32.const 0)))
    (i32.const 0))

  (func (export "handle") (param $m i32) (param $mlen i32) (param $body i32) (param $blen i32)
                          (result i32)
    (global.set $heap (i32.const 1024))
    (drop (call $send (local.get $body) (local.get $blen)
                      (local.get $m) (local.get $mlen)
                      (i32.const 0) (i32.const 0)))
    (call $reply (i32.const 24) (i32.const 4))
    (i32.const 0))

  (func (export "snapshot") (result i64) (i64.const 0))
  (func (export "restore") (param i32 i32) (result i32) (i32.const 0))
)
