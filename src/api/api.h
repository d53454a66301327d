/* The HTTP API: one file per endpoint family, all sharing the application
 * context below. Handlers parse requests, call domain modules, and reply;
 * they contain no SQL and never touch MHD types. */
#ifndef TD_API_H
#define TD_API_H

#include "catalog/catalog.h"
#include "collect/collect.h"
#include "http/http.h"
#include "journey/journey.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/config.h"

typedef struct td_app {
    const td_config_t *cfg;
    td_store_t *store;
    td_ingest_t *ingest;
    td_clock_t *clock;
    td_collect_limits_t limits;
    int64_t started_ms;
    td_catalog_t *catalog; /* the in-memory catalog index, kept current */
    /* the journey engine: triggers, timers, steps */
    td_journey_engine_t *journeys;
    /* the outbox sender (NULL when not sending) */
    struct td_outbox *outbox;
    /* the recommendation service (recs_service.c) */
    struct td_recs *recs;
} td_app_t;

/* Every route of the server, ending with a NULL method. */
extern const td_http_route_t td_api_routes[];

/* The virtual clock's time, kept in the store so a restart resumes from it.
 * load returns TD_ENOTFOUND before the first save. */
int td_api_clock_load(td_store_t *store, int64_t *now_ms) TD_MUST_CHECK;
int td_api_clock_save(td_store_t *store, int64_t now_ms) TD_MUST_CHECK;

/* Registers metric descriptions; call once at start-up. */
void td_api_init_metrics(void);

/* Shared by the event endpoints: submits a parsed batch and replies with the
 * per-event results once it is committed. Takes ownership of batch. */
void td_api__ingest_and_reply(td_http_req_t *req, td_app_t *app, td_event_batch_t *batch,
                              const char *source);

void td_api_events_post(td_http_req_t *req, void *app);
void td_api_profiles_get(td_http_req_t *req, void *app);
void td_api_healthz(td_http_req_t *req, void *app);
void td_api_metrics(td_http_req_t *req, void *app);
void td_api_clock_get(td_http_req_t *req, void *app);
void td_api_clock_advance(td_http_req_t *req, void *app);
/* POST /ee/...: the Adobe Edge Network endpoints the Web SDK calls (edge.c). */
void td_api_edge_post(td_http_req_t *req, void *app);
/* GET /web/...: static files from web_dir (static.c). */
void td_api_static_get(td_http_req_t *req, void *app);
/* Replies with doc as JSON and releases it. */
void td_api__reply_doc(td_http_req_t *req, int status, json_t *doc);
/* Replies with the file rel below dir (same rules as /web/: known types
 * only, nothing outside dir, 404 otherwise). */
void td_api__serve_file(td_http_req_t *req, const char *dir, const char *rel);
/* /demo/...: the demo shop, its mailbox and their JSON (demo.c); 404 unless
 * the server runs as `tandem demo` (demo_mailbox set). */
void td_api_demo_static(td_http_req_t *req, void *app);
void td_api_demo_image(td_http_req_t *req, void *app);
void td_api_demo_config(td_http_req_t *req, void *app);
void td_api_demo_categories(td_http_req_t *req, void *app);
void td_api_demo_products(td_http_req_t *req, void *app);
void td_api_demo_product(td_http_req_t *req, void *app);
void td_api_demo_mailbox(td_http_req_t *req, void *app);
void td_api_demo_mail(td_http_req_t *req, void *app);
void td_api_demo_journeys(td_http_req_t *req, void *app);
void td_api_demo_advance(td_http_req_t *req, void *app);
/* The catalog API (entities.c). */
void td_api_entities_import(td_http_req_t *req, void *app);
void td_api_entities_list(td_http_req_t *req, void *app);
void td_api_entity_get(td_http_req_t *req, void *app);
void td_api_entity_put(td_http_req_t *req, void *app);
void td_api_entity_delete(td_http_req_t *req, void *app);
void td_api_entities_purge(td_http_req_t *req, void *app);

/* Tracking links of emails, public (tracking.c): open pixel, click
 * redirect, unsubscribe page and RFC 8058 one-click unsubscribe. */
void td_api_track_open(td_http_req_t *req, void *app);
void td_api_track_click(td_http_req_t *req, void *app);
void td_api_track_unsub_get(td_http_req_t *req, void *app);
void td_api_track_unsub_post(td_http_req_t *req, void *app);

