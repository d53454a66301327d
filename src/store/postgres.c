/* The PostgreSQL backend: the same operations as sqlite.c over libpq, so
 * several Tandem nodes can share one database. Statements are prepared once
 * per connection. Migrations run under an advisory lock, so nodes starting
 * together apply each one exactly once. The password comes from libpq's own
 * PGPASSWORD / PGPASSFILE (or ~/.pgpass), never from a logged setting. */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrations.h"
#include "util/log.h"
#include "util/banned.h"

/* Arbitrary, fixed: the advisory lock key that serialises migrations. */
#define MIGRATION_LOCK_KEY 7418093

typedef struct backend {
    char *conninfo;
} backend_t;

static const char P_META_GET[] = "SELECT value FROM meta WHERE key = $1";
static const char P_META_SET[] = "INSERT INTO meta (key, value) VALUES ($1, $2) "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
static const char P_IDENT_FIND[] = "SELECT profile_id FROM identities WHERE ns = $1 AND id = $2";
/* the same, taking the next event's seq in the same round trip */
static const char P_IDENT_FIND_SEQ[] =
    "SELECT (SELECT profile_id FROM identities WHERE ns = $1 AND id = $2), "
    "nextval(pg_get_serial_sequence('events', 'seq'))";
static const char P_IDENT_LINK[] =
    "INSERT INTO identities (ns, id, profile_id, linked_ms) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (ns, id) DO NOTHING";
static const char P_PROFILE_NEW[] = "INSERT INTO profiles (created_ms) VALUES ($1) RETURNING id";
static const char P_PROFILE_RESOLVE[] =
    "SELECT coalesce(merged_into, id) FROM profiles WHERE id = $1";
static const char P_EVENT_ADD[] =
    "INSERT INTO events (event_id, type, profile_id, ts_ms, received_ms, doc) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) WHERE event_id IS NOT NULL "
    "DO NOTHING RETURNING seq";
/* with the seq taken ahead: nothing to wait for, so it is deferred */
static const char P_EVENT_ADD_SEQ[] =
    "INSERT INTO events (seq, event_id, type, profile_id, ts_ms, received_ms, doc) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)";
static const char P_EVENT_ADD_KEY_SEQ[] =
    "INSERT INTO events (seq, event_id, type, profile_id, ts_ms, received_ms, doc) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) WHERE event_id IS NOT NULL "
    "DO NOTHING RETURNING seq";
static const char P_EVENT_BY_KEY[] = "SELECT seq FROM events WHERE event_id = $1";
static const char P_EVENT_COUNT[] = "SELECT count(*) FROM events";
static const char P_CART_ADD[] =
    "INSERT INTO cart (profile_id, item_id, name, category, price, quantity, added_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (profile_id, item_id) DO UPDATE "
    "SET quantity = cart.quantity + excluded.quantity, name = coalesce(excluded.name, cart.name), "
    "category = coalesce(excluded.category, cart.category), "
    "price = coalesce(excluded.price, cart.price), added_ms = excluded.added_ms";
static const char P_CART_DEC[] =
    "UPDATE cart SET quantity = quantity - $3 WHERE profile_id = $1 AND item_id = $2";
static const char P_CART_DROP[] =
    "DELETE FROM cart WHERE profile_id = $1 AND (item_id = $2 OR quantity <= 0)";
static const char P_CART_CLEAR[] = "DELETE FROM cart WHERE profile_id = $1";
static const char P_VIEWED_ADD[] =
    "INSERT INTO viewed (profile_id, item_id, name, category, price, ts_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (profile_id, item_id) DO UPDATE "
    "SET name = coalesce(excluded.name, viewed.name), "
    "category = coalesce(excluded.category, viewed.category), "
    "price = coalesce(excluded.price, viewed.price), "
    "ts_ms = greatest(viewed.ts_ms, excluded.ts_ms)";
/* by rank, not by time: items viewed at the same instant count one by one */
static const char P_VIEWED_TRIM[] =
    "DELETE FROM viewed WHERE profile_id = $1 AND item_id NOT IN (SELECT item_id FROM viewed "
    "WHERE profile_id = $1 ORDER BY ts_ms DESC, item_id LIMIT $2)";
