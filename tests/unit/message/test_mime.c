/* The MIME builder: headers (RFC 2047 words, folding, injection), bodies
 * (quoted-printable, base64), structure, determinism, limits, and the
 * deterministic Message-ID. The black-box test parses the same output
 * with Python's email package. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "message/message.h"

static const char *html = "<html><body><h1>Hello</h1><p>Your cart</p></body></html>";

static td_mime_message_t base_message(void)
{
    td_mime_message_t m = { .from_name = "Shop",
                            .from_addr = "news@shop.example",
                            .to_addr = "jane@example.com",
                            .subject = "Your cart",
                            .html = html,
                            .html_len = strlen(html),
                            .text = "Hello\nYour cart\n",
                            .text_len = 16,
                            .message_id = "tandem.1.email@shop.example",
                            .date_ms = 1795000000000LL };
    return m;
}

static char *build_ok(const td_mime_message_t *m)
{
    td_buf_t out = TD_BUF_INIT;
    td_err_t err = { 0 };

    assert_int_equal(td_mime_build(m, &out, &err), TD_OK);
    return td_buf_detach(&out);
}

static int build_err(const td_mime_message_t *m, td_err_t *err)
{
    td_buf_t out = TD_BUF_INIT;
    int rc = td_mime_build(m, &out, err);

    td_buf_release(&out);
    return rc;
}

/* Every line ends in CRLF, none is longer than max (without the CRLF). */
static void assert_lines(const char *s, size_t max)
{
    const char *line = s;

    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            assert_true(p > s && p[-1] == '\r');
            assert_true((size_t)(p - 1 - line) <= max);
            line = p + 1;
        } else if (*p == '\r') {
            assert_int_equal(p[1], '\n');
        }
    }
    assert_true(line == s + strlen(s)); /* ends with a line break */
}

/* The header block (up to the blank line). */
static char *headers_of(const char *msg)
{
    const char *end = strstr(msg, "\r\n\r\n");

    assert_non_null(end);
    return td_xstrndup(msg, (size_t)(end - msg + 2));
}

