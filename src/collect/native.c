/* The native event API: POST /v1/events with one event or {"events": [...]}.
 * Strict: unknown fields are refused (free-form data goes in "attributes"),
 * so a typo never silently loses data. */
#include "collect/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

static int parse_item(json_t *o, const char *path, td_item_t *it, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    json_object_foreach(o, key, v)
    {
        td_collect__key_path(p, sizeof(p), path, key);
        if (strcmp(key, "id") == 0) {
            rc = td_collect__id(v, p, &it->id, err);
        } else if (strcmp(key, "name") == 0) {
            rc = td_collect__string(v, p, TD_COLLECT_MAX_TEXT, false, &it->name, err);
        } else if (strcmp(key, "category") == 0) {
            rc = td_collect__string(v, p, TD_COLLECT_MAX_TEXT, false, &it->category, err);
        } else if (strcmp(key, "price") == 0) {
            rc = td_collect__number(v, p, 0, 1e12, &it->price, err);
            it->has_price = rc == TD_OK;
        } else if (strcmp(key, "quantity") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 1000000) {
                return td_err_set(err, TD_EINVAL, p, "must be an integer from 1 to 1000000");
            }
            it->quantity = json_integer_value(v);
            it->has_quantity = true;
            rc = TD_OK;
        } else {
            return td_err_set(err, TD_EINVAL, p, "unknown field \"%s\"", key);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    if (it->id == NULL) {
        td_collect__path(p, sizeof(p), path, "/id");
        return td_err_set(err, TD_EINVAL, p, "missing required field");
    }
    if (!it->has_quantity) {
        it->quantity = 1;
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
    ev->items = td_xcalloc(n, sizeof(td_item_t));
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

static int parse_order(json_t *o, const char *path, td_order_t *order, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    json_object_foreach(o, key, v)
    {
        td_collect__key_path(p, sizeof(p), path, key);
        if (strcmp(key, "id") == 0) {
            rc = td_collect__id(v, p, &order->id, err);
        } else if (strcmp(key, "total") == 0) {
            rc = td_collect__number(v, p, -1e12, 1e12, &order->total, err);
            order->has_total = rc == TD_OK;
        } else if (strcmp(key, "currency") == 0) {
            rc = td_collect__string(v, p, 3, false, &order->currency, err);
            if (rc == TD_OK && order->currency) {
                bool ok = strlen(order->currency) == 3;
                for (char *c = order->currency; ok && *c; c++) {
                    ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z');
                    *c = (char)(*c & ~0x20);
                }
                if (!ok) {
                    return td_err_set(err, TD_EINVAL, p, "must be a 3-letter ISO 4217 code");
                }
            }
        } else {
            return td_err_set(err, TD_EINVAL, p, "unknown field \"%s\"", key);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    return TD_OK;
}

static int parse_consent(json_t *o, const char *path, td_event_t *ev, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object like {\"marketing\": \"in\"}");
    }
    json_object_foreach(o, key, v)
    {
        td_collect__key_path(p, sizeof(p), path, key);
        if (strcmp(key, "marketing") != 0) {
            return td_err_set(err, TD_EINVAL, p, "unknown consent \"%s\" (known: marketing)", key);
        }
        int rc = td_collect__consent(v, p, &ev->consent_marketing, err);
        if (rc != TD_OK) {
            return rc;
        }
    }
    return TD_OK;
}

static int parse_event(json_t *o, const char *path, const td_collect_limits_t *lim, int64_t now_ms,
                       td_event_t *ev, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;
    int rc;

    ev->source = "native";
    ev->ts_ms = now_ms;
    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, *path ? path : "/", "an event must be an object");
    }
    json_object_foreach(o, key, v)
    {
        td_collect__key_path(p, sizeof(p), path, key);
        if (strcmp(key, "type") == 0) {
            rc = td_collect__type(v, p, &ev->type, err);
        } else if (strcmp(key, "id") == 0) {
            rc = td_collect__string(v, p, TD_COLLECT_MAX_ID, false, &ev->event_id, err);
        } else if (strcmp(key, "ecid") == 0) {
            rc = td_collect__string(v, p, TD_COLLECT_MAX_ID, false, &ev->ecid, err);
        } else if (strcmp(key, "email") == 0) {
            rc = td_collect__email(v, p, &ev->email, err);
        } else if (strcmp(key, "customer_id") == 0) {
            rc = td_collect__id(v, p, &ev->customer_id, err);
        } else if (strcmp(key, "cart_id") == 0) {
            rc = td_collect__id(v, p, &ev->cart_id, err);
        } else if (strcmp(key, "ts") == 0) {
            rc = td_collect__time(v, p, now_ms, &ev->ts_ms, err);
        } else if (strcmp(key, "items") == 0) {
            rc = parse_items(v, p, lim, ev, err);
        } else if (strcmp(key, "order") == 0) {
            ev->has_order = true;
            rc = parse_order(v, p, &ev->order, err);
        } else if (strcmp(key, "consent") == 0) {
            rc = parse_consent(v, p, ev, err);
        } else if (strcmp(key, "attributes") == 0) {
            if (!json_is_object(v)) {
                return td_err_set(err, TD_EINVAL, p, "must be an object");
            }
            ev->attributes_json = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
            if (ev->attributes_json == NULL || strlen(ev->attributes_json) > TD_COLLECT_MAX_ATTRS) {
                return td_err_set(err, TD_ETOOBIG, p, "larger than %d bytes", TD_COLLECT_MAX_ATTRS);
            }
            rc = TD_OK;
        } else {
            return td_err_set(err, TD_EINVAL, p,
                              "unknown field \"%s\" (free-form data goes in \"attributes\")", key);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    if (ev->type == NULL) {
        td_collect__path(p, sizeof(p), path, "/type");
        return td_err_set(err, TD_EINVAL, p, "missing required field");
    }
    return td_collect__validate(ev, *path ? path : "/", err);
}

static void parse_one(json_t *o, const char *path, const td_collect_limits_t *lim, int64_t now_ms,
                      td_event_slot_t *slot)
{
    if (parse_event(o, path, lim, now_ms, &slot->ev, &slot->err) != TD_OK) {
        td_event_release(&slot->ev);
    }
}

int td_collect_parse_native(const char *body, size_t len, const td_collect_limits_t *lim,
                            int64_t now_ms, td_event_batch_t *out, td_err_t *err)
{
    json_error_t jerr;
    json_t *root, *events;
    int rc = TD_OK;

    *out = (td_event_batch_t){ 0 };
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return td_err_set_at(err, TD_EINVAL, "", jerr.line, jerr.column, "malformed JSON: %s",
                             jerr.text);
    }
    if (!json_is_object(root)) {
        rc = td_err_set(err, TD_EINVAL, "/",
                        "the body must be an event object or {\"events\": [...]}");
        goto out;
    }
    events = json_object_get(root, "events");
    if (events == NULL) {
        out->single = true;
        out->n = 1;
        out->slots = td_xcalloc(1, sizeof(td_event_slot_t));
        parse_one(root, "", lim, now_ms, &out->slots[0]);
        goto out;
    }
    if (json_object_size(root) != 1) {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
            if (strcmp(key, "events") != 0) {
                char p[512];
                snprintf(p, sizeof(p), "/%s", key);
                rc = td_err_set(err, TD_EINVAL, p, "unknown field \"%s\" beside \"events\"", key);
                goto out;
            }
        }
    }
    if (!json_is_array(events)) {
        rc = td_err_set(err, TD_EINVAL, "/events", "must be an array");
        goto out;
    }
    /* an empty batch stores nothing and has no event to report on */
    if (json_array_size(events) == 0) {
        rc = td_err_set(err, TD_EINVAL, "/events", "must hold at least one event");
        goto out;
    }
    if (json_array_size(events) > (size_t)lim->max_events) {
        rc = td_err_set(err, TD_ETOOBIG, "/events", "more than %d events in one request",
                        lim->max_events);
        goto out;
    }
    out->n = (int)json_array_size(events);
    out->slots = td_xcalloc((size_t)out->n, sizeof(td_event_slot_t));
    for (int i = 0; i < out->n; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/events/%d", i);
        parse_one(json_array_get(events, (size_t)i), path, lim, now_ms, &out->slots[i]);
    }
out:
    json_decref(root);
    return rc;
}
