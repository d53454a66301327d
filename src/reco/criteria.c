/* Criteria JSON (Target's field names) parsed and validated into a plain
 * td_reco_criteria_t. Strict: unknown fields, wrong types, values out of
 * range and combinations Target does not allow (a CART criteria with a key,
 * SIMILARITY in a CART group, ...) are refused with the JSON pointer of the
 * field at fault. Every size from input is capped before it is allocated. */
#include "reco/internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/banned.h"

#define MAX_TEXT   1024
#define MAX_RULES  50
#define MAX_VALUES 1000
#define MAX_PROMO  100
#define MAX_WEIGHT 100

typedef struct named {
    const char *name;
    int value;
} named_t;

static const named_t groups[] = {
    { "ITEM", TD_RECO_GROUP_ITEM },
    { "CART", TD_RECO_GROUP_CART },
    { "POPULARITY", TD_RECO_GROUP_POPULARITY },
    { "CATEGORY", TD_RECO_GROUP_CATEGORY },
    { "RECENT", TD_RECO_GROUP_RECENT },
    { "USERHISTORY", TD_RECO_GROUP_USERHISTORY },
    { "PROFILEATTRIBUTE", TD_RECO_GROUP_PROFILEATTRIBUTE },
    { "CUSTOM", TD_RECO_GROUP_CUSTOM },
    { "SEQUENCE", TD_RECO_GROUP_SEQUENCE },
};

static const named_t algos[] = {
    { "VIEWED_CF", TD_RECO_ALGO_VIEWED_CF },
    { "VIEWED_BOUGHT", TD_RECO_ALGO_VIEWED_BOUGHT },
    { "BOUGHT_CF", TD_RECO_ALGO_BOUGHT_CF },
    { "SIMILARITY", TD_RECO_ALGO_SIMILARITY },
    { "SITE_AFFINITY", TD_RECO_ALGO_SITE_AFFINITY },
    { "MOST_VIEWED", TD_RECO_ALGO_MOST_VIEWED },
    { "TOP_SELLERS", TD_RECO_ALGO_TOP_SELLERS },
    { "RECENTLY_VIEWED", TD_RECO_ALGO_RECENTLY_VIEWED },
    { "RECOMMENDED_FOR_YOU", TD_RECO_ALGO_RECOMMENDED_FOR_YOU },
    { "CUSTOM", TD_RECO_ALGO_CUSTOM },
    { "ABANDONED_CART", TD_RECO_ALGO_ABANDONED_CART },
    { "SEQUENCE", TD_RECO_ALGO_SEQUENCE },
};

static const named_t keys[] = {
    { "NONE", TD_RECO_KEY_NONE },
    { "CURRENT_ITEM", TD_RECO_KEY_CURRENT_ITEM },
    { "CURRENT_CATEGORY", TD_RECO_KEY_CURRENT_CATEGORY },
    { "FAVORITE_CATEGORY", TD_RECO_KEY_FAVORITE_CATEGORY },
    { "LAST_VIEWED", TD_RECO_KEY_LAST_VIEWED },
    { "LAST_PURCHASED", TD_RECO_KEY_LAST_PURCHASED },
    { "MOST_VIEWED", TD_RECO_KEY_MOST_VIEWED },
    { "PROFILE_ATTRIBUTE", TD_RECO_KEY_PROFILE_ATTRIBUTE },
    { "CART", TD_RECO_KEY_CART },
};

static const named_t metrics[] = {
    { "LLR", TD_RECO_METRIC_LLR },
    { "COSINE", TD_RECO_METRIC_COSINE },
    { "L2", TD_RECO_METRIC_L2 },
};

static const named_t ops[] = {
    { "equals", TD_RECO_OP_EQUALS },          { "notEquals", TD_RECO_OP_NOT_EQUALS },
    { "contains", TD_RECO_OP_CONTAINS },      { "notContains", TD_RECO_OP_NOT_CONTAINS },
    { "startsWith", TD_RECO_OP_STARTS_WITH }, { "endsWith", TD_RECO_OP_ENDS_WITH },
    { "greaterThanOrEqual", TD_RECO_OP_GTE }, { "lessThanOrEqual", TD_RECO_OP_LTE },
    { "between", TD_RECO_OP_BETWEEN },        { "inList", TD_RECO_OP_IN_LIST },
    { "notInList", TD_RECO_OP_NOT_IN_LIST },  { "present", TD_RECO_OP_PRESENT },
    { "notPresent", TD_RECO_OP_NOT_PRESENT },
};

static const named_t sources[] = {
    { "STATIC", TD_RECO_SRC_STATIC },
    { "CURRENT_ITEM", TD_RECO_SRC_KEY_ITEM },
    { "PROFILE", TD_RECO_SRC_PROFILE },
    { "PARAMETER", TD_RECO_SRC_PARAMETER },
};

static const named_t if_empty[] = {
    { "IGNORE", TD_RECO_EMPTY_IGNORE },
    { "NO_RESULTS", TD_RECO_EMPTY_NO_RESULTS },
    { "STATIC", TD_RECO_EMPTY_STATIC },
};

/* Chi-square critical values (1 degree of freedom) for p = 0.05, 0.01,
 * 0.001 and 0.0001: LLR is asymptotically chi-square distributed. */
static const struct {
    const char *name;
    double llr;
} confidences[] = {
    { "LOW", 3.84 },
    { "MEDIUM", 6.63 },
    { "HIGH", 10.83 },
    { "VERY_HIGH", 15.13 },
};

static const char *name_of(const named_t *t, size_t n, int v)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].value == v) {
            return t[i].name;
        }
    }
    return "?";
}

const char *td_reco_algo_name(td_reco_algo_t a)
{
    return name_of(algos, TD_ARRAY_LEN(algos), (int)a);
}

