/* The journeys API (admin key): PUT/GET/DELETE /v1/journeys/{id},
 * POST /v1/journeys/{id}:publish|pause|resume|stop, reports, instances,
 * a profile's instances, and the outbox for inspection. A definition that
 * is wrong is refused with every error, each with its JSON pointer. */
#include "api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profile/profile.h"
#include "util/banned.h"

static bool engine_ready(td_http_req_t *req, td_app_t *app)
{
    if (app->journeys == NULL) {
        td_http_reply_errorf(req, TD_EBUSY, NULL, "journeys are not available on this store");
        return false;
    }
    return true;
}

/* {"error": {"code": "invalid", "message", "path", "errors": [{path, message}...]}} */
static void reply_errors(td_http_req_t *req, int rc, const td_err_t *err,
                         const td_journey_errors_t *errs)
{
    json_t *e = json_pack("{s:s, s:s}", "code", td_strerror(rc), "message",
                          err->message[0] ? err->message : td_strerror(rc));

    if (errs->n > 0) {
        json_t *list = td_journey_errors_to_json(errs);
        json_object_set_new(e, "path", json_string(errs->items[0].path));
        if (errs->items[0].line > 0) {
            json_object_set_new(e, "line", json_integer(errs->items[0].line));
            json_object_set_new(e, "column", json_integer(errs->items[0].column));
        }
        json_object_set(e, "errors", json_object_get(list, "errors"));
        json_object_set(e, "truncated", json_object_get(list, "truncated"));
        json_decref(list);
    }
    td_api__reply_doc(req, td_http_status_for(rc), json_pack("{s:o}", "error", e));
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;

    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < 0) {
        return false;
    }
    *out = v;
    return true;
}

