/* Contract tests of the storage interface (store/store.h). They go through
 * the public td_store_* calls only, so they run unchanged against any
 * backend: the store URL comes from TANDEM_TEST_STORE (for instance a
 * postgres:// URL), and without it a SQLite store in a fresh temporary
 * directory is used. Identities and event ids carry a prefix unique to the
 * run, and counts are compared before and after, so a shared database that
 * already holds data does not disturb the tests. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "util/log.h"

typedef struct fixture {
    char dir[256];
    const char *url;
    td_store_t *st;
    td_store_conn_t *c;
    char prefix[64];
    char names[16][128]; /* ring of buffers for id() */
    int next_name;
} fixture_t;

static int open_store(fixture_t *fx)
{
    td_store_options_t opt = { .data_dir = fx->dir, .pool_size = 4, .sync_full = false };
    td_err_t err = { 0 };

    if (td_store_open(fx->url, &opt, &fx->st, &err) != TD_OK) {
        fprintf(stderr, "td_store_open(\"%s\"): %s\n", fx->url, err.message);
        return -1;
    }
    fx->c = td_store_acquire(fx->st);
    return 0;
}

static void close_store(fixture_t *fx)
{
    td_store_release(fx->st, fx->c);
    td_store_close(fx->st);
    fx->c = NULL;
    fx->st = NULL;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[300];

    if (fx->st) {
        close_store(fx);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static int setup(void **state)
{
    static unsigned counter;
    fixture_t *fx = calloc(1, sizeof(*fx));
    const char *base = getenv("TMPDIR");

    snprintf(fx->dir, sizeof(fx->dir), "%s/tandem-store-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        return -1;
    }
    fx->url = getenv("TANDEM_TEST_STORE") ? getenv("TANDEM_TEST_STORE") : "";
    snprintf(fx->prefix, sizeof(fx->prefix), "t%ld-%d-%u-", (long)time(NULL), (int)getpid(),
             counter++);
    *state = fx;
    if (open_store(fx) != 0) {
        teardown(state); /* cmocka skips the teardown of a failed setup */
        return -1;
    }
    return 0;
}

/* name made unique to this run; valid until 16 more calls */
static const char *id(fixture_t *fx, const char *name)
{
    char *out = fx->names[fx->next_name++ % 16];

    snprintf(out, 128, "%s%s", fx->prefix, name);
    return out;
}

static void begin(td_store_conn_t *c)
{
    assert_int_equal(td_store_begin(c), TD_OK);
}

static void commit(td_store_conn_t *c)
{
    assert_int_equal(td_store_commit(c), TD_OK);
}

static int64_t new_profile(td_store_conn_t *c, int64_t now_ms)
{
    int64_t pid = 0;

    begin(c);
    assert_int_equal(td_store_profile_create(c, now_ms, &pid), TD_OK);
    commit(c);
    assert_true(pid > 0);
    return pid;
}

static td_store_item_t item(const char *item_id, int64_t qty, int64_t ts_ms)
{
    return (td_store_item_t){ .id = (char *)item_id, .quantity = qty, .ts_ms = ts_ms };
}

static int64_t append_event(fixture_t *fx, const char *event_id, const char *type, int64_t pid,
                            int64_t ts_ms, int expect_rc)
{
    td_store_event_t ev = { .event_id = event_id ? id(fx, event_id) : NULL,
                            .type = type,
                            .profile_id = pid,
                            .ts_ms = ts_ms,
                            .received_ms = ts_ms + 1,
                            .doc = "{\"type\":\"x\"}" };
    int64_t seq = -1;

    assert_int_equal(td_store_event_append(fx->c, &ev, &seq), expect_rc);
    return seq;
}

static int64_t event_count(td_store_conn_t *c)
{
    int64_t n = -1;

    assert_int_equal(td_store_event_count(c, &n), TD_OK);
    return n;
}

static void load(td_store_conn_t *c, int64_t pid, td_store_profile_t *p)
{
    assert_int_equal(td_store_profile_load(c, pid, p), TD_OK);
    assert_int_equal(p->id, pid);
}

static const td_store_item_t *find_item(const td_store_item_t *items, int n, const char *item_id)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(items[i].id, item_id) == 0) {
            return &items[i];
        }
    }
    return NULL;
}