const char *td_reco_key_name(td_reco_key_t k)
{
    return name_of(keys, TD_ARRAY_LEN(keys), (int)k);
}

const char *td_reco_group_name(td_reco_group_t g)
{
    return name_of(groups, TD_ARRAY_LEN(groups), (int)g);
}

/* ---- paths and scalars ---- */

static void key_path(char *out, size_t len, const char *prefix, const char *key)
{
    size_t n = (size_t)snprintf(out, len, "%s/", prefix);
    for (; *key && n + 3 < len; key++) {
        if (*key == '~' || *key == '/') {
            out[n++] = '~';
            out[n++] = *key == '~' ? '0' : '1';
        } else {
            out[n++] = *key;
        }
    }
    out[n < len ? n : len - 1] = '\0';
}

/* The error for a required field that is absent: path/key, escaped. */
static int missing(td_err_t *err, const char *path, const char *key)
{
    char p[sizeof(((td_err_t *)0)->path)];

    key_path(p, sizeof(p), path, key);
    return td_err_set(err, TD_EINVAL, p, "missing required field");
}

static void index_path(char *out, size_t len, const char *prefix, size_t i)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "/%zu", i);
    size_t a = strnlen(prefix, len - 1);
    size_t b = (size_t)k < len - 1 - a ? (size_t)k : len - 1 - a;
    memmove(out, prefix, a);
    memcpy(out + a, num, b);
    out[a + b] = '\0';
}

static int get_enum(json_t *v, const char *path, const named_t *t, size_t n, int *out,
                    td_err_t *err)
{
    if (!json_is_string(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be a string");
    }
    const char *s = json_string_value(v);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, t[i].name) == 0) {
            *out = t[i].value;
            return TD_OK;
        }
    }
    char list[512];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && len + 40 < sizeof(list); i++) {
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", t[i].name);
    }
    return td_err_set(err, TD_EINVAL, path, "unknown value \"%.64s\" (one of: %s)", s, list);
}

