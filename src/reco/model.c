/* The behaviour model: per-visitor histories, co-occurrence counts per
 * lookback window (viewed-viewed, viewed-bought, bought-bought), popularity
 * per window, all updated incrementally per event and expired as the
 * model's clock moves. Ranking reads it under a read lock; one writer (the
 * ingest thread) updates it under the write lock, so a co-view recorded now
 * changes the very next request.
 *
 * Counting (docs/recommendations.md has the full story): in window w a
 * visitor "viewed" item i when any view, cart add or purchase of i is within
 * the window, and "bought" it when a purchase is. n_v(i) counts visitors who
 * viewed i, k(i,j) visitors who did both, N all visitors with any event in
 * the window: the 2x2 table of the log-likelihood ratio. Expiry walks a
 * queue of events in arrival order; a membership ends when the visitor's
 * latest event for the item has left the window. Popularity counts sessions
 * (30 minutes of inactivity end one) in which an item was viewed / bought,
 * as Target does.
 *
 * The engine at the bottom swaps in rebuilt models. */
#include "reco/internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/banned.h"

#define DAY_MS  (24LL * 3600 * 1000)
#define HOUR_MS (3600LL * 1000)

static const int pop_hours[TD_RECO_N_POP_WINDOWS] = { 6, 24, 48, 168, 336, 720, 1464 };

typedef struct hentry {
    uint32_t item;
    uint16_t vmask, bmask;   /* membership per CF window */
    uint16_t rvmask, rbmask; /* "again in a later session" per CF window */
    int64_t last_v_ms, last_b_ms;
    int64_t prev_v_ms, prev_b_ms; /* latest view / purchase of an earlier session */
} hentry_t;

typedef struct rec_ev {
    uint32_t item;
    uint32_t action;
    int64_t ts_ms;
} rec_ev_t;

typedef struct visitor {
    bool live;
    hentry_t *h;
    int n_h, cap_h;
    td_reco_imap_t hidx; /* item -> index in h */
    rec_ev_t *ring;      /* recent events, ring of max_recent */
    int ring_n, ring_head, ring_cap;
    int64_t last_ms, session_start_ms;
    uint32_t nmem[TD_RECO_MAX_CF_WINDOWS];
    uint32_t prev, next; /* LRU list by last activity */
} visitor_t;

typedef struct cf_fifo_ent {
    int64_t ts_ms;
    uint32_t visitor, item;
} cf_fifo_ent_t;

typedef struct pop_fifo_ent {
    int64_t ts_ms;
    uint32_t item;
    uint8_t action; /* 0 view, 1 buy */
    uint8_t mask;   /* popularity windows it was counted in */
} pop_fifo_ent_t;

typedef struct window {
    int days;
    int64_t len_ms;
    uint32_t *nv, *nb;                  /* per item */
    uint32_t *rv, *rb;                  /* per item: visitors who did it again later */
    td_reco_imap_t *rel[TD_RECO_N_REL]; /* per item: partner -> count */
    uint32_t *ver[TD_RECO_N_REL];       /* per item: bumped when its map changes */
    int64_t n_visitors;
    int64_t cursor; /* absolute index into cf fifo */
} window_t;

/* A key item's scored neighbour list, reused while the item's partner map
 * is unchanged and for at most CACHE_MAX_AGE_MS of request time: a co-view
 * recorded now changes the map, so the next request recomputes. */
typedef struct nbcache {
    uint32_t ver;
    int64_t stamp; /* model events applied when computed */
    int64_t at_ms;
    double min_llr;
    int n;
    uint32_t *items;
    double *scores;
} nbcache_t;

typedef struct poplist poplist_t; /* sorted popularity, shared by readers */
static void poplist_unref(poplist_t *pl);

#define CACHE_MAX_AGE_MS 1000
#define CACHE_MAX_LISTS  200000

struct td_reco_model {
    _Atomic int refs;
    pthread_rwlock_t lock;
    td_reco_model_options_t opt;
    int64_t now_ms;
    int64_t max_seq;
    int64_t n_events;
    int64_t stamp; /* bumped by every change (events and expiry) */
    int64_t pair_evicted;

    td_reco_strtab_t items;
    uint32_t items_cap;
    uint32_t (*pop)[TD_RECO_N_POP_WINDOWS][2]; /* per item */

    td_reco_strtab_t vids;
    visitor_t *vis;
    uint32_t vis_cap;
    int64_t n_visitors;
    uint32_t lru_head, lru_tail;

    window_t win[TD_RECO_MAX_CF_WINDOWS];
    int n_win;

    cf_fifo_ent_t *cf;
    int64_t cf_head, cf_tail; /* absolute indices; ring of cf_cap */
    int64_t cf_cap;

    pop_fifo_ent_t *pf;
    int64_t pf_head, pf_tail, pf_cap;
    int64_t pf_cursor[TD_RECO_N_POP_WINDOWS];

    /* Readers share the neighbour cache under its own mutex. */
    pthread_mutex_t cache_mu;
    nbcache_t **cache[TD_RECO_MAX_CF_WINDOWS][TD_RECO_N_REL][3]; /* per item */
    poplist_t *popc[TD_RECO_N_POP_WINDOWS][2];
    int64_t cache_lists;
};

void td_reco_model_options_init(td_reco_model_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->max_history = 200;
    o->max_recent = 100;
    o->max_pairs_per_item = 1000;
    o->top_k = 200;
    o->session_gap_ms = 30LL * 60 * 1000;
    o->max_visitors = 1000000;
    o->max_fifo = 50000000;
    o->cf_days[0] = 30;
    o->n_cf_days = 1;
}

double td_reco_llr(double k11, double k12, double k21, double k22)
{
    /* Dunning (1993): LLR = 2 * (H(rows) + H(cols) - H(matrix)) with the
     * unnormalised entropy H(k...) = xlogx(sum k) - sum xlogx(k). */
#define XLX(x) ((x) > 0 ? (x)*log(x) : 0.0)
    double row = XLX(k11 + k12 + k21 + k22) - XLX(k11 + k12) - XLX(k21 + k22);
    double col = XLX(k11 + k12 + k21 + k22) - XLX(k11 + k21) - XLX(k12 + k22);
    double mat = XLX(k11 + k12 + k21 + k22) - XLX(k11) - XLX(k12) - XLX(k21) - XLX(k22);
#undef XLX
    double llr = 2.0 * (row + col - mat);
    return llr > 0 ? llr : 0.0; /* rounding can give -1e-12 */
}

/* ---- lifecycle ---- */

