/* Customer journeys: who gets which message, and when.
 *
 * A journey is a JSON document (docs/journeys.md): an entry trigger on
 * events, re-entry rules, exit criteria, and a graph of steps (wait,
 * wait_for_event, condition, action, recommend, email, update_profile,
 * jump, end). This header has three parts:
 *
 *  - Pure parts, no I/O, no clock, no globals: the expression language
 *    (expr.c), definition parsing and validation (definition.c, every
 *    error with its JSON pointer), JSON templates with {{ }} expressions
 *    (template.c), and step decisions (step.c).
 *  - The engine (engine.c): entry, exit and wait_for_event matching inside
 *    the ingest transaction, the timer runner thread, step execution in
 *    store transactions, custom HTTP actions (action_http.c, libcurl) and
 *    the outbox rows of the email step.
 *  - The admin operations behind /v1/journeys (put, publish, pause,
 *    report, ...), which return JSON documents for the API and the CLI.
 *
 * JSON values are jansson's json_t: the context that expressions read is
 * JSON by nature (profile, event, action results). */
#ifndef TD_JOURNEY_H
#define TD_JOURNEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/err.h"
#include "util/tz.h"

struct td_store;
struct td_store_conn;
struct td_clock;
struct td_event;

/* ==== Limits ============================================================ */

#define TD_JOURNEY_MAX_DOC         (1024 * 1024) /* bytes of a definition */
#define TD_JOURNEY_MAX_STEPS       256           /* steps in a definition */
#define TD_JOURNEY_MAX_ACTIONS     32            /* custom actions in a definition */
#define TD_JOURNEY_MAX_BRANCHES    32            /* branches of a condition */
#define TD_JOURNEY_MAX_EXITS       16            /* exit criteria */
#define TD_JOURNEY_MAX_ID          64            /* journey, step and action ids */
#define TD_JOURNEY_MAX_EXPR        4096          /* bytes of one expression */
#define TD_JOURNEY_MAX_ERRORS      64            /* errors reported for one definition */
#define TD_JOURNEY_MAX_EXPR_WORK   1000000       /* evaluation steps of one expression */
#define TD_JOURNEY_MAX_RUN_STEPS   64            /* steps one instance runs in one go */
#define TD_JOURNEY_MAX_DURATION_MS (366LL * 86400 * 1000)

/* ==== Expressions =======================================================
 *
 * A small language for conditions and data mapping (docs/journeys.md):
 *   profile.email != null and count(profile.cart) > 0
 *   event.items[0].price * 2 >= 100
 *   count(events since entry where type == "purchase") == 0
 *   actions.recs.status == "http_200" ?? false
 * Names: profile, event (the entry event), trigger (the event being
 * matched), actions, journey, events (the profile's recent events), now and
 * entry (times in epoch ms). Missing fields are null; arithmetic on null is
 * null; comparing null with < or > is false. Parsed once into a tree;
 * evaluation only reads the environment. */

typedef struct td_journey_expr td_journey_expr_t;

/* What an expression reads, so the engine loads only that. */
enum {
    TD_JOURNEY_USES_PROFILE = 1, /* profile.* */
    TD_JOURNEY_USES_EVENTS = 2,  /* events */
    TD_JOURNEY_USES_TRIGGER = 4, /* trigger.* */
    TD_JOURNEY_USES_ACTIONS = 8  /* actions.* */
};

/* UTC offset of time zone `zone` (IANA name, "UTC", or "+02:00") at the
 * instant utc_ms, in seconds east of UTC. TD_ENOTFOUND for an unknown zone.
 * Supplied by the caller, so evaluation stays pure (td_tz_cache_offset). */
typedef int (*td_journey_tz_fn)(void *ctx, const char *zone, int64_t utc_ms, int *offset_s);

/* What an evaluation may read. */
typedef struct td_journey_env {
    const json_t *vars; /* object: profile, event, trigger, actions, journey, events */
    int64_t now_ms;     /* `now` */
    int64_t entry_ms;   /* `entry`: when the instance entered */
    const char *seed;   /* bucket() hashes it (profile id, journey and step); may be NULL */
    td_journey_tz_fn tz;
    void *tz_ctx;
} td_journey_env_t;

