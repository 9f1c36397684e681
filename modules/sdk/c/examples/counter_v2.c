/*
 * counter.c, version 2: the same state and snapshot, kept across a hot
 * reload, with a visible change of behaviour, as wat/counter_v2.wat is to
 * counter_v1.wat.
 *
 *   init     as version 1
 *   add      counts one and, new in version 2, replies the new count
 *            (8 bytes LE)
 *   get      replies the count (8 bytes LE)
 *   version  replies [2]
 *   notify   as version 1: `counted` with the count to the parent
 *   other    status 1
 *
 * Snapshot and restore as version 1 (the count, 8 bytes LE, then the
 * parent's Point if any), so version 1's live particles move here with
 * their counts and parents, and back.
 *
 * Prebuilt as ../prebuilt/counter_v2.wasm (../build.sh rebuilds it), the
 * version `hyperverse demo` and examples/hot_reload.rs reload to.
 */
#define HV_MAIN
#include "hyperverse.h"

static struct {
    uint64_t count;
    char parent[127];
} state;
static uint32_t parent_len;

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
    hv_log(HV_DEBUG, "counter v2 (C) started");
    return HV_OK;
}

int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len) {
    (void)body;
    (void)body_len;
    if (hv_is(method, method_len, "add")) {
        state.count++;
        hv_reply_u64(state.count);
    } else if (hv_is(method, method_len, "get")) {
        hv_reply_u64(state.count);
    } else if (hv_is(method, method_len, "version")) {
        uint8_t v = 2;
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
