/* The journey engine: enters, exits and resumes instances inside the
 * transaction that stores each event (the ingest hook), runs due instances
 * from a timer thread, and makes custom HTTP calls on a small pool of
 * threads.
 *
 * Exactly-once inside the store: every step's effect (an outbox row, a
 * profile update, a frozen recommendation, a new instance) and the move to
 * the next step are written in one transaction. An outside HTTP call cannot
 * be in a transaction: the instance is marked "calling" with a lease (wall
 * clock) and committed before the call, and the result is recorded after
 * it. A crash in between leaves the lease to run out, and the call is made
 * again -- at most max_call_attempts times, after which the result is
 * "abandoned" (at-least-once for outside calls). */
#include "journey/engine_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "collect/collect.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

#define EVENTS_LOADED   500    /* newest events of a profile that `events` sees */
#define BATCH_BUDGET_US 100000 /* a runner transaction holds the write lock this long at most */
#define MODE_HOOK       0      /* inside the ingest transaction: no outside or slow work */
#define MODE_RUNNER     1

/* ---- counters, batched per transaction -------------------------------- */

typedef struct centry {
    char *journey_id;
    int64_t version;
    char *step, *kind, *reason;
    int64_t n;
} centry_t;

typedef struct counters {
    centry_t *items;
    int n, cap;
} counters_t;

static void count_add(counters_t *c, const char *journey_id, int64_t version, const char *step,
                      const char *kind, const char *reason)
{
    char r[64];

    /* reasons are short labels; long error texts would split the report */
    snprintf(r, sizeof(r), "%s", reason ? reason : "");
    for (int i = 0; i < c->n; i++) {
        centry_t *e = &c->items[i];
        if (e->version == version && strcmp(e->journey_id, journey_id) == 0 &&
            strcmp(e->step, step) == 0 && strcmp(e->kind, kind) == 0 && strcmp(e->reason, r) == 0) {
            e->n++;
            return;
        }
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = td_xrealloc(c->items, sizeof(*c->items) * (size_t)c->cap);
    }
    c->items[c->n++] = (centry_t){ td_xstrdup(journey_id), version,       td_xstrdup(step),
                                   td_xstrdup(kind),       td_xstrdup(r), 1 };
}

static void counters_clear(counters_t *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->items[i].journey_id);
        free(c->items[i].step);
        free(c->items[i].kind);
        free(c->items[i].reason);
    }
    c->n = 0;
}

static void counters_free(counters_t *c)
{
    counters_clear(c);
    free(c->items);
    c->items = NULL;
    c->cap = 0;
}

static int counters_flush(counters_t *c, td_store_conn_t *conn)
{
    int rc = TD_OK;

    for (int i = 0; i < c->n && rc == TD_OK; i++) {
        centry_t *e = &c->items[i];
        rc = td_store_journey_count_add(conn, e->journey_id, e->version, e->step, e->kind,
                                        e->reason, e->n);
    }
    counters_clear(c);
    return rc;
}

/* ---- snapshot and definition cache ------------------------------------ */

static void snap_free(td_jsnap_t *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->journeys[i].id);
        free(s->journeys[i].status);
        td_journey_def_free(s->journeys[i].def);
    }
    free(s->journeys);
    for (int i = 0; i < s->n_entry; i++) {
        free(s->entry_types[i]);
    }
    free(s->entry_types);
    for (int i = 0; i < s->n_listen; i++) {
        free(s->listen_types[i]);
    }
    free(s->listen_types);
    free(s);
}

td_jsnap_t *td_journey__snap_get(td_journey_engine_t *eng)
{
    pthread_mutex_lock(&eng->mu);
    td_jsnap_t *s = eng->snap;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&eng->mu);
    return s;
}

void td_journey__snap_release(td_jsnap_t *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        snap_free(s);
    }
}

static bool has_type(char **list, int n, const char *type)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i], type) == 0) {
            return true;
        }
    }
    return false;
}

static void add_type(char ***list, int *n, const char *type)
{
    if (type && !has_type(*list, *n, type)) {
        *list = td_xrealloc(*list, sizeof(char *) * (size_t)(*n + 1));
        (*list)[(*n)++] = td_xstrdup(type);
    }
}

void td_journey__def_cache_put(td_journey_engine_t *eng, const char *id, int64_t version,
                               td_journey_def_t *def)
{
    pthread_mutex_lock(&eng->mu);
    for (td_jcached_t *e = eng->cache; e; e = e->next) {
        if (e->version == version && strcmp(e->id, id) == 0) {
            pthread_mutex_unlock(&eng->mu);
            return;
        }
    }
    td_jcached_t *e = td_xcalloc(1, sizeof(*e));
    e->id = td_xstrdup(id);
    e->version = version;
    e->def = td_journey_def_ref(def);
    e->next = eng->cache;
    eng->cache = e;
    pthread_mutex_unlock(&eng->mu);
}

void td_journey__def_cache_drop(td_journey_engine_t *eng, const char *id)
{
    pthread_mutex_lock(&eng->mu);
    for (td_jcached_t **p = &eng->cache; *p;) {
        td_jcached_t *e = *p;
        if (strcmp(e->id, id) == 0) {
            *p = e->next;
            free(e->id);
            td_journey_def_free(e->def);
            free(e);
        } else {
            p = &e->next;
        }
    }
    pthread_mutex_unlock(&eng->mu);
}

int td_journey__def_get(td_journey_engine_t *eng, td_store_conn_t *c, const char *id,
                        int64_t version, td_journey_def_t **out)
{
    char *doc = NULL;
    td_journey_errors_t *errs;
    int rc;

    pthread_mutex_lock(&eng->mu);
    for (td_jcached_t *e = eng->cache; e; e = e->next) {
        if (e->version == version && strcmp(e->id, id) == 0) {
            *out = td_journey_def_ref(e->def);
            pthread_mutex_unlock(&eng->mu);
            return TD_OK;
        }
    }
    pthread_mutex_unlock(&eng->mu);
    if ((rc = td_store_journey_version_get(c, id, version, &doc, NULL, NULL)) != TD_OK) {
        return rc;
    }
    errs = td_xcalloc(1, sizeof(*errs));
    rc = td_journey_def_parse(doc, strlen(doc), id, &eng->defaults, out, errs);
    if (rc != TD_OK) {
        td_log(TD_LOG_ERROR, "journey",
               "stored definition invalid journey=%s version=%" PRId64 " path=%s message=\"%s\"",
               id, version, errs->n ? errs->items[0].path : "",
               errs->n ? errs->items[0].message : "");
    } else {
        td_journey__def_cache_put(eng, id, version, *out);
    }
    free(errs);
    free(doc);
    return rc;
}

static int snap_rebuild(td_journey_engine_t *eng);

/* One rebuild at a time: the runner's reload poll and an admin call may both
 * rebuild, and the one that read the journeys last must swap last. */
int td_journey__snap_rebuild(td_journey_engine_t *eng)
{
    static pthread_mutex_t rebuild_mu = PTHREAD_MUTEX_INITIALIZER;

    pthread_mutex_lock(&rebuild_mu);
    int rc = snap_rebuild(eng);
    pthread_mutex_unlock(&rebuild_mu);
    return rc;
}

