/* The in-memory catalog index the recommendation engine reads: entities by
 * id, and posting lists of entities by category and by attribute value.
 *
 * Every entity has an ordinal, a small integer for its place in by_ord[],
 * stable for its life in this process; posting lists are sorted arrays of
 * ordinals (4 bytes an entry, intersections by merging, deterministic
 * order). Entities are packed and reference-counted: a writer never changes
 * one in place, it swaps in a new one, so a reader holding a reference keeps
 * a consistent entity.
 *
 * Locking: a read-write lock between readers and the applier; a separate
 * mutex makes writers (imports, API writes, the poller) take turns for the
 * whole store transaction + apply, so the index always equals the store as
 * of seen_seq. A batch is applied under the write lock at once: readers see
 * all of an import or none of it. */
#include "catalog/internal.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/banned.h"

#define NO_ORD UINT32_MAX

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

/* ------------------------------------------------------------------------ */
/* Sorted ordinal lists, with changes gathered during a batch and merged in
 * once at its end (a big import touches a category a million times). */

typedef struct u32vec {
    uint32_t *v;
    uint32_t n, cap;
} u32vec_t;

static void vec_push(u32vec_t *a, uint32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->v = td_xrealloc(a->v, sizeof(uint32_t) * a->cap);
    }
    a->v[a->n++] = x;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void vec_sort(u32vec_t *a)
{
    for (uint32_t i = 1; i < a->n; i++) {
        if (a->v[i - 1] > a->v[i]) {
            qsort(a->v, a->n, sizeof(uint32_t), cmp_u32);
            return;
        }
    }
}

typedef struct posting {
    char *key; /* NULL: empty slot */
    uint64_t hash;
    u32vec_t list;  /* sorted ordinals */
    int32_t change; /* index in changes[] during a batch, or -1 */
} posting_t;

/* A key's changes gathered during a batch (kept apart from the table so
 * that the table may grow meanwhile, and its slots stay small). */
typedef struct change {
    const char *key; /* the posting's own key string, which never moves */
    uint64_t hash;
    u32vec_t adds, dels;
} change_t;

typedef struct postmap {
    posting_t *slots;
    size_t cap, n;
    change_t *changes;
    size_t n_changes, cap_changes;
} postmap_t;

static posting_t *pm_find(const postmap_t *m, const char *key, size_t len, uint64_t h)
{
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        posting_t *p = &m->slots[i];
        if (p->key == NULL) {
            return NULL;
        }
        if (p->hash == h && strncmp(p->key, key, len) == 0 && p->key[len] == '\0') {
            return p;
        }
    }
}

static void pm_grow(postmap_t *m)
{
    posting_t *old = m->slots;
    size_t old_cap = m->cap;

    m->cap = m->cap ? m->cap * 2 : 64;
    m->slots = td_xcalloc(m->cap, sizeof(posting_t));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key) {
            size_t j = old[i].hash & (m->cap - 1);
            while (m->slots[j].key) {
                j = (j + 1) & (m->cap - 1);
            }
            m->slots[j] = old[i];
        }
    }
    free(old);
}

/* The posting for key, created when missing. */
static posting_t *pm_get(postmap_t *m, const char *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);
    posting_t *p = pm_find(m, key, len, h);

    if (p) {
        return p;
    }
    if ((m->n + 1) * 4 > m->cap * 3) {
        pm_grow(m);
    }
    size_t i = h & (m->cap - 1);
    while (m->slots[i].key) {
        i = (i + 1) & (m->cap - 1);
    }
    p = &m->slots[i];
    p->key = td_xstrndup(key, len);
    p->hash = h;
    p->change = -1;
    m->n++;
    return p;
}

static change_t *pm_change(postmap_t *m, posting_t *p)
{
    if (p->change < 0) {
        if (m->n_changes == m->cap_changes) {
            m->cap_changes = m->cap_changes ? m->cap_changes * 2 : 64;
            m->changes = td_xrealloc(m->changes, sizeof(change_t) * m->cap_changes);
        }
        m->changes[m->n_changes] = (change_t){ p->key, p->hash, { 0 }, { 0 } };
        p->change = (int32_t)m->n_changes++;
    }
    return &m->changes[p->change];
}

/* Merges one key's gathered changes into its list: removals first (an
 * ordinal freed in a batch is never reused in the same batch). */
