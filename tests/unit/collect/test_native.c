/* The native event parser: shapes, fields, normalisation, and every
 * refusal's code, path and reason. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect/collect.h"

static const td_collect_limits_t lim = { .max_events = 3, .max_items = 2 };
static const int64_t now = 1795000000000LL; /* 2026-11-18T11:06:40Z */

static int parse(const char *body, td_event_batch_t *b, td_err_t *err)
{
    return td_collect_parse_native(body, strlen(body), &lim, now, b, err);
}

/* Parses one bare event that must be accepted; the caller releases b. */
static const td_event_t *accept_one(const char *body, td_event_batch_t *b)
{
    td_err_t err = { 0 };

    if (parse(body, b, &err) != TD_OK) {
        fail_msg("request refused: %s (%s) for %s", err.message, err.path, body);
    }
    assert_int_equal(b->n, 1);
    if (b->slots[0].err.code != TD_OK) {
        fail_msg("event refused: %s (%s) for %s", b->slots[0].err.message, b->slots[0].err.path,
                 body);
    }
    return &b->slots[0].ev;
}

/* Checks that body is refused, either whole or as its only event, with code,
 * path and a message containing reason. */
static void refuse(const char *body, int code, const char *path, const char *reason)
{
    td_event_batch_t b;
    td_err_t err = { 0 };
    const td_err_t *e = &err;
    int rc = parse(body, &b, &err);

    if (rc == TD_OK) {
        if (b.n != 1 || b.slots[0].err.code == TD_OK) {
            td_event_batch_release(&b);
            fail_msg("accepted: %s", body);
        }
        e = &b.slots[0].err;
        rc = e->code;
    }
    if (rc != code || strcmp(e->path, path) != 0 || strstr(e->message, reason) == NULL) {
        char got[600];
        snprintf(got, sizeof(got), "rc=%d path=\"%s\" message=\"%s\"", rc, e->path, e->message);
        td_event_batch_release(&b);
        fail_msg("%s: expected rc=%d path=\"%s\" reason~\"%s\", got %s", body, code, path, reason,
                 got);
    }
    /* a refused event holds nothing */
    for (int i = 0; i < b.n; i++) {
        if (b.slots[i].err.code != TD_OK) {
            assert_null(b.slots[i].ev.type);
            assert_null(b.slots[i].ev.items);
        }
    }
    td_event_batch_release(&b);
}

#define E(fields) "{\"type\":\"cart_add\",\"ecid\":\"E1\"" fields "}"

static void test_single_event(void **state)
{
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    ev = accept_one("{\"type\":\"cart_add\",\"ecid\":\"E\",\"email\":\"A@X.io\","
                    "\"items\":[{\"id\":\"S1\",\"price\":9.5,\"quantity\":2}]}",
                    &b);
    assert_true(b.single);
    assert_string_equal(ev->email, "a@x.io");
    assert_int_equal(ev->ts_ms, now);
    assert_int_equal(ev->items[0].quantity, 2);
    assert_string_equal(ev->source, "native");
    td_event_batch_release(&b);
}

static void test_all_fields(void **state)
{
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    ev = accept_one("{\"id\":\"evt-1\",\"type\":\"purchase\",\"ecid\":\"E\",\"email\":\"j@x.io\","
                    "\"customer_id\":\"C-9\",\"cart_id\":\"K1\",\"ts\":\"2026-11-18T00:00:00Z\","
                    "\"items\":[{\"id\":\"S1\",\"name\":\"Coat\",\"price\":59.9,\"quantity\":1,"
                    "\"category\":\"Men:Coats\"}],"
                    "\"order\":{\"id\":\"O1\",\"total\":59.9,\"currency\":\"eur\"},"
                    "\"consent\":{\"marketing\":\"in\"},\"attributes\":{\"b\":1,\"a\":[true]}}",
                    &b);
    assert_string_equal(ev->event_id, "evt-1");
    assert_string_equal(ev->type, "purchase");
    assert_string_equal(ev->customer_id, "C-9");
    assert_string_equal(ev->cart_id, "K1");
    assert_int_equal(ev->ts_ms, 1794960000000LL);
    assert_int_equal(ev->n_items, 1);
    assert_string_equal(ev->items[0].name, "Coat");
    assert_string_equal(ev->items[0].category, "Men:Coats");
    assert_true(ev->items[0].has_price);
    assert_true(ev->items[0].price == 59.9);
    assert_true(ev->has_order);
    assert_string_equal(ev->order.id, "O1");
    assert_true(ev->order.has_total);
    assert_string_equal(ev->order.currency, "EUR");
    assert_int_equal(ev->consent_marketing, TD_CONSENT_IN);
    /* attributes are kept compact with sorted keys */
    assert_string_equal(ev->attributes_json, "{\"a\":[true],\"b\":1}");

    char *doc = td_event_to_json(ev, now);
    assert_non_null(strstr(doc, "\"ts\":\"2026-11-18T00:00:00.000Z\""));
    assert_non_null(strstr(doc, "\"received\":\"2026-11-18T11:06:40.000Z\""));
    assert_non_null(strstr(doc, "\"price\":59.9,"));
    assert_non_null(strstr(doc, "\"currency\":\"EUR\""));
    assert_non_null(strstr(doc, "\"consent\":{\"marketing\":\"in\"}"));
    assert_non_null(strstr(doc, "\"attributes\":{\"a\":[true],\"b\":1}}"));
    free(doc);
    td_event_batch_release(&b);
}