static int snap_rebuild(td_journey_engine_t *eng)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_journey_t *rows = NULL;
    int n = 0, rc;
    td_jsnap_t *s = td_xcalloc(1, sizeof(*s));

    atomic_init(&s->refs, 1);
    if ((rc = td_store_journey_list(c, &rows, &n)) != TD_OK) {
        td_store_release(eng->store, c);
        snap_free(s);
        return rc;
    }
    s->journeys = td_xcalloc((size_t)n + 1, sizeof(td_jlive_t));
    for (int i = 0; i < n; i++) {
        td_store_journey_t *j = &rows[i];
        bool live = strcmp(j->status, "live") == 0, paused = strcmp(j->status, "paused") == 0;
        td_journey_def_t *def;
        if ((!live && !paused) || j->live_version <= 0) {
            continue;
        }
        if (td_journey__def_get(eng, c, j->id, j->live_version, &def) != TD_OK) {
            continue;
        }
        td_jlive_t *l = &s->journeys[s->n++];
        l->id = td_xstrdup(j->id);
        l->status = td_xstrdup(j->status);
        l->version = j->live_version;
        l->def = def;
        if (live) {
            add_type(&s->entry_types, &s->n_entry, td_journey_def_entry_event(def));
        }
        /* instances of every version may still run: listen for all of them */
        for (int64_t v = 1; v <= j->latest_version; v++) {
            td_journey_def_t *vd;
            if (td_journey__def_get(eng, c, j->id, v, &vd) != TD_OK) {
                continue;
            }
            for (int k = 0; k < vd->n_exits; k++) {
                add_type(&s->listen_types, &s->n_listen, vd->exits[k].event_type);
            }
            for (int k = 0; k < vd->n_steps; k++) {
                if (vd->steps[k].type == TD_JSTEP_WAIT_EVENT) {
                    add_type(&s->listen_types, &s->n_listen, vd->steps[k].event_type);
                }
            }
            td_journey_def_free(vd);
        }
    }
    td_store_journeys_free(rows, n);
    td_store_release(eng->store, c);
    pthread_mutex_lock(&eng->mu);
    td_jsnap_t *old = eng->snap;
    eng->snap = s;
    pthread_mutex_unlock(&eng->mu);
    td_journey__snap_release(old);
    return TD_OK;
}

static const td_jlive_t *snap_find(const td_jsnap_t *s, const char *id)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->journeys[i].id, id) == 0) {
            return &s->journeys[i];
        }
    }
    return NULL;
}

/* ---- context: profile, events, event documents ------------------------ */

static json_t *items_json(const td_store_item_t *items, int n, bool quantity, const char *ts_key)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++) {
        const td_store_item_t *it = &items[i];
        json_t *o = json_pack("{s:s}", "id", it->id);
        if (it->name) {
            json_object_set_new(o, "name", json_string(it->name));
        }
        if (it->category) {
            json_object_set_new(o, "category", json_string(it->category));
        }
        if (it->has_price) {
            json_object_set_new(o, "price", json_real(it->price));
        }
        if (quantity) {
            json_object_set_new(o, "quantity", json_integer(it->quantity));
        }
        json_object_set_new(o, ts_key, json_integer(it->ts_ms));
        json_array_append_new(a, o);
    }
    return a;
}

/* The profile as expressions and templates see it (docs/journeys.md). */
static int profile_json(td_store_conn_t *c, int64_t profile_id, json_t **out)
{
    td_store_profile_t p;
    td_store_attr_t *attrs = NULL;
    int n_attrs = 0, rc;
    int64_t pid = profile_id;

    if ((rc = td_store_profile_resolve(c, profile_id, &pid)) != TD_OK && rc != TD_ENOTFOUND) {
        return rc;
    }
    if ((rc = td_store_profile_load(c, pid, &p)) != TD_OK) {
        if (rc == TD_ENOTFOUND) {
            *out = json_pack("{s:I, s:[], s:[], s:[], s:{}, s:{}, s:{}}", "id", (json_int_t)pid,
                             "cart", "viewed", "purchases", "consent", "attributes", "identities");
            return TD_OK;
        }
        return rc;
    }
    json_t *o = json_object(), *ids = json_object();
    json_object_set_new(o, "id", json_integer(pid));
    json_object_set_new(o, "created", json_integer(p.created_ms));
    if (p.last_event_ms) {
        json_object_set_new(o, "last_activity", json_integer(p.last_event_ms));
    }
    for (int i = 0; i < p.n_identities; i++) {
        const char *ns = p.identities[i].ns;
        json_t *list = json_object_get(ids, ns);
        if (list == NULL) {
            json_object_set_new(ids, ns, list = json_array());
        }
        json_array_append_new(list, json_string(p.identities[i].id));
        /* identities come oldest first: the newest of each kind wins */
        const char *key = strcmp(ns, "customer") == 0 ? "customer_id" : ns;
        json_object_set_new(o, key, json_string(p.identities[i].id));
    }
    json_object_set_new(o, "identities", ids);
    json_object_set_new(o, "cart", items_json(p.cart, p.n_cart, true, "added_ms"));
    json_object_set_new(o, "viewed", items_json(p.viewed, p.n_viewed, false, "ts_ms"));
    json_t *purchases = json_array(), *bought = json_array();
    for (int i = 0; i < p.n_purchases; i++) {
        const td_store_purchase_t *pu = &p.purchases[i];
        json_t *items = pu->items_json ? json_loads(pu->items_json, 0, NULL) : NULL, *it;
        size_t k;
        json_t *po = json_pack("{s:I}", "ts_ms", (json_int_t)pu->ts_ms);
        if (pu->order_id) {
            json_object_set_new(po, "order_id", json_string(pu->order_id));
        }
        if (pu->has_total) {
            json_object_set_new(po, "total", json_real(pu->total));
        }
        if (pu->currency) {
            json_object_set_new(po, "currency", json_string(pu->currency));
        }
        json_array_foreach(items, k, it)
        {
            json_t *id = json_object_get(it, "id");
            if (json_is_string(id)) {
                json_array_append(bought, id);
            }
        }
        json_object_set_new(po, "items", items ? items : json_array());
        json_array_append_new(purchases, po);
    }
    json_object_set_new(o, "purchases", purchases);
    json_object_set_new(o, "purchased_ids", bought);
    json_t *consent = json_object();
    if (p.consent_marketing) {
        json_object_set_new(consent, "marketing",
                            json_string(p.consent_marketing == 1 ? "in" : "out"));
    }
    json_object_set_new(o, "consent", consent);
    json_t *counts = json_object();
    for (int i = 0; i < p.n_counts; i++) {
        json_object_set_new(counts, p.counts[i].type, json_integer(p.counts[i].n));
    }
    json_object_set_new(o, "counts", counts);
    td_store_profile_release(&p);
    json_t *a = json_object();
    if ((rc = td_store_profile_attrs_get(c, pid, &attrs, &n_attrs)) == TD_OK) {
        for (int i = 0; i < n_attrs; i++) {
            json_t *v = json_loads(attrs[i].value, JSON_DECODE_ANY, NULL);
            if (v) {
                json_object_set_new(a, attrs[i].name, v);
            }
        }
        td_store_attrs_free(attrs, n_attrs);
    }
    json_object_set_new(o, "attributes", a);
    *out = o;
    return rc;
}

static int events_json(td_store_conn_t *c, int64_t profile_id, json_t **out)
{
    td_store_event_row_t *rows = NULL;
    int n = 0, rc = td_store_events_recent(c, profile_id, EVENTS_LOADED, &rows, &n);

    *out = json_array();
    if (rc != TD_OK) {
        return rc;
    }
    for (int i = 0; i < n; i++) {
        json_t *e = json_loads(rows[i].doc, 0, NULL);
        if (!json_is_object(e)) {
            json_decref(e);
            continue;
        }
        json_object_set_new(e, "seq", json_integer(rows[i].seq));
        json_object_set_new(e, "ts_ms", json_integer(rows[i].ts_ms));
        json_object_set_new(e, "received_ms", json_integer(rows[i].received_ms));
        json_array_append_new(*out, e);
    }
    td_store_event_rows_free(rows, n);
    return TD_OK;
}

static json_t *event_json(const td_event_t *ev, int64_t profile_id, int64_t seq,
                          int64_t received_ms)
{
    char *doc = td_event_to_json(ev, received_ms);
    json_t *e = json_loads(doc, 0, NULL);

    free(doc);
    if (!json_is_object(e)) {
        json_decref(e);
        e = json_pack("{s:s}", "type", ev->type);
    }
    json_object_set_new(e, "seq", json_integer(seq));
    json_object_set_new(e, "ts_ms", json_integer(ev->ts_ms));
    json_object_set_new(e, "received_ms", json_integer(received_ms));
    json_object_set_new(e, "profile_id", json_integer(profile_id));
    return e;
}