td_reco_model_t *td_reco_model_new(const td_reco_model_options_t *opt, td_err_t *err)
{
    td_reco_model_options_t o;
    if (opt == NULL) {
        td_reco_model_options_init(&o);
    } else {
        o = *opt;
    }
    if (o.max_history < 1 || o.max_history > 10000) {
        td_err_set(err, TD_EINVAL, "max_history", "must be 1..10000");
        return NULL;
    }
    if (o.max_recent < 1 || o.max_recent > 10000) {
        td_err_set(err, TD_EINVAL, "max_recent", "must be 1..10000");
        return NULL;
    }
    if (o.max_pairs_per_item < 1 || o.max_pairs_per_item > 1000000) {
        td_err_set(err, TD_EINVAL, "max_pairs_per_item", "must be 1..1000000");
        return NULL;
    }
    if (o.top_k < 1 || o.top_k > 100000) {
        td_err_set(err, TD_EINVAL, "top_k", "must be 1..100000");
        return NULL;
    }
    if (o.session_gap_ms < 1000 || o.max_visitors < 1 || o.max_fifo < 1000) {
        td_err_set(err, TD_EINVAL, "session_gap_ms", "session gap, visitors or fifo out of range");
        return NULL;
    }
    if (o.n_cf_days < 1 || o.n_cf_days > TD_RECO_MAX_CF_WINDOWS) {
        td_err_set(err, TD_EINVAL, "cf_days", "1..%d windows", TD_RECO_MAX_CF_WINDOWS);
        return NULL;
    }
    /* Windows sorted ascending, distinct. */
    for (int i = 0; i < o.n_cf_days; i++) {
        if (o.cf_days[i] < 1 || o.cf_days[i] > TD_RECO_MAX_DAYS) {
            td_err_set(err, TD_EINVAL, "cf_days", "window of %d days is not within 1..%d",
                       o.cf_days[i], TD_RECO_MAX_DAYS);
            return NULL;
        }
        for (int j = i + 1; j < o.n_cf_days; j++) {
            if (o.cf_days[j] < o.cf_days[i]) {
                int t = o.cf_days[i];
                o.cf_days[i] = o.cf_days[j];
                o.cf_days[j] = t;
            } else if (o.cf_days[j] == o.cf_days[i]) {
                td_err_set(err, TD_EINVAL, "cf_days", "window of %d days given twice",
                           o.cf_days[i]);
                return NULL;
            }
        }
    }
    td_reco_model_t *m = td_xcalloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers must not starve behind a steady stream of rank requests. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&m->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&m->cache_mu, NULL);
    m->opt = o;
    m->now_ms = INT64_MIN;
    td_reco__strtab_init(&m->items);
    td_reco__strtab_init(&m->vids);
    m->lru_head = m->lru_tail = TD_RECO_NONE;
    m->n_win = o.n_cf_days;
    for (int i = 0; i < m->n_win; i++) {
        m->win[i].days = o.cf_days[i];
        m->win[i].len_ms = (int64_t)o.cf_days[i] * DAY_MS;
    }
    return m;
}

td_reco_model_t *td_reco_model_ref(td_reco_model_t *m)
{
    atomic_fetch_add(&m->refs, 1);
    return m;
}

static void free_visitor(visitor_t *v)
{
    free(v->h);
    free(v->ring);
    td_reco__imap_release(&v->hidx);
    memset(v, 0, sizeof(*v));
}

static void cache_clear(td_reco_model_t *m)
{
    for (int w = 0; w < TD_RECO_MAX_CF_WINDOWS; w++) {
        for (int r = 0; r < TD_RECO_N_REL; r++) {
            for (int k = 0; k < 3; k++) {
                nbcache_t **c = m->cache[w][r][k];
                if (c == NULL) {
                    continue;
                }
                for (uint32_t i = 0; i < m->items_cap; i++) {
                    if (c[i] != NULL) {
                        free(c[i]->items);
                        free(c[i]->scores);
                        free(c[i]);
                        c[i] = NULL;
                    }
                }
            }
        }
    }
    m->cache_lists = 0;
}

