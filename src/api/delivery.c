/* Adobe Target's Delivery API (POST /rest/v1/delivery), as the Target SDKs
 * (at.js 2, @adobe/target-nodejs-sdk) call it: each execute / prefetch mbox
 * whose name maps to a design gets the design's recommendations as a JSON
 * offer (or an HTML one in compatibility mode). Entity parameters update the
 * catalog and a product view is recorded, as Target does. Valid input always
 * gets 200: a problem with one mbox is reported inside the reply, because
 * the SDKs retry any other status. docs/recommendations.md has the mapping. */
#include "api/api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

#define MAX_DELIVERY_BODY (1 << 20)
#define MAX_MBOXES        50
#define MAX_PARAMS        200

/* A plain tntId: 32 hex digits, without the ".<n>_<n>" location suffix, so
 * the SDKs keep talking to this server rather than an edge cluster. */
static void mint_id(char out[33])
{
    unsigned char raw[16];
    static const char hex[] = "0123456789abcdef";

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        uint64_t t = (uint64_t)td_mono_us() ^ ((uint64_t)td_wall_ms() << 20);
        for (size_t i = 0; i < sizeof(raw); i++) {
            t = t * 6364136223846793005ULL + 1442695040888963407ULL;
            raw[i] = (unsigned char)(t >> 56);
        }
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
}

static void html_escape(td_buf_t *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            td_buf_adds(b, "&lt;");
            break;
        case '>':
            td_buf_adds(b, "&gt;");
            break;
        case '&':
            td_buf_adds(b, "&amp;");
            break;
        case '"':
            td_buf_adds(b, "&quot;");
            break;
        case '\'':
            td_buf_adds(b, "&#39;");
            break;
        default:
            td_buf_addc(b, *s);
        }
    }
}

/* Compatibility mode: the items as an HTML fragment. */
static json_t *items_html(const json_t *reply)
{
    td_buf_t b;
    size_t i;
    json_t *it;

    td_buf_init(&b);
    td_buf_adds(&b, "<div class=\"tandem-recs\" data-criteria=\"");
    html_escape(&b, json_string_value(json_object_get(reply, "criteria")));
    td_buf_adds(&b, "\">");
    json_array_foreach(json_object_get(reply, "items"), i, it)
    {
        const char *url = json_string_value(json_object_get(it, "pageUrl"));
        const char *img = json_string_value(json_object_get(it, "thumbnailUrl"));
        td_buf_adds(&b, "<div class=\"tandem-rec\" data-id=\"");
        html_escape(&b, json_string_value(json_object_get(it, "id")));
        td_buf_adds(&b, "\">");
        if (url) {
            td_buf_adds(&b, "<a href=\"");
            html_escape(&b, url);
            td_buf_adds(&b, "\">");
        }
        if (img) {
            td_buf_adds(&b, "<img src=\"");
            html_escape(&b, img);
            td_buf_adds(&b, "\" alt=\"\">");
        }
        td_buf_adds(&b, "<span class=\"name\">");
        html_escape(&b, json_string_value(json_object_get(it, "name")));
        td_buf_adds(&b, "</span>");
        json_t *v = json_object_get(it, "value");
        if (json_is_number(v)) {
            td_buf_addf(&b, "<span class=\"value\">%.2f</span>", json_number_value(v));
        }
        if (url) {
            td_buf_adds(&b, "</a>");
        }
        td_buf_adds(&b, "</div>");
    }
    td_buf_adds(&b, "</div>");
    json_t *s = json_stringn(b.data, b.len);
    td_buf_release(&b);
    return s;
}

static void done_free(void *ctx, int rc, const int64_t *seqs, const bool *dup)
{
    td_event_batch_t *batch = ctx;
    (void)seqs;
    (void)dup;
    if (rc != TD_OK) {
        td_log(TD_LOG_WARN, "delivery", "view not recorded: %s", td_strerror(rc));
    }
    td_event_batch_release(batch);
    free(batch);
}

