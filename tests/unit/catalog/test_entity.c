/* Entities: merge semantics (what an upsert does), packing, JSON in and
 * out, validation limits. */
#include "test.h"

#include <stdio.h>

#include "feed_util.h"

static void from_json(const char *text, td_entity_t *e)
{
    td_err_t err = { 0 };

    if (td_entity_from_json(text, strlen(text), "", e, &err) != TD_OK) {
        fprintf(stderr, "%s: %s\n", err.path, err.message);
        fail();
    }
}

static void test_merge(void **state)
{
    td_entity_t base, part, whole = TD_ENTITY_INIT;
    td_err_t err = { 0 };

    (void)state;
    from_json("{\"id\":\"A\",\"name\":\"Coat\",\"categories\":[\"Men\"],\"attributes\":"
              "{\"value\":10,\"message\":\"m\",\"color\":\"red\",\"size\":[\"S\"]}}",
              &base);
    from_json("{\"id\":\"A\",\"categories\":[\"Sale\",\"Men\"],\"attributes\":"
              "{\"value\":12,\"message\":null,\"color\":null,\"fit\":\"slim\"}}",
              &part);
    assert_int_equal(td_entity_merge(&base, &part, true, &err), TD_OK);
    assert_string_equal(base.name, "Coat");
    assert_true(base.value == 12);
    assert_false(base.has & TD_ENTITY_MESSAGE);
    assert_null(base.message);
    assert_int_equal(base.n_categories, 2);
    assert_string_equal(base.categories[0], "Men");
    assert_string_equal(base.categories[1], "Sale");
    assert_null(td_entity_attr(&base, "color"));
    assert_string_equal(td_entity_attr(&base, "fit")->str, "slim");
    assert_int_equal(td_entity_attr(&base, "size")->n_list, 1);
    /* replacing categories instead of appending */
    assert_int_equal(td_entity_merge(&whole, &part, false, &err), TD_OK);
    assert_int_equal(whole.n_categories, 2);
    assert_null(td_entity_attr(&whole, "color"));
    td_entity_release(&whole);
    td_entity_release(&base);
    td_entity_release(&part);
}

/* copies keep room to grow: attributes, categories and lists added to a
 * copy of an entity with 3 or 5 of them must not overflow */
static void test_copy_then_grow(void **state)
{
    td_entity_t a = TD_ENTITY_INIT, b;
    char name[16];

    (void)state;
    for (int n = 1; n <= 9; n++) {
        td_entity_release(&a);
        a.id = strdup("A");
        for (int i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "x%d", i);
            td_entity_set_attr(&a, name, strlen(name))->type = TD_ATTR_NUMBER;
            td_entity_add_category(&a, name, strlen(name));
        }
        td_entity_copy(&b, &a);
        for (int i = 0; i < 9; i++) {
            snprintf(name, sizeof(name), "y%d", i);
            td_entity_set_attr(&b, name, strlen(name))->type = TD_ATTR_NUMBER;
            td_entity_add_category(&b, name, strlen(name));
        }
        assert_int_equal(b.n_attrs, n + 9);
        td_entity_release(&b);
    }
    td_entity_release(&a);
}

static void test_merge_limits(void **state)
{
    td_entity_t a = TD_ENTITY_INIT, b = TD_ENTITY_INIT;
    td_err_t err = { 0 };
    char name[16];

    (void)state;
    a.id = strdup("A");
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        td_entity_set_attr(&a, name, strlen(name))->type = TD_ATTR_NUMBER;
        snprintf(name, sizeof(name), "b%d", i);
        td_entity_set_attr(&b, name, strlen(name))->type = TD_ATTR_NUMBER;
    }
    assert_int_equal(td_entity_merge(&a, &b, true, &err), TD_ETOOBIG);
    assert_int_equal(a.n_attrs, 60);
    td_entity_release(&b);
    /* categories: the oldest go past the limit */
    for (int i = 0; i < TD_CATALOG_MAX_CATEGORIES; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        td_entity_add_category(&a, name, strlen(name));
    }
    td_entity_add_category(&b, "new", 3);
    assert_int_equal(td_entity_merge(&a, &b, true, &err), TD_OK);
    assert_int_equal(a.n_categories, TD_CATALOG_MAX_CATEGORIES);
    assert_string_equal(a.categories[0], "c1");
    assert_string_equal(a.categories[TD_CATALOG_MAX_CATEGORIES - 1], "new");
    td_entity_release(&a);
    td_entity_release(&b);
}

