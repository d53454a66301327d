/* The journey expression language: a tokenizer, a recursive-descent parser
 * building a tree once, and an evaluator over jansson values. Pure: no I/O,
 * no clock (now and entry come from the environment), no globals.
 *
 * Precedence, lowest first: `where` / `since` (list filters), `??`, `or`,
 * `and`, `not`, comparisons and `in`, `+ -`, `* / %`, unary minus, then
 * postfix `.name`, `[index]` and calls. Inside a `where` condition, a name
 * that is not one of the roots (profile, event, ...) is a field of the
 * element being tested, and `it` is the element itself. */
#include "journey/internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/banned.h"

#define MAX_DEPTH 64 /* nesting of the tree, so recursion stays bounded */
#define MAX_ARGS  8

typedef enum {
    T_EOF,
    T_NUM,
    T_STR,
    T_IDENT,
    T_DOT,
    T_LBRACK,
    T_RBRACK,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_AND,
    T_OR,
    T_NOT,
    T_COALESCE,
    T_IN,
    T_WHERE,
    T_SINCE,
    T_TRUE,
    T_FALSE,
    T_NULL
} tok_t;

typedef enum {
    N_LIT,
    N_ROOT,
    N_ELEM,
    N_IT,
    N_FIELD,
    N_INDEX,
    N_NEG,
    N_NOT,
    N_BIN,
    N_AND,
    N_OR,
    N_COALESCE,
    N_CALL,
    N_LIST,
    N_WHERE,
    N_SINCE
} kind_t;

typedef enum {
    R_PROFILE,
    R_EVENT,
    R_TRIGGER,
    R_ACTIONS,
    R_JOURNEY,
    R_EVENTS,
    R_NOW,
    R_ENTRY
} root_t;

static const char *const root_names[] = { "profile", "event",  "trigger", "actions",
                                          "journey", "events", "now",     "entry" };

typedef enum {
    F_COUNT,
    F_EXISTS,
    F_EMPTY,
    F_LOWER,
    F_UPPER,
    F_TRIM,
    F_CONTAINS,
    F_STARTS_WITH,
    F_ENDS_WITH,
    F_IDS,
    F_PLUCK,
    F_SUM,
    F_MIN,
    F_MAX,
    F_INTERSECTS,
    F_ROUND,
    F_FLOOR,
    F_CEIL,
    F_ABS,
    F_NUMBER,
    F_STRING,
    F_TIME,
    F_ISO,
    F_SECONDS,
    F_MINUTES,
    F_HOURS,
    F_DAYS,
    F_WEEKS,
    F_HOUR,
    F_MINUTE,
    F_WEEKDAY,
    F_DATE,
    F_BUCKET,
    F_IF,
    F_COALESCE,
    F_FIRST,
    F_LAST,
    F_KEYS,
    F_JOIN,
    F_UNIQUE,
    F_SLICE
} fn_t;

static const struct {
    const char *name;
    fn_t fn;
    int min_args, max_args;
} functions[] = {
    { "count", F_COUNT, 1, 1 },
    { "exists", F_EXISTS, 1, 1 },
    { "empty", F_EMPTY, 1, 1 },
    { "lower", F_LOWER, 1, 1 },
    { "upper", F_UPPER, 1, 1 },
    { "trim", F_TRIM, 1, 1 },
    { "contains", F_CONTAINS, 2, 2 },
    { "starts_with", F_STARTS_WITH, 2, 2 },
    { "ends_with", F_ENDS_WITH, 2, 2 },
    { "ids", F_IDS, 1, 1 },
    { "pluck", F_PLUCK, 2, 2 },
    { "sum", F_SUM, 1, 2 },
    { "min", F_MIN, 1, 2 },
    { "max", F_MAX, 1, 2 },
    { "intersects", F_INTERSECTS, 2, 2 },
    { "round", F_ROUND, 1, 2 },
    { "floor", F_FLOOR, 1, 1 },
    { "ceil", F_CEIL, 1, 1 },
    { "abs", F_ABS, 1, 1 },
    { "number", F_NUMBER, 1, 1 },
    { "string", F_STRING, 1, 1 },
    { "time", F_TIME, 1, 1 },
    { "iso", F_ISO, 1, 1 },
    { "seconds", F_SECONDS, 1, 1 },
    { "minutes", F_MINUTES, 1, 1 },
    { "hours", F_HOURS, 1, 1 },
    { "days", F_DAYS, 1, 1 },
    { "weeks", F_WEEKS, 1, 1 },
    { "hour", F_HOUR, 1, 2 },
    { "minute", F_MINUTE, 1, 2 },
    { "weekday", F_WEEKDAY, 1, 2 },
    { "date", F_DATE, 1, 2 },
    { "bucket", F_BUCKET, 0, 0 },
    { "if", F_IF, 3, 3 },
    { "coalesce", F_COALESCE, 1, MAX_ARGS },
    { "first", F_FIRST, 1, 1 },
    { "last", F_LAST, 1, 1 },
    { "keys", F_KEYS, 1, 1 },
    { "join", F_JOIN, 1, 2 },
    { "unique", F_UNIQUE, 1, 1 },
    { "slice", F_SLICE, 2, 3 },
};

typedef struct node {
    kind_t kind;
    int pos; /* 1-based column of the token that made the node */
    int op;  /* tok_t of N_BIN; root_t of N_ROOT; fn_t of N_CALL */
    char *name;
    json_t *lit;
    struct node *a, *b;
    struct node **args;
    int n_args;
} node_t;

struct td_journey_expr {
    node_t *root;
    char *src;
    int uses;
};

/* ---- tokenizer -------------------------------------------------------- */

typedef struct parser {
    const char *src;
    size_t pos;
    tok_t tok;
    size_t tok_start;
    char *text; /* T_IDENT, T_STR */
    double num;
    bool num_is_int;
    long long inum;
    int where_depth;
    int depth;
    int uses;
    td_err_t *err;
    bool failed;
} parser_t;

static void fail_at(parser_t *p, size_t pos, const char *fmt, ...) TD_PRINTF(3, 4);

static void fail_at(parser_t *p, size_t pos, const char *fmt, ...)
{
    va_list ap;
    char msg[200];

    if (p->failed) {
        return;
    }
    p->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    td_err_set_at(p->err, TD_EINVAL, "", 1, (int)pos + 1, "%s", msg);
}

