/* The recommendation service: the pure engine of src/reco wired to the rest
 * of the server. It feeds the behaviour model from the ingest writer (after
 * each commit), keeps the content-similarity index in step with the catalog
 * index, reads catalog attributes through an adapter, holds the criteria and
 * CUSTOM lists, and answers recommendation requests for the HTTP API and the
 * journey engine's recommend step (in-process). */
#include "api/api.h"
#include "api/recs_follow.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "profile/profile.h"
#include "reco/reco.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/strmap.h"
#include "util/banned.h"

/* The criteria the shipped journeys reference: seeded when absent. */
static const struct {
    const char *id, *doc;
} seeds[] = {
    { "bought-also-bought",
      "{\"id\": \"bought-also-bought\", \"name\": \"People who bought these also bought\", "
      "\"criteriaGroup\": \"CART\", \"type\": \"BOUGHT_CF\", \"daysCount\": 30}" },
    { "viewed-also-viewed",
      "{\"id\": \"viewed-also-viewed\", \"name\": \"People who viewed this also viewed\", "
      "\"criteriaGroup\": \"ITEM\", \"type\": \"VIEWED_CF\", \"daysCount\": 30}" },
};

#define MAX_REQUEST_LIST 1000 /* cart / exclude / params entries in one request */

typedef struct custom_entry {
    char *id;
    td_reco_custom_t *lists;
} custom_entry_t;

struct td_recs {
    td_app_t *app;
    td_reco_engine_t *engine;
    td_reco_content_t *content;
    pthread_mutex_t content_mu; /* serialises catalog -> content syncs */
    uint64_t content_version;   /* catalog version the content index reflects */
    td_strmap_t content_seen;   /* entity id -> version put (entity_stamp) */
    bool content_loaded;
    /* criteria (id -> JSON text) and CUSTOM lists: written rarely, read by
     * every request for the whole ranking (CUSTOM lists are borrowed) */
    pthread_rwlock_t lock;
    json_t *criteria;
    json_t *designs; /* mbox / decision scope name -> {"criteria", "count", "html"} */
    custom_entry_t *customs;
    int n_customs;
    /* with several nodes: the store's document counter the memory reflects
     * (follower thread only), and a count of this node's own writes (moved
     * under the write lock) that tells a reload it may have read too early */
    int64_t docs_rev;
    uint64_t docs_gen;
    td_recs_follow_t *follow; /* other nodes' events (NULL: not following) */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
};

/* ------------------------------------------------------------------------
 * Catalog adapter: entities of the catalog index as td_reco_item_t. What an
 * item points to lives until the request's arena is released.
 */

typedef struct arena {
    void **ptrs;
    int n, cap;
    const td_entity_t **refs;
    int n_refs, cap_refs;
} arena_t;

static void *arena_keep(arena_t *a, void *p)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->ptrs = td_xrealloc(a->ptrs, (size_t)a->cap * sizeof(*a->ptrs));
    }
    a->ptrs[a->n++] = p;
    return p;
}

static void arena_ref(arena_t *a, const td_entity_t *e)
{
    if (a->n_refs == a->cap_refs) {
        a->cap_refs = a->cap_refs ? a->cap_refs * 2 : 16;
        a->refs = td_xrealloc(a->refs, (size_t)a->cap_refs * sizeof(*a->refs));
    }
    a->refs[a->n_refs++] = e;
}

static void arena_release(arena_t *a)
{
    for (int i = 0; i < a->n; i++) {
        free(a->ptrs[i]);
    }
    for (int i = 0; i < a->n_refs; i++) {
        td_entity_unref(a->refs[i]);
    }
    free(a->ptrs);
    free(a->refs);
    memset(a, 0, sizeof(*a));
}

/* Fills out from e; custom attributes are converted into arena memory. */
static void entity_to_item(const td_entity_t *e, arena_t *a, td_reco_item_t *out)
{
    memset(out, 0, sizeof(*out));
    out->id = e->id;
    out->name = (e->has & TD_ENTITY_NAME) ? e->name : NULL;
    out->brand = (e->has & TD_ENTITY_BRAND) ? e->brand : NULL;
    out->message = (e->has & TD_ENTITY_MESSAGE) ? e->message : NULL;
    out->categories = (const char *const *)e->categories;
    out->n_categories = e->n_categories;
    out->value = e->value;
    out->has_value = (e->has & TD_ENTITY_VALUE) != 0;
    out->inventory = e->inventory;
    out->has_inventory = (e->has & TD_ENTITY_INVENTORY) != 0;
    out->margin = e->margin;
    out->has_margin = (e->has & TD_ENTITY_MARGIN) != 0;
    if (e->n_attrs <= 0) {
        return;
    }
    td_reco_attr_t *attrs = arena_keep(a, td_xcalloc((size_t)e->n_attrs, sizeof(*attrs)));
    int n = 0;
    for (int i = 0; i < e->n_attrs; i++) {
        const td_attr_t *at = &e->attrs[i];
        td_reco_attr_t *o = &attrs[n];
        o->name = at->name;
        if (at->type == TD_ATTR_STRING) {
            const char **v = arena_keep(a, td_xmalloc(sizeof(*v)));
            v[0] = at->str;
            o->values = v;
            o->n_values = 1;
        } else if (at->type == TD_ATTR_NUMBER) {
            char *s = arena_keep(a, td_xmalloc(32));
            const char **v = arena_keep(a, td_xmalloc(sizeof(*v)));
            snprintf(s, 32, "%.17g", at->num);
            v[0] = s;
            o->values = v;
            o->n_values = 1;
        } else if (at->type == TD_ATTR_LIST) {
            o->values = (const char *const *)at->list;
            o->n_values = at->n_list;
        } else {
            continue;
        }
        n++;
    }
    out->attrs = attrs;
    out->n_attrs = n;
}

typedef struct catalog_ctx {
    td_catalog_t *cat;
    int64_t now_ms;
    arena_t arena;
} catalog_ctx_t;

static bool cat_get(void *ctx, const char *id, td_reco_item_t *out)
{
    catalog_ctx_t *c = ctx;
    const td_entity_t *e = td_catalog_get(c->cat, id);

    if (e == NULL) {
        return false;
    }
    if (td_entity_expired(e, c->now_ms, td_catalog_expiry_ms(c->cat))) {
        td_entity_unref(e);
        return false;
    }
    arena_ref(&c->arena, e);
    entity_to_item(e, &c->arena, out);
    return true;
}

typedef struct each_ctx {
    td_reco_each_fn fn;
    void *fctx;
} each_ctx_t;

static bool each_visit(void *ctx, const td_entity_t *e)
{
    each_ctx_t *x = ctx;
    return x->fn(x->fctx, e->id);
}

