/* The SQLite side of the catalog: entities, the tombstones of deleted ones,
 * and the catalog sequence number (see "Catalog" in store.h). */
#include "store/sqlite_internal.h"

#include <string.h>

#include "util/banned.h"

#define TOMBSTONE_KEEP_MS (24 * 3600 * 1000LL)

#define COLS                                                                                    \
    "id, name, categories, brand, page_url, thumbnail_url, message, value, inventory, margin, " \
    "attrs, environment, updated_ms, change_seq"

static const char S_SEQ_NEXT[] = "UPDATE catalog_state SET seq = seq + 1 WHERE k = 1 RETURNING seq";
static const char S_SEQ_GET[] = "SELECT seq FROM catalog_state WHERE k = 1";
static const char S_TOMB_PRUNE[] = "DELETE FROM catalog_tombstones WHERE deleted_ms < ?1";
static const char S_GET[] = "SELECT " COLS " FROM catalog_entities WHERE id = ?1";
static const char S_PUT[] = "INSERT OR REPLACE INTO catalog_entities (" COLS ") VALUES "
                            "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
static const char S_DELETE[] = "DELETE FROM catalog_entities WHERE id = ?1";
static const char S_TOMB_ADD[] =
    "INSERT INTO catalog_tombstones (id, change_seq, deleted_ms) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (id) DO UPDATE SET change_seq = excluded.change_seq, "
    "deleted_ms = excluded.deleted_ms";
static const char S_SCAN_ALL[] = "SELECT " COLS " FROM catalog_entities";
static const char S_SCAN_SINCE[] = "SELECT " COLS " FROM catalog_entities WHERE change_seq > ?1";
static const char S_DELETED_SINCE[] = "SELECT id FROM catalog_tombstones WHERE change_seq > ?1";
static const char S_COUNT[] = "SELECT count(*) FROM catalog_entities";
static const char S_TOMB_UNSTAMPED[] =
    "INSERT INTO catalog_tombstones (id, change_seq, deleted_ms) "
    "SELECT id, ?1, ?3 FROM catalog_entities WHERE change_seq <> ?1 "
    "AND (?2 = 0 OR environment = ?2) "
    "ON CONFLICT (id) DO UPDATE SET change_seq = excluded.change_seq, "
    "deleted_ms = excluded.deleted_ms";
static const char S_DELETE_UNSTAMPED[] =
    "DELETE FROM catalog_entities WHERE change_seq <> ?1 AND (?2 = 0 OR environment = ?2)";
static const char S_ZERO_UNSTAMPED[] = "UPDATE catalog_entities SET inventory = 0, change_seq = ?1 "
                                       "WHERE change_seq <> ?1 AND (?2 = 0 OR environment = ?2)";
static const char S_TOMB_EXPIRED[] =
    "INSERT INTO catalog_tombstones (id, change_seq, deleted_ms) "
    "SELECT id, ?2, ?3 FROM catalog_entities WHERE updated_ms < ?1 "
    "ON CONFLICT (id) DO UPDATE SET change_seq = excluded.change_seq, "
    "deleted_ms = excluded.deleted_ms";
static const char S_DELETE_EXPIRED[] = "DELETE FROM catalog_entities WHERE updated_ms < ?1";

static int sqc_seq_next(void *conn, int64_t now_ms, int64_t *seq)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_TOMB_PRUNE);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, now_ms - TOMBSTONE_KEEP_MS);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    if ((st = td_store__sqlite_stmt(c, S_SEQ_NEXT)) == NULL) {
        return TD_EIO;
    }
    rc = td_store__sqlite_query_int(c, st, seq);
    /* RETURNING rows are produced before the statement completes: finish it */
    sqlite3_reset(st);
    return rc;
}

static int sqc_seq_get(void *conn, int64_t *seq)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_SEQ_GET);

    return st ? td_store__sqlite_query_int(c, st, seq) : TD_EIO;
}

static const char *col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static void read_row(sqlite3_stmt *st, td_store_entity_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = col(st, 0);
    e->name = col(st, 1);
    e->categories = col(st, 2);
    e->brand = col(st, 3);
    e->page_url = col(st, 4);
    e->thumbnail_url = col(st, 5);
    e->message = col(st, 6);
    e->has_value = sqlite3_column_type(st, 7) != SQLITE_NULL;
    e->value = sqlite3_column_double(st, 7);
    e->has_inventory = sqlite3_column_type(st, 8) != SQLITE_NULL;
    e->inventory = sqlite3_column_double(st, 8);
    e->has_margin = sqlite3_column_type(st, 9) != SQLITE_NULL;
    e->margin = sqlite3_column_double(st, 9);
    e->attrs = col(st, 10);
    e->environment = sqlite3_column_int64(st, 11);
    e->updated_ms = sqlite3_column_int64(st, 12);
    e->change_seq = sqlite3_column_int64(st, 13);
}

/* Steps st, handing each row to fn. */
static int each_row(td_sqlite_conn_t *c, sqlite3_stmt *st, td_store_entity_fn fn, void *ctx,
                    bool *found)
{
    td_store_entity_t e;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int urc;
        *found = true;
        read_row(st, &e);
        if ((urc = fn(ctx, &e)) != 0) {
            sqlite3_reset(st);
            return urc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, sqlite3_sql(st));
}

