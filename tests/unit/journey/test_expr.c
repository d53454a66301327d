/* The journey expression language: values, operators, functions, list
 * filters, and errors with their positions. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "journey/journey.h"

static const char *vars_json =
    "{\"profile\": {\"id\": 7, \"email\": \"jane@example.com\", \"consent\": {\"marketing\": "
    "\"in\"},"
    "  \"cart\": [{\"id\": \"C-1\", \"price\": 59.9, \"quantity\": 2}, {\"id\": \"S-2\", "
    "\"price\": "
    "20, \"quantity\": 1}],"
    "  \"attributes\": {\"tz\": \"+02:00\", \"first-name\": \"Jane\"}},"
    " \"event\": {\"type\": \"cart_add\", \"cart_id\": \"K1\", \"ts\": \"2026-11-28T10:00:00Z\","
    "  \"items\": [{\"id\": \"C-1\", \"price\": 59.9}]},"
    " \"actions\": {\"recs\": {\"status\": \"http_200\", \"items\": [{\"id\": \"A\"}, {\"id\": "
    "\"B\"}]}},"
    " \"events\": [{\"type\": \"purchase\", \"received_ms\": 2000},"
    "              {\"type\": \"page_view\", \"received_ms\": 1500},"
    "              {\"type\": \"purchase\", \"received_ms\": 500}]}";

static json_t *vars;

static int setup(void **state)
{
    (void)state;
    vars = json_loads(vars_json, 0, NULL);
    return vars ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(vars);
    return 0;
}

static int fixed_tz(void *ctx, const char *zone, int64_t utc_ms, int *off)
{
    (void)ctx;
    (void)utc_ms;
    if (strcmp(zone, "Europe/Paris") == 0) {
        *off = 3600;
        return 0;
    }
    return td_tz_cache_offset(NULL, zone, utc_ms, off);
}

static json_t *eval(const char *src)
{
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };
    td_journey_env_t env = {
        .vars = vars, .now_ms = 1000000, .entry_ms = 1000, .seed = "7/j/s", .tz = fixed_tz
    };
    json_t *out = NULL;

    if (td_journey_expr_parse(src, &e, &err) != TD_OK) {
        fail_msg("parse \"%s\": column %d: %s", src, err.column, err.message);
    }
    if (td_journey_expr_eval(e, &env, &out, &err) != TD_OK) {
        fail_msg("eval \"%s\": column %d: %s", src, err.column, err.message);
    }
    td_journey_expr_free(e);
    return out;
}

/* Evaluates src and compares its compact JSON with want. */
static void check(const char *src, const char *want)
{
    json_t *v = eval(src);
    char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));

    if (strcmp(got, want) != 0) {
        fail_msg("\"%s\" gave %s, expected %s", src, got, want);
    }
    free(got);
    json_decref(v);
}

static void check_parse_error(const char *src, int column, const char *needle)
{
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };

    assert_int_equal(td_journey_expr_parse(src, &e, &err), TD_EINVAL);
    assert_null(e);
    if (err.column != column || strstr(err.message, needle) == NULL) {
        fail_msg("\"%s\": got column %d \"%s\", expected column %d with \"%s\"", src, err.column,
                 err.message, column, needle);
    }
}

static void check_eval_error(const char *src, int column, const char *needle)
{
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };
    td_journey_env_t env = { .vars = vars, .now_ms = 1000000 };
    json_t *out = NULL;

    assert_int_equal(td_journey_expr_parse(src, &e, &err), TD_OK);
    assert_int_equal(td_journey_expr_eval(e, &env, &out, &err), TD_EINVAL);
    assert_null(out);
    if (err.column != column || strstr(err.message, needle) == NULL) {
        fail_msg("\"%s\": got column %d \"%s\", expected column %d with \"%s\"", src, err.column,
                 err.message, column, needle);
    }
    td_journey_expr_free(e);
}

static void test_paths(void **state)
{
    (void)state;
    check("profile.email", "\"jane@example.com\"");
    check("event.items[0].price", "59.9");
    check("actions.recs.items", "[{\"id\":\"A\"},{\"id\":\"B\"}]");
    check("actions.recs.items[-1].id", "\"B\"");
    check("profile.attributes[\"first-name\"]", "\"Jane\"");
    check("profile.missing.deeper", "null");
    check("event.items[5]", "null");
    check("trigger.type", "\"cart_add\""); /* trigger defaults to the entry event */
    check("now", "1000000");
    check("entry", "1000");
}

