/* Contract tests of the recommendation parts of the store: the events scan
 * (seq order, batches, after_seq) and the reco documents (put, replace,
 * list by kind, delete). Runs against TANDEM_TEST_STORE when set (e.g. a
 * postgres:// URL), else a fresh SQLite store. Ids carry a per-run prefix so
 * a shared database does not disturb the tests. */
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
    td_store_t *st;
    td_store_conn_t *c;
    char prefix[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    const char *url = getenv("TANDEM_TEST_STORE");
    td_store_options_t opt = { .pool_size = 2 };
    td_err_t err = { 0 };

    snprintf(fx->dir, sizeof(fx->dir), "%s/tandem-reco-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->prefix, sizeof(fx->prefix), "t%ld-%d-", (long)time(NULL), (int)getpid());
    opt.data_dir = fx->dir;
    if (td_store_open(url ? url : "", &opt, &fx->st, &err) != TD_OK) {
        fprintf(stderr, "td_store_open: %s\n", err.message);
        free(fx);
        return -1;
    }
    fx->c = td_store_acquire(fx->st);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[300];

    td_store_release(fx->st, fx->c);
    td_store_close(fx->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    (void)rc;
    free(fx);
    return 0;
}

static void test_events_scan_in_seq_order(void **state)
{
    fixture_t *fx = *state;
    int64_t seqs[7], before = 0;
    td_store_scan_row_t *rows = NULL;
    int n = 0;

    /* where the table ends now (a shared database may hold events) */
    for (;;) {
        assert_int_equal(td_store_events_scan(fx->c, before, 1000, &rows, &n), TD_OK);
        if (n > 0) {
            before = rows[n - 1].seq;
        }
        td_store_scan_rows_free(rows, n);
        if (n < 1000) {
            break;
        }
    }
    assert_int_equal(td_store_begin(fx->c), TD_OK);
    for (int i = 0; i < 7; i++) {
        char doc[64];
        snprintf(doc, sizeof(doc), "{\"i\": %d}", i);
        td_store_event_t ev = { .type = i % 2 ? "product_view" : "purchase",
                                .profile_id = 100 + i,
                                .ts_ms = 1000 + i,
                                .received_ms = 2000 + i,
                                .doc = doc };
        assert_int_equal(td_store_event_append(fx->c, &ev, &seqs[i]), TD_OK);
    }
    assert_int_equal(td_store_commit(fx->c), TD_OK);

    /* batches of 3: 3 + 3 + 1, in seq order, nothing skipped */
    int64_t after = before;
    int seen = 0;
    for (int batch = 0; batch < 4; batch++) {
        assert_int_equal(td_store_events_scan(fx->c, after, 3, &rows, &n), TD_OK);
        for (int i = 0; i < n; i++) {
            assert_true(seen < 7);
            assert_int_equal(rows[i].seq, seqs[seen]);
            assert_int_equal(rows[i].profile_id, 100 + seen);
            assert_int_equal(rows[i].ts_ms, 1000 + seen);
            assert_string_equal(rows[i].type, seen % 2 ? "product_view" : "purchase");
            assert_non_null(strstr(rows[i].doc, "\"i\""));
            after = rows[i].seq;
            seen++;
        }
        td_store_scan_rows_free(rows, n);
        if (n < 3) {
            break;
        }
    }
    assert_int_equal(seen, 7);
    assert_int_equal(td_store_events_scan(fx->c, after, 3, &rows, &n), TD_OK);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(td_store_events_scan(fx->c, after, 0, &rows, &n), TD_EINVAL);
}

static int count_with_prefix(td_store_reco_doc_t *rows, int n, const char *prefix)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        k += strncmp(rows[i].id, prefix, strlen(prefix)) == 0;
    }
    return k;
}