static void test_optional_nulls_are_absent(void **state)
{
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    ev = accept_one(E(",\"id\":null,\"email\":null,\"ts\":null,\"items\":[{\"id\":\"S\","
                      "\"name\":null,\"category\":null}]"),
                    &b);
    assert_null(ev->event_id);
    assert_null(ev->email);
    assert_int_equal(ev->ts_ms, now);
    assert_null(ev->items[0].name);
    assert_false(ev->items[0].has_price);
    assert_false(ev->items[0].has_quantity);
    assert_int_equal(ev->items[0].quantity, 1); /* quantity defaults to 1 */
    assert_false(ev->has_order);
    assert_int_equal(ev->consent_marketing, TD_CONSENT_NONE);
    assert_null(ev->attributes_json);
    td_event_batch_release(&b);
}

static void test_email_normalised(void **state)
{
    static const char *const ok[][2] = {
        { "Jane.Doe@Example.COM", "jane.doe@example.com" },
        { "a@b", "a@b" },
        { "x+tag@sub.example.io", "x+tag@sub.example.io" },
        { "\u00c9lodie@example.fr", "\u00c9lodie@example.fr" }, /* only ASCII is folded */
    };
    char body[256];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(ok); i++) {
        td_event_batch_t b;
        snprintf(body, sizeof(body), "{\"type\":\"identify\",\"email\":\"%s\"}", ok[i][0]);
        const td_event_t *ev = accept_one(body, &b);
        assert_string_equal(ev->email, ok[i][1]);
        td_event_batch_release(&b);
    }
}

static void test_email_refused(void **state)
{
    static const char *const bad[] = {
        "no-at-sign",  "@example.com", "jane@",       "a@b@c",  "jane doe@x.io",
        "<jane@x.io>", "a,b@x.io",     "\\\"q\\\"@x", "a@\\tb",
    };
    char body[512];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        snprintf(body, sizeof(body), "{\"type\":\"identify\",\"email\":\"%s\"}", bad[i]);
        refuse(body, TD_EINVAL, "/email", "not an email address");
    }
    refuse("{\"type\":\"identify\",\"email\":\"\"}", TD_EINVAL, "/email", "must not be empty");
    refuse("{\"type\":\"identify\",\"email\":7}", TD_EINVAL, "/email", "must be a string");
    char *long_email = malloc(300);
    memset(long_email, 'a', 260);
    memcpy(long_email + 250, "@x.io", 6);
    snprintf(body, sizeof(body), "{\"type\":\"identify\",\"email\":\"%s\"}", long_email);
    free(long_email);
    refuse(body, TD_EINVAL, "/email", "longer than 254 bytes");
}

