/* The suppression list's keys and CSV import (suppress_csv.c): keys made
 * from addresses and domains, the header line, reasons, bad lines by
 * number, the entry limit, and CSV without a final newline. */
#include "test.h"

#include <string.h>

#include "message/message.h"

static void test_keys(void **state)
{
    char key[TD_SUPPRESS_KEY_MAX], again[TD_SUPPRESS_KEY_MAX];
    char long_domain[300];

    (void)state;
    assert_true(td_suppress_key_make(" Shopper@Example.COM\r", 21, key, sizeof(key)));
    assert_string_equal(key, "shopper@example.com");
    assert_true(td_suppress_key_make("Spam.Example", 12, key, sizeof(key)));
    assert_string_equal(key, "@spam.example");
    assert_true(td_suppress_key_make("@spam.example", 13, key, sizeof(key)));
    assert_string_equal(key, "@spam.example");
    const char *bad[] = { "", " ", "nodot", "@", "a b@c.de", "\"q\"@c.de", "<a@b.co>", "a@b@c.de" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(td_suppress_key_make(bad[i], strlen(bad[i]), key, sizeof(key)));
    }
    /* 254 bytes is the most a key holds, '@' of a domain included: a key
     * made is always one that passes again (found by fuzz/suppressions_csv) */
    memset(long_domain, 'a', sizeof(long_domain));
    long_domain[100] = '.';
    assert_true(td_suppress_key_make(long_domain, 253, key, sizeof(key)));
    assert_int_equal(strlen(key), 254);
    assert_true(td_suppress_key_make(key, strlen(key), again, sizeof(again)));
    assert_string_equal(again, key);
    assert_false(td_suppress_key_make(long_domain, 254, key, sizeof(key)));
    assert_true(td_suppress_reason_valid("hard_bounce-2"));
    assert_false(td_suppress_reason_valid("Complaint"));
    assert_false(td_suppress_reason_valid(""));
}

static void test_csv(void **state)
{
    td_suppress_csv_t csv;
    const char *ok = "address,reason\r\nA1@example.org,complaint\r\n\r\n@spam.example\r\n"
                     "x.example,bounce  \nlast@example.org";
    const char *bad = "first@example.org\nnot an address\nc@d.co,BAD\n\n@x.io,manual\n"
                      "a@b.co, leading_space\n";

    (void)state;
    assert_int_equal(td_suppress_csv_parse(ok, strlen(ok), 100, &csv), TD_OK);
    assert_int_equal(csv.n, 4);
    assert_int_equal(csv.n_bad, 0);
    assert_string_equal(csv.entries[0].key, "a1@example.org");
    assert_string_equal(csv.entries[0].reason, "complaint");
    assert_string_equal(csv.entries[1].key, "@spam.example");
    assert_string_equal(csv.entries[1].reason, "import");
    assert_string_equal(csv.entries[2].key, "@x.example");
    assert_string_equal(csv.entries[2].reason, "bounce");
    assert_string_equal(csv.entries[3].key, "last@example.org");
    td_suppress_csv_release(&csv);

    /* a first line that is an entry is kept; bad lines by number */
    assert_int_equal(td_suppress_csv_parse(bad, strlen(bad), 100, &csv), TD_EINVAL);
    assert_int_equal(csv.n, 2);
    assert_int_equal(csv.n_bad, 3);
    assert_int_equal(csv.bad_lines[0], 2);
    assert_int_equal(csv.bad_lines[1], 3);
    assert_int_equal(csv.bad_lines[2], 6);
    td_suppress_csv_release(&csv);

    /* the limit: one entry more is too many, a bad line does not count */
    assert_int_equal(td_suppress_csv_parse("a@b.co\nc@d.co\n", 14, 2, &csv), TD_OK);
    td_suppress_csv_release(&csv);
    assert_int_equal(td_suppress_csv_parse("a@b.co\nc@d.co\ne@f.co\n", 21, 2, &csv), TD_ETOOBIG);
    td_suppress_csv_release(&csv);
    /* nothing at all; the length is obeyed, not a NUL */
    assert_int_equal(td_suppress_csv_parse("", 0, 2, &csv), TD_OK);
    assert_int_equal(csv.n, 0);
    td_suppress_csv_release(&csv);
    assert_int_equal(td_suppress_csv_parse("a@b.co\nc@d.co", 6, 10, &csv), TD_OK);
    assert_int_equal(csv.n, 1);
    assert_string_equal(csv.entries[0].key, "a@b.co");
    td_suppress_csv_release(&csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_csv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
