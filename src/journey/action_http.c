/* Custom HTTP actions with libcurl: credentials from the server's
 * configuration (never from journeys), retries with exponential back-off
 * (none after 401, 403 or 404), a per-host cap (calls per minute beyond it
 * are not made: status "capped") and a per-host throttle (calls spaced out
 * to a rate), and the declared response shape (only declared fields are
 * kept, each checked against its type). Runs on the engine's action
 * threads, outside any store transaction. */
#include "journey/engine_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

#define MAX_RESPONSE     (1024 * 1024) /* bytes read from a response */
#define MAX_UNDECLARED   (64 * 1024)   /* kept without a declared shape */
#define MAX_THROTTLE_MS  60000         /* longest a throttled call waits */
#define BACKOFF_FIRST_MS 200

typedef struct auth {
    char *name;
    char *header; /* "Authorization: ..." */
} auth_t;

typedef struct host {
    char *name;
    int64_t window_start_ms;
    int calls_in_window;
    int64_t next_slot_ms;
    struct host *next;
} host_t;

struct td_journey_http {
    auth_t *auths;
    int n_auths;
    pthread_mutex_t mu;
    host_t *hosts;
};

int td_journey__http_new(const char *const *auth, int n_auth, td_journey_http_t **out,
                         td_err_t *err)
{
    td_journey_http_t *h = td_xcalloc(1, sizeof(*h));

    *out = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&h->mu, NULL);
    h->auths = td_xcalloc((size_t)n_auth + 1, sizeof(auth_t));
    for (int i = 0; i < n_auth; i++) {
        const char *e = auth[i], *eq = strchr(e, '='), *colon = eq ? strchr(eq, ':') : NULL;
        if (eq == NULL || eq == e || colon == NULL || colon[1] == '\0') {
            td_journey__http_free(h);
            return td_err_set(err, TD_EINVAL, "action_auth",
                              "setting \"action_auth\" entry %d must be NAME=bearer:TOKEN or "
                              "NAME=basic:USER:PASSWORD",
                              i + 1);
        }
        td_buf_t b = TD_BUF_INIT;
        size_t kind_len = (size_t)(colon - eq - 1);
        if (kind_len == 6 && strncmp(eq + 1, "bearer", 6) == 0) {
            td_buf_addf(&b, "Authorization: Bearer %s", colon + 1);
        } else if (kind_len == 5 && strncmp(eq + 1, "basic", 5) == 0 && strchr(colon + 1, ':')) {
            size_t len = strlen(colon + 1);
            unsigned char *enc = td_xmalloc(4 * ((len + 2) / 3) + 1);
            EVP_EncodeBlock(enc, (const unsigned char *)colon + 1, (int)len);
            td_buf_addf(&b, "Authorization: Basic %s", enc);
            free(enc);
        } else {
            td_journey__http_free(h);
            return td_err_set(err, TD_EINVAL, "action_auth",
                              "setting \"action_auth\" entry %d: the kind must be bearer "
                              "(NAME=bearer:TOKEN) or basic (NAME=basic:USER:PASSWORD)",
                              i + 1);
        }
        if (strpbrk(b.data, "\r\n")) {
            td_buf_release(&b);
            td_journey__http_free(h);
            return td_err_set(err, TD_EINVAL, "action_auth",
                              "setting \"action_auth\" entry %d holds a line break", i + 1);
        }
        h->auths[h->n_auths].name = td_xstrndup(e, (size_t)(eq - e));
        h->auths[h->n_auths++].header = td_buf_detach(&b);
    }
    *out = h;
    return TD_OK;
}

