/* Recommendations over HTTP: criteria management (PUT/GET/DELETE
 * /v1/criteria/{id}, CUSTOM lists as CSV) and recommendation requests
 * (POST /v1/recommendations, or GET with query parameters). The work is
 * done by the recommendation service (recs_service.c). */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/banned.h"

#define MAX_CRITERIA_BODY (1 << 20)
#define MAX_CUSTOM_BODY   (64 << 20)

static td_recs_t *recs_of(td_http_req_t *req, td_app_t *app)
{
    if (app->recs == NULL) {
        td_http_reply_errorf(req, TD_EBUSY, "", "recommendations are not available");
    }
    return app->recs;
}

void td_api_criteria_list(td_http_req_t *req, void *ctx)
{
    td_recs_t *r = recs_of(req, ctx);

    if (r) {
        td_api__reply_doc(req, 200, json_pack("{s:o}", "criteria", td_recs_criteria_list(r)));
    }
}

/* Criteria and designs are stored documents with the same verbs. */
typedef struct doc_kind {
    const char *param, *what; /* URL parameter; the noun in messages */
    json_t *(*get)(td_recs_t *r, const char *key);
    int (*put)(td_recs_t *r, const char *key, const char *json, size_t len, bool *created,
               td_err_t *err);
    int (*del)(td_recs_t *r, const char *key);
} doc_kind_t;

static json_t *design_get(td_recs_t *r, const char *name)
{
    return td_recs_design_get(r, name, false);
}

static const doc_kind_t criteria_kind = { "id", "criteria", td_recs_criteria_get,
                                          td_recs_criteria_put, td_recs_criteria_delete };
static const doc_kind_t design_kind = { "name", "design", design_get, td_recs_design_put,
                                        td_recs_design_delete };

static void doc_get(td_http_req_t *req, void *ctx, const doc_kind_t *k)
{
    td_recs_t *r = recs_of(req, ctx);

    if (r == NULL) {
        return;
    }
    json_t *doc = k->get(r, td_http_param(req, k->param));
    if (doc == NULL) {
        td_http_reply_errorf(req, TD_ENOTFOUND, "", "no %s with this %s", k->what, k->param);
        return;
    }
    td_api__reply_doc(req, 200, doc);
}