/* Records the product view the mbox call stands for, as /v1/events would. */
static void record_view(td_app_t *app, const char *ns, const char *ident, const char *item,
                        int64_t now_ms)
{
    td_event_batch_t *batch = td_xcalloc(1, sizeof(*batch));
    td_event_t *ev;

    batch->slots = td_xcalloc(1, sizeof(*batch->slots));
    batch->n = 1;
    batch->single = true;
    ev = &batch->slots[0].ev;
    ev->type = td_xstrdup("product_view");
    if (strcmp(ns, "customer") == 0) {
        ev->customer_id = td_xstrdup(ident);
    } else {
        ev->ecid = td_xstrdup(ident);
    }
    ev->ts_ms = now_ms;
    ev->items = td_xcalloc(1, sizeof(*ev->items));
    ev->n_items = 1;
    ev->items[0].id = td_xstrdup(item);
    ev->items[0].quantity = 1;
    ev->source = "native";
    td_ingest_submit(app->ingest, batch, now_ms, done_free, batch);
}

/* Parameters as strings (Target sends strings; numbers are tolerated). */
static int collect_params(const json_t *obj, td_kv_t *kv, char (*num)[32], int *n)
{
    const char *key;
    json_t *v;

    *n = 0;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (*n >= MAX_PARAMS) {
            return TD_ETOOBIG;
        }
        if (json_is_string(v)) {
            kv[*n] = (td_kv_t){ key, json_string_value(v) };
        } else if (json_is_number(v)) {
            snprintf(num[*n], 32, "%.17g", json_number_value(v));
            kv[*n] = (td_kv_t){ key, num[*n] };
        } else if (json_is_boolean(v)) {
            kv[*n] = (td_kv_t){ key, json_is_true(v) ? "true" : "false" };
        } else {
            continue;
        }
        (*n)++;
    }
    return TD_OK;
}

static json_t *split_ids(const char *s)
{
    json_t *arr = json_array();

    while (s && *s) {
        size_t n = strcspn(s, ",");
        size_t a = 0;
        while (a < n && s[a] == ' ') {
            a++;
        }
        if (n > a) {
            json_array_append_new(arr, json_stringn(s + a, n - a));
        }
        s += n;
        s += *s == ',';
    }
    return arr;
}

typedef struct visitor {
    const char *ns;    /* profile namespace for lookups and views */
    const char *ident; /* identity value */
} visitor_t;

