/* Step decisions (pure): waits, wait_for_event, conditions and the
 * deterministic split, email skip reasons, action and recommendation
 * payloads, timeouts, exits and entries (the zones themselves: unit/util/test_tz.c). */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journey/journey.h"

#define NOW  1795860000000LL /* 2026-11-28T10:00:00Z, a Saturday */
#define HOUR 3600000LL

static const td_journey_defaults_t dflt = { .reentry_wait_ms = 300000,
                                            .timeout_ms = 91LL * 86400000 };

static const char *journey_doc =
    "{\"id\": \"j\", \"entry\": {\"event\": \"cart_add\", \"when\": \"count(event.items) > 0\","
    "   \"key\": \"event.cart_id\"},"
    " \"exit\": [{\"name\": \"purchased\", \"event\": \"purchase\","
    "   \"when\": \"intersects(ids(trigger.items), ids(event.items))\"}],"
    " \"timezone\": \"+01:00\","
    " \"actions\": {\"recs\": {\"method\": \"POST\","
    "   \"url\": \"http://127.0.0.1:1/users/{{profile.customer_id}}/recs\","
    "   \"query\": {\"q\": \"{{event.items[0].id}}\", \"none\": \"{{profile.nothing}}\"},"
    "   \"headers\": {\"X-Profile\": \"{{profile.id}}\"},"
    "   \"body\": {\"items\": \"{{ids(event.items)}}\", \"n\": 3}}},"
    " \"steps\": {"
    "  \"wait\": {\"type\": \"wait\", \"duration\": \"3h\", \"next\": \"until\"},"
    "  \"until\": {\"type\": \"wait\", \"until\": \"time(event.ts) + hours(1)\", \"next\": "
    "\"morning\"},"
    "  \"morning\": {\"type\": \"wait\", \"time_of_day\": \"09:00\", \"next\": \"buy\"},"
    "  \"buy\": {\"type\": \"wait_for_event\", \"event\": \"purchase\", \"when\": "
    "\"trigger.order.total > 10\","
    "     \"timeout\": \"2d\", \"next\": \"check\", \"timeout_next\": \"split\"},"
    "  \"check\": {\"type\": \"condition\", \"branches\": ["
    "     {\"name\": \"no_email\", \"when\": \"not exists(profile.email)\", \"next\": \"end\"},"
    "     {\"name\": \"big\", \"when\": \"count(profile.cart) > 1\", \"next\": \"mail\"},"
    "     {\"name\": \"broken\", \"when\": \"profile.email - 1\", \"next\": \"end\"}],"
    "     \"else\": \"end\"},"
    "  \"split\": {\"type\": \"condition\", \"split\": [{\"name\": \"a\", \"percent\": 30, "
    "\"next\": \"call\"},"
    "     {\"name\": \"b\", \"percent\": 70, \"next\": \"recs\"}]},"
    "  \"call\": {\"type\": \"action\", \"action\": \"recs\", \"next\": \"recs\"},"
    "  \"recs\": {\"type\": \"recommend\", \"criteria\": \"abandoned_cart\", \"as\": \"cart\", "
    "\"count\": 4,"
    "     \"request\": {\"key\": \"{{event.items[0].id}}\"}, \"next\": \"mail\"},"
    "  \"mail\": {\"type\": \"email\", \"template\": \"t1\", \"data\": {\"n\": \"{{ "
    "count(profile.cart) }}\","
    "     \"hello\": \"Hi {{profile.email}}!\"}, \"next\": \"upd\"},"
    "  \"upd\": {\"type\": \"update_profile\", \"set\": {\"last\": \"{{journey.id}}\"}, "
    "\"consent\": \"out\", \"next\": \"jump\"},"
    "  \"jump\": {\"type\": \"jump\", \"journey\": \"other\"},"
    "  \"end\": {\"type\": \"end\", \"reason\": \"done\"}}}";

static td_journey_def_t *def;
static json_t *vars;

