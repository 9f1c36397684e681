/*
 * A supervisor written with hyperverse.h (ABI v2): it spawns N workers as
 * *temporary* children, which their Star never restarts, so each crash
 * comes to hv_on_crash_notice and the supervisor restarts the child
 * itself, counting restarts and keeping the last crash code. It can also
 * ask a child for its count and keep (and add up) the replies.
 *
 * args: N (1 byte, 1..8), then the workers' Kind (e.g. "wasm:worker").
 * Child i is SELF:w<i>, spawned with the count (i + 1) * 100 (8 bytes LE).
 *
 *   child  body "w<i>": replies 16 bytes LE: up (u32: its latest spawn was
 *          done), restarts (u32), last crash code (i32, HV_NO_CODE if none
 *          or not an hv_crash), failed spawns (u32)
 *   ask    body "w<i>": asks SELF:w<i> "get" (Points built from hv_me);
 *          replies the tag (8 bytes LE; negative: refused). The reply comes
 *          to hv_on_reply
 *   last   replies the last ask's outcome: status (8 bytes LE: -1 none yet,
 *          or its reply not come yet; 0 done; 1 failed) and the count it
 *          got (8 bytes LE)
 *   total  replies the sum of the counts its asks got back (8 bytes LE)
 *
 * Snapshot: the whole state (this version reads only its own).
 */
#define HV_MAIN
#define HV_ON_REPLY
#define HV_ON_CRASH_NOTICE
#include "hyperverse.h"

#define MAX_CHILDREN 8
#define MAX_KIND 128

struct child {
    int64_t spawn_tag;  /* the spawn awaiting its outcome, 0 if none */
    uint32_t up;        /* 1 once its latest spawn was done */
    uint32_t restarts;  /* respawns after its crashes */
    int32_t last_code;  /* its last crash code */
    uint32_t failed;    /* spawns refused or failed */
};

static struct {
    uint32_t n;
    uint32_t kind_len;
    char kind[MAX_KIND + 1];
    struct child children[MAX_CHILDREN];
    int64_t ask_tag;    /* the ask awaiting its reply, 0 if none */
    int64_t last_status;
    uint64_t last_value;
    uint64_t total;
} s;

static char name_buf[3];

/* "w<i>": the name of child i (i < 10). */
static const char *child_name(uint32_t i) {
    name_buf[0] = 'w';
    name_buf[1] = (char)('0' + i);
    name_buf[2] = 0;
    return name_buf;
}

/* The index of the child named by `len` bytes at `name` ("w<i>"), or -1. */
static int child_index(const char *name, uint32_t len) {
    if (len != 2 || name[0] != 'w' || name[1] < '0' || name[1] > '9') return -1;
    uint32_t i = (uint32_t)(name[1] - '0');
    return i < s.n ? (int)i : -1;
}

/* Queues spawning child i (temporary); 0 if the host refused at once. */
static int spawn_child(uint32_t i) {
    uint64_t start = (uint64_t)(i + 1) * 100;
    int64_t tag = hv_spawn(child_name(i), s.kind, (const uint8_t *)&start, sizeof start,
                           HV_TEMPORARY);
    if (tag <= 0) {
        s.children[i].failed++;
        return 0;
    }
    s.children[i].spawn_tag = tag;
    s.children[i].up = 0;
    return 1;
}

int32_t hv_init(const uint8_t *args, uint32_t len) {
    if (len < 2 || args[0] == 0 || args[0] > MAX_CHILDREN || len - 1 > MAX_KIND) return 2;
    uint8_t *bytes = (uint8_t *)&s;
    for (uint32_t i = 0; i < sizeof s; i++) bytes[i] = 0;
    s.n = args[0];
    s.kind_len = len - 1;
    for (uint32_t i = 0; i < s.kind_len; i++) s.kind[i] = (char)args[1 + i];
    s.kind[s.kind_len] = 0;
    s.last_status = -1;
    for (uint32_t i = 0; i < s.n; i++) {
        s.children[i].last_code = HV_NO_CODE;
        if (!spawn_child(i)) return 3; /* refused: fail the start, spawn nothing */
    }
    hv_log(HV_DEBUG, "supervisor (C) started");
    return HV_OK;
}

