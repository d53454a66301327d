/* The outbox's pure rules: retry back-off, frequency cap parsing and the
 * next allowed time, quiet hours windows with fixed UTC offsets and in a
 * named zone's wall time across DST changes, and the skip reasons read from
 * a row's render data. */
#include "test.h"

#include <string.h>

#include "message/message.h"

#define MIN  60000LL
#define HOUR 3600000LL
#define DAY  86400000LL
/* 2026-11-28T00:00:00Z */
#define MIDNIGHT 1795824000000LL

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(td_outbox_backoff_ms(1, 60000), 60000);
    assert_int_equal(td_outbox_backoff_ms(2, 60000), 120000);
    assert_int_equal(td_outbox_backoff_ms(3, 60000), 240000);
    assert_int_equal(td_outbox_backoff_ms(100, 60000), 6 * HOUR); /* capped, no overflow */
    assert_int_equal(td_outbox_backoff_ms(0, 0), 1000);
    assert_int_equal(td_outbox_backoff_ms(-5, 60000), 60000);
}

static void test_cap_parse(void **state)
{
    td_cap_t caps[TD_CAP_MAX];
    td_err_t err = { 0 };
    int n;
    (void)state;

    assert_int_equal(td_cap_parse("", caps, TD_CAP_MAX, &n, &err), TD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(td_cap_parse("1/16h, 3/7d:drop,2/30m:defer", caps, TD_CAP_MAX, &n, &err),
                     TD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(caps[0].limit, 1);
    assert_int_equal(caps[0].window_ms, 16 * HOUR);
    assert_false(caps[0].drop);
    assert_int_equal(caps[1].limit, 3);
    assert_int_equal(caps[1].window_ms, 7 * DAY);
    assert_true(caps[1].drop);
    assert_int_equal(caps[2].window_ms, 30 * MIN);
    assert_int_equal(td_cap_parse("1/2w", caps, TD_CAP_MAX, &n, &err), TD_OK);
    assert_int_equal(caps[0].window_ms, 14 * DAY);
    const char *bad[] = { "1",      "0/1h", "-1/1h",    "1/h", "1/0h", "1/16x", "1/16h:maybe",
                          "1/16hx", "x/1h", "1/99999d", "/",   ",,1",  "1/1h 2" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(td_cap_parse(bad[i], caps, TD_CAP_MAX, &n, &err), TD_EINVAL);
        assert_string_equal(err.path, "cap");
    }
    assert_int_equal(
        td_cap_parse("1/1h,1/1h,1/1h,1/1h,1/1h,1/1h,1/1h,1/1h,1/1h", caps, TD_CAP_MAX, &n, &err),
        TD_EINVAL);
}

static void test_cap_next_allowed(void **state)
{
    td_cap_t cap = { .limit = 1, .window_ms = 16 * HOUR };
    int64_t now = MIDNIGHT + 10 * HOUR;
    (void)state;

    assert_int_equal(td_cap_next_allowed_ms(&cap, 0, 0, now), now);
    /* one sent 2 hours ago: the next may go 14 hours from now */
    assert_int_equal(td_cap_next_allowed_ms(&cap, 1, now - 2 * HOUR, now), now + 14 * HOUR);
    cap.limit = 3;
    assert_int_equal(td_cap_next_allowed_ms(&cap, 2, now - HOUR, now), now);
    assert_int_equal(td_cap_next_allowed_ms(&cap, 3, now - HOUR, now), now + 15 * HOUR);
    /* an in-flight send counted as now: never a time in the past */
    assert_true(td_cap_next_allowed_ms(&cap, 3, now - 20 * HOUR, now) > now);
}

static void test_quiet_parse(void **state)
{
    int a, b;
    (void)state;

    assert_int_equal(td_quiet_parse("21:00-08:00", &a, &b), TD_OK);
    assert_int_equal(a, 21 * 60);
    assert_int_equal(b, 8 * 60);
    assert_int_equal(td_quiet_parse("", &a, &b), TD_OK);
    assert_int_equal(a, b);
    const char *bad[] = { "21-08",      "24:00-08:00", "21:60-08:00",  "21:00",
                          "21:00-8:00", "aa:bb-cc:dd", "21:00-08:00x", "-" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(td_quiet_parse(bad[i], &a, &b), TD_EINVAL);
    }
}

static void test_quiet_window(void **state)
{
    int a = 21 * 60, b = 8 * 60;
    (void)state;

    /* UTC: 12:00 is outside; 22:00 waits until 08:00 the next day; 03:00 until 08:00 */
    assert_int_equal(td_quiet_next_open_ms(a, b, 0, MIDNIGHT + 12 * HOUR), MIDNIGHT + 12 * HOUR);
    assert_int_equal(td_quiet_next_open_ms(a, b, 0, MIDNIGHT + 22 * HOUR), MIDNIGHT + 32 * HOUR);
    assert_int_equal(td_quiet_next_open_ms(a, b, 0, MIDNIGHT + 3 * HOUR), MIDNIGHT + 8 * HOUR);
    /* the window's edges: 21:00 is quiet, 08:00 is not */
    assert_int_equal(td_quiet_next_open_ms(a, b, 0, MIDNIGHT + 21 * HOUR), MIDNIGHT + 32 * HOUR);
    assert_int_equal(td_quiet_next_open_ms(a, b, 0, MIDNIGHT + 8 * HOUR), MIDNIGHT + 8 * HOUR);
    /* UTC+02:00: 20:00Z is 22:00 local, quiet until 08:00 local = 06:00Z */
    assert_int_equal(td_quiet_next_open_ms(a, b, 120, MIDNIGHT + 20 * HOUR), MIDNIGHT + 30 * HOUR);
    /* UTC-05:00: 03:00Z is 22:00 local the day before, open at 13:00Z */
    assert_int_equal(td_quiet_next_open_ms(a, b, -300, MIDNIGHT + 3 * HOUR), MIDNIGHT + 13 * HOUR);
    /* UTC+05:30: 02:00Z is 07:30 local, open at 08:00 local = 02:30Z */
    assert_int_equal(td_quiet_next_open_ms(a, b, 330, MIDNIGHT + 2 * HOUR),
                     MIDNIGHT + 2 * HOUR + 30 * MIN);
    /* a window inside one day */
    assert_int_equal(td_quiet_next_open_ms(12 * 60, 14 * 60, 0, MIDNIGHT + 13 * HOUR),
                     MIDNIGHT + 14 * HOUR);
    assert_int_equal(td_quiet_next_open_ms(12 * 60, 14 * 60, 0, MIDNIGHT + 15 * HOUR),
                     MIDNIGHT + 15 * HOUR);
    /* before 1970 is still arithmetic */
    assert_int_equal(td_quiet_next_open_ms(a, b, 0, -2 * HOUR), 8 * HOUR);
    /* an empty window never holds */
    assert_int_equal(td_quiet_next_open_ms(a, a, 0, MIDNIGHT + 22 * HOUR), MIDNIGHT + 22 * HOUR);
}

/* 2026-03-29T00:00:00Z and 2026-10-25T00:00:00Z: Paris changes at 01:00Z */
#define MAR29 1774742400000LL
#define OCT25 1792886400000LL

static int64_t open_in(const char *zone, int a, int b, int64_t now)
{
    int64_t t = -1;
    assert_int_equal(td_quiet_next_open_tz_ms(a, b, td_tz_cache_shared(), zone, now, &t), TD_OK);
    return t;
}

static void test_quiet_window_named_zone(void **state)
{
    int a, b, off;

    (void)state;
    if (td_tz_cache_offset(td_tz_cache_shared(), "Europe/Paris", MAR29, &off) != TD_OK) {
        skip(); /* no zoneinfo files on this machine */
    }
    assert_int_equal(td_quiet_parse("21:00-08:00", &a, &b), TD_OK);
    /* 23:00 CET on the 28th: open at 08:00 summer time = 06:00Z, not 07:00Z */
    assert_int_equal(open_in("Europe/Paris", a, b, MAR29 - 2 * HOUR), MAR29 + 6 * HOUR);
    assert_int_equal(open_in("Europe/Paris", a, b, MAR29 + 3 * HOUR), MAR29 + 6 * HOUR);
    assert_int_equal(open_in("Europe/Paris", a, b, MAR29 + 6 * HOUR), MAR29 + 6 * HOUR);
    /* 22:00 CEST on the 24th: open at 08:00 winter time = 07:00Z, not 06:00Z */
    assert_int_equal(open_in("Europe/Paris", a, b, OCT25 - 4 * HOUR), OCT25 + 7 * HOUR);
    assert_int_equal(open_in("Europe/Paris", a, b, OCT25 + 6 * HOUR + 59 * MIN), OCT25 + 7 * HOUR);
    /* midday: open */
    assert_int_equal(open_in("Europe/Paris", a, b, OCT25 + 12 * HOUR), OCT25 + 12 * HOUR);
    /* the fixed offset in force the evening before would be an hour off */
    assert_int_not_equal(td_quiet_next_open_ms(a, b, 60, MAR29 - 2 * HOUR), MAR29 + 6 * HOUR);
    /* an end the spring change skips (02:30): the window opens at the change */
    assert_int_equal(td_quiet_parse("22:00-02:30", &a, &b), TD_OK);
    assert_int_equal(open_in("Europe/Paris", a, b, MAR29 + 30 * MIN), MAR29 + 1 * HOUR);
    /* an end the autumn change repeats: the first 02:30 (00:30Z), and while
     * the second pass of 02:00-02:30 is quiet again, its 02:30 (01:30Z) */
    assert_int_equal(td_quiet_parse("00:00-02:30", &a, &b), TD_OK);
    assert_int_equal(open_in("Europe/Paris", a, b, OCT25 - 1 * HOUR), OCT25 + 30 * MIN);
    assert_int_equal(open_in("Europe/Paris", a, b, OCT25 + 45 * MIN), OCT25 + 45 * MIN);
    assert_int_equal(open_in("Europe/Paris", a, b, OCT25 + 75 * MIN), OCT25 + 90 * MIN);
    /* New York (UTC-04:00 in summer): 23:00 local on 2026-07-01 is 03:00Z the 2nd */
    assert_int_equal(td_quiet_parse("21:00-08:00", &a, &b), TD_OK);
    assert_int_equal(open_in("America/New_York", a, b, MIDNIGHT - 150 * DAY + 3 * HOUR),
                     MIDNIGHT - 150 * DAY + 12 * HOUR);
    /* fixed offsets agree with td_quiet_next_open_ms */
    for (int64_t t = MIDNIGHT; t < MIDNIGHT + DAY; t += 37 * MIN) {
        assert_int_equal(open_in("+02:00", a, b, t), td_quiet_next_open_ms(a, b, 120, t));
        assert_int_equal(open_in("UTC-05:30", a, b, t), td_quiet_next_open_ms(a, b, -330, t));
    }
    /* no window; an unknown zone */
    assert_int_equal(open_in("Europe/Paris", a, a, MIDNIGHT + 22 * HOUR), MIDNIGHT + 22 * HOUR);
    int64_t t;
    assert_int_equal(
        td_quiet_next_open_tz_ms(a, b, td_tz_cache_shared(), "Nowhere/City", MIDNIGHT, &t),
        TD_ENOTFOUND);
}

static void test_tz_offset(void **state)
{
    int off;
    (void)state;

    assert_int_equal(td_tz_offset_parse("UTC", &off), TD_OK);
    assert_int_equal(off, 0);
    assert_int_equal(td_tz_offset_parse("+02:00", &off), TD_OK);
    assert_int_equal(off, 120);
    assert_int_equal(td_tz_offset_parse("UTC-05:30", &off), TD_OK);
    assert_int_equal(off, -330);
    const char *bad[] = { "",      "Europe/Paris", "+2",   "+15:00", "+02:60",
                          "02:00", "+02:00 ",      "UTC+", "+0200" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(td_tz_offset_parse(bad[i], &off), TD_EINVAL);
    }
    assert_int_equal(td_tz_offset_parse(NULL, &off), TD_EINVAL);
}

static void check_skip(const char *json, const char *want)
{
    json_error_t e;
    json_t *d = json_loads(json, 0, &e);
    const char *got = td_outbox_data_skip(d);

    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
    json_decref(d);
}

static void test_data_skip(void **state)
{
    (void)state;
    check_skip("{}", NULL);
    check_skip("{\"data\": {\"cart\": [{\"id\": \"A\"}], \"also\": []}}", NULL);
    check_skip("{\"data\": {\"cart\": [], \"also\": []}}", "empty_recommendation");
    check_skip("{\"data\": {\"subject\": \"x\"}}", NULL);
    check_skip("{\"data\": {\"cart\": [1], \"item_unavailable\": true}}", "item_unavailable");
    check_skip("{\"data\": 3}", NULL);
    check_skip("[]", NULL);
    assert_null(td_outbox_data_skip(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),          cmocka_unit_test(test_cap_parse),
        cmocka_unit_test(test_cap_next_allowed), cmocka_unit_test(test_quiet_parse),
        cmocka_unit_test(test_quiet_window),     cmocka_unit_test(test_tz_offset),
        cmocka_unit_test(test_data_skip),        cmocka_unit_test(test_quiet_window_named_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
