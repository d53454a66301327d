/* The Edge (XDM) parser and the kndctr identity cookie: mapping, and every
 * kind of nasty input refused or ignored without harm. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect/collect.h"

static const td_collect_limits_t lim = { .max_events = 3, .max_items = 2 };
static const int64_t now = 1795000000000LL;
static const char *const org = "ORG1@AdobeOrg";

static int parse(const char *body, td_xdm_request_t *r, td_err_t *err)
{
    return td_collect_parse_xdm(body, strlen(body), org, &lim, now, r, err);
}

/* Parses one event and returns its slot (the request stays in *r). */
static td_event_slot_t *one(const char *xdm, td_xdm_request_t *r)
{
    char body[8192];
    td_err_t err = { 0 };

    snprintf(body, sizeof(body), "{\"events\":[{\"xdm\":%s}]}", xdm);
    if (parse(body, r, &err) != TD_OK) {
        fail_msg("%s: %s %s", xdm, err.path, err.message);
    }
    assert_int_equal(r->batch.n, 1);
    return &r->batch.slots[0];
}

static void test_alloy_interact(void **state)
{
    td_xdm_request_t r;
    td_err_t err = { 0 };
    const char *body =
        "{\"events\":[{\"xdm\":{\"eventType\":\"commerce.productListAdds\","
        "\"_id\":\"3f1c\",\"timestamp\":\"2026-11-10T10:00:00.000Z\","
        "\"identityMap\":{\"Email\":[{\"id\":\"a@x.io\"},{\"id\":\"Jane@X.io\",\"primary\":true}]},"
        "\"commerce\":{\"productListAdds\":{\"value\":1},\"cart\":{\"cartID\":\"C-1\"}},"
        "\"productListItems\":[{\"SKU\":\"COAT\",\"name\":\"Coat\",\"priceTotal\":119.8,"
        "\"quantity\":2,\"currencyCode\":\"EUR\",\"productCategories\":[{\"categoryID\":\"M:C\"}]},"
        "{\"SKU\":42}],"
        "\"web\":{\"webPageDetails\":{\"URL\":\"https://s/p\",\"name\":\"p\"}},"
        "\"implementationDetails\":{\"name\":\"https://ns.adobe.com/experience/alloy\"}},"
        "\"data\":{\"k\":[1,2]},"
        "\"query\":{\"personalization\":{\"decisionScopes\":[\"__view__\",\"reco\",\"reco\",7]}}}],"
        "\"query\":{\"identity\":{\"fetch\":[\"ECID\"]}},"
        "\"meta\":{\"state\":{\"domain\":\"x.io\",\"cookiesEnabled\":true}}}";

    (void)state;
    assert_int_equal(parse(body, &r, &err), TD_OK);
    assert_true(r.fetch_ecid);
    assert_null(r.ecid);
    assert_int_equal(r.n_decision_scopes, 2);
    assert_string_equal(r.decision_scopes[1], "reco");
    td_event_t *ev = &r.batch.slots[0].ev;
    assert_int_equal(r.batch.slots[0].err.code, TD_OK);
    assert_string_equal(ev->type, "cart_add");
    assert_string_equal(ev->source, "edge");
    assert_string_equal(ev->event_id, "3f1c");
    assert_string_equal(ev->email, "jane@x.io");
    assert_string_equal(ev->cart_id, "C-1");
    assert_null(ev->ecid);
    assert_true(ev->ts_ms < now);
    assert_int_equal(ev->n_items, 2);
    assert_string_equal(ev->items[0].id, "COAT");
    assert_string_equal(ev->items[0].category, "M:C");
    assert_int_equal(ev->items[0].quantity, 2);
    assert_true(ev->items[0].has_price);
    assert_true(ev->items[0].price > 59.89 && ev->items[0].price < 59.91);
    assert_string_equal(ev->items[1].id, "42");
    assert_false(ev->items[1].has_price);
    assert_int_equal(ev->items[1].quantity, 1);
    assert_non_null(strstr(ev->attributes_json, "\"eventType\":\"commerce.productListAdds\""));
    assert_non_null(strstr(ev->attributes_json, "\"url\":\"https://s/p\""));
    assert_non_null(strstr(ev->attributes_json, "\"data\":{\"k\":[1,2]}"));
    td_collect_xdm_set_ecid(&r, "E1");
    assert_string_equal(ev->ecid, "E1");
    td_xdm_request_release(&r);
}