static void posting_settle(posting_t *p, change_t *c)
{
    u32vec_t *l = &p->list;

    if (c->dels.n) {
        uint32_t w = 0, d = 0;
        vec_sort(&c->dels);
        for (uint32_t r = 0; r < l->n; r++) {
            while (d < c->dels.n && c->dels.v[d] < l->v[r]) {
                d++;
            }
            if (d < c->dels.n && c->dels.v[d] == l->v[r]) {
                continue;
            }
            l->v[w++] = l->v[r];
        }
        l->n = w;
    }
    if (c->adds.n) {
        vec_sort(&c->adds);
        if (l->n == 0 || l->v[l->n - 1] < c->adds.v[0]) {
            /* the common case: new ordinals go at the end */
            if (l->n == 0 && l->v == NULL) {
                *l = c->adds;
                memset(&c->adds, 0, sizeof(c->adds));
            } else {
                for (uint32_t i = 0; i < c->adds.n; i++) {
                    vec_push(l, c->adds.v[i]);
                }
            }
        } else {
            uint32_t n = l->n + c->adds.n, i = l->n, j = c->adds.n, k = n;
            while (l->cap < n) {
                l->cap = l->cap ? l->cap * 2 : 4;
            }
            l->v = td_xrealloc(l->v, sizeof(uint32_t) * l->cap);
            while (j > 0) {
                if (i > 0 && l->v[i - 1] > c->adds.v[j - 1]) {
                    l->v[--k] = l->v[--i];
                } else {
                    l->v[--k] = c->adds.v[--j];
                }
            }
            l->n = n;
        }
    }
    free(c->adds.v);
    free(c->dels.v);
    p->change = -1;
    if (l->n == 0) {
        free(l->v);
        memset(l, 0, sizeof(*l));
    } else if (l->cap > l->n + l->n / 2 + 4) {
        /* lists are read far more than they grow: no slack kept */
        l->cap = l->n;
        l->v = td_xrealloc(l->v, sizeof(uint32_t) * l->cap);
    }
}

static void pm_settle(postmap_t *m)
{
    for (size_t i = 0; i < m->n_changes; i++) {
        change_t *c = &m->changes[i];
        posting_t *p = pm_find(m, c->key, strlen(c->key), c->hash);
        posting_settle(p, c);
    }
    m->n_changes = 0;
}

static void pm_free(postmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        free(m->slots[i].list.v);
    }
    free(m->slots);
    free(m->changes);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------ */

/* Open addressing on the id's hash; the hash is kept beside the index so
 * that probes do not touch the entities (a cache miss each). */
typedef struct slot {
    uint32_t index; /* op or ordinal + 1; 0 = empty */
    uint32_t hash;
} slot_t;

struct td_catalog {
    pthread_rwlock_t lock;
    pthread_mutex_t write_mu;
    int64_t expiry_ms;
    uint64_t version; /* atomic */
    int64_t seen_seq;
    td_entity_t **by_ord;
    uint32_t n_ord, cap_ord;
    u32vec_t free_ords;
    size_t n_entities;
    slot_t *ids; /* ordinal + 1 and the id's hash, by id */
    size_t ids_cap;
    postmap_t cats, attrs;
    /* the poller */
    pthread_t thread;
    bool thread_running, stop;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    struct td_store *sync_store;
    int interval_ms;
};

td_catalog_t *td_catalog_new(int64_t expiry_ms)
{
    td_catalog_t *cat = td_xcalloc(1, sizeof(*cat));
    pthread_rwlockattr_t attr;

    pthread_rwlockattr_init(&attr);
    /* an import's apply must not wait behind a stream of readers */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&cat->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&cat->write_mu, NULL);
    pthread_mutex_init(&cat->stop_mu, NULL);
    pthread_cond_init(&cat->stop_cv, NULL);
    cat->expiry_ms = expiry_ms;
    return cat;
}

void td_catalog_free(td_catalog_t *cat)
{
    if (cat == NULL) {
        return;
    }
    if (cat->thread_running) {
        pthread_mutex_lock(&cat->stop_mu);
        cat->stop = true;
        pthread_cond_signal(&cat->stop_cv);
        pthread_mutex_unlock(&cat->stop_mu);
        pthread_join(cat->thread, NULL);
    }
    for (uint32_t i = 0; i < cat->n_ord; i++) {
        td_entity_unref(cat->by_ord[i]);
    }
    free(cat->by_ord);
    free(cat->free_ords.v);
    free(cat->ids);
    pm_free(&cat->cats);
    pm_free(&cat->attrs);
    pthread_rwlock_destroy(&cat->lock);
    pthread_mutex_destroy(&cat->write_mu);
    pthread_mutex_destroy(&cat->stop_mu);
    pthread_cond_destroy(&cat->stop_cv);
    free(cat);
}

