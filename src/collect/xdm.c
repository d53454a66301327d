/* Adobe Experience Platform Edge Network requests, as the Web SDK (alloy)
 * sends them, turned into the normalised event; and the Edge identity
 * cookie (kndctr_<org>_identity) read and written.
 *
 * XDM is an open schema: fields we do not use are ignored, so any alloy
 * payload is accepted; fields we do use are checked as strictly as the
 * native API checks them, and a wrong one refuses that event, naming it.
 *
 * How an event maps (events[i].xdm):
 *   eventType            commerce.productViews → product_view,
 *                        commerce.productListAdds → cart_add,
 *                        commerce.productListRemovals → cart_remove,
 *                        commerce.purchases → purchase,
 *                        web.webpagedetails.pageViews → page_view,
 *                        anything else → itself, characters outside
 *                        [A-Za-z0-9_.:-] replaced by '_', cut to 64 bytes;
 *                        none → guessed from commerce.<metric>.value or
 *                        web.webPageDetails.pageViews, else "edge.event".
 *   _id, timestamp       id (idempotent retries), ts (a well-formed time out
 *                        of range, from a browser whose clock is off, becomes
 *                        the time of arrival rather than losing the event)
 *   identityMap          ECID → ecid, Email → email, CRMID/CustomerID →
 *                        customer_id (the primary entry, else the first)
 *   productListItems[]   SKU → id, name, quantity (default 1), and
 *                        price = priceTotal / quantity: XDM carries the
 *                        line total, the event model a unit price;
 *                        productCategories[0].categoryID (or categoryName)
 *                        → category
 *   commerce.order       purchaseID → order.id, priceTotal → order.total,
 *                        currencyCode → order.currency
 *   commerce.cart.cartID cart_id
 *   consents             marketing.email.val (else marketing.any.val, else
 *                        collect.val "n") → consent_marketing
 *   attributes           the original eventType, the page URL and name, the
 *                        referrer, and the event's free-form "data" (dropped,
 *                        with "dataOmitted": true, when over the size cap)
 * Events without any ECID get the device's one from the caller
 * (td_collect_xdm_set_ecid): the Edge always knows the device. */
#include "collect/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/clock.h"
#include "util/banned.h"

#define MAX_IDENTITIES   32   /* entries of one identityMap namespace looked at */
#define MAX_ATTR_STRING  2048 /* longer URLs and names are left out of attributes */
#define MAX_EVENT_TYPE   256  /* longer original eventTypes are left out of attributes */
#define MAX_SCOPE        256  /* bytes of one decision scope */
#define MAX_COOKIE_VALUE 1024 /* characters of an identity cookie we try to decode */
#define MAX_QUANTITY     1000000

static const struct {
    const char *xdm, *type;
} known_types[] = {
    { "commerce.productViews", "product_view" },       { "commerce.productListAdds", "cart_add" },
    { "commerce.productListRemovals", "cart_remove" }, { "commerce.purchases", "purchase" },
    { "web.webpagedetails.pageViews", "page_view" },
};

/* Follows a NULL-terminated chain of object keys; NULL when any is missing
 * or not an object. */
static json_t *dig(json_t *o, ...)
{
    va_list ap;
    const char *key;

    va_start(ap, o);
    while (o && (key = va_arg(ap, const char *)) != NULL) {
        o = json_is_object(o) ? json_object_get(o, key) : NULL;
    }
    va_end(ap);
    return o;
}

bool td_collect_ecid_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL) {
        return false;
    }
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ||
            n == 64) {
            return false;
        }
    }
    return n > 0;
}

/* "y" and "dy" (default yes) consent, "n" and "dn" refuse; the other codes
 * of the Adobe 2.0 standard (VI, LI, CT, CP, u) say nothing we can use. */
static td_consent_t consent_val(json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";

    if (strcmp(s, "y") == 0 || strcmp(s, "dy") == 0) {
        return TD_CONSENT_IN;
    }
    if (strcmp(s, "n") == 0 || strcmp(s, "dn") == 0) {
        return TD_CONSENT_OUT;
    }
    return TD_CONSENT_NONE;
}

