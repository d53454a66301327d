/* Imports through the store (a fresh SQLite database per test): upsert and
 * replace semantics, nothing written by a failed import, the index rebuilt
 * from the store and kept level with writes of another process, entity
 * parameters of recommendation requests, single writes and expiry. With
 * TANDEM_TEST_STORE set (e.g. a postgres:// URL) they run on that store
 * instead, its catalog emptied before each test. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "store/store.h"
#include "util/buf.h"

#define DAY_MS (24 * 3600 * 1000LL)
#define NOW    1800000000000LL

typedef struct fixture {
    char dir[64];
    td_store_t *st;
    td_catalog_t *cat;
} fixture_t;

/* A shared store keeps the catalog of earlier tests: delete every entity
 * (a full replace by nothing) so that each test starts from an empty one. */
static void empty_catalog(td_store_t *st)
{
    td_store_conn_t *c = td_store_acquire(st);
    int64_t seq, n;

    assert_int_equal(td_store_begin(c), TD_OK);
    assert_int_equal(td_store_catalog_seq_next(c, NOW, &seq), TD_OK);
    assert_int_equal(td_store_entity_delete_unstamped(c, seq, 0, NOW, &n), TD_OK);
    assert_int_equal(td_store_commit(c), TD_OK);
    td_store_release(st, c);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    td_store_options_t opt = { 0 };
    td_err_t err = { 0 };
    const char *url = getenv("TANDEM_TEST_STORE");

    snprintf(f->dir, sizeof(f->dir), "/tmp/tandem-cat-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    opt.data_dir = f->dir;
    opt.pool_size = 4;
    assert_int_equal(td_store_open(url ? url : "", &opt, &f->st, &err), TD_OK);
    if (url && *url) {
        empty_catalog(f->st);
    }
    f->cat = td_catalog_new(61 * DAY_MS);
    assert_int_equal(td_catalog_load(f->cat, f->st), TD_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];

    td_catalog_free(f->cat);
    td_store_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) {
        return -1;
    }
    free(f);
    return 0;
}

typedef struct mem {
    const char *s;
    size_t pos;
} mem_t;

static long mem_read(void *ctx, char *buf, size_t cap)
{
    mem_t *m = ctx;
    size_t n = strlen(m->s + m->pos);

    n = n < cap ? n : cap;
    n = n < 5 ? n : 5; /* small reads: the driver must not care */
    memcpy(buf, m->s + m->pos, n);
    m->pos += n;
    return (long)n;
}

static int import(fixture_t *f, td_feed_format_t fmt, td_import_mode_t mode,
                  td_import_missing_t missing, int64_t now, const char *text,
                  td_import_result_t *res, td_err_t *err)
{
    td_import_options_t opt = { .format = fmt, .mode = mode, .missing = missing, .now_ms = now };
    mem_t m = { text, 0 };

    memset(err, 0, sizeof(*err));
    return td_catalog_import(f->cat, f->st, &opt, mem_read, &m, res, err);
}

static int64_t store_count(fixture_t *f)
{
    td_store_conn_t *c = td_store_acquire(f->st);
    int64_t n = -1;

    assert_int_equal(td_store_entity_count(c, &n), TD_OK);
    td_store_release(f->st, c);
    return n;
}

static const char *feed1 = "## RECSentity.id,entity.name,entity.categoryId,entity.value,"
                           "entity.inventory,entity.color\n"
                           "A,Coat,Men,100,5,red\n"
                           "B,Parka,Women,200,1,blue\n"
                           "C,Scarf,Acc,20,9,\n";

