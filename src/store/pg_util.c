/* The PostgreSQL backend's statement preparation and parameter helpers. */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

void td_pg_param_text(td_pg_params_t *p, const char *s)
{
    if (p->n == TD_PG_MAX_PARAMS) {
        TD_BUG("too many statement parameters");
    }
    p->values[p->n++] = s;
}

void td_pg_param_int(td_pg_params_t *p, int64_t v)
{
    if (p->n == TD_PG_MAX_PARAMS) {
        TD_BUG("too many statement parameters");
    }
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)v);
    p->values[p->n] = p->num[p->n];
    p->n++;
}

void td_pg_param_double(td_pg_params_t *p, double v, bool present)
{
    if (!present) {
        td_pg_param_text(p, NULL);
        return;
    }
    if (p->n == TD_PG_MAX_PARAMS) {
        TD_BUG("too many statement parameters");
    }
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%.17g", v);
    p->values[p->n] = p->num[p->n];
    p->n++;
}

static int result_rc(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    if (state && strcmp(state, "23505") == 0) {
        return TD_ECONFLICT; /* unique_violation */
    }
    if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
                  strcmp(state, "55P03") == 0)) {
        return TD_EBUSY; /* serialization failure, deadlock, lock not available */
    }
    return TD_EIO;
}

/* More deferred statements than this are checked without waiting for a
 * statement that needs an answer: the results stay small enough to sit in
 * the socket buffers while we keep sending. */
#define MAX_PENDING 256

/* A connection broken by a database restart is reopened before the next
 * statement, unless a transaction was open on it: that one is lost, and the
 * caller must see the failure (and roll back) rather than carry on. */
static void ensure_connected(td_pg_conn_t *c)
{
    if (PQstatus(c->pg) == CONNECTION_OK || c->in_tx) {
        return;
    }
    PQreset(c->pg);
    memset(c->stmt_keys, 0, sizeof(c->stmt_keys));
    c->n_prepared = 0;
    c->n_pending = 0;
    c->seq_ahead = 0;
    if (PQstatus(c->pg) == CONNECTION_OK) {
        td_log(TD_LOG_INFO, "store", "pg reconnected");
    }
}

/* The slot of sql on this connection: where it is prepared (*found) or the
 * free slot it would take. */
static size_t stmt_slot(td_pg_conn_t *c, const char *sql, bool *found)
{
    size_t h = ((uintptr_t)sql >> 3) % TD_PG_STMT_SLOTS;

    for (size_t i = 0; i < TD_PG_STMT_SLOTS; i++) {
        size_t slot = (h + i) % TD_PG_STMT_SLOTS;
        if (c->stmt_keys[slot] == sql || c->stmt_keys[slot] == NULL) {
            *found = c->stmt_keys[slot] == sql;
            return slot;
        }
    }
    TD_BUG("more than %d prepared PostgreSQL statements", TD_PG_STMT_SLOTS);
}

/* The prepared statement's name for sql on this connection, preparing it on
 * first use (outside pipeline mode); NULL (logged) on failure. */
static const char *prepared(td_pg_conn_t *c, const char *sql, int n_params, char *name,
                            size_t name_len)
{
    bool found;
    size_t slot = stmt_slot(c, sql, &found);

    snprintf(name, name_len, "td%zu", slot);
    if (found) {
        return name;
    }
    PGresult *r = PQprepare(c->pg, name, sql, n_params, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        td_log(TD_LOG_ERROR, "store", "pg prepare failed: %s sql=\"%.80s\"", PQerrorMessage(c->pg),
               sql);
    }
    PQclear(r);
    if (!ok) {
        return NULL;
    }
    c->stmt_keys[slot] = sql;
    c->n_prepared++;
    return name;
}

/* True when a failed call found the connection dead outside a transaction:
 * the statement never ran, so reconnecting and running it again is safe (a
 * server restart is noticed only by the first call after it). */
