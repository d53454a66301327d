/* The email templates API (admin key): PUT/GET/DELETE /v1/templates/{id},
 * GET /v1/templates, and POST /v1/templates/{id}:preview, which renders a
 * stored template against a real profile or sample data. A template with a
 * syntax error is refused at save time with its field, line and column. */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "message/message.h"
#include "profile/profile.h"
#include "util/banned.h"

#define MAX_ID 128

static bool id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > MAX_ID) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

static bool ready(td_http_req_t *req, td_app_t *app, const char **id)
{
    if (!td_store_messages_supported(app->store)) {
        td_http_reply_errorf(req, TD_EBUSY, NULL, "templates are not available on this store");
        return false;
    }
    if (id) {
        *id = td_http_param(req, "id");
        if (!id_valid(*id)) {
            td_http_reply_errorf(req, TD_EINVAL, "/id",
                                 "a template id is 1 to 128 letters, digits, '-', '_' or '.'");
            return false;
        }
    }
    return true;
}

/* Compiles text; on a syntax error fills err with path, line and column. */
static int check(const char *path, const char *text, td_err_t *err)
{
    td_template_t *tpl = NULL;
    td_err_t e = { 0 };
    int rc;

    if (text == NULL) {
        return TD_OK;
    }
    if ((rc = td_template_compile(text, strlen(text), &tpl, &e)) != TD_OK) {
        return td_err_set_at(err, rc, path, e.line, e.column, "%s", e.message);
    }
    td_template_free(tpl);
    return TD_OK;
}

static json_t *template_json(const td_store_template_t *t, bool full)
{
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I}", "id", t->id, "version",
                          (json_int_t)t->version, "subject", t->subject ? t->subject : "", "source",
                          t->source ? t->source : "api", "updated_ms", (json_int_t)t->updated_ms);
    if (full) {
        json_object_set_new(o, "html", json_string(t->html ? t->html : ""));
        if (t->text) {
            json_object_set_new(o, "text", json_string(t->text));
        }
    }
    if (t->from_name) {
        json_object_set_new(o, "fromName", json_string(t->from_name));
    }
    if (t->reply_to) {
        json_object_set_new(o, "replyTo", json_string(t->reply_to));
    }
    return o;
}

