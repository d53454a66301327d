/* The suppression list API (admin key): addresses and whole domains that
 * never get mail. GET /v1/suppressions (paged by key), POST
 * /v1/suppressions {address|domain, reason}, DELETE
 * /v1/suppressions/{key}, POST /v1/suppressions:import (CSV: key[,reason])
 * and GET /v1/suppressions:export (CSV). Keys are lower-case addresses, or
 * "@domain" for a domain. */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "message/message.h"
#include "util/banned.h"

#define MAX_PAGE       1000
#define MAX_IMPORT     100000
#define MAX_REASON_LEN 64

static void reply_json(td_http_req_t *req, int status, json_t *doc)
{
    td_buf_t out = TD_BUF_INIT;
    char *text = json_dumps(doc, JSON_COMPACT);

    td_buf_adds(&out, text ? text : "{}");
    free(text);
    json_decref(doc);
    td_http_reply_json(req, status, &out);
    td_buf_release(&out);
}

static bool ready(td_http_req_t *req, td_app_t *app)
{
    if (!td_store_messages_supported(app->store)) {
        td_http_reply_errorf(req, TD_EBUSY, NULL, "suppressions are not available on this store");
        return false;
    }
    return true;
}

/* An address or a domain (with or without '@') -> the stored key, lower
 * case; false when it is neither. */
static bool make_key(const char *s, size_t len, char *out, size_t out_len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++, len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) {
        len--;
    }
    if (len == 0 || len + 2 > out_len || len > 254) {
        return false;
    }
    bool domain = memchr(s, '@', len) == NULL || s[0] == '@';
    size_t o = 0;
    if (domain && s[0] != '@') {
        out[o++] = '@';
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((unsigned char)c <= ' ' || c == ',' || c == '"' || c == '<' || c == '>') {
            return false;
        }
        out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[o] = '\0';
    if (domain) {
        return o > 2 && strchr(out + 1, '@') == NULL && strchr(out + 1, '.') != NULL;
    }
    return td_mime_addr_valid(out);
}

static bool reason_valid(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n > MAX_REASON_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static int add_keys(td_app_t *app, char (*keys)[260], char (*reasons)[MAX_REASON_LEN + 1], int n,
                    const char *source)
{
    td_store_conn_t *c = td_store_acquire(app->store);
    int64_t now = td_clock_now_ms(app->clock);
    int rc = td_store_begin(c);

    for (int i = 0; rc == TD_OK && i < n; i++) {
        td_store_suppression_t s = {
            .key = keys[i], .reason = reasons[i], .source = (char *)source, .created_ms = now
        };
        rc = td_store_suppression_add(c, &s);
    }
    if (rc == TD_OK) {
        rc = td_store_commit(c);
    } else {
        td_store_rollback(c);
    }
    td_store_release(app->store, c);
    return rc;
}

void td_api_suppressions_post(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_error_t jerr;
    char key[1][260], reason[1][MAX_REASON_LEN + 1];
    td_err_t err = { 0 };
    int rc;

    if (!ready(req, app)) {
        return;
    }
    json_t *doc = json_loadb(body ? body : "", len, 0, &jerr);
    if (!json_is_object(doc)) {
        td_err_set_at(&err, TD_EINVAL, "", jerr.line, jerr.column, "%s",
                      doc ? "the body must be a JSON object" : jerr.text);
        td_http_reply_error(req, TD_EINVAL, &err);
        json_decref(doc);
        return;
    }
    const char *addr = json_string_value(json_object_get(doc, "address"));
    const char *domain = json_string_value(json_object_get(doc, "domain"));
    const char *r = json_string_value(json_object_get(doc, "reason"));
    const char *v = addr ? addr : domain;
    if (v == NULL || (addr && domain) || !make_key(v, strlen(v), key[0], sizeof(key[0])) ||
        (addr && key[0][0] == '@') || (domain && key[0][0] != '@')) {
        td_http_reply_errorf(req, TD_EINVAL, addr ? "/address" : "/domain",
                             "give one of \"address\" (an email address) or \"domain\"");
        json_decref(doc);
        return;
    }
    if (r && !reason_valid(r)) {
        td_http_reply_errorf(req, TD_EINVAL, "/reason",
                             "a reason is 1 to 64 of a-z, 0-9, '_' or '-' (e.g. complaint)");
        json_decref(doc);
        return;
    }
    snprintf(reason[0], sizeof(reason[0]), "%s", r ? r : "manual");
    json_decref(doc);
    if ((rc = add_keys(app, key, reason, 1, "api")) != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot store the suppression (%s)", td_strerror(rc));
        return;
    }
    reply_json(req, 201, json_pack("{s:s, s:s}", "key", key[0], "reason", reason[0]));
}

void td_api_suppression_delete(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *k = td_http_param(req, "key");
    char key[260];
    int rc;

    if (!ready(req, app)) {
        return;
    }
    if (k == NULL || !make_key(k, strlen(k), key, sizeof(key))) {
        td_http_reply_errorf(req, TD_EINVAL, "/key", "not an address or a domain");
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    if ((rc = td_store_begin(c)) == TD_OK) {
        if ((rc = td_store_suppression_delete(c, key)) == TD_OK) {
            rc = td_store_commit(c);
        } else {
            td_store_rollback(c);
        }
    }
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, rc == TD_ENOTFOUND ? "\"%s\" is not suppressed" : "%s",
                             rc == TD_ENOTFOUND ? key : td_strerror(rc));
        return;
    }
    reply_json(req, 200, json_pack("{s:s, s:b}", "key", key, "deleted", 1));
}