static bool retry_after_reconnect(td_pg_conn_t *c, bool was_in_tx)
{
    if (was_in_tx || PQstatus(c->pg) != CONNECTION_BAD) {
        return false;
    }
    ensure_connected(c);
    return PQstatus(c->pg) == CONNECTION_OK;
}

/* Queues a statement in pipeline mode: stmt names a prepared statement, or
 * is NULL for sql without parameters. */
static int send_pipelined(td_pg_conn_t *c, const char *stmt, const char *sql,
                          const td_pg_params_t *p)
{
    int ok;

    if (PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF && PQenterPipelineMode(c->pg) != 1) {
        td_log(TD_LOG_ERROR, "store", "pg pipeline mode failed: %s", PQerrorMessage(c->pg));
        return TD_EIO;
    }
    if (stmt) {
        ok = PQsendQueryPrepared(c->pg, stmt, p ? p->n : 0, p ? p->values : NULL, NULL, NULL, 0);
    } else {
        ok = PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    }
    if (!ok) {
        td_log(TD_LOG_ERROR, "store", "pg send failed: %s sql=\"%.80s\"", PQerrorMessage(c->pg),
               sql);
        return PQstatus(c->pg) == CONNECTION_OK ? TD_EIO : TD_EBUSY;
    }
    c->n_pending++;
    return TD_OK;
}

/* Sends a sync and reads every pending result, leaving pipeline mode. With
 * keep_last, the last statement was sent by the caller, who wants its
 * result: returned (NULL on failure). A failure of a deferred statement is
 * never TD_ECONFLICT: that answer belongs to the statement that asked. */
static PGresult *drain(td_pg_conn_t *c, bool keep_last, const char *sql, int *rc)
{
    int n = c->n_pending;
    PGresult *last = NULL;
    bool lost = PQpipelineSync(c->pg) != 1;

    *rc = TD_OK;
    c->n_pending = 0;
    for (int i = 0; i < n && !lost; i++) {
        PGresult *r = PQgetResult(c->pg);
        bool own = keep_last && i == n - 1;
        if (r == NULL) {
            lost = true; /* the connection is gone */
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_FATAL_ERROR && *rc == TD_OK) {
            *rc = result_rc(r);
            if (*rc == TD_ECONFLICT && !own) {
                *rc = TD_EIO;
            }
            if (*rc != TD_ECONFLICT && PQstatus(c->pg) == CONNECTION_OK) {
                td_log(TD_LOG_ERROR, "store", "pg query failed: %s sql=\"%.80s\"",
                       PQresultErrorMessage(r), own ? sql : "(deferred)");
            }
        } else if (st == PGRES_PIPELINE_ABORTED && *rc == TD_OK) {
            *rc = TD_EIO;
        }
        if (own && *rc == TD_OK) {
            last = r;
        } else {
            PQclear(r);
        }
        /* each statement's results end with a NULL */
        while ((r = PQgetResult(c->pg)) != NULL) {
            PQclear(r);
        }
    }
    if (!lost) {
        PGresult *r = PQgetResult(c->pg);
        lost = r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC;
        PQclear(r);
    }
    if (lost || PQstatus(c->pg) != CONNECTION_OK) {
        td_log(TD_LOG_ERROR, "store", "pg connection lost: %s", PQerrorMessage(c->pg));
        *rc = TD_EBUSY;
    } else if (PQexitPipelineMode(c->pg) != 1) {
        td_log(TD_LOG_ERROR, "store", "pg pipeline exit failed: %s", PQerrorMessage(c->pg));
        *rc = TD_EIO;
    }
    if (*rc != TD_OK) {
        PQclear(last);
        last = NULL;
    } else if (keep_last && last == NULL) {
        *rc = TD_EIO;
    }
    return last;
}

/* Reads the deferred statements' results now. */
static int flush_pending(td_pg_conn_t *c)
{
    int rc = TD_OK;

    if (c->n_pending > 0 || PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) {
        PQclear(drain(c, false, NULL, &rc));
    }
    return rc;
}