void td_reco_model_unref(td_reco_model_t *m)
{
    if (m == NULL || atomic_fetch_sub(&m->refs, 1) != 1) {
        return;
    }
    cache_clear(m);
    for (int p = 0; p < TD_RECO_N_POP_WINDOWS; p++) {
        poplist_unref(m->popc[p][0]);
        poplist_unref(m->popc[p][1]);
    }
    for (int w = 0; w < TD_RECO_MAX_CF_WINDOWS; w++) {
        for (int r = 0; r < TD_RECO_N_REL; r++) {
            for (int k = 0; k < 3; k++) {
                free(m->cache[w][r][k]);
            }
        }
    }
    pthread_mutex_destroy(&m->cache_mu);
    for (uint32_t i = 0; i < m->vis_cap; i++) {
        free_visitor(&m->vis[i]);
    }
    free(m->vis);
    for (int w = 0; w < m->n_win; w++) {
        for (int r = 0; r < TD_RECO_N_REL; r++) {
            if (m->win[w].rel[r] == NULL) {
                continue;
            }
            for (uint32_t i = 0; i < m->items_cap; i++) {
                td_reco__imap_release(&m->win[w].rel[r][i]);
            }
            free(m->win[w].rel[r]);
            free(m->win[w].ver[r]);
        }
        free(m->win[w].nv);
        free(m->win[w].nb);
        free(m->win[w].rv);
        free(m->win[w].rb);
    }
    free(m->pop);
    free(m->cf);
    free(m->pf);
    td_reco__strtab_release(&m->items);
    td_reco__strtab_release(&m->vids);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

/* ---- items ---- */

static uint32_t intern_item(td_reco_model_t *m, const char *id)
{
    uint32_t it = td_reco__strtab_intern(&m->items, id);
    if (it >= m->items_cap) {
        uint32_t cap = m->items_cap ? m->items_cap : 256;
        while (cap <= it) {
            cap *= 2;
        }
        m->pop = td_xrealloc(m->pop, sizeof(*m->pop) * cap);
        memset(m->pop + m->items_cap, 0, sizeof(*m->pop) * (cap - m->items_cap));
        for (int w = 0; w < m->n_win; w++) {
            window_t *win = &m->win[w];
            win->nv = td_xrealloc(win->nv, sizeof(uint32_t) * cap);
            win->nb = td_xrealloc(win->nb, sizeof(uint32_t) * cap);
            memset(win->nv + m->items_cap, 0, sizeof(uint32_t) * (cap - m->items_cap));
            memset(win->nb + m->items_cap, 0, sizeof(uint32_t) * (cap - m->items_cap));
            win->rv = td_xrealloc(win->rv, sizeof(uint32_t) * cap);
            win->rb = td_xrealloc(win->rb, sizeof(uint32_t) * cap);
            memset(win->rv + m->items_cap, 0, sizeof(uint32_t) * (cap - m->items_cap));
            memset(win->rb + m->items_cap, 0, sizeof(uint32_t) * (cap - m->items_cap));
            for (int r = 0; r < TD_RECO_N_REL; r++) {
                win->rel[r] = td_xrealloc(win->rel[r], sizeof(td_reco_imap_t) * cap);
                memset(win->rel[r] + m->items_cap, 0,
                       sizeof(td_reco_imap_t) * (cap - m->items_cap));
                win->ver[r] = td_xrealloc(win->ver[r], sizeof(uint32_t) * cap);
                memset(win->ver[r] + m->items_cap, 0, sizeof(uint32_t) * (cap - m->items_cap));
                for (int k = 0; k < 3; k++) {
                    if (m->cache[w][r][k] != NULL) {
                        m->cache[w][r][k] =
                            td_xrealloc(m->cache[w][r][k], sizeof(nbcache_t *) * cap);
                        memset(m->cache[w][r][k] + m->items_cap, 0,
                               sizeof(nbcache_t *) * (cap - m->items_cap));
                    }
                }
            }
        }
        m->items_cap = cap;
    }
    return it;
}

/* ---- pair counts ---- */

static void pair_inc(td_reco_model_t *m, td_reco_imap_t *map, uint32_t partner)
{
    /* The owner's version is bumped by the caller (member_change). */
    uint32_t *c = td_reco__imap_find(map, partner);
    if (c != NULL) {
        if (*c == 1) {
            map->ones--;
        }
        (*c)++;
        return;
    }
    if ((int)map->n >= m->opt.max_pairs_per_item) {
        /* Full: the new partner (count 1) replaces a partner seen only once,
         * else it is dropped. Memory per item stays bounded; what is lost
         * is the long tail that could never rank in a top list anyway. The
         * scan resumes where the last one stopped, so it is amortised. */
        m->pair_evicted++;
        if (map->ones == 0) {
            return;
        }
        uint32_t victim = TD_RECO_NONE;
        for (uint32_t k = 0; k < map->cap; k++) {
            uint32_t i = (map->cursor + k) & (map->cap - 1);
            if (map->keys[i] != TD_RECO_NONE && map->vals[i] == 1) {
                victim = map->keys[i];
                map->cursor = (i + 1) & (map->cap - 1);
                break;
            }
        }
        if (victim == TD_RECO_NONE) {
            return;
        }
        td_reco__imap_delete(map, victim);
        map->ones--;
    }
    *td_reco__imap_upsert(map, partner) = 1;
    map->ones++;
}

static void pair_dec(td_reco_imap_t *map, uint32_t partner)
{
    uint32_t *c = td_reco__imap_find(map, partner);
    if (c == NULL) {
        return; /* dropped when the map was full */
    }
    if (*c <= 1) {
        td_reco__imap_delete(map, partner);
        map->ones--;
    } else {
        if (--(*c) == 1) {
            map->ones++;
        }
    }
}

/* Membership changes of item h->item for visitor v in window w. kind 0:
 * viewed, 1: bought. delta +1 joins, -1 leaves. */
static void member_change(td_reco_model_t *m, visitor_t *v, int w, hentry_t *h, int kind, int delta)
{
    window_t *win = &m->win[w];
    uint16_t bit = (uint16_t)(1u << w);
    uint32_t i = h->item;
    bool was_any = (h->vmask & bit) || (h->bmask & bit);

    /* Any change of counts touching i can change the scores of every list
     * i appears in (n_v(i) is in each pair's table); bump i's versions, and
     * each partner's below. */
    for (int r = 0; r < TD_RECO_N_REL; r++) {
        win->ver[r][i]++;
    }

    for (int k = 0; k < v->n_h; k++) {
        hentry_t *o = &v->h[k];
        if (o->item == i) {
            continue;
        }
        uint32_t j = o->item;
        if ((kind == 0 && (o->vmask & bit || o->bmask & bit)) ||
            (kind == 1 && (o->vmask & bit || o->bmask & bit))) {
            for (int r = 0; r < TD_RECO_N_REL; r++) {
                win->ver[r][j]++;
            }
        }
        if (kind == 0) {
            if (o->vmask & bit) {
                if (delta > 0) {
                    pair_inc(m, &win->rel[TD_RECO_REL_VV][i], j);
                    pair_inc(m, &win->rel[TD_RECO_REL_VV][j], i);
                } else {
                    pair_dec(&win->rel[TD_RECO_REL_VV][i], j);
                    pair_dec(&win->rel[TD_RECO_REL_VV][j], i);
                }
            }
            if (o->bmask & bit) {
                if (delta > 0) {
                    pair_inc(m, &win->rel[TD_RECO_REL_VB][i], j);
                } else {
                    pair_dec(&win->rel[TD_RECO_REL_VB][i], j);
                }
            }
        } else {
            if (o->bmask & bit) {
                if (delta > 0) {
                    pair_inc(m, &win->rel[TD_RECO_REL_BB][i], j);
                    pair_inc(m, &win->rel[TD_RECO_REL_BB][j], i);
                } else {
                    pair_dec(&win->rel[TD_RECO_REL_BB][i], j);
                    pair_dec(&win->rel[TD_RECO_REL_BB][j], i);
                }
            }
            if (o->vmask & bit) {
                if (delta > 0) {
                    pair_inc(m, &win->rel[TD_RECO_REL_VB][j], i);
                } else {
                    pair_dec(&win->rel[TD_RECO_REL_VB][j], i);
                }
            }
        }
    }
    if (kind == 0) {
        win->nv[i] = (uint32_t)((int64_t)win->nv[i] + delta);
        h->vmask = delta > 0 ? (uint16_t)(h->vmask | bit) : (uint16_t)(h->vmask & ~bit);
    } else {
        win->nb[i] = (uint32_t)((int64_t)win->nb[i] + delta);
        h->bmask = delta > 0 ? (uint16_t)(h->bmask | bit) : (uint16_t)(h->bmask & ~bit);
    }
    bool is_any = (h->vmask & bit) || (h->bmask & bit);
    if (was_any != is_any) {
        if (is_any) {
            if (v->nmem[w]++ == 0) {
                win->n_visitors++;
            }
        } else if (--v->nmem[w] == 0) {
            win->n_visitors--;
        }
    }
}

/* ---- visitors ---- */

static void lru_unlink(td_reco_model_t *m, uint32_t vi)
{
    visitor_t *v = &m->vis[vi];
    if (v->prev != TD_RECO_NONE) {
        m->vis[v->prev].next = v->next;
    } else {
        m->lru_head = v->next;
    }
    if (v->next != TD_RECO_NONE) {
        m->vis[v->next].prev = v->prev;
    } else {
        m->lru_tail = v->prev;
    }
    v->prev = v->next = TD_RECO_NONE;
}

static void lru_push_tail(td_reco_model_t *m, uint32_t vi)
{
    visitor_t *v = &m->vis[vi];
    v->prev = m->lru_tail;
    v->next = TD_RECO_NONE;
    if (m->lru_tail != TD_RECO_NONE) {
        m->vis[m->lru_tail].next = vi;
    } else {
        m->lru_head = vi;
    }
    m->lru_tail = vi;
}

static void hentry_remove_at(visitor_t *v, int k)
{
    td_reco__imap_delete(&v->hidx, v->h[k].item);
    if (k != v->n_h - 1) {
        v->h[k] = v->h[v->n_h - 1];
        *td_reco__imap_find(&v->hidx, v->h[k].item) = (uint32_t)k;
    }
    v->n_h--;
}

/* The visitor viewed (kind 0) / bought (1) the item again in a later
 * session within window w (delta +1), or no longer (-1): the self-pair of
 * the item, "people who bought this bought it again". */
static void repeat_change(td_reco_model_t *m, int w, hentry_t *h, int kind, int delta)
{
    window_t *win = &m->win[w];
    uint16_t bit = (uint16_t)(1u << w);
    uint32_t *cnt = kind == 0 ? &win->rv[h->item] : &win->rb[h->item];
    uint16_t *mask = kind == 0 ? &h->rvmask : &h->rbmask;
    *cnt = (uint32_t)((int64_t)*cnt + delta);
    *mask = delta > 0 ? (uint16_t)(*mask | bit) : (uint16_t)(*mask & ~bit);
    for (int r = 0; r < TD_RECO_N_REL; r++) {
        win->ver[r][h->item]++;
    }
}

/* Ends every membership of entry k and removes it. */
static void hentry_drop(td_reco_model_t *m, visitor_t *v, int k)
{
    for (int w = 0; w < m->n_win; w++) {
        uint16_t bit = (uint16_t)(1u << w);
        if (v->h[k].rbmask & bit) {
            repeat_change(m, w, &v->h[k], 1, -1);
        }
        if (v->h[k].rvmask & bit) {
            repeat_change(m, w, &v->h[k], 0, -1);
        }
        if (v->h[k].bmask & bit) {
            member_change(m, v, w, &v->h[k], 1, -1);
        }
        if (v->h[k].vmask & bit) {
            member_change(m, v, w, &v->h[k], 0, -1);
        }
    }
    hentry_remove_at(v, k);
}

static void visitor_remove(td_reco_model_t *m, uint32_t vi)
{
    visitor_t *v = &m->vis[vi];
    while (v->n_h > 0) {
        hentry_drop(m, v, v->n_h - 1);
    }
    lru_unlink(m, vi);
    free_visitor(v);
    td_reco__strtab_remove(&m->vids, vi);
    m->n_visitors--;
}

static uint32_t get_visitor(td_reco_model_t *m, const char *id)
{
    uint32_t vi = td_reco__strtab_intern(&m->vids, id);
    if (vi >= m->vis_cap) {
        uint32_t cap = m->vis_cap ? m->vis_cap : 256;
        while (cap <= vi) {
            cap *= 2;
        }
        m->vis = td_xrealloc(m->vis, sizeof(visitor_t) * cap);
        memset(m->vis + m->vis_cap, 0, sizeof(visitor_t) * (cap - m->vis_cap));
        m->vis_cap = cap;
    }
    visitor_t *v = &m->vis[vi];
    if (!v->live) {
        memset(v, 0, sizeof(*v));
        v->live = true;
        v->last_ms = INT64_MIN;
        v->session_start_ms = INT64_MIN;
        v->prev = v->next = TD_RECO_NONE;
        lru_push_tail(m, vi);
        m->n_visitors++;
    }
    return vi;
}

/* ---- expiry ---- */

static void cf_push(td_reco_model_t *m, int64_t ts, uint32_t vi, uint32_t item)
{
    if (m->cf_tail - m->cf_head == m->cf_cap) {
        int64_t cap = m->cf_cap ? m->cf_cap * 2 : 1024;
        cf_fifo_ent_t *n = td_xmalloc(sizeof(*n) * (size_t)cap);
        for (int64_t a = m->cf_head; a < m->cf_tail; a++) {
            n[a % cap] = m->cf[a % m->cf_cap];
        }
        free(m->cf);
        m->cf = n;
        m->cf_cap = cap;
    }
    cf_fifo_ent_t *e = &m->cf[m->cf_tail % m->cf_cap];
    e->ts_ms = ts;
    e->visitor = vi;
    e->item = item;
    m->cf_tail++;
}

static void pop_push(td_reco_model_t *m, int64_t ts, uint32_t item, int action, uint8_t mask)
{
    if (m->pf_tail - m->pf_head == m->pf_cap) {
        int64_t cap = m->pf_cap ? m->pf_cap * 2 : 1024;
        pop_fifo_ent_t *n = td_xmalloc(sizeof(*n) * (size_t)cap);
        for (int64_t a = m->pf_head; a < m->pf_tail; a++) {
            n[a % cap] = m->pf[a % m->pf_cap];
        }
        free(m->pf);
        m->pf = n;
        m->pf_cap = cap;
    }
    pop_fifo_ent_t *e = &m->pf[m->pf_tail % m->pf_cap];
    e->ts_ms = ts;
    e->item = item;
    e->action = (uint8_t)action;
    e->mask = mask;
    m->pf_tail++;
}

/* Window w has passed entry e: end the memberships it was the latest
 * evidence of. */
static void cf_expire_entry(td_reco_model_t *m, int w, const cf_fifo_ent_t *e, int64_t horizon)
{
    if (e->visitor >= m->vis_cap || !m->vis[e->visitor].live) {
        return;
    }
    visitor_t *v = &m->vis[e->visitor];
    uint32_t *k = td_reco__imap_find(&v->hidx, e->item);
    if (k == NULL) {
        return;
    }
    hentry_t *h = &v->h[*k];
    uint16_t bit = (uint16_t)(1u << w);
    if ((h->rbmask & bit) && h->prev_b_ms < horizon) {
        repeat_change(m, w, h, 1, -1);
    }
    if ((h->rvmask & bit) && h->prev_v_ms < horizon) {
        repeat_change(m, w, h, 0, -1);
    }
    if ((h->bmask & bit) && h->last_b_ms < horizon) {
        member_change(m, v, w, h, 1, -1);
    }
    if ((h->vmask & bit) && h->last_v_ms < horizon) {
        member_change(m, v, w, h, 0, -1);
    }
    if (w == m->n_win - 1 && h->vmask == 0 && h->bmask == 0) {
        hentry_remove_at(v, (int)*k);
    }
}

static void expire(td_reco_model_t *m)
{
    int64_t now = m->now_ms;
    for (int w = 0; w < m->n_win; w++) {
        window_t *win = &m->win[w];
        int64_t horizon = now - win->len_ms;
        if (win->cursor < m->cf_head) {
            win->cursor = m->cf_head;
        }
        while (win->cursor < m->cf_tail) {
            const cf_fifo_ent_t *e = &m->cf[win->cursor % m->cf_cap];
            /* Past the queue bound, the oldest events expire early. */
            bool forced = m->cf_tail - win->cursor > m->opt.max_fifo;
            if (e->ts_ms >= horizon && !forced) {
                break;
            }
            cf_expire_entry(m, w, e, forced ? e->ts_ms + 1 : horizon);
            win->cursor++;
        }
    }
    /* The largest window is the slowest: entries behind it are done. */
    m->cf_head = m->win[m->n_win - 1].cursor;
    for (int w = 0; w < m->n_win; w++) {
        if (m->win[w].cursor < m->cf_head) {
            m->cf_head = m->win[w].cursor;
        }
    }

    int64_t pf_min = m->pf_tail;
    for (int p = 0; p < TD_RECO_N_POP_WINDOWS; p++) {
        int64_t horizon = now - (int64_t)pop_hours[p] * HOUR_MS;
        if (m->pf_cursor[p] < m->pf_head) {
            m->pf_cursor[p] = m->pf_head;
        }
        while (m->pf_cursor[p] < m->pf_tail) {
            const pop_fifo_ent_t *e = &m->pf[m->pf_cursor[p] % m->pf_cap];
            bool forced = m->pf_tail - m->pf_cursor[p] > m->opt.max_fifo;
            if (e->ts_ms >= horizon && !forced) {
                break;
            }
            if (e->mask & (1u << p)) {
                uint32_t *c = &m->pop[e->item][p][e->action];
                if (*c > 0) {
                    (*c)--;
                }
            }
            m->pf_cursor[p]++;
        }
        if (m->pf_cursor[p] < pf_min) {
            pf_min = m->pf_cursor[p];
        }
    }
    m->pf_head = pf_min;

    /* Visitors idle past the longest retention leave entirely. */
    int64_t keep_ms = (int64_t)TD_RECO_MAX_DAYS * DAY_MS;
    while (m->lru_head != TD_RECO_NONE) {
        visitor_t *v = &m->vis[m->lru_head];
        if (v->last_ms >= now - keep_ms) {
            break;
        }
        visitor_remove(m, m->lru_head);
    }
}

/* ---- updates ---- */

static void ring_push(td_reco_model_t *m, visitor_t *v, uint32_t item, int action, int64_t ts)
{
    if (v->ring_cap < m->opt.max_recent && v->ring_n == v->ring_cap) {
        int cap = v->ring_cap ? v->ring_cap * 2 : 8;
        if (cap > m->opt.max_recent) {
            cap = m->opt.max_recent;
        }
        rec_ev_t *n = td_xmalloc(sizeof(*n) * (size_t)cap);
        for (int i = 0; i < v->ring_n; i++) {
            n[i] = v->ring[(v->ring_head + i) % v->ring_cap];
        }
        free(v->ring);
        v->ring = n;
        v->ring_head = 0;
        v->ring_cap = cap;
    }
    rec_ev_t e = { item, (uint32_t)action, ts };
    if (v->ring_n < v->ring_cap) {
        v->ring[(v->ring_head + v->ring_n) % v->ring_cap] = e;
        v->ring_n++;
    } else {
        v->ring[v->ring_head] = e;
        v->ring_head = (v->ring_head + 1) % v->ring_cap;
    }
}

static int add_locked(td_reco_model_t *m, const td_reco_event_t *ev)
{
    int64_t ts = ev->ts_ms;
    if (ts > m->now_ms) {
        m->now_ms = ts;
        expire(m);
    }
    if (ev->seq > m->max_seq) {
        m->max_seq = ev->seq;
    }
    m->n_events++;
    m->stamp++;
    uint32_t item = intern_item(m, ev->item);
    uint32_t vi = get_visitor(m, ev->visitor);
    visitor_t *v = &m->vis[vi];

    /* Sessions end after session_gap_ms of inactivity. */
    bool new_session = v->last_ms == INT64_MIN || ts > v->last_ms + m->opt.session_gap_ms;
    if (new_session) {
        v->session_start_ms = ts;
    }
    if (ts > v->last_ms) {
        v->last_ms = ts;
    }
    lru_unlink(m, vi);
    lru_push_tail(m, vi);
    ring_push(m, v, item, ev->action, ts);

    uint32_t *kp = td_reco__imap_find(&v->hidx, item);
    hentry_t *h;
    if (kp == NULL) {
        if (v->n_h >= m->opt.max_history) {
            /* Keep the most recent items: drop the one least recently seen. */
            int oldest = 0;
            for (int k = 1; k < v->n_h; k++) {
                int64_t a =
                    v->h[k].last_v_ms > v->h[k].last_b_ms ? v->h[k].last_v_ms : v->h[k].last_b_ms;
                int64_t b = v->h[oldest].last_v_ms > v->h[oldest].last_b_ms
                                ? v->h[oldest].last_v_ms
                                : v->h[oldest].last_b_ms;
                if (a < b) {
                    oldest = k;
                }
            }
            hentry_drop(m, v, oldest);
        }
        if (v->n_h == v->cap_h) {
            v->cap_h = v->cap_h ? v->cap_h * 2 : 8;
            v->h = td_xrealloc(v->h, sizeof(hentry_t) * (size_t)v->cap_h);
        }
        h = &v->h[v->n_h];
        memset(h, 0, sizeof(*h));
        h->item = item;
        h->last_v_ms = h->last_b_ms = INT64_MIN;
        h->prev_v_ms = h->prev_b_ms = INT64_MIN;
        *td_reco__imap_upsert(&v->hidx, item) = (uint32_t)v->n_h;
        v->n_h++;
    } else {
        h = &v->h[*kp];
    }

    /* Popularity: once per session and action. */
    bool bought = ev->action == TD_RECO_BUY;
    for (int a = 0; a < 2; a++) {
        if (a == 1 && !bought) {
            break;
        }
        int64_t last = a == 0 ? h->last_v_ms : h->last_b_ms;
        if (last != INT64_MIN && last >= v->session_start_ms && !new_session) {
            continue;
        }
        uint8_t mask = 0;
        for (int p = 0; p < TD_RECO_N_POP_WINDOWS; p++) {
            if (ts >= m->now_ms - (int64_t)pop_hours[p] * HOUR_MS) {
                mask = (uint8_t)(mask | (1u << p));
                m->pop[item][p][a]++;
            }
        }
        if (mask != 0) {
            pop_push(m, ts, item, a, mask);
        }
    }

    /* A view / purchase in a later session than the previous one makes a
     * repeat (the self-pair of the item). */
    if (h->last_v_ms != INT64_MIN && h->last_v_ms < v->session_start_ms &&
        h->last_v_ms > h->prev_v_ms) {
        h->prev_v_ms = h->last_v_ms;
    }
    if (bought && h->last_b_ms != INT64_MIN && h->last_b_ms < v->session_start_ms &&
        h->last_b_ms > h->prev_b_ms) {
        h->prev_b_ms = h->last_b_ms;
    }
    if (ts > h->last_v_ms) {
        h->last_v_ms = ts;
    }
    if (bought && ts > h->last_b_ms) {
        h->last_b_ms = ts;
    }
    bool any = false;
    for (int w = 0; w < m->n_win; w++) {
        if (ts < m->now_ms - m->win[w].len_ms) {
            continue; /* too old for this window */
        }
        any = true;
        uint16_t bit = (uint16_t)(1u << w);
        if (!(h->vmask & bit)) {
            member_change(m, v, w, h, 0, +1);
        }
        if (bought && !(h->bmask & bit)) {
            member_change(m, v, w, h, 1, +1);
        }
        int64_t horizon = m->now_ms - m->win[w].len_ms;
        if (!(h->rvmask & bit) && h->prev_v_ms != INT64_MIN && h->prev_v_ms >= horizon) {
            repeat_change(m, w, h, 0, +1);
        }
        if (!(h->rbmask & bit) && h->prev_b_ms != INT64_MIN && h->prev_b_ms >= horizon) {
            repeat_change(m, w, h, 1, +1);
        }
    }
    if (any) {
        cf_push(m, ts, vi, item);
    } else if (h->vmask == 0 && h->bmask == 0) {
        hentry_remove_at(v, (int)*td_reco__imap_find(&v->hidx, item));
    }

    while (m->n_visitors > m->opt.max_visitors && m->lru_head != TD_RECO_NONE &&
           m->lru_head != vi) {
        visitor_remove(m, m->lru_head);
    }
    return TD_OK;
}

static bool id_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) < TD_RECO_MAX_ID;
}