/* One mbox: its design's recommendations as an option, or an error. */
static json_t *answer_mbox(td_app_t *app, const json_t *mbox, const visitor_t *who, bool prefetch,
                           int64_t now_ms)
{
    const char *name = json_string_value(json_object_get(mbox, "name"));
    json_t *out = json_object();
    json_t *params = json_object_get(mbox, "parameters");
    json_t *design, *req, *reply = NULL;
    td_kv_t kv[MAX_PARAMS];
    char num[MAX_PARAMS][32];
    int n_kv = 0;
    td_err_t err = { 0 };
    int rc;

    json_object_set(out, "index", json_object_get(mbox, "index"));
    json_object_set_new(out, "name", json_string(name ? name : ""));
    if (name == NULL) {
        json_object_set_new(out, "error", json_string("the mbox has no name"));
        return out;
    }
    if (json_is_object(params) && collect_params(params, kv, num, &n_kv) != TD_OK) {
        json_object_set_new(out, "error", json_string("too many parameters"));
        return out;
    }
    /* entity.* parameters: catalog update and the view */
    td_params_result_t pres = { 0 };
    if (n_kv > 0 && app->catalog) {
        bool ignore = strcmp(app->cfg->entity_params, "ignore") == 0;
        rc = td_catalog_update_from_params(app->catalog, app->store, kv, (size_t)n_kv, now_ms,
                                           ignore, &pres, &err);
        if (rc != TD_OK && rc != TD_ENOTFOUND) {
            json_object_set_new(
                out, "error",
                json_pack("{s:s, s:s}", "message", err.message, "parameter", err.path));
            memset(&pres, 0, sizeof(pres));
        }
    }
    const char *entity_id = json_string_value(json_object_get(params, "entity.id"));
    if (pres.has_entity && pres.counts_as_view && entity_id && who->ident && !prefetch &&
        app->ingest) {
        record_view(app, who->ns, who->ident, entity_id, now_ms);
    }
    design = app->recs ? td_recs_design_get(app->recs, name, true) : NULL;
    if (design == NULL) {
        /* not a recommendations mbox: no offer, as Target for an mbox
         * without an activity */
        json_object_set_new(out, "options", json_array());
        return out;
    }
    req = json_object();
    json_object_set(req, "criteria", json_object_get(design, "criteria"));
    json_object_set(req, "count", json_object_get(design, "count"));
    if (who->ident) {
        json_object_set_new(req, strcmp(who->ns, "customer") == 0 ? "customer_id" : "ecid",
                            json_string(who->ident));
    }
    if (entity_id) {
        json_object_set_new(req, "key", json_string(entity_id));
    }
    const char *cat = json_string_value(json_object_get(params, "entity.categoryId"));
    if (cat) {
        size_t n = strcspn(cat, ",");
        json_object_set_new(req, "category", json_stringn(cat, n));
    }
    const char *cart = json_string_value(json_object_get(params, "cartIds"));
    if (cart) {
        json_object_set_new(req, "cart", split_ids(cart));
    }
    const char *excl = json_string_value(json_object_get(params, "excludedIds"));
    if (excl) {
        json_object_set_new(req, "exclude", split_ids(excl));
    }
    json_t *p = json_object();
    for (int i = 0; i < n_kv; i++) {
        json_object_set_new(p, kv[i].key, json_string(kv[i].value));
    }
    json_t *pp = json_object_get(mbox, "profileParameters");
    if (json_is_object(pp)) {
        td_kv_t pkv[MAX_PARAMS];
        char pnum[MAX_PARAMS][32];
        int pn = 0;
        if (collect_params(pp, pkv, pnum, &pn) == TD_OK) {
            /* as request parameters ("profile.x") and as the visitor's
             * profile attributes (PROFILEATTRIBUTE keys, profile rules) */
            json_t *attrs = json_object();
            for (int i = 0; i < pn; i++) {
                char key[300];
                snprintf(key, sizeof(key), "profile.%s", pkv[i].key);
                json_object_set_new(p, key, json_string(pkv[i].value));
                json_object_set_new(attrs, pkv[i].key, json_string(pkv[i].value));
            }
            json_object_set_new(req, "profile", attrs);
        }
    }
    json_object_set_new(req, "params", p);
    rc = td_recs_recommend(app->recs, req, &reply, &err);
    json_decref(req);
    if (rc != TD_OK) {
        json_object_set_new(out, "options", json_array());
        json_object_set_new(out, "error",
                            json_pack("{s:s, s:s}", "message", err.message, "path", err.path));
        json_decref(design);
        return out;
    }
    bool html = json_is_true(json_object_get(design, "html"));
    json_t *option = json_object();
    json_object_set_new(option, "type", json_string(html ? "html" : "json"));
    json_object_set_new(option, "content", html ? items_html(reply) : json_incref(reply));
    char token[33];
    mint_id(token);
    json_object_set_new(option, "responseTokens",
                        json_pack("{s:s, s:s?}", "activity.name", name, "option.name",
                                  json_string_value(json_object_get(reply, "criteria"))));
    if (prefetch) {
        json_object_set_new(option, "eventToken", json_string(token));
    }
    json_object_set_new(out, "options", json_pack("[o]", option));
    if (prefetch) {
        char click[40];
        snprintf(click, sizeof(click), "c%.31s", token);
        json_object_set_new(out, "metrics",
                            json_pack("[{s:s, s:s}]", "type", "click", "eventToken", click));
    }
    json_decref(reply);
    json_decref(design);
    return out;
}

static json_t *answer_mboxes(td_app_t *app, const json_t *list, const visitor_t *who, bool prefetch,
                             int64_t now_ms)
{
    json_t *out = json_array(), *m;
    size_t i;

    json_array_foreach(list, i, m)
    {
        if (i >= MAX_MBOXES) {
            break;
        }
        if (json_is_object(m)) {
            json_array_append_new(out, answer_mbox(app, m, who, prefetch, now_ms));
        }
    }
    return out;
}

