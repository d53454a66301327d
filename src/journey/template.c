/* JSON templates: JSON values whose strings hold {{ expr }} parts, compiled
 * once and rendered against an expression environment (action bodies,
 * headers, URLs, email data, recommendation requests, profile updates).
 * Also the error list of definitions and small text helpers. Pure. */
#include "journey/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/banned.h"

typedef enum { TK_LIT, TK_EXPR, TK_INTERP, TK_OBJECT, TK_ARRAY } tkind_t;

typedef struct tnode {
    tkind_t kind;
    json_t *lit;               /* TK_LIT */
    td_journey_expr_t **exprs; /* TK_EXPR (one), TK_INTERP (n_parts, NULL for text parts) */
    char **texts;              /* TK_INTERP: text parts (NULL for expression parts) */
    int n_parts;
    char **keys; /* TK_OBJECT */
    struct tnode **kids;
    int n_kids;
} tnode_t;

struct td_journey_tmpl {
    tnode_t *root;
    int uses;
};

void td_journey_errors_add(td_journey_errors_t *errs, const char *path, int column, const char *fmt,
                           ...)
{
    va_list ap;
    td_err_t *e;

    if (errs == NULL) {
        return;
    }
    if (errs->n == TD_JOURNEY_MAX_ERRORS) {
        errs->truncated = true;
        return;
    }
    e = &errs->items[errs->n++];
    memset(e, 0, sizeof(*e));
    e->code = TD_EINVAL;
    snprintf(e->path, sizeof(e->path), "%s", path ? path : "");
    e->column = column;
    e->line = column > 0 ? 1 : 0;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

json_t *td_journey_errors_to_json(const td_journey_errors_t *errs)
{
    json_t *list = json_array();

    for (int i = 0; i < errs->n; i++) {
        const td_err_t *e = &errs->items[i];
        json_t *o = json_pack("{s:s, s:s}", "path", e->path, "message", e->message);
        if (e->line > 0) {
            json_object_set_new(o, "line", json_integer(e->line));
            json_object_set_new(o, "column", json_integer(e->column));
        }
        json_array_append_new(list, o);
    }
    return json_pack("{s:o, s:b}", "errors", list, "truncated", errs->truncated);
}

void td_journey__ptr(char *out, size_t len, const char *prefix, const char *key)
{
    size_t n = (size_t)snprintf(out, len, "%s/", prefix);

    for (const char *k = key; *k && n + 3 < len; k++) {
        if (*k == '~') {
            out[n++] = '~';
            out[n++] = '0';
        } else if (*k == '/') {
            out[n++] = '~';
            out[n++] = '1';
        } else {
            out[n++] = *k;
        }
    }
    if (n < len) {
        out[n] = '\0';
    }
}

char *td_journey__to_text(const json_t *v)
{
    td_buf_t b = TD_BUF_INIT;

    if (v == NULL || json_is_null(v)) {
        return td_xstrdup("");
    }
    if (json_is_string(v)) {
        return td_xstrndup(json_string_value(v), json_string_length(v));
    }
    if (json_is_integer(v)) {
        td_buf_addf(&b, "%lld", (long long)json_integer_value(v));
        return td_buf_detach(&b);
    }
    if (json_is_real(v)) {
        td_buf_add_double(&b, json_real_value(v));
        return td_buf_detach(&b);
    }
    if (json_is_boolean(v)) {
        return td_xstrdup(json_is_true(v) ? "true" : "false");
    }
    char *s = json_dumps(v, TD_JOURNEY_DUMP | JSON_ENCODE_ANY);
    char *r = td_xstrdup(s ? s : "");
    free(s);
    return r;
}

char *td_journey__url_encode(const char *s)
{
    td_buf_t b = TD_BUF_INIT;

    td_buf_adds(&b, "");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~') {
            td_buf_addc(&b, (char)*c);
        } else {
            td_buf_addf(&b, "%%%02X", *c);
        }
    }
    return td_buf_detach(&b);
}