static const char P_PURCHASE_ADD[] =
    "INSERT INTO purchases (profile_id, order_id, ts_ms, total, currency, items) "
    "VALUES ($1, $2, $3, $4, $5, $6)";
static const char P_CONSENT_SET[] =
    "INSERT INTO consent (profile_id, channel, value, ts_ms, source) "
    "VALUES ($1, 'marketing', $2, $3, $4) ON CONFLICT (profile_id, channel) "
    "DO UPDATE SET value = excluded.value, ts_ms = excluded.ts_ms, source = excluded.source "
    "WHERE excluded.ts_ms >= consent.ts_ms";
static const char P_LOAD_PROFILE[] = "SELECT created_ms FROM profiles WHERE id = $1";
static const char P_LOAD_IDENTS[] =
    "SELECT ns, id, linked_ms FROM identities WHERE profile_id = $1 ORDER BY ns, linked_ms";
static const char P_LOAD_CART[] =
    "SELECT item_id, name, category, price, quantity, added_ms FROM cart "
    "WHERE profile_id = $1 ORDER BY added_ms, item_id";
static const char P_LOAD_VIEWED[] = "SELECT item_id, name, category, price, 1, ts_ms FROM viewed "
                                    "WHERE profile_id = $1 ORDER BY ts_ms DESC, item_id";
static const char P_LOAD_PURCHASES[] =
    "SELECT order_id, ts_ms, total, currency, items FROM purchases "
    "WHERE profile_id = $1 ORDER BY ts_ms DESC LIMIT 100";
static const char P_LOAD_COUNTS[] =
    "SELECT type, count(*) FROM events WHERE profile_id = $1 GROUP BY type ORDER BY type";
static const char P_LOAD_LAST[] = "SELECT max(ts_ms) FROM events WHERE profile_id = $1";
static const char P_LOAD_CONSENT[] =
    "SELECT value, ts_ms, source FROM consent WHERE profile_id = $1 AND channel = 'marketing'";

static int connect_db(const char *conninfo, PGconn **out, td_err_t *err)
{
    PGconn *pg = PQconnectdb(conninfo);

    if (PQstatus(pg) != CONNECTION_OK) {
        int rc = td_err_set(err, TD_EIO, "store",
                            "cannot connect to PostgreSQL: %s(check the store URL; the password "
                            "comes from PGPASSWORD or PGPASSFILE)",
                            PQerrorMessage(pg));
        PQfinish(pg);
        return rc;
    }
    PGresult *r = PQexec(pg, "SET client_min_messages = warning");
    PQclear(r);
    *out = pg;
    return TD_OK;
}

static int migrate(td_pg_conn_t *c, td_err_t *err)
{
    char lock[96];
    int rc;

    snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%d)", MIGRATION_LOCK_KEY);
    if ((rc = td_store__pg_exec(c, lock)) != TD_OK) {
        return td_err_set(err, rc, "store", "cannot take the migration lock");
    }
    rc = td_store__pg_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              "name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)");
    for (const td_migration_t *m = td_store__migrations; rc == TD_OK && m->name; m++) {
        static const char q[] = "SELECT 1 FROM schema_migrations WHERE name = $1";
        static const char ins[] = "INSERT INTO schema_migrations (name, applied_ms) VALUES "
                                  "($1, (extract(epoch FROM now()) * 1000)::bigint)";
        td_pg_params_t p = { 0 };
        int64_t one;
        if (strcmp(m->backend, "postgres") != 0) {
            continue;
        }
        td_pg_param_text(&p, m->name);
        rc = td_store__pg_query_int(c, q, &p, &one);
        if (rc == TD_OK) {
            continue;
        }
        if (rc != TD_ENOTFOUND) {
            break;
        }
        td_log(TD_LOG_INFO, "store", "migrate name=%s backend=postgres", m->name);
        if ((rc = td_store__pg_exec(c, "BEGIN")) != TD_OK) {
            break;
        }
        if ((rc = td_store__pg_exec(c, m->sql)) == TD_OK &&
            (rc = td_store__pg_run(c, ins, &p)) == TD_OK) {
            rc = td_store__pg_exec(c, "COMMIT");
        } else {
            td_store__pg_exec(c, "ROLLBACK");
        }
    }
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%d)", MIGRATION_LOCK_KEY);
    if (td_store__pg_exec(c, lock) != TD_OK && rc == TD_OK) {
        rc = TD_EIO;
    }
    if (rc != TD_OK) {
        return td_err_set(err, rc, "store", "database migration failed: %s", PQerrorMessage(c->pg));
    }
    return TD_OK;
}

