/*
 * hyperverse.h: write a Hyperverse WASM particle in C, never in WAT.
 *
 * One header, no library: it declares the host functions of the guest ABI
 * (modules/ABI.md, version 1) with their import names, gives each export
 * its export name, and supplies the one thing every guest needs and C does
 * not have on wasm32 without a libc: an allocator for the bytes the host
 * hands in (a bump arena, reset by the guest at the start of each call).
 *
 * A guest defines five functions; the header exports them under the ABI's
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

#define HV_ABI_VERSION 1

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
 * succeeds, in order. Only to the guest's own subtree, its parent and its
 * spawn's grants: any other address fails the call (SendOutOfScope). */
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

#ifdef HV_MAIN

/* The arena the host's bytes land in: bump-allocated, reset at the start of
 * every call but `handle` (whose `alloc` comes just before it: it is reset
 * at the end of `handle` instead). Grows memory when it must; a guest
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