static bool lex_string(parser_t *p, char quote)
{
    td_buf_t b = TD_BUF_INIT;
    const char *s = p->src;

    p->pos++;
    for (;;) {
        char c = s[p->pos];
        if (c == '\0') {
            fail_at(p, p->tok_start, "string is not closed");
            td_buf_release(&b);
            return false;
        }
        p->pos++;
        if (c == quote) {
            break;
        }
        if (c == '\\') {
            char e = s[p->pos++];
            switch (e) {
            case 'n':
                td_buf_addc(&b, '\n');
                break;
            case 't':
                td_buf_addc(&b, '\t');
                break;
            case '\\':
            case '"':
            case '\'':
                td_buf_addc(&b, e);
                break;
            default:
                fail_at(p, p->pos - 2, "unknown escape \"\\%c\" in string", e ? e : '0');
                td_buf_release(&b);
                return false;
            }
            continue;
        }
        td_buf_addc(&b, c);
    }
    free(p->text);
    p->text = td_buf_detach(&b);
    p->tok = T_STR;
    return true;
}

static void lex_number(parser_t *p)
{
    const char *s = p->src + p->pos;
    char *end;
    size_t n = 0;
    bool frac = false;

    while (isdigit((unsigned char)s[n])) {
        n++;
    }
    if (s[n] == '.' && isdigit((unsigned char)s[n + 1])) {
        frac = true;
        n++;
        while (isdigit((unsigned char)s[n])) {
            n++;
        }
    }
    if ((s[n] == 'e' || s[n] == 'E') &&
        (isdigit((unsigned char)s[n + 1]) ||
         ((s[n + 1] == '-' || s[n + 1] == '+') && isdigit((unsigned char)s[n + 2])))) {
        frac = true;
        n += 2;
        while (isdigit((unsigned char)s[n])) {
            n++;
        }
    }
    p->num = strtod(s, &end);
    p->num_is_int = !frac && n <= 18;
    p->inum = p->num_is_int ? strtoll(s, NULL, 10) : 0;
    if (!isfinite(p->num)) {
        fail_at(p, p->pos, "number out of range");
    }
    p->pos += n;
    p->tok = T_NUM;
}

static const struct {
    const char *word;
    tok_t tok;
} keywords[] = {
    { "and", T_AND },   { "or", T_OR },       { "not", T_NOT },
    { "in", T_IN },     { "where", T_WHERE }, { "since", T_SINCE },
    { "true", T_TRUE }, { "false", T_FALSE }, { "null", T_NULL },
};

static void next(parser_t *p)
{
    const char *s = p->src;

    while (isspace((unsigned char)s[p->pos])) {
        p->pos++;
    }
    p->tok_start = p->pos;
    char c = s[p->pos];
    if (c == '\0') {
        p->tok = T_EOF;
        return;
    }
    if (isdigit((unsigned char)c)) {
        lex_number(p);
        return;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t n = 0;
        while (isalnum((unsigned char)s[p->pos + n]) || s[p->pos + n] == '_') {
            n++;
        }
        free(p->text);
        p->text = td_xstrndup(s + p->pos, n);
        p->pos += n;
        p->tok = T_IDENT;
        for (size_t i = 0; i < TD_ARRAY_LEN(keywords); i++) {
            if (strcmp(p->text, keywords[i].word) == 0) {
                p->tok = keywords[i].tok;
            }
        }
        return;
    }
    if (c == '"' || c == '\'') {
        if (!lex_string(p, c)) {
            p->tok = T_EOF;
        }
        return;
    }
    char d = s[p->pos + 1];
    p->pos++;
    switch (c) {
    case '.':
        p->tok = T_DOT;
        return;
    case '[':
        p->tok = T_LBRACK;
        return;
    case ']':
        p->tok = T_RBRACK;
        return;
    case '(':
        p->tok = T_LPAREN;
        return;
    case ')':
        p->tok = T_RPAREN;
        return;
    case ',':
        p->tok = T_COMMA;
        return;
    case '+':
        p->tok = T_PLUS;
        return;
    case '-':
        p->tok = T_MINUS;
        return;
    case '*':
        p->tok = T_STAR;
        return;
    case '/':
        p->tok = T_SLASH;
        return;
    case '%':
        p->tok = T_PERCENT;
        return;
    case '=':
        if (d == '=') {
            p->pos++;
            p->tok = T_EQ;
            return;
        }
        fail_at(p, p->tok_start, "\"=\" is not an operator (compare with ==)");
        p->tok = T_EOF;
        return;
    case '!':
        if (d == '=') {
            p->pos++;
            p->tok = T_NE;
        } else {
            p->tok = T_NOT;
        }
        return;
    case '<':
        p->tok = d == '=' ? T_LE : T_LT;
        p->pos += d == '=';
        return;
    case '>':
        p->tok = d == '=' ? T_GE : T_GT;
        p->pos += d == '=';
        return;
    case '&':
        if (d == '&') {
            p->pos++;
            p->tok = T_AND;
            return;
        }
        break;
    case '|':
        if (d == '|') {
            p->pos++;
            p->tok = T_OR;
            return;
        }
        break;
    case '?':
        if (d == '?') {
            p->pos++;
            p->tok = T_COALESCE;
            return;
        }
        break;
    default:
        break;
    }
    if ((unsigned char)c >= 0x80) {
        fail_at(p, p->tok_start, "unexpected non-ASCII character (names are ASCII; quote text)");
    } else if (isprint((unsigned char)c)) {
        fail_at(p, p->tok_start, "unexpected character \"%c\"", c);
    } else {
        fail_at(p, p->tok_start, "unexpected control character 0x%02x", (unsigned char)c);
    }
    p->tok = T_EOF;
}

/* ---- parser ----------------------------------------------------------- */

static node_t *new_node(parser_t *p, kind_t kind)
{
    node_t *n = td_xcalloc(1, sizeof(*n));

    n->kind = kind;
    n->pos = (int)p->tok_start + 1;
    return n;
}

static void free_node(node_t *n)
{
    if (n == NULL) {
        return;
    }
    free_node(n->a);
    free_node(n->b);
    for (int i = 0; i < n->n_args; i++) {
        free_node(n->args[i]);
    }
    free(n->args);
    free(n->name);
    json_decref(n->lit);
    free(n);
}

static const char *tok_desc(const parser_t *p)
{
    switch (p->tok) {
    case T_EOF:
        return "the end";
    case T_NUM:
        return "a number";
    case T_STR:
        return "a string";
    case T_IDENT:
        return "a name";
    default:
        return "an operator";
    }
}

static node_t *parse_query(parser_t *p);

static bool expect(parser_t *p, tok_t t, const char *what)
{
    if (p->failed) {
        return false;
    }
    if (p->tok != t) {
        fail_at(p, p->tok_start, "expected %s, found %s", what, tok_desc(p));
        return false;
    }
    next(p);
    return true;
}

