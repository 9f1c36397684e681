/*
 * hyperverse.h: write a Hyperverse WASM particle in C, never in WAT.
 *
 * One header, no library: it declares the host functions of the guest ABI
 * (modules/ABI.md, versions 1 and 2) with their import names, gives each
 * export its export name, and supplies the one thing every guest needs and
 * C does not have on wasm32 without a libc: an allocator for the bytes the
 * host hands in (a bump arena, reset by the guest at the end of each call).
 * The guest says it speaks version 2 (hv_abi_version returns 2); version 2
 * is version 1 plus optional imports and exports, so a guest that uses
 * none of them behaves as a version 1 guest.
 *
 * A guest defines four functions; the header exports them under the ABI's
 * names:
 *
 *   int32_t hv_init(const uint8_t *args, uint32_t len);
 *   int32_t hv_handle(const char *method, uint32_t method_len,
 *                     const uint8_t *body, uint32_t body_len);
 *   hv_bytes hv_snapshot(void);
 *   int32_t hv_restore(const uint8_t *state, uint32_t len);
 *
 * (and includes this header in exactly one file, with HV_MAIN defined, so
 * that the exports and the arena are emitted once).
 *
 * Version 2's callbacks are opt-in, one macro each, defined before the
 * include (in every file that includes the header, e.g. with -D):
 *
 *   #define HV_ON_REPLY
 *     declares hv_ask, hv_spawn and hv_stop, and exports `on_reply`,
 *     which calls the guest's
 *       int32_t hv_on_reply(int64_t tag, int32_t status,
 *                           const uint8_t *body, uint32_t len);
 *     The host refuses to load a module that imports hv.ask, hv.spawn or
 *     hv.stop without exporting on_reply (MissingExport): tied to one
 *     macro, that rule is a compile error here instead (hv_ask is not
 *     declared without HV_ON_REPLY; hv_on_reply undefined fails the link).
 *
 *   #define HV_ON_CRASH_NOTICE
 *     exports `on_crash_notice`, which calls the guest's
 *       int32_t hv_on_crash_notice(const char *child, uint32_t child_len,
 *                                  int32_t code, const char *reason,
 *                                  uint32_t reason_len, uint32_t restarts,
 *                                  int32_t gave_up);
 *     for each crash of one of its children.
 *
 * Without them the module exports neither (a guest need not define
 * callbacks it does not use). hv_timer, hv_crash, hv_me, hv_parent and
 * hv_restarts need no callback and are always declared.
 *
 * Requests are effects, outcomes are calls: a host function cannot block
 * until another particle answers, so hv_ask, hv_spawn and hv_stop queue
 * the request (done if the call succeeds) and return a tag; the outcome
 * comes later to hv_on_reply with that tag. Keep what you need to go on
 * in your state, keyed by the tag. See examples/supervisor.c.
 *
 * Build (Debian's clang and lld; no wasm32 libc needed):
 *
 *   clang --target=wasm32 -mcpu=mvp -O2 -nostdlib -ffreestanding \
 *         -Wl,--no-entry -Wl,-z,stack-size=65536 \
 *         -I modules/sdk/c -o counter.wasm counter.c
 *
 * Then `hyperverse module load counter.wasm`, or put it in the daemon's
 * module path, and spawn Kind `wasm:counter`.
 */
#ifndef HYPERVERSE_H
#define HYPERVERSE_H

#include <stddef.h>
#include <stdint.h>

/* The ABI version this header implements: hv_abi_version returns it. */
#define HV_ABI_VERSION 2

/* Status results: 0 is success; anything else is the guest refusing the
 * call (the particle crashes with GuestStatus). */
#define HV_OK 0

/* Log levels of hv_log. */
#define HV_ERROR 0
#define HV_WARN 1
#define HV_INFO 2
#define HV_DEBUG 3

#define HV_IMPORT(name) __attribute__((import_module("hv"), import_name(name)))
#define HV_EXPORT(name) __attribute__((export_name(name)))

/* ---- Host functions (imports from "hv") ---- */

/* Queues a signal to Point `to` (e.g. "space:app:w7"), sent after the call
 * succeeds, in order; returns 0. Where the access rules allow: the guest's
 * own subtree, its parent, its spawn's grants and what the rules (its
 * module's grants manifest among them) grant it; a denied address returns
 * HV_SEND_DENIED, queues nothing, and the guest runs on. */
#define HV_SEND_DENIED 2
HV_IMPORT("send")
int32_t hv_host_send(const char *to, uint32_t to_len, const char *method,
                     uint32_t method_len, const uint8_t *body, uint32_t body_len);

