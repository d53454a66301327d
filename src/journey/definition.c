/* Journey definitions: parsing and validation of the JSON document into a
 * compiled definition. Every problem is collected (not just the first),
 * each named by its JSON pointer, so one round trip fixes a whole file.
 * Unknown fields are refused: a typo must never be silently ignored. Pure. */
#include "journey/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/clock.h"
#include "util/banned.h"

#define P 256 /* JSON pointer buffers */

typedef struct vctx {
    td_journey_errors_t *errs;
    td_journey_def_t *def;
    json_t *step_ids; /* object: id -> index */
} vctx_t;

#define ERR(x, path, ...) td_journey_errors_add((x)->errs, (path), 0, __VA_ARGS__)

static void at(char *out, const char *prefix, const char *key)
{
    td_journey__ptr(out, P, prefix, key);
}

static void check_fields(vctx_t *x, const json_t *obj, const char *path, const char *const *allowed)
{
    const char *k;
    json_t *v;
    char sub[P];

    json_object_foreach((json_t *)obj, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) {
            ok = strcmp(*a, k) == 0;
        }
        if (!ok) {
            at(sub, path, k);
            ERR(x, sub, "unknown field \"%s\"", k);
        }
    }
}

static bool id_ok(const char *s, bool allow_dot)
{
    size_t n = strlen(s);

    if (n == 0 || n > TD_JOURNEY_MAX_ID || !isalnum((unsigned char)s[0])) {
        return false;
    }
    for (const char *c = s; *c; c++) {
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && !(allow_dot && *c == '.')) {
            return false;
        }
    }
    return true;
}

static bool ident_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > TD_JOURNEY_MAX_ID || !(isalpha((unsigned char)s[0]) || s[0] == '_')) {
        return false;
    }
    for (const char *c = s; *c; c++) {
        if (!isalnum((unsigned char)*c) && *c != '_') {
            return false;
        }
    }
    return true;
}

static bool event_type_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64) {
        return false;
    }
    for (const char *c = s; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("_.-:", *c)) {
            return false;
        }
    }
    return true;
}

/* A string field; NULL when absent or wrong (the error is recorded). */
static const char *get_str(vctx_t *x, const json_t *obj, const char *key, const char *path,
                           bool required, size_t max_len)
{
    json_t *v = json_object_get(obj, key);
    char sub[P];

    at(sub, path, key);
    if (v == NULL) {
        if (required) {
            ERR(x, sub, "\"%s\" is required", key);
        }
        return NULL;
    }
    if (!json_is_string(v)) {
        ERR(x, sub, "\"%s\" must be a string", key);
        return NULL;
    }
    if (json_string_length(v) > max_len) {
        ERR(x, sub, "\"%s\" is longer than %zu bytes", key, max_len);
        return NULL;
    }
    return json_string_value(v);
}

static td_journey_expr_t *get_expr(vctx_t *x, const json_t *obj, const char *key, const char *path,
                                   bool required)
{
    const char *src = get_str(x, obj, key, path, required, TD_JOURNEY_MAX_EXPR);
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };
    char sub[P];

    if (src == NULL) {
        return NULL;
    }
    at(sub, path, key);
    if (td_journey_expr_parse(src, &e, &err) != TD_OK) {
        td_journey_errors_add(x->errs, sub, err.column, "%s", err.message);
        return NULL;
    }
    return e;
}

static bool get_duration(vctx_t *x, const json_t *obj, const char *key, const char *path,
                         bool required, int64_t min_ms, int64_t max_ms, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    char sub[P];

    at(sub, path, key);
    if (v == NULL) {
        if (required) {
            ERR(x, sub, "\"%s\" is required", key);
        }
        return false;
    }
    if (td_journey_parse_duration(v, out) != TD_OK) {
        ERR(x, sub,
            "\"%s\" must be a duration such as \"30m\", \"3h\", \"1d12h\", \"PT3H\" or a number "
            "of seconds",
            key);
        return false;
    }
    if (*out < min_ms || *out > max_ms) {
        ERR(x, sub, "\"%s\" must be between %lld and %lld seconds", key, (long long)(min_ms / 1000),
            (long long)(max_ms / 1000));
        return false;
    }
    return true;
}

/* A reference to a step: its index, or -2 when absent/wrong (error recorded
 * when required). */
static int get_step_ref(vctx_t *x, const json_t *obj, const char *key, const char *path,
                        bool required)
{
    const char *id = get_str(x, obj, key, path, required, TD_JOURNEY_MAX_ID * 4);
    char sub[P];

    if (id == NULL) {
        return -2;
    }
    json_t *idx = json_object_get(x->step_ids, id);
    if (idx == NULL) {
        at(sub, path, key);
        ERR(x, sub, "no step \"%s\" in \"steps\"", id);
        return -2;
    }
    return (int)json_integer_value(idx);
}

static td_journey_tmpl_t *get_tmpl(vctx_t *x, const json_t *obj, const char *key, const char *path,
                                   bool want_object)
{
    json_t *v = json_object_get(obj, key);
    char sub[P];

    if (v == NULL) {
        return NULL;
    }
    at(sub, path, key);
    if (want_object && !json_is_object(v)) {
        ERR(x, sub, "\"%s\" must be an object", key);
        return NULL;
    }
    return td_journey_tmpl_compile(v, sub, x->errs);
}

/* ---- actions ---------------------------------------------------------- */