static int find_root(const char *name)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(root_names); i++) {
        if (strcmp(name, root_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static node_t *parse_call(parser_t *p, const char *name, size_t pos)
{
    node_t *n = NULL;

    for (size_t i = 0; i < TD_ARRAY_LEN(functions); i++) {
        if (strcmp(functions[i].name, name) != 0) {
            continue;
        }
        n = new_node(p, N_CALL);
        n->pos = (int)pos + 1;
        n->op = (int)functions[i].fn;
        n->name = td_xstrdup(name);
        next(p); /* ( */
        n->args = td_xcalloc(MAX_ARGS, sizeof(node_t *));
        if (p->tok != T_RPAREN) {
            for (;;) {
                if (n->n_args == MAX_ARGS) {
                    fail_at(p, p->tok_start, "too many arguments to %s()", name);
                    break;
                }
                node_t *arg = parse_query(p);
                if (arg == NULL) {
                    break;
                }
                n->args[n->n_args++] = arg;
                if (p->tok != T_COMMA) {
                    break;
                }
                next(p);
            }
        }
        if (!p->failed &&
            (n->n_args < functions[i].min_args || n->n_args > functions[i].max_args)) {
            if (functions[i].min_args == functions[i].max_args) {
                fail_at(p, pos, "%s() takes %d argument%s, not %d", name, functions[i].min_args,
                        functions[i].min_args == 1 ? "" : "s", n->n_args);
            } else {
                fail_at(p, pos, "%s() takes %d to %d arguments, not %d", name,
                        functions[i].min_args, functions[i].max_args, n->n_args);
            }
        }
        if (!expect(p, T_RPAREN, "\")\" after the arguments")) {
            free_node(n);
            return NULL;
        }
        return n;
    }
    fail_at(p, pos, "unknown function \"%s\"", name);
    return NULL;
}

static node_t *parse_primary(parser_t *p)
{
    node_t *n;
    size_t pos = p->tok_start;

    if (p->failed) {
        return NULL;
    }
    switch (p->tok) {
    case T_NUM:
        n = new_node(p, N_LIT);
        n->lit = p->num_is_int ? json_integer(p->inum) : json_real(p->num);
        next(p);
        return n;
    case T_STR:
        n = new_node(p, N_LIT);
        n->lit = json_string(p->text);
        if (n->lit == NULL) {
            free_node(n);
            fail_at(p, pos, "string is not valid UTF-8");
            return NULL;
        }
        next(p);
        return n;
    case T_TRUE:
    case T_FALSE:
    case T_NULL:
        n = new_node(p, N_LIT);
        n->lit = p->tok == T_TRUE ? json_true() : p->tok == T_FALSE ? json_false() : json_null();
        next(p);
        return n;
    case T_LPAREN:
        next(p);
        n = parse_query(p);
        if (n && !expect(p, T_RPAREN, "\")\"")) {
            free_node(n);
            return NULL;
        }
        return n;
    case T_LBRACK:
        n = new_node(p, N_LIST);
        next(p);
        n->args = NULL;
        if (p->tok != T_RBRACK) {
            int cap = 0;
            for (;;) {
                node_t *item = parse_query(p);
                if (item == NULL) {
                    free_node(n);
                    return NULL;
                }
                if (n->n_args == cap) {
                    cap = cap ? cap * 2 : 4;
                    n->args = td_xrealloc(n->args, sizeof(node_t *) * (size_t)cap);
                }
                n->args[n->n_args++] = item;
                if (p->tok != T_COMMA) {
                    break;
                }
                next(p);
            }
        }
        if (!expect(p, T_RBRACK, "\"]\" to close the list")) {
            free_node(n);
            return NULL;
        }
        return n;
    case T_IDENT: {
        char *name = td_xstrdup(p->text);
        next(p);
        if (p->tok == T_LPAREN) {
            n = parse_call(p, name, pos);
            free(name);
            return n;
        }
        int r = find_root(name);
        if (r >= 0) {
            n = new_node(p, N_ROOT);
            n->op = r;
            n->pos = (int)pos + 1;
            p->uses |= r == R_PROFILE   ? TD_JOURNEY_USES_PROFILE
                       : r == R_EVENTS  ? TD_JOURNEY_USES_EVENTS
                       : r == R_TRIGGER ? TD_JOURNEY_USES_TRIGGER
                       : r == R_ACTIONS ? TD_JOURNEY_USES_ACTIONS
                                        : 0;
            free(name);
            return n;
        }
        if (p->where_depth > 0) {
            n = new_node(p, strcmp(name, "it") == 0 ? N_IT : N_ELEM);
            n->pos = (int)pos + 1;
            n->name = name;
            return n;
        }
        fail_at(p, pos,
                "unknown name \"%s\" (use profile, event, trigger, actions, journey, events, now "
                "or entry; fields of list elements only inside \"where\")",
                name);
        free(name);
        return NULL;
    }
    default:
        fail_at(p, pos, "expected a value, found %s", tok_desc(p));
        return NULL;
    }
}

static node_t *enter(parser_t *p)
{
    if (++p->depth > MAX_DEPTH) {
        fail_at(p, p->tok_start, "expression nested too deeply");
        return NULL;
    }
    return (node_t *)1;
}

static node_t *parse_postfix(parser_t *p)
{
    node_t *n = parse_primary(p);

    while (n && !p->failed) {
        size_t pos = p->tok_start;
        if (p->tok == T_DOT) {
            next(p);
            /* keywords are fine as field names after a dot */
            if (p->tok != T_IDENT &&
                !(p->tok >= T_AND && p->tok <= T_NULL && p->tok != T_COALESCE)) {
                fail_at(p, p->tok_start, "expected a field name after \".\"");
                break;
            }
            node_t *f = new_node(p, N_FIELD);
            f->pos = (int)pos + 1;
            f->a = n;
            f->name = td_xstrndup(p->src + p->tok_start, p->pos - p->tok_start);
            n = f;
            next(p);
        } else if (p->tok == T_LBRACK) {
            next(p);
            node_t *idx = parse_query(p);
            node_t *f = new_node(p, N_INDEX);
            f->pos = (int)pos + 1;
            f->a = n;
            f->b = idx;
            n = f;
            if (idx == NULL || !expect(p, T_RBRACK, "\"]\"")) {
                break;
            }
        } else {
            break;
        }
    }
    if (p->failed) {
        free_node(n);
        return NULL;
    }
    return n;
}

static node_t *parse_unary(parser_t *p)
{
    node_t *n;

    if (enter(p) == NULL) {
        return NULL;
    }
    if (p->tok == T_MINUS) {
        n = new_node(p, N_NEG);
        next(p);
        n->a = parse_unary(p);
    } else {
        n = parse_postfix(p);
    }
    p->depth--;
    if (p->failed) {
        free_node(n);
        return NULL;
    }
    return n;
}

static node_t *binary(parser_t *p, kind_t kind, int op, size_t pos, node_t *a, node_t *b)
{
    node_t *n = new_node(p, kind);

    n->pos = (int)pos + 1;
    n->op = op;
    n->a = a;
    n->b = b;
    if (p->failed) {
        free_node(n);
        return NULL;
    }
    return n;
}

static node_t *parse_mul(parser_t *p)
{
    node_t *n = parse_unary(p);

    while (n && (p->tok == T_STAR || p->tok == T_SLASH || p->tok == T_PERCENT)) {
        int op = (int)p->tok;
        size_t pos = p->tok_start;
        next(p);
        n = binary(p, N_BIN, op, pos, n, parse_unary(p));
    }
    return n;
}

static node_t *parse_add(parser_t *p)
{
    node_t *n = parse_mul(p);

    while (n && (p->tok == T_PLUS || p->tok == T_MINUS)) {
        int op = (int)p->tok;
        size_t pos = p->tok_start;
        next(p);
        n = binary(p, N_BIN, op, pos, n, parse_mul(p));
    }
    return n;
}

static node_t *parse_cmp(parser_t *p)
{
    node_t *n = parse_add(p);

    if (n && ((p->tok >= T_EQ && p->tok <= T_GE) || p->tok == T_IN)) {
        int op = (int)p->tok;
        size_t pos = p->tok_start;
        next(p);
        n = binary(p, N_BIN, op, pos, n, parse_add(p));
        if (n && ((p->tok >= T_EQ && p->tok <= T_GE) || p->tok == T_IN)) {
            fail_at(p, p->tok_start, "comparisons do not chain; combine them with \"and\"");
            free_node(n);
            return NULL;
        }
    }
    return n;
}

static node_t *parse_not(parser_t *p)
{
    node_t *n;

    if (p->tok != T_NOT) {
        return parse_cmp(p);
    }
    if (enter(p) == NULL) {
        return NULL;
    }
    n = new_node(p, N_NOT);
    next(p);
    n->a = parse_not(p);
    p->depth--;
    if (p->failed) {
        free_node(n);
        return NULL;
    }
    return n;
}

static node_t *parse_and(parser_t *p)
{
    node_t *n = parse_not(p);

    while (n && p->tok == T_AND) {
        size_t pos = p->tok_start;
        next(p);
        n = binary(p, N_AND, 0, pos, n, parse_not(p));
    }
    return n;
}

static node_t *parse_or(parser_t *p)
{
    node_t *n = parse_and(p);

    while (n && p->tok == T_OR) {
        size_t pos = p->tok_start;
        next(p);
        n = binary(p, N_OR, 0, pos, n, parse_and(p));
    }
    return n;
}

static node_t *parse_coalesce(parser_t *p)
{
    node_t *n = parse_or(p);

    while (n && p->tok == T_COALESCE) {
        size_t pos = p->tok_start;
        next(p);
        n = binary(p, N_COALESCE, 0, pos, n, parse_or(p));
    }
    return n;
}

static node_t *parse_query(parser_t *p)
{
    node_t *n;

    if (enter(p) == NULL) {
        return NULL;
    }
    n = parse_coalesce(p);
    while (n && (p->tok == T_WHERE || p->tok == T_SINCE)) {
        bool where = p->tok == T_WHERE;
        size_t pos = p->tok_start;
        next(p);
        p->where_depth += where;
        node_t *rhs = parse_coalesce(p);
        p->where_depth -= where;
        n = binary(p, where ? N_WHERE : N_SINCE, 0, pos, n, rhs);
    }
    p->depth--;
    if (p->failed) {
        free_node(n);
        return NULL;
    }
    return n;
}

int td_journey_expr_parse(const char *src, td_journey_expr_t **out, td_err_t *err)
{
    parser_t p = { .src = src, .err = err };
    size_t len = strlen(src);
    node_t *root;

    *out = NULL;
    if (len > TD_JOURNEY_MAX_EXPR) {
        return td_err_set_at(err, TD_EINVAL, "", 1, 1, "expression longer than %d bytes",
                             TD_JOURNEY_MAX_EXPR);
    }
    next(&p);
    if (p.tok == T_EOF && !p.failed) {
        fail_at(&p, 0, "empty expression");
    }
    root = p.failed ? NULL : parse_query(&p);
    if (root && p.tok != T_EOF) {
        fail_at(&p, p.tok_start, "unexpected %s after the expression", tok_desc(&p));
    }
    free(p.text);
    if (p.failed || root == NULL) {
        free_node(root);
        if (!p.failed) {
            fail_at(&p, 0, "invalid expression");
        }
        return TD_EINVAL;
    }
    td_journey_expr_t *e = td_xcalloc(1, sizeof(*e));
    e->root = root;
    e->src = td_xstrdup(src);
    e->uses = p.uses;
    *out = e;
    return TD_OK;
}

void td_journey_expr_free(td_journey_expr_t *e)
{
    if (e == NULL) {
        return;
    }
    free_node(e->root);
    free(e->src);
    free(e);
}

int td_journey_expr_uses(const td_journey_expr_t *e)
{
    return e ? e->uses : 0;
}

const char *td_journey_expr_source(const td_journey_expr_t *e)
{
    return e->src;
}

/* ---- evaluation ------------------------------------------------------- */

typedef struct evalctx {
    const td_journey_env_t *env;
    const json_t *elem[MAX_DEPTH]; /* `it` of each enclosing where */
    int n_elem;
    long work;
    td_err_t *err;
} evalctx_t;

static json_t *eval(evalctx_t *x, const node_t *n);

static json_t *rt_error(evalctx_t *x, const node_t *n, const char *fmt, ...) TD_PRINTF(3, 4);

static json_t *rt_error(evalctx_t *x, const node_t *n, const char *fmt, ...)
{
    va_list ap;
    char msg[200];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    td_err_set_at(x->err, TD_EINVAL, "", 1, n->pos, "%s", msg);
    return NULL;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "list";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

bool td_journey_truthy(const json_t *v)
{
    if (v == NULL) {
        return false;
    }
    switch (json_typeof(v)) {
    case JSON_TRUE:
        return true;
    case JSON_FALSE:
    case JSON_NULL:
        return false;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    }
    return false;
}

static json_t *num(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        return json_integer((json_int_t)v);
    }
    return json_real(isfinite(v) ? v : 0.0);
}

static bool values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        return json_number_value(a) == json_number_value(b);
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) {
            return false;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!values_equal(json_array_get(a, i), json_array_get(b, i))) {
                return false;
            }
        }
        return true;
    }
    return json_equal(a, b);
}