static int64_t count_of(const td_store_profile_t *p, const char *type)
{
    for (int i = 0; i < p->n_counts; i++) {
        if (strcmp(p->counts[i].type, type) == 0) {
            return p->counts[i].n;
        }
    }
    return 0;
}

static void test_backend_and_meta(void **state)
{
    fixture_t *fx = *state;
    char *v = NULL;

    const char *name = td_store_backend(fx->st);
    assert_true(strcmp(name, "sqlite") == 0 || strcmp(name, "postgres") == 0);
    assert_int_equal(td_store_meta_get(fx->c, id(fx, "missing"), &v), TD_ENOTFOUND);
    assert_null(v);
    begin(fx->c);
    assert_int_equal(td_store_meta_set(fx->c, id(fx, "k"), "one"), TD_OK);
    commit(fx->c);
    assert_int_equal(td_store_meta_get(fx->c, id(fx, "k"), &v), TD_OK);
    assert_string_equal(v, "one");
    free(v);
    begin(fx->c);
    assert_int_equal(td_store_meta_set(fx->c, id(fx, "k"), ""), TD_OK);
    commit(fx->c);
    assert_int_equal(td_store_meta_get(fx->c, id(fx, "k"), &v), TD_OK);
    assert_string_equal(v, "");
    free(v);
}

static void test_identities(void **state)
{
    fixture_t *fx = *state;
    int64_t p1, p2, found = 0;

    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E1"), &found), TD_ENOTFOUND);
    p1 = new_profile(fx->c, 1000);
    p2 = new_profile(fx->c, 2000);
    assert_true(p1 != p2);
    begin(fx->c);
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E1"), p1, 1000), TD_OK);
    assert_int_equal(td_store_identity_link(fx->c, "email", id(fx, "E1"), p2, 1000), TD_OK);
    commit(fx->c);
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E1"), &found), TD_OK);
    assert_int_equal(found, p1);
    /* namespaces are separate */
    assert_int_equal(td_store_identity_find(fx->c, "email", id(fx, "E1"), &found), TD_OK);
    assert_int_equal(found, p2);
    assert_int_equal(td_store_identity_find(fx->c, "customer", id(fx, "E1"), &found), TD_ENOTFOUND);
    /* ids are exact: no case folding, no prefix match */
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "e1"), &found), TD_ENOTFOUND);
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E"), &found), TD_ENOTFOUND);
    /* a link is insert-if-absent: linking a known identity again is a
     * conflict (a concurrent writer got there first) and changes nothing */
    begin(fx->c);
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E1"), p2, 3000), TD_ECONFLICT);
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E1"), p1, 3000), TD_ECONFLICT);
    /* and the transaction goes on after it */
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E3"), p2, 3000), TD_OK);
    commit(fx->c);
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E1"), &found), TD_OK);
    assert_int_equal(found, p1);
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E3"), &found), TD_OK);
    assert_int_equal(found, p2);

    /* strange but valid ids survive the trip */
    static const char odd[] = "a'b\"c\\d;--\xc3\xa9 %_\t";
    begin(fx->c);
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, odd), p1, 1), TD_OK);
    commit(fx->c);
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, odd), &found), TD_OK);
    assert_int_equal(found, p1);
    assert_int_equal(
        td_store_identity_find(fx->c, "ecid", id(fx, "a'b\"c\\d;--\xc3\xa9 %%_"), &found),
        TD_ENOTFOUND);
}