int64_t td_catalog_expiry_ms(const td_catalog_t *cat)
{
    return cat->expiry_ms;
}

uint64_t td_catalog_version(const td_catalog_t *cat)
{
    return __atomic_load_n(&cat->version, __ATOMIC_ACQUIRE);
}

size_t td_catalog_size(td_catalog_t *cat)
{
    size_t n;

    pthread_rwlock_rdlock(&cat->lock);
    n = cat->n_entities;
    pthread_rwlock_unlock(&cat->lock);
    return n;
}

/* Slot of id in ids[]: where it is, or the empty slot where it would go. */
static size_t id_slot(const td_catalog_t *cat, const char *id, uint64_t h, bool *found)
{
    size_t mask = cat->ids_cap - 1;

    *found = false;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot_t *sl = &cat->ids[i];
        if (sl->index == 0) {
            return i;
        }
        if (sl->hash == (uint32_t)h && strcmp(cat->by_ord[sl->index - 1]->id, id) == 0) {
            *found = true;
            return i;
        }
    }
}

static td_entity_t *lookup(const td_catalog_t *cat, const char *id)
{
    bool found;
    size_t i;

    if (cat->ids_cap == 0) {
        return NULL;
    }
    i = id_slot(cat, id, hash_bytes(id, strlen(id)), &found);
    return found ? cat->by_ord[cat->ids[i].index - 1] : NULL;
}

static void ids_grow(td_catalog_t *cat)
{
    slot_t *old = cat->ids;
    size_t old_cap = cat->ids_cap;

    cat->ids_cap = cat->ids_cap ? cat->ids_cap * 2 : 1024;
    cat->ids = td_xcalloc(cat->ids_cap, sizeof(slot_t));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index) {
            /* 32 bits of the hash are kept: the home slot is recomputed
             * from the id only when the table is larger than that */
            const char *id = cat->by_ord[old[i].index - 1]->id;
            uint64_t h =
                cat->ids_cap > ((size_t)1 << 32) ? hash_bytes(id, strlen(id)) : old[i].hash;
            size_t j = h & (cat->ids_cap - 1);
            while (cat->ids[j].index) {
                j = (j + 1) & (cat->ids_cap - 1);
            }
            cat->ids[j] = old[i];
        }
    }
    free(old);
}