static int pg_open(const char *url, const td_store_options_t *opt, void **out, td_err_t *err)
{
    backend_t *b = td_xcalloc(1, sizeof(*b));
    td_pg_conn_t c = { 0 };
    int rc;

    (void)opt;
    b->conninfo = td_xstrdup(url);
    if ((rc = connect_db(b->conninfo, &c.pg, err)) != TD_OK) {
        free(b->conninfo);
        free(b);
        return rc;
    }
    rc = migrate(&c, err);
    PQfinish(c.pg);
    if (rc != TD_OK) {
        free(b->conninfo);
        free(b);
        return rc;
    }
    *out = b;
    return TD_OK;
}

static void pg_close(void *backend)
{
    backend_t *b = backend;

    if (b) {
        free(b->conninfo);
        free(b);
    }
}

static int pg_conn_open(void *backend, void **out, td_err_t *err)
{
    backend_t *b = backend;
    td_pg_conn_t *c = td_xcalloc(1, sizeof(*c));
    int rc = connect_db(b->conninfo, &c->pg, err);

    if (rc != TD_OK) {
        free(c);
        return rc;
    }
    *out = c;
    return TD_OK;
}

static void pg_conn_close(void *conn)
{
    td_pg_conn_t *c = conn;

    if (c) {
        PQfinish(c->pg);
        free(c);
    }
}

static int pg_exec_sql(void *conn, const char *sql)
{
    return td_store__pg_exec(conn, sql);
}

static int pg_meta_get(void *conn, const char *key, char **value)
{
    td_pg_params_t p = { 0 };
    int rc;
    PGresult *r;

    td_pg_param_text(&p, key);
    if ((r = td_store__pg_query(conn, P_META_GET, &p, &rc)) == NULL) {
        return rc;
    }
    rc = PQntuples(r) ? TD_OK : TD_ENOTFOUND;
    if (rc == TD_OK) {
        *value = td_pg_get_text(r, 0, 0);
    }
    PQclear(r);
    return rc;
}

static int pg_meta_set(void *conn, const char *key, const char *value)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, key);
    td_pg_param_text(&p, value);
    return td_store__pg_run(conn, P_META_SET, &p);
}

/* Inside a transaction an identity lookup is mostly the start of storing an
 * event, whose insert then needs no answer: the lookup takes the event's seq
 * along (a seq left unused is a gap, as after a rollback). */
static int pg_identity_find(void *conn, const char *ns, const char *id, int64_t *profile_id)
{
    td_pg_conn_t *c = conn;
    td_pg_params_t p = { 0 };
    int rc;

    td_pg_param_text(&p, ns);
    td_pg_param_text(&p, id);
    if (!c->in_tx || c->seq_ahead != 0) {
        return td_store__pg_query_int(conn, P_IDENT_FIND, &p, profile_id);
    }
    PGresult *r = td_store__pg_query(c, P_IDENT_FIND_SEQ, &p, &rc);
    if (r == NULL) {
        return rc;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return TD_EIO;
    }
    c->seq_ahead = td_pg_get_int(r, 0, 1);
    rc = PQgetisnull(r, 0, 0) ? TD_ENOTFOUND : TD_OK;
    if (rc == TD_OK) {
        *profile_id = td_pg_get_int(r, 0, 0);
    }
    PQclear(r);
    return rc;
}