static void cat_each_in_category(void *ctx, const char *category, td_reco_each_fn fn, void *fctx)
{
    catalog_ctx_t *c = ctx;
    each_ctx_t x = { fn, fctx };
    td_catalog_foreach_in_category(c->cat, category, c->now_ms, each_visit, &x);
}

/* ------------------------------------------------------------------------
 * Content similarity kept in step with the catalog
 */

typedef struct changed {
    const td_entity_t **v;
    size_t n, cap;
    td_strmap_t *seen;
} changed_t;

/* What identifies one version of an entity: the index replaces the packed
 * entity on every write, so its address with its update time changes. */
static int64_t entity_stamp(const td_entity_t *e)
{
    return (int64_t)((uint64_t)(uintptr_t)e ^ ((uint64_t)e->updated_ms * 0x9E3779B97F4A7C15ULL));
}

static bool collect_changed(void *ctx, const td_entity_t *e)
{
    changed_t *c = ctx;
    size_t len = strlen(e->id);
    int64_t stamp = entity_stamp(e), was;

    if (td_strmap_get(c->seen, e->id, len, &was) && was == stamp) {
        return true;
    }
    td_strmap_put(c->seen, e->id, len, stamp);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->v = td_xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = td_entity_ref(e);
    return true;
}

/* Puts the entities changed since the last sync into the content index when
 * the catalog's version moved. Cheap when nothing changed (one atomic read);
 * otherwise one walk of the catalog, and only changed entities are
 * re-indexed. They are collected under the catalog's read lock and put after
 * it is released, so the two indexes' locks are never nested. */
static void sync_content(td_recs_t *r)
{
    td_catalog_t *cat = r->app->catalog;
    changed_t ch = { .seen = &r->content_seen };
    uint64_t v;

    if (cat == NULL) {
        return;
    }
    v = td_catalog_version(cat);
    if (__atomic_load_n(&r->content_version, __ATOMIC_ACQUIRE) == v &&
        __atomic_load_n(&r->content_loaded, __ATOMIC_ACQUIRE)) {
        return;
    }
    pthread_mutex_lock(&r->content_mu);
    v = td_catalog_version(cat);
    if (!r->content_loaded || v != r->content_version) {
        td_catalog_foreach(cat, 0, collect_changed, &ch);
        for (size_t i = 0; i < ch.n; i++) {
            arena_t a = { 0 };
            td_reco_item_t item;
            entity_to_item(ch.v[i], &a, &item);
            td_reco_content_put(r->content, &item);
            arena_release(&a);
            td_entity_unref(ch.v[i]);
        }
        free(ch.v);
        __atomic_store_n(&r->content_version, v, __ATOMIC_RELEASE);
        __atomic_store_n(&r->content_loaded, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&r->content_mu);
}

/* ------------------------------------------------------------------------
 * Behaviour from the ingest writer
 */

static bool action_of(const char *type, td_reco_action_t *out)
{
    if (strcmp(type, "product_view") == 0) {
        *out = TD_RECO_VIEW;
    } else if (strcmp(type, "cart_add") == 0) {
        *out = TD_RECO_CART;
    } else if (strcmp(type, "purchase") == 0) {
        *out = TD_RECO_BUY;
    } else {
        return false;
    }
    return true;
}

static void listener(void *ctx, const td_event_t *const *events, const int64_t *profile_ids, int n)
{
    td_recs_t *r = ctx;

    for (int i = 0; i < n; i++) {
        const td_event_t *ev = events[i];
        td_reco_action_t action;
        char visitor[32];

        if (!action_of(ev->type, &action)) {
            continue;
        }
        snprintf(visitor, sizeof(visitor), "%" PRId64, profile_ids[i]);
        for (int k = 0; k < ev->n_items; k++) {
            td_reco_event_t re = {
                .visitor = visitor, .item = ev->items[k].id, .action = action, .ts_ms = ev->ts_ms
            };
            if (td_reco_engine_add(r->engine, &re) != TD_OK) {
                td_log(TD_LOG_DEBUG, "reco", "event not applied item_len=%zu",
                       strlen(ev->items[k].id));
            }
        }
    }
}

#define SCAN_BATCH 5000

/* Applies one stored event to m, or to the engine's current model when m
 * is NULL; returns the number of items applied. */
static int64_t feed_row(td_recs_t *r, td_reco_model_t *m, const td_store_scan_row_t *row)
{
    td_reco_action_t action;
    int64_t applied = 0;

    if (row->type == NULL || row->doc == NULL || !action_of(row->type, &action)) {
        return 0;
    }
    json_t *doc = json_loads(row->doc, 0, NULL);
    json_t *items = json_object_get(doc, "items"), *it;
    size_t k;
    char visitor[32];
    snprintf(visitor, sizeof(visitor), "%" PRId64, row->profile_id);
    json_array_foreach(items, k, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        td_reco_event_t re = {
            .visitor = visitor, .item = id, .action = action, .ts_ms = row->ts_ms, .seq = row->seq
        };
        if (id && (m ? td_reco_model_add(m, &re) : td_reco_engine_add(r->engine, &re)) == TD_OK) {
            applied++;
        }
    }
    json_decref(doc);
    return applied;
}

static bool follow_apply(void *ctx, const td_store_scan_row_t *row)
{
    td_reco_action_t action;

    if (row->type == NULL || !action_of(row->type, &action)) {
        return false;
    }
    (void)feed_row(ctx, NULL, row);
    return true;
}

/* Runs inside the transaction that stores ev: marks its seq as one the
 * listener feeds, so the follower does not feed it again. */
static int follow_mark_own(void *ctx, struct td_store_conn *conn, const td_event_t *ev,
                           int64_t profile_id, int64_t seq, int64_t received_ms)
{
    td_recs_t *r = ctx;
    td_reco_action_t action;

    (void)conn;
    (void)profile_id;
    (void)received_ms;
    if (action_of(ev->type, &action)) {
        td_recs__follow_mine(r->follow, seq);
    }
    return TD_OK;
}

/* Another node's events reach this model only through the database: follow
 * it when it is shared (PostgreSQL). SQLite has one writing process. */
static bool wants_follow(const td_recs_t *r)
{
    const td_app_t *app = r->app;
    return app->cfg != NULL && app->cfg->reco_follow_ms > 0 && app->ingest != NULL &&
           strcmp(td_store_backend(app->store), "postgres") == 0;
}

/* Nodes starting together rebuild one at a time: the store's rebuild lock,
 * held on c for the whole scan (on PostgreSQL it goes with the session, so a
 * node that dies mid-scan lets the next one in). There is no shared model
 * to hand over: each node builds its own from the same events, then
 * follows them. Waits as long as another node scans; true when held. */
static bool rebuild_lock(td_recs_t *r, td_store_conn_t *c)
{
    int64_t t0 = td_mono_us(), logged = 0;
    bool got = false;

    if (!td_store_reco_supported(r->app->store)) {
        return false;
    }
    for (;;) {
        if (td_store_reco_rebuild_lock(c, true, &got) != TD_OK) {
            td_log(TD_LOG_WARN, "reco", "rebuilding without the rebuild lock (store error)");
            return false;
        }
        if (got) {
            break;
        }
        if (td_mono_us() - logged > 10LL * 1000 * 1000) {
            logged = td_mono_us();
            td_log(TD_LOG_INFO, "reco", "waiting for another node's model rebuild");
        }
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (logged != 0) {
        td_log(TD_LOG_INFO, "reco", "rebuild lock taken waited_ms=%lld",
               (long long)((td_mono_us() - t0) / 1000));
    }
    return true;
}

/* Replays the stored events, in seq order, into the model. Runs before the
 * listener is registered and before requests are served, so every event is
 * applied exactly once. */
static int rebuild(td_recs_t *r)
{
    td_store_conn_t *c = td_store_acquire(r->app->store);
    bool locked = rebuild_lock(r, c);
    td_reco_model_t *m = td_reco_engine_acquire(r->engine);
    int64_t after = 0, total = 0, applied = 0, t0 = td_mono_us(), last_log = t0;
    int rc = TD_OK;

    for (;;) {
        td_store_scan_row_t *rows = NULL;
        int n = 0;
        if ((rc = td_store_events_scan(c, after, SCAN_BATCH, &rows, &n)) != TD_OK) {
            break;
        }
        for (int i = 0; i < n; i++) {
            after = rows[i].seq;
            total++;
            td_recs__follow_saw(r->follow, rows[i].seq);
            applied += feed_row(r, m, &rows[i]);
        }
        td_store_scan_rows_free(rows, n);
        if (td_mono_us() - last_log > 5 * 1000000) {
            last_log = td_mono_us();
            td_log(TD_LOG_INFO, "reco", "rebuilding events=%lld applied=%lld", (long long)total,
                   (long long)applied);
        }
        if (n < SCAN_BATCH) {
            break;
        }
    }
    td_reco_model_advance(m, td_clock_now_ms(r->app->clock));
    td_reco_model_unref(m);
    if (locked && td_store_reco_rebuild_lock(c, false, &locked) != TD_OK) {
        td_log(TD_LOG_WARN, "reco", "cannot give the rebuild lock back (it goes with the session)");
    }
    td_store_release(r->app->store, c);
    td_log(rc == TD_OK ? TD_LOG_INFO : TD_LOG_ERROR, "reco",
           "model built events=%lld applied=%lld ms=%lld%s", (long long)total, (long long)applied,
           (long long)((td_mono_us() - t0) / 1000), rc == TD_OK ? "" : " (store error)");
    return rc;
}

/* Moves the model's clock (expiring what left each window) and keeps the
 * content index current when no request asks. */
static void *maintenance(void *arg)
{
    td_recs_t *r = arg;

    pthread_mutex_lock(&r->stop_mu);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->stop_cv, &r->stop_mu, &ts);
        if (r->stop) {
            break;
        }
        pthread_mutex_unlock(&r->stop_mu);
        sync_content(r);
        td_reco_model_t *m = td_reco_engine_acquire(r->engine);
        td_reco_model_advance(m, td_clock_now_ms(r->app->clock));
        td_reco_model_unref(m);
        pthread_mutex_lock(&r->stop_mu);
    }
    pthread_mutex_unlock(&r->stop_mu);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Criteria and CUSTOM lists
 */

/* Sequence steps given as {"criteriaId": ...}; called with the lock held. */
static char *resolve_locked(void *ctx, const char *id)
{
    td_recs_t *r = ctx;
    json_t *t = json_object_get(r->criteria, id);
    return json_is_string(t) ? td_xstrdup(json_string_value(t)) : NULL;
}

static const td_reco_custom_t *custom_get_locked(void *ctx, const char *id)
{
    td_recs_t *r = ctx;
    for (int i = 0; i < r->n_customs; i++) {
        if (strcmp(r->customs[i].id, id) == 0) {
            return r->customs[i].lists;
        }
    }
    return NULL;
}

/* Writes a document through to the store (a store without the RECO domain
 * keeps it in memory only). */
static int persist(td_recs_t *r, const char *kind, const char *id, const char *body, bool del)
{
    td_store_t *st = r->app->store;
    int rc;

    if (st == NULL || !td_store_reco_supported(st)) {
        return TD_OK;
    }
    td_store_conn_t *c = td_store_acquire(st);
    rc = del ? td_store_reco_delete(c, kind, id)
             : td_store_reco_put(c, kind, id, body, td_clock_now_ms(r->app->clock));
    td_store_release(st, c);
    if (rc == TD_ENOTFOUND) {
        rc = TD_OK; /* deleting what only memory held */
    }
    return rc;
}

static int check_id(const char *id, td_err_t *err)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 250) {
        return td_err_set(err, TD_EINVAL, "/id", "a criteria id has 1 to 250 characters");
    }
    return TD_OK;
}