static void test_upsert(void **state)
{
    fixture_t *f = *state;
    td_import_result_t res;
    td_err_t err;
    uint64_t v0 = td_catalog_version(f->cat); /* a shared store's load may have counted one */

    assert_int_equal(import(f, TD_FEED_TARGET_CSV, TD_IMPORT_UPSERT, 0, NOW, feed1, &res, &err),
                     TD_OK);
    assert_int_equal(res.inserted, 3);
    assert_int_equal(res.version, v0 + 1);
    td_import_result_release(&res);
    /* a partial feed: blank name keeps it, categories add up, price changes */
    assert_int_equal(import(f, TD_FEED_TARGET_CSV, TD_IMPORT_UPSERT, 0, NOW + 1,
                            "entity.id,entity.name,entity.categoryId,entity.value\n"
                            "A,,Sale,90\nA,,Outlet,\nC,Scarf,Acc,20\nD,New,,1\nE,Bad,,x\n",
                            &res, &err),
                     TD_OK);
    assert_int_equal(res.rows, 5);
    assert_int_equal(res.inserted, 1);
    assert_int_equal(res.updated, 2);
    assert_int_equal(res.unchanged, 1);
    assert_int_equal(res.rejected, 1);
    assert_int_equal(res.errors[0].line, 6);
    td_import_result_release(&res);
    const td_entity_t *a = td_catalog_get(f->cat, "A");
    assert_string_equal(a->name, "Coat");
    assert_true(a->value == 90);
    assert_int_equal(a->n_categories, 3);
    assert_string_equal(a->categories[2], "Outlet");
    assert_int_equal(a->updated_ms, NOW + 1);
    td_entity_unref(a);
    assert_int_equal(store_count(f), 4);

    /* the store holds what the index holds: a fresh index loads the same */
    td_catalog_t *again = td_catalog_new(0);
    assert_int_equal(td_catalog_load(again, f->st), TD_OK);
    assert_int_equal(td_catalog_size(again), 4);
    const td_entity_t *a1 = td_catalog_get(f->cat, "A"), *a2 = td_catalog_get(again, "A");
    assert_true(td_entity_equal(a1, a2));
    assert_true(a2->inventory == 5);
    assert_string_equal(td_entity_attr(a2, "color")->str, "red");
    td_entity_unref(a1);
    td_entity_unref(a2);
    td_catalog_free(again);
}

static void test_replace(void **state)
{
    fixture_t *f = *state;
    td_import_result_t res;
    td_err_t err;

    assert_int_equal(import(f, TD_FEED_TARGET_CSV, 0, 0, NOW, feed1, &res, &err), TD_OK);
    td_import_result_release(&res);
    /* out of stock: B and C stay, with inventory 0; A is replaced whole */
    assert_int_equal(import(f, TD_FEED_TARGET_CSV, TD_IMPORT_REPLACE, TD_MISSING_OUT_OF_STOCK,
                            NOW + 1, "entity.id,entity.categoryId\nA,New\n", &res, &err),
                     TD_OK);
    assert_int_equal(res.updated, 1);
    assert_int_equal(res.out_of_stock, 2);
    td_import_result_release(&res);
    const td_entity_t *a = td_catalog_get(f->cat, "A"), *b = td_catalog_get(f->cat, "B");
    assert_null(a->name);
    assert_int_equal(a->n_categories, 1);
    assert_true(b->inventory == 0 && b->value == 200);
    td_entity_unref(a);
    td_entity_unref(b);
    /* delete: only what the feed names stays */
    assert_int_equal(import(f, TD_FEED_JSON, TD_IMPORT_REPLACE, TD_MISSING_DELETE, NOW + 2,
                            "{\"entities\":[{\"id\":\"B\",\"name\":\"Parka\"},{\"id\":\"Z\"}]}",
                            &res, &err),
                     TD_OK);
    assert_int_equal(res.deleted, 2);
    assert_int_equal(res.inserted, 1);
    td_import_result_release(&res);
    assert_int_equal(store_count(f), 2);
    assert_int_equal(td_catalog_size(f->cat), 2);
    assert_null(td_catalog_get(f->cat, "A"));
    /* a replace in which nothing was accepted changes nothing */
    assert_int_equal(import(f, TD_FEED_TARGET_CSV, TD_IMPORT_REPLACE, 0, NOW + 3,
                            "entity.id,entity.value\nA,oops\n", &res, &err),
                     TD_EINVAL);
    assert_int_equal(res.rejected, 1);
    td_import_result_release(&res);
    assert_int_equal(store_count(f), 2);
}