/* ---- one instance at work --------------------------------------------- */

typedef struct run {
    td_journey_engine_t *eng;
    td_store_conn_t *conn;
    td_store_jinstance_t row;
    td_journey_def_t *def;
    int step;
    bool is_new;
    json_t *vars;
    json_t *data;
    bool data_changed;
    bool profile_loaded, events_loaded;
    td_buf_t hist;
    counters_t *counters;
    int64_t now;
    bool paused;
    td_jjob_t *job;
    bool deferred;
    int steps_run;
} run_t;

static const char *step_name(const run_t *r)
{
    return r->step >= 0 && r->step < r->def->n_steps ? r->def->steps[r->step].id : r->row.step;
}

static void hist_add(run_t *r, const char *step, const char *outcome, const char *reason)
{
    char ts[32];

    td_time_format_iso(r->now, ts, sizeof(ts));
    td_buf_adds(&r->hist, ",{\"step\":");
    td_buf_add_json_str(&r->hist, step, strlen(step));
    td_buf_addf(&r->hist, ",\"ts\":\"%s\",\"outcome\":", ts);
    td_buf_add_json_str(&r->hist, outcome, strlen(outcome));
    if (reason && *reason) {
        td_buf_adds(&r->hist, ",\"reason\":");
        td_buf_add_json_str(&r->hist, reason, strlen(reason));
    }
    td_buf_addc(&r->hist, '}');
}

static void count(run_t *r, const char *step, const char *kind, const char *reason)
{
    count_add(r->counters, r->row.journey_id, r->row.version, step, kind, reason);
}

static void set_journey_var(run_t *r)
{
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:s}", "id", r->row.journey_id, "version",
                          (json_int_t)r->row.version, "instance", (json_int_t)r->row.id, "entered",
                          (json_int_t)r->row.entered_ms, "step", step_name(r));
    json_object_set_new(r->vars, "journey", j);
}

static void set_step(run_t *r, int step)
{
    r->step = step;
    free(r->row.step);
    r->row.step = td_xstrdup(step_name(r));
}

static int run_init(run_t *r, td_journey_engine_t *eng, td_store_conn_t *conn,
                    td_journey_def_t *def, counters_t *counters, int64_t now)
{
    memset(r, 0, sizeof(*r));
    r->eng = eng;
    r->conn = conn;
    r->def = def;
    r->counters = counters;
    r->now = now;
    r->vars = json_object();
    return TD_OK;
}

/* A run over a stored instance; takes ownership of row. */
static int run_from_row(run_t *r, td_journey_engine_t *eng, td_store_conn_t *conn,
                        td_store_jinstance_t *row, counters_t *counters, int64_t now)
{
    td_journey_def_t *def;
    int rc = td_journey__def_get(eng, conn, row->journey_id, row->version, &def);

    if (rc != TD_OK) {
        return rc;
    }
    run_init(r, eng, conn, def, counters, now);
    r->row = *row;
    memset(row, 0, sizeof(*row));
    r->step = td_journey_def_step_find(def, r->row.step);
    json_t *ev = json_loads(r->row.entry_event ? r->row.entry_event : "{}", 0, NULL);
    json_object_set_new(r->vars, "event", ev ? ev : json_object());
    r->data = json_loads(r->row.data ? r->row.data : "{}", 0, NULL);
    if (!json_is_object(r->data)) {
        json_decref(r->data);
        r->data = json_object();
    }
    if (!json_is_object(json_object_get(r->data, "actions"))) {
        json_object_set_new(r->data, "actions", json_object());
    }
    json_object_set(r->vars, "actions", json_object_get(r->data, "actions"));
    if (json_object_get(r->data, "trigger")) {
        json_object_set(r->vars, "trigger", json_object_get(r->data, "trigger"));
    }
    set_journey_var(r);
    td_jsnap_t *s = td_journey__snap_get(eng);
    const td_jlive_t *l = snap_find(s, r->row.journey_id);
    r->paused = l && strcmp(l->status, "paused") == 0;
    td_journey__snap_release(s);
    return TD_OK;
}

static void run_release(run_t *r)
{
    td_store_jinstance_release(&r->row);
    td_journey_def_free(r->def);
    json_decref(r->vars);
    json_decref(r->data);
    td_buf_release(&r->hist);
    if (r->job) {
        free(r->job->journey_id);
        json_decref(r->job->payload);
        free(r->job);
    }
}

static int ensure_context(run_t *r, int uses)
{
    int rc;

    if ((uses & TD_JOURNEY_USES_PROFILE) && !r->profile_loaded) {
        json_t *p;
        if ((rc = profile_json(r->conn, r->row.profile_id, &p)) != TD_OK) {
            return rc;
        }
        json_object_set_new(r->vars, "profile", p);
        r->profile_loaded = true;
    }
    if ((uses & TD_JOURNEY_USES_EVENTS) && !r->events_loaded) {
        json_t *e;
        if ((rc = events_json(r->conn, r->row.profile_id, &e)) != TD_OK) {
            json_decref(e);
            return rc;
        }
        json_object_set_new(r->vars, "events", e);
        r->events_loaded = true;
    }
    return TD_OK;
}

static td_journey_env_t run_env(run_t *r)
{
    return (td_journey_env_t){ .vars = r->vars,
                               .now_ms = r->now,
                               .entry_ms = r->row.entered_ms,
                               .tz = td_tz_cache_offset,
                               .tz_ctx = r->eng->tzdb };
}

static void end_run(run_t *r, const char *outcome, const char *reason)
{
    const char *step = step_name(r);

    hist_add(r, step, outcome, reason);
    if (strcmp(outcome, "completed") == 0) {
        count(r, step, "completed", reason);
    } else if (strcmp(outcome, "error") == 0) {
        count(r, step, "error", "error");
        td_log(TD_LOG_WARN, "journey", "step_error journey=%s instance=%" PRId64 " reason=\"%s\"",
               r->row.journey_id, r->row.id, reason);
    } else {
        count(r, step, "exited", reason);
    }
    count(r, "", "ended", outcome);
    r->row.ended_ms = r->now;
    free(r->row.outcome);
    free(r->row.reason);
    r->row.outcome = td_xstrdup(outcome);
    r->row.reason = td_xstrdup(reason ? reason : "");
    r->row.next_run_ms = 0;
    r->row.lease_until_ms = 0;
    free(r->row.claimed_by);
    r->row.claimed_by = NULL;
}

static void move(run_t *r, int next, const char *kind, const char *reason)
{
    count(r, step_name(r), kind, reason);
    if (next < 0) {
        end_run(r, "completed", "end of path");
        return;
    }
    set_step(r, next);
    r->row.phase = TD_JOURNEY_ARRIVE;
    r->row.step_since_ms = r->now;
    r->row.attempts = 0;
    r->row.next_run_ms = r->now;
    json_object_set_new(json_object_get(r->vars, "journey"), "step", json_string(step_name(r)));
    count(r, step_name(r), "entered", NULL);
}

static void message_id(const run_t *r, char *out, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    char key[200];

    snprintf(key, sizeof(key), "%s/%" PRId64 "/%" PRId64 "/%s", r->row.journey_id, r->row.version,
             r->row.id, step_name(r));
    for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
        h = (h ^ *s) * 1099511628211ULL;
    }
    snprintf(out, len, "<j%" PRId64 ".%s.%016" PRIx64 "@%s>", r->row.id, step_name(r), h,
             r->eng->message_domain);
}

