/* Criteria JSON: defaults, every group's rules, sequences, and refusals
 * that name the field by JSON pointer; nasty input never crashes. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco/reco.h"

static td_reco_criteria_t *ok(const char *json)
{
    td_reco_criteria_t *c = NULL;
    td_err_t err = { 0 };
    if (td_reco_criteria_parse(json, strlen(json), NULL, NULL, &c, &err) != TD_OK) {
        fail_msg("refused: %s at \"%s\": %s", err.message, err.path, json);
    }
    return c;
}

static void refuse(const char *json, const char *path, const char *reason)
{
    td_reco_criteria_t *c = NULL;
    td_err_t err = { 0 };
    int rc = td_reco_criteria_parse(json, strlen(json), NULL, NULL, &c, &err);
    if (rc != TD_EINVAL) {
        td_reco_criteria_free(c);
        fail_msg("accepted: %s", json);
    }
    assert_null(c);
    if (strcmp(err.path, path) != 0 || strstr(err.message, reason) == NULL) {
        fail_msg("for %s: got \"%s\" at \"%s\", want \"%s\" at \"%s\"", json, err.message, err.path,
                 reason, path);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    td_reco_criteria_t *c = ok("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\"}");
    assert_int_equal(c->group, TD_RECO_GROUP_ITEM);
    assert_int_equal(c->algo, TD_RECO_ALGO_VIEWED_CF);
    assert_int_equal(c->key, TD_RECO_KEY_CURRENT_ITEM);
    assert_int_equal(c->days, 30);
    assert_int_equal(c->hours, 720);
    assert_true(c->exclude_purchases);
    assert_false(c->exclude_views);
    assert_false(c->partial_design_allowed);
    assert_false(c->backup_disabled);
    assert_true(c->backup_inclusion);
    assert_int_equal(c->max_viewed_keys, 5);
    assert_int_equal(c->max_purchased_keys, 5);
    td_reco_criteria_free(c);

    c = ok("{\"criteriaGroup\":\"RECENT\"}");
    assert_int_equal(c->algo, TD_RECO_ALGO_RECENTLY_VIEWED);
    td_reco_criteria_free(c);
    c = ok("{\"criteriaGroup\":\"USERHISTORY\"}");
    assert_int_equal(c->algo, TD_RECO_ALGO_RECOMMENDED_FOR_YOU);
    td_reco_criteria_free(c);
    c = ok("{\"criteriaGroup\":\"CART\",\"type\":\"BOUGHT_CF\"}");
    assert_int_equal(c->key, TD_RECO_KEY_CART);
    td_reco_criteria_free(c);
    c = ok("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"hoursCount\":6}");
    assert_int_equal(c->hours, 6);
    td_reco_criteria_free(c);
    c = ok("{\"criteriaGroup\":\"ITEM\",\"type\":\"SITE_AFFINITY\",\"confidence\":\"HIGH\"}");
    assert_true(c->min_llr > 10.8 && c->min_llr < 10.9);
    td_reco_criteria_free(c);
}

static void test_full_document(void **state)
{
    (void)state;
    td_reco_criteria_t *c = ok(
        "{\"id\":\"pdp-1\",\"name\":\"People who viewed\",\"description\":\"x\","
        "\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"PROFILE_ATTRIBUTE\","
        "\"keyAttribute\":\"profile.lastShow\",\"daysCount\":14,"
        "\"similarityMetric\":\"COSINE\",\"inclusionRules\":[{\"attribute\":\"entity.brand\","
        "\"operation\":\"equals\",\"source\":\"CURRENT_ITEM\",\"sourceAttribute\":\"brand\"},"
        "{\"attribute\":\"value\",\"operation\":\"between\",\"min\":10,\"max\":20},"
        "{\"attribute\":\"genre\",\"operation\":\"inList\",\"values\":[\"a\",2,3.5]}],"
        "\"priceRange\":{\"min\":1,\"max\":99.5},\"minInventory\":1,"
        "\"excludePurchases\":false,\"excludeViews\":true,\"partialDesignAllowed\":true,"
        "\"backupDisabled\":true,\"backupInclusionRules\":false,\"similarityFallback\":false,"
        "\"promotions\":{\"front\":{\"ids\":[\"a\",\"b\"]},\"back\":{\"inclusionRules\":"
        "[{\"attribute\":\"brand\",\"operation\":\"equals\",\"values\":[\"x\"]}],\"slots\":2}}}");
    assert_string_equal(c->id, "pdp-1");
    assert_string_equal(c->key_attribute, "lastShow");
    assert_int_equal(c->days, 14);
    assert_int_equal(c->metric, TD_RECO_METRIC_COSINE);
    assert_int_equal(c->inclusion.n, 3);
    assert_string_equal(c->inclusion.rules[0].attribute, "brand");
    assert_int_equal(c->inclusion.rules[0].source, TD_RECO_SRC_KEY_ITEM);
    assert_int_equal(c->inclusion.rules[0].if_empty, TD_RECO_EMPTY_NO_RESULTS);
    assert_int_equal(c->inclusion.rules[2].n_values, 3);
    assert_string_equal(c->inclusion.rules[2].values[1], "2");
    assert_true(c->has_price_min && c->has_price_max && c->price_max == 99.5);
    assert_int_equal(c->front.n_ids, 2);
    assert_int_equal(c->front.slots, 2);
    assert_int_equal(c->back.slots, 2);
    assert_false(c->exclude_purchases);
    td_reco_criteria_free(c);
}

static char *resolve(void *ctx, const char *id)
{
    (void)ctx;
    if (strcmp(id, "recent") == 0) {
        return strdup("{\"criteriaGroup\":\"RECENT\"}");
    }
    if (strcmp(id, "seq") == 0) {
        return strdup("{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteriaId\":\"recent\","
                      "\"slots\":1}]}");
    }
    if (strcmp(id, "broken") == 0) {
        return strdup("{nope");
    }
    return NULL;
}

static void test_sequence(void **state)
{
    (void)state;
    const char *j = "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteriaId\":\"recent\","
                    "\"slots\":2},{\"criteria\":{\"criteriaGroup\":\"POPULARITY\","
                    "\"type\":\"TOP_SELLERS\"},\"slots\":3}]}";
    td_reco_criteria_t *c = NULL;
    td_err_t err = { 0 };
    assert_int_equal(td_reco_criteria_parse(j, strlen(j), resolve, NULL, &c, &err), TD_OK);
    assert_int_equal(c->n_steps, 2);
    assert_int_equal(c->steps[0].slots, 2);
    assert_int_equal(c->steps[0].criteria->algo, TD_RECO_ALGO_RECENTLY_VIEWED);
    assert_int_equal(c->steps[1].criteria->algo, TD_RECO_ALGO_TOP_SELLERS);
    td_reco_criteria_free(c);

    static const struct {
        const char *json, *path, *reason;
    } bad[] = {
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteriaId\":\"seq\",\"slots\":1}]}",
          "/sequence/0/criteriaId", "cannot be a sequence" },
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteriaId\":\"gone\",\"slots\":1}]}",
          "/sequence/0/criteriaId", "unknown criteria" },
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteriaId\":\"broken\",\"slots\":1}]}",
          "/sequence/0/criteriaId", "not JSON" },
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteriaId\":\"recent\"}]}",
          "/sequence/0/slots", "missing" },
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[]}", "/sequence", "1 to 5" },
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteria\":{\"criteriaGroup\":"
          "\"ITEM\"},\"slots\":1}]}",
          "/sequence/0/criteria/type", "missing" },
        { "{\"criteriaGroup\":\"SEQUENCE\",\"sequence\":[{\"criteria\":{\"criteriaGroup\":"
          "\"RECENT\"},\"criteriaId\":\"recent\",\"slots\":1}]}",
          "/sequence/0/criteriaId", "either" },
        { "{\"criteriaGroup\":\"SEQUENCE\"}", "/sequence", "missing" },
        { "{\"criteriaGroup\":\"RECENT\",\"sequence\":[{\"criteriaId\":\"recent\",\"slots\":1}]}",
          "/sequence", "only allowed in a SEQUENCE" },
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        c = NULL;
        memset(&err, 0, sizeof(err));
        int rc = td_reco_criteria_parse(bad[i].json, strlen(bad[i].json), resolve, NULL, &c, &err);
        if (rc != TD_EINVAL || strcmp(err.path, bad[i].path) != 0 ||
            strstr(err.message, bad[i].reason) == NULL) {
            fail_msg("%s: rc %d, \"%s\" at \"%s\"", bad[i].json, rc, err.message, err.path);
        }
        assert_null(c);
    }
}

static void test_errors_name_fields(void **state)
{
    (void)state;
    refuse("{\"type\":\"VIEWED_CF\"}", "/criteriaGroup", "missing");
    refuse("{\"criteriaGroup\":\"NOPE\"}", "/criteriaGroup", "unknown value");
    refuse("{\"criteriaGroup\":7}", "/criteriaGroup", "must be a string");
    refuse("{\"criteriaGroup\":\"ITEM\"}", "/type", "missing");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"TOP_SELLERS\"}", "/type", "not an ITEM");
    refuse("{\"criteriaGroup\":\"CART\",\"type\":\"SIMILARITY\"}", "/type", "not a CART");
    refuse("{\"criteriaGroup\":\"CART\",\"type\":\"VIEWED_CF\",\"key\":\"CURRENT_ITEM\"}", "/key",
           "cart as key");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"CURRENT_CATEGORY\"}",
           "/key", "not an item key");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"PROFILE_ATTRIBUTE\"}",
           "/keyAttribute", "missing");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"daysCount\":62}", "/daysCount",
           "1 to 61");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"daysCount\":1.5}", "/daysCount",
           "integer");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"hoursCount\":6}", "/hoursCount",
           "popularity");
    refuse("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"hoursCount\":6,"
           "\"daysCount\":2}",
           "/hoursCount", "either");
    refuse("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"hoursCount\":5}",
           "/hoursCount", "6 to 6");
    refuse("{\"criteriaGroup\":\"CATEGORY\",\"type\":\"MOST_VIEWED\",\"key\":\"CURRENT_ITEM\"}",
           "/key", "CURRENT_CATEGORY");
    refuse("{\"criteriaGroup\":\"PROFILEATTRIBUTE\",\"type\":\"TOP_SELLERS\","
           "\"keyAttribute\":\"brand\"}",
           "/groupBy", "needs groupBy");
    refuse("{\"criteriaGroup\":\"CUSTOM\"}", "/customId", "missing");
    refuse("{\"criteriaGroup\":\"RECENT\",\"key\":\"CURRENT_ITEM\"}", "/key", "no key");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"confidence\":\"LOW\"}",
           "/confidence", "only allowed for SITE_AFFINITY");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"SITE_AFFINITY\",\"confidence\":\"MAX\"}",
           "/confidence", "LOW, MEDIUM");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"minSimilarity\":0.5}",
           "/minSimilarity", "only allowed for SIMILARITY");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"SIMILARITY\",\"minSimilarity\":2}",
           "/minSimilarity", "0 to 1");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"SIMILARITY\",\"attributeWeights\":"
           "{\"name\":\"x\"}}",
           "/attributeWeights/name", "must be a number");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"priceRange\":{\"min\":5,"
           "\"max\":1}}",
           "/priceRange/min", "above max");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"priceRange\":{\"low\":5}}",
           "/priceRange/low", "unknown field");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"minInventory\":-1}",
           "/minInventory", "from 0");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"excludePurchases\":\"yes\"}",
           "/excludePurchases", "true or false");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"typo\":1}", "/typo",
           "unknown field");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"a/b~c\":1}", "/a~1b~0c",
           "unknown field");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"similarityMetric\":\"JACCARD\"}",
           "/similarityMetric", "unknown value");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"promotions\":{\"front\":{}}}",
           "/promotions/front", "needs");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"promotions\":{\"middle\":{}}}",
           "/promotions/middle", "unknown field");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"promotions\":{\"front\":"
           "{\"ids\":[\"\"]}}}",
           "/promotions/front/ids/0", "empty");
    refuse("[]", "", "must be an object");
    refuse("", "", "malformed JSON");
    refuse("{\"criteriaGroup\":\"ITEM\",\"criteriaGroup\":\"ITEM\"}", "", "malformed JSON");
}

static void test_rule_errors(void **state)
{
    (void)state;
    static const struct {
        const char *rule, *path, *reason;
    } bad[] = {
        { "{\"operation\":\"equals\",\"values\":[\"x\"]}", "/inclusionRules/0/attribute",
          "missing" },
        { "{\"attribute\":\"brand\",\"values\":[\"x\"]}", "/inclusionRules/0/operation",
          "missing" },
        { "{\"attribute\":\"brand\",\"operation\":\"is\",\"values\":[\"x\"]}",
          "/inclusionRules/0/operation", "unknown value" },
        { "{\"attribute\":\"brand\",\"operation\":\"equals\"}", "/inclusionRules/0/values",
          "at least one" },
        { "{\"attribute\":\"brand\",\"operation\":\"equals\",\"values\":[true]}",
          "/inclusionRules/0/values/0", "string or a number" },
        { "{\"attribute\":\"value\",\"operation\":\"between\",\"min\":1}", "/inclusionRules/0/max",
          "min and max" },
        { "{\"attribute\":\"value\",\"operation\":\"between\",\"min\":5,\"max\":1}",
          "/inclusionRules/0/min", "above max" },
        { "{\"attribute\":\"value\",\"operation\":\"equals\",\"values\":[1],\"min\":1}",
          "/inclusionRules/0/min", "only allowed with operation between" },
        { "{\"attribute\":\"value\",\"operation\":\"greaterThanOrEqual\",\"values\":[\"ten\"]}",
          "/inclusionRules/0/values", "must be a number" },
        { "{\"attribute\":\"brand\",\"operation\":\"equals\",\"source\":\"PROFILE\"}",
          "/inclusionRules/0/sourceAttribute", "required" },
        { "{\"attribute\":\"brand\",\"operation\":\"equals\",\"values\":[\"x\"],"
          "\"sourceAttribute\":\"b\"}",
          "/inclusionRules/0/sourceAttribute", "only allowed with a dynamic" },
        { "{\"attribute\":\"brand\",\"operation\":\"equals\",\"source\":\"PROFILE\","
          "\"sourceAttribute\":\"b\",\"ifEmpty\":\"STATIC\"}",
          "/inclusionRules/0/values", "needs values" },
        { "{\"attribute\":\"brand\",\"operation\":\"equals\",\"values\":[\"x\"],\"x\":1}",
          "/inclusionRules/0/x", "unknown field" },
        { "7", "/inclusionRules/0", "must be an object" },
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"inclusionRules\":[%s]}",
                 bad[i].rule);
        refuse(json, bad[i].path, bad[i].reason);
    }
    /* td_reco_rules_parse: the same rules, paths relative to the array. */
    td_reco_rules_t r;
    td_err_t err = { 0 };
    const char *j = "[{\"attribute\":\"x\",\"operation\":\"present\"},{\"attribute\":\"y\"}]";
    assert_int_equal(td_reco_rules_parse(j, strlen(j), &r, &err), TD_EINVAL);
    assert_string_equal(err.path, "/1/operation");
    assert_int_equal(td_reco_rules_parse("{}", 2, &r, &err), TD_EINVAL);
    j = "[{\"attribute\":\"x\",\"operation\":\"present\"}]";
    assert_int_equal(td_reco_rules_parse(j, strlen(j), &r, &err), TD_OK);
    assert_int_equal(r.n, 1);
    td_reco_rules_release(&r);
}

