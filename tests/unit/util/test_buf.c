/* Growable buffers: appends, formatting, growth, ownership, shortest
 * round-trip doubles and JSON string escaping. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void test_empty(void **state)
{
    td_buf_t b = TD_BUF_INIT;

    (void)state;
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    td_buf_release(&b); /* releasing an empty buffer is fine */
    char *s = td_buf_detach(&b);
    assert_non_null(s); /* never NULL, even when nothing was added */
    assert_string_equal(s, "");
    free(s);
    assert_null(b.data);
    td_buf_reset(&b); /* and so is resetting one */
}

static void test_appends(void **state)
{
    td_buf_t b;

    (void)state;
    td_buf_init(&b);
    td_buf_adds(&b, "ab");
    td_buf_addc(&b, 'c');
    td_buf_add(&b, "defXX", 3);
    td_buf_add(&b, NULL, 0);
    td_buf_addf(&b, "-%d-%s-%05.1f", 42, "x", 3.14159);
    assert_string_equal(b.data, "abcdef-42-x-003.1");
    assert_int_equal(b.len, strlen(b.data));
    td_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    td_buf_adds(&b, "again");
    assert_string_equal(b.data, "again");
    td_buf_release(&b);
    assert_null(b.data);
}

static void test_binary_data(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    static const char bytes[] = { 'a', '\0', 'b', '\xff' };

    (void)state;
    td_buf_add(&b, bytes, sizeof(bytes));
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, bytes, 4);
    assert_int_equal(b.data[4], '\0'); /* still terminated */
    td_buf_release(&b);
}

static void test_growth(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    char big[5000];

    (void)state;
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* many small appends and one large formatted one, past every doubling */
    for (int i = 0; i < 10000; i++) {
        td_buf_addc(&b, (char)('a' + i % 26));
        assert_true(b.cap > b.len);
    }
    td_buf_addf(&b, "[%s]", big);
    assert_int_equal(b.len, 10000 + 2 + sizeof(big) - 1);
    assert_int_equal(b.data[10000], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(b.data[9999], 'a' + 9999 % 26);
    /* a formatted append that lands exactly on the capacity */
    td_buf_t c = TD_BUF_INIT;
    td_buf_grow(&c, 10);
    size_t room = c.cap - c.len - 1;
    memset(big, 'q', room);
    big[room] = '\0';
    td_buf_addf(&c, "%s", big);
    assert_int_equal(c.len, room);
    td_buf_addf(&c, "%s", "!");
    assert_int_equal(c.len, room + 1);
    assert_int_equal(c.data[room], '!');
    td_buf_release(&c);
    char *s = td_buf_detach(&b);
    assert_int_equal(strlen(s), 10000 + 2 + sizeof(big) - 1);
    free(s);
}

static void check_double(double v, const char *want)
{
    td_buf_t b = TD_BUF_INIT;
    char got[64];

    td_buf_add_double(&b, v);
    snprintf(got, sizeof(got), "%s", b.data);
    td_buf_release(&b);
    if (want) {
        assert_string_equal(got, want);
    }
    assert_true(strtod(got, NULL) == v);
}

static void test_doubles(void **state)
{
    (void)state;
    check_double(59.9, "59.9");
    check_double(119.8, "119.8");
    check_double(0.1, "0.1");
    check_double(0.1 + 0.2, "0.30000000000000004");
    check_double(0, "0");
    check_double(-5, "-5");
    check_double(1e12, "1000000000000");
    check_double(123456789012.34, "123456789012.34");
    check_double(1e-300, "1e-300");
    check_double(1.7976931348623157e308, "1.7976931348623157e+308");
    check_double(5e-324, NULL);
    check_double(2.0 / 3.0, "0.6666666666666666");
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v));
        if (isfinite(v)) {
            check_double(v, NULL);
        }
        check_double((double)(x % 100000000) / 100.0, NULL); /* prices */
    }
}

static void test_json_strings(void **state)
{
    td_buf_t b = TD_BUF_INIT;

    (void)state;
    td_buf_add_json_str(&b, "plain", 5);
    td_buf_addc(&b, ' ');
    td_buf_add_json_str(&b, "q\"b\\s/", 6);
    td_buf_addc(&b, ' ');
    td_buf_add_json_str(&b, "\n\r\t\b\f\x01\x1f", 7);
    td_buf_addc(&b, ' ');
    td_buf_add_json_str(&b, "a\0b", 3);
    td_buf_addc(&b, ' ');
    td_buf_add_json_str(&b, "\xc3\xa9\x7f", 3);
    td_buf_addc(&b, ' ');
    td_buf_add_json_str(&b, "", 0);
    td_buf_addc(&b, ' ');
    td_buf_add_json_str(&b, "cut here", 3);
    assert_string_equal(b.data, "\"plain\" \"q\\\"b\\\\s/\" "
                                "\"\\n\\r\\t\\u0008\\u000c\\u0001\\u001f\" "
                                "\"a\\u0000b\" \"\xc3\xa9\x7f\" \"\" \"cut\"");
    td_buf_release(&b);
}

static void test_json_strings_stay_valid_utf8(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        { "\xc3\xa9t\xc3\xa9", "\"\xc3\xa9t\xc3\xa9\"" },                       /* 2 bytes */
        { "\xe2\x82\xac", "\"\xe2\x82\xac\"" },                                 /* 3 bytes */
        { "\xf0\x9f\x9b\x92", "\"\xf0\x9f\x9b\x92\"" },                         /* 4 bytes */
        { "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"" }, /* highest */
        { "a\xff!", "\"a\\ufffd!\"" },                                          /* never valid */
        { "\xfe\xfe", "\"\\ufffd\\ufffd\"" },
        { "\xc3", "\"\\ufffd\"" }, /* cut short */
        { "\xe2\x82", "\"\\ufffd\\ufffd\"" },
        { "\xc3(", "\"\\ufffd(\"" },          /* bad continuation */
        { "\xc0\xaf", "\"\\ufffd\\ufffd\"" }, /* overlong */
        { "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" },
        { "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },            /* surrogate */
        { "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* > U+10FFFF */
        { "\x80", "\"\\ufffd\"" },                                  /* lone continuation */
    };

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(cases); i++) {
        td_buf_t b = TD_BUF_INIT;
        td_buf_add_json_str(&b, cases[i].in, strlen(cases[i].in));
        if (strcmp(b.data, cases[i].out) != 0) {
            fail_msg("case %zu: got %s", i, b.data);
        }
        td_buf_release(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_binary_data),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_strings_stay_valid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
