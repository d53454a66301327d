/* The store front: picks a backend from the URL, pools connections, and
 * dispatches each operation to the backend. Commit latency is measured here,
 * once for every backend. */
#include "store/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

static const td_store_ops_t *pick_backend(const char *url)
{
    if (url == NULL || *url == '\0' || strncmp(url, "sqlite:", 7) == 0) {
        return &td_store_sqlite_ops;
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0 ||
        strchr(url, '=') != NULL) {
        return &td_store_postgres_ops; /* a URL or libpq "key=value" keywords */
    }
    return NULL;
}

int td_store_open(const char *url, const td_store_options_t *opt, td_store_t **out, td_err_t *err)
{
    const td_store_ops_t *ops = pick_backend(url);
    td_store_t *st;
    int rc;

    *out = NULL;
    if (ops == NULL) {
        return td_err_set(err, TD_EINVAL, "store",
                          "unsupported store URL (use empty for SQLite, sqlite:PATH, postgres://... or libpq "
                          "keywords)");
    }
    st = td_xcalloc(1, sizeof(*st));
    st->ops = ops;
    st->max_open = opt->pool_size > 0 ? opt->pool_size : 4;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    if ((rc = ops->open(url, opt, &st->backend, err)) != TD_OK) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cv);
        free(st);
        return rc;
    }
    td_metrics_describe("tandem_store_commit_seconds", "histogram",
                        "time to commit a store transaction");
    *out = st;
    return TD_OK;
}

void td_store_close(td_store_t *st)
{
    if (st == NULL) {
        return;
    }
    while (st->free_list) {
        td_store_conn_t *c = st->free_list;
        st->free_list = c->next_free;
        st->ops->conn_close(c->impl);
        free(c);
    }
    st->ops->close(st->backend);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
}

const char *td_store_backend(const td_store_t *st)
{
    return st->ops->name;
}

td_store_conn_t *td_store_acquire(td_store_t *st)
{
    td_store_conn_t *c = NULL;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (st->free_list) {
            c = st->free_list;
            st->free_list = c->next_free;
            break;
        }
        if (st->n_open < st->max_open) {
            st->n_open++;
            break;
        }
        pthread_cond_wait(&st->cv, &st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    if (c) {
        return c;
    }
    c = td_xcalloc(1, sizeof(*c));
    c->st = st;
    td_err_t err = { 0 };
    /* A connection that cannot be opened after start-up is an outage of the
     * database; callers see TD_EIO from every operation on impl == NULL. */
    if (st->ops->conn_open(st->backend, &c->impl, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "store", "conn_open failed: %s", err.message);
        c->impl = NULL;
    }
    return c;
}

void td_store_release(td_store_t *st, td_store_conn_t *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&st->mu);
    if (c->impl == NULL) {
        st->n_open--;
        free(c);
    } else {
        c->next_free = st->free_list;
        st->free_list = c;
    }
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

#define CALL(c, op, ...) ((c)->impl ? (c)->st->ops->op((c)->impl, __VA_ARGS__) : TD_EIO)

int td_store_begin(td_store_conn_t *c)
{
    c->savepoints = 0;
    return c->impl ? c->st->ops->exec(c->impl, "BEGIN") : TD_EIO;
}

int td_store_commit(td_store_conn_t *c)
{
    int64_t t0 = td_mono_us();
    int rc = c->impl ? c->st->ops->exec(c->impl, "COMMIT") : TD_EIO;

    td_metrics_observe("tandem_store_commit_seconds", "", (double)(td_mono_us() - t0) / 1e6);
    return rc;
}

void td_store_rollback(td_store_conn_t *c)
{
    if (c->impl && c->st->ops->exec(c->impl, "ROLLBACK") != TD_OK) {
        td_log(TD_LOG_WARN, "store", "rollback failed");
    }
}

int td_store_savepoint(td_store_conn_t *c)
{
    char sql[32];

    snprintf(sql, sizeof(sql), "SAVEPOINT sp%d", ++c->savepoints);
    return c->impl ? c->st->ops->exec(c->impl, sql) : TD_EIO;
}

int td_store_savepoint_release(td_store_conn_t *c)
{
    char sql[40];

    snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT sp%d", c->savepoints--);
    return c->impl ? c->st->ops->exec(c->impl, sql) : TD_EIO;
}

void td_store_savepoint_rollback(td_store_conn_t *c)
{
    char sql[64];

    snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT sp%d", c->savepoints);
    if (c->impl && c->st->ops->exec(c->impl, sql) != TD_OK) {
        td_log(TD_LOG_WARN, "store", "savepoint rollback failed");
    }
    snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT sp%d", c->savepoints--);
    if (c->impl && c->st->ops->exec(c->impl, sql) != TD_OK) {
        td_log(TD_LOG_WARN, "store", "savepoint release failed");
    }
}

int td_store_meta_get(td_store_conn_t *c, const char *key, char **value)
{
    return CALL(c, meta_get, key, value);
}

int td_store_meta_set(td_store_conn_t *c, const char *key, const char *value)
{
    return CALL(c, meta_set, key, value);
}

int td_store_identity_find(td_store_conn_t *c, const char *ns, const char *id, int64_t *profile_id)
{
    return CALL(c, identity_find, ns, id, profile_id);
}

int td_store_identity_link(td_store_conn_t *c, const char *ns, const char *id, int64_t profile_id,
                           int64_t now_ms)
{
    return CALL(c, identity_link, ns, id, profile_id, now_ms);
}

int td_store_profile_create(td_store_conn_t *c, int64_t now_ms, int64_t *profile_id)
{
    return CALL(c, profile_create, now_ms, profile_id);
}

int td_store_profile_merge(td_store_conn_t *c, int64_t from, int64_t into, int64_t now_ms)
{
    return CALL(c, profile_merge, from, into, now_ms);
}

int td_store_profile_resolve(td_store_conn_t *c, int64_t profile_id, int64_t *out)
{
    return CALL(c, profile_resolve, profile_id, out);
}

int td_store_profile_load(td_store_conn_t *c, int64_t profile_id, td_store_profile_t *out)
{
    return CALL(c, profile_load, profile_id, out);
}

int td_store_event_append(td_store_conn_t *c, const td_store_event_t *ev, int64_t *seq)
{
    return CALL(c, event_append, ev, seq);
}

int td_store_event_count(td_store_conn_t *c, int64_t *n)
{
    return CALL(c, event_count, n);
}

int td_store_events_scan(td_store_conn_t *c, int64_t after_seq, int limit,
                         td_store_scan_row_t **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    if (limit < 1 || c->impl == NULL || c->st->ops->events_scan == NULL) {
        return limit < 1 ? TD_EINVAL : TD_EIO;
    }
    return c->st->ops->events_scan(c->impl, after_seq, limit, rows, n);
}

void td_store_scan_rows_free(td_store_scan_row_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].type);
        free(rows[i].doc);
    }
    free(rows);
}