static void test_nasty_input(void **state)
{
    (void)state;
    /* Deep nesting, huge numbers, long strings, NUL, invalid UTF-8. */
    char deep[4096];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        deep[n++] = '[';
    }
    deep[n] = '\0';
    td_reco_criteria_t *c = NULL;
    td_err_t err = { 0 };
    assert_int_equal(td_reco_criteria_parse(deep, n, NULL, NULL, &c, &err), TD_EINVAL);
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"daysCount\":1e400}", "",
           "malformed JSON");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"daysCount\":99999999999999}",
           "/daysCount", "1 to 61");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"id\":\"a\\u0000b\"}", "",
           "malformed JSON");
    refuse("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"name\":\"\xff\"}", "",
           "malformed JSON");
    char *big = malloc(300000);
    int len = snprintf(big, 300000,
                       "{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\","
                       "\"inclusionRules\":[");
    for (int i = 0; i < 60; i++) {
        len += snprintf(big + len, (size_t)(300000 - len),
                        "%s{\"attribute\":\"a\",\"operation\":\"present\"}", i ? "," : "");
    }
    snprintf(big + len, (size_t)(300000 - len), "]}");
    refuse(big, "/inclusionRules", "more than 50");
    len = snprintf(big, 300000, "{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"name\":\"");
    memset(big + len, 'x', 2000);
    snprintf(big + len + 2000, 100, "\"}");
    refuse(big, "/name", "longer than");
    free(big);
}

