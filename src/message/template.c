/* The template compiler: reads Adobe Journey Optimizer / Handlebars template
 * text once and builds the tree that template_render.c walks, so that every
 * syntax error is found (with its line and column) when a template is saved,
 * never at send time. Two tag families share one tree:
 *
 *   {{ }}  Handlebars: paths, helper calls with arguments, key=value options
 *          and (subexpressions); {{{raw}}}, {{#if}}, {{#each}}, comments, ~.
 *   {% %}  AJO expressions: operators, function calls, ?: defaults, let.
 *
 * The compiler never renders anything and does no I/O. All nodes live in one
 * arena owned by the template, so an error anywhere just drops the arena. */
#include "message/template_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define MAX_SEGS 64

/* ---- arena ---- */

struct tpl_chunk {
    struct tpl_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

static void *arena_alloc(td_template_t *t, size_t n)
{
    const size_t align = sizeof(max_align_t);
    struct tpl_chunk *c = t->arena;
    void *ptr;

    n = (n + align - 1) / align * align;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = td_xmalloc(sizeof(*c) + cap);
        c->next = t->arena;
        c->used = 0;
        c->cap = cap;
        t->arena = c;
    }
    ptr = (char *)c->data + c->used;
    c->used += n;
    memset(ptr, 0, n);
    return ptr;
}

