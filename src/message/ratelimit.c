/* Token buckets for outgoing mail: one global, one per recipient domain.
 * Pure (the caller passes a monotonic time and gets a wait time back), so
 * the arithmetic is tested without sleeping; the SMTP pool locks around it.
 *
 * Amounts are kept in "micro-messages per minute" units: a bucket of rate
 * r messages per minute gains r units per millisecond and a message costs
 * 60000 units, so integer arithmetic is exact and never drifts. */
#include "message/message.h"

#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"
#include "util/banned.h"

#define COST 60000 /* units per message: ms per minute */

typedef struct bucket {
    int64_t units;   /* available, <= cap */
    int64_t last_ms; /* when units was last brought up to date */
} bucket_t;

struct td_ratelimit {
    int64_t per_min, domain_per_min;
    int64_t cap, domain_cap; /* bucket sizes in units */
    bucket_t global;
    td_strmap_t index; /* domain -> slot in buckets */
    bucket_t *buckets;
    char **names; /* domain of each slot, to rebuild the index */
    int n;
};

/* A burst of one second's worth of messages, and at least one. */
static int64_t cap_for(int64_t per_min)
{
    int64_t burst = per_min / 60;

    return (burst < 1 ? 1 : burst) * COST;
}

td_ratelimit_t *td_ratelimit_new(int64_t per_min, int64_t domain_per_min)
{
    td_ratelimit_t *rl = td_xcalloc(1, sizeof(*rl));

    /* rates above a million a minute are as good as unlimited, and keep
     * the products below int64 overflow */
    rl->per_min = per_min > 0 ? (per_min > 1000000 ? 1000000 : per_min) : 0;
    rl->domain_per_min =
        domain_per_min > 0 ? (domain_per_min > 1000000 ? 1000000 : domain_per_min) : 0;
    rl->cap = cap_for(rl->per_min);
    rl->domain_cap = cap_for(rl->domain_per_min);
    rl->global.units = rl->cap;
    rl->global.last_ms = INT64_MIN;
    rl->buckets = td_xcalloc(TD_RATELIMIT_MAX_DOMAINS, sizeof(*rl->buckets));
    rl->names = td_xcalloc(TD_RATELIMIT_MAX_DOMAINS, sizeof(*rl->names));
    return rl;
}

void td_ratelimit_free(td_ratelimit_t *rl)
{
    if (rl == NULL) {
        return;
    }
    for (int i = 0; i < rl->n; i++) {
        free(rl->names[i]);
    }
    free(rl->names);
    free(rl->buckets);
    td_strmap_clear(&rl->index);
    free(rl);
}

static void refill(bucket_t *b, int64_t rate, int64_t cap, int64_t now_ms)
{
    if (b->last_ms == INT64_MIN || now_ms <= b->last_ms) {
        /* first use, or a clock that did not move (or went back): no gain */
        b->last_ms = b->last_ms == INT64_MIN || now_ms > b->last_ms ? now_ms : b->last_ms;
        return;
    }
    int64_t elapsed = now_ms - b->last_ms;
    /* a long idle time fills the bucket; cap the product before it overflows */
    if (elapsed >= cap / rate + 1) {
        b->units = cap;
    } else {
        b->units += elapsed * rate;
        b->units = b->units > cap ? cap : b->units;
    }
    b->last_ms = now_ms;
}

/* Milliseconds until b holds one message's worth; 0 when it does now. */
static int64_t wait_for(const bucket_t *b, int64_t rate)
{
    if (b->units >= COST) {
        return 0;
    }
    return (COST - b->units + rate - 1) / rate;
}

/* Drops the buckets that are full again: a full bucket is the same as no
 * bucket. If every domain is busy, all are dropped (a short burst above the
 * per-domain limit is better than refusing to track a new domain). */
static void compact(td_ratelimit_t *rl, int64_t now_ms)
{
    int kept = 0;

    td_strmap_clear(&rl->index);
    for (int i = 0; i < rl->n; i++) {
        refill(&rl->buckets[i], rl->domain_per_min, rl->domain_cap, now_ms);
        if (rl->buckets[i].units >= rl->domain_cap) {
            free(rl->names[i]);
            continue;
        }
        rl->buckets[kept] = rl->buckets[i];
        rl->names[kept] = rl->names[i];
        td_strmap_put(&rl->index, rl->names[kept], strlen(rl->names[kept]), kept);
        kept++;
    }
    rl->n = kept;
    if (rl->n == TD_RATELIMIT_MAX_DOMAINS) {
        for (int i = 0; i < rl->n; i++) {
            free(rl->names[i]);
        }
        rl->n = 0;
        td_strmap_clear(&rl->index);
    }
}

static bucket_t *domain_bucket(td_ratelimit_t *rl, const char *domain, int64_t now_ms)
{
    char lower[256];
    size_t n = 0;
    int64_t slot;

    /* domains compare without case; longer ones share the last slot name */
    for (; domain[n] && n < sizeof(lower) - 1; n++) {
        char c = domain[n];
        lower[n] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    lower[n] = '\0';
    if (td_strmap_get(&rl->index, lower, n, &slot)) {
        return &rl->buckets[slot];
    }
    if (rl->n == TD_RATELIMIT_MAX_DOMAINS) {
        compact(rl, now_ms);
    }
    slot = rl->n++;
    rl->names[slot] = td_xstrdup(lower);
    rl->buckets[slot] = (bucket_t){ .units = rl->domain_cap, .last_ms = now_ms };
    td_strmap_put(&rl->index, lower, n, slot);
    return &rl->buckets[slot];
}

int64_t td_ratelimit_take(td_ratelimit_t *rl, const char *domain, int64_t now_ms)
{
    bucket_t *d = NULL;
    int64_t wait = 0, w;

    if (rl->per_min > 0) {
        refill(&rl->global, rl->per_min, rl->cap, now_ms);
        wait = wait_for(&rl->global, rl->per_min);
    }
    if (rl->domain_per_min > 0) {
        d = domain_bucket(rl, domain ? domain : "", now_ms);
        refill(d, rl->domain_per_min, rl->domain_cap, now_ms);
        w = wait_for(d, rl->domain_per_min);
        wait = w > wait ? w : wait;
    }
    if (wait > 0) {
        return wait;
    }
    if (rl->per_min > 0) {
        rl->global.units -= COST;
    }
    if (d) {
        d->units -= COST;
    }
    return 0;
}