static int pg_identity_link(void *conn, const char *ns, const char *id, int64_t profile_id,
                            int64_t now_ms)
{
    td_pg_params_t p = { 0 };
    int rc;

    td_pg_param_text(&p, ns);
    td_pg_param_text(&p, id);
    td_pg_param_int(&p, profile_id);
    td_pg_param_int(&p, now_ms);
    PGresult *r = td_store__pg_query(conn, P_IDENT_LINK, &p, &rc);
    if (r == NULL) {
        return rc;
    }
    rc = strcmp(PQcmdTuples(r), "0") == 0 ? TD_ECONFLICT : TD_OK;
    PQclear(r);
    return rc;
}

static int pg_profile_create(void *conn, int64_t now_ms, int64_t *profile_id)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, now_ms);
    return td_store__pg_query_int(conn, P_PROFILE_NEW, &p, profile_id);
}

static int pg_profile_merge(void *conn, int64_t from, int64_t into, int64_t now_ms)
{
    static const char *const sql[] = {
        "UPDATE identities SET profile_id = $2 WHERE profile_id = $1",
        "UPDATE events SET profile_id = $2 WHERE profile_id = $1",
        "INSERT INTO cart (profile_id, item_id, name, category, price, quantity, added_ms) "
        "SELECT $2, item_id, name, category, price, quantity, added_ms FROM cart "
        "WHERE profile_id = $1 ON CONFLICT (profile_id, item_id) DO UPDATE SET "
        "quantity = cart.quantity + excluded.quantity, "
        "added_ms = greatest(cart.added_ms, excluded.added_ms)",
        "DELETE FROM cart WHERE profile_id = $1 AND $2::bigint IS NOT NULL",
        "INSERT INTO viewed (profile_id, item_id, name, category, price, ts_ms) "
        "SELECT $2, item_id, name, category, price, ts_ms FROM viewed WHERE profile_id = $1 "
        "ON CONFLICT (profile_id, item_id) DO UPDATE SET "
        "ts_ms = greatest(viewed.ts_ms, excluded.ts_ms)",
        "DELETE FROM viewed WHERE profile_id = $1 AND $2::bigint IS NOT NULL",
        "UPDATE purchases SET profile_id = $2 WHERE profile_id = $1",
        "INSERT INTO consent (profile_id, channel, value, ts_ms, source) "
        "SELECT $2, channel, value, ts_ms, source FROM consent WHERE profile_id = $1 "
        "ON CONFLICT (profile_id, channel) DO UPDATE SET value = excluded.value, "
        "ts_ms = excluded.ts_ms, source = excluded.source WHERE excluded.ts_ms > consent.ts_ms",
        "DELETE FROM consent WHERE profile_id = $1 AND $2::bigint IS NOT NULL",
        "UPDATE profiles SET merged_into = $2 WHERE id = $1 OR merged_into = $1",
    };
    int rc = TD_OK;

    (void)now_ms;
    for (size_t i = 0; i < TD_ARRAY_LEN(sql) && rc == TD_OK; i++) {
        td_pg_params_t p = { 0 };
        td_pg_param_int(&p, from);
        td_pg_param_int(&p, into);
        rc = td_store__pg_run(conn, sql[i], &p);
    }
    return rc;
}

static int pg_profile_resolve(void *conn, int64_t profile_id, int64_t *out)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    return td_store__pg_query_int(conn, P_PROFILE_RESOLVE, &p, out);
}