static void test_structure(void **state)
{
    td_mime_message_t m = base_message();
    (void)state;
    m.unsubscribe_url = "https://t.shop.example/t/u/abc";
    m.unsubscribe_mailto = "mailto:unsubscribe@shop.example?subject=unsubscribe";
    m.list_id = "cart.shop.example";
    m.list_name = "Cart reminders";
    m.reply_to = "help@shop.example";
    char *msg = build_ok(&m), *h = headers_of(msg);

    assert_non_null(strstr(h, "Date: Wed, 18 Nov 2026 11:06:40 +0000\r\n"));
    assert_non_null(strstr(h, "\r\nFrom: Shop <news@shop.example>\r\n"));
    assert_non_null(strstr(h, "\r\nReply-To: help@shop.example\r\n"));
    assert_non_null(strstr(h, "\r\nTo: jane@example.com\r\n"));
    assert_non_null(strstr(h, "\r\nSubject: Your cart\r\n"));
    assert_non_null(strstr(h, "\r\nMessage-ID: <tandem.1.email@shop.example>\r\n"));
    assert_non_null(strstr(h, "\r\nList-Id: Cart reminders <cart.shop.example>\r\n"));
    assert_non_null(strstr(h, "\r\nList-Unsubscribe: "
                              "<mailto:unsubscribe@shop.example?subject=unsubscribe>,\r\n"
                              " <https://t.shop.example/t/u/abc>\r\n"));
    assert_non_null(strstr(h, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    assert_non_null(strstr(h, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(h, "\r\nContent-Type: multipart/alternative; boundary=\"=_td"));
    /* text first, HTML last: clients show the last alternative they can */
    char *text = strstr(msg, "Content-Type: text/plain; charset=UTF-8");
    char *htm = strstr(msg, "Content-Type: text/html; charset=UTF-8");
    assert_non_null(text);
    assert_non_null(htm);
    assert_true(text < htm);
    assert_non_null(strstr(msg, "Content-Transfer-Encoding: quoted-printable"));
    assert_lines(msg, 76);
    free(h);
    free(msg);
}

static void test_deterministic(void **state)
{
    td_mime_message_t m = base_message();
    (void)state;
    char *a = build_ok(&m), *b = build_ok(&m);

    assert_string_equal(a, b); /* a retry is the same bytes */
    m.message_id = "tandem.2.email@shop.example";
    char *c = build_ok(&m);
    const char *ba = strstr(a, "boundary=\""), *bc = strstr(c, "boundary=\"");
    assert_non_null(ba);
    assert_non_null(bc);
    assert_memory_not_equal(ba, bc, 38); /* another message, another boundary */
    free(a);
    free(b);
    free(c);
}

static void test_encoded_words(void **state)
{
    td_mime_message_t m = base_message();
    (void)state;
    m.subject = "Zo\xc3\xab, your cart";
    m.from_name = "Caf\xc3\xa9 & Co";
    m.to_name = "Doe, Jane \"JD\"";
    char *msg = build_ok(&m), *h = headers_of(msg);

    /* only the word that needs it is encoded */
    assert_non_null(strstr(h, "\r\nSubject: =?UTF-8?Q?Zo=C3=AB=2C?= your cart\r\n"));
    assert_non_null(strstr(h, "\r\nFrom: =?UTF-8?Q?Caf=C3=A9_=26_Co?= <news@shop.example>\r\n"));
    /* ASCII with specials: a quoted-string */
    assert_non_null(strstr(h, "\r\nTo: \"Doe, Jane \\\"JD\\\"\" <jane@example.com>\r\n"));
    free(h);
    free(msg);

    /* neighbouring words are one run: the space between them survives */
    m = base_message();
    m.subject = "\xc3\xa9t\xc3\xa9 \xc3\xa0 Paris";
    msg = build_ok(&m);
    assert_non_null(strstr(msg, "Subject: =?UTF-8?Q?=C3=A9t=C3=A9_=C3=A0?= Paris\r\n"));
    free(msg);

    /* ASCII that looks like an encoded-word is encoded, or it would be decoded */
    m.subject = "Save =?x?= now";
    msg = build_ok(&m);
    assert_non_null(strstr(msg, "Subject: Save =?UTF-8?Q?=3D=3Fx=3F=3D?= now\r\n"));
    free(msg);
}

static void test_long_headers_fold(void **state)
{
    td_mime_message_t m = base_message();
    char subject[800];
    (void)state;

    /* 200 non-ASCII characters: many encoded-words, none split inside a
     * character, none over 75 characters, lines within 76 */
    subject[0] = '\0';
    for (int i = 0; i < 200; i++) {
        memcpy(subject + 2 * i, "\xc3\xa9", 2);
    }
    subject[400] = '\0';
    m.subject = subject;
    char *msg = build_ok(&m);
    assert_lines(msg, 76);
    for (char *w = strstr(msg, "=?UTF-8?Q?"); w; w = strstr(w + 1, "=?UTF-8?Q?")) {
        char *end = strstr(w + 10, "?=");
        assert_non_null(end);
        assert_true(end + 2 - w <= 75);
        /* each word holds whole characters: an even number of =XX groups */
        int groups = 0;
        for (char *p = w + 10; p < end; p++) {
            groups += *p == '=';
        }
        assert_int_equal(groups % 2, 0);
    }
    free(msg);

    /* long ASCII subjects fold at spaces */
    m.subject = "one two three four five six seven eight nine ten eleven twelve thirteen "
                "fourteen fifteen sixteen seventeen eighteen nineteen twenty";
    msg = build_ok(&m);
    assert_lines(msg, 76);
    char *subj = strstr(msg, "\r\nSubject: ");
    assert_non_null(subj);
    assert_int_equal(strstr(subj + 2, "\r\n")[2], ' '); /* folded onto a second line */
    free(msg);
}

static void test_header_injection_refused(void **state)
{
    td_mime_message_t m = base_message();
    td_err_t err = { 0 };
    (void)state;

    m.subject = "Hi\r\nBcc: victim@example.com";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    assert_string_equal(err.path, "subject");

    m = base_message();
    m.from_name = "Shop\nX-Evil: 1";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    assert_string_equal(err.path, "from_name");

    m = base_message();
    m.subject = "bad \xc3\x28 utf8";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.subject = "overlong \xc0\xaf";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.subject = "surrogate \xed\xa0\x80";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.subject = "truncated \xe2\x82";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);

    m = base_message();
    m.to_addr = "jane@example.com>\r\nBcc: x@y.z";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    assert_string_equal(err.path, "to");

    m = base_message();
    m.unsubscribe_url = "https://x.example/u\r\nBcc: a@b.c";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.unsubscribe_url = "javascript:alert(1)";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);

    m = base_message();
    m.message_id = "no-at-sign";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.message_id = "a@b>\r\nX: y";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);

    m = base_message();
    m.list_id = "bad list id";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
}

