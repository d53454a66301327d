/* SMTP sending through libcurl: one connection object per libcurl easy
 * handle (so the SMTP session stays open between messages), the mapping
 * of what happened to the four outcomes the outbox acts on, and a pool that
 * lets several threads send at once within the rate limits. Building and
 * signing the message happen before (mime.c, dkim.c). */
#include "message/message.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/banned.h"

struct td_smtp_conn {
    CURL *curl;
    char *url, *user, *password, *ca_file;
    td_smtp_tls_t tls;
    long timeout_ms;
    /* the message being uploaded */
    const char *msg;
    size_t len, off;
    /* from the debug callback: the server's last reply line, and whether
     * the last command sent was part of the mail transaction */
    char last_reply[256];
    bool in_transaction;
    /* the first refusal (4xx/5xx) of this send: libcurl goes on to QUIT,
     * whose reply would otherwise hide it */
    char fail_reply[256];
    int fail_code;
    bool fail_in_transaction;
};

const char *td_smtp_status_name(td_smtp_status_t s)
{
    switch (s) {
    case TD_SMTP_ACCEPTED:
        return "accepted";
    case TD_SMTP_TEMPFAIL:
        return "tempfail";
    case TD_SMTP_PERMFAIL:
        return "permfail";
    case TD_SMTP_CONNFAIL:
        return "connfail";
    }
    return "unknown";
}

td_smtp_status_t td_smtp__classify(int curl_code, int smtp_code, bool in_transaction)
{
    if (curl_code == CURLE_OK) {
        /* libcurl only finishes when the end of DATA got a 2xx */
        return TD_SMTP_ACCEPTED;
    }
    switch (curl_code) {
    case CURLE_LOGIN_DENIED:    /* AUTH refused: our configuration, not the recipient */
    case CURLE_COULDNT_CONNECT: /* nothing listening, refused */
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED: /* STARTTLS required, not offered */
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return TD_SMTP_CONNFAIL;
    default:
        break;
    }
    /* a refusal before MAIL FROM (the greeting, EHLO, STARTTLS) is about
     * the server or us, not about this message */
    if (!in_transaction) {
        return TD_SMTP_CONNFAIL;
    }
    /* MAIL FROM, RCPT TO or the end of DATA was refused: the reply code
     * says whether for now (4xx) or for good (5xx) */
    if (smtp_code >= 400 && smtp_code < 500) {
        return TD_SMTP_TEMPFAIL;
    }
    if (smtp_code >= 500 && smtp_code < 600) {
        return TD_SMTP_PERMFAIL;
    }
    return TD_SMTP_CONNFAIL;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ctx)
{
    td_smtp_conn_t *c = ctx;
    size_t room = size * nitems, n = c->len - c->off;

    n = n < room ? n : room;
    memcpy(buf, c->msg + c->off, n);
    c->off += n;
    return n;
}

/* Keeps the server's last reply line: libcurl only hands out its code. */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ctx)
{
    td_smtp_conn_t *c = ctx;
    size_t n = 0;

    (void)h;
    if (type == CURLINFO_HEADER_OUT) {
        /* only the verb is looked at: AUTH lines carry credentials */
        c->in_transaction =
            (size >= 4 && (strncasecmp(data, "MAIL", 4) == 0 || strncasecmp(data, "RCPT", 4) == 0 ||
                           strncasecmp(data, "DATA", 4) == 0));
        return 0;
    }
    if (type != CURLINFO_HEADER_IN) {
        return 0;
    }
    while (n < size && n < sizeof(c->last_reply) - 1 && data[n] != '\r' && data[n] != '\n') {
        char ch = data[n];
        c->last_reply[n++] = ch >= 32 && ch < 127 ? ch : '?';
    }
    c->last_reply[n] = '\0';
    if (c->fail_code == 0 && n >= 3 && (data[0] == '4' || data[0] == '5') && data[1] >= '0' &&
        data[1] <= '9' && data[2] >= '0' && data[2] <= '9') {
        c->fail_code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
        c->fail_in_transaction = c->in_transaction;
        memcpy(c->fail_reply, c->last_reply, n + 1);
    }
    return 0;
}