static void test_pack_and_json_round_trip(void **state)
{
    const char *text =
        "{\"id\":\"A\",\"name\":\"Caf\xc3\xa9 \\\"x\\\"\",\"categories\":[\"a\",\"a:b\"],"
        "\"environment\":7,\"attributes\":{\"value\":59.9,\"inventory\":0,"
        "\"margin\":0.25,\"message\":\"m\",\"pageUrl\":\"p\",\"thumbnailUrl\":\"t\","
        "\"brand\":\"b\",\"n\":-3.5,\"l\":[\"x\",\"y\"],\"s\":\"z\"}}";
    td_entity_t e, back;
    td_buf_t j1 = TD_BUF_INIT, j2 = TD_BUF_INIT;

    (void)state;
    from_json(text, &e);
    td_entity_t *p = td_entity_pack(&e);
    assert_true(td_entity_equal(p, &e));
    td_entity_to_json(p, 0, 0, &j1);
    assert_string_equal(j1.data, text);
    from_json(j1.data, &back);
    assert_true(td_entity_equal(&back, &e));
    /* GET output can be PUT back: updated / expires / expired are accepted */
    p->updated_ms = 1000;
    td_entity_to_json(p, 2000, 5000, &j2);
    assert_non_null(strstr(j2.data, "\"expired\":false"));
    td_entity_release(&back);
    from_json(j2.data, &back);
    td_entity_release(&back);
    td_entity_to_json(p, 7000, 5000, &j2);
    assert_non_null(strstr(j2.data, "\"expired\":true"));
    td_entity_unref(td_entity_ref(p));
    td_entity_unref(p);
    td_entity_release(&e);
    td_buf_release(&j1);
    td_buf_release(&j2);
}

static void test_validate(void **state)
{
    td_entity_t e = TD_ENTITY_INIT;
    td_err_t err = { 0 };
    char big[TD_CATALOG_MAX_ID + 2];

    (void)state;
    assert_int_equal(td_entity_validate(&e, &err), TD_EINVAL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    e.id = strdup(big);
    assert_int_equal(td_entity_validate(&e, &err), TD_ETOOBIG);
    free(e.id);
    e.id = strdup("a\tb");
    assert_int_equal(td_entity_validate(&e, &err), TD_EINVAL);
    free(e.id);
    e.id = strdup("ok");
    td_entity_set_str(&e, TD_ENTITY_NAME, "bad \xc0\xaf", 6);
    assert_int_equal(td_entity_validate(&e, &err), TD_EINVAL);
    assert_string_equal(err.path, "name");
    td_entity_release(&e);
}

static void test_from_json_errors(void **state)
{
    static const struct {
        const char *text, *path;
    } cases[] = {
        { "{\"id\":\"A\",\"attributes\":{\"value\":\"cheap\"}}", "/attributes/value" },
        { "{\"id\":\"A\",\"categories\":[1]}", "/categories" },
        { "{\"id\":\"A\",\"environment\":\"prod\"}", "/environment" },
        { "{\"id\":[]}", "/id" },
        { "{\"id\":\"A\",\"attributes\":[]}", "/attributes" },
        { "[1]", "" },
    };
    td_entity_t e;
    td_err_t err;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(td_entity_from_json(cases[i].text, strlen(cases[i].text), "", &e, &err),
                         TD_EINVAL);
        assert_string_equal(err.path, cases[i].path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),        cmocka_unit_test(test_copy_then_grow),
        cmocka_unit_test(test_merge_limits), cmocka_unit_test(test_pack_and_json_round_trip),
        cmocka_unit_test(test_validate),     cmocka_unit_test(test_from_json_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