static void test_extra_headers(void **state)
{
    td_mime_message_t m = base_message();
    td_mime_header_t ok[] = { { "X-Campaign", "cart \xc3\xa9t\xc3\xa9" },
                              { "Feedback-ID", "cart:tandem" } };
    td_mime_header_t reserved[] = { { "Bcc", "x@y.z" } };
    td_mime_header_t content[] = { { "content-type", "text/evil" } };
    td_mime_header_t badname[] = { { "X Bad", "v" } };
    td_err_t err = { 0 };
    (void)state;

    m.headers = ok;
    m.n_headers = 2;
    char *msg = build_ok(&m);
    assert_non_null(strstr(msg, "\r\nX-Campaign: cart =?UTF-8?Q?=C3=A9t=C3=A9?=\r\n"));
    assert_non_null(strstr(msg, "\r\nFeedback-ID: cart:tandem\r\n"));
    free(msg);
    m.headers = reserved;
    m.n_headers = 1;
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.headers = content;
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.headers = badname;
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    m.n_headers = TD_MIME_MAX_HEADERS + 1;
    assert_int_equal(build_err(&m, &err), TD_ETOOBIG);
}

static char *qp(const char *s)
{
    td_buf_t out = TD_BUF_INIT;

    td_mime_qp_encode(s, strlen(s), &out);
    return td_buf_detach(&out);
}

static void test_quoted_printable(void **state)
{
    char *s;
    (void)state;

    s = qp("a=b\n");
    assert_string_equal(s, "a=3Db\r\n");
    free(s);
    s = qp("trailing space \nand tab\t\r\nend");
    assert_string_equal(s, "trailing space=20\r\nand tab=09\r\nend\r\n");
    free(s);
    s = qp(".dot at start\n.\n");
    assert_string_equal(s, "=2Edot at start\r\n=2E\r\n");
    free(s);
    s = qp("caf\xc3\xa9\rbare cr");
    assert_string_equal(s, "caf=C3=A9=0Dbare cr\r\n");
    free(s);

    /* long lines: soft breaks, at most 76 characters, never inside =XX */
    char longline[400];
    for (int i = 0; i < 399; i++) {
        longline[i] = i % 7 == 0 ? '=' : 'x';
    }
    longline[399] = '\0';
    s = qp(longline);
    assert_lines(s, 76);
    td_buf_t back = TD_BUF_INIT;
    for (const char *p = s; *p;) {
        if (p[0] == '=' && p[1] == '\r') {
            p += 3; /* soft break */
        } else if (p[0] == '=') {
            assert_true(p[1] == '3' && p[2] == 'D');
            td_buf_addc(&back, '=');
            p += 3;
        } else if (*p == '\r' || *p == '\n') {
            p++;
        } else {
            td_buf_addc(&back, *p++);
        }
    }
    assert_string_equal(back.data, longline); /* decodes back */
    td_buf_release(&back);
    free(s);
}