static int setup(void **state)
{
    td_journey_errors_t *errs = calloc(1, sizeof(*errs));

    (void)state;
    if (td_journey_def_parse(journey_doc, strlen(journey_doc), NULL, &dflt, &def, errs) != TD_OK) {
        fprintf(stderr, "%s: %s\n", errs->items[0].path, errs->items[0].message);
        free(errs);
        return -1;
    }
    free(errs);
    vars = json_loads("{\"profile\": {\"id\": 7, \"email\": \"jane@example.com\", \"customer_id\": "
                      "\"c/7 x\", \"ecid\": \"E7\","
                      "  \"cart\": [{\"id\": \"C-1\"}, {\"id\": \"S-2\"}], \"consent\": {}},"
                      " \"event\": {\"type\": \"cart_add\", \"ts\": \"2026-11-28T10:00:00Z\","
                      "  \"cart_id\": \"K1\", \"items\": [{\"id\": \"C-1\"}]},"
                      " \"actions\": {}, \"journey\": {\"id\": \"j\"}}",
                      0, NULL);
    return vars ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    td_journey_def_free(def);
    json_decref(vars);
    return 0;
}

static td_journey_decision_t decide_at(const char *step, int phase, int64_t now)
{
    td_journey_state_t st = { .step = td_journey_def_step_find(def, step),
                              .phase = phase,
                              .profile_id = 7,
                              .instance_id = 1,
                              .entered_ms = NOW,
                              .step_since_ms = now,
                              .timeout_at_ms = NOW + 91LL * 86400000 };
    td_journey_env_t env = {
        .vars = vars, .now_ms = now, .entry_ms = NOW, .tz = td_tz_cache_offset
    };
    td_journey_decision_t d;

    assert_true(st.step >= 0);
    assert_int_equal(td_journey_step_decide(def, &st, &env, &d), TD_OK);
    return d;
}

static const char *next_id(const td_journey_decision_t *d)
{
    return d->next >= 0 ? td_journey_def_step_id(def, d->next) : "(end)";
}

static void test_waits(void **state)
{
    (void)state;
    td_journey_decision_t d = decide_at("wait", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_SLEEP);
    assert_int_equal(d.wake_ms, NOW + 3 * HOUR);
    assert_string_equal(d.outcome, "waiting");
    d = decide_at("wait", TD_JOURNEY_WAITING, NOW + 3 * HOUR);
    assert_int_equal(d.what, TD_JDO_GO);
    assert_string_equal(next_id(&d), "until");

    /* until a time computed from data; already passed: go on at once */
    d = decide_at("until", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_SLEEP);
    assert_int_equal(d.wake_ms, NOW + HOUR);
    d = decide_at("until", TD_JOURNEY_ARRIVE, NOW + 2 * HOUR);
    assert_int_equal(d.what, TD_JDO_GO);

    /* 09:00 in the journey's zone (+01:00): 08:00Z the next day */
    d = decide_at("morning", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_SLEEP);
    assert_int_equal(d.wake_ms, NOW - 2 * HOUR + 24 * HOUR);
    d = decide_at("morning", TD_JOURNEY_ARRIVE, NOW - 3 * HOUR); /* 07:00Z = 08:00 local */
    assert_int_equal(d.wake_ms, NOW - 2 * HOUR);
}

static void test_global_timeout_and_end_date(void **state)
{
    (void)state;
    td_journey_decision_t d = decide_at("wait", TD_JOURNEY_ARRIVE, NOW + 92LL * 86400000);
    assert_int_equal(d.what, TD_JDO_END);
    assert_string_equal(d.outcome, "timeout");
    /* a wait longer than the remaining time wakes at the timeout */
    d = decide_at("buy", TD_JOURNEY_ARRIVE, NOW + 90LL * 86400000);
    assert_int_equal(d.what, TD_JDO_WAIT_EVENT);
    assert_int_equal(d.wake_ms, NOW + 91LL * 86400000);
}