static void test_custom_csv(void **state)
{
    (void)state;
    td_reco_custom_t *c = NULL;
    td_err_t err = { 0 };
    const char *csv = "## RECSRecommendations,,,\n"
                      "## RECS'key, then items',,\n"
                      "Key,Entity 1,Entity 2\n"
                      "k1,a,b,,\n"
                      "\"k,2\",\"x \"\"y\"\"\",  z  \r\n"
                      "\n"
                      "k1,c\n";
    assert_int_equal(td_reco_custom_parse(csv, strlen(csv), &c, &err), TD_OK);
    assert_int_equal(td_reco_custom_count(c), 2);
    int n;
    const char *const *items = td_reco_custom_get(c, "k1", &n);
    assert_int_equal(n, 1); /* the later row replaced the first */
    assert_string_equal(items[0], "c");
    items = td_reco_custom_get(c, "k,2", &n);
    assert_int_equal(n, 2);
    assert_string_equal(items[0], "x \"y\"");
    assert_string_equal(items[1], "z");
    assert_null(td_reco_custom_get(c, "none", &n));
    assert_int_equal(n, 0);
    assert_null(td_reco_custom_get(NULL, "k1", &n));
    td_reco_custom_free(c);

    static const struct {
        const char *csv;
        int line, column;
        const char *reason;
    } bad[] = {
        { "k,\"open\n", 1, 3, "unterminated" },
        { "k,a\"b\n", 1, 4, "quote inside" },
        { "k,\"a\"b\n", 1, 6, "after a closing quote" },
        { ",a,b\n", 1, 1, "without a key" },
        { "k,a\0b\n", 1, 4, "NUL" },
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        size_t len = strlen(bad[i].csv);
        if (i == 4) {
            len = 7;
        }
        c = NULL;
        memset(&err, 0, sizeof(err));
        assert_int_equal(td_reco_custom_parse(bad[i].csv, len, &c, &err), TD_EINVAL);
        assert_null(c);
        if (err.line != bad[i].line || err.column != bad[i].column ||
            strstr(err.message, bad[i].reason) == NULL) {
            fail_msg("case %zu: %s at %d:%d", i, err.message, err.line, err.column);
        }
    }
    /* More than 1,000 items in a row. */
    char *row = malloc(20000);
    int len = snprintf(row, 20000, "k");
    for (int i = 0; i < 1001; i++) {
        len += snprintf(row + len, (size_t)(20000 - len), ",i%d", i);
    }
    assert_int_equal(td_reco_custom_parse(row, (size_t)len, &c, &err), TD_EINVAL);
    assert_non_null(strstr(err.message, "more than 1000"));
    free(row);
    /* Empty input is an empty table. */
    assert_int_equal(td_reco_custom_parse("", 0, &c, &err), TD_OK);
    assert_int_equal(td_reco_custom_count(c), 0);
    td_reco_custom_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),    cmocka_unit_test(test_full_document),
        cmocka_unit_test(test_sequence),    cmocka_unit_test(test_errors_name_fields),
        cmocka_unit_test(test_rule_errors), cmocka_unit_test(test_nasty_input),
        cmocka_unit_test(test_custom_csv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