static bool list_contains(const json_t *list, const json_t *v)
{
    size_t i;
    json_t *item;

    json_array_foreach(list, i, item)
    {
        if (values_equal(item, v)) {
            return true;
        }
    }
    return false;
}

static json_t *root_value(evalctx_t *x, const node_t *n)
{
    const json_t *vars = x->env->vars;
    json_t *v;

    switch ((root_t)n->op) {
    case R_NOW:
        return json_integer(x->env->now_ms);
    case R_ENTRY:
        return json_integer(x->env->entry_ms);
    default:
        v = vars ? json_object_get(vars, root_names[n->op]) : NULL;
        if (v == NULL && n->op == R_TRIGGER && vars) {
            v = json_object_get(vars, "event");
        }
        return v ? json_incref(v) : json_null();
    }
}

static json_t *field_of(json_t *obj, const char *name)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, name) : NULL;

    return v ? json_incref(v) : json_null();
}

static json_t *eval_index(evalctx_t *x, const node_t *n, json_t *a, json_t *i)
{
    json_t *v = NULL;

    if (json_is_null(a) || json_is_null(i)) {
        return json_null();
    }
    if (json_is_array(a)) {
        if (!json_is_integer(i)) {
            return rt_error(x, n, "a list index must be a whole number, not a %s", type_name(i));
        }
        json_int_t k = json_integer_value(i);
        json_int_t size = (json_int_t)json_array_size(a);
        if (k < 0) {
            k += size; /* -1 is the last element */
        }
        v = k >= 0 && k < size ? json_array_get(a, (size_t)k) : NULL;
    } else if (json_is_object(a)) {
        if (!json_is_string(i)) {
            return rt_error(x, n, "an object key must be a string, not a %s", type_name(i));
        }
        v = json_object_get(a, json_string_value(i));
    } else {
        return rt_error(x, n, "cannot index a %s", type_name(a));
    }
    return v ? json_incref(v) : json_null();
}

