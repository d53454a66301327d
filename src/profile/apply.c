/* Deriving profile state from events, inside the ingest transaction.
 *
 * Identity resolution: every identity an event carries points to one
 * profile. When they point to different profiles (an ECID that logs in with
 * an email already known from another device) the profiles merge into the
 * oldest one, as a shopper would expect: one cart, one history. */
#include "profile/profile.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

bool td_profile_ns_valid(const char *ns)
{
    return strcmp(ns, TD_NS_ECID) == 0 || strcmp(ns, TD_NS_EMAIL) == 0 ||
           strcmp(ns, TD_NS_CUSTOMER) == 0;
}

static int resolve_once(td_store_conn_t *c, const td_event_t *ev, int64_t now_ms, int viewed_max,
                        int64_t *out)
{
    const char *ns[3] = { TD_NS_ECID, TD_NS_EMAIL, TD_NS_CUSTOMER };
    const char *ids[3] = { ev->ecid, ev->email, ev->customer_id };
    int64_t found[3] = { 0, 0, 0 }, pid = 0;
    int rc;

    for (int i = 0; i < 3; i++) {
        if (ids[i] == NULL) {
            continue;
        }
        rc = td_store_identity_find(c, ns[i], ids[i], &found[i]);
        if (rc == TD_ENOTFOUND) {
            found[i] = 0;
        } else if (rc != TD_OK) {
            return rc;
        } else if (pid == 0 || found[i] < pid) {
            pid = found[i];
        }
    }
    if (pid == 0 && (rc = td_store_profile_create(c, now_ms, &pid)) != TD_OK) {
        return rc;
    }
    for (int i = 0; i < 3; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) {
            seen |= found[j] == found[i];
        }
        if (found[i] != 0 && found[i] != pid && !seen) {
            /* the merge moves found[i]'s identities (this one included) */
            td_log(TD_LOG_INFO, "profile", "merge from=%lld into=%lld", (long long)found[i],
                   (long long)pid);
            if ((rc = td_store_profile_merge(c, found[i], pid, now_ms)) != TD_OK ||
                (rc = td_store_viewed_trim(c, pid, viewed_max)) != TD_OK) {
                return rc;
            }
        } else if (ids[i] && found[i] == 0 &&
                   (rc = td_store_identity_link(c, ns[i], ids[i], pid, now_ms)) != TD_OK) {
            return rc;
        }
    }
    *out = pid;
    return TD_OK;
}

/* With several writers (nodes on one database) an identity may be linked
 * between our lookup and our link; the link then reports a conflict and the
 * resolution starts over, now finding it. */
static int resolve(td_store_conn_t *c, const td_event_t *ev, int64_t now_ms, int viewed_max,
                   int64_t *out)
{
    int rc = TD_ECONFLICT;

    for (int attempt = 0; attempt < 3 && rc == TD_ECONFLICT; attempt++) {
        rc = resolve_once(c, ev, now_ms, viewed_max, out);
    }
    return rc;
}

static td_store_item_t store_item(const td_item_t *it, int64_t ts_ms)
{
    return (td_store_item_t){ .id = it->id,
                              .name = it->name,
                              .category = it->category,
                              .price = it->price,
                              .has_price = it->has_price,
                              .quantity = it->quantity,
                              .ts_ms = ts_ms };
}

static char *items_json(const td_event_t *ev)
{
    td_buf_t b = TD_BUF_INIT;

    td_buf_addc(&b, '[');
    for (int i = 0; i < ev->n_items; i++) {
        const td_item_t *it = &ev->items[i];
        td_buf_adds(&b, i ? ",{\"id\":" : "{\"id\":");
        td_buf_add_json_str(&b, it->id, strlen(it->id));
        if (it->name) {
            td_buf_adds(&b, ",\"name\":");
            td_buf_add_json_str(&b, it->name, strlen(it->name));
        }
        if (it->has_price) {
            td_buf_adds(&b, ",\"price\":");
            td_buf_add_double(&b, it->price);
        }
        td_buf_addf(&b, ",\"quantity\":%lld}", (long long)it->quantity);
    }
    td_buf_addc(&b, ']');
    return td_buf_detach(&b);
}