static char *arena_strndup(td_template_t *t, const char *s, size_t n)
{
    char *d = arena_alloc(t, n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void td_template_free(td_template_t *t)
{
    if (t == NULL) {
        return;
    }
    while (t->arena) {
        struct tpl_chunk *next = t->arena->next;
        free(t->arena);
        t->arena = next;
    }
    free(t->src);
    free(t);
}

/* ---- the parser state ---- */

enum { MODE_HB, MODE_AJO };

typedef struct mark {
    size_t pos;
    int line, col;
} mark_t;

typedef struct tag {
    size_t start;
    int line, col;
    int mode;
    bool raw3; /* {{{ }}} */
} tag_t;

typedef struct param_scope {
    const char *names[2];
    size_t lens[2];
    int n;
} param_scope_t;

typedef enum { END_EOF, END_ELSE, END_CLOSE } end_kind_t;

/* How a body ended: at the end of the text, at an {{else}} (the tag is read
 * up to and including "else"), or at a close tag (read completely). */
typedef struct body_end {
    end_kind_t kind;
    tag_t tag;
    const char *name; /* END_CLOSE: the block name */
    size_t name_len;
    int name_line, name_col;
} body_end_t;

typedef struct parser {
    td_template_t *t;
    const char *s;
    size_t len, pos;
    int line, col;
    td_err_t *err;
    tag_t tag; /* the tag being read */
    int depth, ctx_depth, each_depth, expr_depth;
    param_scope_t levels[TD_TEMPLATE_MAX_DEPTH];
    int n_levels;
    const char *vars[TPL_MAX_VARS];
    size_t var_lens[TPL_MAX_VARS];
    int n_vars;
    tpl_node_t *last_text; /* the newest text node, for ~ and standalone-line trimming */
    bool strip_next;       /* the previous tag ended with ~}} */
} parser_t;

static int fail(parser_t *p, int line, int col, const char *fmt, ...) TD_PRINTF(4, 5);

static int fail(parser_t *p, int line, int col, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    td_err_set_at(p->err, TD_EINVAL, "", line, col, "%s", msg);
    return -1;
}

static int at(const parser_t *p, size_t k)
{
    return p->pos + k < p->len ? (unsigned char)p->s[p->pos + k] : -1;
}

static bool looking_at(const parser_t *p, const char *lit)
{
    size_t n = strlen(lit);

    return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

/* Moves one byte forward, keeping line and column (columns count
 * characters: UTF-8 continuation bytes do not move them). */
static void adv(parser_t *p)
{
    unsigned char c = (unsigned char)p->s[p->pos++];

    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        p->col++;
    }
}

static void advn(parser_t *p, size_t n)
{
    while (n-- > 0 && p->pos < p->len) {
        adv(p);
    }
}

static mark_t mark(const parser_t *p)
{
    return (mark_t){ p->pos, p->line, p->col };
}

static void reset(parser_t *p, mark_t m)
{
    p->pos = m.pos;
    p->line = m.line;
    p->col = m.col;
}

static void skip_ws(parser_t *p)
{
    int c;

    while ((c = at(p, 0)) == ' ' || c == '\t' || c == '\n' || c == '\r') {
        adv(p);
    }
}

/* Handlebars identifiers: anything but whitespace and the reserved
 * punctuation (AJO's "Syntax general rules"). {% %} expressions also have
 * operators, so there an identifier is letters, digits, _ and $. */
static bool id_char(const parser_t *p, int c)
{
    if (c < 0) {
        return false;
    }
    if (c >= 0x80) {
        return true;
    }
    if (p->tag.mode == MODE_AJO) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '$';
    }
    return c > ' ' && c != 0x7F && strchr("!\"#%&'()*+,./;<=>@[\\]^`{|}~", c) == NULL;
}

static size_t id_len(const parser_t *p, size_t from)
{
    size_t k = from;

    while (id_char(p, at(p, k))) {
        k++;
    }
    return k - from;
}

static bool keyword(const parser_t *p, const char *kw)
{
    return looking_at(p, kw) && !id_char(p, at(p, strlen(kw)));
}

static const char *tag_open_text(const tag_t *tag)
{
    return tag->mode == MODE_AJO ? "{%" : tag->raw3 ? "{{{" : "{{";
}

static const char *tag_close_text(const tag_t *tag)
{
    return tag->mode == MODE_AJO ? "%}" : tag->raw3 ? "}}}" : "}}";
}

/* The character at the cursor, for messages. */
static void describe_here(const parser_t *p, char *out, size_t out_len)
{
    int c = at(p, 0);
    size_t n = 1;

    if (c < 0) {
        snprintf(out, out_len, "end of template");
        return;
    }
    if (c >= 0xF0) {
        n = 4;
    } else if (c >= 0xE0) {
        n = 3;
    } else if (c >= 0xC0) {
        n = 2;
    }
    if (c < ' ' || c == 0x7F) {
        snprintf(out, out_len, "control character 0x%02x", c);
    } else if (p->len - p->pos >= n) {
        snprintf(out, out_len, "\"%.*s\"", (int)n, p->s + p->pos);
    } else {
        snprintf(out, out_len, "character");
    }
}

static int unexpected(parser_t *p, const char *expected)
{
    char what[40];

    if (p->pos >= p->len || expected[0] == '\0') {
        return fail(p, p->tag.line, p->tag.col, "unterminated %s (no %s before the end)",
                    tag_open_text(&p->tag), tag_close_text(&p->tag));
    }
    describe_here(p, what, sizeof(what));
    return fail(p, p->line, p->col, "unexpected %s, expected %s", what, expected);
}

static bool at_tag_end(const parser_t *p)
{
    size_t k;

    if (p->tag.mode == MODE_AJO) {
        return looking_at(p, "%}");
    }
    if (p->tag.raw3 && looking_at(p, "}~}}")) {
        return true;
    }
    k = at(p, 0) == '~' ? 1 : 0;
    return at(p, k) == '}' && at(p, k + 1) == '}';
}

/* Whether the current tag's close delimiter appears anywhere ahead; when it
 * does not, the tag is unterminated, which says more than whatever the
 * expression parser would stumble on first. */
static bool has_close_ahead(const parser_t *p)
{
    char first = p->tag.mode == MODE_AJO ? '%' : '}';
    size_t i = p->pos;

    while (i + 1 < p->len) {
        const char *c = memchr(p->s + i, first, p->len - i - 1);
        if (c == NULL) {
            return false;
        }
        i = (size_t)(c - p->s);
        if (p->s[i + 1] == '}') {
            return true;
        }
        i++;
    }
    return false;
}

/* Reads the close delimiter of the current tag (and a ~ before it). */
static int expect_close(parser_t *p)
{
    char want[24];

    skip_ws(p);
    if (p->tag.mode == MODE_AJO) {
        if (looking_at(p, "%}")) {
            advn(p, 2);
            return 0;
        }
    } else {
        bool strip = at(p, 0) == '~';
        size_t k = strip ? 1 : 0;
        if (at(p, k) == '}' && at(p, k + 1) == '}' && (!p->tag.raw3 || at(p, k + 2) == '}')) {
            advn(p, k + 2 + (p->tag.raw3 ? 1 : 0));
            p->strip_next = strip;
            return 0;
        }
        if (p->tag.raw3 && looking_at(p, "}~}}")) {
            advn(p, 4);
            p->strip_next = true;
            return 0;
        }
    }
    snprintf(want, sizeof(want), "\"%s\"", tag_close_text(&p->tag));
    return unexpected(p, want);
}

/* ---- text nodes, ~ and standalone lines ---- */

static tpl_node_t *new_node(parser_t *p, tpl_nkind_t kind, int line, int col)
{
    tpl_node_t *n = arena_alloc(p->t, sizeof(*n));

    n->kind = kind;
    n->line = line;
    n->column = col;
    n->param_level = -1;
    n->var = -1;
    return n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void add_text(parser_t *p, tpl_node_t ***tail, size_t off, size_t len)
{
    tpl_node_t *n;

    if (p->strip_next) {
        while (len > 0 && is_space(p->s[off])) {
            off++;
            len--;
        }
        p->strip_next = false;
    }
    if (len == 0) {
        return;
    }
    n = new_node(p, TN_TEXT, 0, 0);
    n->off = off;
    n->len = len;
    **tail = n;
    *tail = &n->next;
    p->last_text = n;
}

/* {{~ : the text before the tag loses its trailing whitespace. */
static void strip_before(parser_t *p, size_t tag_start)
{
    tpl_node_t *n = p->last_text;

    if (n && n->off + n->len == tag_start) {
        while (n->len > 0 && is_space(p->s[n->off + n->len - 1])) {
            n->len--;
        }
    }
}

/* A block tag ({{#if}}, {{else}}, {{/if}}, comments, let) alone on its line
 * leaves no trace: the line's indentation and its line break are dropped,
 * as in Handlebars and Mustache ("standalone" tags), so that templates can
 * be indented without the output filling with blank lines. */
static void standalone(parser_t *p, size_t tag_start)
{
    size_t i = tag_start, j = p->pos;

    while (i > 0 && (p->s[i - 1] == ' ' || p->s[i - 1] == '\t')) {
        i--;
    }
    if (i > 0 && p->s[i - 1] != '\n') {
        return;
    }
    while (j < p->len && (p->s[j] == ' ' || p->s[j] == '\t')) {
        j++;
    }
    if (j + 1 < p->len && p->s[j] == '\r' && p->s[j + 1] == '\n') {
        j += 2;
    } else if (j < p->len && p->s[j] == '\n') {
        j++;
    } else if (j != p->len) {
        return;
    }
    if (p->last_text && p->last_text->off + p->last_text->len == tag_start) {
        p->last_text->len -= tag_start - i;
    }
    advn(p, j - p->pos);
}

/* ---- expressions ---- */

static tpl_expr_t *new_expr(parser_t *p, tpl_ekind_t kind, mark_t m)
{
    tpl_expr_t *e = arena_alloc(p->t, sizeof(*e));

    e->kind = kind;
    e->line = m.line;
    e->column = m.col;
    if (kind == TE_LIT) {
        e->u.lit = TPL_VAL_UNDEF;
    }
    return e;
}

static tpl_expr_t *hb_call(parser_t *p, bool sub);
static tpl_expr_t *ajo_expr(parser_t *p);

static int read_seg(parser_t *p, tpl_seg_t *seg)
{
    size_t start, end;

    if (at(p, 0) == '[') {
        mark_t m = mark(p);
        adv(p);
        start = p->pos;
        while (at(p, 0) >= 0 && at(p, 0) != ']' && at(p, 0) != '\n') {
            adv(p);
        }
        if (at(p, 0) != ']') {
            return fail(p, m.line, m.col, "unclosed \"[\" in a path");
        }
        end = p->pos;
        adv(p);
        if (end - start >= 2 && (p->s[start] == '"' || p->s[start] == '\'') &&
            p->s[end - 1] == p->s[start]) {
            start++;
            end--;
        }
    } else {
        start = p->pos;
        advn(p, id_len(p, 0));
        end = p->pos;
        if (end == start) {
            return unexpected(p, "a name");
        }
    }
    seg->name = p->s + start;
    seg->len = end - start;
    seg->is_index = seg->len > 0 && seg->len <= 18;
    seg->index = 0;
    for (size_t i = 0; i < seg->len && seg->is_index; i++) {
        if (seg->name[i] < '0' || seg->name[i] > '9') {
            seg->is_index = false;
        } else {
            seg->index = seg->index * 10 + (size_t)(seg->name[i] - '0');
        }
    }
    return 0;
}

static bool seg_start(const parser_t *p, size_t k)
{
    return at(p, k) == '[' || id_char(p, at(p, k));
}

static bool name_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Paths: a.b.c, a/b (Handlebars), a.[0], a.0, a[0], [odd key], this, ./a,
 * ../a, @root.a, @index @key @first @last. Block parameters and let
 * variables are resolved here, so rendering never looks names up. */
static tpl_expr_t *parse_path(parser_t *p)
{
    mark_t m = mark(p);
    tpl_expr_t *e = new_expr(p, TE_PATH, m);
    tpl_seg_t segs[MAX_SEGS];
    int n = 0, up = 0;
    bool explicit_ctx = false, need_seg = true;

    e->u.path.alias = -1;
    if (at(p, 0) == '@') {
        size_t k;
        adv(p);
        k = id_len(p, 0);
        const char *name = p->s + p->pos;
        if (name_is(name, k, "root")) {
            advn(p, k);
            e->u.path.base = TP_ROOT;
            need_seg = false;
        } else if (name_is(name, k, "index") || name_is(name, k, "key") ||
                   name_is(name, k, "first") || name_is(name, k, "last")) {
            if (p->each_depth == 0) {
                fail(p, m.line, m.col, "\"@%.*s\" used outside {{#each}}", (int)k, name);
                return NULL;
            }
            e->u.path.base = TP_DATA;
            e->u.path.data = name[0] == 'i'   ? TD_INDEX
                             : name[0] == 'k' ? TD_KEY
                             : name[0] == 'f' ? TD_FIRST
                                              : TD_LAST;
            advn(p, k);
            e->u.path.text = arena_strndup(p->t, p->s + m.pos, p->pos - m.pos);
            return e;
        } else {
            fail(p, m.line, m.col, "unknown data variable \"@%.*s\"", (int)k, name);
            return NULL;
        }
    } else {
        while (looking_at(p, "../")) {
            advn(p, 3);
            up++;
        }
        if (looking_at(p, "./")) {
            advn(p, 2);
            explicit_ctx = true;
        } else if (keyword(p, "this")) {
            advn(p, 4);
            explicit_ctx = true;
            need_seg = false;
        } else if (at(p, 0) == '.' && at(p, 1) != '.' && !seg_start(p, 1)) {
            adv(p); /* {{.}} */
            explicit_ctx = true;
            need_seg = false;
        }
        if (up > 0) {
            explicit_ctx = true;
        }
    }
    if (need_seg) {
        if (read_seg(p, &segs[n]) != 0) {
            return NULL;
        }
        n++;
    }
    for (;;) {
        int c = at(p, 0);
        if ((c == '.' || (c == '/' && p->tag.mode == MODE_HB)) && seg_start(p, 1)) {
            adv(p);
        } else if (c != '[') {
            break;
        }
        if (n == MAX_SEGS) {
            fail(p, m.line, m.col, "path has more than %d parts", MAX_SEGS);
            return NULL;
        }
        if (read_seg(p, &segs[n]) != 0) {
            return NULL;
        }
        n++;
    }
    e->u.path.text = arena_strndup(p->t, p->s + m.pos, p->pos - m.pos);

    int first = 0;
    if (e->u.path.base == TP_ROOT) {
        /* all segments apply to the root */
    } else if (explicit_ctx) {
        if (up > p->ctx_depth) {
            fail(p, m.line, m.col, "\"../\" goes above the top-level context");
            return NULL;
        }
        e->u.path.base = TP_THIS;
        e->u.path.up = up;
    } else {
        bool found = false;
        for (int lvl = p->n_levels - 1; lvl >= 0 && !found; lvl--) {
            for (int s = 0; s < p->levels[lvl].n; s++) {
                if (p->levels[lvl].lens[s] == segs[0].len &&
                    memcmp(p->levels[lvl].names[s], segs[0].name, segs[0].len) == 0) {
                    e->u.path.base = TP_PARAM;
                    e->u.path.level = lvl;
                    e->u.path.slot = s;
                    found = true;
                    break;
                }
            }
        }
        for (int v = 0; v < p->n_vars && !found; v++) {
            if (p->var_lens[v] == segs[0].len &&
                memcmp(p->vars[v], segs[0].name, segs[0].len) == 0) {
                e->u.path.base = TP_VAR;
                e->u.path.slot = v;
                found = true;
            }
        }
        if (found) {
            first = 1;
        } else {
            e->u.path.base = TP_SCOPE;
            e->u.path.alias = td_template__alias_find(segs[0].name, segs[0].len);
        }
    }
    e->u.path.n_segs = n - first;
    if (e->u.path.n_segs > 0) {
        e->u.path.segs = arena_alloc(p->t, sizeof(tpl_seg_t) * (size_t)e->u.path.n_segs);
        memcpy(e->u.path.segs, segs + first, sizeof(tpl_seg_t) * (size_t)e->u.path.n_segs);
    }
    return e;
}

static tpl_expr_t *parse_string(parser_t *p)
{
    mark_t m = mark(p);
    char quote = (char)at(p, 0);
    td_buf_t b = TD_BUF_INIT;
    tpl_expr_t *e;

    adv(p);
    for (;;) {
        int c = at(p, 0);
        if (c < 0) {
            td_buf_release(&b);
            fail(p, m.line, m.col, "unterminated string");
            return NULL;
        }
        if (c == quote) {
            adv(p);
            break;
        }
        if (c == '\\' && at(p, 1) >= 0) {
            int d = at(p, 1);
            advn(p, 2);
            td_buf_addc(&b, d == 'n' ? '\n' : d == 't' ? '\t' : d == 'r' ? '\r' : (char)d);
            continue;
        }
        td_buf_addc(&b, (char)c);
        adv(p);
    }
    e = new_expr(p, TE_LIT, m);
    e->u.lit.kind = TV_STR;
    e->u.lit.len = b.len;
    e->u.lit.s = arena_strndup(p->t, b.data ? b.data : "", b.len);
    td_buf_release(&b);
    return e;
}

/* Handlebars: -?digits(.digits)? not followed by an identifier character
 * (else it is a path such as 1st). {% %}: digits(.digits)?(e[+-]digits)?,
 * with Java's L suffix tolerated (AJO examples write 56L). */
static size_t number_len(const parser_t *p)
{
    size_t k = 0;

    if (p->tag.mode == MODE_HB && at(p, 0) == '-') {
        k++;
    }
    if (at(p, k) < '0' || at(p, k) > '9') {
        return 0;
    }
    while (at(p, k) >= '0' && at(p, k) <= '9') {
        k++;
    }
    if (at(p, k) == '.' && at(p, k + 1) >= '0' && at(p, k + 1) <= '9') {
        k++;
        while (at(p, k) >= '0' && at(p, k) <= '9') {
            k++;
        }
    }
    if (p->tag.mode == MODE_AJO) {
        if ((at(p, k) == 'e' || at(p, k) == 'E')) {
            size_t j = k + 1;
            if (at(p, j) == '+' || at(p, j) == '-') {
                j++;
            }
            if (at(p, j) >= '0' && at(p, j) <= '9') {
                k = j;
                while (at(p, k) >= '0' && at(p, k) <= '9') {
                    k++;
                }
            }
        }
        if (at(p, k) == 'L' || at(p, k) == 'l') {
            k++;
        }
    }
    if (id_char(p, at(p, k))) {
        return 0;
    }
    return k;
}

static tpl_expr_t *parse_number(parser_t *p, size_t n)
{
    mark_t m = mark(p);
    char tmp[64];
    size_t tn = n;
    tpl_expr_t *e;
    char *end;

    if (n >= sizeof(tmp)) {
        fail(p, m.line, m.col, "number is too long");
        return NULL;
    }
    memcpy(tmp, p->s + p->pos, n);
    if (tn > 0 && (tmp[tn - 1] == 'L' || tmp[tn - 1] == 'l')) {
        tn--;
    }
    tmp[tn] = '\0';
    advn(p, n);
    e = new_expr(p, TE_LIT, m);
    if (strpbrk(tmp, ".eE") == NULL) {
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno == 0 && *end == '\0') {
            e->u.lit.kind = TV_INT;
            e->u.lit.i = v;
            return e;
        }
    }
    e->u.lit.kind = TV_NUM;
    e->u.lit.n = strtod(tmp, &end);
    return e;
}

/* true, false, null, undefined: only as a whole path ("true.x" is a path).
 * Returns the keyword's index, or -1. */
static int keyword_literal_at(const parser_t *p)
{
    static const char *const kws[] = { "true", "false", "null", "undefined" };

    for (size_t i = 0; i < TD_ARRAY_LEN(kws); i++) {
        size_t n = strlen(kws[i]);
        if (keyword(p, kws[i]) && at(p, n) != '.' && at(p, n) != '[' &&
            !(at(p, n) == '/' && p->tag.mode == MODE_HB)) {
            return (int)i;
        }
    }
    return -1;
}

static tpl_expr_t *keyword_literal(parser_t *p)
{
    static const size_t lens[] = { 4, 5, 4, 9 };
    int i = keyword_literal_at(p);
    tpl_expr_t *e;

    if (i < 0) {
        return NULL;
    }
    e = new_expr(p, TE_LIT, mark(p));
    advn(p, lens[i]);
    e->u.lit.kind = i < 2 ? TV_BOOL : i == 2 ? TV_NULL : TV_UNDEF;
    e->u.lit.b = i == 0;
    return e;
}

static int enter(parser_t *p, mark_t m)
{
    if (++p->expr_depth > TD_TEMPLATE_MAX_EXPR_DEPTH) {
        return fail(p, m.line, m.col, "expression nested deeper than %d",
                    TD_TEMPLATE_MAX_EXPR_DEPTH);
    }
    return 0;
}

static int check_arity(parser_t *p, const tpl_expr_t *call)
{
    const tpl_helper_t *h = call->u.call.helper;
    int n = call->u.call.n_args;
    char want[48];

    if (n >= h->min_args && n <= h->max_args) {
        return 0;
    }
    if (h->min_args == h->max_args) {
        snprintf(want, sizeof(want), "%d argument%s", h->min_args, h->min_args == 1 ? "" : "s");
    } else if (h->max_args >= TPL_MAX_ARGS) {
        snprintf(want, sizeof(want), "at least %d argument%s", h->min_args,
                 h->min_args == 1 ? "" : "s");
    } else {
        snprintf(want, sizeof(want), "%d to %d arguments", h->min_args, h->max_args);
    }
    return fail(p, call->line, call->column, "\"%s\" takes %s, not %d", h->name, want, n);
}

static bool at_hash_key(const parser_t *p)
{
    size_t k = id_len(p, 0);

    return k > 0 && at(p, k) == '=' && at(p, k + 1) != '=';
}

static bool at_block_params(const parser_t *p)
{
    return keyword(p, "as") && (at(p, 2) == ' ' || at(p, 2) == '\t' || at(p, 2) == '\n' ||
                                at(p, 2) == '\r' || at(p, 2) == '|');
}

/* One Handlebars parameter: a literal, a path or a (subexpression). */
static tpl_expr_t *hb_param(parser_t *p)
{
    int c;
    size_t n;
    tpl_expr_t *e;

    skip_ws(p);
    c = at(p, 0);
    if (c == '(') {
        mark_t m = mark(p);
        if (enter(p, m) != 0) {
            return NULL;
        }
        adv(p);
        e = hb_call(p, true);
        if (e == NULL) {
            return NULL;
        }
        skip_ws(p);
        if (at(p, 0) != ')') {
            unexpected(p, "\")\"");
            return NULL;
        }
        adv(p);
        p->expr_depth--;
        return e;
    }
    if (c == '"' || c == '\'') {
        return parse_string(p);
    }
    if ((n = number_len(p)) > 0) {
        return parse_number(p, n);
    }
    if (c == '@' || c == '.' || c == '[' || id_char(p, c)) {
        if ((e = keyword_literal(p)) != NULL) {
            return e;
        }
        return parse_path(p);
    }
    unexpected(p, "a value");
    return NULL;
}

/* After a helper's name: positional parameters, then key=value options. */
static int hb_args(parser_t *p, tpl_expr_t *call, bool sub)
{
    const tpl_helper_t *h = call->u.call.helper;
    tpl_expr_t **tail = &call->u.call.args;
    bool seen_opt = false;

    for (;;) {
        skip_ws(p);
        if (sub ? at(p, 0) == ')' : at_tag_end(p)) {
            break;
        }
        if (at(p, 0) < 0) {
            return unexpected(p, "a value");
        }
        if (at_hash_key(p)) {
            mark_t km = mark(p);
            size_t k = id_len(p, 0);
            const char *key = p->s + p->pos;
            int idx = -1;
            for (int i = 0; i < 4 && h->options[i]; i++) {
                if (name_is(key, k, h->options[i])) {
                    idx = i;
                }
            }
            if (idx < 0) {
                return fail(p, km.line, km.col, "\"%s\" has no option \"%.*s\"", h->name, (int)k,
                            key);
            }
            if (call->u.call.opts[idx]) {
                return fail(p, km.line, km.col, "option \"%.*s\" given twice", (int)k, key);
            }
            advn(p, k + 1);
            if ((call->u.call.opts[idx] = hb_param(p)) == NULL) {
                return -1;
            }
            seen_opt = true;
            continue;
        }
        if (seen_opt) {
            return fail(p, p->line, p->col, "argument after key=value options");
        }
        if (call->u.call.n_args == TPL_MAX_ARGS) {
            return fail(p, p->line, p->col, "more than %d arguments", TPL_MAX_ARGS);
        }
        tpl_expr_t *a = hb_param(p);
        if (a == NULL) {
            return -1;
        }
        *tail = a;
        tail = &a->next;
        call->u.call.n_args++;
    }
    return check_arity(p, call);
}

/* The inside of {{ }} or ( ): a helper call (name args... key=value...) or
 * a single value. A bare name with nothing after it is a path, except inside
 * ( ), which always calls a helper. */
static tpl_expr_t *hb_call(parser_t *p, bool sub)
{
    mark_t m;
    size_t k;
    tpl_expr_t *e;

    skip_ws(p);
    m = mark(p);
    k = id_len(p, 0);
    if (k > 0 && number_len(p) == 0 && at(p, k) != '.' && at(p, k) != '/' && at(p, k) != '[' &&
        !keyword(p, "this") && keyword_literal_at(p) < 0) {
        const char *name = p->s + p->pos;
        bool more;
        advn(p, k);
        skip_ws(p);
        more = !(sub ? at(p, 0) == ')' : at_tag_end(p));
        if (sub || more) {
            const tpl_helper_t *h = td_template__helper_find(name, k);
            if (h == NULL) {
                fail(p, m.line, m.col, "unknown helper \"%.*s\"", (int)k, name);
                return NULL;
            }
            e = new_expr(p, TE_CALL, m);
            e->u.call.helper = h;
            if (hb_args(p, e, sub) != 0) {
                return NULL;
            }
            return e;
        }
    }
    reset(p, m);
    e = hb_param(p);
    if (e == NULL) {
        return NULL;
    }
    skip_ws(p);
    if (!(sub ? at(p, 0) == ')' : at_tag_end(p))) {
        unexpected(p, sub ? "\")\"" : "the end of the tag (only helpers take arguments)");
        return NULL;
    }
    return e;
}

/* ---- {% %} expressions: precedence climbing ---- */

static tpl_expr_t *ajo_unary(parser_t *p);

static int ajo_op(parser_t *p, tpl_binop_t *op, size_t *len)
{
    int c0, c1;

    skip_ws(p);
    c0 = at(p, 0);
    c1 = at(p, 1);
    *len = 2;
    if ((c0 == '|' && c1 == '|') || keyword(p, "or")) {
        *op = TB_OR;
        return 1;
    }
    if ((c0 == '&' && c1 == '&')) {
        *op = TB_AND;
        return 2;
    }
    if (keyword(p, "and")) {
        *op = TB_AND;
        *len = 3;
        return 2;
    }
    if (c0 == '=' && c1 == '=') {
        *op = TB_EQ;
        return 3;
    }
    if ((c0 == '!' && c1 == '=') || (c0 == '<' && c1 == '>')) {
        *op = TB_NE;
        return 3;
    }
    if (c0 == '<' && c1 == '=') {
        *op = TB_LE;
        return 3;
    }
    if (c0 == '>' && c1 == '=') {
        *op = TB_GE;
        return 3;
    }
    *len = 1;
    switch (c0) {
    case '=':
        *op = TB_EQ;
        return 3;
    case '<':
        *op = TB_LT;
        return 3;
    case '>':
        *op = TB_GT;
        return 3;
    case '+':
        *op = TB_ADD;
        return 4;
    case '-':
        *op = TB_SUB;
        return 4;
    case '*':
        *op = TB_MUL;
        return 5;
    case '/':
        *op = TB_DIV;
        return 5;
    case '%':
        if (c1 == '}') {
            return 0;
        }
        *op = TB_MOD;
        return 5;
    default:
        return 0;
    }
}

static tpl_expr_t *ajo_binary(parser_t *p, int min_prec)
{
    tpl_expr_t *lhs = ajo_unary(p);

    while (lhs) {
        tpl_binop_t op;
        size_t len;
        mark_t m;
        int prec = ajo_op(p, &op, &len);
        if (prec == 0 || prec < min_prec) {
            break;
        }
        m = mark(p);
        advn(p, len);
        tpl_expr_t *rhs = ajo_binary(p, prec + 1);
        if (rhs == NULL) {
            return NULL;
        }
        tpl_expr_t *e = new_expr(p, TE_BIN, m);
        e->u.bin.op = op;
        e->u.bin.l = lhs;
        e->u.bin.r = rhs;
        lhs = e;
    }
    return lhs;
}

/* Lowest precedence, right-associative: a ?: b ?: "c". */
static tpl_expr_t *ajo_expr(parser_t *p)
{
    tpl_expr_t *l, *e;
    mark_t m;

    skip_ws(p);
    m = mark(p);
    if (enter(p, m) != 0) {
        return NULL;
    }
    l = ajo_binary(p, 1);
    if (l == NULL) {
        return NULL;
    }
    skip_ws(p);
    if (looking_at(p, "?:")) {
        mark_t om = mark(p);
        advn(p, 2);
        tpl_expr_t *r = ajo_expr(p);
        if (r == NULL) {
            return NULL;
        }
        e = new_expr(p, TE_ELVIS, om);
        e->u.bin.l = l;
        e->u.bin.r = r;
        l = e;
    }
    p->expr_depth--;
    return l;
}

static tpl_expr_t *ajo_call(parser_t *p, const char *name, size_t k, mark_t m)
{
    const tpl_helper_t *h = td_template__helper_find(name, k);
    tpl_expr_t *e, **tail;

    if (h == NULL) {
        fail(p, m.line, m.col, "unknown function \"%.*s\"", (int)k, name);
        return NULL;
    }
    e = new_expr(p, TE_CALL, m);
    e->u.call.helper = h;
    tail = &e->u.call.args;
    skip_ws(p);
    adv(p); /* ( */
    skip_ws(p);
    if (at(p, 0) == ')') {
        adv(p);
    } else {
        for (;;) {
            if (e->u.call.n_args == TPL_MAX_ARGS) {
                fail(p, p->line, p->col, "more than %d arguments", TPL_MAX_ARGS);
                return NULL;
            }
            tpl_expr_t *a = ajo_expr(p);
            if (a == NULL) {
                return NULL;
            }
            *tail = a;
            tail = &a->next;
            e->u.call.n_args++;
            skip_ws(p);
            if (at(p, 0) == ',') {
                adv(p);
                continue;
            }
            if (at(p, 0) == ')') {
                adv(p);
                break;
            }
            unexpected(p, "\",\" or \")\"");
            return NULL;
        }
    }
    if (check_arity(p, e) != 0) {
        return NULL;
    }
    return e;
}

static tpl_expr_t *ajo_primary(parser_t *p)
{
    mark_t m;
    int c;
    size_t n;
    tpl_expr_t *e;

    skip_ws(p);
    m = mark(p);
    c = at(p, 0);
    if (c == '(') {
        adv(p);
        e = ajo_expr(p);
        if (e == NULL) {
            return NULL;
        }
        skip_ws(p);
        if (at(p, 0) != ')') {
            unexpected(p, "\")\"");
            return NULL;
        }
        adv(p);
        return e;
    }
    if (c == '"' || c == '\'') {
        return parse_string(p);
    }
    if ((n = number_len(p)) > 0) {
        return parse_number(p, n);
    }
    if (c >= 0 && id_char(p, c)) {
        size_t k = id_len(p, 0), j = k;
        while (at(p, j) == ' ' || at(p, j) == '\t') {
            j++;
        }
        if (at(p, j) == '(') {
            const char *name = p->s + p->pos;
            advn(p, k);
            return ajo_call(p, name, k, m);
        }
        if ((e = keyword_literal(p)) != NULL) {
            return e;
        }
        return parse_path(p);
    }
    if (c == '@' || c == '.' || c == '[') {
        return parse_path(p);
    }
    unexpected(p, "a value");
    return NULL;
}

static tpl_expr_t *ajo_unary(parser_t *p)
{
    mark_t m;
    tpl_expr_t *e, *operand;
    bool neg;

    skip_ws(p);
    m = mark(p);
    if (keyword(p, "not") || (at(p, 0) == '!' && at(p, 1) != '=')) {
        advn(p, at(p, 0) == '!' ? 1 : 3);
        neg = false;
    } else if (at(p, 0) == '-') {
        adv(p);
        neg = true;
    } else {
        return ajo_primary(p);
    }
    if (enter(p, m) != 0) {
        return NULL;
    }
    operand = ajo_unary(p);
    if (operand == NULL) {
        return NULL;
    }
    p->expr_depth--;
    if (neg && operand->kind == TE_LIT && operand->u.lit.kind == TV_INT &&
        operand->u.lit.i != INT64_MIN) {
        operand->u.lit.i = -operand->u.lit.i;
        return operand;
    }
    if (neg && operand->kind == TE_LIT && operand->u.lit.kind == TV_NUM) {
        operand->u.lit.n = -operand->u.lit.n;
        return operand;
    }
    e = new_expr(p, neg ? TE_NEG : TE_NOT, m);
    e->u.operand = operand;
    return e;
}

/* ---- tags and blocks ---- */

static int parse_body(parser_t *p, tpl_node_t **head, body_end_t *end);

static int block_kind(const char *name, size_t len, tpl_nkind_t *kind, bool *negate)
{
    *negate = false;
    if (name_is(name, len, "if")) {
        *kind = TN_IF;
    } else if (name_is(name, len, "unless")) {
        *kind = TN_IF;
        *negate = true;
    } else if (name_is(name, len, "each")) {
        *kind = TN_EACH;
    } else if (name_is(name, len, "with")) {
        *kind = TN_WITH;
    } else {
        return -1;
    }
    return 0;
}

/* The condition of {{#if}} / {{else if}}: one value plus includeZero=. */
static int parse_condition(parser_t *p, tpl_node_t *n, const char *label)
{
    skip_ws(p);
    if (at_tag_end(p)) {
        return fail(p, p->line, p->col, "%s needs a condition", label);
    }
    if (p->tag.mode == MODE_AJO) {
        n->expr = ajo_expr(p);
        return n->expr ? 0 : -1;
    }
    if ((n->expr = hb_param(p)) == NULL) {
        return -1;
    }
    skip_ws(p);
    if (at_hash_key(p)) {
        size_t k = id_len(p, 0);
        mark_t km = mark(p);
        if (!name_is(p->s + p->pos, k, "includeZero")) {
            return fail(p, km.line, km.col, "%s has no option \"%.*s\"", label, (int)k,
                        p->s + p->pos);
        }
        advn(p, k + 1);
        skip_ws(p);
        tpl_expr_t *v = hb_param(p);
        if (v == NULL) {
            return -1;
        }
        n->include_zero = v->kind == TE_LIT && v->u.lit.kind == TV_BOOL && v->u.lit.b;
    }
    return 0;
}

/* Reads "as |a b|" into a new parameter level. */
static int parse_block_params(parser_t *p, tpl_node_t *n, int max_names, const char *label)
{
    param_scope_t *sc;

    skip_ws(p);
    if (!at_block_params(p)) {
        return 0;
    }
    if (max_names == 0) {
        return fail(p, p->line, p->col, "%s takes no block parameters", label);
    }
    advn(p, 2);
    skip_ws(p);
    if (at(p, 0) != '|') {
        return unexpected(p, "\"|\"");
    }
    adv(p);
    sc = &p->levels[p->n_levels];
    sc->n = 0;
    for (;;) {
        skip_ws(p);
        if (at(p, 0) == '|') {
            adv(p);
            break;
        }
        size_t k = id_len(p, 0);
        if (k == 0) {
            return unexpected(p, "a parameter name or \"|\"");
        }
        if (sc->n == max_names) {
            return fail(p, p->line, p->col, "%s takes at most %d block parameter%s", label,
                        max_names, max_names == 1 ? "" : "s");
        }
        sc->names[sc->n] = p->s + p->pos;
        sc->lens[sc->n] = k;
        sc->n++;
        advn(p, k);
    }
    if (sc->n == 0) {
        return fail(p, p->line, p->col, "empty block parameter list");
    }
    n->param_level = p->n_levels;
    return 0;
}

static void block_label(const tag_t *tag, const char *name, size_t len, char *out, size_t out_len)
{
    if (tag->mode == MODE_AJO) {
        snprintf(out, out_len, "{%%#%.*s%%}", (int)len, name);
    } else {
        snprintf(out, out_len, "{{#%.*s}}", (int)len, name);
    }
}

/* An opening block tag, read up to its name; parses through the matching
 * close tag, with {{else}} / {{else if}} chains in between. */
static tpl_node_t *parse_block(parser_t *p, const tag_t *open, const char *name, size_t name_len,
                               mark_t name_m)
{
    tpl_nkind_t kind;
    bool negate;
    tpl_node_t *node, *cur;
    body_end_t end;
    bool in_inverse = false;
    char label[48];
    int saved_ctx = p->ctx_depth, saved_each = p->each_depth, saved_levels = p->n_levels;

    if (block_kind(name, name_len, &kind, &negate) != 0) {
        fail(p, name_m.line, name_m.col,
             "unknown block helper \"%.*s\" (blocks are if, unless, each and with)", (int)name_len,
             name);
        return NULL;
    }
    if (p->depth >= TD_TEMPLATE_MAX_DEPTH) {
        fail(p, open->line, open->col, "blocks nested deeper than %d", TD_TEMPLATE_MAX_DEPTH);
        return NULL;
    }
    block_label(open, name, name_len, label, sizeof(label));
    node = new_node(p, kind, open->line, open->col);
    node->negate = negate;
    if (kind == TN_IF) {
        if (parse_condition(p, node, label) != 0) {
            return NULL;
        }
    } else {
        skip_ws(p);
        if (at_tag_end(p) || at_block_params(p)) {
            fail(p, p->line, p->col, "%s needs a value", label);
            return NULL;
        }
        node->expr = p->tag.mode == MODE_AJO ? ajo_expr(p) : hb_param(p);
        if (node->expr == NULL) {
            return NULL;
        }
    }
    if (parse_block_params(p, node, kind == TN_EACH ? 2 : kind == TN_WITH ? 1 : 0, label) != 0) {
        return NULL;
    }
    if (expect_close(p) != 0) {
        return NULL;
    }
    standalone(p, open->start);

    p->depth++;
    if (kind == TN_EACH || kind == TN_WITH) {
        p->ctx_depth++;
    }
    if (kind == TN_EACH) {
        p->each_depth++;
    }
    if (node->param_level >= 0) {
        p->n_levels++;
    }
    int rc = parse_body(p, &node->body, &end);
    p->ctx_depth = saved_ctx;
    p->each_depth = saved_each;
    p->n_levels = saved_levels;
    if (rc != 0) {
        return NULL;
    }

    cur = node;
    for (;;) {
        if (end.kind == END_EOF) {
            fail(p, open->line, open->col, "unclosed %s", label);
            return NULL;
        }
        if (end.kind == END_CLOSE) {
            if (end.name_len == name_len && memcmp(end.name, name, name_len) == 0) {
                break;
            }
            fail(p, end.tag.line, end.tag.col, "%s/%.*s%s does not match %s at line %d",
                 end.tag.mode == MODE_AJO ? "{%" : "{{", (int)end.name_len, end.name,
                 end.tag.mode == MODE_AJO ? "%}" : "}}", label, open->line);
            return NULL;
        }
        /* {{else}}, {{else if x}}, {{else unless x}}: the tag is read up to "else" */
        p->tag = end.tag;
        if (in_inverse) {
            fail(p, end.tag.line, end.tag.col, "second {{else}} in %s", label);
            return NULL;
        }
        skip_ws(p);
        if (keyword(p, "if") || keyword(p, "unless")) {
            bool unless = keyword(p, "unless");
            tpl_node_t *n2 = new_node(p, TN_IF, end.tag.line, end.tag.col);
            advn(p, unless ? 6 : 2);
            n2->negate = unless;
            if (parse_condition(p, n2, unless ? "{{else unless}}" : "{{else if}}") != 0) {
                return NULL;
            }
            if (expect_close(p) != 0) {
                return NULL;
            }
            standalone(p, end.tag.start);
            n2->chained = true;
            cur->inverse = n2;
            cur = n2;
            in_inverse = false;
            if (parse_body(p, &n2->body, &end) != 0) {
                return NULL;
            }
            continue;
        }
        if (expect_close(p) != 0) {
            return NULL;
        }
        standalone(p, end.tag.start);
        in_inverse = true;
        if (parse_body(p, &cur->inverse, &end) != 0) {
            return NULL;
        }
    }
    p->depth--;
    return node;
}

static int parse_comment(parser_t *p)
{
    bool long_form = looking_at(p, "!--");
    const char *close = long_form ? "--" : "";

    advn(p, long_form ? 3 : 1);
    for (;;) {
        if (p->pos >= p->len) {
            return fail(p, p->tag.line, p->tag.col, "unterminated comment");
        }
        if (looking_at(p, close)) {
            size_t k = strlen(close);
            bool strip = at(p, k) == '~';
            if (at(p, k + (strip ? 1 : 0)) == '}' && at(p, k + (strip ? 1 : 0) + 1) == '}') {
                advn(p, k + (strip ? 1 : 0) + 2);
                p->strip_next = strip;
                return 0;
            }
        }
        adv(p);
    }
}

static int parse_let(parser_t *p, tpl_node_t ***tail)
{
    tpl_node_t *n = new_node(p, TN_LET, p->tag.line, p->tag.col);
    const char *name;
    size_t k;
    int slot = -1;

    advn(p, 3);
    skip_ws(p);
    k = id_len(p, 0);
    if (k == 0) {
        return unexpected(p, "a variable name");
    }
    name = p->s + p->pos;
    advn(p, k);
    skip_ws(p);
    if (at(p, 0) != '=' || at(p, 1) == '=') {
        return unexpected(p, "\"=\"");
    }
    adv(p);
    if ((n->expr = ajo_expr(p)) == NULL || expect_close(p) != 0) {
        return -1;
    }
    /* declared after its value, so {% let x = x + 1 %} reads the previous x */
    for (int v = 0; v < p->n_vars; v++) {
        if (p->var_lens[v] == k && memcmp(p->vars[v], name, k) == 0) {
            slot = v;
        }
    }
    if (slot < 0) {
        if (p->n_vars == TPL_MAX_VARS) {
            return fail(p, p->tag.line, p->tag.col, "more than %d variables", TPL_MAX_VARS);
        }
        slot = p->n_vars++;
        p->vars[slot] = name;
        p->var_lens[slot] = k;
    }
    n->var = slot;
    **tail = n;
    *tail = &n->next;
    standalone(p, p->tag.start);
    return 0;
}

static int read_close(parser_t *p, body_end_t *end)
{
    size_t k;

    skip_ws(p);
    k = id_len(p, 0);
    end->name = p->s + p->pos;
    end->name_len = k;
    end->name_line = p->line;
    end->name_col = p->col;
    if (k == 0) {
        return unexpected(p, "a block name");
    }
    advn(p, k);
    if (expect_close(p) != 0) {
        return -1;
    }
    end->kind = END_CLOSE;
    end->tag = p->tag;
    standalone(p, p->tag.start);
    return 0;
}

static int emit_out(parser_t *p, tpl_node_t ***tail, tpl_expr_t *e, bool raw)
{
    tpl_node_t *n;

    if (e == NULL || expect_close(p) != 0) {
        return -1;
    }
    n = new_node(p, TN_OUT, e->line, e->column);
    n->expr = e;
    n->raw = raw;
    **tail = n;
    *tail = &n->next;
    return 0;
}

/* A {{ }} tag, with the cursor just after the opening braces. */
static int parse_hb_tag(parser_t *p, tpl_node_t ***tail, body_end_t *end)
{
    tag_t tag = p->tag;
    int c;

    if (!has_close_ahead(p)) {
        return unexpected(p, "");
    }
    if (at(p, 0) == '~') {
        adv(p);
        strip_before(p, tag.start);
        if (tag.raw3 && at(p, 0) == '{') {
            adv(p);
        }
    }
    if (tag.raw3) {
        return emit_out(p, tail, hb_call(p, false), true);
    }
    c = at(p, 0);
    if (c == '!') {
        if (parse_comment(p) != 0) {
            return -1;
        }
        standalone(p, tag.start);
        return 0;
    }
    if (c == '#') {
        adv(p);
        skip_ws(p);
        if (at(p, 0) == '>' || at(p, 0) == '*') {
            return fail(p, tag.line, tag.col, "partial blocks and decorators are not supported");
        }
        mark_t nm = mark(p);
        size_t k = id_len(p, 0);
        const char *name = p->s + p->pos;
        if (k == 0) {
            return unexpected(p, "a block name");
        }
        advn(p, k);
        tpl_node_t *n = parse_block(p, &tag, name, k, nm);
        if (n == NULL) {
            return -1;
        }
        **tail = n;
        *tail = &n->next;
        return 0;
    }
    if (c == '/') {
        adv(p);
        return read_close(p, end);
    }
    if (c == '^') {
        adv(p);
        skip_ws(p);
        if (!at_tag_end(p)) {
            return fail(p, tag.line, tag.col,
                        "inverted sections {{^x}} are not supported; use {{#unless x}}");
        }
        end->kind = END_ELSE;
        end->tag = tag;
        return 0;
    }
    if (c == '>') {
        return fail(p, tag.line, tag.col, "partials are not supported");
    }
    if (c == '&') {
        adv(p);
        return emit_out(p, tail, hb_call(p, false), true);
    }
    skip_ws(p);
    if (keyword(p, "else")) {
        advn(p, 4);
        end->kind = END_ELSE;
        end->tag = tag;
        return 0;
    }
    return emit_out(p, tail, hb_call(p, false), false);
}

/* A {% %} tag, with the cursor just after "{%". */
static int parse_ajo_tag(parser_t *p, tpl_node_t ***tail, body_end_t *end)
{
    tag_t tag = p->tag;
    int c;

    if (!has_close_ahead(p)) {
        return unexpected(p, "");
    }
    skip_ws(p);
    c = at(p, 0);
    if (c == '=') {
        adv(p);
        return emit_out(p, tail, ajo_expr(p), false);
    }
    if (c == '#') {
        adv(p);
        skip_ws(p);
        mark_t nm = mark(p);
        size_t k = id_len(p, 0);
        const char *name = p->s + p->pos;
        if (k == 0) {
            return unexpected(p, "a block name");
        }
        advn(p, k);
        tpl_node_t *n = parse_block(p, &tag, name, k, nm);
        if (n == NULL) {
            return -1;
        }
        **tail = n;
        *tail = &n->next;
        return 0;
    }
    if (c == '/') {
        adv(p);
        return read_close(p, end);
    }
    if (keyword(p, "else")) {
        advn(p, 4);
        end->kind = END_ELSE;
        end->tag = tag;
        return 0;
    }
    if (keyword(p, "let")) {
        return parse_let(p, tail);
    }
    return unexpected(p, "\"=\", \"#\", \"/\", \"else\" or \"let\" after \"{%\"");
}

/* Text and tags until the end of the template, an {{else}} or a close tag. */
static int parse_body(parser_t *p, tpl_node_t **head, body_end_t *end)
{
    tpl_node_t **tail = head;

    for (;;) {
        size_t start = p->pos, i = p->pos;
        /* find the next tag; \{{ and \{% are literal */
        for (;;) {
            const char *brace = memchr(p->s + i, '{', p->len - i);
            if (brace == NULL) {
                i = p->len;
                break;
            }
            i = (size_t)(brace - p->s);
            if (i + 1 < p->len && (p->s[i + 1] == '{' || p->s[i + 1] == '%')) {
                if (i > start && p->s[i - 1] == '\\') {
                    bool doubled = i > start + 1 && p->s[i - 2] == '\\';
                    add_text(p, &tail, start, i - start - 1);
                    advn(p, i - p->pos);
                    start = p->pos;
                    if (doubled) {
                        break; /* \\{{x}}: one backslash, then a real tag */
                    }
                    i += 2; /* \{{ : the braces are text */
                    continue;
                }
                break;
            }
            i++;
        }
        add_text(p, &tail, start, i - start);
        advn(p, i - p->pos);
        if (p->pos >= p->len) {
            end->kind = END_EOF;
            return 0;
        }

        end->kind = END_EOF;
        p->tag.start = p->pos;
        p->tag.line = p->line;
        p->tag.col = p->col;
        p->tag.raw3 = false;
        int rc;
        if (p->s[p->pos + 1] == '{') {
            p->tag.mode = MODE_HB;
            advn(p, 2);
            if (at(p, 0) == '{') {
                adv(p);
                p->tag.raw3 = true;
            } else if (at(p, 0) == '~' && at(p, 1) == '{') {
                p->tag.raw3 = true; /* {{~{raw}~}}: parse_hb_tag reads the ~{ */
            }
            rc = parse_hb_tag(p, &tail, end);
        } else {
            p->tag.mode = MODE_AJO;
            advn(p, 2);
            rc = parse_ajo_tag(p, &tail, end);
        }
        if (rc != 0) {
            return -1;
        }
        if (end->kind != END_EOF) {
            return 0; /* else or close: the caller decides */
        }
    }
}

/* Offset of the first byte that is not valid UTF-8 (or is NUL), or len. */
static size_t utf8_check(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned c = u[i];
        size_t n;
        unsigned cp;
        if (c == 0) {
            return i;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n) {
            return i;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((u[i + k] & 0xC0) != 0x80) {
                return i;
            }
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return i;
        }
        i += n + 1;
    }
    return len;
}

