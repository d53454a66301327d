/* Tracking tokens and links: round trips, forgery and tampering, expiry,
 * the rewrite of an HTML body's links, bot and proxy classification, and
 * the secret file. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "track/track.h"

static td_track_key_t key, other_key;

static int setup(void **state)
{
    (void)state;
    td_track_key_derive("0123456789abcdef0123456789abcdef", 32, &key);
    td_track_key_derive("another secret, another key!!!!!", 32, &other_key);
    return 0;
}

static td_track_token_t click_token(void)
{
    td_track_token_t t;

    memset(&t, 0, sizeof(t));
    t.kind = TD_TRACK_CLICK;
    t.issued_ms = 1795000000000LL;
    snprintf(t.message_id, sizeof(t.message_id), "tandem.42.email@shop.example");
    snprintf(t.email, sizeof(t.email), "jane@example.com");
    snprintf(t.journey, sizeof(t.journey), "cart-abandonment");
    snprintf(t.step, sizeof(t.step), "email");
    t.instance = 42;
    snprintf(t.label, sizeof(t.label), "item:SKU-1,slot:2");
    t.link = 3;
    snprintf(t.url, sizeof(t.url), "https://shop.example/p/SKU-1?utm_source=email&x=%%20");
    return t;
}

static char *encode(const td_track_token_t *t)
{
    td_buf_t b = TD_BUF_INIT;

    assert_int_equal(td_track_token_encode(&key, t, &b), TD_OK);
    return td_buf_detach(&b);
}

static void test_round_trip(void **state)
{
    td_track_token_t t = click_token(), back;
    char *tok = encode(&t);
    (void)state;

    /* url-safe alphabet only, no padding */
    assert_int_equal(
        strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        strlen(tok));
    assert_int_equal(td_track_token_decode(&key, tok, strlen(tok), &back), TD_OK);
    assert_int_equal(back.kind, TD_TRACK_CLICK);
    assert_int_equal(back.issued_ms, 1795000000000LL);
    assert_string_equal(back.message_id, t.message_id);
    assert_string_equal(back.email, t.email);
    assert_string_equal(back.journey, t.journey);
    assert_string_equal(back.step, t.step);
    assert_int_equal(back.instance, 42);
    assert_string_equal(back.label, t.label);
    assert_int_equal(back.link, 3);
    assert_string_equal(back.url, t.url);
    /* the address is not readable in the token */
    assert_null(strstr(tok, "jane"));
    /* deterministic: the same link is the same token */
    char *again = encode(&t);
    assert_string_equal(tok, again);
    free(again);
    free(tok);

    /* minimal tokens: an open with nothing but the kind and time */
    memset(&t, 0, sizeof(t));
    t.kind = TD_TRACK_OPEN;
    tok = encode(&t);
    assert_int_equal(td_track_token_decode(&key, tok, strlen(tok), &back), TD_OK);
    assert_int_equal(back.kind, TD_TRACK_OPEN);
    assert_string_equal(back.email, "");
    free(tok);
}

static void test_forgery_and_tampering(void **state)
{
    td_track_token_t t = click_token(), back;
    char *tok = encode(&t);
    size_t n = strlen(tok);
    (void)state;

    /* another key's token is refused */
    assert_int_equal(td_track_token_decode(&other_key, tok, n, &back), TD_EINVAL);
    assert_string_equal(back.url, ""); /* and nothing leaks out */
    /* every single-character change is refused */
    for (size_t i = 0; i < n; i++) {
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(td_track_token_decode(&key, tok, n, &back), TD_EINVAL);
        tok[i] = saved;
    }
    /* truncated, extended, padded, foreign characters */
    for (size_t cut = 0; cut < n; cut += 7) {
        assert_int_equal(td_track_token_decode(&key, tok, cut, &back), TD_EINVAL);
    }
    char *longer = malloc(n + 3);
    memcpy(longer, tok, n);
    memcpy(longer + n, "AA", 3);
    assert_int_equal(td_track_token_decode(&key, longer, n + 2, &back), TD_EINVAL);
    memcpy(longer + n, "==", 3);
    assert_int_equal(td_track_token_decode(&key, longer, n + 2, &back), TD_EINVAL);
    free(longer);
    assert_int_equal(td_track_token_decode(&key, "", 0, &back), TD_EINVAL);
    assert_int_equal(td_track_token_decode(&key, "a+b/c", 5, &back), TD_EINVAL);
    assert_int_equal(td_track_token_decode(&key, NULL, 0, &back), TD_EINVAL);
    /* the original still verifies */
    assert_int_equal(td_track_token_decode(&key, tok, n, &back), TD_OK);
    free(tok);
}