static void test_ts_forms(void **state)
{
    static const struct {
        const char *ts;
        int64_t ms;
    } ok[] = {
        { "\"2026-11-18T00:00:00Z\"", 1794960000000LL },
        { "\"2026-11-18T00:00:00.5Z\"", 1794960000500LL },
        { "\"2026-11-18T00:00:00.123456Z\"", 1794960000123LL },
        { "\"2026-11-18T00:00:00,25Z\"", 1794960000250LL },
        { "\"2026-11-18T01:00:00+01:00\"", 1794960000000LL },
        { "\"2026-11-17T19:30:00-04:30\"", 1794960000000LL },
        { "\"2026-11-18T01:00:00+0100\"", 1794960000000LL },
        { "\"2026-11-18t00:00:00z\"", 1794960000000LL },
        { "\"2026-11-18 00:00:00Z\"", 1794960000000LL },
        { "\"2026-11-18T00:00Z\"", 1794960000000LL },
        { "\"2026-11-18\"", 1794960000000LL },
        { "\"2024-02-29T12:00:00Z\"", 1709208000000LL },
        { "1794960000000", 1794960000000LL },
        { "946684800000", 946684800000LL },            /* 2000-01-01, the earliest */
        { "1795086400000", now + 24LL * 3600 * 1000 }, /* a day ahead: clock skew */
        { "null", now },
    };
    char body[256];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(ok); i++) {
        td_event_batch_t b;
        snprintf(body, sizeof(body), E(",\"ts\":%s"), ok[i].ts);
        const td_event_t *ev = accept_one(body, &b);
        if (ev->ts_ms != ok[i].ms) {
            fail_msg("ts %s: expected %lld, got %lld", ok[i].ts, (long long)ok[i].ms,
                     (long long)ev->ts_ms);
        }
        td_event_batch_release(&b);
    }
}

static void test_ts_refused(void **state)
{
    static const char *const not_rfc[] = {
        "\"yesterday\"",
        "\"2026-11-18T10:00:00\"", /* no zone: ambiguous */
        "\"2026-13-01T00:00:00Z\"",
        "\"2026-02-30T00:00:00Z\"",
        "\"2025-02-29T00:00:00Z\"", /* not a leap year */
        "\"2026-11-18T24:00:00Z\"",
        "\"2026-11-18T10:60:00Z\"",
        "\"2026-11-18T10:00:00+25:00\"",
        "\"2026-11-18T10:00:00+01:\"",
        "\"2026-11-18T10:00:00+1\"",
        "\"2026-11-18T10:00:00.Z\"",
        "\"2026-11-18T10:00:00Zjunk\"",
        "\"26-11-18\"",
        "\"\"",
    };
    char body[256];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(not_rfc); i++) {
        snprintf(body, sizeof(body), E(",\"ts\":%s"), not_rfc[i]);
        refuse(body, TD_EINVAL, "/ts", "not an RFC 3339 time");
    }
    refuse(E(",\"ts\":1.7949e12"), TD_EINVAL, "/ts", "must be an RFC 3339 string or epoch");
    refuse(E(",\"ts\":true"), TD_EINVAL, "/ts", "must be an RFC 3339 string or epoch");
    refuse(E(",\"ts\":{}"), TD_EINVAL, "/ts", "must be an RFC 3339 string or epoch");
    refuse(E(",\"ts\":946684799999"), TD_EINVAL, "/ts", "before the year 2000");
    refuse(E(",\"ts\":1794960000"), TD_EINVAL, "/ts", "before the year 2000 (epoch milliseconds?)");
    refuse(E(",\"ts\":-1"), TD_EINVAL, "/ts", "before the year 2000");
    refuse(E(",\"ts\":\"1999-12-31T23:59:59Z\""), TD_EINVAL, "/ts", "before the year 2000");
    refuse(E(",\"ts\":1795086400001"), TD_EINVAL, "/ts", "more than a day in the future");
    refuse(E(",\"ts\":\"9999-12-31T23:59:59Z\""), TD_EINVAL, "/ts", "more than a day");
    refuse(E(",\"ts\":9223372036854775807"), TD_EINVAL, "/ts", "more than a day in the future");
    refuse(E(",\"ts\":-9223372036854775807"), TD_EINVAL, "/ts", "before the year 2000");
}