static void test_wait_for_event(void **state)
{
    td_err_t err = { 0 };
    int next = -1;

    (void)state;
    td_journey_decision_t d = decide_at("buy", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_WAIT_EVENT);
    assert_int_equal(d.wake_ms, NOW + 48 * HOUR);
    d = decide_at("buy", TD_JOURNEY_WAITING, NOW + 48 * HOUR);
    assert_int_equal(d.what, TD_JDO_GO);
    assert_string_equal(next_id(&d), "split");
    assert_string_equal(d.outcome, "timeout");

    td_journey_env_t env = { .vars = vars, .now_ms = NOW };
    int buy = td_journey_def_step_find(def, "buy");
    json_object_set_new(vars, "trigger", json_loads("{\"order\": {\"total\": 5}}", 0, NULL));
    assert_false(td_journey_wait_match(def, buy, "purchase", &env, &next, &err));
    json_object_set_new(vars, "trigger", json_loads("{\"order\": {\"total\": 50}}", 0, NULL));
    assert_false(td_journey_wait_match(def, buy, "page_view", &env, &next, &err));
    assert_true(td_journey_wait_match(def, buy, "purchase", &env, &next, &err));
    assert_string_equal(td_journey_def_step_id(def, next), "check");
    json_object_del(vars, "trigger");
}

static void test_condition_first_true_wins(void **state)
{
    (void)state;
    td_journey_decision_t d = decide_at("check", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_GO);
    assert_string_equal(d.reason, "big");
    assert_string_equal(next_id(&d), "mail");

    /* no email: the first branch wins before the broken one is evaluated */
    json_t *p = json_object_get(vars, "profile");
    json_t *email = json_incref(json_object_get(p, "email"));
    json_object_del(p, "email");
    d = decide_at("check", TD_JOURNEY_ARRIVE, NOW);
    assert_string_equal(d.reason, "no_email");
    json_object_set_new(p, "email", email);

    /* a failing expression ends the instance with where and why */
    json_t *cart = json_incref(json_object_get(p, "cart"));
    json_object_set_new(p, "cart", json_array());
    d = decide_at("check", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_END);
    assert_string_equal(d.outcome, "error");
    assert_non_null(strstr(d.reason, "branch \"broken\", column 15: cannot subtract"));
    json_object_set_new(p, "cart", cart);
}

static void test_split_is_deterministic(void **state)
{
    int a = 0;

    (void)state;
    for (int pid = 1; pid <= 2000; pid++) {
        td_journey_state_t st = { .step = td_journey_def_step_find(def, "split"),
                                  .profile_id = pid };
        td_journey_env_t env = { .vars = vars, .now_ms = NOW };
        td_journey_decision_t d1, d2;
        assert_int_equal(td_journey_step_decide(def, &st, &env, &d1), TD_OK);
        assert_int_equal(td_journey_step_decide(def, &st, &env, &d2), TD_OK);
        assert_string_equal(d1.reason, d2.reason); /* a replay splits the same */
        a += strcmp(d1.reason, "a") == 0;
    }
    assert_in_range(a, 500, 700); /* 30% of 2000, give or take */
}

static void test_email(void **state)
{
    (void)state;
    td_journey_decision_t d = decide_at("mail", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_EMAIL);
    assert_string_equal(json_string_value(json_object_get(d.payload, "to")), "jane@example.com");
    assert_string_equal(json_string_value(json_object_get(d.payload, "template")), "t1");
    json_t *data = json_object_get(d.payload, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "n")), 2);
    assert_string_equal(json_string_value(json_object_get(data, "hello")), "Hi jane@example.com!");
    td_journey_decision_release(&d);

    json_t *p = json_object_get(vars, "profile");
    json_object_set_new(json_object_get(p, "consent"), "marketing", json_string("out"));
    d = decide_at("mail", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_GO);
    assert_string_equal(d.outcome, "skipped");
    assert_string_equal(d.reason, "consent_refused");
    json_object_set_new(p, "consent", json_object());

    json_t *email = json_incref(json_object_get(p, "email"));
    json_object_del(p, "email");
    d = decide_at("mail", TD_JOURNEY_ARRIVE, NOW);
    assert_string_equal(d.reason, "no_email");
    assert_string_equal(next_id(&d), "upd");
    json_object_set_new(p, "email", email);
}

