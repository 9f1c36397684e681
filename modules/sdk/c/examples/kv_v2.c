/*
 * The key-value shard, version 2: a new state layout. Each entry now
 * counts its reads.
 *
 *   put, get, count  as in version 1 (get also counts a read)
 *   hits   body "key": replies the entry's reads since it was stored or
 *          since the reload (8 bytes LE)
 *
 * Snapshot (layout 2): the tag "KV2" then [n: u8] then n times
 * [klen: u8][key][vlen: u8][value][hits: u32 LE]. restore reads layout 2
 * and layout 1 (version 1's, which starts with its entry count: never 'K'
 * = 75, above the 64 entries a shard holds), giving version 1's entries 0
 * hits.
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
    uint32_t hits;
} kv[MAX];
static uint32_t n;
static uint8_t snap[4 + MAX * (6 + KEY + VAL)];

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
        kv[at].hits = 0;
    } else if (hv_is(method, method_len, "get")) {
        int at = find(b, body_len);
        if (at >= 0) {
            kv[at].hits++;
            hv_reply(kv[at].val, kv[at].vlen);
        }
    } else if (hv_is(method, method_len, "count")) {
        hv_reply_u64(n);
    } else if (hv_is(method, method_len, "hits")) {
        int at = find(b, body_len);
        hv_reply_u64(at >= 0 ? kv[at].hits : 0);
    }
    return HV_OK;
}

hv_bytes hv_snapshot(void) {
    uint32_t o = 0;
    snap[o++] = 'K';
    snap[o++] = 'V';
    snap[o++] = '2';
    snap[o++] = (uint8_t)n;
    for (uint32_t i = 0; i < n; i++) {
        snap[o++] = kv[i].klen;
        for (uint32_t j = 0; j < kv[i].klen; j++) snap[o++] = (uint8_t)kv[i].key[j];
        snap[o++] = kv[i].vlen;
        for (uint32_t j = 0; j < kv[i].vlen; j++) snap[o++] = (uint8_t)kv[i].val[j];
        for (int k = 0; k < 4; k++) snap[o++] = (uint8_t)(kv[i].hits >> (8 * k));
    }
    hv_bytes s = {snap, o};
    return s;
}

int32_t hv_restore(const uint8_t *s, uint32_t len) {
    int v2 = len >= 4 && s[0] == 'K' && s[1] == 'V' && s[2] == '2';
    uint32_t o = v2 ? 3 : 0;
    if (o >= len || s[o] > MAX) return 1;
    uint32_t count = s[o++];
    for (uint32_t i = 0; i < count; i++) {
        if (o >= len || s[o] > KEY || o + 1 + s[o] >= len) return 1;
        kv[i].klen = s[o++];
        for (uint32_t j = 0; j < kv[i].klen; j++) kv[i].key[j] = (char)s[o++];
        if (s[o] > VAL || o + 1 + s[o] > len) return 1;
        kv[i].vlen = s[o++];
        for (uint32_t j = 0; j < kv[i].vlen; j++) kv[i].val[j] = (char)s[o++];
        kv[i].hits = 0;
        if (v2) {
            if (o + 4 > len) return 1;
            for (int k = 0; k < 4; k++) kv[i].hits |= (uint32_t)s[o++] << (8 * k);
        }
    }
    if (o != len) return 1;
    n = count;
    return HV_OK;
}