static void test_consent_forms(void **state)
{
    static const struct {
        const char *v;
        td_consent_t want;
    } ok[] = {
        { "\"in\"", TD_CONSENT_IN },   { "\"y\"", TD_CONSENT_IN },  { "true", TD_CONSENT_IN },
        { "\"out\"", TD_CONSENT_OUT }, { "\"n\"", TD_CONSENT_OUT }, { "false", TD_CONSENT_OUT },
    };
    static const char *const bad[] = { "\"yes\"", "\"IN\"", "1", "null", "[]", "\"\"" };
    char body[256];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(ok); i++) {
        td_event_batch_t b;
        snprintf(body, sizeof(body), E(",\"consent\":{\"marketing\":%s}"), ok[i].v);
        assert_int_equal(accept_one(body, &b)->consent_marketing, ok[i].want);
        td_event_batch_release(&b);
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        snprintf(body, sizeof(body), E(",\"consent\":{\"marketing\":%s}"), bad[i]);
        refuse(body, TD_EINVAL, "/consent/marketing", "must be \"in\", \"out\"");
    }
    refuse(E(",\"consent\":\"in\""), TD_EINVAL, "/consent", "must be an object");
    refuse(E(",\"consent\":{\"sms\":\"in\"}"), TD_EINVAL, "/consent/sms",
           "unknown consent \"sms\"");

    td_event_batch_t b;
    const td_event_t *ev = accept_one(E(",\"consent\":{}"), &b);
    assert_int_equal(ev->consent_marketing, TD_CONSENT_NONE);
    td_event_batch_release(&b);
}

static void test_ids_as_integers(void **state)
{
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    ev = accept_one("{\"type\":\"purchase\",\"customer_id\":42,\"cart_id\":-7,"
                    "\"items\":[{\"id\":1234567890123}],\"order\":{\"id\":9}}",
                    &b);
    assert_string_equal(ev->customer_id, "42");
    assert_string_equal(ev->cart_id, "-7");
    assert_string_equal(ev->items[0].id, "1234567890123");
    assert_string_equal(ev->order.id, "9");
    td_event_batch_release(&b);

    refuse(E(",\"items\":[{\"id\":1.5}]"), TD_EINVAL, "/items/0/id", "must be a string");
    refuse(E(",\"items\":[{\"id\":null}]"), TD_EINVAL, "/items/0/id", "missing required field");
    refuse(E(",\"items\":[{\"id\":\"\"}]"), TD_EINVAL, "/items/0/id", "must not be empty");
    refuse(E(",\"items\":[{\"id\":\"a\\nb\"}]"), TD_EINVAL, "/items/0/id",
           "must not contain control characters");
    refuse("{\"type\":\"x\",\"customer_id\":true}", TD_EINVAL, "/customer_id", "must be a string");
    refuse(E(",\"cart_id\":[]"), TD_EINVAL, "/cart_id", "must be a string");
    refuse(E(",\"id\":\"\""), TD_EINVAL, "/id", "must not be empty");
    refuse(E(",\"id\":7"), TD_EINVAL, "/id", "must be a string");
}

static void test_string_lengths(void **state)
{
    char *body = malloc(4096), *big = malloc(2048);

    (void)state;
    memset(big, 'x', 2047);
    big[2047] = '\0';
    /* ids up to 256 bytes, names up to 1024, types up to 64 */
    big[256] = '\0';
    snprintf(body, 4096, E(",\"items\":[{\"id\":\"%s\"}]"), big);
    td_event_batch_t b;
    accept_one(body, &b);
    td_event_batch_release(&b);
    big[256] = 'x';
    big[257] = '\0';
    snprintf(body, 4096, E(",\"items\":[{\"id\":\"%s\"}]"), big);
    refuse(body, TD_EINVAL, "/items/0/id", "longer than 256 bytes");
    snprintf(body, 4096, "{\"type\":\"x\",\"ecid\":\"%s\"}", big);
    refuse(body, TD_EINVAL, "/ecid", "longer than 256 bytes");
    snprintf(body, 4096, "{\"type\":\"x\",\"ecid\":\"E\",\"id\":\"%s\"}", big);
    refuse(body, TD_EINVAL, "/id", "longer than 256 bytes");
    big[257] = 'x';
    big[1025] = '\0';
    snprintf(body, 4096, E(",\"items\":[{\"id\":\"S\",\"name\":\"%s\"}]"), big);
    refuse(body, TD_EINVAL, "/items/0/name", "longer than 1024 bytes");
    snprintf(body, 4096, E(",\"items\":[{\"id\":\"S\",\"category\":\"%s\"}]"), big);
    refuse(body, TD_EINVAL, "/items/0/category", "longer than 1024 bytes");
    big[1025] = 'x';
    big[65] = '\0';
    snprintf(body, 4096, "{\"type\":\"%s\",\"ecid\":\"E\"}", big);
    refuse(body, TD_EINVAL, "/type", "longer than 64 bytes");
    free(body);
    free(big);
}

