/* Step decisions: given a definition, where an instance stands, its
 * context and the time, what happens next. Pure: the engine performs the
 * effects (outbox row, HTTP call, profile update) and moves the instance. */
#include "journey/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/banned.h"

void td_journey_decision_release(td_journey_decision_t *d)
{
    json_decref(d->payload);
    d->payload = NULL;
}

static void set_outcome(td_journey_decision_t *d, const char *outcome, const char *fmt, ...)
    TD_PRINTF(3, 4);

static void set_outcome(td_journey_decision_t *d, const char *outcome, const char *fmt, ...)
{
    va_list ap;

    snprintf(d->outcome, sizeof(d->outcome), "%s", outcome);
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
        va_end(ap);
    } else {
        d->reason[0] = '\0';
    }
}

static int fail(td_journey_decision_t *d, const td_jstep_t *s, const char *where,
                const td_err_t *err)
{
    d->what = TD_JDO_END;
    d->next = -1;
    json_decref(d->payload);
    d->payload = NULL;
    if (err->column > 0) {
        set_outcome(d, "error", "%s %s, column %d: %s", s->id, where, err->column, err->message);
    } else {
        set_outcome(d, "error", "%s %s: %s", s->id, where, err->message);
    }
    return TD_OK;
}

static int64_t cap_wake(const td_journey_def_t *def, const td_journey_state_t *st, int64_t wake)
{
    if (st->timeout_at_ms > 0 && wake > st->timeout_at_ms) {
        wake = st->timeout_at_ms;
    }
    if (def->end_ms > 0 && wake > def->end_ms) {
        wake = def->end_ms;
    }
    return wake;
}

static int decide_wait(const td_journey_def_t *def, const td_jstep_t *s,
                       const td_journey_state_t *st, const td_journey_env_t *env,
                       td_journey_decision_t *d)
{
    int64_t wake = env->now_ms;
    td_err_t err = { 0 };
    char iso[32];

    if (st->phase == TD_JOURNEY_WAITING) {
        d->what = TD_JDO_GO;
        d->next = s->next;
        set_outcome(d, "passed", NULL);
        return TD_OK;
    }
    if (s->until) {
        json_t *v;
        if (td_journey_expr_eval(s->until, env, &v, &err) != TD_OK) {
            return fail(d, s, "until", &err);
        }
        bool ok = td_journey__time_of(v, &wake);
        json_decref(v);
        if (!ok) {
            td_err_set(&err, TD_EINVAL, "", "\"until\" gave no time (epoch ms or ISO 8601)");
            return fail(d, s, "until", &err);
        }
    } else if (s->time_of_day_min >= 0) {
        char *zone = NULL;
        if (s->timezone) {
            json_t *v;
            if (td_journey_expr_eval(s->timezone, env, &v, &err) != TD_OK) {
                return fail(d, s, "timezone", &err);
            }
            if (json_is_string(v) && json_string_length(v) > 0) {
                zone = td_xstrdup(json_string_value(v));
            }
            json_decref(v);
        }
        const char *z = zone ? zone : def->timezone;
        int rc = td_journey__next_time_of_day(env->now_ms, s->time_of_day_min, z, env, &wake);
        if (rc != TD_OK) {
            /* an unknown zone from data must not strand the shopper: use the journey's */
            rc = td_journey__next_time_of_day(env->now_ms, s->time_of_day_min, def->timezone, env,
                                              &wake);
        }
        free(zone);
        if (rc != TD_OK) {
            td_err_set(&err, TD_EINVAL, "", "unknown time zone \"%s\"", def->timezone);
            return fail(d, s, "timezone", &err);
        }
    } else {
        wake = env->now_ms + s->duration_ms;
    }
    if (wake <= env->now_ms) {
        d->what = TD_JDO_GO;
        d->next = s->next;
        set_outcome(d, "passed", "the time to wait for has passed");
        return TD_OK;
    }
    d->what = TD_JDO_SLEEP;
    d->next = s->next;
    d->wake_ms = cap_wake(def, st, wake);
    td_time_format_iso(wake, iso, sizeof(iso));
    set_outcome(d, "waiting", "until %s", iso);
    return TD_OK;
}