int td_reco_model_add(td_reco_model_t *m, const td_reco_event_t *ev)
{
    if (!id_ok(ev->visitor)) {
        return td_err_set(NULL, TD_EINVAL, "visitor", "empty or too long");
    }
    if (!id_ok(ev->item)) {
        return td_err_set(NULL, TD_EINVAL, "item", "empty or too long");
    }
    if (ev->action != TD_RECO_VIEW && ev->action != TD_RECO_CART && ev->action != TD_RECO_BUY) {
        return TD_EINVAL;
    }
    pthread_rwlock_wrlock(&m->lock);
    int rc = add_locked(m, ev);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

void td_reco_model_advance(td_reco_model_t *m, int64_t now_ms)
{
    pthread_rwlock_wrlock(&m->lock);
    if (now_ms > m->now_ms) {
        m->now_ms = now_ms;
        expire(m);
        m->stamp++;
    }
    pthread_rwlock_unlock(&m->lock);
}

int64_t td_reco_model_max_seq(td_reco_model_t *m)
{
    pthread_rwlock_rdlock(&m->lock);
    int64_t s = m->max_seq;
    pthread_rwlock_unlock(&m->lock);
    return s;
}

void td_reco_model_stats(td_reco_model_t *m, td_reco_model_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&m->lock);
    out->now_ms = m->now_ms;
    out->events = m->n_events;
    out->visitors = m->n_visitors;
    out->items = m->items.n;
    out->fifo = (m->cf_tail - m->cf_head) + (m->pf_tail - m->pf_head);
    out->pair_evicted = m->pair_evicted;
    size_t bytes = m->items.bytes + m->vids.bytes;
    bytes += (size_t)m->items_cap *
             (sizeof(*m->pop) + (size_t)m->n_win * (8 + 3 * sizeof(td_reco_imap_t)));
    for (int w = 0; w < m->n_win; w++) {
        for (int r = 0; r < TD_RECO_N_REL; r++) {
            for (uint32_t i = 0; i < m->items.n; i++) {
                out->pairs += m->win[w].rel[r][i].n;
                bytes += (size_t)m->win[w].rel[r][i].cap * 8;
            }
        }
    }
    for (uint32_t i = 0; i < m->vis_cap; i++) {
        const visitor_t *v = &m->vis[i];
        bytes += sizeof(*v) + (size_t)v->cap_h * sizeof(hentry_t) + (size_t)v->hidx.cap * 8 +
                 (size_t)v->ring_cap * sizeof(rec_ev_t);
    }
    bytes += (size_t)m->cf_cap * sizeof(cf_fifo_ent_t) + (size_t)m->pf_cap * sizeof(pop_fifo_ent_t);
    out->bytes = bytes;
    pthread_rwlock_unlock(&m->lock);
}