static int pg_event_append(void *conn, const td_store_event_t *ev, int64_t *seq)
{
    td_pg_conn_t *c = conn;
    td_pg_params_t p = { 0 };
    const char *sql = P_EVENT_ADD;
    int64_t ahead = c->in_tx ? c->seq_ahead : 0;
    int rc;

    if (ahead != 0) {
        sql = ev->event_id ? P_EVENT_ADD_KEY_SEQ : P_EVENT_ADD_SEQ;
        td_pg_param_int(&p, ahead);
        c->seq_ahead = 0;
    }
    td_pg_param_text(&p, ev->event_id);
    td_pg_param_text(&p, ev->type);
    td_pg_param_int(&p, ev->profile_id);
    td_pg_param_int(&p, ev->ts_ms);
    td_pg_param_int(&p, ev->received_ms);
    td_pg_param_text(&p, ev->doc);
    if (sql == P_EVENT_ADD_SEQ) {
        /* without an idempotency key the insert cannot conflict */
        *seq = ahead;
        return td_store__pg_defer(c, sql, &p);
    }
    rc = td_store__pg_query_int(conn, sql, &p, seq);
    if (rc == TD_ENOTFOUND && ev->event_id) {
        /* DO NOTHING returned no row: the event_id was stored before */
        td_pg_params_t q = { 0 };
        td_pg_param_text(&q, ev->event_id);
        return td_store__pg_query_int(conn, P_EVENT_BY_KEY, &q, seq) == TD_OK ? TD_ECONFLICT
                                                                              : TD_EIO;
    }
    return rc;
}

static int pg_event_count(void *conn, int64_t *n)
{
    return td_store__pg_query_int(conn, P_EVENT_COUNT, NULL, n);
}

static int pg_events_scan(void *conn, int64_t after_seq, int limit, td_store_scan_row_t **rows,
                          int *n)
{
    td_pg_params_t p = { 0 };
    int rc;
    PGresult *r;

    td_pg_param_int(&p, after_seq);
    td_pg_param_int(&p, limit);
    r = td_store__pg_query(conn,
                           "SELECT seq, profile_id, ts_ms, type, doc FROM events WHERE seq > $1 "
                           "ORDER BY seq LIMIT $2",
                           &p, &rc);
    if (r == NULL) {
        return rc;
    }
    int nt = PQntuples(r);
    if (nt > 0) {
        *rows = td_xcalloc((size_t)nt, sizeof(**rows));
        for (int i = 0; i < nt; i++) {
            td_store_scan_row_t *row = &(*rows)[i];
            row->seq = td_pg_get_int(r, i, 0);
            row->profile_id = td_pg_get_int(r, i, 1);
            row->ts_ms = td_pg_get_int(r, i, 2);
            row->type = td_pg_get_text(r, i, 3);
            row->doc = td_pg_get_text(r, i, 4);
        }
    }
    *n = nt;
    PQclear(r);
    return TD_OK;
}

static void param_item(td_pg_params_t *p, int64_t profile_id, const td_store_item_t *it)
{
    td_pg_param_int(p, profile_id);
    td_pg_param_text(p, it->id);
    td_pg_param_text(p, it->name);
    td_pg_param_text(p, it->category);
    td_pg_param_double(p, it->price, it->has_price);
}

static int pg_cart_add(void *conn, int64_t profile_id, const td_store_item_t *it)
{
    td_pg_params_t p = { 0 };

    param_item(&p, profile_id, it);
    td_pg_param_int(&p, it->quantity);
    td_pg_param_int(&p, it->ts_ms);
    return td_store__pg_defer(conn, P_CART_ADD, &p);
}

static int pg_cart_remove(void *conn, int64_t profile_id, const char *item_id, int64_t quantity,
                          bool remove_all)
{
    td_pg_params_t p = { 0 };
    int rc;

    if (!remove_all) {
        td_pg_param_int(&p, profile_id);
        td_pg_param_text(&p, item_id);
        td_pg_param_int(&p, quantity);
        if ((rc = td_store__pg_defer(conn, P_CART_DEC, &p)) != TD_OK) {
            return rc;
        }
        p = (td_pg_params_t){ 0 };
    }
    td_pg_param_int(&p, profile_id);
    td_pg_param_text(&p, remove_all ? item_id : NULL);
    return td_store__pg_defer(conn, P_CART_DROP, &p);
}

static int pg_cart_clear(void *conn, int64_t profile_id)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    return td_store__pg_defer(conn, P_CART_CLEAR, &p);
}

static int pg_viewed_trim(void *conn, int64_t profile_id, int max_kept)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    td_pg_param_int(&p, max_kept);
    return td_store__pg_defer(conn, P_VIEWED_TRIM, &p);
}

