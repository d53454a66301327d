/* The compiled-template cache: the outbox renders the same few stored
 * templates for every message, and compiling is most of a render's cost.
 * A small table with least-recently-used eviction, scanned linearly (it
 * holds a few hundred entries at most; a hash compare rejects most slots);
 * not a general-purpose map. */
#include "message/message.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"
#include "util/banned.h"

struct td_template_ref {
    atomic_int refs; /* the cache's own (while in the table) + each holder's */
    td_template_t *tpl;
};

typedef struct slot {
    uint64_t hash; /* of key */
    char *key;     /* "id\0part" as one string: id, a NUL, part */
    size_t key_len;
    int64_t version;
    uint64_t src_hash; /* of the text: versions start over after a delete */
    size_t src_len;
    uint64_t used; /* tick of the last get: smallest is evicted */
    td_template_ref_t *ref;
} slot_t;

struct td_template_cache {
    pthread_mutex_t mu;
    slot_t *slots;
    int n, cap;
    uint64_t tick;
    int64_t hits, misses;
};

td_template_cache_t *td_template_cache_new(int capacity)
{
    td_template_cache_t *c = td_xcalloc(1, sizeof(*c));

    c->cap = capacity < 1 ? 1 : capacity;
    c->slots = td_xcalloc((size_t)c->cap, sizeof(*c->slots));
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void ref_drop(td_template_ref_t *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1) {
        td_template_free(r->tpl);
        free(r);
    }
}

void td_template_cache_free(td_template_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < c->n; i++) {
        free(c->slots[i].key);
        ref_drop(c->slots[i].ref);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The slot of key, or -1. Called with the mutex held. */
static int find(const td_template_cache_t *c, uint64_t hash, const char *key, size_t key_len)
{
    for (int i = 0; i < c->n; i++) {
        const slot_t *s = &c->slots[i];
        if (s->hash == hash && s->key_len == key_len && memcmp(s->key, key, key_len) == 0) {
            return i;
        }
    }
    return -1;
}

/* Looks key up at version with this text: a new ref on a hit, else NULL.
 * Mutex held. */
static td_template_ref_t *lookup(td_template_cache_t *c, uint64_t hash, const char *key,
                                 size_t key_len, int64_t version, uint64_t src_hash, size_t src_len)
{
    int i = find(c, hash, key, key_len);

    if (i < 0 || c->slots[i].version != version || c->slots[i].src_hash != src_hash ||
        c->slots[i].src_len != src_len) {
        return NULL;
    }
    c->slots[i].used = ++c->tick;
    atomic_fetch_add(&c->slots[i].ref->refs, 1);
    return c->slots[i].ref;
}

/* Puts r (one reference given to the table) at key, version: replaces an
 * older version of key, else takes a free slot or the least recently used.
 * Mutex held. */
static void insert(td_template_cache_t *c, uint64_t hash, const char *key, size_t key_len,
                   int64_t version, uint64_t src_hash, size_t src_len, td_template_ref_t *r)
{
    int i = find(c, hash, key, key_len);

    if (i < 0 && c->n < c->cap) {
        i = c->n++;
    } else if (i < 0) {
        i = 0;
        for (int j = 1; j < c->n; j++) {
            if (c->slots[j].used < c->slots[i].used) {
                i = j;
            }
        }
    }
    slot_t *s = &c->slots[i];
    free(s->key);
    ref_drop(s->ref);
    s->key = td_xmalloc(key_len);
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    s->hash = hash;
    s->version = version;
    s->src_hash = src_hash;
    s->src_len = src_len;
    s->used = ++c->tick;
    s->ref = r;
}

int td_template_cache_get(td_template_cache_t *c, const char *id, const char *part, int64_t version,
                          const char *src, size_t len, td_template_ref_t **out, td_err_t *err)
{
    size_t id_len = strlen(id), part_len = strlen(part), key_len = id_len + 1 + part_len;
    char stack_key[256], *key = key_len <= sizeof(stack_key) ? stack_key : td_xmalloc(key_len);
    td_template_t *tpl = NULL;
    int rc;

    *out = NULL;
    memcpy(key, id, id_len);
    key[id_len] = '\0';
    memcpy(key + id_len + 1, part, part_len);
    uint64_t hash = td_strmap_hash(key, key_len), src_hash = td_strmap_hash(src, len);

    pthread_mutex_lock(&c->mu);
    *out = lookup(c, hash, key, key_len, version, src_hash, len);
    if (*out != NULL) {
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    if (*out != NULL) {
        rc = TD_OK;
        goto out;
    }
    /* compiled without the lock: a big template must not stall other senders */
    if ((rc = td_template_compile(src, len, &tpl, err)) != TD_OK) {
        goto out;
    }
    td_template_ref_t *r = td_xmalloc(sizeof(*r));
    atomic_init(&r->refs, 1);
    r->tpl = tpl;
    pthread_mutex_lock(&c->mu);
    /* another sender may have compiled the same version meanwhile: use its */
    if ((*out = lookup(c, hash, key, key_len, version, src_hash, len)) != NULL) {
        pthread_mutex_unlock(&c->mu);
        ref_drop(r);
        goto out;
    }
    /* the latest request wins, also a lower version: after a delete and a
     * new put the versions start over; a row read just before an update
     * asks for the old one once at most */
    atomic_fetch_add(&r->refs, 1);
    insert(c, hash, key, key_len, version, src_hash, len, r);
    pthread_mutex_unlock(&c->mu);
    *out = r;
out:
    if (key != stack_key) {
        free(key);
    }
    return rc;
}

const td_template_t *td_template_ref_get(const td_template_ref_t *ref)
{
    return ref->tpl;
}

void td_template_cache_release(td_template_cache_t *c, td_template_ref_t *ref)
{
    (void)c;
    ref_drop(ref);
}

void td_template_cache_stats(td_template_cache_t *c, td_template_cache_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    out->hits = c->hits;
    out->misses = c->misses;
    out->entries = c->n;
    pthread_mutex_unlock(&c->mu);
}