static void test_type_refused(void **state)
{
    (void)state;
    refuse("{\"ecid\":\"E\"}", TD_EINVAL, "/type", "missing required field");
    refuse("{\"ecid\":\"E\",\"type\":null}", TD_EINVAL, "/type", "missing required field");
    refuse("{\"ecid\":\"E\",\"type\":\"\"}", TD_EINVAL, "/type", "must not be empty");
    refuse("{\"ecid\":\"E\",\"type\":3}", TD_EINVAL, "/type", "must be a string");
    refuse("{\"ecid\":\"E\",\"type\":\"cart add\"}", TD_EINVAL, "/type", "got ' '");
    refuse("{\"ecid\":\"E\",\"type\":\"a/b\"}", TD_EINVAL, "/type", "may only contain letters");
    refuse("{\"ecid\":\"E\",\"type\":\"caf\\u00e9\"}", TD_EINVAL, "/type",
           "may only contain letters");

    td_event_batch_t b;
    assert_string_equal(accept_one("{\"ecid\":\"E\",\"type\":\"my.Custom-event:v2_x\"}", &b)->type,
                        "my.Custom-event:v2_x");
    td_event_batch_release(&b);
}

static void test_identity_required(void **state)
{
    (void)state;
    refuse("{\"type\":\"page_view\"}", TD_EINVAL, "/", "needs at least one identity");
    refuse("{\"type\":\"page_view\",\"ecid\":null,\"email\":null}", TD_EINVAL, "/",
           "needs at least one identity");
    refuse("{\"type\":\"page_view\",\"cart_id\":\"K\"}", TD_EINVAL, "/",
           "needs at least one identity");
    refuse("{\"type\":\"page_view\",\"ecid\":\"\"}", TD_EINVAL, "/ecid", "must not be empty");
    refuse("{\"type\":\"page_view\",\"ecid\":1}", TD_EINVAL, "/ecid", "must be a string");
}

static void test_items_refused(void **state)
{
    (void)state;
    refuse(E(",\"items\":{}"), TD_EINVAL, "/items", "must be an array");
    refuse(E(",\"items\":\"S1\""), TD_EINVAL, "/items", "must be an array");
    refuse(E(",\"items\":[\"S1\"]"), TD_EINVAL, "/items/0", "must be an object");
    refuse(E(",\"items\":[{\"id\":\"a\"},null]"), TD_EINVAL, "/items/1", "must be an object");
    refuse(E(",\"items\":[{}]"), TD_EINVAL, "/items/0/id", "missing required field");
    refuse(E(",\"items\":[{\"name\":\"x\"}]"), TD_EINVAL, "/items/0/id", "missing required field");
    refuse(E(",\"items\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}]"), TD_ETOOBIG, "/items",
           "more than 2 items");
    refuse(E(",\"items\":[{\"id\":\"a\",\"sku\":\"b\"}]"), TD_EINVAL, "/items/0/sku",
           "unknown field \"sku\"");
    refuse(E(",\"items\":[{\"id\":\"a\",\"a/b~c\":1}]"), TD_EINVAL, "/items/0/a~1b~0c",
           "unknown field");
    refuse(E(",\"items\":[{\"id\":\"a\",\"name\":1}]"), TD_EINVAL, "/items/0/name",
           "must be a string");
    refuse(E(",\"items\":[{\"id\":\"a\",\"category\":[]}]"), TD_EINVAL, "/items/0/category",
           "must be a string");
}

static void test_price_and_quantity(void **state)
{
    static const char *const bad_qty[] = { "0", "-1", "1.5", "\"2\"", "1000001", "true", "null" };
    static const char *const bad_price[] = { "-0.01", "1e13", "\"9.5\"", "null", "[]" };
    char body[256];
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(bad_qty); i++) {
        snprintf(body, sizeof(body), E(",\"items\":[{\"id\":\"a\",\"quantity\":%s}]"), bad_qty[i]);
        refuse(body, TD_EINVAL, "/items/0/quantity", "must be an integer from 1 to 1000000");
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(bad_price); i++) {
        snprintf(body, sizeof(body), E(",\"items\":[{\"id\":\"a\",\"price\":%s}]"), bad_price[i]);
        refuse(body, TD_EINVAL, "/items/0/price", "must be");
    }
    /* jansson refuses numbers that do not fit rather than rounding them */
    refuse(E(",\"items\":[{\"id\":\"a\",\"price\":1e400}]"), TD_EINVAL, "", "real number overflow");
    refuse(E(",\"items\":[{\"id\":\"a\",\"quantity\":99999999999999999999999}]"), TD_EINVAL, "",
           "too big integer");

    ev = accept_one(E(",\"items\":[{\"id\":\"a\",\"price\":0,\"quantity\":1000000},"
                      "{\"id\":\"b\",\"price\":12}]"),
                    &b);
    assert_true(ev->items[0].has_price);
    assert_true(ev->items[0].price == 0.0);
    assert_int_equal(ev->items[0].quantity, 1000000);
    assert_true(ev->items[0].has_quantity);
    assert_true(ev->items[1].price == 12.0);
    td_event_batch_release(&b);
}