int td_recs_criteria_put(td_recs_t *r, const char *id, const char *json, size_t len, bool *created,
                         td_err_t *err)
{
    td_reco_criteria_t *c = NULL;
    json_t *doc;
    json_error_t jerr;
    int rc;

    if ((rc = check_id(id, err)) != TD_OK) {
        return rc;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return td_err_set_at(err, TD_EINVAL, "", jerr.line, jerr.column, "%s",
                             doc ? "a criteria is a JSON object" : jerr.text);
    }
    json_t *given = json_object_get(doc, "id");
    if (given && !(json_is_string(given) && strcmp(json_string_value(given), id) == 0)) {
        json_decref(doc);
        return td_err_set(err, TD_EINVAL, "/id", "the id in the body differs from the URL's");
    }
    json_object_set_new(doc, "id", json_string(id));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    pthread_rwlock_wrlock(&r->lock);
    rc = td_reco_criteria_parse(text, strlen(text), resolve_locked, r, &c, err);
    if (rc == TD_OK && (rc = persist(r, "criteria", id, text, false)) != TD_OK) {
        td_err_set(err, rc, "", "cannot store the criteria");
    }
    if (rc == TD_OK) {
        if (created) {
            *created = json_object_get(r->criteria, id) == NULL;
        }
        json_object_set_new(r->criteria, id, json_string(text));
        __atomic_add_fetch(&r->docs_gen, 1, __ATOMIC_RELEASE);
    }
    pthread_rwlock_unlock(&r->lock);
    td_reco_criteria_free(c);
    free(text);
    return rc;
}

json_t *td_recs_criteria_get(td_recs_t *r, const char *id)
{
    json_t *out = NULL;

    pthread_rwlock_rdlock(&r->lock);
    json_t *t = json_object_get(r->criteria, id);
    if (json_is_string(t)) {
        out = json_loads(json_string_value(t), 0, NULL);
    }
    pthread_rwlock_unlock(&r->lock);
    return out;
}