/* Parses src (NUL-terminated, at most TD_JOURNEY_MAX_EXPR bytes). On a
 * syntax error returns TD_EINVAL with err->column (1-based byte position in
 * src) and err->message. You own *out (td_journey_expr_free). */
int td_journey_expr_parse(const char *src, td_journey_expr_t **out, td_err_t *err) TD_MUST_CHECK;
void td_journey_expr_free(td_journey_expr_t *e);
/* TD_JOURNEY_USES_* flags of what e reads. */
int td_journey_expr_uses(const td_journey_expr_t *e);
const char *td_journey_expr_source(const td_journey_expr_t *e);

/* Evaluates e. On success *out is a new reference (json_decref). A runtime
 * error (type mismatch, division by zero, too much work) returns TD_EINVAL
 * with err->column at the failing operator and a message. Thread-safe. */
int td_journey_expr_eval(const td_journey_expr_t *e, const td_journey_env_t *env, json_t **out,
                         td_err_t *err) TD_MUST_CHECK;
/* Evaluates e as a condition: null, false, 0, "", [] and {} are false. */
int td_journey_expr_test(const td_journey_expr_t *e, const td_journey_env_t *env, bool *out,
                         td_err_t *err) TD_MUST_CHECK;
bool td_journey_truthy(const json_t *v);

/* Deterministic bucket in [0, 100) of a seed (FNV-1a, then scaled): the
 * same seed always lands in the same bucket, so a replay splits the same. */
double td_journey_bucket(const char *seed);

/* Durations: "90s", "30m", "3h", "1d12h", "2w", ISO 8601 "PT3H" / "P1DT2H",
 * or a number of seconds. TD_EINVAL for anything else or beyond a year. */
int td_journey_parse_duration(const json_t *v, int64_t *ms) TD_MUST_CHECK;

/* ==== JSON templates ====================================================
 *
 * A JSON value whose strings may hold expressions: a string that is only
 * "{{ expr }}" becomes the expression's value (any type); other strings
 * interpolate each {{ expr }} as text. Used for action bodies, headers and
 * URLs, email data, recommendation requests and profile updates. */

typedef struct td_journey_tmpl td_journey_tmpl_t;

/* Compiles v. path is the JSON pointer of v, used in errors (each error
 * gets the pointer of the string and the column in it); errors are appended
 * to errs (see td_journey_errors_t). Returns NULL when any error was found. */
typedef struct td_journey_errors td_journey_errors_t;
td_journey_tmpl_t *td_journey_tmpl_compile(const json_t *v, const char *path,
                                           td_journey_errors_t *errs);
void td_journey_tmpl_free(td_journey_tmpl_t *t);
int td_journey_tmpl_uses(const td_journey_tmpl_t *t);
/* Renders t; *out is a new reference. url_encode percent-encodes every
 * interpolated value (URL paths and queries). */
int td_journey_tmpl_render(const td_journey_tmpl_t *t, const td_journey_env_t *env, bool url_encode,
                           json_t **out, td_err_t *err) TD_MUST_CHECK;

/* ==== Definitions =======================================================*/

/* Every error found in a definition (up to TD_JOURNEY_MAX_ERRORS), each
 * with its JSON pointer, and line/column for JSON syntax errors or the
 * column inside an expression. */
struct td_journey_errors {
    td_err_t items[TD_JOURNEY_MAX_ERRORS];
    int n;
    bool truncated; /* more errors than fit */
};
/* Adds one error (printf-like message); path is a JSON pointer. */
void td_journey_errors_add(td_journey_errors_t *errs, const char *path, int column, const char *fmt,
                           ...) TD_PRINTF(4, 5);
/* {"errors": [{"path", "message", "line"?, "column"?}...]} as a new object. */
json_t *td_journey_errors_to_json(const td_journey_errors_t *errs);

typedef enum {
    TD_JSTEP_WAIT,
    TD_JSTEP_WAIT_EVENT,
    TD_JSTEP_CONDITION,
    TD_JSTEP_ACTION,
    TD_JSTEP_RECOMMEND,
    TD_JSTEP_EMAIL,
    TD_JSTEP_UPDATE_PROFILE,
    TD_JSTEP_JUMP,
    TD_JSTEP_END
} td_jstep_type_t;

