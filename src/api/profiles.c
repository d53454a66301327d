/* GET /v1/profiles/{ns}/{id}: the merged profile an identity belongs to. */
#include "api/api.h"

#include <string.h>

#include "profile/profile.h"
#include "util/banned.h"

static void add_time(td_buf_t *b, const char *key, int64_t ms)
{
    char ts[32];

    td_time_format_iso(ms, ts, sizeof(ts));
    td_buf_addf(b, "\"%s\":\"%s\"", key, ts);
}

static void add_opt_str(td_buf_t *b, const char *key, const char *v)
{
    if (v) {
        td_buf_addf(b, ",\"%s\":", key);
        td_buf_add_json_str(b, v, strlen(v));
    }
}

static void add_items(td_buf_t *b, const char *key, const td_store_item_t *items, int n,
                      bool with_quantity, const char *time_key)
{
    td_buf_addf(b, ",\"%s\":[", key);
    for (int i = 0; i < n; i++) {
        const td_store_item_t *it = &items[i];
        td_buf_adds(b, i ? ",{\"id\":" : "{\"id\":");
        td_buf_add_json_str(b, it->id, strlen(it->id));
        add_opt_str(b, "name", it->name);
        add_opt_str(b, "category", it->category);
        if (it->has_price) {
            td_buf_adds(b, ",\"price\":");
            td_buf_add_double(b, it->price);
        }
        if (with_quantity) {
            td_buf_addf(b, ",\"quantity\":%lld", (long long)it->quantity);
        }
        td_buf_addc(b, ',');
        add_time(b, time_key, it->ts_ms);
        td_buf_addc(b, '}');
    }
    td_buf_addc(b, ']');
}

static void render_profile(td_buf_t *b, const td_store_profile_t *p)
{
    static const char *const namespaces[] = { TD_NS_ECID, TD_NS_EMAIL, TD_NS_CUSTOMER };

    td_buf_addf(b, "{\"id\":%lld,", (long long)p->id);
    add_time(b, "created", p->created_ms);
    if (p->last_event_ms) {
        td_buf_addc(b, ',');
        add_time(b, "last_activity", p->last_event_ms);
    }
    td_buf_adds(b, ",\"identities\":{");
    for (size_t k = 0; k < TD_ARRAY_LEN(namespaces); k++) {
        int n = 0;
        td_buf_addf(b, "%s\"%s\":[", k ? "," : "", namespaces[k]);
        for (int i = 0; i < p->n_identities; i++) {
            if (strcmp(p->identities[i].ns, namespaces[k]) == 0) {
                td_buf_adds(b, n++ ? "," : "");
                td_buf_add_json_str(b, p->identities[i].id, strlen(p->identities[i].id));
            }
        }
        td_buf_addc(b, ']');
    }
    td_buf_addc(b, '}');
    add_items(b, "cart", p->cart, p->n_cart, true, "added");
    add_items(b, "viewed", p->viewed, p->n_viewed, false, "ts");
    td_buf_adds(b, ",\"purchases\":[");
    for (int i = 0; i < p->n_purchases; i++) {
        const td_store_purchase_t *pu = &p->purchases[i];
        td_buf_adds(b, i ? ",{" : "{");
        add_time(b, "ts", pu->ts_ms);
        add_opt_str(b, "order_id", pu->order_id);
        if (pu->has_total) {
            td_buf_adds(b, ",\"total\":");
            td_buf_add_double(b, pu->total);
        }
        add_opt_str(b, "currency", pu->currency);
        td_buf_addf(b, ",\"items\":%s}", pu->items_json ? pu->items_json : "[]");
    }
    td_buf_adds(b, "],\"consent\":{");
    if (p->consent_marketing) {
        td_buf_addf(b, "\"marketing\":{\"value\":\"%s\",",
                    p->consent_marketing == 1 ? "in" : "out");
        add_time(b, "ts", p->consent_ms);
        add_opt_str(b, "source", p->consent_source);
        td_buf_addc(b, '}');
    }
    td_buf_adds(b, "},\"counts\":{");
    for (int i = 0; i < p->n_counts; i++) {
        td_buf_adds(b, i ? "," : "");
        td_buf_add_json_str(b, p->counts[i].type, strlen(p->counts[i].type));
        td_buf_addf(b, ":%lld", (long long)p->counts[i].n);
    }
    td_buf_adds(b, "}}");
}

void td_api_profiles_get(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *ns = td_http_param(req, "ns"), *id = td_http_param(req, "id");
    td_store_profile_t p;
    td_buf_t out = TD_BUF_INIT;
    int rc;

    if (!td_profile_ns_valid(ns)) {
        td_http_reply_errorf(req, TD_EINVAL, "ns",
                             "unknown identity namespace \"%s\" (use ecid, email or customer)", ns);
        return;
    }
    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_profile_lookup(c, ns, id, &p);
    td_store_release(app->store, c);
    if (rc == TD_ENOTFOUND) {
        td_http_reply_errorf(req, rc, "id", "no profile has %s \"%s\"", ns, id);
        return;
    }
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot read the profile (%s)", td_strerror(rc));
        return;
    }
    render_profile(&out, &p);
    td_store_profile_release(&p);
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}