static void test_refused_when_made(void **state)
{
    td_track_token_t t = click_token();
    td_buf_t b = TD_BUF_INIT;
    (void)state;

    /* no open redirect to other schemes, nor header injection */
    snprintf(t.url, sizeof(t.url), "javascript:alert(1)");
    assert_int_equal(td_track_token_encode(&key, &t, &b), TD_EINVAL);
    snprintf(t.url, sizeof(t.url), "https://a.example/\r\nSet-Cookie: x=1");
    assert_int_equal(td_track_token_encode(&key, &t, &b), TD_EINVAL);
    snprintf(t.url, sizeof(t.url), "https://a.example/a b");
    assert_int_equal(td_track_token_encode(&key, &t, &b), TD_EINVAL);
    t.url[0] = '\0';
    assert_int_equal(td_track_token_encode(&key, &t, &b), TD_EINVAL);
    t = click_token();
    t.kind = (td_track_kind_t)'x';
    assert_int_equal(td_track_token_encode(&key, &t, &b), TD_EINVAL);
    t = click_token();
    memset(t.label, 'a', sizeof(t.label)); /* no terminator within the limit */
    assert_int_equal(td_track_token_encode(&key, &t, &b), TD_EINVAL);
    assert_int_equal(b.len, 0);
    td_buf_release(&b);
}

static void test_expiry(void **state)
{
    td_track_token_t t = click_token();
    (void)state;

    assert_false(td_track_token_expired(&t, t.issued_ms + 1000, 86400000));
    assert_false(td_track_token_expired(&t, t.issued_ms + 86400000, 86400000));
    assert_true(td_track_token_expired(&t, t.issued_ms + 86400001, 86400000));
    assert_false(td_track_token_expired(&t, t.issued_ms + 86400001LL * 10000, 0));
    /* the issue time survives the round trip at second precision */
    t.issued_ms = 1795000000999LL;
    char *tok = encode(&t);
    td_track_token_t back;
    assert_int_equal(td_track_token_decode(&key, tok, strlen(tok), &back), TD_OK);
    assert_int_equal(back.issued_ms, 1795000000000LL);
    free(tok);
}

static td_track_ctx_t ctx(void)
{
    td_track_ctx_t c = { .key = &key,
                         .base_url = "https://t.shop.example/",
                         .message_id = "tandem.42.email@shop.example",
                         .email = "jane@example.com",
                         .journey = "cart-abandonment",
                         .step = "email",
                         .instance = 42,
                         .now_ms = 1795000000000LL };
    return c;
}

/* Decodes the token of a tracked URL "https://t.shop.example/t/<k>/<token>". */
static td_track_token_t token_of(const char *url, size_t len)
{
    td_track_token_t t;
    const char *p = strstr(url, "/t/");

    assert_non_null(p);
    p += 5;
    assert_int_equal(td_track_token_decode(&key, p, len - (size_t)(p - url), &t), TD_OK);
    return t;
}

static void test_urls(void **state)
{
    td_track_ctx_t c = ctx();
    td_buf_t b = TD_BUF_INIT;
    (void)state;

    assert_int_equal(td_track_click_url(&c, "https://shop.example/cart", "cart", 1, &b), TD_OK);
    assert_int_equal(strncmp(b.data, "https://t.shop.example/t/c/", 27), 0);
    td_track_token_t t = token_of(b.data, b.len);
    assert_int_equal(t.kind, TD_TRACK_CLICK);
    assert_string_equal(t.url, "https://shop.example/cart");
    td_buf_reset(&b);
    assert_int_equal(td_track_open_url(&c, &b), TD_OK);
    assert_int_equal(strncmp(b.data, "https://t.shop.example/t/o/", 27), 0);
    assert_int_equal(token_of(b.data, b.len).kind, TD_TRACK_OPEN);
    td_buf_reset(&b);
    assert_int_equal(td_track_unsubscribe_url(&c, &b), TD_OK);
    assert_int_equal(strncmp(b.data, "https://t.shop.example/t/u/", 27), 0);
    t = token_of(b.data, b.len);
    assert_int_equal(t.kind, TD_TRACK_UNSUB);
    assert_string_equal(t.email, "jane@example.com");
    /* a refused URL leaves the buffer as it was */
    td_buf_reset(&b);
    td_buf_adds(&b, "x");
    assert_int_equal(td_track_click_url(&c, "ftp://a.example/", NULL, 1, &b), TD_EINVAL);
    assert_string_equal(b.data, "x");
    td_buf_release(&b);
}

static char *rewrite(const char *html, int *n)
{
    td_track_ctx_t c = ctx();
    td_buf_t out = TD_BUF_INIT;

    assert_int_equal(td_track_rewrite_html(&c, html, strlen(html), &out, n), TD_OK);
    return td_buf_detach(&out);
}

