/* Journey definitions: the shipped examples parse, and a wrong definition
 * is refused with every error named by its JSON pointer. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journey/journey.h"

static const td_journey_defaults_t dflt = { .reentry_wait_ms = 300000,
                                            .timeout_ms = 91LL * 86400000 };

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;

    if (f == NULL) {
        fail_msg("cannot open %s (run the tests from the repository root)", path);
    }
    buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static td_journey_def_t *parse_ok(const char *doc, const char *hint)
{
    td_journey_errors_t *errs = calloc(1, sizeof(*errs));
    td_journey_def_t *def = NULL;
    int rc = td_journey_def_parse(doc, strlen(doc), hint, &dflt, &def, errs);

    if (rc != TD_OK) {
        fail_msg("refused: %s: %s", errs->n ? errs->items[0].path : "",
                 errs->n ? errs->items[0].message : "?");
    }
    free(errs);
    return def;
}

static td_journey_errors_t *parse_bad(const char *doc, const char *hint)
{
    td_journey_errors_t *errs = calloc(1, sizeof(*errs));
    td_journey_def_t *def = NULL;

    assert_int_not_equal(td_journey_def_parse(doc, strlen(doc), hint, &dflt, &def, errs), TD_OK);
    assert_null(def);
    assert_true(errs->n > 0);
    return errs;
}

static void expect_error(const td_journey_errors_t *errs, const char *path, const char *needle)
{
    for (int i = 0; i < errs->n; i++) {
        if (strcmp(errs->items[i].path, path) == 0 && strstr(errs->items[i].message, needle)) {
            return;
        }
    }
    for (int i = 0; i < errs->n; i++) {
        print_message("  got %s: %s\n", errs->items[i].path, errs->items[i].message);
    }
    fail_msg("no error at %s saying \"%s\"", path, needle);
}

static void test_shipped_journeys_parse(void **state)
{
    const char *files[] = { "journeys/cart-abandonment.json", "journeys/browse-abandonment.json" };

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *doc = slurp(files[i], &len);
        td_journey_def_t *def = parse_ok(doc, NULL);
        assert_string_equal(td_journey_def_step_id(def, td_journey_def_first_step(def)), "wait");
        assert_int_equal(td_journey_def_step_type(def, td_journey_def_first_step(def)),
                         TD_JSTEP_WAIT);
        assert_true(td_journey_listens(def, "purchase"));
        td_journey_def_free(def);
        free(doc);
    }
}

static void test_every_error_is_named(void **state)
{
    const char *doc =
        "{\"id\": \"bad journey\", \"bogus\": 1,"
        " \"entry\": {\"event\": \"cart add\", \"when\": \"count(event.items) >\"},"
        " \"reentry\": {\"allowed\": true, \"wait\": \"5 minutes\"},"
        " \"exit\": [{\"name\": \"bought\"}],"
        " \"timeout\": \"2y\","
        " \"start_date\": \"tomorrow\","
        " \"actions\": {\"a\": {\"method\": \"DELETE\", \"url\": \"ftp://x\", \"timeout\": \"60s\","
        "   \"retries\": 9, \"headers\": {\"Authorization\": \"x\"}, \"response\": {\"f\": "
        "\"blob\"}}},"
        " \"steps\": {"
        "   \"w\": {\"type\": \"wait\", \"duration\": \"3h\", \"until\": \"now\", \"next\": "
        "\"nowhere\"},"
        "   \"c\": {\"type\": \"condition\", \"branches\": [{\"when\": \"profil.email\", \"next\": "
        "\"w\"}]},"
        "   \"s\": {\"type\": \"condition\", \"split\": [{\"percent\": 60, \"next\": \"w\"},"
        "                                         {\"percent\": 60, \"next\": \"w\"}]},"
        "   \"e\": {\"type\": \"email\", \"next\": \"w\", \"data\": {\"x\": \"{{ 1 + }}\"}},"
        "   \"a\": {\"type\": \"action\", \"action\": \"nope\", \"next\": \"w\"},"
        "   \"t\": {\"type\": \"teleport\"},"
        "   \"bad id!\": {\"type\": \"end\"}"
        " }}";
    td_journey_errors_t *errs = parse_bad(doc, NULL);

    (void)state;
    expect_error(errs, "/bogus", "unknown field");
    expect_error(errs, "/id", "must be");
    expect_error(errs, "/entry/event", "event type");
    expect_error(errs, "/entry/when", "expected a value");
    expect_error(errs, "/reentry/wait", "duration");
    expect_error(errs, "/exit/0/event", "required");
    expect_error(errs, "/timeout", "duration");
    expect_error(errs, "/start_date", "ISO 8601");
    expect_error(errs, "/actions/a/method", "GET, POST or PUT");
    expect_error(errs, "/actions/a/url", "http://");
    expect_error(errs, "/actions/a/timeout", "between 1 and 30");
    expect_error(errs, "/actions/a/retries", "0 to 5");
    expect_error(errs, "/actions/a/headers/Authorization", "auth");
    expect_error(errs, "/actions/a/response/f", "type must be");
    expect_error(errs, "/steps/w", "exactly one of");
    expect_error(errs, "/steps/w/next", "no step \"nowhere\"");
    expect_error(errs, "/steps/c/branches/0/when", "unknown name \"profil\"");
    expect_error(errs, "/steps/c/else", "required");
    expect_error(errs, "/steps/s/split", "add up to 120");
    expect_error(errs, "/steps/e/template", "required");
    expect_error(errs, "/steps/e/data/x", "expected a value");
    expect_error(errs, "/steps/a/action", "no action \"nope\"");
    expect_error(errs, "/steps/t/type", "unknown step type");
    expect_error(errs, "/steps/bad id!", "step id");
    assert_true(errs->n >= 24);
    free(errs);
}

static void test_expression_errors_have_columns(void **state)
{
    const char *doc =
        "{\"id\": \"j\", \"entry\": {\"event\": \"cart_add\", \"when\": \"count(x) > 0\"},"
        " \"steps\": {\"e\": {\"type\": \"end\"}}}";
    td_journey_errors_t *errs = parse_bad(doc, NULL);

    (void)state;
    assert_string_equal(errs->items[0].path, "/entry/when");
    assert_int_equal(errs->items[0].column, 7);
    free(errs);
}

static void test_json_syntax_error_has_line_and_column(void **state)
{
    td_journey_errors_t *errs = parse_bad("{\n  \"id\": \"j\",\n  \"entry\": }\n", NULL);

    (void)state;
    assert_int_equal(errs->n, 1);
    assert_int_equal(errs->items[0].line, 3);
    assert_true(errs->items[0].column > 0);
    free(errs);
    errs = parse_bad("{\"id\": \"a\", \"id\": \"b\"}", NULL);
    assert_non_null(strstr(errs->items[0].message, "duplicate"));
    free(errs);
    errs = parse_bad("[1, 2]", NULL);
    assert_non_null(strstr(errs->items[0].message, "JSON object"));
    free(errs);
}

static void test_graph_checks(void **state)
{
    (void)state;
    td_journey_errors_t *errs =
        parse_bad("{\"id\": \"j\", \"entry\": {\"event\": \"x\"}, \"steps\": {"
                  "\"a\": {\"type\": \"condition\", \"branches\": [{\"when\": \"true\", \"next\": "
                  "\"b\"}], \"else\": \"c\"},"
                  "\"b\": {\"type\": \"update_profile\", \"set\": {\"k\": 1}, \"next\": \"a\"},"
                  "\"c\": {\"type\": \"end\"}, \"orphan\": {\"type\": \"end\"}}}",
                  NULL);
    expect_error(errs, "/steps/orphan", "cannot be reached");
    expect_error(errs, "/steps/a", "loop without a wait step: a -> b -> a");
    free(errs);
    /* the same loop through a wait is fine */
    td_journey_def_t *def =
        parse_ok("{\"id\": \"j\", \"entry\": {\"event\": \"x\"}, \"steps\": {"
                 "\"a\": {\"type\": \"condition\", \"branches\": [{\"when\": \"true\", \"next\": "
                 "\"w\"}], \"else\": \"c\"},"
                 "\"w\": {\"type\": \"wait\", \"duration\": \"1d\", \"next\": \"a\"},"
                 "\"c\": {\"type\": \"end\"}}}",
                 NULL);
    td_journey_def_free(def);
}

