/* The catalog operations of the store front: each dispatches to the
 * backend's catalog table (td_store_ops_t.domains[TD_STORE_DOMAIN_CATALOG]);
 * a backend without one answers TD_EIO, logged once per call site. */
#include "store/internal.h"

#include "util/log.h"
#include "util/banned.h"

static const td_store_catalog_ops_t *ops(const td_store_conn_t *c)
{
    const td_store_catalog_ops_t *o = td_store__domain(c, TD_STORE_DOMAIN_CATALOG);

    if (o == NULL) {
        td_log(TD_LOG_ERROR, "store", "catalog not supported by backend=%s", c->st->ops->name);
    }
    return c->impl ? o : NULL;
}

bool td_store_catalog_supported(const td_store_t *st)
{
    return st->ops->domains[TD_STORE_DOMAIN_CATALOG] != NULL;
}

#define CALL(c, op, ...) (ops(c) ? ops(c)->op((c)->impl, __VA_ARGS__) : TD_EIO)

int td_store_catalog_seq_next(td_store_conn_t *c, int64_t now_ms, int64_t *seq)
{
    return CALL(c, seq_next, now_ms, seq);
}

int td_store_catalog_seq(td_store_conn_t *c, int64_t *seq)
{
    return CALL(c, seq_get, seq);
}

int td_store_entity_get(td_store_conn_t *c, const char *id, td_store_entity_fn fn, void *ctx)
{
    return CALL(c, entity_get, id, fn, ctx);
}

int td_store_entity_put(td_store_conn_t *c, const td_store_entity_t *e)
{
    return CALL(c, entity_put, e);
}

int td_store_entity_delete(td_store_conn_t *c, const char *id, int64_t seq, int64_t now_ms)
{
    return CALL(c, entity_delete, id, seq, now_ms);
}

int td_store_entity_scan(td_store_conn_t *c, int64_t after_seq, td_store_entity_fn fn, void *ctx)
{
    return CALL(c, entity_scan, after_seq, fn, ctx);
}

int td_store_entity_deleted_since(td_store_conn_t *c, int64_t after_seq, td_store_id_fn fn,
                                  void *ctx)
{
    return CALL(c, entity_deleted_since, after_seq, fn, ctx);
}

int td_store_entity_count(td_store_conn_t *c, int64_t *n)
{
    return CALL(c, entity_count, n);
}

int td_store_entity_delete_unstamped(td_store_conn_t *c, int64_t seq, int64_t environment,
                                     int64_t now_ms, int64_t *n)
{
    return CALL(c, entity_delete_unstamped, seq, environment, now_ms, n);
}

int td_store_entity_zero_unstamped(td_store_conn_t *c, int64_t seq, int64_t environment, int64_t *n)
{
    return CALL(c, entity_zero_unstamped, seq, environment, n);
}

int td_store_entity_delete_expired(td_store_conn_t *c, int64_t before_ms, int64_t seq,
                                   int64_t now_ms, int64_t *n)
{
    return CALL(c, entity_delete_expired, before_ms, seq, now_ms, n);
}