json_t *td_recs_criteria_list(td_recs_t *r)
{
    json_t *arr = json_array();
    const char *key;
    json_t *t;

    pthread_rwlock_rdlock(&r->lock);
    json_object_foreach(r->criteria, key, t)
    {
        json_t *doc = json_loads(json_string_value(t), 0, NULL);
        if (doc) {
            json_array_append_new(arr, doc);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return arr;
}

int td_recs_criteria_delete(td_recs_t *r, const char *id)
{
    int rc;

    pthread_rwlock_wrlock(&r->lock);
    rc = json_object_get(r->criteria, id) ? persist(r, "criteria", id, NULL, true) : TD_ENOTFOUND;
    if (rc == TD_OK) {
        json_object_del(r->criteria, id);
        __atomic_add_fetch(&r->docs_gen, 1, __ATOMIC_RELEASE);
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int td_recs_custom_put(td_recs_t *r, const char *id, const char *csv, size_t len, int *n_keys,
                       td_err_t *err)
{
    td_reco_custom_t *lists = NULL;
    int rc;

    if ((rc = check_id(id, err)) != TD_OK) {
        return rc;
    }
    if ((rc = td_reco_custom_parse(csv, len, &lists, err)) != TD_OK) {
        return rc;
    }
    *n_keys = td_reco_custom_count(lists);
    char *text = td_xstrndup(csv, len);
    rc = persist(r, "custom", id, text, false);
    free(text);
    if (rc != TD_OK) {
        td_reco_custom_free(lists);
        return td_err_set(err, rc, "", "cannot store the CUSTOM lists");
    }
    pthread_rwlock_wrlock(&r->lock);
    for (int i = 0; i < r->n_customs; i++) {
        if (strcmp(r->customs[i].id, id) == 0) {
            td_reco_custom_free(r->customs[i].lists);
            r->customs[i].lists = lists;
            lists = NULL;
            break;
        }
    }
    if (lists) {
        r->customs = td_xrealloc(r->customs, (size_t)(r->n_customs + 1) * sizeof(*r->customs));
        r->customs[r->n_customs].id = td_xstrdup(id);
        r->customs[r->n_customs].lists = lists;
        r->n_customs++;
    }
    __atomic_add_fetch(&r->docs_gen, 1, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&r->lock);
    return TD_OK;
}

static int request_criteria(td_recs_t *r, const json_t *v, td_reco_criteria_t **out, td_err_t *err);

/* Designs: what a Delivery API mbox or an Edge decision scope shows. */
int td_recs_design_put(td_recs_t *r, const char *name, const char *json, size_t len, bool *created,
                       td_err_t *err)
{
    json_error_t jerr;
    json_t *doc, *v;
    const char *key;
    int rc = TD_OK;

    if (name == NULL || *name == '\0' || strlen(name) > 250) {
        return td_err_set(err, TD_EINVAL, "", "a design name has 1 to 250 characters");
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return td_err_set_at(err, TD_EINVAL, "", jerr.line, jerr.column, "%s",
                             doc ? "a design is a JSON object" : jerr.text);
    }
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "criteria") != 0 && strcmp(key, "count") != 0 && strcmp(key, "html") != 0 &&
            strcmp(key, "name") != 0) {
            rc =
                td_err_set(err, TD_EINVAL, "", "unknown field \"%s\" (criteria, count, html)", key);
            goto done;
        }
    }
    v = json_object_get(doc, "count");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)) {
        rc = td_err_set(err, TD_EINVAL, "/count", "count is an integer from 1 to 1000");
        goto done;
    }
    v = json_object_get(doc, "html");
    if (v && !json_is_boolean(v)) {
        rc = td_err_set(err, TD_EINVAL, "/html", "html is true or false");
        goto done;
    }
    json_object_set_new(doc, "name", json_string(name));
    pthread_rwlock_wrlock(&r->lock);
    td_reco_criteria_t *c = NULL;
    rc = request_criteria(r, json_object_get(doc, "criteria"), &c, err);
    td_reco_criteria_free(c);
    if (rc == TD_ENOTFOUND) {
        rc = TD_EINVAL; /* a design must name an existing criteria */
    }
    char *text = rc == TD_OK ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (rc == TD_OK && (rc = persist(r, "design", name, text, false)) != TD_OK) {
        td_err_set(err, rc, "", "cannot store the design");
    }
    if (rc == TD_OK) {
        *created = json_object_get(r->designs, name) == NULL;
        json_object_set(r->designs, name, doc);
        __atomic_add_fetch(&r->docs_gen, 1, __ATOMIC_RELEASE);
    }
    free(text);
    pthread_rwlock_unlock(&r->lock);
done:
    json_decref(doc);
    return rc;
}

json_t *td_recs_design_get(td_recs_t *r, const char *name, bool or_criteria)
{
    json_t *out = NULL;

    pthread_rwlock_rdlock(&r->lock);
    json_t *d = json_object_get(r->designs, name);
    if (d) {
        out = json_deep_copy(d);
    } else if (or_criteria && json_object_get(r->criteria, name)) {
        out = json_pack("{s:s, s:s, s:i}", "name", name, "criteria", name, "count", 10);
    }
    pthread_rwlock_unlock(&r->lock);
    return out;
}

json_t *td_recs_designs_list(td_recs_t *r)
{
    json_t *arr = json_array();
    const char *key;
    json_t *d;

    pthread_rwlock_rdlock(&r->lock);
    json_object_foreach(r->designs, key, d)
    {
        json_array_append_new(arr, json_deep_copy(d));
    }
    pthread_rwlock_unlock(&r->lock);
    return arr;
}