static void test_defaults_and_ids(void **state)
{
    (void)state;
    td_journey_def_t *def =
        parse_ok("{\"entry\": {\"event\": \"cart_add\"}, \"steps\": {\"e\": {\"type\": \"end\"}}}",
                 "from-url");
    assert_string_equal(td_journey_def_id(def), "from-url");
    assert_non_null(strstr(td_journey_def_text(def), "\"id\":\"from-url\""));
    assert_int_equal(td_journey_reentry_wait_ms(def), 300000);
    assert_int_equal(td_journey_timeout_ms(def), 91LL * 86400000);
    td_journey_def_free(def);

    def = parse_ok("{\"id\": \"j\", \"entry\": {\"event\": \"cart_add\"}, \"reentry\": \"never\","
                   " \"timeout\": \"3d\", \"steps\": {\"e\": {\"type\": \"end\"}}}",
                   NULL);
    assert_int_equal(td_journey_reentry_wait_ms(def), -1);
    assert_int_equal(td_journey_timeout_ms(def), 3LL * 86400000);
    td_journey_def_free(def);

    td_journey_errors_t *errs = parse_bad(
        "{\"id\": \"a\", \"entry\": {\"event\": \"x\"}, \"steps\": {\"e\": {\"type\": \"end\"}}}",
        "b");
    expect_error(errs, "/id", "the URL names \"b\"");
    free(errs);
    errs =
        parse_bad("{\"entry\": {\"event\": \"x\"}, \"steps\": {\"e\": {\"type\": \"end\"}}}", NULL);
    expect_error(errs, "/id", "required");
    free(errs);
}

static void test_limits(void **state)
{
    (void)state;
    size_t n = TD_JOURNEY_MAX_DOC + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    td_journey_errors_t *errs = calloc(1, sizeof(*errs));
    td_journey_def_t *def = NULL;
    assert_int_equal(td_journey_def_parse(big, n, NULL, &dflt, &def, errs), TD_ETOOBIG);
    free(errs);
    free(big);

    /* more errors than fit: the list says it was cut */
    char *doc = calloc(1, 20000);
    snprintf(doc, 20000, "{\"id\": \"j\", \"entry\": {\"event\": \"x\"}, \"steps\": {");
    for (int i = 0; i < 100; i++) {
        snprintf(doc + strlen(doc), 100, "%s\"s%d\": {\"type\": \"nope\"}", i ? "," : "", i);
    }
    snprintf(doc + strlen(doc), 10, "}}");
    errs = parse_bad(doc, NULL);
    assert_int_equal(errs->n, TD_JOURNEY_MAX_ERRORS);
    assert_true(errs->truncated);
    free(errs);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_journeys_parse),
        cmocka_unit_test(test_every_error_is_named),
        cmocka_unit_test(test_expression_errors_have_columns),
        cmocka_unit_test(test_json_syntax_error_has_line_and_column),
        cmocka_unit_test(test_graph_checks),
        cmocka_unit_test(test_defaults_and_ids),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