static void test_event_idempotency(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000), n0 = event_count(fx->c), s1, s2, s3, s4;

    begin(fx->c);
    s1 = append_event(fx, "k1", "page_view", pid, 1000, TD_OK);
    assert_true(s1 > 0);
    /* a repeated key reports the stored seq and stores nothing */
    s2 = append_event(fx, "k1", "cart_add", pid, 2000, TD_ECONFLICT);
    assert_int_equal(s2, s1);
    /* the transaction goes on after a conflict (the ingest writer relies on it) */
    s3 = append_event(fx, "k2", "page_view", pid, 3000, TD_OK);
    assert_true(s3 > s1);
    s4 = append_event(fx, NULL, "page_view", pid, 4000, TD_OK);
    assert_true(s4 > s3);
    assert_true(append_event(fx, NULL, "page_view", pid, 4000, TD_OK) > s4);
    commit(fx->c);
    assert_int_equal(event_count(fx->c), n0 + 4);

    /* and in a later transaction too */
    begin(fx->c);
    assert_int_equal(append_event(fx, "k2", "page_view", pid, 5000, TD_ECONFLICT), s3);
    commit(fx->c);
    assert_int_equal(event_count(fx->c), n0 + 4);

    td_store_profile_t p;
    load(fx->c, pid, &p);
    assert_int_equal(count_of(&p, "page_view"), 4);
    assert_int_equal(count_of(&p, "cart_add"), 0); /* the conflicting one left no trace */
    td_store_profile_release(&p);
}

static void test_cart(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000);
    td_store_profile_t p;
    td_store_item_t a = item("A", 2, 100);

    a.name = (char *)"Coat";
    a.category = (char *)"Men:Coats";
    a.price = 59.9;
    a.has_price = true;
    begin(fx->c);
    assert_int_equal(td_store_cart_add(fx->c, pid, &a), TD_OK);
    td_store_item_t a2 = item("A", 3, 200); /* no name or price: the known ones stay */
    assert_int_equal(td_store_cart_add(fx->c, pid, &a2), TD_OK);
    td_store_item_t b = item("B", 1, 150);
    assert_int_equal(td_store_cart_add(fx->c, pid, &b), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_cart, 2);
    const td_store_item_t *got = find_item(p.cart, p.n_cart, "A");
    assert_non_null(got);
    assert_int_equal(got->quantity, 5);
    assert_string_equal(got->name, "Coat");
    assert_string_equal(got->category, "Men:Coats");
    assert_true(got->has_price);
    assert_true(got->price == 59.9);
    assert_int_equal(got->ts_ms, 200);
    got = find_item(p.cart, p.n_cart, "B");
    assert_false(got->has_price);
    assert_null(got->name);
    td_store_profile_release(&p);

    begin(fx->c);
    assert_int_equal(td_store_cart_remove(fx->c, pid, "A", 2, false), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(find_item(p.cart, p.n_cart, "A")->quantity, 3);
    td_store_profile_release(&p);

    begin(fx->c);
    assert_int_equal(td_store_cart_remove(fx->c, pid, "A", 3, false), TD_OK); /* reaches 0 */
    assert_int_equal(td_store_cart_remove(fx->c, pid, "NOPE", 1, false), TD_OK);
    assert_int_equal(td_store_cart_remove(fx->c, pid, "NOPE", 0, true), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_cart, 1);
    assert_null(find_item(p.cart, p.n_cart, "A"));
    td_store_profile_release(&p);

    begin(fx->c);
    td_store_item_t c1 = item("C", 4, 300);
    assert_int_equal(td_store_cart_add(fx->c, pid, &c1), TD_OK);
    assert_int_equal(td_store_cart_remove(fx->c, pid, "C", 10, false), TD_OK); /* below 0 */
    assert_int_equal(td_store_cart_remove(fx->c, pid, "B", 0, true), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_cart, 0);
    td_store_profile_release(&p);

    begin(fx->c);
    assert_int_equal(td_store_cart_add(fx->c, pid, &b), TD_OK);
    assert_int_equal(td_store_cart_add(fx->c, pid, &c1), TD_OK);
    assert_int_equal(td_store_cart_clear(fx->c, pid), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_cart, 0);
    td_store_profile_release(&p);

    /* carts are per profile */
    int64_t other = new_profile(fx->c, 1000);
    begin(fx->c);
    assert_int_equal(td_store_cart_add(fx->c, other, &b), TD_OK);
    assert_int_equal(td_store_cart_add(fx->c, pid, &c1), TD_OK);
    assert_int_equal(td_store_cart_clear(fx->c, pid), TD_OK);
    commit(fx->c);
    load(fx->c, other, &p);
    assert_int_equal(p.n_cart, 1);
    td_store_profile_release(&p);
}

