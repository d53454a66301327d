/* Catalog writes: feed imports, single-entity PUT and DELETE, and the purge
 * of expired entities. Each is one store transaction, taken with the
 * catalog's write lock held: the index is first brought level with the store
 * (other processes may have written), every entity is merged with what the
 * index holds, written under a fresh catalog sequence number, and the
 * changes go into a batch applied to the index only once the transaction
 * has committed. A failed or interrupted import leaves neither the store
 * nor the index half-changed.
 *
 * While an import runs, the store's write lock is held (SQLite has one
 * writer): other writers wait, up to the store's busy timeout. Large
 * catalogs are best imported when event traffic is low, or from the CLI in
 * several smaller files. */
#include "catalog/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/banned.h"

#define DEFAULT_MAX_ERRORS 1000
#define PROGRESS_EVERY     10000

typedef struct import_ctx {
    td_catalog_t *cat;
    td_store_conn_t *conn;
    const td_import_options_t *opt;
    td_import_result_t *res;
    int64_t seq;
    td_catalog_batch_t *batch;
    td_buf_t cats, attrs;
    int max_errors;
    int64_t accepted;
} import_ctx_t;

void td_import_result_release(td_import_result_t *r)
{
    if (r) {
        free(r->errors);
        memset(r, 0, sizeof(*r));
    }
}

static void add_error(import_ctx_t *ic, const td_err_t *e)
{
    td_import_result_t *r = ic->res;

    r->rejected++;
    if (r->n_errors < ic->max_errors) {
        if ((r->n_errors & (r->n_errors - 1)) == 0) {
            size_t cap = r->n_errors ? (size_t)r->n_errors * 2 : 8;
            r->errors = td_xrealloc(r->errors, sizeof(td_err_t) * cap);
        }
        r->errors[r->n_errors++] = *e;
    }
}

static void on_reject(void *ctx, const td_err_t *e)
{
    import_ctx_t *ic = ctx;

    ic->res->rows++;
    add_error(ic, e);
}

static bool has_null_attr(const td_entity_t *e)
{
    for (int i = 0; i < e->n_attrs; i++) {
        if (e->attrs[i].type == TD_ATTR_NULL) {
            return true;
        }
    }
    return false;
}

/* Writes merged to the store and queues it for the index. */
static int store_entity(import_ctx_t *ic, td_entity_t *merged)
{
    td_store_entity_t row;
    int rc;

    td_catalog__to_row(merged, ic->seq, &ic->cats, &ic->attrs, &row);
    if ((rc = td_store_entity_put(ic->conn, &row)) != TD_OK) {
        return rc;
    }
    td_catalog_batch_put(ic->batch, td_entity_pack(merged));
    return TD_OK;
}

static int on_entity(void *ctx, td_entity_t *e, int line)
{
    import_ctx_t *ic = ctx;
    const td_import_options_t *opt = ic->opt;
    td_entity_t merged = TD_ENTITY_INIT;
    const td_entity_t *base, *in_batch, *stored;
    td_err_t err = { 0 };
    int rc;

    ic->res->rows++;
    if (!(e->has & TD_ENTITY_ENVIRONMENT) && !(e->clear & TD_ENTITY_ENVIRONMENT) &&
        opt->environment) {
        e->environment = opt->environment;
        e->has |= TD_ENTITY_ENVIRONMENT;
    }
    e->updated_ms = opt->now_ms;
    /* a second row for the same id merges with the first, in both modes */
    in_batch = td_catalog_batch_get(ic->batch, e->id);
    stored = in_batch ? in_batch : td_catalog__peek(ic->cat, e->id);
    base = opt->mode == TD_IMPORT_UPSERT || in_batch ? stored : NULL;
    if (base == NULL && !has_null_attr(e)) {
        td_entity_move(&merged, e);
        merged.clear = 0;
    } else {
        if (base) {
            td_entity_copy(&merged, base);
        }
        if (td_entity_merge(&merged, e, true, &err) != TD_OK) {
            err.line = line;
            add_error(ic, &err);
            td_entity_release(&merged);
            return TD_OK;
        }
    }
    if (stored == NULL) {
        ic->res->inserted++;
    } else if (td_entity_equal(&merged, stored)) {
        ic->res->unchanged++;
    } else {
        ic->res->updated++;
    }
    ic->accepted++;
    rc = store_entity(ic, &merged);
    td_entity_release(&merged);
    if (rc == TD_OK && opt->progress && ic->res->rows % PROGRESS_EVERY == 0) {
        opt->progress(opt->progress_ctx, ic->res->rows);
    }
    return rc;
}

