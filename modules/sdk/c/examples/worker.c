/*
 * A worker for examples/supervisor.c, written with hyperverse.h (ABI v2):
 * a count it is spawned with, and a structured crash on demand.
 *
 *   get       replies the count (8 bytes LE)
 *   add       counts one
 *   crash     body: a code (4 bytes LE): hv_crash(code, "asked to crash"),
 *             so the code reaches its parent's crash notice
 *   restarts  replies hv_restarts (8 bytes LE)
 *   who       replies "ME|PARENT", its Point and its parent's (PARENT
 *             empty directly under the root)
 *
 * args: the starting count (8 bytes LE; 0 if fewer). It asks, spawns and
 * stops nothing, so it needs neither HV_ON_REPLY nor HV_ON_CRASH_NOTICE.
 */
#define HV_MAIN
#include "hyperverse.h"

static uint64_t count;
static uint8_t who[2 * 256 + 1];

int32_t hv_init(const uint8_t *args, uint32_t len) {
    count = hv_u64(args, len);
    return HV_OK;
}

int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len) {
    if (hv_is(method, method_len, "get")) {
        hv_reply_u64(count);
    } else if (hv_is(method, method_len, "add")) {
        count++;
    } else if (hv_is(method, method_len, "crash")) {
        int32_t code = 0;
        if (body_len >= 4)
            code = (int32_t)((uint32_t)body[0] | (uint32_t)body[1] << 8 |
                             (uint32_t)body[2] << 16 | (uint32_t)body[3] << 24);
        hv_crash(code, "asked to crash");
    } else if (hv_is(method, method_len, "restarts")) {
        hv_reply_u64((uint64_t)hv_restarts());
    } else if (hv_is(method, method_len, "who")) {
        uint32_t me_len = 0, parent_len = 0, o = 0;
        const char *me = hv_me(&me_len);
        const char *parent = hv_parent(&parent_len);
        if (!me || me_len > 256 || parent_len > 256) return 2;
        for (uint32_t i = 0; i < me_len; i++) who[o++] = (uint8_t)me[i];
        who[o++] = '|';
        for (uint32_t i = 0; parent && i < parent_len; i++) who[o++] = (uint8_t)parent[i];
        hv_reply(who, o);
    } else {
        return 1;
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
