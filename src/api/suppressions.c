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

#define MAX_PAGE   1000
#define MAX_IMPORT 100000

static bool ready(td_http_req_t *req, td_app_t *app)
{
    if (!td_store_messages_supported(app->store)) {
        td_http_reply_errorf(req, TD_EBUSY, NULL, "suppressions are not available on this store");
        return false;
    }
    return true;
}

static int add_keys(td_app_t *app, td_suppress_entry_t *entries, int n, const char *source)
{
    td_store_conn_t *c = td_store_acquire(app->store);
    int64_t now = td_clock_now_ms(app->clock);
    int rc = td_store_begin(c);

    for (int i = 0; rc == TD_OK && i < n; i++) {
        td_store_suppression_t s = { .key = entries[i].key,
                                     .reason = entries[i].reason,
                                     .source = (char *)source,
                                     .created_ms = now };
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
    td_suppress_entry_t one;
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
    if (v == NULL || (addr && domain) ||
        !td_suppress_key_make(v, strlen(v), one.key, sizeof(one.key)) ||
        (addr && one.key[0] == '@') || (domain && one.key[0] != '@')) {
        td_http_reply_errorf(req, TD_EINVAL, addr ? "/address" : "/domain",
                             "give one of \"address\" (an email address) or \"domain\"");
        json_decref(doc);
        return;
    }
    if (r && !td_suppress_reason_valid(r)) {
        td_http_reply_errorf(req, TD_EINVAL, "/reason",
                             "a reason is 1 to 64 of a-z, 0-9, '_' or '-' (e.g. complaint)");
        json_decref(doc);
        return;
    }
    snprintf(one.reason, sizeof(one.reason), "%s", r ? r : "manual");
    json_decref(doc);
    if ((rc = add_keys(app, &one, 1, "api")) != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot store the suppression (%s)", td_strerror(rc));
        return;
    }
    td_api__reply_doc(req, 201, json_pack("{s:s, s:s}", "key", one.key, "reason", one.reason));
}

void td_api_suppression_delete(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *k = td_http_param(req, "key");
    char key[TD_SUPPRESS_KEY_MAX];
    int rc;

    if (!ready(req, app)) {
        return;
    }
    if (k == NULL || !td_suppress_key_make(k, strlen(k), key, sizeof(key))) {
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
    td_api__reply_doc(req, 200, json_pack("{s:s, s:b}", "key", key, "deleted", 1));
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
    td_api__reply_doc(req, 200, out);
}

/* CSV, one entry a line: key[,reason] (td_suppress_csv_parse); every bad
 * line is reported with its number, and nothing is stored when one is bad. */
void td_api_suppressions_import(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    size_t len;
    const char *body = td_http_body(req, &len);
    td_suppress_csv_t csv;
    int rc;

    if (!ready(req, app)) {
        return;
    }
    rc = td_suppress_csv_parse(body ? body : "", body ? len : 0, MAX_IMPORT, &csv);
    if (rc == TD_ETOOBIG) {
        td_http_reply_errorf(req, TD_ETOOBIG, NULL, "at most %d lines per import", MAX_IMPORT);
        goto out;
    }
    if (rc != TD_OK) {
        json_t *errors = json_array();
        for (int i = 0; i < csv.n_bad && i < TD_SUPPRESS_BAD_MAX; i++) {
            json_array_append_new(errors,
                                  json_pack("{s:i, s:s}", "line", csv.bad_lines[i], "message",
                                            "not an address or a domain, or a bad "
                                            "reason"));
        }
        json_t *e = json_pack("{s:s, s:s, s:i, s:o}", "code", "invalid", "message",
                              "some lines are not valid; nothing was imported", "line",
                              csv.bad_lines[0], "errors", errors);
        td_api__reply_doc(req, 400, json_pack("{s:o}", "error", e));
        goto out;
    }
    if ((rc = add_keys(app, csv.entries, csv.n, "import")) != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot store the suppressions (%s)", td_strerror(rc));
        goto out;
    }
    td_api__reply_doc(req, 200, json_pack("{s:i}", "imported", csv.n));
out:
    td_suppress_csv_release(&csv);
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
