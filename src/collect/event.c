/* The normalised event: release, batches, and the stored JSON document. */
#include "collect/collect.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/banned.h"

void td_event_release(td_event_t *ev)
{
    if (ev == NULL) {
        return;
    }
    for (int i = 0; i < ev->n_items; i++) {
        free(ev->items[i].id);
        free(ev->items[i].name);
        free(ev->items[i].category);
    }
    free(ev->items);
    free(ev->event_id);
    free(ev->type);
    free(ev->ecid);
    free(ev->email);
    free(ev->customer_id);
    free(ev->cart_id);
    free(ev->order.id);
    free(ev->order.currency);
    free(ev->attributes_json);
    *ev = (td_event_t){ 0 };
}

void td_event_batch_release(td_event_batch_t *b)
{
    for (int i = 0; i < b->n; i++) {
        td_event_release(&b->slots[i].ev);
    }
    free(b->slots);
    b->slots = NULL;
    b->n = 0;
}

int td_event_batch_n_ok(const td_event_batch_t *b)
{
    int n = 0;

    for (int i = 0; i < b->n; i++) {
        n += b->slots[i].err.code == TD_OK;
    }
    return n;
}

static void add_str(td_buf_t *b, const char *key, const char *v, bool *first)
{
    if (v == NULL) {
        return;
    }
    td_buf_addf(b, "%s\"%s\":", *first ? "" : ",", key);
    td_buf_add_json_str(b, v, strlen(v));
    *first = false;
}

static void add_num(td_buf_t *b, const char *key, double v, bool *first)
{
    td_buf_addf(b, "%s\"%s\":", *first ? "" : ",", key);
    td_buf_add_double(b, v);
    *first = false;
}

char *td_event_to_json(const td_event_t *ev, int64_t received_ms)
{
    td_buf_t b = TD_BUF_INIT;
    char ts[32], rts[32];
    bool first = true;

    td_time_format_iso(ev->ts_ms, ts, sizeof(ts));
    td_time_format_iso(received_ms, rts, sizeof(rts));
    td_buf_addc(&b, '{');
    add_str(&b, "id", ev->event_id, &first);
    add_str(&b, "type", ev->type, &first);
    add_str(&b, "ecid", ev->ecid, &first);
    add_str(&b, "email", ev->email, &first);
    add_str(&b, "customer_id", ev->customer_id, &first);
    add_str(&b, "cart_id", ev->cart_id, &first);
    add_str(&b, "ts", ts, &first);
    add_str(&b, "received", rts, &first);
    add_str(&b, "source", ev->source, &first);
    if (ev->n_items > 0) {
        td_buf_adds(&b, ",\"items\":[");
        for (int i = 0; i < ev->n_items; i++) {
            const td_item_t *it = &ev->items[i];
            bool f = true;
            td_buf_adds(&b, i ? ",{" : "{");
            add_str(&b, "id", it->id, &f);
            add_str(&b, "name", it->name, &f);
            if (it->has_price) {
                add_num(&b, "price", it->price, &f);
            }
            td_buf_addf(&b, ",\"quantity\":%lld", (long long)it->quantity);
            add_str(&b, "category", it->category, &f);
            td_buf_addc(&b, '}');
        }
        td_buf_addc(&b, ']');
    }
    if (ev->has_order) {
        bool f = true;
        td_buf_adds(&b, ",\"order\":{");
        add_str(&b, "id", ev->order.id, &f);
        if (ev->order.has_total) {
            add_num(&b, "total", ev->order.total, &f);
        }
        add_str(&b, "currency", ev->order.currency, &f);
        td_buf_addc(&b, '}');
    }
    if (ev->consent_marketing != TD_CONSENT_NONE) {
        td_buf_addf(&b, ",\"consent\":{\"marketing\":\"%s\"}",
                    ev->consent_marketing == TD_CONSENT_IN ? "in" : "out");
    }
    if (ev->attributes_json) {
        td_buf_adds(&b, ",\"attributes\":");
        td_buf_adds(&b, ev->attributes_json);
    }
    td_buf_addc(&b, '}');
    return td_buf_detach(&b);
}