/* Sets the reply of the wave being handled (in hv_handle only; once). */
HV_IMPORT("reply")
void hv_host_reply(const uint8_t *body, uint32_t len);

/* Logs a message at a level (HV_ERROR..HV_DEBUG). */
HV_IMPORT("log")
void hv_host_log(int32_t level, const char *msg, uint32_t len);

/* Wall-clock milliseconds since the Unix epoch. */
HV_IMPORT("now_ms")
int64_t hv_now_ms(void);

/* ---- Version 2 host functions (imports from "hv") ---- */

/* What hv_ask, hv_spawn, hv_stop and hv_timer return instead of a tag
 * (> 0) when the host refuses at once; nothing was queued:
 * - PER_CALL: the call already queued as many sends and requests as one
 *   call may (1,000 at most); the host also fails the whole call;
 * - OPEN: 64 asks awaiting replies, or 64 timers not yet fired; the guest
 *   runs on and may try again once some have come back;
 * - DELAY: a timeout or delay above a day. */
#define HV_REFUSED_PER_CALL (-1)
#define HV_REFUSED_OPEN (-2)
#define HV_REFUSED_DELAY (-3)
/* hv_ask only: the access rules deny asking that Point (see hv_send). */
#define HV_REFUSED_DENIED (-4)

/* hv_on_reply's status: the request was done (the body is the reply; for
 * a spawn, the child's Point; for a stop, empty), or it failed (the body
 * is the reason, UTF-8). */
#define HV_REPLY_OK 0
#define HV_REPLY_FAILED 1

/* hv_spawn's flags. PERMANENT: the Star restarts the child when it
 * crashes. TEMPORARY: it never does; each crash comes to the guest's
 * hv_on_crash_notice, which restarts it or not (a supervisor). */
#define HV_PERMANENT 0
#define HV_TEMPORARY 1

/* hv_on_crash_notice's code when the child did not call hv_crash (a trap,
 * out of fuel, a refused call, a Rust error). */
#define HV_NO_CODE (-1)

/* Writes the particle's own Point (UTF-8, not NUL-terminated) at `buf` if
 * it fits in `cap` bytes; returns its length either way (hv_me retries). */
HV_IMPORT("self")
int32_t hv_host_self(char *buf, uint32_t cap);

/* The same for its parent's Point; -1 if it has none. */
HV_IMPORT("parent")
int32_t hv_host_parent(char *buf, uint32_t cap);

/* How many times this particle has been restarted (0 at first). */
HV_IMPORT("restarts")
int32_t hv_restarts(void);

/* After `delay_ms`, a signal wave with this method and body from the
 * particle to itself (to hv_handle); dies with the incarnation. Returns
 * the timer's id (> 0) or a refusal. */
HV_IMPORT("timer")
int64_t hv_host_timer(uint32_t delay_ms, const char *method, uint32_t method_len,
                      const uint8_t *body, uint32_t body_len);

/* Ends the call as a crash with a code and a UTF-8 message (at most 4 KiB
 * kept): nothing the call queued leaves, and the parent's crash notice
 * carries the code. Never returns (use hv_crash, which says so). */
HV_IMPORT("crash")
void hv_host_crash(int32_t code, const char *msg, uint32_t len);

#ifdef HV_ON_REPLY
/* Queues a request to Point `to` (where hv_send may send); returns its tag
 * (> 0) or a refusal. Its reply, or why it failed (nobody there, a
 * timeout, the target crashed), comes to hv_on_reply. `timeout_ms` 0 is
 * the host's default, 5 s. */
HV_IMPORT("ask")
int64_t hv_host_ask(const char *to, uint32_t to_len, const char *method,
                    uint32_t method_len, const uint8_t *body, uint32_t body_len,
                    uint32_t timeout_ms);

/* Queues spawning the child SELF:name of Kind `kind` (e.g. "wasm:worker";
 * a Rust Kind only if the host granted it) with `args` for its init;
 * flags HV_PERMANENT or HV_TEMPORARY. Returns its tag or a refusal; the
 * outcome (the child's Point, or why not) comes to hv_on_reply. */
HV_IMPORT("spawn")
int64_t hv_host_spawn(const char *name, uint32_t name_len, const char *kind,
                      uint32_t kind_len, const uint8_t *args, uint32_t args_len,
                      int32_t flags);

/* Queues stopping the particle at `point` (with its subtree; only a strict
 * descendant, else the outcome is a failure). Returns its tag or a
 * refusal; the outcome comes to hv_on_reply once it has stopped. */
HV_IMPORT("stop")
int64_t hv_host_stop(const char *point, uint32_t len);
#endif /* HV_ON_REPLY */

/* ---- Conveniences over them ---- */

