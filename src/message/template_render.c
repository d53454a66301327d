/* The template renderer: walks a compiled template (template.c) against a
 * JSON context and appends the result to a buffer. It never parses template
 * text, does no I/O and reads no clock. Bad or missing data never fails a
 * render: it renders as nothing and is written down in the report. Output,
 * work and nesting are capped so that no template and no context can make a
 * render run away. */
#include "message/template_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

typedef struct each_frame {
    size_t index, n;
    const char *key; /* object iteration; NULL for arrays */
    size_t key_len;
} each_frame_t;

typedef struct tpl_render {
    const td_template_t *t;
    td_buf_t *out;
    size_t out_start;
    td_template_report_t *rep;
    tpl_val_t ctx[TD_TEMPLATE_MAX_DEPTH + 1]; /* borrowed; ctx[0] is the root */
    int n_ctx;
    each_frame_t each[TD_TEMPLATE_MAX_DEPTH];
    int n_each;
    tpl_val_t params[TD_TEMPLATE_MAX_DEPTH][2]; /* borrowed */
    json_t **vars;
    int *pins; /* blocks currently iterating over (a part of) each variable */
    json_t **retired;
    size_t n_retired, cap_retired;
    uint64_t steps;
    bool stop;
    int rc;
} tpl_render_t;

/* ---- data aliases ---- */

/* Short names for the paths every commerce email uses. They apply only when
 * the name is not found in the data itself (docs/templates.md). */
const tpl_alias_t td_template__aliases[] = {
    { "firstName", { "profile.person.name.firstName", NULL } },
    { "lastName", { "profile.person.name.lastName", NULL } },
    { "email", { "profile.email", "profile.personalEmail.address" } },
    { "cart", { "context.journey.actions.cart", NULL } },
    { "recs", { "context.journey.actions.recs", NULL } },
    { "viewed", { "context.journey.actions.viewed", NULL } },
    { "actions", { "context.journey.actions", NULL } },
    { "event", { "context.journey.events.*", NULL } },
    { "message", { "context.message", NULL } },
    { NULL, { NULL, NULL } },
};