static json_t *arith(evalctx_t *x, const node_t *n, json_t *a, json_t *b)
{
    int op = n->op;

    if (json_is_null(a) || json_is_null(b)) {
        return json_null();
    }
    if (op == T_PLUS && json_is_string(a)) {
        char *s = td_journey__to_text(b);
        td_buf_t buf = TD_BUF_INIT;
        td_buf_add(&buf, json_string_value(a), json_string_length(a));
        td_buf_adds(&buf, s);
        free(s);
        json_t *r = json_stringn(buf.data, buf.len);
        td_buf_release(&buf);
        return r ? r : json_null();
    }
    if (op == T_PLUS && json_is_array(a) && json_is_array(b)) {
        json_t *r = json_copy(a);
        json_array_extend(r, b);
        return r;
    }
    if (!json_is_number(a) || !json_is_number(b)) {
        static const char *const verbs[] = { "add", "subtract", "multiply", "divide",
                                             "take the "
                                             "remainder "
                                             "of" };
        return rt_error(x, n, "cannot %s a %s and a %s", verbs[op - T_PLUS], type_name(a),
                        type_name(b));
    }
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t ia = json_integer_value(a), ib = json_integer_value(b), r;
        bool over = false;
        switch (op) {
        case T_PLUS:
            over = __builtin_add_overflow(ia, ib, &r);
            break;
        case T_MINUS:
            over = __builtin_sub_overflow(ia, ib, &r);
            break;
        case T_STAR:
            over = __builtin_mul_overflow(ia, ib, &r);
            break;
        case T_PERCENT:
            if (ib == 0) {
                return rt_error(x, n, "remainder of a division by zero");
            }
            if (ib == -1) {
                return json_integer(0);
            }
            return json_integer(ia % ib);
        default:
            over = true; /* division: done in floating point */
            break;
        }
        if (!over) {
            return json_integer(r);
        }
    }
    double da = json_number_value(a), db = json_number_value(b), r;
    switch (op) {
    case T_PLUS:
        r = da + db;
        break;
    case T_MINUS:
        r = da - db;
        break;
    case T_STAR:
        r = da * db;
        break;
    case T_SLASH:
        if (db == 0.0) {
            return rt_error(x, n, "division by zero");
        }
        r = da / db;
        break;
    default:
        if (db == 0.0) {
            return rt_error(x, n, "remainder of a division by zero");
        }
        r = fmod(da, db);
        break;
    }
    if (!isfinite(r)) {
        return rt_error(x, n, "number out of range");
    }
    return num(r);
}

static json_t *compare(evalctx_t *x, const node_t *n, json_t *a, json_t *b)
{
    int op = n->op, c;

    if (op == T_EQ || op == T_NE) {
        bool eq = values_equal(a, b);
        return json_boolean(op == T_EQ ? eq : !eq);
    }
    if (op == T_IN) {
        if (json_is_null(b)) {
            return json_false();
        }
        if (json_is_array(b)) {
            return json_boolean(list_contains(b, a));
        }
        if (json_is_string(b) && json_is_string(a)) {
            return json_boolean(strstr(json_string_value(b), json_string_value(a)) != NULL);
        }
        if (json_is_object(b) && json_is_string(a)) {
            return json_boolean(json_object_get(b, json_string_value(a)) != NULL);
        }
        return rt_error(x, n, "\"in\" needs a list, a string or an object on its right, not a %s",
                        type_name(b));
    }
    if (json_is_null(a) || json_is_null(b)) {
        return json_false(); /* missing data never satisfies an ordering */
    }
    if (json_is_number(a) && json_is_number(b)) {
        double da = json_number_value(a), db = json_number_value(b);
        c = da < db ? -1 : da > db ? 1 : 0;
    } else if (json_is_string(a) && json_is_string(b)) {
        c = strcmp(json_string_value(a), json_string_value(b));
    } else {
        return rt_error(x, n, "cannot compare a %s with a %s", type_name(a), type_name(b));
    }
    switch (op) {
    case T_LT:
        return json_boolean(c < 0);
    case T_LE:
        return json_boolean(c <= 0);
    case T_GT:
        return json_boolean(c > 0);
    default:
        return json_boolean(c >= 0);
    }
}

/* Time of an element for `since`: received_ms, ts_ms, or its "ts" text. */
static bool elem_time(const json_t *e, int64_t *ms)
{
    const char *keys[] = { "received_ms", "ts_ms", "ts", "added", "received" };

    for (size_t i = 0; i < TD_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(e, keys[i]);
        if (v && td_journey__time_of(v, ms)) {
            return true;
        }
    }
    return false;
}