int td_smtp_conn_open(const td_smtp_options_t *opt, td_smtp_conn_t **out, td_err_t *err)
{
    td_smtp_conn_t *c;

    *out = NULL;
    if (opt->url == NULL ||
        (strncasecmp(opt->url, "smtp://", 7) != 0 && strncasecmp(opt->url, "smtps://", 8) != 0)) {
        return td_err_set(err, TD_EINVAL, "smtp", "smtp must be an smtp:// or smtps:// URL");
    }
    if (strlen(opt->url) > 1000) {
        return td_err_set(err, TD_EINVAL, "smtp", "smtp URL is too long");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return td_err_set(err, TD_EIO, "smtp", "curl_global_init() failed");
    }
    c = td_xcalloc(1, sizeof(*c));
    if ((c->curl = curl_easy_init()) == NULL) {
        free(c);
        curl_global_cleanup();
        return td_err_set(err, TD_EIO, "smtp", "curl_easy_init() failed");
    }
    c->url = td_xstrdup(opt->url);
    c->user = opt->user && *opt->user ? td_xstrdup(opt->user) : NULL;
    c->password = opt->password ? td_xstrdup(opt->password) : NULL;
    c->ca_file = opt->ca_file && *opt->ca_file ? td_xstrdup(opt->ca_file) : NULL;
    c->tls = opt->tls;
    c->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 60000;
    *out = c;
    return TD_OK;
}

void td_smtp_conn_close(td_smtp_conn_t *c)
{
    if (c == NULL) {
        return;
    }
    curl_easy_cleanup(c->curl); /* sends QUIT on an open session */
    free(c->url);
    free(c->user);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
    }
    free(c->password);
    free(c->ca_file);
    free(c);
    curl_global_cleanup();
}

/* The options are set again before each transfer: curl_easy_reset is not
 * used, since it would forget the open connection's session. */
static void set_options(td_smtp_conn_t *c, struct curl_slist *rcpts, const char *mail_from)
{
    CURL *h = c->curl;
    bool implicit_tls = strncasecmp(c->url, "smtps://", 8) == 0;

    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 15000 ? c->timeout_ms : 15000L);
    if (!implicit_tls) {
        /* with a password, "try" means "require": credentials never go in
         * clear because a server (or someone in between) left STARTTLS out */
        bool require = c->tls == TD_SMTP_TLS_REQUIRE || (c->tls == TD_SMTP_TLS_TRY && c->user);
        curl_easy_setopt(h, CURLOPT_USE_SSL,
                         require                     ? (long)CURLUSESSL_ALL
                         : c->tls == TD_SMTP_TLS_OFF ? (long)CURLUSESSL_NONE
                                                     : (long)CURLUSESSL_TRY);
    }
    if (c->ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    }
    if (c->user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, c);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* feeds debug_cb; nothing is printed */
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, c);
}