int td_store_event_seq_by_key(td_store_conn_t *c, const char *event_id, int64_t *seq)
{
    return CALL(c, event_seq_by_key, event_id, seq);
}

int td_store_viewed_trim(td_store_conn_t *c, int64_t profile_id, int max_kept)
{
    return CALL(c, viewed_trim, profile_id, max_kept);
}

int td_store_cart_add(td_store_conn_t *c, int64_t profile_id, const td_store_item_t *it)
{
    return CALL(c, cart_add, profile_id, it);
}

int td_store_cart_remove(td_store_conn_t *c, int64_t profile_id, const char *item_id,
                         int64_t quantity, bool remove_all)
{
    return CALL(c, cart_remove, profile_id, item_id, quantity, remove_all);
}

int td_store_cart_clear(td_store_conn_t *c, int64_t profile_id)
{
    return CALL(c, cart_clear, profile_id);
}

int td_store_viewed_add(td_store_conn_t *c, int64_t profile_id, const td_store_item_t *it,
                        int max_kept)
{
    return CALL(c, viewed_add, profile_id, it, max_kept);
}

int td_store_purchase_add(td_store_conn_t *c, int64_t profile_id, const td_store_purchase_t *p)
{
    return CALL(c, purchase_add, profile_id, p);
}

int td_store_consent_set(td_store_conn_t *c, int64_t profile_id, int value, int64_t ts_ms,
                         const char *source)
{
    return CALL(c, consent_set, profile_id, value, ts_ms, source);
}

static void release_items(td_store_item_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        free(items[i].id);
        free(items[i].name);
        free(items[i].category);
    }
    free(items);
}

void td_store_profile_release(td_store_profile_t *p)
{
    if (p == NULL) {
        return;
    }
    for (int i = 0; i < p->n_identities; i++) {
        free(p->identities[i].ns);
        free(p->identities[i].id);
    }
    free(p->identities);
    release_items(p->cart, p->n_cart);
    release_items(p->viewed, p->n_viewed);
    for (int i = 0; i < p->n_purchases; i++) {
        free(p->purchases[i].order_id);
        free(p->purchases[i].currency);
        free(p->purchases[i].items_json);
    }
    free(p->purchases);
    for (int i = 0; i < p->n_counts; i++) {
        free(p->counts[i].type);
    }
    free(p->counts);
    free(p->consent_source);
    memset(p, 0, sizeof(*p));
}