static int do_email(run_t *r, const json_t *payload, char *reason, size_t reason_len)
{
    char mid[300];
    json_t *profile = json_object_get(r->vars, "profile"), *snap;
    int64_t id;
    int rc;

    message_id(r, mid, sizeof(mid));
    /* what the template renders with: AJO's profile + context.journey */
    json_t *psub = json_object();
    const char *keep[] = { "id",         "email", "ecid",    "customer_id",
                           "identities", "cart",  "consent", "attributes" };
    for (size_t i = 0; i < TD_ARRAY_LEN(keep); i++) {
        json_t *v = json_object_get(profile, keep[i]);
        if (v) {
            json_object_set(psub, keep[i], v);
        }
    }
    snap = json_pack("{s:o, s:{s:{s:s, s:I, s:I, s:s, s:I, s:O, s:O}}, s:O, s:{s:O, s:O, s:s}}",
                     "profile", psub, "context", "journey", "id", r->row.journey_id, "version",
                     (json_int_t)r->row.version, "instance", (json_int_t)r->row.id, "step",
                     step_name(r), "entered", (json_int_t)r->row.entered_ms, "event",
                     json_object_get(r->vars, "event"), "actions",
                     json_object_get(r->data, "actions"), "data", json_object_get(payload, "data"),
                     "message", "to", json_object_get(payload, "to"), "template",
                     json_object_get(payload, "template"), "message_id", mid);
    char *data = json_dumps(snap, TD_JOURNEY_DUMP);
    json_decref(snap);
    td_store_outbox_t m = { .message_id = mid,
                            .channel = (char *)"email",
                            .journey_id = r->row.journey_id,
                            .journey_version = r->row.version,
                            .instance_id = r->row.id,
                            .step = (char *)step_name(r),
                            .profile_id = r->row.profile_id,
                            .recipient = (char *)json_string_value(json_object_get(payload, "to")),
                            .template_id =
                                (char *)json_string_value(json_object_get(payload, "template")),
                            .data = data,
                            .status = (char *)"queued",
                            .next_attempt_ms = r->now,
                            .created_ms = r->now };
    rc = td_store_outbox_add(r->conn, &m, &id);
    free(data);
    if (rc == TD_ECONFLICT) {
        snprintf(reason, reason_len, "already queued as %.200s", mid);
        return TD_OK;
    }
    if (rc == TD_OK) {
        char masked[128];
        td_log_mask_email(m.recipient, masked, sizeof(masked));
        snprintf(reason, reason_len, "outbox %" PRId64 " template %s to %s", id, m.template_id,
                 masked);
        td_metrics_add("tandem_journey_emails_queued_total", "", 1);
    }
    return rc;
}

/* Built-in criteria that need no model: the profile's cart, and what it
 * viewed minus what it bought. */
static json_t *builtin_recommend(const char *criteria, const json_t *request, const json_t *profile)
{
    json_t *items = json_array(), *src, *it;
    json_t *exclude = json_object_get(request, "exclude");
    json_int_t limit = json_integer_value(json_object_get(request, "count"));
    size_t i;
    bool viewed = strcmp(criteria, "recently_viewed") == 0;

    if (!viewed && strcmp(criteria, "abandoned_cart") != 0) {
        json_decref(items);
        return NULL;
    }
    src = json_object_get(profile, viewed ? "viewed" : "cart");
    json_t *bought = json_object_get(profile, "purchased_ids");
    json_array_foreach(src, i, it)
    {
        json_t *id = json_object_get(it, "id");
        bool skip = false;
        size_t k;
        json_t *x;
        if (viewed) {
            json_array_foreach(bought, k, x)
            {
                skip |= json_equal(x, id);
            }
        }
        json_array_foreach(exclude, k, x)
        {
            skip |= json_equal(x, id);
        }
        if (!skip && (limit <= 0 || (json_int_t)json_array_size(items) < limit)) {
            json_array_append(items, it);
        }
    }
    return json_pack("{s:s, s:o, s:s}", "status", "ok", "items", items, "source", "builtin");
}

static json_t *do_recommend(run_t *r, const json_t *payload)
{
    const json_t *criteria = json_object_get(payload, "criteria");
    const json_t *request = json_object_get(payload, "request");
    json_t *result = NULL;
    td_err_t err = { 0 };
    int rc = TD_ENOTFOUND;

    if (r->eng->reco) {
        rc = r->eng->reco(r->eng->reco_ctx, criteria, request, &result, &err);
        if (rc == TD_OK && !json_is_object(result)) {
            json_decref(result);
            result = NULL;
            rc = TD_EIO;
            td_err_set(&err, TD_EIO, "", "the recommendation engine returned no object");
        }
    }
    if (rc == TD_ENOTFOUND) {
        const char *id = json_is_string(criteria)
                             ? json_string_value(criteria)
                             : json_string_value(json_object_get(criteria, "id"));
        result = id ? builtin_recommend(id, request, json_object_get(r->vars, "profile")) : NULL;
        if (result && r->eng->details) {
            r->eng->details(r->eng->reco_ctx, json_object_get(result, "items"));
        }
        if (result == NULL) {
            result = json_pack("{s:s, s:[], s:s}", "status", "unavailable", "items", "error",
                               "no recommendation engine answers this criteria");
        }
    } else if (rc != TD_OK) {
        result = json_pack("{s:s, s:[], s:s}", "status", "error", "items", "error",
                           err.message[0] ? err.message : td_strerror(rc));
    }
    if (json_object_get(result, "status") == NULL) {
        json_object_set_new(result, "status", json_string("ok"));
    }
    if (!json_is_array(json_object_get(result, "items"))) {
        json_object_set_new(result, "items", json_array());
    }
    json_object_set_new(
        result, "count",
        json_integer((json_int_t)json_array_size(json_object_get(result, "items"))));
    return result;
}

static int do_update(run_t *r, const json_t *payload)
{
    const char *k;
    json_t *v;
    int rc = TD_OK;

    json_object_foreach(json_object_get(payload, "set"), k, v)
    {
        char *text = json_dumps(v, TD_JOURNEY_DUMP | JSON_ENCODE_ANY);
        if (text && strlen(text) <= 16384) {
            rc = td_store_profile_attr_set(r->conn, r->row.profile_id, k, text, r->now);
        }
        free(text);
        if (rc != TD_OK) {
            return rc;
        }
    }
    const char *consent = json_string_value(json_object_get(payload, "consent"));
    if (consent) {
        char source[96];
        snprintf(source, sizeof(source), "journey:%s", r->row.journey_id);
        rc = td_store_consent_set(r->conn, r->row.profile_id, strcmp(consent, "in") == 0 ? 1 : 2,
                                  r->now, source);
    }
    /* later steps must see the new values */
    r->profile_loaded = false;
    return rc;
}

static int enter(td_journey_engine_t *eng, td_store_conn_t *c, const td_jlive_t *j,
                 const json_t *event, int64_t profile_id, int64_t seq, int64_t now,
                 counters_t *counters, bool *deferred);

static int do_jump(run_t *r, const json_t *payload, char *reason, size_t len)
{
    const char *target = json_string_value(json_object_get(payload, "journey"));
    td_jsnap_t *s = td_journey__snap_get(r->eng);
    const td_jlive_t *j = target ? snap_find(s, target) : NULL;
    int rc = TD_OK;
    bool deferred = false;

    if (j == NULL || strcmp(j->status, "live") != 0) {
        snprintf(reason, len, "%s is not live", target ? target : "?");
    } else {
        rc = enter(r->eng, r->conn, j, json_object_get(r->vars, "event"), r->row.profile_id,
                   r->row.entry_seq, r->now, r->counters, &deferred);
        snprintf(reason, len, "%s", target);
        if (deferred) {
            atomic_store(&r->eng->pending_wake, true);
        }
    }
    td_journey__snap_release(s);
    return rc;
}

static void set_result(run_t *r, const char *as, json_t *result)
{
    json_object_set_new(json_object_get(r->data, "actions"), as, result);
    r->data_changed = true;
}

