/* GET /v1/journeys/{id}/messages (admin key): what the outbox did with a
 * journey's emails, from the send log: targeted, sent, skipped by reason,
 * failed (bounced), waiting for a retry, in flight, and how many were sent
 * again after a crash. */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

json_t *td_api_messages_report(td_store_t *store, const char *journey_id)
{
    td_store_send_count_t *rows = NULL;
    int n = 0, rc;
    json_int_t targeted = 0, sent = 0, failed = 0, bounced = 0, retry = 0, sending = 0, skipped = 0,
               resent = 0, deferred = 0;
    json_t *reasons = json_object(), *failures = json_object(), *waits = json_object();

    if (!td_store_messages_supported(store)) {
        json_decref(reasons);
        json_decref(failures);
        json_decref(waits);
        return NULL;
    }
    td_store_conn_t *c = td_store_acquire(store);
    rc = td_store_send_counts(c, journey_id, &rows, &n);
    td_store_release(store, c);
    if (rc != TD_OK) {
        json_decref(reasons);
        json_decref(failures);
        json_decref(waits);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const td_store_send_count_t *r = &rows[i];
        targeted += r->n;
        resent += r->resent;
        if (strcmp(r->outcome, "sent") == 0) {
            sent += r->n;
        } else if (strcmp(r->outcome, "failed") == 0) {
            failed += r->n;
            bounced += strcmp(r->reason, "bounced") == 0 ? r->n : 0;
            json_object_set_new(failures, r->reason, json_integer(r->n));
        } else if (strcmp(r->outcome, "retry") == 0) {
            retry += r->n;
        } else if (strcmp(r->outcome, "skipped") == 0) {
            skipped += r->n;
            json_object_set_new(reasons, r->reason, json_integer(r->n));
        } else if (strcmp(r->outcome, "deferred") == 0) {
            deferred += r->n;
            json_object_set_new(waits, r->reason, json_integer(r->n));
        } else {
            sending += r->n;
        }
    }
    td_store_send_counts_free(rows, n);
    json_t *out =
        json_pack("{s:s, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:I, s:I, s:I}", "journey", journey_id,
                  "targeted", targeted, "sent", sent, "skipped", skipped, "skipped_by_reason",
                  reasons, "failed", failed, "bounced", bounced, "failed_by_reason", failures,
                  "retrying", retry, "sending", sending, "resent_after_crash", resent);
    td_store_msg_outcomes_t oc;
    c = td_store_acquire(store);
    rc = td_store_journey_msg_outcomes(c, journey_id, &oc);
    td_store_release(store, c);
    if (rc != TD_OK) {
        json_decref(out);
        json_decref(waits);
        return NULL;
    }
    json_object_set_new(out, "opened", json_integer(oc.opened));
    json_object_set_new(out, "clicked", json_integer(oc.clicked));
    json_object_set_new(out, "unsubscribed", json_integer(oc.unsubscribed));
    json_object_set_new(out, "converted", json_integer(oc.converted));
    json_object_set_new(out, "revenue", json_real(oc.revenue));
    json_object_set_new(out, "deferred", json_integer(deferred));
    json_object_set_new(out, "deferred_by_reason", waits);
    return out;
}

void td_api_journey_messages(td_http_req_t *req, void *arg)
{
    td_app_t *app = arg;
    const char *id = td_http_param(req, "id");
    json_t *doc = id ? td_api_messages_report(app->store, id) : NULL;
    td_buf_t out = TD_BUF_INIT;

    if (doc == NULL) {
        td_http_reply_errorf(req, TD_EIO, NULL, "cannot read the send log");
        return;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    td_buf_adds(&out, text ? text : "{}");
    free(text);
    json_decref(doc);
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}