static void test_failed_import_writes_nothing(void **state)
{
    fixture_t *f = *state;
    td_import_result_t res;
    td_err_t err;
    uint64_t v;

    assert_int_equal(import(f, TD_FEED_TARGET_CSV, 0, 0, NOW, feed1, &res, &err), TD_OK);
    td_import_result_release(&res);
    v = td_catalog_version(f->cat);
    assert_int_equal(import(f, TD_FEED_TARGET_CSV, 0, 0, NOW + 1,
                            "entity.id,entity.name\nA,Changed\nX,New\nY,\"never closed\n", &res,
                            &err),
                     TD_EINVAL);
    td_import_result_release(&res);
    assert_int_equal(err.line, 4);
    assert_int_equal(td_catalog_version(f->cat), v);
    assert_int_equal(store_count(f), 3);
    const td_entity_t *a = td_catalog_get(f->cat, "A");
    assert_string_equal(a->name, "Coat");
    td_entity_unref(a);
    assert_null(td_catalog_get(f->cat, "X"));
    assert_int_equal(import(f, TD_FEED_GOOGLE_XML, 0, 0, NOW + 1,
                            "<rss xmlns:g=\"http://base.google.com/ns/1.0\"><channel>"
                            "<item><g:id>X</g:id></item><item><g:id>Y</g:id>",
                            &res, &err),
                     TD_EINVAL);
    td_import_result_release(&res);
    assert_int_equal(store_count(f), 3);
}

static void test_other_process_writes(void **state)
{
    fixture_t *f = *state;
    td_catalog_t *other = td_catalog_new(0);
    td_import_result_t res;
    td_err_t err;

    /* "other" stands for the tandem import process; f->cat for the server */
    assert_int_equal(td_catalog_load(other, f->st), TD_OK);
    fixture_t g = *f;
    g.cat = other;
    assert_int_equal(import(&g, TD_FEED_TARGET_CSV, 0, 0, NOW, feed1, &res, &err), TD_OK);
    td_import_result_release(&res);
    assert_int_equal(td_catalog_size(f->cat), 0);
    assert_int_equal(td_catalog_sync(f->cat, f->st), TD_OK);
    assert_int_equal(td_catalog_size(f->cat), 3);
    assert_int_equal(td_catalog_delete(other, f->st, "B", NOW), TD_OK);
    assert_int_equal(td_catalog_delete(other, f->st, "B", NOW), TD_ENOTFOUND);
    /* the server writes too: it first catches up, then merges on top */
    assert_int_equal(
        import(f, TD_FEED_TARGET_CSV, 0, 0, NOW, "entity.id,entity.value\nA,1\n", &res, &err),
        TD_OK);
    assert_int_equal(res.updated, 1);
    td_import_result_release(&res);
    assert_null(td_catalog_get(f->cat, "B"));
    const td_entity_t *a = td_catalog_get(f->cat, "A");
    assert_string_equal(a->name, "Coat");
    td_entity_unref(a);
    assert_int_equal(td_catalog_sync(other, f->st), TD_OK);
    a = td_catalog_get(other, "A");
    assert_true(a->value == 1);
    td_entity_unref(a);
    td_catalog_free(other);
}