int32_t hv_handle(const char *method, uint32_t method_len, const uint8_t *body,
                  uint32_t body_len) {
    int at = child_index((const char *)body, body_len);
    if (hv_is(method, method_len, "child")) {
        if (at < 0) return 2;
        struct child *c = &s.children[at];
        uint32_t out[4] = {c->up, c->restarts, (uint32_t)c->last_code, c->failed};
        hv_reply(out, sizeof out);
    } else if (hv_is(method, method_len, "ask")) {
        if (at < 0) return 2;
        /* SELF:w<i>, in the call's arena. */
        uint32_t me_len = 0;
        const char *me = hv_me(&me_len);
        if (!me) return 4;
        char *to = (char *)hv_export_alloc((int32_t)(me_len + 4));
        if (!to) return 4;
        for (uint32_t i = 0; i < me_len; i++) to[i] = me[i];
        to[me_len] = ':';
        to[me_len + 1] = body[0];
        to[me_len + 2] = body[1];
        to[me_len + 3] = 0;
        int64_t tag = hv_ask(to, "get", 0, 0, 0);
        if (tag > 0) {
            s.ask_tag = tag;
            s.last_status = -1; /* awaiting its reply */
            s.last_value = 0;
        }
        hv_reply_u64((uint64_t)tag);
    } else if (hv_is(method, method_len, "last")) {
        uint64_t out[2] = {(uint64_t)s.last_status, s.last_value};
        hv_reply(out, sizeof out);
    } else if (hv_is(method, method_len, "total")) {
        hv_reply_u64(s.total);
    } else {
        return 1;
    }
    return HV_OK;
}

int32_t hv_on_reply(int64_t tag, int32_t status, const uint8_t *body, uint32_t len) {
    if (tag == s.ask_tag) {
        s.ask_tag = 0;
        s.last_status = status;
        s.last_value = 0;
        if (status == HV_REPLY_OK) {
            s.last_value = hv_u64(body, len); /* the child's count: used */
            s.total += s.last_value;
        }
        return HV_OK;
    }
    for (uint32_t i = 0; i < s.n; i++) {
        struct child *c = &s.children[i];
        if (c->spawn_tag != tag) continue;
        c->spawn_tag = 0;
        if (status == HV_REPLY_OK) {
            c->up = 1;
        } else {
            c->failed++;
            hv_host_log(HV_WARN, (const char *)body, len);
        }
        return HV_OK;
    }
    return HV_OK; /* an outcome it no longer waits for */
}

int32_t hv_on_crash_notice(const char *child, uint32_t child_len, int32_t code,
                           const char *reason, uint32_t reason_len, uint32_t restarts,
                           int32_t gave_up) {
    (void)reason;
    (void)reason_len;
    (void)restarts; /* a respawned temporary child is new: the count is ours */
    uint32_t seg = child_len;
    while (seg > 0 && child[seg - 1] != ':') seg--;
    int at = child_index(child + seg, child_len - seg);
    if (at < 0) return HV_OK; /* not one of ours */
    struct child *c = &s.children[at];
    c->up = 0;
    c->last_code = code;
    if (!gave_up) return HV_OK; /* its Star restarts it */
    c->restarts++;
    spawn_child((uint32_t)at); /* refused: counted in `failed`; it stays down */
    return HV_OK;
}

hv_bytes hv_snapshot(void) {
    hv_bytes b = {&s, sizeof s};
    return b;
}

int32_t hv_restore(const uint8_t *state, uint32_t len) {
    if (len != sizeof s) return 1;
    uint8_t *bytes = (uint8_t *)&s;
    for (uint32_t i = 0; i < len; i++) bytes[i] = state[i];
    return HV_OK;
}
