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
    if (PQstatus(c->pg) == CONNECTION_OK) {
        td_log(TD_LOG_INFO, "store", "pg reconnected");
    }
}

/* The prepared statement's name for sql on this connection, preparing it on
 * first use; NULL (logged) on failure. */
static const char *prepared(td_pg_conn_t *c, const char *sql, int n_params, char *name,
                            size_t name_len)
{
    size_t h = ((uintptr_t)sql >> 3) % TD_PG_STMT_SLOTS;

    for (size_t i = 0; i < TD_PG_STMT_SLOTS; i++) {
        size_t slot = (h + i) % TD_PG_STMT_SLOTS;
        snprintf(name, name_len, "td%zu", slot);
        if (c->stmt_keys[slot] == sql) {
            return name;
        }
        if (c->stmt_keys[slot] == NULL) {
            PGresult *r = PQprepare(c->pg, name, sql, n_params, NULL);
            bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!ok) {
                td_log(TD_LOG_ERROR, "store", "pg prepare failed: %s sql=\"%.80s\"",
                       PQerrorMessage(c->pg), sql);
            }
            PQclear(r);
            if (!ok) {
                return NULL;
            }
            c->stmt_keys[slot] = sql;
            c->n_prepared++;
            return name;
        }
    }
    TD_BUG("more than %d prepared PostgreSQL statements", TD_PG_STMT_SLOTS);
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

static PGresult *query_once(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int *rc)
{
    char name[32];
    PGresult *r;

    ensure_connected(c);
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

int td_store__pg_exec(td_pg_conn_t *c, const char *sql)
{
    bool was_in_tx = c->in_tx;
    int rc;

    if (strncmp(sql, "COMMIT", 6) == 0 ||
        (strncmp(sql, "ROLLBACK", 8) == 0 && strncmp(sql, "ROLLBACK TO", 11) != 0)) {
        c->in_tx = false; /* whatever the outcome, the transaction is over */
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