static void doc_put(td_http_req_t *req, void *ctx, const doc_kind_t *k)
{
    td_recs_t *r = recs_of(req, ctx);
    const char *key = td_http_param(req, k->param);
    td_err_t err = { 0 };
    size_t len;
    const char *body = td_http_body(req, &len);
    bool created = false;
    int rc;

    if (r == NULL) {
        return;
    }
    if (len > MAX_CRITERIA_BODY) {
        td_http_reply_errorf(req, TD_ETOOBIG, "", "a %s is at most %d bytes", k->what,
                             MAX_CRITERIA_BODY);
        return;
    }
    if ((rc = k->put(r, key, body ? body : "", len, &created, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, created ? 201 : 200, k->get(r, key));
}

static void doc_delete(td_http_req_t *req, void *ctx, const doc_kind_t *k)
{
    td_recs_t *r = recs_of(req, ctx);

    if (r == NULL) {
        return;
    }
    if (k->del(r, td_http_param(req, k->param)) != TD_OK) {
        td_http_reply_errorf(req, TD_ENOTFOUND, "", "no %s with this %s", k->what, k->param);
        return;
    }
    td_http_reply(req, 204, "application/json", "", 0);
}

void td_api_criteria_get(td_http_req_t *req, void *ctx)
{
    doc_get(req, ctx, &criteria_kind);
}

void td_api_criteria_put(td_http_req_t *req, void *ctx)
{
    doc_put(req, ctx, &criteria_kind);
}

void td_api_criteria_delete(td_http_req_t *req, void *ctx)
{
    doc_delete(req, ctx, &criteria_kind);
}

void td_api_criteria_custom_put(td_http_req_t *req, void *ctx)
{
    td_recs_t *r = recs_of(req, ctx);
    td_err_t err = { 0 };
    size_t len;
    const char *body = td_http_body(req, &len);
    int n = 0, rc;

    if (r == NULL) {
        return;
    }
    if (len > MAX_CUSTOM_BODY) {
        td_http_reply_errorf(req, TD_ETOOBIG, "", "CUSTOM lists are at most %d bytes",
                             MAX_CUSTOM_BODY);
        return;
    }
    rc = td_recs_custom_put(r, td_http_param(req, "id"), body ? body : "", len, &n, &err);
    if (rc != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, json_pack("{s:s, s:i}", "customId", td_http_param(req, "id"), "keys", n));
}

static bool key_listed(const td_strlist_t *l, const char *key, size_t len)
{
    bool ok = false;

    /* every key is compared, whatever matched, so timing tells nothing */
    for (int i = 0; i < l->n; i++) {
        size_t klen = strlen(l->items[i]);
        ok |= klen == len && CRYPTO_memcmp(l->items[i], key, len) == 0;
    }
    return ok;
}

/* Recommendations read profiles: the admin key or a recs_key is needed (a
 * storefront back end gets a recs_key, which opens nothing else). */
static bool recs_auth(td_http_req_t *req, td_app_t *app)
{
    const char *auth = td_http_header(req, "Authorization");

    if (auth && strncmp(auth, "Bearer ", 7) == 0) {
        const char *key = auth + 7;
        size_t len = strlen(key);
        bool ok = key_listed(&app->cfg->admin_key, key, len);
        ok |= key_listed(&app->cfg->recs_key, key, len);
        if (ok && len > 0) {
            return true;
        }
    }
    td_http_add_header(req, "WWW-Authenticate", "Bearer");
    td_http_reply_errorf(req, TD_EAUTH, "", "the admin key or a recs_key is required");
    return false;
}

static void answer(td_http_req_t *req, td_app_t *app, const json_t *body)
{
    td_recs_t *r;
    td_err_t err = { 0 };
    json_t *out = NULL;
    int rc;

    if ((r = recs_of(req, app)) == NULL) {
        return;
    }
    if ((rc = td_recs_recommend(r, body, &out, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_recommendations_post(td_http_req_t *req, void *ctx)
{
    size_t len;
    const char *body = td_http_body(req, &len);
    json_error_t jerr;
    td_err_t err = { 0 };

    if (!recs_auth(req, ctx)) {
        return;
    }
    if (len > MAX_CRITERIA_BODY) {
        td_http_reply_errorf(req, TD_ETOOBIG, "", "a request is at most %d bytes",
                             MAX_CRITERIA_BODY);
        return;
    }
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        td_err_set_at(&err, TD_EINVAL, "", jerr.line, jerr.column, "%s", jerr.text);
        td_http_reply_error(req, TD_EINVAL, &err);
        return;
    }
    answer(req, ctx, doc);
    json_decref(doc);
}

/* Comma-separated ids as a JSON array. */
static json_t *split_ids(const char *s)
{
    json_t *arr = json_array();

    while (s && *s) {
        size_t n = strcspn(s, ",");
        if (n > 0) {
            json_array_append_new(arr, json_stringn(s, n));
        }
        s += n;
        s += *s == ',';
    }
    return arr;
}

/* GET /v1/recommendations?criteria=ID&key=&category=&cart=a,b&exclude=&count=
 * &ecid=|email=|customer_id= */
void td_api_recommendations_get(td_http_req_t *req, void *ctx)
{
    static const char *const strings[] = { "criteria", "key",   "category",
                                           "ecid",     "email", "customer_id" };
    json_t *doc;
    const char *v;

    if (!recs_auth(req, ctx)) {
        return;
    }
    doc = json_object();
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if ((v = td_http_query(req, strings[i])) != NULL) {
            json_object_set_new(doc, strings[i], json_string(v));
        }
    }
    if ((v = td_http_query(req, "cart")) != NULL) {
        json_object_set_new(doc, "cart", split_ids(v));
    }
    if ((v = td_http_query(req, "exclude")) != NULL) {
        json_object_set_new(doc, "exclude", split_ids(v));
    }
    if ((v = td_http_query(req, "count")) != NULL) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0') {
            td_http_reply_errorf(req, TD_EINVAL, "count", "count is an integer from 1 to 1000");
            json_decref(doc);
            return;
        }
        json_object_set_new(doc, "count", json_integer(n));
    }
    answer(req, ctx, doc);
    json_decref(doc);
}

/* Designs: PUT/GET/DELETE /v1/designs/{name}, GET /v1/designs. */
void td_api_designs_list(td_http_req_t *req, void *ctx)
{
    td_recs_t *r = recs_of(req, ctx);

    if (r) {
        td_api__reply_doc(req, 200, json_pack("{s:o}", "designs", td_recs_designs_list(r)));
    }
}

void td_api_design_get(td_http_req_t *req, void *ctx)
{
    doc_get(req, ctx, &design_kind);
}

void td_api_design_put(td_http_req_t *req, void *ctx)
{
    doc_put(req, ctx, &design_kind);
}

void td_api_design_delete(td_http_req_t *req, void *ctx)
{
    doc_delete(req, ctx, &design_kind);
}
