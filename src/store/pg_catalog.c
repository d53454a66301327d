/* The PostgreSQL side of the catalog: entities, the tombstones of deleted
 * ones, and the catalog sequence number (see "Catalog" in store.h), with the
 * same behaviour as sqlite_catalog.c.
 *
 * Several nodes may write the catalog at once, where SQLite has one writer
 * at a time. What keeps the sequence number honest is the counter row in
 * catalog_state: a writer locks it (seq_get inside a transaction, or
 * seq_next) and keeps the lock until it commits, so catalog writers take
 * turns, numbers commit in the order they were handed out, and a poller
 * that read N has seen every change stamped N or less. */
#include "store/pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define TOMBSTONE_KEEP_MS (24 * 3600 * 1000LL)
/* Rows fetched per round trip by a scan: a whole catalog is never held in
 * one result. */
#define SCAN_BATCH  "1000"
#define SCAN_CURSOR "td_catalog_scan"

#define COLS                                                                                    \
    "id, name, categories, brand, page_url, thumbnail_url, message, value, inventory, margin, " \
    "attrs, environment, updated_ms, change_seq"

#define TOMB_UPSERT                                                     \
    "ON CONFLICT (id) DO UPDATE SET change_seq = excluded.change_seq, " \
    "deleted_ms = excluded.deleted_ms"

static const char P_SEQ_NEXT[] = "UPDATE catalog_state SET seq = seq + 1 WHERE k = 1 RETURNING seq";
static const char P_SEQ_GET[] = "SELECT seq FROM catalog_state WHERE k = 1";
/* Inside a transaction the caller is about to write (it catches up, then
 * takes the next number): lock the counter now, so that no other writer
 * commits between what it read and the number it gets. */
static const char P_SEQ_GET_LOCK[] = "SELECT seq FROM catalog_state WHERE k = 1 FOR UPDATE";
static const char P_TOMB_PRUNE[] = "DELETE FROM catalog_tombstones WHERE deleted_ms < $1";
static const char P_GET[] = "SELECT " COLS " FROM catalog_entities WHERE id = $1";
/* The whole row is replaced, as SQLite's INSERT OR REPLACE does. */
static const char P_PUT[] =
    "INSERT INTO catalog_entities (" COLS ") VALUES "
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, categories = excluded.categories, "
    "brand = excluded.brand, page_url = excluded.page_url, "
    "thumbnail_url = excluded.thumbnail_url, message = excluded.message, "
    "value = excluded.value, inventory = excluded.inventory, margin = excluded.margin, "
    "attrs = excluded.attrs, environment = excluded.environment, "
    "updated_ms = excluded.updated_ms, change_seq = excluded.change_seq";
/* Deletes and their tombstones in one statement: the INSERT's row count is
 * the number of entities deleted. */
static const char P_DELETE[] =
    "WITH d AS (DELETE FROM catalog_entities WHERE id = $1 RETURNING id) "
    "INSERT INTO catalog_tombstones (id, change_seq, deleted_ms) "
    "SELECT id, $2::bigint, $3::bigint FROM d " TOMB_UPSERT;
static const char P_SCAN_ALL[] =
    "DECLARE " SCAN_CURSOR " NO SCROLL CURSOR FOR SELECT " COLS " FROM catalog_entities";
static const char P_SCAN_SINCE[] = "DECLARE " SCAN_CURSOR " NO SCROLL CURSOR FOR SELECT " COLS
                                   " FROM catalog_entities WHERE change_seq > $1::bigint";
static const char P_SCAN_FETCH[] = "FETCH " SCAN_BATCH " FROM " SCAN_CURSOR;
static const char P_SCAN_CLOSE[] = "CLOSE " SCAN_CURSOR;
static const char P_DELETED_SINCE[] = "SELECT id FROM catalog_tombstones WHERE change_seq > $1";
static const char P_COUNT[] = "SELECT count(*) FROM catalog_entities";
static const char P_DELETE_UNSTAMPED[] =
    "WITH d AS (DELETE FROM catalog_entities WHERE change_seq <> $1::bigint "
    "AND ($2::bigint = 0 OR environment = $2::bigint) RETURNING id) "
    "INSERT INTO catalog_tombstones (id, change_seq, deleted_ms) "
    "SELECT id, $1::bigint, $3::bigint FROM d " TOMB_UPSERT;
static const char P_ZERO_UNSTAMPED[] =
    "UPDATE catalog_entities SET inventory = 0, change_seq = $1::bigint "
    "WHERE change_seq <> $1::bigint AND ($2::bigint = 0 OR environment = $2::bigint)";