static void test_text_only_and_generated_text(void **state)
{
    td_mime_message_t m = base_message();
    (void)state;

    m.html = NULL;
    char *msg = build_ok(&m);
    assert_non_null(strstr(msg, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"));
    assert_null(strstr(msg, "multipart"));
    free(msg);

    /* no text given: generated from the HTML */
    m = base_message();
    m.text = NULL;
    msg = build_ok(&m);
    char *plain = strstr(msg, "text/plain");
    assert_non_null(plain);
    assert_non_null(strstr(plain, "Hello"));
    assert_non_null(strstr(plain, "Your cart"));
    free(msg);

    td_err_t err = { 0 };
    m.html = NULL;
    m.text = NULL;
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
}

static void test_inline_images(void **state)
{
    static const unsigned char png[] = { 0x89, 'P', 'N', 'G', 0, 1, 2, 3, 250, 251 };
    td_mime_inline_t im = { .cid = "logo@shop.example",
                            .content_type = "image/png",
                            .filename = "logo.png",
                            .data = png,
                            .len = sizeof(png) };
    td_mime_message_t m = base_message();
    td_err_t err = { 0 };
    (void)state;

    m.inlines = &im;
    m.n_inlines = 1;
    char *msg = build_ok(&m);
    char *alt = strstr(msg, "multipart/alternative"), *rel = strstr(msg, "multipart/related");
    assert_non_null(alt);
    assert_non_null(rel);
    assert_true(alt < rel); /* the HTML and its images, as the second alternative */
    assert_non_null(strstr(msg, "\r\nContent-ID: <logo@shop.example>\r\n"));
    assert_non_null(strstr(msg, "\r\nContent-Transfer-Encoding: base64\r\n"));
    assert_non_null(strstr(msg, "\r\n\r\niVBORwABAgP6+w==\r\n"));
    assert_lines(msg, 76);
    free(msg);

    im.cid = "bad cid";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
    im.cid = "logo";
    im.filename = "a\"b";
    assert_int_equal(build_err(&m, &err), TD_EINVAL);
}

static void test_unsubscribe_variants(void **state)
{
    td_mime_message_t m = base_message();
    (void)state;

    m.unsubscribe_mailto = "mailto:u@shop.example";
    char *msg = build_ok(&m);
    assert_non_null(strstr(msg, "\r\nList-Unsubscribe: <mailto:u@shop.example>\r\n"));
    /* one-click needs an https URL */
    assert_null(strstr(msg, "List-Unsubscribe-Post"));
    free(msg);

    m = base_message();
    msg = build_ok(&m);
    assert_null(strstr(msg, "List-Unsubscribe"));
    assert_null(strstr(msg, "List-Id"));
    free(msg);
}

static void test_limits(void **state)
{
    td_mime_message_t m = base_message();
    td_err_t err = { 0 };
    char *big = calloc(1, (size_t)TD_MIME_MAX_BODY + 2);
    (void)state;

    memset(big, 'a', (size_t)TD_MIME_MAX_BODY + 1);
    m.html = big;
    m.html_len = (size_t)TD_MIME_MAX_BODY + 1;
    assert_int_equal(build_err(&m, &err), TD_ETOOBIG);
    m = base_message();
    big[TD_MIME_MAX_HEADER + 1] = '\0';
    m.subject = big;
    assert_int_equal(build_err(&m, &err), TD_ETOOBIG);
    free(big);
}

static void test_addresses(void **state)
{
    (void)state;
    assert_true(td_mime_addr_valid("jane@example.com"));
    assert_true(td_mime_addr_valid("j.doe+cart@mail.example.co.uk"));
    assert_true(td_mime_addr_valid("o'brien@example.com"));
    assert_false(td_mime_addr_valid(NULL));
    assert_false(td_mime_addr_valid(""));
    assert_false(td_mime_addr_valid("jane"));
    assert_false(td_mime_addr_valid("@example.com"));
    assert_false(td_mime_addr_valid("jane@"));
    assert_false(td_mime_addr_valid(".jane@example.com"));
    assert_false(td_mime_addr_valid("ja..ne@example.com"));
    assert_false(td_mime_addr_valid("jane@exa mple.com"));
    assert_false(td_mime_addr_valid("jane@example..com"));
    assert_false(td_mime_addr_valid("ja ne@example.com"));
    assert_false(td_mime_addr_valid("jane@ex<ample.com"));
    assert_false(td_mime_addr_valid("j\xc3\xa9@example.com"));
    assert_string_equal(td_mime_addr_domain("a@b.example"), "b.example");
    assert_string_equal(td_mime_addr_domain("nothing"), "");
}

static void test_message_id_for(void **state)
{
    char id[256], id2[256];
    (void)state;

    td_message_id_for(42, "email_1", "shop.example", id, sizeof(id));
    assert_string_equal(id, "tandem.42.email_1@shop.example");
    /* a step id that is no atom is hashed, still deterministic */
    td_message_id_for(42, "send email!", "shop.example", id, sizeof(id));
    td_message_id_for(42, "send email!", "shop.example", id2, sizeof(id2));
    assert_string_equal(id, id2);
    assert_int_equal(strncmp(id, "tandem.42.h", 11), 0);
    assert_int_equal(strlen(id), strlen("tandem.42.h0123456789abcdef@shop.example"));
    td_message_id_for(43, "send email!", "shop.example", id2, sizeof(id2));
    assert_string_not_equal(id, id2);
    /* the builder accepts what it makes */
    td_mime_message_t m = base_message();
    m.message_id = id;
    free(build_ok(&m));
    td_message_id_for(1, NULL, NULL, id, sizeof(id));
    assert_int_equal(strncmp(id, "tandem.1.h", 10), 0);
    assert_non_null(strstr(id, "@localhost"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_long_headers_fold),
        cmocka_unit_test(test_header_injection_refused),
        cmocka_unit_test(test_extra_headers),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_text_only_and_generated_text),
        cmocka_unit_test(test_inline_images),
        cmocka_unit_test(test_unsubscribe_variants),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_message_id_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