typedef struct td_journey_def td_journey_def_t;

/* Context defaults a definition falls back to (server configuration). */
typedef struct td_journey_defaults {
    int64_t reentry_wait_ms; /* 5 minutes, as Adobe Journey Optimizer */
    int64_t timeout_ms;      /* 91 days */
} td_journey_defaults_t;

/* Parses and validates a definition (len bytes of JSON). Returns TD_OK and
 * *out (td_journey_def_free), or TD_EINVAL with every problem in errs
 * (which the caller zeroes first), or TD_ETOOBIG over TD_JOURNEY_MAX_DOC.
 * id_hint (may be NULL) is the id from the URL: the document's "id" must
 * match it when both are present. Pure. */
int td_journey_def_parse(const char *json, size_t len, const char *id_hint,
                         const td_journey_defaults_t *defaults, td_journey_def_t **out,
                         td_journey_errors_t *errs) TD_MUST_CHECK;
void td_journey_def_free(td_journey_def_t *def);
/* Reference counting for definitions shared between threads. */
td_journey_def_t *td_journey_def_ref(td_journey_def_t *def);

const char *td_journey_def_id(const td_journey_def_t *def);
/* The document as compact JSON text (key order kept, "id" filled in):
 * what is stored and compared to detect a changed definition. Borrowed. */
const char *td_journey_def_text(const td_journey_def_t *def);
const json_t *td_journey_def_json(const td_journey_def_t *def);
const char *td_journey_def_entry_event(const td_journey_def_t *def);
int td_journey_def_n_steps(const td_journey_def_t *def);
const char *td_journey_def_step_id(const td_journey_def_t *def, int step);
td_jstep_type_t td_journey_def_step_type(const td_journey_def_t *def, int step);
/* Index of step id, or -1. */
int td_journey_def_step_find(const td_journey_def_t *def, const char *id);
int td_journey_def_first_step(const td_journey_def_t *def);
/* Auth names the custom actions use (to check against the configuration):
 * calls fn for each with the JSON pointer of its "auth" field. */
void td_journey_def_each_auth(const td_journey_def_t *def,
                              void (*fn)(void *ctx, const char *name, const char *path), void *ctx);
const char *td_jstep_type_name(td_jstep_type_t t);

/* ==== Step decisions ====================================================
 *
 * The pure heart of the engine: given a definition, where an instance is,
 * its context and the time, say what happens next. The engine performs the
 * decision's effect (an outbox row, a profile update, an HTTP call...) and
 * moves the instance, in one store transaction. */

enum {
    TD_JOURNEY_ARRIVE = 0,  /* the instance just reached the step */
    TD_JOURNEY_WAITING = 1, /* a wait's timer fired (or a wait_for_event timed out) */
    TD_JOURNEY_CALLING = 2  /* an outside call is in flight */
};

typedef enum {
    TD_JDO_GO,         /* move to `next` now */
    TD_JDO_SLEEP,      /* stay, phase WAITING, wake at wake_ms */
    TD_JDO_WAIT_EVENT, /* stay, phase WAITING, until a matching event or wake_ms (timeout) */
    TD_JDO_CALL,       /* make the HTTP call in payload, store the result, then `next` */
    TD_JDO_RECOMMEND,  /* ask for recommendations (payload), freeze them, then `next` */
    TD_JDO_EMAIL,      /* queue the email in payload, then `next` */
    TD_JDO_UPDATE,     /* update the profile as payload says, then `next` */
    TD_JDO_JUMP,       /* enter the journey payload names, then `next` */
    TD_JDO_END         /* the instance ends: outcome, reason */
} td_journey_do_t;

typedef struct td_journey_state {
    int step;  /* index into the definition's steps */
    int phase; /* TD_JOURNEY_ARRIVE or TD_JOURNEY_WAITING */
    int64_t profile_id;
    int64_t instance_id;
    int64_t entered_ms;
    int64_t step_since_ms; /* when the instance reached the step */
    int64_t timeout_at_ms; /* the global timeout */
} td_journey_state_t;

typedef struct td_journey_decision {
    td_journey_do_t what;
    int next;        /* step to go to afterwards; -1: the instance ends */
    int64_t wake_ms; /* SLEEP, WAIT_EVENT */
    char outcome[32];
    char reason[200];
    json_t *payload; /* owned; see td_journey_do_t */
} td_journey_decision_t;