static void test_viewed(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000);
    td_store_profile_t p;
    char name[16];

    begin(fx->c);
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof(name), "V%d", i);
        td_store_item_t it = item(name, 1, 1000 + i);
        assert_int_equal(td_store_viewed_add(fx->c, pid, &it, 3), TD_OK);
    }
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_viewed, 3);
    assert_string_equal(p.viewed[0].id, "V5"); /* newest first */
    assert_string_equal(p.viewed[1].id, "V4");
    assert_string_equal(p.viewed[2].id, "V3");
    assert_int_equal(p.viewed[0].ts_ms, 1005);
    td_store_profile_release(&p);

    /* a view again moves an item to the front; an older view does not */
    begin(fx->c);
    td_store_item_t v3 = item("V3", 1, 2000);
    v3.name = (char *)"Three";
    assert_int_equal(td_store_viewed_add(fx->c, pid, &v3, 3), TD_OK);
    td_store_item_t v4 = item("V4", 1, 10);
    assert_int_equal(td_store_viewed_add(fx->c, pid, &v4, 3), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_viewed, 3);
    assert_string_equal(p.viewed[0].id, "V3");
    assert_string_equal(p.viewed[0].name, "Three");
    assert_int_equal(p.viewed[0].ts_ms, 2000);
    assert_string_equal(p.viewed[1].id, "V5");
    assert_string_equal(p.viewed[2].id, "V4");
    assert_int_equal(p.viewed[2].ts_ms, 1004);
    td_store_profile_release(&p);

    /* a smaller bound trims on the next view */
    begin(fx->c);
    td_store_item_t v6 = item("V6", 1, 3000);
    assert_int_equal(td_store_viewed_add(fx->c, pid, &v6, 1), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_viewed, 1);
    assert_string_equal(p.viewed[0].id, "V6");
    td_store_profile_release(&p);
}

/* Items viewed in one event share its timestamp (and on a virtual clock
 * so do all events without "ts"); the bound must hold all the same. */
static void test_viewed_bound_holds_for_equal_timestamps(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000);
    td_store_profile_t p;
    char name[16];

    begin(fx->c);
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof(name), "W%d", i);
        td_store_item_t it = item(name, 1, 5000);
        assert_int_equal(td_store_viewed_add(fx->c, pid, &it, 3), TD_OK);
    }
    commit(fx->c);
    load(fx->c, pid, &p);
    int n = p.n_viewed;
    td_store_profile_release(&p);
    assert_int_equal(n, 3);
}

static void test_purchases(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000);
    td_store_profile_t p;
    td_store_purchase_t p1 = { .order_id = (char *)"O1",
                               .ts_ms = 100,
                               .total = 119.8,
                               .has_total = true,
                               .currency = (char *)"EUR",
                               .items_json = (char *)"[{\"id\":\"A\",\"quantity\":2}]" };
    td_store_purchase_t p2 = { .ts_ms = 200, .total = 7, .has_total = false };

    begin(fx->c);
    assert_int_equal(td_store_purchase_add(fx->c, pid, &p1), TD_OK);
    assert_int_equal(td_store_purchase_add(fx->c, pid, &p2), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.n_purchases, 2);
    assert_int_equal(p.purchases[0].ts_ms, 200); /* newest first */
    assert_null(p.purchases[0].order_id);
    assert_false(p.purchases[0].has_total);
    assert_null(p.purchases[0].currency);
    assert_string_equal(p.purchases[0].items_json, "[]");
    assert_string_equal(p.purchases[1].order_id, "O1");
    assert_true(p.purchases[1].has_total);
    assert_true(p.purchases[1].total == 119.8);
    assert_string_equal(p.purchases[1].currency, "EUR");
    assert_string_equal(p.purchases[1].items_json, "[{\"id\":\"A\",\"quantity\":2}]");
    td_store_profile_release(&p);
}

