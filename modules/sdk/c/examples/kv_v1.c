/*
 * A key-value shard written with hyperverse.h, version 1.
 *
 *   put    body "key=value": stores it (keys up to 32 bytes, values up to
 *          64, at most 64 entries: past that the call is refused, status 3)
 *   get    body "key": replies the value (empty if absent)
 *   count  replies the number of entries (8 bytes LE)
 *
 * Snapshot (layout 1): [n: u8] then n times [klen: u8][key][vlen: u8][value].
 * Version 2 (kv_v2.c) changes this layout and reads this one.
 */
#define HV_MAIN
#include "hyperverse.h"

#define MAX 64
#define KEY 32
#define VAL 64

static struct {
    uint8_t klen, vlen;
    char key[KEY];
    char val[VAL];
} kv[MAX];
static uint32_t n;
static uint8_t snap[1 + MAX * (2 + KEY + VAL)];

static int find(const char *k, uint32_t klen) {
    for (uint32_t i = 0; i < n; i++) {
        if (kv[i].klen != klen) continue;
        uint32_t j = 0;
        while (j < klen && kv[i].key[j] == k[j]) j++;
        if (j == klen) return (int)i;
    }
    return -1;
}

int32_t hv_init(const uint8_t *args, uint32_t len) {
    (void)args;
    (void)len;
    n = 0;
    return HV_OK;
}

int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len) {
    const char *b = (const char *)body;
    if (hv_is(method, method_len, "put")) {
        uint32_t eq = 0;
        while (eq < body_len && b[eq] != '=') eq++;
        if (eq == body_len || eq == 0 || eq > KEY || body_len - eq - 1 > VAL) return 2;
        int at = find(b, eq);
        if (at < 0) {
            if (n == MAX) return 3;
            at = (int)n++;
        }
        kv[at].klen = (uint8_t)eq;
        for (uint32_t i = 0; i < eq; i++) kv[at].key[i] = b[i];
        kv[at].vlen = (uint8_t)(body_len - eq - 1);
        for (uint32_t i = 0; i < kv[at].vlen; i++) kv[at].val[i] = b[eq + 1 + i];
    } else if (hv_is(method, method_len, "get")) {
        int at = find(b, body_len);
        if (at >= 0) hv_reply(kv[at].val, kv[at].vlen);
    } else if (hv_is(method, method_len, "count")) {
        hv_reply_u64(n);
    }
    return HV_OK;
}

hv_bytes hv_snapshot(void) {
    uint32_t o = 0;
    snap[o++] = (uint8_t)n;
    for (uint32_t i = 0; i < n; i++) {
        snap[o++] = kv[i].klen;
        for (uint32_t j = 0; j < kv[i].klen; j++) snap[o++] = (uint8_t)kv[i].key[j];
        snap[o++] = kv[i].vlen;
        for (uint32_t j = 0; j < kv[i].vlen; j++) snap[o++] = (uint8_t)kv[i].val[j];
    }
    hv_bytes s = {snap, o};
    return s;
}

int32_t hv_restore(const uint8_t *s, uint32_t len) {
    /* Layout 1 only: a later layout is refused, so a reload back to this
     * version fails and the host keeps (or rolls back to) the newer one. */
    if (len < 1 || s[0] > MAX) return 1;
    uint32_t o = 1, count = s[0];
    for (uint32_t i = 0; i < count; i++) {
        if (o >= len || s[o] > KEY || o + 1 + s[o] >= len) return 1;
        kv[i].klen = s[o++];
        for (uint32_t j = 0; j < kv[i].klen; j++) kv[i].key[j] = (char)s[o++];
        if (s[o] > VAL || o + 1 + s[o] > len) return 1;
        kv[i].vlen = s[o++];
        for (uint32_t j = 0; j < kv[i].vlen; j++) kv[i].val[j] = (char)s[o++];
    }
    if (o != len) return 1;
    n = count;
    return HV_OK;
}