static const char *const response_types[] = { "string", "number", "integer", "boolean",
                                              "array",  "object", "any",     NULL };

static void parse_action(vctx_t *x, td_jaction_t *a, const char *name, const json_t *v,
                         const char *path)
{
    static const char *const fields[] = { "method",
                                          "url",
                                          "query",
                                          "headers",
                                          "auth",
                                          "body",
                                          "timeout",
                                          "retries",
                                          "response",
                                          "cap_per_minute",
                                          "throttle_per_minute",
                                          "description",
                                          NULL };
    char sub[P];
    json_t *f;

    a->name = td_xstrdup(name);
    a->timeout_ms = 5000;
    a->retries = 3;
    if (!ident_ok(name)) {
        ERR(x, path, "action name \"%s\" must be letters, digits and _ (starting with a letter)",
            name);
    }
    if (!json_is_object(v)) {
        ERR(x, path, "an action must be an object");
        return;
    }
    check_fields(x, v, path, fields);
    const char *method = get_str(x, v, "method", path, true, 8);
    if (method) {
        if (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "PUT")) {
            at(sub, path, "method");
            ERR(x, sub, "\"method\" must be GET, POST or PUT");
        } else {
            a->method = td_xstrdup(method);
        }
    }
    const char *url = get_str(x, v, "url", path, true, 4096);
    if (url) {
        at(sub, path, "url");
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
            ERR(x, sub, "\"url\" must start with http:// or https://");
        } else {
            a->url = td_journey_tmpl_compile(json_object_get(v, "url"), sub, x->errs);
        }
    }
    a->query = get_tmpl(x, v, "query", path, true);
    if ((f = json_object_get(v, "headers")) != NULL) {
        const char *k;
        json_t *hv;
        at(sub, path, "headers");
        if (!json_is_object(f)) {
            ERR(x, sub, "\"headers\" must be an object of strings");
        } else {
            bool ok = true;
            json_object_foreach(f, k, hv)
            {
                char hp[P];
                at(hp, sub, k);
                bool name_ok = *k != '\0';
                for (const char *c = k; *c; c++) {
                    name_ok &= isalnum((unsigned char)*c) || *c == '-' || *c == '_';
                }
                if (!name_ok) {
                    ERR(x, hp, "header name \"%s\" is not a valid token", k);
                    ok = false;
                } else if (strcasecmp(k, "Authorization") == 0) {
                    ERR(x, hp,
                        "credentials never go into journeys: name them with \"auth\" and set "
                        "them in the server's action_auth setting");
                    ok = false;
                } else if (!json_is_string(hv)) {
                    ERR(x, hp, "a header value must be a string");
                    ok = false;
                }
            }
            if (ok) {
                a->headers = td_journey_tmpl_compile(f, sub, x->errs);
            }
        }
    }
    const char *auth = get_str(x, v, "auth", path, false, TD_JOURNEY_MAX_ID);
    if (auth) {
        at(sub, path, "auth");
        if (!id_ok(auth, false)) {
            ERR(x, sub, "\"auth\" must name a credential of the action_auth setting");
        } else {
            a->auth = td_xstrdup(auth);
            a->auth_path = td_xstrdup(sub);
        }
    }
    if ((f = json_object_get(v, "body")) != NULL) {
        at(sub, path, "body");
        if (a->method && strcmp(a->method, "GET") == 0) {
            ERR(x, sub, "a GET action has no body");
        } else {
            a->body = td_journey_tmpl_compile(f, sub, x->errs);
        }
    }
    get_duration(x, v, "timeout", path, false, 1000, 30000, &a->timeout_ms);
    if ((f = json_object_get(v, "retries")) != NULL) {
        at(sub, path, "retries");
        if (!json_is_integer(f) || json_integer_value(f) < 0 || json_integer_value(f) > 5) {
            ERR(x, sub, "\"retries\" must be a whole number from 0 to 5");
        } else {
            a->retries = (int)json_integer_value(f);
        }
    }
    if ((f = json_object_get(v, "response")) != NULL) {
        const char *k;
        json_t *t;
        bool ok = json_is_object(f);
        at(sub, path, "response");
        if (!ok) {
            ERR(x, sub, "\"response\" must be an object of field names and types");
        } else {
            json_object_foreach(f, k, t)
            {
                bool known = false;
                for (const char *const *rt = response_types; *rt; rt++) {
                    known |= json_is_string(t) && strcmp(*rt, json_string_value(t)) == 0;
                }
                if (!known) {
                    char fp[P];
                    at(fp, sub, k);
                    ERR(x, fp,
                        "type must be one of string, number, integer, boolean, array, object, "
                        "any");
                    ok = false;
                }
            }
        }
        if (ok) {
            a->response = json_incref(f);
        }
    }
    const char *limits[] = { "cap_per_minute", "throttle_per_minute" };
    int *dest[] = { &a->cap_per_minute, &a->throttle_per_minute };
    for (int i = 0; i < 2; i++) {
        if ((f = json_object_get(v, limits[i])) != NULL) {
            at(sub, path, limits[i]);
            if (!json_is_integer(f) || json_integer_value(f) < 1 ||
                json_integer_value(f) > 1000000) {
                ERR(x, sub, "\"%s\" must be a whole number from 1 to 1000000", limits[i]);
            } else {
                *dest[i] = (int)json_integer_value(f);
            }
        }
    }
}

/* ---- steps ------------------------------------------------------------ */