static int decide_condition(const td_journey_def_t *def, const td_jstep_t *s,
                            const td_journey_state_t *st, const td_journey_env_t *env,
                            td_journey_decision_t *d)
{
    td_err_t err = { 0 };

    d->what = TD_JDO_GO;
    if (s->split) {
        char seed[200];
        snprintf(seed, sizeof(seed), "%lld/%s/%s", (long long)st->profile_id, def->id, s->id);
        double b = td_journey_bucket(seed), acc = 0;
        for (int i = 0; i < s->n_branches; i++) {
            acc += s->branches[i].percent;
            if (b < acc || i == s->n_branches - 1) {
                d->next = s->branches[i].next;
                set_outcome(d, "branch", "%s", s->branches[i].name);
                return TD_OK;
            }
        }
    }
    for (int i = 0; i < s->n_branches; i++) {
        bool t;
        if (td_journey_expr_test(s->branches[i].when, env, &t, &err) != TD_OK) {
            char where[120];
            snprintf(where, sizeof(where), "branch \"%s\"", s->branches[i].name);
            return fail(d, s, where, &err);
        }
        if (t) {
            d->next = s->branches[i].next;
            set_outcome(d, "branch", "%s", s->branches[i].name);
            return TD_OK;
        }
    }
    d->next = s->else_next;
    set_outcome(d, "branch", "else");
    return TD_OK;
}

static void append_query(td_buf_t *url, const json_t *q)
{
    const char *k;
    json_t *v;
    bool has_q = strchr(url->data, '?') != NULL;

    json_object_foreach((json_t *)q, k, v)
    {
        if (json_is_null(v)) {
            continue; /* absent data leaves the parameter out */
        }
        char *ek = td_journey__url_encode(k), *text = td_journey__to_text(v);
        char *ev = td_journey__url_encode(text);
        td_buf_addc(url, has_q ? '&' : '?');
        td_buf_adds(url, ek);
        td_buf_addc(url, '=');
        td_buf_adds(url, ev);
        has_q = true;
        free(ek);
        free(text);
        free(ev);
    }
}

static int decide_action(const td_journey_def_t *def, const td_jstep_t *s,
                         const td_journey_env_t *env, td_journey_decision_t *d)
{
    const td_jaction_t *a = &def->actions[s->action];
    td_err_t err = { 0 };
    json_t *v, *p = json_object();
    td_buf_t url = TD_BUF_INIT;

    d->payload = p;
    if (td_journey_tmpl_render(a->url, env, true, &v, &err) != TD_OK) {
        return fail(d, s, "url", &err);
    }
    td_buf_adds(&url, json_is_string(v) ? json_string_value(v) : "");
    json_decref(v);
    if (a->query) {
        if (td_journey_tmpl_render(a->query, env, false, &v, &err) != TD_OK) {
            td_buf_release(&url);
            return fail(d, s, "query", &err);
        }
        append_query(&url, v);
        json_decref(v);
    }
    json_object_set_new(p, "url", json_string(url.data));
    td_buf_release(&url);
    if (a->headers) {
        if (td_journey_tmpl_render(a->headers, env, false, &v, &err) != TD_OK) {
            return fail(d, s, "headers", &err);
        }
        /* header values are text, whatever type their expression gave */
        const char *k;
        json_t *hv;
        json_object_foreach(v, k, hv)
        {
            if (!json_is_string(hv)) {
                char *text = td_journey__to_text(hv);
                json_object_set_new(v, k, json_string(text));
                free(text);
            }
        }
        json_object_set_new(p, "headers", v);
    }
    if (a->body) {
        if (td_journey_tmpl_render(a->body, env, false, &v, &err) != TD_OK) {
            return fail(d, s, "body", &err);
        }
        json_object_set_new(p, "body", v);
    }
    json_object_set_new(p, "action", json_string(a->name));
    json_object_set_new(p, "as", json_string(s->as));
    json_object_set_new(p, "method", json_string(a->method));
    json_object_set_new(p, "timeout_ms", json_integer(a->timeout_ms));
    json_object_set_new(p, "retries", json_integer(a->retries));
    if (a->auth) {
        json_object_set_new(p, "auth", json_string(a->auth));
    }
    if (a->response) {
        json_object_set(p, "response", a->response);
    }
    json_object_set_new(p, "cap_per_minute", json_integer(a->cap_per_minute));
    json_object_set_new(p, "throttle_per_minute", json_integer(a->throttle_per_minute));
    d->what = TD_JDO_CALL;
    d->next = s->next;
    set_outcome(d, "calling", "%s %s", a->method, a->name);
    return TD_OK;
}

/* The identities and cart of the profile, so a recommendation request
 * needs nothing else to find the shopper. */
static void add_profile_fields(json_t *req, const json_t *profile)
{
    const char *keys[] = { "ecid", "email", "customer_id" };

    for (size_t i = 0; i < TD_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(profile, keys[i]);
        if (json_is_string(v) && json_object_get(req, keys[i]) == NULL) {
            json_object_set(req, keys[i], v);
        }
    }
    if (json_object_get(req, "cart") == NULL) {
        json_t *ids = json_array(), *item;
        size_t i;
        json_array_foreach(json_object_get(profile, "cart"), i, item)
        {
            json_t *id = json_object_get(item, "id");
            if (id) {
                json_array_append(ids, id);
            }
        }
        json_object_set_new(req, "cart", ids);
    }
    json_t *pid = json_object_get(profile, "id");
    if (pid && json_object_get(req, "profile_id") == NULL) {
        json_object_set(req, "profile_id", pid);
    }
}

