/* JSON in the shape of Target's Save Entities API, split entity by entity:
 * good entities imported, bad ones rejected with their index, line and
 * column; a broken document refused as a whole. */
#include "test.h"

#include <stdio.h>

#include "feed_util.h"

#define JSON TD_FEED_JSON

static void test_target_shape(void **state)
{
    const char *text =
        "\xef\xbb\xbf{\n"
        "  \"entities\": [{\n"
        "    \"name\": \"Toaster Oven\", \"id\": \"kit2001\", \"environment\": 6781,\n"
        "    \"categories\": [\"housewares:appliances\"],\n"
        "    \"attributes\": {\"inventory\": 77, \"margin\": 23, \"message\": \"Hot\",\n"
        "      \"pageUrl\": \"https://shop.example/kit2001\", \"value\": 102.5,\n"
        "      \"thumbnailUrl\": \"https://img.example/k.jpg\", \"brand\": \"Acme\",\n"
        "      \"colors\": [\"red\", 2, true], \"rating\": 4.5, \"sale\": false,\n"
        "      \"weird\": \"a ] } [ { \\\" b\"}\n"
        "  }, {\"id\": 42, \"name\": null, \"attributes\": {\"color\": null}}]\n"
        "}\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(JSON, text, &c, &err), TD_OK);
    assert_int_equal(c.n_errs, 0);
    assert_int_equal(c.n, 2);
    td_entity_t *e = &c.ents[0];
    assert_string_equal(e->id, "kit2001");
    assert_int_equal(e->environment, 6781);
    assert_string_equal(e->categories[0], "housewares:appliances");
    assert_true(e->inventory == 77 && e->margin == 23 && e->value == 102.5);
    assert_string_equal(e->message, "Hot");
    assert_string_equal(e->brand, "Acme");
    const td_attr_t *colors = td_entity_attr(e, "colors");
    assert_int_equal(colors->n_list, 3);
    assert_string_equal(colors->list[1], "2");
    assert_string_equal(colors->list[2], "true");
    assert_true(td_entity_attr(e, "rating")->num == 4.5);
    assert_string_equal(td_entity_attr(e, "sale")->str, "false");
    assert_string_equal(td_entity_attr(e, "weird")->str, "a ] } [ { \" b");
    /* ids may be numbers; nulls clear */
    assert_string_equal(c.ents[1].id, "42");
    assert_true(c.ents[1].clear & TD_ENTITY_NAME);
    assert_int_equal(td_entity_attr(&c.ents[1], "color")->type, TD_ATTR_NULL);
    collected_release(&c);
}

static void test_bad_entities_rejected_alone(void **state)
{
    const char *text = "[\n"
                       " {\"id\": \"A\", \"attributes\": {\"value\": \"12,99 EUR\"}},\n"
                       " {\"id\": \"B\", \"colour\": \"red\"},\n"
                       " {\"name\": \"no id\"},\n"
                       " \"just a string\",\n"
                       " {\"id\": \"C\", \"attributes\": {\"x\": {\"nested\": 1}}},\n"
                       " {\"id\": \"D\", \"id\": \"E\"},\n"
                       " {\"id\": \"F\", \"attributes\": {\"value\": 1e999}},\n"
                       " {\"id\": \"G\", \"categories\": \"a, b\"}\n"
                       "]";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(JSON, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ents[0].id, "G");
    assert_int_equal(c.ents[0].n_categories, 2);
    assert_int_equal(c.n_errs, 7);
    assert_string_equal(c.errs[0].path, "/entities/0/attributes/value");
    assert_int_equal(c.errs[0].line, 2);
    assert_string_equal(c.errs[1].path, "/entities/1/colour");
    assert_string_equal(c.errs[2].path, "/entities/2/id");
    assert_string_equal(c.errs[3].path, "/entities/3");
    assert_int_equal(c.errs[3].line, 5);
    assert_true(c.errs[3].column >= 2);
    assert_string_equal(c.errs[4].path, "/entities/4/attributes/x");
    assert_int_equal(c.errs[5].line, 7);
    collected_release(&c);
}

static void test_broken_documents(void **state)
{
    static const char *const bad[] = {
        "",
        "{}",
        "{\"entites\": []}",
        "{\"entities\": {}}",
        "{\"entities\": [{\"id\": \"A\"}]",
        "{\"entities\": [{\"id\": \"A\"}]} trailing",
        "{\"entities\": [{\"id\": \"A\"},]}",
        "{\"entities\": [], \"entities\": []}",
        "[{\"id\": \"A\"",
        "nonsense",
    };
    collected_t c;
    td_err_t err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse_str(JSON, bad[i], &c, &err), TD_EINVAL);
        assert_true(err.line >= 1);
        collected_release(&c);
    }
    assert_int_equal(parse_str(JSON, " {\"entities\": [ ]} \n", &c, &err), TD_OK);
    assert_int_equal(c.n, 0);
    collected_release(&c);
}

static void test_malformed_element_has_position(void **state)
{
    const char *text = "{\"entities\": [\n"
                       "  {\"id\": \"A\"},\n"
                       "  {\"id\": \"B\", \"name\": tru},\n"
                       "  {\"id\": \"C\"}\n"
                       "]}";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(JSON, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.n_errs, 1);
    assert_int_equal(c.errs[0].line, 3);
    assert_true(c.errs[0].column > 3);
    assert_non_null(strstr(c.errs[0].message, "malformed"));
    collected_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_shape),
        cmocka_unit_test(test_bad_entities_rejected_alone),
        cmocka_unit_test(test_broken_documents),
        cmocka_unit_test(test_malformed_element_has_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