static const char P_DELETE_EXPIRED[] =
    "WITH d AS (DELETE FROM catalog_entities WHERE updated_ms < $1::bigint RETURNING id) "
    "INSERT INTO catalog_tombstones (id, change_seq, deleted_ms) "
    "SELECT id, $2::bigint, $3::bigint FROM d " TOMB_UPSERT;

static bool in_transaction(td_pg_conn_t *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->pg);

    return c->in_tx || t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int pgc_seq_next(void *conn, int64_t now_ms, int64_t *seq)
{
    td_pg_params_t p = { 0 };
    int rc;

    /* the counter first: its lock orders this transaction after any other
     * writer's before anything else is touched */
    if ((rc = td_store__pg_query_int(conn, P_SEQ_NEXT, NULL, seq)) != TD_OK) {
        return rc;
    }
    td_pg_param_int(&p, now_ms - TOMBSTONE_KEEP_MS);
    return td_store__pg_run(conn, P_TOMB_PRUNE, &p);
}

static int pgc_seq_get(void *conn, int64_t *seq)
{
    return td_store__pg_query_int(conn, in_transaction(conn) ? P_SEQ_GET_LOCK : P_SEQ_GET, NULL,
                                  seq);
}

static const char *text_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* Row i of r as an entity whose strings point into r. */
static void read_row(const PGresult *r, int i, td_store_entity_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = text_or_null(r, i, 0);
    e->name = text_or_null(r, i, 1);
    e->categories = text_or_null(r, i, 2);
    e->brand = text_or_null(r, i, 3);
    e->page_url = text_or_null(r, i, 4);
    e->thumbnail_url = text_or_null(r, i, 5);
    e->message = text_or_null(r, i, 6);
    e->has_value = !td_pg_is_null(r, i, 7);
    e->value = e->has_value ? td_pg_get_double(r, i, 7) : 0;
    e->has_inventory = !td_pg_is_null(r, i, 8);
    e->inventory = e->has_inventory ? td_pg_get_double(r, i, 8) : 0;
    e->has_margin = !td_pg_is_null(r, i, 9);
    e->margin = e->has_margin ? td_pg_get_double(r, i, 9) : 0;
    e->attrs = text_or_null(r, i, 10);
    e->environment = td_pg_get_int(r, i, 11);
    e->updated_ms = td_pg_get_int(r, i, 12);
    e->change_seq = td_pg_get_int(r, i, 13);
}

/* Hands each row of r to fn; stops at fn's first non-zero return. */
static int each_row(const PGresult *r, td_store_entity_fn fn, void *ctx)
{
    td_store_entity_t e;

    for (int i = 0; i < PQntuples(r); i++) {
        int urc;
        read_row(r, i, &e);
        if ((urc = fn(ctx, &e)) != 0) {
            return urc;
        }
    }
    return TD_OK;
}

static int pgc_entity_get(void *conn, const char *id, td_store_entity_fn fn, void *ctx)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, id);
    if ((r = td_store__pg_query(conn, P_GET, &p, &rc)) == NULL) {
        return rc;
    }
    rc = PQntuples(r) == 0 ? TD_ENOTFOUND : each_row(r, fn, ctx);
    PQclear(r);
    return rc;
}

static int pgc_entity_put(void *conn, const td_store_entity_t *e)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, e->id);
    td_pg_param_text(&p, e->name);
    td_pg_param_text(&p, e->categories);
    td_pg_param_text(&p, e->brand);
    td_pg_param_text(&p, e->page_url);
    td_pg_param_text(&p, e->thumbnail_url);
    td_pg_param_text(&p, e->message);
    td_pg_param_double(&p, e->value, e->has_value);
    td_pg_param_double(&p, e->inventory, e->has_inventory);
    td_pg_param_double(&p, e->margin, e->has_margin);
    td_pg_param_text(&p, e->attrs);
    td_pg_param_int(&p, e->environment);
    td_pg_param_int(&p, e->updated_ms);
    td_pg_param_int(&p, e->change_seq);
    return td_store__pg_run(conn, P_PUT, &p);
}

/* Runs sql with up to three integer parameters (n of them); *changes gets
 * the number of rows it wrote. */
