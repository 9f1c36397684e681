/*
 * A counter written with hyperverse.h: the C twin of wat/counter_v1.wat,
 * with the same snapshot (the count, 8 bytes LE), so a WAT counter's live
 * particles hot-reload to it with their counts.
 *
 *   add      counts one (replies nothing)
 *   get      replies the count (8 bytes LE)
 *   version  replies [3]: the C version
 *   notify   sends `counted` with the count to the particle's parent Point
 *            given at spawn after the count (args: 8 bytes count, then the
 *            parent's Point as text)
 */
#define HV_MAIN
#include "hyperverse.h"

static uint64_t count;
static char parent[128];
static uint32_t parent_len;

int32_t hv_init(const uint8_t *args, uint32_t len) {
    count = hv_u64(args, len);
    parent_len = 0;
    if (len > 8) {
        uint32_t n = len - 8;
        if (n >= sizeof parent) return 1; /* refuse: a Point that long is no parent */
        for (uint32_t i = 0; i < n; i++) parent[i] = (char)args[8 + i];
        parent[n] = 0;
        parent_len = n;
    }
    hv_log(HV_DEBUG, "counter (C) started");
    return HV_OK;
}

int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len) {
    (void)body;
    (void)body_len;
    if (hv_is(method, method_len, "add")) {
        count++;
    } else if (hv_is(method, method_len, "get")) {
        hv_reply_u64(count);
    } else if (hv_is(method, method_len, "version")) {
        uint8_t v = 3;
        hv_reply(&v, 1);
    } else if (hv_is(method, method_len, "notify")) {
        if (parent_len == 0) return 2; /* no parent was given */
        hv_send(parent, "counted", (const uint8_t *)&count, sizeof count);
    }
    return HV_OK;
}

hv_bytes hv_snapshot(void) {
    hv_bytes b = {&count, sizeof count};
    return b;
}

int32_t hv_restore(const uint8_t *state, uint32_t len) {
    if (len != 8) return 1;
    count = hv_u64(state, len);
    return HV_OK;
}