static void test_order(void **state)
{
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    refuse(E(",\"order\":[]"), TD_EINVAL, "/order", "must be an object");
    refuse(E(",\"order\":{\"id\":\"O\",\"tax\":1}"), TD_EINVAL, "/order/tax",
           "unknown field \"tax\"");
    refuse(E(",\"order\":{\"total\":\"12\"}"), TD_EINVAL, "/order/total", "must be a number");
    refuse(E(",\"order\":{\"total\":2e12}"), TD_EINVAL, "/order/total", "must be between");
    refuse(E(",\"order\":{\"currency\":\"EURO\"}"), TD_EINVAL, "/order/currency",
           "longer than 3 bytes");
    refuse(E(",\"order\":{\"currency\":\"E1R\"}"), TD_EINVAL, "/order/currency",
           "3-letter ISO 4217");
    refuse(E(",\"order\":{\"currency\":\"EU\"}"), TD_EINVAL, "/order/currency",
           "3-letter ISO 4217");
    refuse(E(",\"order\":{\"currency\":\"@[`\"}"), TD_EINVAL, "/order/currency",
           "3-letter ISO 4217");
    refuse(E(",\"order\":{\"id\":{}}"), TD_EINVAL, "/order/id", "must be a string");

    ev = accept_one(E(",\"order\":{}"), &b);
    assert_true(ev->has_order);
    assert_null(ev->order.id);
    assert_false(ev->order.has_total);
    char *doc = td_event_to_json(ev, now);
    assert_non_null(strstr(doc, "\"order\":{}"));
    free(doc);
    td_event_batch_release(&b);

    /* refunds may be negative */
    ev = accept_one(E(",\"order\":{\"total\":-5,\"currency\":\"usd\"}"), &b);
    assert_true(ev->order.total == -5.0);
    assert_string_equal(ev->order.currency, "USD");
    doc = td_event_to_json(ev, now);
    assert_non_null(strstr(doc, "\"order\":{\"total\":-5,\"currency\":\"USD\"}"));
    free(doc);
    td_event_batch_release(&b);
}

static void test_attributes(void **state)
{
    size_t cap = 20000;
    char *body = malloc(cap), *val = malloc(cap);

    (void)state;
    refuse(E(",\"attributes\":[]"), TD_EINVAL, "/attributes", "must be an object");
    refuse(E(",\"attributes\":\"x\""), TD_EINVAL, "/attributes", "must be an object");
    refuse(E(",\"attributes\":null"), TD_EINVAL, "/attributes", "must be an object");

    /* {"k":"vvv..."} serialises to 8 bytes plus the value: 16384 fits exactly */
    memset(val, 'v', 16384 - 8);
    val[16384 - 8] = '\0';
    snprintf(body, cap, E(",\"attributes\":{\"k\":\"%s\"}"), val);
    td_event_batch_t b;
    assert_int_equal(strlen(accept_one(body, &b)->attributes_json), 16384);
    td_event_batch_release(&b);
    val[16384 - 8] = 'v';
    val[16384 - 7] = '\0';
    snprintf(body, cap, E(",\"attributes\":{\"k\":\"%s\"}"), val);
    refuse(body, TD_ETOOBIG, "/attributes", "larger than 16384 bytes");
    free(body);
    free(val);

    /* free-form: any JSON inside, unknown keys welcome */
    const td_event_t *ev =
        accept_one(E(",\"attributes\":{\"z\":{\"y\":[1,2.5,null,\"\\u00e9\"]},\"type\":1}"), &b);
    assert_string_equal(ev->attributes_json,
                        "{\"type\":1,\"z\":{\"y\":[1,2.5,null,\"\xc3\xa9\"]}}");
    td_event_batch_release(&b);
}

