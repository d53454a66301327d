/* Inclusion rules and exclusions: static values, entity attribute matching
 * (the key item's attribute), profile attribute matching and parameter
 * matching, with Target's semantics: values within a rule are ORed, rules
 * are ANDed; a missing dynamic value ignores the rule or empties the
 * criteria as the rule says; an item whose inventory is not set satisfies
 * every inventory rule (so it is shown by "in stock" inclusion rules and
 * hidden by "inventory = 0" exclusions, as Target documents). */
#include "reco/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define MAX_VALS 64

static bool parse_num(const char *s, double *out)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    char *end;
    double d = strtod(s, &end);
    while (*end == ' ') {
        end++;
    }
    if (end == s || *end != '\0' || !isfinite(d)) {
        return false;
    }
    *out = d;
    return true;
}

int td_reco__item_values(const td_reco_item_t *it, const char *attribute, const char **out, int max,
                         char *numbuf, size_t numbuf_len)
{
    if (strcmp(attribute, "id") == 0) {
        out[0] = it->id;
        return it->id ? 1 : 0;
    }
    if (strcmp(attribute, "name") == 0) {
        out[0] = it->name;
        return it->name ? 1 : 0;
    }
    if (strcmp(attribute, "brand") == 0) {
        out[0] = it->brand;
        return it->brand ? 1 : 0;
    }
    if (strcmp(attribute, "message") == 0) {
        out[0] = it->message;
        return it->message ? 1 : 0;
    }
    if (strcmp(attribute, "categoryId") == 0 || strcmp(attribute, "category") == 0) {
        int n = 0;
        for (int i = 0; i < it->n_categories && n < max; i++) {
            if (it->categories[i]) {
                out[n++] = it->categories[i];
            }
        }
        return n;
    }
    bool has = false;
    double d = 0;
    if (strcmp(attribute, "value") == 0 || strcmp(attribute, "price") == 0) {
        has = it->has_value;
        d = it->value;
    } else if (strcmp(attribute, "inventory") == 0) {
        has = it->has_inventory;
        d = it->inventory;
    } else if (strcmp(attribute, "margin") == 0) {
        has = it->has_margin;
        d = it->margin;
    } else {
        for (int i = 0; i < it->n_attrs; i++) {
            if (it->attrs[i].name && strcmp(it->attrs[i].name, attribute) == 0) {
                int n = 0;
                for (int k = 0; k < it->attrs[i].n_values && n < max; k++) {
                    if (it->attrs[i].values[k]) {
                        out[n++] = it->attrs[i].values[k];
                    }
                }
                return n;
            }
        }
        return 0;
    }
    if (!has) {
        return 0;
    }
    snprintf(numbuf, numbuf_len, "%.17g", d);
    out[0] = numbuf;
    return 1;
}

static const char *kv_get(const td_reco_kv_t *kv, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (kv[i].name == NULL) {
            continue;
        }
        const char *k = kv[i].name;
        if (strncmp(k, "profile.", 8) == 0) {
            k += 8;
        } else if (strncmp(k, "user.", 5) == 0) {
            k += 5;
        } else if (strncmp(k, "mbox.", 5) == 0) {
            k += 5;
        }
        if (strcmp(k, name) == 0) {
            return kv[i].value;
        }
    }
    return NULL;
}

/* Splits a comma-separated profile or parameter value into trimmed parts
 * (list operators take lists on the right side). */
static int split_list(const char *s, char *buf, size_t buf_len, const char **out, int max)
{
    snprintf(buf, buf_len, "%s", s);
    int n = 0;
    char *p = buf;
    while (*p && n < max) {
        while (*p == ' ') {
            p++;
        }
        char *start = p;
        while (*p && *p != ',') {
            p++;
        }
        char *end = p;
        if (*p == ',') {
            *p++ = '\0';
        }
        while (end > start && end[-1] == ' ') {
            *--end = '\0';
        }
        *end = '\0';
        if (*start) {
            out[n++] = start;
        }
    }
    return n;
}

