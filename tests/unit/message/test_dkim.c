/* DKIM signing with libopendkim: the signature header's shape, what it
 * covers, determinism, and refusals. Its validity is checked by an
 * independent verifier (python3-dkim) in the black-box test. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "message/message.h"

static char *make_key_pem(int bits)
{
    EVP_PKEY *pk = EVP_RSA_gen((unsigned int)bits);
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *pem;
    long n;

    assert_non_null(pk);
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &data);
    pem = td_xstrndup(data, (size_t)n);
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return pem;
}

static int setup(void **state)
{
    *state = make_key_pem(2048);
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static char *sample(void)
{
    td_mime_message_t m = { .from_addr = "news@shop.example",
                            .to_addr = "jane@example.com",
                            .subject = "Your cart",
                            .text = "Hello\n",
                            .text_len = 6,
                            .message_id = "tandem.1.email@shop.example",
                            .unsubscribe_url = "https://t.shop.example/t/u/x",
                            .date_ms = 1795000000000LL };
    td_buf_t out = TD_BUF_INIT;
    td_err_t err = { 0 };

    assert_int_equal(td_mime_build(&m, &out, &err), TD_OK);
    return td_buf_detach(&out);
}

static void test_signature_shape(void **state)
{
    const char *pem = *state;
    td_dkim_t *d = NULL;
    td_err_t err = { 0 };
    td_buf_t sig = TD_BUF_INIT, sig2 = TD_BUF_INIT;
    char *msg = sample();

    assert_int_equal(td_dkim_open_mem("shop.example", "s1", pem, strlen(pem), &d, &err), TD_OK);
    assert_int_equal(td_dkim_sign(d, msg, strlen(msg), 1795000000000LL, &sig, &err), TD_OK);
    assert_int_equal(strncmp(sig.data, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53),
                     0);
    assert_non_null(strstr(sig.data, "d=shop.example;"));
    assert_non_null(strstr(sig.data, "s=s1;"));
    assert_non_null(strstr(sig.data, "t=1795000000;"));
    /* RFC 8058: both List-Unsubscribe fields are covered */
    assert_non_null(strstr(sig.data, "List-Unsubscribe:"));
    assert_non_null(strstr(sig.data, "List-Unsubscribe-Post:"));
    assert_non_null(strstr(sig.data, "From:"));
    assert_non_null(strstr(sig.data, "Subject:"));
    /* CRLF line endings only, ending the header */
    for (size_t i = 0; i < sig.len; i++) {
        if (sig.data[i] == '\n') {
            assert_int_equal(sig.data[i - 1], '\r');
        }
    }
    assert_int_equal(strcmp(sig.data + sig.len - 2, "\r\n"), 0);
    /* same message, same time: the same signature (a retry is the same bytes) */
    assert_int_equal(td_dkim_sign(d, msg, strlen(msg), 1795000000000LL, &sig2, &err), TD_OK);
    assert_string_equal(sig.data, sig2.data);
    td_buf_release(&sig);
    td_buf_release(&sig2);
    /* a message without From is refused */
    const char *nofrom = "Subject: x\r\n\r\nbody\r\n";
    assert_int_equal(td_dkim_sign(d, nofrom, strlen(nofrom), 0, &sig, &err), TD_EINVAL);
    const char *nobody = "From: a@b.c\r\nSubject: x\r\n";
    assert_int_equal(td_dkim_sign(d, nobody, strlen(nobody), 0, &sig, &err), TD_EINVAL);
    td_buf_release(&sig);
    td_dkim_close(d);
    free(msg);
}

static void test_refusals(void **state)
{
    const char *pem = *state;
    td_dkim_t *d = NULL;
    td_err_t err = { 0 };

    assert_int_equal(td_dkim_open_mem("shop.example", "s1", "not a key", 9, &d, &err), TD_EINVAL);
    assert_null(d);
    const char *broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert_int_equal(td_dkim_open_mem("shop.example", "s1", broken, strlen(broken), &d, &err),
                     TD_EINVAL);
    assert_int_equal(td_dkim_open_mem("shop example", "s1", pem, strlen(pem), &d, &err), TD_EINVAL);
    assert_string_equal(err.path, "dkim_domain");
    assert_int_equal(td_dkim_open_mem("shop.example", "s;1", pem, strlen(pem), &d, &err),
                     TD_EINVAL);
    assert_string_equal(err.path, "dkim_selector");
    assert_int_equal(td_dkim_open("shop.example", "s1", "no-such-dir/key.pem", &d, &err), TD_EIO);
    td_dkim_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_shape),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