static int apply_purchase(td_store_conn_t *c, int64_t pid, const td_event_t *ev)
{
    td_store_purchase_t p = { .order_id = ev->has_order ? ev->order.id : NULL,
                              .ts_ms = ev->ts_ms,
                              .total = ev->order.total,
                              .has_total = ev->has_order && ev->order.has_total,
                              .currency = ev->has_order ? ev->order.currency : NULL,
                              .items_json = items_json(ev) };
    int rc = td_store_purchase_add(c, pid, &p);

    free(p.items_json);
    if (rc != TD_OK) {
        return rc;
    }
    /* Bought items leave the cart; a purchase that lists no items is taken
     * as checking out the whole cart. */
    if (ev->n_items == 0) {
        return td_store_cart_clear(c, pid);
    }
    for (int i = 0; i < ev->n_items && rc == TD_OK; i++) {
        rc = td_store_cart_remove(c, pid, ev->items[i].id, 0, true);
    }
    return rc;
}

static int apply_state(td_store_conn_t *c, int64_t pid, const td_event_t *ev, int viewed_max)
{
    int rc = TD_OK;

    if (strcmp(ev->type, "product_view") == 0) {
        for (int i = 0; i < ev->n_items && rc == TD_OK; i++) {
            td_store_item_t it = store_item(&ev->items[i], ev->ts_ms);
            rc = td_store_viewed_add(c, pid, &it, viewed_max);
        }
    } else if (strcmp(ev->type, "cart_add") == 0) {
        for (int i = 0; i < ev->n_items && rc == TD_OK; i++) {
            td_store_item_t it = store_item(&ev->items[i], ev->ts_ms);
            rc = td_store_cart_add(c, pid, &it);
        }
    } else if (strcmp(ev->type, "cart_remove") == 0) {
        /* a quantity lowers the line; no quantity removes it */
        for (int i = 0; i < ev->n_items && rc == TD_OK; i++) {
            const td_item_t *it = &ev->items[i];
            rc = td_store_cart_remove(c, pid, it->id, it->quantity, !it->has_quantity);
        }
    } else if (strcmp(ev->type, "purchase") == 0) {
        rc = apply_purchase(c, pid, ev);
    }
    if (rc == TD_OK && ev->consent_marketing != TD_CONSENT_NONE) {
        rc = td_store_consent_set(c, pid, ev->consent_marketing == TD_CONSENT_IN ? 1 : 2, ev->ts_ms,
                                  ev->source);
    }
    return rc;
}

int td_profile_apply(td_store_conn_t *c, const td_event_t *ev, const char *doc, int64_t received_ms,
                     int viewed_max, int64_t *profile_id, int64_t *seq)
{
    int64_t pid;
    int rc;

    /* a retry of a stored event changes nothing, not even identities */
    if (ev->event_id) {
        rc = td_store_event_seq_by_key(c, ev->event_id, seq);
        if (rc == TD_OK) {
            *profile_id = 0;
            return TD_ECONFLICT;
        }
        if (rc != TD_ENOTFOUND) {
            return rc;
        }
    }
    if ((rc = resolve(c, ev, received_ms, viewed_max, &pid)) != TD_OK) {
        return rc;
    }
    td_store_event_t row = { .event_id = ev->event_id,
                             .type = ev->type,
                             .profile_id = pid,
                             .ts_ms = ev->ts_ms,
                             .received_ms = received_ms,
                             .doc = doc };
    rc = td_store_event_append(c, &row, seq);
    *profile_id = pid;
    if (rc != TD_OK) {
        return rc;
    }
    return apply_state(c, pid, ev, viewed_max);
}

int td_profile_lookup(td_store_conn_t *c, const char *ns, const char *id, td_store_profile_t *out)
{
    int64_t pid;
    int rc;

    if ((rc = td_store_identity_find(c, ns, id, &pid)) != TD_OK) {
        return rc;
    }
    return td_store_profile_load(c, pid, out);
}