static void test_consent_ordered_by_time(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000);
    td_store_profile_t p;

    load(fx->c, pid, &p);
    assert_int_equal(p.consent_marketing, 0);
    assert_null(p.consent_source);
    td_store_profile_release(&p);

    begin(fx->c);
    assert_int_equal(td_store_consent_set(fx->c, pid, 1, 100, "native"), TD_OK);
    /* an older statement arriving late does not win */
    assert_int_equal(td_store_consent_set(fx->c, pid, 2, 50, "edge"), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.consent_marketing, 1);
    assert_int_equal(p.consent_ms, 100);
    assert_string_equal(p.consent_source, "native");
    td_store_profile_release(&p);

    begin(fx->c);
    assert_int_equal(td_store_consent_set(fx->c, pid, 2, 200, "edge"), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.consent_marketing, 2);
    assert_int_equal(p.consent_ms, 200);
    assert_string_equal(p.consent_source, "edge");
    td_store_profile_release(&p);

    /* at the same time, the later statement wins */
    begin(fx->c);
    assert_int_equal(td_store_consent_set(fx->c, pid, 1, 200, "native"), TD_OK);
    commit(fx->c);
    load(fx->c, pid, &p);
    assert_int_equal(p.consent_marketing, 1);
    td_store_profile_release(&p);
}

static void test_profile_load(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1234), empty = new_profile(fx->c, 99);
    td_store_profile_t p;

    begin(fx->c);
    assert_int_equal(td_store_identity_link(fx->c, "email", id(fx, "j@x.io"), pid, 20), TD_OK);
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E2"), pid, 30), TD_OK);
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E1"), pid, 10), TD_OK);
    append_event(fx, NULL, "purchase", pid, 5000, TD_OK);
    append_event(fx, NULL, "cart_add", pid, 7000, TD_OK);
    append_event(fx, NULL, "cart_add", pid, 6000, TD_OK);
    commit(fx->c);

    load(fx->c, pid, &p);
    assert_int_equal(p.created_ms, 1234);
    assert_int_equal(p.last_event_ms, 7000); /* latest by event time, not by arrival */
    assert_int_equal(p.n_identities, 3);
    /* grouped by namespace, oldest link first */
    assert_string_equal(p.identities[0].ns, "ecid");
    assert_string_equal(p.identities[0].id, id(fx, "E1"));
    assert_int_equal(p.identities[0].linked_ms, 10);
    assert_string_equal(p.identities[1].id, id(fx, "E2"));
    assert_string_equal(p.identities[2].ns, "email");
    assert_int_equal(p.n_counts, 2);
    assert_string_equal(p.counts[0].type, "cart_add"); /* by type name */
    assert_int_equal(p.counts[0].n, 2);
    assert_string_equal(p.counts[1].type, "purchase");
    assert_int_equal(p.counts[1].n, 1);
    td_store_profile_release(&p);
    td_store_profile_release(&p); /* released twice is harmless */
    td_store_profile_release(NULL);

    load(fx->c, empty, &p);
    assert_int_equal(p.created_ms, 99);
    assert_int_equal(p.last_event_ms, 0);
    assert_int_equal(p.n_identities + p.n_cart + p.n_viewed + p.n_purchases + p.n_counts, 0);
    td_store_profile_release(&p);

    assert_int_equal(td_store_profile_load(fx->c, INT64_MAX - 7, &p), TD_ENOTFOUND);
    assert_int_equal(p.n_identities, 0);
}