/* Records a call's result and moves on. Takes result. */
static void apply_call_result(run_t *r, json_t *result)
{
    const td_jstep_t *s = &r->def->steps[r->step];
    char reason[160];

    snprintf(reason, sizeof(reason), "%s after %lld attempt%s",
             json_string_value(json_object_get(result, "status")),
             (long long)json_integer_value(json_object_get(result, "attempts")),
             json_integer_value(json_object_get(result, "attempts")) == 1 ? "" : "s");
    hist_add(r, s->id, "called", reason);
    count(r, s->id, "called", json_string_value(json_object_get(result, "status")));
    set_result(r, s->as, result);
    free(r->row.claimed_by);
    r->row.claimed_by = NULL;
    r->row.lease_until_ms = 0;
    move(r, s->next, "passed", NULL);
}

static int64_t call_lease_ms(const json_t *payload)
{
    int64_t timeout = json_integer_value(json_object_get(payload, "timeout_ms"));
    int64_t retries = json_integer_value(json_object_get(payload, "retries"));

    /* every attempt, the back-off between them, a throttle wait, and slack */
    return timeout * (retries + 1) + (200LL << (retries + 1)) + 60000 + 10000;
}

static bool deferred_in_hook(td_jstep_type_t t)
{
    return t == TD_JSTEP_ACTION || t == TD_JSTEP_RECOMMEND || t == TD_JSTEP_EMAIL ||
           t == TD_JSTEP_JUMP;
}

/* Runs steps until the instance waits, calls out, or ends. */
static int run_steps(run_t *r, int mode)
{
    int rc = TD_OK;

    for (;;) {
        if (r->row.ended_ms) {
            return TD_OK;
        }
        if (r->step < 0) {
            end_run(r, "error", "the instance's step is not in its definition");
            return TD_OK;
        }
        if (r->paused) {
            r->row.next_run_ms = r->now; /* kept aside by the store until resumed */
            return TD_OK;
        }
        if (r->steps_run >= TD_JOURNEY_MAX_RUN_STEPS) {
            r->row.next_run_ms = r->now; /* continue in the next round */
            return TD_OK;
        }
        const td_jstep_t *s = &r->def->steps[r->step];
        if (mode == MODE_HOOK && r->row.phase == TD_JOURNEY_ARRIVE && deferred_in_hook(s->type)) {
            r->row.next_run_ms = r->now;
            r->deferred = true;
            return TD_OK;
        }
        if (r->row.phase == TD_JOURNEY_CALLING) {
            /* due again with a call in flight: its lease ran out (a crash) */
            if (r->row.attempts >= r->eng->max_call_attempts) {
                char msg[120];
                snprintf(msg, sizeof(msg), "no result after %d attempts (the server stopped)",
                         r->row.attempts);
                apply_call_result(r, json_pack("{s:s, s:b, s:i, s:s}", "status", "abandoned", "ok",
                                               0, "attempts", r->row.attempts, "error", msg));
                r->steps_run++;
                continue;
            }
            r->row.phase = TD_JOURNEY_ARRIVE;
        }
        if ((rc = ensure_context(r, s->uses)) != TD_OK) {
            return rc;
        }
        td_journey_state_t st = { .step = r->step,
                                  .phase = r->row.phase,
                                  .profile_id = r->row.profile_id,
                                  .instance_id = r->row.id,
                                  .entered_ms = r->row.entered_ms,
                                  .step_since_ms = r->row.step_since_ms,
                                  .timeout_at_ms = r->row.timeout_at_ms };
        td_journey_env_t env = run_env(r);
        td_journey_decision_t d;
        if ((rc = td_journey_step_decide(r->def, &st, &env, &d)) != TD_OK) {
            return rc;
        }
        r->steps_run++;
        char reason[300];
        snprintf(reason, sizeof(reason), "%s", d.reason);
        switch (d.what) {
        case TD_JDO_GO:
            hist_add(r, s->id, d.outcome, reason);
            if (strcmp(d.outcome, "skipped") == 0) {
                count(r, s->id, "skipped", reason);
            }
            move(r, d.next, s->type == TD_JSTEP_CONDITION ? "branch" : "passed",
                 s->type == TD_JSTEP_CONDITION ? reason : NULL);
            break;
        case TD_JDO_SLEEP:
        case TD_JDO_WAIT_EVENT:
            hist_add(r, s->id, d.outcome, reason);
            r->row.phase = TD_JOURNEY_WAITING;
            r->row.next_run_ms = d.wake_ms;
            td_journey_decision_release(&d);
            return TD_OK;
        case TD_JDO_CALL:
            if (mode == MODE_HOOK || r->row.id == 0) {
                r->row.next_run_ms = r->now;
                r->deferred = true;
                td_journey_decision_release(&d);
                return TD_OK;
            }
            hist_add(r, s->id, d.outcome, reason);
            r->row.phase = TD_JOURNEY_CALLING;
            r->row.attempts++;
            free(r->row.claimed_by);
            r->row.claimed_by = td_xstrdup(r->eng->node);
            r->row.lease_until_ms = td_wall_ms() + call_lease_ms(d.payload);
            r->row.next_run_ms = r->now;
            r->job = td_xcalloc(1, sizeof(*r->job));
            r->job->instance_id = r->row.id;
            r->job->journey_id = td_xstrdup(r->row.journey_id);
            r->job->attempt = r->row.attempts;
            r->job->payload = d.payload;
            return TD_OK;
        case TD_JDO_RECOMMEND: {
            json_t *res = do_recommend(r, d.payload);
            snprintf(reason, sizeof(reason), "%s: %lld items",
                     json_string_value(json_object_get(res, "status")),
                     (long long)json_integer_value(json_object_get(res, "count")));
            hist_add(r, s->id, d.outcome, reason);
            set_result(r, s->as, res);
            move(r, d.next, "passed", NULL);
            break;
        }
        case TD_JDO_EMAIL:
            if ((rc = do_email(r, d.payload, reason, sizeof(reason))) != TD_OK) {
                td_journey_decision_release(&d);
                return rc;
            }
            hist_add(r, s->id, d.outcome, reason);
            count(r, s->id, "queued", NULL);
            move(r, d.next, "passed", NULL);
            break;
        case TD_JDO_UPDATE:
            if ((rc = do_update(r, d.payload)) != TD_OK) {
                td_journey_decision_release(&d);
                return rc;
            }
            hist_add(r, s->id, d.outcome, NULL);
            move(r, d.next, "passed", NULL);
            break;
        case TD_JDO_JUMP:
            if ((rc = do_jump(r, d.payload, reason, sizeof(reason))) != TD_OK) {
                td_journey_decision_release(&d);
                return rc;
            }
            hist_add(r, s->id, d.outcome, reason);
            if (d.next < 0) {
                count(r, s->id, "passed", NULL);
                end_run(r, "completed", "jumped");
            } else {
                move(r, d.next, "passed", NULL);
            }
            break;
        case TD_JDO_END:
            end_run(r, d.outcome, reason);
            break;
        }
        td_journey_decision_release(&d);
    }
}

static void store_data(run_t *r)
{
    if (r->data_changed || r->is_new) {
        free(r->row.data);
        r->row.data = json_dumps(r->data, TD_JOURNEY_DUMP);
    }
}

/* Writes the run: an insert for a new instance (with its re-entry key), an
 * update otherwise; releases the key when the instance ended. */
static int run_save(run_t *r)
{
    int rc;

    store_data(r);
    r->row.n_steps += r->steps_run;
    if (r->is_new) {
        int64_t id;
        if ((rc = td_store_jinstance_insert(r->conn, &r->row, r->hist.data, &id)) != TD_OK) {
            return rc;
        }
        r->row.id = id;
        return td_store_journey_key_put(r->conn, r->row.journey_id, r->row.entry_key,
                                        r->row.entered_ms, r->row.ended_ms ? 0 : id);
    }
    if ((rc = td_store_jinstance_update(r->conn, &r->row, r->data_changed, r->hist.data)) !=
        TD_OK) {
        return rc;
    }
    if (r->row.ended_ms) {
        rc = td_store_journey_key_release(r->conn, r->row.journey_id, r->row.entry_key, r->row.id);
    }
    return rc;
}

