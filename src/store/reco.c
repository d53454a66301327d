/* The recommendation operations of the store front: each dispatches to the
 * backend's table (td_store_ops_t.domains[TD_STORE_DOMAIN_RECO]); a backend
 * without one answers TD_EIO. */
#include "store/internal.h"

#include <stdlib.h>

#include "util/log.h"
#include "util/banned.h"

static const td_store_reco_ops_t *ops(const td_store_conn_t *c)
{
    const td_store_reco_ops_t *o = td_store__domain(c, TD_STORE_DOMAIN_RECO);

    if (o == NULL) {
        td_log(TD_LOG_ERROR, "store", "reco not supported by backend=%s", c->st->ops->name);
    }
    return c->impl ? o : NULL;
}

bool td_store_reco_supported(const td_store_t *st)
{
    return st->ops->domains[TD_STORE_DOMAIN_RECO] != NULL;
}

#define CALL(c, op, ...) (ops(c) ? ops(c)->op((c)->impl, __VA_ARGS__) : TD_EIO)

int td_store_reco_put(td_store_conn_t *c, const char *kind, const char *id, const char *body,
                      int64_t now_ms)
{
    return CALL(c, put, kind, id, body, now_ms);
}

int td_store_reco_delete(td_store_conn_t *c, const char *kind, const char *id)
{
    return CALL(c, del, kind, id);
}

int td_store_reco_list(td_store_conn_t *c, const char *kind, td_store_reco_doc_t **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    return CALL(c, list, kind, rows, n);
}

void td_store_reco_docs_free(td_store_reco_doc_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].id);
        free(rows[i].body);
    }
    free(rows);
}

int td_store_reco_rev(td_store_conn_t *c, int64_t *rev)
{
    *rev = 0;
    return CALL(c, rev, rev);
}

int td_store_reco_rebuild_lock(td_store_conn_t *c, bool take, bool *got)
{
    *got = false;
    return CALL(c, rebuild_lock, take, got);
}
