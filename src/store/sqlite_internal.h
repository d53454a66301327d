/* Shared by the SQLite backend's files (sqlite.c and one file per domain):
 * the connection, a statement cache keyed by the SQL text's address (each
 * statement is a static string, so no central list of statements is needed),
 * and small step/bind helpers that log failures with the SQL that failed. */
#ifndef TD_STORE_SQLITE_INTERNAL_H
#define TD_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "store/internal.h"
#include "util/strmap.h"

#define TD_SQLITE_STMT_SLOTS 256

typedef struct td_sqlite_conn {
    sqlite3 *db;
    /* identity -> profile, valid while ident_gen matches the backend's
     * generation (bumped by merges and rollbacks on any connection) */
    td_strmap_t idents;
    uint64_t ident_gen;
    _Atomic uint64_t *backend_ident_gen;
    const char *stmt_keys[TD_SQLITE_STMT_SLOTS];
    sqlite3_stmt *stmts[TD_SQLITE_STMT_SLOTS];
} td_sqlite_conn_t;

/* The prepared statement for sql (a string with static storage), reset and
 * with its bindings cleared; NULL (logged) when it does not prepare. */
sqlite3_stmt *td_store__sqlite_stmt(td_sqlite_conn_t *c, const char *sql);
void td_store__sqlite_stmts_finalize(td_sqlite_conn_t *c);
/* Logs the connection's last error; returns TD_EBUSY, TD_ECONFLICT or TD_EIO. */
int td_store__sqlite_error(sqlite3 *db, const char *what);
int td_store__sqlite_exec(sqlite3 *db, const char *sql);
/* Steps a statement that returns no rows, then resets it. */
int td_store__sqlite_run(td_sqlite_conn_t *c, sqlite3_stmt *st);
/* One row, one integer; TD_ENOTFOUND for no row or NULL. */
int td_store__sqlite_query_int(td_sqlite_conn_t *c, sqlite3_stmt *st, int64_t *out);
/* Binds s, or NULL when s is NULL (the text is not copied: keep it alive
 * until the statement is stepped). */
void td_store__sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);
/* A copy of a text column (NULL for SQL NULL); you own it. */
char *td_store__sqlite_col_text(sqlite3_stmt *st, int i);

#endif
