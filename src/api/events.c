/* POST /v1/events: the native event API. The reply waits for the group
 * commit and says, event by event, what was stored and what was refused. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

typedef struct pending {
    td_http_req_t *req;
    td_event_batch_t batch;
    const char *source;
} pending_t;

void td_api_init_metrics(void)
{
    td_metrics_describe("tandem_events_total", "counter",
                        "events by source and result (accepted, duplicate, refused)");
}

static void add_error(td_buf_t *b, const td_err_t *err)
{
    td_buf_adds(b, "{\"code\":");
    td_buf_add_json_str(b, td_strerror(err->code), strlen(td_strerror(err->code)));
    td_buf_adds(b, ",\"message\":");
    td_buf_add_json_str(b, err->message, strlen(err->message));
    td_buf_adds(b, ",\"path\":");
    td_buf_add_json_str(b, err->path, strlen(err->path));
    td_buf_addc(b, '}');
}

static void count(const char *source, const char *result, int n)
{
    char labels[96];

    if (n > 0) {
        snprintf(labels, sizeof(labels), "source=\"%s\",result=\"%s\"", source, result);
        td_metrics_add("tandem_events_total", labels, n);
    }
}

/* Builds the per-event reply; seqs/dup are NULL when nothing was written. */
static void reply_results(td_http_req_t *req, const td_event_batch_t *b, const int64_t *seqs,
                          const bool *dup, const char *source)
{
    td_buf_t out = TD_BUF_INIT;
    int accepted = 0, refused = 0, duplicates = 0;
    const td_err_t *first_err = NULL;

    for (int i = 0; i < b->n; i++) {
        if (b->slots[i].err.code != TD_OK) {
            refused++;
            first_err = first_err ? first_err : &b->slots[i].err;
        } else if (dup && dup[i]) {
            duplicates++;
        } else {
            accepted++;
        }
    }
    count(source, "accepted", accepted);
    count(source, "duplicate", duplicates);
    count(source, "refused", refused);
    td_buf_addc(&out, '{');
    if (accepted + duplicates == 0 && first_err) {
        td_buf_adds(&out, "\"error\":");
        add_error(&out, first_err);
        td_buf_addc(&out, ',');
    }
    td_buf_addf(&out, "\"accepted\":%d,\"duplicates\":%d,\"refused\":%d,\"results\":[", accepted,
                duplicates, refused);
    for (int i = 0; i < b->n; i++) {
        td_buf_addf(&out, "%s{\"index\":%d,", i ? "," : "", i);
        if (b->slots[i].err.code != TD_OK) {
            td_buf_adds(&out, "\"status\":\"refused\",\"error\":");
            add_error(&out, &b->slots[i].err);
        } else {
            td_buf_addf(&out, "\"status\":\"%s\",\"seq\":%lld",
                        dup && dup[i] ? "duplicate" : "accepted", (long long)(seqs ? seqs[i] : 0));
        }
        td_buf_addc(&out, '}');
    }
    td_buf_adds(&out, "]}");
    td_http_reply_json(
        req,
        accepted + duplicates > 0 || first_err == NULL ? 200 : td_http_status_for(first_err->code),
        &out);
    td_buf_release(&out);
}

static void on_committed(void *ctx, int rc, const int64_t *seqs, const bool *dup)
{
    pending_t *p = ctx;

    if (rc != TD_OK) {
        td_http_add_header(p->req, "Retry-After", "1");
        td_http_reply_errorf(p->req, rc == TD_EBUSY ? TD_EBUSY : TD_EIO, NULL,
                             "events could not be stored (%s); nothing of this request was kept, "
                             "retry it",
                             td_strerror(rc));
    } else {
        reply_results(p->req, &p->batch, seqs, dup, p->source);
    }
    td_http_req_t *req = p->req;
    td_event_batch_release(&p->batch);
    free(p);
    td_http_resume(req);
}

void td_api__ingest_and_reply(td_http_req_t *req, td_app_t *app, td_event_batch_t *batch,
                              const char *source)
{
    if (td_event_batch_n_ok(batch) == 0) {
        reply_results(req, batch, NULL, NULL, source);
        td_event_batch_release(batch);
        return;
    }
    pending_t *p = td_xcalloc(1, sizeof(*p));
    p->req = req;
    p->batch = *batch;
    p->source = source;
    *batch = (td_event_batch_t){ 0 };
    td_http_defer(req);
    td_ingest_submit(app->ingest, &p->batch, td_clock_now_ms(app->clock), on_committed, p);
}

void td_api_events_post(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_event_batch_t batch;
    td_err_t err = { 0 };
    size_t len;
    const char *body = td_http_body(req, &len);
    int rc;

    rc =
        td_collect_parse_native(body, len, &app->limits, td_clock_now_ms(app->clock), &batch, &err);
    if (rc != TD_OK) {
        count("native", "refused", 1);
        td_event_batch_release(&batch);
        td_http_reply_error(req, rc, &err);
        return;
    }
    td_api__ingest_and_reply(req, app, &batch, "native");
}