/* Reads the Adobe 2.0 consent object (XDM "consents" field group). */
static void adobe2_consent(json_t *value, td_consent_t *collect, td_consent_t *marketing)
{
    td_consent_t m = consent_val(dig(value, "marketing", "email", "val", NULL));

    if (m == TD_CONSENT_NONE) {
        m = consent_val(dig(value, "marketing", "any", "val", NULL));
    }
    *collect = consent_val(dig(value, "collect", "val", NULL));
    *marketing = m;
}

/* Someone who refused all collection has not agreed to marketing email
 * either; an explicit marketing choice wins over that. */
static td_consent_t marketing_from(td_consent_t collect, td_consent_t marketing)
{
    if (marketing != TD_CONSENT_NONE) {
        return marketing;
    }
    return collect == TD_CONSENT_OUT ? TD_CONSENT_OUT : TD_CONSENT_NONE;
}

static char *sanitised_type(const char *s, size_t len)
{
    char out[TD_COLLECT_MAX_TYPE + 1];
    size_t n = 0;

    for (size_t i = 0; i < len && n < TD_COLLECT_MAX_TYPE; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-' || c == ':';
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
    return td_xstrdup(n ? out : "edge.event");
}

/* Older XDM (and Analytics-style) events say what happened with a metric
 * such as commerce.purchases.value instead of an eventType. */
static const char *type_from_metrics(json_t *xdm)
{
    static const struct {
        const char *group, *metric, *type;
    } metrics[] = {
        { "commerce", "purchases", "purchase" },
        { "commerce", "productListAdds", "cart_add" },
        { "commerce", "productListRemovals", "cart_remove" },
        { "commerce", "productViews", "product_view" },
    };
    json_t *v;

    for (size_t i = 0; i < TD_ARRAY_LEN(metrics); i++) {
        v = dig(xdm, metrics[i].group, metrics[i].metric, "value", NULL);
        if (json_is_number(v) && json_number_value(v) > 0) {
            return metrics[i].type;
        }
    }
    v = dig(xdm, "web", "webPageDetails", "pageViews", "value", NULL);
    if (json_is_number(v) && json_number_value(v) > 0) {
        return "page_view";
    }
    return "edge.event";
}

static int parse_type(json_t *xdm, const char *path, td_event_t *ev, td_err_t *err)
{
    json_t *v = json_object_get(xdm, "eventType");
    char p[512];

    if (v == NULL || json_is_null(v)) {
        ev->type = td_xstrdup(type_from_metrics(xdm));
        return TD_OK;
    }
    td_collect__path(p, sizeof(p), path, "/eventType");
    if (!json_is_string(v)) {
        return td_err_set(err, TD_EINVAL, p, "must be a string");
    }
    const char *s = json_string_value(v);
    for (size_t i = 0; i < TD_ARRAY_LEN(known_types); i++) {
        if (strcasecmp(s, known_types[i].xdm) == 0 &&
            strlen(known_types[i].xdm) == json_string_length(v)) {
            ev->type = td_xstrdup(known_types[i].type);
            return TD_OK;
        }
    }
    ev->type = sanitised_type(s, json_string_length(v));
    return TD_OK;
}

/* The index of the identityMap entry to use: the primary one, else the
 * first. */
static size_t pick_identity(json_t *arr)
{
    size_t n = json_array_size(arr);

    for (size_t i = 0; i < n && i < MAX_IDENTITIES; i++) {
        if (json_is_true(dig(json_array_get(arr, i), "primary", NULL))) {
            return i;
        }
    }
    return 0;
}

static int parse_identity(const char *ns, json_t *arr, const char *path, td_event_t *ev,
                          td_err_t *err)
{
    char p[512];
    json_t *entry;
    size_t idx;
    int rc;

    if (!json_is_array(arr)) {
        return td_err_set(err, TD_EINVAL, path, "must be an array of identities");
    }
    idx = pick_identity(arr);
    entry = json_array_get(arr, idx);
    if (entry == NULL) {
        return TD_OK;
    }
    td_collect__index_path(p, sizeof(p), path, idx);
    if (!json_is_object(entry)) {
        return td_err_set(err, TD_EINVAL, p, "must be an object like {\"id\": \"...\"}");
    }
    td_collect__path(p + strlen(p), sizeof(p) - strlen(p), "", "/id");
    json_t *id = json_object_get(entry, "id");
    if (strcasecmp(ns, "ECID") == 0) {
        if (ev->ecid) {
            return TD_OK;
        }
        rc = td_collect__string(id, p, TD_COLLECT_MAX_ID, true, &ev->ecid, err);
        if (rc == TD_OK && !td_collect_ecid_ok(ev->ecid)) {
            free(ev->ecid);
            ev->ecid = NULL;
            return td_err_set(err, TD_EINVAL, p, "not an ECID (1 to 64 letters and digits)");
        }
        return rc;
    }
    if (strcasecmp(ns, "Email") == 0) {
        return ev->email ? TD_OK : td_collect__email(id, p, &ev->email, err);
    }
    return ev->customer_id ? TD_OK : td_collect__id(id, p, &ev->customer_id, err);
}

static int parse_identity_map(json_t *map, const char *path, td_event_t *ev, td_err_t *err)
{
    char p[512];
    const char *ns;
    json_t *arr;

    if (!json_is_object(map)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    json_object_foreach(map, ns, arr)
    {
        if (strcasecmp(ns, "ECID") != 0 && strcasecmp(ns, "Email") != 0 &&
            strcasecmp(ns, "CRMID") != 0 && strcasecmp(ns, "CustomerID") != 0) {
            continue;
        }
        td_collect__key_path(p, sizeof(p), path, ns);
        int rc = parse_identity(ns, arr, p, ev, err);
        if (rc != TD_OK) {
            return rc;
        }
    }
    return TD_OK;
}

static int parse_category(json_t *cats, const char *path, td_item_t *it, td_err_t *err)
{
    char p[512];
    json_t *first, *v;

    if (!json_is_array(cats)) {
        return td_err_set(err, TD_EINVAL, path, "must be an array");
    }
    first = json_array_get(cats, 0);
    if (first == NULL) {
        return TD_OK;
    }
    td_collect__index_path(p, sizeof(p), path, 0);
    if (!json_is_object(first)) {
        return td_err_set(err, TD_EINVAL, p, "must be an object");
    }
    v = json_object_get(first, "categoryID");
    td_collect__path(p + strlen(p), sizeof(p) - strlen(p), "", v ? "/categoryID" : "/categoryName");
    if (v == NULL) {
        v = json_object_get(first, "categoryName");
    }
    return td_collect__string(v, p, TD_COLLECT_MAX_TEXT, false, &it->category, err);
}

static int parse_quantity(json_t *v, const char *path, td_item_t *it, td_err_t *err)
{
    double q;

    if (v == NULL || json_is_null(v)) {
        it->quantity = 1;
        return TD_OK;
    }
    if (!json_is_number(v) || (q = json_number_value(v)) < 1 || q > MAX_QUANTITY ||
        q != (double)(int64_t)q) {
        return td_err_set(err, TD_EINVAL, path, "must be an integer from 1 to %d", MAX_QUANTITY);
    }
    it->quantity = (int64_t)q;
    it->has_quantity = true;
    return TD_OK;
}

static int parse_item(json_t *o, const char *path, td_item_t *it, td_err_t *err)
{
    char p[512];
    json_t *v;
    int rc;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    td_collect__path(p, sizeof(p), path, "/SKU");
    if ((rc = td_collect__id(json_object_get(o, "SKU"), p, &it->id, err)) != TD_OK) {
        return rc;
    }
    td_collect__path(p, sizeof(p), path, "/name");
    rc = td_collect__string(json_object_get(o, "name"), p, TD_COLLECT_MAX_TEXT, false, &it->name,
                            err);
    if (rc != TD_OK) {
        return rc;
    }
    td_collect__path(p, sizeof(p), path, "/quantity");
    if ((rc = parse_quantity(json_object_get(o, "quantity"), p, it, err)) != TD_OK) {
        return rc;
    }
    v = json_object_get(o, "priceTotal");
    if (v && !json_is_null(v)) {
        td_collect__path(p, sizeof(p), path, "/priceTotal");
        if ((rc = td_collect__number(v, p, 0, 1e12, &it->price, err)) != TD_OK) {
            return rc;
        }
        it->price /= (double)it->quantity;
        it->has_price = true;
    }
    v = json_object_get(o, "productCategories");
    if (v && !json_is_null(v)) {
        td_collect__path(p, sizeof(p), path, "/productCategories");
        return parse_category(v, p, it, err);
    }
    return TD_OK;
}

static int parse_items(json_t *v, const char *path, const td_collect_limits_t *lim, td_event_t *ev,
                       td_err_t *err)
{
    char p[512];

    if (!json_is_array(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be an array");
    }
    size_t n = json_array_size(v);
    if (n > (size_t)lim->max_items) {
        return td_err_set(err, TD_ETOOBIG, path, "more than %d items", lim->max_items);
    }
    ev->items = td_xcalloc(n ? n : 1, sizeof(td_item_t));
    for (size_t i = 0; i < n; i++) {
        td_collect__index_path(p, sizeof(p), path, i);
        ev->n_items = (int)i + 1;
        int rc = parse_item(json_array_get(v, i), p, &ev->items[i], err);
        if (rc != TD_OK) {
            return rc;
        }
    }
    return TD_OK;
}

static int parse_currency(json_t *v, const char *path, char **out, td_err_t *err)
{
    int rc = td_collect__string(v, path, 3, false, out, err);

    if (rc != TD_OK || *out == NULL) {
        return rc;
    }
    bool ok = strlen(*out) == 3;
    for (char *c = *out; ok && *c; c++) {
        ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z');
        *c = (char)(*c & ~0x20);
    }
    if (!ok) {
        free(*out);
        *out = NULL;
        return td_err_set(err, TD_EINVAL, path, "must be a 3-letter ISO 4217 code");
    }
    return TD_OK;
}

static int parse_order(json_t *o, const char *path, td_order_t *order, td_err_t *err)
{
    char p[512];
    json_t *v;
    int rc;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    v = json_object_get(o, "purchaseID");
    if (v && !json_is_null(v)) {
        td_collect__path(p, sizeof(p), path, "/purchaseID");
        if ((rc = td_collect__id(v, p, &order->id, err)) != TD_OK) {
            return rc;
        }
    }
    v = json_object_get(o, "priceTotal");
    if (v && !json_is_null(v)) {
        td_collect__path(p, sizeof(p), path, "/priceTotal");
        if ((rc = td_collect__number(v, p, -1e12, 1e12, &order->total, err)) != TD_OK) {
            return rc;
        }
        order->has_total = true;
    }
    td_collect__path(p, sizeof(p), path, "/currencyCode");
    return parse_currency(json_object_get(o, "currencyCode"), p, &order->currency, err);
}

static void set_short_string(json_t *attrs, const char *key, json_t *v, size_t max)
{
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max) {
        json_object_set(attrs, key, v);
    }
}

/* What the event model has no field for but a journey or a report may
 * want: kept as the event's free-form attributes. */
static int build_attributes(json_t *event, json_t *xdm, const char *path, td_event_t *ev,
                            td_err_t *err)
{
    json_t *attrs = json_object();
    json_t *data = json_object_get(event, "data");
    char *s = NULL;
    int rc = TD_OK;

    set_short_string(attrs, "eventType", json_object_get(xdm, "eventType"), MAX_EVENT_TYPE);
    set_short_string(attrs, "url", dig(xdm, "web", "webPageDetails", "URL", NULL), MAX_ATTR_STRING);
    set_short_string(attrs, "pageName", dig(xdm, "web", "webPageDetails", "name", NULL),
                     MAX_ATTR_STRING);
    set_short_string(attrs, "referrer", dig(xdm, "web", "webReferrer", "URL", NULL),
                     MAX_ATTR_STRING);
    /* alloy sends the browser's offset as JavaScript's getTimezoneOffset():
     * minutes to ADD to local time for UTC, so UTC+01:00 arrives as -60 */
    json_t *tzo = dig(xdm, "placeContext", "localTimezoneOffset", NULL);
    if (json_is_integer(tzo) && json_integer_value(tzo) >= -14 * 60 &&
        json_integer_value(tzo) <= 14 * 60) {
        int east = -(int)json_integer_value(tzo);
        char tz[16];
        snprintf(tz, sizeof(tz), "%c%02d:%02d", east < 0 ? '-' : '+', abs(east) / 60,
                 abs(east) % 60);
        json_object_set_new(attrs, "timezone", json_string(tz));
    }
    if (json_is_object(data) && json_object_size(data) > 0) {
        json_object_set(attrs, "data", data);
    }
    if (json_object_size(attrs) == 0) {
        goto out;
    }
    s = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS);
    if (s && strlen(s) > TD_COLLECT_MAX_ATTRS && json_object_get(attrs, "data")) {
        free(s);
        json_object_del(attrs, "data");
        json_object_set_new(attrs, "dataOmitted", json_true());
        s = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS);
    }
    if (s == NULL || strlen(s) > TD_COLLECT_MAX_ATTRS) {
        free(s);
        s = NULL;
        rc = td_err_set(err, TD_ETOOBIG, path, "attributes larger than %d bytes",
                        TD_COLLECT_MAX_ATTRS);
    }
out:
    ev->attributes_json = s;
    json_decref(attrs);
    return rc;
}