static int decide_recommend(const td_jstep_t *s, const td_journey_env_t *env,
                            td_journey_decision_t *d)
{
    td_err_t err = { 0 };
    json_t *req = NULL;

    if (s->request) {
        if (td_journey_tmpl_render(s->request, env, false, &req, &err) != TD_OK) {
            return fail(d, s, "request", &err);
        }
    } else {
        req = json_object();
    }
    if (json_object_get(req, "count") == NULL) {
        json_object_set_new(req, "count", json_integer(s->count));
    }
    add_profile_fields(req, json_object_get(env->vars, "profile"));
    d->payload = json_pack("{s:O, s:s, s:o}", "criteria", s->criteria, "as", s->as, "request", req);
    d->what = TD_JDO_RECOMMEND;
    d->next = s->next;
    set_outcome(d, "recommended", NULL);
    return TD_OK;
}

static int decide_email(const td_jstep_t *s, const td_journey_env_t *env, td_journey_decision_t *d)
{
    const json_t *profile = json_object_get(env->vars, "profile");
    td_err_t err = { 0 };
    json_t *to = NULL, *data = NULL;

    d->next = s->next;
    if (s->to) {
        if (td_journey_expr_eval(s->to, env, &to, &err) != TD_OK) {
            return fail(d, s, "to", &err);
        }
    } else {
        to = json_incref(json_object_get(profile, "email"));
    }
    if (!json_is_string(to) || json_string_length(to) == 0 ||
        strchr(json_string_value(to), '@') == NULL) {
        json_decref(to);
        d->what = TD_JDO_GO;
        set_outcome(d, "skipped", "no_email");
        return TD_OK;
    }
    const char *consent =
        json_string_value(json_object_get(json_object_get(profile, "consent"), "marketing"));
    if (!s->transactional && consent && strcmp(consent, "out") == 0) {
        json_decref(to);
        d->what = TD_JDO_GO;
        set_outcome(d, "skipped", "consent_refused");
        return TD_OK;
    }
    if (s->data && td_journey_tmpl_render(s->data, env, false, &data, &err) != TD_OK) {
        json_decref(to);
        return fail(d, s, "data", &err);
    }
    d->payload = json_pack("{s:o, s:s, s:o, s:b}", "to", to, "template", s->template_id, "data",
                           data ? data : json_object(), "transactional", s->transactional);
    d->what = TD_JDO_EMAIL;
    set_outcome(d, "queued", "%s", s->template_id);
    return TD_OK;
}

static int decide_update(const td_jstep_t *s, const td_journey_env_t *env, td_journey_decision_t *d)
{
    td_err_t err = { 0 };
    json_t *set = NULL;

    if (s->set && td_journey_tmpl_render(s->set, env, false, &set, &err) != TD_OK) {
        return fail(d, s, "set", &err);
    }
    d->payload = json_object();
    if (set) {
        json_object_set_new(d->payload, "set", set);
    }
    if (s->consent) {
        json_object_set_new(d->payload, "consent", json_string(s->consent == 1 ? "in" : "out"));
    }
    d->what = TD_JDO_UPDATE;
    d->next = s->next;
    set_outcome(d, "updated", NULL);
    return TD_OK;
}