static void test_merge(void **state)
{
    fixture_t *fx = *state;
    int64_t into = new_profile(fx->c, 1000), from = new_profile(fx->c, 2000), found = 0, r = 0;
    td_store_profile_t p;

    begin(fx->c);
    /* into: ecid E1, a coat in the cart, viewed X, an order, consent in */
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E1"), into, 1000), TD_OK);
    td_store_item_t coat = item("COAT", 1, 100);
    coat.name = (char *)"Coat";
    assert_int_equal(td_store_cart_add(fx->c, into, &coat), TD_OK);
    td_store_item_t x = item("X", 1, 50);
    assert_int_equal(td_store_viewed_add(fx->c, into, &x, 50), TD_OK);
    td_store_purchase_t o1 = { .order_id = (char *)"O1", .ts_ms = 300, .items_json = (char *)"[]" };
    assert_int_equal(td_store_purchase_add(fx->c, into, &o1), TD_OK);
    assert_int_equal(td_store_consent_set(fx->c, into, 1, 100, "native"), TD_OK);
    append_event(fx, NULL, "cart_add", into, 100, TD_OK);
    /* from: ecid E2 and an email, two more coats and a sweater, viewed X
     * later and Y, an order, a later consent out */
    assert_int_equal(td_store_identity_link(fx->c, "ecid", id(fx, "E2"), from, 2000), TD_OK);
    assert_int_equal(td_store_identity_link(fx->c, "email", id(fx, "m@x.io"), from, 2000), TD_OK);
    td_store_item_t coat2 = item("COAT", 2, 400);
    assert_int_equal(td_store_cart_add(fx->c, from, &coat2), TD_OK);
    td_store_item_t sweat = item("SWEAT", 1, 410);
    assert_int_equal(td_store_cart_add(fx->c, from, &sweat), TD_OK);
    td_store_item_t x2 = item("X", 1, 80), y = item("Y", 1, 70);
    assert_int_equal(td_store_viewed_add(fx->c, from, &x2, 50), TD_OK);
    assert_int_equal(td_store_viewed_add(fx->c, from, &y, 50), TD_OK);
    td_store_purchase_t o2 = { .order_id = (char *)"O2", .ts_ms = 500, .items_json = (char *)"[]" };
    assert_int_equal(td_store_purchase_add(fx->c, from, &o2), TD_OK);
    assert_int_equal(td_store_consent_set(fx->c, from, 2, 200, "edge"), TD_OK);
    append_event(fx, NULL, "cart_add", from, 400, TD_OK);
    append_event(fx, NULL, "identify", from, 450, TD_OK);
    assert_int_equal(td_store_profile_merge(fx->c, from, into, 3000), TD_OK);
    commit(fx->c);

    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E2"), &found), TD_OK);
    assert_int_equal(found, into);
    assert_int_equal(td_store_identity_find(fx->c, "email", id(fx, "m@x.io"), &found), TD_OK);
    assert_int_equal(found, into);
    assert_int_equal(td_store_profile_resolve(fx->c, from, &r), TD_OK);
    assert_int_equal(r, into);
    assert_int_equal(td_store_profile_resolve(fx->c, into, &r), TD_OK);
    assert_int_equal(r, into);
    assert_int_equal(td_store_profile_resolve(fx->c, INT64_MAX - 9, &r), TD_ENOTFOUND);

    load(fx->c, into, &p);
    assert_int_equal(p.created_ms, 1000);
    assert_int_equal(p.n_identities, 3);
    assert_int_equal(p.n_cart, 2);
    assert_int_equal(find_item(p.cart, p.n_cart, "COAT")->quantity, 3); /* carts add up */
    assert_string_equal(find_item(p.cart, p.n_cart, "COAT")->name, "Coat");
    assert_int_equal(find_item(p.cart, p.n_cart, "SWEAT")->quantity, 1);
    assert_int_equal(p.n_viewed, 2);
    assert_string_equal(p.viewed[0].id, "X");
    assert_int_equal(p.viewed[0].ts_ms, 80);
    assert_string_equal(p.viewed[1].id, "Y");
    assert_int_equal(p.n_purchases, 2);
    assert_string_equal(p.purchases[0].order_id, "O2");
    assert_int_equal(p.consent_marketing, 2); /* the later statement */
    assert_int_equal(p.consent_ms, 200);
    assert_int_equal(count_of(&p, "cart_add"), 2);
    assert_int_equal(count_of(&p, "identify"), 1);
    assert_int_equal(p.last_event_ms, 450);
    td_store_profile_release(&p);

    /* merges chain: whatever merged into `into` follows it further */
    int64_t top = new_profile(fx->c, 500);
    begin(fx->c);
    assert_int_equal(td_store_profile_merge(fx->c, into, top, 4000), TD_OK);
    commit(fx->c);
    assert_int_equal(td_store_profile_resolve(fx->c, from, &r), TD_OK);
    assert_int_equal(r, top);
    assert_int_equal(td_store_profile_resolve(fx->c, into, &r), TD_OK);
    assert_int_equal(r, top);
    assert_int_equal(td_store_identity_find(fx->c, "ecid", id(fx, "E1"), &found), TD_OK);
    assert_int_equal(found, top);
    load(fx->c, top, &p);
    assert_int_equal(find_item(p.cart, p.n_cart, "COAT")->quantity, 3);
    assert_int_equal(p.consent_marketing, 2);
    td_store_profile_release(&p);

    /* an older consent of the merged profile does not override */
    int64_t a = new_profile(fx->c, 1), b = new_profile(fx->c, 2);
    begin(fx->c);
    assert_int_equal(td_store_consent_set(fx->c, a, 1, 900, "native"), TD_OK);
    assert_int_equal(td_store_consent_set(fx->c, b, 2, 100, "native"), TD_OK);
    assert_int_equal(td_store_profile_merge(fx->c, b, a, 1000), TD_OK);
    commit(fx->c);
    load(fx->c, a, &p);
    assert_int_equal(p.consent_marketing, 1);
    assert_int_equal(p.consent_ms, 900);
    td_store_profile_release(&p);
}