static PGresult *query_once(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int *rc)
{
    char name[32];
    PGresult *r;

    ensure_connected(c);
    if (c->n_pending > 0) {
        bool found;
        stmt_slot(c, sql, &found);
        if (found) {
            /* the statement rides with the deferred ones: one round trip */
            snprintf(name, sizeof(name), "td%zu", stmt_slot(c, sql, &found));
            if ((*rc = send_pipelined(c, name, sql, p)) != TD_OK) {
                int ignored;
                PQclear(drain(c, false, NULL, &ignored));
                return NULL;
            }
            return drain(c, true, sql, rc);
        }
        if ((*rc = flush_pending(c)) != TD_OK) {
            return NULL;
        }
    }
    const char *stmt = prepared(c, sql, p ? p->n : 0, name, sizeof(name));
    if (stmt == NULL) {
        *rc = PQstatus(c->pg) == CONNECTION_OK ? TD_EIO : TD_EBUSY;
        return NULL;
    }
    r = PQexecPrepared(c->pg, stmt, p ? p->n : 0, p ? p->values : NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *rc = TD_OK;
        return r;
    }
    *rc = result_rc(r);
    if (*rc != TD_ECONFLICT && PQstatus(c->pg) == CONNECTION_OK) {
        td_log(TD_LOG_ERROR, "store", "pg query failed: %s sql=\"%.80s\"", PQresultErrorMessage(r),
               sql);
    }
    PQclear(r);
    return NULL;
}

PGresult *td_store__pg_query(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int *rc)
{
    bool was_in_tx = c->in_tx;
    PGresult *r = query_once(c, sql, p, rc);

    if (r == NULL && retry_after_reconnect(c, was_in_tx)) {
        r = query_once(c, sql, p, rc);
    }
    if (r == NULL && PQstatus(c->pg) != CONNECTION_OK) {
        td_log(TD_LOG_ERROR, "store", "pg connection lost: %s", PQerrorMessage(c->pg));
        *rc = TD_EBUSY;
    }
    return r;
}

int td_store__pg_run(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p)
{
    int rc;
    PGresult *r = td_store__pg_query(c, sql, p, &rc);

    PQclear(r);
    return rc;
}

int td_store__pg_defer(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p)
{
    char name[32];
    bool found;
    int rc;

    if (!c->in_tx || PQstatus(c->pg) != CONNECTION_OK) {
        return td_store__pg_run(c, sql, p);
    }
    stmt_slot(c, sql, &found);
    if (!found) {
        /* preparing waits for its answer: once per connection */
        if ((rc = flush_pending(c)) != TD_OK) {
            return rc;
        }
        if (prepared(c, sql, p ? p->n : 0, name, sizeof(name)) == NULL) {
            return PQstatus(c->pg) == CONNECTION_OK ? TD_EIO : TD_EBUSY;
        }
    }
    snprintf(name, sizeof(name), "td%zu", stmt_slot(c, sql, &found));
    if ((rc = send_pipelined(c, name, sql, p)) != TD_OK) {
        return rc;
    }
    return c->n_pending >= MAX_PENDING ? flush_pending(c) : TD_OK;
}

int td_store__pg_query_int(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int64_t *out)
{
    int rc;
    PGresult *r = td_store__pg_query(c, sql, p, &rc);

    if (r == NULL) {
        return rc;
    }
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return TD_ENOTFOUND;
    }
    *out = td_pg_get_int(r, 0, 0);
    PQclear(r);
    return TD_OK;
}

static int exec_once(td_pg_conn_t *c, const char *sql)
{
    int rc = TD_OK;
    PGresult *r = PQexec(c->pg, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = PQstatus(c->pg) == CONNECTION_OK ? result_rc(r) : TD_EBUSY;
        td_log(TD_LOG_ERROR, "store", "pg exec failed: %s sql=\"%.60s\"", PQresultErrorMessage(r),
               sql);
    } else if (strncmp(sql, "BEGIN", 5) == 0) {
        c->in_tx = true;
    }
    PQclear(r);
    return rc;
}