/* Linear probing deletion by shifting back the entries after the hole. */
static void ids_remove(td_catalog_t *cat, size_t i)
{
    size_t mask = cat->ids_cap - 1, j = i;

    cat->ids[i] = (slot_t){ 0, 0 };
    for (;;) {
        j = (j + 1) & mask;
        if (cat->ids[j].index == 0) {
            return;
        }
        size_t home = cat->ids[j].hash & mask;
        /* the entry at j may move into the hole i if its home is not in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            cat->ids[i] = cat->ids[j];
            cat->ids[j] = (slot_t){ 0, 0 };
            i = j;
        }
    }
}

/* Index keys of an entity: categories go to cats, "name\x1fvalue" to attrs. */
typedef void (*key_fn)(td_catalog_t *cat, postmap_t *m, const char *key, size_t len, uint32_t ord);

/* "name\x1fvalue"; 0 when the value is too long to be indexed. */
static size_t attr_key(char *key, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);

    if (vlen > TD_CATALOG_INDEX_MAX_VALUE || nlen > TD_CATALOG_MAX_NAME) {
        return 0;
    }
    memcpy(key, name, nlen);
    key[nlen] = '\x1f';
    memcpy(key + nlen + 1, value, vlen + 1);
    return nlen + 1 + vlen;
}

static void each_attr_key(td_catalog_t *cat, const td_entity_t *e, uint32_t ord, key_fn fn)
{
    char key[TD_CATALOG_MAX_NAME + TD_CATALOG_INDEX_MAX_VALUE + 2];
    size_t n;

    if ((e->has & TD_ENTITY_BRAND) && (n = attr_key(key, "brand", e->brand)) > 0) {
        fn(cat, &cat->attrs, key, n, ord);
    }
    for (int i = 0; i < e->n_attrs; i++) {
        const td_attr_t *a = &e->attrs[i];
        if (a->type == TD_ATTR_STRING && (n = attr_key(key, a->name, a->str)) > 0) {
            fn(cat, &cat->attrs, key, n, ord);
        }
        for (int j = 0; a->type == TD_ATTR_LIST && j < a->n_list; j++) {
            if ((n = attr_key(key, a->name, a->list[j])) > 0) {
                fn(cat, &cat->attrs, key, n, ord);
            }
        }
    }
}

static void each_key(td_catalog_t *cat, const td_entity_t *e, uint32_t ord, key_fn fn)
{
    for (int i = 0; i < e->n_categories; i++) {
        fn(cat, &cat->cats, e->categories[i], strlen(e->categories[i]), ord);
    }
    each_attr_key(cat, e, ord, fn);
}

static void key_add(td_catalog_t *cat, postmap_t *m, const char *key, size_t len, uint32_t ord)
{
    (void)cat;
    vec_push(&pm_change(m, pm_get(m, key, len))->adds, ord);
}

static void key_del(td_catalog_t *cat, postmap_t *m, const char *key, size_t len, uint32_t ord)
{
    posting_t *p = pm_find(m, key, len, hash_bytes(key, len));

    (void)cat;
    if (p) {
        vec_push(&pm_change(m, p)->dels, ord);
    }
}

/* ------------------------------------------------------------------------ */
/* Batches */

typedef struct op {
    td_entity_t *put; /* or NULL: delete */
    char *del_id;
    uint64_t hash; /* of the id */
} op_t;

struct td_catalog_batch {
    op_t *ops;
    size_t n, cap;
    slot_t *slots;
    size_t slots_cap;
};

static const char *op_id(const op_t *o)
{
    return o->put ? o->put->id : o->del_id;
}

td_catalog_batch_t *td_catalog_batch_new(void)
{
    return td_xcalloc(1, sizeof(td_catalog_batch_t));
}

static void op_clear(op_t *o)
{
    td_entity_unref(o->put);
    free(o->del_id);
    o->put = NULL;
    o->del_id = NULL;
}

void td_catalog_batch_free(td_catalog_batch_t *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        op_clear(&b->ops[i]);
    }
    free(b->ops);
    free(b->slots);
    free(b);
}

static size_t batch_slot(const td_catalog_batch_t *b, const char *id, uint64_t h, bool *found)
{
    size_t mask = b->slots_cap - 1;

    *found = false;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot_t *sl = &b->slots[i];
        if (sl->index == 0) {
            return i;
        }
        if (sl->hash == (uint32_t)h && strcmp(op_id(&b->ops[sl->index - 1]), id) == 0) {
            *found = true;
            return i;
        }
    }
}

static void batch_grow(td_catalog_batch_t *b)
{
    b->slots_cap = b->slots_cap ? b->slots_cap * 2 : 256;
    free(b->slots);
    b->slots = td_xcalloc(b->slots_cap, sizeof(slot_t));
    for (size_t i = 0; i < b->n; i++) {
        size_t j = b->ops[i].hash & (b->slots_cap - 1);
        while (b->slots[j].index) {
            j = (j + 1) & (b->slots_cap - 1);
        }
        b->slots[j] = (slot_t){ (uint32_t)i + 1, (uint32_t)b->ops[i].hash };
    }
}

/* The op for id: the existing one or a new one. */
static op_t *batch_op(td_catalog_batch_t *b, const char *id)
{
    uint64_t h = hash_bytes(id, strlen(id));
    bool found;
    size_t s;

    if ((b->n + 1) * 2 > b->slots_cap) {
        batch_grow(b);
    }
    s = batch_slot(b, id, h, &found);
    if (found) {
        return &b->ops[b->slots[s].index - 1];
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->ops = td_xrealloc(b->ops, sizeof(op_t) * b->cap);
    }
    b->ops[b->n] = (op_t){ NULL, NULL, h };
    b->slots[s] = (slot_t){ (uint32_t)++b->n, (uint32_t)h };
    return &b->ops[b->n - 1];
}

void td_catalog_batch_put(td_catalog_batch_t *b, td_entity_t *e)
{
    op_t *o = batch_op(b, e->id);
    op_t old = *o;

    o->put = e;
    o->del_id = NULL;
    op_clear(&old);
}

