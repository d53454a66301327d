/* DKIM signing (RFC 6376) with libopendkim: a signer holds the library
 * handle, the private key, the domain and the selector; td_dkim_sign feeds
 * a finished message through libopendkim and returns the DKIM-Signature
 * header to put in front of it. Verification is not done here (the tests
 * use an independent verifier). */
#include "message/message.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>

#include "util/banned.h"

#define MAX_KEY_BYTES (64 * 1024)

/* The header fields we sign (see message.h for the why). libopendkim
 * keeps the pointer, so the list lives for the whole program. */
static const char *sign_headers[] = { "from",
                                      "reply-to",
                                      "to",
                                      "subject",
                                      "date",
                                      "message-id",
                                      "list-id",
                                      "list-unsubscribe",
                                      "list-unsubscribe-post",
                                      "mime-version",
                                      "content-type",
                                      NULL };

struct td_dkim {
    DKIM_LIB *lib;
    pthread_mutex_t lock; /* the t= time is a library option: one signature at a time */
    char *domain;
    char *selector;
    unsigned char *key; /* PEM, NUL-terminated */
};

static bool selector_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* Refuses an encrypted key instead of asking for a passphrase on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* The key is checked here rather than left to libopendkim, whose error
 * path for a bad key leaks, and whose messages say less. */
static int check_key(const char *pem, size_t len, td_err_t *err)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    int rc = TD_OK;

    if (pk == NULL) {
        rc = td_err_set(err, TD_EINVAL, "dkim_key",
                        "dkim key is not a readable PEM private key (encrypted keys are not "
                        "supported)");
    } else if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
        rc = td_err_set(err, TD_EINVAL, "dkim_key", "dkim key must be an RSA key");
    } else if (EVP_PKEY_get_bits(pk) < 1024) {
        /* RFC 8301: verifiers refuse keys below 1024 bits */
        rc = td_err_set(err, TD_EINVAL, "dkim_key",
                        "dkim key has %d bits; at least 1024 (2048 "
                        "recommended) are needed",
                        EVP_PKEY_get_bits(pk));
    }
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rc;
}

/* A domain name: LDH labels separated by single dots. */
static bool domain_ok(const char *s)
{
    char addr[300];

    if (strlen(s) > 253) {
        return false;
    }
    snprintf(addr, sizeof(addr), "x@%s", s);
    return td_mime_addr_valid(addr);
}

void td_dkim_close(td_dkim_t *d)
{
    if (d == NULL) {
        return;
    }
    if (d->lib) {
        dkim_close(d->lib);
    }
    pthread_mutex_destroy(&d->lock);
    free(d->domain);
    free(d->selector);
    if (d->key) {
        /* the private key does not linger in freed memory */
        memset(d->key, 0, strlen((char *)d->key));
    }
    free(d->key);
    free(d);
}

int td_dkim_open_mem(const char *domain, const char *selector, const char *key_pem, size_t key_len,
                     td_dkim_t **out, td_err_t *err)
{
    td_dkim_t *d;
    unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;
    td_buf_t probe = TD_BUF_INIT, sig = TD_BUF_INIT;
    int rc;

    *out = NULL;
    if (domain == NULL || !domain_ok(domain)) {
        return td_err_set(err, TD_EINVAL, "dkim_domain", "dkim domain \"%.100s\" is not a domain",
                          domain ? domain : "");
    }
    if (selector == NULL || !selector_ok(selector)) {
        return td_err_set(err, TD_EINVAL, "dkim_selector",
                          "dkim selector \"%.100s\" is not a DNS label", selector ? selector : "");
    }
    if (key_len == 0 || key_len > MAX_KEY_BYTES || memchr(key_pem, '\0', key_len) ||
        strstr(key_pem, "PRIVATE KEY-----") == NULL) {
        return td_err_set(err, TD_EINVAL, "dkim_key", "dkim key is not a PEM private key");
    }
    if ((rc = check_key(key_pem, key_len, err)) != TD_OK) {
        return rc;
    }
    d = td_xcalloc(1, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    d->domain = td_xstrdup(domain);
    d->selector = td_xstrdup(selector);
    d->key = (unsigned char *)td_xstrndup(key_pem, key_len);
    if ((d->lib = dkim_init(NULL, NULL)) == NULL) {
        td_dkim_close(d);
        return td_err_set(err, TD_EIO, "dkim_key", "dkim_init() failed");
    }
    if (dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
            DKIM_STAT_OK ||
        dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sign_headers, sizeof(char **)) !=
            DKIM_STAT_OK ||
        dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, sign_headers,
                     sizeof(char **)) != DKIM_STAT_OK) {
        td_dkim_close(d);
        return td_err_set(err, TD_EIO, "dkim_key", "dkim_options() refused the header list");
    }
    /* a bad key is found now, not at the first email */
    td_buf_adds(&probe, "From: probe@");
    td_buf_adds(&probe, domain);
    td_buf_adds(&probe, "\r\nSubject: probe\r\n\r\nprobe\r\n");
    rc = td_dkim_sign(d, probe.data, probe.len, 0, &sig, err);
    td_buf_release(&probe);
    td_buf_release(&sig);
    if (rc != TD_OK) {
        td_dkim_close(d);
        return rc;
    }
    *out = d;
    return TD_OK;
}