void td_journey_decision_release(td_journey_decision_t *d);

/* Decides the step st->step. env holds the instance's context (the engine
 * loads the profile or the events first when td_journey_step_uses() asks
 * for them). An expression that fails to evaluate gives TD_JDO_END with
 * outcome "error" and the reason (where and why). Pure. */
int td_journey_step_decide(const td_journey_def_t *def, const td_journey_state_t *st,
                           const td_journey_env_t *env, td_journey_decision_t *out) TD_MUST_CHECK;
/* TD_JOURNEY_USES_* of step (what its decision reads); the email step
 * always reads the profile. */
int td_journey_step_uses(const td_journey_def_t *def, int step);

/* Exit criteria: the name of the first criterion the event in
 * env->vars.trigger (of type event_type) meets, or NULL. *uses receives the
 * flags the criteria for that type read (to load the profile first). */
const char *td_journey_exit_match(const td_journey_def_t *def, const char *event_type,
                                  const td_journey_env_t *env, td_err_t *err);
int td_journey_exit_uses(const td_journey_def_t *def, const char *event_type);
/* True when some exit criterion or wait_for_event step listens to type. */
bool td_journey_listens(const td_journey_def_t *def, const char *event_type);
/* wait_for_event: when step waits for events of type event_type and the
 * trigger meets its condition, returns true and *next. */
bool td_journey_wait_match(const td_journey_def_t *def, int step, const char *event_type,
                           const td_journey_env_t *env, int *next, td_err_t *err);

/* Entry: true when the event (env->vars.event) meets the trigger; *key gets
 * the entry key (the entity key from the event, or NULL to key by the
 * profile). *key is owned by the caller (free). */
int td_journey_entry_match(const td_journey_def_t *def, const td_journey_env_t *env, bool *match,
                           char **key, td_err_t *err) TD_MUST_CHECK;
int td_journey_entry_uses(const td_journey_def_t *def);
/* Re-entry: -1 never; >= 0 allowed this long after the last entry (and
 * never while an instance with the same key runs). */
int64_t td_journey_reentry_wait_ms(const td_journey_def_t *def);
int64_t td_journey_timeout_ms(const td_journey_def_t *def);
/* The schedule: entries only in [start, end); 0 = open. At end, running
 * instances exit. */
int64_t td_journey_start_ms(const td_journey_def_t *def);
int64_t td_journey_end_ms(const td_journey_def_t *def);

/* ==== Time zones ========================================================
 *
 * util/tz.h resolves them: fixed offsets ("+02:00") need no file, IANA
 * names are read from the system's zoneinfo files and cached in a
 * td_tz_cache_t, and td_tz_cache_offset is a td_journey_tz_fn over one. */

/* ==== The engine ========================================================*/

typedef struct td_journey_engine td_journey_engine_t;

/* The recommendation engine, called in-process by the recommend step.
 * criteria is the criteria id (a JSON string) or an inline criteria object;
 * request holds the profile's identities, "cart" (item ids), "count" and the
 * step's request fields. On success *result is a new object with "items"
 * (array). TD_ENOTFOUND for an unknown criteria lets the built-in criteria
 * answer (abandoned_cart, recently_viewed). Called inside a store write
 * transaction: it must not write to the store, and should be quick. */
typedef int (*td_journey_recommend_fn)(void *ctx, const json_t *criteria, const json_t *request,
                                       json_t **result, td_err_t *err);
/* Completes the items of a built-in list (the cart, recently viewed: what
 * the events said) in place with catalogue details (picture, page, ...). */
typedef void (*td_journey_details_fn)(void *ctx, json_t *items);

typedef struct td_journey_options {
    td_journey_defaults_t defaults;
    int batch;                      /* instances claimed per runner transaction */
    int action_threads;             /* threads making custom HTTP calls */
    int max_call_attempts;          /* outside calls repeated after crashes at most this often */
    const char *const *action_auth; /* NAME=bearer:TOKEN or NAME=basic:USER:PASSWORD */
    int n_action_auth;
    const char *message_domain; /* right side of Message-IDs */
    const char *zoneinfo_dir;   /* NULL: /usr/share/zoneinfo */
    bool no_runner;             /* offline commands: no timer thread */
} td_journey_options_t;