static inline uint32_t hv_strlen(const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}

/* True if `method` (not NUL-terminated, `len` bytes) is the C string `s`. */
static inline int hv_is(const char *method, uint32_t len, const char *s) {
    uint32_t i = 0;
    for (; i < len; i++) {
        if (s[i] == 0 || s[i] != method[i]) return 0;
    }
    return s[i] == 0;
}

static inline int32_t hv_send(const char *to, const char *method,
                              const uint8_t *body, uint32_t body_len) {
    return hv_host_send(to, hv_strlen(to), method, hv_strlen(method), body, body_len);
}

static inline void hv_reply(const void *body, uint32_t len) {
    hv_host_reply((const uint8_t *)body, len);
}

static inline void hv_reply_u64(uint64_t v) {
    hv_reply(&v, sizeof v); /* wasm32 is little-endian, as the ABI's u64s */
}

static inline void hv_log(int32_t level, const char *msg) {
    hv_host_log(level, msg, hv_strlen(msg));
}

static inline int64_t hv_timer(uint32_t delay_ms, const char *method,
                               const uint8_t *body, uint32_t body_len) {
    return hv_host_timer(delay_ms, method, hv_strlen(method), body, body_len);
}

/* hv_host_crash, which the compiler then knows does not return (and which
 * traps, should a host ever return from it, rather than run on past a crash
 * the guest asked for). */
__attribute__((noreturn)) static inline void hv_crash(int32_t code, const char *msg) {
    hv_host_crash(code, msg, hv_strlen(msg));
    __builtin_trap();
}

#ifdef HV_ON_REPLY
static inline int64_t hv_ask(const char *to, const char *method, const uint8_t *body,
                             uint32_t body_len, uint32_t timeout_ms) {
    return hv_host_ask(to, hv_strlen(to), method, hv_strlen(method), body, body_len,
                       timeout_ms);
}

static inline int64_t hv_spawn(const char *name, const char *kind, const uint8_t *args,
                               uint32_t args_len, int32_t flags) {
    return hv_host_spawn(name, hv_strlen(name), kind, hv_strlen(kind), args, args_len, flags);
}

static inline int64_t hv_stop(const char *point) {
    return hv_host_stop(point, hv_strlen(point));
}
#endif /* HV_ON_REPLY */

/* The arena's allocator (the `alloc` export, defined with HV_MAIN):
 * `len` bytes, 8-aligned, valid until the current call returns; 0 if
 * memory cannot grow. */
uint8_t *hv_export_alloc(int32_t len);

/* The first room hv_me and hv_parent offer the host: most Points fit, so
 * most calls cross to the host once. */
#define HV_TEXT_BUFFER 64

/* Reads hv.self (parent = 0) or hv.parent (parent = 1) into the arena: a
 * first try with HV_TEXT_BUFFER bytes, and if the Point is longer, again
 * with exactly its length. NUL-terminated; its length in *len if `len` is
 * not 0; 0 if there is none (no parent) or no memory. */
static inline const char *hv__read_point(int parent, uint32_t *len) {
    uint32_t cap = HV_TEXT_BUFFER;
    for (;;) {
        char *buf = (char *)hv_export_alloc((int32_t)cap + 1);
        if (!buf) return 0;
        int32_t n = parent ? hv_host_parent(buf, cap) : hv_host_self(buf, cap);
        if (n < 0) return 0;
        if ((uint32_t)n <= cap) {
            buf[n] = 0;
            if (len) *len = (uint32_t)n;
            return buf;
        }
        cap = (uint32_t)n; /* too small: the host said how much it needs */
    }
}

/* The particle's own Point (e.g. "app:sup"), valid until the call returns:
 * where its children live (ME:name). */
static inline const char *hv_me(uint32_t *len) { return hv__read_point(0, len); }

/* Its parent's Point, valid until the call returns; 0 directly under the
 * Machine's root. */
static inline const char *hv_parent(uint32_t *len) { return hv__read_point(1, len); }

/* Reads a little-endian u64 from `len` bytes (0 if fewer than 8). */
static inline uint64_t hv_u64(const uint8_t *p, uint32_t len) {
    uint64_t v = 0;
    if (len < 8) return 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A snapshot: where the state's bytes are, and how many (valid until the
 * next call into the guest). */
typedef struct {
    const void *ptr;
    uint32_t len;
} hv_bytes;

/* ---- What the guest defines ---- */

int32_t hv_init(const uint8_t *args, uint32_t len);
int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len);
hv_bytes hv_snapshot(void);
int32_t hv_restore(const uint8_t *state, uint32_t len);