static void test_operators(void **state)
{
    (void)state;
    check("1 + 2 * 3", "7");
    check("(1 + 2) * 3", "9");
    check("7 / 2", "3.5");
    check("7 % 3", "1");
    check("-event.items[0].price", "-59.9");
    check("\"a\" + 1", "\"a1\"");
    check("profile.nothing + 1", "null");
    check("1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3", "true");
    check("1 == 1.0", "true");
    check("\"b\" > \"a\"", "true");
    check("null < 5", "false");
    check("not true or false", "false");
    check("!(1 == 2) && true || false", "true");
    check("profile.nothing ?? \"UTC\"", "\"UTC\"");
    check("\"C-1\" in ids(profile.cart)", "true");
    check("\"ex\" in profile.email", "true");
    check("\"email\" in profile", "true");
    check("9223372036854775807 + 1 > 9e18", "true"); /* overflow: floating point */
    check("[1, 2] + [3]", "[1,2,3]");
}

static void test_functions(void **state)
{
    (void)state;
    check("count(profile.cart)", "2");
    check("count(profile.nothing)", "0");
    check("count(\"été\")", "3");
    check("exists(profile.email) and not exists(profile.phone)", "true");
    check("empty([]) and empty(\"\") and empty(null) and not empty([1])", "true");
    check("lower(\"AbC\") + upper(\"x\") + trim(\"  y \")", "\"abcXy\"");
    check("contains(ids(profile.cart), \"S-2\")", "true");
    check("starts_with(profile.email, \"jane\") and ends_with(profile.email, \".com\")", "true");
    check("pluck(profile.cart, \"quantity\")", "[2,1]");
    check("sum(profile.cart, \"price\")", "79.9");
    check("min(profile.cart, \"price\")", "20");
    check("max([3, 9, 4])", "9");
    check("intersects(ids(profile.cart), ids(event.items))", "true");
    check("round(2.345, 2)", "2.35");
    check("floor(2.7) + ceil(2.1) + abs(-1)", "6");
    check("number(\"12.5\") + number(\"x\" ) ?? 0", "0");
    check("string(12)", "\"12\"");
    check("time(event.ts)", "1795860000000");
    check("iso(0)", "\"1970-01-01T00:00:00.000Z\"");
    check("hours(3)", "10800000");
    check("days(1) + minutes(1) + seconds(1) + weeks(0)", "86461000");
    check("hour(event.ts)", "10");
    check("hour(event.ts, \"Europe/Paris\")", "11");
    check("hour(event.ts, profile.attributes.tz)", "12");
    check("weekday(event.ts)", "6"); /* 2026-11-28 is a Saturday */
    check("date(event.ts)", "\"2026-11-28\"");
    check("if(count(profile.cart) > 1, \"many\", \"few\")", "\"many\"");
    check("coalesce(profile.nothing, null, 3)", "3");
    check("first(profile.cart).id + last(profile.cart).id", "\"C-1S-2\"");
    check("keys(profile.consent)", "[\"marketing\"]");
    check("join(ids(profile.cart), \"|\")", "\"C-1|S-2\"");
    check("unique([1, 1, 2])", "[1,2]");
    check("slice(actions.recs.items, 1)", "[{\"id\":\"B\"}]");
    check("bucket() >= 0 and bucket() < 100", "true");
}

static void test_filters(void **state)
{
    (void)state;
    check("count(events since entry where type == \"purchase\")", "1");
    check("count(events where type == \"purchase\")", "2");
    check("ids(profile.cart where price > 30)", "[\"C-1\"]");
    check("profile.cart where it.quantity == 1", "[{\"id\":\"S-2\",\"price\":20,\"quantity\":1}]");
    check("count(profile.cart where id in ids(event.items))", "1");
    check("count(profile.nothing where x)", "0");
    check("count(events since 1600)", "1");
}