static int run_ints(td_pg_conn_t *c, const char *sql, int n, int64_t a, int64_t b, int64_t d,
                    int64_t *changes)
{
    const int64_t v[3] = { a, b, d };
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    for (int i = 0; i < n; i++) {
        td_pg_param_int(&p, v[i]);
    }
    if ((r = td_store__pg_query(c, sql, &p, &rc)) == NULL) {
        return rc;
    }
    if (changes) {
        *changes = strtoll(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    return TD_OK;
}

static int pgc_entity_delete(void *conn, const char *id, int64_t seq, int64_t now_ms)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, id);
    td_pg_param_int(&p, seq);
    td_pg_param_int(&p, now_ms);
    if ((r = td_store__pg_query(conn, P_DELETE, &p, &rc)) == NULL) {
        return rc;
    }
    rc = strtoll(PQcmdTuples(r), NULL, 10) == 0 ? TD_ENOTFOUND : TD_OK;
    PQclear(r);
    return rc;
}

/* Fetches the open scan cursor batch by batch into fn. */
static int fetch_all(td_pg_conn_t *c, td_store_entity_fn fn, void *ctx)
{
    for (;;) {
        int rc, n;
        PGresult *r = td_store__pg_query(c, P_SCAN_FETCH, NULL, &rc);
        if (r == NULL) {
            return rc;
        }
        n = PQntuples(r);
        rc = each_row(r, fn, ctx);
        PQclear(r);
        if (rc != TD_OK || n == 0) {
            return rc;
        }
    }
}

static int pgc_entity_scan(void *conn, int64_t after_seq, td_store_entity_fn fn, void *ctx)
{
    td_pg_conn_t *c = conn;
    bool own_tx = !in_transaction(c);
    td_pg_params_t p = { 0 };
    int rc;

    /* a cursor lives in a transaction: outside the caller's, one of ours,
     * read only, which also gives the scan a single snapshot */
    if (own_tx && (rc = td_store__pg_exec(c, "BEGIN READ ONLY")) != TD_OK) {
        return rc;
    }
    if (after_seq > 0) {
        td_pg_param_int(&p, after_seq);
    }
    rc = td_store__pg_run(c, after_seq > 0 ? P_SCAN_SINCE : P_SCAN_ALL, &p);
    if (rc == TD_OK) {
        rc = fetch_all(c, fn, ctx);
        /* a failed statement aborted the transaction and the cursor with it */
        if (PQtransactionStatus(c->pg) == PQTRANS_INTRANS) {
            int crc = td_store__pg_run(c, P_SCAN_CLOSE, NULL);
            rc = rc != TD_OK ? rc : crc;
        }
    }
    if (own_tx) {
        td_store__pg_exec(c, rc == TD_OK ? "COMMIT" : "ROLLBACK");
    }
    return rc;
}

static int pgc_entity_deleted_since(void *conn, int64_t after_seq, td_store_id_fn fn, void *ctx)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_int(&p, after_seq);
    if ((r = td_store__pg_query(conn, P_DELETED_SINCE, &p, &rc)) == NULL) {
        return rc;
    }
    for (int i = 0; i < PQntuples(r) && rc == TD_OK; i++) {
        rc = fn(ctx, PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc;
}

static int pgc_entity_count(void *conn, int64_t *n)
{
    return td_store__pg_query_int(conn, P_COUNT, NULL, n);
}

static int pgc_entity_delete_unstamped(void *conn, int64_t seq, int64_t environment, int64_t now_ms,
                                       int64_t *n)
{
    return run_ints(conn, P_DELETE_UNSTAMPED, 3, seq, environment, now_ms, n);
}

static int pgc_entity_zero_unstamped(void *conn, int64_t seq, int64_t environment, int64_t *n)
{
    return run_ints(conn, P_ZERO_UNSTAMPED, 2, seq, environment, 0, n);
}

static int pgc_entity_delete_expired(void *conn, int64_t before_ms, int64_t seq, int64_t now_ms,
                                     int64_t *n)
{
    return run_ints(conn, P_DELETE_EXPIRED, 3, before_ms, seq, now_ms, n);
}

const td_store_catalog_ops_t td_store_postgres_catalog_ops = {
    .seq_next = pgc_seq_next,
    .seq_get = pgc_seq_get,
    .entity_get = pgc_entity_get,
    .entity_put = pgc_entity_put,
    .entity_delete = pgc_entity_delete,
    .entity_scan = pgc_entity_scan,
    .entity_deleted_since = pgc_entity_deleted_since,
    .entity_count = pgc_entity_count,
    .entity_delete_unstamped = pgc_entity_delete_unstamped,
    .entity_zero_unstamped = pgc_entity_zero_unstamped,
    .entity_delete_expired = pgc_entity_delete_expired,
};