void td_api_delivery_post(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_error_t jerr;
    td_err_t err = { 0 };
    int64_t now_ms = td_clock_now_ms(app->clock);
    char minted[33];
    visitor_t who = { 0 };

    if (len > MAX_DELIVERY_BODY) {
        td_http_reply_errorf(req, TD_ETOOBIG, "", "a request is at most %d bytes",
                             MAX_DELIVERY_BODY);
        return;
    }
    json_t *doc = json_loadb(body ? body : "", len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        td_err_set_at(&err, TD_EINVAL, "", jerr.line, jerr.column, "%s",
                      doc ? "a delivery request is a JSON object" : jerr.text);
        td_http_reply_error(req, TD_EINVAL, &err);
        return;
    }
    /* the visitor: the MCID as an ecid, else a customer id, else the tntId */
    json_t *id = json_object_get(doc, "id");
    const char *tnt = json_string_value(json_object_get(id, "tntId"));
    const char *mcid = json_string_value(json_object_get(id, "marketingCloudVisitorId"));
    const char *third = json_string_value(json_object_get(id, "thirdPartyId"));
    json_t *cids = json_object_get(id, "customerIds");
    const char *cid = json_string_value(json_object_get(json_array_get(cids, 0), "id"));
    if (tnt == NULL || *tnt == '\0' || strlen(tnt) > 128) {
        mint_id(minted);
        tnt = minted;
    }
    if (mcid && *mcid && strlen(mcid) <= 128) {
        who = (visitor_t){ "ecid", mcid };
    } else if (third && *third && strlen(third) <= 256) {
        who = (visitor_t){ "customer", third };
    } else if (cid && *cid && strlen(cid) <= 256) {
        who = (visitor_t){ "customer", cid };
    } else {
        who = (visitor_t){ "ecid", tnt };
    }

    json_t *out = json_object();
    json_t *rid = json_object_get(doc, "requestId");
    char rbuf[33];
    if (!json_is_string(rid)) {
        mint_id(rbuf);
    }
    json_object_set_new(out, "status", json_integer(200));
    json_object_set_new(out, "requestId",
                        json_string(json_is_string(rid) ? json_string_value(rid) : rbuf));
    json_t *oid = json_pack("{s:s}", "tntId", tnt);
    if (mcid) {
        json_object_set_new(oid, "marketingCloudVisitorId", json_string(mcid));
    }
    if (third) {
        json_object_set_new(oid, "thirdPartyId", json_string(third));
    }
    if (json_is_array(cids)) {
        json_object_set(oid, "customerIds", cids);
    }
    json_object_set_new(out, "id", oid);
    const char *client = td_http_query(req, "client");
    json_object_set_new(out, "client", json_string(client ? client : ""));

    json_t *exec = json_object_get(doc, "execute");
    if (json_is_object(exec)) {
        json_t *e = json_object();
        if (json_object_get(exec, "pageLoad")) {
            json_object_set_new(e, "pageLoad", json_pack("{s:[]}", "options"));
        }
        json_t *mb = json_object_get(exec, "mboxes");
        if (json_is_array(mb)) {
            json_object_set_new(e, "mboxes", answer_mboxes(app, mb, &who, false, now_ms));
        }
        json_object_set_new(out, "execute", e);
    }
    json_t *pre = json_object_get(doc, "prefetch");
    if (json_is_object(pre)) {
        json_t *p = json_object();
        json_t *mb = json_object_get(pre, "mboxes");
        if (json_is_array(mb)) {
            json_object_set_new(p, "mboxes", answer_mboxes(app, mb, &who, true, now_ms));
        }
        json_object_set_new(out, "prefetch", p);
    }
    json_t *notes = json_object_get(doc, "notifications");
    if (json_is_array(notes)) {
        /* accepted (display and click notifications): acknowledged by id */
        json_t *ack = json_array(), *n;
        size_t i;
        json_array_foreach(notes, i, n)
        {
            json_t *nid = json_object_get(n, "id");
            if (json_is_string(nid)) {
                json_array_append_new(ack, json_pack("{s:O}", "id", nid));
            }
        }
        json_object_set_new(out, "notifications", ack);
        td_log(TD_LOG_DEBUG, "delivery", "notifications n=%zu", json_array_size(notes));
    }
    json_decref(doc);
    td_api__reply_doc(req, 200, out);
}
