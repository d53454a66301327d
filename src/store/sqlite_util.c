/* The SQLite backend's statement cache and step helpers. */
#include "store/sqlite_internal.h"

#include <stdlib.h>

#include "util/log.h"
#include "util/banned.h"

int td_store__sqlite_error(sqlite3 *db, const char *what)
{
    int code = sqlite3_extended_errcode(db);

    td_log(TD_LOG_ERROR, "store", "sqlite failed: %s (code %d) sql=\"%.80s\"", sqlite3_errmsg(db),
           code, what);
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
        return TD_EBUSY;
    }
    if ((code & 0xff) == SQLITE_CONSTRAINT) {
        return TD_ECONFLICT;
    }
    return TD_EIO;
}

sqlite3_stmt *td_store__sqlite_stmt(td_sqlite_conn_t *c, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3) % TD_SQLITE_STMT_SLOTS;

    for (size_t i = 0; i < TD_SQLITE_STMT_SLOTS; i++) {
        size_t slot = (h + i) % TD_SQLITE_STMT_SLOTS;
        if (c->stmt_keys[slot] == sql) {
            sqlite3_reset(c->stmts[slot]);
            sqlite3_clear_bindings(c->stmts[slot]);
            return c->stmts[slot];
        }
        if (c->stmt_keys[slot] == NULL) {
            if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[slot],
                                   NULL) != SQLITE_OK) {
                td_store__sqlite_error(c->db, sql);
                return NULL;
            }
            c->stmt_keys[slot] = sql;
            return c->stmts[slot];
        }
    }
    TD_BUG("more than %d cached SQLite statements", TD_SQLITE_STMT_SLOTS);
}

void td_store__sqlite_stmts_finalize(td_sqlite_conn_t *c)
{
    for (size_t i = 0; i < TD_SQLITE_STMT_SLOTS; i++) {
        sqlite3_finalize(c->stmts[i]);
        c->stmts[i] = NULL;
        c->stmt_keys[i] = NULL;
    }
}

int td_store__sqlite_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        td_log(TD_LOG_ERROR, "store", "sqlite exec failed: %s sql=\"%.60s\"", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return (sqlite3_errcode(db) & 0xff) == SQLITE_BUSY ? TD_EBUSY : TD_EIO;
    }
    return TD_OK;
}

int td_store__sqlite_run(td_sqlite_conn_t *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return td_store__sqlite_error(c->db, sqlite3_sql(st));
    }
    return TD_OK;
}

int td_store__sqlite_query_int(td_sqlite_conn_t *c, sqlite3_stmt *st, int64_t *out)
{
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW) {
        int is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return is_null ? TD_ENOTFOUND : TD_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, sqlite3_sql(st));
}

void td_store__sqlite_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s) {
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, i);
    }
}

char *td_store__sqlite_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    return s ? td_xstrdup((const char *)s) : NULL;
}