/* ---- reads ---- */

static int window_for(const td_reco_model_t *m, int days)
{
    for (int w = 0; w < m->n_win; w++) {
        if (m->win[w].days >= days) {
            return w;
        }
    }
    return m->n_win - 1;
}

int td_reco__model_window(td_reco_model_t *m, int days, int *actual_days)
{
    int w = window_for(m, days);
    if (actual_days != NULL) {
        *actual_days = m->win[w].days;
    }
    return w;
}

bool td_reco_model_pair_counts(td_reco_model_t *m, int days, int relation, const char *a,
                               const char *b, td_reco_pair_counts_t *out)
{
    memset(out, 0, sizeof(*out));
    if (relation < 0 || relation >= TD_RECO_N_REL) {
        return false;
    }
    pthread_rwlock_rdlock(&m->lock);
    bool ok = false;
    uint32_t ia = td_reco__strtab_find(&m->items, a);
    uint32_t ib = td_reco__strtab_find(&m->items, b);
    if (ia != TD_RECO_NONE && ib != TD_RECO_NONE) {
        const window_t *win = &m->win[window_for(m, days)];
        out->n_visitors = win->n_visitors;
        out->n_a = relation == TD_RECO_REL_BB ? win->nb[ia] : win->nv[ia];
        out->n_b = relation == TD_RECO_REL_VV ? win->nv[ib] : win->nb[ib];
        uint32_t *c = td_reco__imap_find(&win->rel[relation][ia], ib);
        out->n_ab = c ? *c : 0;
        if (ia == ib) {
            /* The self-pair: did it again in a later session. */
            out->n_b = relation == TD_RECO_REL_VV   ? win->rv[ia]
                       : relation == TD_RECO_REL_BB ? win->rb[ia]
                                                    : 0;
            out->n_ab = out->n_b;
        }
        ok = true;
    }
    pthread_rwlock_unlock(&m->lock);
    return ok;
}