static void free_tnode(tnode_t *n)
{
    if (n == NULL) {
        return;
    }
    json_decref(n->lit);
    for (int i = 0; i < n->n_parts; i++) {
        td_journey_expr_free(n->exprs[i]);
        free(n->texts ? n->texts[i] : NULL);
    }
    free(n->exprs);
    free(n->texts);
    for (int i = 0; i < n->n_kids; i++) {
        free(n->keys ? n->keys[i] : NULL);
        free_tnode(n->kids[i]);
    }
    free(n->keys);
    free(n->kids);
    free(n);
}

static void add_part(tnode_t *n, char *text, td_journey_expr_t *e)
{
    n->texts = td_xrealloc(n->texts, sizeof(char *) * (size_t)(n->n_parts + 1));
    n->exprs = td_xrealloc(n->exprs, sizeof(td_journey_expr_t *) * (size_t)(n->n_parts + 1));
    n->texts[n->n_parts] = text;
    n->exprs[n->n_parts++] = e;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static tnode_t *compile_string(const json_t *v, const char *path, td_journey_errors_t *errs,
                               int *uses)
{
    const char *s = json_string_value(v);
    tnode_t *n = td_xcalloc(1, sizeof(*n));
    const char *open = strstr(s, "{{");
    bool ok = true;

    if (open == NULL) {
        n->kind = TK_LIT;
        n->lit = json_incref((json_t *)v);
        return n;
    }
    n->kind = TK_INTERP;
    const char *p = s;
    while ((open = strstr(p, "{{")) != NULL) {
        const char *close = strstr(open + 2, "}}");
        if (close == NULL) {
            td_journey_errors_add(errs, path, (int)(open - s) + 1,
                                  "\"{{\" is not closed by \"}}\"");
            ok = false;
            break;
        }
        if (open > p) {
            add_part(n, td_xstrndup(p, (size_t)(open - p)), NULL);
        }
        char *src = td_xstrndup(open + 2, (size_t)(close - open - 2));
        td_journey_expr_t *e = NULL;
        td_err_t err = { 0 };
        if (td_journey_expr_parse(src, &e, &err) != TD_OK) {
            td_journey_errors_add(errs, path, (int)(open - s) + 2 + err.column, "%s", err.message);
            ok = false;
        } else {
            *uses |= td_journey_expr_uses(e);
            add_part(n, NULL, e);
        }
        free(src);
        p = close + 2;
    }
    if (*p) {
        add_part(n, td_xstrdup(p), NULL);
    }
    /* a string that is one expression (spaces around allowed) keeps the
     * expression's type: "{{ actions.recs.items }}" is a list */
    if (ok && n->n_parts == 1 && n->exprs[0]) {
        n->kind = TK_EXPR;
    } else if (ok && n->n_parts >= 1) {
        int n_expr = 0, other = 0;
        for (int i = 0; i < n->n_parts; i++) {
            if (n->exprs[i]) {
                n_expr++;
            } else {
                bool blank = true;
                for (const char *c = n->texts[i]; *c; c++) {
                    blank &= is_space(*c);
                }
                other += !blank;
            }
        }
        if (n_expr == 1 && other == 0) {
            td_journey_expr_t *e = NULL;
            for (int i = 0; i < n->n_parts; i++) {
                if (n->exprs[i]) {
                    e = n->exprs[i];
                    n->exprs[i] = NULL;
                }
            }
            for (int i = 0; i < n->n_parts; i++) {
                free(n->texts[i]);
                td_journey_expr_free(n->exprs[i]);
            }
            free(n->texts);
            n->texts = NULL;
            n->exprs[0] = e;
            n->n_parts = 1;
            n->kind = TK_EXPR;
        }
    }
    if (!ok) {
        free_tnode(n);
        return NULL;
    }
    return n;
}

static tnode_t *compile(const json_t *v, const char *path, td_journey_errors_t *errs, int *uses,
                        int depth)
{
    tnode_t *n;
    char sub[256];

    if (depth > 32) {
        td_journey_errors_add(errs, path, 0, "template nested too deeply");
        return NULL;
    }
    if (json_is_string(v)) {
        return compile_string(v, path, errs, uses);
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *kid;
        bool ok = true;
        n = td_xcalloc(1, sizeof(*n));
        n->kind = TK_OBJECT;
        n->keys = td_xcalloc(json_object_size(v) + 1, sizeof(char *));
        n->kids = td_xcalloc(json_object_size(v) + 1, sizeof(tnode_t *));
        json_object_foreach((json_t *)v, k, kid)
        {
            td_journey__ptr(sub, sizeof(sub), path, k);
            tnode_t *c = compile(kid, sub, errs, uses, depth + 1);
            ok &= c != NULL;
            n->keys[n->n_kids] = td_xstrdup(k);
            n->kids[n->n_kids++] = c;
        }
        if (!ok) {
            free_tnode(n);
            return NULL;
        }
        return n;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *kid;
        bool ok = true;
        n = td_xcalloc(1, sizeof(*n));
        n->kind = TK_ARRAY;
        n->kids = td_xcalloc(json_array_size(v) + 1, sizeof(tnode_t *));
        json_array_foreach(v, i, kid)
        {
            snprintf(sub, sizeof(sub), "%.200s/%zu", path, i);
            tnode_t *c = compile(kid, sub, errs, uses, depth + 1);
            ok &= c != NULL;
            n->kids[n->n_kids++] = c;
        }
        if (!ok) {
            free_tnode(n);
            return NULL;
        }
        return n;
    }
    n = td_xcalloc(1, sizeof(*n));
    n->kind = TK_LIT;
    n->lit = json_incref((json_t *)v);
    return n;
}

td_journey_tmpl_t *td_journey_tmpl_compile(const json_t *v, const char *path,
                                           td_journey_errors_t *errs)
{
    int uses = 0;
    tnode_t *root = compile(v, path, errs, &uses, 0);

    if (root == NULL) {
        return NULL;
    }
    td_journey_tmpl_t *t = td_xcalloc(1, sizeof(*t));
    t->root = root;
    t->uses = uses;
    return t;
}

void td_journey_tmpl_free(td_journey_tmpl_t *t)
{
    if (t) {
        free_tnode(t->root);
        free(t);
    }
}

int td_journey_tmpl_uses(const td_journey_tmpl_t *t)
{
    return t ? t->uses : 0;
}

static int render(const tnode_t *n, const td_journey_env_t *env, bool url, json_t **out,
                  td_err_t *err)
{
    int rc;

    switch (n->kind) {
    case TK_LIT:
        *out = json_incref(n->lit);
        return TD_OK;
    case TK_EXPR:
        return td_journey_expr_eval(n->exprs[0], env, out, err);
    case TK_INTERP: {
        td_buf_t b = TD_BUF_INIT;
        td_buf_adds(&b, "");
        for (int i = 0; i < n->n_parts; i++) {
            if (n->texts[i]) {
                td_buf_adds(&b, n->texts[i]);
                continue;
            }
            json_t *v;
            if ((rc = td_journey_expr_eval(n->exprs[i], env, &v, err)) != TD_OK) {
                td_buf_release(&b);
                return rc;
            }
            char *s = td_journey__to_text(v);
            json_decref(v);
            if (url) {
                char *enc = td_journey__url_encode(s);
                free(s);
                s = enc;
            }
            td_buf_adds(&b, s);
            free(s);
        }
        *out = json_stringn(b.data, b.len);
        td_buf_release(&b);
        if (*out == NULL) {
            *out = json_string("");
        }
        return TD_OK;
    }
    case TK_OBJECT:
    case TK_ARRAY:
        *out = n->kind == TK_OBJECT ? json_object() : json_array();
        for (int i = 0; i < n->n_kids; i++) {
            json_t *v;
            if ((rc = render(n->kids[i], env, url, &v, err)) != TD_OK) {
                json_decref(*out);
                *out = NULL;
                return rc;
            }
            if (n->kind == TK_OBJECT) {
                json_object_set_new(*out, n->keys[i], v);
            } else {
                json_array_append_new(*out, v);
            }
        }
        return TD_OK;
    }
    TD_BUG("unknown template node");
}

int td_journey_tmpl_render(const td_journey_tmpl_t *t, const td_journey_env_t *env, bool url_encode,
                           json_t **out, td_err_t *err)
{
    *out = NULL;
    return render(t->root, env, url_encode, out, err);
}
