/* The ingest hook of the message module, run in each event's transaction:
 * opens, clicks and unsubscribes (the tracking events) are counted per
 * message, and a purchase is credited to the profile's latest email click
 * within attribution_window_hours (journey, step, Message-ID, clicked
 * label, order id, revenue). In the event's transaction, so a crash never
 * keeps the event and loses its effect, and a repeated event changes
 * nothing (the ingest skips duplicates before the hooks). */
#include "message/message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect/collect.h"
#include "store/store.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

#define RECENT_EVENTS 200 /* events looked through for the click */

static const char *attr(const json_t *attrs, const char *name)
{
    return json_string_value(json_object_get(attrs, name));
}

static int on_engagement(td_store_conn_t *c, const td_event_t *ev, const char *kind)
{
    json_error_t jerr;
    json_t *a = ev->attributes_json ? json_loads(ev->attributes_json, 0, &jerr) : NULL;
    const char *mid = attr(a, "message_id"), *agent = attr(a, "agent");
    int rc = TD_OK;

    /* link scanners are not people; privacy proxies may be */
    if (mid && *mid && !(agent && strcmp(agent, "bot") == 0 && strcmp(kind, "unsubscribed"))) {
        rc = td_store_engagement_add(c, mid, attr(a, "journey"), kind, ev->ts_ms);
    }
    json_decref(a);
    return rc;
}

static double order_revenue(const td_event_t *ev)
{
    double sum = 0;

    if (ev->has_order && ev->order.has_total) {
        return ev->order.total;
    }
    for (int i = 0; i < ev->n_items; i++) {
        if (ev->items[i].has_price) {
            sum += ev->items[i].price *
                   (double)(ev->items[i].quantity > 0 ? ev->items[i].quantity : 1);
        }
    }
    return sum;
}

/* A purchase that arrives live is timed by this server's clock, the clock
 * that stamped the clicks: a shopper's device may be minutes off. One that
 * arrives long after its time (a backfill) keeps its own. */
#define LIVE_SKEW_MS (3600 * 1000LL)

static int on_purchase(td_store_conn_t *c, const td_config_t *cfg, const td_event_t *ev,
                       int64_t profile_id, int64_t seq, int64_t received_ms)
{
    td_store_event_row_t *rows = NULL;
    int n = 0, rc;
    int64_t when = llabs(received_ms - ev->ts_ms) <= LIVE_SKEW_MS ? received_ms : ev->ts_ms;
    int64_t since = when - cfg->attribution_window_hours * 3600000LL;

    if ((rc = td_store_events_recent(c, profile_id, RECENT_EVENTS, &rows, &n)) != TD_OK) {
        return rc;
    }
    for (int i = 0; i < n; i++) {
        const td_store_event_row_t *r = &rows[i];
        if (strcmp(r->type, "email_click") != 0 || r->ts_ms > when) {
            continue;
        }
        if (r->ts_ms < since) {
            break; /* newest first: the rest are older still */
        }
        json_error_t jerr;
        json_t *doc = json_loads(r->doc, 0, &jerr), *a = json_object_get(doc, "attributes");
        const char *mid = attr(a, "message_id"), *agent = attr(a, "agent");
        if (mid == NULL || *mid == '\0' || (agent && strcmp(agent, "bot") == 0)) {
            json_decref(doc);
            continue;
        }
        char order_id[300];
        if (ev->has_order && ev->order.id) {
            snprintf(order_id, sizeof(order_id), "%s", ev->order.id);
        } else {
            snprintf(order_id, sizeof(order_id), "event:%lld", (long long)seq);
        }
        td_store_attribution_t at = { .order_id = order_id,
                                      .profile_id = profile_id,
                                      .journey_id = attr(a, "journey"),
                                      .step = attr(a, "step"),
                                      .message_id = mid,
                                      .label = attr(a, "label"),
                                      .revenue = order_revenue(ev),
                                      .ts_ms = when };
        rc = td_store_attribution_add(c, &at);
        if (rc == TD_OK) {
            td_metrics_add("tandem_email_attributed_orders_total", "", 1);
        }
        rc = rc == TD_ECONFLICT ? TD_OK : rc;
        json_decref(doc);
        break;
    }
    td_store_event_rows_free(rows, n);
    return rc;
}

/* Quiet hours need the shopper's time zone: an event that carries one
 * (the Web SDK's placeContext, or a native "attributes.timezone": an offset
 * or an IANA name)
 * keeps the newest as the profile attribute "timezone_from_events", a
 * source below an explicit "timezone" attribute. */
static int remember_event_timezone(struct td_store_conn *conn, const td_event_t *ev,
                                   int64_t profile_id, int64_t now_ms)
{
    int off;

    if (ev->attributes_json == NULL || strstr(ev->attributes_json, "\"timezone\"") == NULL) {
        return TD_OK;
    }
    json_t *attrs = json_loads(ev->attributes_json, 0, NULL);
    const char *tz = json_string_value(json_object_get(attrs, "timezone"));
    int rc = TD_OK;
    /* a fixed offset, or a zone name the system knows at the event's time */
    if (tz && td_tz_cache_offset(td_tz_cache_shared(), tz, ev->ts_ms, &off) == TD_OK) {
        json_t *v = json_string(tz);
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        rc = td_store_profile_attr_set(conn, profile_id, "timezone_from_events", text, now_ms);
        free(text);
        json_decref(v);
    }
    json_decref(attrs);
    return rc == TD_ENOTFOUND ? TD_OK : rc;
}

int td_message_ingest_hook(void *ctx, struct td_store_conn *conn, const td_event_t *ev,
                           int64_t profile_id, int64_t seq, int64_t received_ms)
{
    const td_config_t *cfg = ctx;
    int rc;

    if (profile_id > 0 &&
        (rc = remember_event_timezone(conn, ev, profile_id, received_ms)) != TD_OK) {
        return rc;
    }
    if (strcmp(ev->type, "email_open") == 0) {
        return on_engagement(conn, ev, "opened");
    }
    if (strcmp(ev->type, "email_click") == 0) {
        return on_engagement(conn, ev, "clicked");
    }
    if (strcmp(ev->type, "unsubscribe") == 0) {
        return on_engagement(conn, ev, "unsubscribed");
    }
    if (strcmp(ev->type, "purchase") == 0 && profile_id > 0) {
        return on_purchase(conn, cfg, ev, profile_id, seq, received_ms);
    }
    return TD_OK;
}