int td_recs_design_delete(td_recs_t *r, const char *name)
{
    int rc;

    pthread_rwlock_wrlock(&r->lock);
    rc = json_object_get(r->designs, name) ? persist(r, "design", name, NULL, true) : TD_ENOTFOUND;
    if (rc == TD_OK) {
        json_object_del(r->designs, name);
        __atomic_add_fetch(&r->docs_gen, 1, __ATOMIC_RELEASE);
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

/* The stored documents of every kind, parsed: installed at start-up and,
 * with several nodes, again whenever the store's change counter moves. */
typedef struct docs {
    json_t *criteria;
    json_t *designs;
    custom_entry_t *customs;
    int n_customs;
} docs_t;

static void docs_free(docs_t *d)
{
    json_decref(d->criteria);
    json_decref(d->designs);
    for (int i = 0; i < d->n_customs; i++) {
        free(d->customs[i].id);
        td_reco_custom_free(d->customs[i].lists);
    }
    free(d->customs);
    memset(d, 0, sizeof(*d));
}

static int docs_read(td_store_conn_t *c, docs_t *d)
{
    td_store_reco_doc_t *rows = NULL;
    int n = 0, rc;

    *d = (docs_t){ .criteria = json_object(), .designs = json_object() };
    if ((rc = td_store_reco_list(c, "criteria", &rows, &n)) == TD_OK) {
        for (int i = 0; i < n; i++) {
            json_object_set_new(d->criteria, rows[i].id, json_string(rows[i].body));
        }
    }
    td_store_reco_docs_free(rows, n);
    if (rc == TD_OK && (rc = td_store_reco_list(c, "design", &rows, &n)) == TD_OK) {
        for (int i = 0; i < n; i++) {
            json_t *doc = json_loads(rows[i].body, 0, NULL);
            if (json_is_object(doc)) {
                json_object_set(d->designs, rows[i].id, doc);
            }
            json_decref(doc);
        }
        td_store_reco_docs_free(rows, n);
    }
    if (rc == TD_OK && (rc = td_store_reco_list(c, "custom", &rows, &n)) == TD_OK) {
        for (int i = 0; i < n; i++) {
            td_reco_custom_t *lists = NULL;
            td_err_t err = { 0 };
            if (td_reco_custom_parse(rows[i].body, strlen(rows[i].body), &lists, &err) != TD_OK) {
                td_log(TD_LOG_WARN, "reco", "stored CUSTOM lists refused line=%d: %s", err.line,
                       err.message);
                continue;
            }
            d->customs = td_xrealloc(d->customs, (size_t)(d->n_customs + 1) * sizeof(*d->customs));
            d->customs[d->n_customs].id = td_xstrdup(rows[i].id);
            d->customs[d->n_customs].lists = lists;
            d->n_customs++;
        }
        td_store_reco_docs_free(rows, n);
    }
    if (rc != TD_OK) {
        docs_free(d);
    }
    return rc;
}

/* Puts d in place of what r holds (write lock held, or no other thread
 * yet); d gets the old documents, for docs_free. */
static void docs_swap(td_recs_t *r, docs_t *d)
{
    docs_t old = { r->criteria, r->designs, r->customs, r->n_customs };

    r->criteria = d->criteria;
    r->designs = d->designs;
    r->customs = d->customs;
    r->n_customs = d->n_customs;
    *d = old;
}

/* The stored criteria, designs and CUSTOM lists, at start-up. */
static void load_docs(td_recs_t *r)
{
    td_store_t *st = r->app->store;
    docs_t d;

    if (st == NULL || !td_store_reco_supported(st)) {
        return;
    }
    td_store_conn_t *c = td_store_acquire(st);
    /* read before the documents: a write in between is read again later */
    if (td_store_reco_rev(c, &r->docs_rev) != TD_OK) {
        r->docs_rev = -1;
    }
    if (docs_read(c, &d) == TD_OK) {
        docs_swap(r, &d);
        docs_free(&d);
    } else {
        r->docs_rev = -1;
        td_log(TD_LOG_WARN, "reco", "cannot read the stored criteria and designs");
    }
    td_store_release(st, c);
    td_log(TD_LOG_INFO, "reco", "loaded criteria=%zu designs=%zu custom=%d",
           json_object_size(r->criteria), json_object_size(r->designs), r->n_customs);
}

/* After every poll of the follower: documents another node wrote or
 * deleted. Any write moves the counter, this node's own too (reloading what
 * memory holds already). The store is read without the lock, so requests
 * never wait for it; a write of this node's own in the meantime makes the
 * reading possibly stale, and it is not installed (the counter moved, so
 * the next poll reads again). */
static void docs_poll(void *ctx, td_store_conn_t *c)
{
    td_recs_t *r = ctx;
    uint64_t gen = __atomic_load_n(&r->docs_gen, __ATOMIC_ACQUIRE);
    int64_t rev;
    docs_t d;
    bool installed;

    if (td_store_reco_rev(c, &rev) != TD_OK || rev == r->docs_rev) {
        return;
    }
    if (docs_read(c, &d) != TD_OK) {
        return;
    }
    pthread_rwlock_wrlock(&r->lock);
    installed = __atomic_load_n(&r->docs_gen, __ATOMIC_ACQUIRE) == gen;
    if (installed) {
        docs_swap(r, &d);
        r->docs_rev = rev;
    }
    pthread_rwlock_unlock(&r->lock);
    docs_free(&d);
    if (installed) {
        td_metrics_add("tandem_reco_docs_reloads_total", "", 1);
        td_log(TD_LOG_DEBUG, "reco", "documents reloaded rev=%lld", (long long)rev);
    }
}

/* ------------------------------------------------------------------------
 * Requests
 */

typedef struct strs {
    const char **v;
    int n;
} strs_t;

/* A JSON array of strings (or one string) into borrowed pointers. */
static int get_strs(const json_t *v, const char *path, strs_t *out, td_err_t *err)
{
    size_t i;
    json_t *x;

    memset(out, 0, sizeof(*out));
    if (v == NULL || json_is_null(v)) {
        return TD_OK;
    }
    if (json_is_string(v)) {
        out->v = td_xmalloc(sizeof(*out->v));
        out->v[out->n++] = json_string_value(v);
        return TD_OK;
    }
    if (!json_is_array(v)) {
        return td_err_set(err, TD_EINVAL, path, "expected an array of item ids");
    }
    if (json_array_size(v) > MAX_REQUEST_LIST) {
        return td_err_set(err, TD_ETOOBIG, path, "at most %d ids", MAX_REQUEST_LIST);
    }
    out->v = td_xcalloc(json_array_size(v) + 1, sizeof(*out->v));
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x)) {
            free(out->v);
            out->v = NULL;
            return td_err_set(err, TD_EINVAL, path, "expected an array of item ids (strings)");
        }
        out->v[out->n++] = json_string_value(x);
    }
    return TD_OK;
}

/* The entity as a flat object: id, name, categories, every attribute. */
static json_t *item_json(td_catalog_t *cat, const td_reco_result_item_t *it, int64_t now_ms)
{
    json_t *o = NULL;
    const td_entity_t *e = cat ? td_catalog_get(cat, it->id) : NULL;

    if (e) {
        td_buf_t b;
        td_buf_init(&b);
        td_entity_to_json(e, now_ms, 0, &b);
        o = json_loadb(b.data, b.len, 0, NULL);
        td_buf_release(&b);
        td_entity_unref(e);
    }
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_pack("{s:s}", "id", it->id);
    }
    json_t *attrs = json_object_get(o, "attributes");
    if (json_is_object(attrs)) {
        json_incref(attrs);
        json_object_del(o, "attributes");
        json_object_update_missing(o, attrs);
        json_decref(attrs);
    }
    json_object_set_new(o, "score", json_real(it->score));
    json_object_set_new(o, "reason", json_string(it->reason ? it->reason : ""));
    if (it->quantity > 0) {
        json_object_set_new(o, "quantity", json_integer(it->quantity));
    }
    return o;
}