double td_reco_model_popularity(td_reco_model_t *m, const char *item, bool bought, int hours)
{
    int p = 0;
    while (p < TD_RECO_N_POP_WINDOWS - 1 && pop_hours[p] < hours) {
        p++;
    }
    pthread_rwlock_rdlock(&m->lock);
    double r = 0;
    uint32_t it = td_reco__strtab_find(&m->items, item);
    if (it != TD_RECO_NONE) {
        r = m->pop[it][p][bought ? 1 : 0];
    }
    pthread_rwlock_unlock(&m->lock);
    return r;
}

typedef struct scored {
    uint32_t item;
    double score;
} scored_t;

struct poplist {
    _Atomic int refs;
    int64_t stamp, at_ms;
    uint32_t n;
    scored_t v[];
};

static void poplist_unref(poplist_t *pl)
{
    if (pl != NULL && atomic_fetch_sub(&pl->refs, 1) == 1) {
        free(pl);
    }
}

static int cmp_scored(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->item < y->item ? -1 : x->item > y->item;
}

static double pair_score(td_reco_metric_t metric, double k11, double na, double nb, double n,
                         double min_llr, bool *keep)
{
    *keep = false;
    if (k11 <= 0 || na <= 0 || nb <= 0) {
        return 0;
    }
    if (k11 > na) {
        k11 = na;
    }
    if (k11 > nb) {
        k11 = nb;
    }
    if (n < na + nb - k11) {
        n = na + nb - k11;
    }
    double cosine = k11 / sqrt(na * nb);
    if (metric == TD_RECO_METRIC_LLR || min_llr > 0) {
        /* Only pairs seen together more often than chance recommend each
         * other: LLR alone is also large for pairs that avoid each other. */
        if (k11 * n <= na * nb) {
            return 0;
        }
        double llr = td_reco_llr(k11, na - k11, nb - k11, n - na - nb + k11);
        if (llr < min_llr) {
            return 0;
        }
        if (metric == TD_RECO_METRIC_LLR) {
            *keep = llr > 0;
            return llr;
        }
    }
    *keep = true;
    if (metric == TD_RECO_METRIC_COSINE) {
        return cosine;
    }
    double d2 = 2.0 - 2.0 * cosine;
    return 1.0 / (1.0 + sqrt(d2 > 0 ? d2 : 0));
}