static bool str_eq(const char *a, const char *b)
{
    double x, y;
    if (strcmp(a, b) == 0) {
        return true;
    }
    return parse_num(a, &x) && parse_num(b, &y) && x == y;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Does any candidate value relate to any rule value? */
static bool any_match(td_reco_op_t op, const char **cv, int nc, const char **rv, int nr)
{
    for (int i = 0; i < nc; i++) {
        for (int k = 0; k < nr; k++) {
            double x, y;
            switch (op) {
            case TD_RECO_OP_EQUALS:
            case TD_RECO_OP_NOT_EQUALS:
            case TD_RECO_OP_IN_LIST:
            case TD_RECO_OP_NOT_IN_LIST:
                if (str_eq(cv[i], rv[k])) {
                    return true;
                }
                break;
            case TD_RECO_OP_CONTAINS:
            case TD_RECO_OP_NOT_CONTAINS:
                if (strstr(cv[i], rv[k]) != NULL) {
                    return true;
                }
                break;
            case TD_RECO_OP_STARTS_WITH:
                if (strncmp(cv[i], rv[k], strlen(rv[k])) == 0) {
                    return true;
                }
                break;
            case TD_RECO_OP_ENDS_WITH:
                if (ends_with(cv[i], rv[k])) {
                    return true;
                }
                break;
            case TD_RECO_OP_GTE:
                if (parse_num(cv[i], &x) && parse_num(rv[k], &y) && x >= y) {
                    return true;
                }
                break;
            case TD_RECO_OP_LTE:
                if (parse_num(cv[i], &x) && parse_num(rv[k], &y) && x <= y) {
                    return true;
                }
                break;
            default:
                break;
            }
        }
    }
    return false;
}

static bool negative_op(td_reco_op_t op)
{
    return op == TD_RECO_OP_NOT_EQUALS || op == TD_RECO_OP_NOT_CONTAINS ||
           op == TD_RECO_OP_NOT_IN_LIST;
}

typedef enum { RULE_FALSE, RULE_TRUE, RULE_SKIP, RULE_EMPTY_NO_RESULTS } rule_result_t;

static rule_result_t eval_rule(const td_reco_rule_t *r, const td_reco_item_t *it,
                               const td_reco_filter_ctx_t *fc)
{
    const char *cv[MAX_VALS];
    char cnum[64];
    int nc = td_reco__item_values(it, r->attribute, cv, MAX_VALS, cnum, sizeof(cnum));

    if (strcmp(r->attribute, "inventory") == 0 && nc == 0) {
        return RULE_TRUE; /* Target: a missing inventory satisfies inventory rules */
    }
    if (r->op == TD_RECO_OP_PRESENT) {
        return nc > 0 ? RULE_TRUE : RULE_FALSE;
    }
    if (r->op == TD_RECO_OP_NOT_PRESENT) {
        return nc == 0 ? RULE_TRUE : RULE_FALSE;
    }

    /* The right side: static values or the dynamic source's. */
    const char *rv[MAX_VALS];
    char rnum[64];
    char listbuf[2048];
    int nr = 0;
    bool dynamic = r->source != TD_RECO_SRC_STATIC;
    if (dynamic) {
        const char *s = NULL;
        if (r->source == TD_RECO_SRC_KEY_ITEM) {
            if (fc->key_item != NULL) {
                nr = td_reco__item_values(fc->key_item, r->source_attribute, rv, MAX_VALS, rnum,
                                          sizeof(rnum));
            }
        } else if (fc->req != NULL) {
            s = r->source == TD_RECO_SRC_PROFILE
                    ? kv_get(fc->req->profile, fc->req->n_profile, r->source_attribute)
                    : kv_get(fc->req->params, fc->req->n_params, r->source_attribute);
            if (s != NULL && *s) {
                nr = split_list(s, listbuf, sizeof(listbuf), rv, MAX_VALS);
            }
        }
        if (nr == 0) {
            switch (r->if_empty) {
            case TD_RECO_EMPTY_IGNORE:
                return RULE_SKIP;
            case TD_RECO_EMPTY_NO_RESULTS:
                return RULE_EMPTY_NO_RESULTS;
            case TD_RECO_EMPTY_STATIC:
                dynamic = false;
                break;
            }
        }
    }
    if (!dynamic) {
        nr = r->n_values < MAX_VALS ? r->n_values : MAX_VALS;
        for (int i = 0; i < nr; i++) {
            rv[i] = r->values[i];
        }
    }

    if (r->op == TD_RECO_OP_BETWEEN) {
        double lo = r->min, hi = r->max, base;
        if (dynamic) {
            /* Dynamic bounds are percentages of the source's value. */
            if (!parse_num(rv[0], &base)) {
                return r->if_empty == TD_RECO_EMPTY_NO_RESULTS ? RULE_EMPTY_NO_RESULTS : RULE_SKIP;
            }
            lo = base * r->min / 100.0;
            hi = base * r->max / 100.0;
            if (lo > hi) {
                double t = lo;
                lo = hi;
                hi = t;
            }
        }
        for (int i = 0; i < nc; i++) {
            double x;
            if (parse_num(cv[i], &x) && x >= lo && x <= hi) {
                return RULE_TRUE;
            }
        }
        return RULE_FALSE;
    }
    if (nc == 0) {
        return negative_op(r->op) ? RULE_TRUE : RULE_FALSE;
    }
    bool hit = any_match(r->op, cv, nc, rv, nr);
    if (negative_op(r->op)) {
        return hit ? RULE_FALSE : RULE_TRUE;
    }
    return hit ? RULE_TRUE : RULE_FALSE;
}

bool td_reco__rules_match(const td_reco_rules_t *r, const td_reco_item_t *it,
                          const td_reco_filter_ctx_t *fc, bool *no_results)
{
    if (r == NULL) {
        return true;
    }
    for (int i = 0; i < r->n; i++) {
        switch (eval_rule(&r->rules[i], it, fc)) {
        case RULE_TRUE:
        case RULE_SKIP:
            break;
        case RULE_FALSE:
            return false;
        case RULE_EMPTY_NO_RESULTS:
            if (no_results) {
                *no_results = true;
            }
            return false;
        }
    }
    return true;
}

bool td_reco__rules_exclude(const td_reco_rules_t *r, const td_reco_item_t *it,
                            const td_reco_filter_ctx_t *fc)
{
    if (r == NULL) {
        return false;
    }
    for (int i = 0; i < r->n; i++) {
        if (eval_rule(&r->rules[i], it, fc) == RULE_TRUE) {
            return true;
        }
    }
    return false;
}