static void add_scope(td_xdm_request_t *r, json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_SCOPE ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return;
    }
    for (int i = 0; i < r->n_decision_scopes; i++) {
        if (strcmp(r->decision_scopes[i], json_string_value(v)) == 0) {
            return;
        }
    }
    if (r->n_decision_scopes < TD_XDM_MAX_SCOPES) {
        r->decision_scopes[r->n_decision_scopes++] = td_xstrdup(json_string_value(v));
    }
}

static void collect_scopes(td_xdm_request_t *r, json_t *event)
{
    json_t *scopes = dig(event, "query", "personalization", "decisionScopes", NULL);
    size_t n = json_array_size(scopes);

    for (size_t i = 0; i < n; i++) {
        add_scope(r, json_array_get(scopes, i));
    }
}

/* alloy stamps each event with the browser's clock, which the site does not
 * control: a time that reads well but is out of range (a clock set years
 * off) is replaced by the time of arrival instead of refusing the event.
 * Malformed times are still refused, as they are a coding error. */
static int parse_timestamp(json_t *v, const char *path, int64_t now_ms, int64_t *out, td_err_t *err)
{
    int64_t ms;

    if (json_is_string(v) && td_time_parse_iso(json_string_value(v), &ms) == TD_OK &&
        (ms < TD_COLLECT_MIN_TS_MS || ms > now_ms + TD_COLLECT_FUTURE_MS)) {
        *out = now_ms;
        return TD_OK;
    }
    return td_collect__time(v, path, now_ms, out, err);
}

