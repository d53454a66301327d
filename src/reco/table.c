/* Small containers for the reco module: string interning (ids to dense
 * integers), a uint32 -> uint32 hash map for co-occurrence counts, and the
 * candidate list that ranking sorts. Not thread-safe on their own: the
 * model and the content index guard them with their locks. */
#include "reco/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/banned.h"

#define CHUNK_SIZE (64 * 1024)

uint64_t td_reco__hash(const char *s, size_t len)
{
    /* FNV-1a, then a final mix so that linear probing sees spread bits. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

void td_reco__strtab_init(td_reco_strtab_t *t)
{
    memset(t, 0, sizeof(*t));
}

void td_reco__strtab_release(td_reco_strtab_t *t)
{
    for (int i = 0; i < t->n_chunks; i++) {
        free(t->chunks[i]);
    }
    free(t->chunks);
    free(t->strs);
    free(t->hashes);
    free(t->slots);
    free(t->free_ids);
    memset(t, 0, sizeof(*t));
}

static char *store_string(td_reco_strtab_t *t, const char *s, size_t len)
{
    if (t->n_chunks == 0 || t->chunk_used + len + 1 > t->chunk_cap) {
        size_t cap = len + 1 > CHUNK_SIZE ? len + 1 : CHUNK_SIZE;
        if (t->n_chunks == t->cap_chunks) {
            t->cap_chunks = t->cap_chunks ? t->cap_chunks * 2 : 16;
            t->chunks = td_xrealloc(t->chunks, sizeof(char *) * (size_t)t->cap_chunks);
        }
        t->chunks[t->n_chunks++] = td_xmalloc(cap);
        t->chunk_used = 0;
        t->chunk_cap = cap;
        t->bytes += cap;
    }
    char *p = t->chunks[t->n_chunks - 1] + t->chunk_used;
    memcpy(p, s, len + 1);
    t->chunk_used += len + 1;
    return p;
}

static void rehash(td_reco_strtab_t *t, uint32_t n_slots)
{
    free(t->slots);
    t->slots = td_xcalloc(n_slots, sizeof(uint32_t));
    t->n_slots = n_slots;
    t->n_used = 0;
    t->n_dead = 0;
    for (uint32_t id = 0; id < t->n; id++) {
        if (t->strs[id] == NULL) {
            continue;
        }
        uint32_t i = (uint32_t)t->hashes[id] & (n_slots - 1);
        while (t->slots[i] != 0) {
            i = (i + 1) & (n_slots - 1);
        }
        t->slots[i] = id + 1;
        t->n_used++;
    }
}

uint32_t td_reco__strtab_find(const td_reco_strtab_t *t, const char *s)
{
    if (t->n_slots == 0) {
        return TD_RECO_NONE;
    }
    size_t len = strlen(s);
    uint64_t h = td_reco__hash(s, len);
    uint32_t i = (uint32_t)h & (t->n_slots - 1);
    for (;;) {
        uint32_t v = t->slots[i];
        if (v == 0) {
            return TD_RECO_NONE;
        }
        if (v != UINT32_MAX) {
            uint32_t id = v - 1;
            if (t->hashes[id] == h && strcmp(t->strs[id], s) == 0) {
                return id;
            }
        }
        i = (i + 1) & (t->n_slots - 1);
    }
}

uint32_t td_reco__strtab_intern(td_reco_strtab_t *t, const char *s)
{
    uint32_t found = td_reco__strtab_find(t, s);
    if (found != TD_RECO_NONE) {
        return found;
    }
    if ((uint64_t)(t->n_used + t->n_dead + 1) * 4 >= (uint64_t)t->n_slots * 3) {
        uint32_t want = t->n_slots ? t->n_slots : 64;
        while ((uint64_t)(t->n_used + 1) * 2 >= want) {
            want *= 2;
        }
        rehash(t, want);
    }
    size_t len = strlen(s);
    uint32_t id;
    if (t->n_free > 0) {
        id = t->free_ids[--t->n_free];
    } else {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 64;
            t->strs = td_xrealloc(t->strs, sizeof(char *) * t->cap);
            t->hashes = td_xrealloc(t->hashes, sizeof(uint64_t) * t->cap);
        }
        id = t->n++;
    }
    t->strs[id] = store_string(t, s, len);
    t->hashes[id] = td_reco__hash(s, len);
    uint32_t i = (uint32_t)t->hashes[id] & (t->n_slots - 1);
    while (t->slots[i] != 0 && t->slots[i] != UINT32_MAX) {
        i = (i + 1) & (t->n_slots - 1);
    }
    if (t->slots[i] == UINT32_MAX) {
        t->n_dead--;
    }
    t->slots[i] = id + 1;
    t->n_used++;
    return id;
}

void td_reco__strtab_remove(td_reco_strtab_t *t, uint32_t id)
{
    if (id >= t->n || t->strs[id] == NULL) {
        return;
    }
    uint32_t i = (uint32_t)t->hashes[id] & (t->n_slots - 1);
    while (t->slots[i] != id + 1) {
        i = (i + 1) & (t->n_slots - 1);
    }
    t->slots[i] = UINT32_MAX;
    t->n_used--;
    t->n_dead++;
    /* The string's bytes stay in their chunk (ids of visitors are small and
     * the chunks are reclaimed with the model on the next full rebuild). */
    t->strs[id] = NULL;
    if (t->n_free == t->cap_free) {
        t->cap_free = t->cap_free ? t->cap_free * 2 : 64;
        t->free_ids = td_xrealloc(t->free_ids, sizeof(uint32_t) * t->cap_free);
    }
    t->free_ids[t->n_free++] = id;
}