#ifdef HV_ON_REPLY
/* The outcome of the request `tag` (see HV_ON_REPLY above): status
 * HV_REPLY_OK and the reply, or HV_REPLY_FAILED and the reason. A call of
 * its own: it may send, ask, spawn, set timers, not reply. */
int32_t hv_on_reply(int64_t tag, int32_t status, const uint8_t *body, uint32_t len);
#endif

#ifdef HV_ON_CRASH_NOTICE
/* A child crashed: its Point, its hv_crash code (HV_NO_CODE if it crashed
 * otherwise), the reason's text, its restarts so far, and gave_up = 1 if
 * it is not restarted (temporary, or given up on: to have it back, spawn
 * it again). A call of its own, like hv_on_reply. */
int32_t hv_on_crash_notice(const char *child, uint32_t child_len, int32_t code,
                           const char *reason, uint32_t reason_len, uint32_t restarts,
                           int32_t gave_up);
#endif

#ifdef HV_MAIN

/* The arena the host's bytes land in (and hv_me's and hv_parent's):
 * bump-allocated, reset at the end of each call that takes bytes (init,
 * handle, restore, on_reply, on_crash_notice), since the host's `alloc`
 * for a call comes just before it. Grows memory when it must; a guest
 * that needs more than the ceiling fails with MemoryLimit. */
extern unsigned char __heap_base;
static uintptr_t hv_arena_next;

static void hv_arena_reset(void) { hv_arena_next = (uintptr_t)&__heap_base; }

HV_EXPORT("alloc")
uint8_t *hv_export_alloc(int32_t len) {
    if (hv_arena_next == 0) hv_arena_reset();
    uintptr_t at = (hv_arena_next + 7) & ~(uintptr_t)7;
    uintptr_t end = at + (uint32_t)len;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        uintptr_t pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return 0;
    }
    hv_arena_next = end;
    return (uint8_t *)at;
}

/* The inbox: the host writes a call's bytes here when they fit, instead
 * of calling `alloc` for room (one guest call per wave instead of two).
 * Like the arena's, what is written there is valid during that call only.
 * Define HV_INBOX_SIZE as 0 before including this header to go without. */
#ifndef HV_INBOX_SIZE
#define HV_INBOX_SIZE 1024
#endif
#if HV_INBOX_SIZE > 0
static uint8_t hv_inbox_bytes[HV_INBOX_SIZE] __attribute__((aligned(8)));

HV_EXPORT("hv_inbox")
int64_t hv_export_inbox(void) {
    return ((int64_t)(uint32_t)(uintptr_t)hv_inbox_bytes << 32) | (int64_t)HV_INBOX_SIZE;
}
#endif

HV_EXPORT("hv_abi_version")
int32_t hv_export_abi_version(void) { return HV_ABI_VERSION; }

HV_EXPORT("init")
int32_t hv_export_init(const uint8_t *args, int32_t len) {
    int32_t status = hv_init(args, (uint32_t)len);
    hv_arena_reset();
    return status;
}

HV_EXPORT("handle")
int32_t hv_export_handle(const char *method, int32_t method_len, const uint8_t *body,
                         int32_t body_len) {
    int32_t status = hv_handle(method, (uint32_t)method_len, body, (uint32_t)body_len);
    hv_arena_reset();
    return status;
}

#ifdef HV_ON_REPLY
HV_EXPORT("on_reply")
int32_t hv_export_on_reply(int64_t tag, int32_t status, const uint8_t *body, int32_t len) {
    int32_t result = hv_on_reply(tag, status, body, (uint32_t)len);
    hv_arena_reset();
    return result;
}
#endif

#ifdef HV_ON_CRASH_NOTICE
HV_EXPORT("on_crash_notice")
int32_t hv_export_on_crash_notice(const char *child, int32_t child_len, int32_t code,
                                  const char *reason, int32_t reason_len, int32_t restarts,
                                  int32_t gave_up) {
    int32_t result = hv_on_crash_notice(child, (uint32_t)child_len, code, reason,
                                        (uint32_t)reason_len, (uint32_t)restarts, gave_up);
    hv_arena_reset();
    return result;
}
#endif

HV_EXPORT("snapshot")
int64_t hv_export_snapshot(void) {
    hv_bytes b = hv_snapshot();
    return ((int64_t)(uint32_t)(uintptr_t)b.ptr << 32) | (int64_t)b.len;
}

HV_EXPORT("restore")
int32_t hv_export_restore(const uint8_t *state, int32_t len) {
    int32_t status = hv_restore(state, (uint32_t)len);
    hv_arena_reset();
    return status;
}

#endif /* HV_MAIN */
#endif /* HYPERVERSE_H */