/* The optional fields of xdm that become event fields. */
static int parse_xdm_fields(json_t *xdm, const char *path, const td_collect_limits_t *lim,
                            int64_t now_ms, td_event_t *ev, td_err_t *err)
{
    char p[512];
    json_t *v;
    int rc = TD_OK;

    td_collect__path(p, sizeof(p), path, "/_id");
    rc = td_collect__string(json_object_get(xdm, "_id"), p, TD_COLLECT_MAX_ID, false, &ev->event_id,
                            err);
    td_collect__path(p, sizeof(p), path, "/timestamp");
    if (rc == TD_OK) {
        rc = parse_timestamp(json_object_get(xdm, "timestamp"), p, now_ms, &ev->ts_ms, err);
    }
    if (rc == TD_OK && (v = json_object_get(xdm, "identityMap")) != NULL) {
        td_collect__path(p, sizeof(p), path, "/identityMap");
        rc = parse_identity_map(v, p, ev, err);
    }
    if (rc == TD_OK && (v = json_object_get(xdm, "productListItems")) != NULL) {
        td_collect__path(p, sizeof(p), path, "/productListItems");
        rc = parse_items(v, p, lim, ev, err);
    }
    if (rc == TD_OK && (v = dig(xdm, "commerce", "order", NULL)) != NULL) {
        td_collect__path(p, sizeof(p), path, "/commerce/order");
        ev->has_order = true;
        rc = parse_order(v, p, &ev->order, err);
    }
    if (rc == TD_OK && (v = dig(xdm, "commerce", "cart", "cartID", NULL)) != NULL) {
        td_collect__path(p, sizeof(p), path, "/commerce/cart/cartID");
        rc = td_collect__id(v, p, &ev->cart_id, err);
    }
    if (rc == TD_OK && (v = json_object_get(xdm, "consents")) != NULL) {
        td_consent_t collect, marketing;
        adobe2_consent(v, &collect, &marketing);
        ev->consent_marketing = marketing_from(collect, marketing);
    }
    return rc;
}