void td_catalog_batch_delete(td_catalog_batch_t *b, const char *id)
{
    char *copy = td_xstrdup(id);
    op_t *o = batch_op(b, copy);
    op_t old = *o;

    o->put = NULL;
    o->del_id = copy;
    op_clear(&old);
}

const td_entity_t *td_catalog_batch_get(const td_catalog_batch_t *b, const char *id)
{
    bool found;
    size_t s;

    if (b->slots_cap == 0) {
        return NULL;
    }
    s = batch_slot(b, id, hash_bytes(id, strlen(id)), &found);
    return found ? b->ops[s = b->slots[s].index - 1].put : NULL;
}

size_t td_catalog_batch_size(const td_catalog_batch_t *b)
{
    return b->n;
}

static void batch_reset(td_catalog_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        op_clear(&b->ops[i]);
    }
    b->n = 0;
    if (b->slots) {
        memset(b->slots, 0, sizeof(slot_t) * b->slots_cap);
    }
}

/* ------------------------------------------------------------------------ */
/* Applying */

static uint32_t alloc_ord(td_catalog_t *cat)
{
    if (cat->free_ords.n) {
        return cat->free_ords.v[--cat->free_ords.n];
    }
    if (cat->n_ord == cat->cap_ord) {
        cat->cap_ord = cat->cap_ord ? cat->cap_ord * 2 : 1024;
        cat->by_ord = td_xrealloc(cat->by_ord, sizeof(td_entity_t *) * cat->cap_ord);
    }
    cat->by_ord[cat->n_ord] = NULL;
    return cat->n_ord++;
}

void td_catalog_apply(td_catalog_t *cat, td_catalog_batch_t *b)
{
    u32vec_t freed = { 0 };

    pthread_rwlock_wrlock(&cat->lock);
    for (size_t i = 0; i < b->n; i++) {
        op_t *o = &b->ops[i];
        const char *id = op_id(o);
        bool found = false;
        size_t slot = 0;
        if ((cat->n_entities + 1) * 2 > cat->ids_cap) {
            ids_grow(cat);
        }
        slot = id_slot(cat, id, o->hash, &found);
        td_entity_t *old = found ? cat->by_ord[cat->ids[slot].index - 1] : NULL;
        if (o->put == NULL) {
            if (old) {
                uint32_t ord = old->ordinal_;
                each_key(cat, old, ord, key_del);
                ids_remove(cat, slot);
                cat->by_ord[ord] = NULL;
                vec_push(&freed, ord);
                cat->n_entities--;
                td_entity_unref(old);
            }
            continue;
        }
        td_entity_t *e = o->put;
        o->put = NULL;
        if (old) {
            uint32_t ord = old->ordinal_;
            each_key(cat, old, ord, key_del);
            e->ordinal_ = ord;
            cat->by_ord[ord] = e;
            td_entity_unref(old);
        } else {
            uint32_t ord = alloc_ord(cat);
            e->ordinal_ = ord;
            cat->by_ord[ord] = e;
            cat->ids[slot] = (slot_t){ ord + 1, (uint32_t)o->hash };
            cat->n_entities++;
        }
        each_key(cat, e, e->ordinal_, key_add);
    }
    pm_settle(&cat->cats);
    pm_settle(&cat->attrs);
    for (uint32_t i = 0; i < freed.n; i++) {
        vec_push(&cat->free_ords, freed.v[i]);
    }
    __atomic_add_fetch(&cat->version, 1, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&cat->lock);
    free(freed.v);
    batch_reset(b);
}

/* ------------------------------------------------------------------------ */
/* Readers */

const td_entity_t *td_catalog_get(td_catalog_t *cat, const char *id)
{
    const td_entity_t *e;

    pthread_rwlock_rdlock(&cat->lock);
    e = lookup(cat, id);
    if (e) {
        td_entity_ref(e);
    }
    pthread_rwlock_unlock(&cat->lock);
    return e;
}

static bool visible(const td_catalog_t *cat, const td_entity_t *e, int64_t now_ms)
{
    return e && (now_ms == 0 || !td_entity_expired(e, now_ms, cat->expiry_ms));
}

size_t td_catalog_foreach(td_catalog_t *cat, int64_t now_ms, td_catalog_visit_fn visit, void *ctx)
{
    size_t n = 0;

    pthread_rwlock_rdlock(&cat->lock);
    for (uint32_t i = 0; i < cat->n_ord; i++) {
        const td_entity_t *e = cat->by_ord[i];
        if (visible(cat, e, now_ms)) {
            n++;
            if (!visit(ctx, e)) {
                break;
            }
        }
    }
    pthread_rwlock_unlock(&cat->lock);
    return n;
}