/* Moves the k best entries (cmp_scored order) to the front of v, in no
 * particular order: quickselect, so a long partner list costs O(n). */
static void select_top(scored_t *v, uint32_t n, uint32_t k)
{
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        scored_t pivot = v[lo + (hi - lo) / 2];
        uint32_t i = lo, j = hi;
        while (i <= j) {
            while (cmp_scored(&v[i], &pivot) < 0) {
                i++;
            }
            while (cmp_scored(&v[j], &pivot) > 0) {
                j--;
            }
            if (i <= j) {
                scored_t t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) {
                    break;
                }
                j--;
            }
        }
        if (k - 1 <= j) {
            hi = j;
        } else if (k - 1 >= i) {
            lo = i;
        } else {
            break;
        }
    }
}

/* Scores every partner of key a and keeps the best top_k (read lock held). */
static int compute_list(td_reco_model_t *m, const window_t *win, int rel, td_reco_metric_t metric,
                        double min_llr, uint32_t a, scored_t **buf, uint32_t *buf_cap)
{
    const td_reco_imap_t *map = &win->rel[rel][a];
    double n = (double)win->n_visitors;
    if (*buf_cap < map->n + 1) {
        *buf_cap = map->n + 1;
        *buf = td_xrealloc(*buf, sizeof(scored_t) * *buf_cap);
    }
    uint32_t nbuf = 0;
    double na = rel == TD_RECO_REL_BB ? win->nb[a] : win->nv[a];
    /* The item itself, scored like any partner: visitors who did it again
     * in a later session (grocery staples are bought again; a kayak is
     * not). Single-key criteria exclude the key item anyway. */
    double again = rel == TD_RECO_REL_VV ? win->rv[a] : rel == TD_RECO_REL_BB ? win->rb[a] : 0;
    if (again > 0) {
        bool keep;
        double sc = pair_score(metric, again, na, again, n, min_llr, &keep);
        if (keep) {
            (*buf)[nbuf].item = a;
            (*buf)[nbuf].score = sc;
            nbuf++;
        }
    }
    for (uint32_t s = 0; s < map->cap; s++) {
        uint32_t b = map->keys[s];
        if (b == TD_RECO_NONE) {
            continue;
        }
        double nb = rel == TD_RECO_REL_VV ? win->nv[b] : win->nb[b];
        bool keep;
        double sc = pair_score(metric, map->vals[s], na, nb, n, min_llr, &keep);
        if (keep) {
            (*buf)[nbuf].item = b;
            (*buf)[nbuf].score = sc;
            nbuf++;
        }
    }
    uint32_t k = (uint32_t)m->opt.top_k;
    if (nbuf > k) {
        select_top(*buf, nbuf, k);
        nbuf = k;
    }
    qsort(*buf, nbuf, sizeof(scored_t), cmp_scored);
    return (int)nbuf;
}

void td_reco__model_neighbours(td_reco_model_t *m, int w, int rel, td_reco_metric_t metric,
                               double min_llr, const td_reco_key_w_t *keys, int n_keys,
                               int64_t now_ms, td_reco_cands_t *out)
{
    pthread_rwlock_rdlock(&m->lock);
    const window_t *win = &m->win[w];
    td_reco_imap_t slot = { 0 }; /* item -> index in out */
    scored_t *buf = NULL;
    uint32_t buf_cap = 0;

    for (int k = 0; k < n_keys; k++) {
        uint32_t a = td_reco__strtab_find(&m->items, keys[k].id);
        if (a == TD_RECO_NONE || a >= m->items_cap) {
            continue;
        }
        if (win->rel[rel][a].n == 0 && win->rv[a] == 0 && win->rb[a] == 0) {
            continue;
        }
        int nbuf = -1;
        uint32_t ver = win->ver[rel][a];
        pthread_mutex_lock(&m->cache_mu);
        nbcache_t **cache = m->cache[w][rel][metric];
        nbcache_t *ce = cache ? cache[a] : NULL;
        /* Reused while the key's own counts are unchanged, and either nothing
         * at all changed since or it is younger than CACHE_MAX_AGE_MS. */
        if (ce != NULL && ce->ver == ver && ce->min_llr == min_llr &&
            (ce->stamp == m->stamp ||
             (now_ms >= ce->at_ms && now_ms - ce->at_ms < CACHE_MAX_AGE_MS))) {
            if (buf_cap < (uint32_t)ce->n + 1) {
                buf_cap = (uint32_t)ce->n + 1;
                buf = td_xrealloc(buf, sizeof(scored_t) * buf_cap);
            }
            for (int i = 0; i < ce->n; i++) {
                buf[i].item = ce->items[i];
                buf[i].score = ce->scores[i];
            }
            nbuf = ce->n;
        }
        pthread_mutex_unlock(&m->cache_mu);
        if (nbuf < 0) {
            nbuf = compute_list(m, win, rel, metric, min_llr, a, &buf, &buf_cap);
            pthread_mutex_lock(&m->cache_mu);
            if (m->cache_lists >= CACHE_MAX_LISTS) {
                cache_clear(m); /* bounded: start over rather than track age */
            }
            if (m->cache[w][rel][metric] == NULL) {
                m->cache[w][rel][metric] = td_xcalloc(m->items_cap, sizeof(nbcache_t *));
            }
            nbcache_t *nc = m->cache[w][rel][metric][a];
            if (nc == NULL) {
                nc = td_xcalloc(1, sizeof(*nc));
                m->cache[w][rel][metric][a] = nc;
                m->cache_lists++;
            }
            nc->ver = ver;
            nc->stamp = m->stamp;
            nc->at_ms = now_ms;
            nc->min_llr = min_llr;
            nc->n = nbuf;
            nc->items = td_xrealloc(nc->items, sizeof(uint32_t) * (size_t)(nbuf ? nbuf : 1));
            nc->scores = td_xrealloc(nc->scores, sizeof(double) * (size_t)(nbuf ? nbuf : 1));
            for (int i = 0; i < nbuf; i++) {
                nc->items[i] = buf[i].item;
                nc->scores[i] = buf[i].score;
            }
            pthread_mutex_unlock(&m->cache_mu);
        }
        for (int s2 = 0; s2 < nbuf; s2++) {
            double add = buf[s2].score * keys[k].weight;
            uint32_t *ix = td_reco__imap_find(&slot, buf[s2].item);
            if (ix == NULL) {
                td_reco_cand_t c = { .item = buf[s2].item,
                                     .id = td_reco__strtab_str(&m->items, buf[s2].item),
                                     .score = add,
                                     .via = keys[k].id,
                                     .via_score = add };
                *td_reco__imap_upsert(&slot, buf[s2].item) = (uint32_t)out->n;
                td_reco__cands_push(out, &c);
            } else {
                td_reco_cand_t *c = &out->v[*ix];
                c->score += add;
                if (add > c->via_score) {
                    c->via = keys[k].id;
                    c->via_score = add;
                }
            }
        }
    }
    free(buf);
    td_reco__imap_release(&slot);
    pthread_rwlock_unlock(&m->lock);
}