int td_journey_step_decide(const td_journey_def_t *def, const td_journey_state_t *st,
                           const td_journey_env_t *env, td_journey_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    out->next = -1;
    if (st->step < 0 || st->step >= def->n_steps) {
        out->what = TD_JDO_END;
        set_outcome(out, "error", "the instance is at an unknown step");
        return TD_OK;
    }
    const td_jstep_t *s = &def->steps[st->step];
    if (st->timeout_at_ms > 0 && env->now_ms >= st->timeout_at_ms) {
        out->what = TD_JDO_END;
        set_outcome(out, "timeout", "the journey's timeout was reached");
        return TD_OK;
    }
    if (def->end_ms > 0 && env->now_ms >= def->end_ms) {
        out->what = TD_JDO_END;
        set_outcome(out, "exited", "journey_ended");
        return TD_OK;
    }
    switch (s->type) {
    case TD_JSTEP_WAIT:
        return decide_wait(def, s, st, env, out);
    case TD_JSTEP_WAIT_EVENT:
        if (st->phase == TD_JOURNEY_WAITING) {
            out->what = TD_JDO_GO;
            out->next = s->timeout_next;
            set_outcome(out, "timeout", "no %s event in time", s->event_type);
        } else {
            char iso[32];
            out->what = TD_JDO_WAIT_EVENT;
            out->next = s->next;
            out->wake_ms = cap_wake(def, st, env->now_ms + s->timeout_ms);
            td_time_format_iso(env->now_ms + s->timeout_ms, iso, sizeof(iso));
            set_outcome(out, "waiting", "for %s until %s", s->event_type, iso);
        }
        return TD_OK;
    case TD_JSTEP_CONDITION:
        return decide_condition(def, s, st, env, out);
    case TD_JSTEP_ACTION:
        return decide_action(def, s, env, out);
    case TD_JSTEP_RECOMMEND:
        return decide_recommend(s, env, out);
    case TD_JSTEP_EMAIL:
        return decide_email(s, env, out);
    case TD_JSTEP_UPDATE_PROFILE:
        return decide_update(s, env, out);
    case TD_JSTEP_JUMP:
        out->what = TD_JDO_JUMP;
        out->next = s->next;
        out->payload = json_pack("{s:s}", "journey", s->journey);
        set_outcome(out, "jumped", "%s", s->journey);
        return TD_OK;
    case TD_JSTEP_END:
        out->what = TD_JDO_END;
        set_outcome(out, "completed", "%s", s->reason);
        return TD_OK;
    }
    TD_BUG("unknown step type");
}

int td_journey_step_uses(const td_journey_def_t *def, int step)
{
    return step >= 0 && step < def->n_steps ? def->steps[step].uses : 0;
}

const char *td_journey_exit_match(const td_journey_def_t *def, const char *event_type,
                                  const td_journey_env_t *env, td_err_t *err)
{
    for (int i = 0; i < def->n_exits; i++) {
        const td_jexit_t *x = &def->exits[i];
        bool t = true;
        if (strcmp(x->event_type, event_type) != 0) {
            continue;
        }
        if (x->when && td_journey_expr_test(x->when, env, &t, err) != TD_OK) {
            continue; /* a criterion that cannot be evaluated does not end the instance */
        }
        if (t) {
            return x->name;
        }
    }
    return NULL;
}

int td_journey_exit_uses(const td_journey_def_t *def, const char *event_type)
{
    int uses = 0;

    for (int i = 0; i < def->n_exits; i++) {
        if (strcmp(def->exits[i].event_type, event_type) == 0) {
            uses |= td_journey_expr_uses(def->exits[i].when);
        }
    }
    return uses;
}

bool td_journey_listens(const td_journey_def_t *def, const char *event_type)
{
    for (int i = 0; i < def->n_exits; i++) {
        if (strcmp(def->exits[i].event_type, event_type) == 0) {
            return true;
        }
    }
    for (int i = 0; i < def->n_steps; i++) {
        if (def->steps[i].type == TD_JSTEP_WAIT_EVENT &&
            strcmp(def->steps[i].event_type, event_type) == 0) {
            return true;
        }
    }
    return false;
}

bool td_journey_wait_match(const td_journey_def_t *def, int step, const char *event_type,
                           const td_journey_env_t *env, int *next, td_err_t *err)
{
    if (step < 0 || step >= def->n_steps) {
        return false;
    }
    const td_jstep_t *s = &def->steps[step];
    bool t = true;
    if (s->type != TD_JSTEP_WAIT_EVENT || strcmp(s->event_type, event_type) != 0) {
        return false;
    }
    if (s->when && td_journey_expr_test(s->when, env, &t, err) != TD_OK) {
        return false;
    }
    if (t) {
        *next = s->next;
    }
    return t;
}

int td_journey_entry_match(const td_journey_def_t *def, const td_journey_env_t *env, bool *match,
                           char **key, td_err_t *err)
{
    int rc;

    *match = false;
    *key = NULL;
    if (def->entry_when && (rc = td_journey_expr_test(def->entry_when, env, match, err)) != TD_OK) {
        return rc;
    }
    if (def->entry_when == NULL) {
        *match = true;
    }
    if (!*match || def->entry_key == NULL) {
        return TD_OK;
    }
    json_t *v;
    if ((rc = td_journey_expr_eval(def->entry_key, env, &v, err)) != TD_OK) {
        *match = false;
        return rc;
    }
    if (!json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
        char *text = td_journey__to_text(v);
        if (strlen(text) > 256) {
            free(text);
            json_decref(v);
            *match = false;
            return td_err_set(err, TD_EINVAL, "", "entry key longer than 256 bytes");
        }
        *key = text;
    }
    json_decref(v);
    return TD_OK;
}

int td_journey_entry_uses(const td_journey_def_t *def)
{
    return td_journey_expr_uses(def->entry_when) | td_journey_expr_uses(def->entry_key);
}