static void test_unknown_fields(void **state)
{
    (void)state;
    refuse(E(",\"sku\":\"x\""), TD_EINVAL, "/sku", "unknown field \"sku\" (free-form data goes in");
    refuse(E(",\"Type\":\"x\""), TD_EINVAL, "/Type", "unknown field");
    refuse(E(",\"\":1"), TD_EINVAL, "/", "unknown field \"\"");
    refuse("{\"events\":[],\"extra\":1}", TD_EINVAL, "/extra", "unknown field \"extra\" beside");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    refuse("{\"type\":\"a\",\"type\":\"b\",\"ecid\":\"E\"}", TD_EINVAL, "", "duplicate object key");
    refuse(E(",\"items\":[{\"id\":\"a\",\"id\":\"b\"}]"), TD_EINVAL, "", "duplicate object key");
    refuse("{\"events\":[],\"events\":[]}", TD_EINVAL, "", "duplicate object key");
}

static void test_body_shapes(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    refuse("", TD_EINVAL, "", "malformed JSON");
    refuse("   ", TD_EINVAL, "", "malformed JSON");
    refuse("[]", TD_EINVAL, "/", "must be an event object or {\"events\": [...]}");
    refuse("[{\"type\":\"x\",\"ecid\":\"E\"}]", TD_EINVAL, "/", "must be an event object");
    refuse("\"event\"", TD_EINVAL, "", "malformed JSON"); /* jansson wants an array or object */
    refuse("{\"events\":{}}", TD_EINVAL, "/events", "must be an array");
    refuse("{\"events\":null}", TD_EINVAL, "/events", "must be an array");
    refuse("{\"events\":[]}", TD_EINVAL, "/events", "at least one event");
    refuse("{} {}", TD_EINVAL, "", "malformed JSON");
    refuse("{\"type\":\"x\",\"ecid\":\"E\"", TD_EINVAL, "", "malformed JSON");
    refuse("{\"type\":\"x\",\"ecid\":\"E\\u0000\"}", TD_EINVAL, "", "malformed JSON");
    refuse("{\"type\":\"x\",\"ecid\":\"\xff\"}", TD_EINVAL, "", "malformed JSON");
    refuse("{\"type\":\"x\",\"ecid\":\"\xc3\"}", TD_EINVAL, "", "malformed JSON");
    refuse("{\"type\":\"x\",\"ecid\":\"\xed\xa0\x80\"}", TD_EINVAL, "", "malformed JSON");
    refuse("{\"type\":\"x\",\"ecid\":\"\\ud800\"}", TD_EINVAL, "", "malformed JSON");

    /* a body with a NUL byte in it is malformed, not cut short */
    static const char nul_body[] = "{\"type\":\"x\",\"ecid\":\"E\"}\0garbage";
    assert_int_equal(td_collect_parse_native(nul_body, sizeof(nul_body) - 1, &lim, now, &b, &err),
                     TD_EINVAL);
    td_event_batch_release(&b);

    /* a body that is not NUL-terminated is read only up to len */
    static const char cut[] = "{\"type\":\"x\",\"ecid\":\"E\"}XXXX";
    assert_int_equal(td_collect_parse_native(cut, sizeof(cut) - 5, &lim, now, &b, &err), TD_OK);
    assert_int_equal(b.slots[0].err.code, TD_OK);
    td_event_batch_release(&b);
}

static void test_deep_nesting(void **state)
{
    size_t depth = 100000;
    char *body = malloc(2 * depth + 64);
    size_t n;

    (void)state;
    n = (size_t)snprintf(body, 64, "{\"type\":\"x\",\"ecid\":\"E\",\"attributes\":{\"a\":");
    for (size_t i = 0; i < depth; i++) {
        body[n++] = '[';
    }
    for (size_t i = 0; i < depth; i++) {
        body[n++] = ']';
    }
    memcpy(body + n, "}}", 3);
    refuse(body, TD_EINVAL, "", "malformed JSON");
    free(body);

    /* moderate nesting inside attributes is fine */
    char ok[512];
    n = (size_t)snprintf(ok, 64, "{\"type\":\"x\",\"ecid\":\"E\",\"attributes\":{\"a\":");
    for (int i = 0; i < 100; i++) {
        ok[n++] = '[';
    }
    for (int i = 0; i < 100; i++) {
        ok[n++] = ']';
    }
    memcpy(ok + n, "}}", 3);
    td_event_batch_t b;
    accept_one(ok, &b);
    td_event_batch_release(&b);
}

