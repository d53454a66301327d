/* Shared between the journey module's files: the compiled definition (what
 * definition.c builds and step.c / engine.c read) and small helpers. */
#ifndef TD_JOURNEY_INTERNAL_H
#define TD_JOURNEY_INTERNAL_H

#include <stdatomic.h>

#include "journey/journey.h"

/* json_dumps flags for what the engine stores and replies: 15 significant
 * digits print 59.9 as 59.9, not 59.899999999999999. */
#define TD_JOURNEY_DUMP (JSON_COMPACT | JSON_REAL_PRECISION(15))

typedef struct td_jbranch {
    char *name;
    td_journey_expr_t *when; /* condition branches */
    double percent;          /* split branches */
    int next;                /* step index, -1 = end */
} td_jbranch_t;

typedef struct td_jaction {
    char *name;
    char *method; /* GET, POST, PUT */
    td_journey_tmpl_t *url;
    td_journey_tmpl_t *query;   /* object or NULL */
    td_journey_tmpl_t *headers; /* object or NULL */
    td_journey_tmpl_t *body;    /* POST / PUT; NULL when none */
    char *auth;                 /* a name from the action_auth setting, or NULL */
    char *auth_path;            /* JSON pointer of "auth", for errors */
    int64_t timeout_ms;         /* 1..30 s */
    int retries;                /* 0..5; none on 401/403/404 */
    json_t *response;           /* declared shape: {"field": "type"}; NULL keeps all */
    int cap_per_minute;         /* 0: no cap (per host) */
    int throttle_per_minute;    /* 0: no throttle (per host) */
} td_jaction_t;

typedef struct td_jstep {
    char *id;
    td_jstep_type_t type;
    int next; /* -1 = end */
    int uses; /* TD_JOURNEY_USES_* */
    /* wait */
    int64_t duration_ms;         /* > 0 for a fixed wait */
    td_journey_expr_t *until;    /* a time computed from data */
    int time_of_day_min;         /* minutes after midnight, or -1 */
    td_journey_expr_t *timezone; /* for time_of_day; NULL: the journey's */
    /* wait_for_event */
    char *event_type;
    td_journey_expr_t *when;
    int64_t timeout_ms;
    int timeout_next;
    /* condition */
    td_jbranch_t *branches;
    int n_branches;
    bool split;
    int else_next;
    /* action */
    int action; /* index into def->actions */
    char *as;   /* actions.<as> receives the result (action, recommend) */
    /* recommend */
    json_t *criteria; /* a string (id) or an object (inline criteria) */
    int count;
    td_journey_tmpl_t *request;
    /* email */
    char *template_id;
    td_journey_expr_t *to;
    td_journey_tmpl_t *data;
    bool transactional;
    /* update_profile */
    td_journey_tmpl_t *set;
    int consent; /* 0 unchanged, 1 in, 2 out */
    /* jump */
    char *journey;
    /* end */
    char *reason;
} td_jstep_t;

typedef struct td_jexit {
    char *name;
    char *event_type;
    td_journey_expr_t *when; /* NULL: every event of the type */
} td_jexit_t;

struct td_journey_def {
    _Atomic int refs;
    char *id;
    char *name;
    json_t *doc; /* the definition as given */
    char *text;  /* canonical text */
    char *entry_event;
    td_journey_expr_t *entry_when;
    td_journey_expr_t *entry_key;
    int64_t reentry_wait_ms; /* -1 = never */
    td_jexit_t *exits;
    int n_exits;
    int64_t timeout_ms;
    int64_t start_ms, end_ms;
    char *timezone;
    td_jaction_t *actions;
    int n_actions;
    td_jstep_t *steps;
    int n_steps;
    int first;
};

/* Percent-encodes s (RFC 3986 unreserved kept) into a new string. */
char *td_journey__url_encode(const char *s);
/* Text of a value for interpolation: strings as they are, numbers in their
 * shortest form, null as "", the rest as compact JSON. You own it. */
char *td_journey__to_text(const json_t *v);
/* A JSON pointer escaping of key appended to prefix. */
void td_journey__ptr(char *out, size_t len, const char *prefix, const char *key);
/* Epoch ms of an ISO 8601 string or a number of ms; false otherwise. */
bool td_journey__time_of(const json_t *v, int64_t *ms);
/* Local time of day: the next instant after now_ms at minute_of_day in zone. */
int td_journey__next_time_of_day(int64_t now_ms, int minute_of_day, const char *zone,
                                 const td_journey_env_t *env, int64_t *out) TD_MUST_CHECK;

#endif