static int pg_event_seq_by_key(void *conn, const char *event_id, int64_t *seq)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, event_id);
    return td_store__pg_query_int(conn, P_EVENT_BY_KEY, &p, seq);
}

static int pg_viewed_add(void *conn, int64_t profile_id, const td_store_item_t *it, int max_kept)
{
    td_pg_params_t p = { 0 };
    int rc;

    param_item(&p, profile_id, it);
    td_pg_param_int(&p, it->ts_ms);
    if ((rc = td_store__pg_defer(conn, P_VIEWED_ADD, &p)) != TD_OK) {
        return rc;
    }
    return pg_viewed_trim(conn, profile_id, max_kept);
}

static int pg_purchase_add(void *conn, int64_t profile_id, const td_store_purchase_t *pu)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    td_pg_param_text(&p, pu->order_id);
    td_pg_param_int(&p, pu->ts_ms);
    td_pg_param_double(&p, pu->total, pu->has_total);
    td_pg_param_text(&p, pu->currency);
    td_pg_param_text(&p, pu->items_json ? pu->items_json : "[]");
    return td_store__pg_defer(conn, P_PURCHASE_ADD, &p);
}

static int pg_consent_set(void *conn, int64_t profile_id, int value, int64_t ts_ms,
                          const char *source)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    td_pg_param_int(&p, value);
    td_pg_param_int(&p, ts_ms);
    td_pg_param_text(&p, source);
    return td_store__pg_defer(conn, P_CONSENT_SET, &p);
}

static int load_items(td_pg_conn_t *c, const char *sql, int64_t pid, td_store_item_t **out, int *n)
{
    td_pg_params_t p = { 0 };
    int rc;
    PGresult *r;

    td_pg_param_int(&p, pid);
    if ((r = td_store__pg_query(c, sql, &p, &rc)) == NULL) {
        return rc;
    }
    *n = PQntuples(r);
    *out = td_xcalloc((size_t)*n, sizeof(td_store_item_t));
    for (int i = 0; i < *n; i++) {
        td_store_item_t *it = &(*out)[i];
        it->id = td_pg_get_text(r, i, 0);
        it->name = td_pg_get_text(r, i, 1);
        it->category = td_pg_get_text(r, i, 2);
        it->has_price = !td_pg_is_null(r, i, 3);
        it->price = it->has_price ? td_pg_get_double(r, i, 3) : 0;
        it->quantity = td_pg_get_int(r, i, 4);
        it->ts_ms = td_pg_get_int(r, i, 5);
    }
    PQclear(r);
    return TD_OK;
}

