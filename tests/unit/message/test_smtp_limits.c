/* The SMTP sender's pure parts: the token-bucket rate limits (global and
 * per recipient domain) on a made-up clock, and the mapping of libcurl's
 * result and the SMTP reply code to the four outcomes. */
#include "test.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "message/message.h"

static void test_unlimited(void **state)
{
    td_ratelimit_t *rl = td_ratelimit_new(0, 0);
    (void)state;

    for (int i = 0; i < 10000; i++) {
        assert_int_equal(td_ratelimit_take(rl, "example.com", 0), 0);
    }
    td_ratelimit_free(rl);
}

static void test_global_rate(void **state)
{
    /* 120 a minute: a burst of 2, then one every 500 ms */
    td_ratelimit_t *rl = td_ratelimit_new(120, 0);
    int64_t now = 1000000;
    (void)state;

    assert_int_equal(td_ratelimit_take(rl, "a.example", now), 0);
    assert_int_equal(td_ratelimit_take(rl, "b.example", now), 0);
    assert_int_equal(td_ratelimit_take(rl, "c.example", now), 500);
    /* asking again takes nothing */
    assert_int_equal(td_ratelimit_take(rl, "c.example", now), 500);
    assert_int_equal(td_ratelimit_take(rl, "c.example", now + 499), 1);
    assert_int_equal(td_ratelimit_take(rl, "c.example", now + 500), 0);
    assert_int_equal(td_ratelimit_take(rl, "c.example", now + 500), 500);
    /* a long pause fills the bucket up to the burst, not beyond */
    now += 3600 * 1000;
    assert_int_equal(td_ratelimit_take(rl, "a.example", now), 0);
    assert_int_equal(td_ratelimit_take(rl, "a.example", now), 0);
    assert_true(td_ratelimit_take(rl, "a.example", now) > 0);
    td_ratelimit_free(rl);
}

static void test_sustained_rate(void **state)
{
    /* 7 a minute (not a divisor of 60000 ms): over ten minutes, following
     * the waits it returns, the limiter lets through the burst plus 70
     * (less one, as whole milliseconds round each wait up) */
    td_ratelimit_t *rl = td_ratelimit_new(7, 0);
    int64_t now = 0, end = 10 * 60000;
    int sent = 0;
    (void)state;

    while (now <= end) {
        int64_t w = td_ratelimit_take(rl, "x.example", now);
        if (w == 0) {
            sent++;
        } else {
            now += w;
        }
    }
    assert_in_range(sent, 70, 1 + 70);
    /* 120 a minute divides evenly: exactly the burst of 2 plus 1200 */
    td_ratelimit_free(rl);
    rl = td_ratelimit_new(120, 0);
    for (now = 0, sent = 0; now <= end;) {
        int64_t w = td_ratelimit_take(rl, "x.example", now);
        if (w == 0) {
            sent++;
        } else {
            now += w;
        }
    }
    assert_int_equal(sent, 2 + 1200);
    td_ratelimit_free(rl);
}

static void test_per_domain(void **state)
{
    /* per domain 60 a minute (burst 1), global unlimited */
    td_ratelimit_t *rl = td_ratelimit_new(0, 60);
    (void)state;

    assert_int_equal(td_ratelimit_take(rl, "gmail.com", 0), 0);
    assert_int_equal(td_ratelimit_take(rl, "gmail.com", 0), 1000);
    /* other domains are not held back by gmail.com */
    assert_int_equal(td_ratelimit_take(rl, "yahoo.com", 0), 0);
    /* domains compare without case */
    assert_int_equal(td_ratelimit_take(rl, "GMail.COM", 10), 990);
    assert_int_equal(td_ratelimit_take(rl, "gmail.com", 1000), 0);
    td_ratelimit_free(rl);
}

static void test_both_limits(void **state)
{
    /* global 120/min (burst 2), domain 60/min (burst 1) */
    td_ratelimit_t *rl = td_ratelimit_new(120, 60);
    (void)state;

    assert_int_equal(td_ratelimit_take(rl, "a.example", 0), 0);
    /* the domain says wait; the global token is not spent by the refusal */
    assert_int_equal(td_ratelimit_take(rl, "a.example", 0), 1000);
    assert_int_equal(td_ratelimit_take(rl, "b.example", 0), 0);
    /* now the global bucket is empty too */
    assert_int_equal(td_ratelimit_take(rl, "c.example", 0), 500);
    td_ratelimit_free(rl);
}