/* The profile's history, cart and identity for ranking. */
typedef struct profile_view {
    td_store_profile_t p;
    bool found;
    char visitor[32];
    td_reco_hist_t *hist;
    int n_hist;
    td_reco_cart_line_t *cart;
    int n_cart;
    json_t *purchased; /* parsed items_json documents, kept for their strings */
    /* profile attributes for PROFILEATTRIBUTE keys and profile rules: the
     * stored ones (update_profile), then the request's "profile" object,
     * which wins; values are text (a JSON list is joined with commas) */
    td_reco_kv_t *attrs;
    int n_attrs;
    char **attr_text;
} profile_view_t;

static void profile_view_release(profile_view_t *pv)
{
    if (pv->found) {
        td_store_profile_release(&pv->p);
    }
    free(pv->hist);
    free(pv->cart);
    json_decref(pv->purchased);
    for (int i = 0; i < pv->n_attrs; i++) {
        free(pv->attr_text[2 * i]);
        free(pv->attr_text[2 * i + 1]);
    }
    free(pv->attrs);
    free(pv->attr_text);
}

/* A JSON value as the text ranking compares: strings as they are, numbers
 * and booleans printed, lists joined with commas; NULL for objects. */
static char *attr_value_text(const json_t *v)
{
    if (json_is_string(v)) {
        return td_xstrdup(json_string_value(v));
    }
    if (json_is_array(v)) {
        td_buf_t b = TD_BUF_INIT;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char *t = json_is_array(e) || json_is_object(e) ? NULL : attr_value_text(e);
            if (t) {
                td_buf_adds(&b, b.len ? "," : "");
                td_buf_adds(&b, t);
                free(t);
            }
        }
        return td_buf_detach(&b);
    }
    if (json_is_number(v) || json_is_boolean(v)) {
        return json_dumps(v, JSON_ENCODE_ANY);
    }
    return NULL;
}

static void attr_put(profile_view_t *pv, const char *name, const json_t *value)
{
    char *text = attr_value_text(value);

    if (text == NULL) {
        return;
    }
    for (int i = 0; i < pv->n_attrs; i++) {
        if (strcmp(pv->attr_text[2 * i], name) == 0) {
            free(pv->attr_text[2 * i + 1]);
            pv->attr_text[2 * i + 1] = text;
            pv->attrs[i].value = text;
            return;
        }
    }
    pv->attr_text = td_xrealloc(pv->attr_text, sizeof(char *) * (size_t)(2 * pv->n_attrs + 2));
    pv->attrs = td_xrealloc(pv->attrs, sizeof(td_reco_kv_t) * (size_t)(pv->n_attrs + 1));
    pv->attr_text[2 * pv->n_attrs] = td_xstrdup(name);
    pv->attr_text[2 * pv->n_attrs + 1] = text;
    pv->attrs[pv->n_attrs] = (td_reco_kv_t){ pv->attr_text[2 * pv->n_attrs], text };
    pv->n_attrs++;
}

/* Stored attributes of the profile, then the request's "profile" object. */
static int load_profile_attributes(td_recs_t *r, const json_t *req, profile_view_t *pv,
                                   td_err_t *err)
{
    const json_t *given = json_object_get(req, "profile");

    if (given && !json_is_object(given)) {
        return td_err_set(err, TD_EINVAL, "/profile", "expected an object of attributes");
    }
    if (pv->found) {
        td_store_attr_t *rows = NULL;
        int n = 0;
        td_store_conn_t *c = td_store_acquire(r->app->store);
        int rc = td_store_profile_attrs_get(c, pv->p.id, &rows, &n);
        td_store_release(r->app->store, c);
        if (rc == TD_OK) {
            for (int i = 0; i < n; i++) {
                json_t *v = rows[i].value ? json_loads(rows[i].value, JSON_DECODE_ANY, NULL) : NULL;
                if (v) {
                    attr_put(pv, rows[i].name, v);
                }
                json_decref(v);
            }
            td_store_attrs_free(rows, n);
        } else if (rc != TD_ENOTFOUND && rc != TD_EINVAL) {
            return td_err_set(err, rc, "", "cannot read the profile's attributes");
        }
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)given, name, v)
    {
        attr_put(pv, name, v);
    }
    return TD_OK;
}

static int load_profile(td_recs_t *r, const json_t *req, profile_view_t *pv, td_err_t *err)
{
    static const char *const fields[][2] = { { "ecid", "ecid" },
                                             { "email", "email" },
                                             { "customer_id", "customer" } };
    const char *ns = NULL, *id = NULL;
    int rc;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && !id; i++) {
        json_t *v = json_object_get(req, fields[i][0]);
        if (v && !json_is_string(v)) {
            char path[32];
            snprintf(path, sizeof(path), "/%s", fields[i][0]);
            return td_err_set(err, TD_EINVAL, path, "expected a string");
        }
        if (v) {
            ns = fields[i][1];
            id = json_string_value(v);
        }
    }
    if (id == NULL) {
        return TD_OK;
    }
    td_store_conn_t *c = td_store_acquire(r->app->store);
    rc = td_profile_lookup(c, ns, id, &pv->p);
    td_store_release(r->app->store, c);
    if (rc == TD_ENOTFOUND) {
        return TD_OK; /* an unknown visitor: anonymous recommendations */
    }
    if (rc != TD_OK) {
        return td_err_set(err, rc, "", "cannot read the profile");
    }
    pv->found = true;
    snprintf(pv->visitor, sizeof(pv->visitor), "%" PRId64, pv->p.id);
    pv->purchased = json_array();
    size_t cap = (size_t)pv->p.n_viewed + (size_t)pv->p.n_cart;
    for (int i = 0; i < pv->p.n_purchases; i++) {
        json_t *items = json_loads(
            pv->p.purchases[i].items_json ? pv->p.purchases[i].items_json : "[]", 0, NULL);
        if (json_is_array(items)) {
            cap += json_array_size(items);
            json_array_append(pv->purchased, items);
        }
        json_decref(items);
    }
    pv->hist = td_xcalloc(cap + 1, sizeof(*pv->hist));
    pv->cart = td_xcalloc((size_t)pv->p.n_cart + 1, sizeof(*pv->cart));
    for (int i = 0; i < pv->p.n_viewed; i++) {
        pv->hist[pv->n_hist++] =
            (td_reco_hist_t){ pv->p.viewed[i].id, TD_RECO_VIEW, pv->p.viewed[i].ts_ms };
    }
    for (int i = 0; i < pv->p.n_cart; i++) {
        pv->hist[pv->n_hist++] =
            (td_reco_hist_t){ pv->p.cart[i].id, TD_RECO_CART, pv->p.cart[i].ts_ms };
        pv->cart[pv->n_cart++] = (td_reco_cart_line_t){ pv->p.cart[i].id, pv->p.cart[i].quantity };
    }
    size_t i, k;
    json_t *items, *it;
    json_array_foreach(pv->purchased, i, items)
    {
        int64_t ts = pv->p.purchases[i < (size_t)pv->p.n_purchases ? i : 0].ts_ms;
        json_array_foreach(items, k, it)
        {
            const char *iid = json_string_value(json_object_get(it, "id"));
            if (iid) {
                pv->hist[pv->n_hist++] = (td_reco_hist_t){ iid, TD_RECO_BUY, ts };
            }
        }
    }
    return TD_OK;
}

