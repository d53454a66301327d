/* Clocks and ISO 8601 times: parsing, formatting, round trips, calendar
 * edge cases, and the virtual clock. */
#include "test.h"

#include <stdio.h>
#include <string.h>

#include "util/clock.h"

static int64_t parse_ok(const char *s)
{
    int64_t ms = 0;

    if (td_time_parse_iso(s, &ms) != TD_OK) {
        fail_msg("refused: \"%s\"", s);
    }
    return ms;
}

static void test_parse_known_times(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } cases[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "1970-01-01T00:00:00.001Z", 1 },
        { "1969-12-31T23:59:59.999Z", -1 },
        { "2000-01-01T00:00:00Z", 946684800000LL },
        { "2026-11-18T00:00:00Z", 1794960000000LL },
        { "2026-11-18T11:06:40Z", 1795000000000LL },
        { "2024-02-29T12:00:00Z", 1709208000000LL },
        { "2000-02-29T00:00:00Z", 951782400000LL },
        { "9999-12-31T23:59:59.999Z", 253402300799999LL },
        { "0001-01-01T00:00:00Z", -62135596800000LL },
        /* offsets are subtracted to get UTC */
        { "2026-11-18T01:00:00+01:00", 1794960000000LL },
        { "2026-11-18T01:00:00+0100", 1794960000000LL },
        { "2026-11-18T01:00:00+01", 1794960000000LL },
        { "2026-11-17T23:00:00-01:00", 1794960000000LL },
        { "2026-11-18T05:45:00+05:45", 1794960000000LL },
        { "2026-11-18T00:00:00-00:00", 1794960000000LL },
        { "2026-11-18T23:59:00+23:59", 1794960000000LL },
        /* fractions of any length; beyond milliseconds they are cut */
        { "2026-11-18T00:00:00.5Z", 1794960000500LL },
        { "2026-11-18T00:00:00.05Z", 1794960000050LL },
        { "2026-11-18T00:00:00.999999999999Z", 1794960000999LL },
        { "2026-11-18T00:00:00,1Z", 1794960000100LL },
        { "2026-11-18T01:00:00.250+01:00", 1794960000250LL },
        /* spellings RFC 3339 allows */
        { "2026-11-18t00:00:00z", 1794960000000LL },
        { "2026-11-18 00:00:00Z", 1794960000000LL },
        { "2026-11-18T00:00Z", 1794960000000LL },
        /* a date alone is midnight UTC */
        { "2026-11-18", 1794960000000LL },
        /* a leap second reads as the next second */
        { "2016-12-31T23:59:60Z", 1483228800000LL },
    };

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(cases); i++) {
        int64_t ms = parse_ok(cases[i].s);
        if (ms != cases[i].ms) {
            fail_msg("\"%s\": expected %lld, got %lld", cases[i].s, (long long)cases[i].ms,
                     (long long)ms);
        }
    }
}

static void test_parse_refuses(void **state)
{
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11",
        "2026-1-18",
        "26-11-18",
        "2026/11/18",
        "2026-11-18T",
        "2026-11-18T10",
        "2026-11-18T10:00:00", /* no zone */
        "2026-11-18T10:00",
        "2026-11-18T1:00:00Z",
        "2026-11-18T10:0:00Z",
        "2026-11-18T10:00:0Z",
        "2026-11-18T10:00:00.Z",
        "2026-11-18T10:00:00ZZ",
        "2026-11-18T10:00:00Z ",
        " 2026-11-18T10:00:00Z",
        "2026-11-18T10:00:00+",
        "2026-11-18T10:00:00+1",
        "2026-11-18T10:00:00+01:",
        "2026-11-18T10:00:00+01:0",
        "2026-11-18T10:00:00+24:00",
        "2026-11-18T10:00:00+01:60",
        "2026-11-18T24:00:00Z",
        "2026-11-18T23:60:00Z",
        "2026-11-18T23:59:61Z",
        "2026-00-10T00:00:00Z",
        "2026-13-10T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2025-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* divisible by 100, not by 400 */
        "2100-02-29T00:00:00Z",
        "2026-11-18X10:00:00Z",
        "2026-11-18T10:00:00 Z",
        "-2026-11-18T10:00:00Z",
        "+2026-11-18",
        "2026-11-18T10:00:00\xff",
        "\xd9\xa2\xd9\xa0\xd9\xa2\xd9\xa6-11-18", /* Arabic-Indic digits */
        "yesterday",
    };
    int64_t ms = 42;

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        if (td_time_parse_iso(bad[i], &ms) != TD_EINVAL) {
            fail_msg("accepted: \"%s\" as %lld", bad[i], (long long)ms);
        }
    }
}