/* The token of the nth tracked click link in html. */
static td_track_token_t nth_click(const char *html, int nth)
{
    const char *p = html;

    for (int i = 0; i <= nth; i++) {
        p = strstr(p, "https://t.shop.example/t/c/");
        assert_non_null(p);
        if (i < nth) {
            p++;
        }
    }
    size_t len = strcspn(p, "\"");
    return token_of(p, len);
}

static void test_rewrite(void **state)
{
    int n = 0;
    (void)state;
    char *out = rewrite("<html><body>"
                        "<a href=\"https://shop.example/p/1?a=1&amp;b=2\" "
                        "data-label=\"item:SKU-1,slot:1\">Coat</a>"
                        "<A HREF='http://shop.example/p/2'>Sweat</A>"
                        "<a class=x href=https://shop.example/p/3>3</a>"
                        "<a href=\"mailto:help@shop.example\">mail</a>"
                        "<a href=\"#top\">top</a>"
                        "<a href=\"https://shop.example/keep\" data-track=\"off\">keep</a>"
                        "<a href=\"https://t.shop.example/t/u/abc\">unsub</a>"
                        "<abbr title=\"x\">x</abbr><a>no href</a>"
                        "<!-- <a href=\"https://shop.example/comment\">c</a> -->"
                        "<script>var s = '<a href=\"https://shop.example/js\">';</script>"
                        "</BODY></html>",
                        &n);

    assert_int_equal(n, 3);
    td_track_token_t t = nth_click(out, 0);
    assert_string_equal(t.url, "https://shop.example/p/1?a=1&b=2"); /* entities decoded */
    assert_string_equal(t.label, "item:SKU-1,slot:1");
    assert_int_equal(t.link, 1);
    assert_string_equal(t.email, "jane@example.com");
    assert_int_equal(t.instance, 42);
    t = nth_click(out, 1);
    assert_string_equal(t.url, "http://shop.example/p/2");
    assert_string_equal(t.label, "link:2");
    t = nth_click(out, 2);
    assert_string_equal(t.url, "https://shop.example/p/3");
    assert_int_equal(t.link, 3);
    /* the rest is untouched */
    assert_non_null(strstr(out, "data-label=\"item:SKU-1,slot:1\">Coat</a>"));
    assert_non_null(strstr(out, "<a href=\"mailto:help@shop.example\">mail</a>"));
    assert_non_null(strstr(out, "<a href=\"#top\">top</a>"));
    assert_non_null(strstr(out, "<a href=\"https://shop.example/keep\" data-track=\"off\">"));
    assert_non_null(strstr(out, "<a href=\"https://t.shop.example/t/u/abc\">"));
    assert_non_null(strstr(out, "<!-- <a href=\"https://shop.example/comment\">c</a> -->"));
    assert_non_null(strstr(out, "<a href=\"https://shop.example/js\">"));
    assert_non_null(strstr(out, "<a class=x href=\"https://t.shop.example/t/c/"));
    /* the pixel, right before </BODY> */
    const char *px = strstr(out, "<img src=\"https://t.shop.example/t/o/");
    assert_non_null(px);
    assert_non_null(strstr(px, "\"></BODY></html>"));
    assert_int_equal(token_of(px + 10, strcspn(px + 10, "\"")).kind, TD_TRACK_OPEN);
    free(out);
}

static void test_rewrite_nasty_input(void **state)
{
    int n = -1;
    (void)state;
    /* no </body>: the pixel goes at the end */
    char *out = rewrite("<p>plain", &n);
    assert_int_equal(n, 0);
    assert_int_equal(strncmp(out, "<p>plain<img src=\"https://t.shop.example/t/o/", 45), 0);
    free(out);
    /* a tag that never ends is copied as it is */
    out = rewrite("<a href=\"https://x.example/", &n);
    assert_int_equal(n, 0);
    assert_int_equal(strncmp(out, "<a href=\"https://x.example/<img", 31), 0);
    free(out);
    out = rewrite("<a href=", &n);
    assert_int_equal(n, 0);
    free(out);
    out = rewrite("<a", &n);
    free(out);
    out = rewrite("", &n);
    assert_int_equal(n, 0);
    free(out);
    /* odd URLs: white space trimmed, spaces and non-ASCII percent-encoded */
    out = rewrite("<a href=\"  https://x.example/caf\xc3\xa9 au lait \">x</a>", &n);
    assert_int_equal(n, 1);
    assert_string_equal(nth_click(out, 0).url, "https://x.example/caf%C3%A9%20au%20lait");
    free(out);
    /* numeric references */
    out = rewrite("<a href=\"https://x.example/?a=1&#38;b=&#x32;\">x</a>", &n);
    assert_string_equal(nth_click(out, 0).url, "https://x.example/?a=1&b=2");
    free(out);
    /* a too long URL is left alone */
    char *big = malloc(TD_TRACK_MAX_URL + 64);
    int k = snprintf(big, 40, "<a href=\"https://x.example/");
    memset(big + k, 'a', TD_TRACK_MAX_URL);
    memcpy(big + k + TD_TRACK_MAX_URL, "\">x</a>", 8);
    out = rewrite(big, &n);
    assert_int_equal(n, 0);
    free(out);
    free(big);
    /* at most TD_TRACK_MAX_LINKS links are tracked */
    td_buf_t many = TD_BUF_INIT;
    for (int i = 0; i < TD_TRACK_MAX_LINKS + 5; i++) {
        td_buf_addf(&many, "<a href=\"https://x.example/%d\">%d</a>", i, i);
    }
    out = rewrite(many.data, &n);
    assert_int_equal(n, TD_TRACK_MAX_LINKS);
    assert_non_null(strstr(out, "<a href=\"https://x.example/504\">"));
    free(out);
    td_buf_release(&many);
}

