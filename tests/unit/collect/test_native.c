/* The native event parser: shapes, fields, and every refusal's path. */
#include "test.h"

#include <string.h>

#include "collect/collect.h"

static const td_collect_limits_t lim = { .max_events = 3, .max_items = 2 };
static const int64_t now = 1795000000000LL;

static int parse(const char *body, td_event_batch_t *b, td_err_t *err)
{
    return td_collect_parse_native(body, strlen(body), &lim, now, b, err);
}

static void test_single_event(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"type\":\"cart_add\",\"ecid\":\"E\",\"email\":\"A@X.io\","
                           "\"items\":[{\"id\":\"S1\",\"price\":9.5,\"quantity\":2}]}",
                           &b, &err),
                     TD_OK);
    assert_true(b.single);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.slots[0].err.code, TD_OK);
    assert_string_equal(b.slots[0].ev.email, "a@x.io");
    assert_int_equal(b.slots[0].ev.ts_ms, now);
    assert_int_equal(b.slots[0].ev.items[0].quantity, 2);
    td_event_batch_release(&b);
}

static void test_item_needs_id(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"events\":[{\"type\":\"cart_add\",\"ecid\":\"E\"},"
                           "{\"type\":\"cart_add\",\"ecid\":\"E\",\"items\":[{}]}]}",
                           &b, &err),
                     TD_OK);
    assert_int_equal(b.slots[0].err.code, TD_OK);
    assert_int_equal(b.slots[1].err.code, TD_EINVAL);
    assert_string_equal(b.slots[1].err.path, "/events/1/items/0/id");
    td_event_batch_release(&b);
}

static void test_too_many_events(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"events\":[{},{},{},{}]}", &b, &err), TD_ETOOBIG);
    assert_string_equal(err.path, "/events");
    td_event_batch_release(&b);
}

static void test_malformed_json_has_position(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"type\":\n  \"x\",,}", &b, &err), TD_EINVAL);
    assert_int_equal(err.line, 2);
    td_event_batch_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_event),
        cmocka_unit_test(test_item_needs_id),
        cmocka_unit_test(test_too_many_events),
        cmocka_unit_test(test_malformed_json_has_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
