/* The in-memory index: lookups by id, category and attribute value, updates
 * that move an entity between categories, deletes and reuse of places,
 * paging, versions, references that outlive a delete, and readers running
 * while a writer applies batches. */
#include "test.h"

#include <pthread.h>
#include <stdio.h>

#include "feed_util.h"

static td_entity_t *make(const char *id, const char *cats, const char *color, int64_t updated)
{
    td_entity_t e = TD_ENTITY_INIT, *p;

    e.id = strdup(id);
    e.updated_ms = updated;
    for (const char *c = cats; c && *c;) {
        size_t n = strcspn(c, ",");
        td_entity_add_category(&e, c, n);
        c += n + (c[n] == ',');
    }
    if (color) {
        td_attr_t *a = td_entity_set_attr(&e, "color", 5);
        a->type = TD_ATTR_STRING;
        a->str = strdup(color);
    }
    p = td_entity_pack(&e);
    td_entity_release(&e);
    return p;
}

static bool collect_ids(void *ctx, const td_entity_t *e)
{
    td_buf_t *b = ctx;

    td_buf_addf(b, "%s%s", b->len ? "," : "", e->id);
    return true;
}

static char *in_category(td_catalog_t *cat, const char *c, int64_t now)
{
    td_buf_t b = TD_BUF_INIT;

    td_catalog_foreach_in_category(cat, c, now, collect_ids, &b);
    return td_buf_detach(&b);
}

static char *with_color(td_catalog_t *cat, const char *v)
{
    td_buf_t b = TD_BUF_INIT;

    td_catalog_foreach_with_attr(cat, "color", v, 0, collect_ids, &b);
    return td_buf_detach(&b);
}

#define assert_ids(expr, want)             \
    do {                                   \
        char *got_ = (expr);               \
        assert_string_equal(got_, (want)); \
        free(got_);                        \
    } while (0)

static void test_lookups_and_updates(void **state)
{
    td_catalog_t *cat = td_catalog_new(1000);
    td_catalog_batch_t *b = td_catalog_batch_new();

    (void)state;
    td_catalog_batch_put(b, make("A", "Men,Men:Coats", "red", 100));
    td_catalog_batch_put(b, make("B", "Men", "blue", 100));
    td_catalog_batch_put(b, make("C", "Women", "red", 100));
    td_catalog_batch_put(b, make("A", "Men,Men:Coats,Sale", "red", 100)); /* last put wins */
    assert_int_equal(td_catalog_batch_size(b), 3);
    td_catalog_apply(cat, b);
    assert_int_equal(td_catalog_version(cat), 1);
    assert_int_equal(td_catalog_size(cat), 3);
    assert_ids(in_category(cat, "Men", 0), "A,B");
    assert_ids(in_category(cat, "Sale", 0), "A");
    assert_ids(with_color(cat, "red"), "A,C");
    assert_ids(in_category(cat, "Nope", 0), "");

    const td_entity_t *a = td_catalog_get(cat, "A");
    assert_non_null(a);
    /* A moves to Women and turns blue; B goes */
    td_catalog_batch_put(b, make("A", "Women", "blue", 200));
    td_catalog_batch_delete(b, "B");
    td_catalog_apply(cat, b);
    assert_int_equal(td_catalog_version(cat), 2);
    assert_ids(in_category(cat, "Men", 0), "");
    assert_ids(in_category(cat, "Women", 0), "A,C");
    assert_ids(with_color(cat, "blue"), "A");
    assert_ids(with_color(cat, "red"), "C");
    assert_null(td_catalog_get(cat, "B"));
    /* the reference taken before still reads the old A */
    assert_int_equal(a->n_categories, 3);
    td_entity_unref(a);

    /* a new entity takes B's freed place */
    td_catalog_batch_put(b, make("D", "Men", NULL, 200));
    td_catalog_apply(cat, b);
    assert_ids(in_category(cat, "Men", 0), "D");
    /* expiry: at now = 1100 the entities updated at 100 are expired */
    assert_ids(in_category(cat, "Women", 1100), "A");
    td_catalog_batch_free(b);
    td_catalog_free(cat);
}

static void test_paging(void **state)
{
    td_catalog_t *cat = td_catalog_new(0);
    td_catalog_batch_t *b = td_catalog_batch_new();
    char id[16];

    (void)state;
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof(id), "P%02d", i);
        td_catalog_batch_put(b, make(id, i % 2 ? "Odd" : "Even", i % 3 ? "x" : "y", 1));
    }
    td_catalog_apply(cat, b);
    td_catalog_batch_free(b);
    for (int pass = 0; pass < 3; pass++) {
        const char *category = pass == 1 ? "Odd" : NULL, *brand = NULL;
        uint64_t cursor = 0;
        size_t total = 0, pages = 0;
        do {
            td_buf_t ids = TD_BUF_INIT;
            total += td_catalog_page(cat, category, brand, 0, &cursor, 10, collect_ids, &ids);
            pages++;
            td_buf_release(&ids);
        } while (cursor && pages < 10);
        assert_int_equal(total, pass == 1 ? 12 : 25);
    }
    td_catalog_free(cat);
}

typedef struct race {
    td_catalog_t *cat;
    volatile int stop;
    long reads;
} race_t;

static bool check_pair(void *ctx, const td_entity_t *e)
{
    int *n = ctx;

    /* every batch puts X and Y in the same category: a reader sees both or neither */
    (void)e;
    (*n)++;
    return true;
}

static void *reader(void *arg)
{
    race_t *r = arg;

    while (!r->stop) {
        int n = 0;
        uint64_t v = td_catalog_version(r->cat);
        char cat_name[32];
        snprintf(cat_name, sizeof(cat_name), "round%llu", (unsigned long long)v);
        td_catalog_foreach_in_category(r->cat, cat_name, 0, check_pair, &n);
        if (n != 0 && n != 2) {
            fprintf(stderr, "half a batch seen: %d\n", n);
            abort();
        }
        r->reads++;
    }
    return NULL;
}

static void test_readers_never_see_half_a_batch(void **state)
{
    race_t r = { td_catalog_new(0), 0, 0 };
    pthread_t t[2];
    char c[32];

    (void)state;
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, reader, &r);
    }
    td_catalog_batch_t *b = td_catalog_batch_new();
    for (int round = 0; round < 300; round++) {
        snprintf(c, sizeof(c), "round%d", round + 1);
        td_catalog_batch_put(b, make("X", c, NULL, 1));
        td_catalog_batch_put(b, make("Y", c, NULL, 1));
        td_catalog_apply(r.cat, b);
    }
    r.stop = 1;
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    td_catalog_batch_free(b);
    td_catalog_free(r.cat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups_and_updates),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_readers_never_see_half_a_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