/* Opens the engine: loads the published journeys and starts the runner and
 * action threads. Returns TD_EINVAL (err says why) for bad action_auth. */
int td_journey_engine_open(struct td_store *store, struct td_clock *clock,
                           const td_journey_options_t *opt, td_journey_engine_t **out,
                           td_err_t *err) TD_MUST_CHECK;
/* Stops the threads (outside calls in flight are abandoned and repeated
 * after the next start) and frees everything. NULL is fine. */
void td_journey_engine_close(td_journey_engine_t *eng);
/* Wires the recommendation engine (NULL: built-in criteria only) and the
 * catalogue details of built-in lists (NULL: as the events said). */
void td_journey_engine_set_recommender(td_journey_engine_t *eng, td_journey_recommend_fn fn,
                                       td_journey_details_fn details, void *ctx);
/* Makes the runner look for due instances now (after the clock moved). */
void td_journey_engine_wake(td_journey_engine_t *eng);
/* Runs everything due now on the caller's thread; returns how many steps
 * ran (tests, benchmarks, offline commands). */
int64_t td_journey_engine_run_due(td_journey_engine_t *eng);

/* The ingest hooks: register with td_ingest_add_tx_hook() and
 * td_ingest_add_listener(), ctx = the engine. The tx hook enters, exits and
 * resumes instances inside the event's transaction. */
int td_journey_engine_tx_hook(void *eng, struct td_store_conn *conn, const struct td_event *ev,
                              int64_t profile_id, int64_t seq, int64_t received_ms);
void td_journey_engine_listener(void *eng, const struct td_event *const *events,
                                const int64_t *profile_ids, int n);

/* ==== Admin operations ==================================================
 *
 * Each returns TD_OK with *out a new JSON document for the reply, or an
 * error code with err (and, for put, errs) filled. Thread-safe. */

/* Stores a new version of journey id when the definition changed. */
int td_journey_put(td_journey_engine_t *eng, const char *id, const char *doc, size_t len,
                   json_t **out, td_journey_errors_t *errs, td_err_t *err) TD_MUST_CHECK;
/* Checks a definition without storing it. */
int td_journey_validate(td_journey_engine_t *eng, const char *id, const char *doc, size_t len,
                        td_journey_errors_t *errs) TD_MUST_CHECK;
int td_journey_get(td_journey_engine_t *eng, const char *id, int64_t version, json_t **out,
                   td_err_t *err) TD_MUST_CHECK;
int td_journey_list(td_journey_engine_t *eng, json_t **out, td_err_t *err) TD_MUST_CHECK;
int td_journey_delete(td_journey_engine_t *eng, const char *id, td_err_t *err) TD_MUST_CHECK;
/* verb: "publish" (version 0 = latest), "pause", "resume", "stop". */
int td_journey_control(td_journey_engine_t *eng, const char *id, const char *verb, int64_t version,
                       json_t **out, td_err_t *err) TD_MUST_CHECK;
int td_journey_report(td_journey_engine_t *eng, const char *id, json_t **out,
                      td_err_t *err) TD_MUST_CHECK;
int td_journey_instance_get(td_journey_engine_t *eng, const char *id, int64_t instance,
                            json_t **out, td_err_t *err) TD_MUST_CHECK;
/* Instances of a journey (state: "running", "ended" or NULL for all),
 * newest first, after_id for paging (0: from the newest). */
int td_journey_instances_list(td_journey_engine_t *eng, const char *id, const char *state,
                              int64_t before_id, int limit, json_t **out,
                              td_err_t *err) TD_MUST_CHECK;
/* The instances of a profile (every journey), newest first. */
int td_journey_profile_instances(td_journey_engine_t *eng, int64_t profile_id, json_t **out,
                                 td_err_t *err) TD_MUST_CHECK;
/* Outbox rows (newest first), for inspection: instance 0 = all. */
int td_journey_outbox_list(td_journey_engine_t *eng, int64_t instance, const char *status,
                           int limit, json_t **out, td_err_t *err) TD_MUST_CHECK;

#endif