int td_template__alias_find(const char *name, size_t len)
{
    for (int i = 0; td_template__aliases[i].name; i++) {
        if (strlen(td_template__aliases[i].name) == len &&
            memcmp(td_template__aliases[i].name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- values ---- */

void td_template__val_release(tpl_val_t *v)
{
    free(v->owned);
    *v = TPL_VAL_UNDEF;
}

void td_template__val_move(tpl_val_t *dst, tpl_val_t *src)
{
    *dst = *src;
    *src = TPL_VAL_UNDEF;
}

tpl_val_t td_template__val_from_json(const json_t *j)
{
    tpl_val_t v = TPL_VAL_UNDEF;

    if (j == NULL) {
        return v;
    }
    v.j = j;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        v.kind = TV_OBJECT;
        break;
    case JSON_ARRAY:
        v.kind = TV_ARRAY;
        break;
    case JSON_STRING:
        v.kind = TV_STR;
        v.s = json_string_value(j);
        v.len = json_string_length(j);
        break;
    case JSON_INTEGER:
        v.kind = TV_INT;
        v.i = (int64_t)json_integer_value(j);
        break;
    case JSON_REAL:
        v.kind = TV_NUM;
        v.n = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v.kind = TV_BOOL;
        v.b = json_is_true(j);
        break;
    case JSON_NULL:
        v.kind = TV_NULL;
        break;
    }
    return v;
}

tpl_val_t td_template__val_bool(bool b)
{
    tpl_val_t v = TPL_VAL_UNDEF;

    v.kind = TV_BOOL;
    v.b = b;
    return v;
}

tpl_val_t td_template__val_int(int64_t i)
{
    tpl_val_t v = TPL_VAL_UNDEF;

    v.kind = TV_INT;
    v.i = i;
    return v;
}

tpl_val_t td_template__val_num(double n)
{
    tpl_val_t v = TPL_VAL_UNDEF;

    v.kind = TV_NUM;
    v.n = n;
    return v;
}

tpl_val_t td_template__val_str_take(char *s, size_t len)
{
    tpl_val_t v = TPL_VAL_UNDEF;

    v.kind = TV_STR;
    v.s = v.owned = s;
    v.len = len;
    return v;
}

tpl_val_t td_template__val_str_copy(const char *s, size_t len)
{
    return td_template__val_str_take(td_xstrndup(s ? s : "", len), len);
}

bool td_template__val_truthy(const tpl_val_t *v)
{
    switch (v->kind) {
    case TV_UNDEF:
    case TV_NULL:
        return false;
    case TV_BOOL:
        return v->b;
    case TV_INT:
        return v->i != 0;
    case TV_NUM:
        return v->n != 0 && !isnan(v->n);
    case TV_STR:
        return v->len > 0;
    case TV_ARRAY:
        return json_array_size(v->j) > 0;
    case TV_OBJECT:
        return true; /* as in Handlebars: {} is true */
    }
    return false;
}

bool td_template__val_empty(const tpl_val_t *v)
{
    switch (v->kind) {
    case TV_UNDEF:
    case TV_NULL:
        return true;
    case TV_STR:
        return v->len == 0;
    case TV_ARRAY:
        return json_array_size(v->j) == 0;
    case TV_OBJECT:
        return json_object_size(v->j) == 0;
    default:
        return false;
    }
}

bool td_template__val_to_num(const tpl_val_t *v, double *out)
{
    char *end;

    switch (v->kind) {
    case TV_INT:
        *out = (double)v->i;
        return true;
    case TV_NUM:
        *out = v->n;
        return true;
    case TV_STR:
        /* a whole decimal number only: no hex, inf, nan or spaces */
        if (v->len == 0 || v->len > 64 || strspn(v->s, "0123456789.eE+-") != v->len) {
            return false;
        }
        *out = strtod(v->s, &end);
        return end == v->s + v->len && isfinite(*out);
    default:
        return false;
    }
}

static void print_num(td_buf_t *out, double n)
{
    if (n == floor(n) && fabs(n) < 1e15) {
        td_buf_addf(out, "%" PRId64, (int64_t)n);
    } else {
        td_buf_add_double(out, n);
    }
}

bool td_template__val_print(const tpl_val_t *v, td_buf_t *out)
{
    switch (v->kind) {
    case TV_UNDEF:
    case TV_NULL:
        return true;
    case TV_BOOL:
        td_buf_adds(out, v->b ? "true" : "false");
        return true;
    case TV_INT:
        td_buf_addf(out, "%" PRId64, v->i);
        return true;
    case TV_NUM:
        if (!isfinite(v->n)) {
            return false;
        }
        print_num(out, v->n);
        return true;
    case TV_STR:
        td_buf_add(out, v->s, v->len);
        return true;
    default:
        return false;
    }
}

static bool is_num(const tpl_val_t *v)
{
    return v->kind == TV_INT || v->kind == TV_NUM;
}

bool td_template__val_equal(const tpl_val_t *a, const tpl_val_t *b)
{
    double x, y;

    if (a->kind == TV_UNDEF || a->kind == TV_NULL || b->kind == TV_UNDEF || b->kind == TV_NULL) {
        return (a->kind == TV_UNDEF || a->kind == TV_NULL) &&
               (b->kind == TV_UNDEF || b->kind == TV_NULL);
    }
    if (a->kind == TV_INT && b->kind == TV_INT) {
        return a->i == b->i;
    }
    if ((is_num(a) || is_num(b)) && td_template__val_to_num(a, &x) &&
        td_template__val_to_num(b, &y)) {
        return x == y;
    }
    if (a->kind != b->kind) {
        return false;
    }
    switch (a->kind) {
    case TV_BOOL:
        return a->b == b->b;
    case TV_STR:
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case TV_ARRAY:
    case TV_OBJECT:
        return a->j == b->j || json_equal((json_t *)a->j, (json_t *)b->j);
    default:
        return false;
    }
}

bool td_template__val_compare(const tpl_val_t *a, const tpl_val_t *b, int *cmp)
{
    double x, y;

    if (a->kind == TV_INT && b->kind == TV_INT) {
        *cmp = (a->i > b->i) - (a->i < b->i);
        return true;
    }
    if ((is_num(a) || is_num(b)) && td_template__val_to_num(a, &x) &&
        td_template__val_to_num(b, &y)) {
        *cmp = (x > y) - (x < y);
        return !isnan(x) && !isnan(y);
    }
    if (a->kind == TV_STR && b->kind == TV_STR) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->s, b->s, n);
        *cmp = c != 0 ? (c > 0) - (c < 0) : (a->len > b->len) - (a->len < b->len);
        return true;
    }
    return false;
}

json_t *td_template__val_to_json(const tpl_val_t *v)
{
    json_t *j = NULL;

    switch (v->kind) {
    case TV_UNDEF:
        return NULL;
    case TV_NULL:
        return json_null();
    case TV_BOOL:
        return json_boolean(v->b);
    case TV_INT:
        return json_integer((json_int_t)v->i);
    case TV_NUM:
        j = json_real(v->n); /* NULL for inf and nan */
        break;
    case TV_STR:
        j = json_stringn(v->s, v->len);
        break;
    case TV_ARRAY:
    case TV_OBJECT:
        /* jansson's reference counts are atomic; the context itself is never changed */
        return json_incref((json_t *)v->j);
    }
    return j ? j : json_null();
}

/* ---- the report ---- */

void td_template_report_init(td_template_report_t *r)
{
    memset(r, 0, sizeof(*r));
}

void td_template_report_release(td_template_report_t *r)
{
    if (r == NULL) {
        return;
    }
    for (int i = 0; i < r->n_missing; i++) {
        free(r->missing[i].text);
    }
    for (int i = 0; i < r->n_errors; i++) {
        free(r->errors[i].text);
    }
    free(r->missing);
    free(r->errors);
    td_template_report_init(r);
}

static void add_note(td_template_note_t **list, int *n, int line, int col, const char *text,
                     bool by_text_only)
{
    for (int i = 0; i < *n; i++) {
        if (strcmp((*list)[i].text, text) == 0 &&
            (by_text_only || ((*list)[i].line == line && (*list)[i].column == col))) {
            return;
        }
    }
    if (*n >= TD_TEMPLATE_MAX_NOTES) {
        return;
    }
    *list = td_xrealloc(*list, sizeof(**list) * (size_t)(*n + 1));
    (*list)[*n].line = line;
    (*list)[*n].column = col;
    (*list)[*n].text = td_xstrdup(text);
    (*n)++;
}

static void note_missing(tpl_render_t *rs, const tpl_expr_t *e)
{
    if (rs->rep) {
        add_note(&rs->rep->missing, &rs->rep->n_missing, e->line, e->column, e->u.path.text, true);
    }
}

static void note_error(tpl_render_t *rs, int line, int col, const char *fmt, ...) TD_PRINTF(4, 5);

static void note_error(tpl_render_t *rs, int line, int col, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (rs->rep == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add_note(&rs->rep->errors, &rs->rep->n_errors, line, col, msg, false);
}

void td_template__helper_error(tpl_hctx_t *h, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    note_error(h->rs, h->line, h->column, "%s: %s", h->name, msg);
}

static void halt(tpl_render_t *rs, int line, int col, const char *why)
{
    if (!rs->stop) {
        rs->stop = true;
        rs->rc = TD_ETOOBIG;
        note_error(rs, line, col, "%s", why);
        if (rs->rep) {
            rs->rep->truncated = true;
        }
    }
}

json_t *td_template_report_to_json(const td_template_report_t *r)
{
    json_t *o = json_object(), *missing = json_array(), *errors = json_array();

    for (int i = 0; i < r->n_missing; i++) {
        json_array_append_new(missing,
                              json_pack("{s:s, s:i, s:i}", "path", r->missing[i].text, "line",
                                        r->missing[i].line, "column", r->missing[i].column));
    }
    for (int i = 0; i < r->n_errors; i++) {
        json_array_append_new(errors,
                              json_pack("{s:s, s:i, s:i}", "message", r->errors[i].text, "line",
                                        r->errors[i].line, "column", r->errors[i].column));
    }
    json_object_set_new(o, "missing", missing);
    json_object_set_new(o, "errors", errors);
    json_object_set_new(o, "truncated", json_boolean(r->truncated));
    return o;
}

/* ---- output ---- */

void td_template__escape_html(td_buf_t *out, const char *s, size_t len)
{
    size_t run = 0;

    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#x27;";
            break;
        case '`':
            rep = "&#x60;";
            break;
        case '=':
            rep = "&#x3D;";
            break;
        default:
            continue;
        }
        td_buf_add(out, s + run, i - run);
        td_buf_adds(out, rep);
        run = i + 1;
    }
    td_buf_add(out, s + run, len - run);
}