static int load_rest(td_pg_conn_t *c, int64_t pid, td_store_profile_t *pr)
{
    td_pg_params_t p = { 0 };
    int rc;
    PGresult *r;

    td_pg_param_int(&p, pid);
    if ((r = td_store__pg_query(c, P_LOAD_IDENTS, &p, &rc)) == NULL) {
        return rc;
    }
    pr->n_identities = PQntuples(r);
    pr->identities = td_xcalloc((size_t)pr->n_identities, sizeof(td_store_identity_t));
    for (int i = 0; i < pr->n_identities; i++) {
        pr->identities[i].ns = td_pg_get_text(r, i, 0);
        pr->identities[i].id = td_pg_get_text(r, i, 1);
        pr->identities[i].linked_ms = td_pg_get_int(r, i, 2);
    }
    PQclear(r);
    if ((rc = load_items(c, P_LOAD_CART, pid, &pr->cart, &pr->n_cart)) != TD_OK ||
        (rc = load_items(c, P_LOAD_VIEWED, pid, &pr->viewed, &pr->n_viewed)) != TD_OK) {
        return rc;
    }
    if ((r = td_store__pg_query(c, P_LOAD_PURCHASES, &p, &rc)) == NULL) {
        return rc;
    }
    pr->n_purchases = PQntuples(r);
    pr->purchases = td_xcalloc((size_t)pr->n_purchases, sizeof(td_store_purchase_t));
    for (int i = 0; i < pr->n_purchases; i++) {
        td_store_purchase_t *pu = &pr->purchases[i];
        pu->order_id = td_pg_get_text(r, i, 0);
        pu->ts_ms = td_pg_get_int(r, i, 1);
        pu->has_total = !td_pg_is_null(r, i, 2);
        pu->total = pu->has_total ? td_pg_get_double(r, i, 2) : 0;
        pu->currency = td_pg_get_text(r, i, 3);
        pu->items_json = td_pg_get_text(r, i, 4);
    }
    PQclear(r);
    if ((r = td_store__pg_query(c, P_LOAD_COUNTS, &p, &rc)) == NULL) {
        return rc;
    }
    pr->n_counts = PQntuples(r);
    pr->counts = td_xcalloc((size_t)pr->n_counts, sizeof(td_store_count_t));
    for (int i = 0; i < pr->n_counts; i++) {
        pr->counts[i].type = td_pg_get_text(r, i, 0);
        pr->counts[i].n = td_pg_get_int(r, i, 1);
    }
    PQclear(r);
    if ((rc = td_store__pg_query_int(c, P_LOAD_LAST, &p, &pr->last_event_ms)) != TD_OK &&
        rc != TD_ENOTFOUND) {
        return rc;
    }
    if ((r = td_store__pg_query(c, P_LOAD_CONSENT, &p, &rc)) == NULL) {
        return rc;
    }
    if (PQntuples(r) > 0) {
        pr->consent_marketing = (int)td_pg_get_int(r, 0, 0);
        pr->consent_ms = td_pg_get_int(r, 0, 1);
        pr->consent_source = td_pg_get_text(r, 0, 2);
    }
    PQclear(r);
    return TD_OK;
}

static int pg_profile_load(void *conn, int64_t profile_id, td_store_profile_t *pr)
{
    td_pg_conn_t *c = conn;
    bool own_tx = !c->in_tx && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    td_pg_params_t p = { 0 };
    int rc;

    memset(pr, 0, sizeof(*pr));
    pr->id = profile_id;
    /* one snapshot for all the parts */
    if (own_tx &&
        (rc = td_store__pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) != TD_OK) {
        return rc;
    }
    td_pg_param_int(&p, profile_id);
    rc = td_store__pg_query_int(c, P_LOAD_PROFILE, &p, &pr->created_ms);
    if (rc == TD_OK) {
        rc = load_rest(c, profile_id, pr);
    }
    if (own_tx) {
        td_store__pg_exec(c, rc == TD_OK ? "COMMIT" : "ROLLBACK");
    }
    if (rc != TD_OK) {
        td_store_profile_release(pr);
    }
    return rc;
}

const td_store_ops_t td_store_postgres_ops = {
    .domains = { [TD_STORE_DOMAIN_CATALOG] = &td_store_postgres_catalog_ops,
                 [TD_STORE_DOMAIN_RECO] = &td_store_postgres_reco_ops,
                 [TD_STORE_DOMAIN_JOURNEY] = &td_store_postgres_journey_ops,
                 [TD_STORE_DOMAIN_MESSAGE] = &td_store_postgres_message_ops },
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .conn_open = pg_conn_open,
    .conn_close = pg_conn_close,
    .exec = pg_exec_sql,
    .meta_get = pg_meta_get,
    .meta_set = pg_meta_set,
    .identity_find = pg_identity_find,
    .identity_link = pg_identity_link,
    .profile_create = pg_profile_create,
    .profile_merge = pg_profile_merge,
    .profile_resolve = pg_profile_resolve,
    .profile_load = pg_profile_load,
    .event_append = pg_event_append,
    .event_count = pg_event_count,
    .event_seq_by_key = pg_event_seq_by_key,
    .cart_add = pg_cart_add,
    .cart_remove = pg_cart_remove,
    .cart_clear = pg_cart_clear,
    .viewed_add = pg_viewed_add,
    .viewed_trim = pg_viewed_trim,
    .purchase_add = pg_purchase_add,
    .consent_set = pg_consent_set,
    .events_scan = pg_events_scan,
};