static void test_params(void **state)
{
    fixture_t *f = *state;
    td_params_result_t res;
    td_err_t err = { 0 };
    const td_kv_t view[] = {
        { "entity.id", "SKU-1" },
        { "entity.name", "Winter coat" },
        { "entity.categoryId", "Men,Men:Coats" },
        { "entity.value", "59.90" },
        { "entity.pageUrl", "https://shop.example/sku-1" },
        { "entity.sizes", "[\"S\",\"M\"]" },
        { "entity.event.detailsOnly", "false" },
        { "mbox3rdPartyId", "ignored" },
    };
    const td_kv_t details[] = {
        { "entity.id", "SKU-1" },
        { "entity.categoryId", "[\"Sale\"]" },
        { "entity.event.detailsOnly", "true" },
    };
    const td_kv_t bad[] = { { "entity.id", "SKU-1" }, { "entity.value", "12,99 EUR" } };
    const td_kv_t none[] = { { "productPurchasedId", "X" } };

    assert_int_equal(td_catalog_update_from_params(f->cat, f->st, view, 8, NOW, false, &res, &err),
                     TD_OK);
    assert_true(res.has_entity && res.counts_as_view && res.written && res.created);
    /* the same again within a day: no write */
    assert_int_equal(
        td_catalog_update_from_params(f->cat, f->st, view, 8, NOW + 1000, false, &res, &err),
        TD_OK);
    assert_false(res.written);
    /* a day later: written again, to refresh the expiry */
    assert_int_equal(
        td_catalog_update_from_params(f->cat, f->st, view, 8, NOW + DAY_MS, false, &res, &err),
        TD_OK);
    assert_true(res.written);
    assert_int_equal(
        td_catalog_update_from_params(f->cat, f->st, details, 3, NOW + DAY_MS, false, &res, &err),
        TD_OK);
    assert_false(res.counts_as_view);
    assert_true(res.written && !res.created);
    const td_entity_t *e = td_catalog_get(f->cat, "SKU-1");
    assert_int_equal(e->n_categories, 3);
    assert_true(e->value == 59.9);
    assert_int_equal(td_entity_attr(e, "sizes")->n_list, 2);
    td_entity_unref(e);
    assert_int_equal(td_catalog_update_from_params(f->cat, f->st, bad, 2, NOW, false, &res, &err),
                     TD_EINVAL);
    assert_string_equal(err.path, "entity.value");
    assert_int_equal(td_catalog_update_from_params(f->cat, f->st, none, 1, NOW, false, &res, &err),
                     TD_OK);
    assert_false(res.has_entity);
    /* ignore: the view still counts, the catalog is not touched */
    const td_kv_t other[] = { { "entity.id", "SKU-2" }, { "entity.name", "x" } };
    assert_int_equal(td_catalog_update_from_params(f->cat, f->st, other, 2, NOW, true, &res, &err),
                     TD_OK);
    assert_true(res.has_entity && res.counts_as_view && !res.written);
    assert_null(td_catalog_get(f->cat, "SKU-2"));
}

static void test_put_delete_expiry(void **state)
{
    fixture_t *f = *state;
    td_entity_t e;
    td_err_t err = { 0 };
    bool created;
    int64_t n;
    const char *body = "{\"id\":\"P\",\"name\":\"Put\",\"attributes\":{\"value\":3,\"x\":null}}";

    assert_int_equal(td_entity_from_json(body, strlen(body), "", &e, &err), TD_OK);
    assert_int_equal(td_catalog_put(f->cat, f->st, &e, NOW, &created, &err), TD_OK);
    assert_true(created);
    assert_int_equal(td_catalog_put(f->cat, f->st, &e, NOW + 10 * DAY_MS, &created, &err), TD_OK);
    assert_false(created);
    td_entity_release(&e);
    body = "{\"id\":\"Q\"}";
    assert_int_equal(td_entity_from_json(body, strlen(body), "", &e, &err), TD_OK);
    assert_int_equal(td_catalog_put(f->cat, f->st, &e, NOW, &created, &err), TD_OK);
    td_entity_release(&e);
    /* at NOW + 62 days Q (updated at NOW) has expired, P (NOW + 10 days) not */
    assert_int_equal(td_catalog_purge_expired(f->cat, f->st, NOW + 62 * DAY_MS, &n), TD_OK);
    assert_int_equal(n, 1);
    assert_null(td_catalog_get(f->cat, "Q"));
    const td_entity_t *p = td_catalog_get(f->cat, "P");
    assert_non_null(p);
    assert_null(td_entity_attr(p, "x"));
    td_entity_unref(p);
    assert_int_equal(store_count(f), 1);
    assert_int_equal(td_catalog_delete(f->cat, f->st, "P", NOW), TD_OK);
    assert_int_equal(store_count(f), 0);
    assert_int_equal(td_catalog_size(f->cat), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_import_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_process_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_delete_expiry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