static const struct {
    const char *name;
    td_jstep_type_t type;
    const char *const fields[10];
} step_kinds[] = {
    { "wait", TD_JSTEP_WAIT, { "duration", "until", "time_of_day", "timezone", "next" } },
    { "wait_for_event",
      TD_JSTEP_WAIT_EVENT,
      { "event", "when", "timeout", "next", "timeout_next" } },
    { "condition", TD_JSTEP_CONDITION, { "branches", "else", "split" } },
    { "action", TD_JSTEP_ACTION, { "action", "as", "next" } },
    { "recommend", TD_JSTEP_RECOMMEND, { "criteria", "as", "count", "request", "next" } },
    { "email", TD_JSTEP_EMAIL, { "template", "to", "data", "transactional", "next" } },
    { "update_profile", TD_JSTEP_UPDATE_PROFILE, { "set", "consent", "next" } },
    { "jump", TD_JSTEP_JUMP, { "journey", "next" } },
    { "end", TD_JSTEP_END, { "reason" } },
};

const char *td_jstep_type_name(td_jstep_type_t t)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(step_kinds); i++) {
        if (step_kinds[i].type == t) {
            return step_kinds[i].name;
        }
    }
    return "?";
}

static void parse_branches(vctx_t *x, td_jstep_t *s, const json_t *list, const char *path,
                           bool split)
{
    size_t i;
    json_t *b;
    double total = 0;
    char sub[P];

    if (!json_is_array(list) || json_array_size(list) == 0) {
        ERR(x, path, "\"%s\" must be a non-empty list", split ? "split" : "branches");
        return;
    }
    if (json_array_size(list) > TD_JOURNEY_MAX_BRANCHES) {
        ERR(x, path, "at most %d branches", TD_JOURNEY_MAX_BRANCHES);
        return;
    }
    s->branches = td_xcalloc(json_array_size(list), sizeof(td_jbranch_t));
    json_array_foreach(list, i, b)
    {
        static const char *const bfields[] = { "name", "when", "next", NULL };
        static const char *const sfields[] = { "name", "percent", "next", NULL };
        td_jbranch_t *br = &s->branches[s->n_branches++];
        snprintf(sub, sizeof(sub), "%.200s/%zu", path, i);
        br->next = -2;
        if (!json_is_object(b)) {
            ERR(x, sub, "a branch must be an object");
            continue;
        }
        check_fields(x, b, sub, split ? sfields : bfields);
        const char *name = get_str(x, b, "name", sub, false, TD_JOURNEY_MAX_ID);
        char dflt[32];
        snprintf(dflt, sizeof(dflt), "branch_%zu", i);
        br->name = td_xstrdup(name ? name : dflt);
        for (int k = 0; k < s->n_branches - 1; k++) {
            if (strcmp(s->branches[k].name, br->name) == 0) {
                char np[P];
                at(np, sub, "name");
                ERR(x, np, "two branches are named \"%s\"", br->name);
            }
        }
        if (split) {
            json_t *pct = json_object_get(b, "percent");
            char pp[P];
            at(pp, sub, "percent");
            if (!json_is_number(pct) || json_number_value(pct) < 0 ||
                json_number_value(pct) > 100) {
                ERR(x, pp, "\"percent\" must be a number from 0 to 100");
            } else {
                br->percent = json_number_value(pct);
                total += br->percent;
            }
        } else {
            br->when = get_expr(x, b, "when", sub, true);
            s->uses |= td_journey_expr_uses(br->when);
        }
        br->next = get_step_ref(x, b, "next", sub, true);
    }
    if (split && (total < 99.999 || total > 100.001)) {
        ERR(x, path, "the split's percentages add up to %g, not 100", total);
    }
}