static bool check_output(tpl_render_t *rs, int line, int col)
{
    if (rs->out->len - rs->out_start > TD_TEMPLATE_MAX_OUTPUT) {
        rs->out->len = rs->out_start + TD_TEMPLATE_MAX_OUTPUT;
        rs->out->data[rs->out->len] = '\0';
        halt(rs, line, col, "output larger than the limit; render stopped");
        return false;
    }
    return true;
}

static void emit(tpl_render_t *rs, const char *s, size_t len, bool escape)
{
    /* JSON strings may hold \u0000; a NUL byte has no place in an email */
    while (len > 0) {
        const char *nul = memchr(s, '\0', len);
        size_t run = nul ? (size_t)(nul - s) : len;
        if (escape) {
            td_template__escape_html(rs->out, s, run);
        } else {
            td_buf_add(rs->out, s, run);
        }
        s += run + (nul ? 1 : 0);
        len -= run + (nul ? 1 : 0);
    }
}

static void output(tpl_render_t *rs, const tpl_val_t *v, bool escape, const tpl_expr_t *e)
{
    td_buf_t tmp = TD_BUF_INIT;

    if (v->kind == TV_STR) {
        emit(rs, v->s, v->len, escape);
    } else if (v->kind == TV_ARRAY) {
        /* as Handlebars prints a JavaScript array: elements joined by "," */
        for (size_t i = 0; i < json_array_size(v->j); i++) {
            tpl_val_t el = td_template__val_from_json(json_array_get(v->j, i));
            if (i > 0) {
                td_buf_addc(&tmp, ',');
            }
            td_template__val_print(&el, &tmp);
        }
        emit(rs, tmp.data ? tmp.data : "", tmp.len, escape);
    } else if (v->kind == TV_OBJECT) {
        note_error(rs, e->line, e->column, "cannot print an object; use {{json ...}} or a field");
    } else if (!td_template__val_print(v, &tmp)) {
        note_error(rs, e->line, e->column, "cannot print a number that is not finite");
    } else {
        emit(rs, tmp.data ? tmp.data : "", tmp.len, escape);
    }
    td_buf_release(&tmp);
    check_output(rs, e->line, e->column);
}

