/* PostgreSQL implementation of the recommendation documents (criteria,
 * CUSTOM lists, designs): one table keyed by (kind, id). */
#include "store/pg_internal.h"

#include <stdlib.h>

#include "util/banned.h"

static int pr_put(void *conn, const char *kind, const char *id, const char *body, int64_t now_ms)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, kind);
    td_pg_param_text(&p, id);
    td_pg_param_text(&p, body);
    td_pg_param_int(&p, now_ms);
    return td_store__pg_run(conn,
                            "INSERT INTO reco_docs (kind, id, body, updated_ms) "
                            "VALUES ($1, $2, $3, $4) ON CONFLICT (kind, id) DO UPDATE SET "
                            "body = EXCLUDED.body, updated_ms = EXCLUDED.updated_ms",
                            &p);
}

static int pr_delete(void *conn, const char *kind, const char *id)
{
    td_pg_params_t p = { 0 };
    int64_t one;

    td_pg_param_text(&p, kind);
    td_pg_param_text(&p, id);
    return td_store__pg_query_int(
        conn, "DELETE FROM reco_docs WHERE kind = $1 AND id = $2 RETURNING 1", &p, &one);
}

static int pr_list(void *conn, const char *kind, td_store_reco_doc_t **rows, int *n)
{
    td_pg_params_t p = { 0 };
    int rc;
    PGresult *r;

    td_pg_param_text(&p, kind);
    r = td_store__pg_query(
        conn, "SELECT id, body, updated_ms FROM reco_docs WHERE kind = $1 ORDER BY id", &p, &rc);
    if (r == NULL) {
        return rc;
    }
    int nt = PQntuples(r);
    if (nt > 0) {
        *rows = td_xcalloc((size_t)nt, sizeof(**rows));
        for (int i = 0; i < nt; i++) {
            (*rows)[i].id = td_pg_get_text(r, i, 0);
            (*rows)[i].body = td_pg_get_text(r, i, 1);
            (*rows)[i].updated_ms = td_pg_get_int(r, i, 2);
        }
    }
    *n = nt;
    PQclear(r);
    return TD_OK;
}

static int pr_rev(void *conn, int64_t *rev)
{
    return td_store__pg_query_int(conn, "SELECT rev FROM reco_docs_rev", NULL, rev);
}

/* The two-key form of advisory locks, whose keys never meet the one-key
 * form the migrations use: (0x7464 "td", 5 the model rebuild). */
static int pr_rebuild_lock(void *conn, bool take, bool *got)
{
    int64_t v = 0;
    int rc = td_store__pg_query_int(conn,
                                    take ? "SELECT pg_try_advisory_lock(29796, 5)::int"
                                         : "SELECT pg_advisory_unlock(29796, 5)::int",
                                    NULL, &v);

    *got = rc == TD_OK && v == 1;
    return rc;
}

const td_store_reco_ops_t td_store_postgres_reco_ops = {
    .put = pr_put,
    .del = pr_delete,
    .list = pr_list,
    .rev = pr_rev,
    .rebuild_lock = pr_rebuild_lock,
};