void td_reco__model_popular(td_reco_model_t *m, bool bought, int hours, int64_t now_ms,
                            td_reco_pop_fn fn, void *ctx)
{
    int p = 0;
    while (p < TD_RECO_N_POP_WINDOWS - 1 && pop_hours[p] < hours) {
        p++;
    }
    int a = bought ? 1 : 0;
    pthread_rwlock_rdlock(&m->lock);
    /* The sorted list is shared by readers (refcounted) and rebuilt once
     * the model changed and the list is older than CACHE_MAX_AGE_MS. */
    pthread_mutex_lock(&m->cache_mu);
    poplist_t *pl = m->popc[p][a];
    if (pl == NULL || (pl->stamp != m->stamp &&
                       !(now_ms >= pl->at_ms && now_ms - pl->at_ms < CACHE_MAX_AGE_MS))) {
        uint32_t n = m->items.n;
        poplist_t *nl = td_xmalloc(sizeof(*nl) + sizeof(scored_t) * (n ? n : 1));
        atomic_init(&nl->refs, 1);
        nl->stamp = m->stamp;
        nl->at_ms = now_ms;
        uint32_t k = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (m->pop[i][p][a] > 0) {
                nl->v[k].item = i;
                nl->v[k].score = m->pop[i][p][a];
                k++;
            }
        }
        qsort(nl->v, k, sizeof(scored_t), cmp_scored);
        nl->n = k;
        poplist_unref(pl);
        m->popc[p][a] = pl = nl;
    }
    atomic_fetch_add(&pl->refs, 1);
    pthread_mutex_unlock(&m->cache_mu);
    for (uint32_t i = 0; i < pl->n; i++) {
        if (!fn(ctx, td_reco__strtab_str(&m->items, pl->v[i].item), pl->v[i].score)) {
            break;
        }
    }
    poplist_unref(pl);
    pthread_rwlock_unlock(&m->lock);
}

int td_reco__model_history(td_reco_model_t *m, const char *visitor, td_reco_hist_t *out, int max)
{
    int n = 0;
    if (visitor == NULL) {
        return 0;
    }
    pthread_rwlock_rdlock(&m->lock);
    uint32_t vi = td_reco__strtab_find(&m->vids, visitor);
    if (vi != TD_RECO_NONE && vi < m->vis_cap && m->vis[vi].live) {
        const visitor_t *v = &m->vis[vi];
        int skip = v->ring_n > max ? v->ring_n - max : 0;
        for (int i = skip; i < v->ring_n; i++) {
            const rec_ev_t *e = &v->ring[(v->ring_head + i) % v->ring_cap];
            out[n].item = td_reco__strtab_str(&m->items, e->item);
            out[n].action = (td_reco_action_t)e->action;
            out[n].ts_ms = e->ts_ms;
            n++;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* ---- engine ---- */

typedef struct queued {
    td_reco_event_t ev;
    char *visitor, *item;
} queued_t;

struct td_reco_engine {
    pthread_mutex_t mu;
    td_reco_model_t *cur;
    bool rebuilding;
    queued_t *q;
    int64_t n_q, cap_q;
};

td_reco_engine_t *td_reco_engine_new(td_reco_model_t *model)
{
    td_reco_engine_t *e = td_xcalloc(1, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    e->cur = model;
    return e;
}

static void drop_queue(td_reco_engine_t *e)
{
    for (int64_t i = 0; i < e->n_q; i++) {
        free(e->q[i].visitor);
        free(e->q[i].item);
    }
    free(e->q);
    e->q = NULL;
    e->n_q = e->cap_q = 0;
}

void td_reco_engine_free(td_reco_engine_t *e)
{
    if (e == NULL) {
        return;
    }
    drop_queue(e);
    td_reco_model_unref(e->cur);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

td_reco_model_t *td_reco_engine_acquire(td_reco_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    td_reco_model_t *m = td_reco_model_ref(e->cur);
    pthread_mutex_unlock(&e->mu);
    return m;
}

int td_reco_engine_add(td_reco_engine_t *e, const td_reco_event_t *ev)
{
    /* The engine mutex is held across the model update so that an event is
     * either queued for the rebuild or already in the model the rebuild
     * replaces, never lost between the two. */
    pthread_mutex_lock(&e->mu);
    int rc = td_reco_model_add(e->cur, ev);
    if (rc == TD_OK && e->rebuilding) {
        if (e->n_q == e->cap_q) {
            e->cap_q = e->cap_q ? e->cap_q * 2 : 256;
            e->q = td_xrealloc(e->q, sizeof(queued_t) * (size_t)e->cap_q);
        }
        queued_t *q = &e->q[e->n_q++];
        q->ev = *ev;
        q->visitor = td_xstrdup(ev->visitor);
        q->item = td_xstrdup(ev->item);
        q->ev.visitor = q->visitor;
        q->ev.item = q->item;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int td_reco_engine_rebuild_begin(td_reco_engine_t *e, td_reco_model_t **fresh)
{
    pthread_mutex_lock(&e->mu);
    if (e->rebuilding) {
        pthread_mutex_unlock(&e->mu);
        return TD_EBUSY;
    }
    td_reco_model_options_t opt = e->cur->opt;
    *fresh = td_reco_model_new(&opt, NULL);
    e->rebuilding = true;
    pthread_mutex_unlock(&e->mu);
    return TD_OK;
}

void td_reco_engine_rebuild_commit(td_reco_engine_t *e, td_reco_model_t *fresh)
{
    pthread_mutex_lock(&e->mu);
    int64_t seen = td_reco_model_max_seq(fresh);
    for (int64_t i = 0; i < e->n_q; i++) {
        if (e->q[i].ev.seq == 0 || e->q[i].ev.seq > seen) {
            if (td_reco_model_add(fresh, &e->q[i].ev) != TD_OK) {
                continue; /* was valid for the current model, cannot fail */
            }
        }
    }
    drop_queue(e);
    td_reco_model_t *old = e->cur;
    pthread_rwlock_rdlock(&old->lock);
    int64_t now = old->now_ms;
    pthread_rwlock_unlock(&old->lock);
    e->cur = fresh;
    e->rebuilding = false;
    pthread_mutex_unlock(&e->mu);
    td_reco_model_advance(fresh, now);
    td_reco_model_unref(old);
}

void td_reco_engine_rebuild_abort(td_reco_engine_t *e, td_reco_model_t *fresh)
{
    pthread_mutex_lock(&e->mu);
    drop_queue(e);
    e->rebuilding = false;
    pthread_mutex_unlock(&e->mu);
    td_reco_model_unref(fresh);
}