static void test_classify(void **state)
{
    const int64_t sent = 1795000000000LL, later = sent + 3600000;
    const char *why = NULL;
    (void)state;

    assert_int_equal(td_track_classify(TD_TRACK_OPEN,
                                       "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
                                       "AppleWebKit/605.1.15 (KHTML, like Gecko)",
                                       sent, later, &why),
                     TD_TRACK_HUMAN);
    assert_int_equal(td_track_classify(TD_TRACK_OPEN, "Mozilla/5.0", sent, later, &why),
                     TD_TRACK_PROXY);
    assert_string_equal(why, "apple mail privacy protection");
    assert_int_equal(td_track_classify(TD_TRACK_OPEN,
                                       "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                                       "(via ggpht.com GoogleImageProxy)",
                                       sent, later, &why),
                     TD_TRACK_PROXY);
    assert_string_equal(why, "gmail image proxy");
    assert_int_equal(td_track_classify(TD_TRACK_OPEN, "YahooMailProxy; https://help.yahoo.com",
                                       sent, later, &why),
                     TD_TRACK_PROXY);
    assert_int_equal(td_track_classify(TD_TRACK_CLICK, "Python-urllib/3.11", sent, later, &why),
                     TD_TRACK_BOT);
    assert_int_equal(
        td_track_classify(TD_TRACK_CLICK, "Barracuda Sentinel (EE)", sent, later, &why),
        TD_TRACK_BOT);
    assert_int_equal(td_track_classify(TD_TRACK_CLICK, NULL, sent, later, &why), TD_TRACK_BOT);
    assert_int_equal(td_track_classify(TD_TRACK_CLICK, "", sent, later, NULL), TD_TRACK_BOT);
    /* a browser, but seconds after sending: a security gateway's scan */
    assert_int_equal(td_track_classify(TD_TRACK_CLICK, "Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
                                       sent, sent + 2000, &why),
                     TD_TRACK_BOT);
    assert_string_equal(why, "within seconds of sending");
    assert_int_equal(td_track_classify(TD_TRACK_CLICK, "Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
                                       sent, sent + TD_TRACK_SCANNER_MS, &why),
                     TD_TRACK_HUMAN);
    /* unsubscribe POSTs come from mail providers: never flagged */
    assert_int_equal(td_track_classify(TD_TRACK_UNSUB, NULL, sent, sent, &why), TD_TRACK_HUMAN);
    assert_string_equal(td_track_agent_name(TD_TRACK_PROXY), "proxy");
}

static void test_secret_file(void **state)
{
    char dir[] = "tmp-track-XXXXXX", path[64];
    td_track_key_t a, b;
    td_err_t err = { 0 };
    struct stat st;
    (void)state;

    assert_non_null(mkdtemp(dir));
    /* generated once, mode 0600, and read back the same */
    assert_int_equal(td_track_secret_load(NULL, dir, &a, &err), TD_OK);
    snprintf(path, sizeof(path), "%s/track.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(td_track_secret_load("", dir, &b, &err), TD_OK);
    assert_memory_equal(&a, &b, sizeof(a));
    /* an explicit file; too short is refused */
    assert_int_equal(td_track_secret_load(path, NULL, &b, &err), TD_OK);
    assert_memory_equal(&a, &b, sizeof(a));
    FILE *f = fopen(path, "w");
    fputs("short\n", f);
    fclose(f);
    assert_int_equal(td_track_secret_load(path, NULL, &b, &err), TD_EINVAL);
    assert_string_equal(err.path, "track_secret_file");
    unlink(path);
    assert_int_equal(td_track_secret_load("no-such-dir/secret", NULL, &b, &err), TD_ENOTFOUND);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_forgery_and_tampering),
        cmocka_unit_test(test_refused_when_made),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_rewrite_nasty_input),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
