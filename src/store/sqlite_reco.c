/* SQLite implementation of the recommendation documents (criteria, CUSTOM
 * lists, designs): one table keyed by (kind, id). */
#include "store/sqlite_internal.h"

#include <stdlib.h>

#include "util/banned.h"

static int sr_put(void *conn, const char *kind, const char *id, const char *body, int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(
        c, "INSERT INTO reco_docs (kind, id, body, updated_ms) VALUES (?1, ?2, ?3, ?4) "
           "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, "
           "updated_ms = excluded.updated_ms");

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, kind);
    td_store__sqlite_bind_text(st, 2, id);
    td_store__sqlite_bind_text(st, 3, body);
    sqlite3_bind_int64(st, 4, now_ms);
    return td_store__sqlite_run(c, st);
}

static int sr_delete(void *conn, const char *kind, const char *id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st =
        td_store__sqlite_stmt(c, "DELETE FROM reco_docs WHERE kind = ?1 AND id = ?2");
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, kind);
    td_store__sqlite_bind_text(st, 2, id);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    return sqlite3_changes(c->db) > 0 ? TD_OK : TD_ENOTFOUND;
}

static int sr_list(void *conn, const char *kind, td_store_reco_doc_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(
        c, "SELECT id, body, updated_ms FROM reco_docs WHERE kind = ?1 ORDER BY id");
    int rc, cap = 0;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, kind);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *rows = td_xrealloc(*rows, (size_t)cap * sizeof(**rows));
        }
        td_store_reco_doc_t *r = &(*rows)[(*n)++];
        r->id = td_store__sqlite_col_text(st, 0);
        r->body = td_store__sqlite_col_text(st, 1);
        r->updated_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        td_store_reco_docs_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return td_store__sqlite_error(c->db, "reco_list");
    }
    return TD_OK;
}

static int sr_rev(void *conn, int64_t *rev)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, "SELECT rev FROM reco_docs_rev");
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *rev = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? TD_OK : td_store__sqlite_error(c->db, "reco_rev");
}

/* One process writes a SQLite database: nobody to wait for. */
static int sr_rebuild_lock(void *conn, bool take, bool *got)
{
    (void)conn;
    *got = take;
    return TD_OK;
}

const td_store_reco_ops_t td_store_sqlite_reco_ops = {
    .put = sr_put,
    .del = sr_delete,
    .list = sr_list,
    .rev = sr_rev,
    .rebuild_lock = sr_rebuild_lock,
};