/* ---- entering --------------------------------------------------------- */

static int enter(td_journey_engine_t *eng, td_store_conn_t *c, const td_jlive_t *j,
                 const json_t *event, int64_t profile_id, int64_t seq, int64_t now,
                 counters_t *counters, bool *deferred)
{
    td_journey_def_t *def = j->def;
    run_t r;
    int rc;
    bool match;
    char *key = NULL, keybuf[300];
    td_err_t err = { 0 };

    if ((def->start_ms && now < def->start_ms) || (def->end_ms && now >= def->end_ms)) {
        count_add(counters, j->id, j->version, "", "refused", "outside_schedule");
        return TD_OK;
    }
    run_init(&r, eng, c, td_journey_def_ref(def), counters, now);
    r.is_new = true;
    r.row.journey_id = td_xstrdup(j->id);
    r.row.version = j->version;
    r.row.profile_id = profile_id;
    r.row.entered_ms = now;
    r.row.entry_seq = seq;
    json_object_set(r.vars, "event", (json_t *)event);
    r.data = json_pack("{s:{}}", "actions");
    json_object_set(r.vars, "actions", json_object_get(r.data, "actions"));
    r.step = def->first;
    r.row.step = td_xstrdup(step_name(&r));
    set_journey_var(&r);
    if ((rc = ensure_context(&r, td_journey_entry_uses(def))) != TD_OK) {
        goto out;
    }
    td_journey_env_t env = run_env(&r);
    if (td_journey_entry_match(def, &env, &match, &key, &err) != TD_OK) {
        count_add(counters, j->id, j->version, "", "refused", "entry_error");
        td_log(TD_LOG_WARN, "journey", "entry_error journey=%s column=%d message=\"%s\"", j->id,
               err.column, err.message);
        goto out;
    }
    if (!match) {
        goto out; /* not an entry: not counted, most events are not */
    }
    if (key) {
        snprintf(keybuf, sizeof(keybuf), "k:%s", key);
    } else {
        snprintf(keybuf, sizeof(keybuf), "p:%" PRId64, profile_id);
    }
    int64_t last = 0, running = 0;
    rc = td_store_journey_key_get(c, j->id, keybuf, &last, &running);
    if (rc == TD_OK) {
        int64_t wait = td_journey_reentry_wait_ms(def);
        const char *why = running             ? "running"
                          : wait < 0          ? "reentry_never"
                          : now < last + wait ? "reentry_wait"
                                              : NULL;
        if (why) {
            count_add(counters, j->id, j->version, "", "refused", why);
            rc = TD_OK;
            goto out;
        }
    } else if (rc != TD_ENOTFOUND) {
        goto out;
    }
    r.row.entry_key = td_xstrdup(keybuf);
    r.row.timeout_at_ms = now + td_journey_timeout_ms(def);
    r.row.step_since_ms = now;
    r.row.next_run_ms = now;
    r.row.phase = TD_JOURNEY_ARRIVE;
    r.row.entry_event = json_dumps(event, TD_JOURNEY_DUMP);
    char why[120];
    snprintf(why, sizeof(why), "%s seq %" PRId64, json_string_value(json_object_get(event, "type")),
             seq);
    hist_add(&r, "", "entered", why);
    count_add(counters, j->id, j->version, "", "entered", NULL);
    count_add(counters, j->id, j->version, step_name(&r), "entered", NULL);
    if ((rc = run_steps(&r, MODE_HOOK)) == TD_OK) {
        rc = run_save(&r);
    }
    *deferred |= r.deferred;
    td_metrics_add("tandem_journey_entries_total", "", 1);
out:
    free(key);
    run_release(&r);
    return rc;
}

/* ---- events on running instances: exits and wait_for_event ------------ */

static int on_running(td_journey_engine_t *eng, td_store_conn_t *c, const json_t *event,
                      const char *type, int64_t profile_id, int64_t now, counters_t *counters,
                      bool *deferred)
{
    td_store_jinstance_t *rows = NULL;
    int n = 0, rc = td_store_jinstance_running(c, profile_id, &rows, &n);

    for (int i = 0; rc == TD_OK && i < n; i++) {
        run_t r;
        td_err_t err = { 0 };
        int next;
        if (run_from_row(&r, eng, c, &rows[i], counters, now) != TD_OK) {
            continue;
        }
        if (!td_journey_listens(r.def, type) ||
            (r.row.entry_seq == json_integer_value(json_object_get(event, "seq")))) {
            run_release(&r);
            continue;
        }
        json_object_set(r.vars, "trigger", (json_t *)event);
        int uses = td_journey_exit_uses(r.def, type);
        if (r.step >= 0 && r.def->steps[r.step].type == TD_JSTEP_WAIT_EVENT) {
            uses |= r.def->steps[r.step].uses;
        }
        if ((rc = ensure_context(&r, uses)) != TD_OK) {
            run_release(&r);
            break;
        }
        td_journey_env_t env = run_env(&r);
        const char *exit_name = td_journey_exit_match(r.def, type, &env, &err);
        if (exit_name) {
            char name[80];
            snprintf(name, sizeof(name), "%s", exit_name);
            end_run(&r, "exited", name);
            td_metrics_add("tandem_journey_exits_total", "", 1);
        } else if (r.row.phase == TD_JOURNEY_WAITING &&
                   td_journey_wait_match(r.def, r.step, type, &env, &next, &err)) {
            char why[120];
            snprintf(why, sizeof(why), "%s seq %lld", type,
                     (long long)json_integer_value(json_object_get(event, "seq")));
            hist_add(&r, step_name(&r), "event", why);
            /* the event that resumed the instance is what later steps call trigger */
            json_object_set(r.data, "trigger", (json_t *)event);
            r.data_changed = true;
            move(&r, next, "passed", "event");
            if ((rc = run_steps(&r, MODE_HOOK)) != TD_OK) {
                run_release(&r);
                break;
            }
            *deferred |= r.deferred;
        } else {
            run_release(&r);
            continue;
        }
        rc = run_save(&r);
        run_release(&r);
    }
    td_store_jinstances_free(rows, n);
    return rc;
}

int td_journey_engine_tx_hook(void *ctx, struct td_store_conn *conn, const struct td_event *ev,
                              int64_t profile_id, int64_t seq, int64_t received_ms)
{
    td_journey_engine_t *eng = ctx;
    td_jsnap_t *s = td_journey__snap_get(eng);
    int64_t t0 = td_mono_us();
    bool enters = has_type(s->entry_types, s->n_entry, ev->type);
    bool listens = has_type(s->listen_types, s->n_listen, ev->type);
    counters_t counters = { 0 };
    bool deferred = false;
    int rc = TD_OK;

    if (!enters && !listens) {
        td_journey__snap_release(s);
        return TD_OK;
    }
    json_t *event = event_json(ev, profile_id, seq, received_ms);
    if (listens) {
        rc = on_running(eng, conn, event, ev->type, profile_id, received_ms, &counters, &deferred);
    }
    for (int i = 0; rc == TD_OK && enters && i < s->n; i++) {
        const td_jlive_t *j = &s->journeys[i];
        if (strcmp(j->status, "live") == 0 &&
            strcmp(td_journey_def_entry_event(j->def), ev->type) == 0) {
            rc = enter(eng, conn, j, event, profile_id, seq, received_ms, &counters, &deferred);
        }
    }
    if (rc == TD_OK) {
        rc = counters_flush(&counters, conn);
    }
    counters_free(&counters);
    json_decref(event);
    td_journey__snap_release(s);
    if (deferred) {
        atomic_store(&eng->pending_wake, true);
    }
    td_metrics_observe("tandem_journey_hook_seconds", "", (double)(td_mono_us() - t0) / 1e6);
    return rc;
}