static int get_string(json_t *v, const char *path, size_t max, char **out, td_err_t *err)
{
    if (!json_is_string(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be a string");
    }
    size_t n = json_string_length(v);
    if (n == 0) {
        return td_err_set(err, TD_EINVAL, path, "must not be empty");
    }
    if (n > max) {
        return td_err_set(err, TD_EINVAL, path, "longer than %zu bytes", max);
    }
    const char *s = json_string_value(v);
    if (memchr(s, '\0', n) != NULL) {
        return td_err_set(err, TD_EINVAL, path, "must not contain NUL");
    }
    free(*out);
    *out = td_xstrndup(s, n);
    return TD_OK;
}

static int get_bool(json_t *v, const char *path, bool *out, td_err_t *err)
{
    if (!json_is_boolean(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be true or false");
    }
    *out = json_is_true(v);
    return TD_OK;
}

static int get_number(json_t *v, const char *path, double min, double max, double *out,
                      td_err_t *err)
{
    if (!json_is_number(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be a number");
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max) {
        return td_err_set(err, TD_EINVAL, path, "must be from %g to %g", min, max);
    }
    *out = d;
    return TD_OK;
}

static int get_int(json_t *v, const char *path, int min, int max, int *out, td_err_t *err)
{
    if (!json_is_integer(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be an integer");
    }
    json_int_t i = json_integer_value(v);
    if (i < min || i > max) {
        return td_err_set(err, TD_EINVAL, path, "must be from %d to %d", min, max);
    }
    *out = (int)i;
    return TD_OK;
}

/* A value of a rule list: strings as they are, numbers in their shortest
 * form (so "values": [25] compares like "25"). */
static int get_value_text(json_t *v, const char *path, char **out, td_err_t *err)
{
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n > MAX_TEXT) {
            return td_err_set(err, TD_EINVAL, path, "longer than %d bytes", MAX_TEXT);
        }
        if (memchr(json_string_value(v), '\0', n) != NULL) {
            return td_err_set(err, TD_EINVAL, path, "must not contain NUL");
        }
        *out = td_xstrndup(json_string_value(v), n);
        return TD_OK;
    }
    if (json_is_number(v)) {
        char buf[64];
        double d = json_number_value(v);
        if (json_is_integer(v)) {
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else {
            snprintf(buf, sizeof(buf), "%.17g", d);
        }
        *out = td_xstrdup(buf);
        return TD_OK;
    }
    return td_err_set(err, TD_EINVAL, path, "must be a string or a number");
}

static const char *strip_prefix(const char *s)
{
    if (strncmp(s, "entity.", 7) == 0) {
        return s + 7;
    }
    if (strncmp(s, "profile.", 8) == 0) {
        return s + 8;
    }
    if (strncmp(s, "user.", 5) == 0) {
        return s + 5;
    }
    if (strncmp(s, "mbox.", 5) == 0) {
        return s + 5;
    }
    return s;
}

static void strip_in_place(char *s)
{
    const char *t = strip_prefix(s);
    if (t != s) {
        memmove(s, t, strlen(t) + 1);
    }
}

/* ---- rules ---- */

static void rule_release(td_reco_rule_t *r)
{
    free(r->attribute);
    free(r->source_attribute);
    for (int i = 0; i < r->n_values; i++) {
        free(r->values[i]);
    }
    free(r->values);
}

void td_reco_rules_release(td_reco_rules_t *r)
{
    if (r == NULL) {
        return;
    }
    for (int i = 0; i < r->n; i++) {
        rule_release(&r->rules[i]);
    }
    free(r->rules);
    r->rules = NULL;
    r->n = 0;
}

static bool numeric_attr(const char *a)
{
    return strcmp(a, "value") == 0 || strcmp(a, "inventory") == 0 || strcmp(a, "margin") == 0;
}

static int parse_rule(json_t *o, const char *path, td_reco_rule_t *r, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;
    bool has_op = false, has_min = false, has_max = false, has_empty = false;
    int rc = TD_OK, e;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    r->source = TD_RECO_SRC_STATIC;
    json_object_foreach(o, key, v)
    {
        key_path(p, sizeof(p), path, key);
        if (strcmp(key, "attribute") == 0) {
            rc = get_string(v, p, 128, &r->attribute, err);
            if (rc == TD_OK) {
                strip_in_place(r->attribute);
            }
        } else if (strcmp(key, "operation") == 0) {
            rc = get_enum(v, p, ops, TD_ARRAY_LEN(ops), &e, err);
            r->op = (td_reco_op_t)e;
            has_op = true;
        } else if (strcmp(key, "source") == 0) {
            rc = get_enum(v, p, sources, TD_ARRAY_LEN(sources), &e, err);
            r->source = (td_reco_source_t)e;
        } else if (strcmp(key, "sourceAttribute") == 0) {
            rc = get_string(v, p, 128, &r->source_attribute, err);
            if (rc == TD_OK) {
                strip_in_place(r->source_attribute);
            }
        } else if (strcmp(key, "values") == 0) {
            if (!json_is_array(v)) {
                return td_err_set(err, TD_EINVAL, p, "must be an array");
            }
            size_t n = json_array_size(v);
            if (n > MAX_VALUES) {
                return td_err_set(err, TD_EINVAL, p, "more than %d values", MAX_VALUES);
            }
            for (int i = 0; i < r->n_values; i++) {
                free(r->values[i]);
            }
            free(r->values);
            r->values = td_xcalloc(n ? n : 1, sizeof(char *));
            r->n_values = 0;
            for (size_t i = 0; i < n; i++) {
                char q[512];
                index_path(q, sizeof(q), p, i);
                rc = get_value_text(json_array_get(v, i), q, &r->values[i], err);
                if (rc != TD_OK) {
                    return rc;
                }
                r->n_values++;
            }
        } else if (strcmp(key, "min") == 0) {
            rc = get_number(v, p, -1e15, 1e15, &r->min, err);
            has_min = true;
        } else if (strcmp(key, "max") == 0) {
            rc = get_number(v, p, -1e15, 1e15, &r->max, err);
            has_max = true;
        } else if (strcmp(key, "ifEmpty") == 0) {
            rc = get_enum(v, p, if_empty, TD_ARRAY_LEN(if_empty), &e, err);
            r->if_empty = (td_reco_if_empty_t)e;
            has_empty = true;
        } else {
            return td_err_set(err, TD_EINVAL, p, "unknown field \"%.64s\"", key);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    if (r->attribute == NULL) {
        return missing(err, path, "attribute");
    }
    if (!has_op) {
        return missing(err, path, "operation");
    }
    if (!has_empty) {
        /* Target's defaults: a missing key item attribute shows nothing; a
         * missing profile attribute or parameter ignores the rule. */
        r->if_empty =
            r->source == TD_RECO_SRC_KEY_ITEM ? TD_RECO_EMPTY_NO_RESULTS : TD_RECO_EMPTY_IGNORE;
    }
    bool dynamic = r->source != TD_RECO_SRC_STATIC;
    if (dynamic && r->source_attribute == NULL) {
        key_path(p, sizeof(p), path, "sourceAttribute");
        return td_err_set(err, TD_EINVAL, p, "required when source is not STATIC");
    }
    if (!dynamic && r->source_attribute != NULL) {
        key_path(p, sizeof(p), path, "sourceAttribute");
        return td_err_set(err, TD_EINVAL, p, "only allowed with a dynamic source");
    }
    if (r->if_empty == TD_RECO_EMPTY_STATIC && r->n_values == 0) {
        key_path(p, sizeof(p), path, "values");
        return td_err_set(err, TD_EINVAL, p, "ifEmpty STATIC needs values");
    }
    switch (r->op) {
    case TD_RECO_OP_BETWEEN:
        if (!has_min || !has_max) {
            key_path(p, sizeof(p), path, has_min ? "max" : "min");
            return td_err_set(err, TD_EINVAL, p, "between needs min and max");
        }
        if (r->min > r->max) {
            key_path(p, sizeof(p), path, "min");
            return td_err_set(err, TD_EINVAL, p, "min is above max");
        }
        break;
    case TD_RECO_OP_PRESENT:
    case TD_RECO_OP_NOT_PRESENT:
        break;
    case TD_RECO_OP_GTE:
    case TD_RECO_OP_LTE:
        if (!dynamic) {
            if (r->n_values != 1) {
                key_path(p, sizeof(p), path, "values");
                return td_err_set(err, TD_EINVAL, p, "needs exactly one number");
            }
            char *end;
            (void)strtod(r->values[0], &end);
            if (end == r->values[0] || *end != '\0') {
                key_path(p, sizeof(p), path, "values");
                return td_err_set(err, TD_EINVAL, p, "must be a number");
            }
        }
        break;
    default:
        if (!dynamic && r->n_values == 0) {
            key_path(p, sizeof(p), path, "values");
            return td_err_set(err, TD_EINVAL, p, "needs at least one value");
        }
        break;
    }
    if ((has_min || has_max) && r->op != TD_RECO_OP_BETWEEN) {
        key_path(p, sizeof(p), path, has_min ? "min" : "max");
        return td_err_set(err, TD_EINVAL, p, "only allowed with operation between");
    }
    (void)numeric_attr;
    return TD_OK;
}

static int parse_rules_json(json_t *v, const char *path, td_reco_rules_t *out, td_err_t *err)
{
    char p[512];
    if (!json_is_array(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be an array");
    }
    size_t n = json_array_size(v);
    if (n > MAX_RULES) {
        return td_err_set(err, TD_EINVAL, path, "more than %d rules", MAX_RULES);
    }
    td_reco_rules_release(out);
    out->rules = td_xcalloc(n ? n : 1, sizeof(td_reco_rule_t));
    for (size_t i = 0; i < n; i++) {
        index_path(p, sizeof(p), path, i);
        out->n = (int)i + 1;
        int rc = parse_rule(json_array_get(v, i), p, &out->rules[i], err);
        if (rc != TD_OK) {
            return rc;
        }
    }
    return TD_OK;
}

int td_reco_rules_parse(const char *json, size_t len, td_reco_rules_t *out, td_err_t *err)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return td_err_set_at(err, TD_EINVAL, "", jerr.line, jerr.column, "malformed JSON: %s",
                             jerr.text);
    }
    int rc = parse_rules_json(root, "", out, err);
    json_decref(root);
    if (rc != TD_OK) {
        td_reco_rules_release(out);
    }
    return rc;
}

/* ---- criteria ---- */

void td_reco_criteria_free(td_reco_criteria_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->id);
    free(c->name);
    free(c->key_attribute);
    free(c->group_by);
    free(c->custom_id);
    for (int i = 0; i < c->n_attr_weights; i++) {
        free(c->attr_weights[i].attribute);
    }
    free(c->attr_weights);
    td_reco_rules_release(&c->inclusion);
    td_reco_promotion_t *pr[2] = { &c->front, &c->back };
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < pr[k]->n_ids; i++) {
            free(pr[k]->ids[i]);
        }
        free(pr[k]->ids);
        td_reco_rules_release(&pr[k]->rules);
    }
    for (int i = 0; i < c->n_steps; i++) {
        td_reco_criteria_free(c->steps[i].criteria);
    }
    free(c);
}

static int parse_promotion(json_t *o, const char *path, td_reco_promotion_t *pr, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;
    bool has_slots = false;
    int rc = TD_OK;

    if (!json_is_object(o)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    json_object_foreach(o, key, v)
    {
        key_path(p, sizeof(p), path, key);
        if (strcmp(key, "ids") == 0) {
            if (!json_is_array(v)) {
                return td_err_set(err, TD_EINVAL, p, "must be an array");
            }
            size_t n = json_array_size(v);
            if (n > MAX_PROMO) {
                return td_err_set(err, TD_EINVAL, p, "more than %d items", MAX_PROMO);
            }
            pr->ids = td_xcalloc(n ? n : 1, sizeof(char *));
            for (size_t i = 0; i < n; i++) {
                char q[512];
                index_path(q, sizeof(q), p, i);
                rc = get_string(json_array_get(v, i), q, TD_RECO_MAX_ID - 1, &pr->ids[i], err);
                if (rc != TD_OK) {
                    return rc;
                }
                pr->n_ids++;
            }
        } else if (strcmp(key, "inclusionRules") == 0) {
            rc = parse_rules_json(v, p, &pr->rules, err);
        } else if (strcmp(key, "slots") == 0) {
            rc = get_int(v, p, 1, 100, &pr->slots, err);
            has_slots = true;
        } else {
            return td_err_set(err, TD_EINVAL, p, "unknown field \"%.64s\"", key);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    if (pr->n_ids == 0 && pr->rules.n == 0) {
        return td_err_set(err, TD_EINVAL, path, "needs \"ids\" or \"inclusionRules\"");
    }
    if (pr->n_ids > 0 && pr->rules.n > 0) {
        key_path(p, sizeof(p), path, "inclusionRules");
        return td_err_set(err, TD_EINVAL, p, "give either \"ids\" or \"inclusionRules\"");
    }
    if (!has_slots) {
        pr->slots = pr->n_ids > 0 ? pr->n_ids : 1;
    }
    return TD_OK;
}

typedef struct parse_ctx {
    td_reco_criteria_resolve_fn resolve;
    void *resolve_ctx;
} parse_ctx_t;

static int parse_object(json_t *root, const char *path, const parse_ctx_t *pc, int depth,
                        td_reco_criteria_t **out, td_err_t *err);

static int parse_sequence(json_t *v, const char *path, const parse_ctx_t *pc, int depth,
                          td_reco_criteria_t *c, td_err_t *err)
{
    char p[512], q[512];
    if (!json_is_array(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be an array");
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > TD_RECO_MAX_SEQUENCE) {
        return td_err_set(err, TD_EINVAL, path, "needs 1 to %d steps", TD_RECO_MAX_SEQUENCE);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(v, i);
        const char *key;
        json_t *f;
        bool has_slots = false;
        index_path(p, sizeof(p), path, i);
        if (!json_is_object(o)) {
            return td_err_set(err, TD_EINVAL, p, "must be an object");
        }
        td_reco_sequence_step_t *st = &c->steps[c->n_steps];
        json_object_foreach(o, key, f)
        {
            int rc = TD_OK;
            key_path(q, sizeof(q), p, key);
            if (strcmp(key, "criteria") == 0 || strcmp(key, "criteriaId") == 0) {
                if (st->criteria != NULL) {
                    return td_err_set(err, TD_EINVAL, q,
                                      "give either \"criteria\" or \"criteriaId\"");
                }
                json_t *doc = f;
                json_t *loaded = NULL;
                if (strcmp(key, "criteriaId") == 0) {
                    if (!json_is_string(f)) {
                        return td_err_set(err, TD_EINVAL, q, "must be a string");
                    }
                    char *text =
                        pc->resolve ? pc->resolve(pc->resolve_ctx, json_string_value(f)) : NULL;
                    if (text == NULL) {
                        return td_err_set(err, TD_EINVAL, q, "unknown criteria \"%.64s\"",
                                          json_string_value(f));
                    }
                    json_error_t jerr;
                    loaded = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
                    free(text);
                    if (loaded == NULL) {
                        return td_err_set(err, TD_EINVAL, q, "stored criteria is not JSON");
                    }
                    doc = loaded;
                }
                rc = parse_object(doc, q, pc, depth + 1, &st->criteria, err);
                json_decref(loaded);
                if (rc == TD_OK && st->criteria->group == TD_RECO_GROUP_SEQUENCE) {
                    rc = td_err_set(err, TD_EINVAL, q, "a sequence step cannot be a sequence");
                }
                /* Count the step now so that it is freed on any error. */
                if (st->criteria != NULL && c->n_steps == (int)i) {
                    c->n_steps++;
                }
            } else if (strcmp(key, "slots") == 0) {
                rc = get_int(f, q, 1, 100, &st->slots, err);
                has_slots = true;
            } else {
                return td_err_set(err, TD_EINVAL, q, "unknown field \"%.64s\"", key);
            }
            if (rc != TD_OK) {
                return rc;
            }
        }
        if (st->criteria == NULL) {
            return missing(err, p, "criteria");
        }
        if (!has_slots) {
            return missing(err, p, "slots");
        }
    }
    return TD_OK;
}

static bool item_algo(td_reco_algo_t a)
{
    return a == TD_RECO_ALGO_VIEWED_CF || a == TD_RECO_ALGO_VIEWED_BOUGHT ||
           a == TD_RECO_ALGO_BOUGHT_CF || a == TD_RECO_ALGO_SIMILARITY ||
           a == TD_RECO_ALGO_SITE_AFFINITY;
}

static bool item_key(td_reco_key_t k)
{
    return k == TD_RECO_KEY_CURRENT_ITEM || k == TD_RECO_KEY_LAST_VIEWED ||
           k == TD_RECO_KEY_LAST_PURCHASED || k == TD_RECO_KEY_MOST_VIEWED ||
           k == TD_RECO_KEY_PROFILE_ATTRIBUTE;
}

/* Group-specific rules; fills defaults. */
static int validate(td_reco_criteria_t *c, const char *path, bool has_type, bool has_key,
                    bool has_hours, td_err_t *err)
{
    char pt[512], pk[512];
    key_path(pt, sizeof(pt), path, "type");
    key_path(pk, sizeof(pk), path, "key");

    switch (c->group) {
    case TD_RECO_GROUP_ITEM:
        if (!has_type) {
            return td_err_set(err, TD_EINVAL, pt, "missing required field");
        }
        if (!item_algo(c->algo)) {
            return td_err_set(err, TD_EINVAL, pt, "%s is not an ITEM algorithm",
                              td_reco_algo_name(c->algo));
        }
        if (!has_key) {
            c->key = TD_RECO_KEY_CURRENT_ITEM;
        } else if (!item_key(c->key)) {
            return td_err_set(err, TD_EINVAL, pk, "%s is not an item key",
                              td_reco_key_name(c->key));
        }
        break;
    case TD_RECO_GROUP_CART:
        if (!has_type) {
            return td_err_set(err, TD_EINVAL, pt, "missing required field");
        }
        if (c->algo != TD_RECO_ALGO_VIEWED_CF && c->algo != TD_RECO_ALGO_VIEWED_BOUGHT &&
            c->algo != TD_RECO_ALGO_BOUGHT_CF && c->algo != TD_RECO_ALGO_ABANDONED_CART) {
            return td_err_set(err, TD_EINVAL, pt, "%s is not a CART algorithm",
                              td_reco_algo_name(c->algo));
        }
        if (has_key && c->key != TD_RECO_KEY_CART) {
            return td_err_set(err, TD_EINVAL, pk, "CART criteria use the cart as key");
        }
        c->key = TD_RECO_KEY_CART;
        break;
    case TD_RECO_GROUP_POPULARITY:
    case TD_RECO_GROUP_CATEGORY:
        if (!has_type) {
            return td_err_set(err, TD_EINVAL, pt, "missing required field");
        }
        if (c->algo != TD_RECO_ALGO_MOST_VIEWED && c->algo != TD_RECO_ALGO_TOP_SELLERS) {
            return td_err_set(err, TD_EINVAL, pt, "must be MOST_VIEWED or TOP_SELLERS");
        }
        if (c->group == TD_RECO_GROUP_CATEGORY) {
            if (!has_key) {
                c->key = TD_RECO_KEY_CURRENT_CATEGORY;
            } else if (c->key != TD_RECO_KEY_CURRENT_CATEGORY &&
                       c->key != TD_RECO_KEY_FAVORITE_CATEGORY) {
                return td_err_set(err, TD_EINVAL, pk,
                                  "must be CURRENT_CATEGORY or FAVORITE_CATEGORY");
            }
        } else if (c->group_by != NULL) {
            if (!has_key) {
                c->key = TD_RECO_KEY_CURRENT_ITEM;
            } else if (c->key != TD_RECO_KEY_CURRENT_ITEM && c->key != TD_RECO_KEY_LAST_VIEWED &&
                       c->key != TD_RECO_KEY_LAST_PURCHASED && c->key != TD_RECO_KEY_MOST_VIEWED &&
                       c->key != TD_RECO_KEY_PROFILE_ATTRIBUTE) {
                return td_err_set(err, TD_EINVAL, pk,
                                  "popularity by item attribute needs an item or profile key");
            }
        } else if (has_key && c->key != TD_RECO_KEY_NONE &&
                   c->key != TD_RECO_KEY_CURRENT_CATEGORY &&
                   c->key != TD_RECO_KEY_FAVORITE_CATEGORY) {
            return td_err_set(err, TD_EINVAL, pk,
                              "must be NONE, CURRENT_CATEGORY or FAVORITE_CATEGORY "
                              "(or give groupBy)");
        }
        break;
    case TD_RECO_GROUP_RECENT:
        if (has_type && c->algo != TD_RECO_ALGO_RECENTLY_VIEWED) {
            return td_err_set(err, TD_EINVAL, pt, "must be RECENTLY_VIEWED");
        }
        c->algo = TD_RECO_ALGO_RECENTLY_VIEWED;
        if (has_key && c->key != TD_RECO_KEY_NONE) {
            return td_err_set(err, TD_EINVAL, pk, "RECENT criteria take no key");
        }
        c->key = TD_RECO_KEY_NONE;
        break;
    case TD_RECO_GROUP_USERHISTORY:
        if (!has_type) {
            c->algo = TD_RECO_ALGO_RECOMMENDED_FOR_YOU;
        } else if (c->algo != TD_RECO_ALGO_RECOMMENDED_FOR_YOU &&
                   c->algo != TD_RECO_ALGO_VIEWED_CF && c->algo != TD_RECO_ALGO_VIEWED_BOUGHT &&
                   c->algo != TD_RECO_ALGO_BOUGHT_CF) {
            return td_err_set(err, TD_EINVAL, pt,
                              "must be RECOMMENDED_FOR_YOU, VIEWED_CF, VIEWED_BOUGHT or BOUGHT_CF");
        }
        if (has_key && c->key != TD_RECO_KEY_NONE) {
            return td_err_set(err, TD_EINVAL, pk, "USERHISTORY criteria take no key");
        }
        c->key = TD_RECO_KEY_NONE;
        break;
    case TD_RECO_GROUP_PROFILEATTRIBUTE:
        if (!has_type) {
            return td_err_set(err, TD_EINVAL, pt, "missing required field");
        }
        if (!item_algo(c->algo) && c->algo != TD_RECO_ALGO_MOST_VIEWED &&
            c->algo != TD_RECO_ALGO_TOP_SELLERS) {
            return td_err_set(err, TD_EINVAL, pt,
                              "must be an item algorithm, MOST_VIEWED or TOP_SELLERS");
        }
        if (has_key && c->key != TD_RECO_KEY_PROFILE_ATTRIBUTE) {
            return td_err_set(err, TD_EINVAL, pk, "must be PROFILE_ATTRIBUTE");
        }
        c->key = TD_RECO_KEY_PROFILE_ATTRIBUTE;
        if (!item_algo(c->algo) && c->group_by == NULL) {
            key_path(pk, sizeof(pk), path, "groupBy");
            return td_err_set(err, TD_EINVAL, pk,
                              "popularity keyed by a profile attribute needs groupBy");
        }
        break;
    case TD_RECO_GROUP_CUSTOM:
        if (has_type && c->algo != TD_RECO_ALGO_CUSTOM) {
            return td_err_set(err, TD_EINVAL, pt, "must be CUSTOM");
        }
        c->algo = TD_RECO_ALGO_CUSTOM;
        if (!has_key) {
            c->key = TD_RECO_KEY_CURRENT_ITEM;
        } else if (!item_key(c->key) && c->key != TD_RECO_KEY_CURRENT_CATEGORY &&
                   c->key != TD_RECO_KEY_FAVORITE_CATEGORY) {
            return td_err_set(err, TD_EINVAL, pk, "%s cannot key a CUSTOM criteria",
                              td_reco_key_name(c->key));
        }
        if (c->custom_id == NULL) {
            return missing(err, path, "customId");
        }
        break;
    case TD_RECO_GROUP_SEQUENCE:
        if (has_type && c->algo != TD_RECO_ALGO_SEQUENCE) {
            return td_err_set(err, TD_EINVAL, pt, "must be SEQUENCE");
        }
        c->algo = TD_RECO_ALGO_SEQUENCE;
        if (c->n_steps == 0) {
            return missing(err, path, "sequence");
        }
        if (has_key) {
            return td_err_set(err, TD_EINVAL, pk, "a SEQUENCE takes no key");
        }
        break;
    }
    if (c->group != TD_RECO_GROUP_SEQUENCE && c->n_steps > 0) {
        key_path(pk, sizeof(pk), path, "sequence");
        return td_err_set(err, TD_EINVAL, pk, "only allowed in a SEQUENCE criteria");
    }
    if (c->key == TD_RECO_KEY_PROFILE_ATTRIBUTE && c->key_attribute == NULL) {
        return missing(err, path, "keyAttribute");
    }
    if (c->group_by != NULL && c->group != TD_RECO_GROUP_POPULARITY &&
        c->group != TD_RECO_GROUP_PROFILEATTRIBUTE) {
        key_path(pk, sizeof(pk), path, "groupBy");
        return td_err_set(err, TD_EINVAL, pk, "only allowed for popularity criteria");
    }
    bool popularity = c->algo == TD_RECO_ALGO_MOST_VIEWED || c->algo == TD_RECO_ALGO_TOP_SELLERS;
    if (has_hours && !popularity) {
        key_path(pk, sizeof(pk), path, "hoursCount");
        return td_err_set(err, TD_EINVAL, pk,
                          "a 6-hour lookback is only available for popularity criteria");
    }
    if (c->algo == TD_RECO_ALGO_SIMILARITY && c->days != 30 && !has_hours) {
        /* Target: the lookback does not apply to Items with Similar
         * Attributes; accepted and ignored. */
    }
    return TD_OK;
}

static int parse_weights(json_t *v, const char *p, td_reco_criteria_t *c, td_err_t *err)
{
    if (!json_is_object(v)) {
        return td_err_set(err, TD_EINVAL, p, "must be an object");
    }
    size_t n = json_object_size(v);
    if (n > MAX_RULES) {
        return td_err_set(err, TD_EINVAL, p, "more than %d attributes", MAX_RULES);
    }
    c->attr_weights = td_xcalloc(n ? n : 1, sizeof(td_reco_attr_weight_t));
    const char *ak;
    json_t *av;
    json_object_foreach(v, ak, av)
    {
        char q[512];
        key_path(q, sizeof(q), p, ak);
        if (strlen(ak) == 0 || strlen(ak) > 128) {
            return td_err_set(err, TD_EINVAL, q, "attribute names are 1 to 128 bytes");
        }
        td_reco_attr_weight_t *aw = &c->attr_weights[c->n_attr_weights];
        int rc = get_number(av, q, 0, MAX_WEIGHT, &aw->weight, err);
        if (rc != TD_OK) {
            return rc;
        }
        aw->attribute = td_xstrdup(strip_prefix(ak));
        c->n_attr_weights++;
    }
    return TD_OK;
}

static int parse_confidence(json_t *v, const char *p, td_reco_criteria_t *c, td_err_t *err)
{
    if (!json_is_string(v)) {
        return td_err_set(err, TD_EINVAL, p, "must be a string");
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(confidences); i++) {
        if (strcmp(json_string_value(v), confidences[i].name) == 0) {
            c->min_llr = confidences[i].llr;
            return TD_OK;
        }
    }
    return td_err_set(err, TD_EINVAL, p, "must be LOW, MEDIUM, HIGH or VERY_HIGH");
}

static int parse_price(json_t *v, const char *p, td_reco_criteria_t *c, td_err_t *err)
{
    if (!json_is_object(v)) {
        return td_err_set(err, TD_EINVAL, p, "must be an object");
    }
    const char *pk;
    json_t *pv;
    json_object_foreach(v, pk, pv)
    {
        char q[512];
        int rc;
        key_path(q, sizeof(q), p, pk);
        if (strcmp(pk, "min") == 0) {
            rc = get_number(pv, q, 0, 1e15, &c->price_min, err);
            c->has_price_min = true;
        } else if (strcmp(pk, "max") == 0) {
            rc = get_number(pv, q, 0, 1e15, &c->price_max, err);
            c->has_price_max = true;
        } else {
            rc = td_err_set(err, TD_EINVAL, q, "unknown field \"%.64s\"", pk);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    if (c->has_price_min && c->has_price_max && c->price_min > c->price_max) {
        char q[512];
        key_path(q, sizeof(q), p, "min");
        return td_err_set(err, TD_EINVAL, q, "min is above max");
    }
    return TD_OK;
}

static int parse_promotions(json_t *v, const char *p, td_reco_criteria_t *c, td_err_t *err)
{
    if (!json_is_object(v)) {
        return td_err_set(err, TD_EINVAL, p, "must be an object");
    }
    const char *pk;
    json_t *pv;
    json_object_foreach(v, pk, pv)
    {
        char q[512];
        int rc;
        key_path(q, sizeof(q), p, pk);
        if (strcmp(pk, "front") == 0) {
            rc = parse_promotion(pv, q, &c->front, err);
        } else if (strcmp(pk, "back") == 0) {
            rc = parse_promotion(pv, q, &c->back, err);
        } else {
            rc = td_err_set(err, TD_EINVAL, q, "unknown field \"%.64s\"", pk);
        }
        if (rc != TD_OK) {
            return rc;
        }
    }
    return TD_OK;
}

static int parse_object(json_t *root, const char *path, const parse_ctx_t *pc, int depth,
                        td_reco_criteria_t **out, td_err_t *err)
{
    char p[512];
    const char *key;
    json_t *v;
    int rc = TD_OK, e;
    bool has_group = false, has_type = false, has_key = false, has_days = false, has_hours = false,
         has_conf = false;

    *out = NULL;
    if (depth > 2) {
        return td_err_set(err, TD_EINVAL, path, "criteria nested too deeply");
    }
    if (!json_is_object(root)) {
        return td_err_set(err, TD_EINVAL, path, "must be an object");
    }
    td_reco_criteria_t *c = td_xcalloc(1, sizeof(*c));
    c->days = 30;
    c->exclude_purchases = true;
    c->backup_inclusion = true;
    c->similarity_fallback = true;
    c->max_viewed_keys = 5;
    c->max_purchased_keys = 5;
    c->purchase_weight = 2;
    c->max_cart_keys = 10;
    c->min_llr = confidences[1].llr;

    json_object_foreach(root, key, v)
    {
        key_path(p, sizeof(p), path, key);
        if (strcmp(key, "id") == 0) {
            rc = get_string(v, p, 128, &c->id, err);
        } else if (strcmp(key, "name") == 0 || strcmp(key, "criteriaTitle") == 0) {
            rc = get_string(v, p, 256, &c->name, err);
        } else if (strcmp(key, "description") == 0) {
            rc =
                json_is_string(v) && json_string_length(v) <= MAX_TEXT
                    ? TD_OK
                    : td_err_set(err, TD_EINVAL, p, "must be a string of up to %d bytes", MAX_TEXT);
        } else if (strcmp(key, "criteriaGroup") == 0) {
            rc = get_enum(v, p, groups, TD_ARRAY_LEN(groups), &e, err);
            c->group = (td_reco_group_t)e;
            has_group = true;
        } else if (strcmp(key, "type") == 0) {
            rc = get_enum(v, p, algos, TD_ARRAY_LEN(algos), &e, err);
            c->algo = (td_reco_algo_t)e;
            has_type = true;
        } else if (strcmp(key, "key") == 0) {
            rc = get_enum(v, p, keys, TD_ARRAY_LEN(keys), &e, err);
            c->key = (td_reco_key_t)e;
            has_key = true;
        } else if (strcmp(key, "keyAttribute") == 0) {
            rc = get_string(v, p, 128, &c->key_attribute, err);
            if (rc == TD_OK) {
                strip_in_place(c->key_attribute);
            }
        } else if (strcmp(key, "groupBy") == 0) {
            rc = get_string(v, p, 128, &c->group_by, err);
            if (rc == TD_OK) {
                strip_in_place(c->group_by);
            }
        } else if (strcmp(key, "daysCount") == 0) {
            rc = get_int(v, p, 1, TD_RECO_MAX_DAYS, &c->days, err);
            has_days = true;
        } else if (strcmp(key, "hoursCount") == 0) {
            int h = 0;
            rc = get_int(v, p, 6, 6, &h, err);
            has_hours = true;
        } else if (strcmp(key, "similarityMetric") == 0) {
            rc = get_enum(v, p, metrics, TD_ARRAY_LEN(metrics), &e, err);
            c->metric = (td_reco_metric_t)e;
            c->metric_set = true;
        } else if (strcmp(key, "minSimilarity") == 0) {
            rc = get_number(v, p, 0, 1, &c->min_similarity, err);
        } else if (strcmp(key, "attributeWeights") == 0) {
            rc = parse_weights(v, p, c, err);
        } else if (strcmp(key, "confidence") == 0) {
            rc = parse_confidence(v, p, c, err);
            has_conf = true;
        } else if (strcmp(key, "inclusionRules") == 0) {
            rc = parse_rules_json(v, p, &c->inclusion, err);
        } else if (strcmp(key, "priceRange") == 0) {
            rc = parse_price(v, p, c, err);
        } else if (strcmp(key, "minInventory") == 0) {
            rc = get_number(v, p, 0, 1e15, &c->min_inventory, err);
            c->has_min_inventory = true;
        } else if (strcmp(key, "excludePurchases") == 0) {
            rc = get_bool(v, p, &c->exclude_purchases, err);
        } else if (strcmp(key, "excludeViews") == 0) {
            rc = get_bool(v, p, &c->exclude_views, err);
        } else if (strcmp(key, "partialDesignAllowed") == 0) {
            rc = get_bool(v, p, &c->partial_design_allowed, err);
        } else if (strcmp(key, "backupDisabled") == 0) {
            rc = get_bool(v, p, &c->backup_disabled, err);
        } else if (strcmp(key, "backupInclusionRules") == 0) {
            rc = get_bool(v, p, &c->backup_inclusion, err);
        } else if (strcmp(key, "similarityFallback") == 0) {
            rc = get_bool(v, p, &c->similarity_fallback, err);
        } else if (strcmp(key, "customId") == 0) {
            rc = get_string(v, p, 128, &c->custom_id, err);
        } else if (strcmp(key, "maxViewedKeys") == 0) {
            rc = get_int(v, p, 0, 1000, &c->max_viewed_keys, err);
        } else if (strcmp(key, "maxPurchasedKeys") == 0) {
            rc = get_int(v, p, 0, 1000, &c->max_purchased_keys, err);
        } else if (strcmp(key, "purchaseWeight") == 0) {
            rc = get_number(v, p, 0, 100, &c->purchase_weight, err);
        } else if (strcmp(key, "maxCartKeys") == 0) {
            rc = get_int(v, p, 1, 100, &c->max_cart_keys, err);
        } else if (strcmp(key, "promotions") == 0) {
            rc = parse_promotions(v, p, c, err);
        } else if (strcmp(key, "sequence") == 0) {
            rc = parse_sequence(v, p, pc, depth, c, err);
        } else {
            rc = td_err_set(err, TD_EINVAL, p, "unknown field \"%.64s\"", key);
        }
        if (rc != TD_OK) {
            goto fail;
        }
    }
    if (!has_group) {
        rc = missing(err, path, "criteriaGroup");
        goto fail;
    }
    if (has_days && has_hours) {
        key_path(p, sizeof(p), path, "hoursCount");
        rc = td_err_set(err, TD_EINVAL, p, "give either daysCount or hoursCount");
        goto fail;
    }
    c->hours = has_hours ? 6 : c->days * 24;
    if (has_conf && c->algo != TD_RECO_ALGO_SITE_AFFINITY) {
        key_path(p, sizeof(p), path, "confidence");
        rc = td_err_set(err, TD_EINVAL, p, "only allowed for SITE_AFFINITY");
        goto fail;
    }
    if (c->min_similarity > 0 && c->algo != TD_RECO_ALGO_SIMILARITY) {
        key_path(p, sizeof(p), path, "minSimilarity");
        rc = td_err_set(err, TD_EINVAL, p, "only allowed for SIMILARITY");
        goto fail;
    }
    rc = validate(c, path, has_type, has_key, has_hours, err);
    if (rc != TD_OK) {
        goto fail;
    }
    if (c->algo != TD_RECO_ALGO_SITE_AFFINITY) {
        c->min_llr = 0;
    }
    *out = c;
    return TD_OK;
fail:
    td_reco_criteria_free(c);
    return rc;
}

int td_reco_criteria_parse(const char *json, size_t len, td_reco_criteria_resolve_fn resolve,
                           void *resolve_ctx, td_reco_criteria_t **out, td_err_t *err)
{
    json_error_t jerr;
    *out = NULL;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return td_err_set_at(err, TD_EINVAL, "", jerr.line, jerr.column, "malformed JSON: %s",
                             jerr.text);
    }
    parse_ctx_t pc = { resolve, resolve_ctx };
    int rc = parse_object(root, "", &pc, 0, out, err);
    json_decref(root);
    return rc;
}