/* Parses the criteria a request names (stored id or inline object); the
 * caller holds the read lock. */
static int request_criteria(td_recs_t *r, const json_t *v, td_reco_criteria_t **out, td_err_t *err)
{
    char *text;
    int rc;

    if (json_is_string(v)) {
        text = resolve_locked(r, json_string_value(v));
        if (text == NULL) {
            return td_err_set(err, TD_ENOTFOUND, "/criteria", "no criteria with id \"%s\"",
                              json_string_value(v));
        }
    } else if (json_is_object(v)) {
        text = json_dumps(v, JSON_COMPACT);
    } else {
        return td_err_set(err, TD_EINVAL, "/criteria",
                          "expected a criteria id or an inline criteria object");
    }
    rc = td_reco_criteria_parse(text, strlen(text), resolve_locked, r, out, err);
    if (rc == TD_EINVAL && json_is_object(v)) {
        char path[sizeof(err->path) + 16];
        int n = snprintf(path, sizeof(path), "/criteria%s", err->path);
        size_t k = n < 0 ? 0 : (size_t)n < sizeof(err->path) ? (size_t)n : sizeof(err->path) - 1;
        memcpy(err->path, path, k);
        err->path[k] = '\0';
    }
    free(text);
    return rc;
}

/* with_profile: read the profile of the request's identity from the store
 * (the HTTP API); the journey engine passes profile_id instead, since it
 * runs inside a write transaction. */
static int recommend(td_recs_t *r, const json_t *req, bool with_profile, json_t **out,
                     td_err_t *err)
{
    profile_view_t pv = { 0 };
    strs_t cart = { 0 }, exclude = { 0 };
    td_reco_kv_t *params = NULL;
    int n_params = 0;
    td_reco_criteria_t *crit = NULL;
    td_reco_result_t res = { 0 };
    catalog_ctx_t cctx = { .cat = r->app->catalog, .now_ms = td_clock_now_ms(r->app->clock) };
    td_reco_catalog_t catalog = { .ctx = &cctx,
                                  .get = cat_get,
                                  .each_in_category = cat_each_in_category };
    json_t *v;
    int rc;
    int64_t count = 10;
    bool locked = false;
    td_reco_model_t *model = NULL;
    char visitor[32] = "";

    if (!json_is_object(req)) {
        return td_err_set(err, TD_EINVAL, "", "a recommendation request is a JSON object");
    }
    if ((v = json_object_get(req, "count")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000) {
            return td_err_set(err, TD_EINVAL, "/count", "count is an integer from 1 to 1000");
        }
        count = json_integer_value(v);
    }
    const json_t *key = json_object_get(req, "key");
    if (key && !json_is_string(key) && !json_is_null(key)) {
        return td_err_set(err, TD_EINVAL, "/key", "key is an entity id (a string)");
    }
    const json_t *category = json_object_get(req, "category");
    if (category && !json_is_string(category) && !json_is_null(category)) {
        return td_err_set(err, TD_EINVAL, "/category", "category is a string");
    }
    if ((rc = get_strs(json_object_get(req, "cart"), "/cart", &cart, err)) != TD_OK ||
        (rc = get_strs(json_object_get(req, "exclude"), "/exclude", &exclude, err)) != TD_OK) {
        goto done;
    }
    json_t *pj = json_object_get(req, "params");
    if (pj && !json_is_object(pj) && !json_is_null(pj)) {
        rc = td_err_set(err, TD_EINVAL, "/params", "params is an object of strings");
        goto done;
    }
    if (json_object_size(pj) > MAX_REQUEST_LIST) {
        rc = td_err_set(err, TD_ETOOBIG, "/params", "at most %d params", MAX_REQUEST_LIST);
        goto done;
    }
    if (json_is_object(pj)) {
        const char *pk;
        json_t *pv_;
        params = td_xcalloc(json_object_size(pj) + 1, sizeof(*params));
        json_object_foreach(pj, pk, pv_)
        {
            if (!json_is_string(pv_)) {
                rc = td_err_set(err, TD_EINVAL, "/params", "param \"%s\" is not a string", pk);
                goto done;
            }
            params[n_params++] = (td_reco_kv_t){ pk, json_string_value(pv_) };
        }
    }
    if (with_profile && (rc = load_profile(r, req, &pv, err)) != TD_OK) {
        goto done;
    }
    if ((rc = load_profile_attributes(r, req, &pv, err)) != TD_OK) {
        goto done;
    }
    if (pv.found) {
        snprintf(visitor, sizeof(visitor), "%s", pv.visitor);
    } else if (json_is_integer(v = json_object_get(req, "profile_id"))) {
        snprintf(visitor, sizeof(visitor), "%" PRId64, (int64_t)json_integer_value(v));
    }
    sync_content(r);

    td_reco_cart_line_t *lines = NULL;
    int n_lines = 0;
    if (cart.n > 0) {
        lines = td_xcalloc((size_t)cart.n, sizeof(*lines));
        for (int i = 0; i < cart.n; i++) {
            lines[n_lines++] = (td_reco_cart_line_t){ cart.v[i], 1 };
        }
    }
    td_reco_request_t rq = {
        .count = (int)count,
        .now_ms = cctx.now_ms,
        .visitor = visitor[0] ? visitor : NULL,
        .key_item = json_string_value(key),
        .key_category = json_string_value(category),
        .cart = lines ? lines : pv.cart,
        .n_cart = lines ? n_lines : pv.n_cart,
        .history = pv.found ? pv.hist : NULL,
        .n_history = pv.found ? pv.n_hist : 0,
        .profile = pv.attrs,
        .n_profile = pv.n_attrs,
        .params = params,
        .n_params = n_params,
        .exclude_ids = exclude.v,
        .n_exclude = exclude.n,
    };
    pthread_rwlock_rdlock(&r->lock);
    locked = true;
    if ((rc = request_criteria(r, json_object_get(req, "criteria"), &crit, err)) != TD_OK) {
        free(lines);
        goto done;
    }
    model = td_reco_engine_acquire(r->engine);
    td_reco_env_t env = { .model = model,
                          .content = r->content,
                          .catalog = &catalog,
                          .custom = { custom_get_locked, r } };
    rc = td_reco_rank(&env, crit, &rq, &res, err);
    free(lines);
    if (rc != TD_OK) {
        goto done;
    }
    json_t *items = json_array();
    for (int i = 0; i < res.n; i++) {
        json_array_append_new(items, item_json(r->app->catalog, &res.items[i], cctx.now_ms));
    }
    *out = json_pack("{s:o, s:s?, s:b, s:b, s:s, s:i, s:i}", "items", items, "criteria", crit->id,
                     "backup", res.n_from_backup > 0, "rendered", res.rendered, "key", res.key,
                     "from_criteria", res.n_from_criteria, "from_backup", res.n_from_backup);
    if (crit->id == NULL) {
        json_object_set_new(*out, "criteria", json_null());
    }
done:
    if (locked) {
        pthread_rwlock_unlock(&r->lock);
    }
    td_reco_result_release(&res);
    td_reco_model_unref(model);
    td_reco_criteria_free(crit);
    arena_release(&cctx.arena);
    profile_view_release(&pv);
    free(params);
    free(cart.v);
    free(exclude.v);
    return rc;
}

