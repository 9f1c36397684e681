;; ordered_v1: a counter that also checks per-sender order, for the
;; hot-reload tests (see ordered_v2.wat, the same state with another
;; behaviour).
;;
;; State (144 bytes at offset 64, which is also the snapshot, as is):
;;   [64]  count       i64   adds handled, in all
;;   [72]  violations  i64   adds whose sequence number was not the last + 1
;;   [80]  last[16]    i64s  the last sequence number seen from each sender
;;
;;   init(args)      args empty; else status 2
;;   "add" (body empty)       count += 1
;;   "add" (body 9 bytes: sender u8, seq u64 LE)
;;                   count += 1; violations += 1 unless seq = last[sender % 16] + 1;
;;                   last[sender % 16] = seq
;;   "get"           replies count (8 bytes LE)
;;   "violations"    replies violations (8 bytes LE)
;;   "since"         replies the adds this instance handled since its init or
;;                   restore (not part of the state: it tells versions apart)
;;   "version"       replies one byte, 1
;;   other           status 1
;; snapshot/restore: the 144 state bytes, the same in both versions.
(module
  (import "hv" "reply" (func $reply (param i32 i32)))

  ;; Layout: [0, 16) scratch for replies; [16, 64) method names;
  ;; [64, 208) the state; [1024, ...) the bump heap host input is written to.
  (memory (export "memory") 1)
  (data (i32.const 16) "add")
  (data (i32.const 20) "get")
  (data (i32.const 24) "version")
  (data (i32.const 32) "violations")
  (data (i32.const 48) "since")

  (global $since (mut i64) (i64.const 0))
  (global $heap (mut i32) (i32.const 1024))

  (func (export "hv_abi_version") (result i32) (i32.const 1))

  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $fits
      (br_if $fits (i32.le_u (local.get $end) (i32.shl (memory.size) (i32.const 16))))
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

  (func $reply_i64 (param $v i64)
    (i64.store (i32.const 0) (local.get $v))
    (call $reply (i32.const 0) (i32.const 8)))

  (func (export "init") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (global.set $since (i64.const 0))
    (if (i32.ne (local.get $len) (i32.const 0)) (then (return (i32.const 2))))
    (memory.fill (i32.const 64) (i32.const 0) (i32.const 144))
    (i32.const 0))

  (func (export "handle") (param $m i32) (param $mlen i32) (param $body i32) (param $blen i32)
                          (result i32)
    (local $slot i32)
    (global.set $heap (i32.const 1024))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 16) (i32.const 3))
      (then
        (i64.store (i32.const 64) (i64.add (i64.load (i32.const 64)) (i64.const 1)))
        (global.set $since (i64.add (global.get $since) (i64.const 1)))
        (if (i32.eq (local.get $blen) (i32.const 9))
          (then
            (local.set $slot
              (i32.add (i32.const 80)
                (i32.shl (i32.and (i32.load8_u (local.get $body)) (i32.const 15)) (i32.const 3))))
            (if (i64.ne (i64.load (i32.add (local.get $body) (i32.const 1)))
                        (i64.add (i64.load (local.get $slot)) (i64.const 1)))
              (then
                (i64.store (i32.const 72) (i64.add (i64.load (i32.const 72)) (i64.const 1)))))
            (i64.store (local.get $slot) (i64.load (i32.add (local.get $body) (i32.const 1))))))
        (return (i32.const 0))))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 20) (i32.const 3))
      (then (call $reply_i64 (i64.load (i32.const 64))) (return (i32.const 0))))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 32) (i32.const 10))
      (then (call $reply_i64 (i64.load (i32.const 72))) (return (i32.const 0))))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 48) (i32.const 5))
      (then (call $reply_i64 (global.get $since)) (return (i32.const 0))))
    (if (call $eq (local.get $m) (local.get $mlen) (i32.const 24) (i32.const 7))
      (then
        (i32.store8 (i32.const 0) (i32.const 1))
        (call $reply (i32.const 0) (i32.const 1))
        (return (i32.const 0))))
    (i32.const 1))

  ;; The state is its own snapshot: (64 << 32) | 144.
  (func (export "snapshot") (result i64)
    (i64.const 0x0000004000000090))

  (func (export "restore") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (global.set $since (i64.const 0))
    (if (i32.ne (local.get $len) (i32.const 144)) (then (return (i32.const 1))))
    (memory.copy (i32.const 64) (local.get $ptr) (i32.const 144))
    (i32.const 0))
)