static void test_reco_docs(void **state)
{
    fixture_t *fx = *state;
    char a[128], b[128];
    td_store_reco_doc_t *rows = NULL;
    int n = 0;

    assert_true(td_store_reco_supported(fx->st));
    snprintf(a, sizeof(a), "%sa", fx->prefix);
    snprintf(b, sizeof(b), "%sb", fx->prefix);
    assert_int_equal(td_store_reco_put(fx->c, "criteria", b, "{\"v\":1}", 10), TD_OK);
    assert_int_equal(td_store_reco_put(fx->c, "criteria", a, "{\"v\":2}", 11), TD_OK);
    assert_int_equal(td_store_reco_put(fx->c, "criteria", a, "{\"v\":3}", 12), TD_OK);
    assert_int_equal(td_store_reco_put(fx->c, "design", a, "{\"d\":1}", 13), TD_OK);

    assert_int_equal(td_store_reco_list(fx->c, "criteria", &rows, &n), TD_OK);
    assert_int_equal(count_with_prefix(rows, n, fx->prefix), 2);
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].id, a) == 0) {
            assert_string_equal(rows[i].body, "{\"v\":3}"); /* replaced */
            assert_int_equal(rows[i].updated_ms, 12);
        }
    }
    td_store_reco_docs_free(rows, n);
    assert_int_equal(td_store_reco_list(fx->c, "design", &rows, &n), TD_OK);
    assert_int_equal(count_with_prefix(rows, n, fx->prefix), 1);
    td_store_reco_docs_free(rows, n);

    assert_int_equal(td_store_reco_delete(fx->c, "criteria", a), TD_OK);
    assert_int_equal(td_store_reco_delete(fx->c, "criteria", a), TD_ENOTFOUND);
    assert_int_equal(td_store_reco_list(fx->c, "criteria", &rows, &n), TD_OK);
    assert_int_equal(count_with_prefix(rows, n, fx->prefix), 1);
    td_store_reco_docs_free(rows, n);
    assert_int_equal(td_store_reco_list(fx->c, "no-such-kind", &rows, &n), TD_OK);
    assert_int_equal(n, 0);
}

/* Every change moves the counter; on PostgreSQL the rebuild lock is held
 * by one connection at a time (SQLite grants it to anyone). */
static void test_reco_docs_rev_and_rebuild_lock(void **state)
{
    fixture_t *fx = *state;
    char a[128];
    int64_t r0 = -1, r1 = -1, r2 = -1, r3 = -1;
    bool got = false, pg = strcmp(td_store_backend(fx->st), "postgres") == 0;

    snprintf(a, sizeof(a), "%srev", fx->prefix);
    assert_int_equal(td_store_reco_rev(fx->c, &r0), TD_OK);
    assert_int_equal(td_store_reco_put(fx->c, "design", a, "{}", 1), TD_OK);
    assert_int_equal(td_store_reco_rev(fx->c, &r1), TD_OK);
    assert_true(r1 > r0);
    assert_int_equal(td_store_reco_put(fx->c, "design", a, "{\"x\":1}", 1), TD_OK);
    assert_int_equal(td_store_reco_rev(fx->c, &r2), TD_OK);
    assert_true(r2 > r1); /* same updated_ms, other body: still a change */
    assert_int_equal(td_store_reco_delete(fx->c, "design", a), TD_OK);
    assert_int_equal(td_store_reco_rev(fx->c, &r3), TD_OK);
    assert_true(r3 > r2);

    td_store_conn_t *other = td_store_acquire(fx->st);
    assert_int_equal(td_store_reco_rebuild_lock(fx->c, true, &got), TD_OK);
    assert_true(got);
    assert_int_equal(td_store_reco_rebuild_lock(other, true, &got), TD_OK);
    assert_int_equal(got, !pg);
    assert_int_equal(td_store_reco_rebuild_lock(fx->c, false, &got), TD_OK);
    assert_int_equal(td_store_reco_rebuild_lock(other, true, &got), TD_OK);
    assert_true(got);
    assert_int_equal(td_store_reco_rebuild_lock(other, false, &got), TD_OK);
    td_store_release(fx->st, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_scan_in_seq_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reco_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reco_docs_rev_and_rebuild_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