static void test_item_needs_id(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"events\":[{\"type\":\"cart_add\",\"ecid\":\"E\"},"
                           "{\"type\":\"cart_add\",\"ecid\":\"E\",\"items\":[{}]}]}",
                           &b, &err),
                     TD_OK);
    assert_int_equal(b.slots[0].err.code, TD_OK);
    assert_int_equal(b.slots[1].err.code, TD_EINVAL);
    assert_string_equal(b.slots[1].err.path, "/events/1/items/0/id");
    td_event_batch_release(&b);
}

static void test_batch_paths_and_partial(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"events\":["
                           "{\"type\":\"x\",\"ecid\":\"E\",\"items\":[{\"id\":\"a\"},"
                           "{\"id\":\"b\",\"price\":\"1\"}]},"
                           "7,"
                           "{\"type\":\"x\",\"ecid\":\"E\",\"id\":\"k\"}]}",
                           &b, &err),
                     TD_OK);
    assert_false(b.single);
    assert_int_equal(b.n, 3);
    assert_int_equal(td_event_batch_n_ok(&b), 1);
    assert_string_equal(b.slots[0].err.path, "/events/0/items/1/price");
    assert_string_equal(b.slots[1].err.path, "/events/1");
    assert_non_null(strstr(b.slots[1].err.message, "must be an object"));
    assert_int_equal(b.slots[2].err.code, TD_OK);
    assert_string_equal(b.slots[2].ev.event_id, "k");
    td_event_batch_release(&b);

    /* no identity in a batch names the event */
    assert_int_equal(parse("{\"events\":[{\"type\":\"x\"}]}", &b, &err), TD_OK);
    assert_string_equal(b.slots[0].err.path, "/events/0");
    td_event_batch_release(&b);
}

static void test_too_many_events(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"events\":[{},{},{},{}]}", &b, &err), TD_ETOOBIG);
    assert_string_equal(err.path, "/events");
    assert_non_null(strstr(err.message, "more than 3 events"));
    td_event_batch_release(&b);
    assert_int_equal(parse("{\"events\":[{},{},{}]}", &b, &err), TD_OK);
    assert_int_equal(b.n, 3);
    td_event_batch_release(&b);
}

static void test_malformed_json_has_position(void **state)
{
    td_event_batch_t b;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(parse("{\"type\":\n  \"x\",,}", &b, &err), TD_EINVAL);
    assert_int_equal(err.line, 2);
    assert_true(err.column > 0);
    td_event_batch_release(&b);
}

static void test_event_json_escapes(void **state)
{
    td_event_batch_t b;
    const td_event_t *ev;

    (void)state;
    ev = accept_one(E(",\"email\":\"a@b\",\"items\":[{\"id\":\"q\\\"\\\\\",\"name\":"
                      "\"line\\nbreak\\ttab\\u0001\"}]"),
                    &b);
    char *doc = td_event_to_json(ev, now);
    assert_non_null(strstr(doc, "\"id\":\"q\\\"\\\\\""));
    assert_non_null(strstr(doc, "\"name\":\"line\\nbreak\\ttab\\u0001\""));
    td_event_batch_release(&b);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_event),
        cmocka_unit_test(test_all_fields),
        cmocka_unit_test(test_optional_nulls_are_absent),
        cmocka_unit_test(test_email_normalised),
        cmocka_unit_test(test_email_refused),
        cmocka_unit_test(test_ts_forms),
        cmocka_unit_test(test_ts_refused),
        cmocka_unit_test(test_consent_forms),
        cmocka_unit_test(test_ids_as_integers),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_type_refused),
        cmocka_unit_test(test_identity_required),
        cmocka_unit_test(test_items_refused),
        cmocka_unit_test(test_price_and_quantity),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_body_shapes),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_item_needs_id),
        cmocka_unit_test(test_batch_paths_and_partial),
        cmocka_unit_test(test_too_many_events),
        cmocka_unit_test(test_malformed_json_has_position),
        cmocka_unit_test(test_event_json_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
