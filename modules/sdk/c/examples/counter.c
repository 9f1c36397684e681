/*
 * A counter written with hyperverse.h, version 1: the C twin of
 * wat/counter_v1.wat, plus a parent to notify. counter_v2.c is its
 * version 2, as counter_v2.wat is the WAT counter's.
 *
 *   init     args empty: count 0; 8 bytes: that count (LE); more than 8:
 *            the count, then the Point of a parent to notify (text, at
 *            most 127 bytes); anything else is refused (status 2)
 *   add      counts one (replies nothing)
 *   get      replies the count (8 bytes LE)
 *   version  replies [1]
 *   notify   sends `counted` with the count (8 bytes LE) to the parent
 *            (status 2 if none was given)
 *   other    status 1 (the guest refuses the wave: a crash)
 *
 * Snapshot: the count (8 bytes LE), then the parent's Point if there is
 * one. Without a parent that is counter_v1.wat's snapshot, so a WAT
 * counter's live particles hot-reload to this one with their counts (and
 * back). `restore` refuses fewer than 8 bytes, or a parent too long
 * (status 1).
 *
 * Prebuilt as ../prebuilt/counter_v1.wasm (../build.sh rebuilds it), which
 * `hyperverse demo` and examples/hot_reload.rs run.
 */
#define HV_MAIN
#include "hyperverse.h"

/* The snapshot is this struct's first 8 + parent_len bytes: wasm32 is
 * little-endian, so `count` is already the ABI's 8 bytes LE. */
static struct {
    uint64_t count;
    char parent[127];
} state;
static uint32_t parent_len;

/* Takes a count and an optional parent from `len` bytes (at least 8). */
static int take(const uint8_t *bytes, uint32_t len) {
    if (len < 8 || len - 8 > sizeof state.parent) return 0;
    state.count = hv_u64(bytes, len);
    parent_len = len - 8;
    for (uint32_t i = 0; i < parent_len; i++) state.parent[i] = (char)bytes[8 + i];
    return 1;
}

int32_t hv_init(const uint8_t *args, uint32_t len) {
    if (len == 0) {
        state.count = 0;
        parent_len = 0;
    } else if (!take(args, len)) {
        return 2;
    }
    hv_log(HV_DEBUG, "counter v1 (C) started");
    return HV_OK;
}

int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len) {
    (void)body;
    (void)body_len;
    if (hv_is(method, method_len, "add")) {
        state.count++;
    } else if (hv_is(method, method_len, "get")) {
        hv_reply_u64(state.count);
    } else if (hv_is(method, method_len, "version")) {
        uint8_t v = 1;
        hv_reply(&v, 1);
    } else if (hv_is(method, method_len, "notify")) {
        if (parent_len == 0) return 2;
        hv_host_send(state.parent, parent_len, "counted", 7, (const uint8_t *)&state.count,
                     sizeof state.count);
    } else {
        return 1;
    }
    return HV_OK;
}

hv_bytes hv_snapshot(void) {
    hv_bytes b = {&state, 8 + parent_len};
    return b;
}

int32_t hv_restore(const uint8_t *bytes, uint32_t len) { return take(bytes, len) ? HV_OK : 1; }