typedef struct missing_ctx {
    import_ctx_t *ic;
    int rc;
} missing_ctx_t;

static bool env_matches(const import_ctx_t *ic, const td_entity_t *e)
{
    return ic->opt->environment == 0 || e->environment == ic->opt->environment;
}

static bool mark_missing(void *ctx, const td_entity_t *e)
{
    missing_ctx_t *mc = ctx;
    import_ctx_t *ic = mc->ic;

    if (td_catalog_batch_get(ic->batch, e->id) || !env_matches(ic, e)) {
        return true;
    }
    if (ic->opt->missing == TD_MISSING_DELETE) {
        td_catalog_batch_delete(ic->batch, e->id);
        return true;
    }
    td_entity_t copy;
    td_entity_copy(&copy, e);
    copy.inventory = 0;
    copy.has |= TD_ENTITY_INVENTORY;
    td_catalog_batch_put(ic->batch, td_entity_pack(&copy));
    td_entity_release(&copy);
    return true;
}

/* Full replace: what the feed did not name goes (or goes out of stock). */
static int finish_replace(import_ctx_t *ic, td_err_t *err)
{
    missing_ctx_t mc = { ic, TD_OK };
    int64_t n = 0;
    int rc;

    if (ic->accepted == 0) {
        return td_err_set(err, TD_EINVAL, "",
                          "no entity of the feed was accepted: a full replace would empty the "
                          "catalog, so nothing was changed");
    }
    if (ic->opt->missing == TD_MISSING_DELETE) {
        rc = td_store_entity_delete_unstamped(ic->conn, ic->seq, ic->opt->environment,
                                              ic->opt->now_ms, &n);
        ic->res->deleted = n;
    } else {
        rc = td_store_entity_zero_unstamped(ic->conn, ic->seq, ic->opt->environment, &n);
        ic->res->out_of_stock = n;
    }
    if (rc == TD_OK) {
        td_catalog__each_unlocked(ic->cat, mark_missing, &mc);
    }
    return rc;
}

/* Begins a write: lock, transaction, index level with the store, a new
 * sequence number. On failure nothing is held. */
static int write_begin(td_catalog_t *cat, td_store_t *st, int64_t now_ms, td_store_conn_t **conn,
                       int64_t *seq)
{
    int rc;

    td_catalog__write_lock(cat);
    *conn = td_store_acquire(st);
    if ((rc = td_store_begin(*conn)) != TD_OK) {
        goto fail;
    }
    if ((rc = td_catalog__catch_up(cat, *conn)) != TD_OK ||
        (rc = td_store_catalog_seq_next(*conn, now_ms, seq)) != TD_OK) {
        td_store_rollback(*conn);
        goto fail;
    }
    return TD_OK;
fail:
    td_store_release(st, *conn);
    td_catalog__write_unlock(cat);
    return rc;
}

/* Commits (or, with rc != TD_OK, rolls back) and applies b to the index. */
static int write_end(td_catalog_t *cat, td_store_t *st, td_store_conn_t *conn, int64_t seq,
                     td_catalog_batch_t *b, int rc)
{
    if (rc == TD_OK) {
        rc = td_store_commit(conn);
    }
    if (rc != TD_OK) {
        td_store_rollback(conn);
    } else {
        td_catalog_apply(cat, b);
        td_catalog__set_seen_seq(cat, seq);
    }
    td_store_release(st, conn);
    td_catalog__write_unlock(cat);
    return rc;
}