static void test_event_types(void **state)
{
    static const struct {
        const char *xdm, *type;
    } cases[] = {
        { "{\"eventType\":\"commerce.productViews\"}", "product_view" },
        { "{\"eventType\":\"commerce.productListRemovals\"}", "cart_remove" },
        { "{\"eventType\":\"commerce.purchases\"}", "purchase" },
        { "{\"eventType\":\"web.webpagedetails.pageViews\"}", "page_view" },
        { "{\"eventType\":\"web.webPageDetails.pageViews\"}", "page_view" },
        { "{\"eventType\":\"commerce.checkouts\"}", "commerce.checkouts" },
        { "{\"eventType\":\"my event/ü\"}", "my_event___" },
        { "{\"eventType\":\"\"}", "edge.event" },
        { "{\"eventType\":null}", "edge.event" },
        { "{}", "edge.event" },
        { "{\"commerce\":{\"purchases\":{\"value\":1}}}", "purchase" },
        { "{\"commerce\":{\"productViews\":{\"value\":0}}}", "edge.event" },
        { "{\"web\":{\"webPageDetails\":{\"pageViews\":{\"value\":1}}}}", "page_view" },
        { "{\"eventType\":\"commerce.productViews.extra\"}", "commerce.productViews.extra" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_xdm_request_t r;
        td_event_slot_t *s = one(cases[i].xdm, &r);
        assert_int_equal(s->err.code, TD_OK);
        assert_string_equal(s->ev.type, cases[i].type);
        td_xdm_request_release(&r);
    }
}

static void test_clock_far_off(void **state)
{
    static const char *const xdm[] = { "{\"timestamp\":\"2199-01-01T00:00:00Z\"}",
                                       "{\"timestamp\":\"1970-01-01T00:00:00Z\"}" };

    (void)state;
    for (size_t i = 0; i < sizeof(xdm) / sizeof(xdm[0]); i++) {
        td_xdm_request_t r;
        td_event_slot_t *s = one(xdm[i], &r);
        assert_int_equal(s->err.code, TD_OK);
        assert_int_equal(s->ev.ts_ms, now);
        td_xdm_request_release(&r);
    }
}

static void test_timezone_offset(void **state)
{
    td_xdm_request_t r;

    (void)state;
    /* getTimezoneOffset() semantics: -330 is UTC+05:30, 300 is UTC-05:00 */
    td_event_slot_t *s = one("{\"eventType\":\"web.webpagedetails.pageViews\","
                             "\"placeContext\":{\"localTimezoneOffset\":-330}}",
                             &r);
    assert_non_null(strstr(s->ev.attributes_json, "\"timezone\":\"+05:30\""));
    td_xdm_request_release(&r);
    s = one("{\"eventType\":\"x\",\"placeContext\":{\"localTimezoneOffset\":300}}", &r);
    assert_non_null(strstr(s->ev.attributes_json, "\"timezone\":\"-05:00\""));
    td_xdm_request_release(&r);
    s = one("{\"eventType\":\"x\",\"placeContext\":{\"localTimezoneOffset\":99999}}", &r);
    assert_true(s->ev.attributes_json == NULL || !strstr(s->ev.attributes_json, "timezone"));
    td_xdm_request_release(&r);
}

static void test_long_type_is_cut(void **state)
{
    char xdm[512];
    td_xdm_request_t r;

    (void)state;
    snprintf(xdm, sizeof(xdm), "{\"eventType\":\"%0300d\"}", 7);
    td_event_slot_t *s = one(xdm, &r);
    assert_int_equal(s->err.code, TD_OK);
    assert_int_equal(strlen(s->ev.type), 64);
    /* too long to keep as the original either */
    assert_null(s->ev.attributes_json);
    td_xdm_request_release(&r);
}

static void test_refused_fields(void **state)
{
    static const struct {
        const char *xdm, *path;
    } cases[] = {
        { "{\"eventType\":1}", "/events/0/xdm/eventType" },
        { "{\"_id\":\"\"}", "/events/0/xdm/_id" },
        { "{\"timestamp\":\"soon\"}", "/events/0/xdm/timestamp" },
        { "{\"timestamp\":1}", "/events/0/xdm/timestamp" },
        { "{\"timestamp\":[]}", "/events/0/xdm/timestamp" },
        { "{\"identityMap\":[]}", "/events/0/xdm/identityMap" },
        { "{\"identityMap\":{\"ECID\":{}}}", "/events/0/xdm/identityMap/ECID" },
        { "{\"identityMap\":{\"ECID\":[\"x\"]}}", "/events/0/xdm/identityMap/ECID/0" },
        { "{\"identityMap\":{\"ECID\":[{}]}}", "/events/0/xdm/identityMap/ECID/0/id" },
        { "{\"identityMap\":{\"ECID\":[{\"id\":\"a-b\"}]}}",
          "/events/0/xdm/identityMap/ECID/0/id" },
        { "{\"identityMap\":{\"Email\":[{\"id\":\"@\"}]}}",
          "/events/0/xdm/identityMap/Email/0/id" },
        { "{\"identityMap\":{\"CRMID\":[{\"id\":\"a\\u0001\"}]}}",
          "/events/0/xdm/identityMap/CRMID/0/id" },
        { "{\"productListItems\":{}}", "/events/0/xdm/productListItems" },
        { "{\"productListItems\":[1,2,3]}", "/events/0/xdm/productListItems" },
        { "{\"productListItems\":[null]}", "/events/0/xdm/productListItems/0" },
        { "{\"productListItems\":[{}]}", "/events/0/xdm/productListItems/0/SKU" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"quantity\":1.5}]}",
          "/events/0/xdm/productListItems/0/quantity" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"quantity\":1e300}]}",
          "/events/0/xdm/productListItems/0/quantity" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"quantity\":\"2\"}]}",
          "/events/0/xdm/productListItems/0/quantity" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"priceTotal\":1e13}]}",
          "/events/0/xdm/productListItems/0/priceTotal" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"name\":7}]}",
          "/events/0/xdm/productListItems/0/name" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"productCategories\":{}}]}",
          "/events/0/xdm/productListItems/0/productCategories" },
        { "{\"productListItems\":[{\"SKU\":\"A\",\"productCategories\":[1]}]}",
          "/events/0/xdm/productListItems/0/productCategories/0" },
        { "{\"commerce\":{\"order\":[]}}", "/events/0/xdm/commerce/order" },
        { "{\"commerce\":{\"order\":{\"priceTotal\":\"1\"}}}",
          "/events/0/xdm/commerce/order/priceTotal" },
        { "{\"commerce\":{\"order\":{\"currencyCode\":\"E1R\"}}}",
          "/events/0/xdm/commerce/order/currencyCode" },
        { "{\"commerce\":{\"order\":{\"purchaseID\":{}}}}",
          "/events/0/xdm/commerce/order/purchaseID" },
        { "{\"commerce\":{\"cart\":{\"cartID\":\"\"}}}", "/events/0/xdm/commerce/cart/cartID" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_xdm_request_t r;
        td_event_slot_t *s = one(cases[i].xdm, &r);
        if (s->err.code == TD_OK) {
            fail_msg("accepted %s", cases[i].xdm);
        }
        assert_string_equal(s->err.path, cases[i].path);
        /* a refused event owns nothing */
        assert_null(s->ev.type);
        assert_null(s->ev.items);
        td_xdm_request_release(&r);
    }
}

static void test_refused_requests(void **state)
{
    static const struct {
        const char *body;
        int rc;
        const char *path;
    } cases[] = {
        { "", TD_EINVAL, "" },
        { "{", TD_EINVAL, "" },
        { "{\"a\":1,\"a\":2}", TD_EINVAL, "" },
        /* jansson refuses NUL characters in strings, so the whole body goes */
        { "{\"events\":[{\"xdm\":{\"eventType\":\"a\\u0000b\"}}]}", TD_EINVAL, "" },
        { "\"events\"", TD_EINVAL, "" },
        { "[]", TD_EINVAL, "/" },
        { "{\"events\":{}}", TD_EINVAL, "/events" },
        { "{\"events\":[{},{},{},{}]}", TD_ETOOBIG, "/events" },
        { "{\"consent\":{}}", TD_EINVAL, "/consent" },
        { "{\"consent\":[1]}", TD_EINVAL, "/consent/0" },
        { "{\"consent\":[{\"standard\":1}]}", TD_EINVAL, "/consent/0" },
        { "{\"consent\":[{\"standard\":\"Adobe\",\"version\":\"2.0\",\"value\":{\"marketing\":"
          "{\"email\":{\"val\":\"y\"}}}}],\"identityMap\":{\"Email\":[{\"id\":\"x\"}]}}",
          TD_EINVAL, "/identityMap/Email/0/id" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_xdm_request_t r;
        td_err_t err = { 0 };
        assert_int_equal(parse(cases[i].body, &r, &err), cases[i].rc);
        assert_string_equal(err.path, cases[i].path);
        td_xdm_request_release(&r);
    }
}

static void test_empty_and_odd_requests(void **state)
{
    static const char *const ok[] = {
        "{}",
        "{\"events\":[]}",
        "{\"query\":{\"identity\":{\"fetch\":\"ECID\"}}}",
        "{\"query\":{\"identity\":{\"fetch\":[1,null,\"Email\"]}}}",
        "{\"meta\":{\"state\":{\"entries\":{}}}}",
        ("{\"meta\":{\"state\":{\"entries\":[1,{\"key\":1},{\"key\":\"kndctr_ORG1_AdobeOrg_"
         "identity\",\"value\":7}]}}}"),
        "{\"events\":[{\"xdm\":{},\"query\":{\"personalization\":{\"decisionScopes\":\"x\"}}}]}",
        "{\"events\":[{\"xdm\":{},\"query\":[]}],\"unknown\":{\"deep\":[[[]]]}}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        td_xdm_request_t r;
        td_err_t err = { 0 };
        assert_int_equal(parse(ok[i], &r, &err), TD_OK);
        assert_null(r.ecid);
        assert_false(r.fetch_ecid);
        td_xdm_request_release(&r);
    }
}

static void test_ecid_sources(void **state)
{
    td_xdm_request_t r;
    td_err_t err = { 0 };
    td_buf_t cookie = TD_BUF_INIT;
    char body[1024];

    (void)state;
    td_collect_kndctr_encode("12345678901234567890123456789012345678", &cookie);
    /* the cookie in meta.state.entries, for this org only */
    snprintf(body, sizeof(body),
             "{\"events\":[{\"xdm\":{}}],\"meta\":{\"state\":{\"entries\":["
             "{\"key\":\"kndctr_OTHER_AdobeOrg_identity\",\"value\":\"CgNhYmM\"},"
             "{\"key\":\"kndctr_ORG1_AdobeOrg_identity\",\"value\":\"%s\"}]}}}",
             cookie.data);
    assert_int_equal(parse(body, &r, &err), TD_OK);
    assert_string_equal(r.ecid, "12345678901234567890123456789012345678");
    assert_null(r.batch.slots[0].ev.ecid);
    td_xdm_request_release(&r);
    /* an identityMap ECID wins over the cookie */
    snprintf(body, sizeof(body),
             "{\"events\":[{\"xdm\":{}},{\"xdm\":{\"identityMap\":{\"ecid\":[{\"id\":\"E2\"}]}}}],"
             "\"meta\":{\"state\":{\"entries\":[{\"key\":\"kndctr_ORG1_AdobeOrg_identity\","
             "\"value\":\"%s\"}]}}}",
             cookie.data);
    assert_int_equal(parse(body, &r, &err), TD_OK);
    assert_string_equal(r.ecid, "E2");
    td_collect_xdm_set_ecid(&r, r.ecid);
    assert_string_equal(r.batch.slots[0].ev.ecid, "E2");
    td_xdm_request_release(&r);
    /* without an org, no cookie is looked for */
    assert_int_equal(td_collect_parse_xdm(body, strlen(body), NULL, &lim, now, &r, &err), TD_OK);
    assert_string_equal(r.ecid, "E2");
    td_xdm_request_release(&r);
    td_buf_release(&cookie);
}

static void test_consent(void **state)
{
    static const struct {
        const char *consent;
        td_consent_t collect, marketing;
        int n_events;
    } cases[] = {
        { "[{\"standard\":\"Adobe\",\"version\":\"1.0\",\"value\":{\"general\":\"in\"}}]",
          TD_CONSENT_IN, TD_CONSENT_NONE, 0 },
        { "[{\"standard\":\"Adobe\",\"version\":\"1.0\",\"value\":{\"general\":\"out\"}}]",
          TD_CONSENT_OUT, TD_CONSENT_OUT, 1 },
        { "[{\"standard\":\"Adobe\",\"version\":\"2.0\",\"value\":{\"collect\":{\"val\":\"y\"},"
          "\"marketing\":{\"email\":{\"val\":\"y\"},\"any\":{\"val\":\"n\"}}}}]",
          TD_CONSENT_IN, TD_CONSENT_IN, 1 },
        { "[{\"standard\":\"Adobe\",\"version\":\"2.0\",\"value\":{\"collect\":{\"val\":\"n\"},"
          "\"marketing\":{\"any\":{\"val\":\"dy\"}}}}]",
          TD_CONSENT_OUT, TD_CONSENT_IN, 1 },
        { "[{\"standard\":\"Adobe\",\"version\":\"2.0\",\"value\":{\"collect\":{\"val\":\"VI\"}}}]",
          TD_CONSENT_NONE, TD_CONSENT_NONE, 0 },
        { "[{\"standard\":\"Adobe\",\"version\":\"2.0\",\"value\":\"y\"}]", TD_CONSENT_NONE,
          TD_CONSENT_NONE, 0 },
        { "[{\"standard\":\"Adobe\",\"version\":3,\"value\":{}}]", TD_CONSENT_NONE, TD_CONSENT_NONE,
          0 },
        { "[{\"standard\":\"IAB TCF\",\"version\":\"2.0\",\"value\":\"CO12\"}]", TD_CONSENT_NONE,
          TD_CONSENT_NONE, 0 },
        { "[]", TD_CONSENT_NONE, TD_CONSENT_NONE, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        td_xdm_request_t r;
        td_err_t err = { 0 };
        snprintf(body, sizeof(body),
                 "{\"consent\":%s,\"identityMap\":{\"ECID\":[{\"id\":\"C1\"}]}}", cases[i].consent);
        assert_int_equal(parse(body, &r, &err), TD_OK);
        assert_true(r.has_consent);
        assert_int_equal(r.consent_collect, cases[i].collect);
        assert_int_equal(r.consent_marketing, cases[i].marketing);
        assert_int_equal(r.batch.n, cases[i].n_events);
        assert_string_equal(r.ecid, "C1");
        if (r.batch.n) {
            assert_string_equal(r.batch.slots[0].ev.type, "consent");
            assert_int_equal(r.batch.slots[0].ev.consent_marketing, cases[i].marketing);
        }
        td_xdm_request_release(&r);
    }
}

static void test_event_consents(void **state)
{
    td_xdm_request_t r;

    (void)state;
    td_event_slot_t *s = one("{\"consents\":{\"marketing\":{\"email\":{\"val\":\"n\"}}}}", &r);
    assert_int_equal(s->ev.consent_marketing, TD_CONSENT_OUT);
    td_xdm_request_release(&r);
    s = one("{\"consents\":[1]}", &r);
    assert_int_equal(s->err.code, TD_OK);
    assert_int_equal(s->ev.consent_marketing, TD_CONSENT_NONE);
    td_xdm_request_release(&r);
}

static void test_big_data_is_dropped(void **state)
{
    size_t n = 20000;
    char *body = malloc(n + 200);
    td_xdm_request_t r;
    td_err_t err = { 0 };

    (void)state;
    int k =
        snprintf(body, n + 200, "{\"events\":[{\"xdm\":{\"eventType\":\"x\"},\"data\":{\"b\":\"");
    memset(body + k, 'a', n);
    snprintf(body + k + n, 200, "\"}}]}");
    assert_int_equal(parse(body, &r, &err), TD_OK);
    assert_int_equal(r.batch.slots[0].err.code, TD_OK);
    assert_string_equal(r.batch.slots[0].ev.attributes_json,
                        "{\"dataOmitted\":true,\"eventType\":\"x\"}");
    td_xdm_request_release(&r);
    free(body);
}

static void test_scopes_are_capped(void **state)
{
    char body[8192];
    size_t k;
    td_xdm_request_t r;
    td_err_t err = { 0 };

    (void)state;
    k = (size_t)snprintf(body, sizeof(body),
                         "{\"events\":[{\"xdm\":{},\"query\":{\"personalization\":{"
                         "\"decisionScopes\":[");
    for (int i = 0; i < 100; i++) {
        k += (size_t)snprintf(body + k, sizeof(body) - k, "%s\"s%d\"", i ? "," : "", i);
    }
    snprintf(body + k, sizeof(body) - k, "]}}}]}");
    assert_int_equal(parse(body, &r, &err), TD_OK);
    assert_int_equal(r.n_decision_scopes, TD_XDM_MAX_SCOPES);
    td_xdm_request_release(&r);
}

static void test_cookie_name(void **state)
{
    char name[128];

    (void)state;
    td_collect_kndctr_name("ABC@AdobeOrg", "identity", name, sizeof(name));
    assert_string_equal(name, "kndctr_ABC_AdobeOrg_identity");
    td_collect_kndctr_name("A@B@C", "consent", name, sizeof(name));
    assert_string_equal(name, "kndctr_A_B@C_consent");
    td_collect_kndctr_name("plain", "identity", name, sizeof(name));
    assert_string_equal(name, "kndctr_plain_identity");
    td_collect_kndctr_name("plain", "identity", name, 10);
    assert_string_equal(name, "kndctr_pl");
}

static void test_cookie_round_trip(void **state)
{
    static const char *const ids[] = { "1", "AB", "abc", "12345678901234567890123456789012345678",
                                       ("0123456789012345678901234567890123456789012345678901234567"
                                        "890123") };
    char out[65];

    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        td_buf_t b = TD_BUF_INIT;
        td_collect_kndctr_encode(ids[i], &b);
        assert_null(strchr(b.data, '='));
        assert_int_equal(td_collect_kndctr_decode(b.data, out, sizeof(out)), TD_OK);
        assert_string_equal(out, ids[i]);
        td_buf_release(&b);
    }
    /* the documented bytes: 0x0A, length, digits */
    td_buf_t b = TD_BUF_INIT;
    td_collect_kndctr_encode("12345", &b);
    assert_string_equal(b.data, "CgUxMjM0NQ");
    td_buf_release(&b);
    /* standard alphabet and padding, also URL-encoded */
    assert_int_equal(td_collect_kndctr_decode("CgUxMjM0NQ==", out, sizeof(out)), TD_OK);
    assert_string_equal(out, "12345");
    assert_int_equal(td_collect_kndctr_decode("CgUxMjM0NQ%3D%3d", out, sizeof(out)), TD_OK);
    /* other fields before the ECID are skipped: varint 20, fixed64 21,
     * fixed32 22, bytes 10 ("Pb" here = 0x08 0x96 0x01 0x0A...) */
    static const unsigned char msg[] = { 0xA0, 0x01, 0x96, 0x01, 0xA9, 0x01, 1,   2,  3, 4,
                                         5,    6,    7,    8,    0xB5, 0x01, 1,   2,  3, 4,
                                         0x52, 0x02, 0x08, 0x01, 0x0A, 0x02, 'E', '9' };
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char enc[64];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(msg); i += 3) {
        unsigned w = (unsigned)msg[i] << 16 | (i + 1 < sizeof(msg) ? msg[i + 1] << 8 : 0) |
                     (i + 2 < sizeof(msg) ? msg[i + 2] : 0);
        enc[n++] = b64[(w >> 18) & 63];
        enc[n++] = b64[(w >> 12) & 63];
        if (i + 1 < sizeof(msg)) {
            enc[n++] = b64[(w >> 6) & 63];
        }
        if (i + 2 < sizeof(msg)) {
            enc[n++] = b64[w & 63];
        }
    }
    enc[n] = '\0';
    assert_int_equal(td_collect_kndctr_decode(enc, out, sizeof(out)), TD_OK);
    assert_string_equal(out, "E9");
}

static void test_cookie_nasty(void **state)
{
    static const char *const bad[] = {
        "",                   /* nothing */
        "C",                  /* a lone character */
        "Cg==Cg",             /* padding in the middle */
        "Cg%3",               /* a cut escape */
        "Cg!",                /* not base64 */
        "Cg UxMjM0NQ",        /* a space */
        "CgUxMjM0",           /* length 5, only 3 bytes */
        "Cg",                 /* length missing */
        "CgA",                /* an empty ECID */
        "CgMxIDI",            /* "1 2": not an ECID */
        "EgMxMjM",            /* field 2 only */
        "CAE",                /* field 1 as a varint */
        "Cw",                 /* wire type 3 (group) */
        "Dw",                 /* wire type 7 */
        "AgE",                /* field 0 */
        "CP______________AQ", /* varint longer than 10 bytes */
        "CP___________wI",    /* varint of 10 bytes over 64 bits */
        "CQEC",               /* fixed64 cut short */
        "DQEC",               /* fixed32 cut short */
        "Cv____8P",           /* a length of 2^32-1 */
    };
    char out[65];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (td_collect_kndctr_decode(bad[i], out, sizeof(out)) != TD_EINVAL) {
            fail_msg("accepted \"%s\" as %s", bad[i], out);
        }
        assert_string_equal(out, "");
    }
    assert_int_equal(td_collect_kndctr_decode(NULL, out, sizeof(out)), TD_EINVAL);
    /* an ECID longer than the caller's buffer */
    assert_int_equal(td_collect_kndctr_decode("CgUxMjM0NQ", out, 5), TD_EINVAL);
    assert_int_equal(td_collect_kndctr_decode("CgUxMjM0NQ", out, 0), TD_EINVAL);
    /* an ECID of 65 characters */
    td_buf_t b = TD_BUF_INIT;
    char id[66];
    memset(id, '7', 65);
    id[65] = '\0';
    td_collect_kndctr_encode(id, &b);
    char big[200];
    assert_int_equal(td_collect_kndctr_decode(b.data, big, sizeof(big)), TD_EINVAL);
    td_buf_release(&b);
    /* longer than any cookie we read */
    char *huge = malloc(5000);
    memset(huge, 'A', 4999);
    huge[4999] = '\0';
    assert_int_equal(td_collect_kndctr_decode(huge, out, sizeof(out)), TD_EINVAL);
    free(huge);
}

static void test_ecid_ok(void **state)
{
    char s[70];

    (void)state;
    assert_true(td_collect_ecid_ok("1"));
    assert_true(td_collect_ecid_ok("aZ09"));
    assert_false(td_collect_ecid_ok(""));
    assert_false(td_collect_ecid_ok(NULL));
    assert_false(td_collect_ecid_ok("a-b"));
    assert_false(td_collect_ecid_ok("é"));
    memset(s, '1', 64);
    s[64] = '\0';
    assert_true(td_collect_ecid_ok(s));
    s[64] = '1';
    s[65] = '\0';
    assert_false(td_collect_ecid_ok(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloy_interact),    cmocka_unit_test(test_event_types),
        cmocka_unit_test(test_clock_far_off),     cmocka_unit_test(test_long_type_is_cut),
        cmocka_unit_test(test_timezone_offset),   cmocka_unit_test(test_refused_fields),
        cmocka_unit_test(test_refused_requests),  cmocka_unit_test(test_empty_and_odd_requests),
        cmocka_unit_test(test_ecid_sources),      cmocka_unit_test(test_consent),
        cmocka_unit_test(test_event_consents),    cmocka_unit_test(test_big_data_is_dropped),
        cmocka_unit_test(test_scopes_are_capped), cmocka_unit_test(test_cookie_name),
        cmocka_unit_test(test_cookie_round_trip), cmocka_unit_test(test_cookie_nasty),
        cmocka_unit_test(test_ecid_ok),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