/* ---- uint32 -> uint32 map ---- */

static inline uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

void td_reco__imap_release(td_reco_imap_t *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

uint32_t *td_reco__imap_find(const td_reco_imap_t *m, uint32_t key)
{
    if (m->cap == 0) {
        return NULL;
    }
    uint32_t mask = m->cap - 1;
    for (uint32_t i = mix32(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            return &m->vals[i];
        }
        if (m->keys[i] == TD_RECO_NONE) {
            return NULL;
        }
    }
}

static void imap_grow(td_reco_imap_t *m)
{
    uint32_t old_cap = m->cap;
    uint32_t *ok = m->keys, *ov = m->vals;
    m->cap = old_cap ? old_cap * 2 : 8;
    m->keys = td_xmalloc(sizeof(uint32_t) * m->cap);
    m->vals = td_xmalloc(sizeof(uint32_t) * m->cap);
    memset(m->keys, 0xff, sizeof(uint32_t) * m->cap);
    uint32_t mask = m->cap - 1;
    for (uint32_t j = 0; j < old_cap; j++) {
        if (ok[j] == TD_RECO_NONE) {
            continue;
        }
        uint32_t i = mix32(ok[j]) & mask;
        while (m->keys[i] != TD_RECO_NONE) {
            i = (i + 1) & mask;
        }
        m->keys[i] = ok[j];
        m->vals[i] = ov[j];
    }
    free(ok);
    free(ov);
}

uint32_t *td_reco__imap_upsert(td_reco_imap_t *m, uint32_t key)
{
    uint32_t *v = td_reco__imap_find(m, key);
    if (v != NULL) {
        return v;
    }
    if ((m->n + 1) * 4 > m->cap * 3) {
        imap_grow(m);
    }
    uint32_t mask = m->cap - 1;
    uint32_t i = mix32(key) & mask;
    while (m->keys[i] != TD_RECO_NONE) {
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->vals[i] = 0;
    m->n++;
    return &m->vals[i];
}

void td_reco__imap_delete(td_reco_imap_t *m, uint32_t key)
{
    if (m->cap == 0) {
        return;
    }
    uint32_t mask = m->cap - 1;
    uint32_t i = mix32(key) & mask;
    while (m->keys[i] != key) {
        if (m->keys[i] == TD_RECO_NONE) {
            return;
        }
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion: move later members of the probe run into the
     * hole when their home slot allows it. */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->keys[j] == TD_RECO_NONE) {
            break;
        }
        uint32_t home = mix32(m->keys[j]) & mask;
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = TD_RECO_NONE;
    m->n--;
}

/* ---- candidates ---- */

void td_reco__cands_push(td_reco_cands_t *c, const td_reco_cand_t *x)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->v = td_xrealloc(c->v, sizeof(*c->v) * (size_t)c->cap);
    }
    c->v[c->n++] = *x;
}

void td_reco__cands_release(td_reco_cands_t *c)
{
    free(c->v);
    memset(c, 0, sizeof(*c));
}

static int cmp_cand(const void *a, const void *b)
{
    const td_reco_cand_t *x = a, *y = b;
    if (x->score > y->score) {
        return -1;
    }
    if (x->score < y->score) {
        return 1;
    }
    return strcmp(x->id, y->id);
}

void td_reco__cands_sort(td_reco_cands_t *c)
{
    if (c->n > 1) {
        qsort(c->v, (size_t)c->n, sizeof(*c->v), cmp_cand);
    }
}