static void test_many_domains(void **state)
{
    td_ratelimit_t *rl = td_ratelimit_new(0, 60);
    char d[64];
    (void)state;

    /* more domains than buckets: idle ones are dropped, busy ones kept */
    for (int i = 0; i < TD_RATELIMIT_MAX_DOMAINS * 3; i++) {
        snprintf(d, sizeof(d), "d%d.example", i);
        assert_int_equal(td_ratelimit_take(rl, d, (int64_t)i * 2000), 0);
    }
    /* the last one is still limited */
    assert_true(td_ratelimit_take(rl, d, (int64_t)(TD_RATELIMIT_MAX_DOMAINS * 3 - 1) * 2000) > 0);
    /* and all busy at once: still answers */
    for (int i = 0; i < TD_RATELIMIT_MAX_DOMAINS + 10; i++) {
        snprintf(d, sizeof(d), "busy%d.example", i);
        (void)td_ratelimit_take(rl, d, 100000000);
    }
    td_ratelimit_free(rl);
}

static void test_clock_going_back(void **state)
{
    td_ratelimit_t *rl = td_ratelimit_new(60, 60);
    (void)state;

    assert_int_equal(td_ratelimit_take(rl, "a.example", 5000), 0);
    /* an earlier time gives nothing back, and never a negative wait */
    assert_true(td_ratelimit_take(rl, "a.example", 0) > 0);
    assert_true(td_ratelimit_take(rl, "a.example", INT64_MIN + 1) > 0);
    assert_int_equal(td_ratelimit_take(rl, "a.example", 6000), 0);
    /* huge rates and times do not overflow */
    td_ratelimit_t *big = td_ratelimit_new(INT64_MAX, INT64_MAX);
    assert_int_equal(td_ratelimit_take(big, "a", INT64_MAX - 1), 0);
    assert_int_equal(td_ratelimit_take(big, "a", 0), 0);
    td_ratelimit_free(big);
    td_ratelimit_free(rl);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(td_smtp__classify(CURLE_OK, 250, true), TD_SMTP_ACCEPTED);
    /* RCPT refused */
    assert_int_equal(td_smtp__classify(CURLE_SEND_ERROR, 550, true), TD_SMTP_PERMFAIL);
    assert_int_equal(td_smtp__classify(CURLE_SEND_ERROR, 451, true), TD_SMTP_TEMPFAIL);
    assert_int_equal(td_smtp__classify(CURLE_SEND_ERROR, 452, true), TD_SMTP_TEMPFAIL);
    /* end of DATA refused */
    assert_int_equal(td_smtp__classify(CURLE_WEIRD_SERVER_REPLY, 554, true), TD_SMTP_PERMFAIL);
    assert_int_equal(td_smtp__classify(CURLE_WEIRD_SERVER_REPLY, 421, true), TD_SMTP_TEMPFAIL);
    /* before the transaction: the server or our setup, never a bounce */
    assert_int_equal(td_smtp__classify(CURLE_WEIRD_SERVER_REPLY, 554, false), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_LOGIN_DENIED, 535, false), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_LOGIN_DENIED, 535, true), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_COULDNT_CONNECT, 0, false), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_OPERATION_TIMEDOUT, 250, true), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_USE_SSL_FAILED, 250, false), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_PEER_FAILED_VERIFICATION, 0, false), TD_SMTP_CONNFAIL);
    /* the connection dropped mid-transaction after a 2xx */
    assert_int_equal(td_smtp__classify(CURLE_RECV_ERROR, 250, true), TD_SMTP_CONNFAIL);
    assert_int_equal(td_smtp__classify(CURLE_SEND_ERROR, 250, true), TD_SMTP_CONNFAIL);
    assert_string_equal(td_smtp_status_name(TD_SMTP_PERMFAIL), "permfail");
    assert_string_equal(td_smtp_status_name(TD_SMTP_TEMPFAIL), "tempfail");
}

static void test_conn_refuses_bad_input(void **state)
{
    td_smtp_options_t opt = { .url = "http://example.com" };
    td_smtp_conn_t *c = NULL;
    td_smtp_result_t res;
    td_err_t err = { 0 };
    (void)state;

    assert_int_equal(td_smtp_conn_open(&opt, &c, &err), TD_EINVAL);
    assert_null(c);
    opt.url = "smtp://127.0.0.1:1";
    opt.timeout_ms = 2000;
    assert_int_equal(td_smtp_conn_open(&opt, &c, &err), TD_OK);
    /* addresses are checked before anything is sent */
    assert_int_equal(td_smtp_conn_send(c, "a@b.example", "x\r\nRCPT TO:<y@z>", "m", 1, &res),
                     TD_SMTP_PERMFAIL);
    assert_int_equal(res.code, 0);
    /* nothing listens on port 1: a connection failure with no code */
    assert_int_equal(td_smtp_conn_send(c, "a@b.example", "c@d.example", "m\r\n", 3, &res),
                     TD_SMTP_CONNFAIL);
    assert_int_equal(res.code, 0);
    assert_true(strlen(res.reply) > 0);
    td_smtp_conn_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_global_rate),
        cmocka_unit_test(test_sustained_rate),
        cmocka_unit_test(test_per_domain),
        cmocka_unit_test(test_both_limits),
        cmocka_unit_test(test_many_domains),
        cmocka_unit_test(test_clock_going_back),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_conn_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