/* RELEASE SAVEPOINT after deferred statements: sent with them; when one of
 * them failed, the savepoint is rolled back and released here, so the
 * transaction goes on without that part, as when the failure is seen at
 * once and the caller rolls back. */
static int release_pipelined(td_pg_conn_t *c, const char *sql)
{
    char undo[64];
    int rc = send_pipelined(c, NULL, sql, NULL);
    PGresult *r;

    if (rc != TD_OK) {
        int ignored;
        PQclear(drain(c, false, NULL, &ignored));
    } else if ((r = drain(c, true, sql, &rc)) != NULL) {
        PQclear(r);
        return TD_OK;
    }
    if (rc != TD_EBUSY || PQstatus(c->pg) == CONNECTION_OK) {
        snprintf(undo, sizeof(undo), "ROLLBACK TO %s", sql + strlen("RELEASE "));
        if (exec_once(c, undo) == TD_OK) {
            exec_once(c, sql);
        }
    }
    return rc;
}

int td_store__pg_exec(td_pg_conn_t *c, const char *sql)
{
    bool was_in_tx = c->in_tx;
    bool end = strncmp(sql, "COMMIT", 6) == 0 ||
               (strncmp(sql, "ROLLBACK", 8) == 0 && strncmp(sql, "ROLLBACK TO", 11) != 0);
    int rc;

    if (end) {
        c->in_tx = false; /* whatever the outcome, the transaction is over */
        c->seq_ahead = 0;
    }
    if (c->n_pending > 0) {
        if (strncmp(sql, "RELEASE", 7) == 0) {
            return release_pipelined(c, sql);
        }
        if (strncmp(sql, "COMMIT", 6) == 0) {
            /* after a failed deferred statement the pipeline skips it */
            PGresult *r;
            if ((rc = send_pipelined(c, NULL, sql, NULL)) != TD_OK) {
                int ignored;
                PQclear(drain(c, false, NULL, &ignored));
                return rc;
            }
            r = drain(c, true, sql, &rc);
            PQclear(r);
            if (r == NULL && PQstatus(c->pg) == CONNECTION_OK) {
                /* a skipped COMMIT left the transaction open: end it, as a
                 * failed COMMIT does */
                exec_once(c, "ROLLBACK");
            }
            return r ? TD_OK : rc;
        }
        if (strncmp(sql, "ROLLBACK", 8) == 0) {
            /* a rollback must not be skipped for an earlier failure */
            int ignored;
            PQclear(drain(c, false, NULL, &ignored));
        } else if (strncmp(sql, "SAVEPOINT", 9) != 0 && (rc = flush_pending(c)) != TD_OK) {
            return rc;
        }
    }
    if ((strncmp(sql, "BEGIN", 5) == 0 && !c->in_tx) ||
        (strncmp(sql, "SAVEPOINT", 9) == 0 && c->in_tx)) {
        ensure_connected(c);
        if (PQstatus(c->pg) == CONNECTION_OK) {
            if ((rc = send_pipelined(c, NULL, sql, NULL)) == TD_OK && !c->in_tx) {
                c->in_tx = true;
            }
            return rc;
        }
    }
    if (end) {
        return exec_once(c, sql);
    }
    ensure_connected(c);
    rc = exec_once(c, sql);
    if (rc != TD_OK && retry_after_reconnect(c, was_in_tx)) {
        rc = exec_once(c, sql);
    }
    return rc;
}

int64_t td_pg_get_int(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double td_pg_get_double(const PGresult *r, int row, int col)
{
    return strtod(PQgetvalue(r, row, col), NULL);
}

char *td_pg_get_text(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) {
        return NULL;
    }
    return td_xstrndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

bool td_pg_is_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}