static size_t visit_list(td_catalog_t *cat, const posting_t *p, int64_t now_ms,
                         td_catalog_visit_fn visit, void *ctx)
{
    size_t n = 0;

    for (uint32_t i = 0; p && i < p->list.n; i++) {
        const td_entity_t *e = cat->by_ord[p->list.v[i]];
        if (visible(cat, e, now_ms)) {
            n++;
            if (!visit(ctx, e)) {
                break;
            }
        }
    }
    return n;
}

size_t td_catalog_foreach_in_category(td_catalog_t *cat, const char *category, int64_t now_ms,
                                      td_catalog_visit_fn visit, void *ctx)
{
    size_t n, len = strlen(category);

    pthread_rwlock_rdlock(&cat->lock);
    n = visit_list(cat, pm_find(&cat->cats, category, len, hash_bytes(category, len)), now_ms,
                   visit, ctx);
    pthread_rwlock_unlock(&cat->lock);
    return n;
}

static const posting_t *attr_posting(const td_catalog_t *cat, const char *name, const char *value)
{
    char key[TD_CATALOG_MAX_NAME + TD_CATALOG_INDEX_MAX_VALUE + 2];
    size_t n = attr_key(key, name, value);

    return n ? pm_find(&cat->attrs, key, n, hash_bytes(key, n)) : NULL;
}

size_t td_catalog_foreach_with_attr(td_catalog_t *cat, const char *name, const char *value,
                                    int64_t now_ms, td_catalog_visit_fn visit, void *ctx)
{
    size_t n;

    pthread_rwlock_rdlock(&cat->lock);
    n = visit_list(cat, attr_posting(cat, name, value), now_ms, visit, ctx);
    pthread_rwlock_unlock(&cat->lock);
    return n;
}