int td_recs_recommend(td_recs_t *r, const json_t *req, json_t **out, td_err_t *err)
{
    return recommend(r, req, true, out, err);
}

/* The journey engine's recommend step: a stored criteria id or an inline
 * criteria; unknown ids fall back to its built-ins (abandoned_cart,
 * recently_viewed). */
static int journey_recommend(void *ctx, const json_t *criteria, const json_t *request,
                             json_t **result, td_err_t *err)
{
    td_recs_t *r = ctx;
    json_t *req;
    int rc;

    if (json_is_string(criteria)) {
        pthread_rwlock_rdlock(&r->lock);
        bool known = json_object_get(r->criteria, json_string_value(criteria)) != NULL;
        pthread_rwlock_unlock(&r->lock);
        if (!known) {
            return TD_ENOTFOUND;
        }
    }
    req = json_is_object(request) ? json_deep_copy(request) : json_object();
    json_object_set(req, "criteria", (json_t *)criteria);
    /* the step's rendered fields may be empty strings or nulls */
    json_t *key = json_object_get(req, "key");
    if (key && (!json_is_string(key) || json_string_length(key) == 0)) {
        json_object_del(req, "key");
    }
    rc = recommend(r, req, false, result, err);
    json_decref(req);
    return rc;
}

/* The journey engine's cart and recently viewed lists hold what the events
 * said; an email wants the picture, the page and the rest from the catalog.
 * The event's unit price stays the item's value: it is what the shopper saw. */
static void journey_details(void *ctx, json_t *items)
{
    td_recs_t *r = ctx;
    int64_t now = td_clock_now_ms(r->app->clock);
    size_t i;
    json_t *it;

    json_array_foreach(items, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        json_t *price = json_object_get(it, "price");
        if (id == NULL || !json_is_object(it)) {
            continue;
        }
        td_reco_result_item_t ri = { .id = (char *)id };
        json_t *full = item_json(r->app->catalog, &ri, now);
        json_object_del(full, "score");
        json_object_del(full, "reason");
        if (json_is_number(price)) {
            json_object_set(it, "value", price);
        }
        json_object_update_missing(it, full);
        json_decref(full);
    }
}

/* ------------------------------------------------------------------------
 * Open / close
 */

int td_recs_open(td_app_t *app, td_recs_t **out)
{
    td_recs_t *r = td_xcalloc(1, sizeof(*r));
    td_err_t err = { 0 };
    td_reco_model_t *model;
    bool created;

    r->app = app;
    model = td_reco_model_new(NULL, &err);
    if (model == NULL) {
        free(r);
        td_log(TD_LOG_ERROR, "reco", "cannot create the model: %s", err.message);
        return TD_EINVAL;
    }
    r->engine = td_reco_engine_new(model);
    r->content = td_reco_content_new();
    r->criteria = json_object();
    r->designs = json_object();
    pthread_mutex_init(&r->content_mu, NULL);
    pthread_rwlock_init(&r->lock, NULL);
    pthread_mutex_init(&r->stop_mu, NULL);
    pthread_cond_init(&r->stop_cv, NULL);
    load_docs(r);
    for (size_t i = 0; i < TD_ARRAY_LEN(seeds); i++) {
        if (json_object_get(r->criteria, seeds[i].id) == NULL &&
            td_recs_criteria_put(r, seeds[i].id, seeds[i].doc, strlen(seeds[i].doc), &created,
                                 &err) != TD_OK) {
            td_log(TD_LOG_WARN, "reco", "seed criteria=%s refused: %s", seeds[i].id, err.message);
        }
    }
    sync_content(r);
    td_log(TD_LOG_INFO, "reco", "content items=%lld", (long long)td_reco_content_count(r->content));
    if (wants_follow(r)) {
        r->follow = td_recs__follow_new(app->store, follow_apply, r);
        td_recs__follow_on_poll(r->follow, docs_poll);
        td_metrics_describe("tandem_reco_docs_reloads_total", "counter",
                            "times the criteria, designs and CUSTOM lists were read again after "
                            "a write (by any node)");
    }
    if (rebuild(r) != TD_OK) {
        td_log(TD_LOG_WARN, "reco", "starting with the events replayed so far");
    }
    if (app->ingest) {
        td_ingest_add_listener(app->ingest, listener, r);
    }
    if (r->follow && td_recs__follow_start(r->follow, (int)app->cfg->reco_follow_ms) != TD_OK) {
        td_log(TD_LOG_ERROR, "reco", "cannot start following other nodes' events");
        td_recs__follow_free(r->follow);
        r->follow = NULL;
    }
    if (r->follow) {
        /* before any event flows: HTTP is not started yet */
        td_ingest_add_tx_hook(app->ingest, follow_mark_own, r);
    }
    if (app->journeys) {
        td_journey_engine_set_recommender(app->journeys, journey_recommend, journey_details, r);
    }
    r->thread_started = pthread_create(&r->thread, NULL, maintenance, r) == 0;
    *out = r;
    return TD_OK;
}

void td_recs_close(td_recs_t *r)
{
    if (r == NULL) {
        return;
    }
    td_recs__follow_free(r->follow); /* the ingest writers are gone: nothing marks seqs */
    if (r->thread_started) {
        pthread_mutex_lock(&r->stop_mu);
        r->stop = true;
        pthread_cond_signal(&r->stop_cv);
        pthread_mutex_unlock(&r->stop_mu);
        pthread_join(r->thread, NULL);
    }
    td_reco_engine_free(r->engine);
    td_reco_content_free(r->content);
    td_strmap_clear(&r->content_seen);
    json_decref(r->criteria);
    json_decref(r->designs);
    for (int i = 0; i < r->n_customs; i++) {
        free(r->customs[i].id);
        td_reco_custom_free(r->customs[i].lists);
    }
    free(r->customs);
    pthread_mutex_destroy(&r->content_mu);
    pthread_rwlock_destroy(&r->lock);
    pthread_mutex_destroy(&r->stop_mu);
    pthread_cond_destroy(&r->stop_cv);
    free(r);
}