static void test_leap_years(void **state)
{
    (void)state;
    for (int y = 1600; y <= 2400; y++) {
        char s[32];
        int64_t ms;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        snprintf(s, sizeof(s), "%04d-02-29", y);
        int rc = td_time_parse_iso(s, &ms);
        if (leap != (rc == TD_OK)) {
            fail_msg("%s: leap=%d rc=%d", s, leap, rc);
        }
        if (leap) {
            /* Feb 29 is the day before Mar 1 */
            snprintf(s, sizeof(s), "%04d-03-01", y);
            assert_int_equal(parse_ok(s) - ms, 86400000LL);
        } else {
            snprintf(s, sizeof(s), "%04d-02-28", y);
            int64_t feb28 = parse_ok(s);
            snprintf(s, sizeof(s), "%04d-03-01", y);
            assert_int_equal(parse_ok(s) - feb28, 86400000LL);
        }
    }
}

static void test_format(void **state)
{
    static const struct {
        int64_t ms;
        const char *s;
    } cases[] = {
        { 0, "1970-01-01T00:00:00.000Z" },
        { 1, "1970-01-01T00:00:00.001Z" },
        { -1, "1969-12-31T23:59:59.999Z" },
        { -1000, "1969-12-31T23:59:59.000Z" },
        { -1001, "1969-12-31T23:59:58.999Z" },
        { 1795000000123LL, "2026-11-18T11:06:40.123Z" },
        { 1709208000000LL, "2024-02-29T12:00:00.000Z" },
        { 253402300799999LL, "9999-12-31T23:59:59.999Z" },
        { -62135596800000LL, "0001-01-01T00:00:00.000Z" },
    };
    char out[32];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(cases); i++) {
        td_time_format_iso(cases[i].ms, out, sizeof(out));
        assert_string_equal(out, cases[i].s);
        assert_int_equal(strlen(out), 24); /* the documented 25 bytes with the NUL */
    }
    /* a short buffer is cut, never overrun */
    char small[8];
    memset(small, 'x', sizeof(small));
    td_time_format_iso(0, small, sizeof(small));
    assert_string_equal(small, "1970-01");
    /* extremes print something and do not crash */
    td_time_format_iso(INT64_MAX, out, sizeof(out));
    td_time_format_iso(INT64_MIN, out, sizeof(out));
    td_time_format_iso(INT64_MIN + 1, out, sizeof(out));
}

static void test_round_trips(void **state)
{
    char out[32];
    uint64_t x = 88172645463325252ULL;

    (void)state;
    /* format then parse gives the same instant, across the years 0001..9999 */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = -62135596800000LL + (int64_t)(x % (253402300799999ULL + 62135596800000ULL));
        td_time_format_iso(ms, out, sizeof(out));
        if (parse_ok(out) != ms) {
            fail_msg("%lld -> %s -> %lld", (long long)ms, out, (long long)parse_ok(out));
        }
    }
    /* and parse then format gives the canonical spelling */
    static const char *const canon[][2] = {
        { "2026-11-18T01:00:00+01:00", "2026-11-18T00:00:00.000Z" },
        { "2026-11-18", "2026-11-18T00:00:00.000Z" },
        { "2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000Z" },
        { "2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00.000Z" },
        { "2026-11-18T00:00:00.1239Z", "2026-11-18T00:00:00.123Z" },
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(canon); i++) {
        td_time_format_iso(parse_ok(canon[i][0]), out, sizeof(out));
        assert_string_equal(out, canon[i][1]);
    }
}

static void test_virtual_clock(void **state)
{
    td_clock_t c;
    int64_t now = 0;

    (void)state;
    td_clock_init_virtual(&c, 1000);
    assert_true(c.is_virtual);
    assert_int_equal(td_clock_now_ms(&c), 1000);
    assert_int_equal(td_clock_advance(&c, 0, &now), TD_OK);
    assert_int_equal(now, 1000);
    assert_int_equal(td_clock_advance(&c, 3 * 3600 * 1000LL, &now), TD_OK);
    assert_int_equal(now, 1000 + 3 * 3600 * 1000LL);
    assert_int_equal(td_clock_now_ms(&c), now);
    /* it never goes back, and never wraps around */
    assert_int_equal(td_clock_advance(&c, -1, &now), TD_EINVAL);
    assert_int_equal(td_clock_advance(&c, INT64_MAX, &now), TD_EINVAL);
    assert_int_equal(td_clock_now_ms(&c), 1000 + 3 * 3600 * 1000LL);
    td_clock_init_virtual(&c, INT64_MAX - 5);
    assert_int_equal(td_clock_advance(&c, 5, &now), TD_OK);
    assert_int_equal(now, INT64_MAX);
    assert_int_equal(td_clock_advance(&c, 1, &now), TD_EINVAL);
}

static void test_real_clock(void **state)
{
    td_clock_t c;
    int64_t now = 0;

    (void)state;
    td_clock_init_real(&c);
    assert_false(c.is_virtual);
    int64_t a = td_clock_now_ms(&c), w = td_wall_ms();
    assert_true(a > 1700000000000LL);
    assert_true(w - a >= 0 && w - a < 5000);
    assert_int_equal(td_clock_advance(&c, 1000, &now), TD_EINVAL);
    int64_t m1 = td_mono_us(), m2 = td_mono_us();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_known_times), cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_leap_years),        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trips),       cmocka_unit_test(test_virtual_clock),
        cmocka_unit_test(test_real_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