static int parse_event(json_t *o, const char *path, const td_collect_limits_t *lim, int64_t now_ms,
                       td_xdm_request_t *r, td_event_t *ev, td_err_t *err)
{
    char p[512];
    json_t *xdm;
    int rc;

    ev->source = "edge";
    ev->ts_ms = now_ms;
    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "an event must be an object");
    }
    collect_scopes(r, o);
    td_collect__path(p, sizeof(p), path, "/xdm");
    xdm = json_object_get(o, "xdm");
    if (xdm == NULL) {
        return td_err_set(err, TD_EINVAL, p, "missing required field");
    }
    if (!json_is_object(xdm)) {
        return td_err_set(err, TD_EINVAL, p, "must be an object");
    }
    if ((rc = parse_type(xdm, p, ev, err)) != TD_OK) {
        return rc;
    }
    if ((rc = parse_xdm_fields(xdm, p, lim, now_ms, ev, err)) != TD_OK) {
        return rc;
    }
    return build_attributes(o, xdm, path, ev, err);
}

/* consent[] of a privacy/set-consent body. Only Adobe's own standards say
 * something we can read; an IAB TCF string is accepted and not decoded. */
static int parse_consent(json_t *arr, td_xdm_request_t *r, td_err_t *err)
{
    char p[64];
    td_consent_t collect = TD_CONSENT_NONE, marketing = TD_CONSENT_NONE;

    if (!json_is_array(arr)) {
        return td_err_set(err, TD_EINVAL, "/consent", "must be an array");
    }
    r->has_consent = true;
    for (size_t i = 0; i < json_array_size(arr) && i < 16; i++) {
        json_t *c = json_array_get(arr, i);
        snprintf(p, sizeof(p), "/consent/%zu", i);
        if (!json_is_object(c) || !json_is_string(json_object_get(c, "standard"))) {
            return td_err_set(err, TD_EINVAL, p,
                              "must be an object like {\"standard\": \"Adobe\", \"version\": "
                              "\"2.0\", \"value\": {...}}");
        }
        const char *standard = json_string_value(json_object_get(c, "standard"));
        const char *version = json_string_value(json_object_get(c, "version"));
        json_t *value = json_object_get(c, "value");
        if (strcmp(standard, "Adobe") != 0 || version == NULL) {
            continue;
        }
        if (strcmp(version, "1.0") == 0) {
            const char *g = json_string_value(dig(value, "general", NULL));
            collect = g && strcmp(g, "in") == 0    ? TD_CONSENT_IN
                      : g && strcmp(g, "out") == 0 ? TD_CONSENT_OUT
                                                   : collect;
        } else if (strcmp(version, "2.0") == 0) {
            td_consent_t c2, m2;
            adobe2_consent(value, &c2, &m2);
            collect = c2 != TD_CONSENT_NONE ? c2 : collect;
            marketing = m2 != TD_CONSENT_NONE ? m2 : marketing;
        }
    }
    r->consent_collect = collect;
    r->consent_marketing = marketing_from(collect, marketing);
    return TD_OK;
}