static json_t *eval_filter(evalctx_t *x, const node_t *n)
{
    json_t *list = eval(x, n->a), *out, *item, *t = NULL;
    size_t i;
    int64_t since = 0;

    if (list == NULL) {
        return NULL;
    }
    if (json_is_null(list)) {
        json_decref(list);
        return json_array();
    }
    if (!json_is_array(list)) {
        json_decref(list);
        return rt_error(x, n, "\"%s\" needs a list on its left",
                        n->kind == N_WHERE ? "where" : "since");
    }
    if (n->kind == N_SINCE) {
        if ((t = eval(x, n->b)) == NULL) {
            json_decref(list);
            return NULL;
        }
        bool ok = td_journey__time_of(t, &since);
        json_decref(t);
        if (!ok) {
            json_decref(list);
            return rt_error(x, n, "\"since\" needs a time on its right");
        }
    }
    out = json_array();
    json_array_foreach(list, i, item)
    {
        bool keep;
        if (n->kind == N_SINCE) {
            int64_t ms;
            keep = json_is_object(item) && elem_time(item, &ms) && ms >= since;
        } else {
            if (x->n_elem == MAX_DEPTH) {
                json_decref(list);
                json_decref(out);
                return rt_error(x, n, "\"where\" nested too deeply");
            }
            x->elem[x->n_elem++] = item;
            json_t *c = eval(x, n->b);
            x->n_elem--;
            if (c == NULL) {
                json_decref(list);
                json_decref(out);
                return NULL;
            }
            keep = td_journey_truthy(c);
            json_decref(c);
        }
        if (keep) {
            json_array_append(out, item);
        }
    }
    json_decref(list);
    return out;
}

static json_t *str_case(json_t *v, bool upper)
{
    char *s = td_xstrndup(json_string_value(v), json_string_length(v));

    for (char *c = s; *c; c++) {
        *c = (char)(upper ? toupper((unsigned char)*c) : tolower((unsigned char)*c));
    }
    json_t *r = json_string(s);
    free(s);
    return r ? r : json_null();
}

/* Numbers of a list, or of one field of each element. */
static json_t *aggregate(evalctx_t *x, const node_t *n, json_t **argv, int fn)
{
    json_t *list = argv[0], *item;
    const char *field =
        n->n_args > 1 && json_is_string(argv[1]) ? json_string_value(argv[1]) : NULL;
    double acc = 0;
    bool any = false;
    size_t i;

    if (n->n_args > 1 && field == NULL) {
        return rt_error(x, n, "%s() takes a field name (a string) as its second argument", n->name);
    }
    if (json_is_null(list)) {
        return fn == F_SUM ? json_integer(0) : json_null();
    }
    if (!json_is_array(list)) {
        return rt_error(x, n, "%s() needs a list, not a %s", n->name, type_name(list));
    }
    json_array_foreach(list, i, item)
    {
        json_t *v = field ? json_object_get(item, field) : item;
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        if (!json_is_number(v)) {
            return rt_error(x, n, "%s() met a %s among the numbers", n->name, type_name(v));
        }
        double d = json_number_value(v);
        if (fn == F_SUM) {
            acc += d;
        } else if (!any || (fn == F_MIN ? d < acc : d > acc)) {
            acc = d;
        }
        any = true;
    }
    if (!any && fn != F_SUM) {
        return json_null();
    }
    return num(acc);
}

static json_t *pluck(json_t *list, const char *field)
{
    json_t *out = json_array(), *item;
    size_t i;

    if (json_is_array(list)) {
        json_array_foreach(list, i, item)
        {
            json_t *v = json_object_get(item, field);
            if (v && !json_is_null(v)) {
                json_array_append(out, v);
            }
        }
    }
    return out;
}

static int zone_offset(evalctx_t *x, const node_t *n, json_t *zone, int64_t t, int *off)
{
    *off = 0;
    if (zone == NULL || json_is_null(zone)) {
        return TD_OK;
    }
    if (!json_is_string(zone)) {
        rt_error(x, n, "a time zone must be a string");
        return TD_EINVAL;
    }
    if (x->env->tz == NULL ||
        x->env->tz(x->env->tz_ctx, json_string_value(zone), t, off) != TD_OK) {
        rt_error(x, n, "unknown time zone \"%.64s\"", json_string_value(zone));
        return TD_EINVAL;
    }
    return TD_OK;
}

/* Civil date of days since 1970-01-01 (Howard Hinnant's civil_from_days). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static json_t *time_part(evalctx_t *x, const node_t *n, json_t **argv)
{
    int64_t t;
    int off;

    if (json_is_null(argv[0])) {
        return json_null();
    }
    if (!td_journey__time_of(argv[0], &t)) {
        return rt_error(x, n, "%s() needs a time (epoch ms or ISO 8601 text)", n->name);
    }
    if (zone_offset(x, n, n->n_args > 1 ? argv[1] : NULL, t, &off) != TD_OK) {
        return NULL;
    }
    int64_t local = t + (int64_t)off * 1000;
    int64_t days = floor_div(local, 86400000);
    int64_t ms_of_day = local - days * 86400000;
    switch (n->op) {
    case F_HOUR:
        return json_integer(ms_of_day / 3600000);
    case F_MINUTE:
        return json_integer((ms_of_day / 60000) % 60);
    case F_WEEKDAY:
        /* 1970-01-01 was a Thursday; 1 = Monday .. 7 = Sunday (ISO 8601) */
        return json_integer((days % 7 + 7 + 3) % 7 + 1);
    default: {
        int y, m, d;
        char buf[16];
        civil_from_days(days, &y, &m, &d);
        snprintf(buf, sizeof(buf), "%04d-%02d-%02d", y % 10000, m, d);
        return json_string(buf);
    }
    }
}