static void test_parse_errors(void **state)
{
    (void)state;
    check_parse_error("", 1, "empty");
    check_parse_error("profile.email ==", 17, "expected a value");
    check_parse_error("profil.email", 1, "unknown name \"profil\"");
    check_parse_error("count(1, 2)", 1, "count() takes 1 argument");
    check_parse_error("nosuch(1)", 1, "unknown function");
    check_parse_error("a = 1", 3, "compare with ==");
    check_parse_error("event.type = 1", 12, "compare with ==");
    check_parse_error("1 < 2 < 3", 7, "do not chain");
    check_parse_error("\"open", 1, "not closed");
    check_parse_error("(1 + 2", 7, "expected \")\"");
    check_parse_error("event.items[0", 14, "expected \"]\"");
    check_parse_error("1 2", 3, "unexpected a number");
    check_parse_error("event.#", 7, "unexpected character");
    check_parse_error("'\\q'", 2, "unknown escape");
}

static void test_eval_errors(void **state)
{
    (void)state;
    check_eval_error("1 / 0", 3, "division by zero");
    check_eval_error("profile.email - 1", 15, "cannot subtract");
    check_eval_error("profile.email < 3", 15, "cannot compare");
    check_eval_error("count(1)", 1, "count() needs");
    check_eval_error("profile.cart[\"x\"]", 13, "list index");
    check_eval_error("time(\"yesterday\")", 1, "time()");
    check_eval_error("hour(event.ts, \"Mars/Base\")", 1, "unknown time zone");
}

static void test_deep_nesting_is_refused(void **state)
{
    char src[600];
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };

    (void)state;
    memset(src, '(', 300);
    src[300] = '1';
    memset(src + 301, ')', 298);
    src[599] = '\0';
    assert_int_equal(td_journey_expr_parse(src, &e, &err), TD_EINVAL);
    assert_non_null(strstr(err.message, "nested too deeply"));
}

static void test_too_much_work_is_refused(void **state)
{
    (void)state;
    /* 1000 x 1000 x ... elements: the work limit stops it with an error */
    json_t *big = json_array();
    for (int i = 0; i < 2000; i++) {
        json_array_append_new(big, json_integer(i));
    }
    json_object_set_new(vars, "events", big);
    check_eval_error("count(events where count(events where it > 0) > 0)", 39, "too much work");
}

static void test_uses(void **state)
{
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(
        td_journey_expr_parse("profile.email and count(events) > 0 and trigger.x", &e, &err),
        TD_OK);
    assert_int_equal(td_journey_expr_uses(e),
                     TD_JOURNEY_USES_PROFILE | TD_JOURNEY_USES_EVENTS | TD_JOURNEY_USES_TRIGGER);
    td_journey_expr_free(e);
}

static void test_bucket_is_deterministic(void **state)
{
    (void)state;
    assert_true(td_journey_bucket("42/j/split") == td_journey_bucket("42/j/split"));
    int low = 0;
    for (int i = 0; i < 10000; i++) {
        char seed[32];
        snprintf(seed, sizeof(seed), "%d/j/split", i);
        double b = td_journey_bucket(seed);
        assert_true(b >= 0 && b < 100);
        low += b < 30;
    }
    /* roughly uniform: 30% +- 2% */
    assert_in_range(low, 2800, 3200);
}

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = { { "\"90s\"", 90000 },       { "\"30m\"", 1800000 },   { "\"3h\"", 10800000 },
               { "\"1d12h\"", 129600000 }, { "\"2w\"", 1209600000 }, { "\"PT3H\"", 10800000 },
               { "\"P1DT2H\"", 93600000 }, { "300", 300000 },        { "\"250ms\"", 250 },
               { "\"1.5h\"", 5400000 } };
    static const char *const bad[] = { "\"3 hours\"", "\"h\"",    "\"3x\"",   "\"P1M\"", "-1",
                                       "\"m3\"",      "\"3m2h\"", "\"400d\"", "true",    "\"PT\"" };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        json_t *v = json_loads(ok[i].text, JSON_DECODE_ANY, NULL);
        int64_t ms = -1;
        assert_int_equal(td_journey_parse_duration(v, &ms), TD_OK);
        assert_int_equal(ms, ok[i].ms);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        int64_t ms;
        if (td_journey_parse_duration(v, &ms) == TD_OK) {
            fail_msg("duration %s was accepted", bad[i]);
        }
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_eval_errors),
        cmocka_unit_test(test_deep_nesting_is_refused),
        cmocka_unit_test(test_uses),
        cmocka_unit_test(test_bucket_is_deterministic),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_too_much_work_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