void td_api_journeys_list(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if ((rc = td_journey_list(app->journeys, &out, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_journey_get(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    const char *v = td_http_query(req, "version");
    int64_t version = 0;
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if (v && !parse_int(v, &version)) {
        td_http_reply_errorf(req, TD_EINVAL, "version", "version must be a whole number");
        return;
    }
    if ((rc = td_journey_get(app->journeys, td_http_param(req, "id"), version, &out, &err)) !=
        TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_journey_put(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    td_journey_errors_t *errs;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    errs = td_xcalloc(1, sizeof(*errs));
    rc = td_journey_put(app->journeys, td_http_param(req, "id"), body, len, &out, errs, &err);
    if (rc != TD_OK) {
        reply_errors(req, rc, &err, errs);
    } else {
        td_api__reply_doc(req,
                   json_is_true(json_object_get(out, "changed")) &&
                           json_integer_value(json_object_get(out, "version")) == 1
                       ? 201
                       : 200,
                   out);
    }
    free(errs);
}

void td_api_journey_validate(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    td_journey_errors_t *errs;
    size_t len;
    const char *body = td_http_body(req, &len);
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    errs = td_xcalloc(1, sizeof(*errs));
    rc = td_journey_validate(app->journeys, NULL, body, len, errs);
    if (rc != TD_OK) {
        td_err_set(&err, rc, "", "the definition has %d error%s", errs->n, errs->n == 1 ? "" : "s");
        reply_errors(req, rc, &err, errs);
    } else {
        td_api__reply_doc(req, 200, json_pack("{s:b}", "valid", 1));
    }
    free(errs);
}

void td_api_journey_delete(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if ((rc = td_journey_delete(app->journeys, td_http_param(req, "id"), &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, json_pack("{s:s, s:b}", "id", td_http_param(req, "id"), "deleted", 1));
}

static void control(td_http_req_t *req, td_app_t *app, const char *verb)
{
    td_err_t err = { 0 };
    int64_t version = 0;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if (len > 0) {
        /* publish takes an optional {"version": N} */
        json_t *doc = json_loadb(body, len, 0, NULL), *v = json_object_get(doc, "version");
        if (doc == NULL || !json_is_object(doc) ||
            (v && (!json_is_integer(v) || json_integer_value(v) < 1))) {
            json_decref(doc);
            td_http_reply_errorf(req, TD_EINVAL, "/version",
                                 "expected no body or {\"version\": N} with N >= 1");
            return;
        }
        version = v ? json_integer_value(v) : 0;
        json_decref(doc);
    }
    rc = td_journey_control(app->journeys, td_http_param(req, "id"), verb, version, &out, &err);
    if (rc != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_journey_publish(td_http_req_t *req, void *app)
{
    control(req, app, "publish");
}

void td_api_journey_pause(td_http_req_t *req, void *app)
{
    control(req, app, "pause");
}

void td_api_journey_resume(td_http_req_t *req, void *app)
{
    control(req, app, "resume");
}

void td_api_journey_stop(td_http_req_t *req, void *app)
{
    control(req, app, "stop");
}

void td_api_journey_report(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if ((rc = td_journey_report(app->journeys, td_http_param(req, "id"), &out, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    /* what became of the messages: sent, skipped by reason, opens, clicks,
     * conversions and revenue */
    json_t *msgs = td_api_messages_report(app->store, td_http_param(req, "id"));
    if (msgs) {
        json_object_set_new(out, "messages", msgs);
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_journey_instances(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    int64_t before = 0, limit = 100;
    const char *b = td_http_query(req, "before"), *l = td_http_query(req, "limit");
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if ((b && !parse_int(b, &before)) || (l && (!parse_int(l, &limit) || limit > 1000))) {
        td_http_reply_errorf(req, TD_EINVAL, b && !parse_int(b, &before) ? "before" : "limit",
                             "before and limit must be whole numbers (limit at most 1000)");
        return;
    }
    rc = td_journey_instances_list(app->journeys, td_http_param(req, "id"),
                                   td_http_query(req, "state"), before, (int)limit, &out, &err);
    if (rc != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_journey_instance(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    int64_t instance;
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if (!parse_int(td_http_param(req, "instance"), &instance)) {
        td_http_reply_errorf(req, TD_EINVAL, "instance", "an instance id is a whole number");
        return;
    }
    rc = td_journey_instance_get(app->journeys, td_http_param(req, "id"), instance, &out, &err);
    if (rc != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}

void td_api_profile_journeys(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *ns = td_http_param(req, "ns"), *id = td_http_param(req, "id");
    td_err_t err = { 0 };
    int64_t pid = 0, resolved = 0;
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if (!td_profile_ns_valid(ns)) {
        td_http_reply_errorf(req, TD_EINVAL, "ns",
                             "unknown identity namespace \"%s\" (use ecid, email or customer)", ns);
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_store_identity_find(c, ns, id, &pid);
    if (rc == TD_OK) {
        rc = td_store_profile_resolve(c, pid, &resolved);
    }
    td_store_release(app->store, c);
    if (rc == TD_ENOTFOUND) {
        td_http_reply_errorf(req, rc, "id", "no profile has %s \"%s\"", ns, id);
        return;
    }
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot read the profile (%s)", td_strerror(rc));
        return;
    }
    if ((rc = td_journey_profile_instances(app->journeys, resolved, &out, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    json_object_set_new(out, "profile_id", json_integer(resolved));
    td_api__reply_doc(req, 200, out);
}

void td_api_outbox_list(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_err_t err = { 0 };
    int64_t instance = 0, limit = 100;
    const char *i = td_http_query(req, "instance"), *l = td_http_query(req, "limit");
    json_t *out;
    int rc;

    if (!engine_ready(req, app)) {
        return;
    }
    if ((i && !parse_int(i, &instance)) || (l && (!parse_int(l, &limit) || limit > 1000))) {
        td_http_reply_errorf(req, TD_EINVAL, i ? "instance" : "limit",
                             "instance and limit must be whole numbers (limit at most 1000)");
        return;
    }
    rc = td_journey_outbox_list(app->journeys, instance, td_http_query(req, "status"), (int)limit,
                                &out, &err);
    if (rc != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__reply_doc(req, 200, out);
}