static const char *opt_string(json_t *doc, const char *key, bool *bad)
{
    json_t *v = json_object_get(doc, key);

    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

void td_api_template_put(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *id;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_error_t jerr;
    td_err_t err = { 0 };
    bool bad = false;
    int64_t version = 0;
    int rc;

    if (!ready(req, app, &id)) {
        return;
    }
    if (len > TD_TEMPLATE_MAX_SOURCE * 2) {
        td_http_reply_errorf(req, TD_ETOOBIG, NULL, "a template is at most %d bytes",
                             TD_TEMPLATE_MAX_SOURCE);
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
    const char *subject = opt_string(doc, "subject", &bad), *html = opt_string(doc, "html", &bad),
               *text = opt_string(doc, "text", &bad), *from = opt_string(doc, "fromName", &bad),
               *reply = opt_string(doc, "replyTo", &bad);
    if (bad || subject == NULL || html == NULL) {
        td_http_reply_errorf(req, TD_EINVAL, subject == NULL ? "/subject" : "/html",
                             "\"subject\" and \"html\" are required strings; \"text\", "
                             "\"fromName\" and \"replyTo\" are optional strings");
        json_decref(doc);
        return;
    }
    if (strlen(html) > TD_TEMPLATE_MAX_SOURCE || (text && strlen(text) > TD_TEMPLATE_MAX_SOURCE)) {
        td_http_reply_errorf(req, TD_ETOOBIG, "/html", "a template is at most %d bytes",
                             TD_TEMPLATE_MAX_SOURCE);
        json_decref(doc);
        return;
    }
    if (reply && *reply && !td_mime_addr_valid(reply)) {
        td_http_reply_errorf(req, TD_EINVAL, "/replyTo", "must be an email address");
        json_decref(doc);
        return;
    }
    if ((rc = check("/subject", subject, &err)) != TD_OK ||
        (rc = check("/html", html, &err)) != TD_OK || (rc = check("/text", text, &err)) != TD_OK ||
        (rc = check("/fromName", from, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        json_decref(doc);
        return;
    }
    td_store_template_t t = { .id = (char *)id,
                              .subject = (char *)subject,
                              .html = (char *)html,
                              .text = (char *)text,
                              .from_name = (char *)from,
                              .reply_to = (char *)(reply && *reply ? reply : NULL),
                              .source = (char *)"api",
                              .updated_ms = td_clock_now_ms(app->clock) };
    td_store_conn_t *c = td_store_acquire(app->store);
    if ((rc = td_store_begin(c)) == TD_OK) {
        if ((rc = td_store_template_put(c, &t, false, &version)) == TD_OK) {
            rc = td_store_commit(c);
        } else {
            td_store_rollback(c);
        }
    }
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot store the template (%s)", td_strerror(rc));
    } else {
        t.version = version;
        td_api__reply_doc(req, version == 1 ? 201 : 200, template_json(&t, false));
    }
    json_decref(doc);
}

void td_api_template_get(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *id;
    td_store_template_t t;
    int rc;

    if (!ready(req, app, &id)) {
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_store_template_get(c, id, &t);
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, rc == TD_ENOTFOUND ? "no template \"%s\"" : "%s",
                             rc == TD_ENOTFOUND ? id : td_strerror(rc));
        return;
    }
    td_api__reply_doc(req, 200, template_json(&t, true));
    td_store_template_release(&t);
}

void td_api_templates_list(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    td_store_template_t *rows = NULL;
    int n = 0, rc;

    if (!ready(req, app, NULL)) {
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_store_template_list(c, &rows, &n);
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot list templates (%s)", td_strerror(rc));
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(list, template_json(&rows[i], false));
    }
    td_store_templates_free(rows, n);
    td_api__reply_doc(req, 200, json_pack("{s:o}", "templates", list));
}

void td_api_template_delete(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *id;
    int rc;

    if (!ready(req, app, &id)) {
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    if ((rc = td_store_begin(c)) == TD_OK) {
        if ((rc = td_store_template_delete(c, id)) == TD_OK) {
            rc = td_store_commit(c);
        } else {
            td_store_rollback(c);
        }
    }
    td_store_release(app->store, c);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, rc == TD_ENOTFOUND ? "no template \"%s\"" : "%s",
                             rc == TD_ENOTFOUND ? id : td_strerror(rc));
        return;
    }
    td_api__reply_doc(req, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

/* The profile part of a render context, as journeys give it. */
static json_t *profile_json(const td_store_profile_t *p)
{
    json_t *o = json_object(), *ids = json_object(), *cart = json_array();

    json_object_set_new(o, "id", json_integer(p->id));
    for (int i = 0; i < p->n_identities; i++) {
        const td_store_identity_t *ident = &p->identities[i];
        json_t *l = json_object_get(ids, ident->ns);
        if (l == NULL) {
            json_object_set_new(ids, ident->ns, l = json_array());
            json_object_set_new(o, strcmp(ident->ns, "customer") == 0 ? "customer_id" : ident->ns,
                                json_string(ident->id));
        }
        json_array_append_new(l, json_string(ident->id));
    }
    json_object_set_new(o, "identities", ids);
    for (int i = 0; i < p->n_cart; i++) {
        const td_store_item_t *it = &p->cart[i];
        json_t *item = json_pack("{s:s, s:I}", "id", it->id, "quantity", (json_int_t)it->quantity);
        if (it->name) {
            json_object_set_new(item, "name", json_string(it->name));
        }
        if (it->has_price) {
            json_object_set_new(item, "price", json_real(it->price));
        }
        json_array_append_new(cart, item);
    }
    json_object_set_new(o, "cart", cart);
    json_object_set_new(o, "consent",
                        json_pack("{s:s}", "marketing",
                                  p->consent_marketing == 1   ? "in"
                                  : p->consent_marketing == 2 ? "out"
                                                              : "unknown"));
    return o;
}

static json_t *render_part(const char *src, const json_t *ctx, json_t *report_out, const char *name)
{
    td_template_t *tpl = NULL;
    td_template_report_t rep;
    td_err_t err = { 0 };
    td_buf_t out = TD_BUF_INIT;

    if (src == NULL) {
        return json_null();
    }
    if (td_template_compile(src, strlen(src), &tpl, &err) != TD_OK) {
        json_object_set_new(report_out, name,
                            json_pack("{s:s, s:i, s:i}", "error", err.message, "line", err.line,
                                      "column", err.column));
        return json_null();
    }
    td_template_report_init(&rep);
    int rc = td_template_render(tpl, ctx, &out, &rep);
    json_object_set_new(report_out, name, td_template_report_to_json(&rep));
    td_template_report_release(&rep);
    td_template_free(tpl);
    json_t *s = rc == TD_OK ? json_stringn(out.data ? out.data : "", out.len) : json_null();
    td_buf_release(&out);
    return s ? s : json_null();
}

void td_api_template_preview(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *id;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_error_t jerr;
    td_err_t err = { 0 };
    td_store_template_t t;
    int rc;

    if (!ready(req, app, &id)) {
        return;
    }
    json_t *doc = len ? json_loadb(body, len, 0, &jerr) : json_object();
    if (!json_is_object(doc)) {
        td_err_set_at(&err, TD_EINVAL, "", jerr.line, jerr.column, "%s",
                      doc ? "the body must be a JSON object" : jerr.text);
        td_http_reply_error(req, TD_EINVAL, &err);
        json_decref(doc);
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    if ((rc = td_store_template_get(c, id, &t)) != TD_OK) {
        td_store_release(app->store, c);
        td_http_reply_errorf(req, rc, NULL, rc == TD_ENOTFOUND ? "no template \"%s\"" : "%s",
                             rc == TD_ENOTFOUND ? id : td_strerror(rc));
        json_decref(doc);
        return;
    }
    /* the sample data, or an empty context; a real profile replaces "profile" */
    json_t *data = json_object_get(doc, "data");
    json_t *ctx = json_is_object(data) ? json_deep_copy(data) : json_object();
    json_t *pref = json_object_get(doc, "profile");
    const char *ns = json_string_value(json_object_get(pref, "ns"));
    const char *pid = json_string_value(json_object_get(pref, "id"));
    if (ns && pid) {
        td_store_profile_t p;
        if ((rc = td_profile_lookup(c, ns, pid, &p)) != TD_OK) {
            td_store_release(app->store, c);
            td_http_reply_errorf(req, rc, "/profile",
                                 rc == TD_ENOTFOUND ? "no profile %s/%s" : "cannot load %s/%s", ns,
                                 pid);
            json_decref(ctx);
            json_decref(doc);
            td_store_template_release(&t);
            return;
        }
        json_object_set_new(ctx, "profile", profile_json(&p));
        td_store_profile_release(&p);
    }
    td_store_release(app->store, c);
    json_t *report = json_object();
    json_t *html = render_part(t.html, ctx, report, "html");
    json_t *text = t.text ? render_part(t.text, ctx, report, "text") : NULL;
    json_t *out =
        json_pack("{s:s, s:I, s:o, s:o, s:o}", "id", t.id, "version", (json_int_t)t.version,
                  "subject", render_part(t.subject, ctx, report, "subject"), "html", html,
                  "fromName", render_part(t.from_name, ctx, report, "fromName"));
    if (text == NULL && json_is_string(html)) {
        td_buf_t b = TD_BUF_INIT;
        td_html_to_text(json_string_value(html), json_string_length(html), &b);
        text = json_stringn(b.data ? b.data : "", b.len);
        td_buf_release(&b);
    }
    json_object_set_new(out, "text", text ? text : json_null());
    json_object_set_new(out, "report", report);
    td_api__reply_doc(req, 200, out);
    json_decref(ctx);
    json_decref(doc);
    td_store_template_release(&t);
}