static int cart_size(td_store_conn_t *c, int64_t pid)
{
    td_store_profile_t p;

    load(c, pid, &p);
    int n = p.n_cart;
    td_store_profile_release(&p);
    return n;
}

static bool in_cart(td_store_conn_t *c, int64_t pid, const char *item_id)
{
    td_store_profile_t p;

    load(c, pid, &p);
    bool found = find_item(p.cart, p.n_cart, item_id) != NULL;
    td_store_profile_release(&p);
    return found;
}

static void test_transactions_and_savepoints(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000), n0 = event_count(fx->c);
    td_store_item_t a = item("A", 1, 1), b = item("B", 1, 2), c = item("C", 1, 3),
                    d = item("D", 1, 4), e = item("E", 1, 5);

    /* a released savepoint keeps its work; a rolled back one loses it alone */
    begin(fx->c);
    assert_int_equal(td_store_savepoint(fx->c), TD_OK);
    assert_int_equal(td_store_cart_add(fx->c, pid, &a), TD_OK);
    assert_int_equal(td_store_savepoint_release(fx->c), TD_OK);
    assert_int_equal(td_store_savepoint(fx->c), TD_OK);
    assert_int_equal(td_store_cart_add(fx->c, pid, &b), TD_OK);
    append_event(fx, "sp-ev", "cart_add", pid, 10, TD_OK);
    td_store_savepoint_rollback(fx->c);
    commit(fx->c);
    assert_true(in_cart(fx->c, pid, "A"));
    assert_false(in_cart(fx->c, pid, "B"));
    assert_int_equal(event_count(fx->c), n0);
    /* the rolled back key is free again */
    begin(fx->c);
    append_event(fx, "sp-ev", "cart_add", pid, 10, TD_OK);
    commit(fx->c);

    /* nested: the inner one rolls back, the outer one stays */
    begin(fx->c);
    assert_int_equal(td_store_savepoint(fx->c), TD_OK);
    assert_int_equal(td_store_cart_add(fx->c, pid, &d), TD_OK);
    assert_int_equal(td_store_savepoint(fx->c), TD_OK);
    assert_int_equal(td_store_cart_add(fx->c, pid, &e), TD_OK);
    td_store_savepoint_rollback(fx->c);
    assert_int_equal(td_store_savepoint_release(fx->c), TD_OK);
    commit(fx->c);
    assert_true(in_cart(fx->c, pid, "D"));
    assert_false(in_cart(fx->c, pid, "E"));

    /* a rolled back transaction leaves nothing */
    int before = cart_size(fx->c, pid);
    begin(fx->c);
    assert_int_equal(td_store_cart_add(fx->c, pid, &c), TD_OK);
    append_event(fx, NULL, "cart_add", pid, 10, TD_OK);
    td_store_rollback(fx->c);
    assert_int_equal(cart_size(fx->c, pid), before);
    assert_int_equal(event_count(fx->c), n0 + 1);

    /* and the connection is usable after it */
    begin(fx->c);
    assert_int_equal(td_store_cart_add(fx->c, pid, &c), TD_OK);
    commit(fx->c);
    assert_true(in_cart(fx->c, pid, "C"));
}