static void find_cookie_ecid(json_t *root, const char *org_id, char *ecid, size_t len)
{
    char name[512];
    json_t *entries = dig(root, "meta", "state", "entries", NULL);

    ecid[0] = '\0';
    if (org_id == NULL || !json_is_array(entries)) {
        return;
    }
    td_collect_kndctr_name(org_id, "identity", name, sizeof(name));
    for (size_t i = 0; i < json_array_size(entries) && i < 64; i++) {
        json_t *e = json_array_get(entries, i);
        const char *key = json_string_value(dig(e, "key", NULL));
        const char *value = json_string_value(dig(e, "value", NULL));
        if (key && value && strcmp(key, name) == 0 &&
            td_collect_kndctr_decode(value, ecid, len) == TD_OK) {
            return;
        }
    }
    ecid[0] = '\0';
}

static bool fetches_ecid(json_t *root)
{
    json_t *fetch = dig(root, "query", "identity", "fetch", NULL);

    for (size_t i = 0; i < json_array_size(fetch); i++) {
        const char *ns = json_string_value(json_array_get(fetch, i));
        if (ns && strcmp(ns, "ECID") == 0) {
            return true;
        }
    }
    return false;
}

/* The event recording a set-consent call, when it said something about
 * marketing. Its identities come from the body's top-level identityMap. */