void td_journey_engine_listener(void *ctx, const struct td_event *const *events,
                                const int64_t *profile_ids, int n)
{
    td_journey_engine_t *eng = ctx;

    (void)events;
    (void)profile_ids;
    (void)n;
    /* the hook's work is committed now: the runner may take it */
    if (atomic_exchange(&eng->pending_wake, false)) {
        td_journey_engine_wake(eng);
    }
}

/* ---- the runner ------------------------------------------------------- */

static void submit_job(td_journey_engine_t *eng, td_jjob_t *job)
{
    pthread_mutex_lock(&eng->job_mu);
    if (eng->jobs_tail) {
        eng->jobs_tail->next = job;
    } else {
        eng->jobs = job;
    }
    eng->jobs_tail = job;
    pthread_cond_signal(&eng->job_cv);
    pthread_mutex_unlock(&eng->job_mu);
}

/* One transaction of due instances; returns steps run (or a negative code). */
static int64_t run_batch(td_journey_engine_t *eng, bool *more)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_jinstance_t *rows = NULL;
    int n = 0, done = 0, rc;
    int64_t steps = 0, t0 = td_mono_us();
    counters_t counters = { 0 };
    td_jjob_t *jobs = NULL, **jobs_end = &jobs;

    *more = false;
    pthread_mutex_lock(&eng->run_mu);
    int64_t now = td_clock_now_ms(eng->clock);
    if ((rc = td_store_begin(c)) != TD_OK) {
        goto out;
    }
    if ((rc = td_store_jinstance_due(c, now, td_wall_ms(), eng->batch, &rows, &n)) != TD_OK ||
        n == 0) {
        td_store_rollback(c);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        run_t r;
        if (run_from_row(&r, eng, c, &rows[i], &counters, now) != TD_OK) {
            /* the definition is gone or broken: end the instance rather than spin */
            td_store_jinstance_t row = rows[i];
            row.ended_ms = now;
            row.outcome = (char *)"error";
            row.reason = (char *)"definition unavailable";
            row.next_run_ms = 0;
            rc = td_store_jinstance_update(c, &row, false,
                                           ",{\"step\":\"\",\"outcome\":\"error\","
                                           "\"reason\":\"definition unavailable\"}");
            row.outcome = row.reason = NULL;
            rows[i] = row;
            done++;
            if (rc != TD_OK) {
                break;
            }
            continue;
        }
        if ((rc = run_steps(&r, MODE_RUNNER)) == TD_OK) {
            rc = run_save(&r);
        }
        steps += r.steps_run;
        if (r.job && rc == TD_OK) {
            *jobs_end = r.job;
            jobs_end = &r.job->next;
            r.job = NULL;
        }
        run_release(&r);
        done++;
        if (rc != TD_OK || td_mono_us() - t0 > BATCH_BUDGET_US) {
            break;
        }
    }
    if (rc == TD_OK) {
        rc = counters_flush(&counters, c);
    }
    if (rc == TD_OK) {
        rc = td_store_commit(c);
    }
    if (rc != TD_OK) {
        td_store_rollback(c);
        td_log(TD_LOG_ERROR, "journey", "runner_batch failed rc=%s instances=%d", td_strerror(rc),
               n);
    }
    *more = rc == TD_OK && (n == eng->batch || done < n);
out:
    pthread_mutex_unlock(&eng->run_mu);
    counters_free(&counters);
    td_store_jinstances_free(rows, n);
    td_store_release(eng->store, c);
    while (jobs) {
        td_jjob_t *next = jobs->next;
        jobs->next = NULL;
        if (rc == TD_OK) {
            submit_job(eng, jobs);
        } else {
            free(jobs->journey_id);
            json_decref(jobs->payload);
            free(jobs);
        }
        jobs = next;
    }
    if (steps > 0) {
        td_metrics_add("tandem_journey_steps_total", "", steps);
    }
    return rc == TD_OK ? steps : rc;
}

int64_t td_journey_engine_run_due(td_journey_engine_t *eng)
{
    int64_t total = 0, steps;
    bool more = true;

    while (more && (steps = run_batch(eng, &more)) >= 0) {
        total += steps;
    }
    return total;
}

/* Other nodes sharing the store change journeys too: about once a second
 * the runner compares a fingerprint of the journeys table with the last one
 * and rebuilds the snapshot when it moved. */
static void poll_journeys(td_journey_engine_t *eng, uint64_t *seen, int64_t *last_us)
{
    td_store_journey_t *rows = NULL;
    int n = 0;
    uint64_t h = 1469598103934665603ULL;

    if (td_mono_us() - *last_us < 1000000) {
        return;
    }
    *last_us = td_mono_us();
    td_store_conn_t *c = td_store_acquire(eng->store);
    int rc = td_store_journey_list(c, &rows, &n);
    td_store_release(eng->store, c);
    if (rc != TD_OK) {
        return;
    }
    for (int i = 0; i < n; i++) {
        char line[400];
        int len = snprintf(line, sizeof(line), "%s|%s|%lld|%lld|%lld;", rows[i].id, rows[i].status,
                           (long long)rows[i].live_version, (long long)rows[i].latest_version,
                           (long long)rows[i].updated_ms);
        for (int k = 0; k < len && k < (int)sizeof(line) - 1; k++) {
            h = (h ^ (unsigned char)line[k]) * 1099511628211ULL;
        }
    }
    td_store_journeys_free(rows, n);
    if (h != *seen && td_journey__snap_rebuild(eng) == TD_OK) {
        *seen = h;
    }
}