int td_template_compile(const char *text, size_t len, td_template_t **out, td_err_t *err)
{
    parser_t *p;
    td_template_t *t;
    body_end_t end;
    size_t bad;
    int rc = TD_OK;

    *out = NULL;
    if (len > TD_TEMPLATE_MAX_SOURCE) {
        return td_err_set_at(err, TD_ETOOBIG, "", 1, 1, "template is larger than %d bytes",
                             TD_TEMPLATE_MAX_SOURCE);
    }
    t = td_xcalloc(1, sizeof(*t));
    t->src = td_xmalloc(len + 1);
    if (len) {
        memcpy(t->src, text, len);
    }
    t->src[len] = '\0';
    t->len = len;

    p = td_xcalloc(1, sizeof(*p));
    p->t = t;
    p->s = t->src;
    p->len = len;
    p->line = p->col = 1;
    p->err = err;

    bad = utf8_check(t->src, len);
    if (bad < len) {
        advn(p, bad);
        fail(p, p->line, p->col, t->src[bad] ? "invalid UTF-8" : "NUL byte in template");
        rc = TD_EINVAL;
        goto out;
    }
    if (parse_body(p, &t->root, &end) != 0) {
        rc = TD_EINVAL;
        goto out;
    }
    if (end.kind == END_ELSE) {
        fail(p, end.tag.line, end.tag.col, "%s outside a block",
             end.tag.mode == MODE_AJO ? "{%else%}" : "{{else}}");
        rc = TD_EINVAL;
    } else if (end.kind == END_CLOSE) {
        fail(p, end.tag.line, end.tag.col, "%s/%.*s%s without a matching opening tag",
             end.tag.mode == MODE_AJO ? "{%" : "{{", (int)end.name_len, end.name,
             end.tag.mode == MODE_AJO ? "%}" : "}}");
        rc = TD_EINVAL;
    }
    t->n_vars = p->n_vars;
out:
    free(p);
    if (rc != TD_OK) {
        td_template_free(t);
        return rc;
    }
    *out = t;
    return TD_OK;
}