td_smtp_status_t td_smtp_conn_send(td_smtp_conn_t *c, const char *mail_from, const char *rcpt,
                                   const char *msg, size_t len, td_smtp_result_t *res)
{
    char from[300];
    struct curl_slist *rcpts = NULL;
    long code = 0, connects = 0;
    CURLcode cc;

    memset(res, 0, sizeof(*res));
    if (!td_mime_addr_valid(mail_from) || !td_mime_addr_valid(rcpt)) {
        /* nothing was sent: a bad address is a permanent failure without
         * a server's word (code stays 0) */
        res->status = TD_SMTP_PERMFAIL;
        snprintf(res->reply, sizeof(res->reply), "invalid %s address",
                 td_mime_addr_valid(mail_from) ? "recipient" : "sender");
        return res->status;
    }
    snprintf(from, sizeof(from), "<%s>", mail_from);
    rcpts = curl_slist_append(NULL, rcpt);
    c->msg = msg;
    c->len = len;
    c->off = 0;
    c->last_reply[0] = '\0';
    c->in_transaction = false;
    c->fail_reply[0] = '\0';
    c->fail_code = 0;
    set_options(c, rcpts, from);
    cc = curl_easy_perform(c->curl);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_setopt(c->curl, CURLOPT_MAIL_RCPT, NULL);
    curl_slist_free_all(rcpts);
    c->msg = NULL;
    res->connects = (int)connects;
    if (c->fail_code != 0 && cc != CURLE_OK) {
        res->code = c->fail_code;
        res->status = td_smtp__classify((int)cc, c->fail_code, c->fail_in_transaction);
        snprintf(res->reply, sizeof(res->reply), "%s", c->fail_reply);
        return res->status;
    }
    res->code = (int)code;
    res->status = td_smtp__classify((int)cc, (int)code, c->in_transaction);
    if (res->status == TD_SMTP_CONNFAIL || c->last_reply[0] == '\0') {
        snprintf(res->reply, sizeof(res->reply), "%.60s%s%.190s", curl_easy_strerror(cc),
                 c->last_reply[0] ? ": " : "", c->last_reply);
    } else {
        snprintf(res->reply, sizeof(res->reply), "%s", c->last_reply);
    }
    return res->status;
}

/* ---- the pool ---------------------------------------------------------- */

struct td_smtp_pool {
    pthread_mutex_t lock;
    pthread_cond_t free_cond;
    td_smtp_conn_t **conns;
    bool *busy;
    int n;
    td_ratelimit_t *rl;
};

int td_smtp_pool_open(const td_smtp_pool_options_t *opt, td_smtp_pool_t **out, td_err_t *err)
{
    td_smtp_pool_t *p;
    int n = opt->senders < 1 ? 1 : opt->senders > 64 ? 64 : opt->senders;
    int rc;

    *out = NULL;
    p = td_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->free_cond, NULL);
    p->conns = td_xcalloc((size_t)n, sizeof(*p->conns));
    p->busy = td_xcalloc((size_t)n, sizeof(*p->busy));
    for (int i = 0; i < n; i++) {
        if ((rc = td_smtp_conn_open(&opt->smtp, &p->conns[i], err)) != TD_OK) {
            p->n = i;
            td_smtp_pool_close(p);
            return rc;
        }
    }
    p->n = n;
    p->rl = td_ratelimit_new(opt->per_min, opt->domain_per_min);
    *out = p;
    return TD_OK;
}

void td_smtp_pool_close(td_smtp_pool_t *p)
{
    if (p == NULL) {
        return;
    }
    for (int i = 0; i < p->n; i++) {
        td_smtp_conn_close(p->conns[i]);
    }
    free(p->conns);
    free(p->busy);
    td_ratelimit_free(p->rl);
    pthread_cond_destroy(&p->free_cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

td_smtp_status_t td_smtp_pool_send(td_smtp_pool_t *p, const char *mail_from, const char *rcpt,
                                   const char *msg, size_t len, td_smtp_result_t *res)
{
    const char *domain = td_mime_addr_domain(rcpt);
    int slot = -1;

    /* rate limits first, on real time: the SMTP server lives in it, even
     * when the application clock is virtual */
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int64_t wait = td_ratelimit_take(p->rl, domain, td_mono_us() / 1000);
        pthread_mutex_unlock(&p->lock);
        if (wait == 0) {
            break;
        }
        sleep_ms(wait);
    }
    pthread_mutex_lock(&p->lock);
    while (slot < 0) {
        for (int i = 0; i < p->n && slot < 0; i++) {
            if (!p->busy[i]) {
                slot = i;
            }
        }
        if (slot < 0) {
            pthread_cond_wait(&p->free_cond, &p->lock);
        }
    }
    p->busy[slot] = true;
    pthread_mutex_unlock(&p->lock);

    td_smtp_conn_send(p->conns[slot], mail_from, rcpt, msg, len, res);

    pthread_mutex_lock(&p->lock);
    p->busy[slot] = false;
    pthread_cond_signal(&p->free_cond);
    pthread_mutex_unlock(&p->lock);
    return res->status;
}