static json_t *call(evalctx_t *x, const node_t *n)
{
    json_t *argv[MAX_ARGS] = { NULL }, *r = NULL;
    int fn = n->op;

    /* lazily evaluated forms first */
    if (fn == F_IF) {
        json_t *c = eval(x, n->args[0]);
        if (c == NULL) {
            return NULL;
        }
        bool t = td_journey_truthy(c);
        json_decref(c);
        return eval(x, n->args[t ? 1 : 2]);
    }
    if (fn == F_COALESCE) {
        for (int i = 0; i < n->n_args; i++) {
            json_t *v = eval(x, n->args[i]);
            if (v == NULL || !json_is_null(v) || i == n->n_args - 1) {
                return v;
            }
            json_decref(v);
        }
    }
    for (int i = 0; i < n->n_args; i++) {
        if ((argv[i] = eval(x, n->args[i])) == NULL) {
            goto out;
        }
    }
    json_t *a = argv[0], *b = argv[1];
    switch ((fn_t)fn) {
    case F_COUNT:
        if (json_is_array(a)) {
            r = json_integer((json_int_t)json_array_size(a));
        } else if (json_is_object(a)) {
            r = json_integer((json_int_t)json_object_size(a));
        } else if (json_is_string(a)) {
            json_int_t chars = 0;
            for (const char *s = json_string_value(a); *s; s++) {
                chars += ((unsigned char)*s & 0xc0) != 0x80;
            }
            r = json_integer(chars);
        } else if (json_is_null(a)) {
            r = json_integer(0);
        } else {
            r = rt_error(x, n, "count() needs a list, an object or a string, not a %s",
                         type_name(a));
        }
        break;
    case F_EXISTS:
        r = json_boolean(!json_is_null(a));
        break;
    case F_EMPTY:
        r = json_boolean(json_is_null(a) || (json_is_string(a) && json_string_length(a) == 0) ||
                         (json_is_array(a) && json_array_size(a) == 0) ||
                         (json_is_object(a) && json_object_size(a) == 0));
        break;
    case F_LOWER:
    case F_UPPER:
    case F_TRIM:
        if (json_is_null(a)) {
            r = json_null();
        } else if (!json_is_string(a)) {
            r = rt_error(x, n, "%s() needs a string, not a %s", n->name, type_name(a));
        } else if (fn == F_TRIM) {
            const char *s = json_string_value(a);
            size_t len = json_string_length(a);
            while (len && isspace((unsigned char)*s)) {
                s++;
                len--;
            }
            while (len && isspace((unsigned char)s[len - 1])) {
                len--;
            }
            r = json_stringn(s, len);
        } else {
            r = str_case(a, fn == F_UPPER);
        }
        break;
    case F_CONTAINS: {
        node_t tmp = *n;
        tmp.op = T_IN;
        r = compare(x, &tmp, b, a);
        break;
    }
    case F_STARTS_WITH:
    case F_ENDS_WITH:
        if (json_is_null(a) || json_is_null(b)) {
            r = json_false();
        } else if (!json_is_string(a) || !json_is_string(b)) {
            r = rt_error(x, n, "%s() needs two strings", n->name);
        } else {
            size_t la = json_string_length(a), lb = json_string_length(b);
            const char *sa = json_string_value(a), *sb = json_string_value(b);
            r = json_boolean(lb <= la &&
                             memcmp(fn == F_STARTS_WITH ? sa : sa + la - lb, sb, lb) == 0);
        }
        break;
    case F_IDS:
        r = pluck(a, "id");
        break;
    case F_PLUCK:
        if (!json_is_string(b)) {
            r = rt_error(x, n, "pluck() takes a field name (a string) as its second argument");
        } else {
            r = pluck(a, json_string_value(b));
        }
        break;
    case F_SUM:
    case F_MIN:
    case F_MAX:
        r = aggregate(x, n, argv, fn);
        break;
    case F_INTERSECTS: {
        bool found = false;
        size_t i;
        json_t *item;
        if (json_is_array(a) && json_is_array(b)) {
            json_array_foreach(a, i, item)
            {
                if (++x->work > TD_JOURNEY_MAX_EXPR_WORK) {
                    break;
                }
                if (list_contains(b, item)) {
                    found = true;
                    break;
                }
            }
        } else if (!json_is_null(a) && !json_is_null(b)) {
            r = rt_error(x, n, "intersects() needs two lists");
            break;
        }
        r = json_boolean(found);
        break;
    }
    case F_ROUND:
    case F_FLOOR:
    case F_CEIL:
    case F_ABS:
        if (json_is_null(a)) {
            r = json_null();
        } else if (!json_is_number(a) || (b && !json_is_integer(b))) {
            r = rt_error(x, n, "%s() needs a number", n->name);
        } else {
            double d = json_number_value(a);
            if (fn == F_ROUND) {
                json_int_t digits = b ? json_integer_value(b) : 0;
                double scale = pow(10.0, (double)(digits < 0 ? 0 : digits > 10 ? 10 : digits));
                r = num(round(d * scale) / scale);
            } else {
                r = num(fn == F_FLOOR ? floor(d) : fn == F_CEIL ? ceil(d) : fabs(d));
            }
        }
        break;
    case F_NUMBER:
        if (json_is_number(a)) {
            r = json_incref(a);
        } else if (json_is_string(a)) {
            char *end;
            const char *s = json_string_value(a);
            double d = strtod(s, &end);
            r = end != s && *end == '\0' && isfinite(d) ? num(d) : json_null();
        } else if (json_is_boolean(a)) {
            r = json_integer(json_is_true(a));
        } else {
            r = json_null();
        }
        break;
    case F_STRING: {
        char *s = td_journey__to_text(a);
        r = json_string(s);
        free(s);
        if (r == NULL) {
            r = json_null();
        }
        break;
    }
    case F_TIME: {
        int64_t t;
        r = json_is_null(a) ? json_null()
            : td_journey__time_of(a, &t)
                ? json_integer(t)
                : rt_error(x, n, "time() needs epoch milliseconds or ISO 8601 text");
        break;
    }
    case F_ISO: {
        int64_t t;
        char buf[32];
        if (json_is_null(a)) {
            r = json_null();
        } else if (!td_journey__time_of(a, &t)) {
            r = rt_error(x, n, "iso() needs a time");
        } else {
            td_time_format_iso(t, buf, sizeof(buf));
            r = json_string(buf);
        }
        break;
    }
    case F_SECONDS:
    case F_MINUTES:
    case F_HOURS:
    case F_DAYS:
    case F_WEEKS: {
        static const double unit[] = { 1e3, 6e4, 3.6e6, 8.64e7, 6.048e8 };
        if (json_is_null(a)) {
            r = json_null();
        } else if (!json_is_number(a)) {
            r = rt_error(x, n, "%s() needs a number", n->name);
        } else {
            double ms = json_number_value(a) * unit[fn - F_SECONDS];
            r = fabs(ms) < 9e15 ? num(round(ms)) : rt_error(x, n, "duration out of range");
        }
        break;
    }
    case F_HOUR:
    case F_MINUTE:
    case F_WEEKDAY:
    case F_DATE:
        r = time_part(x, n, argv);
        break;
    case F_BUCKET:
        r = json_real(td_journey_bucket(x->env->seed ? x->env->seed : ""));
        break;
    case F_FIRST:
    case F_LAST:
        if (json_is_array(a) && json_array_size(a) > 0) {
            r = json_incref(json_array_get(a, fn == F_FIRST ? 0 : json_array_size(a) - 1));
        } else {
            r = json_null();
        }
        break;
    case F_KEYS: {
        const char *k;
        json_t *v;
        r = json_array();
        if (json_is_object(a)) {
            json_object_foreach(a, k, v)
            {
                json_array_append_new(r, json_string(k));
            }
        }
        break;
    }
    case F_JOIN: {
        td_buf_t buf = TD_BUF_INIT;
        const char *sep = b && json_is_string(b) ? json_string_value(b) : ", ";
        size_t i;
        json_t *item;
        if (!json_is_array(a)) {
            r = json_is_null(a) ? json_string("") : rt_error(x, n, "join() needs a list");
            break;
        }
        json_array_foreach(a, i, item)
        {
            char *s = td_journey__to_text(item);
            if (i) {
                td_buf_adds(&buf, sep);
            }
            td_buf_adds(&buf, s);
            free(s);
        }
        r = json_stringn(buf.data ? buf.data : "", buf.len);
        td_buf_release(&buf);
        if (r == NULL) {
            r = json_null();
        }
        break;
    }
    case F_UNIQUE: {
        size_t i;
        json_t *item;
        r = json_array();
        if (json_is_array(a)) {
            json_array_foreach(a, i, item)
            {
                if ((x->work += (long)json_array_size(r)) > TD_JOURNEY_MAX_EXPR_WORK) {
                    break;
                }
                if (!list_contains(r, item)) {
                    json_array_append(r, item);
                }
            }
        }
        break;
    }
    case F_SLICE: {
        json_t *c = argv[2];
        if (json_is_null(a)) {
            r = json_array();
            break;
        }
        if (!json_is_array(a) || !json_is_integer(b) || (c && !json_is_integer(c))) {
            r = rt_error(x, n, "slice() needs a list and whole numbers");
            break;
        }
        json_int_t size = (json_int_t)json_array_size(a);
        json_int_t from = json_integer_value(b), to = c ? json_integer_value(c) : size;
        from = from < 0 ? (from + size < 0 ? 0 : from + size) : from;
        to = to < 0 ? to + size : to;
        to = to > size ? size : to;
        r = json_array();
        for (json_int_t i = from; i < to; i++) {
            json_array_append(r, json_array_get(a, (size_t)i));
        }
        break;
    }
    case F_IF:
    case F_COALESCE:
        TD_BUG("lazy function evaluated eagerly");
    }
out:
    for (int i = 0; i < n->n_args; i++) {
        json_decref(argv[i]);
    }
    return r;
}