static void *runner_main(void *arg)
{
    td_journey_engine_t *eng = arg;
    uint64_t journeys_seen = 0;
    int64_t polled_us = 0;

    while (!atomic_load(&eng->stopping)) {
        bool more = false;
        int64_t steps = run_batch(eng, &more);
        if (more && steps >= 0) {
            continue;
        }
        poll_journeys(eng, &journeys_seen, &polled_us);
        /* sleep until woken, the next due time (real clock), or a second */
        int64_t wait_ms = 1000;
        if (!eng->clock->is_virtual) {
            td_store_conn_t *c = td_store_acquire(eng->store);
            int64_t due;
            if (td_store_journey_next_due(c, td_wall_ms(), &due) == TD_OK) {
                int64_t d = due - td_clock_now_ms(eng->clock);
                wait_ms = d < 1 ? 1 : d < wait_ms ? d : wait_ms;
            }
            td_store_release(eng->store, c);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&eng->wake_mu);
        while (!eng->wake && !atomic_load(&eng->stopping)) {
            if (pthread_cond_timedwait(&eng->wake_cv, &eng->wake_mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        eng->wake = false;
        pthread_mutex_unlock(&eng->wake_mu);
    }
    return NULL;
}

void td_journey_engine_wake(td_journey_engine_t *eng)
{
    if (eng == NULL) {
        return;
    }
    pthread_mutex_lock(&eng->wake_mu);
    eng->wake = true;
    pthread_cond_signal(&eng->wake_cv);
    pthread_mutex_unlock(&eng->wake_mu);
}

/* ---- outside calls ---------------------------------------------------- */

static void complete_job(td_journey_engine_t *eng, td_jjob_t *job, json_t *result)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_jinstance_t row;
    counters_t counters = { 0 };
    run_t r;
    int rc;
    bool has_run = false;

    if ((rc = td_store_begin(c)) != TD_OK) {
        json_decref(result);
        goto out;
    }
    int64_t now = td_clock_now_ms(eng->clock);
    if ((rc = td_store_jinstance_get(c, job->instance_id, &row)) != TD_OK) {
        json_decref(result);
        td_store_rollback(c);
        goto out;
    }
    if (row.ended_ms || row.phase != TD_JOURNEY_CALLING || row.attempts != job->attempt) {
        /* exited meanwhile (an exit event, a stop), or a newer attempt owns it */
        td_log(TD_LOG_INFO, "journey", "call_result_dropped instance=%" PRId64 " attempt=%d",
               job->instance_id, job->attempt);
        td_store_jinstance_release(&row);
        json_decref(result);
        td_store_rollback(c);
        goto out;
    }
    if ((rc = run_from_row(&r, eng, c, &row, &counters, now)) != TD_OK) {
        td_store_jinstance_release(&row);
        json_decref(result);
        td_store_rollback(c);
        goto out;
    }
    has_run = true;
    apply_call_result(&r, result);
    if ((rc = run_steps(&r, MODE_RUNNER)) == TD_OK && (rc = run_save(&r)) == TD_OK &&
        (rc = counters_flush(&counters, c)) == TD_OK) {
        rc = td_store_commit(c);
    }
    if (rc != TD_OK) {
        td_store_rollback(c);
        td_log(TD_LOG_ERROR, "journey", "call_result_failed instance=%" PRId64 " rc=%s",
               job->instance_id, td_strerror(rc));
    } else if (r.job) {
        submit_job(eng, r.job);
        r.job = NULL;
    }
out:
    if (has_run) {
        run_release(&r);
    }
    counters_free(&counters);
    td_store_release(eng->store, c);
}

static void *action_main(void *arg)
{
    td_journey_engine_t *eng = arg;

    for (;;) {
        pthread_mutex_lock(&eng->job_mu);
        while (eng->jobs == NULL && !atomic_load(&eng->stopping)) {
            pthread_cond_wait(&eng->job_cv, &eng->job_mu);
        }
        td_jjob_t *job = eng->jobs;
        if (job) {
            eng->jobs = job->next;
            if (eng->jobs == NULL) {
                eng->jobs_tail = NULL;
            }
        }
        pthread_mutex_unlock(&eng->job_mu);
        if (job == NULL) {
            return NULL;
        }
        if (!atomic_load(&eng->stopping)) {
            json_t *result = td_journey__http_call(eng->http, job->payload, &eng->stopping);
            if (!atomic_load(&eng->stopping)) {
                complete_job(eng, job, result);
            } else {
                json_decref(result); /* the lease runs out and the call is made again */
            }
        }
        free(job->journey_id);
        json_decref(job->payload);
        free(job);
    }
}

/* ---- open and close --------------------------------------------------- */

static void make_node_id(char *out, size_t len)
{
    char host[64] = "host";
    unsigned char rnd[4] = { 0 };

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        memset(rnd, 0, sizeof(rnd));
    }
    snprintf(out, len, "%.60s:%d:%02x%02x%02x%02x", host, (int)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3]);
}

int td_journey_engine_open(struct td_store *store, struct td_clock *clock,
                           const td_journey_options_t *opt, td_journey_engine_t **out,
                           td_err_t *err)
{
    td_journey_engine_t *eng = td_xcalloc(1, sizeof(*eng));
    int rc;

    *out = NULL;
    eng->store = store;
    eng->clock = clock;
    eng->defaults = opt->defaults;
    eng->batch = opt->batch > 0 ? opt->batch : 500;
    eng->max_call_attempts = opt->max_call_attempts > 0 ? opt->max_call_attempts : 3;
    eng->message_domain = td_xstrdup(
        opt->message_domain && *opt->message_domain ? opt->message_domain : "tandem.invalid");
    make_node_id(eng->node, sizeof(eng->node));
    pthread_mutex_init(&eng->mu, NULL);
    pthread_mutex_init(&eng->admin_mu, NULL);
    pthread_mutex_init(&eng->run_mu, NULL);
    pthread_mutex_init(&eng->wake_mu, NULL);
    pthread_cond_init(&eng->wake_cv, NULL);
    pthread_mutex_init(&eng->job_mu, NULL);
    pthread_cond_init(&eng->job_cv, NULL);
    eng->snap = td_xcalloc(1, sizeof(td_jsnap_t));
    atomic_init(&eng->snap->refs, 1);
    eng->tzdb = td_tz_cache_new(opt->zoneinfo_dir);
    if ((rc = td_journey__http_new(opt->action_auth, opt->n_action_auth, &eng->http, err)) !=
        TD_OK) {
        td_journey_engine_close(eng);
        return rc;
    }
    td_metrics_describe("tandem_journey_hook_seconds", "histogram",
                        "time the journey engine spends on an event inside its transaction");
    td_metrics_describe("tandem_journey_entries_total", "counter", "journey instances entered");
    td_metrics_describe("tandem_journey_exits_total", "counter",
                        "journey instances ended by exit criteria");
    td_metrics_describe("tandem_journey_steps_total", "counter", "journey steps run by the runner");
    td_metrics_describe("tandem_journey_emails_queued_total", "counter",
                        "outbox rows written by email steps");
    if ((rc = td_journey__snap_rebuild(eng)) != TD_OK) {
        td_err_set(err, rc, "journeys", "cannot load the published journeys (%s)", td_strerror(rc));
        td_journey_engine_close(eng);
        return rc;
    }
    if (!opt->no_runner) {
        int n = opt->action_threads > 0 ? opt->action_threads : 4;
        eng->action_threads = td_xcalloc((size_t)n, sizeof(pthread_t));
        for (int i = 0; i < n; i++) {
            if (pthread_create(&eng->action_threads[i], NULL, action_main, eng) != 0) {
                td_journey_engine_close(eng);
                return td_err_set(err, TD_EIO, "journeys", "pthread_create() failed");
            }
            eng->n_action_threads++;
        }
        if (pthread_create(&eng->runner, NULL, runner_main, eng) != 0) {
            td_journey_engine_close(eng);
            return td_err_set(err, TD_EIO, "journeys", "pthread_create() failed");
        }
        eng->has_runner = true;
    }
    td_log(TD_LOG_INFO, "journey", "engine_open node=%s journeys=%d", eng->node, eng->snap->n);
    *out = eng;
    return TD_OK;
}

void td_journey_engine_close(td_journey_engine_t *eng)
{
    if (eng == NULL) {
        return;
    }
    atomic_store(&eng->stopping, true);
    td_journey_engine_wake(eng);
    pthread_mutex_lock(&eng->job_mu);
    pthread_cond_broadcast(&eng->job_cv);
    pthread_mutex_unlock(&eng->job_mu);
    if (eng->has_runner) {
        pthread_join(eng->runner, NULL);
    }
    for (int i = 0; i < eng->n_action_threads; i++) {
        pthread_join(eng->action_threads[i], NULL);
    }
    free(eng->action_threads);
    while (eng->jobs) {
        td_jjob_t *j = eng->jobs;
        eng->jobs = j->next;
        free(j->journey_id);
        json_decref(j->payload);
        free(j);
    }
    td_journey__snap_release(eng->snap);
    while (eng->cache) {
        td_jcached_t *e = eng->cache;
        eng->cache = e->next;
        free(e->id);
        td_journey_def_free(e->def);
        free(e);
    }
    td_journey__http_free(eng->http);
    td_tz_cache_free(eng->tzdb);
    free(eng->message_domain);
    pthread_mutex_destroy(&eng->mu);
    pthread_mutex_destroy(&eng->admin_mu);
    pthread_mutex_destroy(&eng->run_mu);
    pthread_mutex_destroy(&eng->wake_mu);
    pthread_cond_destroy(&eng->wake_cv);
    pthread_mutex_destroy(&eng->job_mu);
    pthread_cond_destroy(&eng->job_cv);
    free(eng);
}

void td_journey_engine_set_recommender(td_journey_engine_t *eng, td_journey_recommend_fn fn,
                                       td_journey_details_fn details, void *ctx)
{
    eng->reco = fn;
    eng->details = details;
    eng->reco_ctx = ctx;
}
