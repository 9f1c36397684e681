;; counter_v1: the reference guest of the Hyperverse guest ABI, version 1
;; (see modules/ABI.md).
;;
;; State: one i64, the count.
;;   init(args)   args empty: count = 0; 8 bytes LE: count = args; else status 2
;;   "add"        count += 1, no reply
;;   "get"        replies the count, 8 bytes LE
;;   "version"    replies one byte, 1
;;   other        status 1 (the guest refuses the wave: a crash)
;; snapshot/restore: the count as 8 bytes LE, the same in counter_v2, so a
;; hot reload from v1 to v2 keeps it.
(module
  (import "hv" "reply" (func $reply (param i32 i32)))

  ;; Layout: [0, 16) scratch for replies and snapshots; [16, 40) method
  ;; names; [1024, ...) the bump heap that host input is written to.
  (memory (export "memory") 1)
  (data (i32.const 16) "add")
  (data (i32.const 20) "get")
  (data (i32.const 24) "version")

  (global $count (mut i64) (i64.const 0))
  (global $heap (mut i32) (i32.const 1024))

  (func (export "hv_abi_version") (result i32) (i32.const 1))

;; The inbox: the host writes a call's bytes at [64, 1024) when they fit,
  ;; instead of calling alloc for room (one guest call per wave, not two).
  ;; Like the heap, what is written there lives for one call.
  (func (export "hv_inbox") (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 960)))

  ;; Bump allocation, growing memory when needed (a refused grow traps).
  ;; Every export below resets the heap: input only lives for one call.
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $fits
      (br_if $fits (i32.le_u (local.get $end) (i32.shl (memory.size) (i32.const 16))))
      ;; grow by the missing bytes, rounded up to pages
      (br_if $fits
        (i32.ne
          (memory.grow
            (i32.shr_u
              (i32.add (i32.sub (local.get $end) (i32.shl (memory.size) (i32.const 16)))
                       (i32.const 65535))
              (i32.const 16)))
          (i32.const -1)))
      unreachable)
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; 1 if the $alen bytes at $a equal the $blen bytes at $b.
  (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $alen)))
        (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b)))
          (then (return (i32.const 0))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $alen (i32.sub (local.get $alen) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  (func (export "init") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (if (i32.eqz (local.get $len))
      (then (global.set $count (i64.const 0)) (return (i32.const 0))))
    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 2))))
    (global.set $count (i64.load (local.get $ptr)))
    (i32.const 0))

  (func (export "handle") (param $m i32) (param $mlen i32) (param $body i32) (param $blen i32)
                          (result i32)
    (global.set $heap (i32.const 1024))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 16) (i32.const 3))
      (then
        (global.set $count (i64.add (global.get $count) (i64.const 1)))
        (return (i32.const 0))))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 20) (i32.const 3))
      (then
        (i64.store (i32.const 0) (global.get $count))
        (call $reply (i32.const 0) (i32.const 8))
        (return (i32.const 0))))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 24) (i32.const 7))
      (then
        (i32.store8 (i32.const 0) (i32.const 1))
        (call $reply (i32.const 0) (i32.const 1))
        (return (i32.const 0))))
    (i32.const 1))

  ;; The count at scratch offset 8; returns (8 << 32) | 8.
  (func (export "snapshot") (result i64)
    (i64.store (i32.const 8) (global.get $count))
    (i64.const 0x0000000800000008))

  (func (export "restore") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 1))))
    (global.set $count (i64.load (local.get $ptr)))
    (i32.const 0))
)
