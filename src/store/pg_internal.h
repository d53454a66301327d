/* Shared by the PostgreSQL backend's files (postgres.c and one file per
 * domain): the connection, statements prepared once per connection (keyed by
 * the SQL text's address, like the SQLite backend), and parameter helpers.
 * Parameters travel as text; results are read as text and converted.
 *
 * Inside a transaction, statements whose results nobody waits for (derived
 * state, BEGIN, SAVEPOINT) are deferred: sent in libpq's pipeline mode and
 * checked at the next statement that needs an answer, which travels with
 * them, so a round trip carries several statements. A deferred failure is
 * reported by that next call (RELEASE SAVEPOINT and COMMIT are such calls). */
#ifndef TD_STORE_PG_INTERNAL_H
#define TD_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/internal.h"

#define TD_PG_STMT_SLOTS 256
#define TD_PG_MAX_PARAMS 16

typedef struct td_pg_conn {
    PGconn *pg;
    bool in_tx; /* a BEGIN without its COMMIT/ROLLBACK yet */
    const char *stmt_keys[TD_PG_STMT_SLOTS];
    int n_prepared;
    int n_pending;     /* deferred statements whose results are not read yet */
    int64_t seq_ahead; /* an events seq taken with an identity lookup, 0 if none */
} td_pg_conn_t;

/* Parameters for one statement: strings are borrowed, numbers formatted into
 * the struct's own storage. */
typedef struct td_pg_params {
    const char *values[TD_PG_MAX_PARAMS];
    char num[TD_PG_MAX_PARAMS][32];
    int n;
} td_pg_params_t;

void td_pg_param_text(td_pg_params_t *p, const char *s); /* NULL -> SQL NULL */
void td_pg_param_int(td_pg_params_t *p, int64_t v);
void td_pg_param_double(td_pg_params_t *p, double v, bool present);

/* Runs sql (static storage; "$1".."$n" parameters), preparing it on first
 * use on this connection. Returns the result (PQclear it) or NULL after
 * logging; *rc is TD_OK, TD_ECONFLICT (unique violation), TD_EBUSY
 * (serialization / deadlock) or TD_EIO. */
PGresult *td_store__pg_query(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int *rc);
/* The same, for statements whose rows are not needed. */
int td_store__pg_run(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p);
/* One row, one integer; TD_ENOTFOUND for no row or NULL. */
int td_store__pg_query_int(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int64_t *out);
/* Plain SQL without parameters (transactions, savepoints, migrations).
 * BEGIN and SAVEPOINT are deferred. */
int td_store__pg_exec(td_pg_conn_t *c, const char *sql);
/* Like td_store__pg_run inside a transaction, but deferred: TD_OK means sent;
 * a failure comes back from a later call in the same transaction. Outside a
 * transaction it runs at once. */
int td_store__pg_defer(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p);

int64_t td_pg_get_int(const PGresult *r, int row, int col);
double td_pg_get_double(const PGresult *r, int row, int col);
/* A copy of a text value (NULL for SQL NULL); you own it. */
char *td_pg_get_text(const PGresult *r, int row, int col);
bool td_pg_is_null(const PGresult *r, int row, int col);

#endif