static json_t *eval(evalctx_t *x, const node_t *n)
{
    json_t *a, *b, *r;

    if (++x->work > TD_JOURNEY_MAX_EXPR_WORK) {
        if (x->work == TD_JOURNEY_MAX_EXPR_WORK + 1) {
            return rt_error(x, n, "expression does too much work (over %d steps)",
                            TD_JOURNEY_MAX_EXPR_WORK);
        }
        return NULL;
    }
    switch (n->kind) {
    case N_LIT:
        return json_incref(n->lit);
    case N_ROOT:
        return root_value(x, n);
    case N_IT:
        return x->n_elem ? json_incref((json_t *)x->elem[x->n_elem - 1]) : json_null();
    case N_ELEM:
        return x->n_elem ? field_of((json_t *)x->elem[x->n_elem - 1], n->name) : json_null();
    case N_FIELD:
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        r = field_of(a, n->name);
        json_decref(a);
        return r;
    case N_INDEX:
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        if ((b = eval(x, n->b)) == NULL) {
            json_decref(a);
            return NULL;
        }
        r = eval_index(x, n, a, b);
        json_decref(a);
        json_decref(b);
        return r;
    case N_NEG:
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        if (json_is_null(a)) {
            r = a;
        } else if (json_is_integer(a) && json_integer_value(a) != INT64_MIN) {
            r = json_integer(-json_integer_value(a));
            json_decref(a);
        } else if (json_is_number(a)) {
            r = num(-json_number_value(a));
            json_decref(a);
        } else {
            r = rt_error(x, n, "cannot negate a %s", type_name(a));
            json_decref(a);
        }
        return r;
    case N_NOT:
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        r = json_boolean(!td_journey_truthy(a));
        json_decref(a);
        return r;
    case N_AND:
    case N_OR: {
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        bool t = td_journey_truthy(a);
        json_decref(a);
        if (t == (n->kind == N_OR)) {
            return json_boolean(t);
        }
        if ((b = eval(x, n->b)) == NULL) {
            return NULL;
        }
        t = td_journey_truthy(b);
        json_decref(b);
        return json_boolean(t);
    }
    case N_COALESCE:
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        if (!json_is_null(a)) {
            return a;
        }
        json_decref(a);
        return eval(x, n->b);
    case N_BIN:
        if ((a = eval(x, n->a)) == NULL) {
            return NULL;
        }
        if ((b = eval(x, n->b)) == NULL) {
            json_decref(a);
            return NULL;
        }
        r = n->op >= T_PLUS && n->op <= T_PERCENT ? arith(x, n, a, b) : compare(x, n, a, b);
        json_decref(a);
        json_decref(b);
        return r;
    case N_CALL:
        return call(x, n);
    case N_LIST:
        r = json_array();
        for (int i = 0; i < n->n_args; i++) {
            if ((a = eval(x, n->args[i])) == NULL) {
                json_decref(r);
                return NULL;
            }
            json_array_append_new(r, a);
        }
        return r;
    case N_WHERE:
    case N_SINCE:
        return eval_filter(x, n);
    }
    TD_BUG("unknown expression node %d", (int)n->kind);
}

int td_journey_expr_eval(const td_journey_expr_t *e, const td_journey_env_t *env, json_t **out,
                         td_err_t *err)
{
    evalctx_t x = { .env = env, .err = err };

    *out = eval(&x, e->root);
    if (*out == NULL) {
        if (err && err->code == TD_OK) {
            td_err_set(err, TD_EINVAL, "", "expression failed");
        }
        return TD_EINVAL;
    }
    return TD_OK;
}

int td_journey_expr_test(const td_journey_expr_t *e, const td_journey_env_t *env, bool *out,
                         td_err_t *err)
{
    json_t *v;
    int rc = td_journey_expr_eval(e, env, &v, err);

    *out = rc == TD_OK && td_journey_truthy(v);
    json_decref(v);
    return rc;
}

double td_journey_bucket(const char *seed)
{
    uint64_t h = 1469598103934665603ULL;

    for (const unsigned char *s = (const unsigned char *)seed; *s; s++) {
        h ^= *s;
        h *= 1099511628211ULL;
    }
    /* FNV's low bits mix poorly for short keys: finish with a 64-bit mixer */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (double)(h % 10000) / 100.0;
}