int td_catalog_import(td_catalog_t *cat, struct td_store *st, const td_import_options_t *opt,
                      td_feed_read_fn read, void *read_ctx, td_import_result_t *res, td_err_t *err)
{
    static const td_feed_sink_t sink = { .entity = on_entity, .reject = on_reject };
    import_ctx_t ic = { .cat = cat, .opt = opt, .res = res };
    int64_t t0 = td_wall_ms();
    int rc;

    memset(res, 0, sizeof(*res));
    ic.max_errors = opt->max_errors > 0 ? opt->max_errors : DEFAULT_MAX_ERRORS;
    if ((rc = write_begin(cat, st, opt->now_ms, &ic.conn, &ic.seq)) != TD_OK) {
        return td_err_set(err, rc, "", "cannot start the import (%s)", td_strerror(rc));
    }
    ic.batch = td_catalog_batch_new();
    rc = td_feed_parse(opt->format, read, read_ctx, &sink, &ic, err);
    if (rc == TD_OK && opt->mode == TD_IMPORT_REPLACE) {
        rc = finish_replace(&ic, err);
    }
    if (rc == TD_OK && opt->progress) {
        opt->progress(opt->progress_ctx, res->rows);
    }
    rc = write_end(cat, st, ic.conn, ic.seq, ic.batch, rc);
    if (rc == TD_OK) {
        res->version = td_catalog_version(cat);
        td_log(TD_LOG_INFO, "catalog",
               "import format=%s mode=%s rows=%lld inserted=%lld updated=%lld unchanged=%lld "
               "rejected=%lld deleted=%lld out_of_stock=%lld ms=%lld",
               td_feed_format_name(opt->format),
               opt->mode == TD_IMPORT_REPLACE ? "replace" : "upsert", (long long)res->rows,
               (long long)res->inserted, (long long)res->updated, (long long)res->unchanged,
               (long long)res->rejected, (long long)res->deleted, (long long)res->out_of_stock,
               (long long)(td_wall_ms() - t0));
    } else if (err && err->code == TD_OK) {
        td_err_set(err, rc, "", "the import failed (%s); nothing was changed", td_strerror(rc));
    }
    td_catalog_batch_free(ic.batch);
    td_buf_release(&ic.cats);
    td_buf_release(&ic.attrs);
    return rc;
}

int td_catalog_put(td_catalog_t *cat, struct td_store *st, const td_entity_t *e, int64_t now_ms,
                   bool *created, td_err_t *err)
{
    td_entity_t whole = TD_ENTITY_INIT;
    td_store_conn_t *conn;
    td_catalog_batch_t *b;
    td_store_entity_t row;
    td_buf_t cats = TD_BUF_INIT, attrs = TD_BUF_INIT;
    int64_t seq;
    int rc;

    if ((rc = td_entity_validate(e, err)) != TD_OK) {
        return rc;
    }
    /* the whole entity: what e carries, nulls meaning "absent" */
    if ((rc = td_entity_merge(&whole, e, false, err)) != TD_OK) {
        return rc;
    }
    whole.updated_ms = now_ms;
    if ((rc = write_begin(cat, st, now_ms, &conn, &seq)) != TD_OK) {
        td_entity_release(&whole);
        return td_err_set(err, rc, "", "cannot write the catalog (%s)", td_strerror(rc));
    }
    *created = td_catalog__peek(cat, e->id) == NULL;
    b = td_catalog_batch_new();
    td_catalog__to_row(&whole, seq, &cats, &attrs, &row);
    rc = td_store_entity_put(conn, &row);
    if (rc == TD_OK) {
        td_catalog_batch_put(b, td_entity_pack(&whole));
    }
    rc = write_end(cat, st, conn, seq, b, rc);
    if (rc != TD_OK) {
        td_err_set(err, rc, "", "cannot write the catalog (%s)", td_strerror(rc));
    }
    td_catalog_batch_free(b);
    td_buf_release(&cats);
    td_buf_release(&attrs);
    td_entity_release(&whole);
    return rc;
}