/* ---- evaluation ---- */

static bool seg_is(const tpl_seg_t *seg, const char *lit)
{
    return seg->len == strlen(lit) && memcmp(seg->name, lit, seg->len) == 0;
}

static size_t utf8_count(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

/* v.seg: object members, array elements by index, and "length" of arrays
 * and strings (as in Handlebars, where it is JavaScript's). */
static tpl_val_t child(const tpl_val_t *v, const tpl_seg_t *seg)
{
    tpl_val_t r = TPL_VAL_UNDEF;
    const json_t *c = NULL;

    if (v->kind == TV_OBJECT) {
        c = json_object_getn(v->j, seg->name, seg->len);
    } else if (v->kind == TV_ARRAY) {
        if (seg->is_index) {
            c = json_array_get(v->j, seg->index);
        } else if (seg_is(seg, "length")) {
            return td_template__val_int((int64_t)json_array_size(v->j));
        }
    } else if (v->kind == TV_STR && seg_is(seg, "length")) {
        return td_template__val_int((int64_t)utf8_count(v->s, v->len));
    }
    if (c) {
        r = td_template__val_from_json(c);
        r.var = v->var;
    }
    return r;
}

static tpl_val_t borrow(const tpl_val_t *v)
{
    tpl_val_t r = *v;

    r.owned = NULL;
    return r;
}

static tpl_val_t alias_value(const tpl_render_t *rs, int alias)
{
    for (int k = 0; k < 2 && td_template__aliases[alias].targets[k]; k++) {
        const char *p = td_template__aliases[alias].targets[k];
        const json_t *j = rs->ctx[0].j;
        while (j && *p) {
            const char *dot = strchr(p, '.');
            size_t n = dot ? (size_t)(dot - p) : strlen(p);
            if (n == 1 && *p == '*') {
                void *it = json_is_object(j) ? json_object_iter((json_t *)j) : NULL;
                j = it ? json_object_iter_value(it) : NULL;
            } else {
                j = json_is_object(j) ? json_object_getn(j, p, n) : NULL;
            }
            p += n + (dot ? 1 : 0);
        }
        if (j) {
            return td_template__val_from_json(j);
        }
    }
    return TPL_VAL_UNDEF;
}

static tpl_val_t resolve(tpl_render_t *rs, const tpl_expr_t *e)
{
    const tpl_seg_t *segs = e->u.path.segs;
    int i = 0;
    tpl_val_t v = TPL_VAL_UNDEF;

    switch (e->u.path.base) {
    case TP_SCOPE:
        /* the current context first, then the enclosing ones (so that
         * {{profile.x}} works inside {{#each}}), then the aliases */
        for (int d = rs->n_ctx - 1; d >= 0 && v.kind == TV_UNDEF; d--) {
            v = child(&rs->ctx[d], &segs[0]);
        }
        if (v.kind == TV_UNDEF && e->u.path.alias >= 0) {
            v = alias_value(rs, e->u.path.alias);
        }
        i = 1;
        break;
    case TP_THIS:
        if (e->u.path.up < rs->n_ctx) {
            v = borrow(&rs->ctx[rs->n_ctx - 1 - e->u.path.up]);
        }
        break;
    case TP_ROOT:
        v = borrow(&rs->ctx[0]);
        break;
    case TP_PARAM:
        v = borrow(&rs->params[e->u.path.level][e->u.path.slot]);
        break;
    case TP_VAR:
        v = td_template__val_from_json(rs->vars[e->u.path.slot]);
        v.var = e->u.path.slot;
        break;
    case TP_DATA: {
        const each_frame_t *f = rs->n_each > 0 ? &rs->each[rs->n_each - 1] : NULL;
        if (f == NULL) {
            break;
        }
        switch (e->u.path.data) {
        case TD_INDEX:
            return td_template__val_int((int64_t)f->index);
        case TD_KEY:
            if (f->key) {
                tpl_val_t k = TPL_VAL_UNDEF;
                k.kind = TV_STR;
                k.s = f->key;
                k.len = f->key_len;
                return k;
            }
            return td_template__val_int((int64_t)f->index);
        case TD_FIRST:
            return td_template__val_bool(f->index == 0);
        case TD_LAST:
            return td_template__val_bool(f->index + 1 == f->n);
        }
        break;
    }
    }
    for (; i < e->u.path.n_segs && v.kind != TV_UNDEF; i++) {
        v = child(&v, &segs[i]);
    }
    return v;
}

static bool tick(tpl_render_t *rs, int line, int col)
{
    if (++rs->steps > TD_TEMPLATE_MAX_STEPS) {
        halt(rs, line, col, "too much work (a loop over too much data?); render stopped");
    }
    return !rs->stop;
}

static tpl_val_t eval(tpl_render_t *rs, const tpl_expr_t *e, bool loud);

static tpl_val_t eval_call(tpl_render_t *rs, const tpl_expr_t *e, bool loud)
{
    const tpl_helper_t *h = e->u.call.helper;
    tpl_val_t args[TPL_MAX_ARGS], opts[4], out = TPL_VAL_UNDEF;
    tpl_hctx_t hc = { rs, e->line, e->column, h->name };
    int n = 0;
    bool arg_loud = loud && !h->quiet;

    for (const tpl_expr_t *a = e->u.call.args; a && n < TPL_MAX_ARGS; a = a->next) {
        args[n++] = eval(rs, a, arg_loud);
    }
    for (int i = 0; i < 4; i++) {
        opts[i] = e->u.call.opts[i] ? eval(rs, e->u.call.opts[i], arg_loud) : TPL_VAL_UNDEF;
    }
    if (!rs->stop) {
        h->fn(&hc, args, n, opts, &out);
    }
    for (int i = 0; i < n; i++) {
        td_template__val_release(&args[i]);
    }
    for (int i = 0; i < 4; i++) {
        td_template__val_release(&opts[i]);
    }
    return out;
}

static tpl_val_t concat(const tpl_val_t *a, const tpl_val_t *b)
{
    td_buf_t buf = TD_BUF_INIT;
    size_t len;

    td_template__val_print(a, &buf);
    td_template__val_print(b, &buf);
    len = buf.len;
    return td_template__val_str_take(td_buf_detach(&buf), len);
}

static tpl_val_t arith(tpl_render_t *rs, const tpl_expr_t *e, const tpl_val_t *a,
                       const tpl_val_t *b)
{
    static const char ops[] = "+-*/%";
    tpl_binop_t op = e->u.bin.op;
    double x, y, r;

    if (a->kind == TV_UNDEF || b->kind == TV_UNDEF) {
        return TPL_VAL_UNDEF; /* already reported as missing where it matters */
    }
    if (op == TB_ADD && (a->kind == TV_STR || b->kind == TV_STR)) {
        return concat(a, b);
    }
    if (!td_template__val_to_num(a, &x) || !td_template__val_to_num(b, &y)) {
        note_error(rs, e->line, e->column, "\"%c\" needs two numbers", ops[op - TB_ADD]);
        return TPL_VAL_UNDEF;
    }
    if (a->kind == TV_INT && b->kind == TV_INT) {
        int64_t ri;
        bool ovf = false;
        switch (op) {
        case TB_ADD:
            ovf = __builtin_add_overflow(a->i, b->i, &ri);
            break;
        case TB_SUB:
            ovf = __builtin_sub_overflow(a->i, b->i, &ri);
            break;
        case TB_MUL:
            ovf = __builtin_mul_overflow(a->i, b->i, &ri);
            break;
        case TB_DIV:
            ovf = b->i == 0 || (a->i == INT64_MIN && b->i == -1) || a->i % b->i != 0;
            ri = ovf ? 0 : a->i / b->i;
            break;
        default:
            ovf = b->i == 0 || (a->i == INT64_MIN && b->i == -1);
            ri = ovf ? 0 : a->i % b->i;
            break;
        }
        if (!ovf) {
            return td_template__val_int(ri);
        }
    }
    if ((op == TB_DIV || op == TB_MOD) && y == 0) {
        note_error(rs, e->line, e->column, "division by zero");
        return TPL_VAL_UNDEF;
    }
    switch (op) {
    case TB_ADD:
        r = x + y;
        break;
    case TB_SUB:
        r = x - y;
        break;
    case TB_MUL:
        r = x * y;
        break;
    case TB_DIV:
        r = x / y;
        break;
    default:
        r = fmod(x, y);
        break;
    }
    if (!isfinite(r)) {
        note_error(rs, e->line, e->column, "number out of range");
        return TPL_VAL_UNDEF;
    }
    return td_template__val_num(r);
}

static tpl_val_t eval_bin(tpl_render_t *rs, const tpl_expr_t *e, bool loud)
{
    tpl_binop_t op = e->u.bin.op;
    tpl_val_t a, b, r;
    int cmp = 0;

    if (op == TB_AND || op == TB_OR) {
        a = eval(rs, e->u.bin.l, false);
        bool t = td_template__val_truthy(&a);
        td_template__val_release(&a);
        if (t == (op == TB_OR)) {
            return td_template__val_bool(t);
        }
        b = eval(rs, e->u.bin.r, false);
        t = td_template__val_truthy(&b);
        td_template__val_release(&b);
        return td_template__val_bool(t);
    }
    /* comparisons are tests: an absent operand is an answer, not a problem */
    bool cmp_op = op >= TB_EQ && op <= TB_GE;
    a = eval(rs, e->u.bin.l, loud && !cmp_op);
    b = eval(rs, e->u.bin.r, loud && !cmp_op);
    switch (op) {
    case TB_EQ:
        r = td_template__val_bool(td_template__val_equal(&a, &b));
        break;
    case TB_NE:
        r = td_template__val_bool(!td_template__val_equal(&a, &b));
        break;
    case TB_LT:
    case TB_LE:
    case TB_GT:
    case TB_GE:
        if (!td_template__val_compare(&a, &b, &cmp)) {
            r = td_template__val_bool(false);
        } else {
            r = td_template__val_bool(op == TB_LT   ? cmp < 0
                                      : op == TB_LE ? cmp <= 0
                                      : op == TB_GT ? cmp > 0
                                                    : cmp >= 0);
        }
        break;
    default:
        r = arith(rs, e, &a, &b);
        break;
    }
    td_template__val_release(&a);
    td_template__val_release(&b);
    return r;
}

static tpl_val_t eval(tpl_render_t *rs, const tpl_expr_t *e, bool loud)
{
    tpl_val_t v;
    double x;

    if (!tick(rs, e->line, e->column)) {
        return TPL_VAL_UNDEF;
    }
    switch (e->kind) {
    case TE_LIT:
        return borrow(&e->u.lit);
    case TE_PATH:
        v = resolve(rs, e);
        if (v.kind == TV_UNDEF && loud) {
            note_missing(rs, e);
        }
        return v;
    case TE_CALL:
        return eval_call(rs, e, loud);
    case TE_BIN:
        return eval_bin(rs, e, loud);
    case TE_NOT:
        v = eval(rs, e->u.operand, false);
        x = td_template__val_truthy(&v);
        td_template__val_release(&v);
        return td_template__val_bool(!x);
    case TE_NEG:
        v = eval(rs, e->u.operand, loud);
        if (v.kind == TV_INT && v.i != INT64_MIN) {
            return td_template__val_int(-v.i);
        }
        if (!td_template__val_to_num(&v, &x)) {
            if (v.kind != TV_UNDEF) {
                note_error(rs, e->line, e->column, "\"-\" needs a number");
            }
            td_template__val_release(&v);
            return TPL_VAL_UNDEF;
        }
        td_template__val_release(&v);
        return td_template__val_num(-x);
    case TE_ELVIS:
        v = eval(rs, e->u.bin.l, false);
        if (!td_template__val_empty(&v)) {
            return v;
        }
        td_template__val_release(&v);
        return eval(rs, e->u.bin.r, loud);
    }
    return TPL_VAL_UNDEF;
}

/* ---- nodes ---- */

static void render_list(tpl_render_t *rs, const tpl_node_t *n);

static void set_var(tpl_render_t *rs, int slot, json_t *j)
{
    json_t *old = rs->vars[slot];

    rs->vars[slot] = j;
    if (old == NULL) {
        return;
    }
    if (rs->pins[slot] == 0) {
        json_decref(old);
        return;
    }
    /* a block is iterating over the old value: keep it until the end */
    if (rs->n_retired == rs->cap_retired) {
        rs->cap_retired = rs->cap_retired ? rs->cap_retired * 2 : 8;
        rs->retired = td_xrealloc(rs->retired, sizeof(json_t *) * rs->cap_retired);
    }
    rs->retired[rs->n_retired++] = old;
}

static void enter_block(tpl_render_t *rs, const tpl_node_t *n, const tpl_val_t *ctx)
{
    rs->ctx[rs->n_ctx++] = borrow(ctx);
    if (n->param_level >= 0) {
        rs->params[n->param_level][0] = borrow(ctx);
        rs->params[n->param_level][1] = TPL_VAL_UNDEF;
    }
}

static void render_each(tpl_render_t *rs, const tpl_node_t *n)
{
    tpl_val_t v = eval(rs, n->expr, false);
    size_t count = v.kind == TV_ARRAY    ? json_array_size(v.j)
                   : v.kind == TV_OBJECT ? json_object_size(v.j)
                                         : 0;

    if (count == 0 || rs->n_ctx > TD_TEMPLATE_MAX_DEPTH || rs->n_each >= TD_TEMPLATE_MAX_DEPTH) {
        td_template__val_release(&v);
        render_list(rs, n->inverse);
        return;
    }
    if (v.var >= 0) {
        rs->pins[v.var]++;
    }
    each_frame_t *f = &rs->each[rs->n_each++];
    f->n = count;
    f->index = 0;
    f->key = NULL;
    if (v.kind == TV_ARRAY) {
        for (size_t i = 0; i < count && !rs->stop; i++) {
            tpl_val_t item = td_template__val_from_json(json_array_get(v.j, i));
            item.var = v.var;
            f->index = i;
            enter_block(rs, n, &item);
            if (n->param_level >= 0) {
                rs->params[n->param_level][1] = td_template__val_int((int64_t)i);
            }
            render_list(rs, n->body);
            rs->n_ctx--;
        }
    } else {
        const char *key;
        json_t *value;
        size_t i = 0;
        json_object_foreach((json_t *)v.j, key, value)
        {
            tpl_val_t item = td_template__val_from_json(value), k = TPL_VAL_UNDEF;
            if (rs->stop) {
                break;
            }
            item.var = v.var;
            f->index = i++;
            f->key = key;
            f->key_len = strlen(key);
            enter_block(rs, n, &item);
            if (n->param_level >= 0) {
                k.kind = TV_STR;
                k.s = key;
                k.len = f->key_len;
                rs->params[n->param_level][1] = k;
            }
            render_list(rs, n->body);
            rs->n_ctx--;
        }
    }
    rs->n_each--;
    if (v.var >= 0) {
        rs->pins[v.var]--;
    }
    td_template__val_release(&v);
}

static void render_with(tpl_render_t *rs, const tpl_node_t *n)
{
    tpl_val_t v = eval(rs, n->expr, false);

    if (!td_template__val_truthy(&v) || td_template__val_empty(&v) ||
        rs->n_ctx > TD_TEMPLATE_MAX_DEPTH) {
        td_template__val_release(&v);
        render_list(rs, n->inverse);
        return;
    }
    if (v.var >= 0) {
        rs->pins[v.var]++;
    }
    enter_block(rs, n, &v);
    render_list(rs, n->body);
    rs->n_ctx--;
    if (v.var >= 0) {
        rs->pins[v.var]--;
    }
    td_template__val_release(&v);
}

static void render_node(tpl_render_t *rs, const tpl_node_t *n)
{
    tpl_val_t v;

    if (!tick(rs, n->line, n->column)) {
        return;
    }
    switch (n->kind) {
    case TN_TEXT:
        td_buf_add(rs->out, rs->t->src + n->off, n->len);
        check_output(rs, n->line, n->column);
        break;
    case TN_OUT:
        v = eval(rs, n->expr, true);
        if (!rs->stop) {
            output(rs, &v, !n->raw, n->expr);
        }
        td_template__val_release(&v);
        break;
    case TN_IF:
        /* {{else if}} chains loop here rather than recurse, so a long chain
         * cannot exhaust the stack */
        for (;;) {
            v = eval(rs, n->expr, false);
            bool t = td_template__val_truthy(&v) || (n->include_zero && is_num(&v));
            td_template__val_release(&v);
            if (t != n->negate) {
                render_list(rs, n->body);
                break;
            }
            if (n->inverse && n->inverse->chained && !rs->stop) {
                n = n->inverse;
                continue;
            }
            render_list(rs, n->inverse);
            break;
        }
        break;
    case TN_EACH:
        render_each(rs, n);
        break;
    case TN_WITH:
        render_with(rs, n);
        break;
    case TN_LET:
        v = eval(rs, n->expr, false);
        set_var(rs, n->var, td_template__val_to_json(&v));
        td_template__val_release(&v);
        break;
    }
}

static void render_list(tpl_render_t *rs, const tpl_node_t *n)
{
    for (; n && !rs->stop; n = n->next) {
        render_node(rs, n);
    }
}

int td_template_render(const td_template_t *tpl, const json_t *context, td_buf_t *out,
                       td_template_report_t *report)
{
    tpl_render_t *rs = td_xcalloc(1, sizeof(*rs));
    int rc;

    if (report) {
        td_template_report_init(report);
    }
    rs->t = tpl;
    rs->out = out;
    td_buf_grow(out, 0);
    rs->out_start = out->len;
    rs->rep = report;
    rs->ctx[0] = td_template__val_from_json(context);
    rs->n_ctx = 1;
    if (tpl->n_vars > 0) {
        rs->vars = td_xcalloc((size_t)tpl->n_vars, sizeof(json_t *));
        rs->pins = td_xcalloc((size_t)tpl->n_vars, sizeof(int));
    }
    render_list(rs, tpl->root);
    for (int i = 0; i < tpl->n_vars; i++) {
        json_decref(rs->vars[i]);
    }
    for (size_t i = 0; i < rs->n_retired; i++) {
        json_decref(rs->retired[i]);
    }
    rc = rs->rc;
    free(rs->retired);
    free(rs->vars);
    free(rs->pins);
    free(rs);
    return rc;
}