void td_journey__http_free(td_journey_http_t *h)
{
    if (h == NULL) {
        return;
    }
    for (int i = 0; i < h->n_auths; i++) {
        free(h->auths[i].name);
        OPENSSL_cleanse(h->auths[i].header, strlen(h->auths[i].header));
        free(h->auths[i].header);
    }
    free(h->auths);
    while (h->hosts) {
        host_t *x = h->hosts;
        h->hosts = x->next;
        free(x->name);
        free(x);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
    curl_global_cleanup();
}

bool td_journey__http_has_auth(const td_journey_http_t *h, const char *name)
{
    for (int i = 0; i < h->n_auths; i++) {
        if (strcmp(h->auths[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static const char *auth_header(const td_journey_http_t *h, const char *name)
{
    for (int i = 0; name && i < h->n_auths; i++) {
        if (strcmp(h->auths[i].name, name) == 0) {
            return h->auths[i].header;
        }
    }
    return NULL;
}

static int64_t now_wall(void)
{
    return td_wall_ms();
}

/* "scheme://host:port/..." -> "host:port" (lower case). */
static void url_host(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://");
    size_t n = 0;

    p = p ? p + 3 : url;
    const char *at = NULL;
    for (const char *q = p; *q && *q != '/' && *q != '?' && *q != '#'; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at) {
        p = at + 1;
    }
    while (p[n] && p[n] != '/' && p[n] != '?' && p[n] != '#' && n + 1 < len) {
        out[n] = (char)tolower((unsigned char)p[n]);
        n++;
    }
    out[n] = '\0';
}

/* Applies the host's cap and throttle: returns false when capped, else the
 * wall-clock time to wait before calling in *wait_ms. */
static bool take_slot(td_journey_http_t *h, const char *host, int cap, int throttle,
                      int64_t *wait_ms)
{
    int64_t now = now_wall();
    host_t *x;
    bool ok = true;

    *wait_ms = 0;
    if (cap <= 0 && throttle <= 0) {
        return true;
    }
    pthread_mutex_lock(&h->mu);
    for (x = h->hosts; x && strcmp(x->name, host) != 0; x = x->next) {
    }
    if (x == NULL) {
        x = td_xcalloc(1, sizeof(*x));
        x->name = td_xstrdup(host);
        x->window_start_ms = now;
        x->next = h->hosts;
        h->hosts = x;
    }
    if (cap > 0) {
        if (now - x->window_start_ms >= 60000) {
            x->window_start_ms = now;
            x->calls_in_window = 0;
        }
        if (x->calls_in_window >= cap) {
            ok = false;
        } else {
            x->calls_in_window++;
        }
    }
    if (ok && throttle > 0) {
        int64_t interval = 60000 / throttle;
        int64_t slot = x->next_slot_ms > now ? x->next_slot_ms : now;
        if (slot - now > MAX_THROTTLE_MS) {
            ok = false; /* the queue for this host is too long: treat as capped */
        } else {
            x->next_slot_ms = slot + interval;
            *wait_ms = slot - now;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

static bool nap(int64_t ms, const _Atomic bool *stopping)
{
    while (ms > 0 && !atomic_load(stopping)) {
        int64_t step = ms > 50 ? 50 : ms;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !atomic_load(stopping);
}

typedef struct body {
    td_buf_t buf;
    bool too_big;
} body_t;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    body_t *b = ctx;
    size_t len = size * n;

    if (b->buf.len + len > MAX_RESPONSE) {
        b->too_big = true;
        return 0;
    }
    td_buf_add(&b->buf, p, len);
    return len;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load((const _Atomic bool *)ctx) ? 1 : 0;
}

static bool type_ok(const json_t *v, const char *type)
{
    if (v == NULL || json_is_null(v) || strcmp(type, "any") == 0) {
        return true;
    }
    if (strcmp(type, "string") == 0) {
        return json_is_string(v);
    }
    if (strcmp(type, "number") == 0) {
        return json_is_number(v);
    }
    if (strcmp(type, "integer") == 0) {
        return json_is_integer(v);
    }
    if (strcmp(type, "boolean") == 0) {
        return json_is_boolean(v);
    }
    if (strcmp(type, "array") == 0) {
        return json_is_array(v);
    }
    return json_is_object(v);
}

/* Keeps the declared fields of a 2xx body; sets *error on a mismatch. */
static json_t *shape(const char *text, size_t len, const json_t *declared, char *error,
                     size_t error_len)
{
    json_t *body = len ? json_loadb(text, len, 0, NULL) : json_null();

    if (body == NULL) {
        snprintf(error, error_len, "the response is not JSON");
        return NULL;
    }
    if (declared == NULL) {
        if (len > MAX_UNDECLARED) {
            json_decref(body);
            snprintf(error, error_len, "response larger than %d bytes without a declared shape",
                     MAX_UNDECLARED);
            return NULL;
        }
        return body;
    }
    json_t *kept = json_object();
    const char *k;
    json_t *t;
    json_object_foreach((json_t *)declared, k, t)
    {
        json_t *v = json_object_get(body, k);
        if (!type_ok(v, json_string_value(t))) {
            snprintf(error, error_len, "response field \"%.64s\" is not of type %s", k,
                     json_string_value(t));
            json_decref(kept);
            json_decref(body);
            return NULL;
        }
        if (v) {
            json_object_set(kept, k, v);
        }
    }
    json_decref(body);
    return kept;
}

static struct curl_slist *build_headers(const json_t *payload, const char *auth, bool has_body,
                                        char *error, size_t error_len)
{
    struct curl_slist *list = NULL;
    const char *k;
    json_t *v;

    list = curl_slist_append(list, "Accept: application/json");
    if (has_body) {
        list = curl_slist_append(list, "Content-Type: application/json");
    }
    json_object_foreach(json_object_get(payload, "headers"), k, v)
    {
        char *text = td_journey__to_text(v);
        td_buf_t line = TD_BUF_INIT;
        if (strpbrk(text, "\r\n")) {
            snprintf(error, error_len, "header \"%.64s\" holds a line break", k);
            free(text);
            curl_slist_free_all(list);
            return NULL;
        }
        /* "Name:" alone would remove a header in libcurl; "Name;" sends it empty */
        td_buf_addf(&line, *text ? "%s: %s" : "%s;", k, text);
        list = curl_slist_append(list, line.data);
        td_buf_release(&line);
        free(text);
    }
    if (auth) {
        list = curl_slist_append(list, auth);
    }
    return list;
}

json_t *td_journey__http_call(td_journey_http_t *h, const json_t *payload,
                              const _Atomic bool *stopping)
{
    const char *url = json_string_value(json_object_get(payload, "url"));
    const char *method = json_string_value(json_object_get(payload, "method"));
    const char *auth_name = json_string_value(json_object_get(payload, "auth"));
    int64_t timeout_ms = json_integer_value(json_object_get(payload, "timeout_ms"));
    int retries = (int)json_integer_value(json_object_get(payload, "retries"));
    json_t *body_json = json_object_get(payload, "body");
    char host[256], error[256] = "";
    const char *status = "error";
    long http_status = 0;
    int attempts = 0;
    int64_t t0 = now_wall(), wait_ms;
    json_t *kept = NULL;
    body_t resp = { TD_BUF_INIT, false };
    char *body = NULL;

    if (url == NULL || method == NULL) {
        return json_pack("{s:s, s:b, s:i, s:s}", "status", "error", "ok", 0, "attempts", 0, "error",
                         "the action has no URL");
    }
    url_host(url, host, sizeof(host));
    const char *auth = auth_header(h, auth_name);
    if (auth_name && auth == NULL) {
        return json_pack("{s:s, s:b, s:i, s:s}", "status", "error", "ok", 0, "attempts", 0, "error",
                         "the action's auth is not configured (action_auth)");
    }
    if (!take_slot(h, host, (int)json_integer_value(json_object_get(payload, "cap_per_minute")),
                   (int)json_integer_value(json_object_get(payload, "throttle_per_minute")),
                   &wait_ms)) {
        td_log(TD_LOG_INFO, "journey", "action_capped host=%s", host);
        return json_pack("{s:s, s:b, s:i, s:s}", "status", "capped", "ok", 0, "attempts", 0,
                         "error", "calls to this host are capped");
    }
    if (!nap(wait_ms, stopping)) {
        return json_pack("{s:s, s:b, s:i}", "status", "error", "ok", 0, "attempts", 0);
    }
    bool has_body = body_json != NULL && strcmp(method, "GET") != 0;
    if (has_body) {
        body = json_dumps(body_json, TD_JOURNEY_DUMP | JSON_ENCODE_ANY);
    }
    struct curl_slist *headers = build_headers(payload, auth, has_body, error, sizeof(error));
    if (headers == NULL) {
        free(body);
        return json_pack("{s:s, s:b, s:i, s:s}", "status", "error", "ok", 0, "attempts", 0, "error",
                         error);
    }
    CURL *curl = curl_easy_init();
    for (;;) {
        attempts++;
        td_buf_reset(&resp.buf);
        resp.too_big = false;
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "tandem-journeys");
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)stopping);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        if (has_body) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        } else if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        }
        CURLcode cc = curl_easy_perform(curl);
        bool retry;
        http_status = 0;
        if (cc == CURLE_OK) {
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
            retry = http_status == 429 || http_status >= 500;
            status = NULL;
            error[0] = '\0';
        } else {
            retry = !atomic_load(stopping) && !resp.too_big;
            if (cc == CURLE_OPERATION_TIMEDOUT) {
                status = "timedout";
            } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                       cc == CURLE_COULDNT_RESOLVE_PROXY) {
                status = "unreachable";
            } else if (resp.too_big) {
                status = "invalid_response";
            } else {
                status = "error";
            }
            snprintf(error, sizeof(error), "%s",
                     resp.too_big ? "response larger than 1 MiB" : curl_easy_strerror(cc));
        }
        if (!retry || attempts > retries || atomic_load(stopping)) {
            break;
        }
        if (!nap((int64_t)BACKOFF_FIRST_MS << (attempts - 1), stopping)) {
            break;
        }
    }
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    free(body);

    char code[24];
    if (status == NULL) {
        snprintf(code, sizeof(code), "http_%ld", http_status);
        status = code;
        if (http_status >= 200 && http_status < 300) {
            kept = shape(resp.buf.data ? resp.buf.data : "", resp.buf.len,
                         json_object_get(payload, "response"), error, sizeof(error));
            if (kept == NULL) {
                status = "invalid_response";
            }
        } else if (resp.buf.len > 0) {
            /* keep a short text of the error body, for the history and conditions */
            snprintf(error, sizeof(error), "%.200s", resp.buf.data);
            for (char *c = error; *c; c++) {
                if ((unsigned char)*c < 0x20) {
                    *c = ' ';
                }
            }
        }
    }
    td_buf_release(&resp.buf);
    bool ok = kept != NULL;
    json_t *r = json_pack("{s:s, s:b, s:i, s:I}", "status", status, "ok", ok, "attempts", attempts,
                          "duration_ms", (json_int_t)(now_wall() - t0));
    if (http_status) {
        json_object_set_new(r, "http_status", json_integer(http_status));
    }
    if (error[0]) {
        json_t *e = json_string(error);
        json_object_set_new(r, "error", e ? e : json_string("(not UTF-8)"));
    }
    if (kept) {
        /* the response's fields are also reachable directly: actions.recs.items */
        if (json_is_object(kept)) {
            const char *k;
            json_t *v;
            json_object_foreach(kept, k, v)
            {
                if (json_object_get(r, k) == NULL) {
                    json_object_set(r, k, v);
                }
            }
        }
        json_object_set_new(r, "response", kept);
    }
    td_log(TD_LOG_INFO, "journey", "action_call host=%s status=%s attempts=%d", host, status,
           attempts);
    return r;
}