static void test_action_payload(void **state)
{
    (void)state;
    td_journey_decision_t d = decide_at("call", TD_JOURNEY_ARRIVE, NOW);
    if (d.what != TD_JDO_CALL) {
        fail_msg("decided %d: %s %s", (int)d.what, d.outcome, d.reason);
    }
    /* interpolated path and query values are percent-encoded; null query values are left out */
    assert_string_equal(json_string_value(json_object_get(d.payload, "url")),
                        "http://127.0.0.1:1/users/c%2F7%20x/recs?q=C-1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d.payload, "headers"), "X-Profile")),
        "7");
    char *body = json_dumps(json_object_get(d.payload, "body"), JSON_COMPACT);
    assert_string_equal(body, "{\"items\":[\"C-1\"],\"n\":3}");
    free(body);
    assert_int_equal(json_integer_value(json_object_get(d.payload, "retries")), 3);
    assert_int_equal(json_integer_value(json_object_get(d.payload, "timeout_ms")), 5000);
    td_journey_decision_release(&d);
}

static void test_recommend_update_jump_end(void **state)
{
    (void)state;
    td_journey_decision_t d = decide_at("recs", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_RECOMMEND);
    json_t *req = json_object_get(d.payload, "request");
    assert_string_equal(json_string_value(json_object_get(req, "key")), "C-1");
    assert_int_equal(json_integer_value(json_object_get(req, "count")), 4);
    assert_string_equal(json_string_value(json_object_get(req, "ecid")), "E7");
    assert_int_equal(json_array_size(json_object_get(req, "cart")), 2);
    td_journey_decision_release(&d);

    d = decide_at("upd", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_UPDATE);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d.payload, "set"), "last")), "j");
    assert_string_equal(json_string_value(json_object_get(d.payload, "consent")), "out");
    td_journey_decision_release(&d);

    d = decide_at("jump", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_JUMP);
    assert_int_equal(d.next, -1);
    td_journey_decision_release(&d);

    d = decide_at("end", TD_JOURNEY_ARRIVE, NOW);
    assert_int_equal(d.what, TD_JDO_END);
    assert_string_equal(d.outcome, "completed");
    assert_string_equal(d.reason, "done");
}

static void test_entry_and_exit(void **state)
{
    td_err_t err = { 0 };
    td_journey_env_t env = { .vars = vars, .now_ms = NOW };
    bool match;
    char *key;

    (void)state;
    assert_int_equal(td_journey_entry_match(def, &env, &match, &key, &err), TD_OK);
    assert_true(match);
    assert_string_equal(key, "K1");
    free(key);
    json_t *ev = json_object_get(vars, "event");
    json_t *items = json_incref(json_object_get(ev, "items"));
    json_object_set_new(ev, "items", json_array());
    assert_int_equal(td_journey_entry_match(def, &env, &match, &key, &err), TD_OK);
    assert_false(match);
    json_object_set_new(ev, "items", items);

    json_object_set_new(vars, "trigger", json_loads("{\"items\": [{\"id\": \"X\"}]}", 0, NULL));
    assert_null(td_journey_exit_match(def, "purchase", &env, &err));
    json_object_set_new(vars, "trigger", json_loads("{\"items\": [{\"id\": \"C-1\"}]}", 0, NULL));
    assert_null(td_journey_exit_match(def, "page_view", &env, &err));
    assert_string_equal(td_journey_exit_match(def, "purchase", &env, &err), "purchased");
    json_object_del(vars, "trigger");
    assert_true(td_journey_listens(def, "purchase"));
    assert_false(td_journey_listens(def, "page_view"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waits),
        cmocka_unit_test(test_global_timeout_and_end_date),
        cmocka_unit_test(test_wait_for_event),
        cmocka_unit_test(test_condition_first_true_wins),
        cmocka_unit_test(test_split_is_deterministic),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_action_payload),
        cmocka_unit_test(test_recommend_update_jump_end),
        cmocka_unit_test(test_entry_and_exit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