void td_api_suppressions_list(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *after = td_http_query(req, "after"), *lim = td_http_query(req, "limit");
    td_store_suppression_t *rows = NULL;
    long want = lim ? strtol(lim, NULL, 10) : 100;
    int n = 0, limit = want < 1 ? 1 : want > MAX_PAGE ? MAX_PAGE : (int)want, rc;

    if (!ready(req, app)) {
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_store_suppression_list(c, after ? after : "", limit, &rows, &n);
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot list suppressions (%s)", td_strerror(rc));
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I}", "key", rows[i].key, "reason",
                                              rows[i].reason, "source", rows[i].source,
                                              "created_ms", (json_int_t)rows[i].created_ms));
    }
    json_t *out = json_pack("{s:o}", "suppressions", list);
    if (n == limit) {
        json_object_set_new(out, "next", json_string(rows[n - 1].key));
    }
    td_store_suppressions_free(rows, n);
    reply_json(req, 200, out);
}

/* CSV, one entry a line: key[,reason]; a first line "address,reason" (or
 * any first line whose key is not valid) is a header. Every bad line is
 * reported with its number; nothing is stored when one is bad. */
void td_api_suppressions_import(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    size_t len;
    const char *body = td_http_body(req, &len), *p = body, *end = body + len;
    char(*keys)[260] = NULL;
    char(*reasons)[MAX_REASON_LEN + 1] = NULL;
    int n = 0, cap = 0, line = 0, rc;
    json_t *errors = json_array();

    if (!ready(req, app)) {
        json_decref(errors);
        return;
    }
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
        const char *comma = memchr(p, ',', (size_t)(eol - p));
        line++;
        if (eol - p > 0 && !(eol - p == 1 && *p == '\r')) {
            char key[260], reason[MAX_REASON_LEN + 1] = "import";
            size_t klen = (size_t)((comma ? comma : eol) - p);
            bool ok = make_key(p, klen, key, sizeof(key));
            if (ok && comma) {
                size_t rlen = (size_t)(eol - comma - 1);
                while (rlen > 0 && (comma[rlen] == '\r' || comma[rlen] == ' ')) {
                    rlen--;
                }
                if (rlen > 0) {
                    snprintf(reason, sizeof(reason), "%.*s",
                             (int)(rlen < MAX_REASON_LEN ? rlen : MAX_REASON_LEN), comma + 1);
                    ok = rlen <= MAX_REASON_LEN && reason_valid(reason);
                }
            }
            if (!ok && line > 1 && json_array_size(errors) < 100) {
                json_array_append_new(errors, json_pack("{s:i, s:s}", "line", line, "message",
                                                        "not an address or a domain, or a bad "
                                                        "reason"));
            } else if (ok) {
                if (n == MAX_IMPORT) {
                    td_http_reply_errorf(req, TD_ETOOBIG, NULL, "at most %d lines per import",
                                         MAX_IMPORT);
                    goto out;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    keys = td_xrealloc(keys, sizeof(*keys) * (size_t)cap);
                    reasons = td_xrealloc(reasons, sizeof(*reasons) * (size_t)cap);
                }
                memcpy(keys[n], key, sizeof(key));
                memcpy(reasons[n], reason, sizeof(reason));
                n++;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    if (json_array_size(errors) > 0) {
        json_t *e =
            json_pack("{s:s, s:s, s:i, s:O}", "code", "invalid", "message",
                      "some lines are not valid; nothing was imported", "line",
                      (int)json_integer_value(json_object_get(json_array_get(errors, 0), "line")),
                      "errors", errors);
        reply_json(req, 400, json_pack("{s:o}", "error", e));
        goto out;
    }
    if ((rc = add_keys(app, keys, reasons, n, "import")) != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot store the suppressions (%s)", td_strerror(rc));
        goto out;
    }
    reply_json(req, 200, json_pack("{s:i}", "imported", n));
out:
    json_decref(errors);
    free(keys);
    free(reasons);
}

void td_api_suppressions_export(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    td_buf_t out = TD_BUF_INIT;
    char after[300] = "";
    int rc = TD_OK;

    if (!ready(req, app)) {
        return;
    }
    td_buf_adds(&out, "key,reason,source,created_ms\r\n");
    td_store_conn_t *c = td_store_acquire(app->store);
    for (;;) {
        td_store_suppression_t *rows = NULL;
        int n = 0;
        if ((rc = td_store_suppression_list(c, after, MAX_PAGE, &rows, &n)) != TD_OK) {
            break;
        }
        for (int i = 0; i < n; i++) {
            td_buf_addf(&out, "%s,%s,%s,%lld\r\n", rows[i].key, rows[i].reason, rows[i].source,
                        (long long)rows[i].created_ms);
        }
        if (n > 0) {
            snprintf(after, sizeof(after), "%s", rows[n - 1].key);
        }
        td_store_suppressions_free(rows, n);
        if (n < MAX_PAGE) {
            break;
        }
    }
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot export suppressions (%s)", td_strerror(rc));
    } else {
        td_http_reply(req, 200, "text/csv; charset=utf-8", out.data, out.len);
    }
    td_buf_release(&out);
}