int td_catalog_delete(td_catalog_t *cat, struct td_store *st, const char *id, int64_t now_ms)
{
    td_store_conn_t *conn;
    td_catalog_batch_t *b;
    int64_t seq;
    int rc;

    if ((rc = write_begin(cat, st, now_ms, &conn, &seq)) != TD_OK) {
        return rc;
    }
    b = td_catalog_batch_new();
    rc = td_store_entity_delete(conn, id, seq, now_ms);
    if (rc == TD_OK) {
        td_catalog_batch_delete(b, id);
    }
    rc = write_end(cat, st, conn, seq, b, rc);
    td_catalog_batch_free(b);
    return rc;
}

typedef struct expired_ctx {
    td_catalog_t *cat;
    td_catalog_batch_t *b;
    int64_t now_ms;
} expired_ctx_t;

static bool mark_expired(void *ctx, const td_entity_t *e)
{
    expired_ctx_t *x = ctx;

    if (td_entity_expired(e, x->now_ms, td_catalog_expiry_ms(x->cat))) {
        td_catalog_batch_delete(x->b, e->id);
    }
    return true;
}

int td_catalog_purge_expired(td_catalog_t *cat, struct td_store *st, int64_t now_ms, int64_t *n)
{
    td_store_conn_t *conn;
    int64_t seq, expiry = td_catalog_expiry_ms(cat);
    expired_ctx_t x = { cat, NULL, now_ms };
    int rc;

    *n = 0;
    if (expiry <= 0) {
        return TD_OK;
    }
    if ((rc = write_begin(cat, st, now_ms, &conn, &seq)) != TD_OK) {
        return rc;
    }
    x.b = td_catalog_batch_new();
    /* expired: now >= updated + expiry, so updated <= now - expiry */
    rc = td_store_entity_delete_expired(conn, now_ms - expiry + 1, seq, now_ms, n);
    if (rc == TD_OK) {
        td_catalog__each_unlocked(cat, mark_expired, &x);
    }
    rc = write_end(cat, st, conn, seq, x.b, rc);
    td_catalog_batch_free(x.b);
    if (rc == TD_OK) {
        td_log(TD_LOG_INFO, "catalog", "purge_expired deleted=%lld", (long long)*n);
    }
    return rc;
}

int td_catalog__upsert(td_catalog_t *cat, struct td_store *st, const td_entity_t *part,
                       int64_t now_ms, bool *created, td_err_t *err)
{
    td_entity_t merged = TD_ENTITY_INIT;
    const td_entity_t *base;
    td_store_conn_t *conn;
    td_catalog_batch_t *b;
    td_store_entity_t row;
    td_buf_t cats = TD_BUF_INIT, attrs = TD_BUF_INIT;
    int64_t seq;
    int rc;

    if ((rc = write_begin(cat, st, now_ms, &conn, &seq)) != TD_OK) {
        return td_err_set(err, rc, "", "cannot write the catalog (%s)", td_strerror(rc));
    }
    b = td_catalog_batch_new();
    base = td_catalog__peek(cat, part->id);
    *created = base == NULL;
    if (base) {
        td_entity_copy(&merged, base);
    }
    rc = td_entity_merge(&merged, part, true, err);
    if (rc == TD_OK) {
        merged.updated_ms = now_ms;
        td_catalog__to_row(&merged, seq, &cats, &attrs, &row);
        rc = td_store_entity_put(conn, &row);
    }
    if (rc == TD_OK) {
        td_catalog_batch_put(b, td_entity_pack(&merged));
    }
    rc = write_end(cat, st, conn, seq, b, rc);
    td_catalog_batch_free(b);
    td_buf_release(&cats);
    td_buf_release(&attrs);
    td_entity_release(&merged);
    return rc;
}