static int add_consent_event(json_t *root, td_xdm_request_t *r, int64_t now_ms, td_err_t *err)
{
    json_t *map = json_object_get(root, "identityMap");
    td_event_t ev = { 0 };
    int rc;

    ev.source = "edge";
    ev.ts_ms = now_ms;
    rc = map ? parse_identity_map(map, "/identityMap", &ev, err) : TD_OK;
    if (rc != TD_OK) {
        td_event_release(&ev);
        return rc;
    }
    if (r->consent_marketing == TD_CONSENT_NONE) {
        /* nothing to store, but an ECID given here is still the device's */
        if (ev.ecid && r->ecid == NULL) {
            r->ecid = ev.ecid;
            ev.ecid = NULL;
        }
        td_event_release(&ev);
        return TD_OK;
    }
    ev.type = td_xstrdup("consent");
    ev.consent_marketing = r->consent_marketing;
    td_event_slot_t *s = &r->batch.slots[r->batch.n++];
    s->ev = ev;
    return TD_OK;
}

int td_collect_parse_xdm(const char *body, size_t len, const char *org_id,
                         const td_collect_limits_t *lim, int64_t now_ms, td_xdm_request_t *out,
                         td_err_t *err)
{
    json_error_t jerr;
    json_t *root, *events, *consent;
    char cookie_ecid[TD_COLLECT_MAX_ID + 1];
    size_t n_events;
    int rc = TD_OK;

    *out = (td_xdm_request_t){ 0 };
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return td_err_set_at(err, TD_EINVAL, "", jerr.line, jerr.column, "malformed JSON: %s",
                             jerr.text);
    }
    if (!json_is_object(root)) {
        rc = td_err_set(err, TD_EINVAL, "/", "the body must be an object like {\"events\": [...]}");
        goto out;
    }
    events = json_object_get(root, "events");
    if (events && !json_is_array(events)) {
        rc = td_err_set(err, TD_EINVAL, "/events", "must be an array");
        goto out;
    }
    n_events = json_array_size(events);
    if (n_events > (size_t)lim->max_events) {
        rc = td_err_set(err, TD_ETOOBIG, "/events", "more than %d events in one request",
                        lim->max_events);
        goto out;
    }
    consent = json_object_get(root, "consent");
    if (consent && (rc = parse_consent(consent, out, err)) != TD_OK) {
        goto out;
    }
    out->fetch_ecid = fetches_ecid(root);
    out->batch.slots = td_xcalloc(n_events + 1, sizeof(td_event_slot_t));
    for (size_t i = 0; i < n_events; i++) {
        char path[32];
        td_event_slot_t *s = &out->batch.slots[out->batch.n++];
        snprintf(path, sizeof(path), "/events/%zu", i);
        if (parse_event(json_array_get(events, i), path, lim, now_ms, out, &s->ev, &s->err) !=
            TD_OK) {
            td_event_release(&s->ev);
        }
    }
    if (out->has_consent && (rc = add_consent_event(root, out, now_ms, err)) != TD_OK) {
        goto out;
    }
    for (int i = 0; i < out->batch.n && out->ecid == NULL; i++) {
        if (out->batch.slots[i].err.code == TD_OK && out->batch.slots[i].ev.ecid) {
            out->ecid = td_xstrdup(out->batch.slots[i].ev.ecid);
        }
    }
    if (out->ecid == NULL) {
        find_cookie_ecid(root, org_id, cookie_ecid, sizeof(cookie_ecid));
        out->ecid = cookie_ecid[0] ? td_xstrdup(cookie_ecid) : NULL;
    }
out:
    json_decref(root);
    return rc;
}

void td_xdm_request_release(td_xdm_request_t *r)
{
    if (r == NULL) {
        return;
    }
    td_event_batch_release(&r->batch);
    free(r->ecid);
    for (int i = 0; i < r->n_decision_scopes; i++) {
        free(r->decision_scopes[i]);
    }
    *r = (td_xdm_request_t){ 0 };
}

void td_collect_xdm_set_ecid(td_xdm_request_t *r, const char *ecid)
{
    for (int i = 0; i < r->batch.n; i++) {
        td_event_slot_t *s = &r->batch.slots[i];
        if (s->err.code == TD_OK && s->ev.ecid == NULL) {
            s->ev.ecid = td_xstrdup(ecid);
        }
    }
}