/* Journeys (journeys.c): definitions, publishing, reports, instances. */
void td_api_journeys_list(td_http_req_t *req, void *app);
void td_api_journey_get(td_http_req_t *req, void *app);
void td_api_journey_put(td_http_req_t *req, void *app);
void td_api_journey_delete(td_http_req_t *req, void *app);
void td_api_journey_validate(td_http_req_t *req, void *app);
void td_api_journey_publish(td_http_req_t *req, void *app);
void td_api_journey_pause(td_http_req_t *req, void *app);
void td_api_journey_resume(td_http_req_t *req, void *app);
void td_api_journey_stop(td_http_req_t *req, void *app);
void td_api_journey_report(td_http_req_t *req, void *app);
void td_api_journey_instances(td_http_req_t *req, void *app);
void td_api_journey_instance(td_http_req_t *req, void *app);
void td_api_profile_journeys(td_http_req_t *req, void *app);
void td_api_outbox_list(td_http_req_t *req, void *app);


/* Email templates (templates.c), the suppression list (suppressions.c) and
 * the outbox report of a journey (messages.c). */
void td_api_templates_list(td_http_req_t *req, void *app);
void td_api_template_get(td_http_req_t *req, void *app);
void td_api_template_put(td_http_req_t *req, void *app);
void td_api_template_delete(td_http_req_t *req, void *app);
void td_api_template_preview(td_http_req_t *req, void *app);
void td_api_suppressions_list(td_http_req_t *req, void *app);
void td_api_suppressions_post(td_http_req_t *req, void *app);
void td_api_suppression_delete(td_http_req_t *req, void *app);
void td_api_suppressions_import(td_http_req_t *req, void *app);
void td_api_suppressions_export(td_http_req_t *req, void *app);
void td_api_journey_messages(td_http_req_t *req, void *app);
/* The outbox counters of a journey as JSON (targeted, sent, skipped by
 * reason, failed, bounced, retrying, resent_after_crash); NULL on a store
 * error or a store without message tables. You own the result. */
json_t *td_api_messages_report(td_store_t *store, const char *journey_id);

/* The recommendation service (recs_service.c): the engine of src/reco fed
 * by the ingest writer and the catalog index, the criteria and CUSTOM lists,
 * and the journey engine's recommender. */
typedef struct td_recs td_recs_t;
int td_recs_open(td_app_t *app, td_recs_t **out) TD_MUST_CHECK;
void td_recs_close(td_recs_t *r);
/* Validates and stores a criteria under id (the body's "id" must match). */
int td_recs_criteria_put(td_recs_t *r, const char *id, const char *json, size_t len,
                         bool *created, td_err_t *err) TD_MUST_CHECK;
json_t *td_recs_criteria_get(td_recs_t *r, const char *id); /* NULL: none */
json_t *td_recs_criteria_list(td_recs_t *r);
int td_recs_criteria_delete(td_recs_t *r, const char *id) TD_MUST_CHECK;
/* CUSTOM lists (CSV) for criteria with this customId; *n_keys = rows kept. */
int td_recs_custom_put(td_recs_t *r, const char *id, const char *csv, size_t len, int *n_keys,
                       td_err_t *err) TD_MUST_CHECK;
/* A recommendation request (the body of POST /v1/recommendations) to its
 * reply {"items", "criteria", "backup", ...}; you own *out. */
int td_recs_recommend(td_recs_t *r, const json_t *req, json_t **out, td_err_t *err) TD_MUST_CHECK;

/* Designs: an mbox (Delivery API) or decision scope (Edge) name ->
 * {"criteria": id or inline, "count", "html"}. get with or_criteria also
 * answers a criteria id used as a name (count 10). */
int td_recs_design_put(td_recs_t *r, const char *name, const char *json, size_t len,
                       bool *created, td_err_t *err) TD_MUST_CHECK;
json_t *td_recs_design_get(td_recs_t *r, const char *name, bool or_criteria);
json_t *td_recs_designs_list(td_recs_t *r);
int td_recs_design_delete(td_recs_t *r, const char *name) TD_MUST_CHECK;

/* Recommendations and criteria (recommendations.c). */
void td_api_criteria_list(td_http_req_t *req, void *app);
void td_api_criteria_get(td_http_req_t *req, void *app);
void td_api_criteria_put(td_http_req_t *req, void *app);
void td_api_criteria_delete(td_http_req_t *req, void *app);
void td_api_criteria_custom_put(td_http_req_t *req, void *app);
void td_api_recommendations_post(td_http_req_t *req, void *app);
void td_api_recommendations_get(td_http_req_t *req, void *app);
void td_api_designs_list(td_http_req_t *req, void *app);
void td_api_design_get(td_http_req_t *req, void *app);
void td_api_design_put(td_http_req_t *req, void *app);
void td_api_design_delete(td_http_req_t *req, void *app);
/* POST /rest/v1/delivery: Adobe Target's Delivery API (delivery.c). */
void td_api_delivery_post(td_http_req_t *req, void *app);

#endif