int td_dkim_open(const char *domain, const char *selector, const char *key_file, td_dkim_t **out,
                 td_err_t *err)
{
    FILE *f;
    char buf[MAX_KEY_BYTES + 1];
    size_t n;
    int rc;

    *out = NULL;
    if (key_file == NULL || (f = fopen(key_file, "rb")) == NULL) {
        return td_err_set(err, TD_EIO, "dkim_key", "cannot open dkim key \"%s\": %s",
                          key_file ? key_file : "", strerror(errno));
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > MAX_KEY_BYTES) {
        return td_err_set(err, TD_EINVAL, "dkim_key", "dkim key \"%s\" is too large", key_file);
    }
    rc = td_dkim_open_mem(domain, selector, buf, n, out, err);
    memset(buf, 0, n);
    return rc;
}

/* Feeds the header fields one by one (a field is its first line and the
 * continuation lines that start with white space, without the final CRLF)
 * and returns where the body starts. */
static int feed_headers(DKIM *dk, const char *msg, size_t len, size_t *body_off, td_err_t *err)
{
    size_t i = 0;
    bool from = false;

    while (i < len) {
        if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
            *body_off = i + 2;
            return from ? TD_OK : td_err_set(err, TD_EINVAL, "from", "message has no From");
        }
        size_t start = i;
        for (;;) {
            const char *nl = memchr(msg + i, '\n', len - i);
            i = nl ? (size_t)(nl - msg) + 1 : len;
            if (i >= len || (msg[i] != ' ' && msg[i] != '\t')) {
                break;
            }
        }
        size_t end = i;
        while (end > start && (msg[end - 1] == '\n' || msg[end - 1] == '\r')) {
            end--;
        }
        if (memchr(msg + start, ':', end - start) == NULL) {
            return td_err_set(err, TD_EINVAL, "message", "header line without a colon");
        }
        from = from || (end - start >= 5 && strncasecmp(msg + start, "from:", 5) == 0);
        if (dkim_header(dk, (u_char *)msg + start, end - start) != DKIM_STAT_OK) {
            return td_err_set(err, TD_EINVAL, "message", "dkim_header() refused a header: %s",
                              dkim_geterror(dk) ? dkim_geterror(dk) : "unknown");
        }
    }
    return td_err_set(err, TD_EINVAL, "message", "message has no body separator");
}

int td_dkim_sign(td_dkim_t *d, const char *msg, size_t len, int64_t now_ms, td_buf_t *out,
                 td_err_t *err)
{
    DKIM_STAT st = DKIM_STAT_OK;
    DKIM *dk = NULL;
    u_char *sig = NULL;
    size_t sig_len = 0, body_off = 0;
    uint64_t when = now_ms > 0 ? (uint64_t)(now_ms / 1000) : 0;
    bool testkey = false;
    int rc = TD_OK;

    pthread_mutex_lock(&d->lock);
    if (dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &when, sizeof(when)) !=
        DKIM_STAT_OK) {
        rc = td_err_set(err, TD_EIO, "dkim", "dkim_options(FIXEDTIME) failed");
        goto out;
    }
    dk = dkim_sign(d->lib, (const u_char *)"tandem", NULL, d->key, (const u_char *)d->selector,
                   (const u_char *)d->domain, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
                   DKIM_SIGN_RSASHA256, -1, &st);
    if (dk == NULL || st != DKIM_STAT_OK) {
        rc =
            td_err_set(err, TD_EINVAL, "dkim_key", "dkim_sign() failed: %s", dkim_getresultstr(st));
        goto out;
    }
    if ((rc = feed_headers(dk, msg, len, &body_off, err)) != TD_OK) {
        goto out;
    }
    if ((st = dkim_eoh(dk)) != DKIM_STAT_OK ||
        (len > body_off &&
         (st = dkim_body(dk, (u_char *)msg + body_off, len - body_off)) != DKIM_STAT_OK) ||
        (st = dkim_eom(dk, &testkey)) != DKIM_STAT_OK) {
        rc = td_err_set(err, TD_EINVAL, "dkim", "signing failed: %s (%s)", dkim_getresultstr(st),
                        dkim_geterror(dk) ? dkim_geterror(dk) : "no detail");
        goto out;
    }
    if ((st = dkim_getsighdr_d(dk, strlen("DKIM-Signature: "), &sig, &sig_len)) != DKIM_STAT_OK) {
        rc = td_err_set(err, TD_EINVAL, "dkim", "dkim_getsighdr_d() failed: %s",
                        dkim_getresultstr(st));
        goto out;
    }
    /* the folded value comes with bare LF line breaks: mail wants CRLF */
    td_buf_adds(out, "DKIM-Signature: ");
    for (size_t i = 0; i < sig_len; i++) {
        if (sig[i] == '\n' && (i == 0 || sig[i - 1] != '\r')) {
            td_buf_addc(out, '\r');
        }
        td_buf_addc(out, (char)sig[i]);
    }
    td_buf_adds(out, "\r\n");
out:
    if (dk) {
        dkim_free(dk);
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}
