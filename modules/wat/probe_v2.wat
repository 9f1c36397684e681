;; probe_v2: a test guest of the Hyperverse guest ABI, version 2 (see
;; modules/ABI.md). One-letter methods, each exercising one host function:
;;
;;   "a" body=Point   hv.ask(Point, "get", "", 0); the reply comes to on_reply
;;   "A" body=Point   65 asks in one call; replies the last hv.ask result (8 LE)
;;   "r"              replies on_reply's last status (8 LE) and value (8 LE:
;;                    the reply's first 8 bytes, or its length if shorter);
;;                    "a", "s" and "k" set the status to -1 (none yet)
;;   "s" body=Kind    hv.spawn("w", Kind, "", temporary); outcome to on_reply
;;   "k" body=Point   hv.stop(Point); outcome to on_reply
;;   "t" body=ms(4)   hv.timer(ms, "i", ""); replies its id (8 LE)
;;   "T"              65 timers of 60 s in one call; replies the last result
;;   "i"              count += 1 (the timer's wave)
;;   "c"              replies the count (8 LE)
;;   "x"              hv.crash(42, "asked to die")
;;   "X"              hv.crash with a 1 GiB message length (clamped by the host)
;;   "w"              replies hv.self
;;   "W"              replies hv.self's length when given 1 byte of room (8 LE)
;;   "p"              replies hv.parent (nothing if it has none)
;;   "n"              replies hv.restarts (8 LE)
;;   "N"              replies crash notices seen (4 LE) and the last code (4 LE)
;;
;; init(args): non-empty args are a Kind: the guest spawns child "w" of it,
;; temporary, and respawns it on every crash notice (a supervisor).
;; snapshot: calls hv.ask, which is not allowed there (for the tests of
;; phases); restore: count from 8 bytes.
(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  (import "hv" "ask" (func $ask (param i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "spawn" (func $spawn (param i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "stop" (func $stop (param i32 i32) (result i64)))
  (import "hv" "timer" (func $timer (param i32 i32 i32 i32 i32) (result i64)))
  (import "hv" "crash" (func $crash (param i32 i32 i32)))
  (import "hv" "self" (func $self (param i32 i32) (result i32)))
  (import "hv" "parent" (func $parent (param i32 i32) (result i32)))
  (import "hv" "restarts" (func $restarts (result i32)))

  ;; [0, 64) scratch for replies; [64, 128) strings; [256, 512) the
  ;; supervised child's Kind; [512, 1024) hv.self/parent output; [1024, ...)
  ;; the heap host input goes to (reset by every call).
  (memory (export "memory") 1)
  (data (i32.const 64) "get")
  (data (i32.const 68) "w")
  (data (i32.const 72) "i")
  (data (i32.const 80) "asked to die")

  (global $count (mut i64) (i64.const 0))
  (global $status (mut i64) (i64.const -1))
  (global $value (mut i64) (i64.const 0))
  (global $notices (mut i32) (i32.const 0))
  (global $code (mut i32) (i32.const 0))
  (global $kind_len (mut i32) (i32.const 0))
  (global $heap (mut i32) (i32.const 1024))

  (func (export "hv_abi_version") (result i32) (i32.const 2))

  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
    (local.get $ptr))

  (func $reply64 (param $v i64)
    (i64.store (i32.const 0) (local.get $v))
    (call $reply (i32.const 0) (i32.const 8)))

  (func $spawn_child (result i64)
    (call $spawn (i32.const 68) (i32.const 1) (i32.const 256) (global.get $kind_len)
                 (i32.const 0) (i32.const 0) (i32.const 1)))

  (func (export "init") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (if (i32.gt_u (local.get $len) (i32.const 0))
      (then
        (if (i32.gt_u (local.get $len) (i32.const 256)) (then (return (i32.const 2))))
        (memory.copy (i32.const 256) (local.get $ptr) (local.get $len))
        (global.set $kind_len (local.get $len))
        (drop (call $spawn_child))))
    (i32.const 0))

  (func (export "handle") (param $m i32) (param $ml i32) (param $b i32) (param $bl i32) (result i32)
    (local $op i32) (local $i i32) (local $last i64) (local $n i32)
    (global.set $heap (i32.const 1024))
    (local.set $op (i32.load8_u (local.get $m)))
    (block $done
      (if (i32.eq (local.get $op) (i32.const 97)) ;; a
        (then
          (global.set $status (i64.const -1))
          (drop (call $ask (local.get $b) (local.get $bl) (i32.const 64) (i32.const 3)
                           (i32.const 0) (i32.const 0) (i32.const 0)))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 65)) ;; A
        (then
          (loop $more
            (local.set $last
              (call $ask (local.get $b) (local.get $bl) (i32.const 64) (i32.const 3)
                         (i32.const 0) (i32.const 0) (i32.const 0)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $i) (i32.const 65))))
          (call $reply64 (local.get $last))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 114)) ;; r
        (then
          (i64.store (i32.const 0) (global.get $status))
          (i64.store (i32.const 8) (global.get $value))
          (call $reply (i32.const 0) (i32.const 16))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 115)) ;; s
        (then
          (if (i32.gt_u (local.get $bl) (i32.const 256)) (then (return (i32.const 2))))
          (memory.copy (i32.const 256) (local.get $b) (local.get $bl))
          (global.set $kind_len (local.get $bl))
          (global.set $status (i64.const -1))
          (drop (call $spawn_child))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 107)) ;; k
        (then
          (global.set $status (i64.const -1))
          (drop (call $stop (local.get $b) (local.get $bl)))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 116)) ;; t
        (then
          (call $reply64
            (call $timer (i32.load (local.get $b)) (i32.const 72) (i32.const 1)
                         (i32.const 0) (i32.const 0)))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 84)) ;; T
        (then
          (loop $more
            (local.set $last
              (call $timer (i32.const 60000) (i32.const 72) (i32.const 1)
                           (i32.const 0) (i32.const 0)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $i) (i32.const 65))))
          (call $reply64 (local.get $last))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 105)) ;; i
        (then
          (global.set $count (i64.add (global.get $count) (i64.const 1)))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 99)) ;; c
        (then (call $reply64 (global.get $count)) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 120)) ;; x
        (then (call $crash (i32.const 42) (i32.const 80) (i32.const 12)) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 88)) ;; X
        (then (call $crash (i32.const 7) (i32.const 80) (i32.const 1073741824)) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 119)) ;; w
        (then
          (local.set $n (call $self (i32.const 512) (i32.const 512)))
          (call $reply (i32.const 512) (local.get $n))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 87)) ;; W
        (then
          (call $reply64 (i64.extend_i32_s (call $self (i32.const 512) (i32.const 1))))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 112)) ;; p
        (then
          (local.set $n (call $parent (i32.const 512) (i32.const 512)))
          (if (i32.ge_s (local.get $n) (i32.const 0))
            (then (call $reply (i32.const 512) (local.get $n))))
          (br $done)))
      (if (i32.eq (local.get $op) (i32.const 110)) ;; n
        (then (call $reply64 (i64.extend_i32_s (call $restarts))) (br $done)))
      (if (i32.eq (local.get $op) (i32.const 78)) ;; N
        (then
          (i32.store (i32.const 0) (global.get $notices))
          (i32.store (i32.const 4) (global.get $code))
          (call $reply (i32.const 0) (i32.const 8))
          (br $done)))
      (return (i32.const 1)))
    (i32.const 0))

  (func (export "on_reply") (param $tag i64) (param $status i32) (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (global.set $status (i64.extend_i32_s (local.get $status)))
    (if (i32.ge_u (local.get $len) (i32.const 8))
      (then (global.set $value (i64.load (local.get $ptr))))
      (else (global.set $value (i64.extend_i32_u (local.get $len)))))
    (i32.const 0))

  (func (export "on_crash_notice")
    (param $child i32) (param $child_len i32) (param $code i32)
    (param $reason i32) (param $reason_len i32) (param $restarts i32) (param $gave_up i32)
    (result i32)
    (global.set $heap (i32.const 1024))
    (global.set $notices (i32.add (global.get $notices) (i32.const 1)))
    (global.set $code (local.get $code))
    (if (i32.gt_u (global.get $kind_len) (i32.const 0))
      (then (drop (call $spawn_child))))
    (i32.const 0))

  (func (export "snapshot") (result i64)
    (drop (call $ask (i32.const 64) (i32.const 3) (i32.const 64) (i32.const 3)
                     (i32.const 0) (i32.const 0) (i32.const 0)))
    (i64.const 0))

  (func (export "restore") (param $ptr i32) (param $len i32) (result i32)
    (global.set $heap (i32.const 1024))
    (i32.const 0))
)