static void test_isolation_between_connections(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000);
    td_store_conn_t *other = td_store_acquire(fx->st);
    td_store_item_t a = item("A", 1, 1);

    assert_non_null(other);
    assert_true(other != fx->c);
    begin(fx->c);
    assert_int_equal(td_store_cart_add(fx->c, pid, &a), TD_OK);
    /* not committed: the other connection does not see it */
    assert_int_equal(cart_size(other, pid), 0);
    commit(fx->c);
    assert_int_equal(cart_size(other, pid), 1);
    td_store_release(fx->st, other);
}

static void test_durable_across_reopen(void **state)
{
    fixture_t *fx = *state;
    int64_t pid = new_profile(fx->c, 1000), found = 0;
    char *v = NULL;

    begin(fx->c);
    assert_int_equal(td_store_identity_link(fx->c, "customer", id(fx, "C1"), pid, 1), TD_OK);
    assert_int_equal(td_store_meta_set(fx->c, id(fx, "clock"), "12345"), TD_OK);
    append_event(fx, "durable", "page_view", pid, 10, TD_OK);
    commit(fx->c);
    close_store(fx);
    assert_int_equal(open_store(fx), 0);
    assert_int_equal(td_store_identity_find(fx->c, "customer", id(fx, "C1"), &found), TD_OK);
    assert_int_equal(found, pid);
    assert_int_equal(td_store_meta_get(fx->c, id(fx, "clock"), &v), TD_OK);
    assert_string_equal(v, "12345");
    free(v);
    begin(fx->c);
    append_event(fx, "durable", "page_view", pid, 10, TD_ECONFLICT);
    commit(fx->c);
}

static void test_open_refuses_bad_urls(void **state)
{
    fixture_t *fx = *state;
    td_store_options_t opt = { .data_dir = fx->dir, .pool_size = 1 };
    td_err_t err = { 0 };
    td_store_t *st = (td_store_t *)1;
    char path[400];

    assert_int_equal(td_store_open("mysql://x", &opt, &st, &err), TD_EINVAL);
    assert_null(st);
    assert_string_equal(err.path, "store");
    /* a data directory that cannot be made */
    snprintf(path, sizeof(path), "%s/file", fx->dir);
    FILE *f = fopen(path, "w");
    fclose(f);
    snprintf(path, sizeof(path), "%s/file/sub", fx->dir);
    opt.data_dir = path;
    if (strcmp(td_store_backend(fx->st), "sqlite") == 0) {
        memset(&err, 0, sizeof(err));
        assert_true(td_store_open("", &opt, &st, &err) != TD_OK);
        assert_true(err.message[0] != '\0');
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    td_log_level = TD_LOG_WARN; /* no migration chatter */
    const struct CMUnitTest tests[] = {
        T(test_backend_and_meta),
        T(test_identities),
        T(test_event_idempotency),
        T(test_cart),
        T(test_viewed),
        T(test_viewed_bound_holds_for_equal_timestamps),
        T(test_purchases),
        T(test_consent_ordered_by_time),
        T(test_profile_load),
        T(test_merge),
        T(test_transactions_and_savepoints),
        T(test_isolation_between_connections),
        T(test_durable_across_reopen),
        T(test_open_refuses_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
