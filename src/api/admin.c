/* Operational endpoints: health, Prometheus metrics, and the clock. */
#include "api/api.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

#define TD_META_VIRTUAL_CLOCK "clock.virtual_ms"

static pthread_mutex_t clock_mu = PTHREAD_MUTEX_INITIALIZER;

int td_api_clock_load(td_store_t *store, int64_t *now_ms)
{
    char *saved = NULL;
    td_store_conn_t *c = td_store_acquire(store);
    int rc = td_store_meta_get(c, TD_META_VIRTUAL_CLOCK, &saved);

    td_store_release(store, c);
    if (rc == TD_OK) {
        *now_ms = strtoll(saved, NULL, 10);
        free(saved);
    }
    return rc;
}

int td_api_clock_save(td_store_t *store, int64_t now_ms)
{
    char value[32];
    td_store_conn_t *c = td_store_acquire(store);
    int rc = td_store_begin(c);

    snprintf(value, sizeof(value), "%lld", (long long)now_ms);
    if (rc == TD_OK) {
        if ((rc = td_store_meta_set(c, TD_META_VIRTUAL_CLOCK, value)) == TD_OK) {
            rc = td_store_commit(c);
        } else {
            td_store_rollback(c);
        }
    }
    td_store_release(store, c);
    return rc;
}

void td_api_healthz(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_buf_t out = TD_BUF_INIT;
    int64_t n = 0;
    td_store_conn_t *c = td_store_acquire(app->store);
    int rc = td_store_event_count(c, &n);

    td_store_release(app->store, c);
    td_buf_addf(&out, "{\"status\":\"%s\",\"store\":\"%s\",\"events\":%lld}",
                rc == TD_OK ? "ok" : "store_unavailable", td_store_backend(app->store),
                (long long)n);
    td_http_reply_json(req, rc == TD_OK ? 200 : 503, &out);
    td_buf_release(&out);
}

void td_api_metrics(td_http_req_t *req, void *ctx)
{
    td_buf_t out = TD_BUF_INIT;

    (void)ctx;
    td_metrics_render(&out);
    td_http_reply(req, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len);
    td_buf_release(&out);
}

static void reply_clock(td_http_req_t *req, td_app_t *app)
{
    td_buf_t out = TD_BUF_INIT;
    char ts[32];
    int64_t now = td_clock_now_ms(app->clock);

    td_time_format_iso(now, ts, sizeof(ts));
    td_buf_addf(&out, "{\"mode\":\"%s\",\"now\":\"%s\",\"now_ms\":%lld}",
                app->clock->is_virtual ? "virtual" : "real", ts, (long long)now);
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}

void td_api_clock_get(td_http_req_t *req, void *ctx)
{
    reply_clock(req, ctx);
}

void td_api_clock_advance(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    size_t len;
    const char *body = td_http_body(req, &len);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr), *secs;
    int64_t now;

    if (!app->clock->is_virtual) {
        json_decref(root);
        td_http_reply_errorf(req, TD_ECONFLICT, NULL,
                             "the clock is real; start the server with --clock virtual");
        return;
    }
    secs = root ? json_object_get(root, "seconds") : NULL;
    if (!json_is_number(secs) || json_number_value(secs) < 0 ||
        json_number_value(secs) > 10.0 * 365 * 86400) {
        json_decref(root);
        td_http_reply_errorf(req, TD_EINVAL, "/seconds",
                             "expected {\"seconds\": N} with 0 <= N <= 10 years");
        return;
    }
    int64_t delta_ms = (int64_t)(json_number_value(secs) * 1000.0);
    json_decref(root);
    /* advance and save under one lock, so saves land in the order of the
     * times they save and a restart never goes back */
    pthread_mutex_lock(&clock_mu);
    int rc = td_clock_advance(app->clock, delta_ms, &now);
    if (rc != TD_OK) {
        pthread_mutex_unlock(&clock_mu);
        td_http_reply_errorf(req, TD_EINVAL, "/seconds", "cannot move the clock");
        return;
    }
    /* the virtual time is durable, so a restart resumes from it */
    rc = td_api_clock_save(app->store, now);
    pthread_mutex_unlock(&clock_mu);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "the clock moved but could not be saved (%s)",
                             td_strerror(rc));
        return;
    }
    td_log(TD_LOG_INFO, "clock", "advance delta_ms=%lld now_ms=%lld", (long long)delta_ms,
           (long long)now);
    td_journey_engine_wake(app->journeys); /* run what became due now */
    reply_clock(req, app);
}