static void parse_wait(vctx_t *x, td_jstep_t *s, const json_t *v, const char *path)
{
    int n = (json_object_get(v, "duration") != NULL) + (json_object_get(v, "until") != NULL) +
            (json_object_get(v, "time_of_day") != NULL);
    char sub[P];

    if (n != 1) {
        ERR(x, path, "a wait needs exactly one of \"duration\", \"until\" or \"time_of_day\"");
    }
    get_duration(x, v, "duration", path, false, 0, TD_JOURNEY_MAX_DURATION_MS, &s->duration_ms);
    s->until = get_expr(x, v, "until", path, false);
    s->time_of_day_min = -1;
    const char *tod = get_str(x, v, "time_of_day", path, false, 8);
    if (tod) {
        int h, m;
        char extra;
        at(sub, path, "time_of_day");
        if (strlen(tod) != 5 || sscanf(tod, "%2d:%2d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 ||
            m < 0 || m > 59) {
            ERR(x, sub, "\"time_of_day\" must be HH:MM (24-hour clock)");
        } else {
            s->time_of_day_min = h * 60 + m;
        }
    }
    s->timezone = get_expr(x, v, "timezone", path, false);
    if (s->timezone && !tod) {
        at(sub, path, "timezone");
        ERR(x, sub, "\"timezone\" goes with \"time_of_day\"");
    }
    s->uses |= td_journey_expr_uses(s->until) | td_journey_expr_uses(s->timezone);
}

static void parse_step(vctx_t *x, td_jstep_t *s, const char *id, const json_t *v, const char *path)
{
    char sub[P];
    const char *type;
    size_t k;

    s->id = td_xstrdup(id);
    s->next = -2;
    s->timeout_next = -2;
    s->else_next = -2;
    s->action = -1;
    s->time_of_day_min = -1;
    if (!id_ok(id, false)) {
        ERR(x, path,
            "step id \"%s\" must be 1 to %d letters, digits, _ or - (starting with a letter or "
            "digit)",
            id, TD_JOURNEY_MAX_ID);
    }
    if (!json_is_object(v)) {
        ERR(x, path, "a step must be an object");
        return;
    }
    if ((type = get_str(x, v, "type", path, true, 32)) == NULL) {
        return;
    }
    for (k = 0; k < TD_ARRAY_LEN(step_kinds); k++) {
        if (strcmp(step_kinds[k].name, type) == 0) {
            break;
        }
    }
    if (k == TD_ARRAY_LEN(step_kinds)) {
        at(sub, path, "type");
        ERR(x, sub,
            "unknown step type \"%s\" (wait, wait_for_event, condition, action, recommend, "
            "email, update_profile, jump, end)",
            type);
        return;
    }
    s->type = step_kinds[k].type;
    {
        const char *fields[14] = { "type", "description" };
        int nf = 2;
        for (int i = 0; step_kinds[k].fields[i]; i++) {
            fields[nf++] = step_kinds[k].fields[i];
        }
        fields[nf] = NULL;
        check_fields(x, v, path, fields);
    }
    bool needs_next = s->type != TD_JSTEP_CONDITION && s->type != TD_JSTEP_END;
    if (needs_next) {
        bool required = s->type != TD_JSTEP_JUMP;
        if (json_object_get(v, "next") == NULL && required) {
            at(sub, path, "next");
            ERR(x, sub, "\"next\" is required (end the journey with a step of type \"end\")");
        } else {
            s->next = get_step_ref(x, v, "next", path, false);
            if (s->next == -2 && s->type == TD_JSTEP_JUMP && json_object_get(v, "next") == NULL) {
                s->next = -1;
            }
        }
    }
    switch (s->type) {
    case TD_JSTEP_WAIT:
        parse_wait(x, s, v, path);
        break;
    case TD_JSTEP_WAIT_EVENT: {
        const char *ev = get_str(x, v, "event", path, true, 64);
        if (ev && !event_type_ok(ev)) {
            at(sub, path, "event");
            ERR(x, sub, "\"event\" must be an event type (letters, digits, _ . - :)");
        } else if (ev) {
            s->event_type = td_xstrdup(ev);
        }
        s->when = get_expr(x, v, "when", path, false);
        s->uses |= td_journey_expr_uses(s->when);
        get_duration(x, v, "timeout", path, true, 0, TD_JOURNEY_MAX_DURATION_MS, &s->timeout_ms);
        s->timeout_next = get_step_ref(x, v, "timeout_next", path, true);
        break;
    }
    case TD_JSTEP_CONDITION: {
        json_t *branches = json_object_get(v, "branches"), *split = json_object_get(v, "split");
        if ((branches != NULL) == (split != NULL)) {
            ERR(x, path, "a condition needs either \"branches\" (with \"else\") or \"split\"");
            break;
        }
        s->split = split != NULL;
        at(sub, path, s->split ? "split" : "branches");
        parse_branches(x, s, s->split ? split : branches, sub, s->split);
        if (!s->split) {
            s->else_next = get_step_ref(x, v, "else", path, true);
        } else if (json_object_get(v, "else")) {
            at(sub, path, "else");
            ERR(x, sub, "a split has no \"else\": its percentages add up to 100");
        }
        break;
    }
    case TD_JSTEP_ACTION: {
        const char *name = get_str(x, v, "action", path, true, TD_JOURNEY_MAX_ID);
        if (name) {
            for (int i = 0; i < x->def->n_actions; i++) {
                if (strcmp(x->def->actions[i].name, name) == 0) {
                    s->action = i;
                }
            }
            if (s->action < 0) {
                at(sub, path, "action");
                ERR(x, sub, "no action \"%s\" in \"actions\"", name);
            }
        }
        const char *as = get_str(x, v, "as", path, false, TD_JOURNEY_MAX_ID);
        s->as = td_xstrdup(as ? as : name ? name : "");
        s->uses = TD_JOURNEY_USES_PROFILE;
        if (s->action >= 0) {
            td_jaction_t *a = &x->def->actions[s->action];
            s->uses |= td_journey_tmpl_uses(a->url) | td_journey_tmpl_uses(a->query) |
                       td_journey_tmpl_uses(a->headers) | td_journey_tmpl_uses(a->body);
        }
        break;
    }
    case TD_JSTEP_RECOMMEND: {
        json_t *c = json_object_get(v, "criteria");
        at(sub, path, "criteria");
        if (c == NULL) {
            ERR(x, sub, "\"criteria\" is required (a criteria id or an inline criteria object)");
        } else if (json_is_string(c) && json_string_length(c) > 0 && json_string_length(c) <= 128) {
            s->criteria = json_incref(c);
        } else if (json_is_object(c)) {
            s->criteria = json_incref(c);
        } else {
            ERR(x, sub, "\"criteria\" must be a criteria id or an inline criteria object");
        }
        const char *as = get_str(x, v, "as", path, false, TD_JOURNEY_MAX_ID);
        s->as = td_xstrdup(as ? as : id);
        s->count = 10;
        json_t *cnt = json_object_get(v, "count");
        if (cnt) {
            at(sub, path, "count");
            if (!json_is_integer(cnt) || json_integer_value(cnt) < 1 ||
                json_integer_value(cnt) > 100) {
                ERR(x, sub, "\"count\" must be a whole number from 1 to 100");
            } else {
                s->count = (int)json_integer_value(cnt);
            }
        }
        s->request = get_tmpl(x, v, "request", path, true);
        s->uses = TD_JOURNEY_USES_PROFILE | td_journey_tmpl_uses(s->request);
        break;
    }
    case TD_JSTEP_EMAIL: {
        const char *tpl = get_str(x, v, "template", path, true, 128);
        if (tpl && !id_ok(tpl, true)) {
            at(sub, path, "template");
            ERR(x, sub, "\"template\" must be a template id (letters, digits, _ - .)");
        } else if (tpl) {
            s->template_id = td_xstrdup(tpl);
        }
        s->to = get_expr(x, v, "to", path, false);
        s->data = get_tmpl(x, v, "data", path, true);
        json_t *tr = json_object_get(v, "transactional");
        if (tr && !json_is_boolean(tr)) {
            at(sub, path, "transactional");
            ERR(x, sub, "\"transactional\" must be true or false");
        }
        s->transactional = json_is_true(tr);
        s->uses =
            TD_JOURNEY_USES_PROFILE | td_journey_expr_uses(s->to) | td_journey_tmpl_uses(s->data);
        break;
    }
    case TD_JSTEP_UPDATE_PROFILE: {
        json_t *set = json_object_get(v, "set");
        const char *consent = get_str(x, v, "consent", path, false, 8);
        if (set == NULL && consent == NULL) {
            ERR(x, path, "update_profile needs \"set\" or \"consent\"");
        }
        if (set) {
            const char *attr;
            json_t *val;
            at(sub, path, "set");
            if (json_is_object(set)) {
                json_object_foreach(set, attr, val)
                {
                    if (!id_ok(attr, true)) {
                        char kp[P];
                        at(kp, sub, attr);
                        ERR(x, kp, "attribute name \"%s\" must be letters, digits, _ - .", attr);
                    }
                }
            }
        }
        s->set = get_tmpl(x, v, "set", path, true);
        if (consent) {
            at(sub, path, "consent");
            if (strcmp(consent, "in") == 0) {
                s->consent = 1;
            } else if (strcmp(consent, "out") == 0) {
                s->consent = 2;
            } else {
                ERR(x, sub, "\"consent\" must be \"in\" or \"out\"");
            }
        }
        s->uses = td_journey_tmpl_uses(s->set);
        break;
    }
    case TD_JSTEP_JUMP: {
        const char *j = get_str(x, v, "journey", path, true, TD_JOURNEY_MAX_ID);
        at(sub, path, "journey");
        if (j && !id_ok(j, true)) {
            ERR(x, sub, "\"journey\" must be a journey id");
        } else if (j && x->def->id && strcmp(j, x->def->id) == 0) {
            ERR(x, sub, "a journey cannot jump to itself");
        } else if (j) {
            s->journey = td_xstrdup(j);
        }
        break;
    }
    case TD_JSTEP_END: {
        const char *r = get_str(x, v, "reason", path, false, 64);
        s->reason = td_xstrdup(r ? r : "completed");
        break;
    }
    }
}

/* ---- the graph -------------------------------------------------------- */

static int edges(const td_jstep_t *s, int *out)
{
    int n = 0;

    if (s->next >= 0) {
        out[n++] = s->next;
    }
    if (s->timeout_next >= 0) {
        out[n++] = s->timeout_next;
    }
    if (s->else_next >= 0) {
        out[n++] = s->else_next;
    }
    for (int i = 0; i < s->n_branches; i++) {
        if (s->branches[i].next >= 0) {
            out[n++] = s->branches[i].next;
        }
    }
    return n;
}

static bool is_wait(const td_jstep_t *s)
{
    return s->type == TD_JSTEP_WAIT || s->type == TD_JSTEP_WAIT_EVENT;
}

/* Depth-first search for a loop made only of steps that do not wait: such a
 * loop would spin forever. */
static bool find_loop(const td_journey_def_t *def, int s, char *color, int *stack, int depth,
                      int *loop_start, int *loop_len)
{
    int out[TD_JOURNEY_MAX_BRANCHES + 4];

    color[s] = 1;
    stack[depth] = s;
    int n = edges(&def->steps[s], out);
    for (int i = 0; i < n; i++) {
        int t = out[i];
        if (is_wait(&def->steps[t])) {
            continue;
        }
        if (color[t] == 1) {
            for (int k = 0; k <= depth; k++) {
                if (stack[k] == t) {
                    *loop_start = k;
                    *loop_len = depth - k + 1;
                }
            }
            return true;
        }
        if (color[t] == 0 && find_loop(def, t, color, stack, depth + 1, loop_start, loop_len)) {
            return true;
        }
    }
    color[s] = 2;
    return false;
}

static void check_graph(vctx_t *x)
{
    td_journey_def_t *def = x->def;
    int n = def->n_steps;
    char *seen = td_xcalloc((size_t)n, 1);
    int *queue = td_xcalloc((size_t)n, sizeof(int));
    int head = 0, tail = 0;
    char sub[P];

    queue[tail++] = def->first;
    seen[def->first] = 1;
    while (head < tail) {
        int out[TD_JOURNEY_MAX_BRANCHES + 4];
        int k = edges(&def->steps[queue[head++]], out);
        for (int i = 0; i < k; i++) {
            if (!seen[out[i]]) {
                seen[out[i]] = 1;
                queue[tail++] = out[i];
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (!seen[i]) {
            at(sub, "/steps", def->steps[i].id);
            ERR(x, sub, "step \"%s\" cannot be reached from the first step \"%s\"",
                def->steps[i].id, def->steps[def->first].id);
        }
    }
    memset(seen, 0, (size_t)n);
    for (int i = 0; i < n; i++) {
        int start = 0, len = 0;
        if (seen[i] || is_wait(&def->steps[i])) {
            continue;
        }
        if (find_loop(def, i, seen, queue, 0, &start, &len)) {
            char path_text[200] = "";
            size_t used = 0;
            for (int k = 0; k < len && used < sizeof(path_text) - 70; k++) {
                used += (size_t)snprintf(path_text + used, sizeof(path_text) - used, "%s -> ",
                                         def->steps[queue[start + k]].id);
            }
            snprintf(path_text + used, sizeof(path_text) - used, "%s", def->steps[queue[start]].id);
            at(sub, "/steps", def->steps[queue[start]].id);
            ERR(x, sub, "loop without a wait step: %s", path_text);
            break;
        }
    }
    free(seen);
    free(queue);
}

/* ---- the document ----------------------------------------------------- */

static void parse_entry(vctx_t *x, const json_t *doc)
{
    static const char *const fields[] = { "event", "when", "key", NULL };
    json_t *e = json_object_get(doc, "entry");

    if (e == NULL) {
        ERR(x, "/entry", "\"entry\" is required: {\"event\": \"cart_add\", \"when\": ...}");
        return;
    }
    if (!json_is_object(e)) {
        ERR(x, "/entry", "\"entry\" must be an object");
        return;
    }
    check_fields(x, e, "/entry", fields);
    const char *ev = get_str(x, e, "event", "/entry", true, 64);
    if (ev && !event_type_ok(ev)) {
        ERR(x, "/entry/event", "\"event\" must be an event type (letters, digits, _ . - :)");
    } else if (ev) {
        x->def->entry_event = td_xstrdup(ev);
    }
    x->def->entry_when = get_expr(x, e, "when", "/entry", false);
    x->def->entry_key = get_expr(x, e, "key", "/entry", false);
}

static void parse_reentry(vctx_t *x, const json_t *doc, const td_journey_defaults_t *dflt)
{
    static const char *const fields[] = { "allowed", "wait", NULL };
    json_t *r = json_object_get(doc, "reentry");

    x->def->reentry_wait_ms = dflt->reentry_wait_ms;
    if (r == NULL) {
        return;
    }
    if (json_is_string(r) && strcmp(json_string_value(r), "never") == 0) {
        x->def->reentry_wait_ms = -1;
        return;
    }
    if (!json_is_object(r)) {
        ERR(x, "/reentry",
            "\"reentry\" must be \"never\" or {\"allowed\": true, \"wait\": \"5m\"}");
        return;
    }
    check_fields(x, r, "/reentry", fields);
    json_t *allowed = json_object_get(r, "allowed");
    if (allowed && !json_is_boolean(allowed)) {
        ERR(x, "/reentry/allowed", "\"allowed\" must be true or false");
    }
    if (json_is_false(allowed)) {
        x->def->reentry_wait_ms = -1;
        if (json_object_get(r, "wait")) {
            ERR(x, "/reentry/wait", "\"wait\" goes with \"allowed\": true");
        }
        return;
    }
    get_duration(x, r, "wait", "/reentry", false, 0, TD_JOURNEY_MAX_DURATION_MS,
                 &x->def->reentry_wait_ms);
}

static void parse_exits(vctx_t *x, const json_t *doc)
{
    static const char *const fields[] = { "name", "event", "when", NULL };
    json_t *list = json_object_get(doc, "exit"), *e;
    size_t i;
    char sub[P];

    if (list == NULL) {
        return;
    }
    if (!json_is_array(list)) {
        ERR(x, "/exit", "\"exit\" must be a list of {\"name\", \"event\", \"when\"}");
        return;
    }
    if (json_array_size(list) > TD_JOURNEY_MAX_EXITS) {
        ERR(x, "/exit", "at most %d exit criteria", TD_JOURNEY_MAX_EXITS);
        return;
    }
    x->def->exits = td_xcalloc(json_array_size(list) + 1, sizeof(td_jexit_t));
    json_array_foreach(list, i, e)
    {
        snprintf(sub, sizeof(sub), "/exit/%zu", i);
        if (!json_is_object(e)) {
            ERR(x, sub, "an exit criterion must be an object");
            continue;
        }
        check_fields(x, e, sub, fields);
        td_jexit_t *xc = &x->def->exits[x->def->n_exits];
        const char *ev = get_str(x, e, "event", sub, true, 64);
        const char *name = get_str(x, e, "name", sub, false, TD_JOURNEY_MAX_ID);
        if (ev && !event_type_ok(ev)) {
            char ep[P];
            at(ep, sub, "event");
            ERR(x, ep, "\"event\" must be an event type");
            ev = NULL;
        }
        xc->when = get_expr(x, e, "when", sub, false);
        if (ev == NULL) {
            td_journey_expr_free(xc->when);
            xc->when = NULL;
            continue;
        }
        xc->event_type = td_xstrdup(ev);
        xc->name = td_xstrdup(name ? name : ev);
        x->def->n_exits++;
    }
}

static void parse_schedule(vctx_t *x, const json_t *doc)
{
    const char *keys[] = { "start_date", "end_date" };
    int64_t *dest[] = { &x->def->start_ms, &x->def->end_ms };
    char sub[P];

    for (int i = 0; i < 2; i++) {
        const char *s = get_str(x, doc, keys[i], "", false, 64);
        if (s && td_time_parse_iso(s, dest[i]) != TD_OK) {
            at(sub, "", keys[i]);
            ERR(x, sub, "\"%s\" must be an ISO 8601 time such as \"2026-11-28T00:00:00Z\"",
                keys[i]);
        }
    }
    if (x->def->start_ms && x->def->end_ms && x->def->end_ms <= x->def->start_ms) {
        ERR(x, "/end_date", "\"end_date\" must be after \"start_date\"");
    }
}

static void parse_actions(vctx_t *x, const json_t *doc)
{
    json_t *acts = json_object_get(doc, "actions"), *v;
    const char *k;
    char sub[P];

    if (acts == NULL) {
        return;
    }
    if (!json_is_object(acts)) {
        ERR(x, "/actions", "\"actions\" must be an object of named actions");
        return;
    }
    if (json_object_size(acts) > TD_JOURNEY_MAX_ACTIONS) {
        ERR(x, "/actions", "at most %d actions", TD_JOURNEY_MAX_ACTIONS);
        return;
    }
    x->def->actions = td_xcalloc(json_object_size(acts) + 1, sizeof(td_jaction_t));
    json_object_foreach(acts, k, v)
    {
        at(sub, "/actions", k);
        parse_action(x, &x->def->actions[x->def->n_actions++], k, v, sub);
    }
}

static void parse_steps(vctx_t *x, const json_t *doc)
{
    json_t *steps = json_object_get(doc, "steps"), *v;
    const char *k;
    char sub[P];
    int i = 0;

    if (steps == NULL || !json_is_object(steps) || json_object_size(steps) == 0) {
        ERR(x, "/steps", "\"steps\" must be a non-empty object of steps keyed by their ids");
        return;
    }
    if (json_object_size(steps) > TD_JOURNEY_MAX_STEPS) {
        ERR(x, "/steps", "at most %d steps", TD_JOURNEY_MAX_STEPS);
        return;
    }
    json_object_foreach(steps, k, v)
    {
        json_object_set_new(x->step_ids, k, json_integer(i++));
    }
    x->def->steps = td_xcalloc(json_object_size(steps), sizeof(td_jstep_t));
    json_object_foreach(steps, k, v)
    {
        at(sub, "/steps", k);
        parse_step(x, &x->def->steps[x->def->n_steps++], k, v, sub);
    }
    const char *first = get_str(x, doc, "first_step", "", false, TD_JOURNEY_MAX_ID * 4);
    x->def->first = 0;
    if (first) {
        json_t *idx = json_object_get(x->step_ids, first);
        if (idx == NULL) {
            ERR(x, "/first_step", "no step \"%s\" in \"steps\"", first);
        } else {
            x->def->first = (int)json_integer_value(idx);
        }
    }
}

static void free_step(td_jstep_t *s)
{
    free(s->id);
    td_journey_expr_free(s->until);
    td_journey_expr_free(s->timezone);
    free(s->event_type);
    td_journey_expr_free(s->when);
    for (int i = 0; i < s->n_branches; i++) {
        free(s->branches[i].name);
        td_journey_expr_free(s->branches[i].when);
    }
    free(s->branches);
    free(s->as);
    json_decref(s->criteria);
    td_journey_tmpl_free(s->request);
    free(s->template_id);
    td_journey_expr_free(s->to);
    td_journey_tmpl_free(s->data);
    td_journey_tmpl_free(s->set);
    free(s->journey);
    free(s->reason);
}

static void free_def(td_journey_def_t *def)
{
    free(def->id);
    free(def->name);
    json_decref(def->doc);
    free(def->text);
    free(def->entry_event);
    td_journey_expr_free(def->entry_when);
    td_journey_expr_free(def->entry_key);
    for (int i = 0; i < def->n_exits; i++) {
        free(def->exits[i].name);
        free(def->exits[i].event_type);
        td_journey_expr_free(def->exits[i].when);
    }
    free(def->exits);
    free(def->timezone);
    for (int i = 0; i < def->n_actions; i++) {
        td_jaction_t *a = &def->actions[i];
        free(a->name);
        free(a->method);
        td_journey_tmpl_free(a->url);
        td_journey_tmpl_free(a->query);
        td_journey_tmpl_free(a->headers);
        td_journey_tmpl_free(a->body);
        free(a->auth);
        free(a->auth_path);
        json_decref(a->response);
    }
    free(def->actions);
    for (int i = 0; i < def->n_steps; i++) {
        free_step(&def->steps[i]);
    }
    free(def->steps);
    free(def);
}

void td_journey_def_free(td_journey_def_t *def)
{
    if (def && atomic_fetch_sub(&def->refs, 1) == 1) {
        free_def(def);
    }
}

td_journey_def_t *td_journey_def_ref(td_journey_def_t *def)
{
    atomic_fetch_add(&def->refs, 1);
    return def;
}

int td_journey_def_parse(const char *json, size_t len, const char *id_hint,
                         const td_journey_defaults_t *defaults, td_journey_def_t **out,
                         td_journey_errors_t *errs)
{
    static const char *const fields[] = { "id",       "name",     "description", "entry",
                                          "reentry",  "exit",     "timeout",     "start_date",
                                          "end_date", "timezone", "actions",     "first_step",
                                          "steps",    "tags",     NULL };
    json_error_t jerr;
    json_t *doc;
    vctx_t x = { .errs = errs };

    *out = NULL;
    if (len > TD_JOURNEY_MAX_DOC) {
        td_journey_errors_add(errs, "", 0, "definition larger than %d bytes", TD_JOURNEY_MAX_DOC);
        return TD_ETOOBIG;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        td_err_t *e;
        td_journey_errors_add(errs, "", 0, "invalid JSON: %s", jerr.text);
        e = &errs->items[errs->n - 1];
        e->line = jerr.line > 0 ? jerr.line : 1;
        e->column = jerr.column > 0 ? jerr.column : 1;
        return TD_EINVAL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        td_journey_errors_add(errs, "", 0, "a journey definition must be a JSON object");
        return TD_EINVAL;
    }
    td_journey_def_t *def = td_xcalloc(1, sizeof(*def));
    atomic_init(&def->refs, 1);
    x.def = def;
    x.step_ids = json_object();
    check_fields(&x, doc, "", fields);

    const char *id = get_str(&x, doc, "id", "", false, TD_JOURNEY_MAX_ID);
    if (id && !id_ok(id, true)) {
        ERR(&x, "/id",
            "\"id\" must be 1 to %d letters, digits, _ - . (starting with a letter or digit)",
            TD_JOURNEY_MAX_ID);
    } else if (id && id_hint && strcmp(id, id_hint) != 0) {
        ERR(&x, "/id", "\"id\" is \"%s\" but the URL names \"%s\"", id, id_hint);
    }
    if (id == NULL && id_hint == NULL && json_object_get(doc, "id") == NULL) {
        ERR(&x, "/id", "\"id\" is required");
    }
    def->id = td_xstrdup(id ? id : id_hint ? id_hint : "");
    if (id == NULL && id_hint && json_object_get(doc, "id") == NULL) {
        if (!id_ok(id_hint, true)) {
            ERR(&x, "/id", "journey id \"%s\" must be 1 to %d letters, digits, _ - .", id_hint,
                TD_JOURNEY_MAX_ID);
        }
        json_object_set_new(doc, "id", json_string(id_hint));
    }
    const char *name = get_str(&x, doc, "name", "", false, 200);
    def->name = td_xstrdup(name ? name : def->id);
    get_str(&x, doc, "description", "", false, 4000);
    json_t *tags = json_object_get(doc, "tags");
    if (tags && !json_is_array(tags)) {
        ERR(&x, "/tags", "\"tags\" must be a list of strings");
    }
    parse_entry(&x, doc);
    parse_reentry(&x, doc, defaults);
    parse_exits(&x, doc);
    def->timeout_ms = defaults->timeout_ms;
    get_duration(&x, doc, "timeout", "", false, 60000, TD_JOURNEY_MAX_DURATION_MS,
                 &def->timeout_ms);
    parse_schedule(&x, doc);
    const char *tz = get_str(&x, doc, "timezone", "", false, 64);
    def->timezone = td_xstrdup(tz ? tz : "UTC");
    parse_actions(&x, doc);
    parse_steps(&x, doc);
    if (errs->n == 0) {
        check_graph(&x);
    }
    json_decref(x.step_ids);
    if (errs->n > 0) {
        json_decref(doc);
        free_def(def);
        return TD_EINVAL;
    }
    def->doc = doc;
    def->text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (def->text == NULL) {
        TD_BUG("json_dumps failed");
    }
    *out = def;
    return TD_OK;
}

const char *td_journey_def_id(const td_journey_def_t *def)
{
    return def->id;
}

const char *td_journey_def_text(const td_journey_def_t *def)
{
    return def->text;
}

const json_t *td_journey_def_json(const td_journey_def_t *def)
{
    return def->doc;
}

const char *td_journey_def_entry_event(const td_journey_def_t *def)
{
    return def->entry_event;
}

int td_journey_def_n_steps(const td_journey_def_t *def)
{
    return def->n_steps;
}

const char *td_journey_def_step_id(const td_journey_def_t *def, int step)
{
    return step >= 0 && step < def->n_steps ? def->steps[step].id : NULL;
}

td_jstep_type_t td_journey_def_step_type(const td_journey_def_t *def, int step)
{
    return def->steps[step].type;
}

int td_journey_def_step_find(const td_journey_def_t *def, const char *id)
{
    for (int i = 0; i < def->n_steps; i++) {
        if (strcmp(def->steps[i].id, id) == 0) {
            return i;
        }
    }
    return -1;
}

int td_journey_def_first_step(const td_journey_def_t *def)
{
    return def->first;
}

void td_journey_def_each_auth(const td_journey_def_t *def,
                              void (*fn)(void *ctx, const char *name, const char *path), void *ctx)
{
    for (int i = 0; i < def->n_actions; i++) {
        if (def->actions[i].auth) {
            fn(ctx, def->actions[i].auth, def->actions[i].auth_path);
        }
    }
}

int64_t td_journey_reentry_wait_ms(const td_journey_def_t *def)
{
    return def->reentry_wait_ms;
}

int64_t td_journey_timeout_ms(const td_journey_def_t *def)
{
    return def->timeout_ms;
}

int64_t td_journey_start_ms(const td_journey_def_t *def)
{
    return def->start_ms;
}

int64_t td_journey_end_ms(const td_journey_def_t *def)
{
    return def->end_ms;
}
