/* Shared by the engine's files (engine.c: runtime; manage.c: admin
 * operations and reports; action_http.c: custom HTTP actions). Not pure:
 * these hold threads, store connections and sockets. */
#ifndef TD_JOURNEY_ENGINE_INTERNAL_H
#define TD_JOURNEY_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "journey/internal.h"
#include "store/store.h"
#include "util/clock.h"

/* ---- custom HTTP actions (action_http.c) ------------------------------ */

typedef struct td_journey_http td_journey_http_t;

/* auth: NAME=bearer:TOKEN or NAME=basic:USER:PASSWORD entries. TD_EINVAL
 * (err names the entry, never the secret) for a malformed one. */
int td_journey__http_new(const char *const *auth, int n_auth, td_journey_http_t **out,
                         td_err_t *err) TD_MUST_CHECK;
void td_journey__http_free(td_journey_http_t *h);
bool td_journey__http_has_auth(const td_journey_http_t *h, const char *name);
/* Makes the call payload describes (see step.c decide_action), with
 * retries and the host's cap and throttle. Always returns a result object
 * (a new reference): {"status": "http_200" | "timedout" | "capped" |
 * "unreachable" | "invalid_response" | "error", "ok", "http_status",
 * "attempts", "duration_ms", "response", ...declared response fields}.
 * *stopping makes it give up quickly (status "error"). */
json_t *td_journey__http_call(td_journey_http_t *h, const json_t *payload,
                              const _Atomic bool *stopping);

/* ---- the engine ------------------------------------------------------- */

typedef struct td_jlive {
    char *id;
    char *status; /* live | paused */
    int64_t version;
    td_journey_def_t *def; /* the live version */
} td_jlive_t;

/* What the ingest hook reads for every event: immutable once published,
 * replaced whole. */
typedef struct td_jsnap {
    _Atomic int refs;
    td_jlive_t *journeys;
    int n;
    char **entry_types; /* entry event types of live journeys */
    int n_entry;
    char **listen_types; /* types that exits or wait_for_event of any version listen to */
    int n_listen;
} td_jsnap_t;

typedef struct td_jcached {
    char *id;
    int64_t version;
    td_journey_def_t *def;
    struct td_jcached *next;
} td_jcached_t;

typedef struct td_jjob {
    int64_t instance_id;
    char *journey_id;
    int attempt;
    json_t *payload;
    struct td_jjob *next;
} td_jjob_t;

struct td_journey_engine {
    td_store_t *store;
    td_clock_t *clock;
    td_journey_defaults_t defaults;
    int batch;
    int max_call_attempts;
    char node[96];
    char *message_domain;
    td_tz_cache_t *tzdb;
    td_journey_http_t *http;
    td_journey_recommend_fn reco;
    td_journey_details_fn details;
    void *reco_ctx;

    pthread_mutex_t mu; /* snap, cache */
    td_jsnap_t *snap;
    td_jcached_t *cache;

    pthread_mutex_t admin_mu; /* one admin change at a time */

    /* the runner */
    bool has_runner;
    pthread_t runner;
    pthread_mutex_t run_mu; /* one batch at a time (runner thread or run_due) */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    bool wake;
    _Atomic bool stopping;
    _Atomic bool pending_wake;

    /* outside calls */
    pthread_t *action_threads;
    int n_action_threads;
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv;
    td_jjob_t *jobs, *jobs_tail;
};

/* A reference to the current snapshot (release with td_journey__snap_release). */
td_jsnap_t *td_journey__snap_get(td_journey_engine_t *eng);
void td_journey__snap_release(td_jsnap_t *s);
/* Rebuilds the snapshot from the store (after an admin change). */
int td_journey__snap_rebuild(td_journey_engine_t *eng) TD_MUST_CHECK;
/* The compiled definition of (id, version), from the cache or the store
 * through c; a reference (td_journey_def_free). TD_ENOTFOUND, TD_EINVAL. */
int td_journey__def_get(td_journey_engine_t *eng, td_store_conn_t *c, const char *id,
                        int64_t version, td_journey_def_t **out) TD_MUST_CHECK;
/* Adds a freshly parsed definition to the cache (takes a reference). */
void td_journey__def_cache_put(td_journey_engine_t *eng, const char *id, int64_t version,
                               td_journey_def_t *def);
void td_journey__def_cache_drop(td_journey_engine_t *eng, const char *id);
/* JSON of an instance row for the API (history included when present). */
json_t *td_journey__instance_json(const td_store_jinstance_t *row);

#endif