void td_collect_kndctr_name(const char *org_id, const char *key, char *out, size_t len)
{
    /* alloy replaces the first '@' only (orgId.replace("@", "_")) */
    const char *at = strchr(org_id, '@');
    int n = at ? (int)(at - org_id) : (int)strlen(org_id);

    snprintf(out, len, "kndctr_%.*s%s%s_%s", n, org_id, at ? "_" : "", at ? at + 1 : "", key);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void td_collect_kndctr_encode(const char *ecid, td_buf_t *out)
{
    unsigned char msg[16 + TD_COLLECT_MAX_ID];
    size_t n = 0, len = strnlen(ecid, TD_COLLECT_MAX_ID);

    msg[n++] = 0x0A; /* field 1, wire type 2 (length-delimited) */
    for (size_t v = len; n < 12; v >>= 7) {
        msg[n++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        if (v <= 0x7F) {
            break;
        }
    }
    memcpy(msg + n, ecid, len);
    n += len;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)msg[i] << 16;
        w |= i + 1 < n ? (uint32_t)msg[i + 1] << 8 : 0;
        w |= i + 2 < n ? msg[i + 2] : 0;
        td_buf_addc(out, b64url[(w >> 18) & 63]);
        td_buf_addc(out, b64url[(w >> 12) & 63]);
        if (i + 1 < n) {
            td_buf_addc(out, b64url[(w >> 6) & 63]);
        }
        if (i + 2 < n) {
            td_buf_addc(out, b64url[w & 63]);
        }
    }
}

static int b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

/* Decodes base64 in either alphabet; padding ('=' or a URL-encoded "%3D")
 * may only come last. Returns the byte count, or -1. */
static int b64_decode(const char *s, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0, n = 0;
    bool padding = false;

    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '=' ||
            (s[i] == '%' && s[i + 1] == '3' && (s[i + 2] == 'D' || s[i + 2] == 'd'))) {
            padding = true;
            i += s[i] == '%' ? 2 : 0;
            continue;
        }
        int d = b64_digit(s[i]);
        if (d < 0 || padding) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if ((size_t)n == cap) {
                return -1;
            }
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return bits == 6 ? -1 : n; /* one lone character cannot end a quantum */
}

static bool read_varint(const unsigned char *b, size_t n, size_t *off, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*off >= n) {
            return false;
        }
        unsigned char c = b[(*off)++];
        if (shift == 63 && c > 1) {
            return false; /* more than 64 bits */
        }
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            return true;
        }
    }
    return false;
}

int td_collect_kndctr_decode(const char *value, char *ecid, size_t ecid_len)
{
    unsigned char buf[MAX_COOKIE_VALUE];
    size_t off = 0;
    uint64_t tag, len;
    int n;

    if (ecid_len == 0) {
        return TD_EINVAL;
    }
    ecid[0] = '\0';
    if (value == NULL || strnlen(value, MAX_COOKIE_VALUE + 1) > MAX_COOKIE_VALUE ||
        (n = b64_decode(value, buf, sizeof(buf))) <= 0) {
        return TD_EINVAL;
    }
    while (off < (size_t)n) {
        if (!read_varint(buf, (size_t)n, &off, &tag) || (tag >> 3) == 0) {
            return TD_EINVAL;
        }
        switch (tag & 7) {
        case 0:
            if (!read_varint(buf, (size_t)n, &off, &len)) {
                return TD_EINVAL;
            }
            break;
        case 1:
        case 5:
            len = (tag & 7) == 1 ? 8 : 4;
            if (len > (size_t)n - off) {
                return TD_EINVAL;
            }
            off += len;
            break;
        case 2:
            if (!read_varint(buf, (size_t)n, &off, &len) || len > (size_t)n - off) {
                return TD_EINVAL;
            }
            if ((tag >> 3) == 1) {
                if (len >= ecid_len) {
                    return TD_EINVAL;
                }
                memcpy(ecid, buf + off, len);
                ecid[len] = '\0';
                if (!td_collect_ecid_ok(ecid)) {
                    ecid[0] = '\0';
                    return TD_EINVAL;
                }
                return TD_OK;
            }
            off += len;
            break;
        default:
            return TD_EINVAL; /* groups are deprecated and never used here */
        }
    }
    return TD_EINVAL;
}