static uint32_t lower_bound(const u32vec_t *l, uint32_t x)
{
    uint32_t lo = 0, hi = l->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->v[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool in_list(const posting_t *p, uint32_t ord)
{
    uint32_t i;

    if (p == NULL) {
        return false;
    }
    i = lower_bound(&p->list, ord);
    return i < p->list.n && p->list.v[i] == ord;
}

size_t td_catalog_page(td_catalog_t *cat, const char *category, const char *brand, int64_t now_ms,
                       uint64_t *cursor, size_t limit, td_catalog_visit_fn visit, void *ctx)
{
    uint32_t start = *cursor ? (uint32_t)(*cursor - 1) : 0;
    size_t n = 0;
    const posting_t *cp = NULL, *bp = NULL;

    *cursor = 0;
    pthread_rwlock_rdlock(&cat->lock);
    if (category) {
        size_t len = strlen(category);
        if ((cp = pm_find(&cat->cats, category, len, hash_bytes(category, len))) == NULL) {
            goto out;
        }
    }
    if (brand && (bp = attr_posting(cat, "brand", brand)) == NULL) {
        goto out;
    }
    /* walk the shorter list of the filters, or every ordinal */
    const posting_t *walk = cp && bp ? (cp->list.n <= bp->list.n ? cp : bp) : cp ? cp : bp;
    const posting_t *other = walk == cp ? bp : cp;
    uint32_t i = walk ? lower_bound(&walk->list, start) : start;
    uint32_t end = walk ? walk->list.n : cat->n_ord;
    for (; i < end; i++) {
        uint32_t ord = walk ? walk->list.v[i] : i;
        const td_entity_t *e = cat->by_ord[ord];
        if (!visible(cat, e, now_ms) || (other && !in_list(other, ord))) {
            continue;
        }
        if (n == limit) {
            *cursor = (uint64_t)ord + 1;
            break;
        }
        n++;
        visit(ctx, e);
    }
out:
    pthread_rwlock_unlock(&cat->lock);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Writers and the store */

void td_catalog__write_lock(td_catalog_t *cat)
{
    pthread_mutex_lock(&cat->write_mu);
}

void td_catalog__write_unlock(td_catalog_t *cat)
{
    pthread_mutex_unlock(&cat->write_mu);
}

const td_entity_t *td_catalog__peek(td_catalog_t *cat, const char *id)
{
    return lookup(cat, id);
}

int64_t td_catalog__seen_seq(td_catalog_t *cat)
{
    return cat->seen_seq;
}

void td_catalog__set_seen_seq(td_catalog_t *cat, int64_t seq)
{
    cat->seen_seq = seq;
}

void td_catalog__each_unlocked(td_catalog_t *cat, td_catalog_visit_fn visit, void *ctx)
{
    for (uint32_t i = 0; i < cat->n_ord; i++) {
        if (cat->by_ord[i] && !visit(ctx, cat->by_ord[i])) {
            return;
        }
    }
}

static int row_to_batch(void *ctx, const td_store_entity_t *row)
{
    td_catalog_batch_t *b = ctx;
    td_entity_t e = TD_ENTITY_INIT;

    if (td_catalog__from_row(row, &e) != TD_OK) {
        td_log(TD_LOG_WARN, "catalog", "skip_bad_row id=%.80s", row->id);
        td_entity_release(&e);
        return TD_OK;
    }
    td_catalog_batch_put(b, td_entity_pack(&e));
    td_entity_release(&e);
    return TD_OK;
}

static int id_to_batch(void *ctx, const char *id)
{
    td_catalog_batch_delete(ctx, id);
    return TD_OK;
}

static bool delete_all(void *ctx, const td_entity_t *e)
{
    td_catalog_batch_delete(ctx, e->id);
    return true;
}

int td_catalog__catch_up(td_catalog_t *cat, struct td_store_conn *conn)
{
    td_catalog_batch_t *b;
    int64_t seq;
    int rc;

    if ((rc = td_store_catalog_seq(conn, &seq)) != TD_OK) {
        return rc;
    }
    if (seq == cat->seen_seq) {
        return TD_OK;
    }
    b = td_catalog_batch_new();
    if (seq < cat->seen_seq) {
        /* the store went back (restored from a backup): start over */
        td_catalog__each_unlocked(cat, delete_all, b);
        cat->seen_seq = 0;
    }
    if (cat->seen_seq > 0 &&
        (rc = td_store_entity_deleted_since(conn, cat->seen_seq, id_to_batch, b)) != TD_OK) {
        goto out;
    }
    if ((rc = td_store_entity_scan(conn, cat->seen_seq, row_to_batch, b)) != TD_OK) {
        goto out;
    }
    td_log(TD_LOG_INFO, "catalog", "catch_up from_seq=%lld to_seq=%lld changes=%zu",
           (long long)cat->seen_seq, (long long)seq, td_catalog_batch_size(b));
    td_catalog_apply(cat, b);
    cat->seen_seq = seq;
out:
    td_catalog_batch_free(b);
    return rc;
}

int td_catalog_load(td_catalog_t *cat, struct td_store *st)
{
    td_store_conn_t *c = td_store_acquire(st);
    int rc;

    td_catalog__write_lock(cat);
    rc = td_catalog__catch_up(cat, c);
    td_catalog__write_unlock(cat);
    td_store_release(st, c);
    return rc;
}

int td_catalog_sync(td_catalog_t *cat, struct td_store *st)
{
    return td_catalog_load(cat, st);
}

static void *sync_main(void *arg)
{
    td_catalog_t *cat = arg;
    int failures = 0;

    pthread_mutex_lock(&cat->stop_mu);
    while (!cat->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += cat->interval_ms / 1000;
        ts.tv_nsec += (long)(cat->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&cat->stop_cv, &cat->stop_mu, &ts) != ETIMEDOUT || cat->stop) {
            continue;
        }
        pthread_mutex_unlock(&cat->stop_mu);
        int rc = td_catalog_sync(cat, cat->sync_store);
        if (rc != TD_OK && failures++ % 60 == 0) {
            td_log(TD_LOG_WARN, "catalog", "sync failed rc=%s", td_strerror(rc));
        } else if (rc == TD_OK) {
            failures = 0;
        }
        pthread_mutex_lock(&cat->stop_mu);
    }
    pthread_mutex_unlock(&cat->stop_mu);
    return NULL;
}

void td_catalog_sync_start(td_catalog_t *cat, struct td_store *st, int interval_ms)
{
    if (cat->thread_running || interval_ms <= 0) {
        return;
    }
    cat->sync_store = st;
    cat->interval_ms = interval_ms;
    if (pthread_create(&cat->thread, NULL, sync_main, cat) != 0) {
        td_log(TD_LOG_ERROR, "catalog",
               "pthread_create() failed: catalog changes made by other "
               "processes will show after a restart");
        return;
    }
    cat->thread_running = true;
}