static int sqc_entity_get(void *conn, const char *id, td_store_entity_fn fn, void *ctx)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_GET);
    bool found = false;
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    rc = each_row(c, st, fn, ctx, &found);
    return rc == TD_OK && !found ? TD_ENOTFOUND : rc;
}

static void bind_opt_double(sqlite3_stmt *st, int i, bool has, double v)
{
    if (has) {
        sqlite3_bind_double(st, i, v);
    } else {
        sqlite3_bind_null(st, i);
    }
}

static int sqc_entity_put(void *conn, const td_store_entity_t *e)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_PUT);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, e->id);
    td_store__sqlite_bind_text(st, 2, e->name);
    td_store__sqlite_bind_text(st, 3, e->categories);
    td_store__sqlite_bind_text(st, 4, e->brand);
    td_store__sqlite_bind_text(st, 5, e->page_url);
    td_store__sqlite_bind_text(st, 6, e->thumbnail_url);
    td_store__sqlite_bind_text(st, 7, e->message);
    bind_opt_double(st, 8, e->has_value, e->value);
    bind_opt_double(st, 9, e->has_inventory, e->inventory);
    bind_opt_double(st, 10, e->has_margin, e->margin);
    td_store__sqlite_bind_text(st, 11, e->attrs);
    sqlite3_bind_int64(st, 12, e->environment);
    sqlite3_bind_int64(st, 13, e->updated_ms);
    sqlite3_bind_int64(st, 14, e->change_seq);
    return td_store__sqlite_run(c, st);
}

static int add_tombstone(td_sqlite_conn_t *c, const char *id, int64_t seq, int64_t now_ms)
{
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_TOMB_ADD);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, now_ms);
    return td_store__sqlite_run(c, st);
}

static int sqc_entity_delete(void *conn, const char *id, int64_t seq, int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_DELETE);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    if (sqlite3_changes(c->db) == 0) {
        return TD_ENOTFOUND;
    }
    return add_tombstone(c, id, seq, now_ms);
}

static int sqc_entity_scan(void *conn, int64_t after_seq, td_store_entity_fn fn, void *ctx)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, after_seq > 0 ? S_SCAN_SINCE : S_SCAN_ALL);
    bool found = false;

    if (st == NULL) {
        return TD_EIO;
    }
    if (after_seq > 0) {
        sqlite3_bind_int64(st, 1, after_seq);
    }
    return each_row(c, st, fn, ctx, &found);
}

static int sqc_entity_deleted_since(void *conn, int64_t after_seq, td_store_id_fn fn, void *ctx)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_DELETED_SINCE);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, after_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int urc = fn(ctx, col(st, 0));
        if (urc != 0) {
            sqlite3_reset(st);
            return urc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, "deleted_since");
}

static int sqc_entity_count(void *conn, int64_t *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_COUNT);

    return st ? td_store__sqlite_query_int(c, st, n) : TD_EIO;
}

/* Runs a statement bound with (?1, ?2, ?3) integers. */
static int run3(td_sqlite_conn_t *c, const char *sql, int64_t a, int64_t b, int64_t d,
                int64_t *changes)
{
    sqlite3_stmt *st = td_store__sqlite_stmt(c, sql);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2) {
        sqlite3_bind_int64(st, 2, b);
    }
    if (sqlite3_bind_parameter_count(st) >= 3) {
        sqlite3_bind_int64(st, 3, d);
    }
    if ((rc = td_store__sqlite_run(c, st)) == TD_OK && changes) {
        *changes = sqlite3_changes64(c->db);
    }
    return rc;
}

static int sqc_entity_delete_unstamped(void *conn, int64_t seq, int64_t environment, int64_t now_ms,
                                       int64_t *n)
{
    td_sqlite_conn_t *c = conn;
    int rc = run3(c, S_TOMB_UNSTAMPED, seq, environment, now_ms, NULL);

    return rc == TD_OK ? run3(c, S_DELETE_UNSTAMPED, seq, environment, 0, n) : rc;
}

static int sqc_entity_zero_unstamped(void *conn, int64_t seq, int64_t environment, int64_t *n)
{
    return run3(conn, S_ZERO_UNSTAMPED, seq, environment, 0, n);
}

static int sqc_entity_delete_expired(void *conn, int64_t before_ms, int64_t seq, int64_t now_ms,
                                     int64_t *n)
{
    td_sqlite_conn_t *c = conn;
    int rc = run3(c, S_TOMB_EXPIRED, before_ms, seq, now_ms, NULL);

    return rc == TD_OK ? run3(c, S_DELETE_EXPIRED, before_ms, 0, 0, n) : rc;
}

const td_store_catalog_ops_t td_store_sqlite_catalog_ops = {
    .seq_next = sqc_seq_next,
    .seq_get = sqc_seq_get,
    .entity_get = sqc_entity_get,
    .entity_put = sqc_entity_put,
    .entity_delete = sqc_entity_delete,
    .entity_scan = sqc_entity_scan,
    .entity_deleted_since = sqc_entity_deleted_since,
    .entity_count = sqc_entity_count,
    .entity_delete_unstamped = sqc_entity_delete_unstamped,
    .entity_zero_unstamped = sqc_entity_zero_unstamped,
    .entity_delete_expired = sqc_entity_delete_expired,
};
