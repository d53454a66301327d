/* The demo's data from a click log: entities, events, generated purchases. */
#include "test.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo/demo.h"

static char *write_log(const char *text)
{
    char *path = strdup("/tmp/tandem-demo-log-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static const char *LOG = "SessionId\tItemId\tTime\n"
                         "7\t100\t1396437466.94\n"
                         "7\t200\t1396437500.0\n"
                         "7\t300\t1396437600.5\n"
                         "8\t200\t1396438000.0\n"
                         "8\t100\t1396438100.0\n";

static void test_builds_entities_and_events(void **state)
{
    (void)state;
    char *path = write_log(LOG);
    td_demo_data_t d;
    td_err_t err = { 0 };
    int64_t now = 1800000000000LL;

    assert_int_equal(td_demo_data_build(path, "https://shop.test", now, 4, &d, &err), TD_OK);
    assert_int_equal(d.n_items, 3);
    assert_int_equal(d.n_sessions, 2);
    /* 5 views + session 7 (7 % 7 == 0) ends with a purchase */
    assert_int_equal(d.n_purchases, 1);
    assert_int_equal(d.n_events, 6);
    assert_int_equal(d.n_batches, 2); /* 4 + 2 */
    assert_non_null(strstr(d.catalog_csv.data, "## RECSentity.id,entity.name"));
    assert_non_null(strstr(d.catalog_csv.data, "\n100,"));
    assert_non_null(strstr(d.catalog_csv.data, "https://shop.test/demo/img/300.png"));
    assert_non_null(strstr(d.catalog_csv.data, "Generated demo product"));

    int64_t last_ts = 0;
    int purchases = 0;
    for (int i = 0; i < d.n_batches; i++) {
        json_error_t jerr;
        json_t *b = json_loads(d.batches[i], 0, &jerr);
        size_t k;
        json_t *ev;
        assert_non_null(b);
        json_array_foreach(json_object_get(b, "events"), k, ev)
        {
            int64_t ts = json_integer_value(json_object_get(ev, "ts"));
            if (ts > last_ts) {
                last_ts = ts;
            }
            if (strcmp(json_string_value(json_object_get(ev, "type")), "purchase") == 0) {
                purchases++;
                assert_string_equal(json_string_value(json_object_get(ev, "ecid")), "yc-7");
                assert_non_null(json_object_get(ev, "order"));
            }
        }
        json_decref(b);
    }
    assert_int_equal(purchases, 1);
    /* moved in time: the last click an hour before now, its purchase a minute later */
    assert_true(last_ts <= now - 3600 * 1000 + 60 * 1000 + 1000);
    assert_true(last_ts >= now - 3600 * 1000 - 60 * 1000);
    td_demo_data_release(&d);
    unlink(path);
    free(path);
}

static void test_refuses_bad_lines(void **state)
{
    (void)state;
    char *path = write_log("SessionId\tItemId\tTime\n1\tabc\t2\n");
    td_demo_data_t d;
    td_err_t err = { 0 };

    assert_int_equal(td_demo_data_build(path, "", 0, 10, &d, &err), TD_EINVAL);
    assert_non_null(strstr(err.message, ":2:"));
    unlink(path);
    free(path);
    assert_int_equal(td_demo_data_build("/nonexistent/log.tsv", "", 0, 10, &d, &err), TD_EIO);
}

/* The shipped log: every item gets a category, and categories stay balanced
 * enough to make a shop (no aisle holds most of the catalogue). */
static void test_shipped_log(void **state)
{
    (void)state;
    td_demo_data_t d;
    td_err_t err = { 0 };
    const char *p;
    int per_cat[16] = { 0 };
    const char *names[] = { "Coats", "Jackets", "Sweatshirts", "Knitwear", "Shirts",
                            "Jeans", "Dresses", "Shoes", "Bags", "Accessories" };

    if (access("demo/yoochoose-clicks-100k.tsv.gz", R_OK) != 0) {
        skip();
    }
    assert_int_equal(td_demo_data_build("demo/yoochoose-clicks-100k.tsv.gz", "https://x", 0, 1000,
                                        &d, &err),
                     TD_OK);
    assert_int_equal(d.n_items, 2933);
    assert_true(d.n_events > 70278);
    for (p = strchr(d.catalog_csv.data, '\n'); p; p = strchr(p + 1, '\n')) {
        for (int c = 0; c < 10; c++) {
            char want[64];
            snprintf(want, sizeof(want), ",%s,", names[c]);
            const char *eol = strchr(p + 1, '\n');
            const char *hit = strstr(p + 1, want);
            if (hit && eol && hit < eol) {
                per_cat[c]++;
                break;
            }
        }
    }
    for (int c = 0; c < 10; c++) {
        print_message("%s: %d\n", names[c], per_cat[c]);
        assert_true(per_cat[c] > 2933 / 40);
        assert_true(per_cat[c] < 2933 / 3);
    }
    td_demo_data_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builds_entities_and_events),
        cmocka_unit_test(test_refuses_bad_lines),
        cmocka_unit_test(test_shipped_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
